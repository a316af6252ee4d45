"""How a run stops: SIGINT/SIGTERM become an interruption that waits for the epoch's files, and
reaches the caller as one :class:`~ferlab.training.errors.TrainingInterrupted` (or, when a peer
of a distributed run is lost, one :class:`~ferlab.training.distributed.DistributedError`)."""

from __future__ import annotations

import signal
from contextlib import contextmanager
from pathlib import Path

from . import distributed
from .errors import TrainingInterrupted
from .state import TrainState


class Stopper:
    """Turns SIGINT/SIGTERM into KeyboardInterrupt, but holds them while :meth:`holding`:
    the end-of-epoch files (history, best model, checkpoint) are then all written before the
    run stops, so they always agree with each other."""

    def __init__(self, defer: bool = False) -> None:
        # defer: only note the signal; the ranks of a distributed run agree on when to stop.
        self.hold, self.pending, self.defer = False, False, defer

    def handler(self, signum, frame) -> None:
        if self.hold or self.defer:
            self.pending = True
            return
        raise KeyboardInterrupt

    @contextmanager
    def holding(self):
        self.hold = True
        try:
            yield
        finally:
            self.hold = False
        if self.pending and not self.defer:
            self.pending = False
            raise KeyboardInterrupt


@contextmanager
def sigterm_as_interrupt(defer: bool = False):
    """Let SIGTERM stop training the way Ctrl-C does (KeyboardInterrupt), then restore.

    Yields a :class:`Stopper` whose ``holding()`` defers both signals over a critical section.
    SIGINT is only taken over when Python's own Ctrl-C handler is in place (not when ignored).
    With ``defer`` a signal only sets ``stopper.pending``, for the caller to act on.
    """
    stopper = Stopper(defer)
    signums = [signal.SIGTERM]
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        signums.append(signal.SIGINT)
    try:
        previous = {s: signal.signal(s, stopper.handler) for s in signums}
    except ValueError:  # not the main thread: leave signals alone
        yield stopper
        return
    try:
        yield stopper
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


@contextmanager
def stops_reported(out: Path, state: TrainState, ctx: distributed.Context):
    """Turn a stop inside the block into the one-line error that says what is saved.

    KeyboardInterrupt (a signal, or ``stop_after``) becomes :class:`TrainingInterrupted`; a
    failed collective of a distributed run becomes a :class:`distributed.DistributedError`.
    Both name the epochs ``state`` holds when the stop comes, and how to resume.
    """
    try:
        yield
    except KeyboardInterrupt:
        raise TrainingInterrupted(
            f"interrupted; {state.epoch} finished epoch(s) saved in {out}; continue with "
            f"--resume {out}") from None
    except (RuntimeError, distributed.DistributedError) as e:
        if not ctx.active:
            raise
        raise distributed.lost_peer(ctx, e, f"; {state.epoch} finished epoch(s) saved in "
                                             f"{out}; continue with --resume {out}") from e
