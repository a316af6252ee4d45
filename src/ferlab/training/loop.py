"""``train(cfg, out_dir)``: one training run, readable top to bottom, into a run folder.

The run folder holds everything later stages read:

* ``config.json``     the resolved RunConfig, the git commit and the ferlab version
* ``history.csv``     one row per epoch (see ``HISTORY_COLUMNS``)
* ``checkpoint.pt``   the state after the last finished epoch, for ``--resume``
* ``model.safetensors`` the best model so far (by validation accuracy), loadable by any command
* ``metrics.json``    best validation accuracy and its epoch, parameters, time

Determinism: every epoch reseeds the data order, the augmentation and dropout from
``(seed, epoch)``, so a run resumed from the checkpoint of epoch k draws exactly what an
uninterrupted run draws, and ends with the same weights.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import signal
import subprocess
import time
from collections.abc import Callable
from contextlib import contextmanager, nullcontext
from pathlib import Path

import torch
import torch.nn.functional as F

from .. import __version__
from ..augment import augment, mixup
from ..config import RunConfig, TrainConfig
from ..constants import NUM_CLASSES
from ..data import FaceSet, load_faces, make_split
from ..errors import ConfigError, FerlabError, ModelError
from ..inference import predict_probs, to_model_input
from ..io_utils import atomic_write
from ..model_file import load_checkpoint, save_model
from ..models import FERModel, count_params, create_model
from ..precision import Precision, resolve_precision
from ..progress import progress_bar
from ..runs import RunFolder
from . import distributed


class RunExistsError(FerlabError):
    """The output folder already holds a run."""


class TrainingInterrupted(FerlabError):
    """SIGINT/SIGTERM arrived; the last finished epoch is saved and can be resumed."""

    exit_code = 130


# --------------------------------------------------------------------------------------------
# Pure helpers


def lr_at(step: int, total_steps: int, t: TrainConfig, steps_per_epoch: int,
          plateau_scale: float = 1.0) -> float:
    """Learning rate at optimiser step ``step`` (0-based) of ``total_steps``."""
    if t.schedule == "constant":
        return t.lr
    if t.schedule == "plateau":
        return t.lr * plateau_scale
    if t.schedule == "onecycle":
        # Warm up from lr/25 over the first 25% of steps, then cosine down to lr/1e4.
        up = max(1, int(0.25 * total_steps))
        if step < up:
            return t.lr / 25 + (t.lr - t.lr / 25) * (1 - math.cos(math.pi * step / up)) / 2
        frac = (step - up) / max(1, total_steps - up)
        return t.lr / 1e4 + (t.lr - t.lr / 1e4) * (1 + math.cos(math.pi * frac)) / 2
    # cosine with linear warm-up
    warm = int(t.warmup_epochs * steps_per_epoch)
    if step < warm:
        return t.lr * (step + 1) / warm
    frac = (step - warm) / max(1, total_steps - warm)
    return t.lr * (1 + math.cos(math.pi * min(frac, 1.0))) / 2


def epoch_seed(seed: int, epoch: int) -> int:
    """A seed for everything random in one epoch, so that resuming at an epoch repeats it."""
    return (seed * 1_000_003 + epoch * 7_919 + 17) % (2**63 - 1)


def git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                             timeout=5, cwd=Path(__file__).parent)
        return out.stdout.strip() if out.returncode == 0 else ""
    except (OSError, subprocess.SubprocessError):
        return ""


def resolve_device(name: str) -> torch.device:
    """The device a run trains on: ``cpu``, ``cuda``, or ``auto`` (a GPU where PyTorch sees one,
    else the CPU). Augmentation stays on the CPU, with the run's seeded generator, so a run
    draws the same augmentations on either; the augmented batch then moves to the device.

    Raises:
        ConfigError: ``cuda`` was asked for and PyTorch sees no GPU.
    """
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device cuda: PyTorch sees no GPU here (a CPU build of torch, or a "
                          "machine without one); use --device cpu or auto")
    return torch.device(name)


def make_optimizer(model: torch.nn.Module, t: TrainConfig) -> torch.optim.Optimizer:
    # No weight decay on BatchNorm and biases: decaying them only fights the normalisation.
    decay = [p for n, p in model.named_parameters() if p.dim() > 1]
    no_decay = [p for n, p in model.named_parameters() if p.dim() <= 1]
    groups = [{"params": decay, "weight_decay": t.weight_decay},
              {"params": no_decay, "weight_decay": 0.0}]
    if t.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=t.lr, momentum=t.momentum, nesterov=True)
    if t.optimizer == "adam":
        return torch.optim.Adam(groups, lr=t.lr, betas=(t.momentum, 0.999))
    return torch.optim.AdamW(groups, lr=t.lr, betas=(t.momentum, 0.999))


class WeightEMA(torch.nn.Module):
    """Exponential moving average of a model's weights and BatchNorm statistics.

    The decay warms up as ``min(decay, (1 + n) / (10 + n))`` after ``n`` updates. With a fixed
    0.999 the average of the BatchNorm running variance needed thousands of steps to forget its
    initial 1.0, and the averaged model predicted one class for the first epochs of a FER2013
    run. State-dict keys (``module.*``, ``n_averaged``) match torch's ``AveragedModel``.
    """

    def __init__(self, model: torch.nn.Module, decay: float) -> None:
        super().__init__()
        self.module = copy.deepcopy(model)
        self.module.requires_grad_(False)
        self.decay = decay
        self.register_buffer("n_averaged", torch.tensor(0, dtype=torch.long))

    @torch.no_grad()
    def update(self, model: torch.nn.Module) -> None:
        n = int(self.n_averaged)
        decay = min(self.decay, (1 + n) / (10 + n))
        for avg, cur in zip(self.module.state_dict().values(), model.state_dict().values(),
                            strict=True):
            if avg.dtype.is_floating_point:
                avg.lerp_(cur, 1 - decay)
            else:
                avg.copy_(cur)  # e.g. BatchNorm's num_batches_tracked
        self.n_averaged += 1


def distillation_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor,
                      temperature: float) -> torch.Tensor:
    """KL(teacher || student) of the temperature-softened distributions, times T^2.

    The T^2 keeps the gradient's scale independent of T (Hinton et al. 2015), so the weight
    between this and the hard-label loss means the same at any temperature.
    """
    t = temperature
    return F.kl_div(F.log_softmax(student_logits / t, 1), F.log_softmax(teacher_logits / t, 1),
                    reduction="batchmean", log_target=True) * t * t


def load_init_weights(model: FERModel, spec: str) -> None:
    """Start ``model`` from the weights of the model at ``spec`` (same architecture)."""
    from ..model_spec import load_model

    source = load_model(spec)
    try:
        model.load_state_dict(source.state_dict(), strict=True)
    except RuntimeError as e:
        first = (str(e).splitlines() or ["mismatch"])[0]
        raise ModelError(f"--init {spec}: its weights do not fit this run's model "
                         f"({getattr(source, 'name', type(source).__name__)} into "
                         f"{model.name}): {first}") from e


def load_teacher(spec: str, channels_last: bool) -> torch.nn.Module:
    """The frozen teacher of a distillation run (a model or an ensemble), in eval mode."""
    from ..model_spec import load_model

    teacher = load_model(spec).eval().requires_grad_(False)
    if channels_last:
        teacher = teacher.to(memory_format=torch.channels_last)
    return teacher


def cached_teacher_logits(teacher: torch.nn.Module, images: torch.Tensor, bf16: bool,
                          channels_last: bool, batch_size: int) -> torch.Tensor:
    """The teacher's log-probabilities ``[N, 7]`` for each face, averaged with its mirror's.

    Computed once before training (``--teacher-cache``), they stand in for the teacher's answer
    on every augmented view of that face: the augmentations are mild, and the mirror average
    makes the target the same for a face and its flip.
    """
    precision = "bf16" if bf16 else "fp32"
    views = [predict_probs(teacher, v, batch_size=batch_size, precision=precision, fast=False)
             for v in (images, images.flip(-1))]
    return ((views[0] + views[1]) / 2).clamp_min(1e-12).log()


class _Stopper:
    """Turns SIGINT/SIGTERM into KeyboardInterrupt, but holds them while :meth:`holding`:
    the end-of-epoch files (history, best model, checkpoint) are then all written before the
    run stops, so they always agree with each other."""

    def __init__(self, defer: bool = False) -> None:
        # defer: only note the signal; the ranks of a distributed run agree on when to stop.
        self.hold, self.pending, self.defer = False, False, defer

    def handler(self, signum, frame) -> None:
        if self.hold or self.defer:
            self.pending = True
            return
        raise KeyboardInterrupt

    @contextmanager
    def holding(self):
        self.hold = True
        try:
            yield
        finally:
            self.hold = False
        if self.pending and not self.defer:
            self.pending = False
            raise KeyboardInterrupt


@contextmanager
def sigterm_as_interrupt(defer: bool = False):
    """Let SIGTERM stop training the way Ctrl-C does (KeyboardInterrupt), then restore.

    Yields a :class:`_Stopper` whose ``holding()`` defers both signals over a critical section.
    SIGINT is only taken over when Python's own Ctrl-C handler is in place (not when ignored).
    With ``defer`` a signal only sets ``stopper.pending``, for the caller to act on.
    """
    stopper = _Stopper(defer)
    signums = [signal.SIGTERM]
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        signums.append(signal.SIGINT)
    try:
        previous = {s: signal.signal(s, stopper.handler) for s in signums}
    except ValueError:  # not the main thread: leave signals alone
        yield stopper
        return
    try:
        yield stopper
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


# --------------------------------------------------------------------------------------------
# The run


def prepare_data(cfg: RunConfig) -> tuple[FaceSet, FaceSet]:
    faces = load_faces(cfg.data.path, skip_bad_rows=cfg.data.skip_bad_rows)
    if not faces.has_labels:
        raise FerlabError(f"{cfg.data.path}: has no labels (a test.csv?); training needs labels")
    train_set, val_set = make_split(faces, cfg.data.val_split, cfg.train.seed)
    if cfg.data.limit:
        train_set = train_set.subset(slice(0, cfg.data.limit))
    return train_set, val_set


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
        >>> cfg = RunConfig(data=DataConfig(path="fer2013.csv"), model=ModelConfig("cnn"))
        >>> run = train(cfg, "runs/cnn")  # doctest: +SKIP
    """
    out = Path(out_dir)
    run = RunFolder(out)
    ckpt_path = run.checkpoint_path
    if out.exists() and not out.is_dir():
        raise FerlabError(f"{out}: exists and is not a folder; give a folder for the run")
    if resume:
        if not ckpt_path.exists():
            raise FerlabError(f"{out}: no {ckpt_path.name} to resume from")
        cfg = run.config()
    elif out.exists() and any(out.iterdir()) and not force:
        raise RunExistsError(f"{out}: folder already holds files; use --force to overwrite or "
                             "--resume to continue")
    cfg.validate()
    t = cfg.train
    cfg_requested_precision = t.precision
    ctx = distributed.context()  # this process among torchrun's, or the only one
    ctx.rank_batch(t.batch_size)  # the global batch must split evenly over the processes
    if not ctx.is_main:  # rank 0 speaks for all
        log, progress = (lambda s: None), False
    if t.threads:
        torch.set_num_threads(t.threads)

    device = ctx.device(resolve_device(t.device))  # before reading data: no GPU fails at once
    # Resolved once and stored resolved, so a resumed run keeps the precision it started with.
    precision = (Precision(t.precision, "kept from the run's start")
                 if resume and t.precision != "auto" else resolve_precision(t.precision,
                                                                             device.type))
    if precision.name != t.precision:
        t = dataclasses.replace(t, precision=precision.name)
        cfg = dataclasses.replace(cfg, train=t)
    train_set, val_set = data if data is not None else prepare_data(cfg)
    x_train = torch.from_numpy(train_set.images).unsqueeze(1)  # uint8, converted per batch
    y_train = torch.from_numpy(train_set.labels)
    x_val = torch.from_numpy(val_set.images).unsqueeze(1)
    y_val = torch.from_numpy(val_set.labels)

    torch.manual_seed(t.seed)
    model: FERModel = create_model(cfg.model.name, **cfg.model.kwargs)
    if t.init and not resume:
        load_init_weights(model, t.init)
    model = model.to(device)
    if t.channels_last:
        model = model.to(memory_format=torch.channels_last)
    teacher = load_teacher(t.teacher, t.channels_last).to(device) if t.distill else None
    teacher_cache = None
    if teacher is not None and t.teacher_cache:
        t_start = time.perf_counter()
        teacher_cache = cached_teacher_logits(teacher, x_train, precision.bf16, t.channels_last,
                                              t.eval_batch_size)
        log(f"teacher {t.teacher} predicted {len(teacher_cache):,} faces and their mirrors in "
            f"{time.perf_counter() - t_start:.0f} s")
    optimizer = make_optimizer(model, t)
    ema = WeightEMA(model, t.ema) if t.ema else None
    n_train = len(y_train)
    samples_per_epoch = n_train * t.epoch_multiplier
    steps_per_epoch = math.ceil(samples_per_epoch / t.batch_size)
    total_steps = t.epochs * steps_per_epoch
    params, bn_stats = count_params(model)

    ctx.barrier()  # every rank has checked the folder before rank 0 writes to it
    history: list[dict] = []
    state = {"epoch": 0, "best_acc": -1.0, "best_epoch": 0, "plateau_scale": 1.0,
             "plateau_best": math.inf, "plateau_wait": 0, "seconds": 0.0}
    if resume:
        for tmp in out.glob(".*.tmp") if ctx.is_main else []:  # of a write cut by kill -9
            tmp.unlink(missing_ok=True)
        ck = load_checkpoint(ckpt_path)
        try:
            model.load_state_dict(ck["model"])
            optimizer.load_state_dict(ck["optimizer"])
            if ema is not None:
                ema.load_state_dict(ck["ema"])
            state.update(ck["state"])
            history = run.history()[: state["epoch"]]
        except (KeyError, TypeError, ValueError, RuntimeError) as e:
            first = (str(e).splitlines() or [""])[0]
            raise ModelError(f"{ckpt_path}: checkpoint does not fit this run's "
                             f"{cfg.model.name!r} model and config: {type(e).__name__} "
                             f"{first}") from e
        log(f"resuming {out} after epoch {state['epoch']}")
    elif ctx.is_main:
        out.mkdir(parents=True, exist_ok=True)
        for stale in run.output_files():
            stale.unlink(missing_ok=True)
        run.write_info({
            "config": cfg.to_dict(), "git_commit": git_commit(), "ferlab_version": __version__,
            "torch_version": torch.__version__, "train_faces": n_train,
            "val_faces": len(y_val), "params": params, "bn_statistics": bn_stats,
            "precision": {"requested": cfg_requested_precision, "chosen": precision.name,
                          "reason": precision.reason},
            "world_size": ctx.world,
        })
        log(f"{cfg.model.name}: {params:,} parameters; {n_train:,} training / {len(y_val):,} "
            f"validation faces; {t.epochs} epochs of {steps_per_epoch} steps"
            f"{f' over {ctx.world} processes' if ctx.active else ''}")
    log(f"precision {precision.name} ({precision.reason})")
    if device.type != "cpu":
        log(f"training on {device} ({torch.cuda.get_device_name(device)})")

    autocast = ((lambda: torch.autocast(device.type, dtype=torch.bfloat16)) if precision.bf16
                else nullcontext)
    soft_targets = cfg.augment.mixup > 0
    eval_model = ema.module if ema is not None else model
    net = ctx.wrap(model)  # DistributedDataParallel under torchrun; trains through `model`
    epochs_this_call = 0
    with sigterm_as_interrupt(defer=ctx.active) as stopper:
        try:
            for epoch in range(state["epoch"], t.epochs):
                if stop_after is not None and epochs_this_call >= stop_after:
                    raise KeyboardInterrupt
                t0 = time.perf_counter()
                es = epoch_seed(t.seed, epoch)
                torch.manual_seed(ctx.rank_seed(es))  # dropout, mixup's Beta draw
                g = torch.Generator().manual_seed(es)
                order = torch.cat([torch.randperm(n_train, generator=g)
                                   for _ in range(t.epoch_multiplier)])
                g = ctx.augment_generator(g, es)
                model.train()
                loss_sum, correct, seen = 0.0, 0, 0
                bar = progress_bar(range(steps_per_epoch), desc=f"epoch {epoch + 1}/{t.epochs}",
                                   disable=None if progress else True, leave=False, unit="step")
                for step in bar:
                    idx, weight = ctx.shard(order[step * t.batch_size:(step + 1) * t.batch_size])
                    if ctx.stop_requested(stopper.pending):  # a signal on any rank stops all
                        raise KeyboardInterrupt
                    lr = lr_at(epoch * steps_per_epoch + step, total_steps, t, steps_per_epoch,
                               state["plateau_scale"])
                    for group in optimizer.param_groups:
                        group["lr"] = lr
                    if not len(idx):  # a last batch too small to share: every rank skips it
                        continue
                    x = augment(to_model_input(x_train[idx]), cfg.augment, g)
                    y = y_train[idx]
                    target = F.one_hot(y, NUM_CLASSES).float() if soft_targets else y
                    if soft_targets:
                        x, target = mixup(x, target, cfg.augment.mixup, g)
                    x, y, target = x.to(device), y.to(device), target.to(device)
                    if t.channels_last:
                        x = x.contiguous(memory_format=torch.channels_last)
                    with autocast():
                        logits = net(x)
                    loss = F.cross_entropy(logits.float(), target,
                                           label_smoothing=t.label_smoothing)
                    if teacher_cache is not None:
                        teacher_logits = teacher_cache[idx].to(device)
                    elif teacher is not None:
                        with torch.no_grad(), autocast():
                            teacher_logits = teacher(x)
                    if teacher is not None:
                        loss = (1 - t.distill) * loss + t.distill * distillation_loss(
                            logits.float(), teacher_logits.float(), t.temperature)
                    optimizer.zero_grad(set_to_none=True)
                    (loss if weight == 1 else loss * weight).backward()
                    optimizer.step()
                    if ema is not None:
                        ema.update(model)
                    loss_sum += loss.item() * len(y)
                    correct += (logits.argmax(1) == y).sum().item()
                    seen += len(y)
                    rate = seen * ctx.world / (time.perf_counter() - t0)
                    bar.set_postfix(loss=f"{loss_sum / seen:.3f}", acc=f"{correct / seen:.3f}",
                                    img_s=f"{rate:.0f}", refresh=False)
                bar.close()
                loss_sum, correct, seen = ctx.sum(loss_sum, correct, seen)  # over all ranks
                ctx.sync_buffers(model)  # every rank validates the model rank 0 saves
                ctx.sync_buffers(ema)
                part = ctx.val_shard(len(y_val))  # each rank a share, figures of the whole
                val = ctx.evaluate(predict_probs(eval_model, x_val[part],
                                                 batch_size=t.eval_batch_size,
                                                 precision=precision, fast=False), y_val[part])
                seconds = time.perf_counter() - t0
                row = {"epoch": epoch + 1, "seconds": round(seconds, 2),
                       "train_loss": loss_sum / seen, "train_acc": correct / seen,
                       "val_loss": val.loss, "val_acc": val.accuracy, "lr": lr,
                       "wrong_confidence": val.wrong_confidence}
                # Signals wait until this epoch's files are all written (and logged).
                with stopper.holding():
                    history.append(row)
                    state["epoch"] = epoch + 1
                    state["seconds"] += seconds
                    improved = val.accuracy > state["best_acc"]
                    if improved:
                        state["best_acc"], state["best_epoch"] = val.accuracy, epoch + 1
                    if improved and ctx.is_main:
                        save_model(eval_model, run.model_path, val_accuracy=val.accuracy,
                                   epoch=epoch + 1, run=str(out.name))
                    if t.schedule == "plateau":
                        if val.loss < state["plateau_best"] - 1e-4:
                            state["plateau_best"], state["plateau_wait"] = val.loss, 0
                        else:
                            state["plateau_wait"] += 1
                            if state["plateau_wait"] >= t.plateau_patience:
                                state["plateau_scale"] *= t.plateau_factor
                                state["plateau_wait"] = 0
                    if ctx.is_main:
                        run.write_history(history)
                        ck = {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                              "state": dict(state)}
                        if ema is not None:
                            ck["ema"] = ema.state_dict()
                        atomic_write(ckpt_path, lambda p, ck=ck: torch.save(ck, p))
                    epochs_this_call += 1
                    log(f"epoch {epoch + 1:3d}/{t.epochs}  {seconds:6.1f}s  "
                        f"train loss {row['train_loss']:.4f} acc {row['train_acc']:.4f}  "
                        f"val loss {val.loss:.4f} acc {val.accuracy:.4f}  lr {lr:.2e}"
                        f"{'  *' if improved else ''}  ({seen / seconds:.0f} img/s)")
                ctx.barrier()  # the other ranks wait while rank 0 writes
                if t.early_stopping and epoch + 1 - state["best_epoch"] >= t.early_stopping:
                    log(f"early stopping: no validation gain in {t.early_stopping} epochs")
                    state["stopped_early"] = True
                    break
        except KeyboardInterrupt:
            raise TrainingInterrupted(
                f"interrupted; {state['epoch']} finished epoch(s) saved in {out}; continue with "
                f"--resume {out}") from None
        except (RuntimeError, distributed.DistributedError) as e:
            if not ctx.active:
                raise
            raise distributed.lost_peer(ctx, e, f"; {state['epoch']} finished epoch(s) saved in "
                                                f"{out}; continue with --resume {out}") from e

    metrics = {"model": cfg.model.name, "params": params, "bn_statistics": bn_stats,
               "best_val_acc": state["best_acc"], "best_epoch": state["best_epoch"],
               "epochs_run": state["epoch"], "train_seconds": round(state["seconds"], 1),
               "seconds_per_epoch": round(state["seconds"] / max(1, len(history)), 1),
               "final_train_acc": history[-1]["train_acc"] if history else None,
               "stopped_early": bool(state.get("stopped_early", False))}
    if ctx.is_main:
        run.write_metrics(metrics)
    ctx.barrier()
    return out
