"""Matplotlib figures: face grids, heatmap overlays, confusion matrices, curves.

Figures are drawn with the Agg backend (no display needed) and saved atomically.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from .constants import EMOTIONS, NUM_CLASSES  # noqa: E402
from .io_utils import atomic_write  # noqa: E402


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
