"""The speedrun net (``ferlab train --recipe speedrun``): airbench's CIFAR-10 design for faces.

What it takes from Keller Jordan's airbench (``cifar10-airbench``), each step measured on
FER2013 in ``benchmarks/RESULTS.md`` ("Speedrun"):

* a first layer of fixed filters that whiten the 3x3 patches of the training faces (the
  eigenvectors of their covariance, and their negatives), set once from the data before the
  first step (:meth:`SpeedrunNet.init_from_faces`), so the net starts from decorrelated inputs;
* blocks of conv -> max-pool -> BN -> GELU -> conv -> BN -> GELU: the pool comes after the first
  conv, so only that one runs at the block's full resolution;
* convs initialised as identities on their first input channels (``dirac_``): a deep net
  that starts out passing its input through trains in fewer steps;
* BatchNorm scales frozen at 1 (only the biases learn, at a higher rate: the recipe's
  ``bias_lr_scale``) and a small fixed output scale (``logit_scale``), which make the large
  learning rate of the recipe stable.
"""

from __future__ import annotations

import torch
from torch import nn

from .registry import OUTPUTS, FERModel, register_model


class FrozenScaleBN(nn.BatchNorm2d):
    """BatchNorm whose scale stays 1 (only its bias, the shift, learns) unless ``frozen`` is
    False; statistics follow each batch fast (``momentum`` 0.4, airbench's)."""

    def __init__(self, channels: int, momentum: float = 0.4, frozen: bool = True) -> None:
        super().__init__(channels, eps=1e-12, momentum=momentum)
        self.weight.requires_grad_(not frozen)


class IdentityConv(nn.Conv2d):
    """A 3x3 conv without bias that starts as the identity on its first input channels (or
    with PyTorch's default initialisation where ``identity`` is False)."""

    def __init__(self, c_in: int, c_out: int, identity: bool = True) -> None:
        super().__init__(c_in, c_out, 3, padding=1, bias=False)
        if identity:
            with torch.no_grad():
                n = min(c_in, c_out)
                nn.init.dirac_(self.weight[:n, :n])


ACTIVATIONS = {"gelu": nn.GELU, "relu": nn.ReLU}


class ConvGroup(nn.Sequential):
    """conv (full resolution) -> max-pool 2 -> BN -> act -> conv -> BN -> act."""

    def __init__(self, c_in: int, c_out: int, act: str = "gelu", identity: bool = True,
                 frozen_scales: bool = True) -> None:
        super().__init__(IdentityConv(c_in, c_out, identity), nn.MaxPool2d(2),
                         FrozenScaleBN(c_out, frozen=frozen_scales), ACTIVATIONS[act](),
                         IdentityConv(c_out, c_out, identity),
                         FrozenScaleBN(c_out, frozen=frozen_scales), ACTIVATIONS[act]())


class SpeedrunNet(FERModel):
    """Whitening 3x3 conv, GELU, one :class:`ConvGroup` per width, then a head.

    Args:
        widths: channels of each group; each halves the resolution (48 -> 24 -> 12 -> 6 for 3).
        whiten: side of the whitening patches (``2 * whiten**2`` fixed filters).
        head: ``"max"`` takes each channel's maximum over the last map (any input size),
            ``"flatten"`` keeps where on the face it fired (48x48 input only).
        logit_scale: the fixed factor on the logits.
        act: ``"gelu"`` (airbench's) or ``"relu"`` (cheaper on a CPU).
        whitened, identity, frozen_scales: turn off one of the steps above (the first layer
            then learns from PyTorch's default initialisation; convs start from it too; BN
            scales learn), for the ablation in ``benchmarks/RESULTS.md``.
    """

    def __init__(self, widths=(64, 128, 256), whiten: int = 3, head: str = "max",
                 logit_scale: float = 1 / 9, act: str = "gelu", whitened: bool = True,
                 identity: bool = True, frozen_scales: bool = True, **norm) -> None:
        super().__init__(**norm)
        if head not in ("max", "flatten"):
            raise ValueError(f"head must be 'max' or 'flatten', got {head!r}")
        if act not in ACTIVATIONS:
            raise ValueError(f"act must be one of {sorted(ACTIVATIONS)}, got {act!r}")
        if not widths or whiten < 1:
            raise ValueError("widths must be non-empty and whiten positive")
        c_whiten = 2 * whiten * whiten
        first = nn.Conv2d(1, c_whiten, whiten, padding="same", bias=True)
        if whitened:
            first.weight.requires_grad_(False)  # set from the data, then fixed
            nn.init.zeros_(first.bias)
        self.whitened = whitened
        groups, c_in = [], c_whiten
        for c in widths:
            groups.append(ConvGroup(c_in, c, act, identity, frozen_scales))
            c_in = c
        side = 48 // 2 ** len(widths)
        pool: list[nn.Module] = ([nn.AdaptiveMaxPool2d(1), nn.Flatten()] if head == "max"
                                 else [nn.Flatten()])
        features = c_in if head == "max" else c_in * side * side
        self.body = nn.Sequential(first, ACTIVATIONS[act](), *groups, *pool,
                                  nn.Linear(features, OUTPUTS, bias=False))
        self.logit_scale = logit_scale
        self.cam_layer = f"body.{1 + len(widths)}.4"

    @property
    def whiten(self) -> nn.Conv2d:
        """The whitening conv (the first layer; one module, so its weights are stored once)."""
        return self.body[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x) * self.logit_scale

    @torch.no_grad()
    def init_from_faces(self, faces: torch.Tensor, eps: float = 5e-4) -> None:
        """Set the whitening filters from training faces (float ``[N, 1, 48, 48]`` in [0, 1]):
        the eigenvectors of their patches' covariance, scaled by 1 / sqrt(eigenvalue), and
        their negatives (GELU would otherwise drop half of each). Nothing where the net was
        built with ``whitened=False``."""
        if not self.whitened:
            return
        k = self.whiten.kernel_size[0]
        cov, n = torch.zeros(k * k, k * k, dtype=torch.float64), 0
        for chunk in faces.split(500):  # a few hundred MB of patches at a time
            x = (chunk.float() - self.pixel_mean.cpu()) / self.pixel_std.cpu()
            patches = x.unfold(2, k, 1).unfold(3, k, 1).reshape(-1, k * k).double()
            cov += patches.T @ patches
            n += len(patches)
        cov /= n
        values, vectors = torch.linalg.eigh(cov)  # ascending; the order does not matter
        filters = (vectors.T / torch.sqrt(values + eps).unsqueeze(1)).reshape(k * k, 1, k, k)
        self.whiten.weight.copy_(torch.cat([filters, -filters]).to(self.whiten.weight))


@register_model("speedrun", "the speedrun net: whitened 3x3 input, 3 airbench conv groups")
def speedrun(**kw) -> SpeedrunNet:
    return SpeedrunNet(**kw)
