"""Several models as one: majority vote or mean probability (seed reports 002 and 004).

An :class:`Ensemble` is an ``nn.Module`` with the interface of every ferlab model (grey / 255
in, logits ``[N, 7]`` out), so evaluate, predict and explain take it unchanged. Its logits are
the log of the combined probabilities, so ``softmax`` gives them back:

* ``mean``: the average of the members' softmax probabilities.
* ``vote``: each member votes for its argmax; the output is the vote share, with ties broken by
  the mean probability (a tiny ``TIE_BREAK`` share of it is added before normalising).

On disk an ensemble is a folder: ``ensemble.json`` (format, method, member files relative to the
folder) and the members' safetensors files. ``load_model(folder)`` loads it
(:mod:`ferlab.model_spec`).

:func:`accuracy_by_members` is the vote arithmetic that member training and the report print.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .constants import EMOTIONS
from .errors import ConfigError, ModelError
from .io_utils import read_json, write_json
from .model_file import load_model_file, save_model

METHODS = ("vote", "mean")
ENSEMBLE_FILE = "ensemble.json"
ENSEMBLE_FORMAT = "ferlab-ensemble/1"
TIE_BREAK = 1e-3  # weight of the mean probability added to vote shares; < 1 vote of any size


def combine(probs: torch.Tensor, method: str) -> torch.Tensor:
    """Combine member probabilities ``[M, N, 7]`` into ``[N, 7]`` probabilities.

    Example:
        >>> p = torch.tensor([[[.6, .4]], [[.6, .4]], [[0., 1.]]])  # 3 members, 1 face
        >>> combine(p, "mean").argmax(1).item(), combine(p, "vote").argmax(1).item()
        (1, 0)
    """
    if method not in METHODS:
        raise ConfigError(f"ensemble method must be one of {METHODS}, got {method!r}")
    mean = probs.mean(0)
    if method == "mean":
        return mean
    n_classes = probs.shape[-1]
    votes = nn.functional.one_hot(probs.argmax(-1), n_classes).to(probs.dtype).mean(0)
    mixed = votes + TIE_BREAK * mean
    return mixed / mixed.sum(1, keepdim=True)


class Ensemble(nn.Module):
    """Models whose predictions are combined by ``vote`` or ``mean``.

    Attributes:
        members: the member models (an ``nn.ModuleList``), each in eval mode.
        method: ``vote`` or ``mean``.
        name: ``ensemble(<method>, <n> members)``.
        sources: where each member came from (for messages and ``ensemble.json``).

    Example:
        >>> ens = Ensemble([load_model("runs/a"), load_model("runs/b")], "mean")  # doctest: +SKIP
        >>> ens(torch.rand(2, 1, 48, 48)).softmax(1)  # doctest: +SKIP
    """

    def __init__(self, members: Sequence[nn.Module], method: str = "vote",
                 sources: Sequence[str] | None = None) -> None:
        super().__init__()
        if method not in METHODS:
            raise ConfigError(f"ensemble method must be one of {METHODS}, got {method!r}")
        flat, flat_sources = [], []
        srcs = list(sources) if sources is not None else [""] * len(members)
        for m, s in zip(members, srcs, strict=True):
            if isinstance(m, Ensemble):  # an ensemble of ensembles is one flat ensemble
                flat += list(m.members)
                flat_sources += m.sources
            else:
                flat.append(m)
                flat_sources.append(s)
        if not flat:
            raise ModelError("an ensemble needs at least one member model")
        self.members = nn.ModuleList(flat)
        self.method = method
        self.sources = flat_sources
        self.name = f"ensemble({method}, {len(flat)} members)"
        self.kwargs = {"method": method, "members": len(flat)}
        self.meta: dict = {}
        first = flat[0]
        # Layer-based explainers need a layer; member 0's is as good as any single one.
        self.cam_layer = (f"members.0.{first.cam_layer}" if getattr(first, "cam_layer", "")
                          else "")

    def member_probs(self, x: torch.Tensor) -> torch.Tensor:
        """Each member's softmax probabilities, ``[M, N, 7]``."""
        return torch.stack([m(x).float().softmax(1) for m in self.members])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = combine(self.member_probs(x), self.method)
        return p.clamp_min(1e-12).log()  # logits whose softmax is p

    def conv_layer_names(self) -> list[str]:
        """Names (for ``get_submodule``) of every Conv2d of every member."""
        return [n for n, m in self.named_modules() if isinstance(m, nn.Conv2d)]


def save_ensemble(ensemble: Ensemble, out_dir: str | Path) -> Path:
    """Write ``ensemble.json`` and ``member-XX.safetensors`` files into ``out_dir``."""
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ModelError(f"{out}: exists and is not a folder")
    files = []
    for i, m in enumerate(ensemble.members):
        name = f"member-{i:02d}.safetensors"
        info = {k: v for k, v in (getattr(m, "meta", None) or {}).items()
                if k in ("val_accuracy", "epoch", "run")}
        save_model(m, out / name, **info)
        files.append(name)
    write_json(out / ENSEMBLE_FILE, {"format": ENSEMBLE_FORMAT, "method": ensemble.method,
                                     "members": files, "sources": ensemble.sources,
                                     "classes": list(EMOTIONS)})
    return out


def is_ensemble_dir(path: str | Path) -> bool:
    return (Path(path) / ENSEMBLE_FILE).is_file()


def load_ensemble(folder: str | Path, method: str | None = None) -> Ensemble:
    """Load an ensemble folder (``method`` overrides the stored one).

    Raises:
        ModelError: ``ensemble.json`` is unreadable or names a member that is missing, outside
            the folder, or not a valid ferlab model.
    """
    folder = Path(folder)
    path = folder / ENSEMBLE_FILE
    try:
        spec = read_json(path)
    except (OSError, ValueError) as e:
        raise ModelError(f"{path}: cannot read ensemble description: {e}") from e
    if not isinstance(spec, dict) or spec.get("format") != ENSEMBLE_FORMAT:
        raise ModelError(f"{path}: not a ferlab ensemble (expected format {ENSEMBLE_FORMAT!r})")
    files = spec.get("members")
    if not isinstance(files, list) or not files:
        raise ModelError(f"{path}: 'members' must be a non-empty list of model files")
    members, sources = [], []
    root = folder.resolve()
    for f in files:
        p = (folder / str(f)).resolve()
        if root not in p.parents:  # a shared folder must not make us read files elsewhere
            raise ModelError(f"{path}: member {f!r} is outside the ensemble folder")
        if not p.is_file():
            raise ModelError(f"{path}: member file {f!r} is missing")
        members.append(load_model_file(p))
        sources.append(str(f))
    method = method or spec.get("method", "vote")
    ens = Ensemble(members, method, sources)
    ens.meta = {"format": ENSEMBLE_FORMAT, "method": method, "folder": str(folder)}
    return ens.eval()


def accuracy_by_members(member_probs: np.ndarray, labels: np.ndarray) -> list[dict]:
    """Accuracy of the first k members for k = 1..M, by vote and by mean, plus member k alone.

    Args:
        member_probs: ``[M, N, 7]`` probabilities of each member.
        labels: ``[N]`` true classes.
    """
    p = torch.as_tensor(member_probs, dtype=torch.float32)
    y = torch.as_tensor(labels)
    rows = []
    for k in range(1, len(p) + 1):
        acc = {m: (combine(p[:k], m).argmax(1) == y).float().mean().item() for m in METHODS}
        rows.append({"members": k, "member_acc": (p[k - 1].argmax(1) == y).float().mean().item(),
                     "vote_acc": acc["vote"], "mean_acc": acc["mean"]})
    return rows
