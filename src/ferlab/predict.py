"""Batched prediction over faces, and the CSV files it writes.

* :func:`predict_faces`: softmax probabilities ``[N, 7]`` for a FaceSet (or uint8 images), in
  batches with a progress bar, optionally with test-time augmentation (:func:`tta_views`).
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
import torch.nn.functional as F

from .constants import EMOTIONS, NUM_CLASSES
from .cpu import inference_copy
from .data import FaceSet, load_faces
from .errors import ConfigError
from .io_utils import write_text
from .precision import resolve_precision
from .progress import progress_bar
from .runtime_choice import resolve_runtime

FORMATS = ("auto", "submission", "probs")
TTA_MODES = ("flip", "shift")
SHIFT_PX = 2  # shift-TTA offset; training shifts faces by up to 10% (4.8 px), so 2 px is familiar


def tta_mode(tta: bool | str | None) -> str | None:
    """The test-time augmentation asked for: ``None``, ``"flip"`` or ``"shift"`` (``True`` means
    ``"flip"``, so ``tta=True`` keeps its old meaning)."""
    if tta is None or tta is False or tta == "":
        return None
    if tta is True:
        return "flip"
    if tta not in TTA_MODES:
        raise ConfigError(f"test-time augmentation must be one of {TTA_MODES}, got {tta!r}")
    return tta


def tta_views(x: torch.Tensor, tta: bool | str | None) -> list[torch.Tensor]:
    """The views of a batch ``x [N, 1, 48, 48]`` whose probabilities are averaged.

    * ``None``: ``[x]``.
    * ``"flip"``: ``x`` and its mirror (expressions are left-right symmetric and training flips
      faces, so the mirror is as valid a view).
    * ``"shift"``: those two, each also moved ``SHIFT_PX`` pixels up, down, left and right (edge
      pixels repeated): 10 views, 10x the time. On PublicTest it gained 0.4 points over
      ``flip`` for a width-32 vgg and lost 0.3 for the width-48 bundled model
      (``benchmarks/RESULTS.md``), so ``flip`` is the one recommended.

    Example:
        >>> len(tta_views(torch.zeros(2, 1, 48, 48), "shift"))
        10
    """
    mode = tta_mode(tta)
    if mode is None:
        return [x]
    views = [x, x.flip(-1)]
    if mode == "shift":
        s = SHIFT_PX
        size_h, size_w = x.shape[-2:]
        for v in list(views):
            padded = F.pad(v, (s, s, s, s), mode="replicate")
            for dx, dy in ((s, 0), (-s, 0), (0, s), (0, -s)):
                views.append(padded[..., s + dy:s + dy + size_h, s + dx:s + dx + size_w])
    return views


def average_probs(model: torch.nn.Module, x: torch.Tensor, tta: bool | str | None = None,
                  memory_format: torch.memory_format = torch.contiguous_format) -> torch.Tensor:
    """Mean softmax probabilities ``[N, 7]`` of ``model`` over the TTA views of ``x``."""
    views = tta_views(x, tta)
    return sum(model(v.contiguous(memory_format=memory_format)).float().softmax(1)
               for v in views) / len(views)


DEFAULT_BATCH = 64  # faces per forward pass: 1.5-2x faster than 256 on CPUs (bench_runtime)


def predict_faces(model: torch.nn.Module, faces: FaceSet | np.ndarray, *,
                  tta: bool | str = False, bf16: bool | None = None, precision: str = "auto",
                  batch_size: int = DEFAULT_BATCH, progress: bool = True,
                  runtime: str | None = None) -> np.ndarray:
    """Softmax probabilities ``float32 [N, 7]`` of ``model`` for every face.

    Args:
        model: any ferlab model (``load_model(...)``): grey / 255 in, logits out.
        faces: a FaceSet, or ``uint8 [N, 48, 48]`` images.
        tta: test-time augmentation: ``True``/``"flip"`` averages each face with its mirror,
            ``"shift"`` also with 2-pixel shifts of both (see :func:`tta_views`).
        precision: ``auto`` (bf16 where the CPU computes it natively, else fp32), ``fp32`` or
            ``bf16`` (see :mod:`ferlab.precision`).
        bf16: older spelling of ``precision``: True = bf16, False = fp32.
        batch_size: faces per forward pass.
        progress: show a progress bar (hidden anyway when not on a terminal).
        runtime: ``torch``, ``onnx`` (ONNX Runtime, :func:`ferlab.onnx_runtime.as_onnx`:
            the bundled model's int8 graph, any other exported in memory in float32; ``bf16``
            does not apply) or ``auto`` (:func:`ferlab.runtime_choice.resolve_runtime`);
            None: the model's own (an :class:`~ferlab.onnx_runtime.OnnxClassifier` runs in
            ONNX Runtime, anything else in torch).

    The model runs as a folded, channels-last copy (:func:`ferlab.cpu.inference_copy`) with its
    weights in the chosen precision, so the model passed in is not changed.

    Example:
        >>> probs = predict_faces(load_model("runs/cnn"), faces, tta=True)  # doctest: +SKIP
        >>> probs.argmax(1)  # doctest: +SKIP
    """
    if batch_size < 1:
        raise ConfigError(f"batch size must be at least 1, got {batch_size}")
    tta = tta_mode(tta)
    if bf16 is not None:
        precision = "bf16" if bf16 else "fp32"
    images = faces.images if isinstance(faces, FaceSet) else np.asarray(faces)
    if resolve_runtime(runtime, batch_size, model, precision != "auto") == "onnx":
        from .onnx_runtime import as_onnx

        return as_onnx(model).predict(images, tta=tta, batch_size=batch_size, progress=progress)
    chosen = resolve_precision(precision, device_of(model).type)
    images_t = torch.from_numpy(np.ascontiguousarray(images, dtype=np.uint8))
    out = np.zeros((len(images_t), NUM_CLASSES), dtype=np.float32)
    fast = inference_copy(model, chosen.bf16)
    dtype = next(fast.parameters()).dtype
    fmt = (torch.channels_last if any(isinstance(m, torch.nn.Conv2d) for m in fast.modules())
           else torch.contiguous_format)
    device = device_of(fast)
    with torch.inference_mode(), progress_bar(total=len(images_t), desc="predict", unit="face",
                                              leave=False, disable=None if progress else True,
                                              dynamic_ncols=True) as bar:
        for i in range(0, len(images_t), batch_size):
            x = images_t[i:i + batch_size].unsqueeze(1).to(device, dtype).div_(255.0)
            out[i:i + len(x)] = average_probs(fast, x, tta, fmt).cpu().numpy()
            bar.update(len(x))
    return out


def device_of(model: torch.nn.Module) -> torch.device:
    """The device of the model's first parameter (the CPU for a model without any)."""
    p = next(model.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


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
        model: a loaded model, or anything :func:`~ferlab.model_io.load_model` takes.
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
        from .onnx_runtime import load_classifier

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
