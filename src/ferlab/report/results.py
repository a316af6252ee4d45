"""The report's sections built on evaluations: results, mistakes and ensembles.

Every run with a model was scored on the same validation faces
(:meth:`ferlab.report.context.ReportContext.evaluate`); these sections compare those scores.
"""

from __future__ import annotations

import numpy as np

from ..constants import EMOTIONS
from ..ensemble import accuracy_by_members
from .context import ReportContext
from .figures import members_figure, recall_figure
from .numbers import confusion_sentences, percent
from .page import Section, columns, figure, figures, h3, note, observations, para, table


def results_section(report: ReportContext) -> Section:
    """Accuracy, confusion, per-class scores and calibration of every evaluated run."""
    s = Section("results", report.text("results"))
    if not report.need_evaluations(s):
        return s
    s.add(para(report.eval_note))
    evs = report.evaluations
    rows = [[name, f"{len(ev.labels):,}", percent(ev.accuracy), f"{ev.metrics['macro_f1']:.3f}",
             f"{ev.metrics['nll']:.3f}", f"{ev.metrics['ece']:.3f}"]
            for name, ev in evs.items()]
    s.add(h3(report.text("accuracy_table")),
          table([report.text("run"), report.text("faces"), report.text("accuracy"), "macro F1",
                 "NLL", report.text("ece")], rows))
    s.add(observations(_accuracy_sentences(report)))

    s.add(h3(report.text("confusion")))
    s.add(figures(*[figure(report.eval_figures[n]["confusion_normalized"],
                           report.text("cap_confusion", run=n)) for n in evs]))
    obs = []
    for n, ev in evs.items():
        obs += [f"{n}: {line}"
                for line in confusion_sentences(report.lang, ev.metrics["confusion"])]
    s.add(observations(obs))

    _per_class(report, s)

    s.add(h3(report.text("calibration")))
    s.add(figures(*[figure(report.eval_figures[n]["reliability"],
                           report.text("cap_reliability", run=n)) for n in evs]))
    obs = []
    for n, ev in evs.items():
        conf = float(ev.probs.max(1).mean())
        key = ("obs_ece_ok" if abs(conf - ev.accuracy) < 0.01 else
               "obs_ece_over" if conf > ev.accuracy else "obs_ece_under")
        obs.append(report.text(key, run=n, ece=ev.metrics["ece"], conf=conf, acc=ev.accuracy))
    s.add(observations(obs))
    return s


def _accuracy_sentences(report: ReportContext) -> list[str]:
    """Each run's accuracy, and how the first run compares with each run beside it."""
    evs = report.evaluations
    obs = [report.text("obs_acc", run=n, acc=ev.accuracy, n=len(ev.labels))
           for n, ev in evs.items()]
    first = report.runs[0].name
    main = evs.get(first)
    if main is None:
        return obs
    for run in report.compare:
        other = evs.get(run.name)
        if other is None:
            continue
        # The better of the two is named first (the first run on a tie).
        if main.accuracy >= other.accuracy:
            (a, pa), (b, pb) = (first, main.accuracy), (run.name, other.accuracy)
        else:
            (a, pa), (b, pb) = (run.name, other.accuracy), (first, main.accuracy)
        obs.append(report.text("obs_beats", a=a, b=b, d=(pa - pb) * 100, pa=pa, pb=pb))
    return obs


def _per_class(report: ReportContext, s: Section) -> None:
    """Recall per class of every run; precision, recall and F1 of the first."""
    evs = report.evaluations
    s.add(h3(report.text("per_class")))
    names = list(evs)
    recalls = [[ev.metrics["per_class"][e]["recall"] for e in EMOTIONS] for ev in evs.values()]
    s.add(figure(recall_figure(names, recalls, report.figure_lang),
                 report.text("cap_per_class")))
    # The first model in full; the others by recall only, so the table fits a page.
    first_name, first = names[0], evs[names[0]]
    head = [report.text("class"), report.text("support"),
            f"{first_name} {report.text('precision')}", f"{first_name} {report.text('recall')}",
            f"{first_name} {report.text('f1')}"]
    head += [f"{n} {report.text('recall')}" for n in names[1:]]
    rows = []
    for c, e in enumerate(EMOTIONS):
        pc = first.metrics["per_class"][e]
        rows.append([f"{c} {report.emotion(c)}", f"{pc['support']:,}", f"{pc['precision']:.2f}",
                     f"{pc['recall']:.2f}", f"{pc['f1']:.2f}"]
                    + [f"{evs[n].metrics['per_class'][e]['recall']:.2f}" for n in names[1:]])
    s.add(table(head, rows))
    obs = []
    for n, rec in zip(names, recalls, strict=True):
        easy, hard = int(np.argmax(rec)), int(np.argmin(rec))
        obs.append(report.text("obs_easy_hard", run=n, easy=report.emotion(easy), re=rec[easy],
                               hard=report.emotion(hard), rh=rec[hard]))
    s.add(observations(obs))


def mistakes_section(report: ReportContext) -> Section:
    """How many mistakes are confident ones, and a gallery of the most confident."""
    s = Section("mistakes", report.text("mistakes"))
    if not report.need_evaluations(s):
        return s
    obs = []
    for n, ev in report.evaluations.items():
        conf = ev.probs.max(1)
        wrong = ev.preds != ev.labels
        k = int((wrong & (conf > 0.9)).sum())
        obs.append(report.text("obs_mistakes", run=n, n=int(wrong.sum()), total=len(wrong), k=k,
                               share=k / max(1, int(wrong.sum()))))
    s.add(observations(obs))
    for n, ev in report.evaluations.items():
        if (ev.preds != ev.labels).any():  # a gallery of "no mistakes" rows says nothing
            s.add(figure(report.eval_figures[n]["mistakes"],
                         report.text("cap_mistakes", run=n), wide=True))
    return s


def ensembles_section(report: ReportContext) -> Section:
    """Accuracy of the first k runs combined, by mean probability and by vote."""
    s = Section("ensembles", report.text("ensembles"))
    members = [r for r in report.runs if r.name in report.evaluations]
    if len(report.runs) < 2:
        return s.add(note(report.text("need_two")))
    if not report.need_evaluations(s) or len(members) < 2:
        return s
    labels = report.evaluations[members[0].name].labels
    probs = np.stack([report.evaluations[r.name].probs for r in members])
    by_members = accuracy_by_members(probs, labels)
    s.add(h3(report.text("members")), para(report.eval_note))
    rows = [[str(r["members"]), percent(r["mean_acc"]), percent(r["vote_acc"])]
            for r in by_members]
    s.add(columns([table([report.text("members_n"), report.text("mean_prob"),
                          report.text("vote")], rows)],
                  [figure(members_figure(by_members, report.figure_lang),
                          report.text("cap_members"))]))
    one, every = by_members[0], by_members[-1]
    s.add(observations([report.text("obs_members", a1=one["mean_acc"], k=len(members),
                                    ak=every["mean_acc"],
                                    d=(every["mean_acc"] - one["mean_acc"]) * 100,
                                    av=every["vote_acc"])]))
    return s
