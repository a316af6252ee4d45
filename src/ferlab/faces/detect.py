"""Face detectors: each takes a uint8 grey photo and returns :class:`Box` es, largest first.

* :class:`BlazeFaceDetector`: MediaPipe's BlazeFace network (:mod:`ferlab.faces.blazeface`,
  weights bundled), run by ONNX Runtime; finds real heads from about 5 % of the photo's side.
* :class:`HaarDetector`: OpenCV's Haar cascades (inside the ``opencv-python-headless`` 4.x
  wheel); better on faces cropped so tight that no hair or chin shows.
* :class:`FallbackDetector`: detectors tried in turn; ``auto`` (the default) is BlazeFace, then
  Haar for faces that fill the photo where BlazeFace finds none.

:func:`make_detector` builds one by name. Why these detectors and settings, with the figures:
``benchmarks/FACES.md``.

Example:
    >>> import numpy as np
    >>> detect_faces(np.full((200, 200), 128, np.uint8))   # a flat grey picture holds no face
    []
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from ..constants import DEFAULT_DETECTOR, DETECTORS, IMAGE_SIZE
from ..errors import ConfigError, DataError
from .blazeface import ONE_PASS_MIN_FACE, PASS_SIDES, SCORE_THRESHOLD, BlazeFaceNet, pass_side

# In ``auto``, Haar runs only where BlazeFace found nothing, and searches only faces of at least
# this fraction of the photo's shorter side: what BlazeFace leaves are faces that fill the
# photo, and most of Haar's time goes to the small sizes (benchmarks/FACES.md, "auto").
FALLBACK_MIN_FACE = 0.4

# Haar detects on a copy whose longer side is at most this many pixels, as its cost grows with
# the pixel count; a face under 24/320 = 7.5 % of the longer side is then missed
# (``max_side=None`` searches full size).
DETECT_SIDE = 320

# Step between searched face sizes: 1.2 would be faster but misses faces near the smallest
# searched size (benchmarks/FACES.md, "Haar").
SCALE_FACTOR = 1.1

# Smallest face Haar searches, in pixels of the detection copy (the alt2 cascade's window is 20).
MIN_PX = 24

# A picture at most this big on each side and nearly square is taken whole as one face: it is
# most likely already a face crop (a FER2013 image is 48x48). Detecting in it would only cut a
# little off the frame (Haar finds a box of about 0.9 of a 48x48 synthetic face) or miss.
WHOLE_FACE_MAX_SIDE = 2 * IMAGE_SIZE
WHOLE_FACE_MAX_ASPECT = 1.25

FRONTAL_CASCADES = {"default": "haarcascade_frontalface_default.xml",
                    "alt2": "haarcascade_frontalface_alt2.xml"}
_PROFILE = "haarcascade_profileface.xml"


@dataclass(frozen=True)
class Box:
    """A face box in pixel coordinates of the (upright) photo: left, top, width, height."""

    x: int
    y: int
    w: int
    h: int
    kind: str = "frontal"  # which detector found it: blazeface | frontal | profile | whole

    def as_dict(self) -> dict:
        return asdict(self)

    def iou(self, other: Box) -> float:
        """Intersection over union with ``other`` (0 when apart, 1 when identical)."""
        ix = max(0, min(self.x + self.w, other.x + other.w) - max(self.x, other.x))
        iy = max(0, min(self.y + self.h, other.y + other.h) - max(self.y, other.y))
        inter = ix * iy
        union = self.w * self.h + other.w * other.h - inter
        return inter / union if union > 0 else 0.0


def whole_face_box(shape: tuple[int, ...]) -> Box | None:
    """The centred square of a picture of ``shape`` ``(H, W)`` as one ``whole`` face, when the
    picture is most likely already a face crop (small and nearly square); else None.

    Example:
        >>> whole_face_box((48, 48)), whole_face_box((480, 640))
        (Box(x=0, y=0, w=48, h=48, kind='whole'), None)
    """
    h, w = shape[:2]
    if max(h, w) > WHOLE_FACE_MAX_SIDE or max(h, w) > WHOLE_FACE_MAX_ASPECT * min(h, w):
        return None
    side = min(h, w)
    return Box((w - side) // 2, (h - side) // 2, side, side, kind="whole")


def _cascade(name: str) -> cv2.CascadeClassifier:
    path = Path(getattr(getattr(cv2, "data", None), "haarcascades", "")) / name
    c = cv2.CascadeClassifier(str(path))
    if c.empty():
        raise DataError(f"{path}: OpenCV's Haar cascade is missing; ferlab needs an OpenCV 4.x "
                        "wheel (opencv-python-headless<5), whose cv2.data ships the cascades")
    return c


class Detector(Protocol):
    """What every face detector is: a uint8 ``[H, W]`` grey photo in, boxes out, largest first."""

    def __call__(self, gray: np.ndarray) -> list[Box]: ...


class HaarDetector:
    """OpenCV's Haar-cascade face detector on grey images, returning boxes in the image's pixels.

    Args:
        profile: also run the profile cascade (on the image and its mirror, since it only knows
            faces turned one way): finds turned heads, costs about 3x the time, so off by default.
        max_side: detect on a copy whose longer side is at most this (None: full size).
        min_neighbors: Haar's vote threshold; higher means fewer false faces and fewer faces.
        scale_factor: step between searched face sizes (1.1 = 10 %).
        min_size: smallest face searched, as a fraction of the photo's shorter side.
        frontal: which frontal cascade: ``default`` or ``alt2``.

    Example:
        >>> det = HaarDetector(profile=False)
        >>> det(np.zeros((120, 160), np.uint8))
        []
    """

    def __init__(self, profile: bool = False, max_side: int | None = DETECT_SIDE,
                 min_neighbors: int = 5, scale_factor: float = SCALE_FACTOR,
                 min_size: float = 0.0, frontal: str = "alt2", min_px: int = MIN_PX) -> None:
        if max_side is not None and max_side < 48:
            raise ConfigError(f"max_side must be at least 48 pixels, got {max_side}")
        if not scale_factor > 1.0:
            raise ConfigError(f"scale_factor must be > 1, got {scale_factor}")
        if min_px < 20:
            raise ConfigError(f"min_px must be at least 20 (the cascade's window), got {min_px}")
        if min_neighbors < 0:
            raise ConfigError(f"min_neighbors must be >= 0, got {min_neighbors}")
        self.profile = profile
        self.max_side = max_side
        self.min_neighbors = min_neighbors
        self.scale_factor = scale_factor
        self.min_size = min_size
        self.min_px = min_px
        if frontal not in FRONTAL_CASCADES:
            raise ConfigError(f"frontal cascade must be one of {list(FRONTAL_CASCADES)}, got "
                              f"{frontal!r}")
        self._frontal = _cascade(FRONTAL_CASCADES[frontal])
        self._profile = _cascade(_PROFILE) if profile else None

    def _run(self, cascade: cv2.CascadeClassifier, g: np.ndarray, min_px: int) -> list:
        found = cascade.detectMultiScale(g, scaleFactor=self.scale_factor,
                                         minNeighbors=self.min_neighbors,
                                         minSize=(min_px, min_px))
        return [tuple(int(v) for v in b) for b in found] if len(found) else []

    def __call__(self, gray: np.ndarray) -> list[Box]:
        """Faces in ``gray`` (uint8 ``[H, W]``), largest first."""
        if gray.ndim != 2 or gray.dtype != np.uint8:
            raise DataError(f"face detection needs a uint8 [H, W] grey image, got "
                            f"{gray.dtype} {tuple(gray.shape)}")
        h, w = gray.shape
        s = 1.0
        if self.max_side is not None and max(h, w) > self.max_side:
            s = self.max_side / max(h, w)
            g = cv2.resize(gray, (max(1, round(w * s)), max(1, round(h * s))),
                           interpolation=cv2.INTER_AREA)
        else:
            g = gray
        # No histogram equalisation: on scikit-image's astronaut it adds a false face (the
        # shoulder patch) at every detection size, and finds no face the plain image misses.
        min_px = max(self.min_px, round(self.min_size * min(g.shape)))
        boxes = [Box(*b, kind="frontal") for b in self._run(self._frontal, g, min_px)]
        if self._profile is not None:
            gw = g.shape[1]
            prof = [Box(*b, kind="profile") for b in self._run(self._profile, g, min_px)]
            prof += [Box(gw - x - bw, y, bw, bh, kind="profile")
                     for x, y, bw, bh in self._run(self._profile, g[:, ::-1].copy(), min_px)]
            boxes += prof
        boxes = _merge(boxes)
        if s != 1.0:
            boxes = [Box(round(b.x / s), round(b.y / s), round(b.w / s), round(b.h / s), b.kind)
                     for b in boxes]
        return sorted(boxes, key=lambda b: -b.w * b.h)


def _merge(boxes: list[Box], iou: float = 0.3) -> list[Box]:
    """Drop boxes that overlap a kept one; frontal boxes win (their framing matches training)."""
    order = sorted(boxes, key=lambda b: (b.kind != "frontal", -b.w * b.h))
    kept: list[Box] = []
    for b in order:
        if all(b.iou(k) < iou and not _inside(b, k) for k in kept):
            kept.append(b)
    return kept


def _inside(a: Box, b: Box) -> bool:
    """``a``'s centre lies inside ``b`` or ``b``'s inside ``a`` (a face within a face)."""
    def centre_in(p: Box, q: Box) -> bool:
        cx, cy = p.x + p.w / 2, p.y + p.h / 2
        return q.x <= cx <= q.x + q.w and q.y <= cy <= q.y + q.h
    return centre_in(a, b) or centre_in(b, a)


class BlazeFaceDetector:
    """MediaPipe's BlazeFace (:class:`ferlab.faces.blazeface.BlazeFaceNet`) giving
    :class:`Box` es of kind ``blazeface``, largest first (``detector="blazeface"``).

    Args:
        score_threshold: keep faces the network scores above this (0-1).
        sides: the photo's longer side in each pass of the network
            (:data:`ferlab.faces.blazeface.PASS_SIDES`).
        bf16: with ``backend="torch"``, run the network in bfloat16; None (default): where the
            CPU has it natively.
        adaptive: the second pass only for faces the 192-px one may have missed, sized for
            them (see :class:`ferlab.faces.blazeface.BlazeFaceNet`); False runs both passes in
            full on every photo.
        backend: who runs the network: ``onnx`` (ONNX Runtime, default) or ``torch``.
        onnx_path: the ``.onnx`` file ONNX Runtime runs; default: the one bundled with ferlab.

    Example:
        >>> BlazeFaceDetector()(np.full((120, 160), 128, np.uint8))
        []
    """

    def __init__(self, score_threshold: float = SCORE_THRESHOLD,
                 sides: tuple[int, ...] = PASS_SIDES, bf16: bool | None = None,
                 adaptive: bool = True, backend: str = "onnx",
                 onnx_path: str | Path | None = None) -> None:
        self.score_threshold = score_threshold
        self.sides, self.adaptive = sides, adaptive
        self._net = BlazeFaceNet(score_threshold=score_threshold, sides=sides, bf16=bf16,
                                 adaptive=adaptive, backend=backend, onnx_path=onnx_path)

    @property
    def bf16(self) -> bool:
        """Whether the network computes in bfloat16 (only ever with ``backend="torch"``)."""
        return self._net.bf16

    def __call__(self, gray: np.ndarray) -> list[Box]:
        """Faces in ``gray`` (uint8 ``[H, W]``), largest first."""
        return [Box(x, y, w, h, kind="blazeface") for x, y, w, h, _ in self._net(gray)]


class FallbackDetector:
    """Detectors tried in order: the boxes of the first that finds a face (``detector="auto"``:
    BlazeFace, then Haar for the tight face crops BlazeFace misses).

    Example:
        >>> detect = FallbackDetector(BlazeFaceDetector(), HaarDetector())
        >>> detect(np.full((120, 160), 128, np.uint8))
        []
    """

    def __init__(self, *detectors: Detector) -> None:
        self.detectors = detectors

    def __call__(self, gray: np.ndarray) -> list[Box]:
        for detect in self.detectors:
            boxes = detect(gray)
            if boxes:
                return boxes
        return []


def make_detector(name: str | None = None, *, profile: bool = False,
                  max_side: int | None = DETECT_SIDE, min_neighbors: int = 5,
                  min_face: float | None = None) -> Detector:
    """A face detector by name: ``auto`` (default), ``blazeface`` or ``haar``.

    ``auto`` is BlazeFace, then Haar on photos where BlazeFace finds no face, searching only
    faces of ``FALLBACK_MIN_FACE`` of the shorter side or more (tight crops). ``profile``
    (turned heads) is a Haar option, so it picks Haar when no name is given; ``max_side`` and
    ``min_neighbors`` are Haar's too.

    ``min_face`` is the smallest face to look for, as a fraction of the photo's longer side.
    None (default): BlazeFace down to about 5 % (its second pass, of up to 384 px, looks for
    faces the 192-px one may have missed), Haar down to ``MIN_PX / max_side`` (7.5 %). From
    ``ONE_PASS_MIN_FACE`` (0.1) up, BlazeFace makes one 192-px pass, which about halves its
    time on photos with a face under 25 % of the longer side, or none. Under it, BlazeFace
    looks for faces that small in every photo, whatever the first pass found: the second pass
    always runs, sized for them (:func:`ferlab.faces.blazeface.pass_side`, at most 384 px). Haar
    searches a copy of ``MIN_PX / min_face`` pixels (240 at 0.1) instead of ``max_side``.
    """
    name = name or ("haar" if profile else DEFAULT_DETECTOR)
    if name not in DETECTORS:
        raise ConfigError(f"face detector must be one of {list(DETECTORS)}, got {name!r}")
    if min_face is not None:
        if not 0.0 < min_face < 1.0:
            raise ConfigError(f"min_face is a fraction of the photo's longer side, between 0 "
                              f"and 1; got {min_face}")
        max_side = max(48, math.ceil(MIN_PX / min_face))  # 48: HaarDetector's floor
    blaze = _blaze_passes(min_face)
    if name == "blazeface" and profile:
        raise ConfigError("the profile cascade is a Haar option: use detector 'haar' or 'auto' "
                          "with it (BlazeFace finds turned heads on its own)")
    if name == "blazeface":
        return BlazeFaceDetector(**blaze)
    if name == "haar":
        return HaarDetector(profile=profile, max_side=max_side, min_neighbors=min_neighbors)
    fallback = HaarDetector(profile=profile, max_side=max_side, min_neighbors=min_neighbors,
                            min_size=FALLBACK_MIN_FACE)
    return FallbackDetector(BlazeFaceDetector(**blaze), fallback)


def _blaze_passes(min_face: float | None) -> dict:
    """BlazeFace's passes for ``make_detector``'s ``min_face``."""
    if min_face is None:
        return {"sides": PASS_SIDES, "adaptive": True}
    if min_face >= ONE_PASS_MIN_FACE:
        return {"sides": PASS_SIDES[:1], "adaptive": True}
    return {"sides": (PASS_SIDES[0], pass_side(min_face, PASS_SIDES[-1])), "adaptive": False}


_DEFAULT: dict[tuple, Detector] = {}


def default_detector(profile: bool = False, name: str | None = None) -> Detector:
    """A shared detector (loading cascades or weights takes time, so it is done once)."""
    key = (profile, name)
    if key not in _DEFAULT:
        _DEFAULT[key] = make_detector(name, profile=profile)
    return _DEFAULT[key]


def detect_faces(gray: np.ndarray, detector: Detector | None = None) -> list[Box]:
    """Face boxes in a uint8 ``[H, W]`` grey image, largest first (the default detector unless
    one is given).

    Example:
        >>> detect_faces(np.zeros((64, 64), np.uint8))
        []
    """
    return (detector or default_detector())(gray)

