"""Explanations are right: on synthetic faces whose class lives in the mouth, maps point at the
mouth; maps change when the weights are randomised; saliency matches a hand computation; hooks
and the model's mode are restored even on errors; every method has the same call shape."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from ferlab.cli import main
from ferlab.config import AugmentConfig, DataConfig, ModelConfig, RunConfig, TrainConfig
from ferlab.data import make_split
from ferlab.errors import ConfigError
from ferlab.explain import (
    capture,
    deletion_insertion,
    feature_maps,
    filter_emotion,
    get_explainer,
    get_layer,
    list_layers,
    list_methods,
    prepared,
    randomization_check,
    select_faces,
    visualize_filters,
    write_filter_emotion_csv,
)
from ferlab.model_file import save_model
from ferlab.model_spec import load_model
from ferlab.models import create_model
from ferlab.synthetic import MOUTH_BOX, make_faces, make_split_faces, write_fer2013_csv
from ferlab.training.loop import train

SMALL_LEAKY = {"widths": [8, 16, 32, 32], "hidden": 64}
R0, R1, C0, C1 = MOUTH_BOX
BOX_SHARE = (R1 - R0) * (C1 - C0) / 48**2  # 0.146 of the image


@pytest.fixture(scope="session")
def mouth_model(tmp_path_factory):
    """A small cnn-leaky trained on synthetic faces: it can only have learned the mouth."""
    faces = make_split_faces(490, 70, seed=0)
    cfg = RunConfig(DataConfig(path="synthetic"), ModelConfig("cnn-leaky", SMALL_LEAKY),
                    AugmentConfig(flip=False, shift=0, rotation=0, zoom=0, erase=0),
                    TrainConfig(epochs=4, batch_size=32, lr=3e-3, weight_decay=1e-4, bf16=False))
    run = train(cfg, tmp_path_factory.mktemp("explain") / "run", data=make_split(faces, "usage"),
                progress=False, log=lambda s: None)
    return load_model(run)


@pytest.fixture(scope="session")
def test_faces(mouth_model):
    f = make_faces(14, seed=5)
    x = torch.from_numpy(f.images).float().unsqueeze(1) / 255
    acc = (mouth_model(x).argmax(1).numpy() == f.labels).mean()
    assert acc >= 0.9, f"fixture model did not learn the synthetic faces (accuracy {acc:.2f})"
    return x, f.labels


def _box_mass(maps: torch.Tensor) -> torch.Tensor:
    """Share of each map's positive mass inside the mouth box."""
    p = maps.clamp_min(0)[:, 0]
    return p[:, R0:R1, C0:C1].sum((1, 2)) / p.sum((1, 2)).clamp_min(1e-12)


# --------------------------------------------------------------------------------------------
# One call shape


@pytest.mark.parametrize("name", list_methods())
def test_every_method_returns_finite_maps_of_input_size(name, mouth_model, test_faces):
    x, _ = test_faces
    maps = get_explainer(name, mouth_model).attribute(x[:3])
    assert maps.shape == (3, 1, 48, 48) and maps.dtype == torch.float32
    assert torch.isfinite(maps).all()
    assert maps.abs().sum() > 0
    # explicit targets are honoured: other classes give other maps
    other = get_explainer(name, mouth_model).attribute(x[:3], target=(
        mouth_model(x[:3]).argmax(1) + 1) % 7)
    assert not torch.allclose(other, maps)


def test_unknown_method_and_layer_are_config_errors(mouth_model):
    with pytest.raises(ConfigError, match="saliency"):
        get_explainer("gradcamm", mouth_model)
    with pytest.raises(ConfigError, match="body.0.0"):
        get_layer(mouth_model, "body.9.9")
    with pytest.raises(ConfigError, match="48"):
        get_explainer("saliency", mouth_model).attribute(torch.zeros(2, 1, 32, 32))
    with pytest.raises(ConfigError, match="0-6"):
        get_explainer("saliency", mouth_model).attribute(torch.zeros(1, 1, 48, 48), target=7)


