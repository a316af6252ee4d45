"""Synthetic 48x48 faces whose class is carried by the mouth alone, or by one small box.

Tests use them instead of FER2013: every face has the same head, eyes and brows (with noise,
brightness changes and small shifts); only the mouth differs by class. So a model that learns
must look at the mouth, and an explanation that is right must point at ``MOUTH_BOX``.

:func:`make_box_faces` makes a harder test of explanations: the class lives in a small glyph
(1.6-6 % of the image) drawn in one of :data:`EVIDENCE_BOXES` (several positions and sizes, most
of them off-centre and away from the mouth), while the mouth is drawn from a random class, a
decoy that looks like evidence and carries none. A map that is right must find the box.

Writers turn a FaceSet into every file format ferlab reads, for reader and CLI tests.
"""

from __future__ import annotations

import csv
import gzip
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from .constants import EMOTIONS, IMAGE_SIZE, NUM_CLASSES
from .data import FaceSet
from .io_utils import atomic_write, write_bytes

# (row0, row1, col0, col1) of the region holding every mouth, shifts included.
MOUTH_BOX = (29, 43, 12, 36)
_MAX_SHIFT = 2


def _mouth(label: int) -> np.ndarray:
    """A 10x20 mouth template (1 = dark stroke) distinct for each class."""
    m = np.zeros((10, 20), dtype=np.float32)
    if label == 0:  # angry: gritted teeth (a box with bars)
        m[2, 2:18] = m[7, 2:18] = 1
        m[2:8, 2:18:3] = 1
    elif label == 1:  # disgust: wavy line
        for i in range(20):
            m[4 + int(round(2 * np.sin(i / 2.0))), i] = 1
    elif label == 2:  # fear: small open oval
        yy, xx = np.mgrid[0:10, 0:20]
        r = ((yy - 5) / 3.0) ** 2 + ((xx - 10) / 4.0) ** 2
        m[(r > 0.6) & (r < 1.4)] = 1
    elif label == 3:  # happy: wide smile (U)
        for i in range(20):
            m[min(9, 1 + int(round(0.06 * (i - 9.5) ** 2 * -1 + 6))), i] = 1
    elif label == 4:  # sad: frown (upside-down U)
        for i in range(20):
            m[max(0, int(round(0.06 * (i - 9.5) ** 2 + 2))), i] = 1
    elif label == 5:  # surprise: big open mouth
        yy, xx = np.mgrid[0:10, 0:20]
        r = ((yy - 5) / 4.5) ** 2 + ((xx - 10) / 6.0) ** 2
        m[(r > 0.55) & (r < 1.2)] = 1
    else:  # neutral: flat line
        m[5, 3:17] = 1
    return m


_TEMPLATES = [_mouth(c) for c in range(NUM_CLASSES)]


def _head() -> np.ndarray:
    yy, xx = np.mgrid[0:IMAGE_SIZE, 0:IMAGE_SIZE].astype(np.float32)
    face = (((yy - 24) / 22) ** 2 + ((xx - 24) / 17) ** 2) < 1
    img = np.where(face, 170.0, 60.0).astype(np.float32)
    for cx in (16, 32):  # eyes and brows, the same for every class
        eye = (((yy - 19) / 2.5) ** 2 + ((xx - cx) / 3.5) ** 2) < 1
        img[eye] = 50
        img[13, cx - 4:cx + 5] = 70
    img[22:29, 23:25] = 140  # nose
    return img


_HEAD = _head()


