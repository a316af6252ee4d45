"""Model zoo. Importing this package registers every family."""

from . import cnn, dnn, resnet, speedrun, vgg  # noqa: F401  (imported for their @register_model side effect)
from .registry import (
    FERModel,
    ModelStats,
    count_params,
    create_model,
    describe_model,
    forward_mflops,
    list_models,
    model_stats,
    register_model,
)

__all__ = ["FERModel", "ModelStats", "count_params", "create_model", "describe_model",
           "forward_mflops", "list_models", "model_stats", "register_model"]
