"""Metrics equal hand-computed values; evaluate, curves and compare work end to end."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from ferlab.cli import main
from ferlab.compare import compare_runs, format_comparison
from ferlab.data import select_split
from ferlab.errors import DataError
from ferlab.evaluate import (
    compute_metrics,
    confident_mistakes,
    evaluate_model,
    expected_calibration_error,
    format_metrics,
    reliability_bins,
    write_evaluation,
)
from ferlab.model_spec import load_model
from ferlab.plots import curves
from ferlab.predict import predict_faces
from ferlab.synthetic import make_faces, write_test_csv


def _onehot_probs(pred, conf=0.9):
    """Probabilities putting ``conf`` on ``pred`` and the rest evenly elsewhere."""
    p = np.full((len(pred), 7), (1 - conf) / 6)
    p[np.arange(len(pred)), pred] = conf
    return p


def test_metrics_match_hand_computed_values():
    labels = np.array([0, 0, 1, 2, 2, 2, 3, 3])
    pred = np.array([0, 2, 1, 2, 2, 0, 3, 4])
    m = compute_metrics(labels, _onehot_probs(pred))
    assert m["n"] == 8
    assert m["accuracy"] == pytest.approx(5 / 8)
    cm = np.array(m["confusion"])
    assert cm.shape == (7, 7) and cm.sum() == 8
    assert cm[0, 0] == 1 and cm[0, 2] == 1 and cm[2, 0] == 1 and cm[3, 4] == 1  # rows = true
    angry, fear, happy, sad = (m["per_class"][c] for c in ("angry", "fear", "happy", "sad"))
    # angry: predicted twice (1 right), 2 true faces -> P 1/2, R 1/2, F1 1/2
    assert (angry["precision"], angry["recall"], angry["f1"]) == pytest.approx((0.5, 0.5, 0.5))
    # fear: predicted 3 times (2 right), 3 true faces -> P = R = F1 = 2/3
    assert (fear["precision"], fear["recall"], fear["f1"]) == pytest.approx((2 / 3,) * 3)
    # happy: predicted once (right), 2 true -> P 1, R 1/2, F1 2/3
    assert (happy["precision"], happy["recall"], happy["f1"]) == pytest.approx((1, .5, 2 / 3))
    # sad: predicted once, never right, no true faces -> zeros, support 0
    assert (sad["precision"], sad["recall"], sad["f1"], sad["support"]) == (0, 0, 0, 0)
    assert [m["per_class"][c]["support"] for c in m["classes"]] == [2, 1, 3, 2, 0, 0, 0]
    f1 = [0.5, 1.0, 2 / 3, 2 / 3, 0, 0, 0]
    assert m["macro_f1"] == pytest.approx(sum(f1) / 7)
    assert m["nll"] == pytest.approx(-(5 * np.log(0.9) + 3 * np.log(0.1 / 6)) / 8)
    json.dumps(m)  # plain values only
    table = format_metrics(m)
    assert "fear" in table and "accuracy 0.6250" in table


def test_ece_matches_hand_computed_value():
    # 4 faces at confidence .95 (3 right) and 2 at .55 (both right):
    # ECE = (4 * |.75 - .95| + 2 * |1 - .55|) / 6
    labels = np.array([0, 1, 2, 3, 4, 5])
    pred = np.array([0, 1, 2, 0, 4, 5])
    probs = np.vstack([_onehot_probs(pred[:4], 0.95), _onehot_probs(pred[4:], 0.55)])
    assert expected_calibration_error(probs, labels, n_bins=10) == pytest.approx(
        (4 * 0.2 + 2 * 0.45) / 6)
    b = reliability_bins(probs, labels, n_bins=10)
    assert b["count"].tolist() == [0, 0, 0, 0, 0, 2, 0, 0, 0, 4]
    assert b["accuracy"][9] == pytest.approx(0.75) and b["confidence"][5] == pytest.approx(0.55)
    assert np.isnan(b["accuracy"][0])
    # perfectly confident and right: no calibration error; confidence 1.0 is in the last bin
    assert expected_calibration_error(np.eye(7)[[1, 2]], np.array([1, 2])) == 0
    assert reliability_bins(np.eye(7)[[1]], np.array([1]), 5)["count"].tolist() == [0] * 4 + [1]


def test_confident_mistakes_order_and_limit():
    labels = np.array([0, 0, 0, 0, 1])
    probs = _onehot_probs(np.array([3, 4, 0, 5, 1]), 0.5)
    probs[0, 3], probs[1, 4], probs[3, 5] = 0.6, 0.9, 0.7
    m = confident_mistakes(probs, labels, per_class=2)
    assert m[0].tolist() == [1, 3]  # conf .9 then .7; the right face 2 never appears
    assert m[1].tolist() == [] and set(m) == set(range(7))


def test_confident_mistakes_show_each_image_once():
    labels = np.array([0, 0, 0, 1])
    probs = _onehot_probs(np.array([3, 3, 3, 2]), 0.5)
    probs[:, 3] = [0.9, 0.8, 0.7, 0.0]
    probs[3, 2] = 0.6
    images = np.zeros((4, 48, 48), np.uint8)
    images[2] = 7  # faces 0, 1 and 3 are one image (FER2013 has such duplicates)
    m = confident_mistakes(probs, labels, per_class=3, images=images)
    assert m[0].tolist() == [0, 2] and m[1].tolist() == []  # face 3 too repeats face 0
    assert confident_mistakes(probs, labels, per_class=3)[0].tolist() == [0, 1, 2]


def test_evaluate_model_and_tta(eval_run, faces):
    model = load_model(eval_run)
    test = select_split(faces, "PublicTest")
    ev = evaluate_model(model, test, progress=False, split="PublicTest")
    assert ev.metrics["n"] == 140 and ev.accuracy >= 0.9
    assert ev.metrics["model"] == "cnn-leaky" and ev.metrics["split"] == "PublicTest"
    assert ev.probs.shape == (140, 7)
    np.testing.assert_allclose(ev.probs.sum(1), 1, atol=1e-5)
    # TTA is the mean of the face's and its mirror's probabilities
    tta = predict_faces(model, test, tta=True, progress=False, precision="fp32")
    x = torch.from_numpy(test.images).unsqueeze(1).float() / 255
    with torch.no_grad():
        want = (model(x).softmax(1) + model(x.flip(-1)).softmax(1)) / 2
    np.testing.assert_allclose(tta, want.numpy(), atol=1e-5)
    assert not np.allclose(tta, ev.probs)
    assert evaluate_model(model, test, tta=True, progress=False).metrics["tta"] == "flip"
    assert evaluate_model(model, test, tta="shift", progress=False).metrics["tta"] == "shift"


def test_predict_restores_train_mode(eval_run, small_faces):
    model = load_model(eval_run).train()
    predict_faces(model, small_faces, progress=False)
    assert model.training
    # and its memory format: channels-last is used only while predicting
    assert all(p.is_contiguous() for p in model.parameters())


def test_evaluate_needs_labels(eval_run, tmp_path):
    from ferlab.data import load_faces

    test_csv = write_test_csv(make_faces(14, seed=5), tmp_path / "test.csv")
    with pytest.raises(DataError, match="no labels"):
        evaluate_model(load_model(eval_run), load_faces(test_csv), progress=False)


def test_write_evaluation_files(eval_run, faces, tmp_path):
    ev = evaluate_model(load_model(eval_run), faces.subset(slice(0, 70)), progress=False)
    ev.probs[:3] = np.roll(ev.probs[:3], 1, axis=1)  # make sure the gallery has mistakes
    paths = write_evaluation(ev, tmp_path / "eval", per_class=3)
    for key in ("confusion", "confusion_normalized", "reliability", "mistakes"):
        assert paths[key] == tmp_path / "eval" / f"{key}.png"
        assert paths[key].read_bytes()[:4] == b"\x89PNG"
    saved = json.loads(paths["metrics"].read_text())
    assert saved["n"] == 70 and len(saved["confusion"]) == 7


def test_cli_evaluate_end_to_end(eval_run, fer_csv, tmp_path, capsys):
    out = tmp_path / "eval"
    rc = main(["evaluate", "--model", str(eval_run), "--data", str(fer_csv), "--out", str(out),
               "--json", str(tmp_path / "m.json")])
    assert rc == 0
    m = json.loads((tmp_path / "m.json").read_text())
    assert m["n"] == 140 and m["split"] == "PublicTest"  # default: the file's test rows
    for key in ("accuracy", "per_class", "confusion", "ece", "model"):
        assert key in m
    assert set(m["per_class"]["happy"]) == {"precision", "recall", "f1", "support"}
    assert {p.name for p in out.iterdir()} == {"confusion.png", "confusion_normalized.png",
                                               "reliability.png", "mistakes.png"}
    assert "precision" in capsys.readouterr().out
    assert main(["evaluate", "--model", str(eval_run), "--data", str(fer_csv), "--split", "all",
                 "--tta", "--mistakes", "2", "--out", str(out)]) == 0
    assert json.loads((out / "metrics.json").read_text())["n"] == 840
    capsys.readouterr()
    rc = main(["evaluate", "--model", str(eval_run), "--data", str(fer_csv), "--split",
               "PrivateTest", "--out", str(out)])
    err = capsys.readouterr().err
    assert rc == 2 and "PrivateTest" in err and "Traceback" not in err


def test_curves_and_compare(eval_run, tmp_path, capsys):
    png = tmp_path / "curves.png"
    assert main(["curves", str(eval_run), str(eval_run), "--out", str(png)]) == 0
    assert png.read_bytes()[:4] == b"\x89PNG"
    hist = [{"epoch": 1, "train_loss": 1.0, "val_loss": 1.1, "train_acc": .5, "val_acc": .4}]
    assert curves([hist], tmp_path / "c2.png", labels=["x"]).exists()
    rows = compare_runs([eval_run])
    r = rows[0]
    assert r["model"] == "cnn-leaky" and r["params"] > 0 and r["epochs"] == 2
    assert r["gap"] == pytest.approx(r["final_train_acc"] - r["final_val_acc"])
    assert "best val" in format_comparison(rows)
    assert main(["compare", str(eval_run), "--json", str(tmp_path / "c.json")]) == 0
    assert "cnn-leaky" in capsys.readouterr().out
    rc = main(["compare", str(tmp_path)])
    assert rc == 2 and "history.csv" in capsys.readouterr().err
