"""The speedrun recipe's pieces: whitening net, identity convs, frozen BN scales, the BN-bias
learning rate, lookahead, alternating flips, recorded TTA, and ``--recipe`` itself."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from ferlab.cli import build_parser, config_from_args
from ferlab.config import AugmentConfig, DataConfig, ModelConfig, RunConfig, TrainConfig
from ferlab.data import load_faces, make_split
from ferlab.errors import ConfigError
from ferlab.model_file import read_model_meta
from ferlab.model_spec import load_model
from ferlab.models import create_model, list_models
from ferlab.models.speedrun import FrozenScaleBN, IdentityConv
from ferlab.recipes import RECIPES, cli_defaults, recipe_config
from ferlab.runs import read_history
from ferlab.training.epoch import alternate_flips
from ferlab.training.errors import TrainingInterrupted
from ferlab.training.lookahead import Lookahead
from ferlab.training.loop import train
from ferlab.training.optim import make_optimizer, set_lr

SMALL = {"widths": [8, 16, 16]}


def test_speedrun_is_registered_and_classifies():
    assert "speedrun" in list_models()
    model = create_model("speedrun", **SMALL)
    assert model(torch.rand(3, 1, 48, 48)).shape == (3, 7)
    flat = create_model("speedrun", widths=[8, 16, 16], head="flatten")
    assert flat(torch.rand(2, 1, 48, 48)).shape == (2, 7)
    with pytest.raises(Exception, match="head"):
        create_model("speedrun", head="mean")


def test_whitening_filters_decorrelate_the_patches_they_were_set_from():
    g = torch.Generator().manual_seed(0)
    # Smooth random faces: neighbouring pixels strongly correlated, as in real faces.
    faces = torch.nn.functional.avg_pool2d(torch.rand(64, 1, 52, 52, generator=g), 5, 1)
    model = create_model("speedrun", **SMALL)
    model.init_from_faces(faces, eps=0.0)  # no regularisation: exact whitening
    w = model.whiten.weight  # [18, 1, 3, 3]: 9 whitening filters, then their negatives
    torch.testing.assert_close(w[9:], -w[:9])
    x = (faces - model.pixel_mean) / model.pixel_std
    out = torch.nn.functional.conv2d(x, w[:9])  # valid positions only: the patches themselves
    flat = out.permute(1, 0, 2, 3).reshape(9, -1).double()
    cov = flat @ flat.T / flat.shape[1]
    torch.testing.assert_close(cov, torch.eye(9, dtype=torch.float64), atol=0.02, rtol=0)
    assert not model.whiten.weight.requires_grad


def test_identity_conv_passes_its_input_through_and_bn_scales_are_frozen():
    conv = IdentityConv(4, 6)
    x = torch.rand(2, 4, 5, 5)
    torch.testing.assert_close(conv(x)[:, :4], x)
    bn = FrozenScaleBN(6)
    assert not bn.weight.requires_grad and bn.bias.requires_grad


def test_optimizer_leaves_frozen_weights_out_and_scales_bias_rate():
    model = create_model("speedrun", **SMALL)
    opt = make_optimizer(model, TrainConfig(optimizer="sgd", bias_lr_scale=64.0))
    in_opt = {id(p) for g in opt.param_groups for p in g["params"]}
    assert id(model.whiten.weight) not in in_opt
    assert all(id(p) in in_opt for p in model.parameters() if p.requires_grad)
    set_lr(opt, 0.5)
    decay, biases = opt.param_groups
    assert decay["lr"] == 0.5 and biases["lr"] == 32.0 and biases["weight_decay"] == 0


def test_lookahead_pulls_weights_onto_the_slow_copy_and_ends_on_it():
    net = torch.nn.Linear(2, 2)
    la = Lookahead(net, every=2)
    slow_before = la.module.weight.clone()
    with torch.no_grad():
        net.weight.add_(1.0)
    assert not la.after_step(net, step=0, total_steps=10)  # not a multiple of 2
    assert la.after_step(net, step=1, total_steps=10)
    torch.testing.assert_close(net.weight, la.module.weight)  # pulled back onto the copy
    assert not torch.equal(la.module.weight, slow_before)  # which moved toward the weights
    with torch.no_grad():
        net.weight.add_(5.0)
    la.after_step(net, step=9, total_steps=10)  # the last step: decay 1, weights = copy
    assert torch.equal(net.weight.detach(), la.module.weight)
    assert float(net.weight.detach().max()) < 4


def test_alternate_flips_mirror_each_face_on_every_other_epoch():
    a, b, c = (alternate_flips(1000, seed=3, epoch=e) for e in range(3))
    assert torch.equal(a, ~b) and torch.equal(a, c)
    assert 400 < int(a.sum()) < 600
    assert not torch.equal(a, alternate_flips(1000, seed=4, epoch=0))


def test_recipe_flags_given_beside_it_win():
    parser = build_parser()
    argv = ["train", "--recipe", "speedrun", "--data", "x.csv", "--out", "o", "--epochs", "3",
            "--lr", "0.2"]
    args, _ = parser.parse_known_args(argv)
    parser.subcommands["train"].set_defaults(**cli_defaults(args.recipe))
    cfg = config_from_args(parser.parse_known_args(argv)[0])
    r = RECIPES["speedrun"]
    assert cfg.train.epochs == 3 and cfg.train.lr == 0.2  # given
    assert cfg.model == r.model and cfg.augment == r.augment  # from the recipe
    assert cfg.train.lookahead == r.train["lookahead"]
    assert cfg.data.val_split == r.data["val_split"]
    assert recipe_config("speedrun", "x.csv", epochs=3, lr=0.2).train == cfg.train
    with pytest.raises(ConfigError, match="unknown recipe"):
        recipe_config("slowrun", "x.csv")


def test_cli_train_with_recipe_end_to_end(tmp_path, fer_csv, monkeypatch):
    from ferlab.cli import main

    monkeypatch.chdir(tmp_path)
    rc = main(["train", "--recipe", "speedrun", "--data", str(fer_csv), "--out", "run",
               "--epochs", "1", "--batch-size", "64", "--model-args", '{"widths": [8, 8, 8]}'])
    assert rc == 0
    cfg = RunConfig.load(tmp_path / "run" / "config.json")
    assert cfg.model.name == "speedrun" and cfg.train.batch_size == 64
    assert read_model_meta(tmp_path / "run" / "model.safetensors")["tta"] == "flip"


def _speedrun_cfg(epochs: int, **train) -> RunConfig:
    base = recipe_config("speedrun", "synthetic")
    return RunConfig(DataConfig(path="synthetic"), ModelConfig("speedrun", SMALL),
                     dataclasses.replace(base.augment, crop=1),
                     dataclasses.replace(base.train, epochs=epochs, batch_size=64, **train))


def test_speedrun_recipe_learns_synthetic_faces(tmp_path, faces):
    data = make_split(faces, "usage")
    run = train(_speedrun_cfg(6, lr=0.5), tmp_path / "run", data=data, progress=False,
                log=lambda s: None)
    assert max(h["val_acc"] for h in read_history(run)) >= 0.9


def test_speedrun_resume_gives_the_same_weights(tmp_path, faces):
    """Lookahead's slow copy and the alternating flips survive an interruption."""
    data = make_split(faces.subset(slice(0, 400)), "stratified:0.2")
    cfg = _speedrun_cfg(3)
    quiet = {"progress": False, "log": lambda s: None, "data": data}
    full = train(cfg, tmp_path / "full", **quiet)
    with pytest.raises(TrainingInterrupted):
        train(cfg, tmp_path / "part", stop_after=1, **quiet)
    train(None, tmp_path / "part", resume=True, **quiet)
    a, b = load_model(full).state_dict(), load_model(tmp_path / "part").state_dict()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0)


