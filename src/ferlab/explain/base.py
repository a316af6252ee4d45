"""Shared plumbing of every explainer: one call shape, layers by name, clean hooks and modes.

Every attribution method is a subclass of :class:`Explainer` that overrides ``_attribute`` only;
the base class checks the input, resolves ``target=None`` to the predicted class, puts the model
in eval mode and turns in-place activations off for the call (gradient hooks cannot see through
in-place ops), and afterwards restores the model exactly: its train/eval mode, ``inplace`` flags,
``requires_grad`` flags, and no hook left behind, even when an error is raised. This is the part
pytorch-grad-cam gets wrong (layers found with ``eval``, the model's mode flipped for good).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from ..constants import IMAGE_SIZE, NUM_CLASSES
from ..errors import ConfigError, ModelError
from ..inference import predict_probs, to_model_input

# Every per-module hook dict of torch.nn.Module; new entries made during a call are removed.
_HOOK_DICTS = ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks",
               "_forward_hooks_with_kwargs", "_forward_hooks_always_called",
               "_forward_pre_hooks_with_kwargs")

_METHODS: dict[str, type[Explainer]] = {}


# --------------------------------------------------------------------------------------------
# Layers by name


def conv_layers(model: nn.Module) -> list[str]:
    """Names of the model's conv layers in forward order (``model.conv_layer_names()`` if any)."""
    if hasattr(model, "conv_layer_names"):
        return list(model.conv_layer_names())
    return [n for n, m in model.named_modules() if isinstance(m, nn.Conv2d)]


def default_layer(model: nn.Module) -> str:
    """The model's own Grad-CAM layer (``model.cam_layer``), else its last conv layer."""
    name = getattr(model, "cam_layer", "") or ""
    if name:
        return name
    convs = conv_layers(model)
    if not convs:
        raise ModelError("model has no Conv2d layer; name one with layer=...")
    return convs[-1]


def conv_output_sides(model: nn.Module) -> dict[str, int]:
    """Each conv layer's output side (the smaller of height and width) for one 48x48 face."""
    sides: dict[str, int] = {}
    names = conv_layers(model)
    with prepared(model), torch.no_grad():
        for n in names:
            model.get_submodule(n).register_forward_hook(
                lambda _m, _i, out, n=n: sides.__setitem__(n, int(min(out.shape[-2:]))))
        model(torch.zeros(1, 1, IMAGE_SIZE, IMAGE_SIZE))
    return sides


def default_cam_layers(model: nn.Module) -> list[str]:
    """Grad-CAM's default layers, chosen by resolution as well as depth: at each grid size the
    model has (48, 24, 12, 6 ... cells a side), its deepest conv layer. Their maps are fused (see
    :mod:`ferlab.explain.gradcam`): the deepest brings which class, the finest where exactly;
    the last stage alone (6x6 or 3x3 cells of 8-16 pixels) cannot single out an eye.

    Example:
        >>> default_cam_layers(create_model("cnn-leaky"))
        ['body.0.0', 'body.1.0', 'body.2.0', 'body.3.0']
    """
    if _members(model):  # an ensemble: each member's own layers (fused per member, gradcam.py)
        return [f"members.{i}.{n}" for i, m in enumerate(_members(model))
                for n in default_cam_layers(m)]
    sides = conv_output_sides(model)
    deepest: dict[int, str] = {}
    for n in conv_layers(model):
        if n in sides:
            deepest[sides[n]] = n  # later layers of the same size replace earlier ones
    names = [n for n in conv_layers(model) if n in deepest.values()]
    return names or [default_layer(model)]


FINE_SIDE = 12  # a single-layer map needs cells of at most 4 pixels to single out an eye


