"""Occlusion (Zeiler & Fergus 2014): how much the class probability drops under a grey patch."""

from __future__ import annotations

import torch
from captum.attr import Occlusion

from .base import Explainer, register_explainer
from .integrated_gradients import make_baseline


class _Probs(torch.nn.Module):
    """The model's softmax, so occlusion is measured in probability (0-1), not logits."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x).softmax(1)


@register_explainer("occlusion")
class OcclusionExplainer(Explainer):
    """Drop of the class probability when a ``window`` x ``window`` patch (sliding by
    ``stride``) is replaced by ``baseline`` (default: the face's mean grey); signed.

    Example:
        >>> maps = get_explainer("occlusion", model, window=8, stride=4).attribute(x)
    """

    signed = True

    def __init__(self, model, layer=None, *, window: int = 8, stride: int = 4,
                 baseline: str | float = "mean", batch_size: int = 128) -> None:
        super().__init__(model, layer)
        self.window, self.stride, self.baseline = window, stride, baseline
        self.batch_size = batch_size
        make_baseline(torch.zeros(1, 1, 4, 4), baseline)

    def _attribute(self, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():  # occlusion only runs forward passes
            return Occlusion(_Probs(self.model)).attribute(
                x, sliding_window_shapes=(1, self.window, self.window),
                strides=(1, self.stride, self.stride), baselines=make_baseline(x, self.baseline),
                target=target, perturbations_per_eval=self.batch_size)
