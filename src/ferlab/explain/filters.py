"""Filter visualisation by gradient ascent from noise (Erhan et al. 2009; Olah et al. 2017).

Each chosen filter of a layer gets its own image, optimised together in one batch to maximise
the filter's mean activation. Regularisers (jitter, blur, L2 decay) are options: without them
the images are high-frequency noise that excites the filter but shows nothing to a person.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from ..constants import IMAGE_SIZE
from ..errors import ConfigError
from ..progress import progress_bar
from .base import capture, get_layer, prepared
from .integrated_gradients import gaussian_blur


@dataclass
class FilterImages:
    """Result of :func:`visualize_filters`.

    Attributes:
        layer: the layer's name.
        filters: filter (channel) index of each image.
        images: ``float [K, 48, 48]`` in [0, 1] (grey / 255).
        activation: ``[K]`` mean activation each image reached (no jitter), the tile labels.
        start_activation: ``[K]`` mean activation of the starting noise, for comparison.
    """

    layer: str
    filters: list[int]
    images: np.ndarray
    activation: np.ndarray
    start_activation: np.ndarray


def _channel_means(model: torch.nn.Module, layer: str, x: torch.Tensor,
                   filters: Sequence[int]) -> torch.Tensor:
    """Mean activation of filter ``filters[k]`` on image ``x[k]``, ``[K]``."""
    with capture(model, layer) as store:
        model(x)
    out = store["out"]
    k = torch.arange(len(filters))
    return out[k, torch.as_tensor(list(filters))].mean(dim=(1, 2))


def visualize_filters(model: torch.nn.Module, layer: str | None = None,
                      filters: Sequence[int] | int = 16, steps: int = 128, lr: float = 0.05,
                      jitter: int = 2, blur: float = 0.5, blur_every: int = 4,
                      l2: float = 1e-3, seed: int = 0, progress: bool = True) -> FilterImages:
    """Images that excite chosen filters of ``layer`` most, by gradient ascent from noise.

    Args:
        model: any ferlab model (or module taking ``[N, 1, 48, 48]``).
        layer: conv layer or activation name (``None``: the model's ``cam_layer``).
        filters: channel indices, or a count ``K`` for the first ``K`` channels.
        steps: Adam steps.
        lr: Adam learning rate, in grey/255 units.
        jitter: random shift of up to this many pixels each step (0 = off), so the image
            cannot rely on exact pixel positions.
        blur: sigma of a Gaussian blur applied every ``blur_every`` steps (0 = off).
        l2: weight of an L2 penalty pulling pixels towards mid-grey.
        seed: the starting noise.

    Example:
        >>> res = visualize_filters(model, "body.2.0", filters=8, steps=64)
        >>> res.images.shape, res.activation.shape
        ((8, 48, 48), (8,))
    """
    name, module = get_layer(model, layer)
    if isinstance(filters, int):
        n_out = getattr(module, "out_channels", None) or getattr(module, "num_features", None)
        filters = list(range(min(filters, n_out) if n_out else filters))
    filters = [int(f) for f in filters]
    if not filters:
        raise ConfigError("no filters to visualise")
    g = torch.Generator().manual_seed(seed)
    x0 = 0.5 + 0.1 * torch.randn(len(filters), 1, IMAGE_SIZE, IMAGE_SIZE, generator=g)
    x = x0.clone().clamp_(0, 1).requires_grad_(True)
    opt = torch.optim.Adam([x], lr=lr)
    with prepared(model):
        n_channels = _out_channels(model, name)
        bad = [f for f in filters if not 0 <= f < n_channels]
        if bad:
            raise ConfigError(f"layer {name!r} has {n_channels} filters (0-{n_channels - 1}); "
                              f"got {bad[0]}")
        with torch.no_grad():
            start = _channel_means(model, name, x0.clamp(0, 1), filters)
        bar = progress_bar(range(steps), desc=f"gradient ascent {name}",
                           disable=None if progress else True, leave=False, unit="step")
        for step in bar:
            xi = x
            if jitter:
                dy, dx = (int(v) for v in torch.randint(-jitter, jitter + 1, (2,), generator=g))
                xi = torch.roll(x, shifts=(dy, dx), dims=(2, 3))
            act = _channel_means(model, name, xi, filters)
            loss = -act.sum() + l2 * ((x - 0.5) ** 2).sum()
            opt.zero_grad()
            loss.backward()
            opt.step()
            with torch.no_grad():
                if blur and blur_every and (step + 1) % blur_every == 0 and step < steps - 1:
                    x.copy_(gaussian_blur(x, blur))
                x.clamp_(0, 1)
        with torch.no_grad():
            final = _channel_means(model, name, x, filters)
    return FilterImages(name, filters, x.detach()[:, 0].numpy(), final.numpy(), start.numpy())


def _out_channels(model: torch.nn.Module, layer: str) -> int:
    with capture(model, layer) as store, torch.no_grad():
        model(torch.zeros(1, 1, IMAGE_SIZE, IMAGE_SIZE))
    out = store["out"]
    if out.dim() != 4:
        raise ConfigError(f"layer {layer!r} gives {out.dim()}-d output {list(out.shape)}; "
                          "filters need a conv layer or activation with [N, C, H, W] output")
    return int(out.shape[1])
