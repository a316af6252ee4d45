"""Running a model on faces: the one uint8-to-input conversion and the one batched prediction.

Every ferlab model (a single net or an :class:`~ferlab.ensemble.Ensemble`) takes grey levels / 255
as float ``[N, 1, 48, 48]`` and returns logits ``[N, 7]``. :func:`to_model_input` makes that input
from stored uint8 faces, and :func:`predict_probs` is the batched softmax that training's
validation, evaluation, prediction, explanations and photos all go through.

* ``fast=True`` runs a folded, channels-last copy of the model with its weights in the chosen
  precision (:func:`inference_copy`): the fastest for repeated inference, for a model that is not
  changing.
* ``fast=False`` runs the model itself in eval mode under autocast (its mode restored after): for
  a model in training, or one whose hooks an explainer needs.

Example:
    >>> from torch import nn
    >>> net = nn.Sequential(nn.Flatten(), nn.Linear(48 * 48, 7))
    >>> predict_probs(net, torch.zeros(3, 48, 48, dtype=torch.uint8), precision="fp32").shape
    torch.Size([3, 7])
"""

from __future__ import annotations

import copy

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval, fuse_linear_bn_eval

from .constants import NUM_CLASSES
from .errors import ConfigError
from .precision import Precision, autocast, resolve_precision
from .progress import progress_bar

DEFAULT_BATCH = 64  # faces per forward pass: 1.5-2x faster than 256 on CPUs (bench_runtime)
TTA_MODES = ("flip", "shift")
SHIFT_PX = 2  # shift-TTA offset; training shifts faces by up to 10% (4.8 px), so 2 px is familiar


