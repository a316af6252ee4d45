"""Interrupted training loses nothing: real ``ferlab train`` processes stopped by signals.

* SIGINT / SIGTERM: the process finishes writing the epoch it was saving, prints one line saying
  how many epochs are saved and how to resume, and exits with status 130.
* ``kill -9`` at a random moment after the first checkpoint, then ``--resume``: the run ends with
  exactly the weights (and history) of a run never interrupted, augmentation and data order
  included.
* Every file ferlab writes goes through ``ferlab.io_utils.atomic_write``.
"""

from __future__ import annotations

import csv
import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from ferlab.io_utils import atomic_write
from ferlab.model_file import load_checkpoint
from ferlab.synthetic import make_split_faces, write_fer2013_csv

# A tiny, quick run that still uses every random part: shuffling, flips, shifts, rotation,
# zoom, random erasing and dropout. One epoch takes about a second.
TRAIN_ARGS = ["--model", "cnn-leaky", "--batch-size", "32", "--erase", "0.3", "--threads", "1",
              "--seed", "7"]


@pytest.fixture(scope="module")
def small_csv(tmp_path_factory):
    return write_fer2013_csv(make_split_faces(120, 30, seed=9),
                             tmp_path_factory.mktemp("interrupt") / "faces.csv.gz")


def _start(*argv) -> subprocess.Popen:
    """``ferlab argv`` as a child that takes Ctrl-C like a terminal program (SIGINT is left at
    its default even if the test runner was started with it ignored)."""
    return subprocess.Popen(
        [sys.executable, "-m", "ferlab.cli", *map(str, argv)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),  # noqa: PLW1509
        env={**os.environ, "PYTHONUNBUFFERED": "1"})


def _wait_for(done, proc: subprocess.Popen, what: str, timeout: float = 600) -> None:
    """Polls ``done()`` until it is true; fails if ``proc`` exits first or time runs out."""
    end = time.monotonic() + timeout
    while not done():
        if proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f"ferlab exited early ({proc.returncode}) before {what}:\n{out}\n{err}")
        if time.monotonic() > end:
            proc.kill()
            pytest.fail(f"no {what} after {timeout} s")
        time.sleep(0.02)


