"""What every section of one report reads: the runs, the faces, their evaluations, the language.

:class:`ReportContext` reads each run folder once, through :class:`ferlab.runs.RunFolder`, so all
sections show the same epochs of a run that is still training, and a damaged folder fails before
any work starts. With ``data`` it loads the faces and scores every run that has a model on the
first run's validation faces; the sections then only arrange what is here.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ..config import RunConfig
from ..data import FaceSet, load_faces, make_split
from ..errors import FerlabError
from ..evaluate import Evaluation, evaluate_model, write_evaluation
from ..model_spec import load_model
from ..plots import figure_language
from ..runs import RunFolder, best_row
from .page import Section, note
from .text import emotion, split_name, tr

# How hard the explanations work: enough for pictures a person can read, seconds per model.
EFFORT = {"filter_steps": 64, "lime_samples": 256, "faces_per_class": 200}


class ReportContext:
    """The inputs of one report, read and evaluated once.

    Attributes:
        runs: the run folders analysed in full (the first is the one explained).
        compare: run folders shown beside them.
        all_runs: ``runs + compare``.
        lang: the page's language; ``figure_lang`` is the figures' (``en`` where no installed
            font has Chinese glyphs).
        faces: the labelled faces of ``data`` (None without it); ``eval_set`` their
            validation part, on which ``evaluations`` (run name -> Evaluation) were made, with
            their figures in ``eval_figures`` (run name -> figure name -> PNG path).
        eval_note: one sentence saying what the evaluations were made on.
        effort: :data:`EFFORT` with the caller's overrides.
        work_dir: a scratch folder for figures.
        log: where a progress line goes.
    """

    def __init__(self, runs: Sequence[str | Path], compare: Sequence[str | Path],
                 data: str | Path | None, lang: str, *, work_dir: Path,
                 effort: dict[str, int] | None = None, progress: bool = True,
                 log: Callable[[str], None] = lambda s: None, precision: str = "auto") -> None:
        self.runs = [RunFolder(r).require() for r in runs]
        self.compare = [RunFolder(r).require() for r in compare]
        self.all_runs = self.runs + self.compare
        names = [r.name for r in self.all_runs]
        if len(set(names)) != len(names):
            # Names label every table and figure; two runs with one name would be ambiguous.
            raise FerlabError(f"runs must have different folder names, got {names}")
        self._configs = {r.name: r.config() for r in self.all_runs}
        self._histories = {r.name: r.history() for r in self.all_runs}
        self._metrics = {r.name: r.metrics() for r in self.all_runs}
        self.data, self.lang, self.progress, self.log = data, lang, progress, log
        self.precision = precision  # of evaluation and LIME (ferlab.precision)
        self.figure_lang = figure_language(lang)
        self.effort = {**EFFORT, **(effort or {})}
        self.work_dir = work_dir
        self.faces: FaceSet | None = None
        self.eval_set: FaceSet | None = None
        self.eval_note = ""
        self.evaluations: dict[str, Evaluation] = {}
        self.eval_figures: dict[str, dict[str, Path]] = {}

    # Words ------------------------------------------------------------------------------------
    def text(self, key: str, **fields: Any) -> str:
        """The page's sentence ``key`` (:mod:`ferlab.report.text`) with ``fields`` filled in."""
        return tr(self.lang, key, **fields)

    def emotion(self, index: int) -> str:
        return emotion(self.lang, index)

    def split(self, name: str) -> str:
        return split_name(self.lang, name)

    # Runs, as read when the report started ----------------------------------------------------
    def config(self, run: RunFolder) -> RunConfig:
        return self._configs[run.name]

    def history(self, run: RunFolder) -> list[dict]:
        return self._histories[run.name]

    def metrics(self, run: RunFolder) -> dict | None:
        """``metrics.json``, or None while the run is still training."""
        return self._metrics[run.name]

    def best(self, run: RunFolder) -> tuple[int, float]:
        """(best epoch, its validation accuracy), as training chose them; (0, NaN) before the
        first epoch."""
        row = best_row(self.history(run))
        return (row["epoch"], row["val_acc"]) if row else (0, float("nan"))

    def model_label(self, run: RunFolder) -> str:
        """The run's model name with its arguments, e.g. ``dnn {"hidden": [64, 64]}``."""
        model = self.config(run).model
        return model.name + (f" {json.dumps(model.kwargs)}" if model.kwargs else "")

    # Faces and evaluations ---------------------------------------------------------------------
    def load_faces(self) -> None:
        """Read ``data`` (nothing without it).

        Raises:
            FerlabError: the faces have no labels.
        """
        if self.data is None:
            return
        self.faces = load_faces(self.data)
        if not self.faces.has_labels:
            raise FerlabError(f"{self.data}: faces have no labels; the report needs labelled "
                              "faces (fer2013.csv or train.csv)")

    def evaluate(self) -> None:
        """Score every run that has a model on the first run's validation faces."""
        if self.faces is None:
            return
        first = self.config(self.runs[0])
        _, self.eval_set = make_split(self.faces, first.data.val_split, first.train.seed)
        split = self.eval_set.split_names()
        split_label = ", ".join(self.split(s) for s in split) or "validation"
        self.eval_note = self.text("eval_on", n=len(self.eval_set), split=split_label,
                                   run=self.runs[0].name)
        scored = [run for run in self.all_runs if run.has_model]
        for i, run in enumerate(scored, 1):
            self.log(f"evaluating {run.name} on {len(self.eval_set):,} faces "
                     f"({i}/{len(scored)}) ...")
            ev = evaluate_model(load_model(run.path), self.eval_set, progress=self.progress,
                                precision=self.precision, model_name=run.name,
                                split="/".join(split))
            self.evaluations[run.name] = ev
            self.eval_figures[run.name] = write_evaluation(ev, self.work_dir / "eval" / run.name)

    def need_evaluations(self, section: Section) -> bool:
        """Whether there are evaluations to show; if not, or for runs without a model, a note
        in ``section`` says why."""
        if self.faces is None:
            section.add(note(self.text("no_data")))
            return False
        for run in self.all_runs:
            if not run.has_model:
                section.add(note(self.text("no_model", run=run.name)))
        return bool(self.evaluations)
