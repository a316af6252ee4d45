"""Figures of explanations: face / heatmap / overlay grids, method comparisons, filters,
feature maps, the filter -> emotion table, deletion/insertion curves.

Kept here rather than in ``plots.py`` so the explain package is self-contained; figures are
saved with ``plots.save_figure`` (atomic, Agg backend).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from ..constants import EMOTIONS
from ..plots import plt, save_figure


def _scale(m: np.ndarray, signed: bool) -> tuple[np.ndarray, float]:
    """Map scaled for display and the value used as full scale (99.5th percentile, so one hot
    pixel does not wash the rest out)."""
    m = np.asarray(m, dtype=np.float64)
    top = float(np.percentile(np.abs(m) if signed else m, 99.5))
    return m, top if top > 0 else (float(np.abs(m).max()) or 1.0)


def overlay(face: np.ndarray, heat: np.ndarray, signed: bool = False) -> np.ndarray:
    """RGB ``[48, 48, 3]`` in [0, 1]: the grey face with the positive part of ``heat`` in 'jet'
    colours, opaque where the map is high and clear where it is low (alpha grows as h^1.5, so the
    low, noisy part of a gradient map does not wash the face blue)."""
    face = np.asarray(face, dtype=np.float64)
    face = face / 255.0 if face.max() > 1.0 else face
    m, top = _scale(heat, signed)
    h = np.clip(m / top, 0, 1)
    rgb = plt.get_cmap("jet")(h)[..., :3]
    alpha = 0.8 * h[..., None] ** 1.5
    return (1 - alpha) * np.repeat(face[..., None], 3, axis=2) + alpha * rgb


def _heat(ax, m: np.ndarray, signed: bool):
    """The heatmap scaled to -1..1 (signed) or 0..1 of its own full scale; returns the image."""
    m, top = _scale(m, signed)
    if signed:
        return ax.imshow(m / top, cmap="RdBu_r", vmin=-1, vmax=1)
    return ax.imshow(m / top, cmap="inferno", vmin=0, vmax=1)


# Why a map can be all zero, by method (shown in the panel instead of an empty square).
_BLANK_REASONS = {
    "gradcam": "no channel speaks\nfor this class here\n(all <= 0 before ReLU;\n"
               "fused: in some layer)",
    "hirescam": "no channel speaks\nfor this class here\n(all <= 0 before ReLU)",
    "guided-gradcam": "Grad-CAM part is 0\n(all <= 0 before ReLU)",
    "lime": "no superpixel\nsupports the class",
    "occlusion": "no patch lowers\nthe probability",
}


def is_blank(m: np.ndarray) -> bool:
    """Whether a map shows nothing: no positive value (what the overlay draws)."""
    return not bool((np.asarray(m) > 0).any())


def blank_reason(method: str) -> str:
    """One line (or a few short ones) saying why ``method``'s map can be all zero."""
    return "blank: " + _BLANK_REASONS.get(method, "the map is zero\neverywhere")


def _note(ax, text: str) -> None:
    ax.text(0.5, 0.5, text, transform=ax.transAxes, ha="center", va="center", fontsize=5,
            color="black", bbox={"boxstyle": "round", "fc": "white", "ec": "0.6", "alpha": 0.9})


def _colorbars(fig, axes, heat_image, signed: bool) -> None:
    """Colour bars saying what the heatmap and overlay colours mean."""
    cb = fig.colorbar(heat_image, ax=axes, shrink=0.45, pad=0.02, fraction=0.04)
    if signed:
        cb.set_ticks([-1, 0, 1], labels=["against", "0", "for class"])
    else:
        cb.set_ticks([0, 1], labels=["0", "top"])
    cb.set_label("heatmap: share of the map's top\n(99.5th percentile, per face)", fontsize=6)
    cb.ax.tick_params(labelsize=6)
    jet = plt.cm.ScalarMappable(cmap="jet", norm=plt.Normalize(0, 1))
    cb2 = fig.colorbar(jet, ax=axes, shrink=0.45, pad=0.02, fraction=0.04)
    cb2.set_ticks([0, 1], labels=["clear", "top"])
    cb2.set_label("overlay: positive part\n(opaque where high)", fontsize=6)
    cb2.ax.tick_params(labelsize=6)


