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
* small faces (``--sizes``): the 100 LFW faces pasted at sides from 7.5 % to 19 % of the longer
  side of a 640x480 canvas (48 to 120 px), to see which settings lose the smallest faces; and
  real heads with their context (astronaut, Grace Hopper, scikit-image's cameraman, each also
  mirrored, 4 places each: 24 per size) shrunk to face sides of 24 to 120 px on the same canvas.
  LFW's tight 25-px crops show no hair or chin, which BlazeFace needs and photos have.
* a face and a bystander (``--pairs``): two of those real heads on a 1280x720 canvas, one
  close (11-23 % of the longer side) and one smaller (4.5-9 %), to measure what BlazeFace's
  adaptive passes give up for their speed: a bystander much smaller than the closest face.

    python benchmarks/compare_detectors.py [--extra-site /path/to/site-packages] [--sizes]
                                           [--crops] [--pairs] [--only TEXT]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import cv2
import numpy as np

from ferlab.faces.detect import BlazeFaceDetector, FallbackDetector, HaarDetector, make_detector

SIDE = 100  # pasted LFW face side (25 px enlarged 4x)
PLACES = [(40, 40), (300, 50), (60, 300), (320, 320)]


SWEEP_SIDES = [48, 54, 60, 68, 76, 86, 96, 108, 120]  # pasted face sides on a 640x480 canvas


def canvases(patches: np.ndarray, seed: int = 0, side: int = SIDE, shape=(480, 480),
             places=PLACES) -> list[tuple[np.ndarray, list[tuple]]]:
    rng = np.random.default_rng(seed)
    h, w = shape
    out = []
    for i in range(0, len(patches), len(places)):
        c = backdrop(h, w, rng)
        boxes = []
        for p, (x, y) in zip(patches[i:i + len(places)], places, strict=False):
            c[y:y + side, x:x + side] = cv2.resize((p * 255).astype(np.uint8), (side, side),
                                                   interpolation=cv2.INTER_CUBIC)
            boxes.append((x, y, side, side))
        out.append((c, boxes))
    return out


def portraits() -> list[tuple[np.ndarray, tuple]]:
    """Grey photos of real people from installed packages, each with its face box (x, y, w, h):
    the astronaut, Grace Hopper and the cameraman."""
    import matplotlib
    import skimage.data as sd
    from PIL import Image

    hopper = np.asarray(Image.open(Path(matplotlib.get_data_path()) / "sample_data" /
                                   "grace_hopper.jpg").convert("L"))
    return [(cv2.cvtColor(sd.astronaut(), cv2.COLOR_RGB2GRAY), (176, 66, 95, 95)),
            (hopper, (150, 102, 230, 230)), (sd.camera(), (204, 125, 71, 71))]


def heads(side: int) -> list[np.ndarray]:
    """The 6 real heads (each portrait and its mirror image) with a face ``side`` px wide,
    centred in a square of 2.5 face sides of context."""
    out = []
    for g, (x, y, w, _) in portraits():
        for src, fx in ((g, x), (g[:, ::-1], g.shape[1] - x - w)):
            k = side / w
            r = cv2.resize(src, None, fx=k, fy=k, interpolation=cv2.INTER_AREA)
            cx, cy = (fx + w / 2) * k, (y + w / 2) * k
            half = int(1.25 * side)
            pad = cv2.copyMakeBorder(r, half, half, half, half, cv2.BORDER_REPLICATE)
            out.append(pad[int(cy):int(cy) + 2 * half, int(cx):int(cx) + 2 * half])
    return out


