"""``ferlab train`` under torchrun (gloo over loopback, one thread per process) and ensemble
members in parallel (``--jobs``).

* The shards, loss weights and seeds of :class:`ferlab.training.distributed.Context`.
* 2 processes give the gradients of 1 at the same global batch: the same weights to 1e-5 for a
  net without BatchNorm in float32 (BatchNorm normalises each rank's half batch, the one
  difference DDP keeps), and for ``cnn-leaky`` the same validation accuracy trajectory within
  0.15 from epoch 3 on and 0.08 at the last epoch (the half-size BatchNorm batches make early
  epochs differ more; measured gaps: 0.11 and 0.03).
* SIGTERM on one rank stops both with the last finished epoch saved; ``--resume`` over 2
  processes then ends with exactly the weights of the uninterrupted 2-process run.
* A rank killed with SIGKILL ends the run on the survivor with one line, not a hang.
* ``train_members(..., jobs=2)`` trains the same members as ``jobs=1``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from ferlab.config import AugmentConfig, DataConfig, ModelConfig, RunConfig, TrainConfig
from ferlab.errors import ConfigError
from ferlab.synthetic import make_split_faces, write_fer2013_csv
from ferlab.training.distributed import SINGLE, Context, DistributedError, lost_peer

SRC = str(Path(__file__).resolve().parents[1] / "src")
TRAIN_ARGS = ["--model", "cnn-leaky", "--batch-size", "64", "--lr", "3e-3", "--weight-decay",
              "1e-4", "--threads", "1", "--epochs", "4", "--seed", "1"]
TIMEOUT = 600  # generous: a loaded 2-core machine starts torch slowly


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(**extra) -> dict:
    return {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", ""),
            "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1", **extra}


def _ranks(n: int, argv: list, **env) -> list[subprocess.Popen]:
    """``n`` processes of ``python argv`` with the variables torchrun sets, started directly
    (so a test can signal one rank by its pid)."""
    port = str(_free_port())
    return [subprocess.Popen(
        [sys.executable, *map(str, argv)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, env=_env(RANK=str(r), LOCAL_RANK=str(r), WORLD_SIZE=str(n),
                            MASTER_ADDR="127.0.0.1", MASTER_PORT=port, **env))
        for r in range(n)]


def _finish(procs: list[subprocess.Popen]) -> list[tuple[int, str, str]]:
    results = []
    for p in procs:
        out, err = p.communicate(timeout=TIMEOUT)
        results.append((p.returncode, out, err))
    return results


def _history(run: Path) -> list[dict]:
    from ferlab.runs import read_history

    return read_history(run)


def _wait_for(done, procs, what: str) -> None:
    end = time.monotonic() + TIMEOUT
    while not done():
        if any(p.poll() is not None for p in procs):
            for p in procs:
                p.kill()
            pytest.fail(f"a rank exited before {what}: {[p.communicate() for p in procs]}")
        if time.monotonic() > end:
            for p in procs:
                p.kill()
            pytest.fail(f"no {what} after {TIMEOUT} s")
        time.sleep(0.02)


@pytest.fixture(scope="module")
def faces_csv(tmp_path_factory):
    return write_fer2013_csv(make_split_faces(700, 140, seed=0),
                             tmp_path_factory.mktemp("dist") / "faces.csv.gz")


@pytest.fixture(scope="module")
def two_process_run(tmp_path_factory, faces_csv):
    """An uninterrupted 2-process run started by torchrun itself (``-m ferlab``)."""
    run = tmp_path_factory.mktemp("dist") / "two"
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
         "-m", "ferlab", "train", "--data", faces_csv, "--out", run, *TRAIN_ARGS],
        capture_output=True, text=True, env=_env(), timeout=TIMEOUT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return run, proc.stdout


# --------------------------------------------------------------------------------------------
# The plan each rank follows


def test_one_process_context_changes_nothing():
    batch = torch.arange(10)
    part, weight = SINGLE.shard(batch)
    assert part is batch and weight == 1.0
    g = torch.Generator()
    assert SINGLE.augment_generator(g, 123) is g
    assert SINGLE.rank_seed(123) == 123
    assert SINGLE.val_shard(7) == slice(0, 7)
    assert SINGLE.sum(1.5, 2) == [1.5, 2]
    assert SINGLE.stop_requested(True) and not SINGLE.stop_requested(False)


def test_ranks_share_each_batch_exactly_with_weights_of_the_whole_batch():
    world = 3
    ranks = [Context(rank=r, world=world) for r in range(world)]
    values = torch.rand(100, dtype=torch.float64)
    for size in (12, 13, 14, 6):
        batch = torch.randperm(100)[:size]
        parts = [c.shard(batch) for c in ranks]
        assert sorted(torch.cat([p for p, _ in parts]).tolist()) == sorted(batch.tolist())
        # DDP averages the ranks' gradients: their weighted mean losses average to the batch's
        averaged = sum(w * values[p].mean() for p, w in parts) / world
        assert averaged.item() == pytest.approx(values[batch].mean().item(), rel=1e-12)
    tiny = [c.shard(torch.arange(5)) for c in ranks]  # under 2 faces a rank: all skip it
    assert all(len(p) == 0 for p, _ in tiny)


def test_each_rank_draws_its_own_augmentation_and_dropout():
    ranks = [Context(rank=r, world=2) for r in range(2)]
    seeds = {c.rank_seed(99) for c in ranks} | {SINGLE.rank_seed(99)}
    assert len(seeds) == 3
    draws = [torch.rand(4, generator=c.augment_generator(torch.Generator(), 99)) for c in ranks]
    assert not torch.equal(*draws)
    again = torch.rand(4, generator=ranks[1].augment_generator(torch.Generator(), 99))
    assert torch.equal(draws[1], again)  # reproducible for a given rank


def test_global_batch_must_split_over_the_processes():
    assert Context(rank=1, world=4).rank_batch(128) == 32
    with pytest.raises(ConfigError, match="batch size 130 does not split evenly over 4"):
        Context(rank=0, world=4).rank_batch(130)


def test_lost_peer_message_is_one_line_without_cpp_noise():
    e = RuntimeError("[/x/gloo/transport/tcp/pair.cc:537] Read error [127.0.0.1]:4: Connection "
                     "reset by peer. This is typically caused by a remote worker hanging.\nmore")
    msg = str(lost_peer(Context(rank=0, world=2), e, "; 1 finished epoch(s) saved in r"))
    assert "\n" not in msg and "pair.cc" not in msg and "typically" not in msg
    assert msg.startswith("rank 0 of 2: lost contact with the other processes")
    assert msg.endswith("Read error [127.0.0.1]:4: Connection reset by peer; 1 finished "
                        "epoch(s) saved in r")
    assert isinstance(lost_peer(Context(0, 2), e), DistributedError)


# --------------------------------------------------------------------------------------------
# Real processes over loopback

EXACT_SCRIPT = """
import sys, torch
from torch import nn
from ferlab.config import AugmentConfig, DataConfig, ModelConfig, RunConfig, TrainConfig
from ferlab.data import make_split
from ferlab.models.registry import register_model
from ferlab.synthetic import make_split_faces
from ferlab.training.loop import train

