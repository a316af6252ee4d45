"""Run folders in, one self-contained HTML page out: the whole analysis of a model.

The page follows the seed course reports: data, models, training, results, mistakes,
explanations, ensembles and augmentation (:data:`SECTIONS`, in that order). Observations are
sentences filled with numbers computed here (:mod:`ferlab.report.text`). A section whose inputs
are missing (no ``--data``, a run still without a model) says so in a short note; errors in what
is there are raised, never hidden.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from ..errors import FerlabError
from ..plots import figure_fonts
from .context import ReportContext
from .explanations import explanations_section
from .numbers import duration
from .page import Section, render_page, write_page
from .results import ensembles_section, mistakes_section, results_section
from .sections import (
    augmentation_section,
    data_section,
    models_section,
    overview_section,
    training_section,
)
from .text import check_lang, tr

# The report's sections in page order: anchor id -> what builds it.
SECTIONS: dict[str, Callable[[ReportContext], Section]] = {
    "overview": overview_section, "data": data_section, "models": models_section,
    "training": training_section, "results": results_section, "mistakes": mistakes_section,
    "explanations": explanations_section, "ensembles": ensembles_section,
    "augmentation": augmentation_section,
}
SECTION_IDS = tuple(SECTIONS)


def build_report(runs: Sequence[str | Path], compare: Sequence[str | Path] = (),
                 data: str | Path | None = None, lang: str = "en", *,
                 progress: bool = True, log: Callable[[str], None] = lambda s: None,
                 effort: dict[str, int] | None = None, precision: str = "auto") -> str:
    """The HTML of the report on ``runs`` (and ``compare``), as one self-contained string.

    Args:
        runs: run folders analysed in full; the first is the one explained, two or more also
            make an ensemble.
        compare: run folders shown beside them (models, curves, results), e.g. a DNN.
        data: a labelled data file (fer2013.csv); without it the data, results, mistakes and
            explanation sections hold a note instead.
        lang: ``en`` or ``zh``.
        progress: progress bars (plain progress lines when stderr is not a terminal).
        log: where a line goes as each step starts and ends: what the report is doing, and
            how long each section took (``ferlab report`` prints them on stderr).
        effort: overrides of :data:`~ferlab.report.context.EFFORT` (gradient-ascent steps,
            LIME samples, faces per class for the filter-emotion table), e.g. smaller for tests.
        precision: ``auto``, ``fp32`` or ``bf16`` for the evaluations and LIME
            (:mod:`ferlab.precision`).

    Raises:
        FerlabError: no run given, a folder is not a run, two runs share a name, or the data
            has no labels.

    Example:
        >>> html = build_report(["runs/cnn"], compare=["runs/dnn"], data="fer2013.csv")
        ... # doctest: +SKIP
    """
    lang = check_lang(lang)
    if not runs:
        raise FerlabError("report needs at least one run folder")
    with tempfile.TemporaryDirectory(prefix="ferlab-report-") as tmp:
        report = ReportContext(runs, compare, data, lang, work_dir=Path(tmp), effort=effort,
                               progress=progress, log=log, precision=precision)
        t0 = time.perf_counter()
        report.load_faces()
        report.evaluate()
        if data is not None:
            log(f"data and evaluation: {duration(time.perf_counter() - t0)}")
        sections = []
        # One line as each section starts (what it is doing) and one as it ends (how long it
        # took): the explanations of a large model alone can take minutes.
        for i, (sid, build_section) in enumerate(SECTIONS.items(), 1):
            log(f"section {i}/{len(SECTIONS)}: {sid} ...")
            t0 = time.perf_counter()
            with figure_fonts(report.figure_lang):
                sections.append(build_section(report))
            log(f"section {i}/{len(SECTIONS)}: {sid}: {len(sections[-1].blocks)} blocks in "
                f"{duration(time.perf_counter() - t0)}")
    names = ", ".join(r.name for r in report.all_runs)
    meta = [tr(lang, "runs_line", runs=", ".join(str(r.path) for r in report.all_runs))]
    if data is not None:
        meta.append(tr(lang, "data_line", data=str(data)))
    return render_page(tr(lang, "report_title", runs=names), sections, lang, meta=meta)


def write_report(out: str | Path, runs: Sequence[str | Path], compare: Sequence[str | Path] = (),
                 data: str | Path | None = None, lang: str = "en", *,
                 progress: bool = True, log: Callable[[str], None] = lambda s: None,
                 effort: dict[str, int] | None = None, precision: str = "auto") -> Path:
    """Build the report (see :func:`build_report`) and write it to ``out``.

    Example:
        >>> write_report("report.html", ["runs/cnn"], data="fer2013.csv")  # doctest: +SKIP
    """
    html = build_report(runs, compare, data, lang, progress=progress, log=log, effort=effort,
                        precision=precision)
    return write_page(out, html)