def backdrop(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    c = 90 + 60 * np.mgrid[0:h, 0:w][1] / w + rng.normal(0, 4, (h, w))
    return c.clip(0, 255).astype(np.uint8)


def paste_head(canvas: np.ndarray, head: np.ndarray, px: int, py: int, side: int) -> tuple:
    """Paste ``head`` (from :func:`heads`) at ``(px, py)``; its face box (x, y, w, h)."""
    canvas[py:py + len(head), px:px + len(head)] = head
    half = len(head) // 2
    return (px + half - side // 2, py + half - side // 2, side, side)


def real_heads(side: int, seed: int = 0) -> list[tuple[np.ndarray, tuple]]:
    """24 canvases 640x480, each with one real head whose face is ``side`` px wide."""
    rng = np.random.default_rng(seed)
    out = []
    for head in heads(side):
        for _ in range(4):
            c = backdrop(480, 640, rng)
            px, py = rng.integers(0, 640 - len(head)), rng.integers(0, 480 - len(head))
            out.append((c, paste_head(c, head, px, py, side)))
    return out


PAIR_CLOSE = [0.11, 0.14, 0.17, 0.2, 0.22]  # the close face, fraction of the longer side
PAIR_FAR = [0.045, 0.06, 0.075, 0.09]  # the bystander


def face_pairs(close: float, far: float, seed: int = 0) -> list[tuple[np.ndarray, tuple, tuple]]:
    """12 canvases 1280x720, each with a close head and a smaller one to its right (each of
    the 6 heads close, beside two of the others): ``(canvas, close box, far box)``."""
    rng = np.random.default_rng(seed)
    big, small = heads(round(close * 1280)), heads(round(far * 1280))
    out = []
    for i, head in enumerate(big):
        for j in (1, 3):
            c, other = backdrop(720, 1280, rng), small[(i + j) % len(small)]
            px = rng.integers(0, 1281 - len(head) - len(other))
            box = paste_head(c, head, px, rng.integers(0, 721 - len(head)), round(close * 1280))
            qx = rng.integers(px + len(head), 1281 - len(other))
            qy = rng.integers(0, 721 - len(other))
            out.append((c, box, paste_head(c, other, qx, qy, round(far * 1280))))
    return out


def pair_sweep(dets: dict) -> None:
    """Recall of the bystander beside a closer face, by both faces' sizes."""
    print("\na face and a bystander on a 1280x720 canvas: bystanders found (of 12), by the "
          "close face's and the bystander's side (% of 1280); close faces missed; median ms")
    cols = [(c, f) for c in PAIR_CLOSE for f in PAIR_FAR]
    print(f"{'close face':<30}" + "".join(f"{f'{100 * c:.0f}%':>5}" for c, _ in cols))
    print(f"{'bystander':<30}" + "".join(f"{f'{100 * f:.1f}':>5}" for _, f in cols)
          + f"{'missed':>8}{'ms':>6}")
    sets = {cf: face_pairs(*cf) for cf in cols}
    for name, det in dets.items():
        row, missed, times = [], 0, []
        for cf in cols:
            found = 0
            for canvas, close, far in sets[cf]:
                t = time.perf_counter()
                bs = boxes_of(det, canvas)
                times.append(time.perf_counter() - t)
                found += any(hit(b, far) for b in bs)
                missed += not any(hit(b, close) for b in bs)
            row.append(found)
        print(f"{name:<30}" + "".join(f"{v:>5}" for v in row) + f"{missed:>8}"
              f"{statistics.median(times) * 1e3:>6.1f}", flush=True)


def real_sweep(dets: dict) -> None:
    """Recall of real heads (with context) by face side, and boxes that are not the face."""
    sides = [24, 32, 40] + SWEEP_SIDES
    sets = {s: real_heads(s) for s in sides}
    print("\nreal heads: recall (of 24) by face side on a 640x480 canvas; extra = boxes that "
          "are not the face")
    print(f"{'detector':<34}" + "".join(f"{f'{s}px':>6}" for s in sides) + f"{'extra':>7}")
    for name, det in dets.items():
        row, extra = [], 0
        for s in sides:
            tp = 0
            for c, gt in sets[s]:
                bs = boxes_of(det, c)
                tp += any(hit(b, gt) for b in bs)
                extra += sum(not hit(b, gt) for b in bs)
            row.append(tp)
        print(f"{name:<34}" + "".join(f"{v:>6}" for v in row) + f"{extra:>7}", flush=True)


def blaze_framing() -> None:
    """BlazeFace's box against Haar's on the real heads both find (face sides 60-120 px): the
    numbers behind ``ferlab.faces.crop.BLAZE_SCALE`` / ``BLAZE_DY``, which map a
    BlazeFace box to the FER2013 framing that Haar's box was calibrated to."""
    from ferlab.faces.crop import CROP_SCALE, crop_box

    haar, blaze = HaarDetector(), BlazeFaceDetector()
    ratio, dx, dy = [], [], []
    for side in [60, 68, 76, 86, 96, 108, 120]:
        for c, gt in real_heads(side, seed=3):
            h = [b for b in haar(c) if hit((b.x, b.y, b.w, b.h), gt)]
            z = [b for b in blaze(c) if hit((b.x, b.y, b.w, b.h), gt)]
            if h and z:
                hx, hy, hs = crop_box(h[0])  # the FER2013 frame, from Haar's box
                zs = max(z[0].w, z[0].h)
                ratio.append(hs / zs)
                dx.append((hx + hs / 2 - z[0].x - z[0].w / 2) / zs)
                dy.append((hy + hs / 2 - z[0].y - z[0].h / 2) / zs)
    q = np.percentile(ratio, [25, 50, 75])
    print(f"\nBlazeFace vs Haar on {len(ratio)} real heads found by both: FER2013 frame side / "
          f"BlazeFace box side: median {q[1]:.3f} (quartiles {q[0]:.3f}-{q[2]:.3f}; Haar's is "
          f"{CROP_SCALE}); frame centre - box centre: ({np.median(dx):+.3f}, "
          f"{np.median(dy):+.3f}) box sides")


def size_sweep(dets: dict, lfw_faces: np.ndarray) -> None:
    """Recall of the 100 LFW faces pasted at each side in SWEEP_SIDES (640x480 canvases)."""
    places = [(60, 50), (420, 70), (90, 300), (400, 320)]
    sets = {s: canvases(lfw_faces, seed=2, side=s, shape=(480, 640), places=places)
            for s in SWEEP_SIDES}
    print("\nsmall faces: LFW recall (of 100) by face side on a 640x480 canvas "
          "(% of the longer side)")
    print(f"{'detector':<34}" + "".join(f"{f'{s}px':>7}" for s in SWEEP_SIDES) + f"{'ms':>7}")
    print(f"{'':<34}" + "".join(f"{f'{100 * s / 640:.1f}%':>7}" for s in SWEEP_SIDES))
    for name, det in dets.items():
        row, times = [], []
        for s in SWEEP_SIDES:
            tp = 0
            for c, gts in sets[s]:
                t = time.perf_counter()
                bs = boxes_of(det, c)
                times.append(time.perf_counter() - t)
                tp += sum(any(hit(b, g) for b in bs) for g in gts)
            row.append(tp)
        print(f"{name:<34}" + "".join(f"{v:>7}" for v in row)
              + f"{statistics.median(times) * 1e3:>7.1f}", flush=True)


def hit(det: tuple, gt: tuple) -> bool:
    x, y, w, h = det
    cx, cy = x + w / 2, y + h / 2
    return (gt[0] <= cx <= gt[0] + gt[2] and gt[1] <= cy <= gt[1] + gt[3]
            and 0.5 <= max(w, h) / gt[2] <= 2.0)


def tight_crops(lfw_faces: np.ndarray) -> list[tuple[str, np.ndarray]]:
    """Photos that are a face and little else, the case ``auto``'s Haar fallback is for: the 100
    LFW crops enlarged to 100 and 200 px, and the astronaut's, Grace Hopper's and the
    cameraman's faces (each also mirrored) cut 1.0-1.4x their side, at 48-300 px."""
    out = [(f"lfw {s}", cv2.resize((f * 255).astype(np.uint8), (s, s),
                                   interpolation=cv2.INTER_CUBIC))
           for s in (100, 200) for f in lfw_faces]
    for g, (x, y, w, _) in portraits():
        for src, fx in ((g, x), (g[:, ::-1], g.shape[1] - x - w)):
            for margin in (1.0, 1.2, 1.4):
                side = round(w * margin)
                pad = cv2.copyMakeBorder(src, side, side, side, side, cv2.BORDER_REPLICATE)
                x0, y0 = side + fx + w // 2 - side // 2, side + y + w // 2 - side // 2
                crop = pad[y0:y0 + side, x0:x0 + side]
                for px in (48, 96, 200, 300):
                    out.append((f"head x{margin}", cv2.resize(crop, (px, px),
                                                              interpolation=cv2.INTER_AREA)))
    return out


def crop_sweep(lfw_faces: np.ndarray) -> None:
    """Tight crops: who finds the face, and how large Haar's box is against the photo's shorter
    side, the figure behind ``ferlab.faces.detect.FALLBACK_MIN_FACE``."""
    from ferlab.faces.detect import FALLBACK_MIN_FACE

    crops = tight_crops(lfw_faces)
    blaze, haar = BlazeFaceDetector(), HaarDetector()
    found_b = found_h = 0
    ratios = []
    for _, g in crops:
        b, h = blaze(g), haar(g)
        found_b += bool(b)
        found_h += bool(h)
        if h and not b:  # what auto's fallback finds
            ratios.append(max(h[0].w, h[0].h) / min(g.shape))
    q = np.percentile(ratios, [0, 5, 25, 50]) if ratios else [np.nan] * 4
    lost = sum(r < FALLBACK_MIN_FACE for r in ratios)
    print(f"\ntight crops ({len(crops)}): BlazeFace finds {found_b}, Haar {found_h}; Haar alone "
          f"finds {len(ratios)}, its box a fraction of the shorter side: min {q[0]:.2f}, 5 % "
          f"{q[1]:.2f}, quartile {q[2]:.2f}, median {q[3]:.2f}; under FALLBACK_MIN_FACE "
          f"({FALLBACK_MIN_FACE}): {lost}")


def detectors(extra_site: str | None) -> dict:
    import skimage.data
    from skimage.feature import Cascade

    dets = {
        "auto (ferlab's default)": make_detector("auto"),
        "auto, full Haar fallback": FallbackDetector(BlazeFaceDetector(), HaarDetector()),
        "blazeface 0.5 (ferlab)": BlazeFaceDetector(),
        "blazeface, every pass": BlazeFaceDetector(adaptive=False),
        "blazeface 0.6 (MediaPipe's)": BlazeFaceDetector(score_threshold=0.6),
        "haar alt2 (ferlab)": HaarDetector(),
        "haar alt2, full size": HaarDetector(max_side=None),
        "haar default, step 1.2": HaarDetector(frontal="default", scale_factor=1.2),
        "haar alt2 + profile, 1.2": HaarDetector(profile=True, scale_factor=1.2),
    }
    # The size/step trade-off behind DETECT_SIDE, MIN_PX and SCALE_FACTOR.
    for side, min_px, step in [(320, 24, 1.15), (320, 24, 1.2), (320, 24, 1.25), (256, 24, 1.2),
                               (256, 24, 1.25), (267, 20, 1.1), (267, 20, 1.15), (267, 20, 1.2),
                               (240, 20, 1.15)]:
        dets[f"haar alt2, {side} px min {min_px} step {step}"] = HaarDetector(
            max_side=side, scale_factor=step, min_px=min_px)
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
    ap.add_argument("--sizes", action="store_true",
                    help="only the small-face sweep, for the Haar settings")
    ap.add_argument("--crops", action="store_true",
                    help="only the tight-crop measurement behind auto's Haar fallback")
    ap.add_argument("--pairs", action="store_true",
                    help="only a face beside a smaller one, for BlazeFace's adaptive passes")
    ap.add_argument("--only", metavar="TEXT",
                    help="only the detectors whose name contains TEXT (e.g. 'ferlab')")
    args = ap.parse_args(argv)
    import matplotlib
    import skimage.data as sd
    from PIL import Image

    if args.pairs:
        pair_sweep({k: d for k, d in detectors(None).items()
                    if isinstance(d, BlazeFaceDetector | FallbackDetector)
                    and (not args.only or args.only in k)})
        return 0
    lfw = sd.lfw_subset()
    if args.crops:
        crop_sweep(lfw[:100])
        return 0
    if args.sizes:
        dets = {k: d for k, d in detectors(None).items()
                if isinstance(d, HaarDetector | BlazeFaceDetector | FallbackDetector)
                and (not args.only or args.only in k)}
        blaze_framing()
        real_sweep(dets)
        size_sweep(dets, lfw[:100])
        return 0
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
        if args.only and args.only not in name:
            continue
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
