"""Feature maps: every filter's output of a chosen layer for one face (seed reports' conv1
outputs)."""

from __future__ import annotations

import numpy as np
import torch

from ..errors import ConfigError
from .base import capture, check_input, conv_layers, prepared


def feature_maps(model: torch.nn.Module, face: torch.Tensor | np.ndarray,
                 layer: str | None = None) -> np.ndarray:
    """The output ``float [C, h, w]`` of ``layer`` for one face (eval mode, mode restored).

    Args:
        model: the model.
        face: ``[1, 1, 48, 48]`` float grey/255, or ``uint8 [48, 48]``.
        layer: any layer with ``[N, C, h, w]`` output (``None``: the first conv layer, whose
            outputs still look like the face).

    Example:
        >>> fm = feature_maps(model, faces.images[0], "body.0.0")
        >>> fm.shape  # doctest: +SKIP
        (32, 48, 48)
    """
    x = check_input(face)[:1]
    if layer is None:
        layer = conv_layers(model)[0]
    with prepared(model), torch.no_grad(), capture(model, layer) as store:
        model(x)
    out = store["out"]
    if out.dim() != 4:
        raise ConfigError(f"layer {layer!r} gives output of shape {list(out.shape)}; feature "
                          "maps need a layer with [N, C, H, W] output")
    return out[0].float().numpy()
