"""Choosing the faces to explain, as the seed reports do: per class a random correctly predicted
face, the most confident correct one, the most confident mistake, or given indices or files."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..constants import EMOTIONS, IMAGE_SIZE, NUM_CLASSES
from ..data import FaceSet
from ..errors import ConfigError, DataError
from ..images import read_gray
from ..inference import DEFAULT_BATCH, to_model_input
from ..predict import predict_faces

POLICIES = ("random-correct", "confident-correct", "confident-wrong", "random")


@dataclass
class Selection:
    """Faces chosen for explanation, with what the model said about them.

    Attributes:
        images: ``uint8 [N, 48, 48]``.
        labels: true class per face, -1 where unknown (photos, ``test.csv``).
        probs: ``float [N, 7]`` the model's probabilities.
        index: position of each face in the data set it came from (-1 for files).
        names: a short name per face for titles and file names.
        notes: what could not be chosen (e.g. a class with no correct prediction).
    """

    images: np.ndarray
    labels: np.ndarray
    probs: np.ndarray
    index: np.ndarray
    names: list[str]
    notes: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.images)

    @property
    def preds(self) -> np.ndarray:
        return self.probs.argmax(1)

    def inputs(self) -> torch.Tensor:
        """The float ``[N, 1, 48, 48]`` tensor (grey / 255) models take."""
        return to_model_input(self.images)

    def title(self, i: int) -> str:
        """``true happy / pred happy 0.93`` (true part left out when unknown)."""
        p = int(self.preds[i])
        true = f"true {EMOTIONS[self.labels[i]]}\n" if self.labels[i] >= 0 else ""
        return f"{true}pred {EMOTIONS[p]} {self.probs[i, p]:.2f}"


def parse_policy(text: str) -> tuple[str, list[int] | None]:
    """``"confident-wrong"`` -> (policy, None); ``"12,40,7"`` or ``"indices:12,40"`` ->
    ("indices", [12, 40, 7])."""
    t = text.strip().lower()
    if t in POLICIES:
        return t, None
    if t.startswith("indices:"):
        t = t[len("indices:"):]
    try:
        idx = [int(s) for s in t.split(",") if s.strip()]
    except ValueError:
        raise ConfigError(f"--select {text!r}: expected one of {', '.join(POLICIES)} or face "
                          "indices like 12,40,7") from None
    if not idx:
        raise ConfigError(f"--select {text!r}: no face indices given")
    return "indices", idx


def select_faces(model: torch.nn.Module, faces: FaceSet, policy: str = "random-correct",
                 per_class: int = 1, seed: int = 0, indices: Sequence[int] | None = None
                 ) -> Selection:
    """Choose faces of ``faces`` to explain.

    Args:
        model: the model whose predictions decide what is correct.
        faces: the data set; the correct/wrong policies need its labels.
        policy: ``random-correct`` / ``confident-correct`` / ``confident-wrong`` (per true
            class), ``random`` (per class, right or wrong) or ``indices`` (``indices`` given).
        per_class: faces per class.
        seed: which random faces.

    Example:
        >>> sel = select_faces(model, faces, "confident-wrong")
        >>> [sel.title(i) for i in range(len(sel))]  # doctest: +SKIP
    """
    n = len(faces)
    if policy == "indices" or indices is not None:
        idx = np.asarray(list(indices or []), dtype=np.int64)
        bad = idx[(idx < 0) | (idx >= n)]
        if len(bad):
            raise ConfigError(f"face index {int(bad[0])} is out of range: {faces.source} has "
                              f"{n} faces (0-{n - 1})")
        probs = _probs(model, faces.images[idx])
        return Selection(faces.images[idx], faces.labels[idx].copy(), probs, idx,
                         [f"face{i}" for i in idx])
    if policy not in POLICIES:
        raise ConfigError(f"unknown selection policy {policy!r}; choose one of "
                          f"{', '.join(POLICIES)} or give face indices")
    if not faces.has_labels:
        raise DataError(f"{faces.source}: has no labels, so '{policy}' cannot choose faces; "
                        "give face indices instead")
    if policy in ("random", "random-correct"):
        return _random_faces(model, faces, policy, per_class, np.random.default_rng(seed))
    probs_all = _probs(model, faces.images)
    pred = probs_all.argmax(1)
    conf = probs_all.max(1)
    rng = np.random.default_rng(seed)
    chosen: list[int] = []
    notes: list[str] = []
    for c in range(NUM_CLASSES):
        of_class = faces.labels == c
        if policy == "random":
            pool = np.flatnonzero(of_class)
        elif policy.endswith("-correct"):
            pool = np.flatnonzero(of_class & (pred == c))
        else:
            pool = np.flatnonzero(of_class & (pred != c))
        if len(pool) == 0:
            what = {"random": "faces", "confident-wrong": "wrong predictions"}.get(
                policy, "correct predictions")
            notes.append(f"{EMOTIONS[c]}: no {what}")
            continue
        if policy.startswith("confident"):
            pick = pool[np.argsort(-conf[pool], kind="stable")[:per_class]]
        else:
            pick = rng.choice(pool, size=min(per_class, len(pool)), replace=False)
        chosen.extend(int(i) for i in pick)
    idx = np.asarray(chosen, dtype=np.int64)
    return Selection(faces.images[idx], faces.labels[idx].copy(), probs_all[idx], idx,
                     [f"{EMOTIONS[faces.labels[i]]}-{i}" for i in idx], notes)


def _random_faces(model: torch.nn.Module, faces: FaceSet, policy: str, per_class: int,
                  rng: np.random.Generator) -> Selection:
    """``random`` / ``random-correct`` faces, scoring only as many as it takes: each class's
    faces in a seeded random order, in growing chunks, until ``per_class`` are found. The
    confident policies must score every face; these usually score a few hundred of thousands."""
    chosen: list[int] = []
    notes: list[str] = []
    for c in range(NUM_CLASSES):
        order = rng.permutation(np.flatnonzero(faces.labels == c))
        found: list[int] = []
        start, chunk = 0, DEFAULT_BATCH
        while len(found) < per_class and start < len(order):
            part = order[start:start + chunk]
            if policy == "random":
                found.extend(part[:per_class - len(found)])
            else:
                right = _probs(model, faces.images[part]).argmax(1) == c
                found.extend(part[right][:per_class - len(found)])
            start, chunk = start + len(part), chunk * 2
        if not found:
            what = "faces" if policy == "random" else "correct predictions"
            notes.append(f"{EMOTIONS[c]}: no {what}")
        chosen.extend(int(i) for i in found)
    idx = np.asarray(chosen, dtype=np.int64)
    return Selection(faces.images[idx], faces.labels[idx].copy(), _probs(model, faces.images[idx]),
                     idx, [f"{EMOTIONS[faces.labels[i]]}-{i}" for i in idx], notes)


def select_images(model: torch.nn.Module, paths: Sequence[str | Path],
                  crop=None) -> Selection:
    """Faces from image files, each turned into a 48x48 grey face by ``crop(path) -> uint8
    [48, 48]`` (default: read the file as an already-cropped face, resized to 48x48)."""

    if not paths:
        raise ConfigError("no image files given")
    read = crop or (lambda p: read_gray(p, IMAGE_SIZE))
    images = np.stack([np.asarray(read(p), dtype=np.uint8) for p in paths])
    if images.shape[1:] != (IMAGE_SIZE, IMAGE_SIZE):
        raise DataError(f"faces must be {IMAGE_SIZE}x{IMAGE_SIZE}, got {images.shape[1:]}")
    return Selection(images, np.full(len(images), -1, dtype=np.int64), _probs(model, images),
                     np.full(len(images), -1, dtype=np.int64), [Path(p).stem for p in paths])


def _probs(model: torch.nn.Module, images: np.ndarray) -> np.ndarray:
    # The batched, folded copy every command predicts with (the confident policies score a
    # whole split).

    return predict_faces(model, np.asarray(images, dtype=np.uint8), progress=False)
