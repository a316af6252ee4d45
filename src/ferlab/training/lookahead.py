"""Lookahead onto a slow weight average (``--lookahead K``), as airbench trains.

Every ``K`` optimiser steps the slow copy moves toward the weights, and the weights jump back
onto it. The slow copy's decay grows with the run's progress p as ``0.95**K * p**3``: at first
it simply follows the weights, near the end it averages the last few hundred steps. The last
step of the run leaves the weights equal to the slow copy, so the model saved is the average.
"""

from __future__ import annotations

import copy

import torch


class Lookahead(torch.nn.Module):
    """The slow copy of ``model``'s weights and BatchNorm statistics.

    Example:
        >>> net = torch.nn.Linear(2, 1)
        >>> la = Lookahead(net, every=1)
        >>> la.after_step(net, step=0, total_steps=10)
        True
    """

    def __init__(self, model: torch.nn.Module, every: int) -> None:
        super().__init__()
        self.module = copy.deepcopy(model)
        self.module.requires_grad_(False)
        self.every = every

    @torch.no_grad()
    def after_step(self, model: torch.nn.Module, step: int, total_steps: int) -> bool:
        """Call after optimiser step ``step`` (0-based) of ``total_steps``; returns whether
        the weights were pulled onto the slow copy."""
        done = step + 1
        last = done >= total_steps
        if done % self.every and not last:
            return False
        decay = 1.0 if last else 0.95**self.every * (done / total_steps) ** 3
        for slow, cur in zip(self.module.state_dict().values(), model.state_dict().values(),
                             strict=True):
            if slow.dtype.is_floating_point:
                slow.lerp_(cur, 1 - decay)
                cur.copy_(slow)
            else:
                slow.copy_(cur)
        return True
