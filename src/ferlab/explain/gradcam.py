"""Grad-CAM (Selvaraju et al. 2017) and HiResCAM on one conv layer or several combined.

The layers: a map upsampled from the 6x6 or 3x3 grid of a net's last stage has cells of 8-16
pixels and cannot single out an eye, so by default Grad-CAM takes, at each grid size the model
has, its deepest conv layer (:func:`~ferlab.explain.base.default_cam_layers`; ``ferlab explain
--list-layers`` marks them) and combines their maps: each is upsampled to 48x48 and scaled to a
maximum of 1, and the maps are multiplied, so only places every layer marks survive: the deep
layer's "which class" with the shallow layer's sharpness. Any layer, or several joined by commas,
can be named instead. The trade-off: a deeper layer is more class-specific but coarser; a
shallower one is sharp but closer to an edge detector (it marks every stroke); their product is
sharp and specific, but blank wherever one layer is blank. ``benchmarks/bench_localisation.py
--gradcam-sweep`` measures the choices.

The channel weights: Grad-CAM weighs each channel by its gradient averaged over the grid, which
is the exact linearisation only for a layer the head reads through a global average pool.
ferlab's cnn, cnn-leaky and vgg heads flatten the grid (so the head knows where a feature fired),
and there a channel's gradient differs from place to place: on faces whose class lives in a small
box the averaged weights put 1.5x chance mass in the box at every layer, while keeping each
position's own gradient (HiResCAM's weights, Draelos & Carin 2020) finds it. Per-position weights
equal the averaged ones wherever those are exact, so ``weights="position"`` is the default;
``weights="mean"`` gives the paper's map.

An ensemble (:class:`ferlab.ensemble.Ensemble`) is explained member by member: by default each
member's own layers, as above, fused into one map per member from the gradient of the
ensemble's score; the members' maps, each scaled to a maximum of 1, are averaged. Layers named
by hand are grouped by member (``members.<i>.``) the same way.
"""

from __future__ import annotations

import torch
from captum.attr import LayerAttribution

from ..constants import IMAGE_SIZE
from ..errors import ConfigError
from .base import Explainer, default_fine_layer, member_groups, register_explainer

WEIGHTS = ("position", "mean")
FUSIONS = ("product", "mean")


def _scaled(maps: torch.Tensor) -> torch.Tensor:
    """Each map divided by its maximum (blank maps stay 0)."""
    top = maps.flatten(1).amax(1).clamp_min(1e-12)
    return maps / top[:, None, None, None]


@register_explainer("gradcam")
class GradCamExplainer(Explainer):
    """ReLU of the layer's channels weighted by their gradients, upsampled to 48x48.

    Args:
        layer: a conv layer, or several joined by commas (their maps are fused); ``None``: the
            deepest conv layer of each grid size, fused.
        weights: ``position`` (each position's own gradient, the default; exact whatever the head)
            or ``mean`` (the gradient averaged over the grid, as in the Grad-CAM paper).
        fuse: how several layers' maps are combined: ``product`` (default) or ``mean`` of the
            maps scaled to a maximum of 1.
        interpolate: upsampling mode.

    Example:
        >>> maps = get_explainer("gradcam", model).attribute(x)
        >>> fused = get_explainer("gradcam", model, layer="body.1.0,body.2.0,body.3.0")
    """

    uses_layer = True
    default_weights = "position"

    def __init__(self, model, layer=None, *, weights: str | None = None, fuse: str = "product",
                 interpolate: str = "bilinear") -> None:
        super().__init__(model, layer)
        self.weights = weights or self.default_weights
        if self.weights not in WEIGHTS:
            raise ConfigError(f"unknown Grad-CAM weights {self.weights!r}; choose one of "
                              f"{', '.join(WEIGHTS)}")
        if fuse not in FUSIONS:
            raise ConfigError(f"unknown layer fusion {fuse!r}; choose one of {', '.join(FUSIONS)}")
        self.fuse, self.interpolate = fuse, interpolate

    def _attribute(self, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        cams = [LayerAttribution.interpolate(c, (IMAGE_SIZE, IMAGE_SIZE),
                                             interpolate_mode=self.interpolate)
                for c in self._cams(x, target)]
        if len(cams) == 1:
            return cams[0]
        # Layers of one model are fused; an ensemble's members each get their own fused map,
        # and the maps are averaged, as the ensemble averages the members' probabilities.
        fused = [self._fuse([cams[i] for i in group]) for group in member_groups(self.layer_names)]
        return fused[0] if len(fused) == 1 else torch.stack([_scaled(f) for f in fused]).mean(0)

    def _fuse(self, cams: list[torch.Tensor]) -> torch.Tensor:
        """One model's layer maps (at 48x48) as one: their product or mean, each scaled to 1."""
        if len(cams) == 1:
            return cams[0]
        scaled = torch.stack([_scaled(c) for c in cams])
        return scaled.prod(0) if self.fuse == "product" else scaled.mean(0)

    def _cams(self, x: torch.Tensor, target: torch.Tensor) -> list[torch.Tensor]:
        """The layer-resolution maps ``[N, 1, h, w]``, one per layer, from one backward pass."""
        store: list[torch.Tensor] = []
        handles = [m.register_forward_hook(lambda _m, _i, out: store.append(out))
                   for m in self.layers]
        try:
            # The input must carry gradients: parameters do not (see prepared), and the layers'
            # outputs need a graph back to something that does.
            logits = self.model(x.clone().requires_grad_(True))
        finally:
            for h in handles:
                h.remove()
        score = logits.gather(1, target[:, None].to(logits.device)).sum()
        grads = torch.autograd.grad(score, store)
        cams = []
        for a, g in zip(store, grads, strict=True):
            if self.weights == "mean":
                g = g.mean(dim=(2, 3), keepdim=True)
            cams.append((g * a).sum(1, keepdim=True).clamp_min(0).detach())
        return cams


@register_explainer("hirescam")
class HiResCamExplainer(GradCamExplainer):
    """HiResCAM (Draelos & Carin 2020): ReLU of ``sum_k gradient_k * activation_k`` per position,
    upsampled to 48x48, on one layer: by default the deepest conv layer whose map is at least
    12x12 (:func:`ferlab.explain.base.default_fine_layer`), fine enough to single out an eye.

    ``gradcam`` (whose default weights are HiResCAM's) fuses the layers of every grid size; this
    is the one-layer map, faster and easier to read. On the small-box faces of
    ``benchmarks/bench_localisation.py`` the model's last 6x6 layer alone put 1.77x chance in the
    box, its 12x12 layer 2.6x.

    Example:
        >>> maps = get_explainer("hirescam", model).attribute(x)
    """

    def __init__(self, model, layer=None, **options) -> None:
        super().__init__(model, layer or default_fine_layer(model), **options)
