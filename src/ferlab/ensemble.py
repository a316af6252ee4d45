"""Several models as one: majority vote or mean probability (seed reports 002 and 004).

An :class:`Ensemble` is an ``nn.Module`` with the interface of every ferlab model (grey / 255
in, logits ``[N, 7]`` out), so evaluate, predict and explain take it unchanged. Its logits are
the log of the combined probabilities, so ``softmax`` gives them back:

* ``mean``: the average of the members' softmax probabilities.
* ``vote``: each member votes for its argmax; the output is the vote share, with ties broken by
  the mean probability (a tiny ``TIE_BREAK`` share of it is added before normalising).

Each member's logits may be divided by its own temperature before the softmax
(:func:`fit_temperatures`): members trained with different label smoothing are confident to
different degrees, and the mean should weigh them by how right they are, not by how sure.

On disk an ensemble is a folder: ``ensemble.json`` (format, method, member files relative to the
folder, temperatures, the recommended TTA) and the members' safetensors files; or one
safetensors file holding every member (:func:`save_ensemble_file`, how the bundled ensemble
ships). ``load_model`` loads either (:mod:`ferlab.model_spec`).

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
from .model_file import load_model_file, load_weights, read_model_meta, save_model, write_model_file
from .models import create_model

METHODS = ("vote", "mean")
ENSEMBLE_NAME = "ensemble"  # the model name in the metadata of a one-file ensemble
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
        temperatures: one positive float per member; its logits are divided by it.
        temperature: one positive float for the combined probabilities: the ensemble's
            log-probabilities are divided by it. Unlike the members' temperatures it never
            changes a label, only how sure the ensemble says it is (``--output-temperature``).
        tta: the test-time augmentation the ensemble was tuned with (``flip``...) or None.

    Example:
        >>> ens = Ensemble([load_model("runs/a"), load_model("runs/b")], "mean")  # doctest: +SKIP
        >>> ens(torch.rand(2, 1, 48, 48)).softmax(1)  # doctest: +SKIP
    """

    def __init__(self, members: Sequence[nn.Module], method: str = "vote",
                 sources: Sequence[str] | None = None,
                 temperatures: Sequence[float] | None = None, tta: str | None = None,
                 temperature: float = 1.0) -> None:
        super().__init__()
        if method not in METHODS:
            raise ConfigError(f"ensemble method must be one of {METHODS}, got {method!r}")
        flat, flat_sources, flat_temps = [], [], []
        srcs = list(sources) if sources is not None else [""] * len(members)
        temps = list(temperatures) if temperatures is not None else [1.0] * len(members)
        if len(temps) != len(members):
            raise ConfigError(f"{len(temps)} temperatures for {len(members)} members")
        for m, s, t in zip(members, srcs, temps, strict=True):
            if isinstance(m, Ensemble):  # an ensemble of ensembles is one flat ensemble
                flat += list(m.members)
                flat_sources += m.sources
                flat_temps += [t * u for u in m.temperatures]
            else:
                flat.append(m)
                flat_sources.append(s)
                flat_temps.append(float(t))
        if not flat:
            raise ModelError("an ensemble needs at least one member model")
        if not all(t > 0 for t in flat_temps):
            raise ConfigError(f"member temperatures must be positive, got {flat_temps}")
        if not temperature > 0:
            raise ConfigError(f"the ensemble's temperature must be positive, got {temperature}")
        self.members = nn.ModuleList(flat)
        self.method = method
        self.sources = flat_sources
        self.temperatures = flat_temps
        self.temperature = float(temperature)
        self.tta = tta
        self.name = f"ensemble({method}, {len(flat)} members)"
        self.kwargs = {"method": method, "members": len(flat)}
        self.meta: dict = {}
        first = flat[0]
        # Layer-based explainers need a layer; member 0's is as good as any single one.
        self.cam_layer = (f"members.0.{first.cam_layer}" if getattr(first, "cam_layer", "")
                          else "")

    def member_probs(self, x: torch.Tensor) -> torch.Tensor:
        """Each member's softmax probabilities (at its temperature), ``[M, N, 7]``."""
        return torch.stack([(m(x).float() / t).softmax(1)
                            for m, t in zip(self.members, self.temperatures, strict=True)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = combine(self.member_probs(x), self.method)
        logp = p.clamp_min(1e-12).log()  # logits whose softmax is p
        return logp if self.temperature == 1.0 else logp / self.temperature

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
                                     "temperatures": ensemble.temperatures,
                                     "temperature": ensemble.temperature,
                                     "tta": ensemble.tta, "classes": list(EMOTIONS)})
    return out


