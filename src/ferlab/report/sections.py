"""The report's sections that read the runs themselves: overview, data, models, training and
augmentation (the ones built on evaluations are in :mod:`ferlab.report.results`, the
explanations in :mod:`ferlab.report.explanations`).

Each ``*_section(report)`` takes the :class:`~ferlab.report.context.ReportContext` and returns
one :class:`~ferlab.report.page.Section`; where its inputs are missing it holds a note instead.
"""

from __future__ import annotations

import json

import numpy as np

from ..constants import NUM_CLASSES
from ..models import create_model, describe_model, forward_mflops
from ..models.registry import count_params
from ..plots import sample_grid
from ..runs import RunFolder
from .context import ReportContext
from .figures import augmentation_figure, class_count_figure, overfitting_figure, training_curves
from .layers import layer_table
from .numbers import (
    confusion_sentences,
    duration,
    final_gap,
    overfitting_episode,
    percent,
    seconds_per_epoch,
)
from .page import Section, columns, figure, h3, note, observations, para, table


def overview_section(report: ReportContext) -> Section:
    """Every run: its model, whether it finished, best validation and evaluated accuracy."""
    s = Section("overview", report.text("overview"))
    rows = []
    for run in report.all_runs:
        history = report.history(run)
        status = (report.text("finished") if report.metrics(run) is not None else
                  report.text("in_progress", done=len(history),
                              planned=report.config(run).train.epochs))
        ev = report.evaluations.get(run.name)
        rows.append([run.name, report.model_label(run), status, percent(report.best(run)[1]),
                     percent(ev.accuracy) if ev else "–"])
    head = [report.text("run"), report.text("model"), report.text("status"),
            report.text("best_val_acc"), report.text("accuracy")]
    s.add(table(head, rows))
    if report.eval_note:
        s.add(para(report.eval_note))
    obs = []
    for run in report.runs:
        ev = report.evaluations.get(run.name)
        if ev is not None:
            obs.append(report.text("obs_acc", run=run.name, acc=ev.accuracy, n=len(ev.labels)))
            obs += [f"{run.name}: {line}"
                    for line in confusion_sentences(report.lang, ev.metrics["confusion"], 1)]
    s.add(observations(obs))
    return s


def data_section(report: ReportContext) -> Section:
    """Faces per class and split, and a grid of sample faces."""
    s = Section("data", report.text("data"))
    faces = report.faces
    if faces is None:
        return s.add(note(report.text("no_data")))
    counts = faces.class_counts()
    splits = list(counts)
    head = ([report.text("class")] + [report.split(u) for u in splits]
            + [report.text("total")])
    rows = [[f"{c} {report.emotion(c)}"] + [f"{counts[u][c]:,}" for u in splits]
            + [f"{sum(counts[u][c] for u in splits):,}"] for c in range(NUM_CLASSES)]
    rows.append([report.text("total")] + [f"{sum(counts[u]):,}" for u in splits]
                + [f"{len(faces):,}"])
    s.add(h3(report.text("class_counts")), para(str(faces.source)), table(head, rows),
          figure(class_count_figure(counts, report.figure_lang), report.text("cap_counts")))
    main = "Training" if "Training" in counts else splits[0]
    c = np.asarray(counts[main])
    big, small = int(c.argmax()), int(c.argmin())
    obs = [report.text("obs_total", n=len(faces),
                       splits=", ".join(f"{report.split(u)} {sum(counts[u]):,}"
                                        for u in splits))]
    if c[big] == c[small]:
        obs.append(report.text("obs_balanced", n=int(c[big]), split=report.split(main)))
    elif c[small] > 0:
        obs.append(report.text("obs_largest", big=report.emotion(big),
                               small=report.emotion(small), nbig=int(c[big]),
                               nsmall=int(c[small]), split=report.split(main),
                               ratio=c[big] / c[small]))
    s.add(observations(obs))
    grid = sample_grid(faces, report.work_dir / "faces.png", per_class=8, seed=0)
    s.add(h3(report.text("sample_faces")), figure(grid, report.text("cap_samples")))
    return s


