"""Two models on the same faces: which is better, beyond the noise of one test set?

Accuracy on 3,589 faces has a standard error of about 0.8 points, but two models scored on
the same faces share most of that noise. This counts the faces only one of them gets right
and gives McNemar's exact test on them (a two-sided binomial test of those counts against
50/50): a small p says the difference is not the luck of which faces are in the test set.

Probabilities are cached as in `ensemble_search.py` (same `--cache`, keyed by the model
file's hash), so a model scored there is not scored again.

    python benchmarks/paired_compare.py bundled runs/vgg48-ens3 --data ../shared/data/fer2013.csv.gz
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from ensemble_search import member_probs  # the same folder: one scoring path and cache
from scipy.stats import binomtest

from ferlab.data import load_faces, select_split


def paired_counts(right_a: np.ndarray, right_b: np.ndarray) -> tuple[int, int]:
    """(faces only A gets right, faces only B gets right)."""
    return int((right_a & ~right_b).sum()), int((~right_a & right_b).sum())


def mcnemar_p(only_a: int, only_b: int) -> float:
    """McNemar's exact two-sided p-value for the discordant counts."""
    n = only_a + only_b
    return 1.0 if n == 0 else binomtest(only_a, n, 0.5).pvalue


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("a", help="run folder, model or ensemble file, 'bundled'")
    ap.add_argument("b", help="the model to compare it with")
    ap.add_argument("--data", default="../shared/data/fer2013.csv.gz")
    ap.add_argument("--split", default="PublicTest")
    ap.add_argument("--tta", choices=("none", "flip", "shift"), default="flip")
    ap.add_argument("--cache", type=Path, default=Path("runs/ensemble-cache"))
    args = ap.parse_args()
    faces = select_split(load_faces(args.data), args.split)
    y = np.asarray(faces.labels)
    right = {m: member_probs(m, faces.images, args.tta, args.cache).argmax(-1) == y
             for m in (args.a, args.b)}
    print(f"{args.split}: {len(y):,} faces, {args.tta} TTA, float32")
    for m in (args.a, args.b):
        print(f"  {right[m].mean():.2%}  {m}")
    only_a, only_b = paired_counts(right[args.a], right[args.b])
    print(f"faces only {args.a} gets right: {only_a}; only {args.b}: {only_b}; "
          f"difference {(only_a - only_b) / len(y):+.2%}; McNemar exact p = "
          f"{mcnemar_p(only_a, only_b):.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
