"""An exponential moving average of a model's weights (``--ema``), validated and saved instead
of the raw weights."""

from __future__ import annotations

import copy

import torch


class WeightEMA(torch.nn.Module):
    """Exponential moving average of a model's weights and BatchNorm statistics.

    The decay warms up as ``min(decay, (1 + n) / (10 + n))`` after ``n`` updates. With a fixed
    0.999 the average of the BatchNorm running variance needed thousands of steps to forget its
    initial 1.0, and the averaged model predicted one class for the first epochs of a FER2013
    run. State-dict keys (``module.*``, ``n_averaged``) match torch's ``AveragedModel``.

    Example:
        >>> net = torch.nn.Linear(2, 1)
        >>> ema = WeightEMA(net, decay=0.9)
        >>> ema.update(net); int(ema.n_averaged)
        1
    """

    def __init__(self, model: torch.nn.Module, decay: float) -> None:
        super().__init__()
        self.module = copy.deepcopy(model)
        self.module.requires_grad_(False)
        self.decay = decay
        self.register_buffer("n_averaged", torch.tensor(0, dtype=torch.long))

    @torch.no_grad()
    def update(self, model: torch.nn.Module) -> None:
        n = int(self.n_averaged)
        decay = min(self.decay, (1 + n) / (10 + n))
        for avg, cur in zip(self.module.state_dict().values(), model.state_dict().values(),
                            strict=True):
            if avg.dtype.is_floating_point:
                avg.lerp_(cur, 1 - decay)
            else:
                avg.copy_(cur)  # e.g. BatchNorm's num_batches_tracked
        self.n_averaged += 1
