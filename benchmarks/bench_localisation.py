"""Localisation of every explanation method on faces whose class lives in one small box.

Trains the reference model of ``ferlab.explain.localisation`` (a 35k-parameter cnn-leaky, 4
epochs of 700 box faces, seconds), then prints per method the median and lower quartile over 35
held-out faces of

    ratio = (share of the map's positive mass inside the box) / (box's share of the image)

(1.0 = chance), with seconds per face. ``--lime-sweep`` measures LIME over segments x samples x
kernel width (how its defaults were chosen), ``--gradcam-sweep`` Grad-CAM over layers, channel
weights and layer fusion; ``--time-model`` times LIME's defaults on another model in float32 (what
a CPU without native bf16 runs) and bf16.

Usage:
    PYTHONPATH=src nice -n 10 .venv/bin/python benchmarks/bench_localisation.py \\
        [--lime-sweep] [--gradcam-sweep] [--time-model bundled]
"""

from __future__ import annotations

import argparse
import itertools
import time
import warnings

import numpy as np
import torch

from ferlab.explain import get_explainer, list_layers, list_methods
from ferlab.explain.localisation import box_test_faces, localisation_ratio, reference_model
from ferlab.machine import machine_header


def measure(model, x, boxes, target, name, **options) -> tuple[float, float, float]:
    """(median ratio, lower-quartile ratio, seconds per face) of one method and its options."""
    e = get_explainer(name, model, **options)
    t0 = time.perf_counter()
    maps = e.attribute(x, target)
    dt = (time.perf_counter() - t0) / len(x)
    r = localisation_ratio(maps, boxes)
    return float(np.median(r)), float(np.percentile(r, 25)), dt


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--faces", type=int, default=35, help="held-out box faces")
    ap.add_argument("--seed", type=int, default=0, help="reference model's training seed")
    ap.add_argument("--methods", default=",".join(list_methods()))
    ap.add_argument("--lime-sweep", action="store_true")
    ap.add_argument("--gradcam-sweep", action="store_true")
    ap.add_argument("--time-model", help="model to time LIME on (run folder, file, 'bundled')")
    args = ap.parse_args()
    warnings.filterwarnings("ignore")
    print(machine_header())
    print(f"torch threads {torch.get_num_threads()}")
    t0 = time.perf_counter()
    model = reference_model(args.seed)
    x, labels, boxes = box_test_faces(args.faces)
    target = torch.from_numpy(labels)
    acc = float((model(x).argmax(1) == target).float().mean())
    print(f"reference model trained in {time.perf_counter() - t0:.1f} s; held-out accuracy "
          f"{acc:.3f} on {len(x)} box faces (boxes: {len(np.unique(boxes, axis=0))})")
    # Warm-up: the first forward/backward builds oneDNN kernels (a one-off second or two).
    get_explainer("saliency", model).attribute(x[:1])

    print(f"\n{'method':22s}{'median':>8s}{'q25':>8s}{'s/face':>8s}")
    for name in args.methods.split(","):
        med, q25, dt = measure(model, x, boxes, target, name)
        print(f"{name:22s}{med:8.2f}{q25:8.2f}{dt:8.3f}", flush=True)

    if args.gradcam_sweep:
        convs = [r["name"] for r in list_layers(model) if r["conv"]]
        print(f"\nGrad-CAM: layer(s) x channel weights ({', '.join(convs)})")
        print(f"{'layer':34s}{'weights':>9s}{'median':>8s}{'q25':>8s}")
        choices = [[c] for c in convs] + [convs[-2:], convs[-3:], convs]
        for layers, weights in itertools.product(choices, ("mean", "position")):
            med, q25, _ = measure(model, x, boxes, target, "gradcam", layer=",".join(layers),
                                  weights=weights)
            print(f"{','.join(layers):34s}{weights:>9s}{med:8.2f}{q25:8.2f}", flush=True)

    if args.lime_sweep:
        print("\nLIME (float32): segments asked for, samples, kernel width")
        print(f"{'segments':>8s}{'samples':>8s}{'kernel':>8s}{'median':>8s}{'q25':>8s}"
              f"{'s/face':>8s}")
        # Segments at the default samples and kernel, then samples and kernel at 60 segments.
        grid = [(seg, 256, 0.25) for seg in (40, 60, 80, 120)] + [(60, 512, 0.25),
                                                                   (60, 256, 1.0)]
        for seg, n, kw in grid:
            med, q25, dt = measure(model, x, boxes, target, "lime", segments=seg, samples=n,
                                   kernel_width=kw, precision="fp32")
            print(f"{seg:8d}{n:8d}{kw:8.2f}{med:8.2f}{q25:8.2f}{dt:8.3f}", flush=True)

    if args.time_model:
        from ferlab.model_spec import load_model

        other = load_model(args.time_model).eval()
        xs = x[:7]
        get_explainer("lime", other, samples=16, precision="fp32").attribute(xs[:1])
        print(f"\nLIME defaults on {args.time_model} ({other.name} {other.kwargs}), 7 faces:")
        for precision in ("fp32", "bf16"):
            e = get_explainer("lime", other, precision=precision)
            t1 = time.perf_counter()
            e.attribute(xs)
            print(f"  {precision}: {(time.perf_counter() - t1) / len(xs):.3f} s per face "
                  f"({e.samples} samples, {e.segments} segments)", flush=True)


if __name__ == "__main__":
    main()
