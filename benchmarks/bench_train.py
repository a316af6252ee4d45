"""`make bench-train`: the FER2013 speedrun. PublicTest accuracy against training minutes and
training compute, for several seeds of `ferlab train --recipe speedrun`.

Each seed trains the recipe from scratch on the Training rows (the same code path as
`ferlab train`) and validates on PublicTest after every epoch, with the recipe's own test-time
augmentation. Minutes are wall-clock from the start of `train()` (data loading, the whitening
filters and every validation included). Compute is the issue's measure: 3 x forward FLOPs x
faces seen (`ferlab models` gives the forward FLOPs). Prints the machine, one table per seed,
the mean and spread over seeds, and draws `bench-train.png` (accuracy against minutes and
against PFLOP). The run folders are kept (`ferlab evaluate` / `ferlab report` work on them).

`--set SECTION.FIELD=VALUE` changes one value of the recipe, for the ablation rows of
`benchmarks/RESULTS.md`: `--set train.lookahead=0`, `--set augment.alternate_flip=false`,
`--set model.whitened=false` (a keyword of the net), `--set train.label_smoothing=0.1`.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import sys
import time
from pathlib import Path

from ferlab.config import RunConfig
from ferlab.machine import machine_header
from ferlab.models import create_model, forward_mflops
from ferlab.recipes import recipe_config
from ferlab.runs import read_history
from ferlab.training.loop import train


def with_settings(cfg: RunConfig, settings: list[str]) -> RunConfig:
    """``cfg`` with each ``SECTION.FIELD=VALUE`` of ``settings`` applied (VALUE as JSON)."""
    for item in settings:
        key, _, raw = item.partition("=")
        section, _, name = key.partition(".")
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = raw  # a bare string, e.g. train.schedule=cosine
        if section == "model":
            cfg = dataclasses.replace(cfg, model=dataclasses.replace(
                cfg.model, kwargs={**cfg.model.kwargs, name: value}))
        elif section in ("train", "augment", "data"):
            part = dataclasses.replace(getattr(cfg, section), **{name: value})
            cfg = dataclasses.replace(cfg, **{section: part})
        else:
            raise SystemExit(f"--set {item}: the section must be model, train, augment or data")
    return cfg.validate()


def run_seed(data: str, recipe: str, seed: int, out: Path, overrides: dict,
             settings: list[str]) -> list[dict]:
    """Train one seed; returns per-epoch rows: epoch, minutes, pflop, val_acc."""
    cfg = with_settings(recipe_config(recipe, data, seed=seed, **overrides), settings)
    t0 = time.perf_counter()
    train(cfg, out, force=True, progress=False, log=lambda s: print(f"  [seed {seed}] {s}"))
    rows = seed_table(out, time.perf_counter() - t0)
    (out / "bench-train.json").write_text(json.dumps(rows, indent=1))  # the table, kept
    return rows


def seed_table(out: Path, total_seconds: float | None = None) -> list[dict]:
    """The per-epoch rows of the finished run ``out``. Minutes count from the start of
    ``train()`` when ``total_seconds`` (its wall clock) is given, else from the first epoch
    (without the few seconds of start-up)."""
    cfg = RunConfig.load(out / "config.json")
    model = create_model(cfg.model.name, **cfg.model.kwargs)
    side = cfg.augment.crop_size or 48  # the size of the training faces
    flop_per_face = 3 * forward_mflops(model, side) * 1e6  # forward + backward (x2)
    hist = read_history(out)
    faces = json.loads((out / "config.json").read_text())["train_faces"]
    # history's seconds cover each epoch's training and validation; the rest is start-up.
    elapsed = 0.0 if total_seconds is None else total_seconds - sum(h["seconds"] for h in hist)
    rows = []
    for h in hist:
        elapsed += h["seconds"]
        pflop = flop_per_face * faces * cfg.train.epoch_multiplier * h["epoch"] / 1e15
        rows.append({"epoch": h["epoch"], "minutes": elapsed / 60, "pflop": pflop,
                     "val_acc": h["val_acc"]})
    return rows


def first_reaching(rows: list[dict], target: float) -> dict | None:
    return next((r for r in rows if r["val_acc"] >= target), None)


def spread(values: list[float], fmt: str = ".2%") -> str:
    """Mean, standard deviation, min and max of ``values``, each formatted with ``fmt``."""
    mean = statistics.mean(values)
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return (f"{mean:{fmt}} (sd {sd:{fmt}}, min {min(values):{fmt}}, "
            f"max {max(values):{fmt}})")


def draw(runs: dict[int, list[dict]], target: float, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    for seed, rows in runs.items():
        acc = [100 * r["val_acc"] for r in rows]
        axes[0].plot([r["minutes"] for r in rows], acc, marker=".", label=f"seed {seed}")
        axes[1].plot([r["pflop"] for r in rows], acc, marker=".", label=f"seed {seed}")
    for ax, xlabel in zip(axes, ("training minutes (wall clock)", "training PFLOP"), strict=True):
        ax.axhline(100 * target, color="grey", linestyle="--", linewidth=1)
        ax.set_xlabel(xlabel)
        ax.grid(alpha=0.3)
    axes[1].axvline(0.3, color="grey", linestyle=":", linewidth=1)
    axes[0].set_ylabel("PublicTest accuracy, %")
    axes[0].set_ylim(bottom=40)
    axes[1].legend()
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="../shared/data/fer2013.csv.gz")
    ap.add_argument("--recipe", default="speedrun")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--target", type=float, default=0.68, help="PublicTest accuracy to reach")
    ap.add_argument("--epochs", type=int, default=0, help="override the recipe's epochs")
    ap.add_argument("--out", default="runs/bench-train", help="folder of the seeds' runs")
    ap.add_argument("--set", action="append", default=[], metavar="SECTION.FIELD=VALUE",
                    help="change one value of the recipe (repeatable)")
    args = ap.parse_args()
    if not Path(args.data).exists():
        print(f"{args.data} not found; bench-train needs the FER2013 file", file=sys.stderr)
        return 2
    header = machine_header()
    print(header)
    overrides = {"epochs": args.epochs} if args.epochs else {}
    out = Path(args.out)
    runs = {}
    for seed in args.seeds:
        print(f"\nseed {seed}: ferlab train --recipe {args.recipe} --seed {seed}"
              + (f" --epochs {args.epochs}" if args.epochs else "")
              + "".join(f" [{s}]" for s in args.set))
        runs[seed] = run_seed(args.data, args.recipe, seed, out / f"seed{seed}", overrides,
                              args.set)
        print(f"{'epoch':>5} {'minutes':>8} {'PFLOP':>7} {'PublicTest':>10}")
        for r in runs[seed]:
            print(f"{r['epoch']:5d} {r['minutes']:8.2f} {r['pflop']:7.3f} {r['val_acc']:10.2%}")

    print(f"\n{args.recipe}, {len(runs)} seeds, PublicTest with the recipe's TTA")
    print(f"  final accuracy: {spread([rows[-1]['val_acc'] for rows in runs.values()])}")
    best = [max(r["val_acc"] for r in rows) for rows in runs.values()]
    print(f"  best epoch's accuracy: {spread(best)}")
    print(f"  minutes in all: {spread([rows[-1]['minutes'] for rows in runs.values()], '.1f')}")
    print(f"  PFLOP in all: {runs[next(iter(runs))][-1]['pflop']:.3f}")
    reached = {s: first_reaching(rows, args.target) for s, rows in runs.items()}
    for s, r in reached.items():
        print(f"  seed {s}: " + (f"{args.target:.0%} at epoch {r['epoch']}, {r['minutes']:.1f} "
                                 f"min, {r['pflop']:.3f} PFLOP" if r
                                 else f"did not reach {args.target:.0%}"))
    png = out / "bench-train.png"
    draw(runs, args.target, png, header.splitlines()[0] + f" | {args.recipe}")
    print(f"curve: {png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
