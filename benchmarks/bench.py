"""`make bench`: what this machine does with ferlab, measured, printed as tables.

0. The machine: CPU model, vector extensions, versions, and the precision ``auto`` picks.
1. The CPU's own figures: a 2048x2048 matrix product in float32 and bfloat16 (GFLOP/s).
2. For every registered model: training images/second in float32 and under bf16 autocast
   (channels_last, batch 128, AdamW step included), which of the two ferlab's default (``auto``)
   trains in and how far it is from the faster one; inference images/second (batch 64, the
   folded copy ferlab predicts with, float32 and bf16); and the training GFLOP/s of the default.
3. Reading the data file: seconds and faces (when --data exists).
4. Other benchmark scripts beside this one (faces, memory) when they exist.

Run alone on an idle machine: the figures are wall-clock rates.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from ferlab.inference import DEFAULT_BATCH, inference_copy
from ferlab.machine import machine_header
from ferlab.models import count_params, create_model, forward_mflops, list_models
from ferlab.precision import autocast, resolve_precision

HERE = Path(__file__).parent


def matmul_gflops(dtype: torch.dtype, n: int = 2048, reps: int = 10) -> float:
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    a @ b  # warm-up
    t = time.perf_counter()
    for _ in range(reps):
        a @ b
    return 2 * n**3 * reps / (time.perf_counter() - t) / 1e9


def train_rate(name: str, steps: int, bf16: bool, batch: int = 128, warmup: int = 2) -> float:
    torch.manual_seed(0)
    model = create_model(name).to(memory_format=torch.channels_last).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    x = torch.rand(batch, 1, 48, 48).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 7, (batch,))
    for i in range(steps + warmup):
        if i == warmup:
            t = time.perf_counter()
        with autocast(bf16):
            out = model(x)
        loss = F.cross_entropy(out.float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return steps * batch / (time.perf_counter() - t)


def infer_rate(name: str, bf16: bool, steps: int, batch: int = DEFAULT_BATCH) -> float:
    """Faces/s of the folded copy ``predict_faces`` runs (weights in bf16 or float32)."""
    fast = inference_copy(create_model(name).eval(), bf16)
    x = torch.rand(batch, 1, 48, 48).to(next(fast.parameters()).dtype)
    x = x.contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        for i in range(steps + 1):
            if i == 1:
                t = time.perf_counter()
            fast(x)
    return steps * batch / (time.perf_counter() - t)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="../shared/data/fer2013.csv.gz")
    ap.add_argument("--models", nargs="*", default=None, help="default: every registered model")
    ap.add_argument("--steps", type=int, default=4, help="timed steps per measurement")
    ap.add_argument("--json", help="also write the figures here")
    ap.add_argument("--no-scripts", action="store_true",
                    help="only this script's tables, not the other benchmark scripts")
    args = ap.parse_args()
    results: dict = {"threads": torch.get_num_threads(), "torch": torch.__version__}

    started = time.perf_counter()
    print(machine_header())
    print(f"torch threads {torch.get_num_threads()}")
    default = resolve_precision("auto")
    # Emulated bf16 is many times slower: 11 products of 2048x2048 took minutes on a Zen 3,
    # where one of 512x512 shows the same rate.
    bf16_size = (2048, 10) if default.bf16 else (512, 1)
    results["matmul_gflops"] = {"float32": matmul_gflops(torch.float32),
                                "bfloat16": matmul_gflops(torch.bfloat16, *bf16_size)}
    print("2048x2048 matmul: {float32:.0f} GFLOP/s float32, {bfloat16:.0f} GFLOP/s bf16".format(
        **results["matmul_gflops"]) + ("" if default.bf16 else " (emulated: 512x512, once)"))

    print(f"\n{'model':<11}{'params':>12}{'MFLOPs':>9}{'train fp32':>12}{'train bf16':>12}"
          f"{'default':>9}{'vs best':>9}{'GFLOP/s':>9}{'infer fp32':>12}{'infer bf16':>12}")
    print(f"{'':<32}{'(img/s, batch 128)':>24}{'':>27}{'(faces/s, batch 64)':>24}")
    results["models"] = {}
    for name in args.models or list_models():
        model = create_model(name)
        params, _ = count_params(model)
        mflops = forward_mflops(model)
        steps = max(2, args.steps if mflops < 1000 else args.steps // 2)
        tr = {"fp32": train_rate(name, steps, False)}
        if default.bf16:
            tr["bf16"] = train_rate(name, steps, True)
        elif mflops < 1000:
            # Emulated bf16 is about 12x slower: one step after one warm-up shows it. The
            # biggest nets (resnet18: ~4 minutes a step) are left out to keep `make bench`
            # under 10 minutes; the smaller ones already show which precision is faster.
            tr["bf16"] = train_rate(name, 1, True, warmup=1)
        chosen = tr[default.name]
        fp32 = infer_rate(name, False, steps)
        bf16 = infer_rate(name, True, steps if default.bf16 else 1)
        gflops = chosen * 3 * mflops / 1e3  # backward ~ 2x forward
        results["models"][name] = {"params": params, "mflops": mflops, "train_img_s": tr,
                                   "default_precision": default.name,
                                   "default_vs_best": chosen / max(tr.values()),
                                   "train_gflops": gflops, "infer_fp32_img_s": fp32,
                                   "infer_bf16_img_s": bf16}
        bf16_train = f"{tr['bf16']:.0f}" if "bf16" in tr else "skipped"
        print(f"{name:<11}{params:>12,}{mflops:>9.1f}{tr['fp32']:>12.0f}{bf16_train:>12}"
              f"{default.name:>9}{chosen / max(tr.values()):>9.0%}{gflops:>9.0f}{fp32:>12.0f}"
              f"{bf16:>12.0f}", flush=True)

    print(f"(these tables took {time.perf_counter() - started:.0f} s)")
    if Path(args.data).exists():
        from ferlab.data import load_faces

        t = time.perf_counter()
        faces = load_faces(args.data)
        results["load_seconds"] = time.perf_counter() - t
        print(f"\nread {args.data}: {len(faces):,} faces in {results['load_seconds']:.1f} s "
              f"({faces.images.nbytes / 1e6:.0f} MB as uint8)")
    else:
        print(f"\n{args.data} not found: data-reading figures skipped")

    for script in () if args.no_scripts else ("bench_faces.py", "bench_load.py",
                                              "bench_memory.py", "bench_runtime.py"):
        path = HERE / script
        if path.exists():
            print(f"\n== {script}", flush=True)
            takes_data = script in ("bench_memory.py", "bench_runtime.py")
            extra = ["--data", args.data] if takes_data else []
            t = time.perf_counter()
            subprocess.run([sys.executable, str(path), *extra], check=False)
            print(f"({script} took {time.perf_counter() - t:.0f} s)", flush=True)

    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
