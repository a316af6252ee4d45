"""The arithmetic behind the report's observations, and how its numbers are written.

Each function turns a run's numbers (its history, a confusion matrix) into the facts a sentence
of :mod:`ferlab.report.text` states; nothing here knows about a particular result.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from ..constants import NUM_CLASSES
from .text import emotion, tr


def percent(x: float | None) -> str:
    """``0.613`` -> ``61.3%``; a dash for a missing number."""
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.1%}"


def duration(seconds: float) -> str:
    """Seconds as a person reads them: ``12.5 s``, ``3.2 min``, ``4.1 h`` (a dash for NaN)."""
    if math.isnan(seconds):
        return "–"
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def seconds_per_epoch(history: Sequence[dict]) -> float:
    """Mean seconds of an epoch (NaN before the first)."""
    return float(np.mean([r["seconds"] for r in history])) if history else float("nan")


def final_gap(history: Sequence[dict]) -> float:
    """Train minus validation accuracy of the last epoch, in points."""
    return (history[-1]["train_acc"] - history[-1]["val_acc"]) * 100


def overfitting_episode(history: Sequence[dict]) -> dict | None:
    """Where validation loss rose past its minimum while validation accuracy still rose.

    Returns ``e0`` (epoch of the lowest validation loss) and ``e1`` (the later epoch of best
    validation accuracy, at least half a point above that at ``e0``, with a loss at least 2%
    higher), with loss, accuracy and wrong-prediction confidence at both; ``None`` when that
    never happened.

    Example:
        >>> h = [dict(epoch=1, val_loss=1.0, val_acc=.5, wrong_confidence=.5),
        ...      dict(epoch=2, val_loss=1.2, val_acc=.6, wrong_confidence=.7)]
        >>> overfitting_episode(h)["e1"]
        2
    """
    if len(history) < 2:
        return None
    i0 = int(np.argmin([r["val_loss"] for r in history]))
    # Only a rise worth a sentence: loss up by 2% or more while accuracy gains half a point.
    later = [j for j in range(i0 + 1, len(history))
             if history[j]["val_acc"] >= history[i0]["val_acc"] + 0.005
             and history[j]["val_loss"] >= history[i0]["val_loss"] * 1.02]
    if not later:
        return None
    i1 = max(later, key=lambda j: (history[j]["val_acc"], -j))
    a, b = history[i0], history[i1]
    return {"e0": a["epoch"], "e1": b["epoch"], "l0": a["val_loss"], "l1": b["val_loss"],
            "a0": a["val_acc"], "a1": b["val_acc"],
            "c0": a.get("wrong_confidence", float("nan")),
            "c1": b.get("wrong_confidence", float("nan"))}


def top_confusions(confusion: np.ndarray, k: int = 3) -> list[tuple[int, int, float]]:
    """The ``k`` largest off-diagonal row-normalised rates: ``(true, predicted, rate)``.

    Example:
        >>> cm = np.eye(7, dtype=int) * 8
        >>> cm[2, 4] = 2
        >>> top_confusions(cm, 1)
        [(2, 4, 0.2)]
    """
    cm = np.asarray(confusion, dtype=np.float64)
    rows = cm.sum(1, keepdims=True)
    rate = np.divide(cm, rows, out=np.zeros_like(cm), where=rows > 0)
    np.fill_diagonal(rate, -1)
    flat = np.argsort(-rate, axis=None, kind="stable")[:k]
    return [(int(i // NUM_CLASSES), int(i % NUM_CLASSES), float(rate.flat[i])) for i in flat
            if rate.flat[i] > 0]


def confusion_sentences(lang: str, confusion: np.ndarray, k: int = 3) -> list[str]:
    """"fear is most often taken for sad: 22%", grouped by true class, biggest first."""
    groups: dict[int, list[tuple[int, float]]] = {}
    for true, pred, rate in top_confusions(np.asarray(confusion), k):
        groups.setdefault(true, []).append((pred, rate))
    out = []
    for true, preds in groups.items():
        (pred, rate), rest = preds[0], preds[1:]
        if rest:
            more = ", ".join(f"{emotion(lang, p)} ({r:.0%})" for p, r in rest)
            out.append(tr(lang, "obs_confused_more", true=emotion(lang, true),
                          pred=emotion(lang, pred), rate=rate, more=more))
        else:
            out.append(tr(lang, "obs_confused", true=emotion(lang, true),
                          pred=emotion(lang, pred), rate=rate))
    return out
