"""Explanations find small evidence: on faces whose class lives in one small box (several positions
and sizes, mostly off-centre and away from a decoy mouth), every method but plain gradients puts
at least twice its chance share of mass in the box. Also: the ratio itself, the box faces, Grad-CAM
layer choice and fusion, LIME's precision, and what ``--check`` reports."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ferlab.cli import main
from ferlab.errors import ConfigError
from ferlab.explain import get_explainer, list_layers, list_methods
from ferlab.explain.base import default_cam_layers
from ferlab.explain.command import format_check, format_layers, random_verdict
from ferlab.explain.localisation import (
    box_test_faces,
    localisation_check,
    localisation_ratio,
    reference_model,
)
from ferlab.model_file import save_model
from ferlab.models import create_model
from ferlab.synthetic import EVIDENCE_BOXES, MOUTH_BOX, make_box_faces, write_fer2013_csv


@pytest.fixture(scope="session")
def box_model():
    """The reference model of ``ferlab.explain.localisation`` (4 epochs of 700 box faces)."""
    return reference_model()


@pytest.fixture(scope="session")
def box_faces(box_model):
    x, labels, boxes = box_test_faces()
    acc = float((box_model(x).argmax(1).numpy() == labels).mean())
    assert acc >= 0.95, f"reference model did not learn the box faces (accuracy {acc:.2f})"
    return x, labels, boxes


# --------------------------------------------------------------------------------------------
# The ratio and the faces


def test_localisation_ratio_by_hand():
    boxes = np.array([[0, 6, 0, 6]] * 4)
    maps = np.zeros((4, 48, 48))
    maps[0] = 1.0                   # spread evenly: chance
    maps[1, :6, :6] = 2.0           # all inside: 1 / (36 / 2304) = 64
    maps[2, :6, :6] = 1.0           # half the mass inside ...
    maps[2, 40:46, 40:46] = 1.0     # ... half outside: 32
    maps[2, 20:30, 20:30] = -5.0    # negative evidence is not mass
    np.testing.assert_allclose(localisation_ratio(maps, boxes), [1.0, 64.0, 32.0, 0.0])


def test_box_faces_carry_the_class_in_the_box_only():
    bf = make_box_faces(140, seed=2)
    f, boxes = bf.faces, bf.boxes
    assert np.bincount(f.labels).tolist() == [20] * 7
    kinds = {tuple(b) for b in boxes.tolist()}
    assert len(kinds) == len(EVIDENCE_BOXES) >= 4
    sides = {r1 - r0 for r0, r1, _, _ in kinds}
    assert len(sides) >= 3 and max(sides) * max(sides) / 48**2 < 0.07  # small: under 7 %
    m0, m1, c0, c1 = MOUTH_BOX
    away = [b for b in kinds if b[0] >= m1 or b[1] <= m0 or b[2] >= c1 or b[3] <= c0]
    assert len(away) == len(kinds)  # none overlaps the decoy mouth
    assert any(abs((b[0] + b[1]) / 2 - 24) > 12 and abs((b[2] + b[3]) / 2 - 24) > 12
               for b in kinds)  # corners too, not only the middle
    # same seed, same faces; the glyph differs between classes inside one box
    again = make_box_faces(140, seed=2)
    assert np.array_equal(again.faces.images, f.images) and np.array_equal(again.boxes, boxes)
    one = (boxes == boxes[0]).all(1)
    r0, r1, b0, b1 = boxes[0]
    means = [f.images[one & (f.labels == c)][:, r0:r1, b0:b1].mean(0) for c in range(7)]
    assert min(np.abs(means[a] - means[b]).max() for a in range(7) for b in range(a)) > 60


# --------------------------------------------------------------------------------------------
# Every method finds the box


# Thresholds per method, with the median ratio measured on this fixture beside each
# (`benchmarks/bench_localisation.py`, 35 faces, 1.0 = chance). Plain gradients (saliency,
# SmoothGrad) mark every stroke the logit is sensitive to, the decoy mouth included: they are only
# asked to beat chance.
@pytest.mark.parametrize("name, threshold", [
    ("saliency", 1.1),              # measured 1.53
    ("smoothgrad", 1.1),            # measured 1.36
    ("integrated-gradients", 2.0),  # measured 4.21
    ("gradcam", 4.0),               # measured 10.36 (4 layers fused); 0.34 with the paper's weights
    ("hirescam", 2.0),              # measured 2.63 on the 12x12 layer (1.77 on the 6x6 one)
    ("guided-gradcam", 4.0),        # measured 12.40
    ("occlusion", 3.0),             # measured 6.14
    ("lime", 3.0),                  # measured 6.55 (60 segments)
])
def test_every_method_puts_its_mass_in_the_small_box(name, threshold, box_model, box_faces):
    x, labels, boxes = box_faces
    ratio = localisation_ratio(
        get_explainer(name, box_model).attribute(x, torch.from_numpy(labels)), boxes)
    assert np.median(ratio) >= threshold, (name, np.round(ratio, 2).tolist())


def test_every_method_is_in_the_localisation_table():
    # A new method must get a threshold above.
    assert set(list_methods()) == {"saliency", "smoothgrad", "integrated-gradients", "gradcam",
                                   "hirescam", "guided-gradcam", "occlusion", "lime"}


# --------------------------------------------------------------------------------------------
# Grad-CAM: layers by resolution, fusion, weights


def test_gradcam_default_layers_are_the_deepest_of_each_resolution():
    assert default_cam_layers(create_model("cnn-leaky")) == ["body.0.0", "body.1.0", "body.2.0",
                                                             "body.3.0"]
    vgg = create_model("vgg", width=4)
    assert default_cam_layers(vgg) == ["body.0.3", "body.1.3", "body.2.3", "body.3.3"]
    rows = list_layers(vgg)
    assert [r["name"] for r in rows if r["cam_default"]] == default_cam_layers(vgg)
    table = format_layers(rows)
    assert "body.2.3" in table and table.count("<- Grad-CAM default") == 4
    assert get_explainer("gradcam", vgg).layer_name == "body.0.3,body.1.3,body.2.3,body.3.3"
    assert get_explainer("hirescam", vgg).layer_name == "body.2.3"  # deepest at 12x12


def test_gradcam_fusion_is_the_product_of_scaled_single_layer_maps(box_model, box_faces):
    x = box_faces[0][:4]
    target = torch.tensor([0, 1, 2, 3])
    single = [get_explainer("gradcam", box_model, layer=n).attribute(x, target)
              for n in ("body.1.0", "body.3.0")]
    fused = get_explainer("gradcam", box_model, layer="body.1.0,body.3.0").attribute(x, target)
    scaled = [m / m.flatten(1).amax(1).clamp_min(1e-12)[:, None, None, None] for m in single]
    torch.testing.assert_close(fused, scaled[0] * scaled[1])
    mean = get_explainer("gradcam", box_model, layer="body.1.0, body.3.0",
                         fuse="mean").attribute(x, target)
    torch.testing.assert_close(mean, (scaled[0] + scaled[1]) / 2)
    with pytest.raises(ConfigError, match="fusion"):
        get_explainer("gradcam", box_model, fuse="max")
    with pytest.raises(ConfigError, match="body.9"):
        get_explainer("gradcam", box_model, layer="body.1.0,body.9")


def test_an_ensemble_is_explained_member_by_member(box_model, box_faces):
    # Each member gets its own default layers, fused into its own map; the members' maps are
    # averaged. Two copies of one model share every gradient half and half, so their map is
    # the one-member ensemble's (whose score is a log-probability), scaled to a maximum of 1.
    import copy

    from ferlab.ensemble import Ensemble

    x = box_faces[0][:4]
    target = torch.tensor([0, 1, 2, 3])
    ens = Ensemble([box_model, copy.deepcopy(box_model)], "mean")
    names = default_cam_layers(box_model)
    assert default_cam_layers(ens) == [f"members.{i}.{n}" for i in (0, 1) for n in names]
    single = get_explainer("gradcam", Ensemble([box_model], "mean")).attribute(x, target)
    both = get_explainer("gradcam", ens).attribute(x, target)
    torch.testing.assert_close(both, single / single.flatten(1).amax(1)[:, None, None, None])
    hires = get_explainer("hirescam", ens)
    assert hires.layer_name == "members.0.body.2.0,members.1.body.2.0"
    table = format_layers(list_layers(ens))
    assert table.count("<- Grad-CAM default") == 2 * len(names) and "of each member" in table
    assert all(len(ln.split()) >= 3 for ln in table.splitlines()[1:-1])  # columns stay apart


def test_position_weights_localise_where_averaged_weights_do_not(box_model, box_faces):
    # The reason Grad-CAM's default weights are per position: the head flattens the grid.
    x, labels, boxes = box_faces
    t = torch.from_numpy(labels)
    med = {w: np.median(localisation_ratio(
        get_explainer("gradcam", box_model, weights=w).attribute(x, t), boxes))
        for w in ("mean", "position")}
    assert med["position"] > 4 * med["mean"], med  # measured 10.36 and 0.34
    with pytest.raises(ConfigError, match="weights"):
        get_explainer("gradcam", box_model, weights="max")


def test_gradcam_on_a_global_average_head_matches_the_paper():
    # Where the head averages the grid (ResNet: body.4 feeds the average pool), per-position and
    # averaged weights give one map.
    net = create_model("resnet18", width=4, blocks=(1, 1, 1, 1)).eval()
    x = torch.rand(2, 1, 48, 48, generator=torch.Generator().manual_seed(0))
    a = get_explainer("gradcam", net, layer="body.4", weights="mean").attribute(x)
    b = get_explainer("gradcam", net, layer="body.4", weights="position").attribute(x)
    torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


# --------------------------------------------------------------------------------------------
# LIME precision


def test_lime_precision_auto_follows_native_bf16(monkeypatch, box_model):
    import ferlab.precision

    monkeypatch.setattr(ferlab.precision, "bf16_is_native", lambda: False)
    assert get_explainer("lime", box_model).precision == "fp32"
    monkeypatch.setattr(ferlab.precision, "bf16_is_native", lambda: True)
    assert get_explainer("lime", box_model).precision == "bf16"
    assert get_explainer("lime", box_model, precision="fp32").precision == "fp32"
    assert get_explainer("lime", box_model, fast=False).precision == "fp32"  # the old switch
    assert get_explainer("lime", box_model, fast=True).precision == "bf16"
    with pytest.raises(ConfigError, match="precision"):
        get_explainer("lime", box_model, precision="fp16")


def test_lime_in_float32_and_bf16_agree(box_model, box_faces):
    x, labels, _ = box_faces
    t = torch.from_numpy(labels[:2])
    a = get_explainer("lime", box_model, precision="fp32", samples=128).attribute(x[:2], t)
    b = get_explainer("lime", box_model, precision="bf16", samples=128).attribute(x[:2], t)
    for u, v in zip(a, b, strict=True):  # same superpixels and samples: nearly the same weights
        assert np.corrcoef(u.flatten(), v.flatten())[0, 1] > 0.9


# --------------------------------------------------------------------------------------------
# What --check reports


def test_check_table_marks_methods_no_better_than_random():
    scores = {"gradcam": {"deletion": 0.292, "insertion": 0.40, "insertion_minus_deletion": 0.108},
              "occlusion": {"deletion": 0.10, "insertion": 0.60, "insertion_minus_deletion": 0.5},
              "random": {"deletion": 0.270, "insertion": 0.39, "insertion_minus_deletion": 0.12}}
    assert random_verdict(scores["occlusion"], scores["random"]) == ""
    assert random_verdict(scores["gradcam"], scores["random"]) == \
        "no better than random on deletion and insertion"
    text = format_check(scores, {"gradcam": {"median": 11.1}, "occlusion": {"median": 5.1}})
    rows = {line.split()[0]: line for line in text.splitlines()[2:]}
    assert "no better than random" in rows["gradcam"]
    assert "random" not in rows["occlusion"] and "5.10x" in rows["occlusion"]
    assert "in-box" in text


def test_localisation_check_summarises_per_method(box_model, box_faces):
    x, labels, boxes = box_faces
    res = localisation_check(box_model, x[:7], boxes[:7], ["occlusion"],
                             torch.from_numpy(labels[:7]))
    assert set(res) == {"occlusion"} and res["occlusion"]["faces"] == 7
    assert res["occlusion"]["median"] >= res["occlusion"]["q25"] > 1.0


def test_cli_check_reports_localisation(box_model, tmp_path, capsys):
    model_path = save_model(box_model, tmp_path / "m.safetensors")
    data = write_fer2013_csv(make_box_faces(70, seed=9).faces, tmp_path / "fer.csv")
    out = tmp_path / "out"
    rc = main(["explain", "--model", str(model_path), "--data", str(data), "--method",
               "gradcam,lime", "--select", "0,1,2", "--out", str(out), "--check",
               "--lime-samples", "64", "--precision", "fp32"])
    assert rc == 0
    text = capsys.readouterr().out
    assert "in-box" in text and "random" in text
    import json

    check = json.loads((out / "check.json").read_text())
    assert set(check["localisation"]) == {"gradcam", "lime"}
    assert check["localisation"]["gradcam"]["median"] > 2.0


def test_a_blank_map_says_why_and_figures_have_colour_bars(box_faces, tmp_path, monkeypatch):
    from ferlab.explain import figures
    from ferlab.explain.select import Selection

    assert figures.is_blank(np.zeros((48, 48))) and not figures.is_blank(np.eye(48))
    assert "before ReLU" in figures.blank_reason("gradcam")
    x, labels, _ = box_faces
    images = (x[:2, 0].numpy() * 255).astype(np.uint8)
    sel = Selection(images=images, labels=labels[:2], probs=np.eye(7)[labels[:2]],
                    index=np.arange(2), names=["a", "b"])
    maps = np.stack([np.zeros((48, 48)), np.eye(48)])
    notes, bars = [], []
    real_note, real_bars = figures._note, figures._colorbars
    monkeypatch.setattr(figures, "_note", lambda ax, t: (notes.append(t), real_note(ax, t)))
    monkeypatch.setattr(figures, "_colorbars",
                        lambda *a: (bars.append(a[-1]), real_bars(*a)))
    path = figures.explanation_grid(sel, maps, "gradcam", tmp_path / "g.png")
    assert path.exists() and notes == [figures.blank_reason("gradcam")] and bars == [False]