def models_section(report: ReportContext) -> Section:
    """A summary row per run and a layer table per architecture (two side by side)."""
    s = Section("models", report.text("models"))
    rows, sizes = [], {}
    archs: dict[str, tuple[object, list[str]]] = {}  # one layer table per architecture
    for run in report.all_runs:
        cfg = report.config(run)
        history = report.history(run)
        model = create_model(cfg.model.name, **cfg.model.kwargs)
        params, bn = count_params(model)
        sizes[run.name] = params
        rows.append([run.name, cfg.model.name, describe_model(cfg.model.name),
                     f"{params:,}", f"{bn:,}", f"{forward_mflops(model):.1f}",
                     f"{seconds_per_epoch(history):.1f}" if history else "–",
                     percent(report.best(run)[1])])
        archs.setdefault(report.model_label(run), (model, []))[1].append(run.name)
    tables = []
    for key, (model, users) in archs.items():
        layers = [[n, t, shape, f"{p:,}" if p else ""] for n, t, shape, p in
                  layer_table(model)]
        layers.append([report.text("total"), "", "", f"{count_params(model)[0]:,}"])
        tables.append([h3(report.text("layers_of", run=f"{key} ({', '.join(users)})")),
                       table([report.text("layer"), report.text("type"),
                              report.text("output_shape"), report.text("params")], layers)])
    s.add(h3(report.text("model_summary")),
          table([report.text(k) for k in ("run", "model", "description", "params", "bn_stats",
                                          "mflops", "sec_epoch", "best_val_acc")], rows))
    obs = []
    first = report.runs[0]
    for other in report.compare:
        if report.config(other).model == report.config(first).model:
            continue
        obs.append(report.text("obs_params", a=other.name, pa=sizes[other.name], b=first.name,
                               pb=sizes[first.name],
                               ratio=sizes[other.name] / max(1, sizes[first.name])))
    timed = [r for r in report.all_runs if report.history(r)]
    if len(timed) >= 2:
        speed = {r.name: seconds_per_epoch(report.history(r)) for r in timed}
        fast, slow = min(speed, key=speed.get), max(speed, key=speed.get)
        obs.append(report.text("obs_speed", fast=fast, sf=speed[fast], slow=slow,
                               ss=speed[slow]))
    s.add(observations(obs))
    # Two models side by side (CNN against DNN), more than two one after the other.
    for i in range(0, len(tables), 2):
        pair = tables[i:i + 2]
        s.add(columns(*pair)) if len(pair) == 2 else s.add(*pair[0])
    return s


def training_section(report: ReportContext) -> Section:
    """Curves, a table per run, and why validation loss rises where it does."""
    s = Section("training", report.text("training"))
    for run in report.all_runs:
        if not report.history(run):
            s.add(note(report.text("no_history", run=run.name)))
    runs = [r for r in report.all_runs if report.history(r)]
    if not runs:
        return s
    s.add(h3(report.text("curves")),
          figure(training_curves([(r.name, report.history(r)) for r in runs],
                                 report.figure_lang), report.text("cap_curves")))
    rows, obs = [], []
    for run in runs:
        rows.append(_training_row(report, run))
        obs += _training_sentences(report, run)
    s.add(h3(report.text("train_table")),
          table([report.text(k) for k in ("run", "epochs", "sec_epoch", "train_time",
                                           "best_epoch", "best_val_acc", "final_train_acc",
                                           "gap", "early_stopping")], rows),
          observations(obs))
    # "Why validation loss rises while accuracy still rises" only where it does; a run
    # where it does not gets one line, and no run at all no sub-section.
    obs, figs, absent = [], [], []
    for run in runs:
        history = report.history(run)
        episode = overfitting_episode(history)
        if episode is None:
            if len(history) >= 3:
                best_loss = min(history, key=lambda r: r["val_loss"])["epoch"]
                absent.append(report.text("obs_no_overfit", run=run.name, e0=best_loss,
                                          e1=report.best(run)[0]))
            continue
        key = "obs_overfit" if episode["c1"] > episode["c0"] else "obs_overfit_noconf"
        obs.append(report.text(key, run=run.name, **episode))
        figs.append(figure(overfitting_figure((run.name, history), episode["e0"], episode["e1"],
                                              report.figure_lang), report.text("cap_overfit")))
    if figs:
        s.add(h3(report.text("overfitting")), observations(obs + absent), *figs)
    else:
        s.add(observations(absent))
    return s