def test_new_config_values_are_checked():
    for bad in ({"bias_lr_scale": 0.0}, {"lookahead": -1}, {"val_tta": "ten-crop"}):
        with pytest.raises(ConfigError):
            RunConfig(train=TrainConfig(**bad)).validate()
    assert AugmentConfig(alternate_flip=True).enabled


def test_drop_last_skips_the_small_last_batch():
    from ferlab.training.schedule import steps_per_epoch

    assert steps_per_epoch(1000, TrainConfig(batch_size=128)) == 8
    assert steps_per_epoch(1000, TrainConfig(batch_size=128, drop_last=True)) == 7
    assert steps_per_epoch(100, TrainConfig(batch_size=128, drop_last=True)) == 1


def test_evaluate_uses_the_tta_the_model_records_unless_told(tmp_path, fer_csv, capsys):
    from ferlab.cli import main

    run = tmp_path / "run"
    train(_speedrun_cfg(1), run, data=make_split(load_faces(fer_csv), "usage"), progress=False,
          log=lambda s: None)
    assert main(["evaluate", "--model", str(run), "--data", str(fer_csv), "--out",
                 str(tmp_path / "ev")]) == 0
    out = capsys.readouterr()
    assert "flip TTA, as the model recommends" in out.err and "with flip TTA" in out.out
    assert main(["evaluate", "--model", str(run), "--data", str(fer_csv), "--out",
                 str(tmp_path / "ev2"), "--tta", "none"]) == 0
    out = capsys.readouterr()
    assert "recommends" not in out.err and "TTA" not in out.out


