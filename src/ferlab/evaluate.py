"""Judge a model the way the seed reports do: accuracy, per-class scores, confusion, calibration,
and the faces it gets most confidently wrong.

Public API (stable; the report generator imports it):

* :func:`evaluate_model` ``(model, faces, tta=False) -> Evaluation``: predict and score.
* :func:`compute_metrics` ``(labels, probs) -> dict``: the metrics of fixed predictions.
* :func:`write_evaluation` ``(evaluation, out_dir) -> dict[str, Path]``: metrics.json and the
  figures ``confusion.png``, ``confusion_normalized.png``, ``reliability.png``, ``mistakes.png``.
* :func:`expected_calibration_error`, :func:`reliability_bins`, :func:`confident_mistakes`,
  :func:`format_metrics` (the terminal table).

Counting metrics come from scikit-learn. Calibration is computed here because scikit-learn's
``calibration_curve`` is for binary problems only; top-label ECE is a few lines of numpy.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

from .constants import EMOTIONS, NUM_CLASSES
from .data import FaceSet
from .errors import DataError
from .inference import DEFAULT_BATCH, device_of, tta_mode
from .io_utils import write_json
from .precision import resolve_precision
from .predict import predict_faces
from .runtime.choice import resolve_runtime
from .runtime.onnx_classifier import as_onnx

ECE_BINS = 15  # equal-width confidence bins, the usual choice (Guo et al. 2017)


def reliability_bins(probs: np.ndarray, labels: np.ndarray, n_bins: int = ECE_BINS
                     ) -> dict[str, np.ndarray]:
    """Top-label calibration per equal-width confidence bin.

    Bin ``b`` holds faces whose confidence (max probability) is in ``(b/n, (b+1)/n]``; a
    confidence of exactly 0 goes to bin 0.

    Returns:
        ``edges [n_bins + 1]``, and per bin ``count``, ``confidence`` (mean max probability),
        ``accuracy`` (fraction right); the means are NaN in empty bins.
    """
    probs = np.asarray(probs, dtype=np.float64)
    labels = np.asarray(labels)
    conf = probs.max(1)
    right = (probs.argmax(1) == labels).astype(np.float64)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    idx = np.clip(np.ceil(conf * n_bins).astype(int) - 1, 0, n_bins - 1)
    count = np.bincount(idx, minlength=n_bins).astype(np.int64)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_conf = np.bincount(idx, weights=conf, minlength=n_bins) / count
        mean_acc = np.bincount(idx, weights=right, minlength=n_bins) / count
    return {"edges": edges, "count": count, "confidence": mean_conf, "accuracy": mean_acc}


def expected_calibration_error(probs: np.ndarray, labels: np.ndarray,
                               n_bins: int = ECE_BINS) -> float:
    """ECE: the mean over faces of ``|accuracy - confidence|`` of their confidence bin.

    Example:
        >>> p = np.array([[0.9, 0.1], [0.6, 0.4]])
        >>> round(expected_calibration_error(p, np.array([0, 1]), n_bins=10), 3)
        0.35
    """
    b = reliability_bins(probs, labels, n_bins)
    n = b["count"].sum()
    if n == 0:
        return 0.0
    full = b["count"] > 0
    gap = np.abs(b["accuracy"][full] - b["confidence"][full])
    return float((gap * b["count"][full]).sum() / n)


def compute_metrics(labels: np.ndarray, probs: np.ndarray, n_bins: int = ECE_BINS) -> dict:
    """Metrics of fixed predictions, as plain JSON-able values.

    Args:
        labels: true classes ``[N]`` (0-6).
        probs: predicted probabilities ``[N, 7]``; the prediction is the argmax.

    Returns:
        ``n``, ``accuracy``, ``macro_f1``, ``nll`` (mean negative log-likelihood), ``ece``,
        ``per_class`` {class name: {precision, recall, f1, support}} and ``confusion`` (7x7
        counts, rows = true class, columns = predicted, class order 0-6).

    Example:
        >>> m = compute_metrics(np.array([0, 3]), np.eye(7)[[0, 4]])
        >>> m["accuracy"], m["confusion"][3][4]
        (0.5, 1)
    """
    labels = np.asarray(labels, dtype=np.int64)
    probs = np.asarray(probs, dtype=np.float64)
    if probs.ndim != 2 or probs.shape[1] != NUM_CLASSES or len(probs) != len(labels):
        raise ValueError(f"probs must be [N, {NUM_CLASSES}] with N = {len(labels)} labels, got "
                         f"{probs.shape}")
    if not len(labels):
        raise DataError("no faces to evaluate")
    pred = probs.argmax(1)
    classes = list(range(NUM_CLASSES))
    precision, recall, f1, support = precision_recall_fscore_support(
        labels, pred, labels=classes, zero_division=0)
    cm = confusion_matrix(labels, pred, labels=classes)
    nll = -np.log(np.clip(probs[np.arange(len(labels)), labels], 1e-12, None)).mean()
    return {
        "n": int(len(labels)),
        "accuracy": float((pred == labels).mean()),
        "macro_f1": float(f1.mean()),
        "nll": float(nll),
        "ece": expected_calibration_error(probs, labels, n_bins),
        "ece_bins": n_bins,
        "classes": list(EMOTIONS),
        "per_class": {
            EMOTIONS[c]: {"precision": float(precision[c]), "recall": float(recall[c]),
                          "f1": float(f1[c]), "support": int(support[c])}
            for c in classes},
        "confusion": cm.astype(int).tolist(),
    }


def confident_mistakes(probs: np.ndarray, labels: np.ndarray, per_class: int = 6,
                       images: np.ndarray | None = None) -> dict[int, np.ndarray]:
    """For each true class, positions of its wrongly predicted faces, most confident first.

    Confidence is the probability of the (wrong) predicted class. With ``images``, a face whose
    pixels equal one already chosen is skipped (FER2013 holds duplicate images), so a gallery
    shows each face once.

    Example:
        >>> p = np.eye(7)[[1, 1, 0]] * 0.5 + np.eye(7)[[0, 0, 0]] * 0.2
        >>> confident_mistakes(p, np.array([0, 0, 0]))[0].tolist()
        [0, 1]
    """
    probs = np.asarray(probs)
    labels = np.asarray(labels)
    pred = probs.argmax(1)
    conf = probs.max(1)
    out = {}
    seen: set[bytes] = set()
    for c in range(NUM_CLASSES):
        wrong = np.flatnonzero((labels == c) & (pred != c))
        order = wrong[np.argsort(-conf[wrong], kind="stable")]
        if images is None:
            out[c] = order[:per_class]
            continue
        chosen = []
        for i in order:
            key = np.ascontiguousarray(images[i]).tobytes()
            if key not in seen:
                seen.add(key)
                chosen.append(i)
                if len(chosen) == per_class:
                    break
        out[c] = np.asarray(chosen, dtype=np.int64)
    return out


def model_description(model: torch.nn.Module) -> str:
    """Short name of a model: ``vgg``, ``vgg(width=32)``, ``ensemble(mean, 3 members: vgg(width=48),
    2 x speedrun)``."""
    name = getattr(model, "name", "") or type(model).__name__
    members = getattr(model, "members", None)
    if members is not None:
        counts = Counter(model_description(m) for m in members)
        parts = [d if n == 1 else f"{n} x {d}" for d, n in counts.items()]
        return f"{name[:-1]}: {', '.join(parts)})" if name.endswith(")") else name
    kwargs = getattr(model, "kwargs", {}) or {}
    args = ", ".join(f"{k}={v}" for k, v in kwargs.items())
    return f"{name}({args})" if args else name


@dataclass
class Evaluation:
    """One model scored on one set of faces.

    Attributes:
        probs: ``float32 [N, 7]`` predicted probabilities.
        labels: ``int64 [N]`` true classes.
        metrics: see :func:`compute_metrics`, plus ``model``, ``data``, ``split``, ``tta``,
            ``seconds`` (prediction time).
        faces: the faces scored (for galleries).
    """

    probs: np.ndarray
    labels: np.ndarray
    metrics: dict
    faces: FaceSet = field(repr=False)

    @property
    def preds(self) -> np.ndarray:
        return self.probs.argmax(1)

    @property
    def accuracy(self) -> float:
        return self.metrics["accuracy"]


def evaluate_model(model: torch.nn.Module, faces: FaceSet, tta: bool | str = False, *,
                   bf16: bool | None = None, precision: str = "auto",
                   batch_size: int = DEFAULT_BATCH, progress: bool = True,
                   model_name: str | None = None, split: str = "",
                   runtime: str | None = None) -> Evaluation:
    """Predict ``faces`` with ``model`` and score the predictions.

    Args:
        model: a loaded model or ensemble (``load_model(spec)``).
        faces: labelled faces (select a split first with ``data.select_split``).
        tta: test-time augmentation: ``True``/``"flip"`` (mirror) or ``"shift"`` (mirror and
            2-pixel shifts, 10 views); see :func:`ferlab.predict.tta_views`.
        precision: ``auto`` (bf16 where the CPU computes it natively, else fp32), ``fp32`` or
            ``bf16``; recorded in the metrics.
        bf16: older spelling of ``precision``: True = bf16, False = fp32.
        model_name: stored as ``metrics["model"]`` (default: the model's registry name).
        split: stored as ``metrics["split"]``.
        runtime: ``torch``, ``onnx`` or ``auto``, as in :func:`ferlab.predict.predict_faces`
            (``model`` may be an :class:`~ferlab.runtime.onnx_classifier.OnnxClassifier`); the
            one used is stored as ``metrics["runtime"]``.

    Raises:
        DataError: the faces are not all labelled (a test.csv) or there are none.

    Example:
        >>> ev = evaluate_model(load_model("runs/cnn"), select_split(faces, "PublicTest"))
        ... # doctest: +SKIP
        >>> ev.metrics["accuracy"], ev.metrics["per_class"]["happy"]["f1"]  # doctest: +SKIP
    """
    if not len(faces):
        raise DataError(f"{faces.source}: no faces to evaluate")
    if not faces.has_labels:
        raise DataError(f"{faces.source}: faces have no labels (a test.csv?); evaluation needs "
                        "labelled faces; use 'ferlab predict' for unlabelled ones")
    if bf16 is not None:
        precision = "bf16" if bf16 else "fp32"
    runtime = resolve_runtime(runtime, batch_size, model, precision != "auto")
    description = model_name or model_description(model)
    if runtime == "torch":
        chosen = resolve_precision(precision, device_of(model).type)
        computed_in = chosen.name
    else:  # ONNX Runtime runs the graph in the precision it was exported in

        model = as_onnx(model)
        computed_in = {"float32": "fp32"}.get(model.precision, model.precision)
    t0 = time.perf_counter()
    probs = predict_faces(model, faces, tta=tta, precision=precision, batch_size=batch_size,
                          progress=progress, runtime=runtime)
    seconds = time.perf_counter() - t0
    metrics = {"model": description, "data": faces.source,
               "split": split, "tta": tta_mode(tta) or False,
               "bf16": computed_in == "bf16", "precision": computed_in, "runtime": runtime,
               "seconds": round(seconds, 2),
               **compute_metrics(faces.labels, probs)}
    return Evaluation(probs=probs, labels=faces.labels.copy(), metrics=metrics, faces=faces)


def write_evaluation(evaluation: Evaluation, out_dir: str | Path, *,
                     json_path: str | Path | None = None, per_class: int = 6
                     ) -> dict[str, Path]:
    """Write metrics.json and the four figures of an evaluation.

    Args:
        evaluation: from :func:`evaluate_model`.
        out_dir: folder for ``confusion.png``, ``confusion_normalized.png``,
            ``reliability.png`` and ``mistakes.png``.
        json_path: where metrics.json goes (default ``out_dir/metrics.json``).
        per_class: faces per class in the mistakes gallery.

    Returns:
        Paths by key: ``metrics``, ``confusion``, ``confusion_normalized``, ``reliability``,
        ``mistakes``.

    Example:
        >>> paths = write_evaluation(evaluate_model(model, faces), "eval")  # doctest: +SKIP
    """
    from . import plots  # matplotlib loads only when figures are written

    out = Path(out_dir)
    m = evaluation.metrics
    title = f"{m['model']} on {Path(m['data']).name}" + (f" {m['split']}" if m["split"] else "")
    if m.get("tta"):
        title += f" (TTA: {m['tta'] if isinstance(m['tta'], str) else 'flip'})"
    cm = np.asarray(m["confusion"])
    paths = {
        "metrics": write_json(json_path or out / "metrics.json", m),
        "confusion": plots.confusion_matrix(cm, out / "confusion.png", normalize=False,
                                            title=f"{title}\naccuracy {m['accuracy']:.4f}"),
        "confusion_normalized": plots.confusion_matrix(
            cm, out / "confusion_normalized.png", normalize=True,
            title=f"{title}\nrow-normalised (recall on the diagonal)"),
        "reliability": plots.reliability_diagram(
            reliability_bins(evaluation.probs, evaluation.labels, m.get("ece_bins", ECE_BINS)),
            out / "reliability.png", title=f"{title}\nECE {m['ece']:.4f}"),
        "mistakes": plots.mistakes_gallery(
            evaluation.faces.images, evaluation.labels, evaluation.probs,
            confident_mistakes(evaluation.probs, evaluation.labels, per_class,
                               images=evaluation.faces.images),
            out / "mistakes.png", title=f"most confident mistakes: {title}"),
    }
    return paths


def format_metrics(metrics: dict) -> str:
    """The terminal table: per-class precision, recall, F1, support, then the totals."""
    lines = [f"{'class':<10}{'precision':>10}{'recall':>9}{'f1':>8}{'support':>9}"]
    for name, s in metrics["per_class"].items():
        lines.append(f"{name:<10}{s['precision']:>10.3f}{s['recall']:>9.3f}{s['f1']:>8.3f}"
                     f"{s['support']:>9,}")
    lines.append(f"{'macro':<10}{'':>10}{'':>9}{metrics['macro_f1']:>8.3f}{metrics['n']:>9,}")
    lines.append(f"accuracy {metrics['accuracy']:.4f}  ECE {metrics['ece']:.4f}  "
                 f"NLL {metrics['nll']:.4f}  ({metrics['n']:,} faces)")
    return "\n".join(lines)
