"""The ``ferlab`` command: thin subcommands over the library.

Each subcommand is a pair ``add_<name>(subparsers)`` / ``cmd_<name>(args)``; ``cmd_*`` only parses
options into library calls and prints results. Errors ferlab raises on purpose become one line
on stderr and exit status 2 (``--debug`` shows the traceback).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .errors import FerlabError

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # argparse's own errors: one line, status 2, like ours
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"ferlab: error: {message}\n")


def _positive_int(s: str) -> int:
    v = int(s)
    if v < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {s}")
    return v


def _nonneg_float(s: str) -> float:
    v = float(s)
    if not v >= 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {s}")
    return v


def _json_dict(s: str) -> dict:
    try:
        d = json.loads(s)
    except json.JSONDecodeError as e:
        raise argparse.ArgumentTypeError(f"not JSON: {e}") from e
    if not isinstance(d, dict):
        raise argparse.ArgumentTypeError("must be a JSON object, e.g. '{\"width\": 32}'")
    return d


# --------------------------------------------------------------------------------------------
# ferlab data


def add_data(sub) -> None:
    p = sub.add_parser("data", help="class counts per split and a grid of sample faces",
                       description="Read a data file or folder, print class counts per split "
                                   "and write a PNG grid of sample faces per class.")
    p.add_argument("path", help="fer2013.csv, train.csv, test.csv (plain or .gz) or image folder")
    p.add_argument("--out", default="faces.png", help="PNG grid to write (default faces.png)")
    p.add_argument("--per-class", type=_positive_int, default=8, help="faces per class row")
    p.add_argument("--seed", type=int, default=0, help="which faces are sampled")
    p.add_argument("--skip-bad-rows", action="store_true", help="skip and count malformed rows")


def cmd_data(args) -> int:
    from .constants import EMOTIONS
    from .data import load_faces
    from .plots import sample_grid

    faces = load_faces(args.path, skip_bad_rows=args.skip_bad_rows)
    counts = faces.class_counts()
    names = list(counts)
    print(f"{faces.source}: {len(faces):,} faces")
    print(f"{'class':<10}" + "".join(f"{n:>13}" for n in names))
    for i, e in enumerate(EMOTIONS):
        print(f"{i} {e:<8}" + "".join(f"{counts[n][i]:>13,}" for n in names))
    print(f"{'total':<10}" + "".join(f"{sum(counts[n]):>13,}" for n in names))
    if faces.skipped:
        print(f"skipped {len(faces.skipped)} bad rows; first: row {faces.skipped[0][0]}: "
              f"{faces.skipped[0][1]}")
    if faces.has_labels:
        sample_grid(faces, args.out, per_class=args.per_class, seed=args.seed)
        print(f"wrote {args.out}")
    return 0


# --------------------------------------------------------------------------------------------
# ferlab models


def add_models(sub) -> None:
    sub.add_parser("models", help="list the registered models with size and cost",
                   description="List every registered model: trainable parameters, BatchNorm "
                               "statistics and forward MFLOPs for one 48x48 face.")


def cmd_models(args) -> int:
    from .models import describe_model, list_models, model_stats

    print(f"{'name':<11}{'parameters':>13}{'BN stats':>10}{'MFLOPs':>9}  description")
    for name in list_models():
        s = model_stats(name)
        print(f"{name:<11}{s.params:>13,}{s.buffers:>10,}{s.mflops:>9.1f}  {describe_model(name)}")
    return 0


# --------------------------------------------------------------------------------------------
# ferlab train


def add_train(sub) -> None:
    from .config import OPTIMIZERS, SCHEDULES, AugmentConfig, TrainConfig
    from .models import list_models

    t, a = TrainConfig(), AugmentConfig()
    p = sub.add_parser(
        "train", help="train a model into a run folder",
        description="Train a model. Writes config.json, history.csv, checkpoint.pt (every epoch), "
                    "model.safetensors (best by validation accuracy) and metrics.json to --out.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--data", help="training data: fer2013.csv(.gz), train.csv or image folder")
    p.add_argument("--model", default="cnn", choices=list_models(), help="model name")
    p.add_argument("--model-args", type=_json_dict, default={},
                   help="JSON keyword arguments of the model, e.g. '{\"width\": 32}'")
    p.add_argument("--out", help="run folder to create")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue an interrupted run")
    p.add_argument("--force", action="store_true", help="overwrite a run already in --out")
    p.add_argument("--val-split", default="auto",
                   help="auto | usage | last:N | random:F | stratified:F")
    p.add_argument("--limit", type=int, default=0, help="use only the first N training faces")
    p.add_argument("--skip-bad-rows", action="store_true", help="skip and count malformed rows")
    g = p.add_argument_group("optimisation")
    g.add_argument("--epochs", type=_positive_int, default=t.epochs)
    g.add_argument("--batch-size", type=_positive_int, default=t.batch_size)
    g.add_argument("--optimizer", choices=OPTIMIZERS, default=t.optimizer)
    g.add_argument("--lr", type=float, default=t.lr, help="peak learning rate")
    g.add_argument("--momentum", type=float, default=t.momentum)
    g.add_argument("--weight-decay", type=_nonneg_float, default=t.weight_decay)
    g.add_argument("--schedule", choices=SCHEDULES, default=t.schedule)
    g.add_argument("--warmup-epochs", type=_nonneg_float, default=t.warmup_epochs)
    g.add_argument("--label-smoothing", type=_nonneg_float, default=t.label_smoothing)
    g.add_argument("--epoch-multiplier", type=_positive_int, default=t.epoch_multiplier,
                   help="augmented passes over the data per epoch")
    g.add_argument("--early-stopping", type=int, default=t.early_stopping, metavar="PATIENCE",
                   help="stop after this many epochs without validation gain (0 = off)")
    g.add_argument("--ema", type=_nonneg_float, default=t.ema,
                   help="EMA decay of weights per step (0 = off)")
    g.add_argument("--seed", type=int, default=t.seed)
    g.add_argument("--no-bf16", action="store_true", help="train in float32")
    g.add_argument("--threads", type=int, default=t.threads, help="torch threads (0 = default)")
    g = p.add_argument_group("augmentation")
    g.add_argument("--no-augment", action="store_true", help="turn every augmentation off")
    g.add_argument("--no-flip", action="store_true", help="no horizontal flips")
    g.add_argument("--shift", type=_nonneg_float, default=a.shift, help="fraction of the side")
    g.add_argument("--rotation", type=_nonneg_float, default=a.rotation, help="degrees")
    g.add_argument("--zoom", type=_nonneg_float, default=a.zoom, help="fraction")
    g.add_argument("--shear", type=_nonneg_float, default=a.shear, help="degrees")
    g.add_argument("--crop", type=int, default=a.crop, help="random-crop padding, pixels")
    g.add_argument("--erase", type=_nonneg_float, default=a.erase,
                   help="random-erasing probability")
    g.add_argument("--mixup", type=_nonneg_float, default=a.mixup,
                   help="mixup/cutmix Beta alpha (0 = off)")


def config_from_args(args):
    from .config import AugmentConfig, DataConfig, ModelConfig, RunConfig, TrainConfig

    aug = (AugmentConfig(flip=False, shift=0, rotation=0, zoom=0, shear=0, crop=0, erase=0,
                         mixup=0) if args.no_augment else
           AugmentConfig(flip=not args.no_flip, shift=args.shift, rotation=args.rotation,
                         zoom=args.zoom, shear=args.shear, crop=args.crop, erase=args.erase,
                         mixup=args.mixup))
    return RunConfig(
        data=DataConfig(path=args.data, val_split=args.val_split,
                        skip_bad_rows=args.skip_bad_rows, limit=args.limit),
        model=ModelConfig(name=args.model, kwargs=args.model_args),
        augment=aug,
        train=TrainConfig(
            epochs=args.epochs, batch_size=args.batch_size, optimizer=args.optimizer, lr=args.lr,
            momentum=args.momentum, weight_decay=args.weight_decay, schedule=args.schedule,
            warmup_epochs=args.warmup_epochs, label_smoothing=args.label_smoothing,
            epoch_multiplier=args.epoch_multiplier, early_stopping=args.early_stopping,
            ema=args.ema, seed=args.seed, bf16=not args.no_bf16, threads=args.threads),
    ).validate()


def cmd_train(args) -> int:
    from .train import train

    if args.resume:
        run = train(None, args.resume, resume=True)
    else:
        if not args.data or not args.out:
            raise FerlabError("train needs --data FILE and --out RUN_DIR (or --resume RUN_DIR)")
        run = train(config_from_args(args), args.out, force=args.force)
    metrics = json.loads((Path(run) / "metrics.json").read_text())
    print(f"best validation accuracy {metrics['best_val_acc']:.4f} at epoch "
          f"{metrics['best_epoch']}; model in {Path(run) / 'model.safetensors'}")
    return 0


# --------------------------------------------------------------------------------------------
# ferlab demo


def add_demo(sub) -> None:
    p = sub.add_parser("demo", help="run ferlab end to end with nothing to download",
                       description="Run the main job on what ships with ferlab.")
    p.add_argument("--out", default="demo-output", help="folder for the demo's files")


def cmd_demo(args) -> int:
    # Until the bundled model ships: train a small CNN on synthetic faces, end to end.
    from .config import AugmentConfig, DataConfig, ModelConfig, RunConfig, TrainConfig
    from .data import make_split
    from .plots import sample_grid
    from .synthetic import make_split_faces
    from .train import train

    out = Path(args.out)
    faces = make_split_faces(700, 140, seed=0)
    print(f"wrote {sample_grid(faces, out / 'faces.png')}")
    cfg = RunConfig(DataConfig(path="synthetic"), ModelConfig("cnn-leaky"),
                    AugmentConfig(flip=False, shift=0, rotation=0, zoom=0),
                    TrainConfig(epochs=3, batch_size=32, lr=2e-3))
    run = train(cfg, out / "run", force=True, data=make_split(faces, "usage"))
    print(f"run folder: {run}")
    return 0


# --------------------------------------------------------------------------------------------

COMMANDS = ["data", "models", "train", "demo"]


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = _Parser(prog="ferlab", description="Facial expression recognition on 48x48 faces: "
                     "learn, train, evaluate, explain, predict, report.")
    parser.add_argument("--version", action="version", version=f"ferlab {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    module = sys.modules[__name__]
    for name in COMMANDS:
        getattr(module, f"add_{name.replace('-', '_')}")(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help()
        return EXIT_USAGE
    handler = getattr(sys.modules[__name__], f"cmd_{args.command.replace('-', '_')}")
    try:
        return handler(args) or 0
    except FerlabError as e:
        if args.debug:
            raise
        print(f"ferlab {args.command}: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print(f"ferlab {args.command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
