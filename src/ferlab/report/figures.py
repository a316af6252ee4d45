"""The report's own figures (the shared ones come from :mod:`ferlab.plots`,
:mod:`ferlab.evaluate` and :mod:`ferlab.explain.figures`).

Each function returns a matplotlib figure with its words in ``lang``; the page inlines it with
:func:`ferlab.report.page.figure`, which closes it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib.ticker import MaxNLocator

from ..constants import NUM_CLASSES
from ..plots import curves_figure, plt
from .text import emotion, split_name, tr

# A run's name and its history rows, as the figures take them.
NamedHistory = tuple[str, Sequence[dict]]


def _colors(n: int) -> list:
    cmap = plt.get_cmap("tab10")
    return [cmap(i % 10) for i in range(n)]


def _tidy(ax) -> None:
    ax.grid(alpha=0.3)
    ax.spines[["top", "right"]].set_visible(False)


def training_curves(runs: Sequence[NamedHistory], lang: str = "en"):
    """Loss and accuracy per epoch of every run: :func:`ferlab.plots.curves_figure` (the one
    curve figure of ferlab, same line styles everywhere) with its words in ``lang``."""
    words = {k: tr(lang, f"fig_{k}") for k in ("epoch", "loss", "accuracy", "train", "val",
                                               "loss_title", "acc_title")}
    return curves_figure([h for _, h in runs], [n for n, _ in runs], words)


def class_count_figure(counts: dict[str, list[int]], lang: str = "en"):
    """Grouped bars: faces per class for each split."""
    fig, ax = plt.subplots(figsize=(7.5, 3.2))
    names = list(counts)
    width = 0.8 / max(1, len(names))
    x = np.arange(NUM_CLASSES)
    for i, (name, color) in enumerate(zip(names, _colors(len(names)), strict=True)):
        bars = ax.bar(x + (i - (len(names) - 1) / 2) * width, counts[name], width,
                      label=split_name(lang, name), color=color)
        ax.bar_label(bars, fmt="{:,.0f}", fontsize=6, padding=1)
    ax.set_xticks(x, [emotion(lang, c) for c in range(NUM_CLASSES)])
    ax.set_ylabel(tr(lang, "faces"))
    ax.spines[["top", "right"]].set_visible(False)
    ax.legend(frameon=False, fontsize=8)
    ax.set_title(tr(lang, "fig_faces_per_class"), fontsize=10)
    return fig


def overfitting_figure(run: NamedHistory, e0: int | None = None, e1: int | None = None,
                       lang: str = "en"):
    """Validation loss, validation accuracy and wrong-prediction confidence per epoch, with
    epochs ``e0``..``e1`` shaded."""
    name, history = run
    epochs = [r["epoch"] for r in history]
    series = [("val_loss", tr(lang, "fig_val_loss")), ("val_acc", tr(lang, "fig_val_acc")),
              ("wrong_confidence", tr(lang, "fig_wrong_conf"))]
    fig, axes = plt.subplots(1, 3, figsize=(10, 2.8))
    for ax, (key, label), color in zip(axes, series, _colors(3), strict=True):
        ax.plot(epochs, [r.get(key, float("nan")) for r in history], "-o", ms=2.5, color=color)
        if e0 is not None and e1 is not None:
            ax.axvspan(e0, e1, color="0.85", zorder=0)
        ax.set_title(label, fontsize=9)
        ax.set_xlabel(tr(lang, "fig_epoch"))
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        _tidy(ax)
    fig.suptitle(name, fontsize=10)
    fig.tight_layout()
    return fig


def recall_figure(names: Sequence[str], recalls: Sequence[Sequence[float]], lang: str = "en"):
    """Grouped bars of per-class recall, one colour per model."""
    fig, ax = plt.subplots(figsize=(7.5, 3.0))
    width = 0.8 / max(1, len(names))
    x = np.arange(NUM_CLASSES)
    for i, (name, rec, color) in enumerate(zip(names, recalls, _colors(len(names)),
                                               strict=True)):
        ax.bar(x + (i - (len(names) - 1) / 2) * width, rec, width, label=name, color=color)
    ax.set_xticks(x, [emotion(lang, c) for c in range(NUM_CLASSES)])
    ax.set_ylim(0, 1)
    ax.set_ylabel(tr(lang, "recall"))
    ax.grid(axis="y", alpha=0.3)
    ax.spines[["top", "right"]].set_visible(False)
    ax.legend(frameon=False, fontsize=8)
    return fig


def members_figure(by_members: Sequence[dict], lang: str = "en"):
    """Ensemble accuracy against its number of members, by mean probability and by vote, and
    each member alone (rows of :func:`ferlab.ensemble.accuracy_by_members`)."""
    ks = [r["members"] for r in by_members]
    fig, ax = plt.subplots(figsize=(6, 3.2))
    ax.plot(ks, [r["mean_acc"] for r in by_members], "-o", label=tr(lang, "mean_prob"))
    ax.plot(ks, [r["vote_acc"] for r in by_members], "-s", label=tr(lang, "vote"))
    ax.plot(ks, [r["member_acc"] for r in by_members], "x", color="0.4",
            label=tr(lang, "fig_each_alone"))
    ax.set_xlabel(tr(lang, "fig_members"))
    ax.set_ylabel(tr(lang, "fig_accuracy"))
    ax.set_xticks(ks)
    _tidy(ax)
    ax.legend(frameon=False, fontsize=8)
    return fig


def augmentation_figure(pairs: Sequence[tuple[NamedHistory, NamedHistory]], lang: str = "en"):
    """Validation accuracy per epoch of each (with augmentation, without) pair of runs."""
    fig, ax = plt.subplots(figsize=(6.5, 3.2))
    for (with_aug, without), color in zip(pairs, _colors(len(pairs)), strict=True):
        for (name, history), style, what in ((with_aug, "-", tr(lang, "fig_with")),
                                             (without, "--", tr(lang, "fig_without"))):
            ax.plot([r["epoch"] for r in history], [r["val_acc"] for r in history], style,
                    color=color, label=f"{name} ({what})")
    ax.set_xlabel(tr(lang, "fig_epoch"))
    ax.set_ylabel(tr(lang, "fig_val_acc"))
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    _tidy(ax)
    ax.legend(frameon=False, fontsize=8)
    return fig
