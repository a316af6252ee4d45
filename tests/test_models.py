"""Every registered model: shape, no NaN, parameter counts; saving and loading."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ferlab.errors import ModelError
from ferlab.inference import inference_copy
from ferlab.model_file import save_model
from ferlab.model_spec import load_model
from ferlab.models import count_params, create_model, list_models, model_stats
from ferlab.predict import predict_faces
from ferlab.synthetic import make_faces

SMALL = {"vgg": {"width": 8}, "resnet18": {"width": 8}}


@pytest.mark.parametrize("name", list_models())
def test_forward(name):
    torch.manual_seed(0)
    model = create_model(name, **SMALL.get(name, {})).eval()
    out = model(torch.rand(3, 1, 48, 48))
    assert out.shape == (3, 7) and torch.isfinite(out).all()
    for layer in model.conv_layer_names():
        model.get_submodule(layer)  # names are usable with get_submodule
    if model.cam_layer:
        assert isinstance(model.get_submodule(model.cam_layer), torch.nn.Conv2d)


def test_seed_report_parameter_counts():
    # Seed report 000's counts: trainable + BatchNorm statistics.
    assert count_params(create_model("cnn")) == (4_179_847, 3_968)
    assert sum(count_params(create_model("cnn"))) == 4_183_815
    assert count_params(create_model("dnn")) == (4_472_839, 6_144)
    assert sum(count_params(create_model("dnn"))) == 4_478_983


def test_mflops_counts_convs():
    s = model_stats("cnn-leaky")
    # conv1 alone: 48*48 outputs * 32 channels * 25 taps * 2 FLOPs
    assert s.mflops > 2 * 48 * 48 * 32 * 25 / 1e6


def test_unknown_model():
    with pytest.raises(ModelError, match="unknown model 'nope'"):
        create_model("nope")


def test_save_load_same_logits(tmp_path):
    torch.manual_seed(0)
    model = create_model("vgg", width=8).eval()
    x = torch.rand(4, 1, 48, 48)
    path = save_model(model, tmp_path / "m.safetensors")
    again = load_model(path)
    assert again.name == "vgg" and again.kwargs == {"width": 8} and not again.training
    torch.testing.assert_close(again(x), model(x))


def test_half_storage_halves_bytes_and_keeps_predictions(tmp_path):
    torch.manual_seed(0)
    model = create_model("vgg", width=8).eval()
    x = torch.rand(16, 1, 48, 48)
    full = save_model(model, tmp_path / "full.safetensors")
    half = save_model(model, tmp_path / "half.safetensors", half=True)
    assert half.stat().st_size < 0.55 * full.stat().st_size
    again = load_model(half)
    assert again.meta["stored_dtype"] == "float16"
    assert all(p.dtype == torch.float32 for p in again.parameters())
    # float16 keeps ~3 significant digits: logits move a little, the predicted class does not.
    torch.testing.assert_close(again(x), model(x), atol=2e-2, rtol=2e-2)
    assert torch.equal(again(x).argmax(1), model(x).argmax(1))


def test_pickle_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    path = tmp_path / "evil.pt"
    torch.save({"x": Payload()}, path)
    with pytest.raises(ModelError, match="pickled"):
        load_model(path)
    assert not marker.exists()


def test_corrupt_and_mismatched_files(tmp_path):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json")
    with pytest.raises(ModelError):
        load_model(bad)
    with pytest.raises(ModelError, match="no such model"):
        load_model(tmp_path / "missing.safetensors")
    # weights of one model under another's name
    import json

    from safetensors.torch import save_file

    state = create_model("vgg", width=8).state_dict()
    meta = {"format": "ferlab-model/1", "name": "cnn", "kwargs": {},
            "classes": ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]}
    save_file(state, str(tmp_path / "mm.safetensors"), metadata={"ferlab": json.dumps(meta)})
    with pytest.raises(ModelError, match="do not fit"):
        load_model(tmp_path / "mm.safetensors")


@pytest.mark.parametrize("name", list_models())
def test_inference_copy_folds_batch_norms_and_keeps_outputs(name):
    torch.manual_seed(0)
    model = create_model(name, **SMALL.get(name, {}))
    for m in model.modules():  # trained-looking statistics, so that folding has work to do
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
    model.eval()
    x = torch.rand(5, 1, 48, 48)
    with torch.no_grad():
        expected = model(x)
        exact = inference_copy(model, bf16=False)
        np.testing.assert_allclose(exact(x), expected, rtol=1e-4, atol=1e-4)
        fast = inference_copy(model, bf16=True)
        got = fast(x.to(torch.bfloat16)).float()
    scale = expected.abs().max()
    assert (got - expected).abs().max() < 0.05 * scale  # bf16 keeps about 3 significant digits
    norms = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    left = [m for m in exact.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    if name.startswith("vgg"):  # conv -> BN -> ReLU blocks: every norm folds
        assert norms and not left
    assert len(left) <= len(norms)
    assert all(p.dtype == torch.float32 for p in model.parameters())  # the original is untouched
    assert all(p.dtype == torch.bfloat16 for p in fast.parameters())


def test_bundled_fast_ships_and_predicts_like_any_model():
    fast = load_model("bundled-fast")
    assert fast.name == "vgg" and fast.kwargs == {"width": 16}
    assert sum(p.numel() for p in fast.parameters()) < 1_000_000
    probs = predict_faces(fast, make_faces(14, seed=2), progress=False, precision="fp32",
                          runtime="torch")
    assert probs.shape == (14, 7)
    np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-5)
