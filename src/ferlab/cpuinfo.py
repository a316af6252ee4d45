"""What CPU this is, from ``/proc/cpuinfo``: its model and feature flags. The precision defaults
(:mod:`ferlab.precision`) and the benchmarks' header (:mod:`ferlab.machine`) read it."""

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


def cpu_field(name: str) -> str:
    for line in _cpuinfo().splitlines():
        if line.startswith(name):
            return line.partition(":")[2].strip()
    return ""


def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags from ``/proc/cpuinfo`` (empty where there is none, e.g. macOS)."""
    return frozenset(cpu_field("flags").split())


def cpu_model() -> str:
    """The CPU's model name, e.g. ``AMD EPYC 7B13 64-Core Processor`` (``platform`` elsewhere)."""
    return cpu_field("model name") or platform.processor() or platform.machine() or "unknown CPU"


def vector_extensions() -> list[str]:
    """The vector extensions of :data:`VECTOR_FLAGS` this CPU has, e.g. ``['AVX2']``."""
    flags = cpu_flags()
    return [label for flag, label in VECTOR_FLAGS.items() if flag in flags]
