"""Put a trained run inside the package as the bundled model (``--model bundled``).

    python scripts/bundle_model.py runs/vgg48-e44

Writes ``src/ferlab/assets/bundled.safetensors`` from the run's ``model.safetensors``, stored as
float16 (half the bytes; loading puts the weights back into float32 parameters), and copies the
run's ``config.json``, ``history.csv`` and log (``runs/NAME.log``, when there) to
``docs/bundled/`` so the shipped weights keep their provenance. Check the result with
``ferlab evaluate --model bundled --data fer2013.csv.gz --split PublicTest``.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from ferlab.model_io import bundled_model_path, load_model, save_model

DOCS = Path(__file__).resolve().parents[1] / "docs" / "bundled"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path, help="run folder of the model to ship as 'bundled'")
    args = ap.parse_args(argv)
    model = load_model(args.run)
    info = {k: v for k, v in model.meta.items() if k in ("val_accuracy", "epoch", "run")}
    path = save_model(model, bundled_model_path(), half=True, **info)
    print(f"{args.run} -> {path} ({path.stat().st_size / 1e6:.1f} MB)")
    DOCS.mkdir(parents=True, exist_ok=True)
    for old in DOCS.iterdir():  # provenance of the model shipped before
        old.unlink()
    for src in (args.run / "config.json", args.run / "history.csv", args.run.with_suffix(".log")):
        if src.is_file():
            shutil.copy2(src, DOCS / ("train.log" if src.suffix == ".log" else src.name))
    print(f"provenance -> {DOCS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