def save_ensemble_file(ensemble: Ensemble, path: str | Path, *, half: bool = False,
                       **info) -> Path:
    """Write the whole ensemble as one safetensors file (``half``: weights in float16).

    Its tensors are the ensemble's state dict (``members.<i>.<name>``); its metadata says how
    to rebuild each member, the method, temperatures and TTA. One file is what a model
    argument, ``scripts/bundle_model.py`` and the bundled model expect.
    """
    members = [{"name": m.name, "kwargs": m.kwargs} for m in ensemble.members]
    meta = {"name": ENSEMBLE_NAME, "kwargs": {"method": ensemble.method},
            "members": members, "temperatures": ensemble.temperatures,
            "temperature": ensemble.temperature, "sources": ensemble.sources, **info}
    if ensemble.tta:
        meta["tta"] = ensemble.tta
    return write_model_file(ensemble.state_dict(), meta, path, half=half)


def is_ensemble_file_meta(meta: dict) -> bool:
    """Whether a model file's metadata (``read_model_meta``) describes an ensemble."""
    return meta.get("name") == ENSEMBLE_NAME


def load_ensemble_file(path: str | Path) -> Ensemble:
    """Load an ensemble written by :func:`save_ensemble_file`, in eval mode.

    Raises:
        ModelError: the file is not a ferlab ensemble or its weights do not fit its members.
    """
    path = Path(path)
    meta = read_model_meta(path)
    specs = meta.get("members")
    if not is_ensemble_file_meta(meta) or not isinstance(specs, list) or not specs:
        raise ModelError(f"{path}: not a ferlab ensemble file")
    try:
        members = [create_model(m["name"], **m.get("kwargs", {})) for m in specs]
    except (KeyError, TypeError) as e:
        raise ModelError(f"{path}: ensemble member description is invalid: {e}") from e
    ens = Ensemble(members, meta.get("kwargs", {}).get("method", "mean"),
                   meta.get("sources"), meta.get("temperatures"), meta.get("tta"),
                   meta.get("temperature", 1.0))
    load_weights(ens, path)
    for m in ens.members:
        m.eval()
    ens.meta = meta
    return ens.eval()


def load_any_model_file(path: str | Path) -> nn.Module:
    """A one-model file or a one-file ensemble, whichever ``path`` holds, in eval mode."""
    if is_ensemble_file_meta(read_model_meta(Path(path))):
        return load_ensemble_file(path)
    return load_model_file(path)


def is_ensemble_dir(path: str | Path) -> bool:
    return (Path(path) / ENSEMBLE_FILE).is_file()


def read_ensemble_spec(folder: str | Path) -> dict:
    """The checked ``ensemble.json`` of an ensemble folder."""
    path = Path(folder) / ENSEMBLE_FILE
    try:
        spec = read_json(path)
    except (OSError, ValueError) as e:
        raise ModelError(f"{path}: cannot read ensemble description: {e}") from e
    if not isinstance(spec, dict) or spec.get("format") != ENSEMBLE_FORMAT:
        raise ModelError(f"{path}: not a ferlab ensemble (expected format {ENSEMBLE_FORMAT!r})")
    return spec


