"""One model as one safetensors file whose metadata rebuilds it; and training checkpoints.

A model file is safe to take from a stranger: safetensors holds tensors only and the config is
JSON, so loading never runs code from the file (pickled ``.pt``/``.pth`` files are refused).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from .constants import EMOTIONS, IMAGE_SIZE
from .errors import ModelError
from .io_utils import atomic_write
from .models import FERModel, create_model

MODEL_FORMAT = "ferlab-model/1"
def save_model(model: FERModel, path: str | Path, *, half: bool = False, **info) -> Path:
    """Write ``model`` to ``path`` (safetensors; config and ``info`` in its metadata).

    ``half=True`` stores floating-point tensors as float16, half the bytes (for the bundled
    model, which ships inside the package); loading puts them back into the model's float32
    parameters, so only the stored precision changes.
    """
    meta = {"name": model.name, "kwargs": model.kwargs, **info}
    return write_model_file(model.state_dict(), meta, path, half=half)


def write_model_file(state: dict[str, torch.Tensor], meta: dict, path: str | Path, *,
                     half: bool = False) -> Path:
    """Write ``state`` with ``meta`` (plus the format, classes, image size and stored dtype that
    every model file carries) as one safetensors file, atomically."""
    meta = {"format": MODEL_FORMAT, "classes": list(EMOTIONS), "image_size": IMAGE_SIZE,
            "stored_dtype": "float16" if half else "float32", **meta}
    state = {k: (v.half() if half and v.is_floating_point() else v).detach().to("cpu")
             .contiguous() for k, v in state.items()}
    atomic_write(path, lambda p: save_file(state, str(p), metadata={"ferlab": json.dumps(meta)}))
    return Path(path)


def read_model_meta(path: Path) -> dict:
    """The ferlab metadata of a model file, checked, without loading its tensors."""
    try:
        with open(path, "rb") as f:
            head = f.read(8)
    except OSError as e:
        raise ModelError(f"{path}: cannot read: {e.strerror or e}") from e
    if head[:2] == b"PK" or head[:1] == b"\x80":
        raise ModelError(f"{path}: is a pickled PyTorch file; ferlab only loads safetensors model "
                         "files, because unpickling can run code hidden in the file")
    try:
        with safe_open(str(path), framework="pt") as f:
            raw = (f.metadata() or {}).get("ferlab")
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise ModelError(f"{path}: not a valid safetensors model file ({e})") from e
    if raw is None:
        raise ModelError(f"{path}: safetensors file has no ferlab metadata; it was not saved by "
                         "ferlab")
    try:
        meta = json.loads(raw)
    except json.JSONDecodeError as e:
        raise ModelError(f"{path}: ferlab metadata is not valid JSON: {e}") from e
    if meta.get("classes") != list(EMOTIONS):
        raise ModelError(f"{path}: model classes {meta.get('classes')} differ from ferlab's "
                         f"{list(EMOTIONS)}")
    return meta


def load_model_file(path: str | Path) -> FERModel:
    """Load one model file written by :func:`save_model`, in eval mode.

    Raises:
        ModelError: the file is pickled, not safetensors, has no ferlab metadata, or its
            weights do not fit the model its metadata names.
    """
    path = Path(path)
    meta = read_model_meta(path)
    model = create_model(meta["name"], **meta.get("kwargs", {}))
    load_weights(model, path)
    model.meta = meta
    return model.eval()


def load_weights(model: torch.nn.Module, path: Path) -> None:
    """Load the tensors of the model file ``path`` into ``model`` (strictly: every name).

    Raises:
        ModelError: the tensors cannot be read or do not fit ``model``.
    """
    try:
        state = load_file(str(path))
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise ModelError(f"{path}: cannot read weights: {e}") from e
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        first = str(e).splitlines()[0] if str(e) else "mismatch"
        name = getattr(model, "name", type(model).__name__)
        raise ModelError(f"{path}: weights do not fit a {name!r} model: {first}") from e


def load_checkpoint(path: str | Path) -> dict:
    """A training checkpoint: tensors and plain values only (``weights_only=True``: no code)."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001  (pickle errors come in many types)
        raise ModelError(f"{path}: cannot load checkpoint safely: {e}".splitlines()[0]) from e
