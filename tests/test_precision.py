"""Precision by capability: ``auto`` is bf16 only where the CPU computes it natively, and every
command's default goes through that one decision."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from ferlab import precision as prec
from ferlab.config import DataConfig, ModelConfig, RunConfig, TrainConfig
from ferlab.data import make_split
from ferlab.errors import ConfigError
from ferlab.machine import cpu_model, machine_header, vector_extensions
from ferlab.threads import threads_for


@pytest.fixture(params=[False, True], ids=["emulated-bf16", "native-bf16"])
def native(request, monkeypatch):
    """The CPU detector patched to say this CPU has (or lacks) native bf16."""
    monkeypatch.setattr(prec, "bf16_is_native", lambda: request.param)
    return request.param


@pytest.fixture
def no_native_bf16(monkeypatch):
    monkeypatch.setattr(prec, "bf16_is_native", lambda: False)


def test_auto_takes_bf16_only_where_native(native):
    chosen = prec.resolve_precision("auto")
    assert chosen.name == ("bf16" if native else "fp32")
    assert "auto" in chosen.reason and ("natively" in chosen.reason) == native
    # Asked for explicitly, either is taken as asked, whatever the CPU.
    assert prec.resolve_precision("fp32").name == "fp32"
    assert prec.resolve_precision("bf16").name == "bf16"
    with pytest.raises(ConfigError, match="precision"):
        prec.resolve_precision("fp16")


def test_older_flags_are_aliases():
    assert prec.precision_from_flags("auto", bf16=True) == "bf16"
    assert prec.precision_from_flags("auto", no_bf16=True) == "fp32"
    assert prec.precision_from_flags("fp32") == "fp32"
    assert prec.precision_from_flags(None) == "auto"
    with pytest.raises(ConfigError, match="contradict"):
        prec.precision_from_flags("bf16", no_bf16=True)
    with pytest.raises(ConfigError, match="contradict"):
        prec.precision_from_flags("auto", bf16=True, no_bf16=True)
    # TrainConfig's older bool field, and run configs written before precision existed.
    assert TrainConfig(bf16=False).precision == "fp32"
    assert TrainConfig(bf16=True).precision == "bf16"
    old = RunConfig().to_dict()
    del old["train"]["precision"]
    old["train"]["bf16"] = True
    assert RunConfig.from_dict(old).train.precision == "bf16"
    with pytest.raises(ConfigError, match="precision"):
        RunConfig(train=TrainConfig(precision="half")).validate()


def test_cli_flags_reach_the_config():
    from ferlab.cli import _precision, build_parser, config_from_args

    def train_cfg(*extra):
        args = build_parser().parse_args(["train", "--data", "d.csv", "--out", "r", *extra])
        return config_from_args(args).train

    assert train_cfg().precision == "auto"
    assert train_cfg("--no-bf16").precision == "fp32"
    assert train_cfg("--precision", "bf16").precision == "bf16"
    ev = build_parser().parse_args(["evaluate", "--data", "d.csv", "--bf16"])
    assert _precision(ev) == "bf16"
    for cmd in (["predict", "--image", "p.jpg"], ["video", "v.mp4", "--out", "o"], ["demo"],
                ["evaluate", "--data", "d.csv"], ["report", "runs/a"], ["explain"]):
        args = build_parser().parse_args([*cmd, "--precision", "fp32", "--threads", "1"])
        assert _precision(args) == "fp32" and args.threads == 1


def _tiny_train(tmp_path, faces, **train_kw):
    from ferlab.training.loop import train

    cfg = RunConfig(DataConfig(path="synthetic"), ModelConfig("cnn-leaky"),
                    train=TrainConfig(epochs=2, batch_size=64, **train_kw))
    data = make_split(faces.subset(slice(0, 256)), "stratified:0.25")
    return cfg, data, train


def test_training_records_its_choice_and_resume_keeps_it(tmp_path, faces, monkeypatch):
    from ferlab.training.errors import TrainingInterrupted

    cfg, data, train = _tiny_train(tmp_path, faces)
    quiet = {"progress": False, "log": lambda s: None, "data": data}
    monkeypatch.setattr(prec, "bf16_is_native", lambda: False)
    run = train(cfg, tmp_path / "fp32", **quiet)
    saved = json.loads((run / "config.json").read_text())
    assert saved["config"]["train"]["precision"] == "fp32"
    assert saved["precision"]["requested"] == "auto" and saved["precision"]["chosen"] == "fp32"
    assert "no native bf16" in saved["precision"]["reason"]

    # Started where bf16 is native, resumed where it is not: the run keeps bf16.
    monkeypatch.setattr(prec, "bf16_is_native", lambda: True)
    with pytest.raises(TrainingInterrupted):
        train(cfg, tmp_path / "moved", stop_after=1, **quiet)
    monkeypatch.setattr(prec, "bf16_is_native", lambda: False)
    lines = []
    train(None, tmp_path / "moved", resume=True, **{**quiet, "log": lines.append})
    assert json.loads((tmp_path / "moved" / "config.json").read_text())[
        "config"]["train"]["precision"] == "bf16"
    assert any("precision bf16" in line for line in lines)


def test_without_native_bf16_every_default_is_fp32(eval_run, faces, no_native_bf16):
    from ferlab.data import select_split
    from ferlab.evaluate import evaluate_model
    from ferlab.faces.detect import BlazeFaceDetector
    from ferlab.faces.recognizer import Recognizer
    from ferlab.model_spec import load_model
    from ferlab.predict import predict_faces

    model = load_model(eval_run)
    test = select_split(faces, "PublicTest")
    assert evaluate_model(model, test, progress=False).metrics["precision"] == "fp32"
    default = predict_faces(model, test.images[:16], progress=False)
    exact = predict_faces(model, test.images[:16], progress=False, precision="fp32")
    np.testing.assert_array_equal(default, exact)
    rec = Recognizer(eval_run, runtime="torch")
    assert rec.precision.name == "fp32" and rec.computes_in == "fp32"
    assert next(rec._fast.parameters()).dtype == torch.float32
    assert Recognizer(eval_run).precision.name == "fp32"  # auto runs ONNX here (measured faster)
    assert not BlazeFaceDetector(backend="torch").bf16
    from ferlab.explain import get_explainer

    assert get_explainer("lime", model).precision == "fp32"
    from ferlab.runtime.choice import resolve_runtime

    # measured on a Zen 3: ONNX Runtime faster than torch float32 at every batch size
    assert resolve_runtime("auto", 1, "bundled") == "onnx"
    assert resolve_runtime("auto", 64, "bundled") == "onnx"


def test_with_native_bf16_the_defaults_take_it(eval_run, monkeypatch):
    from ferlab.faces.recognizer import Recognizer

    monkeypatch.setattr(prec, "bf16_is_native", lambda: True)
    rec = Recognizer(eval_run, runtime="torch")
    assert rec.precision.name == "bf16" and rec.computes_in == "bf16"
    assert next(rec._fast.parameters()).dtype == torch.bfloat16
    assert Recognizer(eval_run, bf16=False).precision.name == "fp32"


def test_small_work_takes_one_thread_batch_work_every_core():
    assert threads_for("small") == 1
    assert threads_for("batch") >= 1
    assert threads_for("small", threads=3) == 3
    with pytest.raises(ValueError):
        threads_for("huge")


def test_machine_header_names_the_cpu():
    header = machine_header()
    assert cpu_model() in header and "precision auto ->" in header
    assert all(isinstance(v, str) for v in vector_extensions())
