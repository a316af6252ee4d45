"""`ferlab video`: a synthetic video gives the right per-frame CSV, plot and annotated video.

The drawn faces are found by Haar (BlazeFace, trained on photos, misses some drawings), so these
tests name ``detector="haar"``; BlazeFace on real faces is tested in test_faces/test_blazeface.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from ferlab import cli
from ferlab.constants import EMOTIONS
from ferlab.errors import ConfigError, DataError
from ferlab.faces.detect import Box
from ferlab.faces.video import CSV_COLUMNS, analyze_video
from ferlab.faces.video import read_emotions_csv as read_csv
from ferlab.model_file import save_model
from ferlab.models import create_model
from ferlab.synthetic import make_faces

FPS = 10.0
SIDE = 144  # synthetic faces enlarged 3x
A, B = (40, 30), (300, 60)  # where faces are pasted


def _frame(faces: list[tuple[np.ndarray, tuple[int, int]]]) -> np.ndarray:
    f = np.full((240, 480), 60, np.uint8)
    for img, (x, y) in faces:
        f[y:y + SIDE, x:x + SIDE] = cv2.resize(img, (SIDE, SIDE), interpolation=cv2.INTER_NEAREST)
    return cv2.cvtColor(f, cv2.COLOR_GRAY2BGR)


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    """12 frames at 10 fps: frames 0-3 one face at A, 4-7 none, 8-11 faces at A and B."""
    faces = make_faces(2, seed=4).images
    path = tmp_path_factory.mktemp("video") / "clip.avi"
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), FPS, (480, 240))
    assert w.isOpened()
    for i in range(12):
        content = [] if 4 <= i < 8 else [(faces[0], A)] + ([(faces[1], B)] if i >= 8 else [])
        w.write(_frame(content))
    w.release()
    return path


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    import torch

    torch.manual_seed(0)
    return save_model(create_model("cnn-leaky"), tmp_path_factory.mktemp("m") / "m.safetensors")


def _expected_faces(frame: int) -> list[tuple[int, int]]:
    return [] if 4 <= frame < 8 else [A] + ([B] if frame >= 8 else [])


def _check_rows(rows: list[dict], frames: list[int]) -> None:
    assert sorted({int(r["frame"]) for r in rows}) == frames
    for fr in frames:
        mine = [r for r in rows if int(r["frame"]) == fr]
        assert float(mine[0]["time_s"]) == pytest.approx(fr / FPS, abs=1e-3)
        places = _expected_faces(fr)
        if not places:
            assert len(mine) == 1 and mine[0]["face"] == "" and mine[0]["label"] == ""
            continue
        assert len(mine) == len(places), (fr, mine)
        for r in mine:
            box = Box(int(r["x"]), int(r["y"]), int(r["w"]), int(r["h"]))
            assert max(box.iou(Box(x, y, SIDE, SIDE)) for x, y in places) > 0.8
            assert r["label"] in EMOTIONS
            probs = [float(r[e]) for e in EMOTIONS]
            assert sum(probs) == pytest.approx(1.0, abs=1e-3)
            assert r["label"] == EMOTIONS[int(np.argmax(probs))]


def test_every_frame(video, model_file, tmp_path):
    res = analyze_video(video, tmp_path, model=model_file, detector="haar", progress=False)
    assert (res.frames_read, res.frames_analyzed, res.frames_with_face) == (12, 12, 8)
    rows = read_csv(res.csv_path)
    assert list(rows[0]) == CSV_COLUMNS
    _check_rows(rows, list(range(12)))
    assert res.plot_path is not None and res.plot_path.stat().st_size > 5000
    assert res.video_path is None


def test_every_nth_frame_and_annotated_video(video, model_file, tmp_path):
    res = analyze_video(video, tmp_path, model=model_file, detector="haar", every=3,
                        annotated_video=True, progress=False)
    assert res.frames_analyzed == 4  # frames 0, 3, 6, 9
    _check_rows(read_csv(res.csv_path), [0, 3, 6, 9])
    cap = cv2.VideoCapture(str(res.video_path))
    n, first = 0, None
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        first = frame if first is None else first
        n += 1
    cap.release()
    assert n == 12 and first.shape == (240, 480, 3)
    # Frame 0 has a box drawn around the face: colour appears in a grey picture.
    assert np.abs(first.astype(int) - first.mean(axis=2, keepdims=True)).max() > 40
    assert not any(p.name.endswith(".tmp.mp4") for p in tmp_path.iterdir())


def test_max_frames_and_bad_input(video, model_file, tmp_path):
    res = analyze_video(video, tmp_path, model=model_file, detector="haar", max_frames=2,
                        progress=False)
    assert res.frames_read == 2
    with pytest.raises(ConfigError):
        analyze_video(video, tmp_path, model=model_file, detector="haar", every=0)
    with pytest.raises(DataError, match="no such video"):
        analyze_video(tmp_path / "missing.mp4", tmp_path, model=model_file)
    bad = tmp_path / "bad.mp4"
    bad.write_text("not a video")
    with pytest.raises(DataError, match="bad.mp4"):
        analyze_video(bad, tmp_path, model=model_file)


def test_cli_video(video, model_file, tmp_path, capsys):
    out = tmp_path / "out"
    rc = cli.main(["video", str(video), "--out", str(out), "--model", str(model_file),
                   "--every", "2", "--max-frames", "10", "--detector", "haar"])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "10 frames read, 5 analysed, 3 with a face" in printed
    assert (out / "emotions.csv").exists() and (out / "emotions.png").exists()
    # A camera that is not there is one line, status 2.
    rc = cli.main(["video", "--camera", "97", "--out", str(out), "--model", str(model_file)])
    err = capsys.readouterr().err
    assert rc == 2 and "camera 97" in err and "Traceback" not in err


def test_a_switch_of_the_largest_face_is_found():
    from ferlab.faces.video import face_switches

    boxes = {0: (10, 10, 60, 60), 1: (14, 12, 60, 60), 3: (400, 20, 70, 70), 4: (405, 22, 70, 70)}
    assert face_switches(boxes) == [3]  # frame 2 had no face; the face moves but stays one
