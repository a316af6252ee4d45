"""The run folder: the one place that knows what ``ferlab train`` writes and how to read it back.

A run folder holds ``config.json`` (the resolved config and where it ran, written first),
``history.csv`` (one row per finished epoch), ``checkpoint.pt`` (to resume), ``model.safetensors``
(the best epoch's weights) and ``metrics.json`` (written when training ends). Every stage that
reads or writes one (train, compare, report, ensemble members, the CLI) goes through
:class:`RunFolder`, so the layout and the best-epoch rule live here only.

Example:
    >>> run = RunFolder("runs/demo")
    >>> _ = run.write_history([{"epoch": 1, "seconds": 2.0, "train_loss": 1.0, "train_acc": 0.4,
    ...                     "val_loss": 1.1, "val_acc": 0.5, "lr": 0.01, "wrong_confidence": 0.3}])
    >>> run.best_epoch(), run.best_val_acc(), run.is_finished
    (1, 0.5, False)
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from .config import RunConfig
from .errors import DataError, FerlabError
from .io_utils import read_json, write_json, write_text

CONFIG_FILE = "config.json"
HISTORY_FILE = "history.csv"
CHECKPOINT_FILE = "checkpoint.pt"
MODEL_FILE = "model.safetensors"
METRICS_FILE = "metrics.json"
TEACHER_CACHE_FILE = "teacher-logits.safetensors"  # --teacher-cache's answers, for --resume
HISTORY_COLUMNS = ["epoch", "seconds", "train_loss", "train_acc", "val_loss", "val_acc", "lr",
                   "wrong_confidence"]


def best_row(history: list[dict]) -> dict | None:
    """The history row of the best epoch: highest validation accuracy, the earliest on a tie
    (the epoch whose weights training kept in ``model.safetensors``)."""
    return max(history, key=lambda r: (r["val_acc"], -r["epoch"])) if history else None


class RunFolder:
    """A run folder's files, read on demand (a run still training can be read too).

    Attributes:
        path: the folder.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"RunFolder({str(self.path)!r})"

    @property
    def name(self) -> str:
        return self.path.name or str(self.path)

    # The files --------------------------------------------------------------------------------
    @property
    def config_path(self) -> Path:
        return self.path / CONFIG_FILE

    @property
    def history_path(self) -> Path:
        return self.path / HISTORY_FILE

    @property
    def checkpoint_path(self) -> Path:
        return self.path / CHECKPOINT_FILE

    @property
    def teacher_cache_path(self) -> Path:
        return self.path / TEACHER_CACHE_FILE

    @property
    def model_path(self) -> Path:
        return self.path / MODEL_FILE

    @property
    def metrics_path(self) -> Path:
        return self.path / METRICS_FILE

    @property
    def is_run(self) -> bool:
        """Whether training has started here (``config.json`` exists)."""
        return self.config_path.is_file()

    @property
    def has_model(self) -> bool:
        return self.model_path.exists()

    @property
    def has_checkpoint(self) -> bool:
        return self.checkpoint_path.exists()

    @property
    def is_finished(self) -> bool:
        return self.metrics_path.exists()

    def output_files(self) -> tuple[Path, ...]:
        """What a fresh run replaces (``config.json`` is rewritten, not listed)."""
        return (self.checkpoint_path, self.model_path, self.history_path, self.metrics_path)

    # Reading ---------------------------------------------------------------------------------
    def require(self) -> RunFolder:
        """``self``, once checked to be a run folder.

        Raises:
            FerlabError: no such folder, or no ``config.json`` in it.
        """
        if not self.path.is_dir():
            raise FerlabError(f"{self.path}: no such run folder")
        if not self.is_run:
            raise FerlabError(f"{self.path}: not a run folder (no {CONFIG_FILE}); make one with "
                              "ferlab train")
        return self

    def info(self) -> dict:
        """``config.json`` as written by training: ``config``, ``params``, ``precision``, ..."""
        return self._read_object(self.config_path) if self.is_run else {}

    def config(self) -> RunConfig:
        """The run's resolved :class:`~ferlab.config.RunConfig`."""
        return RunConfig.from_dict(self.info().get("config", {}))

    def metrics(self) -> dict | None:
        """``metrics.json`` (written when training ends), or None while it runs."""
        return self._read_object(self.metrics_path) if self.is_finished else None

    def history(self) -> list[dict]:
        """``history.csv`` as a list of dicts with numbers (empty before the first epoch)."""
        path = self.history_path
        if not path.exists():
            return []
        try:
            with open(path, encoding="utf-8") as f:
                return [{k: (int(v) if k == "epoch" else float(v)) for k, v in r.items()}
                        for r in csv.DictReader(f)]
        except (UnicodeDecodeError, ValueError, TypeError, csv.Error) as e:
            raise DataError(f"{path}: malformed history (expected numbers under "
                            f"{','.join(HISTORY_COLUMNS)}): {e}") from e

    def best_epoch(self) -> int:
        """The epoch whose weights are in ``model.safetensors`` (0 before the first)."""
        row = best_row(self.history())
        return row["epoch"] if row else 0

    def best_val_acc(self) -> float:
        row = best_row(self.history())
        return row["val_acc"] if row else float("nan")

    # Writing (training does this, through these) -----------------------------------------------
    def write_info(self, info: dict) -> Path:
        return write_json(self.config_path, info)

    def write_history(self, rows: list[dict]) -> Path:
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=HISTORY_COLUMNS)
        w.writeheader()
        for r in rows:
            w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in r.items()})
        return write_text(self.history_path, buf.getvalue())

    def write_metrics(self, metrics: dict) -> Path:
        return write_json(self.metrics_path, metrics)

    def _read_object(self, path: Path) -> dict:
        try:
            obj = read_json(path)
        except (OSError, json.JSONDecodeError, UnicodeDecodeError) as e:
            raise FerlabError(f"{path}: cannot read run file: {e}") from e
        if not isinstance(obj, dict):
            raise FerlabError(f"{path}: expected a JSON object, found {type(obj).__name__}")
        return obj


def read_history(run_dir: str | Path) -> list[dict]:
    """``history.csv`` of a run as a list of dicts with numbers (:meth:`RunFolder.history`)."""
    return RunFolder(run_dir).history()
