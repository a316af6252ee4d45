"""Batched augmentation on tensors: flip, shift, rotation, zoom, shear, crop, erasing, mixup,
and random windows smaller than the face.

Every geometric op is folded into one random affine map per face and applied with a single
``grid_sample`` call for the whole batch, so augmentation costs a few milliseconds per batch
on the CPU instead of a Python loop over images. All randomness comes from the ``generator``
passed in, so a resumed run redraws exactly what an uninterrupted one drew.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .config import AugmentConfig


def _uniform(n: int, g: torch.Generator, low: float, high: float) -> torch.Tensor:
    return torch.rand(n, generator=g) * (high - low) + low


def random_affine(x: torch.Tensor, cfg: AugmentConfig, g: torch.Generator,
                  flip: torch.Tensor | None = None) -> torch.Tensor:
    """Flip, shift, rotate, zoom, shear and crop-shift a batch ``[N, C, H, W]`` (float).

    Borders are filled by replicating the edge pixels (Keras' ``fill_mode='nearest'``), so no
    black corners teach the net a shortcut. ``flip`` (bool per face), where given, says which
    faces to mirror instead of a coin per face.
    """
    n, _, h, w = x.shape
    if cfg.flip:
        coin = torch.rand(n, generator=g) < 0.5  # drawn even when unused: the draws after it
        # stay those of a run with coin flips
        flip = torch.where(coin if flip is None else flip, -1.0, 1.0)
    else:
        flip = torch.ones(n)
    angle = _uniform(n, g, -cfg.rotation, cfg.rotation) * math.pi / 180
    scale = _uniform(n, g, 1 - cfg.zoom, 1 + cfg.zoom)
    shear = _uniform(n, g, -cfg.shear, cfg.shear) * math.pi / 180
    # affine_grid works in [-1, 1] coordinates: a shift of s * side is 2 * s there.
    tx = _uniform(n, g, -cfg.shift, cfg.shift) * 2
    ty = _uniform(n, g, -cfg.shift, cfg.shift) * 2
    if cfg.crop:
        # Random crop of a replicate-padded face = an integer shift of up to `crop` pixels.
        tx = tx + torch.randint(-cfg.crop, cfg.crop + 1, (n,), generator=g) * 2 / w
        ty = ty + torch.randint(-cfg.crop, cfg.crop + 1, (n,), generator=g) * 2 / h
    cos, sin, tan = torch.cos(angle), torch.sin(angle), torch.tan(shear)
    # theta maps output coordinates to input coordinates: rotate, shear, then scale by 1/zoom.
    a = (cos / scale) * flip
    b = (-sin + cos * tan) / scale
    c = (sin / scale) * flip
    d = (cos + sin * tan) / scale
    theta = torch.stack([torch.stack([a, b, tx], 1), torch.stack([c, d, ty], 1)], 1)
    grid = F.affine_grid(theta.to(x.dtype), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def random_erase(x: torch.Tensor, p: float, g: torch.Generator, area=(0.02, 0.2),
                 aspect=(0.3, 3.3)) -> torch.Tensor:
    """With probability ``p`` per face, fill one random rectangle with uniform noise."""
    n, _, h, w = x.shape
    on = torch.rand(n, generator=g) < p
    frac = _uniform(n, g, *area)
    log_r = _uniform(n, g, math.log(aspect[0]), math.log(aspect[1]))
    ratio = torch.exp(log_r)
    eh = torch.clamp((frac * h * w * ratio).sqrt(), 1, h)
    ew = torch.clamp((frac * h * w / ratio).sqrt(), 1, w)
    y0 = torch.rand(n, generator=g) * (h - eh)
    x0 = torch.rand(n, generator=g) * (w - ew)
    ys = torch.arange(h).view(1, h, 1)
    xs = torch.arange(w).view(1, 1, w)
    mask = ((ys >= y0.view(-1, 1, 1)) & (ys < (y0 + eh).view(-1, 1, 1))
            & (xs >= x0.view(-1, 1, 1)) & (xs < (x0 + ew).view(-1, 1, 1)) & on.view(-1, 1, 1))
    noise = torch.rand(x.shape, generator=g, dtype=x.dtype)
    return torch.where(mask.unsqueeze(1), noise, x)


def random_window(x: torch.Tensor, size: int, g: torch.Generator) -> torch.Tensor:
    """A random ``size`` x ``size`` window of each face of ``[N, C, H, W]``, at integer offsets
    (no resampling): the 40-44 px training crops of the FER2013 papers.

    Example:
        >>> random_window(torch.rand(4, 1, 48, 48), 40, torch.Generator().manual_seed(0)).shape
        torch.Size([4, 1, 40, 40])
    """
    n, _, h, w = x.shape
    y0 = torch.randint(0, h - size + 1, (n, 1), generator=g)
    x0 = torch.randint(0, w - size + 1, (n, 1), generator=g)
    steps = torch.arange(size)
    rows, cols = (y0 + steps).unsqueeze(2), (x0 + steps).unsqueeze(1)  # [N, S, 1], [N, 1, S]
    faces = torch.arange(n).view(n, 1, 1)
    return x.permute(0, 2, 3, 1)[faces, rows, cols].permute(0, 3, 1, 2).contiguous()


def augment(x: torch.Tensor, cfg: AugmentConfig, g: torch.Generator,
            flip: torch.Tensor | None = None) -> torch.Tensor:
    """Apply every augmentation ``cfg`` turns on to a float batch ``[N, 1, 48, 48]`` in [0, 1];
    ``flip`` (bool per face) chooses the mirrored faces instead of a coin.

    Example:
        >>> g = torch.Generator().manual_seed(0)
        >>> augment(torch.rand(8, 1, 48, 48), AugmentConfig(), g).shape
        torch.Size([8, 1, 48, 48])
    """
    if cfg.flip or cfg.shift or cfg.rotation or cfg.zoom or cfg.shear or cfg.crop:
        x = random_affine(x, cfg, g, flip)
    if cfg.crop_size and cfg.crop_size < x.shape[-1]:
        x = random_window(x, cfg.crop_size, g)
    if cfg.erase:
        x = random_erase(x, cfg.erase, g)
    return x


def mixup(x: torch.Tensor, targets: torch.Tensor, alpha: float, g: torch.Generator
          ) -> tuple[torch.Tensor, torch.Tensor]:
    """Mixup or CutMix (half the batches each) with soft targets ``[N, classes]``.

    CutMix pastes a box of one face into another; mixup blends whole faces. The mixing weight
    follows Beta(alpha, alpha).
    """
    n, _, h, w = x.shape
    # Beta sampling draws from the global generator, which train() seeds at every epoch start.
    lam = float(torch.distributions.Beta(alpha, alpha).sample().item()) if alpha > 0 else 1.0
    perm = torch.randperm(n, generator=g)
    if torch.rand(1, generator=g).item() < 0.5:
        cut = math.sqrt(1 - lam)
        bh, bw = int(h * cut), int(w * cut)
        cy = int(torch.randint(0, h, (1,), generator=g))
        cx = int(torch.randint(0, w, (1,), generator=g))
        y0, y1 = max(cy - bh // 2, 0), min(cy + bh // 2, h)
        x0, x1 = max(cx - bw // 2, 0), min(cx + bw // 2, w)
        x = x.clone()
        x[:, :, y0:y1, x0:x1] = x[perm, :, y0:y1, x0:x1]
        lam = 1 - (y1 - y0) * (x1 - x0) / (h * w)
    else:
        x = lam * x + (1 - lam) * x[perm]
    return x, lam * targets + (1 - lam) * targets[perm]
