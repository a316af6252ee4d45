"""The speedrun's ablation table: each step of the recipe turned off, 3 seeds each.

Every row trains `ferlab train --recipe speedrun` with one change (`bench_train.py --set`) for
each seed and reports the mean and spread of the final PublicTest accuracy (the recipe's TTA),
the change against the recipe's own row, and the minutes. A seed whose table
(`OUT/ROW/seedN/bench-train.json`) is already there is read, not retrained, so the table can
be built over several sessions (a seed cut off mid-run starts again); `--redo` retrains.
The recipe's own row also reads `runs/bench-train`, the seeds of `make bench-train` (from
their `history.csv` where they have no table: minutes then leave out the start-up seconds).

    python benchmarks/bench_ablation.py                      # every row, seeds 0 1 2
    python benchmarks/bench_ablation.py --rows no-lookahead  # one row
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

from bench_train import run_seed, seed_table, spread  # the same folder: one training path

from ferlab.config import RunConfig
from ferlab.machine import machine_header

# row name: (what turning it off means, the --set values that do it)
ABLATIONS: dict[str, tuple[str, list[str]]] = {
    "recipe": ("nothing: the recipe as it is", []),
    "no-whitening": ("the first layer learns from PyTorch's initialisation",
                     ["model.whitened=false"]),
    "no-identity-init": ("convs start from PyTorch's initialisation", ["model.identity=false"]),
    "learned-bn-scales": ("BN scales learn", ["model.frozen_scales=false"]),
    "bias-lr-x1": ("biases at the weights' learning rate", ["train.bias_lr_scale=1"]),
    "no-lookahead": ("no lookahead", ["train.lookahead=0"]),
    "random-flips": ("a coin per face instead of alternate-epoch flips",
                     ["augment.alternate_flip=false"]),
    "label-smoothing-0.1": ("label smoothing 0.1 instead of 0.2",
                            ["train.label_smoothing=0.1"]),
}


def seed_rows(out: Path, row: str, seed: int, data: str, redo: bool) -> list[dict]:
    """The per-epoch table of one seed of one row: read where it exists, else trained."""
    run = out / row / f"seed{seed}"
    if row == "recipe" and not (run / "config.json").exists():
        run = Path("runs/bench-train") / f"seed{seed}"  # make bench-train's seeds
    if not redo and (run / "bench-train.json").exists():
        return json.loads((run / "bench-train.json").read_text())
    if not redo and finished(run):  # trained before tables were kept
        return seed_table(run)
    print(f"\n{row}, seed {seed}: ferlab train --recipe speedrun --seed {seed}"
          + "".join(f" [{s}]" for s in ABLATIONS[row][1]), flush=True)
    return run_seed(data, "speedrun", seed, out / row / f"seed{seed}", {}, ABLATIONS[row][1])


def finished(run: Path) -> bool:
    """Whether ``run`` trained all its epochs (its metrics are written at the end)."""
    try:
        metrics = json.loads((run / "metrics.json").read_text())
        return metrics["epochs_run"] == RunConfig.load(run / "config.json").train.epochs
    except (OSError, KeyError, ValueError):
        return False


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default="../shared/data/fer2013.csv.gz")
    ap.add_argument("--rows", nargs="+", choices=list(ABLATIONS), default=list(ABLATIONS))
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--out", default="runs/ablation", help="folder of the rows' runs")
    ap.add_argument("--redo", action="store_true", help="retrain seeds already measured")
    args = ap.parse_args()
    if not Path(args.data).exists():
        print(f"{args.data} not found; the ablation needs the FER2013 file", file=sys.stderr)
        return 2
    print(machine_header())
    out = Path(args.out)
    rows = ["recipe"] + [r for r in args.rows if r != "recipe"]
    final = {r: [seed_rows(out, r, s, args.data, args.redo)[-1] for s in args.seeds]
             for r in rows}
    base = statistics.mean(t["val_acc"] for t in final["recipe"])
    lines = ["| step turned off | `--set` | PublicTest, mean of seeds "
             f"{' '.join(map(str, args.seeds))} | against the recipe | minutes (mean) |",
             "|---|---|---|---|---|"]
    for r in rows:
        acc = [t["val_acc"] for t in final[r]]
        minutes = statistics.mean(t["minutes"] for t in final[r])
        settings = " ".join(f"`{s}`" for s in ABLATIONS[r][1]) or "-"
        lines.append(f"| {ABLATIONS[r][0]} | {settings} | {spread(acc)} | "
                     f"{100 * (statistics.mean(acc) - base):+.2f} points | {minutes:.1f} |")
    table = "\n".join(lines)
    out.mkdir(parents=True, exist_ok=True)
    (out / "ablation.md").write_text(table + "\n")
    print("\n" + table + f"\n\ntable: {out / 'ablation.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