def device_of(model: nn.Module) -> torch.device:
    """The device of the model's first parameter (the CPU for a model without any)."""
    p = next(model.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


def to_model_input(images: torch.Tensor | np.ndarray, device: torch.device | str | None = None,
                   dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Faces as a model takes them: float ``[N, 1, 48, 48]`` grey levels / 255.

    ``images`` may be uint8 ``[N, 48, 48]`` or ``[N, 1, 48, 48]`` (stored faces, divided by 255
    here) or already float in [0, 1] (passed through, cast to ``dtype``).

    Example:
        >>> to_model_input(np.full((2, 48, 48), 255, np.uint8)).amax().item()
        1.0
    """
    x = torch.as_tensor(images)
    if x.dim() == 3:
        x = x.unsqueeze(1)
    if x.dtype == torch.uint8:
        return x.to(device=device, dtype=dtype).div_(255.0)
    return x.to(device=device, dtype=dtype)


def tta_mode(tta: bool | str | None) -> str | None:
    """The test-time augmentation asked for: ``None``, ``"flip"`` or ``"shift"`` (``True`` means
    ``"flip"``, so ``tta=True`` keeps its old meaning)."""
    if tta is None or tta is False or tta == "" or tta == "none":
        return None
    if tta is True:
        return "flip"
    if tta not in TTA_MODES:
        raise ConfigError(f"test-time augmentation must be one of {TTA_MODES}, got {tta!r}")
    return tta


def tta_views(x: torch.Tensor, tta: bool | str | None) -> list[torch.Tensor]:
    """The views of a batch ``x [N, 1, 48, 48]`` whose probabilities are averaged.

    * ``None``: ``[x]``.
    * ``"flip"``: ``x`` and its mirror (expressions are left-right symmetric and training flips
      faces, so the mirror is as valid a view).
    * ``"shift"``: those two, each also moved ``SHIFT_PX`` pixels up, down, left and right (edge
      pixels repeated): 10 views, 10x the time. On PublicTest it gained 0.4 points over
      ``flip`` for a width-32 vgg and lost 0.3 for the width-48 bundled model
      (``benchmarks/RESULTS.md``), so ``flip`` is the one recommended.

    Example:
        >>> len(tta_views(torch.zeros(2, 1, 48, 48), "shift"))
        10
    """
    mode = tta_mode(tta)
    if mode is None:
        return [x]
    views = [x, x.flip(-1)]
    if mode == "shift":
        s = SHIFT_PX
        size_h, size_w = x.shape[-2:]
        for v in list(views):
            padded = F.pad(v, (s, s, s, s), mode="replicate")
            for dx, dy in ((s, 0), (-s, 0), (0, s), (0, -s)):
                views.append(padded[..., s + dy:s + dy + size_h, s + dx:s + dx + size_w])
    return views


def average_probs(model: nn.Module, x: torch.Tensor, tta: bool | str | None = None,
                  memory_format: torch.memory_format = torch.contiguous_format) -> torch.Tensor:
    """Mean softmax probabilities ``[N, 7]`` of ``model`` over the TTA views of ``x``."""
    views = tta_views(x, tta)
    return sum(model(v.contiguous(memory_format=memory_format)).float().softmax(1)
               for v in views) / len(views)


def has_conv(model: nn.Module) -> bool:
    return any(isinstance(m, nn.Conv2d) for m in model.modules())


def _fold_batch_norms(model: nn.Module) -> None:
    """Folds every ``Conv2d -> BatchNorm2d`` and ``Linear -> BatchNorm1d`` pair that follow each
    other in an ``nn.Sequential`` into the first layer (in place; eval-mode statistics)."""
    pairs = ((nn.Conv2d, nn.BatchNorm2d, fuse_conv_bn_eval),
             (nn.Linear, nn.BatchNorm1d, fuse_linear_bn_eval))
    for seq in model.modules():
        if not isinstance(seq, nn.Sequential):
            continue
        for i in range(len(seq) - 1):
            for layer, norm, fuse in pairs:
                if type(seq[i]) is layer and type(seq[i + 1]) is norm:
                    seq[i], seq[i + 1] = fuse(seq[i], seq[i + 1]), nn.Identity()


def inference_copy(model: nn.Module, bf16: bool) -> nn.Module:
    """A copy of ``model`` for fast repeated inference: eval mode, batch norms folded into the
    layers before them, channels-last, and its weights in bfloat16 when ``bf16``.

    Feed it inputs of its dtype (``next(copy.parameters()).dtype``). Autocast would re-cast every
    weight on every call, a cost that matters most at one face a call; held in bf16, the weights
    are cast once. The copy does not follow later changes to ``model``.

    Example:
        >>> net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU()).eval()
        >>> fast = inference_copy(net, bf16=True)
        >>> type(fast[1]).__name__, next(fast.parameters()).dtype
        ('Identity', torch.bfloat16)
    """
    fast = copy.deepcopy(model).eval()
    _fold_batch_norms(fast)
    if bf16:
        fast.to(torch.bfloat16)
    return fast.to(memory_format=torch.channels_last).requires_grad_(False)


def predict_probs(model: nn.Module, images: torch.Tensor | np.ndarray, *,
                  batch_size: int = DEFAULT_BATCH, precision: Precision | str = "auto",
                  tta: bool | str | None = None, fast: bool = True,
                  progress: bool = False) -> torch.Tensor:
    """Softmax probabilities ``float32 [N, 7]`` (on the CPU) of ``model`` for every face.

    Args:
        model: any ferlab model: grey / 255 in, logits out; or a callable that maps such a
            batch to logits (an :class:`~ferlab.runtime.onnx_classifier.OnnxClassifier`).
        images: uint8 faces ``[N, (1,) 48, 48]``, or float ones in [0, 1] (:func:`to_model_input`).
        batch_size: faces per forward pass.
        precision: ``auto`` (bf16 where the device computes it natively), ``fp32``, ``bf16``, or
            a resolved :class:`~ferlab.precision.Precision`.
        tta: test-time augmentation (:func:`tta_views`): ``None``, ``"flip"`` or ``"shift"``.
        fast: run a folded copy held in the chosen precision (:func:`inference_copy`) rather than
            the model itself under autocast; the model passed in is never changed.
        progress: show a progress bar (hidden anyway when not on a terminal).
    """
    if batch_size < 1:
        raise ConfigError(f"batch size must be at least 1, got {batch_size}")
    is_torch = isinstance(model, nn.Module)  # else a callable such as an OnnxClassifier
    device = device_of(model) if is_torch else torch.device("cpu")
    chosen = (precision if isinstance(precision, Precision)
              else resolve_precision(precision, device.type))
    fast = fast and is_torch
    net = inference_copy(model, chosen.bf16) if fast else model
    first = next(net.parameters(), None) if is_torch else None
    dtype = first.dtype if fast and first is not None else torch.float32
    fmt = torch.channels_last if is_torch and has_conv(net) else torch.contiguous_format
    n = len(images)
    out = torch.zeros(n, NUM_CLASSES)
    was_training = is_torch and model.training
    if is_torch:
        model.eval()
    try:
        with torch.inference_mode(), autocast(chosen.bf16 and is_torch and not fast, device.type), \
                progress_bar(total=n, desc="predict", unit="face", leave=False,
                             disable=None if progress else True, dynamic_ncols=True) as bar:
            for i in range(0, n, batch_size):
                x = to_model_input(images[i:i + batch_size], device, dtype)
                out[i:i + len(x)] = average_probs(net, x, tta, fmt).cpu()
                bar.update(len(x))
    finally:
        if is_torch:
            model.train(was_training)
    return out
