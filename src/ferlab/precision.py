"""Which number format a command computes in, chosen by what the device computes natively.

bfloat16 halves the memory traffic of a conv net and doubles its speed where the hardware has
bf16 instructions (CPU: AVX-512 bf16 or AMX; a recent GPU). Where it has not, oneDNN emulates
bf16 in software and a net trains about 12x slower than in float32 (an AMD Zen 3, AVX2 only).
So ``"auto"``, every command's default, takes bf16 only where it is native.

One function decides, :func:`resolve_precision`; every command goes through it, so patching
:func:`bf16_is_native` (as the tests do) changes every default at once. This module imports no
torch at load time: the CLI builds its ``--precision`` choices from it before torch is loaded.

Example:
    >>> resolve_precision("fp32").name
    'fp32'
    >>> resolve_precision("auto").name in ("fp32", "bf16")
    True
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass

from .cpuinfo import cpu_flags
from .errors import ConfigError

PRECISIONS = ("auto", "fp32", "bf16")


def bf16_is_native() -> bool:
    """Whether this CPU computes bfloat16 natively (AVX-512 bf16 or AMX).

    Only then is bf16 faster than float32; elsewhere oneDNN emulates it, slower.
    """
    flags = cpu_flags()
    return "avx512_bf16" in flags or "amx_bf16" in flags


def _cuda_bf16() -> bool:
    import torch

    return torch.cuda.is_available() and torch.cuda.is_bf16_supported()


@dataclass(frozen=True)
class Precision:
    """A resolved precision: ``name`` is ``"fp32"`` or ``"bf16"``; ``reason`` says why."""

    name: str
    reason: str

    @property
    def bf16(self) -> bool:
        return self.name == "bf16"


def resolve_precision(requested: str = "auto", device: str = "cpu") -> Precision:
    """The precision to compute in on ``device`` (``"cpu"`` or ``"cuda"``).

    ``"fp32"`` and ``"bf16"`` are taken as asked (bf16 where it is emulated is slow, not wrong);
    ``"auto"`` is bf16 where the device computes it natively, else float32.

    Raises:
        ConfigError: ``requested`` is not one of :data:`PRECISIONS`.
    """
    if requested not in PRECISIONS:
        raise ConfigError(f"precision must be one of {PRECISIONS}, got {requested!r}")
    if requested != "auto":
        return Precision(requested, f"asked for {requested}")
    if str(device).startswith("cuda"):
        if _cuda_bf16():
            return Precision("bf16", "auto: this GPU computes bf16 natively")
        return Precision("fp32", "auto: this GPU has no native bf16")
    if bf16_is_native():
        return Precision("bf16", "auto: this CPU computes bf16 natively (AVX-512 bf16 / AMX)")
    return Precision("fp32", "auto: this CPU has no native bf16 (it would be emulated, slower)")


def precision_from_flags(precision: str | None = None, bf16: bool = False,
                         no_bf16: bool = False) -> str:
    """The ``--precision`` value of a command line that may use the older aliases:
    ``--bf16`` means ``bf16`` and ``--no-bf16`` means ``fp32``."""
    if bf16 and no_bf16:
        raise ConfigError("--bf16 and --no-bf16 contradict each other")
    alias = "bf16" if bf16 else "fp32" if no_bf16 else None
    if alias and precision not in (None, "auto", alias):
        raise ConfigError(f"--precision {precision} contradicts --{'no-' * no_bf16}bf16")
    return alias or precision or "auto"


def autocast(precision: Precision | str | bool, device_type: str = "cpu"):
    """``torch.autocast`` to bfloat16 when ``precision`` is bf16, else a no-op context."""
    on = precision if isinstance(precision, bool) else (
        precision.bf16 if isinstance(precision, Precision) else precision == "bf16")
    if not on:
        return nullcontext()
    import torch

    return torch.autocast(device_type, dtype=torch.bfloat16)
