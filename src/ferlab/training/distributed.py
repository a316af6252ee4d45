"""Data-parallel training under ``torchrun``: the plumbing :func:`ferlab.training.loop.train` calls.

``torchrun --nproc-per-node N -m ferlab train ...`` starts N processes with ``RANK``,
``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT`` set. :func:`context` joins
them into one process group (gloo for CPU tensors, NCCL for CUDA ones) and returns a
:class:`Context` that the training loop asks a few questions:

* which part of each global batch is this rank's (:meth:`Context.shard`), and how to weight its
  loss so that the averaged gradient is the gradient of the whole batch;
* which augmentation stream and dropout seed this rank uses;
* whether any rank was asked to stop (:meth:`Context.stop_requested`);
* which share of the validation faces this rank predicts (:meth:`Context.val_shard`), and
  the sums over all ranks that make the figures of the whole (:meth:`Context.sum`).

Without ``WORLD_SIZE`` (or with ``WORLD_SIZE=1``) the context is :data:`SINGLE`: every method
is then the identity and training is exactly the one-process run, bit for bit.

PyTorch's own DistributedDataParallel does the gradient averaging; this module only decides who
draws what, so a run is reproducible for a given world size.
"""

from __future__ import annotations

import atexit
import datetime
import os
import re
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from ..errors import ConfigError, FerlabError

TIMEOUT_ENV = "FERLAB_DIST_TIMEOUT"  # seconds a rank waits for the others before giving up
DEFAULT_TIMEOUT = 300.0
MIN_SHARD = 2  # faces per rank: BatchNorm cannot normalise a batch of one in training mode


class DistributedError(FerlabError):
    """A rank lost contact with the others (one was killed, crashed or hangs)."""


@dataclass(frozen=True)
class Context:
    """Where this process stands among the ranks of one training run.

    Attributes:
        rank: this process's rank, 0..world-1 (rank 0 writes the run folder).
        world: the number of processes.
        local_rank: the rank on this machine (which GPU it drives).
    """

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def active(self) -> bool:
        """Whether there are other ranks (a process group is joined)."""
        return self.world > 1

    @property
    def is_main(self) -> bool:
        """Whether this rank writes files and logs (rank 0)."""
        return self.rank == 0

    def device(self, device: torch.device) -> torch.device:
        """The device this rank trains on: its own GPU (``cuda:LOCAL_RANK``) under torchrun."""
        if self.active and device.type == "cuda":
            torch.cuda.set_device(self.local_rank)
            return torch.device("cuda", self.local_rank)
        return device

    def rank_batch(self, batch_size: int) -> int:
        """Faces per rank in a full step; the global batch stays ``batch_size``.

        Raises:
            ConfigError: ``batch_size`` is not a multiple of the world size.
        """
        if batch_size % self.world:
            raise ConfigError(f"batch size {batch_size} does not split evenly over "
                              f"{self.world} processes; give a multiple of {self.world} "
                              f"(the global batch, shared by all processes)")
        return batch_size // self.world

    def wrap(self, model: torch.nn.Module) -> torch.nn.Module:
        """``model`` wrapped in DistributedDataParallel (``model`` itself for one process).

        Train through the wrapper, save and evaluate ``model``: both share the parameters.
        """
        if not self.active:
            return model
        device = next(model.parameters()).device
        ids = [device.index] if device.type == "cuda" else None
        with _peer_errors(self):
            return DistributedDataParallel(model, device_ids=ids)

    def shard(self, batch: torch.Tensor) -> tuple[torch.Tensor, float]:
        """This rank's strided part of one global batch of indices, and the weight of its loss.

        Rank r takes ``batch[r::world]``, so the ranks together draw exactly the faces one
        process draws. The weight ``len(part) * world / len(batch)`` makes DDP's average of the
        per-rank mean losses the mean over the whole batch (1.0 for a full batch). A final
        batch too small to give every rank ``MIN_SHARD`` faces gives every rank an empty part:
        all ranks skip that step alike.
        """
        if not self.active:
            return batch, 1.0
        if len(batch) < MIN_SHARD * self.world:
            return batch[:0], 0.0
        part = batch[self.rank::self.world]
        return part, len(part) * self.world / len(batch)

    def augment_generator(self, order_generator: torch.Generator,
                          epoch_seed: int) -> torch.Generator:
        """The generator of this rank's augmentation in an epoch.

        One process keeps drawing from the generator that drew the epoch's order (as ferlab
        always has); rank r of several draws its own stream, seeded by (epoch seed, rank).
        """
        if not self.active:
            return order_generator
        return torch.Generator().manual_seed(self.rank_seed(epoch_seed))

    def rank_seed(self, epoch_seed: int) -> int:
        """``epoch_seed`` for one process; a seed of its own for each rank of several."""
        if not self.active:
            return epoch_seed
        return (epoch_seed * 1_000_003 + (self.rank + 1) * 104_729) % (2**63 - 1)

    def stop_requested(self, here: bool) -> bool:
        """Whether any rank was asked to stop (SIGINT/SIGTERM); the same answer on every rank.

        Called by every rank at the same point of every step, so all stop at the same step.
        """
        if not self.active:
            return here
        flag = torch.tensor([1.0 if here else 0.0], device=self._tensor_device())
        with _peer_errors(self):
            dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        return bool(flag.item())

    def sum(self, *values: float) -> list[float]:
        """Element-wise sums over all ranks (the values themselves for one process)."""
        if not self.active:
            return list(values)
        t = torch.tensor(values, dtype=torch.float64, device=self._tensor_device())
        with _peer_errors(self):
            dist.all_reduce(t)
        return t.tolist()

    def sync_buffers(self, module: torch.nn.Module | None) -> None:
        """Copy rank 0's buffers (BatchNorm statistics) to every rank.

        Each rank updates its BatchNorm statistics on its own shard; after this every rank
        holds the model rank 0 saves, so every rank validates the same model and a resumed run
        continues from exactly what an uninterrupted one holds.
        """
        if not self.active or module is None:
            return
        with _peer_errors(self):
            for b in module.buffers():
                dist.broadcast(b, src=0)

    def val_shard(self, n: int) -> slice:
        """This rank's part of the validation set (strided)."""
        return slice(self.rank, n, self.world) if self.active else slice(0, n)

    def barrier(self) -> None:
        """Wait until every rank gets here (the others wait while rank 0 writes files)."""
        if self.active:
            with _peer_errors(self):
                dist.barrier()

    def _tensor_device(self) -> torch.device:
        # NCCL reduces CUDA tensors only; gloo takes CPU ones.
        if dist.get_backend() == "nccl":
            return torch.device("cuda", torch.cuda.current_device())
        return torch.device("cpu")


