"""Start-up time of the ``ferlab`` command: ``--help`` and an argument error of every subcommand.

Each case runs the CLI in a fresh Python process (``python -m ferlab.cli ...``), as a user's
shell does, several times; it prints the minimum and median wall-clock seconds per case and
fails (exit status 1) when a median is over the target (0.5 s, issue 19). The argument error is
an unknown option, which argparse reports only after every subcommand's parser is built.

    python benchmarks/bench_startup.py [--runs 5] [--target 0.5] [--python PYTHON]

Run it from the repository root (it puts ``src`` on ``PYTHONPATH``), on an idle machine: the
figures are wall-clock times.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from ferlab.cli import COMMANDS  # noqa: E402


def cases() -> list[tuple[str, list[str], int]]:
    """(label, arguments, expected exit status) of every case timed."""
    out = [("ferlab --help", ["--help"], 0)]
    for name in COMMANDS:
        out.append((f"{name} --help", [name, "--help"], 0))
        out.append((f"{name} --bogus", [name, "--bogus"], 2))
    return out


def time_case(python: str, args: list[str], expected: int, env: dict,
              cli: bool = True) -> float:
    t0 = time.perf_counter()
    r = subprocess.run([python, *(["-m", "ferlab.cli"] if cli else []), *args], env=env,
                       capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if r.returncode != expected:
        raise SystemExit(f"ferlab {' '.join(args)}: exit status {r.returncode}, expected "
                         f"{expected}: {r.stderr.strip()[:300]}")
    return seconds


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5, help="runs per case")
    ap.add_argument("--target", type=float, default=0.5, help="seconds a median may take")
    ap.add_argument("--python", default=sys.executable, help="interpreter that runs ferlab")
    a = ap.parse_args()
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    # For scale: the interpreter alone, which no change to ferlab can take away.
    bare = [time_case(a.python, ["-c", "pass"], 0, env, cli=False) for _ in range(a.runs)]
    print(f"{'case':<22}{'min s':>8}{'median s':>10}")
    print(f"{'python -c pass':<22}{min(bare):>8.3f}{statistics.median(bare):>10.3f}")
    slow = []
    for label, args, expected in cases():
        times = [time_case(a.python, args, expected, env) for _ in range(a.runs)]
        med = statistics.median(times)
        print(f"{label:<22}{min(times):>8.3f}{med:>10.3f}" + ("  SLOW" if med > a.target else ""))
        if med > a.target:
            slow.append(label)
    print(f"{len(cases())} cases, {a.runs} runs each; target: median under {a.target} s")
    if slow:
        print(f"over the target: {', '.join(slow)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
