"""Keep freed memory inside the process while training (glibc only).

glibc's malloc hands every large buffer (a batch's activations, tens of MB each) back to the
kernel when torch frees it, and the next step faults the same memory back in page by page.
On a 2-core Xeon (AMX) one training step of the speedrun net at batch 1024 spent a third of
its time in the kernel that way: 205 images/s, against 330 with the thresholds raised, and
367 against 403 at batch 256 (``benchmarks/bench_allocator.py``). Raising glibc's mmap and trim
thresholds keeps those buffers in the heap for the next step; the process then keeps its peak
memory until it exits, which a training run does anyway.
"""

from __future__ import annotations

import ctypes
import sys

M_TRIM_THRESHOLD = -1  # glibc's mallopt parameters (malloc.h)
M_MMAP_THRESHOLD = -3
KEEP_BYTES = 1 << 30  # buffers up to 1 GiB come from the heap and stay there when freed

_done: bool | None = None


def keep_freed_memory() -> bool:
    """Raise glibc's thresholds once per process; returns whether they are raised (False on
    other C libraries and systems, where nothing changes)."""
    global _done
    if _done is None:
        _done = False
        if sys.platform.startswith("linux"):
            try:
                libc = ctypes.CDLL("libc.so.6")
                _done = bool(libc.mallopt(M_MMAP_THRESHOLD, KEEP_BYTES)
                             and libc.mallopt(M_TRIM_THRESHOLD, KEEP_BYTES))
            except (OSError, AttributeError):  # musl or another libc without mallopt
                _done = False
    return _done
