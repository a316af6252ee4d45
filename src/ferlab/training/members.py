"""Training several members of an ensemble (seed report 002): each a normal run folder, trained
one after the other or in parallel processes, then scored together against their number.

Example:
    >>> train_members(cfg, "runs/cnn-x5", 5, split_seeds=True, jobs=2)  # doctest: +SKIP
"""

from __future__ import annotations

import csv
import dataclasses
import io
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ..constants import EMOTIONS
from ..data import FaceSet, load_faces, make_split, select_split
from ..ensemble import ENSEMBLE_FILE, ENSEMBLE_FORMAT, accuracy_by_members
from ..errors import ConfigError
from ..io_utils import write_json, write_text
from ..model_spec import load_model
from ..predict import predict_faces
from ..runs import RunFolder
from .loop import train
from .parallel import train_in_parallel


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
    if n < 1:
        raise ConfigError(f"--members must be at least 1, got {n}")
    if jobs < 1:
        raise ConfigError(f"--jobs must be at least 1, got {jobs}")
    out = Path(out_dir)
    runs = [RunFolder(out / f"member-{i:02d}") for i in range(n)]
    if (out.exists() and any(out.iterdir()) and not force
            and not any(RunFolder(p).is_run for p in out.glob("member-*"))):
        raise ConfigError(f"{out}: folder already holds files that are not ensemble members; "
                          "use --force or another --out")
    faces = data if data is not None else load_faces(cfg.data.path,
                                                     skip_bad_rows=cfg.data.skip_bad_rows)
    base = cfg.train.seed
    own_split = f"stratified:{val_fraction}"  # each member's, with split_seeds
    if split_seeds:
        pool, holdout = _held_out(faces, own_split, base)
    else:
        shared = make_split(faces, cfg.data.val_split, base)
        holdout = shared[1]
    pending = []
    for i, run in enumerate(runs):
        mcfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, seed=base + i))
        split = make_split(pool, own_split, base + i) if split_seeds else shared
        if cfg.data.limit:
            split = (split[0].subset(slice(0, cfg.data.limit)), split[1])
        if run.is_finished and not force:
            log(f"member {i + 1}/{n}: {run.path} is finished; kept")
        else:
            pending.append(_Member(i, n, run.path, mcfg, split, force))
    if jobs > 1 and len(pending) > 1:
        train_in_parallel(pending, jobs, log)
    else:
        for member in pending:
            member.train(progress=progress, log=log)
    member_probs = [predict_faces(load_model(run.path), holdout, progress=progress)
                    for run in runs]
    files = [run.model_path.relative_to(out).as_posix() for run in runs]
    write_json(out / ENSEMBLE_FILE, {
        "format": ENSEMBLE_FORMAT, "method": method, "members": files,
        "sources": [run.path.name for run in runs], "classes": list(EMOTIONS),
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


def _held_out(faces: FaceSet, spec: str, seed: int) -> tuple[FaceSet, FaceSet]:
    """The pool the members split, and the faces every member is scored on: the file's test
    rows where it has training rows beside them, else a seeded ``spec`` split put aside."""
    names = faces.split_names()
    if "Training" in names and len(names) > 1:
        return select_split(faces, "Training"), select_split(faces, "test")
    return make_split(faces, spec, seed)


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
        i, n, run = self.index, self.of, self.run
        if RunFolder(run).has_checkpoint and not self.force:
            log(f"member {i + 1}/{n}: resuming {run}")
            train(None, run, resume=True, progress=progress, log=log, data=self.split)
        else:
            log(f"member {i + 1}/{n}: seed {self.cfg.train.seed} -> {run}")
            train(self.cfg, run, force=True, progress=progress, log=log, data=self.split)
