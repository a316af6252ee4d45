"""Emotions over time in a video file or a camera: a CSV per frame, a plot, an annotated video.

Frames come from OpenCV (BGR), go through the same detector, crop and model as photos
(:class:`~ferlab.faces.recognizer.Recognizer`), and every ``every``-th frame is analysed. The CSV
has one row per face per analysed frame, and one row with an empty face for a frame with no face,
so every analysed frame is in it:

``frame,time_s,face,x,y,w,h,label,angry,disgust,fear,happy,sad,surprise,neutral``

Example:
    >>> result = analyze_video("clip.mp4", "out/", every=5)   # doctest: +SKIP
    >>> result.csv_path, result.frames_analyzed                # doctest: +SKIP
"""

from __future__ import annotations

import csv
import io
import math
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ..constants import EMOTIONS
from ..errors import ConfigError, DataError
from ..io_utils import write_text
from ..progress import progress_bar
from .draw import COLORS, annotate
from .photo import load_photo
from .recognizer import RecognizedFace, Recognizer

CSV_COLUMNS = ["frame", "time_s", "face", "x", "y", "w", "h", "label", *EMOTIONS]
CSV_NAME = "emotions.csv"
PLOT_NAME = "emotions.png"
VIDEO_NAME = "annotated.mp4"


@dataclass
class VideoResult:
    """What :func:`analyze_video` wrote and saw."""

    out_dir: Path
    csv_path: Path
    plot_path: Path | None
    video_path: Path | None
    frames_read: int
    frames_analyzed: int
    frames_with_face: int
    fps: float


def _open(source: str | int) -> tuple[cv2.VideoCapture, str]:
    if isinstance(source, int):
        cap = cv2.VideoCapture(source)
        if not cap.isOpened():
            raise DataError(f"camera {source}: cannot be opened (no camera with that number, or "
                            "it is in use)")
        return cap, f"camera {source}"
    p = Path(source)
    if not p.exists():
        raise DataError(f"{p}: no such video file")
    if p.is_dir():
        raise DataError(f"{p}: is a folder, expected a video file")
    cap = cv2.VideoCapture(str(p))
    if not cap.isOpened():
        raise DataError(f"{p}: OpenCV cannot read it as a video")
    return cap, str(p)


def _rows(frame: int, t: float, faces: list[RecognizedFace]) -> list[list]:
    if not faces:
        return [[frame, f"{t:.3f}", "", "", "", "", "", "", *[""] * len(EMOTIONS)]]
    return [[frame, f"{t:.3f}", i, f.box.x, f.box.y, f.box.w, f.box.h, f.label,
             *[f"{f.probabilities[e]:.4f}" for e in EMOTIONS]] for i, f in enumerate(faces)]