def _history_rows(run: Path) -> list[dict]:
    with open(run / "history.csv", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def _assert_consistent(run: Path) -> int:
    """The run folder's files are whole and agree: returns the epochs saved."""
    ck = load_checkpoint(run / "checkpoint.pt")
    epochs = ck["state"]["epoch"]
    assert len(_history_rows(run)) >= epochs
    assert load_file(str(run / "model.safetensors"))  # loads, so not torn
    return epochs


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_signal_saves_and_exits_cleanly(tmp_path, small_csv, signum):
    run = tmp_path / "run"
    proc = _start("train", "--data", small_csv, "--out", run, "--epochs", "40", *TRAIN_ARGS)
    _wait_for((run / "checkpoint.pt").exists, proc, f"{run / 'checkpoint.pt'}")
    time.sleep(random.uniform(0, 1.5))  # land anywhere: mid-epoch or while saving
    proc.send_signal(signum)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 130, (out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    m = re.fullmatch(rf"ferlab train: error: interrupted; (\d+) finished epoch\(s\) saved in "
                     rf"{re.escape(str(run))}; continue with --resume {re.escape(str(run))}",
                     lines[0])
    assert m, lines[0]
    saved = _assert_consistent(run)
    assert saved == int(m.group(1)) >= 1
    assert len(_history_rows(run)) == saved  # history and checkpoint agree exactly
    assert not list(run.glob(".*.tmp")), "a temporary file was left behind"
    assert not (run / "metrics.json").exists()


def test_kill_9_then_resume_matches_an_uninterrupted_run(tmp_path, small_csv):
    seed = int.from_bytes(os.urandom(4), "little")
    rng = random.Random(seed)
    epochs = ["--epochs", "6"]
    full, part = tmp_path / "full", tmp_path / "part"
    reference = _start("train", "--data", small_csv, "--out", full, *epochs, *TRAIN_ARGS)
    victim = _start("train", "--data", small_csv, "--out", part, *epochs, *TRAIN_ARGS)
    # Kill during epoch 2, 3 or 4 of 6, at a random point of it, however fast or loaded this
    # machine is: wait for that epoch's predecessor to be saved, then sleep a fraction of the last
    # epoch's time. (A delay counted from the first checkpoint once let a machine whose first epoch
    # was its slowest finish all six before the kill.)
    target = rng.randint(1, 3)
    _wait_for(lambda: (part / "history.csv").exists() and len(_history_rows(part)) >= target,
              victim, f"epoch {target} in {part}")
    delay = rng.uniform(0, 0.9) * float(_history_rows(part)[-1]["seconds"])
    time.sleep(delay)
    victim.kill()  # SIGKILL: no handler runs, files are left as they are at this instant
    victim.communicate(timeout=30)
    assert victim.returncode == -signal.SIGKILL, f"run finished before the kill (seed {seed})"
    assert not (part / "metrics.json").exists()
    saved = _assert_consistent(part)
    assert 1 <= saved < 6

    resumed = _start("train", "--resume", part)
    out, err = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, (seed, out, err)
    assert f"resuming {part} after epoch {saved}" in out
    ref_out, ref_err = reference.communicate(timeout=600)
    assert reference.returncode == 0, ref_err

    msg = (f"kill -9 {delay:.2f} s after epoch {target} was saved (seed {seed}) changed the "
           "result")
    for name in ("model.safetensors",):
        a, b = load_file(str(full / name)), load_file(str(part / name))
        assert a.keys() == b.keys()
        for k in a:
            assert torch.equal(a[k], b[k]), f"{msg}: {name} tensor {k}"
    ca, cb = load_checkpoint(full / "checkpoint.pt"), load_checkpoint(part / "checkpoint.pt")
    for k in ca["model"]:
        assert torch.equal(ca["model"][k], cb["model"][k]), f"{msg}: final weights {k}"
    assert ca["state"]["epoch"] == cb["state"]["epoch"] == 6
    ha, hb = _history_rows(full), _history_rows(part)
    keep = ("epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr")
    assert [{k: r[k] for k in keep} for r in ha] == [{k: r[k] for k in keep} for r in hb], msg
    assert not list(part.glob(".*.tmp"))


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_signal_in_any_command_is_one_line(tmp_path, signum):
    """A command stuck reading (here: a pipe nobody writes to) stops with one line, no
    traceback, status 130."""
    fifo = tmp_path / "faces.csv"
    os.mkfifo(fifo)
    proc = _start("data", fifo, "--out", tmp_path / "grid.png")
    end = time.monotonic() + 600  # generous: a loaded machine starts Python slowly
    while True:  # opening the write end succeeds once ferlab has opened the read end
        try:
            fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > end:
                proc.kill()
                pytest.fail(f"ferlab never opened the pipe: {proc.communicate()}")
            time.sleep(0.05)
    try:
        os.write(fd, b"emotion,pixels,Usage\n3,1 2")  # a partial row: ferlab waits for more
        time.sleep(0.3)
        proc.send_signal(signum)
        out, err = proc.communicate(timeout=300)
    finally:
        os.close(fd)
    assert proc.returncode == 130, (out, err)
    assert err.strip() == "ferlab data: interrupted"
    assert not (tmp_path / "grid.png").exists()


def test_atomic_write_keeps_the_old_file_when_writing_fails(tmp_path):
    target = tmp_path / "model.safetensors"
    target.write_bytes(b"old and whole")

    def half_then_crash(p: Path) -> None:
        p.write_bytes(b"half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic_write(target, half_then_crash)
    assert target.read_bytes() == b"old and whole"
    assert [p.name for p in tmp_path.iterdir()] == ["model.safetensors"]


# Calls that write a file. Each must sit inside ``atomic_write(...)`` (or a helper of io_utils)
# or write to an in-memory buffer.
_WRITES = re.compile(r"open\([^)]*['\"][wax]b?\+?['\"]|\.write_text\(|\.write_bytes\(|"
                     r"savefig\(|json\.dump\(|torch\.save\(|save_file\(|np\.save[z]?\(|\.to_csv\(|imwrite\(|"
                     r"(?<![\w.])Image\.[\w().]*\.save\(|\w+\.save\([^)]*(?:\"|')|shutil\.copy")


def test_every_write_in_ferlab_is_atomic():
    src = Path(__file__).resolve().parents[1] / "src" / "ferlab"
    bad = []
    for py in sorted(src.rglob("*.py")):
        if py.name == "io_utils.py":
            continue
        for n, line in enumerate(py.read_text(encoding="utf-8").splitlines(), 1):
            code = line.split("#")[0]
            if not _WRITES.search(code) or ">>>" in line:
                continue
            if "atomic_write(" in code or re.search(r"\bbuf\b|BytesIO|StringIO", code):
                continue
            bad.append(f"{py.relative_to(src)}:{n}: {line.strip()}")
    assert not bad, "writes that do not go through atomic_write:\n" + "\n".join(bad)
