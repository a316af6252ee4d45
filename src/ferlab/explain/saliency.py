"""Saliency (Simonyan et al. 2014): ``|d score / d pixel|``, the map every seed report draws."""

from __future__ import annotations

import torch
from captum.attr import Saliency

from .base import Explainer, register_explainer


@register_explainer("saliency")
class SaliencyExplainer(Explainer):
    """Absolute gradient of the class logit with respect to each pixel (captum ``Saliency``).

    Example:
        >>> maps = get_explainer("saliency", model).attribute(x)  # [N, 1, 48, 48], >= 0
    """

    def _attribute(self, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return Saliency(self.model).attribute(x, target=target, abs=True)