# --------------------------------------------------------------------------------------------
# Explanations point where the class is


# Measured on this fixture (mass in box / box share): saliency 1.95, Grad-CAM 1.67, HiResCAM
# 1.93, LIME 3.6, occlusion 3.7. Gradients also touch the eyes (constant across classes, but the
# logit still depends on them).
@pytest.mark.parametrize("name, factor", [("saliency", 1.6), ("gradcam", 1.4),
                                          ("hirescam", 1.6), ("lime", 2.5),
                                          ("occlusion", 3.0)])
def test_maps_put_their_mass_in_the_mouth(name, factor, mouth_model, test_faces):
    x, _ = test_faces
    mass = _box_mass(get_explainer(name, mouth_model).attribute(x))
    assert mass.mean() > factor * BOX_SHARE, (name, mass.tolist())


def test_maps_change_when_weights_are_randomised(mouth_model, test_faces):
    x, _ = test_faces
    for name in ("saliency", "gradcam", "lime"):
        row, = randomization_check(name, mouth_model, x[:4], cascade=False)
        assert row["spearman"] < 0.5, (name, row)
    # cascading from the top: one row per layer with weights, and the model is left untouched
    before = {k: v.clone() for k, v in mouth_model.state_dict().items()}
    rows = randomization_check("saliency", mouth_model, x[:2])
    assert rows[0]["randomized"] == "body.8" and len(rows) == 11
    assert rows[-1]["spearman"] < 0.5
    for k, v in mouth_model.state_dict().items():
        assert torch.equal(v, before[k])


def test_deletion_and_insertion_beat_a_random_map(mouth_model, test_faces):
    x, _ = test_faces
    maps = get_explainer("saliency", mouth_model).attribute(x[:7])
    good = deletion_insertion(mouth_model, x[:7], maps, steps=16)
    bad = deletion_insertion(mouth_model, x[:7], torch.rand(7, 1, 48, 48), steps=16)
    assert good.deletion.shape == (7, 17) and good.fractions[-1] == 1.0
    assert good.deletion_auc.mean() < bad.deletion_auc.mean() - 0.1
    assert good.insertion_auc.mean() > bad.insertion_auc.mean() + 0.05
    # all pixels removed = the substrate, whatever the map
    np.testing.assert_allclose(good.deletion[:, -1], bad.deletion[:, -1], atol=1e-6)


# --------------------------------------------------------------------------------------------
# Hand-computed saliency


class _TinyNet(nn.Module):
    """f(x) = W2 relu(W1 x): two hidden units, seven outputs."""

    def __init__(self) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.fc1 = nn.Linear(48 * 48, 2, bias=False)
        self.fc2 = nn.Linear(2, 7, bias=False)
        with torch.no_grad():
            self.fc1.weight.copy_(torch.randn(2, 48 * 48, generator=g))
            self.fc1.weight[1] = -self.fc1.weight[0] + 0.01  # unit 1 off where unit 0 is on
            self.fc2.weight.copy_(torch.arange(14, dtype=torch.float32).reshape(7, 2) - 6)

    def forward(self, x):
        return self.fc2(torch.relu(self.fc1(x.flatten(1))))


def test_saliency_matches_a_hand_computation():
    net = _TinyNet()
    x = torch.rand(3, 1, 48, 48, generator=torch.Generator().manual_seed(1))
    w1 = net.fc1.weight.detach().numpy()
    w2 = net.fc2.weight.detach().numpy()
    for t in (0, 3, 6):
        maps = get_explainer("saliency", net).attribute(x, target=t)
        for i in range(3):
            on = (w1 @ x[i].flatten().numpy()) > 0  # which hidden units pass
            expected = np.abs((w2[t] * on) @ w1).reshape(48, 48)
            np.testing.assert_allclose(maps[i, 0].numpy(), expected, rtol=1e-5, atol=1e-5)