def default_fine_layer(model: nn.Module, min_side: int = FINE_SIDE) -> str:
    """The deepest conv layer whose map is at least ``min_side`` cells a side: the layer a
    single-layer CAM (``hirescam``) takes by default, chosen by resolution as well as depth
    (the model's own last-stage layer, 6x6 or 3x3, where none is that fine).

    Example:
        >>> default_fine_layer(create_model("cnn-leaky"))
        'body.2.0'
    """
    if _members(model):  # an ensemble: each member's fine layer, joined by commas
        return ",".join(f"members.{i}.{default_fine_layer(m, min_side)}"
                        for i, m in enumerate(_members(model)))
    sides = conv_output_sides(model)
    fine = [n for n in conv_layers(model) if sides.get(n, 0) >= min_side]
    return fine[-1] if fine else default_layer(model)


def _members(model: nn.Module) -> list[nn.Module]:
    """The member models of an ensemble (:class:`ferlab.ensemble.Ensemble`), else ``[]``."""
    members = getattr(model, "members", None)
    return list(members) if isinstance(members, nn.ModuleList) else []


def member_groups(layer_names: Sequence[str]) -> list[list[int]]:
    """Indices of ``layer_names`` grouped by the ensemble member they belong to (the
    ``members.<i>.`` prefix), in order of first appearance; names without one form one group.

    Example:
        >>> member_groups(["members.0.a", "members.1.a", "members.0.b"])
        [[0, 2], [1]]
    """
    groups: dict[str, list[int]] = {}
    for i, name in enumerate(layer_names):
        parts = name.split(".")
        key = ".".join(parts[:2]) if parts[0] == "members" and len(parts) > 2 else ""
        groups.setdefault(key, []).append(i)
    return list(groups.values())


def get_layers(model: nn.Module, spec: str | None) -> list[tuple[str, nn.Module]]:
    """``[(name, module), ...]`` for one layer name or several joined by commas (``None``: the
    default Grad-CAM layers, :func:`default_cam_layers`).

    Raises:
        ConfigError: no such layer.
    """
    names = [s.strip() for s in (spec or "").split(",") if s.strip()]
    if not names:
        names = default_cam_layers(model)
    return [get_layer(model, n) for n in names]


def get_layer(model: nn.Module, name: str | None) -> tuple[str, nn.Module]:
    """``(name, module)`` for a layer name (``None``: the default Grad-CAM layer).

    Raises:
        ConfigError: no such layer; the message lists the conv layers to choose from.
    """
    name = name or default_layer(model)
    try:
        return name, model.get_submodule(name)
    except AttributeError:
        raise ConfigError(f"model has no layer {name!r}; conv layers are: "
                          f"{', '.join(conv_layers(model))} (ferlab explain --list-layers shows "
                          "all)") from None


def list_layers(model: nn.Module) -> list[dict[str, Any]]:
    """Every leaf layer: name, type, output shape for one 48x48 face, whether it is a conv, and
    ``cam_default`` (whether Grad-CAM uses it when no layer is named).

    Example:
        >>> [r["name"] for r in list_layers(create_model("cnn-leaky")) if r["conv"]][:2]
        ['body.0.0', 'body.1.0']
    """
    rows: list[dict[str, Any]] = []
    shapes: dict[str, tuple[int, ...]] = {}
    leaves = [(n, m) for n, m in model.named_modules() if n and not list(m.children())]
    with prepared(model), torch.no_grad():
        for n, m in leaves:
            m.register_forward_hook(
                lambda _m, _i, out, n=n: shapes.__setitem__(n, tuple(out.shape[1:])))
        model(torch.zeros(1, 1, IMAGE_SIZE, IMAGE_SIZE))
    cam = default_cam_layers(model) if conv_layers(model) else []
    for n, m in leaves:
        rows.append({"name": n, "type": type(m).__name__, "shape": shapes.get(n, ()),
                     "conv": isinstance(m, nn.Conv2d), "cam_default": n in cam})
    return rows


# --------------------------------------------------------------------------------------------
# Hooks and modes