def load_ensemble(folder: str | Path, method: str | None = None) -> Ensemble:
    """Load an ensemble folder (``method`` overrides the stored one).

    Raises:
        ModelError: ``ensemble.json`` is unreadable or names a member that is missing, outside
            the folder, or not a valid ferlab model.
    """
    folder = Path(folder)
    path = folder / ENSEMBLE_FILE
    spec = read_ensemble_spec(folder)
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
        members.append(load_any_model_file(p))
        sources.append(str(f))
    method = method or spec.get("method", "vote")
    ens = Ensemble(members, method, sources, spec.get("temperatures"), spec.get("tta"),
                   spec.get("temperature", 1.0))
    ens.meta = {"format": ENSEMBLE_FORMAT, "method": method, "folder": str(folder)}
    return ens.eval()


def fit_temperatures(member_logits: torch.Tensor, labels: torch.Tensor, steps: int = 200
                     ) -> list[float]:
    """Each member's temperature: the one that minimises its own negative log-likelihood on
    labelled faces (Guo et al. 2017, "On calibration of modern neural networks").

    Args:
        member_logits: ``[M, N, 7]`` logits (log-probabilities will do) of each member.
        labels: ``[N]`` true classes.

    Example:
        >>> y = torch.tensor([0, 1, 0, 1])
        >>> shy = torch.tensor([[[.2, -.2], [-.2, .2], [.2, -.2], [-.2, .2]]])  # right, unsure
        >>> fit_temperatures(shy, y)[0] < 0.1
        True
    """
    logits = member_logits.detach().float()
    log_t = torch.zeros(len(logits), requires_grad=True)
    opt = torch.optim.LBFGS([log_t], lr=0.5, max_iter=steps, line_search_fn="strong_wolfe")
    y = labels.long()

    def closure():
        opt.zero_grad()
        scaled = logits / log_t.exp()[:, None, None]
        loss = sum(nn.functional.cross_entropy(s, y) for s in scaled)
        loss.backward()
        return loss

    opt.step(closure)
    # A member that is right everywhere has no finite best temperature: keep it in a sane range.
    return [round(float(t), 4) for t in log_t.detach().exp().clamp(0.05, 20.0)]


def calibrate(ensemble: Ensemble, images: torch.Tensor | np.ndarray, labels: np.ndarray, *,
              tta: str | None = None, precision: str = "auto", progress: bool = False,
              output: bool = False) -> dict:
    """Fit each member's temperature on labelled faces (in place) and record ``tta``.

    Each member is scored once, with ``tta``, and gets the temperature that minimises its
    negative log-likelihood there (:func:`fit_temperatures`). With ``output``, the members keep
    theirs and the ensemble's own :attr:`Ensemble.temperature` is fitted instead, on the
    combined probabilities: every label stays. Returns the temperatures and the ensemble's
    accuracy before and after, on those same faces.
    """
    from .inference import predict_probs  # inference does not need ensembles; no cycle

    y = torch.as_tensor(np.asarray(labels)).long()
    probs = torch.stack([predict_probs(m, images, tta=tta, precision=precision,
                                       progress=progress) for m in ensemble.members])
    logp = probs.clamp_min(1e-12).log()

    def combined(temps: Sequence[float]) -> torch.Tensor:
        scaled = torch.stack([(lp / t).softmax(1) for lp, t in zip(logp, temps, strict=True)])
        return combine(scaled, ensemble.method)

    def accuracy(temps: Sequence[float]) -> float:
        return (combined(temps).argmax(1) == y).float().mean().item()

    before = accuracy(ensemble.temperatures)
    if output:
        mixed = combined(ensemble.temperatures).clamp_min(1e-12).log()
        ensemble.temperature = fit_temperatures(mixed[None], y)[0]
    else:
        ensemble.temperatures = fit_temperatures(logp, y)
    ensemble.tta = tta
    return {"temperatures": ensemble.temperatures, "temperature": ensemble.temperature,
            "accuracy_before": before,
            "accuracy_after": accuracy(ensemble.temperatures),
            "member_accuracy": [(p.argmax(1) == y).float().mean().item() for p in probs]}


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
