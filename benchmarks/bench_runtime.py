"""The classifier in each runtime: faces/s at batch 1 and 64, torch against ONNX Runtime.

    .venv/bin/python benchmarks/bench_runtime.py [--model bundled] [--data fer2013.csv.gz]

Rows: torch float32 and (only where this CPU computes bf16 natively) torch bf16, both the folded
copy that photos use (:func:`ferlab.inference.inference_copy`); ONNX Runtime float32 (the graph of
:func:`ferlab.runtime.onnx_graph.export_onnx`) and int8: for the bundled model the graph that ships
with ferlab, for any other :func:`ferlab.runtime.export.quantize_int8` calibrated on 512 Training
faces of ``--data``, or on synthetic faces without it (the speed is the same, only the accuracy is
not). Every runtime gets the same threads (``--threads``, default torch's). Rounds alternate
between runtimes and each figure is the best round's, so a neighbour's burst on a shared
machine hurts every row alike. Last, the entry of ``ferlab/runtime_choice.py``'s
table that these figures give for this CPU's kind, to compare with the one the table holds.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import onnxruntime
import torch

from ferlab.inference import inference_copy
from ferlab.precision import bf16_is_native
from ferlab.runtime.choice import CHOICES, batch_kind, cpu_kind
from ferlab.runtime.export import quantize_int8
from ferlab.runtime.onnx_classifier import OnnxClassifier, load_classifier, shipped_graph
from ferlab.runtime.onnx_graph import export_onnx
from ferlab.synthetic import make_faces

FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_bf16", "amx_int8")


def cpu_line() -> str:
    """The CPU's model name and the vector flags that decide these figures."""
    model, flags = platform.processor() or "unknown CPU", set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name":
                model = value.strip()
            elif key.strip() == "flags":
                flags = set(value.split())
    except OSError:
        pass
    have = [f for f in FLAGS if f in flags] or ["none of " + "/".join(FLAGS)]
    return f"{model}, {os.cpu_count()} cpus; flags: {' '.join(have)}"


def faces_per_second(fn, images: np.ndarray, batch: int, seconds: float) -> float:
    """Faces/s of ``fn`` on batches of ``batch`` faces, over about ``seconds``."""
    x = torch.from_numpy(images[:batch]).unsqueeze(1).float().div_(255.0)
    fn(x)  # warm-up (first-call allocations, ORT's kernel choice)
    n, t0 = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - t0) < seconds or n < 3:
        fn(x)
        n += 1
    return n * batch / elapsed


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="bundled")
    ap.add_argument("--data", default="../shared/data/fer2013.csv.gz",
                    help="Training faces for int8 calibration (synthetic faces if missing)")
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--batches", type=int, nargs="*", default=[1, 64])
    ap.add_argument("--rounds", type=int, default=3, help="alternating rounds per figure")
    ap.add_argument("--seconds", type=float, default=1.0, help="timed seconds per round")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)

    print(f"CPU: {cpu_line()}")
    print(f"bf16 native: {bf16_is_native()}; torch {torch.__version__}, onnxruntime "
          f"{onnxruntime.__version__}; {args.threads} threads for every runtime")
    model = load_classifier(args.model)
    t = time.perf_counter()
    fp32_graph = export_onnx(model, source=args.model)
    print(f"model: {args.model}; export to ONNX {time.perf_counter() - t:.2f} s")

    shipped = shipped_graph(model)
    if shipped is not None:
        int8_graph, cal_what = shipped.read_bytes(), None
        print(f"int8: the shipped graph {shipped.name}")
    elif Path(args.data).exists():
        from ferlab.data import load_faces, select_split

        train = select_split(load_faces(args.data), "Training")
        pick = np.random.default_rng(0).choice(len(train), min(512, len(train)), replace=False)
        calibration, cal_what = train.images[pick], f"{len(pick)} Training faces of {args.data}"
    else:
        calibration, cal_what = make_faces(512, seed=0).images, "512 synthetic faces"
    if cal_what is not None:
        t = time.perf_counter()
        int8_graph = quantize_int8(fp32_graph, calibration)
        print(f"int8: calibrated on {cal_what} in {time.perf_counter() - t:.1f} s")

    runners: dict[tuple[str, str], object] = {}
    with torch.no_grad():
        fast32 = inference_copy(model, bf16=False)
        runners["torch", "float32"] = lambda x: fast32(x.contiguous(
            memory_format=torch.channels_last))
        if bf16_is_native():
            fast16 = inference_copy(model, bf16=True)
            runners["torch", "bf16"] = lambda x: fast16(x.to(torch.bfloat16).contiguous(
                memory_format=torch.channels_last))
        else:
            print("torch bf16: skipped (this CPU only emulates bf16, ~12x slower)")
        runners["onnx", "float32"] = OnnxClassifier(fp32_graph, args.threads)
        runners["onnx", "int8"] = OnnxClassifier(int8_graph, args.threads)

        images = make_faces(max(args.batches), seed=1).images
        best: dict[tuple[str, str, int], float] = {}
        for _ in range(args.rounds):
            for batch in args.batches:
                for key, fn in runners.items():
                    rate = faces_per_second(fn, images, batch, args.seconds)
                    best[(*key, batch)] = max(best.get((*key, batch), 0.0), rate)

    print(f"\n{'runtime':<9}{'precision':<11}" + "".join(f"{f'batch {b}':>12}"
                                                      for b in args.batches) + "  (faces/s)")
    for rt, prec in runners:
        print(f"{rt:<9}{prec:<11}" + "".join(f"{best[rt, prec, b]:>12.0f}" for b in args.batches))

    kind = cpu_kind()
    torch_prec = "bf16" if bf16_is_native() else "float32"
    print(f"\nfaster, for runtime_choice.CHOICES (CPU kind {kind!r}; torch in {torch_prec}, the "
          "precision it runs by default here):")
    for b in args.batches:
        for prec in ("float32", "int8"):
            t_rate, o_rate = best["torch", torch_prec, b], best["onnx", prec, b]
            held = CHOICES.get((kind, batch_kind(b), prec))
            print(f"  batch {b} ({batch_kind(b)}), onnx {prec}: "
                  f"{'onnx' if o_rate > t_rate else 'torch'} (torch {t_rate:.0f}, onnx "
                  f"{o_rate:.0f}); the table holds {held}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
