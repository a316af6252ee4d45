"""Explaining models: attribution maps with one call shape, filters, feature maps, checks.

Every attribution method is built from a model (and a layer where it needs one) and called as
``attribute(x, target=None) -> Tensor[N, 1, 48, 48]`` (``target=None``: the predicted class):

    >>> from ferlab.explain import get_explainer, list_methods
    >>> list_methods()[:4]
    ['saliency', 'smoothgrad', 'integrated-gradients', 'gradcam']
    >>> maps = get_explainer("gradcam", model).attribute(x)  # doctest: +SKIP
"""

from . import (  # noqa: F401  (imported for their @register_explainer side effect)
    gradcam,
    guided_gradcam,
    integrated_gradients,
    lime,
    occlusion,
    saliency,
    smoothgrad,
)
from .base import (
    Explainer,
    capture,
    check_input,
    conv_layers,
    default_cam_layers,
    default_layer,
    get_explainer,
    get_layer,
    get_layers,
    list_layers,
    list_methods,
    prepared,
    register_explainer,
    resolve_target,
)
from .checks import (
    DeletionInsertion,
    compare_methods,
    deletion_insertion,
    randomization_check,
)
from .feature_maps import feature_maps
from .filter_emotion import FilterEmotion, filter_emotion, write_filter_emotion_csv
from .filters import FilterImages, visualize_filters
from .lime import face_segments
from .localisation import localisation_check, localisation_ratio, reference_model
from .select import POLICIES, Selection, parse_policy, select_faces, select_images

__all__ = [
    "POLICIES", "DeletionInsertion", "Explainer", "FilterEmotion", "FilterImages", "Selection",
    "capture", "check_input", "compare_methods", "conv_layers", "default_cam_layers",
    "default_layer", "deletion_insertion", "face_segments", "feature_maps", "filter_emotion",
    "get_explainer", "get_layer", "get_layers", "list_layers", "list_methods",
    "localisation_check", "localisation_ratio", "parse_policy", "prepared", "randomization_check",
    "reference_model", "register_explainer", "resolve_target", "select_faces", "select_images",
    "visualize_filters", "write_filter_emotion_csv",
]