# --------------------------------------------------------------------------------------------
# Plumbing: hooks removed, modes restored, even on errors


def _hook_counts(model: nn.Module) -> list[int]:
    return [len(getattr(m, d)) for m in model.modules()
            for d in ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks",
                      "_backward_pre_hooks")]


@pytest.mark.parametrize("name", list_methods())
def test_hooks_removed_and_mode_restored_on_error(name):
    model = create_model("vgg", width=4)
    model.train()
    armed = {"on": False}

    def boom(_m, _i, _o):
        if armed["on"]:
            raise RuntimeError("boom")

    model.body[-1].register_forward_hook(boom)  # the user's own hook: it must survive
    relu = next(m for m in model.modules() if isinstance(m, nn.ReLU))
    counts = _hook_counts(model)
    assert relu.inplace
    armed["on"] = True
    with pytest.raises(RuntimeError, match="boom"):
        get_explainer(name, model).attribute(torch.rand(2, 1, 48, 48), target=[1, 2])
    assert model.training and all(m.training for m in model.modules())
    assert _hook_counts(model) == counts
    assert relu.inplace and all(p.requires_grad for p in model.parameters())
    # and after a successful call in eval mode, eval mode stays
    armed["on"] = False
    model.eval()
    get_explainer(name, model).attribute(torch.rand(1, 1, 48, 48))
    assert not model.training and _hook_counts(model) == counts


def test_capture_and_prepared_clean_up(mouth_model):
    counts = _hook_counts(mouth_model)
    with pytest.raises(ValueError), capture(mouth_model, "body.0.0"):
        raise ValueError
    with pytest.raises(ValueError), prepared(mouth_model):
        mouth_model.body[0][0].register_forward_hook(lambda *a: None)
        raise ValueError
    assert _hook_counts(mouth_model) == counts and not mouth_model.training


# --------------------------------------------------------------------------------------------
# LIME


def test_lime_is_deterministic_for_a_seed(mouth_model, test_faces):
    x, _ = test_faces
    a = get_explainer("lime", mouth_model, seed=3).attribute(x[:2])
    b = get_explainer("lime", mouth_model, seed=3).attribute(x[:2])
    c = get_explainer("lime", mouth_model, seed=4).attribute(x[:2])
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


# --------------------------------------------------------------------------------------------
# Filters, feature maps, filter -> emotion, selection


def test_gradient_ascent_raises_the_filters_activation(mouth_model):
    res = visualize_filters(mouth_model, "body.1.0", filters=[0, 3, 5], steps=24, progress=False)
    assert res.images.shape == (3, 48, 48) and res.filters == [0, 3, 5]
    assert res.images.min() >= 0 and res.images.max() <= 1
    assert (res.activation > res.start_activation).all()
    with pytest.raises(ConfigError, match="16 filters"):
        visualize_filters(mouth_model, "body.1.0", filters=[16], steps=1, progress=False)


def test_feature_maps_are_the_layer_output(mouth_model, test_faces):
    x, _ = test_faces
    fm = feature_maps(mouth_model, x[:1], "body.1.0")
    with torch.no_grad():
        expected = mouth_model.body[1][0](mouth_model.body[0](
            (x[:1] - mouth_model.pixel_mean) / mouth_model.pixel_std))
    assert fm.shape == (16, 24, 24)
    np.testing.assert_allclose(fm, expected[0].numpy(), rtol=1e-4, atol=1e-5)


def test_filter_emotion_table(mouth_model, faces, tmp_path):
    t = filter_emotion(mouth_model, faces, "body.3.0", max_per_class=20, progress=False)
    assert t.class_means.shape == (32, 7) and t.counts.tolist() == [20] * 7
    assert (t.top == t.class_means.argmax(1)).all()
    assert (t.zscore >= 0).all()
    # the last conv layer separates classes: most filters have a clear favourite
    assert np.median(t.zscore) > 1.0
    path = write_filter_emotion_csv([t], tmp_path / "fe.csv")
    lines = path.read_text().splitlines()
    assert len(lines) == 33 and lines[0].startswith("layer,filter,emotion,mean_activation")