def make_faces(n: int = 700, seed: int = 0, noise: float = 12.0, usage: str = "") -> FaceSet:
    """``n`` synthetic faces, classes balanced and shuffled.

    Example:
        >>> faces = make_faces(70, seed=1)
        >>> faces.images.shape, faces.images.dtype
        ((70, 48, 48), dtype('uint8'))
    """
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.arange(n) % NUM_CLASSES)
    images = np.empty((n, IMAGE_SIZE, IMAGE_SIZE), dtype=np.uint8)
    r0, _, c0, _ = MOUTH_BOX
    for i, c in enumerate(labels):
        img = _HEAD.copy()
        dy, dx = rng.integers(-_MAX_SHIFT, _MAX_SHIFT + 1, size=2)
        y, x = r0 + _MAX_SHIFT + dy, c0 + _MAX_SHIFT + dx
        region = img[y:y + 10, x:x + 20]
        img[y:y + 10, x:x + 20] = np.where(_TEMPLATES[c] > 0, 40.0, region)
        img = img * rng.uniform(0.8, 1.2) + rng.uniform(-15, 15)
        img = img + rng.normal(0, noise, img.shape)
        images[i] = np.clip(img, 0, 255).astype(np.uint8)
    return FaceSet(images=images, labels=labels.astype(np.int64),
                   usage=np.full(n, usage, dtype=object), ids=np.arange(n, dtype=np.int64),
                   source=f"synthetic(n={n}, seed={seed})")


# (row, col, side) of the evidence boxes: several sizes, in corners, on a cheek, by the mouth.
EVIDENCE_BOXES = (
    (5, 5, 6),     # top left, above the brow (6x6: 1.6 % of the image)
    (4, 31, 9),    # top right, forehead (9x9: 3.5 %)
    (20, 38, 6),   # right cheek, off the head's edge
    (32, 2, 9),    # lower left, beside the mouth but outside it
    (17, 18, 12),  # centre, between the eyes over the nose (12x12: 6.25 %)
)

# Seven 3x3 glyphs (1 = dark), pairwise at least 3 cells apart, scaled up to the box side.
_GLYPHS = np.array([
    [[1, 1, 1], [0, 0, 0], [0, 0, 0]],
    [[1, 0, 0], [1, 0, 0], [1, 0, 0]],
    [[1, 0, 0], [0, 1, 0], [0, 0, 1]],
    [[0, 0, 1], [0, 1, 0], [1, 0, 0]],
    [[0, 0, 0], [0, 0, 0], [1, 1, 1]],
    [[0, 0, 1], [0, 0, 1], [0, 0, 1]],
    [[0, 1, 0], [1, 0, 1], [0, 1, 0]],
], dtype=np.float32)


@dataclass(frozen=True)
class BoxFaces:
    """Faces whose class is in one small box each (:func:`make_box_faces`).

    Attributes:
        faces: the faces and labels.
        boxes: ``int64 [N, 4]`` the evidence box of each face as ``(row0, row1, col0, col1)``
            (rows ``row0:row1``, columns ``col0:col1``).
    """

    faces: FaceSet
    boxes: np.ndarray


def make_box_faces(n: int = 700, seed: int = 0, noise: float = 8.0, usage: str = "",
                   boxes: tuple[tuple[int, int, int], ...] = EVIDENCE_BOXES) -> BoxFaces:
    """``n`` synthetic faces whose class is a glyph in a small box; the mouth is a decoy.

    Each face gets one of ``boxes`` (in turn, so every box is used equally); inside it, a 3x3
    glyph of its class scaled to the box side is drawn in strokes (dark on the skin, light off
    the head). The mouth is the mouth of a random class (uninformative), so a method that marks
    every stroke of the face fails.

    Example:
        >>> bf = make_box_faces(10, seed=1)
        >>> bf.faces.images.shape, bf.boxes[0].tolist()
        ((10, 48, 48), [5, 11, 5, 11])
    """
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.arange(n) % NUM_CLASSES)
    which = rng.permutation(np.arange(n) % len(boxes))
    images = np.empty((n, IMAGE_SIZE, IMAGE_SIZE), dtype=np.uint8)
    out_boxes = np.empty((n, 4), dtype=np.int64)
    r0, _, c0, _ = MOUTH_BOX
    for i, c in enumerate(labels):
        img = _HEAD.copy()
        dy, dx = rng.integers(-_MAX_SHIFT, _MAX_SHIFT + 1, size=2)
        y, x = r0 + _MAX_SHIFT + dy, c0 + _MAX_SHIFT + dx
        decoy = _TEMPLATES[rng.integers(NUM_CLASSES)]
        img[y:y + 10, x:x + 20] = np.where(decoy > 0, 40.0, img[y:y + 10, x:x + 20])
        by, bx, side = boxes[which[i]]
        cell = side // 3
        glyph = np.kron(_GLYPHS[c], np.ones((cell, cell), dtype=np.float32))
        patch = img[by:by + side, bx:bx + side]
        # Strokes that contrast with what lies under them (dark on skin, light on background),
        # with no frame of their own: the box is found only by the glyph's strokes.
        ink = np.where(patch > 110, 40.0, 190.0)
        img[by:by + side, bx:bx + side] = np.where(glyph > 0, ink, patch)
        out_boxes[i] = (by, by + side, bx, bx + side)
        img = img * rng.uniform(0.8, 1.2) + rng.uniform(-15, 15)
        img = img + rng.normal(0, noise, img.shape)
        images[i] = np.clip(img, 0, 255).astype(np.uint8)
    faces = FaceSet(images=images, labels=labels.astype(np.int64),
                    usage=np.full(n, usage, dtype=object), ids=np.arange(n, dtype=np.int64),
                    source=f"synthetic-boxes(n={n}, seed={seed})")
    return BoxFaces(faces, out_boxes)


