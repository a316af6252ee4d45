"""Validation figures of a training epoch from the probabilities of the validation faces."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F


@dataclass
class EvalResult:
    loss: float
    accuracy: float
    wrong_confidence: float  # mean max-probability of wrong predictions
    probs: np.ndarray  # [N, 7]


def evaluate_probs(probs: torch.Tensor, labels: torch.Tensor) -> EvalResult:
    loss = F.nll_loss(probs.clamp_min(1e-12).log(), labels).item()
    conf, pred = probs.max(1)
    wrong = pred != labels
    return EvalResult(loss=loss, accuracy=(~wrong).float().mean().item(),
                      wrong_confidence=conf[wrong].mean().item() if wrong.any() else 0.0,
                      probs=probs.numpy())
