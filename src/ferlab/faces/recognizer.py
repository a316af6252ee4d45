"""Emotions of the faces in a photo: detect, crop like FER2013, classify, explain.

The Python API follows the ``fer`` package (``FER().detect_emotions(img)``), with the
preprocessing mismatches that package is known for made impossible: arrays are RGB unless you say
``channels="bgr"``, the crop is the FER2013 framing (:mod:`ferlab.faces.crop`), and class names
come from the model file, which stores ferlab's fixed order.

Example:
    >>> from ferlab.faces.recognizer import Recognizer
    >>> rec = Recognizer("bundled")                                  # doctest: +SKIP
    >>> faces = rec.detect_emotions("photo.jpg")                     # doctest: +SKIP
    >>> faces[0].label, faces[0].probabilities["happy"]              # doctest: +SKIP
    ('happy', 0.91)
    >>> heat = rec.explain(faces[0], "gradcam")                      # doctest: +SKIP
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..constants import EMOTIONS, IMAGE_SIZE
from ..errors import DataError, ModelError
from ..inference import average_probs, inference_copy, predict_probs, to_model_input, tta_mode
from ..model_spec import recommended_tta
from ..precision import resolve_precision
from ..runtime.choice import resolve_runtime
from ..runtime.onnx_classifier import OnnxClassifier, as_onnx, load_classifier
from ..threads import threads_for, torch_threads
from .crop import crop_faces
from .detect import DETECT_SIDE, Box, make_detector, whole_face_box
from .photo import Photo, load_photo


@dataclass
class RecognizedFace:
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
    """A model passed in as it is (in eval mode), or any model spec through the one resolver."""
    if isinstance(model, torch.nn.Module):
        return model.eval()
    return load_classifier(model)


class Recognizer:
    """Face detector plus emotion classifier.

    Args:
        model: ``"bundled"``, a model file, a run folder, an ensemble folder, or a loaded model.
        tta: test-time augmentation: ``True``/``"flip"`` averages each face with its mirror,
            ``"shift"`` also with 2-pixel shifts (see :func:`ferlab.inference.tta_views`);
            ``"auto"`` (default): the one the model records as its own (the bundled model's
            flip), as ``ferlab predict`` and ``evaluate`` do; ``False``/``"none"``: one view.
        precision: ``auto`` (default: bf16 where the CPU computes it natively, where it is
            faster; else fp32), ``fp32`` or ``bf16`` (:mod:`ferlab.precision`).
        bf16: older spelling of ``precision`` (True = bf16, False = fp32); None: use
            ``precision``. A model the Recognizer loads runs as a folded bf16 copy
            (:func:`ferlab.inference.inference_copy`), a model passed in under autocast;
            explanations always use the float32 model.
        threads: torch threads the classifier runs on; 0 (default): one, which holds up when
            another process takes a core (:mod:`ferlab.threads`); the caller's setting is put
            back after each call.
        detector: ``"auto"`` (default: MediaPipe's BlazeFace network, then OpenCV's Haar
            cascade on photos where BlazeFace finds no face), ``"blazeface"`` or ``"haar"``; see
            :mod:`ferlab.faces.detect` for what each finds.
        profile: Haar's profile cascade too, for turned heads (slower; implies ``"haar"``).
        max_side: Haar detects on a copy at most this many pixels on its longer side (None: full
            size).
        min_neighbors: Haar's vote threshold (higher: fewer false faces).
        runtime: who classifies the faces: ``torch``, ``onnx`` (ONNX Runtime: the bundled
            model's shipped int8 graph, any other model exported in memory at start, float32,
            a one-off cost the README's runtime section gives) or ``auto``
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
                 tta: bool | str | None = "auto", bf16: bool | None = None,
                 precision: str = "auto",
                 threads: int = 0,
                 detector: str | None = None, profile: bool = False,
                 max_side: int | None = DETECT_SIDE, min_neighbors: int = 5,
                 min_face: float | None = None, runtime: str | None = "auto") -> None:
        owned = not isinstance(model, torch.nn.Module)
        self.model = _load(model)
        if tta == "auto":  # what the model was validated or tuned with, as the CLI does
            tta = (recommended_tta(model) if isinstance(model, str | Path)
                   else getattr(self.model, "tta", None))
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

    def classify(self, crops: np.ndarray) -> np.ndarray:
        """Probabilities ``float32 [N, 7]`` for uint8 faces ``[N, 48, 48]``."""
        crops = np.ascontiguousarray(crops, dtype=np.uint8)  # torch takes no negative strides
        if crops.ndim == 2:
            crops = crops[None]
        if len(crops) == 0:
            return np.zeros((0, len(EMOTIONS)), np.float32)
        if self._onnx is not None:
            return self._onnx.predict(crops, tta=self.tta, progress=False)
        with torch_threads(self.threads):
            if self._fast is None:  # a model passed in: itself, under autocast, mode restored
                return predict_probs(self.model, crops, precision=self.precision, tta=self.tta,
                                     fast=False).numpy()
            # The copy made once at start, rather than predict_probs' fresh one a call.
            with torch.inference_mode():
                x = to_model_input(crops, dtype=next(self._fast.parameters()).dtype)
                return average_probs(self._fast, x, self.tta, torch.channels_last).numpy()

    def find_faces(self, photo: Photo) -> list[Box]:
        """Face boxes in ``photo``, largest first; a small square picture is one whole face."""
        whole = whole_face_box(photo.gray.shape)
        return [whole] if whole is not None else self.detector(photo.gray)

    def analyze(self, image: Any, channels: str = "rgb") -> tuple[Photo, list[RecognizedFace]]:
        """The decoded photo and its faces (see :meth:`detect_emotions`)."""
        photo = image if isinstance(image, Photo) else load_photo(image, channels=channels)
        boxes = self.find_faces(photo)
        crops = crop_faces(photo.gray, boxes)
        probs = self.classify(crops)
        faces = [RecognizedFace(box=b, label=EMOTIONS[int(p.argmax())],
                                probabilities={e: float(v)
                                               for e, v in zip(EMOTIONS, p, strict=True)},
                                crop=c) for b, c, p in zip(boxes, crops, probs, strict=True)]
        return photo, faces

    def detect_emotions(self, image: Any, channels: str = "rgb") -> list[RecognizedFace]:
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

    def explain(self, face: RecognizedFace | np.ndarray, method: str = "gradcam",
                target: int | str | None = None, **options: Any) -> np.ndarray:
        """Attribution map ``float32 [48, 48]`` of one face (``ferlab.explain`` methods).

        Args:
            face: a :class:`RecognizedFace` from :meth:`detect_emotions`, or a uint8
                ``[48, 48]`` crop.
            method: ``saliency``, ``gradcam``, ``lime``, ... (``ferlab.explain.list_methods()``).
            target: class index or name to explain; default the face's predicted label.
            options: passed to the explainer (e.g. ``samples=`` for LIME).

        Example:
            >>> heat = rec.explain(faces[0], "lime", samples=500)   # doctest: +SKIP
        """
        # Deferred: ferlab.explain imports captum, which photos that are not explained never need.
        from ..explain import get_explainer

        if isinstance(self.model, OnnxClassifier):
            raise ModelError("explanations need the PyTorch model; an ONNX file holds only the "
                             "graph (explain the model it was exported from)")
        crop = face.crop if isinstance(face, RecognizedFace) else np.asarray(face, np.uint8)
        if crop.shape != (IMAGE_SIZE, IMAGE_SIZE):
            raise DataError(f"explain needs a {IMAGE_SIZE}x{IMAGE_SIZE} face, got "
                            f"{tuple(crop.shape)}")
        if isinstance(target, str):
            if target not in EMOTIONS:
                raise DataError(f"unknown emotion {target!r}; choose one of {', '.join(EMOTIONS)}")
            target = EMOTIONS.index(target)
        if target is None and isinstance(face, RecognizedFace):
            target = face.label_index
        if method == "lime" and self._onnx is not None:
            # LIME only classifies (hundreds of faces): in the runtime this Recognizer runs
            options.setdefault("classifier", self._onnx)
        x = to_model_input(crop[None].copy())  # a copy: the caller's array may be read-only
        with warnings.catch_warnings():
            # captum notes that it switched requires_grad on for the input; that is expected.
            warnings.filterwarnings("ignore", message=".*did not already require gradients")
            heat = get_explainer(method, self.model, **options).attribute(x, target=target)
        return heat.detach().reshape(IMAGE_SIZE, IMAGE_SIZE).float().numpy()


def photo_record(path: str, photo: Photo, faces: list[RecognizedFace]) -> dict[str, Any]:
    """JSON-ready: a photo's name, size and faces (``ferlab predict --json``, the web API)."""
    h, w = photo.gray.shape
    return {"photo": path, "width": w, "height": h, "faces": [f.as_dict() for f in faces]}
