"""Speed of faces in photos: detect + crop + classify, per photo; the classifier alone.

Prints milliseconds per photo end to end (from the decoded photo, and from the JPEG file) on
public-domain photos that ship inside installed packages, and classifier images/second at batch
1 and 64 (the `fer` package's classifier on the same machine: ``bench_fer_package.py``). Optional:
``--framing DATA`` measures where the Haar box falls inside FER2013 faces (the crop margin);
``--agreement DATA`` how float32, bf16 autocast and the folded bf16 copy agree on PublicTest.

    python benchmarks/bench_faces.py [--model bundled] [--repeat 20] [--detector auto]
                                     [--blaze-sides 192,384] [--every-pass] [--fp32]
                                     [--step 1.1] [--framing fer2013.csv.gz]
                                     [--agreement fer2013.csv.gz]

Run on an idle machine: the figures are wall-clock times.
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ferlab.constants import DEFAULT_DETECTOR, DETECTORS
from ferlab.errors import FerlabError
from ferlab.faces.crop import crop_faces
from ferlab.faces.detect import (
    FALLBACK_MIN_FACE,
    SCALE_FACTOR,
    BlazeFaceDetector,
    FallbackDetector,
    HaarDetector,
    make_detector,
)
from ferlab.faces.photo import load_photo
from ferlab.faces.recognizer import Recognizer

TARGET_MS = 15.0


def photos() -> dict[str, np.ndarray]:
    """RGB photos: two portraits, a picture without a face, and a 1280x720 scene with two."""
    import matplotlib
    from skimage import data

    astro = data.astronaut()
    hopper = np.asarray(Image.open(Path(matplotlib.get_data_path()) / "sample_data" /
                                   "grace_hopper.jpg").convert("RGB"))
    scene = np.full((720, 1280, 3), (110, 120, 135), np.uint8)
    scene[100:612, 80:592] = astro
    scene[150:720, 700:1212] = hopper[:570]
    return {"astronaut 512x512": astro, "hopper 512x600": hopper,
            "coffee (no face) 600x400": data.coffee(), "scene 1280x720": scene}


def timed(fn, repeat: int) -> float:
    """Median milliseconds of ``fn()`` over ``repeat`` calls after one warm-up."""
    fn()
    ts = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return statistics.median(ts) * 1e3


def load_model_or_stand_in(spec: str) -> tuple[torch.nn.Module | str, str]:
    """``spec`` itself where it loads, so that the Recognizer loads it as users' do (and runs
    its fast copy), else an untrained stand-in module."""
    from ferlab.model_spec import load_model

    try:
        load_model(spec)
        return spec, spec
    except FerlabError as e:
        from ferlab.models import create_model

        print(f"note: {e}; timing an untrained vgg (width 32) instead, the same cost")
        return create_model("vgg", width=32).eval(), "vgg width 32 (untrained stand-in)"


def bench_photos(rec: Recognizer, repeat: int, profile_rec: Recognizer | None) -> None:
    print(f"{'photo':<26}{'faces':>6}{'detect ms':>11}{'crop ms':>9}{'classify':>10}"
          f"{'total ms':>10}{'from JPEG':>11}" + (f"{'+profile':>10}" if profile_rec else ""))
    totals = []
    for name, rgb in photos().items():
        photo = load_photo(rgb)
        boxes = rec.find_faces(photo)
        crops = crop_faces(photo.gray, boxes)
        det = timed(lambda p=photo: rec.find_faces(p), repeat)
        crop = timed(lambda p=photo, b=boxes: crop_faces(p.gray, b), repeat)
        cls = timed(lambda c=crops: rec.classify(c), repeat) if len(crops) else 0.0
        total = timed(lambda r=rgb: rec.detect_emotions(r), repeat)
        buf = io.BytesIO()
        Image.fromarray(rgb).save(buf, "JPEG", quality=90)
        jpeg = buf.getvalue()
        from_file = timed(lambda j=jpeg: rec.detect_emotions(j), repeat)
        prof = (f"{timed(lambda r=rgb: profile_rec.detect_emotions(r), repeat):>10.1f}"
                if profile_rec else "")
        totals.append(total)
        print(f"{name:<26}{len(boxes):>6}{det:>11.1f}{crop:>9.2f}{cls:>10.1f}{total:>10.1f}"
              f"{from_file:>11.1f}" + prof, flush=True)
    print(f"median end to end {statistics.median(totals):.1f} ms per photo (target <= "
          f"{TARGET_MS:.0f} ms)")


def bench_classifier(rec: Recognizer, repeat: int) -> None:
    """Images/second of the Recognizer's classifier, and of the same model passed in as a
    module, which it runs as it is, under autocast (what photos cost before ``inference_copy``)."""
    rng = np.random.default_rng(0)
    as_is = Recognizer(rec.model, bf16=rec.bf16, detector="haar", threads=rec.threads)
    how = f"as photos: {rec.runtime} {rec.computes_in}; as passed in: torch {as_is.computes_in}"
    print(f"\n{'classifier images/s':<26}{'as photos':>10}{'as passed in':>14}  ({how})")
    for batch in (1, 64):
        x = rng.integers(0, 256, (batch, 48, 48), dtype=np.uint8)
        ms = [timed(lambda x=x, r=r: r.classify(x), repeat) for r in (rec, as_is)]
        print(f"{f'batch {batch}':<26}{batch / ms[0] * 1e3:>10,.0f}{batch / ms[1] * 1e3:>14,.0f}",
              flush=True)
    print("(the fer package's classifier: python benchmarks/bench_fer_package.py, in its own venv)")


def bench_blazeface_net(repeat: int, onnx_path: str | None = None) -> None:
    """BlazeFace's network alone, per input size: PyTorch in float32 and bf16 weights
    (channels-last), and ONNX Runtime on the bundled ``.onnx`` file (what ferlab runs) or on
    ``onnx_path``."""
    from ferlab.faces.blazeface import BlazeFaceNet, load_blazeface
    from ferlab.precision import bf16_is_native

    # Emulated bf16 (no native bf16) takes seconds a pass: that column is left out there.
    dtypes = (torch.float32, torch.bfloat16) if bf16_is_native() else (torch.float32,)
    nets = {dtype: load_blazeface().to(dtype, memory_format=torch.channels_last)
            for dtype in dtypes}
    onnx = BlazeFaceNet(backend="onnx", onnx_path=onnx_path)
    bf16_head = f"{'torch bf16':>11}" if len(dtypes) == 2 else f"{'(bf16 emulated)':>16}"
    print(f"\n{'BlazeFace network':<26}{'torch fp32':>11}{bf16_head}{'ONNX fp32':>14}")
    rng = np.random.default_rng(0)
    for h, w in [(192, 192), (224, 384), (384, 384)]:
        grey = rng.integers(0, 256, (h, w), dtype=np.uint8)
        x = torch.from_numpy(grey).float().div(127.5).sub(1).expand(1, 3, h, w)
        x = x.contiguous(memory_format=torch.channels_last)
        xb = x.to(torch.bfloat16)
        with torch.inference_mode():
            fp32 = timed(lambda x=x: nets[torch.float32](x), repeat)
            bf16 = (f"{timed(lambda xb=xb: nets[torch.bfloat16](xb), repeat):>11.1f}"
                    if len(dtypes) == 2 else f"{'-':>16}")
            ort = timed(lambda g=grey: onnx.raw(g), repeat)
        print(f"{f'{w}x{h} input':<26}{fp32:>11.1f}{bf16}{ort:>14.1f}", flush=True)


def agreement(data: str, spec: str) -> None:
    """How the ways ferlab runs a classifier agree on PublicTest: float32, bf16 autocast (what
    ``ferlab evaluate --bf16`` does) and the folded bf16 copy that the Recognizer classifies
    photos with (:func:`ferlab.inference.inference_copy`)."""
    from ferlab.data import load_faces, select_split
    from ferlab.inference import inference_copy
    from ferlab.model_spec import load_model
    from ferlab.precision import autocast as autocast_bf16

    faces = select_split(load_faces(data), "PublicTest")
    x = torch.from_numpy(faces.images).unsqueeze(1).float().div_(255.0)
    labels = torch.from_numpy(np.asarray(faces.labels))
    model = load_model(spec).eval()
    fast = inference_copy(model, bf16=True)

    def probs(net, dtype, autocast=False):
        with torch.inference_mode(), autocast_bf16(autocast):
            return torch.cat([net(x[i:i + 256].to(dtype)).float().softmax(1)
                              for i in range(0, len(x), 256)])

    ref = probs(model, torch.float32)
    print(f"\n{spec} on PublicTest ({len(x)} faces){'accuracy':>12}{'same label':>12}"
          f"{'max |dp|':>10}")
    for name, p in [("float32", ref), ("bf16 autocast", probs(model, torch.float32, True)),
                    ("folded bf16 copy", probs(fast, torch.bfloat16))]:
        acc = (p.argmax(1) == labels).float().mean().item()
        same = (p.argmax(1) == ref.argmax(1)).float().mean().item()
        print(f"{name:<41}{acc:>12.2%}{same:>12.2%}{(p - ref).abs().max().item():>10.3f}")


def framing(data: str, n: int = 2000) -> None:
    """Where each detector's box falls inside FER2013 faces: side over the 48-pixel frame's side,
    and the frame's centre relative to the box centre (in box sides); ferlab.faces.crop.FRAMING."""
    import cv2

    from ferlab.data import load_faces
    from ferlab.faces.blazeface import BlazeFaceNet

    faces = load_faces(data)
    step = max(1, len(faces) // n)
    images = faces.images[::step][:n]
    cascade = cv2.CascadeClassifier(cv2.data.haarcascades + "haarcascade_frontalface_alt2.xml")
    blaze = BlazeFaceNet()
    finders = {
        "haar alt2": lambda big: cascade.detectMultiScale(big, 1.05, 3, minSize=(80, 80)),
        "blazeface": lambda big: [b[:4] for b in blaze(big)],
    }
    s, pad = 4, 48  # enlarge 4x and pad so the detector can frame the whole face
    for name, find in finders.items():
        rel, dx, dy = [], [], []
        for g in images:
            big = cv2.copyMakeBorder(cv2.resize(g, (48 * s, 48 * s),
                                                interpolation=cv2.INTER_CUBIC),
                                     pad, pad, pad, pad, cv2.BORDER_REPLICATE)
            found = find(big)
            if len(found) == 0:
                continue
            x, y, w, h = max(found, key=lambda b: b[2] * b[3])
            side = max(w, h)
            rel.append(side / (48 * s))
            dx.append((pad + 24 * s - (x + w / 2)) / side)  # frame centre - box centre
            dy.append((pad + 24 * s - (y + h / 2)) / side)
        q = np.percentile(rel, [25, 50, 75])
        print(f"\nFER2013 framing, {name} ({data}): a face in {len(rel)} of {len(images)}; box "
              f"side / frame side: median {q[1]:.3f} (quartiles {q[0]:.3f}-{q[2]:.3f}); frame "
              f"centre - box centre: ({np.median(dx):+.3f}, {np.median(dy):+.3f}) box sides -> "
              f"crop scale {1 / q[1]:.3f}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="bundled", help="model to time (default bundled)")
    ap.add_argument("--repeat", type=int, default=20, help="timed calls per figure")
    ap.add_argument("--profile", action="store_true", help="also time with the profile cascade")
    ap.add_argument("--framing", metavar="DATA", help="fer2013.csv(.gz): measure the crop margin")
    ap.add_argument("--threads", type=int, default=0,
                    help="torch threads (default 0: one, as ferlab runs photos)")
    ap.add_argument("--detector", choices=DETECTORS, default=DEFAULT_DETECTOR,
                    help=f"face detector (default {DEFAULT_DETECTOR}, ferlab's)")
    ap.add_argument("--step", type=float, default=SCALE_FACTOR,
                    help=f"Haar step between face sizes (default {SCALE_FACTOR}, ferlab's)")
    ap.add_argument("--blaze-sides", default="192,384",
                    help="BlazeFace passes, longer side of each (default 192,384, ferlab's)")
    ap.add_argument("--blaze-backend", choices=("onnx", "torch"), default="onnx",
                    help="who runs BlazeFace: ONNX Runtime (default, ferlab's) or PyTorch "
                         "(bf16 where the CPU has it, float32 with --fp32)")
    ap.add_argument("--blaze-onnx", metavar="PATH",
                    help="ONNX file for BlazeFace (default: the bundled one), e.g. an older "
                         "export: git show REV:src/ferlab/assets/blazeface_full_range.onnx")
    ap.add_argument("--every-pass", action="store_true",
                    help="run every BlazeFace pass on every photo (default: adaptive, ferlab's)")
    ap.add_argument("--min-face", type=float, metavar="FRACTION",
                    help="build the detector as `ferlab predict --min-face` does (0.1: one "
                         "BlazeFace pass, Haar at 240 px); overrides --blaze-sides and --step")
    ap.add_argument("--agreement", metavar="DATA",
                    help="also score the model on DATA's PublicTest rows in float32, under bf16 "
                         "autocast and as the folded bf16 copy that classifies photos")
    ap.add_argument("--fp32", action="store_true",
                    help="classify in float32 (default: bf16 where the CPU has it, as ferlab); "
                         "with --blaze-backend torch, detect in float32 too")
    ap.add_argument("--no-net", action="store_true",
                    help="skip the BlazeFace network table (the slowest part without native "
                         "bf16)")
    args = ap.parse_args(argv)
    from ferlab.machine import machine_header
    from ferlab.threads import configure_threads, threads_for

    print(machine_header())
    # Photos run on one torch thread by default, as `ferlab predict --image` does.
    configure_threads(args.threads, "small")
    model, label = load_model_or_stand_in(args.model)
    print(f"model: {label}; classifier on {threads_for('small', args.threads)} torch "
          f"thread(s); cpus {os.cpu_count()}")
    rec = Recognizer(model, detector=args.detector, bf16=False if args.fp32 else None,
                     threads=args.threads)
    sides = tuple(int(v) for v in args.blaze_sides.split(","))
    haar = HaarDetector(scale_factor=args.step)
    blaze = BlazeFaceDetector(sides=sides, adaptive=not args.every_pass, backend=args.blaze_backend,
                            bf16=False if args.fp32 else None, onnx_path=args.blaze_onnx)
    # auto's Haar looks only for faces that fill the photo, as ferlab's make_detector builds it.
    fallback = HaarDetector(scale_factor=args.step, min_size=FALLBACK_MIN_FACE)
    rec.detector = {"haar": haar, "blazeface": blaze, "auto": FallbackDetector(blaze, fallback)}[
        args.detector]
    passes = ("every pass" if args.every_pass
              else "a second pass sized for faces the first may have missed")
    if args.min_face is not None:
        rec.detector = make_detector(args.detector, min_face=args.min_face)
        parts = (rec.detector.detectors if isinstance(rec.detector, FallbackDetector)
                 else (rec.detector,))
        finder = next((d for d in parts if isinstance(d, BlazeFaceDetector)), None)
        sides = finder.sides if finder else ()
        if finder and not finder.adaptive:
            passes = "every pass"
        haar_px = next((d.max_side for d in parts if isinstance(d, HaarDetector)), None)
        passes += f"; --min-face {args.min_face}: Haar searches {haar_px} px"
    fallback_note = (f"; Haar only where BlazeFace finds nothing, for faces of "
                     f"{FALLBACK_MIN_FACE:.0%}+ of the shorter side" if args.detector == "auto"
                     and args.min_face is None else "")
    print(f"detector: {args.detector}; Haar alt2 step {args.step}; BlazeFace ({args.blaze_backend})"
          f" passes at {sides} px ({passes}){fallback_note}")
    print(f"classifier: {rec.runtime} {rec.computes_in} (ferlab.runtime.choice); "
          f"{rec.tta or 'no'} TTA (the model's own, as ferlab predict --image runs it)")
    profile_rec = Recognizer(model, profile=True) if args.profile else None
    # The network table first, on a fresh process: when it came last (and ONNX Runtime's threads
    # still spun), its passes timed up to 2.5x slower than the same passes in the photo table.
    if not args.no_net:
        bench_blazeface_net(max(args.repeat, 50), args.blaze_onnx)
    bench_photos(rec, args.repeat, profile_rec)
    bench_classifier(rec, max(args.repeat, 50))
    if args.framing:
        framing(args.framing)
    if args.agreement:
        agreement(args.agreement, args.model)
    return 0


if __name__ == "__main__":
    sys.exit(main())
