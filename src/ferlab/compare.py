"""Several run folders side by side: size, speed, best validation accuracy, overfitting gap.

This is seed report 000's CNN-against-a-DNN-of-the-same-size table as one function. It reads
only what ``train`` wrote (``config.json``, ``history.csv``, ``metrics.json`` when the run has
finished), so it also works on a run that is still training.

Example:
    >>> print(format_comparison(compare_runs(["runs/cnn", "runs/dnn"])))  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from .errors import DataError
from .runs import RunFolder, best_row


def run_summary(run_dir: str | Path) -> dict:
    """One run's row: ``run``, ``model``, ``params``, ``epochs``, ``seconds_per_epoch``,
    ``best_val_acc``, ``best_epoch``, ``final_train_acc``, ``final_val_acc`` and ``gap``
    (final train accuracy minus final validation accuracy: how much the model overfits).

    Raises:
        DataError: the folder has no ``history.csv`` (not a run, or no finished epoch).
    """
    run = RunFolder(run_dir)
    hist = run.history()
    if not hist:
        raise DataError(f"{run.path}: no history.csv with a finished epoch (is it a run folder?)")
    info = run.info()
    best, last = best_row(hist), hist[-1]
    return {
        "run": run.name,
        "model": info.get("config", {}).get("model", {}).get("name", "?"),
        "params": info.get("params"),
        "epochs": last["epoch"],
        "seconds_per_epoch": sum(h["seconds"] for h in hist) / len(hist),
        "best_val_acc": best["val_acc"],
        "best_epoch": best["epoch"],
        "final_train_acc": last["train_acc"],
        "final_val_acc": last["val_acc"],
        "gap": last["train_acc"] - last["val_acc"],
        "finished": run.is_finished,
    }


def compare_runs(runs: Sequence[str | Path]) -> list[dict]:
    """:func:`run_summary` of every run, in the order given."""
    return [run_summary(r) for r in runs]


def format_comparison(rows: list[dict]) -> str:
    """The comparison as a text table for the terminal."""
    w = max([len("run")] + [len(r["run"]) for r in rows])
    head = (f"{'run':<{w}}  {'model':<9}{'params':>11}{'epochs':>7}{'s/epoch':>9}"
            f"{'best val':>10}{'at':>4}{'final train':>13}{'final val':>11}{'gap':>8}")
    lines = [head]
    for r in rows:
        params = f"{r['params']:,}" if isinstance(r["params"], int) else "?"
        lines.append(
            f"{r['run']:<{w}}  {r['model']:<9}{params:>11}{r['epochs']:>7}"
            f"{r['seconds_per_epoch']:>9.1f}{r['best_val_acc']:>10.4f}{r['best_epoch']:>4}"
            f"{r['final_train_acc']:>13.4f}{r['final_val_acc']:>11.4f}{r['gap']:>+8.4f}"
            + ("" if r["finished"] else "  (still training?)"))
    return "\n".join(lines)
