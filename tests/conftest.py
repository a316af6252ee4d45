"""Shared fixtures: synthetic faces and the files every reader takes. Nothing reads ../shared."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest
import torch

from ferlab.synthetic import make_faces, make_split_faces, write_fer2013_csv

torch.set_num_threads(2)


@pytest.fixture(scope="session")
def faces():
    """700 Training + 140 PublicTest synthetic faces (class carried by the mouth)."""
    return make_split_faces(700, 140, seed=0)


@pytest.fixture(scope="session")
def small_faces():
    return make_faces(70, seed=3)


@pytest.fixture(scope="session")
def fer_csv(tmp_path_factory, faces):
    """A fer2013.csv.gz of the synthetic faces."""
    return write_fer2013_csv(faces, tmp_path_factory.mktemp("data") / "fer2013.csv.gz")


@pytest.fixture(scope="session")
def eval_run(tmp_path_factory, faces):
    """A cnn-leaky run folder trained on ``faces`` (Training/PublicTest) to high accuracy, for
    evaluate / ensemble / predict tests. Trained once per session (a few seconds)."""
    from ferlab.config import AugmentConfig, DataConfig, ModelConfig, RunConfig, TrainConfig
    from ferlab.data import make_split
    from ferlab.training.loop import train

    cfg = RunConfig(DataConfig(path="synthetic"), ModelConfig("cnn-leaky"),
                    AugmentConfig(flip=False, shift=0, rotation=0, zoom=0),
                    TrainConfig(epochs=2, batch_size=32, lr=2e-3, weight_decay=1e-4))
    run = tmp_path_factory.mktemp("runs") / "cnn-leaky"
    return train(cfg, run, data=make_split(faces, "usage"), progress=False, log=lambda s: None)


# A real face for the face-detection tests: Haar cascades do not fire on the synthetic faces.
# scikit-image ships the public-domain astronaut photo (Eileen Collins, NASA) inside its wheel.
ASTRONAUT_FACE = (176, 66, 95, 95)  # x, y, w, h of her face in the 512x512 photo


@pytest.fixture(scope="session")
def astronaut():
    """``(rgb uint8 [512, 512, 3], face box (x, y, w, h))``."""
    from skimage.data import astronaut as load

    return load(), ASTRONAUT_FACE


@pytest.fixture(scope="session")
def chromium():
    """Debian's chromium (and a CJK font for the Chinese report), installed with apt-get when
    missing and we are root; else the test is skipped. Used by the report and serve tests."""
    exe = shutil.which("chromium")
    if exe is None and os.geteuid() == 0 and shutil.which("apt-get"):
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        for cmd in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq",
                                                   "chromium", "fonts-wqy-microhei"]):
            done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
            if done.returncode:
                pytest.skip(f"could not install chromium: {' '.join(cmd)}: "
                            f"{done.stderr.strip()[-200:]}")
        exe = shutil.which("chromium")
    if exe is None:
        pytest.skip("chromium is not installed (apt-get install chromium, as root)")
    return exe
