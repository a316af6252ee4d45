"""The ``ferlab`` command: thin subcommands over the library.

Each subcommand is a pair ``add_<name>(subparsers)`` / ``cmd_<name>(args)``; ``cmd_*`` only parses
options into library calls and prints results. Errors ferlab raises on purpose become one line
on stderr and exit status 2 (``--debug`` shows the traceback).
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
from pathlib import Path

from .errors import ConfigError, DataError, FerlabError

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # argparse's own errors: one line, status 2, like ours
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (run '{self.prog} --help')\n")


def _model_names() -> list[str]:
    """The registry's model names, for ``train --model``'s choices, without importing torch.

    Once :mod:`ferlab.models` is loaded (a Python caller, who may have registered models of
    their own) this is ``list_models()``; otherwise the names are read from the
    ``@register_model("name", ...)`` lines of ``ferlab/models/*.py``, so that ``ferlab train
    --help`` need not spend seconds importing torch. A test checks both give the same names.
    """
    if "ferlab.models" in sys.modules:
        from .models import list_models

        return list_models()
    import ast

    names = []
    for path in sorted((Path(__file__).parent / "models").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (isinstance(node, ast.Call) and getattr(node.func, "id", "") == "register_model"
                    and node.args and isinstance(node.args[0], ast.Constant)):
                names.append(node.args[0].value)
    return sorted(names)


def _positive_int(s: str) -> int:
    try:
        v = int(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {s!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {s}")
    return v


def _nonneg_float(s: str) -> float:
    try:
        v = float(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number >= 0, got {s!r}") from None
    if not 0 <= v < float("inf"):  # also refuses nan and inf
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


def _add_compute(p, alias: str | None = None, threads_help: str = "") -> None:
    """``--precision`` (with its older alias ``--bf16`` or ``--no-bf16``) and ``--threads``."""
    from .precision import PRECISIONS

    p.add_argument("--precision", choices=PRECISIONS, default="auto",
                   help="number format: auto (default) computes in bf16 where this CPU does so "
                        "natively (AVX-512 bf16 or AMX), else in fp32, where emulated bf16 "
                        "would be many times slower")
    if alias == "bf16":
        p.add_argument("--bf16", action="store_true", help="same as --precision bf16")
    elif alias == "no-bf16":
        p.add_argument("--no-bf16", action="store_true", help="same as --precision fp32")
    p.add_argument("--threads", type=int, default=0, metavar="N",
                   help=threads_help or "torch threads (default 0: one to classify the faces "
                                        "of a photo or frame, which holds up when the machine "
                                        "is busy; every core for batches of faces)")


def _precision(args) -> str:
    """The ``--precision`` asked for, its older aliases included."""
    from .precision import precision_from_flags

    return precision_from_flags(args.precision, getattr(args, "bf16", False),
                                getattr(args, "no_bf16", False))


# --------------------------------------------------------------------------------------------
# ferlab data


def add_data(sub) -> None:
    p = sub.add_parser("data", help="class counts per split and a grid of sample faces",
                       description="Read a data file or folder, print class counts per split "
                                   "and write a PNG grid of sample faces per class.")
    p.set_defaults(run=cmd_data)
    p.add_argument("path", help="fer2013.csv, train.csv, test.csv (plain or .gz) or image folder")
    p.add_argument("--out", default="faces.png",
                   help="PNG grid to write (default faces.png; .png is added to a name without "
                        "it)")
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
        out = Path(args.out)
        if out.suffix.lower() != ".png":  # the grid is always a PNG: say so in its name
            out = out.with_name(out.name + ".png")
        sample_grid(faces, out, per_class=args.per_class, seed=args.seed)
        print(f"wrote {out}")
    return 0


# --------------------------------------------------------------------------------------------
# ferlab models


def add_models(sub) -> None:
    p = sub.add_parser("models", help="list the registered models with size and cost",
                       description="List every registered model: trainable parameters, "
                                   "BatchNorm statistics and forward MFLOPs for one 48x48 face.")
    p.set_defaults(run=cmd_models)


def cmd_models(args) -> int:
    from .assets import bundled_model_path
    from .evaluate import model_description
    from .model_spec import BUNDLED, BUNDLED_FAST, load_model
    from .models import count_params, describe_model, forward_mflops, list_models, model_stats

    print(f"{'name':<11}{'parameters':>13}{'BN stats':>10}{'MFLOPs':>9}  description")
    for name in list_models():
        s = model_stats(name)
        print(f"{name:<11}{s.params:>13,}{s.buffers:>10,}{s.mflops:>9.1f}  {describe_model(name)}")
    # The shipped models are trained models, not registry names: say which architecture each is.
    roles = {BUNDLED: "the default MODEL of every command", BUNDLED_FAST: "the fast one"}
    for name, role in roles.items():
        path = bundled_model_path(name)
        if not path.exists():
            continue
        model = load_model(name)
        params, buffers = count_params(model)
        if getattr(model, "members", None) is not None:
            what = f"a trained {model_description(model)}"
        else:
            what = f"a trained {model.name}" + (f" {json.dumps(model.kwargs)}"
                                                if model.kwargs else "")
        print(f"{name:<13}{params:>11,}{buffers:>10,}{forward_mflops(model):>9.1f}  {role}: "
              f"{what} ({path.name}, {path.stat().st_size / 1e6:.1f} MB)")
    return 0


# --------------------------------------------------------------------------------------------
# ferlab train


def add_train(sub) -> None:
    from .config import DEVICES, OPTIMIZERS, SCHEDULES, VAL_TTA, AugmentConfig, TrainConfig
    from .recipes import RECIPES

    t, a = TrainConfig(), AugmentConfig()
    p = sub.add_parser(
        "train", help="train a model into a run folder",
        description="Train a model. Writes config.json, history.csv, checkpoint.pt (every epoch), "
                    "model.safetensors (best by validation accuracy) and metrics.json to --out.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.set_defaults(run=cmd_train)
    p.add_argument("--data", help="training data: fer2013.csv(.gz), train.csv or image folder")
    p.add_argument("--recipe", choices=list(RECIPES),
                   help="start from a named recipe: " + "; ".join(
                       f"{name}: {r.description}" for name, r in RECIPES.items())
                   + ". Flags given beside it override its values")
    p.add_argument("--model", default="cnn", choices=_model_names(), help="model name")
    p.add_argument("--model-args", type=_json_dict, default={},
                   help="JSON keyword arguments of the model, e.g. '{\"width\": 32}'")
    p.add_argument("--out", help="run folder to create")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue an interrupted run")
    p.add_argument("--force", action="store_true", help="overwrite a run already in --out")
    p.add_argument("--val-split", default="auto",
                   help="auto | usage | last:N | random:F | stratified:F")
    p.add_argument("--limit", type=int, default=0, help="use only the first N training faces")
    p.add_argument("--skip-bad-rows", action="store_true", help="skip and count malformed rows")
    p.add_argument("--members", type=_positive_int, default=1, metavar="N",
                   help="train N ensemble members (seeds seed..seed+N-1) into --out, which "
                        "becomes an ensemble folder; reports accuracy against N")
    p.add_argument("--jobs", type=_positive_int, default=1, metavar="J",
                   help="with --members: train J members at once, in J processes sharing the "
                        "torch threads (or one GPU each where several are visible)")
    p.add_argument("--member-splits", action="store_true",
                   help="with --members: each member validates on its own seeded random 10%% "
                        "of the training rows (seed report 002)")
    g = p.add_argument_group("optimisation")
    g.add_argument("--epochs", type=_positive_int, default=t.epochs)
    g.add_argument("--batch-size", type=_positive_int, default=t.batch_size)
    g.add_argument("--drop-last", action="store_true",
                   help="skip each epoch's last, smaller batch")
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
    g.add_argument("--bias-lr-scale", type=float, default=t.bias_lr_scale,
                   help="learning-rate multiplier of biases and BatchNorm parameters")
    g.add_argument("--lookahead", type=int, default=t.lookahead, metavar="K",
                   help="every K steps, pull the weights onto their slow average, which is "
                        "what the run ends with (0 = off)")
    g.add_argument("--val-tta", choices=VAL_TTA, default=t.val_tta,
                   help="test-time augmentation when validating; the saved model records it as "
                        "its recommended TTA")
    _add_compute(g, alias="no-bf16", threads_help="torch threads (default 0: every core this "
                                                  "process may use)")
    g.add_argument("--device", choices=DEVICES, default=t.device,
                   help="cpu, cuda, or auto (default): a GPU where PyTorch sees one, else the CPU")
    g = p.add_argument_group("fine-tuning and distillation")
    g.add_argument("--init", metavar="MODEL",
                   help="start from this model's weights (run folder, file or 'bundled'; same "
                        "architecture): fine-tuning")
    g.add_argument("--teacher", metavar="MODEL",
                   help="distil this model or ensemble folder into the one being trained")
    g.add_argument("--distill", type=_nonneg_float, default=t.distill,
                   help="weight of the teacher's soft targets in the loss, 0-1 (0.5 when --teacher "
                        "is given without it)")
    g.add_argument("--temperature", type=float, default=t.temperature,
                   help="distillation temperature")
    g.add_argument("--teacher-cache", action="store_true",
                   help="the teacher predicts each training face (and its mirror) once, before "
                        "training, instead of every augmented batch: epochs cost what plain "
                        "ones do, and a large or mirrored-TTA teacher becomes affordable; the "
                        "answers are kept in the run folder, so --resume does not wait for "
                        "them again")
    g = p.add_argument_group("augmentation")
    g.add_argument("--no-augment", action="store_true", help="turn every augmentation off")
    g.add_argument("--no-flip", action="store_true", help="no horizontal flips")
    g.add_argument("--alternate-flip", action=argparse.BooleanOptionalAction, default=False,
                   help="mirror each face on every other epoch instead of at random")
    g.add_argument("--shift", type=_nonneg_float, default=a.shift, help="fraction of the side")
    g.add_argument("--rotation", type=_nonneg_float, default=a.rotation, help="degrees")
    g.add_argument("--zoom", type=_nonneg_float, default=a.zoom, help="fraction")
    g.add_argument("--shear", type=_nonneg_float, default=a.shear, help="degrees")
    g.add_argument("--crop", type=int, default=a.crop, help="random-crop padding, pixels")
    g.add_argument("--crop-size", type=int, default=a.crop_size, metavar="PX",
                   help="train on random PX x PX windows of each face (e.g. 40; 0 = whole "
                        "faces); the net is tested on whole faces, so it needs a size-free "
                        "head (speedrun, or a net with global pooling)")
    g.add_argument("--erase", type=_nonneg_float, default=a.erase,
                   help="random-erasing probability")
    g.add_argument("--mixup", type=_nonneg_float, default=a.mixup,
                   help="mixup/cutmix Beta alpha (0 = off)")


def config_from_args(args):
    from .config import AugmentConfig, DataConfig, ModelConfig, RunConfig, TrainConfig

    aug = (AugmentConfig(flip=False, shift=0, rotation=0, zoom=0, shear=0, crop=0, erase=0,
                         mixup=0) if args.no_augment else
           AugmentConfig(flip=not args.no_flip, alternate_flip=args.alternate_flip,
                         shift=args.shift, rotation=args.rotation,
                         zoom=args.zoom, shear=args.shear, crop=args.crop,
                         crop_size=args.crop_size, erase=args.erase, mixup=args.mixup))
    return RunConfig(
        data=DataConfig(path=args.data, val_split=args.val_split,
                        skip_bad_rows=args.skip_bad_rows, limit=args.limit),
        model=ModelConfig(name=args.model, kwargs=args.model_args),
        augment=aug,
        train=TrainConfig(
            epochs=args.epochs, batch_size=args.batch_size, drop_last=args.drop_last,
            optimizer=args.optimizer, lr=args.lr,
            momentum=args.momentum, weight_decay=args.weight_decay, schedule=args.schedule,
            warmup_epochs=args.warmup_epochs, label_smoothing=args.label_smoothing,
            epoch_multiplier=args.epoch_multiplier, early_stopping=args.early_stopping,
            ema=args.ema, seed=args.seed, precision=_precision(args), threads=args.threads,
            device=args.device, init=args.init or "", teacher=args.teacher or "",
            distill=args.distill if args.distill or not args.teacher else 0.5,
            temperature=args.temperature, teacher_cache=args.teacher_cache,
            bias_lr_scale=args.bias_lr_scale, lookahead=args.lookahead, val_tta=args.val_tta),
    ).validate()


def cmd_train(args) -> int:
    from .runs import RunFolder
    from .training.distributed import is_main_process
    from .training.loop import train

    if args.resume:
        run = train(None, args.resume, resume=True)
    else:
        if not args.data or not args.out:
            raise FerlabError("train needs --data FILE and --out RUN_DIR (or --resume RUN_DIR)")
        if args.jobs > 1 and args.members == 1:
            raise FerlabError("--jobs trains ensemble members in parallel; give --members N")
        if args.members > 1 or args.member_splits:
            from .training.distributed import world_from_env
            from .training.members import train_members

            if world_from_env() > 1:
                raise FerlabError("--members under torchrun is not supported: torchrun shares "
                                  "one run over its processes; train members side by side "
                                  "with --jobs instead")
            out = train_members(config_from_args(args), args.out, args.members,
                                split_seeds=args.member_splits, force=args.force,
                                jobs=args.jobs)
            print(f"ensemble of {args.members} members in {out}; accuracy by number of members "
                  f"in {Path(out) / 'members.csv'}")
            return 0
        run = train(config_from_args(args), args.out, force=args.force)
    if not is_main_process():  # under torchrun, rank 0 reports for all
        return 0
    folder = RunFolder(run)
    metrics = folder.metrics()
    print(f"best validation accuracy {metrics['best_val_acc']:.4f} at epoch "
          f"{metrics['best_epoch']}; model in {folder.model_path}")
    return 0


# --------------------------------------------------------------------------------------------
# ferlab demo


def add_demo(sub) -> None:
    p = sub.add_parser("demo", help="the bundled model on a bundled photo, nothing to download",
                       description="Find the faces in a photo of a real person (the bundled "
                                   "public-domain astronaut photo unless --photo), classify "
                                   "them with the bundled model, and write the annotated "
                                   "photo, faces.json, each face's explanations (saliency, "
                                   "Grad-CAM, LIME) and an HTML page.")
    p.set_defaults(run=cmd_demo)
    p.add_argument("--out", default="demo-output", help="folder for the demo's files")
    p.add_argument("--model", default="bundled",
                   help="run folder, model file, ensemble folder, 'bundled' (default) or "
                        "'bundled-fast'")
    p.add_argument("--photo", help="another photo to run the demo on")
    _add_compute(p)


def cmd_demo(args) -> int:
    from .demo import run_demo

    r = run_demo(args.out, model=args.model, photo=args.photo, precision=_precision(args),
                 threads=args.threads)
    print(f"{r.photo}: {len(r.faces)} face{'s' if len(r.faces) != 1 else ''}")
    for i, f in enumerate(sorted(r.faces, key=lambda f: (f.box.x, f.box.y))):  # left to right
        print(f"  face {i}: box x={f.box.x} y={f.box.y} w={f.box.w} h={f.box.h}  "
              f"{f.label} {f.score:.0%}")
    for n in r.notes:
        print(n)
    print(f"annotated photo: {r.annotated}")
    print(f"faces (JSON):    {r.json}")
    if r.explanations:
        print(f"explanations:    {r.explanations}")
    print(f"page:            {r.page}")
    return 0


# --------------------------------------------------------------------------------------------
# ferlab video


def add_video(sub) -> None:
    p = sub.add_parser(
        "video", help="emotions over time in a video file or a camera",
        description="Find and classify the faces in every Nth frame of a video (or a camera) and "
                    "write emotions.csv (one row per face per analysed frame), emotions.png "
                    "(emotions over time of the largest face; a dotted line where another "
                    "person becomes the largest) and, with --annotate, "
                    "annotated.mp4. A camera runs until Ctrl-C or --max-frames.")
    p.set_defaults(run=cmd_video)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("input", nargs="?", help="video file (anything OpenCV reads: mp4, avi, ...)")
    src.add_argument("--camera", type=int, metavar="N", help="camera number (0 = first)")
    p.add_argument("--out", required=True, metavar="DIR", help="folder for the results")
    p.add_argument("--model", default="bundled",
                   help="run folder, model file, ensemble folder, 'bundled' (default) or "
                        "'bundled-fast'")
    p.add_argument("--every", type=_positive_int, default=1, metavar="N",
                   help="analyse one frame in N (default 1: every frame)")
    p.add_argument("--annotate", action="store_true", help="also write annotated.mp4")
    p.add_argument("--max-frames", type=_positive_int, help="stop after this many frames")
    _add_detector(p)
    _add_tta(p, shift=False)
    _add_compute(p)
    _add_runtime(p)


def cmd_video(args) -> int:
    from .faces.video import analyze_video

    source = args.camera if args.camera is not None else args.input
    r = analyze_video(source, args.out, model=args.model, every=args.every,
                      annotated_video=args.annotate, max_frames=args.max_frames,
                      tta=_tta(args, args.model),
                      detector=args.detector, min_face=args.min_face,
                      precision=_precision(args), threads=args.threads, runtime=args.runtime)
    print(f"{r.frames_read} frames read, {r.frames_analyzed} analysed, "
          f"{r.frames_with_face} with a face")
    print(f"wrote {r.csv_path}")
    for path in (r.plot_path, r.video_path):
        if path:
            print(f"wrote {path}")
    return 0


def _add_detector(p) -> None:
    from .constants import DEFAULT_DETECTOR, DETECTORS

    p.add_argument("--detector", choices=DETECTORS, default=DEFAULT_DETECTOR,
                   help="face detector for photos and video: MediaPipe's BlazeFace network, "
                        "OpenCV's Haar cascade, or auto: BlazeFace, then Haar for a face that "
                        "fills the picture where BlazeFace finds none (see ferlab.faces)")
    p.add_argument("--min-face", type=float, metavar="FRACTION",
                   help="smallest face to look for, as a fraction of the picture's longer side "
                        "(default: about 0.05, and BlazeFace's second pass looks only for faces "
                        "down to half the closest one). 0.1 or more skips that pass: photos with "
                        "a face under 25%% of that side, or none, take about half the time; "
                        "fine for portraits and webcams. Under 0.1, faces that small are looked "
                        "for in every photo, beside close faces too")


def _add_tta(p, shift: bool = True) -> None:
    p.add_argument("--tta", nargs="?", const="flip", choices=("none", "flip", "shift"),
                   help="test-time augmentation: flip (what --tta alone means) averages with the "
                        "mirrored face, shift also with 2-pixel shifts (10 views), none turns it "
                        "off. Default: the model's own, recorded when it was trained with "
                        "--val-tta, else none")
    if shift:
        p.add_argument("--tta-shift", action="store_true",
                       help="also average 2-pixel shifts of the face and its mirror (10 views, "
                            "10x the time)")


def _add_runtime(p, default: str | None = None) -> None:
    from .runtime.choice import DEFAULT_RUNTIME, RUNTIMES

    default = default or DEFAULT_RUNTIME
    why = ("default torch: evaluate scores the model itself, not a faster approximation"
           if default == "torch" else "the default")
    p.add_argument("--runtime", choices=RUNTIMES, default=default,
                   help="who runs the classifier: torch, onnx (ONNX Runtime: the bundled "
                        "model's int8 graph, any other model exported at start in float32) or "
                        "auto (what benchmarks/bench_runtime.py measured faster on this kind "
                        f"of CPU for this batch size, see ferlab.runtime.choice; {why}); a "
                        ".onnx --model runs in ONNX Runtime")


def _tta(args, model_spec=None) -> str | None:
    """``--tta MODE`` / ``--tta-shift`` as a test-time augmentation mode; without either, the
    one the model at ``model_spec`` records (said on stderr), else none."""
    if getattr(args, "tta_shift", False):
        return "shift"
    if args.tta is not None:
        return None if args.tta == "none" else args.tta
    from .model_spec import recommended_tta

    tta = recommended_tta(model_spec) if model_spec is not None else None
    if tta:
        print(f"ferlab {args.command}: {tta} TTA, as the model recommends (--tta none to turn "
              "it off)", file=sys.stderr)
    return tta


# --------------------------------------------------------------------------------------------
# ferlab evaluate


def add_evaluate(sub) -> None:
    p = sub.add_parser(
        "evaluate", help="accuracy, per-class scores, confusion, calibration, mistakes",
        description="Score a model on labelled faces: prints a per-class table, writes "
                    "metrics.json and confusion.png, confusion_normalized.png, reliability.png, "
                    "mistakes.png to --out.")
    p.set_defaults(run=cmd_evaluate)
    p.add_argument("--model", default="bundled",
                   help="run folder, model file, ensemble folder, 'bundled' (default) or "
                        "'bundled-fast'")
    p.add_argument("--data", required=True,
                   help="labelled faces: fer2013.csv(.gz), train.csv or image folder")
    p.add_argument("--split", choices=["PublicTest", "PrivateTest", "Training", "all"],
                   help="rows to score (default: the file's test rows when it has Usage, "
                        "else all rows)")
    _add_tta(p)
    _add_compute(p, alias="bf16")
    _add_runtime(p, default="torch")
    p.add_argument("--out", default="evaluation", help="folder for the figures")
    p.add_argument("--json", help="metrics file (default OUT/metrics.json)")
    p.add_argument("--mistakes", type=_positive_int, default=6, metavar="N",
                   help="confidently wrong faces per class in mistakes.png")
    p.add_argument("--batch-size", type=_positive_int, default=64)
    p.add_argument("--skip-bad-rows", action="store_true", help="skip and count malformed rows")


def cmd_evaluate(args) -> int:
    from .data import load_faces, select_split
    from .evaluate import evaluate_model, format_metrics, model_description, write_evaluation
    from .runtime.onnx_classifier import load_classifier
    from .threads import configure_threads

    model = load_classifier(args.model)
    faces = load_faces(args.data, skip_bad_rows=args.skip_bad_rows)
    faces = select_split(faces, args.split or "test")  # the test rows, where it has Training ones
    shown = "+".join(faces.split_names()) or "all"
    tta = _tta(args, args.model)
    configure_threads(args.threads, "batch")
    _progress_line("evaluate")(f"scoring {len(faces):,} faces [{shown}]"
                               + (f" with {tta} TTA" if tta else "") + " ...")
    ev = evaluate_model(model, faces, tta=tta, precision=_precision(args),
                        batch_size=args.batch_size,
                        model_name=f"{model_description(model)} ({args.model})", split=shown,
                        runtime=args.runtime)
    paths = write_evaluation(ev, args.out, json_path=args.json, per_class=args.mistakes)
    how = ((f" with {tta} TTA" if tta else "") + f" in {ev.metrics['precision']}"
           + f" ({ev.metrics['runtime']})")
    print(f"{ev.metrics['model']} on {faces.source} [{shown}]{how}: {len(faces):,} faces in "
          f"{ev.metrics['seconds']:.1f}s")
    print(format_metrics(ev.metrics))
    print(f"wrote {paths['metrics']} and {len(paths) - 1} figures in {args.out}")
    return 0


# --------------------------------------------------------------------------------------------
# ferlab curves / compare


def add_curves(sub) -> None:
    p = sub.add_parser("curves", help="loss and accuracy per epoch of runs, overlaid",
                       description="Plot train and validation loss and accuracy per epoch of "
                                   "one or more run folders into one PNG.")
    p.set_defaults(run=cmd_curves)
    p.add_argument("runs", nargs="+", metavar="RUN", help="run folders")
    p.add_argument("--out", default="curves.png", help="PNG to write (default curves.png)")


def cmd_curves(args) -> int:
    from .plots import curves

    print(f"wrote {curves(args.runs, args.out)}")
    return 0


def add_compare(sub) -> None:
    p = sub.add_parser("compare", help="runs side by side: size, speed, accuracy, overfitting",
                       description="Table of parameters, seconds per epoch, best validation "
                                   "accuracy and its epoch, and final train accuracy against "
                                   "final validation accuracy (the overfitting gap).")
    p.set_defaults(run=cmd_compare)
    p.add_argument("runs", nargs="+", metavar="RUN", help="run folders")
    p.add_argument("--json", help="also write the rows to this JSON file")


def cmd_compare(args) -> int:
    from .compare import compare_runs, format_comparison
    from .io_utils import write_json

    rows = compare_runs(args.runs)
    print(format_comparison(rows))
    if args.json:
        print(f"wrote {write_json(args.json, rows)}")
    return 0


# --------------------------------------------------------------------------------------------
# ferlab ensemble


def add_ensemble(sub) -> None:
    p = sub.add_parser("ensemble", help="combine models into one ensemble model",
                       description="Make an ensemble (a folder: ensemble.json + member weights; "
                                   "or one .safetensors file) usable wherever a model is: "
                                   "evaluate, predict, explain. With --calibrate, each member "
                                   "first gets the temperature that makes its probabilities "
                                   "honest on labelled faces, so the mean weighs members by "
                                   "how right they are rather than how sure.")
    p.set_defaults(run=cmd_ensemble)
    p.add_argument("runs", nargs="+", metavar="RUN",
                   help="run folders, model files or ensemble folders")
    p.add_argument("--method", choices=["vote", "mean"], default="vote",
                   help="majority vote (ties: mean probability) or mean probability")
    p.add_argument("--out", required=True,
                   help="ensemble folder to write, or a .safetensors file for a one-file "
                        "ensemble")
    p.add_argument("--half", action="store_true",
                   help="with a .safetensors --out: store the weights in float16 (half the "
                        "bytes, as the bundled model ships)")
    p.add_argument("--tta", choices=("none", "flip", "shift"), default="none",
                   help="the test-time augmentation the ensemble recommends (evaluate and "
                        "predict use it unless told otherwise), and the one --calibrate scores "
                        "with")
    p.add_argument("--temperatures", type=_float_list, metavar="T1,T2,...",
                   help="each member's softmax temperature, by hand (default 1)")
    p.add_argument("--output-temperature", type=float, default=1.0, metavar="T",
                   help="one temperature for the combined probabilities: never changes a "
                        "label, only how sure the ensemble says it is")
    p.add_argument("--calibrate", metavar="DATA",
                   help="labelled faces to fit each member's temperature on (fer2013.csv(.gz), "
                        "train.csv or image folder)")
    p.add_argument("--calibrate-output", action="store_true",
                   help="with --calibrate: fit the ensemble's one output temperature instead "
                        "of the members' (the accuracy stays exactly as it is)")
    p.add_argument("--split", choices=["PublicTest", "PrivateTest", "Training", "all"],
                   help="with --calibrate: the rows to fit on (default: the file's test rows "
                        "when it has Usage, else all rows)")
    p.add_argument("--skip-bad-rows", action="store_true", help="skip and count malformed rows")
    _add_compute(p, alias="bf16")


def _float_list(text: str) -> list[float]:
    try:
        return [float(t) for t in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected numbers separated by commas, got {text!r}") from None


def cmd_ensemble(args) -> int:
    from .ensemble import Ensemble, calibrate, save_ensemble, save_ensemble_file
    from .model_spec import build_ensemble

    ens = build_ensemble(args.runs, args.method)
    tta = None if args.tta == "none" else args.tta
    if args.temperatures is not None:
        ens = Ensemble(list(ens.members), ens.method, ens.sources, args.temperatures)
    if args.output_temperature <= 0:
        raise ConfigError(f"--output-temperature must be positive, got {args.output_temperature}")
    ens.temperature = args.output_temperature
    ens.tta = tta
    if args.calibrate_output and not args.calibrate:
        raise ConfigError("--calibrate-output needs --calibrate DATA (the faces to fit it on)")
    if args.calibrate:
        from .data import load_faces, select_split
        from .threads import configure_threads

        faces = select_split(load_faces(args.calibrate, skip_bad_rows=args.skip_bad_rows),
                             args.split or "test")
        if not faces.has_labels:
            raise DataError(f"{faces.source}: --calibrate needs labelled faces")
        configure_threads(args.threads, "batch")
        shown = "+".join(faces.split_names()) or "all"
        what = "the output temperature" if args.calibrate_output else \
            f"{len(ens.members)} temperatures"
        _progress_line("ensemble")(f"fitting {what} on "
                                   f"{len(faces):,} faces [{shown}]"
                                   + (f" with {tta} TTA" if tta else "") + " ...")
        fit = calibrate(ens, faces.images, faces.labels, tta=tta, precision=_precision(args),
                        progress=True, output=args.calibrate_output)
        for src, t, acc in zip(ens.sources, fit["temperatures"], fit["member_accuracy"],
                               strict=True):
            print(f"  {src}: {acc:.2%} alone, temperature {t:.3f}")
        if args.calibrate_output:
            print(f"  output temperature {fit['temperature']:.3f}")
        print(f"{args.method} of {len(ens.members)} on these faces: "
              f"{fit['accuracy_before']:.2%} at temperature 1, "
              f"{fit['accuracy_after']:.2%} calibrated")
    if args.out.endswith(".safetensors"):
        out = save_ensemble_file(ens, args.out, half=args.half)
    else:
        if args.half:
            raise ConfigError("--half needs a .safetensors --out (a one-file ensemble)")
        out = save_ensemble(ens, args.out)
    print(f"{ens.name} in {out}" + (f" (recommends {tta} TTA)" if tta else ""))
    return 0


# --------------------------------------------------------------------------------------------
# ferlab predict


def add_predict(sub) -> None:
    p = sub.add_parser(
        "predict", help="predict faces in a file or folder, or faces in photos",
        description="--input: a course test.csv gives a Kaggle submission (id,label); "
                    "fer2013.csv rows or an image folder give a CSV of class probabilities and "
                    "the predicted label per face. --image: photos of people (faces are found "
                    "first).")
    p.set_defaults(run=cmd_predict)
    p.add_argument("--model", default="bundled",
                   help="run folder, model file, ensemble folder, 'bundled' (default) or "
                        "'bundled-fast'")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--input", help="test.csv, fer2013.csv(.gz) or image folder of 48x48 faces")
    src.add_argument("--image", metavar="PHOTO|FOLDER", help="photo(s) with faces in them")
    p.add_argument("--out", help="CSV to write (required with --input)")
    p.add_argument("--json", help="with --image: also write the results as JSON")
    _add_detector(p)
    p.add_argument("--format", choices=["auto", "submission", "probs"], default="auto",
                   help="auto: submission for test.csv, probabilities otherwise")
    _add_tta(p)
    _add_runtime(p)
    p.add_argument("--batch-size", type=_positive_int, default=64)
    p.add_argument("--skip-bad-rows", action="store_true", help="skip and count malformed rows")
    _add_compute(p)


def cmd_predict(args) -> int:
    if args.image:
        from .faces.command import predict_photos

        return predict_photos(args.model, args.image, args.out, args.json,
                              tta=_tta(args, args.model),
                              detector=args.detector, min_face=args.min_face,
                              precision=_precision(args), threads=args.threads,
                              runtime=args.runtime)
    from .constants import EMOTIONS
    from .predict import predict_file
    from .threads import configure_threads

    configure_threads(args.threads, "batch")
    if not args.out:
        raise FerlabError("predict --input needs --out FILE.csv")
    res = predict_file(args.model, args.input, args.out, tta=_tta(args, args.model),
                       fmt=args.format,
                       batch_size=args.batch_size, skip_bad_rows=args.skip_bad_rows,
                       precision=_precision(args), runtime=args.runtime)
    counts = ", ".join(f"{e} {n:,}" for e, n in zip(EMOTIONS, res.counts, strict=True))
    kind = "Kaggle submission" if res.format == "submission" else "probabilities"
    print(f"{len(res.faces):,} faces -> {res.path} ({kind}); predicted: {counts}")
    return 0


# --------------------------------------------------------------------------------------------
# ferlab report


def add_report(sub) -> None:
    p = sub.add_parser(
        "report", help="one self-contained HTML analysis of one or more runs",
        description="Write one HTML page (images inlined, opens offline, prints) with the data, "
                    "the models, the training curves, results, mistakes, explanations, "
                    "ensembles and augmentation of the given run folders.")
    p.set_defaults(run=cmd_report)
    p.add_argument("runs", nargs="+", metavar="RUN",
                   help="run folders analysed in full (the first is explained; two or more "
                        "also form an ensemble)")
    p.add_argument("--compare", nargs="+", default=[], metavar="RUN",
                   help="run folders shown beside them, e.g. a dnn run")
    p.add_argument("--data", help="labelled faces (fer2013.csv(.gz), train.csv or image "
                                  "folder); without it no data/results/explanation sections")
    p.add_argument("--lang", choices=["en", "zh"], default="en", help="language of the page")
    p.add_argument("--out", default="report.html", help="HTML file to write")
    _add_compute(p, threads_help="torch threads (default 0: every core)")


def cmd_report(args) -> int:
    from .report import write_report
    from .threads import configure_threads

    configure_threads(args.threads, "batch")
    path = write_report(args.out, args.runs, compare=args.compare, data=args.data,
                        lang=args.lang, log=_progress_line("report"), precision=_precision(args))
    print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB)")
    return 0


# --------------------------------------------------------------------------------------------
# ferlab explain


def add_explain(sub) -> None:
    p = sub.add_parser(
        "explain", help="saliency, Grad-CAM, LIME, ... maps; filters; feature maps; checks",
        description="Explain a model's predictions: attribution maps for chosen faces (PNG grids "
                    "of face, heatmap and overlay, and the raw maps as .npy), filters by "
                    "gradient ascent, feature maps, the filter -> emotion table. --check scores "
                    "each map method by deletion/insertion, to compare methods on your model.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.set_defaults(run=cmd_explain)
    p.add_argument("--model", default="bundled",
                   help="run folder, model file, ensemble folder, 'bundled' or "
                        "'bundled-fast'")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--data", help="faces: fer2013.csv, train.csv, test.csv or image folder")
    src.add_argument("--image", nargs="+", metavar="PHOTO",
                     help="photo(s); the largest face in each is detected and cropped")
    p.add_argument("--method", default="gradcam",
                   help="comma-separated: saliency, smoothgrad, integrated-gradients, gradcam, "
                        "hirescam, guided-gradcam, occlusion, lime, all, filters, feature-maps, "
                        "filter-emotion")
    p.add_argument("--layer", help="layer name, or several joined by commas (see "
                                   "--list-layers); Grad-CAM fuses several layers' maps; default: "
                                   "for Grad-CAM the deepest conv layer of each grid size, fused; "
                                   "for filters the model's Grad-CAM layer; for feature-maps the "
                                   "first conv")
    p.add_argument("--select", default="random-correct",
                   help="random-correct | confident-correct | confident-wrong | random | "
                        "face indices like 12,40,7")
    p.add_argument("--per-class", type=_positive_int, default=1, help="faces per class")
    p.add_argument("--split", default="auto",
                   help="which faces of --data: auto (PublicTest if present, else all), all, "
                        "Training, PublicTest, PrivateTest")
    p.add_argument("--seed", type=int, default=0, help="random faces, LIME and SmoothGrad")
    p.add_argument("--out", help="output folder")
    p.add_argument("--list-layers", action="store_true", help="print the model's layers and exit")
    p.add_argument("--check", action="store_true",
                   help="score each map method by deletion/insertion (against a random map) and "
                        "by how much of its mass lands in the evidence box of small-box "
                        "synthetic faces (a reference model trained in seconds)")
    g = p.add_argument_group("filters (gradient ascent)")
    g.add_argument("--filters", type=_positive_int, default=16, help="first N filters")
    g.add_argument("--steps", type=_positive_int, default=128)
    g.add_argument("--lr", type=float, default=0.05)
    g.add_argument("--jitter", type=int, default=2, help="pixels (0 = off)")
    g.add_argument("--blur", type=_nonneg_float, default=0.5, help="sigma (0 = off)")
    g.add_argument("--l2", type=_nonneg_float, default=1e-3, help="L2 penalty weight")
    g = p.add_argument_group("LIME")
    g.add_argument("--lime-samples", type=_positive_int, default=256)
    g.add_argument("--lime-segments", type=_positive_int, default=60,
                   help="SLIC superpixels asked for (about 3/4 survive merging)")
    _add_compute(p, threads_help="torch threads (default 0: every core)")
    from .runtime.choice import RUNTIMES

    p.add_argument("--runtime", choices=RUNTIMES, default="auto",
                   help="who classifies LIME's perturbed faces (the other methods need "
                        "torch's gradients): torch, onnx (ONNX Runtime: the bundled model's "
                        "int8 graph, any other model exported at start) or auto (the faster "
                        "on this kind of CPU, as for ferlab predict)")


def cmd_explain(args) -> int:
    from .explain import list_layers
    from .explain.command import (
        EXTRA_METHODS,
        choose_faces,
        explain_to_folder,
        format_check,
        format_layers,
        parse_methods,
    )
    from .model_spec import load_model
    from .runtime.onnx_classifier import load_classifier
    from .threads import configure_threads

    configure_threads(args.threads, "batch")
    model = load_classifier(args.model) if not str(args.model).endswith(".onnx") \
        else load_model(args.model)  # load_model says why an ONNX graph cannot be explained
    if args.list_layers:
        print(format_layers(list_layers(model)))
        return 0
    if not args.out:
        raise FerlabError("explain needs --out DIR (or --list-layers)")
    methods = parse_methods(args.method)
    needs_faces = any(m not in ("filters",) for m in methods)
    sel, faces = (choose_faces(model, args.data, args.image or (), args.select, args.per_class,
                               args.split, args.seed)
                  if needs_faces or args.data or args.image else (None, None))
    if "filter-emotion" in methods and faces is None and args.data:
        from .data import load_faces

        faces = load_faces(args.data)
    extra = [m for m in methods if m in EXTRA_METHODS]
    summary = explain_to_folder(
        model, args.out, methods, sel, faces, args.layer, check=args.check,
        filter_options={"filters": args.filters, "steps": args.steps, "lr": args.lr,
                        "jitter": args.jitter, "blur": args.blur, "l2": args.l2,
                        "seed": args.seed},
        method_options={"lime": {"samples": args.lime_samples, "segments": args.lime_segments,
                                 "seed": args.seed,
                                 "precision": _precision(args),
                                 "classifier": _lime_classifier(model, args, methods)},
                        "smoothgrad": {"seed": args.seed}})
    if "check" in summary:
        print(format_check(summary["check"], summary.get("localisation")))
    print(f"wrote {args.out}" + (f" ({', '.join(extra)})" if extra else ""))
    return 0


def _lime_classifier(model, args, methods: list[str]):
    """What classifies LIME's perturbed faces: None (the torch model itself) or the ONNX
    Runtime graph that ``--runtime`` picks for batches (LIME sends its 256 faces at once)."""
    from .runtime.choice import resolve_runtime
    from .runtime.onnx_classifier import as_onnx

    if "lime" not in methods:
        return None
    runtime = resolve_runtime(args.runtime, args.lime_samples, model,
                              bf16=_precision(args) != "auto")
    return as_onnx(model) if runtime == "onnx" else None


# --------------------------------------------------------------------------------------------
# ferlab serve


def add_serve(sub) -> None:
    p = sub.add_parser(
        "serve", help="a local web page: drop a photo, see each face's emotion and why",
        description="Serve a web page (and its JSON API, documented at /openapi.json) where a "
                    "photo can be dropped, picked or taken with the webcam; it shows each "
                    "face's box, label and probabilities, and saliency, Grad-CAM and LIME maps "
                    "on demand. Everything is served by ferlab (works offline); nothing "
                    "uploaded is kept. Listens on 127.0.0.1 only unless --host says otherwise.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.set_defaults(run=cmd_serve)
    p.add_argument("--model", default="bundled",
                   help="run folder, model file, ensemble folder, 'bundled' or "
                        "'bundled-fast'")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on; 0.0.0.0 opens the page to the network")
    p.add_argument("--port", type=int, default=8000, help="port to listen on")
    _add_detector(p)
    g = p.add_argument_group("limits")
    g.add_argument("--max-upload-mb", type=float, default=12.0,
                   help="largest upload, megabytes")
    g.add_argument("--max-megapixels", type=float, default=25.0,
                   help="largest photo, millions of pixels (checked before decoding)")
    g.add_argument("--timeout", type=float, default=30.0, help="seconds per request")
    g.add_argument("--max-concurrent", type=_positive_int, default=4,
                   help="photo and explanation requests at once; more get 503")


def cmd_serve(args) -> int:
    # The web stack is imported here, not at the top: `ferlab --help` must stay fast.
    from .serve import ServeLimits, create_app, is_loopback, listen, serve

    limits = ServeLimits(max_upload_bytes=max(1, int(args.max_upload_mb * 1024 * 1024)),
                         max_pixels=max(1, int(args.max_megapixels * 1e6)),
                         timeout_s=args.timeout, max_concurrent=args.max_concurrent)
    sock = listen(args.host, args.port)
    try:
        app = create_app(args.model, limits, detector=args.detector, min_face=args.min_face)
        info = app.state.info
        host = f"[{args.host}]" if ":" in args.host else args.host
        print(f"ferlab serve: model {info['model']} ({info['architecture']}), precision "
              f"{info['precision']}, {info['limits']['workers']} workers; open "
              f"http://{host}:{args.port}/  (Ctrl-C stops)", flush=True)
        if not is_loopback(args.host):
            print(f"ferlab serve: warning: listening on {args.host}, so other machines can "
                  "reach this page and upload photos to it", file=sys.stderr, flush=True)
        serve(app, sock)
    except KeyboardInterrupt:  # Ctrl-C / SIGTERM is how a server is stopped: not an error
        print("ferlab serve: stopped")
    finally:
        sock.close()
    return 0


# --------------------------------------------------------------------------------------------
# ferlab export


def add_export(sub) -> None:
    p = sub.add_parser(
        "export", help="a model as an ONNX file for ONNX Runtime (float32 or int8)",
        description="Export a model to ONNX (class order and preprocessing in its metadata), "
                    "check the graph against PyTorch on real faces (the bundled astronaut, and "
                    "test faces of --data), then write it. --int8: static int8, calibrated on "
                    "Training faces of --data, written only if its PublicTest accuracy is within "
                    "--max-drop points of float32. The file is a --model for predict, evaluate "
                    "and video.")
    p.set_defaults(run=cmd_export)
    p.add_argument("--model", default="bundled",
                   help="run folder, model file, ensemble folder, 'bundled' (default) or "
                        "'bundled-fast'")
    p.add_argument("--format", choices=["onnx"], default="onnx", help="onnx (the only one)")
    p.add_argument("--out", required=True, metavar="FILE.onnx", help="the file to write")
    p.add_argument("--int8", action="store_true", help="quantise to int8 (needs --data)")
    p.add_argument("--data", help="labelled faces (fer2013.csv): real faces to check on; with "
                                  "--int8 its Training rows calibrate and PublicTest scores")
    p.add_argument("--calibration", type=_positive_int, default=512, metavar="N",
                   help="Training faces that calibrate int8 (default 512)")
    p.add_argument("--max-drop", type=_nonneg_float, default=0.3, metavar="POINTS",
                   help="most PublicTest accuracy points int8 may lose (default 0.3)")


def cmd_export(args) -> int:
    from .runtime.export import export_model

    r = export_model(args.model, args.out, int8=args.int8, data=args.data,
                     calibration_faces=args.calibration, max_drop=args.max_drop)
    if r.fp32_check is not None:
        print(f"float32 graph {r.fp32_check.line()}")
    print(f"{r.meta['precision']} graph {r.check.line()}")
    if r.accuracy:
        a = r.accuracy
        print(f"{a['split']} accuracy ({a['faces']:,} faces): float32 {a['float32']:.2%}, int8 "
              f"{a['int8']:.2%} ({100 * (a['int8'] - a['float32']):+.2f} points)")
    print(f"wrote {r.path} ({r.path.stat().st_size / 1e6:.1f} MB, {r.meta['precision']}, "
          f"opset {r.meta['opset']})")
    return 0


# Each subcommand: the function that adds its parser and the one that runs it, in --help order.
# The subcommands in --help order; each add_X sets the function that runs it (args.run).
COMMANDS = {
    "data": add_data, "models": add_models, "train": add_train, "demo": add_demo,
    "evaluate": add_evaluate, "curves": add_curves, "compare": add_compare,
    "ensemble": add_ensemble, "predict": add_predict, "report": add_report, "video": add_video,
    "explain": add_explain, "serve": add_serve, "export": add_export,
}


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = _Parser(prog="ferlab", description="Facial expression recognition on 48x48 faces: "
                     "learn, train, evaluate, explain, predict, report.")
    parser.add_argument("--version", action="version", version=f"ferlab {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for add_parser in COMMANDS.values():
        add_parser(sub)
    parser.subcommands = sub.choices  # name -> its parser, for errors found after parsing
    return parser


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    """The ``ferlab`` command. SIGTERM stops it the way Ctrl-C does: one line, status 130,
    and ``finally`` blocks run (so no temporary file is left behind)."""
    try:
        previous = signal.signal(signal.SIGTERM, _interrupt)
    except ValueError:  # not the main thread: leave signals alone
        previous = None
    try:
        return _main(argv)
    except KeyboardInterrupt:  # while starting up (imports, parsing), before a command runs
        print("ferlab: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _main(argv: list[str] | None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if getattr(args, "recipe", None):  # its values become the defaults: given flags still win
        from .recipes import cli_defaults

        parser.subcommands[args.command].set_defaults(**cli_defaults(args.recipe))
        args, extra = parser.parse_known_args(argv)
    if extra:  # reported by the subcommand's own parser, so the hint names its --help
        where = parser.subcommands.get(args.command, parser) if args.command else parser
        where.error(f"unrecognized arguments: {' '.join(extra)}")
    if not args.command:
        parser.print_help()
        return EXIT_USAGE
    try:
        return args.run(args) or 0
    except FerlabError as e:
        if args.debug:
            raise
        print(f"ferlab {args.command}: error: {_one_line(e)}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print(f"ferlab {args.command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except OSError as e:  # the machine's refusal (disk full, permission denied): the user can act
        if args.debug:
            raise
        where = f"{e.filename}: " if e.filename else ""
        print(f"ferlab {args.command}: error: {where}{e.strerror or _one_line(e)}",
              file=sys.stderr)
        return EXIT_USAGE
    except Exception as e:  # a bug in ferlab: still one line; --debug shows where
        if args.debug:
            raise
        print(f"ferlab {args.command}: internal error (please report it with the --debug "
              f"traceback): {type(e).__name__}: {_one_line(e)}", file=sys.stderr)
        return 1


def _progress_line(command: str):
    """A ``log`` callback printing ``ferlab COMMAND: what`` on stderr, flushed at once, so that
    a long command says what it is doing on a terminal, in a log file and in a pipe alike."""
    def log(message: str) -> None:
        print(f"ferlab {command}: {message}", file=sys.stderr, flush=True)

    return log


def _one_line(e: BaseException) -> str:
    return " ".join(str(e).split("\n")).strip()


if __name__ == "__main__":
    sys.exit(main())