@contextlib.contextmanager
def prepared(model: nn.Module, *, grad_params: bool = False) -> Iterator[nn.Module]:
    """Run ``model`` for explanation, then put it back exactly as it was.

    Inside: eval mode, ``inplace=False`` on every activation/dropout (backward hooks and
    guided backprop fail on in-place ops), parameter gradients off unless ``grad_params``
    (only input gradients are needed; about 2x less backward work), gradients enabled.
    On exit, even on error: hooks added inside are removed, flags and mode restored.
    """
    was_training = model.training
    modules = list(model.modules())
    before = [{d: set(getattr(m, d, {}).keys()) for d in _HOOK_DICTS} for m in modules]
    inplace = [(m, m.inplace) for m in modules if isinstance(getattr(m, "inplace", None), bool)]
    req = [(p, p.requires_grad) for p in model.parameters()]
    try:
        model.eval()
        for m, _ in inplace:
            m.inplace = False
        if not grad_params:
            for p, _ in req:
                p.requires_grad_(False)
        with torch.enable_grad():
            yield model
    finally:
        for m, old in zip(modules, before, strict=True):
            for d in _HOOK_DICTS:
                hooks = getattr(m, d, None)
                if hooks is None:
                    continue
                for k in [k for k in hooks if k not in old[d]]:
                    del hooks[k]
        for m, flag in inplace:
            m.inplace = flag
        for p, flag in req:
            p.requires_grad_(flag)
        model.train(was_training)


@contextlib.contextmanager
def capture(model: nn.Module, layer: str | None) -> Iterator[dict[str, torch.Tensor]]:
    """Record a layer's output during forward passes: ``store["out"]``. Hook removed on exit.

    Example:
        >>> with capture(model, "body.0.0") as store:
        ...     _ = model(x)
        >>> store["out"].shape
        torch.Size([2, 32, 48, 48])
    """
    _, module = get_layer(model, layer)
    store: dict[str, torch.Tensor] = {}
    handle = module.register_forward_hook(lambda _m, _i, out: store.__setitem__("out", out))
    try:
        yield store
    finally:
        handle.remove()


# --------------------------------------------------------------------------------------------
# Inputs and targets


def check_input(x: torch.Tensor | np.ndarray) -> torch.Tensor:
    """The float ``[N, 1, 48, 48]`` tensor models take (grey / 255); uint8 faces are converted.

    Raises:
        ConfigError: wrong shape or not finite.
    """
    if isinstance(x, np.ndarray):
        x = torch.from_numpy(x)
    if not isinstance(x, torch.Tensor):
        raise ConfigError(f"expected a tensor [N, 1, 48, 48], got {type(x).__name__}")
    if x.dim() == 2:
        x = x[None, None]
    x = to_model_input(x)
    if x.dim() != 4 or tuple(x.shape[1:]) != (1, IMAGE_SIZE, IMAGE_SIZE):
        raise ConfigError(f"expected faces as a tensor [N, 1, {IMAGE_SIZE}, {IMAGE_SIZE}] of "
                          f"grey/255, got shape {list(x.shape)}")
    x = x.detach().float()
    if not torch.isfinite(x).all():
        raise ConfigError("input faces contain NaN or infinite values")
    return x


