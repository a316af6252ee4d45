"""Peak resident memory of reading the whole data file and evaluating a model on all of it.

The work runs in a child process, so the figure is that process's own peak (``VmHWM`` from
/proc, and ``ru_maxrss`` of the child as the kernel counts it), not this script's. It must stay
under 1 GB (``--limit-mb``); the exit status is 1 when it does not.

    python benchmarks/bench_memory.py --data ../shared/data/fer2013.csv.gz --model runs/vgg32-e30

Without ``--model`` the bundled model is used, or an untrained ``vgg`` (same size and memory
traffic as a trained one) when no bundled model is installed.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time


def _rss_mb() -> tuple[float, float]:
    """(current, peak) resident memory of this process in MB, from /proc/self/status."""
    fields = {}
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                fields[key] = int(value.split()[0]) / 1024  # kB -> MB
    return fields.get("VmRSS", 0.0), fields.get("VmHWM", 0.0)


def child(data: str, model_spec: str | None, batch_size: int) -> dict:
    """Read ``data`` and evaluate the model on every face; memory after each stage."""
    import torch

    from ferlab.data import load_faces
    from ferlab.model_spec import load_model
    from ferlab.models import create_model

    stages = {"imports": _rss_mb()}
    if model_spec:
        model, name = load_model(model_spec), model_spec
    else:
        try:
            model, name = load_model("bundled"), "bundled"
        except Exception:  # noqa: BLE001  (no bundled model installed: an untrained one)
            model, name = create_model("vgg").eval(), "vgg (untrained)"
    stages["model"] = _rss_mb()
    t = time.perf_counter()
    faces = load_faces(data)
    read_s = time.perf_counter() - t
    stages["read"] = _rss_mb()
    t = time.perf_counter()
    try:
        from ferlab.evaluate import evaluate_model

        ev = evaluate_model(model, faces, batch_size=batch_size, progress=False)
        accuracy, how = ev.metrics["accuracy"], "ferlab.evaluate.evaluate_model"
    except ImportError:
        from ferlab.inference import predict_probs

        probs = predict_probs(model, torch.from_numpy(faces.images), batch_size)
        accuracy = float((probs.argmax(1).numpy() == faces.labels).mean())
        how = "ferlab.inference.predict_probs"
    eval_s = time.perf_counter() - t
    stages["evaluate"] = _rss_mb()
    return {"faces": len(faces), "model": name, "how": how, "accuracy": accuracy,
            "read_seconds": round(read_s, 1), "eval_seconds": round(eval_s, 1),
            "stages_mb": {k: [round(v, 1) for v in cur_peak] for k, cur_peak in stages.items()},
            "peak_mb": round(_rss_mb()[1], 1)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True, help="fer2013.csv(.gz), train.csv or image folder")
    p.add_argument("--model", help="run folder, model file, ensemble folder or 'bundled'")
    p.add_argument("--batch-size", type=int, default=256, help="faces per forward pass")
    p.add_argument("--limit-mb", type=float, default=1024, help="the budget (1 GB)")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)

    if args.child:
        print(json.dumps(child(args.data, args.model, args.batch_size)))
        return 0

    cmd = [sys.executable, __file__, "--child", "--data", args.data,
           "--batch-size", str(args.batch_size)] + (["--model", args.model] if args.model else [])
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        print(f"bench_memory: the measured process failed:\n{proc.stderr.strip()}",
              file=sys.stderr)
        return 2
    r = json.loads(proc.stdout.strip().splitlines()[-1])
    # ru_maxrss of waited-for children, in kB on Linux: the kernel's own count of the same peak.
    kernel_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    peak = max(r["peak_mb"], kernel_mb)
    print(f"data   {args.data}: {r['faces']:,} faces, read in {r['read_seconds']} s")
    print(f"model  {r['model']}: evaluated with {r['how']} in {r['eval_seconds']} s "
          f"(accuracy on all faces {r['accuracy']:.4f})")
    print(f"{'stage':<10}{'RSS MB':>9}{'peak MB':>9}")
    for stage, (cur, hwm) in r["stages_mb"].items():
        print(f"{stage:<10}{cur:>9.0f}{hwm:>9.0f}")
    ok = peak < args.limit_mb
    print(f"peak resident memory {peak:.0f} MB ({'within' if ok else 'OVER'} the "
          f"{args.limit_mb:.0f} MB budget)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
