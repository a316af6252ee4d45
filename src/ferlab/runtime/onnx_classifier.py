"""A ferlab classifier run by ONNX Runtime, with the probabilities interface of the torch path.

An :class:`OnnxClassifier` holds an ONNX Runtime session over a graph from
:func:`ferlab.runtime.onnx_graph.export_onnx` (or an int8 one from
:func:`ferlab.runtime.export.quantize_int8`):
``predict(uint8 faces [N, 48, 48]) -> probabilities [N, 7]``, test-time augmentation included,
as :func:`ferlab.predict.predict_faces` gives for a torch model.

Example:
    >>> clf = OnnxClassifier.from_model(load_model("bundled"))      # doctest: +SKIP
    >>> clf.predict(faces.images).argmax(1)                          # doctest: +SKIP
"""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path

import numpy as np
import torch

from ..assets import BUNDLED_INT8, asset_path, bundled_model_path
from ..constants import IMAGE_SIZE
from ..errors import ConfigError, ModelError
from ..inference import predict_probs, tta_mode
from ..model_spec import load_model, single_model_file
from .onnx_graph import INPUT_NAME, check_onnx_meta, export_onnx, read_onnx_meta

ONNX_SUFFIX = ".onnx"


def is_onnx_file(spec) -> bool:
    """Whether a model spec names an ``.onnx`` file (which only ONNX Runtime runs)."""
    return isinstance(spec, str | Path) and Path(spec).suffix.lower() == ONNX_SUFFIX


def make_session(data: bytes | str | Path, threads: int | None = None):
    """An ONNX Runtime CPU session on ``threads`` intra-op threads (default: torch's count).

    One inter-op thread and no spinning: the graph is one chain of layers (nothing to run side
    by side), and threads that busy-wait between calls take cores from whatever else runs,
    face detection included (the same settings as :func:`ferlab.faces.blazeface._onnx_session`).
    """
    import onnxruntime as ort  # imported here: only the onnx runtime needs it

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or torch.get_num_threads()
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3  # errors only
    where = "ONNX graph" if isinstance(data, bytes) else str(data)
    try:
        return ort.InferenceSession(data if isinstance(data, bytes) else str(data), options,
                                    providers=["CPUExecutionProvider"])
    except Exception as e:  # ORT raises its own exception types for unreadable graphs
        raise ModelError(f"{where}: ONNX Runtime cannot load it: {e}".splitlines()[0]) from e


class OnnxClassifier:
    """A ferlab classifier in ONNX Runtime.

    Args:
        data: the graph (bytes, or the path of an ``.onnx`` file from ``ferlab export``).
        threads: ONNX Runtime intra-op threads (default: ``torch.get_num_threads()``).

    Attributes:
        meta: the file's ferlab metadata (classes, preprocessing, model name and arguments,
            ``precision`` float32 or int8).
        name, kwargs: the model's, as on a torch model (for
            :func:`ferlab.evaluate.model_description`).

    Raises:
        ModelError: the file is not a ferlab graph or ONNX Runtime cannot load it.
    """

    def __init__(self, data: bytes | str | Path, threads: int | None = None) -> None:
        if not isinstance(data, bytes) and not Path(data).is_file():
            raise ModelError(f"{data}: no such ONNX file")
        self.session = make_session(data, threads)
        where = "ONNX graph" if isinstance(data, bytes) else str(data)
        self.meta = check_onnx_meta(self.session.get_modelmeta().custom_metadata_map, where)
        inputs = self.session.get_inputs()
        if [i.name for i in inputs] != [INPUT_NAME]:
            raise ModelError(f"{data if not isinstance(data, bytes) else 'ONNX graph'}: its "
                             f"input is not {INPUT_NAME!r}; export it with 'ferlab export'")
        self.name = self.meta.get("name", "onnx")
        self.kwargs = self.meta.get("kwargs", {})
        self.precision = self.meta.get("precision", "float32")

    @classmethod
    def from_model(cls, model: torch.nn.Module, threads: int | None = None,
                   source: str = "") -> OnnxClassifier:
        """Export ``model`` in memory (:func:`~ferlab.runtime.onnx_graph.export_onnx`), load it."""
        return cls(export_onnx(model, source=source), threads=threads)

    def logits(self, x: torch.Tensor | np.ndarray) -> np.ndarray:
        """Logits ``float32 [N, 7]`` for grey / 255 ``[N, 1, 48, 48]``."""
        x = x.numpy() if isinstance(x, torch.Tensor) else x
        return self.session.run(None, {INPUT_NAME: np.ascontiguousarray(x, np.float32)})[0]

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """Logits as a tensor, so that :func:`ferlab.predict.average_probs` takes this too."""
        return torch.from_numpy(self.logits(x))

    def predict(self, images: np.ndarray, *, tta: bool | str = False, batch_size: int = 256,
                progress: bool = True) -> np.ndarray:
        """Softmax probabilities ``float32 [N, 7]`` for uint8 faces ``[N, 48, 48]``, in batches
        (the same views and averaging as :func:`ferlab.predict.predict_faces`)."""
        images = np.asarray(images, dtype=np.uint8)
        if images.ndim == 2:
            images = images[None]
        if images.shape[1:] != (IMAGE_SIZE, IMAGE_SIZE):
            raise ConfigError(f"faces must be [N, {IMAGE_SIZE}, {IMAGE_SIZE}], got "
                              f"{tuple(images.shape)}")
        return predict_probs(self, images, batch_size=batch_size, precision="fp32",
                             tta=tta_mode(tta), fast=False, progress=progress).numpy()


