"""The foundation's commands end to end, in-process, on synthetic data."""

from __future__ import annotations

import json

from PIL import Image

from ferlab.cli import main
from ferlab.models import list_models


def test_help_lists_subcommands(capsys):
    assert main([]) == 2
    out = capsys.readouterr().out
    for cmd in ("data", "models", "train"):
        assert cmd in out


def test_models_lists_registry(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    for name in list_models():
        assert name in out
    assert "4,179,847" in out and "4,472,839" in out


def test_data_counts_and_grid(fer_csv, tmp_path, capsys):
    png = tmp_path / "grid.png"
    assert main(["data", str(fer_csv), "--out", str(png)]) == 0
    out = capsys.readouterr().out
    assert "Training" in out and "PublicTest" in out and "840 faces" in out
    assert Image.open(png).size[0] > 100


def test_train_one_epoch_then_refuses_to_overwrite(fer_csv, tmp_path, capsys):
    run = tmp_path / "run"
    args = ["train", "--data", str(fer_csv), "--model", "cnn-leaky", "--epochs", "1",
            "--batch-size", "64", "--out", str(run)]
    assert main(args) == 0
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["config"]["model"]["name"] == "cnn-leaky" and cfg["val_faces"] == 140
    assert "git_commit" in cfg
    assert main(args) == 2
    assert "--force" in capsys.readouterr().err


def test_data_out_without_suffix_gets_png(fer_csv, tmp_path, capsys):
    assert main(["data", str(fer_csv), "--out", str(tmp_path / "grid")]) == 0
    assert (tmp_path / "grid.png").exists() and not (tmp_path / "grid").exists()
    assert f"wrote {tmp_path / 'grid.png'}" in capsys.readouterr().out


def test_models_says_what_bundled_is(capsys):
    assert main(["models"]) == 0
    lines = capsys.readouterr().out.splitlines()
    bundled = [ln for ln in lines if ln.split()[0] == "bundled"]
    # the shipped ensemble names its members' architectures (issue 22)
    assert len(bundled) == 1 and "MB)" in bundled[0]
    assert "a trained ensemble(mean, 3 members: vgg(width=48), 2 x speedrun" in bundled[0]
    fast = [ln for ln in lines if ln.split()[0] == "bundled-fast"]
    assert len(fast) == 1 and '"width": 16' in fast[0]


def test_explain_defaults_to_the_bundled_model(capsys):
    assert main(["explain", "--list-layers"]) == 0
    assert "conv" in capsys.readouterr().out.lower()
