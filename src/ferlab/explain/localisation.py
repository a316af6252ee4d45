"""Does a method find evidence where it is known to be? The localisation ratio on small boxes.

On :func:`ferlab.synthetic.make_box_faces` faces the class lives in one small box per face (1.6-6 %
of the image, mostly off-centre and away from the decoy mouth). A model trained on them can only
use the box, so a right map puts its mass there. The figure is

    ratio = (share of the map's positive mass inside the box) / (box area / image area)

1.0 is chance (mass spread evenly), and a map with all its mass in the box scores
``1 / box share`` (16 to 64 here). :func:`reference_model` trains the small model the tests,
``benchmarks/bench_localisation.py`` and ``ferlab explain --check`` measure on (a few seconds
on 2 cores), so each method's figure says how far its pictures can be trusted to point at small
evidence.
"""

from __future__ import annotations

import copy
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..config import AugmentConfig, DataConfig, ModelConfig, RunConfig, TrainConfig
from ..constants import IMAGE_SIZE
from ..model_spec import load_model
from ..synthetic import make_box_faces
from ..training.loop import train
from .base import check_input, get_explainer, list_methods

# The reference model: a narrow cnn-leaky (35k parameters) that reaches 100 % validation accuracy
# on box faces in 4 epochs of 700 faces.
REFERENCE_ARCH = ("cnn-leaky", {"widths": [8, 16, 32, 32], "hidden": 64})
REFERENCE_TRAIN = {"faces": 700, "epochs": 4, "batch_size": 32, "lr": 3e-3}


def localisation_ratio(maps: torch.Tensor | np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Per face: share of positive attribution mass inside its box / the box's share of area.

    Args:
        maps: ``[N, (1,) 48, 48]`` attribution maps (negative values are evidence against and
            are not counted).
        boxes: ``int [N, 4]`` as ``(row0, row1, col0, col1)``.

    Returns:
        ``float [N]``; 1.0 is chance; a map with no positive mass scores 0.

    Example:
        >>> m = np.zeros((1, 48, 48)); m[0, :6, :6] = 1
        >>> localisation_ratio(m, np.array([[0, 6, 0, 6]])).round(1).tolist()
        [64.0]
    """
    m = np.clip(np.asarray(maps, dtype=np.float64).reshape(len(boxes), IMAGE_SIZE, IMAGE_SIZE),
                0, None)
    out = np.zeros(len(boxes))
    for i, (r0, r1, c0, c1) in enumerate(np.asarray(boxes, dtype=np.int64)):
        total = m[i].sum()
        share = (r1 - r0) * (c1 - c0) / IMAGE_SIZE**2
        out[i] = m[i, r0:r1, c0:c1].sum() / total / share if total > 0 else 0.0
    return out


_TRAINED: dict[int, nn.Module] = {}


def reference_model(seed: int = 0, log=lambda s: None) -> nn.Module:
    """The small model that learned box faces (seeded: the same weights each call).

    Trained with :func:`ferlab.train` in float32 (so the weights do not depend on whether this
    CPU has bf16) into a temporary folder that is removed afterwards; trained once per process
    and seed, each call returns its own copy.
    """
    if seed not in _TRAINED:
        _TRAINED[seed] = _train_reference(seed, log)
    return copy.deepcopy(_TRAINED[seed])


def _train_reference(seed: int, log) -> nn.Module:
    name, kwargs = REFERENCE_ARCH
    t = REFERENCE_TRAIN
    cfg = RunConfig(DataConfig(path="synthetic"), ModelConfig(name, dict(kwargs)),
                    AugmentConfig(flip=False, shift=0, rotation=0, zoom=0, erase=0),
                    TrainConfig(epochs=t["epochs"], batch_size=t["batch_size"], lr=t["lr"],
                                weight_decay=1e-4, bf16=False, seed=seed, device="cpu"))
    data = (make_box_faces(t["faces"], seed=seed, usage="Training").faces,
            make_box_faces(140, seed=seed + 1, usage="PublicTest").faces)
    with tempfile.TemporaryDirectory(prefix="ferlab-boxes-") as tmp:
        run = train(cfg, Path(tmp) / "run", data=data, progress=False, log=log)
        return load_model(run).eval()


def box_test_faces(n: int = 35, seed: int = 5) -> tuple[torch.Tensor, np.ndarray, np.ndarray]:
    """Held-out box faces ``(x [N, 1, 48, 48], labels [N], boxes [N, 4])`` (every box, every
    class)."""

    bf = make_box_faces(n, seed=seed)
    return check_input(bf.faces.images), bf.faces.labels, bf.boxes


def localisation_check(model: nn.Module, x: torch.Tensor, boxes: np.ndarray,
                       methods: Sequence[str] | None = None, target=None,
                       method_options: Mapping[str, dict] | None = None
                       ) -> dict[str, dict[str, float]]:
    """Median and lower quartile of the localisation ratio per method, on faces with boxes.

    Returns:
        ``{method: {"median": r, "q25": r, "faces": n}}``.

    Example:
        >>> model = reference_model()
        >>> x, labels, boxes = box_test_faces()
        >>> localisation_check(model, x, boxes, ["occlusion"])  # doctest: +SKIP
        {'occlusion': {'median': 9.1, 'q25': 6.0, 'faces': 35}}
    """
    opts = dict(method_options or {})
    out: dict[str, dict[str, float]] = {}
    for name in methods or list_methods():
        maps = get_explainer(name, model, **opts.get(name, {})).attribute(x, target)
        r = localisation_ratio(maps, boxes)
        out[name] = {"median": float(np.median(r)), "q25": float(np.percentile(r, 25)),
                     "faces": len(r)}
    return out
