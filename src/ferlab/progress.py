"""Progress of long work: a tqdm bar on a terminal, plain lines with rate and ETA elsewhere.

A bar redrawn with carriage returns is what a terminal wants, and tqdm draws it well; but tqdm
draws nothing when its output is a file or a pipe (``disable=None``), and nothing either on a
pseudo-terminal that reports zero columns. :func:`progress_bar` takes tqdm's arguments and
gives, depending on where the output goes:

* a terminal: a tqdm bar (80 columns when the terminal reports 0);
* a file or a pipe: one plain line every ``FERLAB_PROGRESS_SECONDS`` seconds (default 15, so a
  few per minute), e.g. ``epoch 3/30: 120/352 step (34%), 2.7 step/s, 1m26s left, loss=1.234``,
  and a last line with the total time when the work took long enough to print any.

Example:
    >>> for batch in progress_bar(batches, desc="predict", unit="batch"):  # doctest: +SKIP
    ...     run(batch)
"""

from __future__ import annotations

import math
import os
import shutil
import sys
import time
from collections.abc import Iterable, Iterator
from typing import Any, TextIO

INTERVAL_ENV = "FERLAB_PROGRESS_SECONDS"
DEFAULT_INTERVAL = 15.0  # seconds between plain lines: 4 a minute


def progress_bar(iterable: Iterable | None = None, *, total: int | None = None, desc: str = "",
                 unit: str = "it", disable: bool | None = False, leave: bool = False,
                 file: TextIO | None = None, **tqdm_kwargs: Any):
    """A progress bar over ``iterable`` (or updated by hand with ``update(n)``).

    Args:
        iterable: what to iterate over; ``None`` for a bar moved with ``update``.
        total: number of items (default ``len(iterable)`` where it has one; ``None``: unknown).
        desc: what is being done, e.g. ``"epoch 3/30"``.
        unit: what one item is (``"step"``, ``"face"``, ``"frame"``).
        disable: ``True`` shows nothing. ``None`` and ``False`` show a bar on a terminal and
            plain lines elsewhere (tqdm's ``None`` means "nothing off a terminal"; here every
            long command reports its progress).
        leave: keep the terminal bar when it ends.
        file: where to write (default ``sys.stderr``).
        **tqdm_kwargs: passed to tqdm on a terminal (``dynamic_ncols`` and the like).

    Returns:
        An object with tqdm's ``__iter__``, ``update``, ``set_postfix``, ``set_description``,
        ``close`` and context-manager protocol.
    """
    file = file if file is not None else sys.stderr
    if total is None and iterable is not None and hasattr(iterable, "__len__"):
        total = len(iterable)
    if disable is True:
        return LineProgress(iterable, total=total, desc=desc, unit=unit, file=file,
                            disable=True)
    if _is_terminal(file):
        from tqdm import tqdm

        kwargs = {"dynamic_ncols": True, **tqdm_kwargs}
        if _columns(file) == 0:  # tqdm would size the bar to 0 columns and draw nothing
            kwargs.update(dynamic_ncols=False, ncols=shutil.get_terminal_size().columns or 80)
        return tqdm(iterable, total=total, desc=desc, unit=unit, leave=leave, file=file,
                    **kwargs)
    return LineProgress(iterable, total=total, desc=desc, unit=unit, file=file,
                        interval=interval_seconds())


def interval_seconds() -> float:
    """Seconds between plain progress lines: ``$FERLAB_PROGRESS_SECONDS`` or 15."""
    try:
        return max(0.0, float(os.environ.get(INTERVAL_ENV, DEFAULT_INTERVAL)))
    except ValueError:
        return DEFAULT_INTERVAL


def _is_terminal(file: TextIO) -> bool:
    try:
        return bool(file.isatty())
    except (AttributeError, ValueError):  # no isatty, or closed
        return False


def _columns(file: TextIO) -> int:
    try:
        return os.get_terminal_size(file.fileno()).columns
    except (AttributeError, OSError, ValueError):
        return -1  # not known: let tqdm decide