def test_random_window_cuts_each_face_at_its_own_integer_offset():
    from ferlab.augment import random_window

    x = torch.arange(16 * 48 * 48, dtype=torch.float32).view(16, 1, 48, 48)
    w = random_window(x, 40, torch.Generator().manual_seed(0))
    assert w.shape == (16, 1, 40, 40)
    offsets = set()
    for face, window in zip(x, w, strict=True):
        # the window's first pixel says where it was cut: an exact copy of that slice
        y0, x0 = divmod(int(window[0, 0, 0] - face[0, 0, 0]), 48)
        torch.testing.assert_close(window, face[:, y0:y0 + 40, x0:x0 + 40], rtol=0, atol=0)
        offsets.add((y0, x0))
    assert len(offsets) > 1 and all(0 <= a <= 8 and 0 <= b <= 8 for a, b in offsets)


def test_crop_size_trains_on_windows_and_validates_on_whole_faces(tmp_path, faces,
                                                                 monkeypatch):
    from ferlab.models.speedrun import SpeedrunNet

    seen = set()  # (training?, side) of every batch the net is given
    forward = SpeedrunNet.forward
    monkeypatch.setattr(SpeedrunNet, "forward",
                        lambda self, x: seen.add((self.training, x.shape[-1])) or forward(self, x))
    data = make_split(faces.subset(slice(0, 400)), "stratified:0.2")
    base = _speedrun_cfg(1)
    cfg = dataclasses.replace(base, augment=dataclasses.replace(base.augment, crop_size=40))
    run = train(cfg, tmp_path / "run", data=data, progress=False, log=lambda s: None)
    assert (True, 40) in seen and (False, 48) in seen and (True, 48) not in seen
    assert RunConfig.load(run / "config.json").augment.crop_size == 40
    assert load_model(run)(torch.zeros(2, 1, 48, 48)).shape == (2, 7)


def test_crop_size_is_checked_against_the_net_and_its_range():
    for bad in (8, 49):
        with pytest.raises(ConfigError, match="crop size"):
            RunConfig(augment=AugmentConfig(crop_size=bad)).validate()
    cfg = RunConfig(model=ModelConfig("vgg"), augment=AugmentConfig(crop_size=40))
    from ferlab.training.start import build_model

    with pytest.raises(ConfigError, match="cannot take 40x40"):
        build_model(cfg, torch.device("cpu"), init=False)
    args = build_parser().parse_args(["train", "--data", "x.csv", "--crop-size", "44"])
    assert config_from_args(args).augment.crop_size == 44
