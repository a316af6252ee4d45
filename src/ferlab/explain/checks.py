"""Checks that explanations are right, for any model and method.

* :func:`deletion_insertion`: remove the pixels a map ranks highest first and watch the class
  probability fall (deletion, lower is better), or add them to a blurred face and watch it rise
  (insertion, higher is better) (Petsiuk et al. 2018, RISE). Compared with a random map, this
  says whether a method finds what the model uses.
* :func:`randomization_check`: the model-randomisation sanity check of Adebayo et al. (2018):
  re-initialise the weights (top layer first, cascading down) and measure how similar the maps
  stay. A method whose maps survive randomisation explains the image, not the model.

Written here because captum has neither (its ``infidelity``/``sensitivity`` metrics answer other
questions) and both are a few lines of tensor code.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from scipy.stats import spearmanr
from skimage.metrics import structural_similarity
from torch import nn

from ..constants import IMAGE_SIZE, NUM_PIXELS
from .base import check_input, get_explainer, list_methods, predict, prepared, resolve_target
from .integrated_gradients import make_baseline


@dataclass
class DeletionInsertion:
    """Deletion/insertion curves of one map per face.

    Attributes:
        fractions: ``[S + 1]`` fraction of pixels removed (deletion) / inserted (insertion).
        deletion: ``[N, S + 1]`` target probability as the top pixels are removed.
        insertion: ``[N, S + 1]`` target probability as the top pixels are inserted.
    """

    fractions: np.ndarray
    deletion: np.ndarray
    insertion: np.ndarray

    @property
    def deletion_auc(self) -> np.ndarray:
        """Area under each deletion curve (per face; lower is better)."""
        return np.trapezoid(self.deletion, self.fractions, axis=1)

    @property
    def insertion_auc(self) -> np.ndarray:
        """Area under each insertion curve (per face; higher is better)."""
        return np.trapezoid(self.insertion, self.fractions, axis=1)

    def summary(self) -> dict[str, float]:
        d, i = float(self.deletion_auc.mean()), float(self.insertion_auc.mean())
        return {"deletion": d, "insertion": i, "insertion_minus_deletion": i - d}


def pixel_order(maps: torch.Tensor | np.ndarray, seed: int = 0) -> np.ndarray:
    """Pixel indices ``[N, 2304]`` from most to least important; ties broken at random (seeded)
    so that flat regions (LIME superpixels, a zero Grad-CAM) are not taken top row first."""
    m = np.asarray(maps, dtype=np.float64).reshape(len(maps), -1)
    rng = np.random.default_rng(seed)
    out = np.empty(m.shape, dtype=np.int64)
    for i in range(len(m)):
        out[i] = np.lexsort((rng.random(m.shape[1]), -m[i]))
    return out


def deletion_insertion(model: nn.Module, x: torch.Tensor, maps: torch.Tensor | np.ndarray,
                       target: int | Sequence[int] | torch.Tensor | None = None,
                       steps: int = 32, substrate: str | float = "blur", seed: int = 0
                       ) -> DeletionInsertion:
    """Deletion and insertion curves for attribution ``maps`` of faces ``x``.

    Args:
        model: the model explained.
        x: faces ``[N, 1, 48, 48]`` (grey / 255).
        maps: ``[N, 1, 48, 48]``; higher = more important for ``target``.
        target: class per face; ``None`` = the predicted class.
        steps: points on each curve after the start (2304 / steps pixels per step).
        substrate: what removed pixels become and what insertion starts from: ``blur``
            (Gaussian, sigma 5: removes detail, keeps lighting), ``mean``, ``black`` or a grey.
        seed: for breaking ties in the ranking.

    Example:
        >>> maps = get_explainer("gradcam", model).attribute(x)
        >>> deletion_insertion(model, x, maps).summary()  # doctest: +SKIP
        {'deletion': 0.12, 'insertion': 0.61, 'insertion_minus_deletion': 0.49}
    """
    x = check_input(x)
    target_t = resolve_target(model, x, target)
    n = len(x)
    order = pixel_order(maps, seed)
    counts = np.round(np.linspace(0, NUM_PIXELS, steps + 1)).astype(int)
    base = make_baseline(x, substrate).reshape(n, -1)
    flat = x.reshape(n, -1)
    deletion = np.zeros((n, steps + 1))
    insertion = np.zeros((n, steps + 1))
    rank = np.empty_like(order)
    rows = np.arange(n)[:, None]
    rank[rows, order] = np.arange(NUM_PIXELS)[None, :]  # rank[i, p] = position of pixel p
    rank_t = torch.from_numpy(rank)
    for j, k in enumerate(counts):
        top = rank_t < int(k)  # [N, 2304] the k most important pixels
        deleted = torch.where(top, base, flat).reshape(n, 1, IMAGE_SIZE, IMAGE_SIZE)
        inserted = torch.where(top, flat, base).reshape(n, 1, IMAGE_SIZE, IMAGE_SIZE)
        p = predict(model, torch.cat([deleted, inserted]))
        idx = torch.arange(n)
        deletion[:, j] = p[:n][idx, target_t].numpy()
        insertion[:, j] = p[n:][idx, target_t].numpy()
    return DeletionInsertion(counts / NUM_PIXELS, deletion, insertion)


def compare_methods(model: nn.Module, x: torch.Tensor, methods: Sequence[str] | None = None,
                    layer: str | None = None, steps: int = 32, seed: int = 0,
                    maps: dict[str, torch.Tensor] | None = None) -> dict[str, DeletionInsertion]:
    """Deletion/insertion curves per method, plus ``random`` (a seeded random map) to beat.

    ``maps`` may hold maps already computed (method -> ``[N, 1, 48, 48]``) to avoid redoing them.

    Example:
        >>> {k: r.summary() for k, r in compare_methods(model, x).items()}  # doctest: +SKIP
    """
    x = check_input(x)
    target = resolve_target(model, x, None)
    maps = dict(maps or {})
    out: dict[str, DeletionInsertion] = {}
    for name in methods or list_methods():
        if name not in maps:
            maps[name] = get_explainer(name, model, layer).attribute(x, target)
        out[name] = deletion_insertion(model, x, maps[name], target, steps, seed=seed)
    g = torch.Generator().manual_seed(seed)
    rand = torch.rand(x.shape, generator=g)
    out["random"] = deletion_insertion(model, x, rand, target, steps, seed=seed)
    return out


# --------------------------------------------------------------------------------------------
# Model randomisation (Adebayo et al. 2018)


def _similarity(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """Spearman rank correlation of |maps| and SSIM of the maps scaled to [0, 1], per face,
    averaged (the two measures of the paper)."""
    rs, ss = [], []
    for u, v in zip(np.abs(a).reshape(len(a), -1), np.abs(b).reshape(len(b), -1), strict=True):
        if u.std() == 0 or v.std() == 0:  # a constant map carries no ranking
            rs.append(0.0)
        else:
            rs.append(float(spearmanr(u, v).statistic))
        un = (u - u.min()) / (np.ptp(u) or 1.0)
        vn = (v - v.min()) / (np.ptp(v) or 1.0)
        ss.append(float(structural_similarity(un.reshape(IMAGE_SIZE, IMAGE_SIZE),
                                              vn.reshape(IMAGE_SIZE, IMAGE_SIZE),
                                              data_range=1.0)))
    return float(np.mean(rs)), float(np.mean(ss))


def parameter_layers(model: nn.Module) -> list[str]:
    """Names of modules holding weights (conv, linear, norm), in forward order."""
    return [n for n, m in model.named_modules()
            if n and not list(m.children()) and any(True for _ in m.parameters(recurse=False))]


def randomization_check(method: str, model: nn.Module, x: torch.Tensor,
                        target: int | Sequence[int] | torch.Tensor | None = None,
                        layer: str | None = None, cascade: bool = True, seed: int = 0,
                        **options) -> list[dict[str, float | str]]:
    """How similar ``method``'s maps stay as the model's weights are re-initialised.

    With ``cascade`` the layers are randomised from the output down, one at a time and
    cumulatively (a row per step, named by the deepest layer randomised so far); otherwise every
    layer is randomised at once (one row, ``"all"``). The target class stays the one of the
    trained model, so the same question is asked of both.

    Returns:
        Rows ``{"randomized": layer, "spearman": rho, "ssim": s}``; a right explanation gives
        values far below 1 once the top layers are random.

    Example:
        >>> randomization_check("gradcam", model, x, cascade=False)  # doctest: +SKIP
        [{'randomized': 'all', 'spearman': 0.05, 'ssim': 0.1}]
    """
    x = check_input(x)
    target_t = resolve_target(model, x, target)
    original = get_explainer(method, model, layer, **options).attribute(x, target_t).numpy()
    rand_model = copy.deepcopy(model)
    layers = parameter_layers(rand_model)
    steps = [[n] for n in reversed(layers)] if cascade else [layers]
    rows: list[dict[str, float | str]] = []
    gen_state = torch.random.fork_rng(devices=[])
    with gen_state:
        torch.manual_seed(seed)
        for group in steps:
            with prepared(rand_model, grad_params=True), torch.no_grad():
                for name in group:
                    m = rand_model.get_submodule(name)
                    if hasattr(m, "reset_parameters"):
                        m.reset_parameters()
                    else:  # a module without an initialiser: Gaussian noise of its scale
                        for p in m.parameters(recurse=False):
                            p.normal_(0, float(p.std()) if p.numel() > 1 else 1.0)
            maps = get_explainer(method, rand_model, layer, **options).attribute(x, target_t)
            rho, ssim = _similarity(original, maps.numpy())
            rows.append({"randomized": group[0] if cascade else "all", "spearman": rho,
                         "ssim": ssim})
    return rows
