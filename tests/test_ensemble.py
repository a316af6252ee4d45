"""Ensembles: vote and mean differ where they should, folders round-trip, members train."""

from __future__ import annotations

import csv
import json
import re

import pytest
import torch
from torch import nn

from ferlab.cli import main
from ferlab.config import AugmentConfig, DataConfig, ModelConfig, RunConfig, TrainConfig
from ferlab.ensemble import (
    ENSEMBLE_FILE,
    Ensemble,
    accuracy_by_members,
    combine,
    fit_temperatures,
    load_ensemble,
    save_ensemble,
    save_ensemble_file,
)
from ferlab.errors import ConfigError, ModelError
from ferlab.model_file import save_model
from ferlab.model_spec import build_ensemble, load_model, recommended_tta
from ferlab.models import create_model
from ferlab.training.members import train_members


class Fixed(nn.Module):
    """A 'model' that gives the same probabilities to every face."""

    def __init__(self, probs):
        super().__init__()
        self.register_buffer("p", torch.tensor(probs, dtype=torch.float32))

    def forward(self, x):
        return self.p.log().expand(len(x), -1)


def _probs(top, p_top, rest_on=None, p_rest=0.0):
    """7-class probabilities: ``p_top`` on ``top``, ``p_rest`` on ``rest_on``, the remainder
    spread evenly over the others."""
    p = torch.zeros(7)
    p[top] = p_top
    if rest_on is not None:
        p[rest_on] = p_rest
    free = [i for i in range(7) if p[i] == 0]
    p[free] = (1 - p.sum()) / len(free)
    return p.tolist()


def test_vote_and_mean_differ_where_they_should():
    # Two members mildly prefer happy (0.40 vs 0.35 sad); one is sure it is sad (0.95).
    # Majority vote: happy (2 votes to 1). Mean probability: sad (0.55 against 0.28).
    members = [Fixed(_probs(3, 0.40, 4, 0.35)), Fixed(_probs(3, 0.40, 4, 0.35)),
               Fixed(_probs(4, 0.95))]
    x = torch.rand(5, 1, 48, 48)
    vote, mean = Ensemble(members, "vote"), Ensemble(members, "mean")
    assert (vote(x).argmax(1) == 3).all() and (mean(x).argmax(1) == 4).all()
    pm = mean(x).softmax(1)[0]
    assert pm[4].item() == pytest.approx((0.35 * 2 + 0.95) / 3, abs=1e-6)
    pv = vote(x).softmax(1)[0]
    assert pv[3].item() == pytest.approx(2 / 3, abs=2e-3)  # vote share, tie-break is tiny
    assert pv.sum().item() == pytest.approx(1, abs=1e-6)
    # where all members agree, both methods agree
    same = [Fixed(_probs(5, 0.9))] * 3
    assert Ensemble(same, "vote")(x).argmax(1).eq(Ensemble(same, "mean")(x).argmax(1)).all()


def test_vote_ties_go_to_the_mean_probability():
    # One vote each for angry and fear; fear's voter is surer, so fear wins the tie.
    p = torch.tensor([_probs(0, 0.5), _probs(2, 0.9)]).unsqueeze(1)
    assert combine(p, "vote").argmax(1).item() == 2
    p = torch.tensor([_probs(0, 0.9), _probs(2, 0.5)]).unsqueeze(1)
    assert combine(p, "vote").argmax(1).item() == 0
    with pytest.raises(ConfigError):
        combine(p, "median")


def test_accuracy_by_members():
    labels = torch.tensor([3, 3])
    m = torch.tensor([[_probs(3, 0.4, 4, 0.35)] * 2, [_probs(4, 0.95)] * 2,
                      [_probs(3, 0.4, 4, 0.35)] * 2]).numpy()
    rows = accuracy_by_members(m, labels.numpy())
    assert [r["members"] for r in rows] == [1, 2, 3]
    assert [r["member_acc"] for r in rows] == [1, 0, 1]
    assert rows[2]["vote_acc"] == 1 and rows[2]["mean_acc"] == 0


