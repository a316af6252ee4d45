"""Run folders in, one self-contained HTML page out: the whole analysis of a model.

The page follows the seed course reports: data, models, training, results, mistakes,
explanations, ensembles and augmentation. Every figure is a PNG inlined as a ``data:`` URI and the
CSS is inlined too, so the file opens offline, can be mailed, reads on a phone and prints.
Observations are sentences filled with numbers computed here (see :mod:`ferlab.report_text`).

Two layers:

* the page: :func:`render_page` ``(title, sections, lang) -> str`` and :func:`write_page`, with
  block helpers (:func:`para`, :func:`figure`, :func:`table`, ...) that other pages (``ferlab
  demo``) reuse, so every ferlab page looks the same;
* the report: :func:`build_report` / :func:`write_report`, which read run folders (and faces,
  with ``data``) and build the sections.

A section whose inputs are missing (no ``--data``, a run still without a model) says so in a short
note; errors in what is there are raised, never hidden.
"""

from __future__ import annotations

import base64
import datetime as _dt
import importlib.util
import io
import json
import math
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from .. import __version__
from ..constants import EMOTIONS, IMAGE_SIZE, NUM_CLASSES
from ..errors import FerlabError
from ..io_utils import read_json, write_text
from .text import check_lang, emotion, split_name, tr

TEMPLATES = Path(__file__).parent / "templates"
# How hard the explanations work: enough for pictures a person can read, seconds per model.
EFFORT = {"filter_steps": 64, "lime_samples": 256, "faces_per_class": 200}
SECTION_IDS = ("overview", "data", "models", "training", "results", "mistakes", "explanations",
               "ensembles", "augmentation")

# --------------------------------------------------------------------------------------------
# The page: blocks, sections, rendering. Blocks are plain dicts so that any caller can make them.

Block = dict[str, Any]


@dataclass
class Section:
    """One ``<section>`` of a page: an anchor id, a heading and its blocks in order."""

    id: str
    title: str
    blocks: list[Block] = field(default_factory=list)

    def add(self, *blocks: Block | None) -> Section:
        self.blocks.extend(b for b in blocks if b is not None)
        return self


def h3(text: str) -> Block:
    return {"kind": "h3", "text": text}


def para(text: str) -> Block:
    return {"kind": "p", "text": text}


def note(text: str) -> Block:
    """A short highlighted remark: why a part of a section is missing, or what to be aware of."""
    return {"kind": "note", "text": text}


def observations(items: Sequence[str]) -> Block | None:
    """A bullet list of generated observations (``None`` when there are none)."""
    items = [s for s in items if s]
    return {"kind": "obs", "items": items} if items else None


def pre(text: str) -> Block:
    return {"kind": "pre", "text": text}


def png_bytes(source: bytes | str | Path | Any, dpi: int = 110) -> bytes:
    """PNG bytes of ``source``: PNG bytes, a PNG file, a PIL image or a matplotlib figure.

    A matplotlib figure is closed after it is drawn.
    """
    if isinstance(source, bytes):
        return source
    if isinstance(source, (str, Path)):
        return Path(source).read_bytes()
    if hasattr(source, "savefig"):
        import matplotlib.pyplot as plt

        buf = io.BytesIO()
        source.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
        plt.close(source)
        return buf.getvalue()
    if hasattr(source, "save"):  # a PIL image
        buf = io.BytesIO()
        source.save(buf, format="PNG")
        return buf.getvalue()
    raise TypeError(f"cannot make a PNG of {type(source).__name__}")


def png_data_uri(source: bytes | str | Path | Any) -> str:
    """``data:image/png;base64,...`` of ``source`` (see :func:`png_bytes`)."""
    return "data:image/png;base64," + base64.b64encode(png_bytes(source)).decode("ascii")


def figure(source: bytes | str | Path | Any, caption: str = "", alt: str = "",
           wide: bool = False) -> Block:
    """An inlined image with a caption. ``source`` as in :func:`png_bytes`.

    Example:
        >>> fig = plt.figure(); _ = plt.plot([1, 2])  # doctest: +SKIP
        >>> section.add(figure(fig, "a line"))  # doctest: +SKIP
    """
    data = png_bytes(source)
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise FerlabError(f"figure {caption or alt!r}: not a PNG image")
    # The PNG header holds the size; giving it to <img> keeps the layout still while loading.
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    return {"kind": "figure", "src": "data:image/png;base64," + base64.b64encode(data).decode(),
            "caption": caption, "alt": alt or caption, "wide": wide, "width": width,
            "height": height}


def figures(*figs: Block) -> Block:
    """Figures side by side (one column on a phone)."""
    return {"kind": "figures", "figures": list(figs)}


def table(header: Sequence[str], rows: Sequence[Sequence[Any]], caption: str = "") -> Block:
    """A table; the first cell of each row is its heading, numbers are right-aligned."""
    return {"kind": "table", "header": list(header), "rows": [list(r) for r in rows],
            "caption": caption}


def columns(*cols: Sequence[Block]) -> Block:
    """Blocks in columns side by side (stacked on a phone)."""
    return {"kind": "columns", "columns": [list(c) for c in cols]}


@lru_cache(maxsize=1)
def _environment():
    import jinja2

    return jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES)),
                              autoescape=True, trim_blocks=True, lstrip_blocks=True,
                              undefined=jinja2.StrictUndefined)


def render_page(title: str, sections: Sequence[Section], lang: str = "en", *,
                meta: Sequence[str] = (), footer: str | None = None) -> str:
    """One self-contained HTML page: the CSS inlined, images already inlined in the blocks.

    Args:
        title: page title and ``<h1>``.
        sections: the page's sections in order; a table of contents links them when there are
            two or more.
        lang: ``en`` or ``zh`` (the page's ``lang`` attribute and its fixed words).
        meta: short lines under the title (what the page was made from).
        footer: the footer line (default: which ferlab made the page, and when).

    Example:
        >>> s = Section("faces", "Faces").add(para("Two faces."), figure("faces.png"))
        >>> write_page("page.html", render_page("Demo", [s]))  # doctest: +SKIP
    """
    lang = check_lang(lang)
    ids = [s.id for s in sections]
    if len(set(ids)) != len(ids):
        raise ValueError(f"section ids must be unique, got {ids}")
    if footer is None:
        now = _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
        footer = tr(lang, "generated", version=__version__, date=now)
    from markupsafe import Markup

    # Our own stylesheet, trusted: escaping it would turn its quotes into entities, which CSS
    # inside <style> does not decode (the font list would be dropped).
    css = Markup((TEMPLATES / "report.css").read_text(encoding="utf-8"))
    return _environment().get_template("page.html.j2").render(
        title=title, sections=sections, lang="zh-CN" if lang == "zh" else lang, meta=list(meta),
        footer=footer, css=css, contents=tr(lang, "contents"), version=__version__)


