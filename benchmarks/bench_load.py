"""Photos and faces while another process holds a core: ferlab's thread defaults under load.

For each torch thread count, times the astronaut photo end to end (detect + crop + classify) and
the classifier at batch 1, first on a quiet machine, then with a busy loop (another process,
pure Python, spinning on one core). Each configuration runs in its own process, so that thread
settings made at start-up hold. ``ferlab`` photos use one thread by default
(:mod:`ferlab.threads`); the table shows why.

    python benchmarks/bench_load.py [--threads 1,2] [--repeat 30] [--model bundled]

Run it on a machine with nothing else busy: the "quiet" rows assume so.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

CHILD = r"""
import json, statistics, sys, time
import numpy as np
import torch
threads, repeat, model = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
torch.set_num_threads(threads)
from skimage.data import astronaut
from ferlab.faces.recognizer import Recognizer
rec = Recognizer(model, threads=threads)
photo = astronaut()
face = np.random.default_rng(0).integers(0, 256, (1, 48, 48), dtype=np.uint8)
def times(fn):
    for _ in range(3):
        fn()
    out = []
    for _ in range(repeat):
        t = time.perf_counter(); fn(); out.append((time.perf_counter() - t) * 1e3)
    return out
print(json.dumps({"photo_ms": times(lambda: rec.detect_emotions(photo)),
                  "face_ms": times(lambda: rec.classify(face)),
                  "precision": f"{rec.runtime} {rec.computes_in}"}))
"""

BUSY = "while True: pass"


def run_child(threads: int, repeat: int, model: str) -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD, str(threads), str(repeat), model],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    from ferlab.machine import machine_header

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", default="1,2", help="torch thread counts to compare")
    ap.add_argument("--repeat", type=int, default=30, help="timed calls per figure")
    ap.add_argument("--model", default="bundled")
    args = ap.parse_args(argv)
    print(machine_header())
    print(f"model {args.model}; ONNX Runtime BlazeFace on one thread, no spinning (ferlab's)")
    print(f"\n{'torch threads':<15}{'load':<8}{'photo ms (min / median)':>26}"
          f"{'classifier b1 faces/s':>24}{'runtime':>14}")
    rows = {}
    for n in (int(v) for v in args.threads.split(",")):
        for load in ("quiet", "busy"):
            busy = None
            if load == "busy":
                busy = subprocess.Popen([sys.executable, "-c", BUSY])
                if hasattr(os, "sched_setaffinity"):
                    os.sched_setaffinity(busy.pid, {max(os.sched_getaffinity(0))})
                time.sleep(0.5)
            try:
                r = run_child(n, args.repeat, args.model)
            finally:
                if busy is not None:
                    busy.kill()
                    busy.wait()
            photo = r["photo_ms"]
            rate = 1e3 / statistics.median(r["face_ms"])
            rows[(n, load)] = statistics.median(photo)
            print(f"{n:<15}{load:<8}{min(photo):>13.1f} / {statistics.median(photo):>8.1f}"
                  f"{rate:>24,.0f}{r['precision']:>14}", flush=True)
    for n in sorted({k[0] for k in rows}):
        ratio = rows[(n, "busy")] / rows[(n, "quiet")]
        print(f"{n} thread(s): busy / quiet median photo time {ratio:.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
