"""Which runtime classifies faces: ``--runtime torch|onnx|auto``, and what ``auto`` picks.

``auto`` looks up :data:`CHOICES`, keyed by the CPU's kind (whether it computes bf16 natively,
:func:`ferlab.precision.bf16_is_native`), the batch size (one face at a time, as photos and video
send them, or many, as ``evaluate`` and ``predict --input`` do) and what ONNX Runtime would run
for the model (``int8`` for the bundled model, whose int8 graph ships with ferlab and passed the
accuracy gate of ``ferlab export --int8``; ``float32`` for any other, exported at start): the
runtime that ``benchmarks/bench_runtime.py`` (part of ``make bench``) measured faster on the
bundled classifier, torch in the precision it runs by default on that CPU against ONNX Runtime.
"""

from __future__ import annotations

from pathlib import Path

from .. import precision
from ..errors import ConfigError

RUNTIMES = ("torch", "onnx", "auto")
DEFAULT_RUNTIME = "auto"
# At most this many faces per call counts as "one" (a photo's few faces, a video frame's).
ONE_MAX = 4

# (CPU kind, batch kind, what ONNX Runtime runs) -> the faster runtime.
CHOICES: dict[tuple[str, str, str], str] = {
    # Measured: `python benchmarks/bench_runtime.py --data fer2013.csv.gz --threads 1` (batch 1,
    # the one torch thread photos run on) and `--threads 2 --batches 64`, on an Intel Xeon
    # (Sapphire Rapids class, family 6 model 207, AVX-512 bf16 + AMX, VNNI), 2 cores, quiet
    # machine, faces/s: batch 1 torch bf16 232 against ONNX float32 178 and int8 658; batch 64
    # torch bf16 860 against ONNX float32 330 and int8 1,016.
    ("bf16-native", "one", "float32"): "torch",
    ("bf16-native", "one", "int8"): "onnx",
    ("bf16-native", "many", "float32"): "torch",
    ("bf16-native", "many", "int8"): "onnx",
    # Measured: `python benchmarks/bench_runtime.py` (run by `make bench`, 2 threads) on an AMD
    # EPYC Zen 3 (family 25 model 1, AVX2, no AVX-512, bf16 only emulated), 2 cores, quiet
    # machine, faces/s: batch 1 torch float32 216 against ONNX float32 282 and int8 567;
    # batch 64 torch float32 306 against ONNX float32 342 and int8 665.
    ("no-bf16", "one", "float32"): "onnx",
    ("no-bf16", "one", "int8"): "onnx",
    ("no-bf16", "many", "float32"): "onnx",
    ("no-bf16", "many", "int8"): "onnx",
}


def cpu_kind() -> str:
    """``"bf16-native"`` or ``"no-bf16"``: the key of this CPU in :data:`CHOICES`."""
    return "bf16-native" if precision.bf16_is_native() else "no-bf16"


def batch_kind(batch_size: int) -> str:
    """``"one"`` for up to :data:`ONE_MAX` faces a call, else ``"many"``."""
    return "one" if batch_size <= ONE_MAX else "many"


def resolve_runtime(runtime: str | None, batch_size: int, model=None, bf16: bool = False) -> str:
    """The runtime to use, ``"torch"`` or ``"onnx"``, for ``runtime`` and this batch size.

    Args:
        runtime: ``torch``, ``onnx`` or ``auto``; None: the model's own (ONNX Runtime for an
            ONNX graph, else torch), what library calls that take a model do by default.
        batch_size: faces per call (1 for photos and video).
        model: the model spec or object, when known: an ``.onnx`` file or an
            :class:`ferlab.runtime.onnx_classifier.OnnxClassifier` runs only in ONNX Runtime.
        bf16: a precision was asked for by name (``fp32`` or ``bf16``, not ``auto``):
            ``auto`` then keeps torch, the runtime that computes in it (the shipped ONNX graph
            is int8).

    Raises:
        ConfigError: an unknown runtime, or ``torch`` asked for an ONNX file.

    Example:
        >>> resolve_runtime("onnx", 1)
        'onnx'
    """
    if runtime is not None and runtime not in RUNTIMES:
        raise ConfigError(f"runtime must be one of {', '.join(RUNTIMES)}, got {runtime!r}")
    if _is_onnx(model):
        if runtime == "torch":
            raise ConfigError(f"{model if isinstance(model, str | Path) else 'the model'} is an "
                              "ONNX graph: it runs with --runtime onnx (or auto), not torch")
        return "onnx"
    if runtime is None:
        return "torch"
    if runtime == "auto" and bf16:
        return "torch"
    if runtime == "auto":
        return CHOICES[cpu_kind(), batch_kind(batch_size), onnx_precision(model)]
    return runtime


def onnx_precision(model) -> str:
    """What ONNX Runtime would run for ``model``: ``"int8"`` where an int8 graph ships for it
    (:func:`ferlab.runtime.onnx_classifier.shipped_graph`), else ``"float32"``."""
    # `ferlab --help` reads this module's choices; the classifier module would load torch.
    from .onnx_classifier import shipped_graph

    return "int8" if model is not None and shipped_graph(model) is not None else "float32"


def _is_onnx(model) -> bool:
    from .onnx_classifier import OnnxClassifier, is_onnx_file  # (as above)

    return isinstance(model, OnnxClassifier) or is_onnx_file(model)
