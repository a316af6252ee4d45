"""The report's explanations section: the seed reports' toolkit on one model, plus its checks.

Saliency maps, gradient-ascent filter images, feature maps, the filter -> emotion table, LIME on
right and wrong faces and Grad-CAM, then deletion/insertion curves against a random map and the
model-randomisation check, each with sentences computed from the maps.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from ..constants import EMOTIONS, IMAGE_SIZE, NUM_CLASSES
from ..explain import (
    Selection,
    compare_methods,
    conv_layers,
    feature_maps,
    filter_emotion,
    get_explainer,
    randomization_check,
    select_faces,
    visualize_filters,
)
from ..explain.figures import (
    deletion_insertion_figure,
    explanation_grid,
    feature_map_grid,
    filter_emotion_figure,
    filter_grid,
)
from ..model_spec import load_model
from ..runs import RunFolder
from .context import ReportContext
from .page import Section, figure, h3, note, observations, para, table


def explanations_section(report: ReportContext) -> Section:
    """The explanations of the first main run that has a model (a note where none has)."""
    s = Section("explanations", report.text("explanations"))
    if report.faces is None:
        return s.add(note(report.text("no_data")))
    run = next((r for r in report.runs if r.name in report.evaluations), None)
    if run is None:
        return s.add(*[note(report.text("no_model", run=r.name)) for r in report.runs])
    # captum warns that it switched on input gradients, which is what it is asked to do.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Input Tensor 0 did not already require",
                                category=UserWarning)
        Explanations(report, s, run, load_model(run.path)).build()
    return s


class Explanations:
    """Builds the explanations of one model into one section.

    Attributes:
        report: the report's inputs (its validation faces are the ones explained).
        section: where the blocks go.
        run: the run explained; model: its loaded model.
    """

    def __init__(self, report: ReportContext, section: Section, run: RunFolder,
                 model: nn.Module) -> None:
        self.report, self.section, self.run, self.model = report, section, run, model
        self.faces = report.eval_set
        self.text, self.emotion, self.log = report.text, report.emotion, report.log
        self.effort = report.effort
        self.figure_dir = report.work_dir / "explain"

    def png(self, name: str) -> Path:
        return self.figure_dir / f"{name}.png"

    def build(self) -> None:
        s, model = self.section, self.model
        s.add(para(self.text("explained_model", run=self.run.name) + " " + self.report.eval_note))
        convs = conv_layers(model)
        right = select_faces(model, self.faces, "random-correct", per_class=1, seed=0)
        x = right.inputs()
        maps: dict[str, Any] = {}

        self.log(f"  saliency maps of {len(right)} faces ...")
        s.add(h3(self.text("saliency")))
        if len(right):
            maps["saliency"] = get_explainer("saliency", model).attribute(x)
            s.add(figure(explanation_grid(right, maps["saliency"].numpy(), "saliency",
                                          self.png("saliency")),
                         self.text("cap_saliency", run=self.run.name), wide=True))
            s.add(observations(self.region_sentences(right, maps["saliency"].numpy())))
        s.add(*[note(n) for n in right.notes])

        if convs:
            self.filters(convs)
            self.feature_maps(right, convs[0])
            self.filter_emotion(convs)
        else:
            s.add(note(self.text("no_conv", run=self.run.name,
                                 what=self.text("filters") + ", " + self.text("feature_maps")
                                 + ", " + self.text("filter_emotion") + ", Grad-CAM")))

        s.add(h3(self.text("lime")))
        samples = self.effort["lime_samples"]
        self.log(f"  LIME, {samples} samples per face, on right and wrong faces ...")
        if len(right):
            maps["lime"] = self.lime().attribute(x)
            s.add(figure(explanation_grid(right, maps["lime"].numpy(), "LIME",
                                          self.png("lime_right"), signed=True),
                         self.text("cap_lime_right"), wide=True))
        wrong = select_faces(model, self.faces, "confident-wrong", per_class=1)
        if len(wrong):
            wrong_maps = self.lime().attribute(wrong.inputs())
            s.add(figure(explanation_grid(wrong, wrong_maps.numpy(), "LIME",
                                          self.png("lime_wrong"), signed=True),
                         self.text("cap_lime_wrong"), wide=True))
        else:
            s.add(note(self.text("no_wrong", run=self.run.name)))

        if convs:
            s.add(h3(self.text("gradcam")))
            self.log("  Grad-CAM ...")
            if len(right):
                cam = get_explainer("gradcam", model)
                maps["gradcam"] = cam.attribute(x)
                s.add(figure(explanation_grid(right, maps["gradcam"].numpy(), "Grad-CAM",
                                              self.png("gradcam")),
                             self.text("cap_gradcam", layer=cam.layer_name), wide=True))
        if len(right):
            self.checks(x, maps)

    def lime(self):
        """A LIME explainer with the report's sample count and precision (seed 0)."""
        return get_explainer("lime", self.model, seed=0, samples=self.effort["lime_samples"],
                             precision=self.report.precision)

    def region_sentences(self, faces: Selection, maps: np.ndarray) -> list[str]:
        """Share of each map's mass in the lower third of the face (the mouth of an aligned
        FER2013 face) and in the eye band: the class that relies most on each."""
        m = np.abs(np.asarray(maps)).reshape(len(faces), IMAGE_SIZE, IMAGE_SIZE)
        total = m.sum((1, 2)) + 1e-12
        mouth = m[:, 32:, :].sum((1, 2)) / total
        eyes = m[:, 12:24, :].sum((1, 2)) / total
        out = []
        for share, key in ((mouth, "obs_mouth"), (eyes, "obs_eyes")):
            i = int(np.argmax(share))
            out.append(self.text(key, cls=self.emotion(int(faces.labels[i])),
                                 share=float(share[i]), mean=float(share.mean())))
        return out

    @staticmethod
    def chosen_layers(convs: Sequence[str]) -> list[str]:
        """First, middle and last conv layer: how features grow from edges to parts."""
        idx = sorted({0, len(convs) // 2, len(convs) - 1})
        return [convs[i] for i in idx]

    def filters(self, convs: Sequence[str]) -> None:
        """Gradient-ascent images of 16 filters of each chosen layer."""
        self.section.add(h3(self.text("filters")))
        steps = self.effort["filter_steps"]
        obs = []
        for layer in self.chosen_layers(convs):
            self.log(f"  filters of {layer} by gradient ascent ({steps} steps) ...")
            res = visualize_filters(self.model, layer, filters=16, steps=steps,
                                    progress=self.report.progress)
            self.section.add(figure(filter_grid(res, self.png(f"filters_{layer}")),
                                    self.text("cap_filters", layer=layer, k=len(res.filters))))
            start, end = float(np.mean(res.start_activation)), float(np.mean(res.activation))
            obs.append(self.text("obs_filters", layer=layer, act=end, start=start))
        self.section.add(observations(obs))

    def feature_maps(self, faces: Selection, layer: str) -> None:
        """Every filter's output of ``layer`` for one face (a happy one where there is one)."""
        self.section.add(h3(self.text("feature_maps")))
        if not len(faces):
            return
        happy = np.flatnonzero(faces.labels == EMOTIONS.index("happy"))
        i = int(happy[0]) if len(happy) else 0
        fmap = feature_maps(self.model, faces.images[i], layer)
        self.section.add(figure(
            feature_map_grid(faces.images[i], fmap, layer, self.png("fmaps"),
                             title=faces.title(i).replace("\n", ", ")),
            self.text("cap_feature_maps", layer=layer, cls=self.emotion(int(faces.labels[i])))))

    def filter_emotion(self, convs: Sequence[str]) -> None:
        """Which emotion excites each filter of the chosen layers, as a table and a heatmap."""
        self.section.add(h3(self.text("filter_emotion")))
        layers = self.chosen_layers(convs)
        self.log(f"  filter -> emotion table of {', '.join(layers)} ...")
        tables = [filter_emotion(self.model, self.faces, layer,
                                 max_per_class=self.effort["faces_per_class"],
                                 progress=self.report.progress) for layer in layers]
        # Seed report 004's Table 1: the first filters of each layer and their emotion.
        n = min(6, *(len(t.class_means) for t in tables))
        rows = [[f"{self.text('filter')} {f}"]
                + [f"{self.emotion(int(t.top[f]))} (z {t.zscore[f]:.1f})" for t in tables]
                for f in range(n)]
        self.section.add(table([self.text("filter")] + layers, rows,
                               self.text("cap_filter_emotion_table")))
        self.section.add(figure(filter_emotion_figure(tables, self.png("filter_emotion")),
                                self.text("cap_filter_emotion")))
        obs = []
        for t in tables:
            counts = np.bincount(t.top, minlength=NUM_CLASSES)
            top = int(counts.argmax())
            obs.append(self.text("obs_filter_emotion", layer=t.layer, top=self.emotion(top),
                                 n=int(counts[top]), total=len(t.top), z=float(t.zscore.mean())))
        self.section.add(observations(obs))

    def checks(self, x, maps: dict[str, Any]) -> None:
        """Deletion/insertion against a random map, and the model-randomisation check."""
        self.log(f"  deletion/insertion and randomisation checks of {', '.join(maps)} ...")
        self.section.add(h3(self.text("checks")), para(self.text("checks_intro")))
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
                obs.append(self.text(key, method=name, d=sm["deletion"], i=sm["insertion"],
                                     rd=rand["deletion"], ri=rand["insertion"]))
        self.section.add(table([self.text("method"), self.text("deletion"),
                                self.text("insertion"), self.text("difference")], rows))
        self.section.add(figure(deletion_insertion_figure(res, self.png("deletion")),
                                self.text("cap_deletion")))
        rows = []
        for name in [m for m in ("saliency", "gradcam") if m in maps]:
            r = randomization_check(name, self.model, x, cascade=False)[0]
            rows.append([name, f"{r['spearman']:.2f}", f"{r['ssim']:.2f}"])
            obs.append(self.text("obs_random_low" if r["spearman"] < 0.5 else "obs_random_high",
                                 method=name, rho=r["spearman"], ssim=r["ssim"]))
        if rows:
            self.section.add(table([self.text("method"), "Spearman ρ", "SSIM"], rows,
                                   self.text("cap_randomization")))
        self.section.add(observations(obs))
