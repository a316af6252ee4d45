"""Explanation methods on a real model: seconds per method for seven faces (one per class),
LIME seconds per face, deletion/insertion per method, and the figures to look at.

Usage:
    nice -n 10 .venv/bin/python benchmarks/bench_explain.py --model runs/vgg32-e30 \\
        --data /work/shared/data/fer2013.csv.gz --out /tmp/bench_explain [--select random-correct]
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from ferlab.data import load_faces
from ferlab.explain import deletion_insertion, get_explainer, list_methods, select_faces
from ferlab.explain.command import pick_split
from ferlab.explain.figures import deletion_insertion_figure, explanation_grid, methods_grid
from ferlab.model_spec import load_model


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--out", default="/tmp/bench_explain")
    ap.add_argument("--select", default="confident-correct")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--methods", default=",".join(list_methods()))
    args = ap.parse_args()
    warnings.filterwarnings("ignore")
    out = Path(args.out)
    model = load_model(args.model)
    print(f"model {args.model}: {model.name} {model.kwargs}, epoch {model.meta.get('epoch')}, "
          f"val acc {model.meta.get('val_accuracy')}; torch threads {torch.get_num_threads()}")
    faces = pick_split(load_faces(args.data), "auto")
    sel = select_faces(model, faces, args.select, seed=args.seed)
    x, target = sel.inputs(), torch.from_numpy(sel.preds)
    print(f"{len(sel)} faces ({args.select}) of {faces.source} PublicTest: {sel.names}")
    # Warm-up: the first forward/backward builds oneDNN kernels (a one-off second or two).
    get_explainer("saliency", model).attribute(x[:1])
    rows, maps, signed, results = [], {}, {}, {}
    for name in args.methods.split(","):
        e = get_explainer(name, model)
        t0 = time.perf_counter()
        m = e.attribute(x, target)
        dt = time.perf_counter() - t0
        maps[name], signed[name] = m[:, 0].numpy(), e.signed
        explanation_grid(sel, maps[name], name, out / f"{name}.png", e.signed)
        t1 = time.perf_counter()
        results[name] = deletion_insertion(model, x, m, target)
        s = results[name].summary()
        rows.append({"method": name, "seconds_7_faces": round(dt, 2),
                     "seconds_per_face": round(dt / len(sel), 3), **{k: round(v, 4)
                                                                     for k, v in s.items()}})
        print(f"{name:22s} {dt:6.2f} s for {len(sel)} faces ({dt / len(sel):.2f} s/face)  "
              f"deletion {s['deletion']:.3f} insertion {s['insertion']:.3f}  "
              f"(check {time.perf_counter() - t1:.1f} s)", flush=True)
    g = torch.Generator().manual_seed(0)
    results["random"] = deletion_insertion(model, x, torch.rand(x.shape, generator=g), target)
    s = results["random"].summary()
    rows.append({"method": "random", **{k: round(v, 4) for k, v in s.items()}})
    print(f"{'random':22s} {'':31s} deletion {s['deletion']:.3f} insertion {s['insertion']:.3f}")
    methods_grid(sel, maps, out / "methods.png", signed)
    deletion_insertion_figure(results, out / "check.png")
    np.save(out / "faces.npy", sel.images)
    (out / "results.json").write_text(json.dumps(rows, indent=2) + "\n")
    print(f"figures in {out}")


if __name__ == "__main__":
    main()
