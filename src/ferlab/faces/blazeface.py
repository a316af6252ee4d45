"""BlazeFace, MediaPipe's full-range face detector: the network, its anchors and decoding.

:class:`BlazeFaceFullRange` is the network (PyTorch), :class:`BlazeFaceNet` runs it on grey
photos (ONNX Runtime by default) and gives :class:`BlazeFaceDetection` s with keypoints;
:class:`ferlab.faces.detect.BlazeFaceDetector` is the detector ferlab's pipeline uses.

The network, anchors, box decoding and weighted non-max suppression reproduce MediaPipe's
``face_detection_full_range`` graph: a 192x192 RGB input in [-1, 1], letterboxed (the photo scaled
to fit, centred, black bars), one anchor per cell of a 48x48 grid, a face score per anchor and a
box plus 6 keypoints relative to it. The network is written here in PyTorch; its weights
(float16, as in the ``.tflite`` file, so bit-exact) come from ``scripts/convert_blazeface.py``,
and ``scripts/export_blazeface_onnx.py`` exports it to the ONNX file that ONNX Runtime runs by
default (``BACKENDS``). The model is Apache-2.0, by Google (MediaPipe), see
``src/ferlab/assets/README.md``. Nothing is downloaded.

At 192 px the model finds faces of about 10-75 % of the photo's longer side (a face needs some
20 px of the input). For smaller faces the detector adds a second pass at 384 px: the network is
fully convolutional, so it runs on any size that is a multiple of 32 and then finds faces down to
about 5 % of the longer side (a 32-px face in a 640x480 photo). Faces that fill the picture are
too big for that pass, so the 192 pass stays. With ``adaptive`` passes (the default), the
second pass looks only for what the first may have missed: every face when it found none, else
faces down to half the smallest it found, on a picture just big enough for those (see
``MIN_FACE_PX``), and none when the 192 pass already reaches that far. Neither finds a face cropped
so tight that no hair or chin shows (a FER2013 or LFW crop): BlazeFace needs a little context.

Example:
    >>> import numpy as np
    >>> detect = BlazeFaceNet()
    >>> detect(np.full((480, 640), 128, np.uint8))     # a flat grey picture holds no face
    []
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from torch import nn

from .. import assets
from ..errors import ConfigError, DataError, ModelError
from ..precision import resolve_precision

INPUT_SIDE = 192  # MediaPipe feeds the network 192x192 pixels
STRIDE = 4  # one anchor per 4x4 input pixels, at the cell centre (a 48x48 grid at 192)
SIZE_STEP = 32  # the network halves the map 5 times: input sides must be multiples of 32
NUM_KEYPOINTS = 6  # eyes, nose tip, mouth centre, ear tragions (pairs: image left, then right)
# MediaPipe's own settings for this model are a score above 0.6 and IoU 0.3
# (face_detection_full_range.pbtxt, face_detection.pbtxt). 0.5 finds more small faces and no
# more false ones (benchmarks/FACES.md, "BlazeFace's settings").
SCORE_THRESHOLD = 0.5
NMS_IOU = 0.3
RAW_SCORE_CLIP = 100.0  # logits are clipped to +-this before the sigmoid, as MediaPipe does
# Longer side of the picture in each pass: 192 (MediaPipe's letterboxed square) finds faces of
# 10-75 % of the longer side, 384 (padded to multiples of 32 only) faces of 5-40 %.
PASS_SIDES = (INPUT_SIDE, 2 * INPUT_SIDE)
# The smallest face the 192-px pass alone finds, as a fraction of the photo's longer side: a
# detector asked for no smaller faces than this needs no second pass.
ONE_PASS_MIN_FACE = 0.1
# With ``adaptive`` passes, a pass after the first looks for faces down to half the smallest
# face found so far (every face when none was found): it is made just big enough for those
# faces to be MIN_FACE_PX wide in it, and is skipped when that is no bigger than the pass
# before, so a close portrait or a webcam frame takes one pass. 24 px rather than the 19 px
# that the 192 pass reaches (10 % of its side) keeps a face of just half the smallest one in
# reach. What it costs in bystanders missed: benchmarks/FACES.md, "Adaptive passes".
MIN_FACE_PX = 24
# Canvases up to this size run on one thread (see ``BlazeFaceNet.small_session``).
SMALL_PASS_PIXELS = INPUT_SIDE * INPUT_SIDE
ASSET_NAME = "blazeface_full_range.safetensors"
# The same network as an ONNX graph on uint8 grey input (scripts/export_blazeface_onnx.py).
ONNX_NAME = "blazeface_full_range.onnx"
# Who runs the network: ONNX Runtime by default, on a graph laid out for its CPU kernels
# (scripts/export_blazeface_onnx.py), which runs faster (benchmarks/FACES.md). PyTorch is the
# reference the ONNX file is made from and checked against.
BACKENDS = ("onnx", "torch")

# Backbone blocks: (in channels, narrow channels, out channels, stride). The 48x48, 24x24 and
# 12x12 outputs of blocks 4, 7 and 10 feed the top-down (feature pyramid) path.
BACKBONE = [(32, 8, 32, 1), (32, 8, 32, 1), (32, 12, 48, 2),
            (48, 12, 48, 1), (48, 16, 64, 1), (64, 24, 96, 2),
            (96, 32, 128, 1), (128, 32, 128, 1), (128, 36, 144, 2),
            (144, 48, 192, 1), (192, 64, 256, 1), (256, 96, 384, 2),
            (384, 96, 384, 1), (384, 96, 384, 1), (384, 96, 384, 1)]
TAPS = (4, 7, 10)
# Top-down levels: (channels from above, channels of the tap it joins, channels of the level,
# BlazeBlocks after the join).
TOP_DOWN = [(384, 256, 96, 2), (96, 128, 64, 2), (64, 64, 48, 1)]


def asset_path(name: str = ASSET_NAME) -> Path:
    """Where the bundled weights live: ``ferlab/assets/`` inside the installed package."""
    return assets.asset_path(name)


def _pad_same_stride2(x: torch.Tensor) -> torch.Tensor:
    # TFLite's SAME padding for a 3x3 stride-2 conv on an even size pads 0 before and 1 after;
    # PyTorch's symmetric padding=1 would shift every output by a pixel.
    return F.pad(x, (0, 1, 0, 1))


class BlazeBlock(nn.Module):
    """Two depthwise-separable 3x3 convs with a residual connection, then ReLU.

    ``dw1 -> pw1 (narrow) -> ReLU -> dw2 -> pw2 (wide)``, added to the input. A stride-2 block
    halves the map: ``dw1`` strides and the shortcut is a 2x2 max-pool. When the block widens,
    the shortcut's extra channels are zeros (the TFLite graph pads channels).
    """

    def __init__(self, c_in: int, c_mid: int, c_out: int, stride: int = 1) -> None:
        super().__init__()
        self.stride, self.extra = stride, c_out - c_in
        self.dw1 = nn.Conv2d(c_in, c_in, 3, stride, padding=1 if stride == 1 else 0,
                             groups=c_in)
        self.pw1 = nn.Conv2d(c_in, c_mid, 1)
        self.dw2 = nn.Conv2d(c_mid, c_mid, 3, padding=1, groups=c_mid)
        self.pw2 = nn.Conv2d(c_mid, c_out, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride == 2:
            h, x = self.dw1(_pad_same_stride2(x)), F.max_pool2d(x, 2)
        else:
            h = self.dw1(x)
        h = self.pw2(self.dw2(F.relu(self.pw1(h), inplace=True)))
        if self.extra:
            x = F.pad(x, (0, 0, 0, 0, 0, self.extra))
        return F.relu(h.add_(x), inplace=True)


class TopDownLevel(nn.Module):
    """One feature-pyramid step: the coarser map, 1x1-reduced and upsampled 2x, plus the
    backbone's map at this size (1x1-reduced), refined by ``n_blocks`` BlazeBlocks."""

    def __init__(self, c_above: int, c_tap: int, c: int, n_blocks: int) -> None:
        super().__init__()
        self.top = nn.Conv2d(c_above, c, 1)
        self.lateral = nn.Conv2d(c_tap, c, 1)
        self.blocks = nn.Sequential(*(BlazeBlock(c, c // 2, c) for _ in range(n_blocks)))

    def forward(self, above: torch.Tensor, tap: torch.Tensor) -> torch.Tensor:
        # align_corners=False is TFLite's half_pixel_centers resize; for 2x both match exactly.
        up = F.interpolate(F.relu(self.top(above)), scale_factor=2.0, mode="bilinear",
                           align_corners=False)
        return self.blocks(F.relu(self.lateral(tap)) + up)


class BlazeFaceFullRange(nn.Module):
    """The network: ``[N, 3, 192, 192]`` in [-1, 1] -> raw box/keypoint offsets and logits.

    Explicit layers rather than a replay of the TFLite graph: the graph is a regular stack of
    one block type, and named layers make the model readable and ``get_submodule``-able.
    Parameter names match ``blazeface_full_range.safetensors``.

    Example:
        >>> net = BlazeFaceFullRange().eval()
        >>> regressors, logits = net(torch.zeros(1, 3, 192, 192))
        >>> tuple(regressors.shape), tuple(logits.shape)
        ((1, 2304, 16), (1, 2304))
    """

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 32, 3, 2)  # stride 2, TFLite SAME padding (in forward)
        self.backbone = nn.ModuleList(BlazeBlock(*spec) for spec in BACKBONE)
        self.top_down = nn.ModuleList(TopDownLevel(*spec) for spec in TOP_DOWN)
        self.classifier = nn.Conv2d(48, 1, 1)
        self.regressor = nn.Conv2d(48, 4 + 2 * NUM_KEYPOINTS, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns ``regressors [N, A, 16]`` (x, y, w, h, then 6 keypoints' x, y, in input
        pixels, relative to the anchor) and ``logits [N, A]``, for the ``A = H/4 * W/4``
        anchors in row-major order (2304 at 192x192). H and W must be multiples of 32."""
        return self.heads(self.pyramid(F.relu(self.stem(_pad_same_stride2(x)))))

    def pyramid(self, x: torch.Tensor) -> torch.Tensor:
        """The stem's output -> the 48-channel map at a quarter of the input's size."""
        taps = []
        for i, block in enumerate(self.backbone):
            x = block(x)
            if i in TAPS:
                taps.append(x)
        for level, tap in zip(self.top_down, reversed(taps), strict=True):
            x = level(x, tap)
        return x

    def heads(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The pyramid's map -> ``(regressors, logits)`` per anchor, as :meth:`forward`."""
        n = x.shape[0]
        regressors = self.regressor(x).permute(0, 2, 3, 1).reshape(n, -1, 4 + 2 * NUM_KEYPOINTS)
        logits = self.classifier(x).reshape(n, -1)
        return regressors, logits


def load_blazeface(path: str | Path | None = None) -> BlazeFaceFullRange:
    """The network with the bundled weights (float32, eval mode).

    Raises:
        ModelError: the weights file is missing or does not fit the network.
    """
    path = Path(path) if path is not None else asset_path()
    if not path.is_file():
        raise ModelError(f"{path}: BlazeFace weights are missing; reinstall ferlab or rebuild "
                         "them with scripts/convert_blazeface.py")
    net = BlazeFaceFullRange()
    state = {k: v.float() for k, v in load_file(str(path)).items()}
    try:
        net.load_state_dict(state)
    except RuntimeError as e:
        raise ModelError(f"{path}: weights do not fit the BlazeFace network: {e}") from e
    return net.eval()


def _onnx_session(path: Path, threads: int):
    """An ONNX Runtime session for the network in ``path``, on ``threads`` CPU threads.

    Raises:
        ModelError: the file is missing or is not the network.
    """
    import onnxruntime as ort  # imported here: only face detection needs it

    if not path.is_file():
        raise ModelError(f"{path}: BlazeFace's ONNX file is missing; reinstall ferlab or rebuild "
                         "it with scripts/export_blazeface_onnx.py")
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    # No busy-waiting between passes: spinning threads would take the cores from PyTorch,
    # which classifies the faces right after detection.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3  # errors only
    try:
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as e:  # ORT raises its own exception types for unreadable graphs
        raise ModelError(f"{path}: ONNX Runtime cannot load it: {e}") from e
    if [i.name for i in session.get_inputs()] != ["grey"]:
        raise ModelError(f"{path}: not ferlab's BlazeFace graph (its input is not 'grey')")
    return session


def anchor_centres(height: int = INPUT_SIDE, width: int = INPUT_SIDE) -> np.ndarray:
    """``[A, 2]`` anchor centres (x, y) in input pixels, row-major over the ``H/4 x W/4`` grid.

    (MediaPipe's SSD anchors with one layer, stride 4, offset 0.5 and a fixed size of 1.)

    Example:
        >>> anchor_centres()[:2].tolist()
        [[2.0, 2.0], [6.0, 2.0]]
    """
    xs = (np.arange(width // STRIDE, dtype=np.float32) + 0.5) * STRIDE
    ys = (np.arange(height // STRIDE, dtype=np.float32) + 0.5) * STRIDE
    gy, gx = np.meshgrid(ys, xs, indexing="ij")
    return np.stack([gx.ravel(), gy.ravel()], axis=1)


def pass_side(face: float, largest: int = PASS_SIDES[-1]) -> int:
    """The longer side of a pass in which a face of ``face`` (a fraction of the photo's longer
    side) is ``MIN_FACE_PX`` wide, rounded up to a multiple of 32 and at most ``largest``.

    Example:
        >>> pass_side(0.1), pass_side(0.05)
        (256, 384)
    """
    side = math.ceil(MIN_FACE_PX / max(face, 1e-6))
    return min(largest, -(-side // SIZE_STEP) * SIZE_STEP)


# Canvas shapes repeat (a video's frames, a folder of one camera's photos); a bounded cache
# keeps a stream of odd sizes from growing it without end.
_anchor_grid = functools.lru_cache(maxsize=64)(anchor_centres)


@dataclass(frozen=True)
class BlazeFaceDetection:
    """One face :class:`BlazeFaceNet` found, in the photo's pixels: box ``(x, y, w, h)``,
    score, ``keypoints [6, 2]``.

    Boxes are not clipped: a face cut by the photo's edge may reach past it.
    """

    x: int
    y: int
    w: int
    h: int
    score: float
    keypoints: np.ndarray


def weighted_nms(boxes: np.ndarray, scores: np.ndarray, iou: float) -> list[tuple[np.ndarray,
                                                                                    float]]:
    """MediaPipe's weighted non-max suppression.

    ``boxes`` is ``[N, K]``: columns 0-3 are ``xmin, ymin, xmax, ymax``, further columns
    (keypoints) are averaged along with them. Taking the best-scored box left, every box left
    whose IoU with it exceeds ``iou`` (itself included) is merged into it, as a mean weighted by
    score; the merged row keeps the best score. Returns ``(row, score)`` pairs, best first.

    Example:
        >>> b = np.array([[0, 0, 10, 10], [2, 0, 12, 10], [50, 50, 60, 60]], np.float32)
        >>> [(r[:4].tolist(), s) for r, s in weighted_nms(b, np.array([.9, .9, .8]), 0.3)]
        [([1.0, 0.0, 11.0, 10.0], 0.9), ([50.0, 50.0, 60.0, 60.0], 0.8)]
    """
    order = np.argsort(-scores, kind="stable")
    boxes, scores = boxes[order], scores[order]
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    left = np.ones(len(boxes), bool)
    out = []
    for i in range(len(boxes)):
        if not left[i]:
            continue
        b = boxes[i]
        iw = np.clip(np.minimum(b[2], boxes[:, 2]) - np.maximum(b[0], boxes[:, 0]), 0, None)
        ih = np.clip(np.minimum(b[3], boxes[:, 3]) - np.maximum(b[1], boxes[:, 1]), 0, None)
        inter = iw * ih
        union = area[i] + area - inter
        overlap = np.where(union > 0, inter / np.where(union > 0, union, 1), 0)
        group = left & (overlap > iou)
        group[i] = True
        w = scores[group]
        out.append(((boxes[group] * w[:, None]).sum(0) / w.sum(), float(scores[i])))
        left &= ~group
    return out


class BlazeFaceNet:
    """MediaPipe's full-range BlazeFace run on grey photos, on the CPU: the passes, the box
    decoding and the weighted non-max suppression, giving scores and keypoints
    (:class:`ferlab.faces.detect.BlazeFaceDetector` turns them into ferlab's boxes).

    Each pass scales the photo so that its longer side is ``side`` pixels and pads it with black:
    to a square for the 192 pass (MediaPipe's letterbox), to multiples of 32 for other sides.
    Detections of all passes are merged by weighted non-max suppression and mapped back to the
    photo's pixels, so any aspect ratio works.

    Args:
        score_threshold: keep faces scored above this (0-1); MediaPipe's graph uses 0.6.
        nms_iou: boxes overlapping a better one by more than this IoU are merged into it.
        sides: longer side of the picture in each pass, coarse to fine. ``(192,)`` alone is
            MediaPipe's detector; it misses faces under about 10 % of the photo's longer side.
        adaptive: a pass after the first looks only for faces down to half the smallest one
            found so far, on a picture just big enough for them (``MIN_FACE_PX``), and is
            skipped when the passes before reach that far; every face when none was found.
            Portraits and webcam frames then cost one pass; the price is a bystander under half
            the size of the closest face (``adaptive=False`` runs every pass in full).
        weights: a ``.safetensors`` file; default: the one bundled with ferlab.
        bf16: with ``backend="torch"``, run the network in bfloat16; None (default) where
            the CPU computes bf16 natively (:func:`ferlab.precision.bf16_is_native`); boxes stay
            within a pixel or two of float32 (``tests/test_blazeface.py``).
        backend: ``onnx`` (default), the network in ONNX Runtime from ``onnx_path``; or
            ``torch``, the PyTorch module from ``weights``.
        onnx_path: an ``.onnx`` file; default: the one bundled with ferlab.

    Example:
        >>> detect = BlazeFaceNet()
        >>> detect(np.zeros((100, 300), np.uint8))
        []
    """

    def __init__(self, score_threshold: float = SCORE_THRESHOLD, nms_iou: float = NMS_IOU,
                 sides: tuple[int, ...] = PASS_SIDES, weights: str | Path | None = None,
                 bf16: bool | None = None, adaptive: bool = True, backend: str = "onnx",
                 onnx_path: str | Path | None = None) -> None:
        if not 0.0 < score_threshold < 1.0:
            raise ConfigError(f"score_threshold must be between 0 and 1, got {score_threshold}")
        if not 0.0 < nms_iou <= 1.0:
            raise ConfigError(f"nms_iou must be in (0, 1], got {nms_iou}")
        if not sides or any(s < SIZE_STEP or s % SIZE_STEP for s in sides):
            raise ConfigError(f"sides must be multiples of {SIZE_STEP} pixels, got {sides}")
        self.score_threshold = score_threshold
        self.nms_iou = nms_iou
        self.sides = tuple(sides)
        self.adaptive = adaptive
        # Threshold on logits, so that only the few anchors above it go through the sigmoid.
        self._min_logit = math.log(score_threshold / (1.0 - score_threshold))
        if backend not in BACKENDS:
            raise ConfigError(f"backend must be one of {list(BACKENDS)}, got {backend!r}")
        self.backend = backend
        # Through resolve_precision, the one place "auto" is decided for every command.
        self.bf16 = backend == "torch" and (resolve_precision("auto").bf16 if bf16 is None
                                             else bool(bf16))
        if backend == "onnx":
            path = Path(onnx_path) if onnx_path else asset_path(ONNX_NAME)
            self.session = _onnx_session(path, torch.get_num_threads())
            # The 192-px pass is too small to gain from a second thread, and slows down when
            # that thread's core is busy (benchmarks/FACES.md, "Threads").
            self.small_session = (_onnx_session(path, 1) if torch.get_num_threads() > 1
                                  else self.session)
        else:
            # channels_last: PyTorch's CPU depthwise convs are faster on NHWC data.
            # Weights held in bf16 rather than autocast, which would re-cast them every pass.
            self.net = load_blazeface(weights).to(
                torch.bfloat16 if self.bf16 else torch.float32, memory_format=torch.channels_last)

    def letterbox(self, gray: np.ndarray, side: int = INPUT_SIDE
                  ) -> tuple[np.ndarray, float, int, int]:
        """The network's uint8 input for one pass and how it was made: ``(canvas, scale, left,
        top)``, where a photo pixel ``(x, y)`` lands at ``(x * scale + left, y * scale + top)``.

        The photo is scaled to a longer side of ``side`` and centred on black: a square when
        ``side`` is 192 (MediaPipe's input), else a canvas whose sides are the next multiples
        of 32, which spares the larger pass most of the padding a square would need.
        """
        h, w = gray.shape
        scale = side / max(h, w)
        nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
        if side == INPUT_SIDE:
            ch = cw = side
        else:
            ch, cw = (-(-n // SIZE_STEP) * SIZE_STEP for n in (nh, nw))
        left, top = (cw - nw) // 2, (ch - nh) // 2
        canvas = np.zeros((ch, cw), np.uint8)
        # INTER_AREA averages when shrinking; MediaPipe's bilinear warp would alias big photos.
        interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
        canvas[top:top + nh, left:left + nw] = cv2.resize(gray, (nw, nh), interpolation=interp)
        return canvas, scale, left, top

    def raw(self, canvas: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The network's outputs for a uint8 grey ``[H, W]`` input (sides multiples of 32):
        ``regressors [A, 16]`` and ``logits [A]`` (numpy, float32)."""
        if self.backend == "onnx":
            session = self.small_session if canvas.size <= SMALL_PASS_PIXELS else self.session
            regressors, logits = session.run(None, {"grey": canvas[None, None]})
            return regressors[0], logits[0]
        return self._raw_torch(canvas)

    @torch.inference_mode()
    def _raw_torch(self, canvas: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        # Grey is fed as R = G = B, in [-1, 1].
        h, w = canvas.shape
        x = torch.from_numpy(canvas).to(torch.float32).mul_(1 / 127.5).sub_(1.0)
        x = x.to(torch.bfloat16 if self.bf16 else torch.float32).expand(1, 3, h, w)
        regressors, logits = self.net(x.contiguous(memory_format=torch.channels_last))
        return regressors[0].float().numpy(), logits[0].float().numpy()

    def _candidates(self, gray: np.ndarray, side: int) -> tuple[np.ndarray, np.ndarray]:
        """One pass: rows ``[xmin, ymin, xmax, ymax, 6 keypoints' x, y]`` in photo pixels and
        their scores, for the anchors scored above the threshold."""
        canvas, scale, left, top = self.letterbox(gray, side)
        regressors, logits = self.raw(canvas)
        keep = np.flatnonzero(logits > self._min_logit)
        r, anchors = regressors[keep], _anchor_grid(*canvas.shape)[keep]
        scores = 1.0 / (1.0 + np.exp(-np.clip(logits[keep], -RAW_SCORE_CLIP, RAW_SCORE_CLIP)))
        centre, half = r[:, 0:2] + anchors, r[:, 2:4] / 2
        points = r[:, 4:].reshape(-1, NUM_KEYPOINTS, 2) + anchors[:, None, :]
        xy = np.concatenate([(centre - half)[:, None], (centre + half)[:, None], points], axis=1)
        rows = ((xy - (left, top)) / scale).reshape(len(r), 4 + 2 * NUM_KEYPOINTS)  # un-letterbox
        valid = (half > 0).all(axis=1)  # MediaPipe drops boxes of non-positive size
        return rows[valid], scores[valid]

    def _finer_side(self, found: list[tuple[np.ndarray, np.ndarray]],
                    shape: tuple[int, int], side: int) -> int:
        """The longer side of the next pass, at most ``side``: just enough for a face half the
        smallest one found so far to be ``MIN_FACE_PX`` wide; ``side`` when none was found."""
        rows = np.concatenate([r for r, _ in found])
        if not len(rows):
            return side
        faces = weighted_nms(rows, np.concatenate([s for _, s in found]), self.nms_iou)
        smallest = min(max(r[2] - r[0], r[3] - r[1]) for r, _ in faces) / max(shape)
        return pass_side(smallest / 2, side)

    def detect(self, gray: np.ndarray) -> list[BlazeFaceDetection]:
        """Faces in a uint8 ``[H, W]`` grey photo, with keypoints, largest first.

        Raises:
            DataError: ``gray`` is not a non-empty uint8 ``[H, W]`` array.
        """
        if not isinstance(gray, np.ndarray) or gray.ndim != 2 or gray.dtype != np.uint8:
            got = (f"{gray.dtype} {tuple(gray.shape)}" if isinstance(gray, np.ndarray)
                   else type(gray).__name__)
            raise DataError(f"face detection needs a uint8 [H, W] grey image, got {got}")
        if gray.size == 0:
            raise DataError(f"face detection got an empty image {tuple(gray.shape)}")
        found, last = [], 0
        for side in self.sides:
            if found and self.adaptive:
                side = self._finer_side(found, gray.shape, side)
                if side <= last:  # the passes so far reach the faces this one would look for
                    break
            found.append(self._candidates(gray, side))
            last = side
        rows = np.concatenate([r for r, _ in found])
        if not len(rows):
            return []
        faces = []
        for row, score in weighted_nms(rows, np.concatenate([s for _, s in found]), self.nms_iou):
            (x0, y0), (x1, y1), *points = row.reshape(-1, 2)
            faces.append(BlazeFaceDetection(round(x0), round(y0), round(x1 - x0),
                                            round(y1 - y0), score, np.array(points, np.float32)))
        return sorted(faces, key=lambda f: -f.w * f.h)

    def __call__(self, gray: np.ndarray) -> list[tuple[int, int, int, int, float]]:
        """``(x, y, w, h, score)`` of each face in a uint8 ``[H, W]`` grey photo, largest first.

        Example:
            >>> BlazeFaceNet()(np.full((64, 64), 200, np.uint8))
            []
        """
        return [(f.x, f.y, f.w, f.h, f.score) for f in self.detect(gray)]
