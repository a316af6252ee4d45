"""Several models as one: majority vote or mean probability (seed reports 002 and 004).

An :class:`Ensemble` is an ``nn.Module`` with the interface of every ferlab model (grey / 255
in, logits ``[N, 7]`` out), so evaluate, predict and explain take it unchanged. Its logits are
the log of the combined probabilities, so ``softmax`` gives them back:

* ``mean``: the average of the members' softmax probabilities.
* ``vote``: each member votes for its argmax; the output is the vote share, with ties broken by
  the mean probability (a tiny ``TIE_BREAK`` share of it is added before normalising).

On disk an ensemble is a folder: ``ensemble.json`` (format, method, member files relative to the
folder) and the members' safetensors files. ``load_model(folder)`` loads it.

:func:`train_members` trains N members that differ in seed and, optionally, in a seeded random
train/validation split, and reports accuracy against the number of members.
"""

from __future__ import annotations

import csv
import dataclasses
import io
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .constants import EMOTIONS
from .errors import ConfigError, ModelError
from .io_utils import read_json, write_json, write_text

METHODS = ("vote", "mean")
ENSEMBLE_FILE = "ensemble.json"
FORMAT = "ferlab-ensemble/1"
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
    from .model_io import save_model

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
    write_json(out / ENSEMBLE_FILE, {"format": FORMAT, "method": ensemble.method,
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
    from .model_io import load_model

    folder = Path(folder)
    path = folder / ENSEMBLE_FILE
    try:
        spec = read_json(path)
    except (OSError, ValueError) as e:
        raise ModelError(f"{path}: cannot read ensemble description: {e}") from e
    if not isinstance(spec, dict) or spec.get("format") != FORMAT:
        raise ModelError(f"{path}: not a ferlab ensemble (expected format {FORMAT!r})")
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
        members.append(load_model(p))
        sources.append(str(f))
    method = method or spec.get("method", "vote")
    ens = Ensemble(members, method, sources)
    ens.meta = {"format": FORMAT, "method": method, "folder": str(folder)}
    return ens.eval()


def build_ensemble(specs: Sequence[str | Path], method: str = "vote") -> Ensemble:
    """An ensemble of the models at ``specs`` (run folders, model files, ensemble folders).

    Example:
        >>> ens = build_ensemble(["runs/a", "runs/b", "runs/c"], "vote")  # doctest: +SKIP
        >>> save_ensemble(ens, "runs/abc")  # doctest: +SKIP
    """
    from .model_io import load_model

    if not specs:
        raise ModelError("an ensemble needs at least one member model")
    return Ensemble([load_model(s) for s in specs], method, [str(s) for s in specs]).eval()


# --------------------------------------------------------------------------------------------
# Training several members


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


def format_members_table(rows: list[dict]) -> str:
    lines = [f"{'members':>7}{'member k alone':>16}{'vote':>9}{'mean':>9}"]
    lines += [f"{r['members']:>7}{r['member_acc']:>16.4f}{r['vote_acc']:>9.4f}{r['mean_acc']:>9.4f}"
              for r in rows]
    return "\n".join(lines)


def train_members(cfg, out_dir: str | Path, n: int, *, split_seeds: bool = False,
                  val_fraction: float = 0.1, method: str = "vote", force: bool = False,
                  progress: bool = True, log: Callable[[str], None] = print,
                  data=None, jobs: int = 1) -> Path:
    """Train ``n`` members into ``out_dir`` and make ``out_dir`` an ensemble folder.

    Member ``i`` is a normal run folder ``out_dir/member-XX`` trained with seed
    ``cfg.train.seed + i``. Without ``split_seeds`` every member uses the run's own
    train/validation split; with it, each member validates on its own seeded stratified
    ``val_fraction`` of the training rows (seed report 002), and all are scored on a common
    held-out set: the file's test rows, or a fixed stratified ``val_fraction`` put aside first.

    Finished members are kept and an interrupted one is resumed when the command is run again
    (unless ``force``). Writes ``ensemble.json`` and ``members.csv`` (accuracy of the first k
    members, alone, by vote and by mean, on the held-out set).

    Args:
        cfg: the RunConfig every member starts from.
        data: a FaceSet instead of reading ``cfg.data.path`` (tests).
        jobs: members trained at once, each in its own process with its share of the torch
            threads (or its own GPU where several are visible); their epoch lines come
            through ``log``, prefixed with the member.

    Example:
        >>> train_members(cfg, "runs/cnn-x5", 5, split_seeds=True, jobs=2)  # doctest: +SKIP
    """
    from .data import load_faces, make_split, split_random
    from .model_io import load_model
    from .predict import predict_faces

    if n < 1:
        raise ConfigError(f"--members must be at least 1, got {n}")
    if jobs < 1:
        raise ConfigError(f"--jobs must be at least 1, got {jobs}")
    out = Path(out_dir)
    if (out.exists() and any(out.iterdir()) and not force
            and not any(out.glob("member-*/config.json"))):
        raise ConfigError(f"{out}: folder already holds files that are not ensemble members; "
                          "use --force or another --out")
    faces = data if data is not None else load_faces(cfg.data.path,
                                                     skip_bad_rows=cfg.data.skip_bad_rows)
    base = cfg.train.seed
    if split_seeds:
        is_test = faces.usage != "Training"
        if is_test.any() and not is_test.all():
            pool, holdout = faces.subset(~is_test), faces.subset(is_test)
        else:
            pool, holdout = split_random(faces, val_fraction, seed=base, stratify=True)
    else:
        shared = make_split(faces, cfg.data.val_split, base)
        holdout = shared[1]
    pending = []
    for i in range(n):
        run = out / f"member-{i:02d}"
        mcfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, seed=base + i))
        if split_seeds:
            split = split_random(pool, val_fraction, seed=base + i, stratify=True)
        else:
            split = shared
        if cfg.data.limit:
            split = (split[0].subset(slice(0, cfg.data.limit)), split[1])
        if (run / "metrics.json").exists() and not force:
            log(f"member {i + 1}/{n}: {run} is finished; kept")
        else:
            pending.append(_Member(i, n, run, mcfg, split, force))
    if jobs > 1 and len(pending) > 1:
        from .parallel_members import train_in_parallel

        train_in_parallel(pending, jobs, log)
    else:
        for member in pending:
            member.train(progress=progress, log=log)
    member_probs = [predict_faces(load_model(out / f"member-{i:02d}"), holdout,
                                  progress=progress) for i in range(n)]
    files = [f"member-{i:02d}/model.safetensors" for i in range(n)]
    write_json(out / ENSEMBLE_FILE, {
        "format": FORMAT, "method": method, "members": files,
        "sources": [f"member-{i:02d}" for i in range(n)], "classes": list(EMOTIONS),
        "split_seeds": split_seeds, "holdout_faces": len(holdout)})
    rows = accuracy_by_members(np.stack(member_probs), holdout.labels)
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
    w.writeheader()
    w.writerows({k: (f"{v:.6f}" if isinstance(v, float) else v) for k, v in r.items()}
                for r in rows)
    write_text(out / "members.csv", buf.getvalue())
    log(f"accuracy on {len(holdout):,} held-out faces against the number of members:")
    log(format_members_table(rows))
    return out


@dataclasses.dataclass
class _Member:
    """One member still to train (or to resume): everything a worker process needs."""

    index: int
    of: int
    run: Path
    cfg: object  # RunConfig
    split: tuple  # (train, validation) FaceSets
    force: bool

    def train(self, progress: bool, log: Callable[[str], None]) -> None:
        from .train import train

        i, n, run = self.index, self.of, self.run
        if (run / "checkpoint.pt").exists() and not self.force:
            log(f"member {i + 1}/{n}: resuming {run}")
            train(None, run, resume=True, progress=progress, log=log, data=self.split)
        else:
            log(f"member {i + 1}/{n}: seed {self.cfg.train.seed} -> {run}")
            train(self.cfg, run, force=True, progress=progress, log=log, data=self.split)
