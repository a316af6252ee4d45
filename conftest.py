"""The namespace the docstring examples in ``src/ferlab`` run in (``pytest --doctest-modules``).

Examples use the names a user would already have: ``model`` (an untrained ``cnn-leaky``), ``x``
(two synthetic faces as model input), ``faces`` (70 synthetic faces), and the public API. Each
runs in its own temporary folder, so examples that write files leave nothing behind.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from _pytest.doctest import DoctestItem
from torch import nn

import ferlab
from ferlab.config import AugmentConfig, DataConfig, ModelConfig, RunConfig, TrainConfig
from ferlab.explain import get_explainer
from ferlab.inference import to_model_input
from ferlab.models import create_model
from ferlab.synthetic import make_faces


@pytest.fixture(autouse=True)
def _doctest_namespace(request, doctest_namespace, tmp_path, monkeypatch):
    if not isinstance(request.node, DoctestItem):
        return
    monkeypatch.chdir(tmp_path)
    torch.manual_seed(0)
    faces = make_faces(70, seed=0)
    doctest_namespace.update(
        np=np, torch=torch, nn=nn, ferlab=ferlab, create_model=create_model,
        get_explainer=get_explainer, load_model=ferlab.load_model, faces=faces,
        model=create_model("cnn-leaky").eval(), x=to_model_input(faces.images[:2]),
        RunConfig=RunConfig, DataConfig=DataConfig, ModelConfig=ModelConfig,
        TrainConfig=TrainConfig, AugmentConfig=AugmentConfig)