def explanation_grid(sel, maps: np.ndarray, method: str, path: str | Path,
                     signed: bool = False, per_row: int = 7) -> Path:
    """For each face: the face, the heatmap, the overlay, titled with true and predicted labels.

    Faces are columns (``per_row`` per block); each block has the rows face / heatmap / overlay.
    Colour bars say what the colours mean; a map with nothing to show says why in its panel.

    Args:
        sel: a :class:`~ferlab.explain.select.Selection`.
        maps: ``[N, (1,) 48, 48]``.
        method: the method's name (titles, and the reason given for a blank map).
        signed: draw the heatmap red (for) / blue (against) around zero.
    """
    maps = np.asarray(maps).reshape(len(sel), *np.asarray(sel.images).shape[1:])
    n = len(sel)
    cols = min(per_row, max(n, 1))
    blocks = max(1, -(-n // cols))
    fig, axes = plt.subplots(3 * blocks, cols, figsize=(cols * 1.55 + 1.6, blocks * 3 * 1.6),
                             squeeze=False, layout="constrained")
    for ax in axes.flat:
        ax.axis("off")
    heat_image = None
    for i in range(n):
        b, c = divmod(i, cols)
        a0, a1, a2 = axes[3 * b, c], axes[3 * b + 1, c], axes[3 * b + 2, c]
        a0.imshow(sel.images[i], cmap="gray", vmin=0, vmax=255)
        a0.set_title(sel.title(i), fontsize=7)
        heat_image = _heat(a1, maps[i], signed)
        a2.imshow(overlay(sel.images[i], maps[i], signed))
        if is_blank(maps[i]):
            _note(a1, blank_reason(method))
    for b in range(blocks):
        for r, label in enumerate(("face", method, "overlay")):
            axes[3 * b + r, 0].text(-0.08, 0.5, label, transform=axes[3 * b + r, 0].transAxes,
                                    rotation=90, ha="right", va="center", fontsize=8)
    if heat_image is not None:
        _colorbars(fig, axes.ravel().tolist(), heat_image, signed)
    fig.suptitle(f"{method}: where the model looks for its predicted class", fontsize=10)
    return save_figure(fig, path)


def methods_grid(sel, maps: Mapping[str, np.ndarray], path: str | Path,
                 signed: Mapping[str, bool] | None = None) -> Path:
    """Rows: faces; columns: the face, then one overlay per method (to compare methods); the
    colour bar says what the overlay colours mean, a blank map says why."""
    signed = dict(signed or {})
    names = list(maps)
    n = len(sel)
    fig, axes = plt.subplots(n, len(names) + 1, figsize=((len(names) + 1) * 1.4, n * 1.55),
                             squeeze=False)
    for i in range(n):
        axes[i, 0].imshow(sel.images[i], cmap="gray", vmin=0, vmax=255)
        axes[i, 0].set_ylabel(sel.title(i), fontsize=6, rotation=0, ha="right", va="center")
        for j, name in enumerate(names):
            m = np.asarray(maps[name]).reshape(n, *sel.images.shape[1:])[i]
            axes[i, j + 1].imshow(overlay(sel.images[i], m, signed.get(name, False)))
            if is_blank(m):
                _note(axes[i, j + 1], blank_reason(name))
    for j, name in enumerate(["face", *names]):
        axes[0, j].set_title(name, fontsize=7)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    jet = plt.cm.ScalarMappable(cmap="jet", norm=plt.Normalize(0, 1))
    cb = fig.colorbar(jet, ax=axes.ravel().tolist(), shrink=min(0.8, 2.5 / max(n, 1)),
                      fraction=0.03, pad=0.02)
    cb.set_ticks([0, 1], labels=["clear", "top"])
    cb.set_label("positive part of each map, scaled to its top", fontsize=6)
    cb.ax.tick_params(labelsize=6)
    return save_figure(fig, path)


def filter_grid(res, path: str | Path, cols: int = 8) -> Path:
    """Gradient-ascent images of :func:`~ferlab.explain.filters.visualize_filters`, each titled
    with its filter index and the mean activation it reached."""
    k = len(res.filters)
    cols = min(cols, k)
    rows = -(-k // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 1.2, rows * 1.35), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for i, (f, img, act) in enumerate(zip(res.filters, res.images, res.activation, strict=True)):
        ax = axes.flat[i]
        # Each image stretched to its own range: the pattern matters, not its absolute grey.
        lo, hi = float(img.min()), float(img.max())
        ax.imshow(img, cmap="gray", vmin=lo, vmax=hi if hi > lo else lo + 1)
        ax.set_title(f"#{f}  act {act:.2g}", fontsize=7)
    fig.suptitle(f"filters of {res.layer} by gradient ascent (label: mean activation reached)",
                 fontsize=9)
    fig.tight_layout()
    return save_figure(fig, path)


def feature_map_grid(face: np.ndarray, fmap: np.ndarray, layer: str, path: str | Path,
                     title: str = "") -> Path:
    """Every filter's output ``fmap [C, h, w]`` of ``layer`` for one face, next to the face.

    The maps are tiled into one mosaic (each scaled to its own range) and drawn with one
    ``imshow``: a subplot per filter takes matplotlib seconds per figure at 128+ filters.
    """
    fmap = np.asarray(fmap, dtype=np.float64)
    c, h, w = fmap.shape
    cols = int(np.ceil(np.sqrt(c)))
    rows = -(-c // cols)
    gap = max(1, h // 12)
    mosaic = np.full((rows * (h + gap) - gap, cols * (w + gap) - gap), np.nan)
    for i in range(c):
        r, q = divmod(i, cols)
        m = fmap[i]
        lo, hi = m.min(), m.max()
        mosaic[r * (h + gap):r * (h + gap) + h, q * (w + gap):q * (w + gap) + w] = (
            (m - lo) / (hi - lo) if hi > lo else 0.0)
    side = min(12.0, 1.0 + 0.75 * cols)
    fig, (a0, a1) = plt.subplots(1, 2, figsize=(side + side / 4, side * rows / cols + 0.6),
                                 gridspec_kw={"width_ratios": [1, 4]})
    a0.imshow(face, cmap="gray", vmin=0, vmax=255)
    a0.set_title(title or "face", fontsize=8)
    cmap = plt.get_cmap("viridis").with_extremes(bad="white")
    a1.imshow(mosaic, cmap=cmap, vmin=0, vmax=1, interpolation="nearest")
    for i in range(c) if c <= 256 else ():
        r, q = divmod(i, cols)
        a1.text(q * (w + gap) + 0.5, r * (h + gap) + 0.5, str(i), color="white",
                fontsize=max(3.5, 7 - cols / 6), va="top", ha="left")
    a1.set_title(f"outputs of {layer}: {c} filters, each scaled to its own range", fontsize=9)
    for ax in (a0, a1):
        ax.axis("off")
    fig.tight_layout()
    return save_figure(fig, path)


def filter_emotion_figure(tables: Sequence, path: str | Path, max_filters: int = 64) -> Path:
    """Per layer, a filters x emotions heatmap of class means (z-scored per filter, so each row
    shows which emotion excites that filter); the top emotion of each filter is boxed."""
    fig, axes = plt.subplots(1, len(tables), figsize=(2.6 * len(tables) + 0.8,
                                                      min(max_filters, 64) * 0.17 + 1.6),
                             squeeze=False)
    im = None
    for ax, t in zip(axes[0], tables, strict=True):
        m = t.class_means[:max_filters]
        sd = m.std(1, keepdims=True)
        z = (m - m.mean(1, keepdims=True)) / np.where(sd > 1e-12, sd, 1)
        im = ax.imshow(z, cmap="RdBu_r", vmin=-2.5, vmax=2.5, aspect="auto",
                       interpolation="nearest")
        for f, c in enumerate(t.top[:max_filters]):
            ax.add_patch(plt.Rectangle((c - 0.5, f - 0.5), 1, 1, fill=False, lw=1.0, ec="k"))
        ax.set_xticks(range(len(EMOTIONS)), [e[:3] for e in EMOTIONS], fontsize=7, rotation=90)
        step = max(1, len(m) // 16)
        ax.set_yticks(range(0, len(m), step), [str(i) for i in range(0, len(m), step)],
                      fontsize=6)
        ax.set_title(f"{t.layer}\n({len(t.class_means)} filters"
                     f"{', first ' + str(len(m)) if len(m) < len(t.class_means) else ''})",
                     fontsize=8)
        ax.set_ylabel("filter", fontsize=7)
    if im is not None:
        fig.colorbar(im, ax=axes[0].tolist(), shrink=0.6, label="class mean, z across classes")
    axes[0, 0].text(0, 1.0, "which emotion excites each filter most (boxed)",
                    transform=fig.transFigure, fontsize=9, va="bottom")
    return save_figure(fig, path)


def deletion_insertion_figure(results: Mapping, path: str | Path) -> Path:
    """Mean deletion and insertion curves per method (``results``: name -> DeletionInsertion)."""
    fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3.4))
    for name, r in results.items():
        style = {"color": "0.5", "ls": "--"} if name == "random" else {}
        a.plot(r.fractions, r.deletion.mean(0),
               label=f"{name} ({r.deletion_auc.mean():.3f})", **style)
        b.plot(r.fractions, r.insertion.mean(0),
               label=f"{name} ({r.insertion_auc.mean():.3f})", **style)
    a.set_title("deletion (lower area is better)", fontsize=9)
    b.set_title("insertion (higher area is better)", fontsize=9)
    for ax, x in ((a, "fraction of pixels removed"), (b, "fraction of pixels inserted")):
        ax.set_xlabel(x, fontsize=8)
        ax.set_ylabel("probability of the predicted class", fontsize=8)
        ax.legend(fontsize=7)
        ax.set_ylim(0, 1)
    fig.tight_layout()
    return save_figure(fig, path)
