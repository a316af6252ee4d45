"""What a run starts from: its folder checked, its device and precision, its data as tensors,
its first weights, and the ``config.json`` that records all of it."""

from __future__ import annotations

import dataclasses
import subprocess
from dataclasses import dataclass
from pathlib import Path

import torch

from .. import __version__
from ..config import RunConfig
from ..data import FaceSet, load_faces, make_split
from ..errors import ConfigError, FerlabError, ModelError
from ..inference import to_model_input
from ..model_spec import load_model
from ..models import FERModel, count_params, create_model
from ..precision import Precision, resolve_precision
from ..runs import RunFolder
from .distributed import Context
from .errors import RunExistsError

DATA_INIT_FACES = 5000  # faces that set data-initialised layers (their statistics settle by then)


def run_config(run: RunFolder, cfg: RunConfig | None, *, resume: bool, force: bool
               ) -> RunConfig:
    """The config to train: ``cfg`` for a new run, the run's own when resuming (validated).

    Raises:
        FerlabError: the path is a file, or there is no checkpoint to resume from.
        RunExistsError: the folder holds files, and neither ``force`` nor ``resume``.
    """
    out = run.path
    if out.exists() and not out.is_dir():
        raise FerlabError(f"{out}: exists and is not a folder; give a folder for the run")
    if resume:
        if not run.has_checkpoint:
            raise FerlabError(f"{out}: no {run.checkpoint_path.name} to resume from")
        cfg = run.config()
    elif out.exists() and any(out.iterdir()) and not force:
        raise RunExistsError(f"{out}: folder already holds files; use --force to overwrite or "
                             "--resume to continue")
    return cfg.validate()


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


def run_precision(cfg: RunConfig, device: torch.device, resumed: bool
                  ) -> tuple[RunConfig, Precision]:
    """The precision the run computes in, and ``cfg`` with it resolved.

    Resolved once and stored resolved, so a resumed run keeps the precision it started with.
    """
    t = cfg.train
    precision = (Precision(t.precision, "kept from the run's start")
                 if resumed and t.precision != "auto" else resolve_precision(t.precision,
                                                                             device.type))
    if precision.name != t.precision:
        cfg = dataclasses.replace(cfg, train=dataclasses.replace(t, precision=precision.name))
    return cfg, precision


def prepare_data(cfg: RunConfig) -> tuple[FaceSet, FaceSet]:
    """The (train, validation) faces of ``cfg.data``: its split, and its ``limit``."""
    faces = load_faces(cfg.data.path, skip_bad_rows=cfg.data.skip_bad_rows)
    if not faces.has_labels:
        raise FerlabError(f"{cfg.data.path}: has no labels (a test.csv?); training needs labels")
    train_set, val_set = make_split(faces, cfg.data.val_split, cfg.train.seed)
    if cfg.data.limit:
        train_set = train_set.subset(slice(0, cfg.data.limit))
    return train_set, val_set


@dataclass
class RunData:
    """The faces as tensors: uint8 ``[N, 1, 48, 48]`` images (converted per batch) and int64
    labels, for training and validation."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor

    @classmethod
    def of(cls, train_set: FaceSet, val_set: FaceSet) -> RunData:
        return cls(torch.from_numpy(train_set.images).unsqueeze(1),
                   torch.from_numpy(train_set.labels),
                   torch.from_numpy(val_set.images).unsqueeze(1),
                   torch.from_numpy(val_set.labels))


def load_init_weights(model: FERModel, spec: str) -> None:
    """Start ``model`` from the weights of the model at ``spec`` (same architecture)."""
    source = load_model(spec)
    try:
        model.load_state_dict(source.state_dict(), strict=True)
    except RuntimeError as e:
        first = (str(e).splitlines() or ["mismatch"])[0]
        raise ModelError(f"--init {spec}: its weights do not fit this run's model "
                         f"({getattr(source, 'name', type(source).__name__)} into "
                         f"{model.name}): {first}") from e


def build_model(cfg: RunConfig, device: torch.device, *, init: bool,
                faces: torch.Tensor | None = None) -> FERModel:
    """The run's model, seeded by ``cfg.train.seed``, on ``device``; started from
    ``--init``'s weights when ``init`` (a resumed run loads its checkpoint instead).

    A model with layers set from the data (``init_from_faces``, as the speedrun net's whitening
    filters) gets them from up to ``DATA_INIT_FACES`` of the training faces ``faces`` (uint8).
    """
    t = cfg.train
    torch.manual_seed(t.seed)
    model: FERModel = create_model(cfg.model.name, **cfg.model.kwargs)
    if init and t.init:
        load_init_weights(model, t.init)
    elif init and faces is not None and hasattr(model, "init_from_faces"):
        model.init_from_faces(to_model_input(faces[:DATA_INIT_FACES]))
    if cfg.augment.crop_size:
        check_takes_size(model, cfg.model.name, cfg.augment.crop_size)
    model = model.to(device)
    if t.channels_last:
        model = model.to(memory_format=torch.channels_last)
    return model


def check_takes_size(model: FERModel, name: str, size: int) -> None:
    """Raise ConfigError unless ``model`` classifies ``size`` x ``size`` faces (--crop-size)."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(torch.zeros(1, 1, size, size))
    except RuntimeError as e:
        raise ConfigError(f"model {name!r} cannot take {size}x{size} crops (its head is built "
                          f"for whole faces): drop --crop-size, or use a net with a size-free "
                          f"head such as 'speedrun'") from e
    finally:
        model.train(was_training)


def git_commit() -> str:
    """The commit of ferlab's own checkout, or "" where it is not one."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                             timeout=5, cwd=Path(__file__).parent)
        return out.stdout.strip() if out.returncode == 0 else ""
    except (OSError, subprocess.SubprocessError):
        return ""


def start_run_folder(run: RunFolder, cfg: RunConfig, requested_precision: str,
                     precision: Precision, model: torch.nn.Module, data: RunData,
                     ctx: Context) -> None:
    """Empty the run's outputs and write ``config.json``: the resolved config and where,
    with what and on how many faces it runs."""
    run.path.mkdir(parents=True, exist_ok=True)
    for stale in run.output_files():
        stale.unlink(missing_ok=True)
    params, bn_stats = count_params(model)
    run.write_info({
        "config": cfg.to_dict(), "git_commit": git_commit(), "ferlab_version": __version__,
        "torch_version": torch.__version__, "train_faces": len(data.y_train),
        "val_faces": len(data.y_val), "params": params, "bn_statistics": bn_stats,
        "precision": {"requested": requested_precision, "chosen": precision.name,
                      "reason": precision.reason},
        "world_size": ctx.world,
    })