def format_duration(seconds: float) -> str:
    """``42s``, ``3m05s``, ``2h07m``."""
    if not math.isfinite(seconds):
        return "?"
    s = int(round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


class LineProgress:
    """tqdm's interface, written as plain lines at most every ``interval`` seconds.

    Written by hand because tqdm has no line-per-interval mode: off a terminal its
    ``mininterval`` still redraws one line with carriage returns, which a log file shows as
    one ever-growing line.
    """

    def __init__(self, iterable: Iterable | None = None, *, total: int | None = None,
                 desc: str = "", unit: str = "it", file: TextIO | None = None,
                 interval: float = DEFAULT_INTERVAL, disable: bool = False) -> None:
        self.iterable, self.total, self.desc, self.unit = iterable, total, desc, unit
        self.file = file if file is not None else sys.stderr
        self.interval = interval
        self.disable = disable
        self.n = 0
        self.postfix = ""
        self.lines = 0  # lines written so far
        self.start = self.last = time.monotonic()
        self.closed = False

    def __iter__(self) -> Iterator:
        if self.iterable is None:
            raise TypeError("this progress bar has no iterable; call update(n)")
        try:
            for item in self.iterable:
                yield item
                self.update(1)
        finally:
            self.close()

    def __enter__(self) -> LineProgress:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __len__(self) -> int:
        return self.total or 0

    def update(self, n: int = 1) -> None:
        self.n += n
        now = time.monotonic()
        if now - self.last >= self.interval:
            self.last = now
            self._write(self.status(now))

    def set_postfix(self, ordered_dict: dict | None = None, refresh: bool = True,
                    **kwargs: Any) -> None:
        items = {**(ordered_dict or {}), **kwargs}
        self.postfix = ", ".join(f"{k}={v}" for k, v in items.items())

    def set_postfix_str(self, s: str = "", refresh: bool = True) -> None:
        self.postfix = s

    def set_description(self, desc: str | None = None, refresh: bool = True) -> None:
        self.desc = desc or ""

    def refresh(self) -> None:
        pass

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self.lines:  # a long job: say it ended, and how long it took
            elapsed = time.monotonic() - self.start
            rate = self.n / elapsed if elapsed > 0 else math.inf
            self._write(f"{self._head()} {self.n:,} {self.unit} in {format_duration(elapsed)} "
                        f"({_rate(rate, self.unit)})" + (f", {self.postfix}" if self.postfix
                                                         else ""))

    def status(self, now: float | None = None) -> str:
        """The line for the progress so far: done/total, rate, time left, postfix."""
        elapsed = (now if now is not None else time.monotonic()) - self.start
        rate = self.n / elapsed if elapsed > 0 else 0.0
        parts = [f"{self.n:,}/{self.total:,} {self.unit} ({self.n / self.total:.0%})"
                 if self.total else f"{self.n:,} {self.unit}", _rate(rate, self.unit)]
        if self.total:
            left = (self.total - self.n) / rate if rate > 0 else math.inf
            parts.append(f"{format_duration(left)} left")
        else:
            parts.append(f"{format_duration(elapsed)} so far")
        if self.postfix:
            parts.append(self.postfix)
        return f"{self._head()} " + ", ".join(parts)

    def _head(self) -> str:
        return f"{self.desc}:" if self.desc else "progress:"

    def _write(self, line: str) -> None:
        if self.disable:
            return
        self.lines += 1
        try:
            print(line, file=self.file, flush=True)
        except (OSError, ValueError):  # a closed pipe must not stop the work
            pass


def _rate(rate: float, unit: str) -> str:
    if not math.isfinite(rate):
        return f"? {unit}/s"
    if 0 < rate < 1:
        return f"{1 / rate:.1f} s/{unit}"
    return f"{rate:.1f} {unit}/s" if rate < 100 else f"{rate:,.0f} {unit}/s"
