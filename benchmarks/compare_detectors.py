"""Which offline face detector ferlab uses, and why: recall, false faces and time, measured.

Candidates are detectors that ship inside a pip package and download nothing at run time:
OpenCV's Haar cascades (frontal default, frontal alt2, frontal + profile), the LBP frontal
cascade that scikit-image ships (run by ``skimage.feature.Cascade``), and dlib's HOG detector
(compiled into the ``dlib-bin`` wheel; not a ferlab dependency, so it is timed only where
importable: ``--extra-site DIR`` appends a site-packages folder that has it). Not candidates:
facenet-pytorch's MTCNN needs torchvision (no CPU build here); mediapipe 1.2.2 ships no face
model in its wheel (its FaceDetector task wants a downloaded .tflite) and replaces OpenCV 4 by 5.

Test sets, all from installed packages (nothing downloaded):

* LFW faces: the 100 faces of ``skimage.data.lfw_subset()`` (25x25 tight crops), enlarged 4x
  and pasted four to a 480x480 canvas at known places; a hit is a box whose centre lies in the
  pasted face and whose side is 0.5-2x the face's.
* real photos with one face: scikit-image's astronaut and matplotlib's Grace Hopper;
* pictures without a face: the 100 LFW non-face patches pasted the same way, and scikit-image's
  coffee, chelsea (a cat), rocket, coins, brick, grass.

    python benchmarks/compare_detectors.py [--extra-site /path/to/site-packages]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import cv2
import numpy as np

from ferlab.faces import FaceDetector

SIDE = 100  # pasted LFW face side (25 px enlarged 4x)
PLACES = [(40, 40), (300, 50), (60, 300), (320, 320)]


def canvases(patches: np.ndarray, seed: int = 0) -> list[tuple[np.ndarray, list[tuple]]]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(0, len(patches), len(PLACES)):
        yy, xx = np.mgrid[0:480, 0:480]
        c = (90 + 60 * xx / 480 + rng.normal(0, 4, (480, 480))).clip(0, 255).astype(np.uint8)
        boxes = []
        for p, (x, y) in zip(patches[i:i + len(PLACES)], PLACES, strict=False):
            c[y:y + SIDE, x:x + SIDE] = cv2.resize((p * 255).astype(np.uint8), (SIDE, SIDE),
                                                   interpolation=cv2.INTER_CUBIC)
            boxes.append((x, y, SIDE, SIDE))
        out.append((c, boxes))
    return out


def hit(det: tuple, gt: tuple) -> bool:
    x, y, w, h = det
    cx, cy = x + w / 2, y + h / 2
    return (gt[0] <= cx <= gt[0] + gt[2] and gt[1] <= cy <= gt[1] + gt[3]
            and 0.5 <= max(w, h) / gt[2] <= 2.0)


def detectors(extra_site: str | None) -> dict:
    import skimage.data
    from skimage.feature import Cascade

    dets = {
        "haar alt2 (ferlab)": FaceDetector(),
        "haar alt2, full size": FaceDetector(max_side=None),
        "haar default, step 1.2": FaceDetector(frontal="default", scale_factor=1.2),
        "haar alt2 + profile, 1.2": FaceDetector(profile=True, scale_factor=1.2),
    }
    # The size/step trade-off behind DETECT_SIDE and SCALE_FACTOR.
    for side, step in [(320, 1.15), (320, 1.2), (320, 1.25), (256, 1.2), (256, 1.25)]:
        dets[f"haar alt2, {side} px step {step}"] = FaceDetector(max_side=side, scale_factor=step)
    lbp = Cascade(str(Path(skimage.data.__file__).parent / "lbpcascade_frontalface_opencv.xml"))
    dets["skimage LBP cascade"] = lambda g: [
        (d["c"], d["r"], d["width"], d["height"]) for d in lbp.detect_multi_scale(
            g, scale_factor=1.2, step_ratio=1, min_size=(24, 24), max_size=(400, 400))]
    if extra_site:
        sys.path.append(extra_site)  # appended: ferlab's own OpenCV stays first
    try:
        import dlib

        hog = dlib.get_frontal_face_detector()
        dets["dlib HOG (dlib-bin)"] = lambda g: [(r.left(), r.top(), r.width(), r.height())
                                                 for r in hog(g, 1)]
    except ImportError:
        print("dlib not importable: skipped (pass --extra-site with a dlib-bin install)")
    return dets


def boxes_of(det, g) -> list[tuple]:
    found = det(g)
    return [(b.x, b.y, b.w, b.h) if hasattr(b, "kind") else tuple(int(v) for v in b)
            for b in found]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--extra-site", help="a site-packages folder to append (for dlib)")
    args = ap.parse_args(argv)
    import matplotlib
    import skimage.data as sd
    from PIL import Image

    lfw = sd.lfw_subset()
    faces, nonfaces = canvases(lfw[:100]), canvases(lfw[100:], seed=1)
    hopper = np.asarray(Image.open(Path(matplotlib.get_data_path()) / "sample_data" /
                                   "grace_hopper.jpg").convert("L"))
    real = [(cv2.cvtColor(sd.astronaut(), cv2.COLOR_RGB2GRAY), (176, 66, 95, 95)),
            (hopper, (150, 102, 230, 230))]
    negatives = [cv2.cvtColor(f(), cv2.COLOR_RGB2GRAY) if f().ndim == 3 else f()
                 for f in (sd.coffee, sd.chelsea, sd.rocket, sd.coins, sd.brick, sd.grass)]
    print(f"{'detector':<26}{'LFW recall':>11}{'LFW false':>10}{'real':>6}{'false on':>9}"
          f"{'ms/canvas':>10}")
    print(f"{'':<26}{'(of 100)':>11}{'faces':>10}{'(of 2)':>6}{'non-face':>9}{'480x480':>10}")
    for name, det in detectors(args.extra_site).items():
        found = tp = fp = 0
        times = []
        for c, gts in faces:
            t = time.perf_counter()
            bs = boxes_of(det, c)
            times.append(time.perf_counter() - t)
            matched = [any(hit(b, g) for b in bs) for g in gts]
            tp += sum(matched)
            fp += sum(not any(hit(b, g) for g in gts) for b in bs)
        for g, gt in real:
            found += any(hit(b, gt) for b in boxes_of(det, g))
        neg = sum(len(boxes_of(det, c)) for c, _ in nonfaces)
        neg += sum(len(boxes_of(det, g)) for g in negatives)
        print(f"{name:<26}{tp:>11}{fp:>10}{found:>6}{neg:>9}"
              f"{statistics.median(times) * 1e3:>10.1f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
