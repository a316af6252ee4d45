"""`ferlab serve` over loopback: photo latency, explanation latency, and a load test with the
server's memory sampled throughout.

Starts ``python -m ferlab.cli serve`` (the command users run) on a free 127.0.0.1 port, then:

1. one photo at a time (the bundled astronaut unless ``--photo``): p50/p95 of the round trip;
2. each explanation (saliency, Grad-CAM, LIME) of its face: p50 of the round trip, and of the
   server's own time for the map;
3. the load test: ``--requests`` photos, ``--concurrency`` at a time, p50/p95 and requests/s,
   and the server's resident memory (``/proc/PID/status`` VmRSS) every 10 requests.

    python benchmarks/bench_serve.py [--model bundled] [--photo PHOTO] [--requests 300]
                                     [--concurrency 4] [--single 50] [--rounds 2]

Run on an idle machine: the figures are wall-clock times. Linux only (memory from /proc).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np

from ferlab.serve.loadtest import load_test, multipart

ASTRONAUT = Path(__file__).resolve().parents[1] / "src" / "ferlab" / "assets" / "astronaut.jpg"
EXPLAIN_REPEATS = {"saliency": 10, "gradcam": 10, "lime": 5}


def cpu_line() -> str:
    name = "unknown CPU"
    flags: list[str] = []
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name") and name == "unknown CPU":
            name = line.split(":", 1)[1].strip()
        if line.startswith("flags") and not flags:
            flags = line.split(":", 1)[1].split()
    native = [f for f in ("avx512_bf16", "amx_bf16") if f in flags]
    return (f"{name}, {os.cpu_count()} cores, bf16 native: {', '.join(native) or 'no'}; "
            f"load average at start {os.getloadavg()[0]:.2f}")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until_up(url: str, proc: subprocess.Popen, timeout_s: float = 180) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"the server exited with status {proc.returncode}")
        try:
            with urllib.request.urlopen(url + "/api/health", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    sys.exit("the server did not start")


def post(url: str, photo: bytes) -> tuple[float, dict]:
    body, ctype = multipart("file", "photo.jpg", photo, "image/jpeg")
    req = urllib.request.Request(url, data=body, headers={"Content-Type": ctype})
    start = time.perf_counter()
    with urllib.request.urlopen(req, timeout=120) as r:
        answer = json.loads(r.read())
    return (time.perf_counter() - start) * 1000, answer


def pct(values, q) -> float:
    return float(np.percentile(values, q))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="bundled")
    ap.add_argument("--photo", type=Path, default=ASTRONAUT)
    ap.add_argument("--requests", type=int, default=300, help="photos per load round")
    ap.add_argument("--concurrency", type=int, default=4)
    ap.add_argument("--rounds", type=int, default=2, help="load rounds (memory across them)")
    ap.add_argument("--single", type=int, default=50, help="photos sent one at a time")
    args = ap.parse_args()

    photo = args.photo.read_bytes()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    print(cpu_line())
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}
    # The server's output (its start line, uvicorn's access log) goes to a file: a pipe nobody
    # reads would fill up and stall the server.
    log = tempfile.TemporaryFile("w+")
    proc = subprocess.Popen([sys.executable, "-m", "ferlab.cli", "serve", "--model", args.model,
                             "--port", str(port)], env=env, stdout=log,
                            stderr=subprocess.STDOUT, text=True)
    try:
        wait_until_up(url, proc)
        log.seek(0)
        print(log.readline().strip())
        info = json.loads(urllib.request.urlopen(url + "/api/model").read())
        print(f"model {info['model']} ({info['architecture']}), precision {info['precision']}, "
              f"{info['limits']['workers']} workers; photo {args.photo.name}; "
              f"server RSS after start {rss_mb(proc.pid):.0f} MB")

        for _ in range(5):  # first requests: connection set-up, allocator growth
            post(url + "/api/analyze", photo)
        single = [post(url + "/api/analyze", photo)[0] for _ in range(args.single)]
        print(f"\none photo at a time ({args.single}): p50 {pct(single, 50):.1f} ms, "
              f"p95 {pct(single, 95):.1f} ms")

        print("\nexplanation of face 0 (round trip, with the photo re-analysed; server's map time)")
        for method, n in EXPLAIN_REPEATS.items():
            trips, maps = [], []
            for _ in range(n):
                ms, ans = post(url + f"/api/explain?face=0&method={method}", photo)
                trips.append(ms)
                maps.append(ans["seconds"] * 1000)
            print(f"  {method:<9} p50 {pct(trips, 50):7.1f} ms   map {pct(maps, 50):7.1f} ms  "
                  f"({n} runs)")

        print(f"\nload: {args.requests} photos, {args.concurrency} at a time, {args.rounds} "
              "rounds; server RSS every 100 requests")
        for r in range(args.rounds):
            samples = [rss_mb(proc.pid)]

            def sample(done, samples=samples):
                if done % 100 == 0:
                    samples.append(rss_mb(proc.pid))

            res = load_test(url, photo, args.requests, args.concurrency, on_progress=sample)
            print(f"  round {r + 1}: {res.summary()}")
            print(f"           RSS MB: {' -> '.join(f'{m:.0f}' for m in samples)}")
            if res.errors:
                print(f"           first error: {res.errors[0]}")
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
