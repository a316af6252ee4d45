"""Guided Grad-CAM: guided backprop (fine detail) times Grad-CAM (where), as in the paper."""

from __future__ import annotations

import torch
from captum.attr import GuidedGradCam

from .base import Explainer, register_explainer


@register_explainer("guided-gradcam")
class GuidedGradCamExplainer(Explainer):
    """``|guided backprop x Grad-CAM|`` (captum ``GuidedGradCam``).

    Guided backprop only changes the backward pass of ``nn.ReLU`` modules; in a model built on
    LeakyReLU (``cnn-leaky``) it is plain gradient x Grad-CAM.

    Example:
        >>> maps = get_explainer("guided-gradcam", model).attribute(x)
    """

    uses_layer = True

    def __init__(self, model, layer=None, *, abs: bool = True) -> None:  # noqa: A002
        super().__init__(model, layer)
        self.abs = abs

    def _attribute(self, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        x = x.clone().requires_grad_(True)
        maps = GuidedGradCam(self.model, self.layer).attribute(x, target=target,
                                                               interpolate_mode="bilinear")
        return maps.abs() if self.abs else maps
