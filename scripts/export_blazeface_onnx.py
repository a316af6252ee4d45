"""Export ferlab's BlazeFace network to ONNX, the file :mod:`ferlab.blazeface` runs in ONNX Runtime.

    # dev-time only: torch's exporter needs the onnx package (ferlab's numpy is kept)
    pip install --no-deps --target /tmp/onnx-tools onnx==1.23.2 ml_dtypes==0.6.0
    PYTHONPATH=/tmp/onnx-tools python scripts/export_blazeface_onnx.py

Reads ``src/ferlab/assets/blazeface_full_range.safetensors`` (made by
``scripts/convert_blazeface.py``) and writes ``blazeface_full_range.onnx`` beside it. The graph
takes what the detector has, the uint8 grey canvas ``[1, 1, H, W]`` (H and W multiples of 32,
free at run time), and does the scaling to [-1, 1] itself. The stem's three input channels are
summed into one: the detector feeds grey as R = G = B, so the sum gives the same convolution
on a third of the input. Then, unless ``--no-check``, it runs the file in ONNX Runtime and
prints the largest difference from the PyTorch network on two sample photos, on a 192-px square
and on a canvas of the 384-px pass. Weights are stored as float32 (2.1 MB): the float16
originals convert exactly.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ferlab.blazeface import (
    ONNX_NAME,
    BlazeFaceDetector,
    BlazeFaceFullRange,
    asset_path,
    load_blazeface,
)


class GreyInput(nn.Module):
    """``uint8 [N, 1, H, W]`` grey -> the network's outputs, with the stem reduced to 1 channel."""

    def __init__(self, net: BlazeFaceFullRange) -> None:
        super().__init__()
        self.net = net
        stem = nn.Conv2d(1, net.stem.out_channels, 3, 2)
        with torch.no_grad():
            stem.weight.copy_(net.stem.weight.sum(dim=1, keepdim=True))
            stem.bias.copy_(net.stem.bias)
        net.stem = stem

    def forward(self, grey: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.net(grey.float() * (1 / 127.5) - 1.0)


def export(out: Path) -> None:
    model = GreyInput(load_blazeface()).eval()
    example = torch.zeros(1, 1, 192, 192, dtype=torch.uint8)
    # The TorchScript-based exporter: the dynamo one needs onnxscript, and this graph is plain.
    torch.onnx.export(model, (example,), str(out), dynamo=False, opset_version=17,
                      input_names=["grey"], output_names=["regressors", "logits"],
                      dynamic_axes={"grey": {2: "height", 3: "width"},
                                    "regressors": {1: "anchors"}, "logits": {1: "anchors"}})
    print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB)")


def check(path: Path) -> float:
    """Largest absolute difference between ONNX Runtime on ``path`` and the PyTorch network."""
    import matplotlib
    from PIL import Image
    from skimage import data

    reference = BlazeFaceDetector(backend="torch", bf16=False)
    onnx = BlazeFaceDetector(backend="onnx", onnx_path=path)
    hopper = np.asarray(Image.open(Path(matplotlib.get_data_path()) / "sample_data" /
                                   "grace_hopper.jpg").convert("L"))
    astronaut = np.asarray(Image.fromarray(data.astronaut()).convert("L"))
    worst = 0.0
    for name, grey in (("hopper", hopper), ("astronaut", astronaut)):
        for side in (192, 384):
            canvas = reference.letterbox(grey[:, : grey.shape[1] * 7 // 12] if side == 384
                                         else grey, side)[0]
            want, got = reference.raw(canvas), onnx.raw(canvas)
            diff = max(float(np.abs(w - g).max()) for w, g in zip(want, got, strict=True))
            print(f"{name} {canvas.shape}: largest difference {diff:.2e}")
            worst = max(worst, diff)
    return worst


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=asset_path(ONNX_NAME))
    ap.add_argument("--no-check", dest="check", action="store_false",
                    help="skip running the file in ONNX Runtime against PyTorch")
    args = ap.parse_args(argv)
    export(args.out)
    if args.check and check(args.out) > 1e-2:
        print("the ONNX file does not match the PyTorch network", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
