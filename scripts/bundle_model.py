"""Put a trained run inside the package as a shipped model (``--model bundled`` or
``--model bundled-fast``).

    python scripts/bundle_model.py runs/vgg48-e44 [--name bundled|bundled-fast]
    python scripts/bundle_model.py runs/ens.safetensors   # an ensemble (ferlab ensemble --out)

Writes ``src/ferlab/assets/NAME.safetensors`` from the run's ``model.safetensors``, stored as
float16 (half the bytes; loading puts the weights back into float32 parameters), and copies the
run's ``config.json``, ``history.csv``, ``metrics.json`` and log (``runs/RUN.log``, when there)
to ``docs/NAME/`` so the shipped weights keep their provenance. A run that started from
another model (``--init``) or learnt from a teacher (``--teacher``, a run or an ensemble of runs)
gets those runs' files too, and theirs in turn, in ``docs/NAME/<role>-<run>/``.

An ensemble (folder or one-file) ships as one file with its members, temperatures and
recommended TTA; each member's provenance goes to ``docs/NAME/member-<i>-<run>/`` (a member
that is the shipped model itself takes that model's provenance along). Check the result with
``ferlab evaluate --model NAME --data fer2013.csv.gz --split PublicTest``.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

from ferlab.assets import bundled_model_path
from ferlab.ensemble import Ensemble, save_ensemble_file
from ferlab.io_utils import read_json
from ferlab.model_file import save_model
from ferlab.model_spec import BUNDLED, BUNDLED_MODELS, is_bundled, load_model

DOCS_ROOT = Path(__file__).resolve().parents[1] / "docs"
DOCS = DOCS_ROOT / "bundled"


def copy_run_files(run: Path, dest: Path) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    # the log: runs/RUN.log beside a run, or train.log inside a snapshot folder
    for src in (run / "config.json", run / "history.csv", run / "metrics.json",
                run.with_suffix(".log"), run / "train.log"):
        if src.is_file():
            shutil.copy2(src, dest / ("train.log" if src.suffix == ".log" else src.name))


def source_runs(spec: Path) -> list[str]:
    """The run folders an ensemble folder was built from (its ``sources``), where they exist."""
    if not (spec / "ensemble.json").is_file():
        return []
    return [s for s in read_json(spec / "ensemble.json").get("sources", [])
            if (Path(s) / "config.json").is_file()]


def copy_ancestors(run: Path, copied: set[Path]) -> None:
    """The files of the runs ``run`` started from or learnt from, and of theirs in turn, each
    once, in ``docs/bundled/<role>-<run>/`` (role: how the first run naming it used it)."""
    train_cfg = read_json(run / "config.json")["config"]["train"]
    for role in ("init", "teacher"):
        spec = Path(train_cfg.get(role) or "")
        if (spec / "ensemble.json").is_file():
            shutil.copy2(spec / "ensemble.json", DOCS / f"{role}-{spec.name}.json")
        for src in ([spec] if (spec / "config.json").is_file() else
                    [Path(s) for s in source_runs(spec)]):
            if src.resolve() not in copied:  # a run both init and teacher member: once
                copied.add(src.resolve())
                copy_run_files(src, DOCS / f"{role}-{src.name}")
                copy_ancestors(src, copied)


def member_run(source: str) -> Path | None:
    """The run folder a member came from: the folder itself, or the folder of its model file."""
    p = Path(source)
    for run in (p, p.parent):
        if (run / "config.json").is_file():
            return run
    return None


def copy_member_provenance(ensemble: Ensemble, shipped_docs: Path | None) -> None:
    """Each member's run files (and their ancestors') in ``docs/NAME/member-<i>-<run>/``."""
    copied: set[Path] = set()
    for i, source in enumerate(ensemble.sources):
        if is_bundled(source) and shipped_docs is not None:
            shutil.copytree(shipped_docs, DOCS / f"member-{i}-{source}")
            continue
        run = member_run(source)
        if run is None:
            print(f"  member {i} ({source}): no run folder found, no provenance copied")
            continue
        copy_run_files(run, DOCS / f"member-{i}-{run.name}")
        copy_ancestors(run, copied)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path,
                    help="run folder of the model to ship, or an ensemble folder or file")
    ap.add_argument("--name", choices=BUNDLED_MODELS, default=BUNDLED,
                    help="which shipped model it becomes (default bundled)")
    args = ap.parse_args(argv)
    global DOCS
    DOCS = DOCS_ROOT / args.name
    model = load_model(args.run)
    with tempfile.TemporaryDirectory() as keep:
        shipped_docs = None
        if DOCS.exists():  # provenance of the model shipped before, kept if it is a member
            shipped_docs = Path(keep) / "shipped"
            shutil.copytree(DOCS, shipped_docs)
            shutil.rmtree(DOCS)
        if isinstance(model, Ensemble):
            path = save_ensemble_file(model, bundled_model_path(args.name), half=True)
            DOCS.mkdir(parents=True)
            copy_member_provenance(model, shipped_docs)
        else:
            info = {k: v for k, v in model.meta.items() if k in ("val_accuracy", "epoch", "run")}
            path = save_model(model, bundled_model_path(args.name), half=True, **info)
            copy_run_files(args.run, DOCS)
            copy_ancestors(args.run, {args.run.resolve()})
    print(f"{args.run} -> {path} ({path.stat().st_size / 1e6:.1f} MB)")
    print(f"provenance -> {DOCS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
