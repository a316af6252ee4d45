"""Finding faces in photos and cropping them the way FER2013 faces are framed.

Two detectors ship with ferlab and download nothing: OpenCV's Haar cascades, inside the
``opencv-python-headless`` 4.x wheel, and MediaPipe's BlazeFace network, whose weights are in
ferlab's package. The default, ``auto``, is BlazeFace, then Haar on photos where BlazeFace finds
no face, for faces that fill the photo (``FALLBACK_MIN_FACE``; "Why BlazeFace first" below).
How Haar was chosen and set up:
``benchmarks/compare_detectors.py`` compares the cascades and other detectors that are offline
here (100 LFW faces pasted at known places, 2 real portraits, 106 pictures without a face):

=================================  =========  ===========  ==========  =====================
detector                           LFW found  false faces  real found  time (same run)
=================================  =========  ===========  ==========  =====================
alt2 (used), 320 px, step 1.1      98 / 100   0            2 / 2       1
Haar alt2, 320 px, step 1.2        98 / 100   0            2 / 2       0.57x
Haar alt2, 320 px, step 1.25       97 / 100   0            2 / 2       0.40x
Haar alt2, 256 px, step 1.25       94 / 100   0            2 / 2       0.28x
Haar default, step 1.2             94 / 100   0            2 / 2       0.67x
Haar alt2 + profile, step 1.2      98 / 100   0            2 / 2       2.1x
scikit-image LBP cascade           97 / 100   10           2 / 2       11x
dlib HOG (dlib-bin wheel)          96 / 100   0            2 / 2       not a ferlab dependency
=================================  =========  ===========  ==========  =====================

These faces are large (67 px at the 320-px search size). A coarser step loses faces near the
smallest searched size: in ``benchmarks/bench_faces.py``'s 1280x720 scene, whose astronaut face
is 24 px at 320 px, step 1.1 finds both faces and step 1.2 only one (``--step 1.2``). So
``SCALE_FACTOR`` stays 1.1, though 1.2 would take a photo from 26 to 21 ms.

(mediapipe 1.2.2 ships no face model in its wheel; facenet-pytorch's MTCNN needs torchvision.)

Absolute times were taken while training shared the 2 cores, so only their ratios are given;
``benchmarks/bench_faces.py`` times the detector on an idle machine.

Why BlazeFace first. ``detector="blazeface"`` is MediaPipe's full-range BlazeFace network
(:mod:`ferlab.faces.blazeface`, weights bundled, Apache-2.0), run by ONNX Runtime, at 192 px and then,
for faces the first pass may have missed, on a picture of up to 384 px. On real heads with their
surroundings (``compare_detectors.py --sizes``: 24 per face size on a 640x480 canvas) BlazeFace
finds 23 of 24 at 32 px and 24 of 24 from 40 px; Haar 2 of 24 at 48 px and at most 16 of 24
above, as it never finds the cameraman's turned head. Neither draws a false box there, nor on
the 106 pictures without a face (``compare_detectors.py``). Haar wins on LFW's tight crops (no
hair, no chin) pasted four to a canvas: 98 of 100 at 100 px against BlazeFace's 82, and 66-99
against 53-87 from 54 to 120 px. ``auto`` does not change that (BlazeFace finds some of the four
faces on each canvas, so Haar is not asked); ``detector="haar"`` is the choice for such
crops. ``benchmarks/bench_faces.py`` times both on an idle machine.

The crop matches training preprocessing. FER2013 faces were framed by a face detector: the Haar
alt2 cascade finds a face in 1,642 of 2,000 FER2013 faces, with a box whose side is a median
0.969 of the 48x48 frame (quartiles 0.906-1.031), centred to within 0.003 of the frame
(``benchmarks/bench_faces.py --framing DATA`` measures it). So the crop here is the Haar box
grown by ``CROP_SCALE`` = 1 / 0.969 about its centre, made grey, resized to 48x48.

Example:
    >>> import numpy as np
    >>> gray = np.full((200, 200), 128, np.uint8)
    >>> detect_faces(gray)            # a flat grey picture holds no face
    []
    >>> crop_face(gray, Box(50, 50, 100, 100)).shape
    (48, 48)
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from ..constants import DEFAULT_DETECTOR, DETECTORS, IMAGE_SIZE
from ..errors import ConfigError, DataError
from ..images import IMAGE_SUFFIXES, open_image, to_gray, to_rgb
from .blazeface import SCORE_THRESHOLD, BlazeFaceDetector, pass_side

# Side of a FER2013 frame over the side of the Haar box found in it: 1 / 0.969 (see module doc).
CROP_SCALE = 1.032

# BlazeFace's box mapped to the same frame, measured against Haar's on the 110 real heads both
# find in ``benchmarks/compare_detectors.py --sizes``: frame side = 1.079 box sides (quartiles
# 1.011-1.201), frame centre 0.047 box sides above the box's. (On FER2013's own faces BlazeFace
# finds only 283 of 1,000 and shrinks its box to their tight frames, ``bench_faces.py
# --framing``: the vertical offset agrees, -0.041, the side does not, so photos decide.)
BLAZE_SCALE = 1.079
BLAZE_DY = -0.047
# BlazeFace passes: at 192 px (MediaPipe's letterboxed square) it finds faces of 10-75 % of the
# photo's longer side; a second pass of up to 384 px finds them down to about 5 %, for up to
# 3x the first pass's time (``benchmarks/bench_faces.py``'s network table). ``sides=(192,)``
# (``make_detector(min_face=0.1)``, ``--min-face 0.1``) is the fast choice when faces are
# large (portraits, video of one person).
BLAZE_SIDES = (192, 384)
# The smallest face the 192-px pass alone finds, as a fraction of the photo's longer side: a
# ``min_face`` at least this large makes BlazeFace skip its second pass.
ONE_PASS_MIN_FACE = 0.1

# How each detector's box sits in a FER2013 frame (``benchmarks/bench_faces.py --framing``):
# (frame side / box side, frame centre - box centre in box sides, x and y). BlazeFace's box is
# tighter than Haar's and sits lower on the face, so its crop grows more and moves up.
FRAMING: dict[str, tuple[float, float, float]] = {
    "frontal": (CROP_SCALE, 0.0, 0.0),
    "profile": (CROP_SCALE, 0.0, 0.0),
    "blazeface": (BLAZE_SCALE, 0.0, BLAZE_DY),
    "whole": (1.0, 0.0, 0.0),  # a picture that is already a face crop is taken as it is
}

# In ``auto``, Haar runs only where BlazeFace found nothing, and searches only faces of at least
# this fraction of the photo's shorter side. BlazeFace finds real heads from 32-40 px on (module
# doc); what it leaves are tight crops, faces that fill the photo: on 272 of them
# (``benchmarks/compare_detectors.py --crops``) BlazeFace found 30 and Haar alone 190, each box
# at least 0.68 of the shorter side. Most of Haar's time goes to small sizes: the photo without
# a face in ``bench_faces.py`` takes 15-19 ms end to end, against 36-38 before this limit (when
# BlazeFace also ran in PyTorch). The price, in ``--sizes``' LFW sweep (tight crops pasted
# small, where Haar is the better detector): 3 faces of 900 fewer (52 and 64 of 100 at 54 and
# 60 px, against 53 and 66); ``detector="haar"`` searches every size.
FALLBACK_MIN_FACE = 0.4


# Detection runs on a copy whose longer side is at most this many pixels: Haar's cost grows with
# the pixel count (320 px: 3x faster than 512 px, same boxes on the sample photos). The price: a
# face under 24/320 = 7.5 % of the longer side is missed; ``max_side=None`` searches full size.
DETECT_SIDE = 320

# Step between searched face sizes. 1.2 would search about half the sizes and cut detection to
# 0.6x, but it misses faces near the smallest searched size (see the module doc), so 1.1.
SCALE_FACTOR = 1.1

# Smallest face searched, in pixels of the detection copy (the alt2 cascade's window is 20 px).
MIN_PX = 24

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


def _cascade(name: str) -> cv2.CascadeClassifier:
    path = Path(getattr(getattr(cv2, "data", None), "haarcascades", "")) / name
    c = cv2.CascadeClassifier(str(path))
    if c.empty():
        raise DataError(f"{path}: OpenCV's Haar cascade is missing; ferlab needs an OpenCV 4.x "
                        "wheel (opencv-python-headless<5), whose cv2.data ships the cascades")
    return c


class FaceDetector:
    """Haar-cascade face detector on grey images, returning boxes in the image's own pixels.

    Args:
        profile: also run the profile cascade (on the image and its mirror, since it only knows
            faces turned one way): finds turned heads, costs about 3x the time, so off by default.
        max_side: detect on a copy whose longer side is at most this (None: full size).
        min_neighbors: Haar's vote threshold; higher means fewer false faces and fewer faces.
        scale_factor: step between searched face sizes (1.1 = 10 %).
        min_size: smallest face searched, as a fraction of the photo's shorter side.
        frontal: which frontal cascade: ``default`` or ``alt2``.

    Example:
        >>> det = FaceDetector(profile=False)
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
        # No histogram equalisation: on scikit-image's astronaut it added a false face (the
        # shoulder patch) at every detection size tried, and found no face the plain image missed.
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


