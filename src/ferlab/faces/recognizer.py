"""Emotions of the faces in a photo: detect, crop like FER2013, classify, draw, explain.

The Python API follows the ``fer`` package (``FER().detect_emotions(img)``), with the
preprocessing mismatches that package is known for made impossible: arrays are RGB unless you say
``channels="bgr"``, the crop is the FER2013 framing (:mod:`ferlab.faces`), and class names come
from the model file, which stores ferlab's fixed order.

Example:
    >>> from ferlab.faces.recognizer import Recognizer
    >>> rec = Recognizer("bundled")                                  # doctest: +SKIP
    >>> faces = rec.detect_emotions("photo.jpg")                     # doctest: +SKIP
    >>> faces[0].label, faces[0].probabilities["happy"]              # doctest: +SKIP
    ('happy', 0.91)
    >>> heat = rec.explain(faces[0], "gradcam")                      # doctest: +SKIP
"""

from __future__ import annotations

import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from ..constants import EMOTIONS, IMAGE_SIZE
from ..errors import DataError, FerlabError, ModelError
from ..inference import average_probs, inference_copy, tta_mode
from ..io_utils import atomic_write, write_json
from ..precision import autocast, resolve_precision
from ..runtime.choice import resolve_runtime
from ..runtime.onnx_classifier import OnnxClassifier, as_onnx, load_classifier
from ..threads import threads_for, torch_threads
from .detect import DETECT_SIDE, Box, Photo, crop_faces, list_photos, load_photo, make_detector

# One colour per class (box, label, bar), chosen to read on photos and for colour-blind viewers
# (Okabe-Ito palette).
COLORS: dict[str, tuple[int, int, int]] = {
    "angry": (213, 94, 0), "disgust": (0, 158, 115), "fear": (204, 121, 167),
    "happy": (240, 228, 66), "sad": (0, 114, 178), "surprise": (230, 159, 0),
    "neutral": (190, 190, 190),
}

# A picture at most this big on each side and nearly square is taken whole as one face: it is
# most likely already a face crop (a FER2013 image is 48x48). Detecting in it would only cut a
# little off the frame (Haar finds a box of about 0.9 of a 48x48 synthetic face) or miss.
WHOLE_FACE_MAX_SIDE = 2 * IMAGE_SIZE


