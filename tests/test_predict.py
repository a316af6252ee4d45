"""Prediction files: exact Kaggle submissions, probability CSVs, clear model errors."""

from __future__ import annotations

import csv
import sys
import types

import numpy as np
import pytest
import torch

from ferlab.cli import main
from ferlab.errors import ConfigError, ModelError
from ferlab.inference import tta_views
from ferlab.model_spec import load_model
from ferlab.precision import bf16_is_native
from ferlab.predict import predict_faces, predict_file, submission_text
from ferlab.synthetic import (
    make_faces,
    write_fer2013_csv,
    write_image_folder,
    write_test_csv,
)


def test_submission_text_is_exact():
    probs = np.zeros((3, 7))
    probs[0, 3] = probs[1, 0] = probs[2, 6] = 1
    assert submission_text(np.array([5, 7, 10]), probs) == "id,label\n5,3\n7,0\n10,6\n"


def test_submission_for_test_csv(eval_run, tmp_path):
    faces = make_faces(35, seed=7)
    test_csv = write_test_csv(faces, tmp_path / "test.csv")
    res = predict_file(eval_run, test_csv, tmp_path / "sub.csv", progress=False)
    assert res.format == "submission"
    lines = (tmp_path / "sub.csv").read_text().splitlines()
    assert lines[0] == "id,label" and len(lines) == 36
    want = predict_faces(load_model(eval_run), faces, progress=False).argmax(1)
    assert lines[1:] == [f"{i},{p}" for i, p in enumerate(want)]
    assert (want == faces.labels).mean() >= 0.9  # the model really learned these faces


def test_probabilities_for_fer2013_rows_and_folders(eval_run, tmp_path, small_faces):
    fer = write_fer2013_csv(small_faces, tmp_path / "fer.csv")
    res = predict_file(eval_run, fer, tmp_path / "p.csv", tta=True, progress=False)
    assert res.format == "probs"
    with open(tmp_path / "p.csv") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["id", "usage", "true_label", "angry", "disgust", "fear", "happy",
                             "sad", "surprise", "neutral", "label", "emotion"]
    assert len(rows) == 70
    for r in rows:
        p = np.array([float(r[c]) for c in ("angry", "disgust", "fear", "happy", "sad",
                                            "surprise", "neutral")])
        assert p.sum() == pytest.approx(1, abs=1e-4)
        assert int(r["label"]) == p.argmax()
    assert [int(r["true_label"]) for r in rows] == small_faces.labels.tolist()
    folder = write_image_folder(small_faces.subset(slice(0, 14)), tmp_path / "imgs", split="")
    predict_file(eval_run, folder, tmp_path / "f.csv", progress=False)
    with open(tmp_path / "f.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 14 and rows[0]["file"].endswith(".png") and "emotion" in rows[0]


def test_bf16_prediction_is_close_to_float32(eval_run, small_faces):
    model = load_model(eval_run)
    fp32 = predict_faces(model, small_faces.images[:32], progress=False)
    bf16 = predict_faces(model, small_faces.images[:32], bf16=True, progress=False)
    assert np.abs(bf16 - fp32).max() < 0.05
    assert (bf16.argmax(1) == fp32.argmax(1)).mean() >= 0.9
    assert isinstance(bf16_is_native(), bool)


def test_tta_on_a_symmetric_face_changes_nothing(eval_run):
    img = np.random.default_rng(0).integers(0, 256, (4, 48, 24), dtype=np.uint8)
    sym = np.concatenate([img, img[:, :, ::-1]], axis=2)  # mirror image of itself
    model = load_model(eval_run)
    np.testing.assert_allclose(predict_faces(model, sym, tta=True, progress=False),
                               predict_faces(model, sym, progress=False), atol=1e-6)


def test_shift_views_move_the_face_by_two_pixels():
    x = torch.zeros(1, 1, 48, 48)
    x[0, 0, 20, 30] = 1.0
    views = tta_views(x, "shift")
    assert len(views) == 10 and len(tta_views(x, True)) == 2 and len(tta_views(x, None)) == 1
    assert all(v.shape == x.shape for v in views)
    spots = {tuple(int(i) for i in torch.nonzero(v[0, 0])[0]) for v in views}
    # the original and its mirror (column 47 - 30 = 17), each moved 2 px along one axis
    assert spots == {(20, 30), (20, 17), (20, 28), (20, 32), (18, 30), (22, 30),
                     (20, 15), (20, 19), (18, 17), (22, 17)}
    with pytest.raises(ConfigError, match="test-time augmentation"):
        tta_views(x, "zoom")


def test_shift_tta_on_a_flat_face_changes_nothing(eval_run):
    flat = np.full((3, 48, 48), 120, np.uint8)  # every view of a flat face is the same face
    model = load_model(eval_run)
    np.testing.assert_allclose(predict_faces(model, flat, tta="shift", progress=False),
                               predict_faces(model, flat, progress=False), atol=1e-6)


def test_missing_and_corrupt_models_give_clear_errors(tmp_path, small_faces, capsys):
    test_csv = write_test_csv(small_faces, tmp_path / "test.csv")
    with pytest.raises(ModelError, match="no such model"):
        predict_file(tmp_path / "missing.safetensors", test_csv, tmp_path / "o.csv")
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x00" * 64)
    with pytest.raises(ModelError, match="bad.safetensors"):
        predict_file(bad, test_csv, tmp_path / "o.csv")
    pickled = tmp_path / "model.pt"
    torch.save({"w": torch.zeros(2)}, pickled)
    with pytest.raises(ModelError, match="pickled"):
        load_model(pickled)
    (tmp_path / "run").mkdir()
    with pytest.raises(ModelError, match="model.safetensors"):
        load_model(tmp_path / "run")
    rc = main(["predict", "--model", str(tmp_path / "missing"), "--input", str(test_csv),
               "--out", str(tmp_path / "o.csv")])
    err = capsys.readouterr().err
    assert rc == 2 and "missing" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "o.csv").exists()


