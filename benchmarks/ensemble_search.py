"""Which trained models make the best mean-probability ensemble on PublicTest (issue 22).

Scores each candidate once (flip TTA by default, float32: the figures do not move with the
CPU's bf16) and caches its probabilities in `--cache`, keyed by the model file's hash, so
adding a candidate later costs one model's scoring. Then prints each member alone, how often
each pair is wrong on the same faces (members that share mistakes cannot fix each other), the
mean of every subset of two or more, and the best subset with fitted temperatures
(`ferlab.ensemble.fit_temperatures`).

Every figure is on the same 3,589 PublicTest faces, which also chose the members' best epochs
and the subset: a tuned figure, with a standard error of about 0.8 points. Keep subsets small.

    python benchmarks/ensemble_search.py bundled snapshots/speedrun-long60 runs/long60-s1
"""

from __future__ import annotations

import argparse
import itertools
from pathlib import Path

import numpy as np
import torch

from ferlab.data import load_faces, select_split
from ferlab.ensemble import combine, fit_temperatures
from ferlab.inference import predict_probs
from ferlab.model_spec import load_model, resolve_model_path
from ferlab.runtime.onnx_classifier import file_sha256


def member_probs(spec: str, images: np.ndarray, tta: str, cache: Path) -> np.ndarray:
    """``[N, 7]`` probabilities of the model at ``spec``, from the cache where it has them."""
    key = f"{file_sha256(resolve_model_path(spec))[:16]}-{tta}-{len(images)}"
    path = cache / f"{key}.npy"
    if path.is_file():
        return np.load(path)
    probs = predict_probs(load_model(spec), images, tta=None if tta == "none" else tta,
                          precision="fp32", progress=True).numpy()
    cache.mkdir(parents=True, exist_ok=True)
    np.save(path, probs)
    return probs


def accuracy(p: torch.Tensor, y: torch.Tensor) -> float:
    return (p.argmax(-1) == y).float().mean().item()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("models", nargs="+", help="run folders, model files, 'bundled'")
    ap.add_argument("--data", default="../shared/data/fer2013.csv.gz")
    ap.add_argument("--split", default="PublicTest")
    ap.add_argument("--tta", choices=("none", "flip", "shift"), default="flip")
    ap.add_argument("--cache", type=Path, default=Path("runs/ensemble-cache"))
    ap.add_argument("--top", type=int, default=10, help="subsets to print")
    args = ap.parse_args()
    faces = select_split(load_faces(args.data), args.split)
    y = torch.as_tensor(faces.labels)
    probs = torch.stack([torch.as_tensor(member_probs(m, faces.images, args.tta, args.cache))
                         for m in args.models])
    print(f"{args.split}: {len(y):,} faces, {args.tta} TTA, float32")
    wrong = probs.argmax(-1) != y
    for i, m in enumerate(args.models):
        print(f"  [{i}] {accuracy(probs[i], y):.2%}  {m}")
    print("faces both get wrong, as a share of the faces the first gets wrong:")
    for i, j in itertools.combinations(range(len(args.models)), 2):
        both = (wrong[i] & wrong[j]).sum().item() / max(wrong[i].sum().item(), 1)
        print(f"  [{i}] & [{j}]: {both:.0%}")
    subsets = [s for k in range(2, len(args.models) + 1)
               for s in itertools.combinations(range(len(args.models)), k)]
    scored = sorted(((accuracy(combine(probs[list(s)], "mean"), y), s) for s in subsets),
                    reverse=True)
    print(f"mean of each subset (best {args.top}):")
    for acc, s in scored[:args.top]:
        print(f"  {acc:.2%}  {list(s)}")
    best = list(scored[0][1])
    logp = probs[best].clamp_min(1e-12).log()
    temps = fit_temperatures(logp, y)
    cal = torch.stack([(lp / t).softmax(-1) for lp, t in zip(logp, temps, strict=True)])
    print(f"best subset {best} with fitted temperatures {temps}: "
          f"{accuracy(combine(cal, 'mean'), y):.2%}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
