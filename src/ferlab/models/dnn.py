"""A fully connected net sized like ``cnn``: seed report 000's CNN-vs-DNN comparison, made fair."""

from __future__ import annotations

from torch import nn

from ..constants import NUM_PIXELS
from .registry import OUTPUTS, FERModel, head, register_model


class DNN(FERModel):
    """2304 -> 1024 -> 1024 -> 1024 -> 7, each hidden layer Linear -> BN -> ReLU -> Dropout(0.5).

    With the defaults: 4,472,839 trainable parameters + 6,144 BN statistics (the report's
    4,478,983).
    """

    def __init__(self, hidden=(1024, 1024, 1024), dropout: float = 0.5, **norm) -> None:
        super().__init__(**norm)
        layers: list[nn.Module] = [nn.Flatten()]
        d_in = NUM_PIXELS
        for h in hidden:
            layers.append(nn.Sequential(*head(d_in, h, dropout)))
            d_in = h
        layers.append(nn.Linear(d_in, OUTPUTS))
        self.body = nn.Sequential(*layers)
        self.cam_layer = ""  # no conv layer: Grad-CAM does not apply


@register_model("dnn", "fully connected 2304-1024-1024-1024-7, the size of cnn")
def dnn(**kw) -> DNN:
    return DNN(**kw)
