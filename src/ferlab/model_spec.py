"""What a model argument names, resolved to a model: ``bundled``, a model file, a run folder, an
ensemble folder, or several of those combined (``build_ensemble``).

This is the one place that dispatches on the kind of spec; :func:`load_model` is what the CLI,
the :class:`~ferlab.faces.recognizer.Recognizer` and training's ``--init``/``--teacher`` call.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from torch import nn

from .assets import bundled_model_path
from .ensemble import (
    ENSEMBLE_FILE,
    Ensemble,
    is_ensemble_dir,
    load_any_model_file,
    load_ensemble,
    read_ensemble_spec,
)
from .errors import ModelError
from .inference import TTA_MODES
from .model_file import read_model_meta
from .runs import MODEL_FILE

BUNDLED = "bundled"
BUNDLED_FAST = "bundled-fast"
# The models that ship inside the package: the accurate one, and a small fast one for video and
# batch work (loading one that is not installed says so).
BUNDLED_MODELS = (BUNDLED, BUNDLED_FAST)

__all__ = ["BUNDLED", "BUNDLED_FAST", "BUNDLED_MODELS", "build_ensemble", "bundled_model_path",
           "is_bundled", "load_model", "recommended_tta", "resolve_model_path"]


def is_bundled(spec: object) -> bool:
    """Whether ``spec`` names a model shipped inside the package (``bundled``, ...)."""
    return isinstance(spec, str | Path) and str(spec) in BUNDLED_MODELS


def resolve_model_path(spec: str | Path) -> Path:
    """Path of the model file for ``spec``: a file, a folder holding ``model.safetensors`` (a run
    folder), or the name of a shipped model (``bundled``)."""
    if is_bundled(spec):
        p = bundled_model_path(str(spec))
        if not p.exists():
            raise ModelError(f"the {spec!r} model is not installed with this copy of ferlab")
        return p
    p = Path(spec)
    if p.is_dir():
        if (p / MODEL_FILE).exists():
            return p / MODEL_FILE
        raise ModelError(f"{p}: folder has no {MODEL_FILE} or {ENSEMBLE_FILE} (is it a run "
                         "folder that has finished an epoch, or an ensemble?)")
    if not p.exists():
        raise ModelError(f"{p}: no such model file or folder")
    return p


def single_model_file(spec: str | Path) -> Path | None:
    """The one weights file ``spec`` names (a model file, a one-file ensemble such as the
    bundled model, a run folder's ``model.safetensors``), or None for an ensemble folder,
    whose members are several files: what a graph exported from it records as its source."""
    p = Path(spec)
    if not is_bundled(spec) and p.is_dir() and not (p / MODEL_FILE).is_file():
        return None
    return resolve_model_path(spec)


def recommended_tta(spec: str | Path) -> str | None:
    """The test-time augmentation the model at ``spec`` records as its own (``"flip"`` or
    ``"shift"``: what it was validated with, ``ferlab train --val-tta``, or what an ensemble was
    tuned with, ``ferlab ensemble --tta``), or None: an ONNX graph, or a model that records
    none. Reads metadata only."""
    p = Path(spec)
    if not is_bundled(spec) and p.suffix == ".onnx":
        return None
    if not is_bundled(spec) and p.is_dir() and is_ensemble_dir(p):
        tta = read_ensemble_spec(p).get("tta")
    else:
        tta = read_model_meta(resolve_model_path(spec)).get("tta")
    return tta if tta in TTA_MODES else None


def load_model(spec: str | Path = BUNDLED) -> nn.Module:
    """Load a model (file, run folder, ensemble folder or file, or ``bundled``) in eval mode.

    An ensemble folder (one holding ``ensemble.json``) or a one-file ensemble gives a
    :class:`ferlab.ensemble.Ensemble`, which takes and returns what a single model does.

    Example:
        >>> model = load_model("bundled")
        >>> model(torch.rand(1, 1, 48, 48)).softmax(1).shape
        torch.Size([1, 7])
    """
    if not is_bundled(spec) and Path(spec).is_dir() and is_ensemble_dir(spec):
        return load_ensemble(spec)
    return load_any_model_file(resolve_model_path(spec))


def build_ensemble(specs: Sequence[str | Path], method: str = "vote") -> Ensemble:
    """An ensemble of the models at ``specs`` (run folders, model files, ensemble folders).

    Example:
        >>> ens = build_ensemble(["runs/a", "runs/b", "runs/c"], "vote")  # doctest: +SKIP
        >>> save_ensemble(ens, "runs/abc")  # doctest: +SKIP
    """
    if not specs:
        raise ModelError("an ensemble needs at least one member model")
    return Ensemble([load_model(s) for s in specs], method, [str(s) for s in specs]).eval()
