"""The learning rate of every optimiser step: :func:`lr_at`, and the plateau rule's state.

Example:
    >>> from ferlab.config import TrainConfig
    >>> lr_at(0, 100, TrainConfig(lr=1.0, schedule="onecycle"), 10)
    0.04
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..config import TrainConfig

PLATEAU_MIN_GAIN = 1e-4  # a validation loss must fall by this much to count as a gain


def lr_at(step: int, total_steps: int, t: TrainConfig, steps_per_epoch: int,
          plateau_scale: float = 1.0) -> float:
    """Learning rate at optimiser step ``step`` (0-based) of ``total_steps``."""
    if t.schedule == "constant":
        return t.lr
    if t.schedule == "plateau":
        return t.lr * plateau_scale
    if t.schedule == "onecycle":
        # Warm up from lr/25 over the first 25% of steps, then cosine down to lr/1e4.
        up = max(1, int(0.25 * total_steps))
        if step < up:
            return t.lr / 25 + (t.lr - t.lr / 25) * (1 - math.cos(math.pi * step / up)) / 2
        frac = (step - up) / max(1, total_steps - up)
        return t.lr / 1e4 + (t.lr - t.lr / 1e4) * (1 + math.cos(math.pi * frac)) / 2
    # cosine with linear warm-up
    warm = int(t.warmup_epochs * steps_per_epoch)
    if step < warm:
        return t.lr * (step + 1) / warm
    frac = (step - warm) / max(1, total_steps - warm)
    return t.lr * (1 + math.cos(math.pi * min(frac, 1.0))) / 2


def steps_per_epoch(faces: int, t: TrainConfig) -> int:
    """Optimiser steps in one epoch over ``faces`` training faces: the last, smaller batch
    counts unless ``t.drop_last``."""
    seen = faces * t.epoch_multiplier
    return max(1, seen // t.batch_size) if t.drop_last else math.ceil(seen / t.batch_size)


@dataclass(frozen=True)
class Schedule:
    """:func:`lr_at` with one run's figures: ``lr(epoch, step)`` for a step of an epoch.

    Attributes:
        t: the run's training config (schedule, peak lr, epochs, warm-up).
        steps_per_epoch: optimiser steps in one epoch.
    """

    t: TrainConfig
    steps_per_epoch: int

    @property
    def total_steps(self) -> int:
        return self.t.epochs * self.steps_per_epoch

    def lr(self, epoch: int, step: int, plateau_scale: float = 1.0) -> float:
        return lr_at(epoch * self.steps_per_epoch + step, self.total_steps, self.t,
                     self.steps_per_epoch, plateau_scale)


@dataclass
class Plateau:
    """The ``plateau`` schedule's state: the learning rate is cut by ``factor`` after
    ``patience`` epochs without a validation-loss gain. Saved in the checkpoint, so a resumed
    run cuts where an uninterrupted one does.

    Attributes:
        scale: what the peak learning rate is multiplied by now.
        best: the lowest validation loss so far.
        wait: epochs since that loss.
    """

    scale: float = 1.0
    best: float = math.inf
    wait: int = 0

    def update(self, val_loss: float, patience: int, factor: float) -> None:
        """Take one epoch's validation loss."""
        if val_loss < self.best - PLATEAU_MIN_GAIN:
            self.best, self.wait = val_loss, 0
            return
        self.wait += 1
        if self.wait >= patience:
            self.scale *= factor
            self.wait = 0