def predict(model: nn.Module, x: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    """Softmax probabilities ``[N, 7]`` of the model itself in float32, eval mode (restored)."""
    with prepared(model):
        return predict_probs(model, x, batch_size=batch_size, precision="fp32", fast=False)


def resolve_target(model: nn.Module, x: torch.Tensor,
                   target: int | Sequence[int] | torch.Tensor | None) -> torch.Tensor:
    """Class index per face as ``long [N]``; ``None`` means the model's predicted class."""
    n = len(x)
    if target is None:
        return predict(model, x).argmax(1)
    t = torch.as_tensor(target, dtype=torch.long).reshape(-1)
    if t.numel() == 1:
        t = t.expand(n).clone()
    if t.numel() != n:
        raise ConfigError(f"target has {t.numel()} entries for {n} faces")
    if (t < 0).any() or (t >= NUM_CLASSES).any():
        raise ConfigError(f"target classes must be in 0-{NUM_CLASSES - 1}, got {t.tolist()}")
    return t


# --------------------------------------------------------------------------------------------
# The explainer base class and registry


class Explainer:
    """Base class: ``Explainer(model, layer=None, **options).attribute(x, target=None)``.

    Subclasses set ``name`` and ``signed`` (whether negative values mean evidence against the
    class) and override :meth:`_attribute`, which gets a checked input and a ``long [N]`` target
    inside :func:`prepared` and returns maps of any shape ``[N, ...]`` with 48x48 pixels.

    Attributes:
        uses_layer: whether the method looks at a layer (Grad-CAM); others ignore ``layer``,
            which for these may name several layers joined by commas (``layer_names``).
    """

    name = ""
    signed = False
    uses_layer = False

    def __init__(self, model: nn.Module, layer: str | None = None, **options: Any) -> None:
        self.model = model
        self.layer_name: str | None = None
        self.layer: nn.Module | None = None
        self.layer_names: list[str] = []
        self.layers: list[nn.Module] = []
        if self.uses_layer:
            pairs = get_layers(model, layer)
            self.layer_names = [n for n, _ in pairs]
            self.layers = [m for _, m in pairs]
            self.layer_name, self.layer = ",".join(self.layer_names), self.layers[0]
        self.options = options

    def attribute(self, x: torch.Tensor, target: int | Sequence[int] | torch.Tensor | None = None
                  ) -> torch.Tensor:
        """Attribution maps ``float [N, 1, 48, 48]`` for faces ``x`` and classes ``target``.

        Args:
            x: float ``[N, 1, 48, 48]`` grey levels / 255 (what models take).
            target: class index, one per face, or ``None`` for the predicted class.
        """
        x = check_input(x)
        with prepared(self.model, grad_params=getattr(self, "grad_params", False)):
            t = resolve_target(self.model, x, target)
            maps = self._attribute(x, t)
        maps = maps.detach().float().reshape(len(x), 1, IMAGE_SIZE, IMAGE_SIZE)
        return torch.nan_to_num(maps, nan=0.0, posinf=0.0, neginf=0.0)

    def _attribute(self, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def __repr__(self) -> str:
        layer = f", layer={self.layer_name!r}" if self.uses_layer else ""
        return f"{type(self).__name__}({self.name!r}{layer})"


def register_explainer(name: str) -> Callable[[type[Explainer]], type[Explainer]]:
    """Class decorator adding an explainer to the registry under ``name``."""

    def wrap(cls: type[Explainer]) -> type[Explainer]:
        if name in _METHODS:
            raise ValueError(f"explainer {name!r} registered twice")
        cls.name = name
        _METHODS[name] = cls
        return cls

    return wrap


# Display order: gradients first, then layer methods, then the perturbation methods.
_ORDER = ("saliency", "smoothgrad", "integrated-gradients", "gradcam", "hirescam", "guided-gradcam",
          "occlusion", "lime")


def list_methods() -> list[str]:
    """Names of every attribution method, in a fixed order (cheap gradients first)."""
    rank = {n: i for i, n in enumerate(_ORDER)}
    return sorted(_METHODS, key=lambda n: (rank.get(n, len(rank)), n))


def get_explainer(name: str, model: nn.Module, layer: str | None = None,
                  **options: Any) -> Explainer:
    """Build the attribution method ``name`` for ``model``.

    Example:
        >>> cam = get_explainer("gradcam", model)          # the model's cam_layer
        >>> maps = cam.attribute(x)                        # [N, 1, 48, 48], predicted class
    """
    if name not in _METHODS:
        raise ConfigError(f"unknown explanation method {name!r}; choose one of: "
                          f"{', '.join(list_methods())}")
    try:
        return _METHODS[name](model, layer=layer, **options)
    except TypeError as e:
        raise ConfigError(f"method {name!r} does not take these options {options}: {e}") from e


def seeded(seed: int):
    """A context in which torch's global RNG is seeded and afterwards put back (captum draws
    noise and baselines from the global RNG, so this is how its methods become repeatable)."""
    stack = contextlib.ExitStack()
    stack.enter_context(torch.random.fork_rng(devices=[]))
    torch.manual_seed(seed)
    return stack
