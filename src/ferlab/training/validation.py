"""Validation figures of a training epoch: loss, accuracy and the confidence of wrong answers,
of the whole validation set even when each rank of a distributed run predicts a share of it."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ..inference import predict_probs
from ..precision import Precision
from .distributed import Context


@dataclass
class EvalResult:
    loss: float
    accuracy: float
    wrong_confidence: float  # mean max-probability of wrong predictions
    probs: np.ndarray  # [N, 7] (empty when the ranks of a distributed run shared the faces)


def evaluate_probs(probs: torch.Tensor, labels: torch.Tensor) -> EvalResult:
    loss = F.nll_loss(probs.clamp_min(1e-12).log(), labels).item()
    conf, pred = probs.max(1)
    wrong = pred != labels
    return EvalResult(loss=loss, accuracy=(~wrong).float().mean().item(),
                      wrong_confidence=conf[wrong].mean().item() if wrong.any() else 0.0,
                      probs=probs.numpy())


def evaluate_shared(probs: torch.Tensor, labels: torch.Tensor, ctx: Context) -> EvalResult:
    """The figures of the whole validation set from each rank's probabilities for its
    :meth:`~ferlab.training.distributed.Context.val_shard`; identical on every rank."""
    if not ctx.active:
        return evaluate_probs(probs, labels)
    nll = F.nll_loss(probs.clamp_min(1e-12).log(), labels, reduction="sum").item()
    conf, pred = probs.max(1)
    wrong = pred != labels
    loss_sum, n, n_wrong, conf_wrong = ctx.sum(
        nll, float(len(labels)), float(wrong.sum()), float(conf[wrong].sum()))
    return EvalResult(loss=loss_sum / n, accuracy=1 - n_wrong / n,
                      wrong_confidence=conf_wrong / n_wrong if n_wrong else 0.0,
                      probs=np.zeros((0, probs.shape[1]), np.float32))


def validate(model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor, ctx: Context,
             batch_size: int, precision: Precision, tta: str = "none") -> EvalResult:
    """Score ``model`` (in eval mode, its mode restored after) on the validation faces
    (uint8 ``images``), with test-time augmentation ``tta``; each rank of a distributed run
    predicts its share."""
    part = ctx.val_shard(len(labels))
    probs = predict_probs(model, images[part], batch_size=batch_size, precision=precision,
                          tta=tta, fast=False)
    return evaluate_shared(probs, labels[part], ctx)