@dataclass
class Face:
    """One face in a photo and what the model makes of it."""

    box: Box  # where, in the photo's pixels
    label: str  # the most probable emotion
    probabilities: dict[str, float]  # emotion -> probability, in ferlab's class order
    crop: np.ndarray = field(repr=False)  # uint8 [48, 48], what the model saw

    @property
    def label_index(self) -> int:
        return EMOTIONS.index(self.label)

    @property
    def score(self) -> float:
        return self.probabilities[self.label]

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: box, detector, label, probabilities (rounded to 4 decimals)."""
        b = self.box
        return {"box": {"x": b.x, "y": b.y, "w": b.w, "h": b.h}, "detector": b.kind,
                "label": self.label,
                "probabilities": {k: round(v, 4) for k, v in self.probabilities.items()}}


def _load(model: str | Path | torch.nn.Module | OnnxClassifier
          ) -> torch.nn.Module | OnnxClassifier:
    if isinstance(model, torch.nn.Module):
        return model.eval()
    return load_classifier(model)


class Recognizer:
    """Face detector plus emotion classifier.

    Args:
        model: ``"bundled"``, a model file, a run folder, an ensemble folder, or a loaded model.
        tta: test-time augmentation: ``True``/``"flip"`` averages each face with its mirror,
            ``"shift"`` also with 2-pixel shifts (see :func:`ferlab.predict.tta_views`).
        precision: ``auto`` (default: bf16 where the CPU computes it natively, where it is
            faster; else fp32), ``fp32`` or ``bf16`` (:mod:`ferlab.precision`).
        bf16: older spelling of ``precision`` (True = bf16, False = fp32); None: use
            ``precision``. Faster where it is native
            (``benchmarks/bench_faces.py`` against ``--fp32``). A model the Recognizer loads
            runs as a folded bf16 copy (:func:`ferlab.inference.inference_copy`), a model passed in
            under autocast; explanations always use the float32 model.
        threads: torch threads the classifier runs on; 0 (default): one, which holds up when
            another process takes a core (:mod:`ferlab.threads`); the caller's setting is put
            back after each call.
        detector: ``"auto"`` (default: MediaPipe's BlazeFace network, then OpenCV's Haar
            cascade on photos where BlazeFace finds no face), ``"blazeface"`` or ``"haar"``; see
            :mod:`ferlab.faces` for what each finds and costs.
        profile: Haar's profile cascade too, for turned heads (slower; implies ``"haar"``).
        max_side: Haar detects on a copy at most this many pixels on its longer side (None: full
            size).
        min_neighbors: Haar's vote threshold (higher: fewer false faces).
        runtime: who classifies the faces: ``torch``, ``onnx`` (ONNX Runtime: the bundled
            model's shipped int8 graph, any other model exported in memory at start, float32,
            1.3-1.8 s for a net of the bundled one's size) or ``auto``
            (default: :func:`ferlab.runtime.choice.resolve_runtime` for one face a call; a
            model passed in as an ``nn.Module`` runs in torch, as it is). An ``.onnx`` file from
            ``ferlab export`` (int8 too) runs in ONNX Runtime and cannot be explained.
        min_face: smallest face to look for, as a fraction of the photo's longer side; None
            (default) finds them down to about 5 %. 0.1 or more makes BlazeFace run one pass:
            photos with a face under 20 % of that side, or none, take about half the time,
            and faces under 10 % are missed (fine for portraits and webcams). See
            :func:`ferlab.faces.detect.make_detector`.

    Example:
        >>> rec = Recognizer("runs/cnn")                                  # doctest: +SKIP
        >>> [(f.box, f.label) for f in rec.detect_emotions(rgb_array)]   # doctest: +SKIP
    """

    def __init__(self, model: str | Path | torch.nn.Module = "bundled", *,
                 tta: bool | str = False, bf16: bool | None = None, precision: str = "auto",
                 threads: int = 0,
                 detector: str | None = None, profile: bool = False,
                 max_side: int | None = DETECT_SIDE, min_neighbors: int = 5,
                 min_face: float | None = None, runtime: str | None = "auto") -> None:
        owned = not isinstance(model, torch.nn.Module)
        self.model = _load(model)
        self.tta = tta_mode(tta)
        if bf16 is not None:
            precision = "bf16" if bf16 else "fp32"
        self.precision = resolve_precision(precision)
        self.bf16 = self.precision.bf16
        self.threads = threads_for("small", threads)
        if runtime in (None, "auto") and not owned:
            runtime = "torch"  # a model passed in may change after this: it runs as it is
        self.runtime = resolve_runtime(runtime, 1, self.model, bf16=precision != "auto")
        self._onnx = (as_onnx(self.model, threads=self.threads) if self.runtime == "onnx"
                      else None)
        # A model we loaded ourselves is classified by a folded (bf16) copy, faster than autocast
        # at one face a call; a model passed in may change after this, so it runs as it is.
        self._fast = (inference_copy(self.model, self.bf16) if owned and self._onnx is None
                      else None)
        self.detector = make_detector(detector, profile=profile, max_side=max_side,
                                      min_neighbors=min_neighbors, min_face=min_face)
        self.model_name = str(model) if not isinstance(model, torch.nn.Module) else "<model>"

    @property
    def computes_in(self) -> str:
        """What the classifier computes in: ``bf16`` or ``fp32`` in torch, or the precision of
        the graph ONNX Runtime runs (``int8`` for the bundled model's shipped graph)."""
        if self._onnx is not None:
            return {"float32": "fp32"}.get(self._onnx.precision, self._onnx.precision)
        return self.precision.name

    # -- the steps -----------------------------------------------------------------------------

    @torch.no_grad()
    def classify(self, crops: np.ndarray) -> np.ndarray:
        """Probabilities ``float32 [N, 7]`` for uint8 faces ``[N, 48, 48]``."""
        crops = np.asarray(crops, dtype=np.uint8)
        if crops.ndim == 2:
            crops = crops[None]
        if len(crops) == 0:
            return np.zeros((0, len(EMOTIONS)), np.float32)
        if self._onnx is not None:
            return self._onnx.predict(crops, tta=self.tta, progress=False)
        x = torch.from_numpy(np.ascontiguousarray(crops)).unsqueeze(1).float().div_(255.0)
        with torch_threads(self.threads):
            if self._fast is not None:
                x = x.to(next(self._fast.parameters()).dtype)
                return average_probs(self._fast, x, self.tta, torch.channels_last).numpy()
            was_training = self.model.training
            self.model.eval()
            try:
                with autocast(self.bf16):
                    p = average_probs(self.model, x, self.tta, torch.channels_last)
            finally:
                self.model.train(was_training)
        return p.numpy()

    def find_faces(self, photo: Photo) -> list[Box]:
        """Face boxes in ``photo``, largest first; a small square picture is one whole face."""
        h, w = photo.gray.shape
        if max(h, w) <= WHOLE_FACE_MAX_SIDE and max(h, w) <= 1.25 * min(h, w):
            side = min(h, w)
            return [Box((w - side) // 2, (h - side) // 2, side, side, kind="whole")]
        return self.detector(photo.gray)

    def analyze(self, image: Any, channels: str = "rgb") -> tuple[Photo, list[Face]]:
        """The decoded photo and its faces (see :meth:`detect_emotions`)."""
        photo = image if isinstance(image, Photo) else load_photo(image, channels=channels)
        boxes = self.find_faces(photo)
        crops = crop_faces(photo.gray, boxes)
        probs = self.classify(crops)
        faces = [Face(box=b, label=EMOTIONS[int(p.argmax())],
                      probabilities={e: float(v) for e, v in zip(EMOTIONS, p, strict=True)},
                      crop=c) for b, c, p in zip(boxes, crops, probs, strict=True)]
        return photo, faces

    def detect_emotions(self, image: Any, channels: str = "rgb") -> list[Face]:
        """Every face in ``image`` with its emotion, largest face first.

        Args:
            image: a path, bytes, a Pillow image, or an array (``[H, W]`` grey or
                ``[H, W, 3|4]`` colour).
            channels: channel order of a colour array: ``"rgb"`` or ``"bgr"`` (``cv2.imread``).

        Example:
            >>> face = Recognizer().detect_emotions("photo.jpg")[0]   # doctest: +SKIP
            >>> face.box, face.label                                  # doctest: +SKIP
            (Box(x=174, y=64, w=97, h=97, kind='frontal'), 'happy')
        """
        return self.analyze(image, channels)[1]

    def top_emotion(self, image: Any, channels: str = "rgb") -> tuple[str, float] | None:
        """``(label, probability)`` of the largest face, or None when there is no face."""
        faces = self.detect_emotions(image, channels)
        return (faces[0].label, faces[0].score) if faces else None

    def explain(self, face: Face | np.ndarray, method: str = "gradcam",
                target: int | str | None = None, **options: Any) -> np.ndarray:
        """Attribution map ``float32 [48, 48]`` of one face (``ferlab.explain`` methods).

        Args:
            face: a :class:`Face` from :meth:`detect_emotions`, or a uint8 ``[48, 48]`` crop.
            method: ``saliency``, ``gradcam``, ``lime``, ... (``ferlab.explain.list_methods()``).
            target: class index or name to explain; default the face's predicted label.
            options: passed to the explainer (e.g. ``samples=`` for LIME).

        Example:
            >>> heat = rec.explain(faces[0], "lime", samples=500)   # doctest: +SKIP
        """
        from ..explain import get_explainer

        if isinstance(self.model, OnnxClassifier):
            raise ModelError("explanations need the PyTorch model; an ONNX file holds only the "
                             "graph (explain the model it was exported from)")
        crop = face.crop if isinstance(face, Face) else np.asarray(face, dtype=np.uint8)
        if crop.shape != (IMAGE_SIZE, IMAGE_SIZE):
            raise DataError(f"explain needs a {IMAGE_SIZE}x{IMAGE_SIZE} face, got "
                            f"{tuple(crop.shape)}")
        if isinstance(target, str):
            if target not in EMOTIONS:
                raise DataError(f"unknown emotion {target!r}; choose one of {', '.join(EMOTIONS)}")
            target = EMOTIONS.index(target)
        if target is None and isinstance(face, Face):
            target = face.label_index
        x = torch.from_numpy(crop.copy())[None, None].float().div_(255.0)
        with warnings.catch_warnings():
            # captum notes that it switched requires_grad on for the input; that is expected.
            warnings.filterwarnings("ignore", message=".*did not already require gradients")
            heat = get_explainer(method, self.model, **options).attribute(x, target=target)
        return heat.detach().reshape(IMAGE_SIZE, IMAGE_SIZE).float().numpy()


# --------------------------------------------------------------------------------------------
# Drawing


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError):  # Pillow without FreeType: the fixed bitmap font
        return ImageFont.load_default()


def annotate(rgb: np.ndarray, faces: list[Face], bars: bool = True) -> Image.Image:
    """The photo with each face's box, label and (``bars``) seven probability bars drawn on.

    A photo without faces gets a banner saying so, so an annotated file is never mistaken for a
    photo that was not analysed.

    Example:
        >>> faces = rec.detect_emotions(photo.rgb)                 # doctest: +SKIP
        >>> annotate(photo.rgb, faces).save("annotated.png")       # doctest: +SKIP
    """
    img = Image.fromarray(np.asarray(rgb, dtype=np.uint8)).convert("RGB")
    W, H = img.size
    draw = ImageDraw.Draw(img, "RGBA")
    if not faces:
        fs = max(12, min(W, H) // 20)
        font = _font(fs)
        draw.rectangle([0, 0, W, fs + 10], fill=(0, 0, 0, 170))
        draw.text((6, 4), "no face found", fill=(255, 255, 255), font=font)
        return img
    for f in faces:
        b, color = f.box, COLORS[f.label]
        lw = max(2, round(max(b.w, b.h) / 60))
        draw.rectangle([b.x, b.y, b.x + b.w - 1, b.y + b.h - 1], outline=color, width=lw)
        fs = int(np.clip(b.h / 7, 11, 40))
        font = _font(fs)
        text = f"{f.label} {f.score:.0%}"
        tw = int(draw.textlength(text, font=font))
        ty = b.y - fs - 8 if b.y - fs - 8 >= 0 else b.y + b.h + 2
        draw.rectangle([b.x, ty, b.x + tw + 8, ty + fs + 6], fill=color + (220,))
        draw.text((b.x + 4, ty + 2), text, fill=(0, 0, 0), font=font)
        if bars:
            _draw_bars(draw, f, W, H)
    return img


def _draw_bars(draw: ImageDraw.ImageDraw, f: Face, W: int, H: int) -> None:
    """Seven labelled probability bars beside the box (right if there is room, else left)."""
    b = f.box
    row = int(np.clip(b.h / 7, 11, 28))
    fs = max(9, row - 3)
    font = _font(fs)
    name_w = int(max(draw.textlength(e, font=font) for e in EMOTIONS)) + 6
    bar_w = max(40, int(b.w * 0.6))
    panel_w, panel_h = name_w + bar_w + 8, row * len(EMOTIONS) + 6
    x0 = b.x + b.w + 4
    if x0 + panel_w > W:
        x0 = b.x - panel_w - 4 if b.x - panel_w - 4 >= 0 else max(0, W - panel_w)
    y0 = int(np.clip(b.y, 0, max(0, H - panel_h)))
    draw.rectangle([x0, y0, x0 + panel_w, y0 + panel_h], fill=(0, 0, 0, 150))
    for i, e in enumerate(EMOTIONS):
        y = y0 + 3 + i * row
        p = f.probabilities[e]
        draw.text((x0 + 4, y), e, fill=(255, 255, 255), font=font)
        bx = x0 + 4 + name_w
        draw.rectangle([bx, y + 2, bx + bar_w, y + row - 3], outline=(255, 255, 255, 90))
        if p > 0:
            draw.rectangle([bx, y + 2, bx + max(1, round(bar_w * p)), y + row - 3],
                           fill=COLORS[e] + (235,))


def save_png(img: Image.Image, path: str | Path) -> Path:
    """Write a Pillow image atomically (format from the suffix: png, jpg, ...)."""
    path = Path(path)
    fmt = {"jpg": "JPEG", "jpeg": "JPEG"}.get(path.suffix.lower().lstrip("."), None)
    return atomic_write(path, lambda p: img.save(p, format=fmt or "PNG"))


# --------------------------------------------------------------------------------------------
# ferlab predict --image


def photo_record(path: str, photo: Photo, faces: list[Face]) -> dict[str, Any]:
    h, w = photo.gray.shape
    return {"photo": path, "width": w, "height": h, "faces": [f.as_dict() for f in faces]}


def _annotated_path(out: Path, photo: Path, many: bool) -> Path:
    if not many:
        return out
    return out / f"{photo.stem}.annotated.png"


def predict_photos(model: str, image: str, out: str | None = None, json_path: str | None = None,
                   tta: bool | str = False, detector: str | None = None,
                   min_face: float | None = None, precision: str = "auto",
                   threads: int = 0, runtime: str | None = "auto") -> int:
    """``ferlab predict --image``: every face of a photo (or every photo in a folder).

    Prints one line per face (box, label, probabilities) and says so when a photo has no face.
    ``out`` is the annotated image for one photo, or a folder for a folder of photos (one
    ``NAME.annotated.png`` each). ``json_path`` gets ``{"model", "precision", "photos":
    [{"photo", "width", "height", "faces": [{"box", "detector", "label", "probabilities"}]}]}``.
    In a folder, a file that cannot be decoded is reported and skipped.

    Returns:
        0 when at least one face was found, 1 when no photo had a face.

    Raises:
        FerlabError: the model or a single photo cannot be read (the CLI prints one line).

    Example:
        >>> predict_photos("bundled", "group.jpg", out="annotated.png")  # doctest: +SKIP
    """
    photos = list_photos(image)
    many = Path(image).is_dir()
    rec = Recognizer(model, tta=tta, detector=detector, min_face=min_face, precision=precision,
                     threads=threads, runtime=runtime)
    records, n_faces, skipped = [], 0, 0
    out_p = Path(out) if out else None
    if out_p is not None and many and out_p.suffix.lower() in (".png", ".jpg", ".jpeg"):
        raise DataError(f"--out {out}: with a folder of photos, --out must be a folder")
    for p in photos:
        try:
            photo, faces = rec.analyze(p)
            faces = sorted(faces, key=lambda f: (f.box.x, f.box.y))  # numbered left to right
        except DataError as e:
            if not many:
                raise
            print(f"skipped {e}", file=sys.stderr)
            skipped += 1
            continue
        n_faces += len(faces)
        h, w = photo.gray.shape
        if not faces:
            print(f"{p}: no face found ({w}x{h} pixels)")
        else:
            print(f"{p}: {len(faces)} face{'s' if len(faces) > 1 else ''}")
            for i, f in enumerate(faces):
                b = f.box
                top = sorted(f.probabilities.items(), key=lambda kv: -kv[1])[:3]
                print(f"  face {i}: box x={b.x} y={b.y} w={b.w} h={b.h}  {f.label} "
                      f"{f.score:.0%}  (" + ", ".join(f"{k} {v:.0%}" for k, v in top) + ")")
        records.append(photo_record(str(p), photo, faces))
        if out_p is not None:
            dest = save_png(annotate(photo.rgb, faces), _annotated_path(out_p, p, many))
            if not many:
                print(f"wrote {dest}")
    if out_p is not None and many:
        print(f"wrote {len(records)} annotated photos to {out_p}")
    if json_path:
        write_json(json_path, {"model": rec.model_name, "precision": rec.computes_in,
                               "photos": records})
        print(f"wrote {json_path}")
    if many:
        print(f"{len(records)} photos, {n_faces} faces" + (f", {skipped} skipped" if skipped
                                                           else ""))
    if not records:
        raise FerlabError(f"{image}: no photo could be read")
    return 0 if n_faces else 1
