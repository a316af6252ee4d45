"""Where an ONNX graph's time goes: ONNX Runtime's own profile, summed by operator type.

    python benchmarks/profile_onnx.py src/ferlab/assets/bundled-int8.onnx --batch 64
"""

from __future__ import annotations

import argparse
import collections
import json
import tempfile
from pathlib import Path

import numpy as np
import onnxruntime as ort


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("graph", type=Path)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    options = ort.SessionOptions()
    options.enable_profiling, options.intra_op_num_threads = True, args.threads
    options.profile_file_prefix = str(Path(tempfile.mkdtemp()) / "ort")  # not in the cwd
    session = ort.InferenceSession(str(args.graph), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    x = np.random.default_rng(0).random((args.batch, 1, 48, 48), dtype=np.float32)
    for _ in range(args.runs):
        session.run(None, {name: x})
    profile = Path(session.end_profiling())
    events = json.loads(profile.read_text())
    profile.unlink()
    by_op: collections.Counter = collections.Counter()
    for e in events:
        if e.get("cat") == "Node" and e["name"].endswith("_kernel_time"):
            by_op[e["args"]["op_name"]] += e["dur"]
    total = sum(by_op.values())
    print(f"{args.graph}: batch {args.batch}, {args.threads} thread(s), {args.runs} runs")
    for op, us in by_op.most_common():
        print(f"  {op:24s} {us / total:6.1%}  {us / args.runs / 1000:8.2f} ms a run")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
