"""One pass over the training faces: the epoch's seeded order and augmentation, and the
optimiser step on every batch.

Every epoch reseeds the data order, the augmentation and dropout from ``(seed, epoch)``, so a run
resumed at epoch k draws exactly what an uninterrupted run draws there.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..augment import augment, mixup
from ..config import AugmentConfig, RunConfig
from ..constants import NUM_CLASSES
from ..inference import to_model_input
from ..progress import progress_bar
from .distill import Distiller
from .distributed import Context
from .ema import WeightEMA
from .lookahead import Lookahead
from .optim import set_lr
from .schedule import Schedule
from .signals import Stopper


def epoch_seed(seed: int, epoch: int) -> int:
    """A seed for everything random in one epoch, so that resuming at an epoch repeats it."""
    return (seed * 1_000_003 + epoch * 7_919 + 17) % (2**63 - 1)


@dataclass
class EpochFigures:
    """What one epoch's training pass measured, over all ranks."""

    loss: float  # mean training loss per face
    accuracy: float  # training accuracy (against the labels, on the augmented faces)
    faces: float  # faces seen
    lr: float  # the learning rate of the last step


@dataclass
class Learner:
    """The model and what updates it, one optimiser step at a time.

    Attributes:
        model: the net being trained (saved, and validated unless ``ema``).
        net: what the forward pass goes through: DistributedDataParallel around ``model``
            under torchrun, else ``model`` itself.
        optimizer: over ``model``'s parameters.
        ema: the weight average, updated after every step, or None.
        distiller: the teacher's part of the loss, or None.
        autocast: a new bf16 autocast context (or a no-op one) per call.
        device: where batches go.
        channels_last: feed the net channels-last batches.
        label_smoothing: of the cross-entropy.
        lookahead: the slow weights the model is pulled onto every few steps, or None.
    """

    model: torch.nn.Module
    net: torch.nn.Module
    optimizer: torch.optim.Optimizer
    ema: WeightEMA | None
    distiller: Distiller | None
    autocast: Callable[[], AbstractContextManager]
    device: torch.device
    channels_last: bool
    label_smoothing: float
    lookahead: Lookahead | None = None

    @property
    def eval_model(self) -> torch.nn.Module:
        """The model validated and saved: the weight average where there is one."""
        return self.ema.module if self.ema is not None else self.model

    def step(self, x: torch.Tensor, y: torch.Tensor, target: torch.Tensor, idx: torch.Tensor,
             weight: float) -> tuple[torch.Tensor, torch.Tensor]:
        """One optimiser step on the batch ``x`` (training faces ``idx``, labels ``y``, loss
        target ``target``), its loss scaled by ``weight``; returns the loss and the logits."""
        with self.autocast():
            logits = self.net(x)
        loss = F.cross_entropy(logits.float(), target, label_smoothing=self.label_smoothing)
        if self.distiller is not None:
            loss = self.distiller.loss(loss, logits, x, idx, self.autocast)
        self.optimizer.zero_grad(set_to_none=True)
        (loss if weight == 1 else loss * weight).backward()
        self.optimizer.step()
        if self.ema is not None:
            self.ema.update(self.model)
        return loss, logits


def alternate_flips(n: int, seed: int, epoch: int) -> torch.Tensor:
    """Which of ``n`` faces are mirrored in ``epoch`` under ``alternate_flip``: a fixed random
    half (drawn from the run's seed) on even epochs, the other half on odd ones, so every face
    is seen both ways in any two epochs in a row."""
    half = torch.rand(n, generator=torch.Generator().manual_seed(seed)) < 0.5
    return half ^ bool(epoch % 2)


def training_batch(images: torch.Tensor, labels: torch.Tensor, idx: torch.Tensor,
                   aug: AugmentConfig, g: torch.Generator, device: torch.device,
                   channels_last: bool, flips: torch.Tensor | None = None
                   ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The augmented batch of training faces ``idx`` on ``device``: input, labels and the loss
    target (the labels, or mixup's blended one-hot targets). ``flips`` (one bool per training
    face) says which to mirror, instead of a coin per face."""
    x = augment(to_model_input(images[idx]), aug, g,  # on the CPU, with the run's generator
                flip=None if flips is None else flips[idx])
    y = labels[idx]
    target = y
    if aug.mixup > 0:
        x, target = mixup(x, F.one_hot(y, NUM_CLASSES).float(), aug.mixup, g)
    x, y, target = x.to(device), y.to(device), target.to(device)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    return x, y, target


def train_epoch(learner: Learner, images: torch.Tensor, labels: torch.Tensor, cfg: RunConfig,
                schedule: Schedule, epoch: int, plateau_scale: float, ctx: Context,
                stopper: Stopper, progress: bool = True) -> EpochFigures:
    """Train ``learner`` on every training face (uint8 ``images``, ``labels``) once per
    ``epoch_multiplier``, in the epoch's seeded order.

    Raises:
        KeyboardInterrupt: a signal reached this rank or another one (checked every step, so
            all ranks stop at the same step).
    """
    t = cfg.train
    seed = epoch_seed(t.seed, epoch)
    torch.manual_seed(ctx.rank_seed(seed))  # dropout, mixup's Beta draw
    g = torch.Generator().manual_seed(seed)
    order = torch.cat([torch.randperm(len(labels), generator=g)
                       for _ in range(t.epoch_multiplier)])
    g = ctx.augment_generator(g, seed)
    flips = (alternate_flips(len(labels), t.seed, epoch)
             if cfg.augment.flip and cfg.augment.alternate_flip else None)
    learner.model.train()
    loss_sum, correct, seen, lr = 0.0, 0, 0, t.lr
    start = time.perf_counter()
    bar = progress_bar(range(schedule.steps_per_epoch), desc=f"epoch {epoch + 1}/{t.epochs}",
                       disable=None if progress else True, leave=False, unit="step")
    for step in bar:
        idx, weight = ctx.shard(order[step * t.batch_size:(step + 1) * t.batch_size])
        if ctx.stop_requested(stopper.pending):  # a signal on any rank stops all
            raise KeyboardInterrupt
        lr = set_lr(learner.optimizer, schedule.lr(epoch, step, plateau_scale))
        if not len(idx):  # a last batch too small to share: every rank skips it
            continue
        x, y, target = training_batch(images, labels, idx, cfg.augment, g, learner.device,
                                      t.channels_last, flips)
        loss, logits = learner.step(x, y, target, idx, weight)
        if learner.lookahead is not None:
            learner.lookahead.after_step(learner.model, epoch * schedule.steps_per_epoch + step,
                                         schedule.total_steps)
        loss_sum += loss.item() * len(y)
        correct += (logits.argmax(1) == y).sum().item()
        seen += len(y)
        rate = seen * ctx.world / (time.perf_counter() - start)
        bar.set_postfix(loss=f"{loss_sum / seen:.3f}", acc=f"{correct / seen:.3f}",
                        img_s=f"{rate:.0f}", refresh=False)
    bar.close()
    loss_sum, correct, seen = ctx.sum(loss_sum, correct, seen)  # over all ranks
    return EpochFigures(loss=loss_sum / seen, accuracy=correct / seen, faces=seen, lr=lr)
