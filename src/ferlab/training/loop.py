"""``train(cfg, out_dir)``: one training run, readable top to bottom, into a run folder.

The run folder (:class:`ferlab.runs.RunFolder`) holds everything later stages read:

* ``config.json``     the resolved RunConfig, the git commit and the ferlab version
* ``history.csv``     one row per epoch (see ``HISTORY_COLUMNS``)
* ``checkpoint.pt``   the state after the last finished epoch, for ``--resume``
* ``model.safetensors`` the best model so far (by validation accuracy), loadable by any command
* ``metrics.json``    best validation accuracy and its epoch, parameters, time

Determinism: every epoch reseeds the data order, the augmentation and dropout from
``(seed, epoch)``, so a run resumed from the checkpoint of epoch k draws exactly what an
uninterrupted run draws, and ends with the same weights.

The mechanics live beside this file, one job each: ``start`` (folder, device, precision, data,
first weights), ``epoch`` (one pass over the training faces), ``validation``, ``state``,
``checkpoint``, ``schedule``, ``signals``, ``ema``, ``distill``, ``optim``, ``distributed``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import torch

from ..allocator import keep_freed_memory
from ..config import RunConfig
from ..data import FaceSet
from ..model_file import save_model
from ..models import count_params
from ..precision import autocast
from ..runs import RunFolder
from . import distributed
from .checkpoint import resume_from_checkpoint, save_checkpoint
from .distill import make_distiller
from .ema import WeightEMA
from .epoch import EpochFigures, Learner, train_epoch
from .lookahead import Lookahead
from .optim import make_optimizer
from .schedule import Schedule, steps_per_epoch
from .signals import sigterm_as_interrupt, stops_reported
from .start import (
    RunData,
    build_model,
    prepare_data,
    resolve_device,
    run_config,
    run_precision,
    start_run_folder,
)
from .state import TrainState
from .validation import EvalResult, validate


def train(cfg: RunConfig, out_dir: str | Path, *, resume: bool = False, force: bool = False,
          progress: bool = True, log: Callable[[str], None] = print,
          data: tuple[FaceSet, FaceSet] | None = None, stop_after: int | None = None) -> Path:
    """Train ``cfg`` into ``out_dir`` and return the run folder.

    Args:
        cfg: the run's configuration (ignored when resuming: the run's own is used).
        out_dir: run folder; must not hold a run unless ``force`` or ``resume``.
        resume: continue the run in ``out_dir`` from its last checkpoint.
        force: overwrite a run already in ``out_dir``.
        progress: show a progress bar.
        log: where the one line per epoch goes.
        data: (train, validation) faces, instead of reading ``cfg.data.path``.
        stop_after: end after this many epochs in this call, as an interruption would (tests).

    Example:
        >>> from ferlab.config import DataConfig, ModelConfig
        >>> cfg = RunConfig(data=DataConfig(path="fer2013.csv"), model=ModelConfig("cnn"))
        >>> run = train(cfg, "runs/cnn")  # doctest: +SKIP
    """
    run = RunFolder(out_dir)
    cfg = run_config(run, cfg, resume=resume, force=force)
    requested_precision = cfg.train.precision
    ctx = distributed.context()  # this process among torchrun's, or the only one
    ctx.rank_batch(cfg.train.batch_size)  # the global batch must split evenly over the ranks
    if not ctx.is_main:  # rank 0 speaks for all
        log, progress = (lambda s: None), False
    if cfg.train.threads:
        torch.set_num_threads(cfg.train.threads)
    device = ctx.device(resolve_device(cfg.train.device))  # before the data: no GPU fails at once
    if device.type == "cpu":
        keep_freed_memory()  # no page faults on every step's activations (ferlab.allocator)
    cfg, precision = run_precision(cfg, device, resumed=resume)
    t = cfg.train
    faces = RunData.of(*(data if data is not None else prepare_data(cfg)))

    model = build_model(cfg, device, init=not resume, faces=faces.x_train)
    distiller = make_distiller(t, faces.x_train, precision, device, log,
                               cache_path=run.teacher_cache_path)
    optimizer = make_optimizer(model, t)
    ema = WeightEMA(model, t.ema) if t.ema else None
    lookahead = Lookahead(model, t.lookahead) if t.lookahead else None
    schedule = Schedule(t, steps_per_epoch(len(faces.y_train), t))

    ctx.barrier()  # every rank has checked the folder before rank 0 writes to it
    if resume:
        state, history = resume_from_checkpoint(run, model, optimizer, ema, lookahead,
                                                model_name=cfg.model.name, clean=ctx.is_main)
        log(f"resuming {run.path} after epoch {state.epoch}")
    else:
        state, history = TrainState(), []
        if ctx.is_main:
            start_run_folder(run, cfg, requested_precision, precision, model, faces, ctx)
        log(_start_line(cfg, model, faces, schedule, ctx))
    log(f"precision {precision.name} ({precision.reason})")
    if device.type != "cpu":
        log(f"training on {device} ({torch.cuda.get_device_name(device)})")

    learner = Learner(model, ctx.wrap(model), optimizer, ema, distiller,
                      lambda: autocast(precision.bf16, device.type), device, t.channels_last,
                      t.label_smoothing, lookahead)
    first_epoch, stopped_early = state.epoch, False
    with sigterm_as_interrupt(defer=ctx.active) as stopper, stops_reported(run.path, state, ctx):
        for epoch in range(state.epoch, t.epochs):
            if stop_after is not None and epoch - first_epoch >= stop_after:
                raise KeyboardInterrupt
            started = time.perf_counter()
            fit = train_epoch(learner, faces.x_train, faces.y_train, cfg, schedule, epoch,
                              state.plateau.scale, ctx, stopper, progress)
            ctx.sync_buffers(model)  # every rank validates the model rank 0 saves
            ctx.sync_buffers(ema)
            val = validate(learner.eval_model, faces.x_val, faces.y_val, ctx,
                           t.eval_batch_size, precision, t.val_tta)
            seconds = time.perf_counter() - started
            with stopper.holding():  # signals wait until this epoch's files are all written
                history.append(_history_row(epoch + 1, seconds, fit, val))
                improved = state.end_epoch(epoch + 1, seconds, val.accuracy)
                if t.schedule == "plateau":
                    state.plateau.update(val.loss, t.plateau_patience, t.plateau_factor)
                if ctx.is_main:  # best model, then history, then checkpoint: they agree
                    if improved:
                        save_model(learner.eval_model, run.model_path, val_accuracy=val.accuracy,
                                   epoch=epoch + 1, run=str(run.path.name), tta=t.val_tta)
                    run.write_history(history)
                    save_checkpoint(run.checkpoint_path, model, optimizer, ema, state, lookahead)
                log(_epoch_line(epoch + 1, t.epochs, seconds, fit, val, improved))
            ctx.barrier()  # the other ranks wait while rank 0 writes
            if t.early_stopping and epoch + 1 - state.best_epoch >= t.early_stopping:
                log(f"early stopping: no validation gain in {t.early_stopping} epochs")
                stopped_early = True
                break

    if ctx.is_main:
        run.write_metrics(_metrics(cfg, model, state, history, stopped_early))
    ctx.barrier()
    return run.path


def _start_line(cfg: RunConfig, model: torch.nn.Module, faces: RunData, schedule: Schedule,
                ctx: distributed.Context) -> str:
    params, _ = count_params(model)
    return (f"{cfg.model.name}: {params:,} parameters; {len(faces.y_train):,} training / "
            f"{len(faces.y_val):,} validation faces; {cfg.train.epochs} epochs of "
            f"{schedule.steps_per_epoch} steps"
            f"{f' over {ctx.world} processes' if ctx.active else ''}")


def _history_row(epoch: int, seconds: float, fit: EpochFigures, val: EvalResult) -> dict:
    """One row of ``history.csv`` (``ferlab.runs.HISTORY_COLUMNS``)."""
    return {"epoch": epoch, "seconds": round(seconds, 2), "train_loss": fit.loss,
            "train_acc": fit.accuracy, "val_loss": val.loss, "val_acc": val.accuracy,
            "lr": fit.lr, "wrong_confidence": val.wrong_confidence}


def _epoch_line(epoch: int, epochs: int, seconds: float, fit: EpochFigures, val: EvalResult,
                improved: bool) -> str:
    return (f"epoch {epoch:3d}/{epochs}  {seconds:6.1f}s  "
            f"train loss {fit.loss:.4f} acc {fit.accuracy:.4f}  "
            f"val loss {val.loss:.4f} acc {val.accuracy:.4f}  lr {fit.lr:.2e}"
            f"{'  *' if improved else ''}  ({fit.faces / seconds:.0f} img/s)")


def _metrics(cfg: RunConfig, model: torch.nn.Module, state: TrainState, history: list[dict],
             stopped_early: bool) -> dict:
    """``metrics.json``, written when the run ends."""
    params, bn_stats = count_params(model)
    return {"model": cfg.model.name, "params": params, "bn_statistics": bn_stats,
            "best_val_acc": state.best_acc, "best_epoch": state.best_epoch,
            "epochs_run": state.epoch, "train_seconds": round(state.seconds, 1),
            "seconds_per_epoch": round(state.seconds / max(1, len(history)), 1),
            "final_train_acc": history[-1]["train_acc"] if history else None,
            "stopped_early": stopped_early}