def write_page(path: str | Path, html: str) -> Path:
    """Write ``html`` to ``path`` atomically (UTF-8)."""
    return write_text(path, html)


# --------------------------------------------------------------------------------------------
# Runs


@dataclass
class Run:
    """What a run folder says about itself (see :mod:`ferlab.training.loop`)."""

    path: Path
    info: dict  # config.json
    history: list[dict]
    metrics: dict | None  # metrics.json, written when training ends

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def config(self):
        from ..config import RunConfig

        return RunConfig.from_dict(self.info.get("config", {}))

    @property
    def has_model(self) -> bool:
        from ..runs import MODEL_FILE

        return (self.path / MODEL_FILE).exists()

    @property
    def epochs_planned(self) -> int:
        return self.config.train.epochs

    @property
    def finished(self) -> bool:
        return self.metrics is not None

    def best(self) -> tuple[int, float]:
        """(best epoch, best validation accuracy) from the history, as training chose them."""
        if not self.history:
            return 0, float("nan")
        h = max(self.history, key=lambda r: (r["val_acc"], -r["epoch"]))
        return h["epoch"], h["val_acc"]

    def seconds_per_epoch(self) -> float:
        if not self.history:
            return float("nan")
        return float(np.mean([r["seconds"] for r in self.history]))


def load_run(path: str | Path) -> Run:
    """Read a run folder written by ``ferlab train`` (finished or still training)."""
    from ..runs import read_history

    p = Path(path)
    if not p.is_dir():
        raise FerlabError(f"{p}: no such run folder")
    if not (p / "config.json").exists():
        raise FerlabError(f"{p}: not a run folder (no config.json); make one with ferlab train")
    try:
        info = read_json(p / "config.json")
        metrics = read_json(p / "metrics.json") if (p / "metrics.json").exists() else None
    except (OSError, json.JSONDecodeError) as e:
        raise FerlabError(f"{p}: cannot read run files: {e}") from e
    for name, obj in (("config.json", info), ("metrics.json", metrics)):
        if obj is not None and not isinstance(obj, dict):
            raise FerlabError(f"{p / name}: expected a JSON object, found {type(obj).__name__}")
    try:
        history = read_history(p)
    except (KeyError, ValueError) as e:
        raise FerlabError(f"{p / 'history.csv'}: malformed: {e}") from e
    return Run(path=p, info=info, history=history, metrics=metrics)


# --------------------------------------------------------------------------------------------
# Model anatomy


@contextmanager
def _forward_hooks(model, hook) -> Iterator[None]:
    """``hook`` on every leaf module, removed (and the train/eval mode restored) on exit."""
    handles = [m.register_forward_hook(hook(name)) for name, m in model.named_modules()
               if not list(m.children())]
    was_training = model.training
    try:
        yield
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)


def layer_table(model) -> list[tuple[str, str, str, int]]:
    """Rows ``(name, type, output shape, parameters)`` of every leaf layer, in forward order.

    Output shapes come from hooks on one dummy 48x48 face, so they are what the layers really
    produce. Shapes leave out the batch dimension.

    Example:
        >>> rows = layer_table(create_model("cnn-leaky"))
        >>> rows[0][:3]
        ('body.0.0', 'Conv2d', '32×48×48')
    """
    import torch

    rows: list[tuple[str, str, str, int]] = []

    def hook(name):
        def fn(m, _inp, out):
            shape = "×".join(str(s) for s in tuple(out.shape)[1:]) if hasattr(out, "shape") else ""
            n = sum(p.numel() for p in m.parameters(recurse=False))
            rows.append((name, type(m).__name__, shape, n))
        return fn

    with _forward_hooks(model, hook), torch.no_grad():
        model.eval()
        model(torch.zeros(1, 1, IMAGE_SIZE, IMAGE_SIZE))
    return rows


# --------------------------------------------------------------------------------------------
# Figures drawn here (the shared ones come from ferlab.plots and ferlab.evaluate)


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _colors(n: int) -> list:
    cmap = _plt().get_cmap("tab10")
    return [cmap(i % 10) for i in range(n)]


def class_count_figure(counts: dict[str, list[int]], lang: str = "en"):
    """Grouped bars: faces per class for each split."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7.5, 3.2))
    names = list(counts)
    width = 0.8 / max(1, len(names))
    x = np.arange(NUM_CLASSES)
    for i, (name, color) in enumerate(zip(names, _colors(len(names)), strict=True)):
        bars = ax.bar(x + (i - (len(names) - 1) / 2) * width, counts[name], width,
                      label=split_name(lang, name), color=color)
        ax.bar_label(bars, fmt="{:,.0f}", fontsize=6, padding=1)
    ax.set_xticks(x, [emotion(lang, c) for c in range(NUM_CLASSES)])
    ax.set_ylabel(tr(lang, "faces"))
    ax.spines[["top", "right"]].set_visible(False)
    ax.legend(frameon=False, fontsize=8)
    ax.set_title(tr(lang, "fig_faces_per_class"), fontsize=10)
    return fig


def overfitting_figure(run: Run, e0: int | None = None, e1: int | None = None,
                       lang: str = "en"):
    """Validation loss, validation accuracy and wrong-prediction confidence per epoch."""
    plt = _plt()
    h = run.history
    ep = [r["epoch"] for r in h]
    series = [("val_loss", tr(lang, "fig_val_loss")), ("val_acc", tr(lang, "fig_val_acc")),
              ("wrong_confidence", tr(lang, "fig_wrong_conf"))]
    fig, axes = plt.subplots(1, 3, figsize=(10, 2.8))
    for ax, (key, label), color in zip(axes, series, _colors(3), strict=True):
        ax.plot(ep, [r.get(key, float("nan")) for r in h], "-o", ms=2.5, color=color)
        if e0 is not None and e1 is not None:
            ax.axvspan(e0, e1, color="0.85", zorder=0)
        ax.set_title(label, fontsize=9)
        ax.set_xlabel(tr(lang, "fig_epoch"))
        ax.xaxis.set_major_locator(plt.MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.spines[["top", "right"]].set_visible(False)
    fig.suptitle(run.name, fontsize=10)
    fig.tight_layout()
    return fig


def recall_figure(names: Sequence[str], recalls: Sequence[Sequence[float]], lang: str = "en"):
    """Grouped bars of per-class recall, one colour per model."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7.5, 3.0))
    width = 0.8 / max(1, len(names))
    x = np.arange(NUM_CLASSES)
    for i, (name, rec, color) in enumerate(zip(names, recalls, _colors(len(names)),
                                               strict=True)):
        ax.bar(x + (i - (len(names) - 1) / 2) * width, rec, width, label=name, color=color)
    ax.set_xticks(x, [emotion(lang, c) for c in range(NUM_CLASSES)])
    ax.set_ylim(0, 1)
    ax.set_ylabel(tr(lang, "recall"))
    ax.grid(axis="y", alpha=0.3)
    ax.spines[["top", "right"]].set_visible(False)
    ax.legend(frameon=False, fontsize=8)
    return fig