class BlazeFaceFinder:
    """MediaPipe's BlazeFace (:mod:`ferlab.faces.blazeface`) giving :class:`Box` es of kind
    ``blazeface``, largest first (``detector="blazeface"``; see the module doc).

    Args:
        score_threshold: keep faces the network scores above this (0-1).
        sides: the photo's longer side in each pass of the network (see ``BLAZE_SIDES``).
        bf16: with ``backend="torch"``, run the network in bfloat16; None (default): where the
            CPU has it natively.
        adaptive: the second pass only for faces the 192-px one may have missed, sized for
            them (see :class:`ferlab.faces.blazeface.BlazeFaceDetector`); False runs both passes in
            full on every photo.
        backend: who runs the network: ``onnx`` (ONNX Runtime, default) or ``torch``.
        onnx_path: the ``.onnx`` file ONNX Runtime runs; default: the one bundled with ferlab.

    Example:
        >>> BlazeFaceFinder()(np.full((120, 160), 128, np.uint8))
        []
    """

    def __init__(self, score_threshold: float = SCORE_THRESHOLD,
                 sides: tuple[int, ...] = BLAZE_SIDES, bf16: bool | None = None,
                 adaptive: bool = True, backend: str = "onnx",
                 onnx_path: str | Path | None = None) -> None:
        self.score_threshold = score_threshold
        self.sides, self.adaptive = sides, adaptive
        self._net = BlazeFaceDetector(score_threshold=score_threshold, sides=sides, bf16=bf16,
                                      adaptive=adaptive, backend=backend, onnx_path=onnx_path)

    def __call__(self, gray: np.ndarray) -> list[Box]:
        """Faces in ``gray`` (uint8 ``[H, W]``), largest first."""
        return [Box(x, y, w, h, kind="blazeface") for x, y, w, h, _ in self._net(gray)]


