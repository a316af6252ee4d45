"""``ferlab export``: a classifier as an ONNX file, checked against PyTorch, optionally int8.

* :func:`ferlab.runtime.onnx_graph.export_onnx` builds the float32 graph.
* :func:`quantize_int8`: static int8 (QDQ) with ONNX Runtime's quantiser, calibrated on real
  training faces.
* :func:`compare_with_torch`: the graph's probabilities beside PyTorch's on the same faces.

"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..assets import DEMO_PHOTO
from ..constants import IMAGE_SIZE
from ..data import load_faces, select_split
from ..errors import DataError, ModelError
from ..inference import to_model_input
from ..io_utils import write_bytes
from ..model_spec import load_model, single_model_file
from ..predict import predict_faces
from ..synthetic import make_faces
from .onnx_classifier import OnnxClassifier, file_sha256
from .onnx_graph import (
    INPUT_NAME,
    export_onnx,
    read_onnx_meta,
    set_onnx_meta,
)

# The float32 graph must give PyTorch's probabilities to within this (it computes the same
# function; what differs is only the order of float additions, ~1e-6).
FP32_TOLERANCE = 1e-4
CALIBRATION_BATCH = 32


# --------------------------------------------------------------------------------------------
# int8


class _FaceReader:
    """ONNX Runtime's calibration interface over uint8 faces ``[N, 48, 48]``, in batches."""

    def __init__(self, images: np.ndarray) -> None:
        self.images = np.asarray(images, dtype=np.uint8)
        self._batches = self._iter()

    def _iter(self) -> Iterator[dict[str, np.ndarray]]:
        for i in range(0, len(self.images), CALIBRATION_BATCH):
            x = to_model_input(self.images[i:i + CALIBRATION_BATCH]).numpy()
            yield {INPUT_NAME: x}

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._batches, None)

    def rewind(self) -> None:
        self._batches = self._iter()


