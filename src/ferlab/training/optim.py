"""The optimiser of a run (``--optimizer sgd | adam | adamw``)."""

from __future__ import annotations

import torch

from ..config import TrainConfig


def make_optimizer(model: torch.nn.Module, t: TrainConfig) -> torch.optim.Optimizer:
    """The optimiser ``t.optimizer`` over ``model``'s parameters, at ``t.lr``.

    Weight decay applies to weight matrices and kernels only, not to BatchNorm and biases:
    decaying those only fights the normalisation. Biases and BatchNorm parameters learn at
    ``t.bias_lr_scale`` times the rate (airbench's BN-bias rate); frozen parameters are left out.
    """
    learned = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in learned if p.dim() > 1]
    no_decay = [p for p in learned if p.dim() <= 1]
    groups = [{"params": decay, "weight_decay": t.weight_decay, "lr_scale": 1.0},
              {"params": no_decay, "weight_decay": 0.0, "lr_scale": t.bias_lr_scale}]
    if t.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=t.lr, momentum=t.momentum, nesterov=True)
    if t.optimizer == "adam":
        return torch.optim.Adam(groups, lr=t.lr, betas=(t.momentum, 0.999))
    return torch.optim.AdamW(groups, lr=t.lr, betas=(t.momentum, 0.999))


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> float:
    """Set every parameter group's learning rate to ``lr`` times its ``lr_scale``; returns
    ``lr``."""
    for group in optimizer.param_groups:
        group["lr"] = lr * group.get("lr_scale", 1.0)
    return lr