def test_cli_predict(eval_run, tmp_path, small_faces, capsys):
    test_csv = write_test_csv(small_faces, tmp_path / "test.csv")
    out = tmp_path / "sub.csv"
    assert main(["predict", "--model", str(eval_run), "--input", str(test_csv), "--out",
                 str(out), "--tta"]) == 0
    assert "Kaggle submission" in capsys.readouterr().out
    assert out.read_text().startswith("id,label\n0,")
    assert main(["predict", "--model", str(eval_run), "--input", str(test_csv), "--out",
                 str(tmp_path / "p.csv"), "--format", "probs"]) == 0
    assert (tmp_path / "p.csv").read_text().startswith("id,angry,")
    for argv in (["predict"], ["predict", "--input", "a", "--image", "b"]):
        with pytest.raises(SystemExit) as e:
            main(argv)
        assert e.value.code == 2
    assert main(["predict", "--model", str(eval_run), "--input", str(test_csv)]) == 2


def test_cli_predict_image_goes_to_the_recognizer(monkeypatch):
    calls = []
    fake = types.ModuleType("ferlab.faces.command")
    fake.predict_photos = lambda model, image, out, json_path, tta=False, detector=None, \
        min_face=None, **compute: calls.append((model, image, out, json_path, tta, detector,
                                                min_face)) or 0
    monkeypatch.setitem(sys.modules, "ferlab.faces.command", fake)
    assert main(["predict", "--image", "photo.jpg", "--json", "r.json", "--tta"]) == 0
    assert main(["predict", "--image", "p.jpg", "--tta-shift"]) == 0
    assert main(["predict", "--image", "q.jpg", "--detector", "blazeface",
                 "--min-face", "0.1"]) == 0
    assert main(["predict", "--image", "r.jpg", "--tta", "none"]) == 0
    # without --tta, the bundled model's own flip TTA (issue 22); --tta none turns it off
    assert calls == [("bundled", "photo.jpg", None, "r.json", "flip", "auto", None),
                     ("bundled", "p.jpg", None, None, "shift", "auto", None),
                     ("bundled", "q.jpg", None, None, "flip", "blazeface", 0.1),
                     ("bundled", "r.jpg", None, None, None, "auto", None)]
