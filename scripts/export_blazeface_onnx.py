"""Export ferlab's BlazeFace network to ONNX, the file :mod:`ferlab.faces.blazeface` runs in
ONNX Runtime.

    # dev-time only: torch's exporter needs the onnx package (ferlab's numpy is kept)
    pip install --no-deps --target /tmp/onnx-tools onnx==1.23.2 ml_dtypes==0.6.0
    PYTHONPATH=/tmp/onnx-tools python scripts/export_blazeface_onnx.py

Reads ``src/ferlab/assets/blazeface_full_range.safetensors`` (made by
``scripts/convert_blazeface.py``) and writes ``blazeface_full_range.onnx`` beside it. The graph
takes what the detector has, the uint8 grey canvas ``[1, 1, H, W]`` (H and W multiples of 32,
free at run time), and does the scaling to [-1, 1] itself.

The graph computes the same function as :class:`ferlab.faces.blazeface.BlazeFaceFullRange`,
rewritten into a form that ONNX Runtime's CPU kernels run without detours (:class:`DeployNet`):

* the stem's three input channels are summed into one: the detector feeds grey as R = G = B;
* the stride-2 convs carry TFLite's asymmetric SAME padding in their own ``pads`` instead of a
  separate ``Pad`` node;
* narrow layers are widened with zero channels to a multiple of 16, and a widening block's
  shortcut is split instead of padded with zero channels: ORT's AVX-512 kernels work on blocks
  of 16 channels (its NCHWc layout), and each ``Pad`` or odd width made it convert the whole map
  to the plain layout and back. The zero channels cost multiply-adds (116 M against 106 M at
  192 px, stem included), which the saved conversions more than pay for.

Then, unless ``--no-check``, it runs the file in ONNX Runtime and prints the largest difference
from the PyTorch network on two sample photos, on a 192-px square and on a canvas of the 384-px
pass. Weights are stored as float32: the float16 originals convert exactly.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import onnx
import torch
import torch.nn.functional as F
from torch import nn

from ferlab.faces.blazeface import (
    BACKBONE,
    ONNX_NAME,
    BlazeBlock,
    BlazeFaceFullRange,
    BlazeFaceNet,
    asset_path,
    load_blazeface,
)

# ONNX Runtime's CPU convs work on blocks of this many channels on AVX-512 (8 on AVX2): widths
# that are multiples of it stay in its blocked layout from one conv to the next.
CHANNEL_BLOCK = 16


def _widened(c: int) -> int:
    return -(-c // CHANNEL_BLOCK) * CHANNEL_BLOCK


def _conv_like(conv: nn.Conv2d, out_channels: int | None = None,
               in_channels: int | None = None) -> nn.Conv2d:
    """A copy of ``conv`` with zero filters (and zero inputs) added up to the given widths.

    3x3 convs get ``padding=1``; :func:`tflite_same_padding` turns the stride-2 ones' padding
    into TFLite's (0 before, 1 after) in the exported graph.
    """
    depthwise = conv.groups > 1
    c_out = out_channels or conv.out_channels
    c_in = c_out if depthwise else in_channels or conv.in_channels
    k = conv.kernel_size[0]
    new = nn.Conv2d(c_in, c_out, k, conv.stride, padding=k // 2, groups=c_out if depthwise else 1)
    with torch.no_grad():
        new.weight.zero_()
        new.bias.zero_()
        w = conv.weight
        new.weight[: w.shape[0], : w.shape[1]] = w
        new.bias[: conv.out_channels] = conv.bias
    return new


class DeployBlock(nn.Module):
    """:class:`~ferlab.faces.blazeface.BlazeBlock` with its narrow width rounded up to a channel
    block, and, when it widens, ``pw2`` split in two: the first ``c_in`` outputs take the
    shortcut, the rest are joined on by concatenation (the original adds zeros to them)."""

    def __init__(self, block: BlazeBlock) -> None:
        super().__init__()
        c_in, c_out = block.dw1.in_channels, block.pw2.out_channels
        c_mid = _widened(block.pw1.out_channels)
        self.stride, self.extra = block.stride, c_out - c_in
        self.dw1 = _conv_like(block.dw1)
        self.pw1 = _conv_like(block.pw1, out_channels=c_mid)
        self.dw2 = _conv_like(block.dw2, out_channels=c_mid)
        wide = _conv_like(block.pw2, in_channels=c_mid)
        self.pw2 = nn.Conv2d(c_mid, c_in, 1)
        self.pw2_extra = nn.Conv2d(c_mid, self.extra, 1) if self.extra else None
        with torch.no_grad():
            self.pw2.weight.copy_(wide.weight[:c_in])
            self.pw2.bias.copy_(wide.bias[:c_in])
            if self.pw2_extra is not None:
                self.pw2_extra.weight.copy_(wide.weight[c_in:])
                self.pw2_extra.bias.copy_(wide.bias[c_in:])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.dw2(F.relu(self.pw1(self.dw1(x))))
        shortcut = F.max_pool2d(x, 2) if self.stride == 2 else x
        out = F.relu(self.pw2(h) + shortcut)
        if self.pw2_extra is None:
            return out
        return torch.cat([out, F.relu(self.pw2_extra(h))], dim=1)


class DeployNet(nn.Module):
    """``uint8 [N, 1, H, W]`` grey -> the outputs of ``net`` on that grey as RGB in [-1, 1].

    Only once exported: in PyTorch its stride-2 convs still pad both sides alike, and
    :func:`tflite_same_padding` gives the exported graph TFLite's padding.
    """

    def __init__(self, net: BlazeFaceFullRange) -> None:
        super().__init__()
        self.net = net
        stem = nn.Conv2d(1, net.stem.out_channels, 3, 2, padding=1)
        with torch.no_grad():
            stem.weight.copy_(net.stem.weight.sum(dim=1, keepdim=True))
            stem.bias.copy_(net.stem.bias)
        net.stem = stem
        net.backbone = nn.ModuleList(DeployBlock(b) for b in net.backbone)
        for level in net.top_down:
            level.blocks = nn.Sequential(*(DeployBlock(b) for b in level.blocks))

    def forward(self, grey: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = F.relu(self.net.stem(grey.float() * (1 / 127.5) - 1.0))
        return self.net.heads(self.net.pyramid(x))


def tflite_same_padding(model: onnx.ModelProto) -> int:
    """Set every stride-2 3x3 conv's padding to TFLite's SAME on even sizes: 0 before, 1 after
    (PyTorch convs can only pad both sides alike). Returns how many convs were changed."""
    changed = 0
    for node in model.graph.node:
        attrs = {a.name: a for a in node.attribute}
        if (node.op_type == "Conv" and list(attrs["strides"].ints) == [2, 2]
                and list(attrs["kernel_shape"].ints) == [3, 3]):
            attrs["pads"].ints[:] = [0, 0, 1, 1]  # [top, left, bottom, right]
            changed += 1
    return changed


def export(out: Path) -> None:
    model = DeployNet(load_blazeface()).eval()
    example = torch.zeros(1, 1, 192, 192, dtype=torch.uint8)
    # The TorchScript-based exporter: the dynamo one needs onnxscript, and this graph is plain.
    torch.onnx.export(model, (example,), str(out), dynamo=False, opset_version=17,
                      input_names=["grey"], output_names=["regressors", "logits"],
                      dynamic_axes={"grey": {2: "height", 3: "width"},
                                    "regressors": {1: "anchors"}, "logits": {1: "anchors"}})
    graph = onnx.load(str(out))
    expected = 1 + sum(spec[-1] == 2 for spec in BACKBONE)  # the stem and the striding blocks
    if tflite_same_padding(graph) != expected:
        raise RuntimeError("the exported graph does not have the stride-2 convs expected")
    onnx.save(graph, str(out))
    print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB)")


def check(path: Path) -> float:
    """Largest absolute difference between ONNX Runtime on ``path`` and the PyTorch network."""
    import matplotlib
    from PIL import Image
    from skimage import data

    reference = BlazeFaceNet(backend="torch", bf16=False)
    onnx = BlazeFaceNet(backend="onnx", onnx_path=path)
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