def members_figure(ks: Sequence[int], mean_acc: Sequence[float], vote_acc: Sequence[float],
                   singles: Sequence[float], lang: str = "en"):
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 3.2))
    ax.plot(ks, mean_acc, "-o", label=tr(lang, "mean_prob"))
    ax.plot(ks, vote_acc, "-s", label=tr(lang, "vote"))
    ax.plot(range(1, len(singles) + 1), singles, "x", color="0.4",
            label=tr(lang, "fig_each_alone"))
    ax.set_xlabel(tr(lang, "fig_members"))
    ax.set_ylabel(tr(lang, "fig_accuracy"))
    ax.set_xticks(list(ks))
    ax.grid(alpha=0.3)
    ax.spines[["top", "right"]].set_visible(False)
    ax.legend(frameon=False, fontsize=8)
    return fig


def augmentation_figure(pairs: Sequence[tuple[Run, Run]], lang: str = "en"):
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.5, 3.2))
    for (with_aug, without), color in zip(pairs, _colors(len(pairs)), strict=True):
        for run, style, what in ((with_aug, "-", tr(lang, "fig_with")),
                                 (without, "--", tr(lang, "fig_without"))):
            ep = [r["epoch"] for r in run.history]
            ax.plot(ep, [r["val_acc"] for r in run.history], style, color=color,
                    label=f"{run.name} ({what})")
    ax.set_xlabel(tr(lang, "fig_epoch"))
    ax.set_ylabel(tr(lang, "fig_val_acc"))
    ax.xaxis.set_major_locator(plt.MaxNLocator(integer=True))
    ax.grid(alpha=0.3)
    ax.spines[["top", "right"]].set_visible(False)
    ax.legend(frameon=False, fontsize=8)
    return fig


# --------------------------------------------------------------------------------------------
# Numbers -> observations


def overfitting_episode(history: Sequence[dict]) -> dict | None:
    """Where validation loss rose past its minimum while validation accuracy still rose.

    Returns ``e0`` (epoch of the lowest validation loss) and ``e1`` (the later epoch of best
    validation accuracy, at least half a point above that at ``e0``, with a loss at least 2%
    higher), with loss, accuracy and
    wrong-prediction confidence at both; ``None`` when that never happened.

    Example:
        >>> h = [dict(epoch=1, val_loss=1.0, val_acc=.5, wrong_confidence=.5),
        ...      dict(epoch=2, val_loss=1.2, val_acc=.6, wrong_confidence=.7)]
        >>> overfitting_episode(h)["e1"]
        2
    """
    if len(history) < 2:
        return None
    i0 = int(np.argmin([r["val_loss"] for r in history]))
    # Only a rise worth a sentence: loss up by 2% or more while accuracy gains half a point.
    later = [j for j in range(i0 + 1, len(history))
             if history[j]["val_acc"] >= history[i0]["val_acc"] + 0.005
             and history[j]["val_loss"] >= history[i0]["val_loss"] * 1.02]
    if not later:
        return None
    i1 = max(later, key=lambda j: (history[j]["val_acc"], -j))
    a, b = history[i0], history[i1]
    return {"e0": a["epoch"], "e1": b["epoch"], "l0": a["val_loss"], "l1": b["val_loss"],
            "a0": a["val_acc"], "a1": b["val_acc"],
            "c0": a.get("wrong_confidence", float("nan")),
            "c1": b.get("wrong_confidence", float("nan"))}


