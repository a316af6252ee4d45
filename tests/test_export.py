"""ONNX export, the ONNX Runtime classifier, int8, and the --runtime choice."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch

from ferlab.cli import main
from ferlab.constants import EMOTIONS
from ferlab.errors import ConfigError, ModelError
from ferlab.faces.recognizer import Recognizer
from ferlab.model_spec import load_model
from ferlab.models import create_model
from ferlab.predict import predict_faces
from ferlab.runtime import choice as runtime_choice
from ferlab.runtime import export as export_mod
from ferlab.runtime.export import FP32_TOLERANCE, compare_with_torch, export_model, quantize_int8
from ferlab.runtime.onnx_classifier import OnnxClassifier
from ferlab.runtime.onnx_graph import export_onnx, read_onnx_meta


@pytest.fixture(scope="module")
def trained(eval_run):
    return load_model(eval_run)


@pytest.fixture(scope="module")
def graph(trained):
    return export_onnx(trained, source="run")


def test_export_matches_torch_on_synthetic_faces(trained, graph, faces):
    check = compare_with_torch(trained, OnnxClassifier(graph), faces.images[:200])
    assert check.faces == 200
    assert check.max_abs_diff < FP32_TOLERANCE
    assert check.agreement == 1.0


def test_untrained_vgg_with_batch_norms_matches_torch(small_faces):
    torch.manual_seed(0)
    model = create_model("vgg", width=4, hidden=16).eval()
    with torch.no_grad():  # non-trivial batch-norm statistics, so folding them is exercised
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
    clf = OnnxClassifier.from_model(model)
    check = compare_with_torch(model, clf, small_faces.images)
    assert check.max_abs_diff < FP32_TOLERANCE
    # batch size is free in the graph: one face gives what it gives in a batch
    one = clf.predict(small_faces.images[:1], progress=False)
    np.testing.assert_allclose(one, clf.predict(small_faces.images, progress=False)[:1],
                               atol=1e-5)


def test_metadata_round_trips_through_a_file(trained, graph, tmp_path):
    path = tmp_path / "m.onnx"
    path.write_bytes(graph)
    meta = read_onnx_meta(path)
    assert meta["classes"] == list(EMOTIONS)
    assert meta["image_size"] == 48 and meta["precision"] == "float32"
    assert meta["name"] == trained.name == "cnn-leaky" and meta["kwargs"] == trained.kwargs
    assert meta["pixel_mean"] == pytest.approx(float(trained.pixel_mean))
    assert meta["pixel_std"] == pytest.approx(float(trained.pixel_std))
    assert meta["source"] == "run"
    clf = OnnxClassifier(path)
    assert clf.meta == meta and clf.name == "cnn-leaky"


def test_onnx_without_ferlab_metadata_is_refused(graph, tmp_path):
    import onnx

    proto = onnx.load_from_string(graph)
    del proto.metadata_props[:]
    path = tmp_path / "other.onnx"
    path.write_bytes(proto.SerializeToString())
    with pytest.raises(ModelError, match="no ferlab metadata"):
        OnnxClassifier(path)
    (tmp_path / "junk.onnx").write_bytes(b"not a graph")
    with pytest.raises(ModelError, match="cannot load it"):
        OnnxClassifier(tmp_path / "junk.onnx")


def test_int8_runs_and_stays_close_to_float32(trained, graph, faces):
    train = faces.subset(faces.usage == "Training")
    test = faces.subset(faces.usage == "PublicTest")
    q = quantize_int8(graph, train.images[:128])
    assert len(q) < len(graph) / 2  # int8 weights
    clf = OnnxClassifier(q)
    assert clf.precision == "int8" and "128 faces" in clf.meta["quantisation"]
    p8 = clf.predict(test.images, progress=False)
    np.testing.assert_allclose(p8.sum(1), 1.0, atol=1e-4)
    p32 = OnnxClassifier(graph).predict(test.images, progress=False)
    acc8, acc32 = ((p.argmax(1) == test.labels).mean() for p in (p8, p32))
    assert acc32 > 0.9 and acc8 >= acc32 - 0.05


def test_export_model_int8_gates_and_records_accuracy(eval_run, fer_csv, tmp_path):
    out = tmp_path / "q.onnx"
    r = export_model(eval_run, out, int8=True, data=fer_csv, calibration_faces=100, check=64)
    meta = read_onnx_meta(out)
    assert meta["precision"] == "int8" and meta["accuracy"] == r.accuracy
    assert r.accuracy["faces"] == 140 and r.accuracy["float32"] > 0.9
    assert r.fp32_check.max_abs_diff < FP32_TOLERANCE


def test_int8_that_loses_accuracy_is_not_written(eval_run, fer_csv, tmp_path, monkeypatch):
    # Stand in for a bad quantisation: the graph of an untrained net, which scores near chance.
    bad = export_onnx(create_model("cnn-leaky"))
    monkeypatch.setattr(export_mod, "quantize_int8", lambda g, cal: bad)
    out = tmp_path / "bad.onnx"
    with pytest.raises(ModelError, match="points under float32"):
        export_model(eval_run, out, int8=True, data=fer_csv, calibration_faces=50, check=16)
    assert not out.exists()


def test_export_that_disagrees_fails_loudly(eval_run, tmp_path, monkeypatch):
    monkeypatch.setattr(export_mod, "FP32_TOLERANCE", -1.0)
    out = tmp_path / "x.onnx"
    with pytest.raises(ModelError, match="disagrees with PyTorch"):
        export_model(eval_run, out, check=8)
    assert not out.exists()


def test_cli_export_then_predict_with_the_file(eval_run, fer_csv, tmp_path, capsys):
    out = tmp_path / "m.onnx"
    assert main(["export", "--model", str(eval_run), "--out", str(out), "--data",
                 str(fer_csv)]) == 0
    assert "max |p_onnx - p_torch|" in capsys.readouterr().out
    assert main(["predict", "--model", str(out), "--input", str(fer_csv), "--out",
                 str(tmp_path / "p.csv")]) == 0
    assert main(["predict", "--model", str(out), "--runtime", "torch", "--input",
                 str(fer_csv), "--out", str(tmp_path / "q.csv")]) == 2
    assert "runs with --runtime onnx" in capsys.readouterr().err


def _labels(path) -> list[str]:
    with open(path) as f:
        return [row["label"] for row in csv.DictReader(f)]


def test_predict_runtime_onnx_gives_torch_labels(eval_run, fer_csv, tmp_path, capsys):
    for rt in ("torch", "onnx"):
        assert main(["predict", "--model", str(eval_run), "--input", str(fer_csv),
                     "--runtime", rt, "--out", str(tmp_path / f"{rt}.csv")]) == 0
    torch_labels, onnx_labels = _labels(tmp_path / "torch.csv"), _labels(tmp_path / "onnx.csv")
    assert len(torch_labels) == 840 and torch_labels == onnx_labels


def test_evaluate_records_the_runtime(eval_run, fer_csv, tmp_path, capsys):
    import json

    assert main(["evaluate", "--model", str(eval_run), "--data", str(fer_csv), "--runtime",
                 "onnx", "--out", str(tmp_path), "--mistakes", "1"]) == 0
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["runtime"] == "onnx" and metrics["accuracy"] > 0.9


@pytest.mark.parametrize("native", [True, False])
def test_auto_takes_the_table_entry_for_the_cpu_kind(native, monkeypatch):
    monkeypatch.setattr(runtime_choice.precision, "bf16_is_native", lambda: native)
    kind = "bf16-native" if native else "no-bf16"
    table = dict.fromkeys(runtime_choice.CHOICES, "torch")
    table[kind, "one", "float32"] = "onnx"
    table[kind, "many", "int8"] = "onnx"
    monkeypatch.setattr(runtime_choice, "CHOICES", table)
    assert runtime_choice.resolve_runtime("auto", 1) == "onnx"
    assert runtime_choice.resolve_runtime("auto", 256) == "torch"
    monkeypatch.setattr(runtime_choice, "onnx_precision", lambda model: "int8")
    assert runtime_choice.resolve_runtime("auto", 256) == "onnx"
    assert runtime_choice.resolve_runtime("auto", 1) == "torch"
    assert runtime_choice.resolve_runtime("torch", 1) == "torch"
    assert runtime_choice.resolve_runtime(None, 1) == "torch"  # library default: the model's
    assert runtime_choice.resolve_runtime("auto", 1, bf16=True) == "torch"  # bf16 by name


def test_the_table_covers_every_kind():
    for kind in ("bf16-native", "no-bf16"):
        for batch in (1, 64):
            for prec in ("float32", "int8"):
                assert runtime_choice.CHOICES[kind, runtime_choice.batch_kind(batch), prec] in (
                    "torch", "onnx")
    with pytest.raises(ConfigError, match="runtime must be one of"):
        runtime_choice.resolve_runtime("tensorrt", 1)


def test_recognizer_auto_follows_the_table(eval_run, faces, monkeypatch):
    monkeypatch.setattr(runtime_choice, "CHOICES",
                        dict.fromkeys(runtime_choice.CHOICES, "onnx"))
    rec = Recognizer(eval_run, detector="haar")
    assert rec.runtime == "onnx"
    ref = Recognizer(eval_run, detector="haar", runtime="torch", bf16=False)
    assert ref.runtime == "torch"
    crops = faces.images[:20]
    np.testing.assert_allclose(rec.classify(crops), ref.classify(crops), atol=1e-4)
    # a model passed in as a module runs in torch under auto: it may change afterwards
    assert Recognizer(load_model(eval_run), detector="haar").runtime == "torch"


def test_lime_classifies_its_perturbed_faces_in_the_runtime_chosen(eval_run, faces, fer_csv,
                                                                    tmp_path, monkeypatch):
    from ferlab.explain import get_explainer

    x = torch.from_numpy(faces.images[:2]).float()[:, None] / 255
    calls = []

    class Counting(OnnxClassifier):
        def __call__(self, batch):
            calls.append(len(batch))
            return super().__call__(batch)

    trained = load_model(eval_run)
    clf = Counting(export_onnx(trained, source="run"))
    ref = get_explainer("lime", trained, samples=64, precision="fp32").attribute(x, 0)
    got = get_explainer("lime", trained, samples=64, classifier=clf).attribute(x, 0)
    assert sum(calls) == 2 * 64  # every perturbed face went to the graph, none to torch
    torch.testing.assert_close(got, ref, atol=1e-3, rtol=0)  # the same seeded samples and fit
    # The Recognizer hands LIME the graph it runs; the command does what --runtime says.
    monkeypatch.setattr(runtime_choice, "CHOICES", dict.fromkeys(runtime_choice.CHOICES, "onnx"))
    rec = Recognizer(eval_run, detector="haar")
    rec._onnx.__class__ = Counting  # count what reaches the Recognizer's own graph
    calls.clear()
    rec.explain(faces.images[0], "lime", samples=32)
    assert sum(calls) == 32
    from ferlab import cli

    picked = []
    real = cli._lime_classifier
    monkeypatch.setattr(cli, "_lime_classifier",
                        lambda *a: picked.append(real(*a)) or picked[-1])
    for runtime in ("torch", "auto"):
        assert main(["explain", "--model", str(eval_run), "--data", str(fer_csv), "--method",
                     "lime", "--per-class", "1", "--runtime", runtime, "--lime-samples", "16",
                     "--out", str(tmp_path / runtime)]) == 0
    assert picked[0] is None and isinstance(picked[1], OnnxClassifier)


def test_recognizer_on_an_onnx_file(graph, faces, tmp_path):
    path = tmp_path / "m.onnx"
    path.write_bytes(graph)
    rec = Recognizer(path, detector="haar")
    found = rec.detect_emotions(faces.images[0])  # a 48x48 picture is one whole face
    assert len(found) == 1 and found[0].label in EMOTIONS
    with pytest.raises(ModelError, match="need the PyTorch model"):
        rec.explain(found[0])
    with pytest.raises(ConfigError):
        Recognizer(path, runtime="torch")


def test_predict_faces_accepts_an_onnx_classifier(trained, graph, faces):
    clf = OnnxClassifier(graph)
    got = predict_faces(clf, faces.images[:50], tta="shift", progress=False)
    ref = predict_faces(trained, faces.images[:50], tta="shift", progress=False,
                        precision="fp32")
    np.testing.assert_allclose(got, ref, atol=1e-4)


def test_the_shipped_int8_graph_is_the_bundled_models_and_passed_the_gate():
    from ferlab.assets import bundled_model_path
    from ferlab.runtime.onnx_classifier import (
        bundled_int8_path,
        file_sha256,
        load_classifier,
        shipped_graph,
    )

    meta = read_onnx_meta(bundled_int8_path())
    # Fails when the bundled model is retrained without re-exporting its int8 graph.
    assert meta["source_sha256"] == file_sha256(bundled_model_path())
    assert meta["precision"] == "int8" and meta["accuracy"]["faces"] == 3589
    assert 100 * (meta["accuracy"]["float32"] - meta["accuracy"]["int8"]) <= 0.3
    bundled = load_classifier("bundled")
    assert shipped_graph(bundled) == bundled_int8_path()
    assert runtime_choice.onnx_precision(bundled) == "int8"
    # the same weights passed in as a plain module are not known to be the bundled file's
    assert shipped_graph(load_model("bundled")) is None


def test_bundled_runtime_onnx_runs_the_int8_graph(faces):
    rec = Recognizer("bundled", detector="haar", runtime="onnx")
    assert rec._onnx.precision == "int8"
    ref = Recognizer("bundled", detector="haar", runtime="torch", bf16=False)
    crops = faces.images[:8]
    assert np.abs(rec.classify(crops) - ref.classify(crops)).max() < 0.2
