"""Ensemble members trained side by side: ``ferlab train --members N --jobs J``.

J worker processes (``spawn``, so no thread pool or CUDA state is inherited from the parent)
take members from a queue. Each trains with its share of the torch threads, or on its own GPU
where several are visible; their log lines come back to the parent, which prints them one
after the other, prefixed with the member: one display for all.

The standard library's ``multiprocessing`` does this well: members are independent runs, so
no process group is needed (that is ``torchrun``'s job, for one run over several processes).
"""

from __future__ import annotations

import dataclasses
import multiprocessing as mp
import os
import queue
import signal
from collections.abc import Callable, Sequence

from ..errors import FerlabError
from .errors import TrainingInterrupted

# torch (and the training loop, which imports it) is imported inside functions here, not at the
# top: a spawned worker imports this module to find _worker, and must set CUDA_VISIBLE_DEVICES
# before torch loads.

POLL_SECONDS = 0.5  # how often the parent looks for a worker that died without a word


class MemberJobError(FerlabError):
    """A member failed (its error is in the message) or its worker process died."""


def thread_share(threads: int, jobs: int) -> int:
    """Torch threads for each of ``jobs`` processes sharing ``threads`` (0: torch's default)."""
    import torch  # deferred: see the note at the top

    return max(1, (threads or torch.get_num_threads()) // jobs)


def gpu_for_slot(slot: int, device: str) -> str | None:
    """The ``CUDA_VISIBLE_DEVICES`` of worker ``slot``: one GPU each, round robin, where the run
    trains on a GPU and several are visible; ``None`` (leave it alone) otherwise."""
    import torch  # deferred: see the note at the top

    if device == "cpu" or not torch.cuda.is_available() or torch.cuda.device_count() < 2:
        return None
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    ids = ([s.strip() for s in visible.split(",") if s.strip()] if visible
           else [str(i) for i in range(torch.cuda.device_count())])
    return ids[slot % len(ids)]


def _worker(slot: int, tasks, events, threads: int, gpu: str | None) -> None:
    if gpu is not None:  # before CUDA starts in this process
        os.environ["CUDA_VISIBLE_DEVICES"] = gpu
    try:
        while (member := tasks.get()) is not None:
            member = dataclasses.replace(member, cfg=dataclasses.replace(
                member.cfg, train=dataclasses.replace(member.cfg.train, threads=threads)))
            i = member.index
            try:
                member.train(progress=False, log=lambda s, i=i: events.put(("log", i, s)))
            except TrainingInterrupted as e:
                events.put(("interrupted", i, str(e)))
                return
            except FerlabError as e:
                events.put(("error", i, " ".join(str(e).split())))
                return
            except Exception as e:  # noqa: BLE001  # reported to the parent, which stops
                events.put(("error", i, f"{type(e).__name__}: {' '.join(str(e).split())}"))
                return
            events.put(("done", i, ""))
    except KeyboardInterrupt:  # Ctrl-C while waiting for a member: nothing in flight
        pass
    finally:
        events.put(("exit", slot, ""))


def train_in_parallel(members: Sequence, jobs: int, log: Callable[[str], None]) -> None:
    """Train ``members`` (``ensemble._Member``) in ``jobs`` processes.

    Ctrl-C or SIGTERM (or a failed member) stops every worker the way it stops one run: each
    saves its last finished epoch, and running the command again resumes them.

    Raises:
        TrainingInterrupted: a signal stopped the workers.
        MemberJobError: a member failed, or a worker process died.
    """
    jobs = min(jobs, len(members))
    first = members[0].cfg.train
    threads = thread_share(first.threads, jobs)
    context = mp.get_context("spawn")
    tasks, events = context.Queue(), context.Queue()
    for m in members:
        tasks.put(m)
    for _ in range(jobs):
        tasks.put(None)
    procs = [context.Process(target=_worker, name=f"ferlab-member-job-{slot}",
                             args=(slot, tasks, events, threads, gpu_for_slot(slot, first.device)))
             for slot in range(jobs)]
    log(f"training {len(members)} members in {jobs} processes of {threads} thread(s) each")
    for p in procs:
        p.start()
    exited: set[int] = set()
    failures: list[str] = []
    interrupted = False
    try:
        while len(exited) < jobs:
            try:
                kind, who, text = events.get(timeout=POLL_SECONDS)
            except queue.Empty:
                for slot, p in enumerate(procs):
                    if slot not in exited and p.exitcode is not None:
                        exited.add(slot)  # died without saying so (killed, out of memory)
                        failures.append(f"worker process {slot} died (exit code {p.exitcode})")
                        _stop(procs)
                continue
            if kind == "log":
                log(f"[member {who + 1}/{members[0].of}] {text}")
            elif kind == "exit":
                exited.add(who)
            elif kind == "interrupted":
                interrupted = True
            elif kind == "error":
                failures.append(f"member {who + 1}: {text}")
                _stop(procs)
    except KeyboardInterrupt:
        interrupted = True
        _stop(procs)
    finally:
        tasks.cancel_join_thread()  # members left in the queue are not waited for
        while any(p.is_alive() for p in procs):  # keep reading, so no worker blocks on a put
            try:
                kind, who, text = events.get(timeout=POLL_SECONDS)
            except queue.Empty:
                continue
            if kind == "log":
                log(f"[member {who + 1}/{members[0].of}] {text}")
        for p in procs:
            p.join()
    if failures:
        raise MemberJobError(failures[0] + ("; finished members are kept, run the command again "
                                            "to resume the others"))
    if interrupted:
        raise TrainingInterrupted("interrupted; finished members and the last finished epoch of "
                                  "the others are saved; run the same command again to resume")


def _stop(procs) -> None:
    """SIGTERM to every live worker: each saves its last finished epoch and ends."""
    for p in procs:
        if p.is_alive():
            try:
                os.kill(p.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
