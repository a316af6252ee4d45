"""Batched prediction over faces, and the CSV files it writes.

* :func:`predict_faces`: softmax probabilities ``[N, 7]`` for a FaceSet (or uint8 images), in
  batches with a progress bar, optionally with test-time augmentation
  (:func:`ferlab.inference.tta_views`), in torch (:func:`ferlab.inference.predict_probs`) or in
  ONNX Runtime.
* :func:`predict_file`: a data file in, a CSV out. A course ``test.csv`` (``id,feature``) gives a
  Kaggle submission ``id,label``; anything else (fer2013.csv rows, an image folder) gives one row
  per face with the seven class probabilities and the predicted label.

Every model ferlab loads (a single model or an :class:`~ferlab.ensemble.Ensemble`) takes grey
levels / 255 and returns logits, so both go through the same code.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .constants import EMOTIONS, NUM_CLASSES
from .data import FaceSet, load_faces
from .errors import ConfigError
from .inference import DEFAULT_BATCH, predict_probs, tta_mode
from .io_utils import write_text
from .runtime.choice import resolve_runtime
from .runtime.onnx_classifier import as_onnx, load_classifier

FORMATS = ("auto", "submission", "probs")


def predict_faces(model: torch.nn.Module, faces: FaceSet | np.ndarray, *,
                  tta: bool | str = False, bf16: bool | None = None, precision: str = "auto",
                  batch_size: int = DEFAULT_BATCH, progress: bool = True,
                  runtime: str | None = None) -> np.ndarray:
    """Softmax probabilities ``float32 [N, 7]`` of ``model`` for every face.

    Args:
        model: any ferlab model (``load_model(...)``): grey / 255 in, logits out.
        faces: a FaceSet, or ``uint8 [N, 48, 48]`` images.
        tta: test-time augmentation: ``True``/``"flip"`` averages each face with its mirror,
            ``"shift"`` also with 2-pixel shifts of both (see :func:`ferlab.inference.tta_views`).
        precision: ``auto`` (bf16 where the CPU computes it natively, else fp32), ``fp32`` or
            ``bf16`` (see :mod:`ferlab.precision`).
        bf16: older spelling of ``precision``: True = bf16, False = fp32.
        batch_size: faces per forward pass.
        progress: show a progress bar (hidden anyway when not on a terminal).
        runtime: ``torch``, ``onnx`` (ONNX Runtime, :func:`ferlab.runtime.onnx_classifier.as_onnx`:
            the bundled model's int8 graph, any other exported in memory in float32; ``bf16``
            does not apply) or ``auto`` (:func:`ferlab.runtime.choice.resolve_runtime`);
            None: the model's own (an
            :class:`~ferlab.runtime.onnx_classifier.OnnxClassifier` runs in ONNX Runtime,
            anything else in torch).

    The model runs as a folded, channels-last copy (:func:`ferlab.inference.inference_copy`) with
    its weights in the chosen precision, so the model passed in is not changed.

    Example:
        >>> probs = predict_faces(load_model("runs/cnn"), faces, tta=True)  # doctest: +SKIP
        >>> probs.argmax(1)  # doctest: +SKIP
    """
    if batch_size < 1:
        raise ConfigError(f"batch size must be at least 1, got {batch_size}")
    if bf16 is not None:
        precision = "bf16" if bf16 else "fp32"
    images = faces.images if isinstance(faces, FaceSet) else np.asarray(faces)
    if resolve_runtime(runtime, batch_size, model, precision != "auto") == "onnx":
        return as_onnx(model).predict(images, tta=tta_mode(tta), batch_size=batch_size,
                                      progress=progress)
    return predict_probs(model, images, batch_size=batch_size, precision=precision, tta=tta,
                         progress=progress).numpy()


def is_submission_input(faces: FaceSet) -> bool:
    """True for a course ``test.csv``: no labels, no Usage column, not an image folder."""
    return (not faces.names and bool(len(faces)) and bool((faces.labels < 0).all())
            and not any(faces.usage.tolist()))


def submission_text(ids: np.ndarray, probs: np.ndarray) -> str:
    """Kaggle submission: header ``id,label``, then one ``<id>,<class 0-6>`` line per face."""
    pred = probs.argmax(1)
    lines = ["id,label"] + [f"{int(i)},{int(p)}" for i, p in zip(ids, pred, strict=True)]
    return "\n".join(lines) + "\n"


def probabilities_text(faces: FaceSet, probs: np.ndarray) -> str:
    """CSV: ``id`` [``file``] [``usage``] [``true_label``], a probability column per class name,
    then ``label`` (predicted index) and ``emotion`` (its name)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    has_names, has_usage = bool(faces.names), any(faces.usage.tolist())
    has_true = bool((faces.labels >= 0).any())
    w.writerow(["id"] + ["file"] * has_names + ["usage"] * has_usage + ["true_label"] * has_true
               + list(EMOTIONS) + ["label", "emotion"])
    pred = probs.argmax(1)
    for k in range(len(faces)):
        row: list = [int(faces.ids[k])]
        if has_names:
            row.append(faces.names[k])
        if has_usage:
            row.append(faces.usage[k])
        if has_true:
            row.append(int(faces.labels[k]) if faces.labels[k] >= 0 else "")
        row += [f"{v:.6f}" for v in probs[k]] + [int(pred[k]), EMOTIONS[pred[k]]]
        w.writerow(row)
    return buf.getvalue()


@dataclass
class Prediction:
    """What :func:`predict_file` did: the faces, their probabilities and the file written."""

    faces: FaceSet
    probs: np.ndarray
    path: Path
    format: str  # "submission" or "probs"

    @property
    def counts(self) -> list[int]:
        """Predicted faces per class, index order 0-6."""
        return np.bincount(self.probs.argmax(1), minlength=NUM_CLASSES).tolist()


def predict_file(model: torch.nn.Module | str | Path, input_path: str | Path,
                 out_path: str | Path, *, tta: bool | str = False, fmt: str = "auto",
                 batch_size: int = DEFAULT_BATCH, progress: bool = True, precision: str = "auto",
                 skip_bad_rows: bool = False, runtime: str | None = None) -> Prediction:
    """Predict every face of a data file or folder and write a CSV.

    Args:
        model: a loaded model, or anything :func:`~ferlab.model_spec.load_model` takes.
        input_path: test.csv, fer2013.csv (plain or .gz), or an image folder / archive.
        out_path: the CSV to write.
        tta: test-time augmentation, as in :func:`predict_faces`.
        fmt: ``submission`` (``id,label``), ``probs`` (probabilities per face), or ``auto``:
            submission for a course test.csv, probabilities otherwise.
        runtime: as in :func:`predict_faces`; ``model`` may also be an ``.onnx`` file from
            ``ferlab export``.

    Example:
        >>> predict_file("runs/cnn", "test.csv", "submission.csv")  # doctest: +SKIP
    """
    if fmt not in FORMATS:
        raise ConfigError(f"format must be one of {FORMATS}, got {fmt!r}")
    if not isinstance(model, torch.nn.Module):
        model = load_classifier(model)
    faces = load_faces(input_path, skip_bad_rows=skip_bad_rows)
    probs = predict_faces(model, faces, tta=tta, batch_size=batch_size, progress=progress,
                          precision=precision, runtime=runtime)
    if fmt == "auto":
        fmt = "submission" if is_submission_input(faces) else "probs"
    text = submission_text(faces.ids, probs) if fmt == "submission" else probabilities_text(
        faces, probs)
    path = write_text(out_path, text)
    return Prediction(faces=faces, probs=probs, path=path, format=fmt)
