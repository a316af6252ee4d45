"""A ferlab classifier as an ONNX graph, and the ferlab metadata it carries.

:func:`export_onnx` turns any ferlab model (or ensemble) into ONNX bytes, float32, batch size
free, with the class order and the preprocessing in the file's metadata (:func:`read_onnx_meta`).
The graph takes what every ferlab model takes, ``float32 [N, 1, 48, 48]`` grey levels / 255
(named ``grey``), and returns ``logits [N, 7]`` in ferlab's class order; the model's own
standardisation (``pixel_mean``, ``pixel_std``) is inside the graph and recorded in the metadata.

Example:
    >>> from ferlab.model_spec import load_model
    >>> data = export_onnx(load_model("bundled"))                    # doctest: +SKIP
    >>> read_onnx_meta(data)["classes"][3]                           # doctest: +SKIP
    'happy'
"""

from __future__ import annotations

import io
import json
import warnings
from pathlib import Path

import torch

from ..constants import EMOTIONS, IMAGE_SIZE, PIXEL_MEAN, PIXEL_STD
from ..errors import ModelError
from ..inference import inference_copy

ONNX_FORMAT = "ferlab-onnx/1"
INPUT_NAME = "grey"
OUTPUT_NAME = "logits"
# Opset 17 is the newest that torch's TorchScript-based exporter writes without warnings for
# every op these nets use, and ONNX Runtime 1.32 runs it natively.
OPSET = 17


def _model_info(model: torch.nn.Module) -> dict:
    """Name, arguments and normalisation of a model, for the ONNX metadata."""
    members = getattr(model, "members", None)
    info: dict = {"name": getattr(model, "name", "") or type(model).__name__,
                  "kwargs": getattr(model, "kwargs", {}) or {}}
    if members is not None:
        info["members"] = [{"name": getattr(m, "name", ""), "kwargs": getattr(m, "kwargs", {})}
                           for m in members]
        info["method"] = getattr(model, "method", "")
        first = members[0] if len(members) else None
    else:
        first = model
    mean = getattr(first, "pixel_mean", torch.tensor(PIXEL_MEAN))
    std = getattr(first, "pixel_std", torch.tensor(PIXEL_STD))
    info["pixel_mean"], info["pixel_std"] = round(float(mean), 6), round(float(std), 6)
    return info


def export_onnx(model: torch.nn.Module, *, source: str = "", opset: int = OPSET) -> bytes:
    """The float32 ONNX graph of ``model``, as bytes (write them to a ``.onnx`` file).

    Batch norms are folded into the layers before them first
    (:func:`ferlab.inference.inference_copy`), so the graph is the one PyTorch's fast inference
    path computes. Uses torch's TorchScript-based exporter (``dynamo=False``): the newer one would
    add ``onnxscript`` as a dependency for nothing these plain nets need.

    Args:
        model: any ferlab model or ensemble (grey / 255 in, logits out).
        source: what the model was loaded from (``bundled``, a path), stored in the metadata.
        opset: the ONNX opset to write.

    Raises:
        ModelError: the ``onnx`` package is missing or the model cannot be traced.
    """
    try:
        import onnx
    except ImportError as e:  # pragma: no cover - a pinned dependency
        raise ModelError("exporting to ONNX needs the 'onnx' package (pip install onnx)") from e
    folded = inference_copy(model, bf16=False).to(memory_format=torch.contiguous_format)
    dummy = torch.rand(1, IMAGE_SIZE, IMAGE_SIZE)[None]  # the batch axis is left free below
    buf = io.BytesIO()
    with warnings.catch_warnings():
        # The TorchScript exporter announces its deprecation on every call; it is chosen.
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            torch.onnx.export(folded, (dummy,), buf, dynamo=False, opset_version=opset,
                              input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                              dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}})
        except Exception as e:  # the exporter raises many types for untraceable models
            raise ModelError(f"cannot export this model to ONNX: {e}".splitlines()[0]) from e
    proto = onnx.load_from_string(buf.getvalue())
    meta = {"format": ONNX_FORMAT, "classes": list(EMOTIONS), "image_size": IMAGE_SIZE,
            "input": f"{INPUT_NAME}: float32 [N, 1, {IMAGE_SIZE}, {IMAGE_SIZE}], grey levels / 255",
            "output": f"{OUTPUT_NAME}: float32 [N, {len(EMOTIONS)}]; softmax gives the class "
                      "probabilities in 'classes' order",
            "normalisation": "inside the graph: (grey / 255 - pixel_mean) / pixel_std",
            "precision": "float32", "source": str(source), "opset": opset,
            **_model_info(model)}
    set_onnx_meta(proto, meta)
    proto.producer_name = "ferlab"
    proto.doc_string = (f"ferlab facial expression classifier: {meta['input']} -> "
                        f"{meta['output']}; classes {', '.join(EMOTIONS)}")
    return proto.SerializeToString()


def set_onnx_meta(proto, meta: dict) -> None:
    """Store ``meta`` as the ``ferlab`` JSON entry of an ``onnx.ModelProto``'s metadata (plus
    ``classes``, comma-separated, for tools that read plain entries)."""
    entries = {"ferlab": json.dumps(meta), "classes": ",".join(meta["classes"])}
    kept = [p for p in proto.metadata_props if p.key not in entries]
    del proto.metadata_props[:]
    proto.metadata_props.extend(kept)
    for key, value in entries.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value


def read_onnx_meta(data: bytes | str | Path) -> dict:
    """The ferlab metadata of an exported graph (bytes or a path), checked.

    Raises:
        ModelError: not a ferlab ONNX file, or its classes differ from ferlab's.
    """
    import onnx

    where = "ONNX graph" if isinstance(data, bytes) else str(data)
    try:
        proto = (onnx.load_from_string(data) if isinstance(data, bytes)
                 else onnx.load(str(data), load_external_data=False))
    except Exception as e:  # onnx raises DecodeError and others for files that are not graphs
        raise ModelError(f"{where}: not a readable ONNX file ({e})".splitlines()[0]) from e
    return check_onnx_meta({p.key: p.value for p in proto.metadata_props}, where)


def check_onnx_meta(props: dict[str, str], where: str) -> dict:
    """The ferlab metadata in a graph's metadata entries ``props``, checked (see
    :func:`read_onnx_meta`)."""
    if "ferlab" not in props:
        raise ModelError(f"{where}: ONNX file has no ferlab metadata; export it with "
                         "'ferlab export'")
    try:
        meta = json.loads(props["ferlab"])
    except json.JSONDecodeError as e:
        raise ModelError(f"{where}: ferlab metadata is not valid JSON: {e}") from e
    if meta.get("format") != ONNX_FORMAT or meta.get("classes") != list(EMOTIONS):
        raise ModelError(f"{where}: format {meta.get('format')!r} with classes "
                         f"{meta.get('classes')} is not ferlab's {ONNX_FORMAT} with "
                         f"{list(EMOTIONS)}")
    return meta