def test_ensemble_folder_round_trip(tmp_path):
    torch.manual_seed(0)
    a, b = create_model("cnn-leaky"), create_model("vgg", width=8)
    pa, pb = save_model(a, tmp_path / "a.safetensors"), save_model(b, tmp_path / "b.safetensors")
    ens = build_ensemble([pa, pb], "mean")
    out = save_ensemble(ens, tmp_path / "ens")
    spec = json.loads((out / ENSEMBLE_FILE).read_text())
    assert spec["method"] == "mean" and len(spec["members"]) == 2
    loaded = load_model(out)
    assert isinstance(loaded, Ensemble) and not loaded.training
    x = torch.rand(4, 1, 48, 48)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), ens(x))
        want = (a.eval()(x).softmax(1) + b.eval()(x).softmax(1)) / 2
        torch.testing.assert_close(loaded(x).softmax(1), want, atol=1e-5, rtol=1e-4)
    assert load_ensemble(out, method="vote").method == "vote"
    assert loaded.cam_layer.startswith("members.0.")
    loaded.get_submodule(loaded.cam_layer)
    # an ensemble of an ensemble and a model is flat
    assert len(Ensemble([loaded, a]).members) == 3


def test_one_file_ensemble_keeps_members_temperatures_and_tta(tmp_path):
    torch.manual_seed(0)
    a, b = create_model("cnn-leaky").eval(), create_model("vgg", width=8).eval()
    ens = Ensemble([a, b], "mean", ["a", "b"], temperatures=[2.0, 0.5], tta="flip")
    x = torch.rand(4, 1, 48, 48)
    with torch.no_grad():
        want = ((a(x) / 2.0).softmax(1) + (b(x) / 0.5).softmax(1)) / 2
        torch.testing.assert_close(ens(x).softmax(1), want, atol=1e-5, rtol=1e-4)
    path = save_ensemble_file(ens, tmp_path / "ens.safetensors", run="test")
    loaded = load_model(path)
    assert isinstance(loaded, Ensemble) and not loaded.training
    assert loaded.temperatures == [2.0, 0.5] and loaded.method == "mean"
    assert [m.name for m in loaded.members] == ["cnn-leaky", "vgg"]
    assert recommended_tta(path) == "flip"
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), ens(x))
    # float16 storage: half the bytes, nearly the same probabilities
    half = save_ensemble_file(ens, tmp_path / "half.safetensors", half=True)
    assert half.stat().st_size < 0.6 * path.stat().st_size
    with torch.no_grad():
        torch.testing.assert_close(load_model(half)(x).softmax(1), want, atol=2e-3, rtol=0)
    # the folder form keeps them too, and a folder may hold a one-file ensemble as a member
    folder = save_ensemble(loaded, tmp_path / "folder")
    assert recommended_tta(folder) == "flip"
    assert load_model(folder).temperatures == [2.0, 0.5]
    desc = {"format": "ferlab-ensemble/1", "method": "mean", "members": ["ens.safetensors"]}
    (tmp_path / ENSEMBLE_FILE).write_text(json.dumps(desc))
    assert len(load_model(tmp_path).members) == 2
    with pytest.raises(ConfigError, match="temperatures"):
        Ensemble([a, b], "mean", temperatures=[1.0])
    with pytest.raises(ConfigError, match="positive"):
        Ensemble([a, b], "mean", temperatures=[1.0, 0.0])


def test_output_temperature_keeps_every_label_and_travels_with_the_file(tmp_path):
    torch.manual_seed(0)
    a, b = create_model("cnn-leaky").eval(), create_model("vgg", width=8).eval()
    x = torch.rand(16, 1, 48, 48)
    plain = Ensemble([a, b], "mean")
    sharp = Ensemble([a, b], "mean", temperature=0.5)
    with torch.no_grad():
        p, q = plain(x).softmax(1), sharp(x).softmax(1)
    assert torch.equal(p.argmax(1), q.argmax(1))  # the same labels ...
    assert (q.max(1).values >= p.max(1).values - 1e-6).all()  # ... said more surely
    torch.testing.assert_close(q, (p ** 2) / (p ** 2).sum(1, keepdim=True), atol=1e-5, rtol=1e-4)
    for saved in (save_ensemble_file(sharp, tmp_path / "e.safetensors"),
                  save_ensemble(sharp, tmp_path / "folder")):
        assert load_model(saved).temperature == 0.5
    with pytest.raises(ConfigError, match="positive"):
        Ensemble([a, b], "mean", temperature=0.0)


