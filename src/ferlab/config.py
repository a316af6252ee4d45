"""Frozen configuration for a training run: data, model, augmentation, optimisation.

One ``RunConfig`` per run, written to ``RUN_DIR/config.json`` before training starts, so the run
folder alone says what produced it. Every field has its unit in the comment beside it.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .constants import IMAGE_SIZE
from .errors import ConfigError
from .precision import PRECISIONS

OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULES = ("cosine", "onecycle", "plateau", "constant")
DEVICES = ("auto", "cpu", "cuda")
VAL_TTA = ("none", "flip", "shift")


@dataclass(frozen=True)
class DataConfig:
    path: str = ""  # data file or image folder
    val_split: str = "auto"  # auto | usage | last:N | random:F | stratified:F
    skip_bad_rows: bool = False  # skip and count malformed rows instead of stopping
    limit: int = 0  # use only the first N training faces (0 = all); for quick trials


@dataclass(frozen=True)
class AugmentConfig:
    flip: bool = True  # random horizontal flip, p = 0.5
    alternate_flip: bool = False  # with flip: each face mirrored on every other epoch (a random
    # half on even epochs, the other half on odd ones) instead of by a coin each time (airbench)
    shift: float = 0.1  # max translation, fraction of the side (0.1 = 4.8 px)
    rotation: float = 10.0  # max rotation, degrees
    zoom: float = 0.1  # scale drawn from [1 - zoom, 1 + zoom]
    shear: float = 0.0  # max shear, degrees
    crop: int = 0  # random crop: pad by this many px (edge-replicated) and crop 48x48 back
    crop_size: int = 0  # train on a random crop_size x crop_size window of each face (0 = the
    # whole face); the net still sees whole faces at test, so it needs a size-free head
    erase: float = 0.0  # probability of random erasing of one rectangle
    mixup: float = 0.0  # mixup/cutmix Beta(alpha, alpha) parameter (0 = off)

    @property
    def enabled(self) -> bool:
        return any([self.flip, self.shift, self.rotation, self.zoom, self.shear, self.crop,
                    self.crop_size, self.erase, self.mixup])


@dataclass(frozen=True)
class ModelConfig:
    name: str = "cnn"  # a name from ferlab.models.list_models()
    kwargs: dict = field(default_factory=dict)  # keyword arguments of its factory


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 30  # passes over the (multiplied) training set
    batch_size: int = 128  # faces per step
    drop_last: bool = False  # skip each epoch's last, smaller batch (at a fast BatchNorm momentum
    # a batch of a few faces would set the statistics the model is validated with)
    optimizer: str = "adamw"  # sgd (Nesterov momentum) | adam | adamw
    lr: float = 1e-3  # peak learning rate
    momentum: float = 0.9  # SGD momentum / Adam beta1
    weight_decay: float = 5e-4  # decoupled for AdamW, L2 for SGD and Adam
    schedule: str = "onecycle"  # cosine | onecycle | plateau | constant
    warmup_epochs: float = 1.0  # linear warm-up length for cosine, epochs
    plateau_patience: int = 3  # epochs without val-loss gain before the plateau LR cut
    plateau_factor: float = 0.5  # LR multiplier on a plateau
    label_smoothing: float = 0.0  # cross-entropy label smoothing
    epoch_multiplier: int = 1  # each epoch sees every face this many times (augmented anew)
    early_stopping: int = 0  # stop after this many epochs without val-accuracy gain (0 = off)
    ema: float = 0.0  # exponential moving average of weights, decay per step (0 = off)
    seed: int = 0  # seeds data order, augmentation, dropout and initialisation
    precision: str = "auto"  # auto | fp32 | bf16 autocast (weights stay float32); auto: bf16
    # where the device computes it natively (ferlab.precision), resolved when the run starts
    bf16: bool | None = None  # older spelling of precision: True = bf16, False = fp32
    channels_last: bool = True  # memory format for conv nets on CPU
    threads: int = 0  # torch intra-op threads (0 = torch's default)
    device: str = "auto"  # cpu | cuda | auto: a GPU where PyTorch sees one, else the CPU
    eval_batch_size: int = 512  # faces per step when validating
    init: str = ""  # model (run folder, file, 'bundled') whose weights the run starts from
    teacher: str = ""  # model or ensemble folder whose soft predictions are distilled
    distill: float = 0.0  # weight of the teacher's soft-target loss, in [0, 1] (0 = off)
    temperature: float = 2.0  # softmax temperature of both nets in the distillation loss
    teacher_cache: bool = False  # teacher predicts each training face once, not every batch
    bias_lr_scale: float = 1.0  # learning-rate multiplier of biases and BatchNorm parameters
    lookahead: int = 0  # every this many steps, pull the weights onto their slow average (0 = off)
    val_tta: str = "none"  # test-time augmentation of validation (none | flip | shift); the saved
    # model records it as its recommended TTA

    def __post_init__(self) -> None:
        # ``bf16`` is kept so older configs and callers still work; ``precision`` is the field.
        if self.bf16 is not None:
            object.__setattr__(self, "precision", "bf16" if self.bf16 else "fp32")
            object.__setattr__(self, "bf16", None)


@dataclass(frozen=True)
class RunConfig:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def validate(self) -> RunConfig:
        """Raise :class:`ConfigError` naming the first out-of-range value."""
        t = self.train
        checks = [
            (t.epochs >= 1, f"epochs must be at least 1, got {t.epochs}"),
            (t.batch_size >= 1, f"batch size must be at least 1, got {t.batch_size}"),
            (0 < t.lr < float("inf"), f"learning rate must be positive and finite, got {t.lr}"),
            (t.weight_decay >= 0, f"weight decay must be >= 0, got {t.weight_decay}"),
            (t.optimizer in OPTIMIZERS,
             f"optimizer must be one of {OPTIMIZERS}, got {t.optimizer!r}"),
            (t.schedule in SCHEDULES,
             f"schedule must be one of {SCHEDULES}, got {t.schedule!r}"),
            (0 <= t.label_smoothing < 1,
             f"label smoothing must be in [0, 1), got {t.label_smoothing}"),
            (t.epoch_multiplier >= 1, f"epoch multiplier must be >= 1, got {t.epoch_multiplier}"),
            (t.early_stopping >= 0, f"early stopping must be >= 0, got {t.early_stopping}"),
            (0 <= t.ema < 1, f"ema decay must be in [0, 1), got {t.ema}"),
            (t.threads >= 0, f"threads must be >= 0, got {t.threads}"),
            (t.bias_lr_scale > 0, f"bias lr scale must be positive, got {t.bias_lr_scale}"),
            (t.lookahead >= 0, f"lookahead must be >= 0 steps, got {t.lookahead}"),
            (t.val_tta in VAL_TTA, f"val tta must be one of {VAL_TTA}, got {t.val_tta!r}"),
            (t.device in DEVICES, f"device must be one of {DEVICES}, got {t.device!r}"),
            (t.precision in PRECISIONS,
             f"precision must be one of {PRECISIONS}, got {t.precision!r}"),
            (0 <= t.distill <= 1, f"distill weight must be in [0, 1], got {t.distill}"),
            (not t.distill or t.teacher, "distill needs a teacher model"),
            (not t.teacher or t.distill > 0, "a teacher needs a distill weight above 0"),
            (t.temperature > 0, f"temperature must be positive, got {t.temperature}"),
            (not t.teacher_cache or t.teacher, "teacher cache needs a teacher model"),
            (not (t.teacher_cache and self.augment.mixup),
             "a cached teacher cannot follow mixup's blended faces; drop --mixup or the cache"),
            (self.augment.shift >= 0 and self.augment.rotation >= 0 and self.augment.zoom >= 0
             and self.augment.shear >= 0 and self.augment.crop >= 0,
             "augmentation magnitudes must be >= 0"),
            (self.augment.crop_size == 0 or 16 <= self.augment.crop_size <= IMAGE_SIZE,
             f"crop size must be 0 (whole face) or 16 to {IMAGE_SIZE} px, "
             f"got {self.augment.crop_size}"),
            (not (self.augment.crop_size and t.teacher and not t.teacher_cache),
             "a teacher predicts whole faces: use --teacher-cache with --crop-size"),
            (0 <= self.augment.erase <= 1,
             f"erase probability must be in [0, 1], got {self.augment.erase}"),
            (self.augment.mixup >= 0, f"mixup alpha must be >= 0, got {self.augment.mixup}"),
            (self.data.limit >= 0, f"limit must be >= 0, got {self.data.limit}"),
        ]
        for ok, msg in checks:
            if not ok:
                raise ConfigError(msg)
        return self

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RunConfig:
        try:
            return cls(
                data=DataConfig(**d.get("data", {})),
                model=ModelConfig(**d.get("model", {})),
                augment=AugmentConfig(**d.get("augment", {})),
                train=TrainConfig(**d.get("train", {})),
            )
        except TypeError as e:
            raise ConfigError(f"config has an unknown field: {e}") from e

    @classmethod
    def load(cls, path: str | Path) -> RunConfig:
        try:
            d = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as e:
            raise ConfigError(f"{path}: cannot read config: {e}") from e
        return cls.from_dict(d.get("config", d))