def analyze_video(source: str | Path | int, out_dir: str | Path, *,
                  model: str | Path | Recognizer = "bundled", every: int = 1,
                  annotated_video: bool = False, max_frames: int | None = None,
                  tta: bool = False, detector: str | None = None,
                  min_face: float | None = None, progress: bool = True,
                  precision: str = "auto", threads: int = 0,
                  runtime: str | None = "auto") -> VideoResult:
    """Emotions of the faces in every ``every``-th frame of a video file or a camera.

    Args:
        source: a video file, or a camera number (an ``int``).
        out_dir: folder for ``emotions.csv``, ``emotions.png`` and ``annotated.mp4``.
        model: anything :class:`~ferlab.faces.recognizer.Recognizer` takes, or a Recognizer.
        every: analyse one frame in ``every`` (1 = all).
        annotated_video: also write the video with boxes, labels and bars drawn on (frames in
            between analysed ones carry the last analysed faces).
        max_frames: stop after reading this many frames (a camera runs until Ctrl-C otherwise).
        tta: mirror test-time augmentation.
        detector, min_face: which faces are looked for (see
            :class:`~ferlab.faces.recognizer.Recognizer`); ``min_face=0.1`` keeps detection to one
            BlazeFace pass per frame (faces under 10 % of the frame are missed; a webcam's
            user is larger).
        progress: show a progress bar (hidden when not on a terminal).
        precision, threads, runtime: the classifier's: ``auto``/``fp32``/``bf16``, torch
            threads, and who classifies (``torch``, ``onnx`` or ``auto``); see
            :class:`~ferlab.faces.recognizer.Recognizer`.

    Raises:
        DataError: the video or camera cannot be opened.

    Example:
        >>> analyze_video(0, "cam/", max_frames=300)   # doctest: +SKIP
    """
    if every < 1:
        raise ConfigError(f"every must be at least 1, got {every}")
    if max_frames is not None and max_frames < 1:
        raise ConfigError(f"max_frames must be at least 1, got {max_frames}")
    source = int(source) if isinstance(source, int) else str(source)
    cap, label = _open(source)
    rec = (model if isinstance(model, Recognizer)
           else Recognizer(model, tta=tta, detector=detector, min_face=min_face,
                           precision=precision, threads=threads, runtime=runtime))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    is_camera = isinstance(source, int)
    fps = cap.get(cv2.CAP_PROP_FPS) or 0.0
    if not fps > 0 or fps > 1000:
        fps = 0.0  # unknown (many cameras): times come from the clock instead
    total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) if not is_camera else 0
    if max_frames:
        total = min(total, max_frames) if total > 0 else max_frames
    rows: list[list] = []
    writer = None
    video_path = out / VIDEO_NAME if annotated_video else None
    tmp_video = out / f".{VIDEO_NAME}.tmp.mp4"
    n_read = n_done = n_face = 0
    faces: list[RecognizedFace] = []
    start = time.perf_counter()
    bar = progress_bar(total=total or None, desc=f"video {Path(label).name}", unit="frame",
                       disable=None if progress else True, dynamic_ncols=True, leave=False)
    try:
        while max_frames is None or n_read < max_frames:
            ok, frame = cap.read()
            if not ok or frame is None:
                break
            idx = n_read
            n_read += 1
            t = idx / fps if fps else time.perf_counter() - start
            photo = None
            if idx % every == 0:
                photo = load_photo(frame, f"{label} frame {idx}", channels="bgr")  # OpenCV's
                _, faces = rec.analyze(photo)
                rows += _rows(idx, t, faces)
                n_done += 1
                n_face += bool(faces)
            if annotated_video:
                if writer is None:
                    h, w = frame.shape[:2]
                    writer = cv2.VideoWriter(str(tmp_video), cv2.VideoWriter_fourcc(*"mp4v"),
                                             fps or 25.0, (w, h))
                    if not writer.isOpened():
                        raise DataError(f"{video_path}: OpenCV cannot write an mp4 video here")
                rgb = photo.rgb if photo is not None else load_photo(frame, channels="bgr").rgb
                drawn = np.asarray(annotate(rgb, faces))
                writer.write(cv2.cvtColor(drawn, cv2.COLOR_RGB2BGR))
            bar.update(1)
    except KeyboardInterrupt:
        if not is_camera:
            raise
        # Ctrl-C is how a camera session ends: keep what was recorded.
    finally:
        bar.close()
        cap.release()
        if writer is not None:
            writer.release()
    if n_read == 0:
        tmp_video.unlink(missing_ok=True)
        raise DataError(f"{label}: no frame could be read")
    csv_path = write_emotions_csv(out / CSV_NAME, rows)
    if writer is not None and video_path is not None:
        tmp_video.replace(video_path)  # the rename makes the finished file appear at once
    plot_path = plot_emotions(rows, out / PLOT_NAME, title=Path(label).name) if n_done else None
    return VideoResult(out_dir=out, csv_path=csv_path, plot_path=plot_path,
                       video_path=video_path if writer is not None else None, frames_read=n_read,
                       frames_analyzed=n_done, frames_with_face=n_face,
                       fps=fps or (n_read / max(1e-9, time.perf_counter() - start)))


