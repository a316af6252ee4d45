"""Which runtime classifies faces: ``--runtime torch|onnx|auto``, and what ``auto`` picks.

``auto`` looks up :data:`CHOICES`, keyed by the CPU's kind (whether it computes bf16 natively,
:func:`ferlab.cpu.bf16_is_native`) and the batch size (one face at a time, as photos and video
send them, or many, as ``evaluate`` and ``predict --input`` do): the runtime that
``benchmarks/bench_runtime.py`` (part of ``make bench``) measured faster on the bundled
classifier, torch in the precision it runs by default on that CPU against ONNX Runtime in
float32. Int8 is never picked by ``auto``: it changes the answers a little, so it runs only
from an int8 file asked for by name (``ferlab export --int8``).
"""

from __future__ import annotations

from pathlib import Path

from .cpu import bf16_is_native
from .errors import ConfigError

RUNTIMES = ("torch", "onnx", "auto")
DEFAULT_RUNTIME = "auto"
# At most this many faces per call counts as "one" (a photo's few faces, a video frame's).
ONE_MAX = 4

# (CPU kind, batch kind) -> the faster runtime.
CHOICES: dict[tuple[str, str], str] = {
    # Measured: `python benchmarks/bench_runtime.py` on an Intel Xeon (Sapphire Rapids class,
    # family 6 model 207, AVX-512 bf16 + AMX), 2 threads; torch bf16 against ONNX Runtime fp32.
    ("bf16-native", "one"): "torch",
    ("bf16-native", "many"): "torch",
    # Not measured: no CPU without native bf16 was at hand. torch in float32 is the path ferlab
    # has always taken there (and the reference the ONNX graph is checked against), so it stays
    # until bench_runtime.py on such a CPU says otherwise.
    ("no-bf16", "one"): "torch",
    ("no-bf16", "many"): "torch",
}


def cpu_kind() -> str:
    """``"bf16-native"`` or ``"no-bf16"``: the key of this CPU in :data:`CHOICES`."""
    return "bf16-native" if bf16_is_native() else "no-bf16"


def batch_kind(batch_size: int) -> str:
    """``"one"`` for up to :data:`ONE_MAX` faces a call, else ``"many"``."""
    return "one" if batch_size <= ONE_MAX else "many"


def resolve_runtime(runtime: str | None, batch_size: int, model=None) -> str:
    """The runtime to use, ``"torch"`` or ``"onnx"``, for ``runtime`` and this batch size.

    Args:
        runtime: ``torch``, ``onnx`` or ``auto``; None: the model's own (ONNX Runtime for an
            ONNX graph, else torch), what library calls that take a model do by default.
        batch_size: faces per call (1 for photos and video).
        model: the model spec or object, when known: an ``.onnx`` file or an
            :class:`ferlab.onnx_runtime.OnnxClassifier` runs only in ONNX Runtime.

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
    if runtime == "auto":
        return CHOICES[cpu_kind(), batch_kind(batch_size)]
    return runtime


def _is_onnx(model) -> bool:
    from .onnx_runtime import OnnxClassifier, is_onnx_file

    return isinstance(model, OnnxClassifier) or is_onnx_file(model)
