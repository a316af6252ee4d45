"""A fixed set of Recognizers, each used by one thread at a time, with a deadline per job.

One Recognizer per worker thread rather than one shared: explainers put hooks on their model and
flip its layers' flags for the call, and OpenCV's Haar cascade keeps per-image state in the
cascade object, so neither may be used by two threads at once.
"""

from __future__ import annotations

import asyncio
import queue
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import numpy as np

from ..faces.recognizer import Recognizer

T = TypeVar("T")


def _warm_up(rec: Recognizer, methods: tuple[str, ...]) -> None:
    rec.analyze(np.zeros((256, 256, 3), np.uint8))
    face = np.full((48, 48), 128, np.uint8)
    for m in methods:
        rec.explain(face, m, target=0, **({"samples": 16} if m == "lime" else {}))


class JobTimeout(Exception):
    """A job did not finish within its deadline (the client gets 504)."""


class RecognizerPool:
    """``size`` Recognizers of ``model`` and as many threads; :meth:`run` gives a job one.

    Args:
        model: anything :class:`~ferlab.faces.recognizer.Recognizer` takes (``"bundled"``, a path).
        size: Recognizers (and threads) to make.
        warm_up: run each Recognizer once on a blank photo and each of ``methods`` once, so that the
            first visitor does not wait for PyTorch's first-call set-up (seconds for saliency).
        recognizer_options: passed to each Recognizer (``detector=``, ``bf16=``, ...).

    Example:
        >>> pool = RecognizerPool("bundled", 2)                         # doctest: +SKIP
        >>> await pool.run(lambda rec: rec.detect_emotions(b), 30.0)    # doctest: +SKIP
    """

    def __init__(self, model: Any, size: int, warm_up: bool = True,
                 methods: tuple[str, ...] = (), **recognizer_options: Any) -> None:
        self.size = size
        self.recognizers = [Recognizer(model, **recognizer_options) for _ in range(size)]
        if warm_up:
            for rec in self.recognizers:
                _warm_up(rec, methods)
        self._free: queue.SimpleQueue[Recognizer] = queue.SimpleQueue()
        for rec in self.recognizers:
            self._free.put(rec)
        self._executor = ThreadPoolExecutor(size, thread_name_prefix="ferlab-serve")

    @property
    def first(self) -> Recognizer:
        """A Recognizer to read facts from (model name, precision); not for running jobs."""
        return self.recognizers[0]

    def _call(self, job: Callable[[Recognizer], T]) -> T:
        # As many threads as Recognizers, so one is always free here.
        rec = self._free.get()
        try:
            return job(rec)
        finally:
            self._free.put(rec)

    async def run(self, job: Callable[[Recognizer], T], timeout_s: float) -> T:
        """``job(recognizer)`` on a worker thread, within ``timeout_s`` seconds of waiting and
        running.

        Raises:
            JobTimeout: the deadline passed. A job still queued is dropped; one already running
                cannot be stopped in Python and finishes on its thread, holding its worker.
        """
        future = asyncio.get_running_loop().run_in_executor(self._executor, self._call, job)
        try:
            return await asyncio.wait_for(future, timeout_s)
        except TimeoutError:
            raise JobTimeout(f"not answered within {timeout_s:g} s") from None

    def close(self) -> None:
        """Stop the threads (jobs under way finish first; queued ones are dropped)."""
        self._executor.shutdown(wait=False, cancel_futures=True)
