"""Named training recipes (``ferlab train --recipe NAME``): a whole RunConfig in one word.

A recipe fills in the model, the augmentation and the optimisation; any flag given beside
``--recipe`` overrides its value. ``speedrun`` is the recipe of ``make bench-train``: the most
PublicTest accuracy for the least training compute, from the CIFAR-10 speedruns (airbench)
measured on FER2013 step by step (``benchmarks/RESULTS.md``, "Speedrun").

Example:
    >>> cfg = recipe_config("speedrun", "fer2013.csv")
    >>> cfg.model.name, cfg.train.optimizer
    ('speedrun', 'sgd')
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from .config import AugmentConfig, DataConfig, ModelConfig, RunConfig, TrainConfig
from .errors import ConfigError


@dataclass(frozen=True)
class Recipe:
    """A recipe: what it is for, and the config values it sets.

    Attributes:
        description: one line for ``--help``.
        model: the net and its arguments.
        augment: the augmentation.
        train: ``TrainConfig`` fields that differ from its defaults.
        data: ``DataConfig`` fields that differ from its defaults (not the path).
    """

    description: str
    model: ModelConfig
    augment: AugmentConfig
    train: dict = field(default_factory=dict)
    data: dict = field(default_factory=dict)


RECIPES: dict[str, Recipe] = {
    "speedrun": Recipe(
        description="the most PublicTest accuracy in 0.3 PFLOP (14 epochs): airbench's net "
                    "and training, measured on faces",
        model=ModelConfig("speedrun", {"widths": [32, 128, 256]}),
        # Integer 2-px translations and every-other-epoch mirroring: shifts, rotations and
        # zooms cost 1.4 points in 12 epochs (benchmarks/RESULTS.md, "Speedrun").
        augment=AugmentConfig(flip=True, alternate_flip=True, shift=0.0, rotation=0.0,
                              zoom=0.0, crop=2),
        train={"epochs": 14, "batch_size": 256, "drop_last": True, "optimizer": "sgd",
               "lr": 0.15,
               "momentum": 0.85, "weight_decay": 0.00133, "bias_lr_scale": 64.0,
               "schedule": "onecycle", "label_smoothing": 0.2, "lookahead": 5,
               "val_tta": "flip"},
        data={"val_split": "usage"},
    ),
}


def recipe(name: str) -> Recipe:
    """The recipe called ``name``.

    Raises:
        ConfigError: no recipe has that name.
    """
    if name not in RECIPES:
        raise ConfigError(f"unknown recipe {name!r}; choose one of: {', '.join(RECIPES)}")
    return RECIPES[name]


def recipe_config(name: str, data_path: str, **train: object) -> RunConfig:
    """The RunConfig of recipe ``name`` on ``data_path``; ``train`` overrides TrainConfig
    fields (``seed=1``, ``epochs=20``...)."""
    r = recipe(name)
    return RunConfig(
        data=DataConfig(path=data_path, **r.data),
        model=r.model,
        augment=r.augment,
        train=dataclasses.replace(TrainConfig(**r.train), **train),
    ).validate()


def cli_defaults(name: str) -> dict:
    """The recipe as defaults of ``ferlab train``'s flags (argparse ``dest`` names), so that
    flags given on the command line still win."""
    r = recipe(name)
    a = r.augment
    return {"model": r.model.name, "model_args": dict(r.model.kwargs), **r.train, **r.data,
            "no_flip": not a.flip, "alternate_flip": a.alternate_flip, "shift": a.shift,
            "rotation": a.rotation, "zoom": a.zoom, "shear": a.shear, "crop": a.crop,
            "erase": a.erase, "mixup": a.mixup}
