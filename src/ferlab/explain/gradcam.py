"""Grad-CAM (Selvaraju et al. 2017) on any conv layer; by default the model's ``cam_layer``."""

from __future__ import annotations

import torch
from captum.attr import LayerAttribution, LayerGradCam, LayerGradientXActivation

from ..constants import IMAGE_SIZE
from .base import Explainer, register_explainer


@register_explainer("gradcam")
class GradCamExplainer(Explainer):
    """ReLU of the layer's channels weighted by their mean gradient, upsampled to 48x48.

    Example:
        >>> maps = get_explainer("gradcam", model, layer="body.2.3").attribute(x)
    """

    uses_layer = True

    def __init__(self, model, layer=None, *, interpolate: str = "bilinear") -> None:
        super().__init__(model, layer)
        self.interpolate = interpolate

    def _attribute(self, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        # The input must carry gradients: parameters do not (see prepared), and the layer's
        # output needs a graph back to something that does.
        cam = self._cam(x.clone().requires_grad_(True), target)
        return LayerAttribution.interpolate(cam, (IMAGE_SIZE, IMAGE_SIZE),
                                            interpolate_mode=self.interpolate)

    def _cam(self, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """The layer-resolution map ``[N, 1, h, w]``; subclasses change only this."""
        return LayerGradCam(self.model, self.layer).attribute(x, target=target,
                                                              relu_attributions=True)


@register_explainer("hirescam")
class HiResCamExplainer(GradCamExplainer):
    """HiResCAM (Draelos & Carin 2020): ReLU of ``sum_k gradient_k * activation_k`` per position,
    upsampled to 48x48.

    Grad-CAM averages each channel's gradient over positions first, which is exact only when the
    head averages the map too; ferlab's models flatten it (so the head knows where a feature
    fired), and there Grad-CAM can point at the wrong place while HiResCAM keeps each position's
    own gradient. On the synthetic faces it puts about twice Grad-CAM's share inside the mouth.

    Example:
        >>> maps = get_explainer("hirescam", model).attribute(x)
    """

    def _cam(self, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        a = LayerGradientXActivation(self.model, self.layer).attribute(x, target=target)
        return a.sum(1, keepdim=True).clamp_min(0)
