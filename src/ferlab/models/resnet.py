"""ResNet-18 adapted to 48x48 grayscale: 3x3 stem, stride 1, no initial max-pool."""

from __future__ import annotations

import torch
from torch import nn

from .registry import OUTPUTS, FERModel, register_model


class BasicBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut = nn.Sequential()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False),
                                          nn.BatchNorm2d(c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self.shortcut(x))


class ResNet(FERModel):
    """ResNet with BasicBlocks; ``blocks=(2, 2, 2, 2)`` is ResNet-18.

    The stem is one 3x3 conv at stride 1 and there is no max-pool, so stage 1 works at 48x48
    and the last stage at 6x6 (ImageNet's 7x7 stem and pool would leave 2x2 of a 48x48 face).
    """

    def __init__(self, width: int = 64, blocks=(2, 2, 2, 2), dropout: float = 0.0,
                 **norm) -> None:
        super().__init__(**norm)
        layers: list[nn.Module] = [
            nn.Sequential(nn.Conv2d(1, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width),
                          nn.ReLU(inplace=True))]
        c_in = width
        for s, n in enumerate(blocks):
            c = width * 2**s
            stage = [BasicBlock(c_in if i == 0 else c, c, 2 if (i == 0 and s > 0) else 1)
                     for i in range(n)]
            layers.append(nn.Sequential(*stage))
            c_in = c
        self.body = nn.Sequential(
            *layers,
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Dropout(dropout),
            nn.Linear(c_in, OUTPUTS),
        )
        self.cam_layer = f"body.{len(blocks)}.{blocks[-1] - 1}.conv2"


@register_model("resnet18", "ResNet-18 for 48x48 grey: 3x3 stem, no max-pool (width 64)")
def resnet18(**kw) -> ResNet:
    kw.setdefault("blocks", (2, 2, 2, 2))
    return ResNet(**kw)
