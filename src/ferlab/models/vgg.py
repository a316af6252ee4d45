"""VGG-style nets for 48x48 faces: 4 stages of 3x3 convs (BN, ReLU), max-pool between stages."""

from __future__ import annotations

from torch import nn

from .registry import OUTPUTS, FERModel, head, register_model


class VGG(FERModel):
    """Stages of ``convs`` conv3x3-BN-ReLU at widths w, 2w, 4w, 8w; then flatten, FC, output.

    The 3x3 map left after four poolings is flattened rather than averaged, so the head still
    knows where on the face a feature fired (mouth against eyes matters for expressions).
    """

    def __init__(self, width: int = 64, convs: int = 2, hidden: int = 512,
                 dropout: float = 0.4, stage_dropout: float = 0.0, **norm) -> None:
        super().__init__(**norm)
        if width < 1 or convs < 1:
            raise ValueError("width and convs must be positive")
        stages: list[nn.Module] = []
        c_in = 1
        for s in range(4):
            c = width * 2**s
            layers: list[nn.Module] = []
            for _ in range(convs):
                layers += [nn.Conv2d(c_in, c, 3, padding=1, bias=False), nn.BatchNorm2d(c),
                           nn.ReLU(inplace=True)]
                c_in = c
            layers.append(nn.MaxPool2d(2))
            if stage_dropout:
                layers.append(nn.Dropout(stage_dropout))
            stages.append(nn.Sequential(*layers))
        self.body = nn.Sequential(
            *stages,
            nn.Flatten(),
            nn.Sequential(*head(c_in * 3 * 3, hidden, dropout)),
            nn.Linear(hidden, OUTPUTS),
        )
        self.cam_layer = f"body.3.{3 * (convs - 1)}"


@register_model("vgg", "VGG-style: 4 stages of 2 conv3x3 (width w..8w), FC 512")
def vgg(**kw) -> VGG:
    return VGG(**kw)
