"""Training steps per second with glibc's default malloc thresholds and with
`ferlab.allocator.keep_freed_memory()`, at two batch sizes.

Each setting runs in its own process (the thresholds are per process), trains the given model
for `--seconds` on random faces under the precision `auto` picks, and reports images/s, the
user and system CPU seconds and the page faults it took.

    python benchmarks/bench_allocator.py [--model speedrun] [--batch 1024 256] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time


def measure(model: str, kwargs: dict, batch: int, keep: bool, seconds: float, threads: int
            ) -> dict:
    import torch

    from ferlab.allocator import keep_freed_memory
    from ferlab.models import create_model
    from ferlab.precision import autocast, resolve_precision

    if keep:
        keep_freed_memory()
    torch.set_num_threads(threads)
    bf16 = resolve_precision("auto").bf16
    net = create_model(model, **kwargs).to(memory_format=torch.channels_last)
    opt = torch.optim.SGD([p for p in net.parameters() if p.requires_grad], lr=0.01,
                          momentum=0.9)
    x = torch.rand(batch, 1, 48, 48).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 7, (batch,))

    def step():
        with autocast(bf16, "cpu"):
            out = net(x)
        loss = torch.nn.functional.cross_entropy(out.float(), y)
        opt.zero_grad()
        loss.backward()
        opt.step()

    step()
    before, start, faces = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter(), 0
    while time.perf_counter() - start < seconds:
        step()
        faces += batch
    after, wall = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter() - start
    return {"img_s": faces / wall, "user_s": after.ru_utime - before.ru_utime,
            "sys_s": after.ru_stime - before.ru_stime,
            "faults": after.ru_minflt - before.ru_minflt}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="speedrun")
    ap.add_argument("--model-args", default='{"widths": [32, 128, 256]}')
    ap.add_argument("--batch", type=int, nargs="+", default=[1024, 256])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seconds", type=float, default=15.0)
    ap.add_argument("--child", nargs=2, metavar=("BATCH", "KEEP"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    kwargs = json.loads(args.model_args)
    if args.child:
        print(json.dumps(measure(args.model, kwargs, int(args.child[0]), args.child[1] == "1",
                                 args.seconds, args.threads)))
        return 0
    from ferlab.machine import machine_header

    print(machine_header())
    print(f"{args.model} {kwargs}, {args.threads} thread(s), {args.seconds:.0f} s each\n")
    print(f"{'batch':>5} {'malloc':>14} {'img/s':>7} {'user s':>7} {'sys s':>6} {'faults':>9}")
    for batch in args.batch:
        for keep in (False, True):
            out = subprocess.run([sys.executable, __file__, "--model", args.model,
                                  "--model-args", args.model_args, "--threads",
                                  str(args.threads), "--seconds", str(args.seconds),
                                  "--child", str(batch), "1" if keep else "0"],
                                 capture_output=True, text=True, check=True)
            r = json.loads(out.stdout.strip().splitlines()[-1])
            print(f"{batch:5d} {'kept' if keep else 'glibc default':>14} {r['img_s']:7.0f} "
                  f"{r['user_s']:7.1f} {r['sys_s']:6.1f} {r['faults']:9,d}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
