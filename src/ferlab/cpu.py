"""What this CPU computes natively, and the bf16 autocast switch built on it."""

from __future__ import annotations

import functools
from contextlib import nullcontext
from pathlib import Path

import torch


@functools.cache
def bf16_is_native() -> bool:
    """Whether this CPU computes bfloat16 natively (AVX-512 bf16 or AMX), on Linux.

    Only then is bf16 autocast faster than float32; elsewhere oneDNN emulates it, slower.
    """
    try:
        flags = Path("/proc/cpuinfo").read_text().split()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def autocast_bf16(enabled: bool):
    """``torch.autocast`` to bfloat16 on the CPU when ``enabled``, else a no-op context.

    Training validates under bf16 autocast (``TrainConfig.bf16``), so inference under it scores
    the model as training chose it.
    """
    return torch.autocast("cpu", dtype=torch.bfloat16) if enabled else nullcontext()
