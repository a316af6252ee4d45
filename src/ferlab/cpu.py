"""What this CPU computes natively, and fast inference built on it: bf16 autocast for training and
evaluation, and a folded bf16 copy of a model for photos."""

from __future__ import annotations

import copy
from contextlib import nullcontext

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval, fuse_linear_bn_eval

from . import precision


def bf16_is_native() -> bool:
    """Whether this CPU computes bfloat16 natively; see :func:`ferlab.precision.bf16_is_native`,
    the one detector every default goes through."""
    return precision.bf16_is_native()


def autocast_bf16(enabled: bool):
    """``torch.autocast`` to bfloat16 on the CPU when ``enabled``, else a no-op context.

    Training validates under it when its precision is bf16 (``TrainConfig.precision``).
    """
    return torch.autocast("cpu", dtype=torch.bfloat16) if enabled else nullcontext()


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
    """A copy of ``model`` for fast repeated inference on this CPU: eval mode, batch norms folded
    into the layers before them, channels-last, and its weights in bfloat16 when ``bf16``.

    Feed it inputs of its dtype (``next(copy.parameters()).dtype``). Autocast would re-cast every
    weight on every call, a cost that matters most at one face a call; held in bf16, the
    weights are cast once (``benchmarks/bench_faces.py``'s classifier table compares the two). The
    bundled model's PublicTest labels agree with float32 ones as often as under autocast
    (``bench_faces.py --agreement DATA``). The copy does not follow later changes to ``model``.

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
