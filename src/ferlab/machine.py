"""What machine this is: the CPU's model and vector extensions, for benchmarks to print beside
their figures (a speed figure means little without the CPU it was measured on)."""

from __future__ import annotations

import functools
import platform
from pathlib import Path

# Flags that decide which kernels run, in the order a reader compares CPUs by.
VECTOR_FLAGS = {"avx2": "AVX2", "avx512f": "AVX-512", "avx512_vnni": "AVX-512 VNNI",
                "avx_vnni": "AVX-VNNI", "avx512_bf16": "AVX-512 bf16", "amx_bf16": "AMX bf16",
                "amx_int8": "AMX int8"}


@functools.cache
def _cpuinfo() -> str:
    try:
        return Path("/proc/cpuinfo").read_text()
    except OSError:
        return ""


def _field(name: str) -> str:
    for line in _cpuinfo().splitlines():
        if line.startswith(name):
            return line.partition(":")[2].strip()
    return ""


def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags from ``/proc/cpuinfo`` (empty where there is none, e.g. macOS)."""
    return frozenset(_field("flags").split())


def cpu_model() -> str:
    """The CPU's model name, e.g. ``AMD EPYC 7B13 64-Core Processor`` (``platform`` elsewhere)."""
    return _field("model name") or platform.processor() or platform.machine() or "unknown CPU"


def vector_extensions() -> list[str]:
    """The vector extensions of :data:`VECTOR_FLAGS` this CPU has, e.g. ``['AVX2']``."""
    flags = cpu_flags()
    return [label for flag, label in VECTOR_FLAGS.items() if flag in flags]


def machine_header() -> str:
    """Lines naming the CPU, its vector extensions, the core count, torch's and ONNX Runtime's
    versions and the precision ``auto`` picks here: what every benchmark prints first."""
    from .precision import resolve_precision
    from .threads import available_cores

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
    family = " ".join(f"{k} {_field(k)}" for k in ("cpu family", "model") if _field(k))
    chosen = resolve_precision("auto")
    return "\n".join([
        f"CPU: {cpu_model()}" + (f" ({family})" if family else ""),
        f"vector extensions: {', '.join(vector_extensions()) or 'none (no AVX2)'}",
        f"cores available: {available_cores()}; torch {torch_version}; onnxruntime {ort_version}",
        f"precision auto -> {chosen.name} ({chosen.reason})",
    ])
