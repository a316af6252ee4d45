"""The report's layer table: every leaf layer of a model with its output shape and parameters.

The layers and their shapes are :func:`ferlab.explain.list_layers` (what ``ferlab explain
--list-layers`` shows); this adds the parameter count of each.
"""

from __future__ import annotations

from torch import nn

from ..explain import list_layers


def layer_table(model: nn.Module) -> list[tuple[str, str, str, int]]:
    """Rows ``(name, type, output shape, parameters)`` of every leaf layer.

    Output shapes come from hooks on one dummy 48x48 face, so they are what the layers really
    produce; they leave out the batch dimension. The model's mode is restored and no hook is
    left behind.

    Example:
        >>> from ferlab.models import create_model
        >>> layer_table(create_model("cnn-leaky"))[0]
        ('body.0.0', 'Conv2d', '32×48×48', 832)
    """
    rows = []
    for layer in list_layers(model):
        module = model.get_submodule(layer["name"])
        params = sum(p.numel() for p in module.parameters(recurse=False))
        rows.append((layer["name"], layer["type"], "×".join(str(s) for s in layer["shape"]),
                     params))
    return rows
