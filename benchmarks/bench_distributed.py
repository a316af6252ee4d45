"""Throughput of ``ferlab train`` over 2 gloo processes of 1 thread against 1 process of 2.

Runs the real command both ways on the same data and global batch, and reads each epoch's
seconds from ``history.csv`` (training steps plus the validation pass, both shared over the
ranks under torchrun). The first epoch is left out (warm-up); the figure is the median
images/s of the others. Target (issue 25): the 2-process run loses at most 15%.

    .venv/bin/python benchmarks/bench_distributed.py                  # synthetic faces
    .venv/bin/python benchmarks/bench_distributed.py --data ../shared/data/fer2013.csv.gz \\
        --limit 4000

On a GPU machine ``--nproc N --threads-per-process T --device cuda`` runs the same comparison
with NCCL (one GPU per process) against one process on one GPU.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

SRC = str(Path(__file__).resolve().parents[1] / "src")
sys.path.insert(0, SRC)

from ferlab.machine import cpu_model, machine_header  # noqa: E402
from ferlab.runs import read_history  # noqa: E402
from ferlab.synthetic import make_split_faces, write_fer2013_csv  # noqa: E402

TARGET_LOSS = 0.15


def run(nproc: int, threads: int, data: str, out: Path, args) -> float:
    """Median images/s of epochs 2.. of one ``ferlab train`` run."""
    train = ["train", "--data", data, "--out", str(out), "--model", args.model, "--epochs",
             str(args.epochs), "--batch-size", str(args.batch_size), "--threads", str(threads),
             "--device", args.device, "--limit", str(args.limit), "--force"]
    if nproc == 1:
        cmd = [sys.executable, "-m", "ferlab", *train]
    else:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               "--nproc-per-node", str(nproc), "-m", "ferlab", *train]
    env = {**os.environ, "PYTHONPATH": SRC, "OMP_NUM_THREADS": str(threads)}
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"{' '.join(cmd)} failed:\n{done.stdout}\n{done.stderr}")
    import json

    faces = json.loads((out / "config.json").read_text())["train_faces"]
    seconds = [h["seconds"] for h in read_history(out)][1:]
    return faces / statistics.median(seconds)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", help="data file (default: 4,000 + 400 synthetic faces)")
    p.add_argument("--limit", type=int, default=0, help="first N training faces")
    p.add_argument("--model", default="cnn-leaky")
    p.add_argument("--epochs", type=int, default=4, help="epochs per run (the first is left out)")
    p.add_argument("--batch-size", type=int, default=128, help="global batch")
    p.add_argument("--nproc", type=int, default=2, help="processes of the distributed run")
    p.add_argument("--threads-per-process", type=int, default=1)
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--repeats", type=int, default=2, help="alternated runs of each setting")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data = args.data or str(write_fer2013_csv(make_split_faces(4000, 400, seed=0),
                                                  Path(tmp) / "faces.csv.gz"))
        total = args.nproc * args.threads_per_process
        one, many = [], []
        for r in range(args.repeats):  # alternated, so a busy spell hits both settings
            one.append(run(1, total, data, Path(tmp) / f"one-{r}", args))
            many.append(run(args.nproc, args.threads_per_process, data, Path(tmp) / f"many-{r}",
                            args))
    a, b = statistics.median(one), statistics.median(many)
    print(machine_header())
    print(f"{cpu_model()}, {os.cpu_count()} logical CPUs; {args.model}, global batch "
          f"{args.batch_size}, {args.device}")
    print(f"1 process x {total} threads:  {a:7.0f} images/s  (runs: "
          f"{', '.join(f'{v:.0f}' for v in one)})")
    print(f"{args.nproc} processes x {args.threads_per_process} thread(s): {b:7.0f} images/s  "
          f"(runs: {', '.join(f'{v:.0f}' for v in many)})")
    loss = 1 - b / a
    print(f"the {args.nproc}-process run {'loses' if loss > 0 else 'gains'} {abs(loss):.1%} "
          f"(target: loses at most {TARGET_LOSS:.0%}): "
          f"{'met' if loss <= TARGET_LOSS else 'missed'}")


if __name__ == "__main__":
    main()