def make_split_faces(n_train: int = 700, n_test: int = 140, seed: int = 0) -> FaceSet:
    """Faces with Usage Training / PublicTest, as in fer2013.csv."""
    a = make_faces(n_train, seed, usage="Training")
    b = make_faces(n_test, seed + 1, usage="PublicTest")
    return FaceSet(images=np.concatenate([a.images, b.images]),
                   labels=np.concatenate([a.labels, b.labels]),
                   usage=np.concatenate([a.usage, b.usage]),
                   ids=np.arange(n_train + n_test, dtype=np.int64), source="synthetic")


def _pixels(img: np.ndarray) -> str:
    return " ".join(map(str, img.reshape(-1).tolist()))


def _write_text(path: Path, text: str) -> Path:
    data = text.encode("utf-8")
    write_bytes(path, gzip.compress(data) if path.suffix == ".gz" else data)
    return path


def write_fer2013_csv(faces: FaceSet, path: str | Path) -> Path:
    """Kaggle layout ``emotion,pixels,Usage`` (gzipped if ``path`` ends in .gz)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["emotion", "pixels", "Usage"])
    for img, lab, use in zip(faces.images, faces.labels, faces.usage, strict=True):
        w.writerow([int(lab), _pixels(img), use or "Training"])
    return _write_text(Path(path), buf.getvalue())


def write_train_csv(faces: FaceSet, path: str | Path) -> Path:
    """Course layout ``label,feature``."""
    lines = ["label,feature"] + [f"{int(lab)},{_pixels(img)}"
                                 for img, lab in zip(faces.images, faces.labels, strict=True)]
    return _write_text(Path(path), "\n".join(lines) + "\n")


def write_test_csv(faces: FaceSet, path: str | Path) -> Path:
    """Course layout ``id,feature``."""
    lines = ["id,feature"] + [f"{i},{_pixels(img)}" for i, img in enumerate(faces.images)]
    return _write_text(Path(path), "\n".join(lines) + "\n")


def write_image_folder(faces: FaceSet, root: str | Path, split: str = "train",
                       suffix: str = ".png") -> Path:
    """``root/<split>/<emotion>/<i>.png`` (or no split level when ``split`` is empty)."""
    root = Path(root)
    fmt = Image.registered_extensions()[suffix.lower()]  # the temporary name has no suffix
    for i, (img, lab) in enumerate(zip(faces.images, faces.labels, strict=True)):
        d = root / split / EMOTIONS[lab] if split else root / EMOTIONS[lab]
        d.mkdir(parents=True, exist_ok=True)
        atomic_write(d / f"{i:05d}{suffix}", lambda p, img=img: Image.fromarray(img).save(p, fmt))
    return root
