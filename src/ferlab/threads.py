"""How many CPU threads a command computes with.

On a small machine, two threads are fastest while it is idle and collapse as soon as another
process takes a core: every parallel op then waits for the thread that shares its core with the
other process, so one photo can take 8x longer, where one thread only loses its share
(``benchmarks/bench_load.py`` measures both with a busy loop on one core). So ferlab uses:

* ``"batch"`` work (training, scoring a file of faces): every core this process may use, where
  large ops amortise the waits;
* ``"small"`` work (a photo, a video frame, a handful of faces): one thread, which holds up when
  the machine is busy and costs little when it is idle.

``--threads N`` overrides either. This module imports torch only when it sets threads.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

WORK = ("batch", "small")


def available_cores() -> int:
    """The CPU cores this process may run on (its affinity mask where the OS has one)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # macOS, Windows
        return max(1, os.cpu_count() or 1)


def threads_for(work: str = "batch", threads: int = 0) -> int:
    """The thread count for ``work`` (see the module docstring); ``threads`` > 0 wins."""
    if work not in WORK:
        raise ValueError(f"work must be one of {WORK}, got {work!r}")
    if threads > 0:
        return threads
    return available_cores() if work == "batch" else 1


def configure_threads(threads: int = 0, work: str = "batch") -> int:
    """Set torch's intra-op threads for ``work`` and return the count set.

    Example:
        >>> configure_threads(1)
        1
    """
    import torch

    n = threads_for(work, threads)
    torch.set_num_threads(n)
    return n


@contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run the block on ``n`` torch intra-op threads, then put the previous count back (a
    library call should not change its caller's settings for good)."""
    import torch

    before = torch.get_num_threads()
    if n == before:
        yield
        return
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)
