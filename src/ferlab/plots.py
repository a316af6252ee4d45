"""Matplotlib figures: face grids, heatmap overlays, confusion matrices, curves.

Figures are drawn with the Agg backend (no display needed) and saved atomically.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from .constants import EMOTIONS, NUM_CLASSES  # noqa: E402
from .errors import DataError  # noqa: E402
from .io_utils import atomic_write  # noqa: E402
from .runs import best_row, read_history  # noqa: E402

# Fonts with Chinese glyphs, most common first (Linux: Noto CJK, Source Han, WenQuanYi;
# macOS: PingFang, Hiragino; Windows: Microsoft YaHei, SimHei). The report's --lang zh figures
# use the first one installed; matplotlib's default DejaVu Sans has none of these glyphs.
CJK_FONTS = ("Noto Sans CJK SC", "Noto Sans SC", "Source Han Sans SC", "Source Han Sans CN",
             "WenQuanYi Micro Hei", "WenQuanYi Zen Hei", "PingFang SC", "Hiragino Sans GB",
             "Microsoft YaHei", "SimHei", "Droid Sans Fallback")


@functools.cache
def cjk_font() -> str | None:
    """The first of :data:`CJK_FONTS` that matplotlib finds on this machine, or ``None``."""
    from matplotlib import font_manager

    installed = {f.name for f in font_manager.fontManager.ttflist}
    return next((name for name in CJK_FONTS if name in installed), None)


def figure_language(lang: str) -> str:
    """The language figures can be written in: ``lang``, or ``en`` for ``zh`` on a machine
    without a CJK font (its glyphs would be drawn as empty boxes)."""
    return lang if lang != "zh" or cjk_font() else "en"


@contextmanager
def figure_fonts(lang: str) -> Iterator[None]:
    """Figures drawn inside use a font stack for ``lang``: for ``zh``, DejaVu Sans for Latin
    letters and digits (as in English figures), then the CJK font for the rest."""
    font = cjk_font() if lang == "zh" else None
    if font is None:
        yield
        return
    # A list of families, not "sans-serif": matplotlib falls back glyph by glyph only along
    # font.family itself.
    with matplotlib.rc_context({"font.family": ["DejaVu Sans", font]}):
        yield


def save_figure(fig, path: str | Path, dpi: int = 110) -> Path:
    """Save ``fig`` atomically (format from the suffix) and close it."""
    path = Path(path)
    fmt = path.suffix.lstrip(".") or "png"
    atomic_write(path, lambda p: fig.savefig(p, dpi=dpi, bbox_inches="tight", format=fmt))
    plt.close(fig)
    return path


def sample_grid(faces, path: str | Path, per_class: int = 8, seed: int = 0) -> Path:
    """A grid of random faces, one row per class, labelled with the class name and count."""
    rng = np.random.default_rng(seed)
    fig, axes = plt.subplots(NUM_CLASSES, per_class, figsize=(per_class * 1.1, NUM_CLASSES * 1.2))
    for c in range(NUM_CLASSES):
        idx = np.flatnonzero(faces.labels == c)
        pick = rng.choice(idx, size=min(per_class, len(idx)), replace=False) if len(idx) else []
        for j in range(per_class):
            ax = axes[c, j]
            ax.axis("off")
            if j < len(pick):
                ax.imshow(faces.images[pick[j]], cmap="gray", vmin=0, vmax=255)
        axes[c, 0].set_title(f"{EMOTIONS[c]} ({len(idx):,})", fontsize=8, loc="left")
    fig.suptitle(f"sample faces per class: {Path(faces.source).name}", fontsize=10)
    return save_figure(fig, path)


# --------------------------------------------------------------------------------------------
# Evaluation figures (ferlab evaluate, ferlab curves)


def confusion_matrix(cm, path: str | Path, normalize: bool = False, title: str = "") -> Path:
    """A 7x7 confusion matrix (rows = true class, columns = predicted) as a heatmap.

    Args:
        cm: counts ``[7, 7]``.
        normalize: divide each row by its total, so the diagonal shows each class's recall.

    Example:
        >>> confusion_matrix(metrics["confusion"], "confusion.png")  # doctest: +SKIP
    """
    cm = np.asarray(cm, dtype=np.float64)
    totals = cm.sum(1, keepdims=True)
    shown = np.divide(cm, totals, out=np.zeros_like(cm), where=totals > 0) if normalize else cm
    fig, ax = plt.subplots(figsize=(6.4, 5.6))
    im = ax.imshow(shown, cmap="Blues", vmin=0, vmax=1 if normalize else max(shown.max(), 1))
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04,
                 label="fraction of the true class" if normalize else "faces")
    ticks = range(NUM_CLASSES)
    ax.set_xticks(ticks, [f"{i} {e}" for i, e in enumerate(EMOTIONS)], rotation=45, ha="right")
    ax.set_yticks(ticks, [f"{i} {e} ({int(t):,})" for i, (e, t) in
                          enumerate(zip(EMOTIONS, totals[:, 0], strict=True))])
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class (faces)")
    threshold = (1 if normalize else shown.max()) / 2
    for i in range(NUM_CLASSES):
        for j in range(NUM_CLASSES):
            v = shown[i, j]
            text = f"{v:.2f}" if normalize else f"{int(v):,}"
            ax.text(j, i, text, ha="center", va="center", fontsize=8,
                    color="white" if v > threshold else "black")
    ax.set_title(title or ("confusion matrix, row-normalised" if normalize
                           else "confusion matrix"), fontsize=10)
    return save_figure(fig, path)


def reliability_diagram(bins: dict, path: str | Path, title: str = "") -> Path:
    """Accuracy against confidence per bin (from ``evaluate.reliability_bins``), with the
    number of faces per bin below. Bars under the diagonal mean over-confidence."""
    edges = np.asarray(bins["edges"])
    count = np.asarray(bins["count"])
    acc = np.nan_to_num(np.asarray(bins["accuracy"], dtype=np.float64))
    conf = np.asarray(bins["confidence"], dtype=np.float64)
    width = np.diff(edges)
    fig, (ax, axc) = plt.subplots(2, 1, figsize=(5.2, 6.2), sharex=True,
                                  gridspec_kw={"height_ratios": [3, 1]})
    full = count > 0
    ax.bar(edges[:-1][full], acc[full], width=width[full], align="edge", color="tab:blue",
           edgecolor="white", label="accuracy")
    gap_lo = np.minimum(acc, conf)[full]
    ax.bar(edges[:-1][full], np.abs(conf - acc)[full], bottom=gap_lo, width=width[full],
           align="edge", color="tab:red", alpha=0.3, edgecolor="tab:red", hatch="//",
           label="gap to mean confidence")
    ax.plot([0, 1], [0, 1], "k--", lw=1, label="perfect calibration")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_ylabel("accuracy")
    ax.legend(loc="upper left", fontsize=8)
    ax.set_title(title or "reliability diagram", fontsize=10)
    axc.bar(edges[:-1], count, width=width, align="edge", color="grey", edgecolor="white")
    axc.set_xlabel("confidence (probability of the predicted class)")
    axc.set_ylabel("faces")
    return save_figure(fig, path)


def mistakes_gallery(images, labels, probs, mistakes: dict, path: str | Path,
                     title: str = "") -> Path:
    """One row per true class: its most confidently wrong faces, each titled with the
    predicted class and its probability.

    Args:
        images: ``uint8 [N, 48, 48]``; labels ``[N]``; probs ``[N, 7]``.
        mistakes: true class -> positions, most confident first (``evaluate.confident_mistakes``).
    """
    per_class = max([len(v) for v in mistakes.values()] + [1])
    fig, axes = plt.subplots(NUM_CLASSES, per_class,
                             figsize=(1.25 * per_class + 1.1, 1.45 * NUM_CLASSES), squeeze=False)
    for c in range(NUM_CLASSES):
        idx = list(mistakes.get(c, []))
        for j in range(per_class):
            ax = axes[c, j]
            ax.set_xticks([])
            ax.set_yticks([])
            for s in ax.spines.values():
                s.set_visible(False)
            if j < len(idx):
                k = idx[j]
                p = int(np.argmax(probs[k]))
                ax.imshow(images[k], cmap="gray", vmin=0, vmax=255)
                ax.set_title(f"{EMOTIONS[p]} {probs[k][p]:.2f}", fontsize=7, color="tab:red",
                             pad=2)
        axes[c, 0].set_ylabel(f"true\n{EMOTIONS[c]}", fontsize=8, rotation=0, ha="right",
                              va="center", labelpad=4)
        if not idx:
            axes[c, 0].text(0.5, 0.5, "no mistakes", ha="center", va="center", fontsize=7,
                            transform=axes[c, 0].transAxes)
    fig.suptitle((title or "most confident mistakes") + "\n(above each face: predicted class "
                 "and its probability)", fontsize=9)
    fig.tight_layout()
    return save_figure(fig, path)


# Line styles of every training-curve figure (``ferlab curves``, the report): one place, so
# that they cannot disagree.
TRAIN_STYLE = "-"
VAL_STYLE = "--"

CURVE_TEXT = {  # the English words of a curves figure; the report passes its language's
    "epoch": "epoch", "loss": "loss (cross-entropy)", "accuracy": "accuracy", "train": "train",
    "val": "validation", "loss_title": "loss: solid = train, dashed = validation",
    "acc_title": "accuracy (dot = best validation epoch)",
}


def curves_figure(histories, names, text: dict[str, str] | None = None):
    """Train (solid) and validation (dashed) loss and accuracy per epoch, one colour per run.

    The figure every curve plot of ferlab is: ``ferlab curves`` saves it, the report inlines
    it. Epoch ticks are whole numbers and the y axes span at least 0.2 of loss and 10 points of
    accuracy, so a 1-epoch run reads as one point, not as a zoomed-in 0.96-1.04 axis.

    Args:
        histories: per run, the rows of its ``history.csv`` (``train.read_history``).
        names: legend name per run.
        text: words of the figure (keys of :data:`CURVE_TEXT`), e.g. in the report's language.

    Returns:
        The matplotlib figure (save it with :func:`save_figure`).
    """
    w = {**CURVE_TEXT, **(text or {})}
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(11, 4.2))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    last_epoch, losses, accs = 1, [], []
    for i, (h, name) in enumerate(zip(histories, names, strict=True)):
        col = colors[i % len(colors)]
        ep = [r["epoch"] for r in h]
        style = {"color": col, "marker": "." if len(h) <= 30 else None}  # a 1-epoch run shows
        for ax, key, values in ((ax_loss, "loss", losses), (ax_acc, "acc", accs)):
            train, val = [r[f"train_{key}"] for r in h], [r[f"val_{key}"] for r in h]
            ax.plot(ep, train, TRAIN_STYLE, label=f"{name} {w['train']}", **style)
            ax.plot(ep, val, VAL_STYLE, label=f"{name} {w['val']}", **style)
            values += train + val
        best = best_row(h)
        ax_acc.plot([best["epoch"]], [best["val_acc"]], "o", color=col, ms=5)
        last_epoch = max([last_epoch, *ep])
    for ax, what, values, span, top in ((ax_loss, w["loss"], losses, 0.2, math.inf),
                                         (ax_acc, w["accuracy"], accs, 0.1, 1.0)):
        ax.set_xlabel(w["epoch"])
        ax.set_ylabel(what)
        ax.grid(alpha=0.3)
        ax.spines[["top", "right"]].set_visible(False)
        ax.set_xlim(0.5 if last_epoch <= 10 else 0, last_epoch + (0.5 if last_epoch <= 10 else 1))
        if last_epoch <= 10:
            ax.set_xticks(range(1, last_epoch + 1))
        else:
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylim(*_value_range(values, span, 0.0, top))
    ax_acc.legend(fontsize=8, loc="best", frameon=False)
    ax_loss.set_title(w["loss_title"], fontsize=10)
    ax_acc.set_title(w["acc_title"], fontsize=10)
    fig.tight_layout()
    return fig


def _value_range(values, min_span: float, low: float, high: float) -> tuple[float, float]:
    """Axis limits around ``values``: at least ``min_span`` wide, within ``[low, high]``, with a
    5% margin."""
    v = [x for x in values if math.isfinite(x)] or [low]
    lo, hi = min(v), max(v)
    if hi - lo < min_span:
        mid = (lo + hi) / 2
        lo, hi = mid - min_span / 2, mid + min_span / 2
        if lo < low:
            lo, hi = low, low + min_span
        if hi > high:
            lo, hi = high - min_span, high
    pad = (hi - lo) * 0.05
    return max(low, lo - pad), min(high, hi + pad)


def curves(runs, path: str | Path, labels=None) -> Path:
    """Train (solid) and validation (dashed) loss and accuracy per epoch, runs overlaid
    (:func:`curves_figure`), saved to ``path``.

    Args:
        runs: run folders (their ``history.csv`` is read), or history lists as returned by
            :func:`ferlab.runs.read_history`.
        labels: legend name per run (default: the folder names).

    Example:
        >>> curves(["runs/cnn", "runs/dnn"], "curves.png")  # doctest: +SKIP
    """
    hists, names = [], []
    for i, r in enumerate(runs):
        if isinstance(r, (str, Path)):
            h = read_history(r)
            if not h:
                raise DataError(f"{r}: no history.csv with a finished epoch (is it a run folder?)")
            names.append(Path(r).name or str(r))
        else:
            h = list(r)
            names.append(f"run {i + 1}")
        hists.append(h)
    if labels is not None:
        names = list(labels)
    return save_figure(curves_figure(hists, names), path)
