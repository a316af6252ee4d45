"""Training learns, resumes exactly, writes its run folder; augmentation behaves."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from ferlab.augment import augment, mixup
from ferlab.config import AugmentConfig, DataConfig, ModelConfig, RunConfig, TrainConfig
from ferlab.data import make_split
from ferlab.errors import ConfigError, ModelError
from ferlab.model_spec import load_model
from ferlab.runs import read_history
from ferlab.training.distill import cached_teacher_logits, distillation_loss
from ferlab.training.errors import RunExistsError, TrainingInterrupted
from ferlab.training.loop import train
from ferlab.training.schedule import lr_at

NO_AUGMENT = AugmentConfig(flip=False, shift=0, rotation=0, zoom=0)


def _cfg(epochs=3, model="cnn-leaky", augment=NO_AUGMENT, **train_kw):
    return RunConfig(
        data=DataConfig(path="synthetic"), model=ModelConfig(model), augment=augment,
        train=TrainConfig(**{"epochs": epochs, "batch_size": 32, "lr": 2e-3,
                             "weight_decay": 1e-4, **train_kw}))


def test_cnn_learns_synthetic_faces(tmp_path, faces):
    """The seed CNN reaches >= 90% validation accuracy on the mouth-carried classes."""
    data = make_split(faces, "usage")
    run = train(_cfg(epochs=6, model="cnn"), tmp_path / "run", data=data, progress=False,
                log=lambda s: None)
    hist = read_history(run)
    assert len(hist) == 6
    assert max(h["val_acc"] for h in hist) >= 0.9
    for f in ("config.json", "history.csv", "checkpoint.pt", "model.safetensors",
              "metrics.json"):
        assert (run / f).exists()
    model = load_model(run)
    x = torch.from_numpy(data[1].images[:64]).unsqueeze(1).float() / 255
    acc = (model(x).argmax(1).numpy() == data[1].labels[:64]).mean()
    assert acc >= 0.85


@pytest.mark.parametrize("extra", [{}, {"ema": 0.9}])
def test_resume_gives_the_same_weights(tmp_path, faces, extra):
    data = make_split(faces.subset(slice(0, 400)), "stratified:0.2")
    cfg = _cfg(epochs=3, **extra)
    cfg = RunConfig(cfg.data, cfg.model, AugmentConfig(erase=0.3, mixup=0.4), cfg.train)
    quiet = {"progress": False, "log": lambda s: None, "data": data}
    full = train(cfg, tmp_path / "full", **quiet)
    with pytest.raises(TrainingInterrupted):
        train(cfg, tmp_path / "part", stop_after=1, **quiet)
    assert len(read_history(tmp_path / "part")) == 1
    train(None, tmp_path / "part", resume=True, **quiet)
    a = load_model(full).state_dict()
    b = load_model(tmp_path / "part").state_dict()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0)
    ha, hb = read_history(full), read_history(tmp_path / "part")
    assert [h["val_loss"] for h in ha] == [h["val_loss"] for h in hb]


def test_existing_run_needs_force(tmp_path, faces):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "x").write_text("keep me")
    with pytest.raises(RunExistsError):
        train(_cfg(epochs=1), tmp_path / "run", data=make_split(faces, "usage"),
              progress=False, log=lambda s: None)
    assert (tmp_path / "run" / "x").read_text() == "keep me"


def test_bad_config_values():
    for bad in ({"epochs": 0}, {"lr": -1.0}, {"optimizer": "rmsprop"}, {"label_smoothing": 1.5}):
        with pytest.raises(ConfigError):
            RunConfig(train=TrainConfig(**bad)).validate()


def test_lr_schedules():
    t = TrainConfig(lr=1.0, schedule="onecycle")
    lrs = [lr_at(s, 100, t, 10) for s in range(100)]
    assert lrs[0] == pytest.approx(1 / 25) and max(lrs) == pytest.approx(1.0, rel=1e-3)
    assert lrs[-1] < 0.01
    t = TrainConfig(lr=1.0, schedule="cosine", warmup_epochs=1)
    assert lr_at(0, 100, t, 10) == pytest.approx(0.1)
    assert lr_at(10, 100, t, 10) == pytest.approx(1.0)
    assert lr_at(55, 100, t, 10) == pytest.approx(0.5, abs=1e-9) or math.isclose(
        lr_at(55, 100, t, 10), 0.5, abs_tol=0.02)
    assert lr_at(5, 100, TrainConfig(lr=0.1, schedule="plateau"), 10, 0.25) == pytest.approx(0.025)


def test_augment_is_seeded_and_keeps_range():
    x = torch.rand(16, 1, 48, 48)
    cfg = AugmentConfig(shear=10, crop=4, erase=0.5)
    a = augment(x, cfg, torch.Generator().manual_seed(1))
    b = augment(x, cfg, torch.Generator().manual_seed(1))
    assert torch.equal(a, b) and a.shape == x.shape
    assert a.min() >= 0 and a.max() <= 1
    assert not torch.equal(a, x)
    # flip alone is an exact mirror of some faces
    f = augment(x, AugmentConfig(flip=True, shift=0, rotation=0, zoom=0),
                torch.Generator().manual_seed(0))
    mirrored = [torch.allclose(f[i], x[i].flip(-1), atol=1e-5) for i in range(16)]
    same = [torch.allclose(f[i], x[i], atol=1e-5) for i in range(16)]
    assert all(m or s for m, s in zip(mirrored, same, strict=True)) and any(mirrored)


def test_mixup_targets_sum_to_one():
    torch.manual_seed(0)
    x = torch.rand(8, 1, 48, 48)
    y = torch.nn.functional.one_hot(torch.arange(8) % 7, 7).float()
    xm, ym = mixup(x, y, 0.4, torch.Generator().manual_seed(0))
    assert xm.shape == x.shape
    torch.testing.assert_close(ym.sum(1), torch.ones(8))


def test_distillation_loss_is_zero_on_agreement_and_scaled_by_t_squared():
    s, t = torch.tensor([[2.0, 0.5, -1.0]]), torch.tensor([[0.0, 1.0, 0.0]])
    assert distillation_loss(s, s.clone(), 2.0).item() == pytest.approx(0.0, abs=1e-6)
    assert distillation_loss(s, t, 1.0).item() > 0
    # Same logits scaled by T give the same softened distributions: loss(T) = T^2 * loss(1).
    assert distillation_loss(3 * s, 3 * t, 3.0).item() == pytest.approx(
        9 * distillation_loss(s, t, 1.0).item(), rel=1e-5)


def test_distillation_needs_a_teacher_and_a_weight():
    for kw, msg in [({"distill": 0.5}, "teacher"), ({"teacher": "runs/a"}, "distill"),
                    ({"teacher": "runs/a", "distill": 1.5}, "distill"),
                    ({"teacher": "runs/a", "distill": 0.5, "temperature": 0}, "temperature"),
                    ({"teacher_cache": True}, "teacher")]:
        with pytest.raises(ConfigError, match=msg):
            _cfg(**kw).validate()
    cached = _cfg(teacher="runs/a", distill=0.5, teacher_cache=True)
    with pytest.raises(ConfigError, match="mixup"):
        dataclasses.replace(cached, augment=AugmentConfig(mixup=0.2)).validate()


def test_cached_teacher_is_the_mean_of_a_face_and_its_mirror():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(48 * 48, 7))
    faces = torch.randint(0, 256, (5, 1, 48, 48), dtype=torch.uint8)
    got = cached_teacher_logits(net, faces, bf16=False, channels_last=False, batch_size=2)
    with torch.no_grad():
        probs = [net(v.float() / 255).softmax(1) for v in (faces, faces.flip(-1))]
    torch.testing.assert_close(got.exp(), (probs[0] + probs[1]) / 2)
    # A face and its mirror get the same target, so flip augmentation cannot contradict it.
    torch.testing.assert_close(
        got, cached_teacher_logits(net, faces.flip(-1), False, False, batch_size=2))


def test_init_starts_from_the_given_weights(tmp_path, faces):
    data = make_split(faces.subset(slice(0, 300)), "stratified:0.2")
    quiet = {"progress": False, "log": lambda s: None, "data": data}
    base = train(_cfg(epochs=1), tmp_path / "base", **quiet)
    # A learning rate too small to move the weights: the run ends where it started.
    tuned = train(_cfg(epochs=1, init=str(base), lr=1e-12), tmp_path / "tuned", **quiet)
    a, b = load_model(base).state_dict(), load_model(tuned).state_dict()
    for k in a:
        if "weight" in k and a[k].dim() > 1:
            torch.testing.assert_close(a[k], b[k], atol=1e-6, rtol=0)
    with pytest.raises(ModelError, match="do not fit"):
        train(_cfg(epochs=1, model="cnn", init=str(base)), tmp_path / "other", **quiet)


@pytest.mark.parametrize("cache", [False, True], ids=["teacher-per-batch", "teacher-cached"])
def test_student_learns_the_teachers_answers(tmp_path, faces, cache):
    """With only the teacher's soft targets (distill 1) the student follows the teacher, even
    against the labels: this teacher was trained to answer the next class."""
    shifted = dataclasses.replace(faces, labels=(faces.labels + 1) % 7)
    quiet = {"progress": False, "log": lambda s: None}
    teacher = train(_cfg(epochs=6), tmp_path / "teacher",
                    data=make_split(shifted, "usage"), **quiet)
    # True labels to train on; the teacher's answers to validate (and keep the best epoch) on.
    data = (make_split(faces, "usage")[0], make_split(shifted, "usage")[1])
    student = train(_cfg(epochs=4, teacher=str(teacher), distill=1.0, temperature=1.0,
                         teacher_cache=cache),
                    tmp_path / "student", data=data, **quiet)
    assert read_history(student)[-1]["train_acc"] <= 0.1  # against the true labels
    x = torch.from_numpy(data[1].images).unsqueeze(1).float() / 255
    with torch.no_grad():
        said = load_model(student)(x).argmax(1)
        taught = load_model(teacher)(x).argmax(1)
    assert (said == taught).float().mean().item() >= 0.8


def test_resumed_run_reads_the_teachers_answers_it_saved(tmp_path, faces, monkeypatch):
    """--teacher-cache keeps the teacher's answers in the run folder: a resumed run reads them
    instead of asking the teacher again (minutes for an ensemble), and resumes exactly."""
    import ferlab.training.distill as distill

    data = make_split(faces.subset(slice(0, 300)), "stratified:0.2")
    quiet = {"progress": False, "log": lambda s: None, "data": data}
    teacher = train(_cfg(epochs=1), tmp_path / "teacher", **quiet)
    cfg = _cfg(epochs=2, teacher=str(teacher), distill=0.5, teacher_cache=True)
    full = train(cfg, tmp_path / "full", **quiet)
    with pytest.raises(TrainingInterrupted):
        train(cfg, tmp_path / "part", stop_after=1, **quiet)
    saved = tmp_path / "part" / "teacher-logits.safetensors"
    assert saved.is_file()

    def no_teacher(*args, **kwargs):
        raise AssertionError("the teacher was asked again")

    monkeypatch.setattr(distill, "cached_teacher_logits", no_teacher)
    train(None, tmp_path / "part", resume=True, **quiet)
    a, b = load_model(full).state_dict(), load_model(tmp_path / "part").state_dict()
    for k in a:
        torch.testing.assert_close(a[k], b[k])
    # another teacher's answers are not taken for this one's
    key = distill.teacher_cache_key(load_model(teacher), torch.zeros(3, 48, 48, dtype=torch.uint8),
                                    False)
    assert distill.load_teacher_cache(saved, key) is None


def test_cli_distillation_flags_reach_the_config():
    from ferlab.cli import build_parser, config_from_args

    def cfg(*extra):
        args = build_parser().parse_args(["train", "--data", "d.csv", "--out", "r", *extra])
        return config_from_args(args).train

    plain = cfg()
    assert (plain.init, plain.teacher, plain.distill, plain.teacher_cache) == ("", "", 0.0, False)
    assert cfg("--teacher", "runs/ens", "--teacher-cache").teacher_cache
    t = cfg("--init", "runs/a", "--teacher", "runs/ens", "--temperature", "3")
    assert (t.init, t.teacher, t.distill, t.temperature) == ("runs/a", "runs/ens", 0.5, 3.0)
    assert cfg("--teacher", "runs/ens", "--distill", "0.8").distill == 0.8
    with pytest.raises(ConfigError, match="teacher"):
        cfg("--distill", "0.5")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the machine without a GPU")
def test_device_auto_is_the_cpu_here_and_cuda_is_refused_with_a_reason(tmp_path, faces):
    from ferlab.cli import build_parser, config_from_args
    from ferlab.training.start import resolve_device

    assert resolve_device("auto") == torch.device("cpu")
    with pytest.raises(ConfigError, match="no GPU"):
        resolve_device("cuda")
    with pytest.raises(ConfigError, match="no GPU"):
        train(_cfg(epochs=1, device="cuda"), tmp_path / "run", data=make_split(faces, "usage"),
              progress=False, log=lambda s: None)
    with pytest.raises(ConfigError, match="device"):
        _cfg(device="tpu").validate()
    args = build_parser().parse_args(["train", "--data", "d.csv", "--out", "r", "--device", "cpu"])
    assert config_from_args(args).train.device == "cpu"
    # Runs written before the option existed resume on the device PyTorch finds.
    old = _cfg().to_dict()
    del old["train"]["device"]
    assert RunConfig.from_dict(old).train.device == "auto"
