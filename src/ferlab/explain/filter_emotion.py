"""Filter -> emotion table (seed report 004, Table 1): for each filter of a layer, the emotion
whose faces excite it most on average over a data set, and by how much."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..constants import EMOTIONS, NUM_CLASSES
from ..data import FaceSet
from ..errors import DataError
from ..inference import to_model_input
from ..io_utils import write_text
from ..progress import progress_bar
from .base import capture, get_layer, prepared


@dataclass
class FilterEmotion:
    """Per filter of one layer, the mean activation for faces of each class.

    Attributes:
        layer: layer name.
        class_means: ``[C, 7]`` mean (over faces of the class and over positions) activation.
        counts: ``[7]`` faces of each class used.
    """

    layer: str
    class_means: np.ndarray
    counts: np.ndarray

    @property
    def top(self) -> np.ndarray:
        """``[C]`` class index exciting each filter most (classes without faces excluded)."""
        m = np.where(self.counts[None, :] > 0, self.class_means, -np.inf)
        return m.argmax(1)

    @property
    def lift(self) -> np.ndarray:
        """``[C]`` top class mean over the mean of the class means, minus 1: 0.25 means faces of
        the top class excite the filter 25% more than the average class does."""
        present = self.counts > 0
        avg = self.class_means[:, present].mean(1)
        top = self.class_means[np.arange(len(self.top)), self.top]
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(np.abs(avg) > 1e-12, top / np.abs(avg) - 1, 0.0)

    @property
    def zscore(self) -> np.ndarray:
        """``[C]`` how many standard deviations (across classes) the top class is above their
        mean: a scale-free 'by how much' for comparing layers."""
        m = self.class_means[:, self.counts > 0]
        sd = m.std(1)
        top = self.class_means[np.arange(len(self.top)), self.top]
        return np.where(sd > 1e-12, (top - m.mean(1)) / np.where(sd > 0, sd, 1), 0.0)

    def rows(self) -> list[dict]:
        out = []
        second = np.argsort(-np.where(self.counts > 0, self.class_means, -np.inf), axis=1)[:, 1]
        for f in range(len(self.class_means)):
            t, s = int(self.top[f]), int(second[f])
            row = {"layer": self.layer, "filter": f, "emotion": EMOTIONS[t],
                   "mean_activation": float(self.class_means[f, t]),
                   "runner_up": EMOTIONS[s], "runner_up_activation": float(self.class_means[f, s]),
                   "lift": float(self.lift[f]), "zscore": float(self.zscore[f])}
            row.update({f"mean_{e}": float(self.class_means[f, c])
                        for c, e in enumerate(EMOTIONS)})
            out.append(row)
        return out


def filter_emotion(model: torch.nn.Module, faces: FaceSet, layer: str | None = None,
                   max_per_class: int = 500, batch_size: int = 256, seed: int = 0,
                   relu: bool = True, progress: bool = True) -> FilterEmotion:
    """Mean activation of every filter of ``layer`` over the faces of each class.

    Args:
        model: the model.
        faces: labelled faces.
        layer: a layer with ``[N, C, h, w]`` output (``None``: the model's ``cam_layer``).
        max_per_class: at most this many faces per class (seeded sample), so a large data set
            stays quick and classes weigh the same.
        relu: average ``max(0, a)``: a filter 'excited' means a positive response (conv outputs
            before their BN/ReLU can be negative, and the mean of a signed map hides a strong
            response at one place).

    Example:
        >>> fe = filter_emotion(model, faces, "body.0.0")
        >>> fe.rows()[0]["emotion"]  # doctest: +SKIP
        'surprise'
    """
    if not faces.has_labels:
        raise DataError(f"{faces.source}: the filter-emotion table needs labelled faces")
    name, _ = get_layer(model, layer)
    rng = np.random.default_rng(seed)
    idx = []
    for c in range(NUM_CLASSES):
        pool = np.flatnonzero(faces.labels == c)
        idx.extend(rng.choice(pool, size=min(max_per_class, len(pool)), replace=False))
    idx = np.sort(np.asarray(idx, dtype=np.int64))
    labels = faces.labels[idx]
    sums: np.ndarray | None = None
    with prepared(model), torch.no_grad(), capture(model, name) as store:
        for i in progress_bar(range(0, len(idx), batch_size), desc=f"filter-emotion {name}",
                              disable=None if progress else True, leave=False):
            b = idx[i:i + batch_size]
            model(to_model_input(faces.images[b]))
            out = store["out"].float()
            if out.dim() != 4:
                raise DataError(f"layer {name!r} output {list(out.shape)} is not [N, C, H, W]")
            a = (out.clamp_min(0) if relu else out).mean(dim=(2, 3)).numpy()  # [B, C]
            onehot = np.eye(NUM_CLASSES)[labels[i:i + batch_size]]  # [B, 7]
            s = a.T @ onehot
            sums = s if sums is None else sums + s
    counts = np.bincount(labels, minlength=NUM_CLASSES)
    means = (sums if sums is not None else np.zeros((0, NUM_CLASSES))) / np.maximum(counts, 1)
    return FilterEmotion(name, means, counts)


def write_filter_emotion_csv(tables: Sequence[FilterEmotion], path: str | Path) -> Path:
    """One CSV row per (layer, filter): top emotion, its mean, runner-up, lift, z, all means."""
    rows = [r for t in tables for r in t.rows()]
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(rows[0]) if rows else ["layer"], lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in r.items()})
    return write_text(path, buf.getvalue())