def _training_row(report: ReportContext, run: RunFolder) -> list[str]:
    """Epochs, time, best epoch, final gap and early stopping of one run."""
    train = report.config(run).train
    history = report.history(run)
    epoch, acc = report.best(run)
    metrics = report.metrics(run)
    stopped = bool(metrics and metrics.get("stopped_early"))
    early = (report.text("off") if not train.early_stopping else
             report.text("stopped_at", epoch=len(history), patience=train.early_stopping)
             if stopped else report.text("not_triggered", patience=train.early_stopping))
    return [run.name, f"{len(history)} / {train.epochs}", f"{seconds_per_epoch(history):.1f}",
            duration(sum(r["seconds"] for r in history)), str(epoch), percent(acc),
            percent(history[-1]["train_acc"]), f"{final_gap(history):.1f}", early]


def _training_sentences(report: ReportContext, run: RunFolder) -> list[str]:
    """Best epoch, final train-validation gap and, if any, where accuracy stopped rising."""
    history = report.history(run)
    epoch, acc = report.best(run)
    last = history[-1]
    out = [report.text("obs_best", run=run.name, acc=acc, epoch=epoch, epochs=len(history)),
           report.text("obs_gap", run=run.name, train=last["train_acc"], val=last["val_acc"],
                       gap=final_gap(history))]
    near = next(r["epoch"] for r in history if r["val_acc"] >= acc - 0.01)
    if near < epoch:
        out.append(report.text("obs_plateau", run=run.name, epoch=near,
                               gain=(acc - history[near - 1]["val_acc"]) * 100))
    return out


def augmentation_section(report: ReportContext) -> Section:
    """Runs of one model with and without augmentation, side by side."""
    s = Section("augmentation", report.text("augmentation"))
    groups: dict[str, dict[bool, RunFolder]] = {}
    for run in report.all_runs:
        if not report.history(run):
            continue
        cfg = report.config(run)
        key = cfg.model.name + json.dumps(cfg.model.kwargs, sort_keys=True)
        groups.setdefault(key, {}).setdefault(cfg.augment.enabled, run)
    pairs = [(g[True], g[False]) for g in groups.values() if len(g) == 2]
    if not pairs:
        return s.add(note(report.text("no_aug_pair")))
    obs, rows = [], []
    for with_aug, without in pairs:
        gap_with, gap_without = (final_gap(report.history(with_aug)),
                                 final_gap(report.history(without)))
        acc_with, acc_without = report.best(with_aug)[1], report.best(without)[1]
        obs.append(report.text("obs_aug", model=report.config(with_aug).model.name,
                               aw=acc_with, ao=acc_without, d=(acc_with - acc_without) * 100,
                               gw=gap_with, go=gap_without))
        for run, flag, gap in ((with_aug, "yes", gap_with), (without, "no", gap_without)):
            rows.append([run.name, report.text(flag), percent(report.best(run)[1]),
                         percent(report.history(run)[-1]["train_acc"]), f"{gap:.1f}"])
    named = [((w.name, report.history(w)), (o.name, report.history(o))) for w, o in pairs]
    s.add(h3(report.text("with_without")),
          table([report.text(k) for k in ("run", "augment", "best_val_acc", "final_train_acc",
                                           "gap")], rows),
          figure(augmentation_figure(named, report.figure_lang), report.text("cap_aug")),
          observations(obs))
    return s
