"""What machine this is, for benchmarks to print beside their figures (a speed figure means little
without the CPU it was measured on)."""

from __future__ import annotations

from .cpuinfo import cpu_field, cpu_model, vector_extensions
from .precision import resolve_precision
from .threads import available_cores

__all__ = ["cpu_model", "machine_header", "vector_extensions"]


def machine_header() -> str:
    """Lines naming the CPU, its vector extensions, the core count, torch's and ONNX Runtime's
    versions and the precision ``auto`` picks here: what every benchmark prints first."""
    try:
        import torch

        torch_version = torch.__version__
    except ImportError:  # pragma: no cover - torch is a dependency
        torch_version = "not installed"
    try:
        import onnxruntime

        ort_version = onnxruntime.__version__
    except ImportError:  # pragma: no cover
        ort_version = "not installed"
    family = " ".join(f"{k} {cpu_field(k)}" for k in ("cpu family", "model") if cpu_field(k))
    chosen = resolve_precision("auto")
    return "\n".join([
        f"CPU: {cpu_model()}" + (f" ({family})" if family else ""),
        f"vector extensions: {', '.join(vector_extensions()) or 'none (no AVX2)'}",
        f"cores available: {available_cores()}; torch {torch_version}; onnxruntime {ort_version}",
        f"precision auto -> {chosen.name} ({chosen.reason})",
    ])
