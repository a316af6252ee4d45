"""The model registry: ``@register_model``, ``create_model(name, **kw)``, ``list_models()``.

Every registered model takes a float tensor ``[N, 1, 48, 48]`` of grey levels / 255 and returns
logits ``[N, 7]``; it standardises its input itself (see :class:`FERModel`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from ..constants import IMAGE_SIZE, NUM_CLASSES, PIXEL_MEAN, PIXEL_STD
from ..errors import ModelError

_REGISTRY: dict[str, Callable[..., FERModel]] = {}
_DESCRIPTIONS: dict[str, str] = {}


class FERModel(nn.Module):
    """Base class: standardises ``x`` (grey / 255) with stored constants, then runs ``body``.

    Subclasses set ``self.body`` (anything ``nn.Module``) and name their default Grad-CAM layer
    in ``cam_layer``. ``name`` and ``kwargs`` are set by :func:`create_model` so that a saved model
    rebuilds itself from its JSON config.
    """

    cam_layer: str = ""

    def __init__(self, mean: float = PIXEL_MEAN, std: float = PIXEL_STD) -> None:
        super().__init__()
        # Buffers travel with the weights: a model file always knows its own normalisation.
        self.register_buffer("pixel_mean", torch.tensor(float(mean)))
        self.register_buffer("pixel_std", torch.tensor(float(std)))
        self.name = ""
        self.kwargs: dict = {}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body((x - self.pixel_mean) / self.pixel_std)

    def conv_layer_names(self) -> list[str]:
        """Names (for ``get_submodule``) of every Conv2d, in forward order."""
        return [n for n, m in self.named_modules() if isinstance(m, nn.Conv2d)]


def register_model(name: str, description: str = "") -> Callable:
    """Decorator adding a factory ``fn(**kwargs) -> FERModel`` to the registry under ``name``."""

    def wrap(fn: Callable[..., FERModel]) -> Callable[..., FERModel]:
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} registered twice")
        _REGISTRY[name] = fn
        _DESCRIPTIONS[name] = description or (fn.__doc__ or "").strip().splitlines()[0]
        return fn

    return wrap


def list_models() -> list[str]:
    """Names of every registered model, sorted."""
    return sorted(_REGISTRY)


def describe_model(name: str) -> str:
    return _DESCRIPTIONS[name]


def create_model(name: str, **kwargs) -> FERModel:
    """Build a registered model by name.

    Example:
        >>> m = create_model("cnn")
        >>> m(torch.zeros(2, 1, 48, 48)).shape
        torch.Size([2, 7])
    """
    if name not in _REGISTRY:
        raise ModelError(f"unknown model {name!r}; choose one of: {', '.join(list_models())}")
    try:
        model = _REGISTRY[name](**kwargs)
    except TypeError as e:
        raise ModelError(f"model {name!r} does not take these arguments {kwargs}: {e}") from e
    except (ValueError, RuntimeError) as e:  # a factory refusing a value, e.g. width=0
        raise ModelError(f"model {name!r} cannot be built with {kwargs}: {e}") from e
    model.name = name
    model.kwargs = dict(kwargs)
    return model


@dataclass(frozen=True)
class ModelStats:
    name: str
    params: int  # trainable parameters
    buffers: int  # BatchNorm running statistics (what Keras calls non-trainable parameters)
    mflops: float  # multiply-accumulates x 2 of one forward pass, in millions


def count_params(model: nn.Module) -> tuple[int, int]:
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    stats = sum(
        b.numel()
        for n, b in model.named_buffers()
        if n.endswith("running_mean") or n.endswith("running_var")
    )
    return trainable, stats


def forward_mflops(model: nn.Module, size: int = IMAGE_SIZE) -> float:
    """FLOPs (2 per multiply-accumulate) of one forward pass of one ``size`` x ``size`` face,
    in millions.

    Counted from conv and linear layers with forward hooks; elementwise ops are ignored.
    """
    total = 0

    def conv_hook(m: nn.Conv2d, _inp, out):
        nonlocal total
        k = m.kernel_size[0] * m.kernel_size[1] * (m.in_channels // m.groups)
        total += 2 * out.numel() * k

    def linear_hook(m: nn.Linear, _inp, out):
        nonlocal total
        total += 2 * out.numel() * m.in_features

    handles = []
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            handles.append(m.register_forward_hook(conv_hook))
        elif isinstance(m, nn.Linear):
            handles.append(m.register_forward_hook(linear_hook))
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(torch.zeros(1, 1, size, size))
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    return total / 1e6


def model_stats(name: str, **kwargs) -> ModelStats:
    model = create_model(name, **kwargs)
    params, buffers = count_params(model)
    return ModelStats(name, params, buffers, forward_mflops(model))


def head(in_features: int, hidden: int, dropout: float) -> list[nn.Module]:
    """Fully connected block used by several families: Linear -> BN -> ReLU -> Dropout."""
    return [nn.Linear(in_features, hidden), nn.BatchNorm1d(hidden), nn.ReLU(inplace=True),
            nn.Dropout(dropout)]


OUTPUTS = NUM_CLASSES
