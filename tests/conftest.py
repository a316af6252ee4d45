"""Shared fixtures: synthetic faces and the files every reader takes. Nothing reads ../shared."""

from __future__ import annotations

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
