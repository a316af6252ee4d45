"""Guided Grad-CAM: guided backprop (fine detail) times Grad-CAM (where), as in the paper."""

from __future__ import annotations

import torch
from captum.attr import GuidedBackprop

from .base import register_explainer
from .gradcam import GradCamExplainer


@register_explainer("guided-gradcam")
class GuidedGradCamExplainer(GradCamExplainer):
    """``|guided backprop x Grad-CAM|``, with ferlab's Grad-CAM (its layer choice, weights and
    layer fusion; see :mod:`ferlab.explain.gradcam`) rather than captum's ``GuidedGradCam``,
    whose Grad-CAM is fixed to the paper's averaged weights on one layer.

    Guided backprop only changes the backward pass of ``nn.ReLU`` modules; in a model built on
    LeakyReLU (``cnn-leaky``) it is plain gradient x Grad-CAM.

    Example:
        >>> maps = get_explainer("guided-gradcam", model).attribute(x)
    """

    def __init__(self, model, layer=None, *, abs: bool = True, **options) -> None:  # noqa: A002
        super().__init__(model, layer, **options)
        self.abs = abs

    def _attribute(self, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        cam = super()._attribute(x, target)
        guided = GuidedBackprop(self.model).attribute(x.clone().requires_grad_(True),
                                                      target=target)
        maps = guided * cam
        return maps.abs() if self.abs else maps