def as_onnx(model, threads: int | None = None) -> OnnxClassifier:
    """What ONNX Runtime runs for ``model``: ``model`` itself when it is an
    :class:`OnnxClassifier`; for the bundled model, its int8 graph shipped with ferlab (see
    :func:`bundled_int8_path`); else the model's graph exported in memory, float32
    (:func:`~ferlab.runtime.onnx_graph.export_onnx`; ``benchmarks/bench_runtime.py`` prints how
    long that takes)."""
    if isinstance(model, OnnxClassifier):
        return model
    shipped = shipped_graph(model)
    if shipped is not None:
        return OnnxClassifier(shipped, threads=threads)
    return OnnxClassifier.from_model(model, threads=threads)


def bundled_int8_path() -> Path:
    """The bundled model's int8 graph: ``ferlab export --model bundled --int8 --data
    fer2013.csv.gz --out src/ferlab/assets/bundled-int8.onnx`` (for the 3-member ensemble, on
    PublicTest without TTA 70.91% against float32's 70.74%, recorded in its metadata; the gate
    is 0.3 points)."""
    return asset_path(BUNDLED_INT8)


def file_sha256(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def shipped_graph(model) -> Path | None:
    """The shipped int8 graph of ``model`` when ``model`` was loaded from the bundled file by
    :func:`load_classifier` and the graph was made from that very file (its metadata holds the
    file's SHA-256), else None: a stale graph is never run for a changed bundled model."""
    source = getattr(model, "source_path", None)
    graph = bundled_int8_path()
    if source is None or not graph.is_file():
        return None

    if Path(source) != bundled_model_path():
        return None
    return graph if _made_from(graph, Path(source)) else None


@functools.cache
def _made_from(graph: Path, source: Path) -> bool:
    # Cached: hashing the 13 MB bundled file takes tens of milliseconds, and a process asks
    # more than once (choosing the runtime, then loading the graph).
    return read_onnx_meta(graph).get("source_sha256") == file_sha256(source)


def load_classifier(spec) -> torch.nn.Module | OnnxClassifier:
    """A model to classify with: an ``.onnx`` file as an :class:`OnnxClassifier`, anything
    else through :func:`ferlab.model_spec.load_model` (an :class:`OnnxClassifier` or a loaded
    model is returned as it is)."""
    if isinstance(spec, OnnxClassifier | torch.nn.Module):
        return spec
    if is_onnx_file(spec):
        return OnnxClassifier(spec)

    model = load_model(spec)
    # Where the weights came from, so that a graph made from that file can stand in.
    source = single_model_file(spec)
    if source is not None:
        model.source_path = source
    return model