SINGLE = Context()


def world_from_env() -> int:
    """The world size torchrun set (1 when not started by torchrun)."""
    try:
        return int(os.environ.get("WORLD_SIZE", "1"))
    except ValueError:
        raise ConfigError(f"WORLD_SIZE must be an integer, got "
                          f"{os.environ['WORLD_SIZE']!r}") from None


def is_main_process() -> bool:
    """Whether this process is rank 0 (or the only one): the one that prints."""
    return os.environ.get("RANK", "0") == "0"


def context() -> Context:
    """This process's :class:`Context`, joining the process group on the first call.

    Reads the variables torchrun sets. The group's backend is gloo for CPU tensors and NCCL for
    CUDA ones where the GPU build of torch has it. A rank waits at most ``FERLAB_DIST_TIMEOUT``
    seconds (default 300) for the others in any collective, so a hung or killed rank ends the
    run with a :class:`DistributedError` instead of a hang.

    Raises:
        DistributedError: the other ranks could not be reached.
    """
    world = world_from_env()
    if world <= 1:
        return SINGLE
    ctx = Context(rank=int(os.environ.get("RANK", "0")), world=world,
                  local_rank=int(os.environ.get("LOCAL_RANK", "0")))
    if not dist.is_initialized():
        backend = "cpu:gloo,cuda:nccl" if torch.cuda.is_available() else "gloo"
        try:
            timeout = float(os.environ.get(TIMEOUT_ENV, DEFAULT_TIMEOUT))
        except ValueError:
            raise ConfigError(f"{TIMEOUT_ENV} must be a number of seconds, got "
                              f"{os.environ[TIMEOUT_ENV]!r}") from None
        try:
            dist.init_process_group(backend, timeout=datetime.timedelta(seconds=timeout))
        except (RuntimeError, ValueError) as e:
            raise DistributedError(
                f"rank {ctx.rank} of {world}: cannot join the other processes at "
                f"{os.environ.get('MASTER_ADDR', '?')}:{os.environ.get('MASTER_PORT', '?')}: "
                f"{_first_line(e)}") from e
        atexit.register(_leave)
    return ctx


def _leave() -> None:
    if dist.is_initialized():
        try:
            dist.destroy_process_group()
        except Exception:  # noqa: BLE001  # a peer already gone: nothing left to close
            pass


def _first_line(e: BaseException) -> str:
    """The gist of a backend's error: its first sentence, without the C++ source location."""
    line = (str(e).strip().splitlines() or [type(e).__name__])[0]
    line = re.sub(r"^\[[^\]]*\.(?:cpp|cc|h|hpp):\d+\]\s*", "", line)
    return line.split(". ")[0].rstrip(".")


def lost_peer(ctx: Context, e: BaseException, saved: str = "") -> DistributedError:
    """The one-line error a rank raises when a collective fails (a peer died or timed out).

    Args:
        ctx: this rank.
        e: what the collective raised (or a :class:`DistributedError` already made).
        saved: what the run folder holds, appended to the message.
    """
    if isinstance(e, DistributedError):
        return DistributedError(f"{e}{saved}")
    timeout = os.environ.get(TIMEOUT_ENV, f"{DEFAULT_TIMEOUT:.0f}")
    return DistributedError(
        f"rank {ctx.rank} of {ctx.world}: lost contact with the other processes (one was "
        f"killed, crashed, or did not answer within {timeout} s): {_first_line(e)}{saved}")


class _peer_errors:  # noqa: N801  # used as a context manager, named like one
    """Turns the RuntimeError a failed collective raises into a :class:`DistributedError`."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def __enter__(self):
        return self

    def __exit__(self, kind, e, tb):
        if kind is not None and issubclass(kind, RuntimeError) and self.ctx.active:
            raise lost_peer(self.ctx, e) from e
        return False