def test_cli_calibrate_output_keeps_the_accuracy(eval_run, fer_csv, tmp_path, capsys):
    out = tmp_path / "ens.safetensors"
    assert main(["ensemble", str(eval_run), str(eval_run), "--method", "mean", "--out", str(out),
                 "--calibrate", str(fer_csv), "--calibrate-output", "--precision", "fp32"]) == 0
    printed = capsys.readouterr().out
    assert "output temperature" in printed
    before, after = re.search(r"([\d.]+)% at temperature 1, ([\d.]+)% calibrated",
                              printed).groups()
    assert before == after
    ens = load_model(out)
    assert ens.temperatures == [1.0, 1.0] and ens.temperature != 1.0
    assert main(["ensemble", str(eval_run), "--out", str(tmp_path / "g"),
                 "--calibrate-output"]) == 2


def test_fitted_temperature_follows_confidence():
    # A member that is right 3 times in 4 but sure every time should be cooled (T > 1);
    # one that is always right but shy should be sharpened (T < 1).
    y = torch.tensor([0, 1, 0, 1] * 25)
    sure = torch.tensor([[6.0, -6.0], [-6.0, 6.0], [6.0, -6.0], [6.0, -6.0]] * 25)
    shy = torch.tensor([[0.3, -0.3], [-0.3, 0.3]] * 50)
    t_sure, t_shy = fit_temperatures(torch.stack([sure, shy]), y)
    assert t_sure > 2 and t_shy < 1
    # NLL at the fitted temperature is no worse than at 1
    nll = lambda z, t: nn.functional.cross_entropy(z / t, y).item()  # noqa: E731
    assert nll(sure, t_sure) <= nll(sure, 1.0) and nll(shy, t_shy) <= nll(shy, 1.0)


def test_broken_ensemble_folders(tmp_path):
    a = save_model(create_model("cnn-leaky"), tmp_path / "ens" / "m.safetensors")
    folder = a.parent
    desc = {"format": "ferlab-ensemble/1", "method": "vote", "members": ["m.safetensors"]}
    (folder / ENSEMBLE_FILE).write_text(json.dumps(desc))
    assert len(load_model(folder).members) == 1
    for members, message in ((["gone.safetensors"], "missing"),
                             (["../../etc/passwd"], "outside"), ([], "non-empty")):
        (folder / ENSEMBLE_FILE).write_text(json.dumps({**desc, "members": members}))
        with pytest.raises(ModelError, match=message):
            load_model(folder)
    (folder / ENSEMBLE_FILE).write_text("{not json")
    with pytest.raises(ModelError, match="ensemble"):
        load_model(folder)
    (folder / ENSEMBLE_FILE).write_text(json.dumps(desc))
    a.write_bytes(b"garbage" * 10)
    with pytest.raises(ModelError, match="m.safetensors"):
        load_model(folder)


def test_cli_ensemble_then_evaluate(eval_run, fer_csv, tmp_path, capsys):
    out = tmp_path / "ens"
    assert main(["ensemble", str(eval_run), str(eval_run / "model.safetensors"), "--method",
                 "mean", "--out", str(out)]) == 0
    assert "ensemble(mean, 2 members)" in capsys.readouterr().out
    assert main(["evaluate", "--model", str(out), "--data", str(fer_csv), "--out",
                 str(tmp_path / "eval")]) == 0
    m = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert m["model"].startswith("ensemble(mean, 2 members: 2 x cnn-leaky") and m["accuracy"] >= 0.9
    rc = main(["ensemble", str(tmp_path / "nothing"), "--out", str(tmp_path / "e2")])
    assert rc == 2 and "nothing" in capsys.readouterr().err


