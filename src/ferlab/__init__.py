"""ferlab: facial expression recognition on FER2013-style faces.

The public API, by name (imported on first use, so that ``ferlab --help`` stays fast)::

    from ferlab import load_faces, create_model, load_model, train, evaluate_model, Recognizer

Example:
    >>> import ferlab
    >>> ferlab.EMOTIONS[3]
    'happy'
"""

from __future__ import annotations

from .lazy import lazy_exports

__version__ = "0.1.0"

# public name -> module that defines it
_EXPORTS = {
    "EMOTIONS": "constants", "IMAGE_SIZE": "constants", "NUM_CLASSES": "constants",
    "FerlabError": "errors", "DataError": "errors", "ModelError": "errors",
    "ConfigError": "errors",
    "FaceSet": "data", "load_faces": "data", "read_csv": "data", "read_image_folder": "data",
    "make_split": "data", "select_split": "data",
    "RunConfig": "config", "DataConfig": "config", "ModelConfig": "config",
    "AugmentConfig": "config", "TrainConfig": "config",
    "create_model": "models", "list_models": "models", "register_model": "models",
    "model_stats": "models",
    "load_model": "model_spec", "save_model": "model_file",
    "RunFolder": "runs", "read_history": "runs",
    "train": "training.loop", "predict_probs": "inference",
    "evaluate_model": "evaluate", "write_evaluation": "evaluate",
    "Ensemble": "ensemble", "build_ensemble": "model_spec", "train_members": "training.members",
    "predict_faces": "predict", "predict_file": "predict",
    "get_explainer": "explain", "list_methods": "explain",
    "Recognizer": "faces.recognizer", "detect_faces": "faces.detect",
    "make_faces": "synthetic",
}

__all__ = ["__version__", *_EXPORTS]


__getattr__ = lazy_exports(__name__, _EXPORTS)
