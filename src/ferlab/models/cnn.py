"""The course CNNs: seed report 000's 4-block CNN and seed report 002's LeakyReLU CNN."""

from __future__ import annotations

from torch import nn

from .registry import OUTPUTS, FERModel, head, register_model


class CNN(FERModel):
    """Seed report 000: 4 x [conv3x3 -> BN -> ReLU -> maxpool 2 -> dropout], 2 x FC 512, output.

    With the defaults: 4,179,847 trainable parameters + 3,968 BN statistics (the report's
    4,183,815).
    """

    def __init__(self, widths=(64, 128, 256, 512), dropouts=(0.3, 0.3, 0.3, 0.4),
                 hidden: int = 512, fc_dropout: float = 0.5, **norm) -> None:
        super().__init__(**norm)
        layers: list[nn.Module] = []
        c_in = 1
        for c, p in zip(widths, dropouts, strict=True):
            layers.append(nn.Sequential(
                nn.Conv2d(c_in, c, 3, padding=1), nn.BatchNorm2d(c), nn.ReLU(inplace=True),
                nn.MaxPool2d(2), nn.Dropout(p)))
            c_in = c
        side = 48 // 2 ** len(widths)
        self.body = nn.Sequential(
            *layers,
            nn.Flatten(),
            nn.Sequential(*head(c_in * side * side, hidden, fc_dropout)),
            nn.Sequential(*head(hidden, hidden, fc_dropout)),
            nn.Linear(hidden, OUTPUTS),
        )
        self.cam_layer = f"body.{len(widths) - 1}.0"


@register_model("cnn", "seed report 000's CNN: 4 conv blocks (64-512), 2 FC 512")
def cnn(**kw) -> CNN:
    return CNN(**kw)


class LeakyCNN(FERModel):
    """Seed report 002: conv5x5 32, conv3x3 64, 128, 128, each LeakyReLU(0.05) -> BN -> pool."""

    def __init__(self, widths=(32, 64, 128, 128), hidden: int = 256, slope: float = 0.05,
                 **norm) -> None:
        super().__init__(**norm)
        blocks: list[nn.Module] = []
        c_in = 1
        for i, c in enumerate(widths):
            k = 5 if i == 0 else 3
            blocks.append(nn.Sequential(
                nn.Conv2d(c_in, c, k, padding=k // 2), nn.LeakyReLU(slope), nn.BatchNorm2d(c),
                nn.MaxPool2d(2)))
            c_in = c
        side = 48 // 2 ** len(widths)
        self.body = nn.Sequential(
            *blocks,
            nn.Flatten(),
            nn.Linear(c_in * side * side, hidden), nn.ReLU(inplace=True), nn.BatchNorm1d(hidden),
            nn.Linear(hidden, OUTPUTS),
        )
        self.cam_layer = f"body.{len(widths) - 1}.0"


@register_model("cnn-leaky", "seed report 002's CNN: 4 LeakyReLU conv blocks (32-128), FC 256")
def cnn_leaky(**kw) -> LeakyCNN:
    return LeakyCNN(**kw)