def test_cli_calibrated_one_file_ensemble(eval_run, fer_csv, tmp_path, capsys):
    out = tmp_path / "ens.safetensors"
    assert main(["ensemble", str(eval_run), str(eval_run), "--method", "mean", "--out", str(out),
                 "--half", "--tta", "flip", "--calibrate", str(fer_csv),
                 "--split", "PublicTest", "--precision", "fp32"]) == 0
    printed = capsys.readouterr().out
    assert "temperature" in printed and "calibrated" in printed and "recommends flip" in printed
    ens = load_model(out)
    assert len(ens.temperatures) == 2 and ens.temperatures[0] == ens.temperatures[1] != 1.0
    assert main(["evaluate", "--model", str(out), "--data", str(fer_csv), "--out",
                 str(tmp_path / "eval")]) == 0
    assert "flip TTA, as the model recommends" in capsys.readouterr().err
    m = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert m["tta"] == "flip" and m["accuracy"] >= 0.9
    assert main(["ensemble", str(eval_run), "--out", str(tmp_path / "f"), "--half"]) == 2
    assert main(["ensemble", str(eval_run), "--out", str(tmp_path / "g"),
                 "--temperatures", "1,2"]) == 2


def test_train_members(faces, tmp_path):
    cfg = RunConfig(DataConfig(path="synthetic"), ModelConfig("vgg", {"width": 8}),
                    AugmentConfig(flip=False, shift=0, rotation=0, zoom=0),
                    TrainConfig(epochs=1, batch_size=32, lr=2e-3))
    small = faces.subset(slice(0, 140))  # Training rows only: a fixed held-out 10% is put aside
    logs = []
    out = train_members(cfg, tmp_path / "x2", 2, split_seeds=True, data=small, progress=False,
                        log=logs.append)
    seeds = [json.loads((out / f"member-0{i}" / "config.json").read_text())["config"]["train"]
             ["seed"] for i in range(2)]
    assert seeds == [0, 1]
    with open(out / "members.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["members"] for r in rows] == ["1", "2"]
    ens = load_model(out)
    assert isinstance(ens, Ensemble) and len(ens.members) == 2
    # members validated on different seeded splits of the same training pool
    va = [json.loads((out / f"member-0{i}" / "config.json").read_text())["val_faces"]
          for i in range(2)]
    assert va[0] == va[1] > 0
    # run again: finished members are kept, not retrained
    logs.clear()
    train_members(cfg, out, 2, split_seeds=True, data=small, progress=False, log=logs.append)
    assert sum("kept" in s for s in logs) == 2


def test_cli_train_members(fer_csv, tmp_path, capsys):
    out = tmp_path / "members"
    rc = main(["train", "--data", str(fer_csv), "--model", "vgg", "--model-args", '{"width": 4}',
               "--members", "2", "--epochs", "1", "--limit", "64", "--no-augment", "--out",
               str(out)])
    assert rc == 0
    assert "ensemble of 2 members" in capsys.readouterr().out
    assert len(load_model(out).members) == 2
    spec = json.loads((out / ENSEMBLE_FILE).read_text())
    assert spec["holdout_faces"] == 140  # the file's PublicTest rows


def _bundle_script():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "scripts" / "bundle_model.py"
    spec = importlib.util.spec_from_file_location("bundle_model", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_bundle_script_ships_an_ensemble_with_its_members_provenance(eval_run, tmp_path,
                                                                     monkeypatch):
    bundle = _bundle_script()
    monkeypatch.setattr(bundle, "DOCS_ROOT", tmp_path / "docs")
    monkeypatch.setattr(bundle, "bundled_model_path", lambda name: tmp_path / f"{name}.st")
    old_docs = tmp_path / "docs" / "bundled"
    old_docs.mkdir(parents=True)
    (old_docs / "config.json").write_text("{}")  # the model shipped before
    ens = build_ensemble([eval_run, eval_run / "model.safetensors"], "mean")
    ens.temperatures, ens.tta = [0.8, 1.2], "flip"
    ens.sources[1] = "bundled"  # as if the shipped model were the second member
    path = save_ensemble_file(ens, tmp_path / "ens.safetensors")
    assert bundle.main([str(path), "--name", "bundled"]) == 0
    shipped = load_model(tmp_path / "bundled.st")
    assert isinstance(shipped, Ensemble) and shipped.temperatures == [0.8, 1.2]
    assert recommended_tta(tmp_path / "bundled.st") == "flip"
    assert shipped.meta["stored_dtype"] == "float16"
    docs = tmp_path / "docs" / "bundled"
    assert (docs / f"member-0-{eval_run.name}" / "config.json").is_file()
    assert (docs / "member-1-bundled" / "config.json").is_file()  # the old provenance kept