def top_confusions(confusion: np.ndarray, k: int = 3) -> list[tuple[int, int, float]]:
    """The ``k`` largest off-diagonal row-normalised rates: ``(true, predicted, rate)``."""
    cm = np.asarray(confusion, dtype=np.float64)
    rows = cm.sum(1, keepdims=True)
    rate = np.divide(cm, rows, out=np.zeros_like(cm), where=rows > 0)
    np.fill_diagonal(rate, -1)
    flat = np.argsort(-rate, axis=None, kind="stable")[:k]
    return [(int(i // NUM_CLASSES), int(i % NUM_CLASSES), float(rate.flat[i])) for i in flat
            if rate.flat[i] > 0]


def vote(probs: np.ndarray) -> np.ndarray:
    """Majority vote of members' argmax ``[M, N, 7] -> [N]``; ties go to the higher mean
    probability (so one member alone votes its own argmax)."""
    votes = np.zeros(probs.shape[1:], dtype=np.float64)
    for p in probs:
        votes[np.arange(p.shape[0]), p.argmax(1)] += 1
    return (votes + probs.mean(0) * 1e-3).argmax(1)


# --------------------------------------------------------------------------------------------
# The report


def _pct(x: float) -> str:
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.1%}"


def _fmt_seconds(s: float) -> str:
    if math.isnan(s):
        return "–"
    if s < 120:
        return f"{s:.1f} s"
    if s < 7200:
        return f"{s / 60:.1f} min"
    return f"{s / 3600:.1f} h"


class _Report:
    """Builds the sections of one report. Each ``_section_*`` returns a Section."""

    def __init__(self, runs: Sequence[Run], compare: Sequence[Run], data: str | Path | None,
                 lang: str, progress: bool, tmp: Path, effort: dict[str, int],
                 log: Callable[[str], None] = lambda s: None, precision: str = "auto") -> None:
        self.runs, self.compare = list(runs), list(compare)
        self.all = self.runs + self.compare
        names = [r.name for r in self.all]
        if len(set(names)) != len(names):
            # Names label every table and figure; two runs with one name would be ambiguous.
            raise FerlabError(f"runs must have different folder names, got {names}")
        self.data, self.lang, self.progress, self.tmp = data, lang, progress, tmp
        self.log = log
        self.precision = precision  # of evaluation and LIME (ferlab.precision)
        from ..plots import figure_language

        self.flang = figure_language(lang)  # English where no font has Chinese glyphs
        self.effort = {**EFFORT, **effort}
        self.faces = None
        self.evaluations: dict[str, Any] = {}
        self.eval_paths: dict[str, dict[str, Path]] = {}
        self.eval_set = None
        self.eval_note = ""

    def t(self, key: str, **kw) -> str:
        return tr(self.lang, key, **kw)

    def e(self, c: int) -> str:
        return emotion(self.lang, c)

    # ----------------------------------------------------------------------------- inputs

    def load_faces(self) -> None:
        if self.data is None:
            return
        from ..data import load_faces

        self.faces = load_faces(self.data)
        if not self.faces.has_labels:
            raise FerlabError(f"{self.data}: faces have no labels; the report needs labelled "
                              "faces (fer2013.csv or train.csv)")

    def evaluate(self) -> None:
        """Score every run that has a model on the first run's validation faces."""
        if self.faces is None:
            return
        from ..data import make_split
        from ..evaluate import evaluate_model, write_evaluation
        from ..model_spec import load_model

        first = self.runs[0].config
        _, self.eval_set = make_split(self.faces, first.data.val_split, first.train.seed)
        split = self.eval_set.split_names()
        split_label = ", ".join(split_name(self.lang, s) for s in split) or "validation"
        self.eval_note = self.t("eval_on", n=len(self.eval_set), split=split_label,
                                run=self.runs[0].name)
        scored = [run for run in self.all if run.has_model]
        for i, run in enumerate(scored, 1):
            self.log(f"evaluating {run.name} on {len(self.eval_set):,} faces "
                     f"({i}/{len(scored)}) ...")
            ev = evaluate_model(load_model(run.path), self.eval_set, progress=self.progress,
                                precision=self.precision,
                                model_name=run.name, split="/".join(split))
            self.evaluations[run.name] = ev
            self.eval_paths[run.name] = write_evaluation(ev, self.tmp / "eval" / run.name)

    # ----------------------------------------------------------------------------- sections

    def section_overview(self) -> Section:
        s = Section("overview", self.t("overview"))
        rows = []
        for run in self.all:
            cfg = run.config
            epoch, acc = run.best()
            done = len(run.history)
            status = (self.t("finished") if run.finished else
                      self.t("in_progress", done=done, planned=run.epochs_planned))
            ev = self.evaluations.get(run.name)
            rows.append([run.name, cfg.model.name + (f" {json.dumps(cfg.model.kwargs)}"
                                                     if cfg.model.kwargs else ""),
                         status, _pct(acc), _pct(ev.accuracy) if ev else "–"])
        head = [self.t("run"), self.t("model"), self.t("status"), self.t("best_val_acc"),
                self.t("accuracy")]
        s.add(table(head, rows))
        if self.eval_note:
            s.add(para(self.eval_note))
        obs = []
        for run in self.runs:
            ev = self.evaluations.get(run.name)
            if ev is not None:
                obs.append(self.t("obs_acc", run=run.name, acc=ev.accuracy, n=len(ev.labels)))
                obs += [f"{run.name}: {line}"
                        for line in self.confusion_sentences(ev.metrics["confusion"], 1)]
        s.add(observations(obs))
        return s

    def section_data(self) -> Section:
        s = Section("data", self.t("data"))
        if self.faces is None:
            return s.add(note(self.t("no_data")))
        from ..plots import sample_grid

        faces = self.faces
        counts = faces.class_counts()
        splits = list(counts)
        head = [self.t("class")] + [split_name(self.lang, u) for u in splits] + [self.t("total")]
        rows = [[f"{c} {self.e(c)}"] + [f"{counts[u][c]:,}" for u in splits]
                + [f"{sum(counts[u][c] for u in splits):,}"] for c in range(NUM_CLASSES)]
        rows.append([self.t("total")] + [f"{sum(counts[u]):,}" for u in splits]
                    + [f"{len(faces):,}"])
        s.add(h3(self.t("class_counts")), para(str(faces.source)), table(head, rows),
              figure(class_count_figure(counts, self.flang), self.t("cap_counts")))
        main = "Training" if "Training" in counts else splits[0]
        c = np.asarray(counts[main])
        big, small = int(c.argmax()), int(c.argmin())
        obs = [self.t("obs_total", n=len(faces),
                      splits=", ".join(f"{split_name(self.lang, u)} {sum(counts[u]):,}"
                                       for u in splits))]
        if c[big] == c[small]:
            obs.append(self.t("obs_balanced", n=int(c[big]), split=split_name(self.lang, main)))
        elif c[small] > 0:
            obs.append(self.t("obs_largest", big=self.e(big), small=self.e(small),
                              nbig=int(c[big]), nsmall=int(c[small]),
                              split=split_name(self.lang, main), ratio=c[big] / c[small]))
        s.add(observations(obs))
        grid = sample_grid(faces, self.tmp / "faces.png", per_class=8, seed=0)
        s.add(h3(self.t("sample_faces")), figure(grid, self.t("cap_samples")))
        return s

    def section_models(self) -> Section:
        from ..models import create_model, describe_model, forward_mflops
        from ..models.registry import count_params

        s = Section("models", self.t("models"))
        rows, sizes = [], {}
        archs: dict[str, tuple[Any, list[str]]] = {}  # one layer table per architecture
        for run in self.all:
            cfg = run.config
            model = create_model(cfg.model.name, **cfg.model.kwargs)
            params, bn = count_params(model)
            sizes[run.name] = params
            epoch, acc = run.best()
            rows.append([run.name, cfg.model.name, describe_model(cfg.model.name),
                         f"{params:,}", f"{bn:,}", f"{forward_mflops(model):.1f}",
                         f"{run.seconds_per_epoch():.1f}" if run.history else "–", _pct(acc)])
            key = cfg.model.name + (f" {json.dumps(cfg.model.kwargs)}" if cfg.model.kwargs
                                    else "")
            archs.setdefault(key, (model, []))[1].append(run.name)
        tables = []
        for key, (model, users) in archs.items():
            layers = [[n, t, shape, f"{p:,}" if p else ""] for n, t, shape, p in
                      layer_table(model)]
            layers.append([self.t("total"), "", "", f"{count_params(model)[0]:,}"])
            tables.append([h3(self.t("layers_of", run=f"{key} ({', '.join(users)})")),
                           table([self.t("layer"), self.t("type"), self.t("output_shape"),
                                  self.t("params")], layers)])
        s.add(h3(self.t("model_summary")),
              table([self.t("run"), self.t("model"), self.t("description"), self.t("params"),
                     self.t("bn_stats"), self.t("mflops"), self.t("sec_epoch"),
                     self.t("best_val_acc")], rows))
        obs = []
        a = self.runs[0]
        for b in self.compare:
            if b.config.model == a.config.model:
                continue
            obs.append(self.t("obs_params", a=b.name, pa=sizes[b.name], b=a.name,
                              pb=sizes[a.name], ratio=sizes[b.name] / max(1, sizes[a.name])))
        timed = [r for r in self.all if r.history]
        if len(timed) >= 2:
            fast = min(timed, key=Run.seconds_per_epoch)
            slow = max(timed, key=Run.seconds_per_epoch)
            obs.append(self.t("obs_speed", fast=fast.name, sf=fast.seconds_per_epoch(),
                              slow=slow.name, ss=slow.seconds_per_epoch()))
        s.add(observations(obs))
        # Two models side by side (CNN against DNN), more than two one after the other.
        for i in range(0, len(tables), 2):
            pair = tables[i:i + 2]
            s.add(columns(*pair)) if len(pair) == 2 else s.add(*pair[0])
        return s

    def section_training(self) -> Section:
        s = Section("training", self.t("training"))
        runs = [r for r in self.all if r.history]
        for r in self.all:
            if not r.history:
                s.add(note(self.t("no_history", run=r.name)))
        if not runs:
            return s
        from ..plots import curves_figure

        words = {k: tr(self.flang, f"fig_{k}") for k in ("epoch", "loss", "accuracy", "train",
                                                         "val", "loss_title", "acc_title")}
        s.add(h3(self.t("curves")),
              figure(curves_figure([r.history for r in runs], [r.name for r in runs], words),
                     self.t("cap_curves")))
        rows, obs = [], []
        for run in runs:
            t = run.config.train
            epoch, acc = run.best()
            last = run.history[-1]
            gap = (last["train_acc"] - last["val_acc"]) * 100
            total = sum(r["seconds"] for r in run.history)
            stopped = bool(run.metrics and run.metrics.get("stopped_early"))
            es = (self.t("off") if not t.early_stopping else
                  self.t("stopped_at", epoch=len(run.history), patience=t.early_stopping)
                  if stopped else self.t("not_triggered", patience=t.early_stopping))
            rows.append([run.name, f"{len(run.history)} / {run.epochs_planned}",
                         f"{run.seconds_per_epoch():.1f}", _fmt_seconds(total), str(epoch),
                         _pct(acc), _pct(last["train_acc"]), f"{gap:.1f}", es])
            obs.append(self.t("obs_best", run=run.name, acc=acc, epoch=epoch,
                              epochs=len(run.history)))
            obs.append(self.t("obs_gap", run=run.name, train=last["train_acc"],
                              val=last["val_acc"], gap=gap))
            near = next(r["epoch"] for r in run.history if r["val_acc"] >= acc - 0.01)
            if near < epoch:
                obs.append(self.t("obs_plateau", run=run.name, epoch=near,
                                  gain=(acc - run.history[near - 1]["val_acc"]) * 100))
        s.add(h3(self.t("train_table")),
              table([self.t("run"), self.t("epochs"), self.t("sec_epoch"), self.t("train_time"),
                     self.t("best_epoch"), self.t("best_val_acc"), self.t("final_train_acc"),
                     self.t("gap"), self.t("early_stopping")], rows),
              observations(obs))
        # "Why validation loss rises while accuracy still rises" only where it does; a run
        # where it does not gets one line, and no run at all no sub-section.
        obs, figs, absent = [], [], []
        for run in runs:
            ep = overfitting_episode(run.history)
            if ep is None:
                if len(run.history) >= 3:
                    best_loss = min(run.history, key=lambda r: r["val_loss"])["epoch"]
                    absent.append(self.t("obs_no_overfit", run=run.name, e0=best_loss,
                                         e1=run.best()[0]))
                continue
            key = "obs_overfit" if ep["c1"] > ep["c0"] else "obs_overfit_noconf"
            obs.append(self.t(key, run=run.name, **ep))
            figs.append(figure(overfitting_figure(run, ep["e0"], ep["e1"], self.flang),
                               self.t("cap_overfit")))
        if figs:
            s.add(h3(self.t("overfitting")), observations(obs + absent), *figs)
        else:
            s.add(observations(absent))
        return s

    def confusion_sentences(self, confusion, k: int = 3) -> list[str]:
        """"fear is most often taken for sad: 22%", grouped by true class, biggest first."""
        groups: dict[int, list[tuple[int, float]]] = {}
        for true, pred, rate in top_confusions(np.asarray(confusion), k):
            groups.setdefault(true, []).append((pred, rate))
        out = []
        for true, preds in groups.items():
            (pred, rate), rest = preds[0], preds[1:]
            if rest:
                more = ", ".join(f"{self.e(p)} ({r:.0%})" for p, r in rest)
                out.append(self.t("obs_confused_more", true=self.e(true), pred=self.e(pred),
                                  rate=rate, more=more))
            else:
                out.append(self.t("obs_confused", true=self.e(true), pred=self.e(pred),
                                  rate=rate))
        return out

    def _need_evaluations(self, s: Section) -> bool:
        if self.faces is None:
            s.add(note(self.t("no_data")))
            return False
        for run in self.all:
            if not run.has_model:
                s.add(note(self.t("no_model", run=run.name)))
        return bool(self.evaluations)

    def section_results(self) -> Section:
        s = Section("results", self.t("results"))
        if not self._need_evaluations(s):
            return s
        s.add(para(self.eval_note))
        evs = self.evaluations
        rows = [[name, f"{len(ev.labels):,}", _pct(ev.accuracy), f"{ev.metrics['macro_f1']:.3f}",
                 f"{ev.metrics['nll']:.3f}", f"{ev.metrics['ece']:.3f}"]
                for name, ev in evs.items()]
        s.add(h3(self.t("accuracy_table")),
              table([self.t("run"), self.t("faces"), self.t("accuracy"), "macro F1", "NLL",
                     self.t("ece")], rows))
        obs = [self.t("obs_acc", run=n, acc=ev.accuracy, n=len(ev.labels))
               for n, ev in evs.items()]
        main = evs.get(self.runs[0].name)
        if main is not None:
            for run in self.compare:
                other = evs.get(run.name)
                if other is not None and main.accuracy >= other.accuracy:
                    obs.append(self.t("obs_beats", a=self.runs[0].name, b=run.name,
                                      d=(main.accuracy - other.accuracy) * 100,
                                      pa=main.accuracy, pb=other.accuracy))
                elif other is not None:
                    obs.append(self.t("obs_beats", a=run.name, b=self.runs[0].name,
                                      d=(other.accuracy - main.accuracy) * 100,
                                      pa=other.accuracy, pb=main.accuracy))
        s.add(observations(obs))

        s.add(h3(self.t("confusion")))
        s.add(figures(*[figure(self.eval_paths[n]["confusion_normalized"],
                               self.t("cap_confusion", run=n)) for n in evs]))
        obs = []
        for n, ev in evs.items():
            obs += [f"{n}: {line}" for line in self.confusion_sentences(ev.metrics["confusion"])]
        s.add(observations(obs))

        s.add(h3(self.t("per_class")))
        names = list(evs)
        recalls = [[ev.metrics["per_class"][e]["recall"] for e in EMOTIONS]
                   for ev in evs.values()]
        s.add(figure(recall_figure(names, recalls, self.flang), self.t("cap_per_class")))
        # The first model in full; the others by recall only, so the table fits a page.
        first_name, first = names[0], evs[names[0]]
        head = [self.t("class"), self.t("support"), f"{first_name} {self.t('precision')}",
                f"{first_name} {self.t('recall')}", f"{first_name} {self.t('f1')}"]
        head += [f"{n} {self.t('recall')}" for n in names[1:]]
        rows = []
        for c, e in enumerate(EMOTIONS):
            pc = first.metrics["per_class"][e]
            rows.append([f"{c} {self.e(c)}", f"{pc['support']:,}", f"{pc['precision']:.2f}",
                         f"{pc['recall']:.2f}", f"{pc['f1']:.2f}"]
                        + [f"{evs[n].metrics['per_class'][e]['recall']:.2f}" for n in names[1:]])
        s.add(table(head, rows))
        obs = []
        for n, rec in zip(names, recalls, strict=True):
            easy, hard = int(np.argmax(rec)), int(np.argmin(rec))
            obs.append(self.t("obs_easy_hard", run=n, easy=self.e(easy), re=rec[easy],
                              hard=self.e(hard), rh=rec[hard]))
        s.add(observations(obs))

        s.add(h3(self.t("calibration")))
        s.add(figures(*[figure(self.eval_paths[n]["reliability"],
                               self.t("cap_reliability", run=n)) for n in evs]))
        obs = []
        for n, ev in evs.items():
            conf = float(ev.probs.max(1).mean())
            key = ("obs_ece_ok" if abs(conf - ev.accuracy) < 0.01 else
                   "obs_ece_over" if conf > ev.accuracy else "obs_ece_under")
            obs.append(self.t(key, run=n, ece=ev.metrics["ece"], conf=conf, acc=ev.accuracy))
        s.add(observations(obs))
        return s

    def section_mistakes(self) -> Section:
        s = Section("mistakes", self.t("mistakes"))
        if not self._need_evaluations(s):
            return s
        obs = []
        for n, ev in self.evaluations.items():
            conf = ev.probs.max(1)
            wrong = ev.preds != ev.labels
            k = int((wrong & (conf > 0.9)).sum())
            obs.append(self.t("obs_mistakes", run=n, n=int(wrong.sum()), total=len(wrong), k=k,
                              share=k / max(1, int(wrong.sum()))))
        s.add(observations(obs))
        for n, ev in self.evaluations.items():
            if (ev.preds != ev.labels).any():  # a gallery of "no mistakes" rows says nothing
                s.add(figure(self.eval_paths[n]["mistakes"], self.t("cap_mistakes", run=n),
                             wide=True))
        return s

    def section_explanations(self) -> Section:
        s = Section("explanations", self.t("explanations"))
        if importlib.util.find_spec("ferlab.explain") is None:
            return s.add(note(self.t("not_available", what="ferlab.explain")))
        if self.faces is None:
            return s.add(note(self.t("no_data")))
        run = next((r for r in self.runs if r.name in self.evaluations), None)
        if run is None:
            return s.add(*[note(self.t("no_model", run=r.name)) for r in self.runs])
        from ..model_spec import load_model

        _Explanations(self, s, run, load_model(run.path)).build()
        return s

    def section_ensembles(self) -> Section:
        s = Section("ensembles", self.t("ensembles"))
        members = [r for r in self.runs if r.name in self.evaluations]
        if len(self.runs) < 2:
            return s.add(note(self.t("need_two")))
        if not self._need_evaluations(s) or len(members) < 2:
            return s
        labels = self.evaluations[members[0].name].labels
        probs = np.stack([self.evaluations[r.name].probs for r in members])
        ks = list(range(1, len(members) + 1))
        mean_acc = [float((probs[:k].mean(0).argmax(1) == labels).mean()) for k in ks]
        vote_acc = [float((vote(probs[:k]) == labels).mean()) for k in ks]
        singles = [float((p.argmax(1) == labels).mean()) for p in probs]
        s.add(h3(self.t("members")), para(self.eval_note))
        rows = [[str(k), _pct(m), _pct(v)] for k, m, v in zip(ks, mean_acc, vote_acc,
                                                             strict=True)]
        s.add(columns([table([self.t("members_n"), self.t("mean_prob"), self.t("vote")], rows)],
                      [figure(members_figure(ks, mean_acc, vote_acc, singles, self.flang),
                              self.t("cap_members"))]))
        s.add(observations([self.t("obs_members", a1=mean_acc[0], k=len(members),
                                   ak=mean_acc[-1], d=(mean_acc[-1] - mean_acc[0]) * 100,
                                   av=vote_acc[-1])]))
        return s

    def section_augmentation(self) -> Section:
        s = Section("augmentation", self.t("augmentation"))
        groups: dict[str, dict[bool, Run]] = {}
        for run in self.all:
            if not run.history:
                continue
            cfg = run.config
            key = cfg.model.name + json.dumps(cfg.model.kwargs, sort_keys=True)
            groups.setdefault(key, {}).setdefault(cfg.augment.enabled, run)
        pairs = [(g[True], g[False]) for g in groups.values() if len(g) == 2]
        if not pairs:
            return s.add(note(self.t("no_aug_pair")))
        obs, rows = [], []
        for w, o in pairs:
            gw = (w.history[-1]["train_acc"] - w.history[-1]["val_acc"]) * 100
            go = (o.history[-1]["train_acc"] - o.history[-1]["val_acc"]) * 100
            aw, ao = w.best()[1], o.best()[1]
            obs.append(self.t("obs_aug", model=w.config.model.name, aw=aw, ao=ao,
                              d=(aw - ao) * 100, gw=gw, go=go))
            for run, flag, gap in ((w, "yes", gw), (o, "no", go)):
                rows.append([run.name, self.t(flag), _pct(run.best()[1]),
                             _pct(run.history[-1]["train_acc"]), f"{gap:.1f}"])
        s.add(h3(self.t("with_without")),
              table([self.t("run"), self.t("augment"), self.t("best_val_acc"),
                     self.t("final_train_acc"), self.t("gap")], rows),
              figure(augmentation_figure(pairs, self.flang), self.t("cap_aug")), observations(obs))
        return s


class _Explanations:
    """The explanations section for one model: the seed reports' toolkit, plus its checks."""

    def __init__(self, rep: _Report, s: Section, run: Run, model) -> None:
        self.rep, self.s, self.run, self.model = rep, s, run, model
        self.t, self.e = rep.t, rep.e
        self.tmp = rep.tmp / "explain"
        self.faces = rep.eval_set

    def png(self, name: str) -> Path:
        return self.tmp / f"{name}.png"

    def build(self) -> None:
        from ..explain import conv_layers, get_explainer, select_faces
        from ..explain.figures import explanation_grid

        # captum warns that it switched on input gradients, which is what it is asked to do.
        warnings.filterwarnings("ignore", message="Input Tensor 0 did not already require",
                                category=UserWarning)
        s, model = self.s, self.model
        s.add(para(self.t("explained_model", run=self.run.name) + " " + self.rep.eval_note))
        convs = conv_layers(model)
        right = select_faces(model, self.faces, "random-correct", per_class=1, seed=0)
        x = right.inputs()
        maps: dict[str, Any] = {}
        log = self.rep.log

        log(f"  saliency maps of {len(right)} faces ...")
        s.add(h3(self.t("saliency")))
        if len(right):
            maps["saliency"] = get_explainer("saliency", model).attribute(x)
            s.add(figure(explanation_grid(right, maps["saliency"].numpy(), "saliency",
                                          self.png("saliency")),
                         self.t("cap_saliency", run=self.run.name), wide=True))
            s.add(observations(self.region_sentences(right, maps["saliency"].numpy())))
        s.add(*[note(n) for n in right.notes])

        if convs:
            self.filters(convs)
            self.feature_maps(right, convs[0])
            self.filter_emotion(convs)
        else:
            s.add(note(self.t("no_conv", run=self.run.name,
                              what=self.t("filters") + ", " + self.t("feature_maps") + ", "
                              + self.t("filter_emotion") + ", Grad-CAM")))

        s.add(h3(self.t("lime")))
        lime_n = self.rep.effort["lime_samples"]
        log(f"  LIME, {lime_n} samples per face, on right and wrong faces ...")
        if len(right):
            maps["lime"] = get_explainer("lime", model, seed=0, samples=lime_n,
                                         precision=self.rep.precision).attribute(x)
            s.add(figure(explanation_grid(right, maps["lime"].numpy(), "LIME",
                                          self.png("lime_right"), signed=True),
                         self.t("cap_lime_right"), wide=True))
        wrong = select_faces(model, self.faces, "confident-wrong", per_class=1)
        if len(wrong):
            wmaps = get_explainer("lime", model, seed=0, samples=lime_n,
                                  precision=self.rep.precision).attribute(
                wrong.inputs())
            s.add(figure(explanation_grid(wrong, wmaps.numpy(), "LIME", self.png("lime_wrong"),
                                          signed=True),
                         self.t("cap_lime_wrong"), wide=True))
        else:
            s.add(note(self.t("no_wrong", run=self.run.name)))

        if convs:
            s.add(h3(self.t("gradcam")))
            log("  Grad-CAM ...")
            if len(right):
                cam = get_explainer("gradcam", model)
                maps["gradcam"] = cam.attribute(x)
                s.add(figure(explanation_grid(right, maps["gradcam"].numpy(), "Grad-CAM",
                                              self.png("gradcam")),
                             self.t("cap_gradcam", layer=cam.layer_name), wide=True))
        if len(right):
            self.checks(x, maps)

    def region_sentences(self, sel, maps) -> list[str]:
        """Share of each map's mass in the lower third of the face (the mouth of an aligned
        FER2013 face) and in the eye band: the class that relies most on each."""
        m = np.abs(np.asarray(maps)).reshape(len(sel), IMAGE_SIZE, IMAGE_SIZE)
        total = m.sum((1, 2)) + 1e-12
        mouth = m[:, 32:, :].sum((1, 2)) / total
        eyes = m[:, 12:24, :].sum((1, 2)) / total
        out = []
        for share, key in ((mouth, "obs_mouth"), (eyes, "obs_eyes")):
            i = int(np.argmax(share))
            out.append(self.t(key, cls=self.e(int(sel.labels[i])), share=float(share[i]),
                              mean=float(share.mean())))
        return out

    def chosen_layers(self, convs: Sequence[str]) -> list[str]:
        """First, middle and last conv layer: how features grow from edges to parts."""
        idx = sorted({0, len(convs) // 2, len(convs) - 1})
        return [convs[i] for i in idx]

    def filters(self, convs: Sequence[str]) -> None:
        from ..explain import visualize_filters
        from ..explain.figures import filter_grid

        self.s.add(h3(self.t("filters")))
        obs = []
        for layer in self.chosen_layers(convs):
            self.rep.log(f"  filters of {layer} by gradient ascent "
                         f"({self.rep.effort['filter_steps']} steps) ...")
            res = visualize_filters(self.model, layer, filters=16,
                                    steps=self.rep.effort["filter_steps"],
                                    progress=self.rep.progress)
            self.s.add(figure(filter_grid(res, self.png(f"filters_{layer}")),
                              self.t("cap_filters", layer=layer, k=len(res.filters))))
            start, end = float(np.mean(res.start_activation)), float(np.mean(res.activation))
            obs.append(self.t("obs_filters", layer=layer, act=end, start=start))
        self.s.add(observations(obs))

    def feature_maps(self, sel, layer: str) -> None:
        from ..explain import feature_maps
        from ..explain.figures import feature_map_grid

        self.s.add(h3(self.t("feature_maps")))
        if not len(sel):
            return
        happy = np.flatnonzero(sel.labels == EMOTIONS.index("happy"))
        i = int(happy[0]) if len(happy) else 0
        fmap = feature_maps(self.model, sel.images[i], layer)
        self.s.add(figure(feature_map_grid(sel.images[i], fmap, layer, self.png("fmaps"),
                                           title=sel.title(i).replace("\n", ", ")),
                          self.t("cap_feature_maps", layer=layer,
                                 cls=self.e(int(sel.labels[i])))))

    def filter_emotion(self, convs: Sequence[str]) -> None:
        from ..explain import filter_emotion
        from ..explain.figures import filter_emotion_figure

        self.s.add(h3(self.t("filter_emotion")))
        layers = self.chosen_layers(convs)
        self.rep.log(f"  filter -> emotion table of {', '.join(layers)} ...")
        tables = [filter_emotion(self.model, self.faces, layer,
                                 max_per_class=self.rep.effort["faces_per_class"],
                                 progress=self.rep.progress) for layer in layers]
        # Seed report 004's Table 1: the first filters of each layer and their emotion.
        n = min(6, *(len(t.class_means) for t in tables))
        rows = [[f"{self.t('filter')} {f}"] + [f"{self.e(int(t.top[f]))} (z {t.zscore[f]:.1f})"
                                                for t in tables] for f in range(n)]
        self.s.add(table([self.t("filter")] + layers, rows, self.t("cap_filter_emotion_table")))
        self.s.add(figure(filter_emotion_figure(tables, self.png("filter_emotion")),
                          self.t("cap_filter_emotion")))
        obs = []
        for t in tables:
            counts = np.bincount(t.top, minlength=NUM_CLASSES)
            top = int(counts.argmax())
            obs.append(self.t("obs_filter_emotion", layer=t.layer, top=self.e(top),
                              n=int(counts[top]), total=len(t.top), z=float(t.zscore.mean())))
        self.s.add(observations(obs))

    def checks(self, x, maps: dict[str, Any]) -> None:
        from ..explain import compare_methods, randomization_check
        from ..explain.figures import deletion_insertion_figure

        self.rep.log(f"  deletion/insertion and randomisation checks of {', '.join(maps)} ...")
        self.s.add(h3(self.t("checks")), para(self.t("checks_intro")))
        res = compare_methods(self.model, x, methods=list(maps), maps=maps, steps=16)
        rand = res["random"].summary()
        rows, obs = [], []
        for name, r in res.items():
            sm = r.summary()
            rows.append([name, f"{sm['deletion']:.3f}", f"{sm['insertion']:.3f}",
                         f"{sm['insertion_minus_deletion']:+.3f}"])
            if name != "random":
                # Better than random only when both curves say so; mixed when they disagree.
                wins = (sm["deletion"] < rand["deletion"]) + (sm["insertion"] > rand["insertion"])
                key = ("obs_di_worse", "obs_di_mixed", "obs_di_better")[wins]
                obs.append(self.t(key, method=name,
                                  d=sm["deletion"], i=sm["insertion"], rd=rand["deletion"],
                                  ri=rand["insertion"]))
        self.s.add(table([self.t("method"), self.t("deletion"), self.t("insertion"),
                          self.t("difference")], rows))
        self.s.add(figure(deletion_insertion_figure(res, self.png("deletion")),
                          self.t("cap_deletion")))
        rows = []
        for name in [m for m in ("saliency", "gradcam") if m in maps]:
            r = randomization_check(name, self.model, x, cascade=False)[0]
            rows.append([name, f"{r['spearman']:.2f}", f"{r['ssim']:.2f}"])
            obs.append(self.t("obs_random_low" if r["spearman"] < 0.5 else "obs_random_high",
                              method=name, rho=r["spearman"], ssim=r["ssim"]))
        if rows:
            self.s.add(table([self.t("method"), "Spearman ρ", "SSIM"], rows,
                             self.t("cap_randomization")))
        self.s.add(observations(obs))


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
        effort: overrides of :data:`EFFORT` (gradient-ascent steps, LIME samples, faces per
            class for the filter-emotion table), e.g. smaller for tests.
        precision: ``auto``, ``fp32`` or ``bf16`` for the evaluations and LIME
            (:mod:`ferlab.precision`).

    Example:
        >>> html = build_report(["runs/cnn"], compare=["runs/dnn"], data="fer2013.csv")
        ... # doctest: +SKIP
    """
    lang = check_lang(lang)
    if not runs:
        raise FerlabError("report needs at least one run folder")
    main = [load_run(r) for r in runs]
    other = [load_run(r) for r in compare]
    with tempfile.TemporaryDirectory(prefix="ferlab-report-") as tmp:
        rep = _Report(main, other, data, lang, progress, Path(tmp), effort or {}, log,
                      precision)
        t0 = time.perf_counter()
        rep.load_faces()
        rep.evaluate()
        if data is not None:
            log(f"data and evaluation: {_fmt_seconds(time.perf_counter() - t0)}")
        from ..plots import figure_fonts

        sections = []
        # One line as each section starts (what it is doing) and one as it ends (how long it
        # took): the explanations of a large model alone can take minutes.
        for i, sid in enumerate(SECTION_IDS, 1):
            log(f"section {i}/{len(SECTION_IDS)}: {sid} ...")
            t0 = time.perf_counter()
            with figure_fonts(rep.flang):
                sections.append(getattr(rep, f"section_{sid}")())
            log(f"section {i}/{len(SECTION_IDS)}: {sid}: {len(sections[-1].blocks)} blocks in "
                f"{_fmt_seconds(time.perf_counter() - t0)}")
    names = ", ".join(r.name for r in main + other)
    meta = [tr(lang, "runs_line", runs=", ".join(str(r.path) for r in main + other))]
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
