"""SmoothGrad (Smilkov et al. 2017): saliency averaged over noisy copies of the face."""

from __future__ import annotations

import torch
from captum.attr import NoiseTunnel, Saliency

from .base import Explainer, register_explainer, seeded


@register_explainer("smoothgrad")
class SmoothGradExplainer(Explainer):
    """Mean ``|gradient|`` over ``samples`` copies with Gaussian noise of std ``noise`` (in grey/255
    units; 0.15 is the paper's 10-20% of the input range). Seeded: the same call, the same map.

    Example:
        >>> maps = get_explainer("smoothgrad", model, samples=32).attribute(x)
    """

    def __init__(self, model, layer=None, *, samples: int = 24, noise: float = 0.15,
                 seed: int = 0, batch_size: int = 96) -> None:
        super().__init__(model, layer)
        self.samples, self.noise, self.seed, self.batch_size = samples, noise, seed, batch_size

    def _attribute(self, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        nt = NoiseTunnel(Saliency(self.model))
        with seeded(self.seed):
            return nt.attribute(x, nt_type="smoothgrad", nt_samples=self.samples,
                                nt_samples_batch_size=self.batch_size, stdevs=self.noise,
                                target=target, abs=True)