def quantize_int8(fp32: bytes, calibration: np.ndarray) -> bytes:
    """Static int8 quantisation (QDQ, weights per channel) of an exported float32 graph.

    Activation ranges come from running ``calibration`` (real training faces, uint8
    ``[N, 48, 48]``; a few hundred suffice) through the graph (min-max). Weights use 7 of their
    8 bits (``reduce_range``): ONNX Runtime's u8s8 kernels on AVX2 and AVX-512 CPUs without VNNI
    (AMD Zen 3, for one) can saturate with full-range weights, and the file has to be right on
    every CPU it is copied to. Input and output stay float32 tensors, as in the float32 graph.

    Raises:
        ModelError: no calibration faces, or the quantiser fails.
    """
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    if len(calibration) == 0:
        raise ModelError("int8 quantisation needs calibration faces")
    meta = read_onnx_meta(fp32)

    class Reader(_FaceReader, CalibrationDataReader):
        pass

    with tempfile.TemporaryDirectory(prefix="ferlab-int8-") as tmp:
        src, pre, dst = (Path(tmp) / n for n in ("fp32.onnx", "pre.onnx", "int8.onnx"))
        write_bytes(src, fp32)  # a temporary file, but ferlab writes every file one way
        try:
            # Shape inference and graph clean-up first, as ONNX Runtime's docs advise.
            quant_pre_process(str(src), str(pre), skip_symbolic_shape=True)
            quantize_static(str(pre), str(dst), Reader(calibration),
                            quant_format=QuantFormat.QDQ, per_channel=True, reduce_range=True,
                            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
        except Exception as e:  # the quantiser raises many types
            raise ModelError(f"int8 quantisation failed: {e}".splitlines()[0]) from e
        import onnx

        proto = onnx.load(str(dst))
    meta.update(precision="int8", quantisation="static QDQ, u8 activations (min-max), s8 "
                f"weights per channel (7-bit range), calibrated on {len(calibration)} faces")
    set_onnx_meta(proto, meta)
    return proto.SerializeToString()


# --------------------------------------------------------------------------------------------
# checking


@dataclass
class ExportCheck:
    """PyTorch's probabilities against the graph's on the same faces."""

    faces: int
    what: str  # which faces, in words
    max_abs_diff: float  # largest difference of one class probability
    agreement: float  # fraction of faces given the same label

    def line(self) -> str:
        return (f"checked on {self.faces} {self.what}: max |p_onnx - p_torch| = "
                f"{self.max_abs_diff:.2e}, same label for {self.agreement:.1%}")


def compare_with_torch(model: torch.nn.Module, classifier, images: np.ndarray,
                       what: str = "faces") -> ExportCheck:
    """Probabilities of ``model`` (PyTorch, float32) and ``classifier`` (an
    :class:`ferlab.runtime.onnx_classifier.OnnxClassifier`) on uint8 faces ``[N, 48, 48]``."""

    ref = predict_faces(model, images, progress=False, precision="fp32")
    got = classifier.predict(images, progress=False)
    return ExportCheck(faces=len(images), what=what,
                       max_abs_diff=float(np.abs(ref - got).max()) if len(images) else 0.0,
                       agreement=float((ref.argmax(1) == got.argmax(1)).mean())
                       if len(images) else 1.0)


def check_faces(data: str | Path | None = None, n: int = 256) -> tuple[np.ndarray, str]:
    """Real faces to check an export on: the bundled astronaut photo's face, plus up to ``n``
    test faces of ``data`` (its test rows, else all); without ``data``, ``n`` synthetic faces
    stand in beside the astronaut.

    Returns:
        ``(uint8 [M, 48, 48], what they are, in words)``.
    """
    from ..faces.crop import crop_faces
    from ..faces.detect import make_detector
    from ..faces.photo import load_photo

    photo = load_photo(DEMO_PHOTO)
    crops = crop_faces(photo.gray, make_detector()(photo.gray))
    what = f"{len(crops)} astronaut face{'s' * (len(crops) != 1)}"
    if data is not None:
        faces = select_split(load_faces(data), "test")
        pick = np.random.default_rng(0).choice(len(faces), min(n, len(faces)), replace=False)
        extra, extra_what = faces.images[np.sort(pick)], f"test faces of {Path(data).name}"
    else:
        extra, extra_what = make_faces(n, seed=0).images, "synthetic faces (no --data given)"
    images = np.concatenate([crops.reshape(-1, IMAGE_SIZE, IMAGE_SIZE), extra]).astype(np.uint8)
    return images, f"faces ({what} + {len(extra)} {extra_what})"


@dataclass
class ExportResult:
    """What :func:`export_model` wrote and measured."""

    path: Path
    meta: dict
    check: ExportCheck  # the file's graph against PyTorch
    fp32_check: ExportCheck | None = None  # with --int8: the float32 graph against PyTorch
    accuracy: dict | None = None  # with --int8: {"split", "faces", "float32", "int8"}


def export_model(spec: str | Path, out: str | Path, *, int8: bool = False,
                 data: str | Path | None = None, calibration_faces: int = 512,
                 check: int = 256, max_drop: float = 0.3, seed: int = 0) -> ExportResult:
    """``ferlab export``: a model to an ONNX file, checked against PyTorch before it is written.

    Args:
        spec: anything :func:`ferlab.model_spec.load_model` takes (``bundled``, a file, a run or
            ensemble folder).
        out: the ``.onnx`` file to write.
        int8: quantise to int8 (:func:`quantize_int8`); needs ``data`` with Training rows (the
            calibration faces) and PublicTest rows (the accuracy check).
        data: labelled faces: real faces to check on, and for ``int8`` the calibration faces.
        calibration_faces: how many Training faces calibrate int8 (drawn with ``seed``).
        check: how many faces of ``data`` (or synthetic ones) the graph is checked on.
        max_drop: int8 is written only if its PublicTest accuracy is at most this many points
            under the float32 graph's.

    Raises:
        ModelError: the float32 graph differs from PyTorch by more than ``FP32_TOLERANCE``, or
            int8 loses more than ``max_drop`` points (nothing is written then).
        DataError: ``int8`` without data that has Training and PublicTest rows.

    Example:
        >>> export_model("bundled", "bundled.onnx").check.max_abs_diff < 1e-4  # doctest: +SKIP
        True
    """
    if int8 and data is None:
        raise DataError("--int8 needs --data: Training faces to calibrate on and PublicTest "
                        "faces to check its accuracy")
    model = load_model(spec)
    images, what = check_faces(data, check)
    graph = export_onnx(model, source=str(spec))
    fp32 = OnnxClassifier(graph)
    fp32_check = compare_with_torch(model, fp32, images, what)
    if fp32_check.max_abs_diff > FP32_TOLERANCE:
        raise ModelError(f"the ONNX graph disagrees with PyTorch: {fp32_check.line()} (tolerance "
                         f"{FP32_TOLERANCE:g}); nothing written")
    result = ExportResult(path=Path(out), meta=fp32.meta, check=fp32_check)
    if int8:
        faces = load_faces(data)
        names = faces.split_names()
        if "Training" not in names or "PublicTest" not in names:
            raise DataError(f"{data}: --int8 needs Training and PublicTest rows (a fer2013.csv); "
                            f"the file has {names or ['no splits']}")
        train, test = select_split(faces, "Training"), select_split(faces, "PublicTest")
        pick = np.random.default_rng(seed).choice(len(train), min(calibration_faces, len(train)),
                                                  replace=False)
        graph = quantize_int8(graph, train.images[np.sort(pick)])
        quant = OnnxClassifier(graph)
        acc = {name: float((clf.predict(test.images, progress=False).argmax(1)
                            == test.labels).mean()) for name, clf in (("float32", fp32),
                                                                       ("int8", quant))}
        result.accuracy = {"split": "PublicTest", "faces": len(test), **acc}
        result.fp32_check, result.check = fp32_check, compare_with_torch(model, quant, images,
                                                                         what)
        drop = 100 * (acc["float32"] - acc["int8"])
        if drop > max_drop:
            raise ModelError(f"int8 is {drop:.2f} points under float32 on PublicTest "
                             f"({acc['int8']:.2%} against {acc['float32']:.2%}; at most "
                             f"{max_drop:g} allowed); nothing written")
        import onnx

        # The file says what it scored, so whoever runs it knows what int8 cost.
        proto = onnx.load_from_string(graph)
        result.meta = {**quant.meta, "accuracy": result.accuracy}
        set_onnx_meta(proto, result.meta)
        graph = proto.SerializeToString()
    source = single_model_file(spec)
    if source is not None:
        import onnx

        # The weights file it was made from, so a stale graph is known for what it is.
        proto = onnx.load_from_string(graph)
        result.meta = {**result.meta,
                       "source_sha256": file_sha256(source)}
        set_onnx_meta(proto, result.meta)
        graph = proto.SerializeToString()
    write_bytes(out, graph)
    return result