def write_emotions_csv(path: str | Path, rows: list[list]) -> Path:
    """Write ``emotions.csv``: the header :data:`CSV_COLUMNS`, then ``rows`` (atomically)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(CSV_COLUMNS)
    w.writerows(rows)
    return write_text(path, buf.getvalue())


def read_emotions_csv(path: str | Path) -> list[dict]:
    """The rows of an ``emotions.csv`` as dicts (strings, as written)."""
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def plot_emotions(rows: list[list], path: str | Path, title: str = "") -> Path:
    """Probability of each emotion over time for the largest face (face 0) of each frame.

    Frames without a face are gaps in the lines, not zeros, so a face that leaves the picture
    does not look like a drop in every emotion. Where the largest face jumps to another place
    (another person became the largest), a dotted vertical line marks the switch.
    """
    # Deferred: matplotlib loads only when a plot is drawn, not with the video module.
    from matplotlib import patheffects

    from ..plots import plt, save_figure  # matplotlib, only for the plot

    frames: dict[int, tuple[float, list[float] | None]] = {}
    boxes: dict[int, tuple[int, int, int, int]] = {}
    for r in rows:
        if r[2] == "" and r[0] not in frames:
            frames[r[0]] = (float(r[1]), None)
        elif r[2] == 0:
            frames[r[0]] = (float(r[1]), [float(v) for v in r[8:]])
            boxes[r[0]] = tuple(int(v) for v in r[3:7])
    order = sorted(frames)
    t = np.array([frames[i][0] for i in order])
    p = np.array([frames[i][1] if frames[i][1] is not None else [np.nan] * len(EMOTIONS)
                  for i in order], dtype=float).reshape(len(order), len(EMOTIONS))
    fig, ax = plt.subplots(figsize=(9, 3.6))
    for k, e in enumerate(EMOTIONS):
        c = np.array(COLORS[e]) / 255.0
        # happy's yellow (the colour of its box in the video) is faint on white: outline it.
        outline = ([patheffects.withStroke(linewidth=3.2, foreground="0.25")] if e == "happy"
                   else None)
        ax.plot(t, p[:, k], label=e, color=c if e != "neutral" else (0.35, 0.35, 0.35), lw=1.6,
                marker="." if len(t) < 60 else None, path_effects=outline)
    switches = face_switches(boxes)
    for i in switches:
        ax.axvline(frames[i][0], color="0.2", ls=":", lw=1.2, zorder=0)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("probability (largest face)")
    ax.set_ylim(0, 1)
    if len(t) > 1:
        ax.set_xlim(t.min(), t.max())
    ax.grid(alpha=0.3)
    ax.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False)
    missing = int(np.isnan(p[:, 0]).sum())
    ax.set_title((f"{title}: " if title else "") + f"{len(order)} frames analysed"
                 + (f", {missing} without a face (gaps)" if missing else "")
                 + (f"; dotted: the largest face switched to another person ({len(switches)}x)"
                    if switches else ""), fontsize=10)
    return save_figure(fig, path)


def face_switches(boxes: dict[int, tuple[int, int, int, int]]) -> list[int]:
    """Frames where the largest face is not the one of the previous frame with a face: its
    centre moved by more than that face's own size (``boxes``: frame -> x, y, w, h).

    Example:
        >>> face_switches({0: (0, 0, 50, 50), 1: (5, 0, 50, 50), 2: (300, 0, 40, 40)})
        [2]
    """
    out, prev = [], None
    for i in sorted(boxes):
        x, y, w, h = boxes[i]
        if prev is not None:
            px, py, pw, ph = prev
            moved = math.hypot(x + w / 2 - px - pw / 2, y + h / 2 - py - ph / 2)
            if moved > max(pw, ph):
                out.append(i)
        prev = boxes[i]
    return out