class NoBatchNorm(nn.Module):
    name, kwargs, cam_layer = "no-bn", {}, ""

    def __init__(self):
        super().__init__()
        self.f = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(4),
                               nn.Flatten(), nn.Linear(8 * 144, 7))

    def forward(self, x):
        return self.f(x)

register_model("no-bn", description="a conv net without BatchNorm")(lambda **kw: NoBatchNorm())
faces = make_split_faces(301, 60, seed=0)  # 301: a last batch of 13 that splits 7 + 6
cfg = RunConfig(DataConfig(path="synthetic"), ModelConfig("no-bn"), AugmentConfig(),
                TrainConfig(epochs=2, batch_size=32, lr=2e-3, bf16=False, threads=1))
train(cfg, sys.argv[1], data=make_split(faces, "usage"), progress=False, log=lambda s: None)
"""


def test_two_processes_compute_the_gradients_of_one(tmp_path):
    """Without BatchNorm and in float32 the only difference left is the order of additions
    (the random augmentation is turned off: each rank draws its own)."""
    script = tmp_path / "exact.py"
    script.write_text(textwrap.dedent(EXACT_SCRIPT).replace(
        "AugmentConfig()", "AugmentConfig(flip=False, shift=0, rotation=0, zoom=0)"))
    one = subprocess.run([sys.executable, script, tmp_path / "one"], env=_env(),
                         capture_output=True, text=True, timeout=TIMEOUT)
    assert one.returncode == 0, one.stderr
    results = _finish(_ranks(2, [script, tmp_path / "two"]))
    assert all(rc == 0 for rc, _, _ in results), results
    a = load_file(str(tmp_path / "one" / "model.safetensors"))
    b = load_file(str(tmp_path / "two" / "model.safetensors"))
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=1e-5)
    ha, hb = _history(tmp_path / "one"), _history(tmp_path / "two")
    assert [h["val_acc"] for h in ha] == [h["val_acc"] for h in hb]


def test_two_processes_follow_the_one_process_trajectory(tmp_path, faces_csv, two_process_run):
    run2, out2 = two_process_run
    one = subprocess.run([sys.executable, "-m", "ferlab", "train", "--data", faces_csv, "--out",
                          tmp_path / "one", *TRAIN_ARGS], env=_env(), capture_output=True,
                         text=True, timeout=TIMEOUT)
    assert one.returncode == 0, one.stderr
    acc1 = [h["val_acc"] for h in _history(tmp_path / "one")]
    acc2 = [h["val_acc"] for h in _history(run2)]
    assert len(acc1) == len(acc2) == 4
    gaps = [abs(a - b) for a, b in zip(acc1, acc2, strict=True)]
    # Per-process batch norm statistics make the two runs drift apart a little, and one epoch
    # of 140 validation faces swings by several faces (seen: one process 0.857 then 0.821 on
    # a Zen 5 where two gave 0.85 then 0.929), so the end is judged by its best of two epochs.
    assert max(gaps[2:]) <= 0.15, (acc1, acc2)
    assert abs(max(acc1[-2:]) - max(acc2[-2:])) <= 0.08, (acc1, acc2)
    assert max(acc2[-2:]) >= 0.85, acc2
    # rank 0 alone reported and wrote; the world size is recorded with the run
    assert out2.count("best validation accuracy") == 1
    assert "over 2 processes" in out2
    assert json.loads((run2 / "config.json").read_text())["world_size"] == 2
    assert not list(run2.glob(".*.tmp"))


def test_sigterm_on_one_rank_stops_both_and_resume_matches(tmp_path, faces_csv,
                                                           two_process_run):
    full, _ = two_process_run
    part = tmp_path / "part"
    procs = _ranks(2, ["-m", "ferlab", "train", "--data", faces_csv, "--out", part, *TRAIN_ARGS])
    _wait_for((part / "checkpoint.pt").exists, procs, "the first checkpoint")
    procs[1].send_signal(signal.SIGTERM)  # rank 1 only: rank 0 must stop too
    results = _finish(procs)
    for rc, _, err in results:
        assert rc == 130, results
        assert err.strip().startswith("ferlab train: error: interrupted; "), err
        assert len(err.strip().splitlines()) == 1, err
    saved = len(_history(part))
    assert 1 <= saved < 4
    assert not (part / "metrics.json").exists()

    results = _finish(_ranks(2, ["-m", "ferlab", "train", "--resume", part]))
    assert all(rc == 0 for rc, _, _ in results), results
    assert f"resuming {part} after epoch {saved}" in results[0][1]
    a, b = load_file(str(full / "model.safetensors")), load_file(str(part / "model.safetensors"))
    for k in a:
        assert torch.equal(a[k], b[k]), k
    keep = ("epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr")
    assert ([{k: h[k] for k in keep} for h in _history(full)]
            == [{k: h[k] for k in keep} for h in _history(part)])


def test_a_killed_rank_ends_the_run_with_one_line(tmp_path, faces_csv):
    run = tmp_path / "run"
    procs = _ranks(2, ["-m", "ferlab", "train", "--data", faces_csv, "--out", run, *TRAIN_ARGS,
                       "--epochs", "30"], FERLAB_DIST_TIMEOUT="60")  # the last --epochs counts
    _wait_for((run / "checkpoint.pt").exists, procs, "the first checkpoint")
    procs[1].kill()
    (rc, _, err), (rc1, _, _) = _finish(procs)
    assert rc1 == -signal.SIGKILL
    assert rc == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith("ferlab train: error: rank 0 of 2: lost contact with the other "
                               "processes"), lines[0]
    assert f"saved in {run}; continue with --resume {run}" in lines[0]
    assert len(_history(run)) >= 1


# --------------------------------------------------------------------------------------------
# Ensemble members side by side


def test_members_in_two_jobs_are_the_members_of_one(tmp_path, faces):
    from ferlab.training.members import train_members

    small = faces.subset(slice(0, 300))
    cfg = RunConfig(DataConfig(path="synthetic", val_split="stratified:0.2"),
                    ModelConfig("cnn-leaky"), AugmentConfig(erase=0.2),
                    TrainConfig(epochs=1, batch_size=32, threads=1))
    serial, parallel = [], []
    train_members(cfg, tmp_path / "serial", 2, data=small, progress=False, log=serial.append)
    train_members(dataclasses.replace(cfg), tmp_path / "jobs", 2, data=small, progress=False,
                  log=parallel.append, jobs=2)
    for i in range(2):
        a = load_file(str(tmp_path / "serial" / f"member-{i:02d}" / "model.safetensors"))
        b = load_file(str(tmp_path / "jobs" / f"member-{i:02d}" / "model.safetensors"))
        for k in a:
            assert torch.equal(a[k], b[k]), (i, k)
    assert parallel[0] == "training 2 members in 2 processes of 1 thread(s) each"
    for i in (1, 2):
        assert any(s.startswith(f"[member {i}/2] epoch   1/1") for s in parallel), parallel
    assert (tmp_path / "jobs" / "members.csv").read_text() == (
        tmp_path / "serial" / "members.csv").read_text()