def test_select_policies(mouth_model, faces):
    val = faces.subset(faces.usage == "PublicTest")
    sel = select_faces(mouth_model, val, "confident-correct")
    assert len(sel) == 7 and (sel.preds == sel.labels).all()
    assert sorted(sel.labels.tolist()) == list(range(7))
    assert select_faces(mouth_model, val, "random-correct", seed=1).index.tolist() != \
        select_faces(mouth_model, val, "random-correct", seed=2).index.tolist()
    untrained = create_model("cnn-leaky", **SMALL_LEAKY).eval()
    wrong = select_faces(untrained, val, "confident-wrong", per_class=2)
    assert (wrong.preds != wrong.labels).all() and len(wrong) >= 6 * 2
    idx = select_faces(mouth_model, val, "indices", indices=[3, 1])
    assert idx.index.tolist() == [3, 1] and (idx.images[0] == val.images[3]).all()
    with pytest.raises(ConfigError, match="out of range"):
        select_faces(mouth_model, val, "indices", indices=[len(val)])


def test_list_layers(mouth_model):
    rows = list_layers(mouth_model)
    convs = [r for r in rows if r["conv"]]
    assert [r["name"] for r in convs] == mouth_model.conv_layer_names()
    assert convs[0]["shape"] == (8, 48, 48) and rows[-1]["shape"] == (7,)


# --------------------------------------------------------------------------------------------
# CLI


def test_cli_explain_end_to_end(mouth_model, small_faces, tmp_path, capsys):
    model_path = save_model(mouth_model, tmp_path / "m.safetensors")
    data = write_fer2013_csv(small_faces, tmp_path / "fer.csv")
    out = tmp_path / "out"
    rc = main(["explain", "--model", str(model_path), "--data", str(data), "--method",
               "saliency,gradcam,lime", "--select", "confident-correct", "--out", str(out),
               "--check", "--lime-samples", "64"])
    assert rc == 0
    for f in ("saliency.png", "saliency.npy", "gradcam.png", "lime.npy", "methods.png",
              "check.json", "check.png", "faces.json"):
        assert (out / f).exists(), f
    assert np.load(out / "gradcam.npy").shape == (7, 48, 48)
    text = capsys.readouterr().out
    assert "deletion" in text and "random" in text

    rc = main(["explain", "--model", str(model_path), "--data", str(data), "--method",
               "filters,feature-maps,filter-emotion", "--layer", "body.2.0", "--select", "0,5",
               "--steps", "4", "--filters", "4", "--out", str(out / "more")])
    assert rc == 0
    assert (out / "more" / "filters_body.2.0.png").exists()
    assert (out / "more" / "filter_emotion.csv").exists()
    assert len(list((out / "more").glob("feature_maps_*.npy"))) == 2

    face = tmp_path / "face.png"
    Image.fromarray(small_faces.images[0]).save(face)
    rc = main(["explain", "--model", str(model_path), "--image", str(face), "--method",
               "saliency", "--out", str(out / "photo")])
    assert rc == 0 and np.load(out / "photo" / "saliency.npy").shape == (1, 48, 48)

    assert main(["explain", "--model", str(model_path), "--list-layers"]) == 0
    assert "body.0.0" in capsys.readouterr().out
    capsys.readouterr()
    rc = main(["explain", "--model", str(model_path), "--data", str(data), "--method",
               "gradcam", "--layer", "nope", "--out", str(out / "bad")])
    err = capsys.readouterr().err
    assert rc == 2 and "nope" in err and "Traceback" not in err and len(err.splitlines()) == 1
