"""Paths of the files that ship inside the package: the bundled models, their ONNX graph, the
face detector and the demo photo. Nothing is downloaded at run time; everything is here."""

from __future__ import annotations

from pathlib import Path

ASSETS = Path(__file__).parent / "assets"
DEMO_PHOTO = ASSETS / "astronaut.jpg"
BUNDLED_INT8 = "bundled-int8.onnx"  # the bundled model's static int8 graph (ferlab export --int8)


def asset_path(name: str) -> Path:
    """The shipped file ``name`` (which may not exist: callers say what is missing)."""
    return ASSETS / name


def bundled_model_path(name: str = "bundled") -> Path:
    """The safetensors file of the shipped model ``name`` (``bundled``, ``bundled-fast``)."""
    return ASSETS / f"{name}.safetensors"