class FirstFound:
    """Detectors tried in order: the boxes of the first that finds a face (``detector="auto"``:
    BlazeFace, then Haar for the tight face crops BlazeFace misses).

    Example:
        >>> FirstFound(BlazeFaceFinder(), FaceDetector())(np.full((120, 160), 128, np.uint8))
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


Detector = FaceDetector | BlazeFaceFinder | FirstFound


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
        max_side = max(48, math.ceil(MIN_PX / min_face))  # 48: FaceDetector's floor
    blaze = _blaze_passes(min_face)
    if name == "blazeface" and profile:
        raise ConfigError("the profile cascade is a Haar option: use detector 'haar' or 'auto' "
                          "with it (BlazeFace finds turned heads on its own)")
    if name == "blazeface":
        return BlazeFaceFinder(**blaze)
    if name == "haar":
        return FaceDetector(profile=profile, max_side=max_side, min_neighbors=min_neighbors)
    fallback = FaceDetector(profile=profile, max_side=max_side, min_neighbors=min_neighbors,
                            min_size=FALLBACK_MIN_FACE)
    return FirstFound(BlazeFaceFinder(**blaze), fallback)


def _blaze_passes(min_face: float | None) -> dict:
    """BlazeFace's passes for ``make_detector``'s ``min_face``."""
    if min_face is None:
        return {"sides": BLAZE_SIDES, "adaptive": True}
    if min_face >= ONE_PASS_MIN_FACE:
        return {"sides": BLAZE_SIDES[:1], "adaptive": True}
    return {"sides": (BLAZE_SIDES[0], pass_side(min_face, BLAZE_SIDES[-1])), "adaptive": False}


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


def crop_box(box: Box, scale: float | None = None) -> tuple[int, int, int]:
    """The square ``(x, y, side)`` cut out for ``box``, framed as FER2013 frames faces.

    Its side is ``max(w, h) * scale`` and its centre the box's, both as :data:`FRAMING` says for
    the detector that found the box; a ``scale`` given here overrides the side, not the centre.
    """
    frame_scale, dx, dy = FRAMING.get(box.kind, FRAMING["frontal"])
    box_side = max(box.w, box.h)
    side = max(1, round(box_side * (frame_scale if scale is None else scale)))
    cx = box.x + box.w / 2 + dx * box_side
    cy = box.y + box.h / 2 + dy * box_side
    return round(cx - side / 2), round(cy - side / 2), side


def crop_face(gray: np.ndarray, box: Box, scale: float | None = None, size: int = IMAGE_SIZE
              ) -> np.ndarray:
    """The ``size`` x ``size`` uint8 face for ``box``, framed like FER2013.

    Parts of the square that fall outside the photo repeat its edge pixels, rather than black,
    which a model trained on FER2013 has never seen at a face's border. A ``whole`` box (a
    picture that is already a face crop) is taken as it is, without the margin.
    """
    x, y, side = crop_box(box, 1.0 if box.kind == "whole" else scale)
    h, w = gray.shape
    pad = max(0, -x, -y, x + side - w, y + side - h)
    if pad:
        gray = cv2.copyMakeBorder(gray, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
        x, y = x + pad, y + pad
    patch = gray[y:y + side, x:x + side]
    # INTER_AREA averages when shrinking (no aliasing); linear when a small face is enlarged.
    interp = cv2.INTER_AREA if side > size else cv2.INTER_LINEAR
    return cv2.resize(patch, (size, size), interpolation=interp)


def crop_faces(gray: np.ndarray, boxes: list[Box], scale: float | None = None) -> np.ndarray:
    """uint8 ``[N, 48, 48]`` crops of every box (``[0, 48, 48]`` when there are none)."""
    if not boxes:
        return np.zeros((0, IMAGE_SIZE, IMAGE_SIZE), np.uint8)
    return np.stack([crop_face(gray, b, scale) for b in boxes])


@dataclass
class Photo:
    """A decoded photo: upright RGB for drawing and grey levels for the model."""

    rgb: np.ndarray  # uint8 [H, W, 3]
    gray: np.ndarray  # uint8 [H, W]
    name: str = ""


def load_photo(source: str | Path | bytes | np.ndarray | Image.Image, name: str | None = None,
               channels: str = "rgb") -> Photo:
    """Decode a photo from a path, bytes, a Pillow image or an array.

    Files go through :func:`ferlab.images.open_image` (EXIF orientation, RGBA, CMYK, 16-bit,
    palette; decompression bombs refused). Arrays are ``[H, W]`` grey or ``[H, W, 3|4]`` colour
    in ``channels`` order: ``"rgb"`` (Pillow, matplotlib, scikit-image) or ``"bgr"`` (OpenCV's
    ``cv2.imread`` and video frames); 16-bit and float arrays are scaled to 0..255.

    Example:
        >>> load_photo(np.zeros((10, 20, 3), np.uint8)).gray.shape
        (10, 20)
    """
    if channels not in ("rgb", "bgr"):
        raise ConfigError(f"channels must be 'rgb' or 'bgr', got {channels!r}")
    if isinstance(source, np.ndarray):
        a = _to_uint8(source, name or "<array>")
        if a.ndim == 2:
            rgb = np.repeat(a[:, :, None], 3, axis=2)
        elif a.ndim == 3 and a.shape[2] in (3, 4):
            rgb = a[:, :, :3] if channels == "rgb" else a[:, :, 2::-1]
            rgb = np.ascontiguousarray(rgb)
        else:
            raise DataError(f"{name or '<array>'}: expected an [H, W] or [H, W, 3|4] image "
                            f"array, got shape {tuple(source.shape)}")
        gray = a if a.ndim == 2 else cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
        return Photo(rgb=rgb, gray=gray, name=name or "<array>")
    if isinstance(source, Image.Image):
        img, label = source, name or "<image>"
    else:
        label = name or (str(source) if not isinstance(source, bytes) else "<bytes>")
        img = open_image(source, label)
    return Photo(rgb=to_rgb(img), gray=to_gray(img), name=label)


def _to_uint8(a: np.ndarray, name: str) -> np.ndarray:
    if a.size == 0:
        raise DataError(f"{name}: empty image array")
    if a.dtype == np.uint8:
        return a
    if a.dtype == np.uint16:
        return (a.astype(np.float32) / 257.0 + 0.5).astype(np.uint8)
    if np.issubdtype(a.dtype, np.floating):
        hi = 1.0 if float(np.nanmax(a)) <= 1.0 else 255.0
        return np.clip(np.nan_to_num(a) * (255.0 / hi) + 0.5, 0, 255).astype(np.uint8)
    if np.issubdtype(a.dtype, np.integer) or a.dtype == np.bool_:
        return np.clip(a, 0, 255).astype(np.uint8)
    raise DataError(f"{name}: cannot use an image array of dtype {a.dtype}")


def list_photos(path: str | Path) -> list[Path]:
    """The photo itself, or every image file under a folder (sorted, recursive).

    Raises:
        DataError: the path does not exist, or the folder holds no image file.
    """
    p = Path(path)
    if p.is_dir():
        files = sorted(f for f in p.rglob("*") if f.is_file()
                       and f.suffix.lower() in IMAGE_SUFFIXES and not f.name.startswith("."))
        if not files:
            raise DataError(f"{p}: folder holds no image file ({', '.join(IMAGE_SUFFIXES)})")
        return files
    if not p.exists():
        raise DataError(f"{p}: no such photo or folder")
    return [p]
