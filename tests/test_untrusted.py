"""Model files from strangers: loading never runs code from the file.

Each test plants a pickle whose payload creates a marker file when unpickled (``builtins.open``
in ``__reduce__``, harmless but unmistakable), hands it to ferlab in every place a model or a
checkpoint is read, and checks that ferlab refuses with a ``ModelError`` (one line in the CLI)
and that the marker never appears.
"""

from __future__ import annotations

import json
import pickle
import re
import shutil
from pathlib import Path

import pytest
import torch

from ferlab.cli import COMMANDS, main
from ferlab.errors import ModelError
from ferlab.model_file import load_checkpoint
from ferlab.model_spec import load_model
from ferlab.models import create_model


class Payload:
    """Unpickling this calls ``open(marker, "w")``: the marker file appearing means code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _evil_torch_file(path: Path, marker: Path) -> Path:
    """What ``torch.save`` writes for a checkpoint dict carrying the payload (zip + pickle)."""
    torch.save({"model": {"w": torch.zeros(1)}, "state": Payload(marker)}, path)
    return path


def _evil_raw_pickle(path: Path, marker: Path) -> Path:
    path.write_bytes(pickle.dumps(Payload(marker), protocol=2))
    return path


@pytest.fixture
def marker(tmp_path):
    m = tmp_path / "PAYLOAD_RAN"
    yield m
    assert not m.exists(), "the pickle's payload ran"


def test_the_payload_is_real(tmp_path):
    """Guard against a test that cannot fail: plain pickle.load does run the payload."""
    m = tmp_path / "ran"
    p = _evil_raw_pickle(tmp_path / "x.pkl", m)
    with open(p, "rb") as f:
        pickle.load(f).close()  # noqa: S301  (on purpose: proving the payload works)
    assert m.exists()
    m.unlink()
    torch.load(_evil_torch_file(tmp_path / "y.pt", m), weights_only=False)["state"].close()
    assert m.exists()


@pytest.mark.parametrize("writer", [_evil_torch_file, _evil_raw_pickle], ids=["torch", "raw"])
@pytest.mark.parametrize("name", ["model.pt", "model.pth", "model.safetensors", "model.bin"])
def test_load_model_refuses_pickles(tmp_path, marker, writer, name):
    path = writer(tmp_path / name, marker)
    with pytest.raises(ModelError, match=re.escape(name)):
        load_model(path)


def test_run_folder_with_pickled_model_is_refused(tmp_path, marker):
    run = tmp_path / "run"
    run.mkdir()
    _evil_torch_file(run / "model.safetensors", marker)
    with pytest.raises(ModelError, match="pickle"):
        load_model(run)


def test_checkpoint_loader_refuses_payloads(tmp_path, marker):
    for writer in (_evil_torch_file, _evil_raw_pickle):
        path = writer(tmp_path / "checkpoint.pt", marker)
        with pytest.raises(ModelError, match="checkpoint.pt"):
            load_checkpoint(path)


@pytest.fixture(scope="module")
def run_folder(tmp_path_factory):
    """A finished one-epoch run of a tiny model on a synthetic CSV."""
    from ferlab.config import AugmentConfig, DataConfig, ModelConfig, RunConfig, TrainConfig
    from ferlab.synthetic import make_split_faces, write_fer2013_csv
    from ferlab.training.loop import train

    root = tmp_path_factory.mktemp("untrusted")
    csv = write_fer2013_csv(make_split_faces(40, 12, seed=5), root / "fer.csv")
    cfg = RunConfig(DataConfig(path=str(csv)), ModelConfig("cnn-leaky"),
                    AugmentConfig(flip=False, shift=0, rotation=0, zoom=0),
                    TrainConfig(epochs=1, batch_size=32))
    return train(cfg, root / "run", progress=False, log=lambda s: None)


def test_resume_with_a_malicious_checkpoint_is_refused(tmp_path, marker, run_folder, capsys):
    run = tmp_path / "run"
    shutil.copytree(run_folder, run)
    _evil_torch_file(run / "checkpoint.pt", marker)
    assert main(["train", "--resume", str(run)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "checkpoint.pt" in err[0] and "Traceback" not in err[0]


def test_genuine_checkpoint_still_loads(run_folder):
    ck = load_checkpoint(run_folder / "checkpoint.pt")
    assert set(ck) >= {"model", "optimizer", "state"} and ck["state"]["epoch"] == 1


def test_metadata_is_data_not_code(tmp_path, marker):
    """The JSON config in a model file can only name registered models and their arguments."""
    from safetensors.torch import save_file

    m = create_model("cnn-leaky")
    state = {k: v.contiguous() for k, v in m.state_dict().items()}
    evil_meta = {"format": "ferlab-model/1", "name": "os.system",
                 "kwargs": {"command": f"touch {marker}"},
                 "classes": ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"],
                 "image_size": 48}
    path = tmp_path / "meta.safetensors"
    save_file(state, str(path), metadata={"ferlab": json.dumps(evil_meta)})
    with pytest.raises(ModelError, match="unknown model 'os.system'"):
        load_model(path)
    evil_meta["name"] = "cnn-leaky"
    save_file(state, str(path), metadata={"ferlab": json.dumps(evil_meta)})
    with pytest.raises(ModelError, match="command"):
        load_model(path)


def _ensemble(tmp_path: Path, run: Path) -> Path:
    from ferlab.ensemble import Ensemble, save_ensemble

    m = load_model(run)
    return save_ensemble(Ensemble([m, m], "mean", ["a", "b"]), tmp_path / "ens")


def test_ensemble_with_a_pickled_member_is_refused(tmp_path, marker, run_folder):
    pytest.importorskip("ferlab.ensemble")
    ens = _ensemble(tmp_path, run_folder)
    assert load_model(ens)  # the untouched ensemble loads
    _evil_torch_file(ens / "member-01.safetensors", marker)
    with pytest.raises(ModelError, match="member-01.safetensors"):
        load_model(ens)


def test_ensemble_member_outside_its_folder_is_refused(tmp_path, marker, run_folder):
    pytest.importorskip("ferlab.ensemble")
    ens = _ensemble(tmp_path, run_folder)
    outside = _evil_torch_file(tmp_path / "evil.pt", marker)
    spec = json.loads((ens / "ensemble.json").read_text())
    spec["members"] = [f"../{outside.name}"]
    (ens / "ensemble.json").write_text(json.dumps(spec))
    with pytest.raises(ModelError, match="outside"):
        load_model(ens)


@pytest.mark.parametrize("command", ["evaluate", "predict", "ensemble"])
def test_cli_refuses_pickled_models_in_one_line(tmp_path, marker, command, capsys, run_folder):
    if command not in COMMANDS:
        pytest.skip(f"ferlab {command} does not exist yet")
    evil = _evil_torch_file(tmp_path / "model.pt", marker)
    data = json.loads((run_folder / "config.json").read_text())["config"]["data"]["path"]
    argv = {
        "evaluate": ["evaluate", "--model", evil, "--data", data, "--out", tmp_path / "e"],
        "predict": ["predict", "--model", evil, "--input", data, "--out", tmp_path / "p.csv"],
        "ensemble": ["ensemble", "--out", tmp_path / "ens", run_folder, evil],
    }[command]
    assert main([str(a) for a in argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "model.pt" in err[0] and "pickle" in err[0]


def test_no_unsafe_loading_in_the_source():
    """Every torch.load in ferlab passes weights_only=True; nothing calls pickle.load."""
    src = Path(__file__).resolve().parents[1] / "src" / "ferlab"
    for py in src.rglob("*.py"):
        text = py.read_text(encoding="utf-8")
        for call in re.findall(r"torch\.load\(([^)]*)\)", text):
            assert "weights_only=True" in call, f"{py}: torch.load({call})"
        assert not re.search(r"\bpickle\.loads?\(|\bjoblib\.load\(", text), py
        assert not re.search(r"\bnp\.load\([^)]*allow_pickle=True", text), py
