"""BlazeFace: bundled weights, the MediaPipe reference outputs, boxes in the photo's pixels."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import skimage.data
import torch
from safetensors import safe_open

from ferlab.errors import ConfigError, DataError, ModelError
from ferlab.faces.blazeface import BlazeFaceFullRange, anchor_centres, asset_path, weighted_nms
from ferlab.faces.blazeface import BlazeFaceNet as BlazeFaceDetector

ASTRONAUT_FACE = (176, 66, 95, 95)  # x, y, w, h, marked by hand


def iou(a, b) -> float:
    ix = max(0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / (a[2] * a[3] + b[2] * b[3] - inter)


@pytest.fixture(scope="module")
def detect() -> BlazeFaceDetector:
    return BlazeFaceDetector()


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    return cv2.cvtColor(skimage.data.astronaut(), cv2.COLOR_RGB2GRAY)


def test_asset_loads_with_expected_parameters():
    with safe_open(str(asset_path()), "pt") as f:
        meta = f.metadata()
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    assert "Apache-2.0" in meta["license"]
    assert {str(t.dtype) for t in tensors.values()} == {"torch.float16"}
    assert sum(t.numel() for t in tensors.values()) == 514_069
    net = BlazeFaceFullRange()
    assert set(tensors) == set(net.state_dict())
    assert sum(p.numel() for p in net.parameters()) == 514_069


def test_raw_outputs_match_mediapipe(astronaut):
    # The best anchor on the letterboxed astronaut, as LiteRT runs the .tflite file
    # (scripts/convert_blazeface.py --verify prints the full comparison: max diff ~1e-4).
    detect = BlazeFaceDetector(backend="torch", bf16=False)  # float32, as MediaPipe runs it
    regressors, logits = detect.raw(detect.letterbox(astronaut)[0])
    assert regressors.shape == (2304, 16) and logits.shape == (2304,)
    assert int(logits.argmax()) == 549
    assert logits[549] == pytest.approx(2.16288, abs=1e-3)
    np.testing.assert_allclose(regressors[549, :4], [-1.4121, -0.7978, 38.2332, 38.2316],
                               atol=1e-3)


def test_finds_the_astronaut(detect, astronaut):
    faces = detect(astronaut)
    assert len(faces) == 1
    x, y, w, h, score = faces[0]
    assert iou((x, y, w, h), ASTRONAUT_FACE) > 0.5
    assert 0.8 < score <= 1.0  # 0.897


def test_keypoints_lie_in_the_face(detect, astronaut):
    face = detect.detect(astronaut)[0]
    eyes, mouth = face.keypoints[:2], face.keypoints[3]
    assert face.keypoints.shape == (6, 2)
    assert ((eyes[:, 0] > face.x) & (eyes[:, 0] < face.x + face.w)).all()
    assert (eyes[:, 1] < mouth[1]).all()  # eyes above the mouth in an upright face


@pytest.mark.parametrize("shape, at", [((720, 1280), (600, 100)), ((1280, 720), (100, 600))])
def test_boxes_map_back_through_the_letterbox(detect, astronaut, shape, at):
    canvas = np.full(shape, 110, np.uint8)
    x0, y0 = at
    canvas[y0:y0 + 512, x0:x0 + 512] = astronaut
    faces = detect(canvas)
    assert len(faces) == 1
    expected = (ASTRONAUT_FACE[0] + x0, ASTRONAUT_FACE[1] + y0, *ASTRONAUT_FACE[2:])
    assert iou(faces[0][:4], expected) > 0.5


def test_second_pass_finds_small_faces(astronaut):
    # The astronaut shrunk to a 40-px face (6 % of the longer side) on a 640x480 picture: under
    # the 192 pass's reach (about 10 %), within the 384 pass's.
    canvas = np.full((480, 640), 100, np.uint8)
    small = cv2.resize(astronaut, (216, 216), interpolation=cv2.INTER_AREA)  # 512 -> 216
    canvas[200:416, 300:516] = small
    k = 216 / 512
    expected = tuple(round(v * k) for v in ASTRONAUT_FACE)
    expected = (expected[0] + 300, expected[1] + 200, *expected[2:])
    assert BlazeFaceDetector(sides=(192,))(canvas) == []
    faces = BlazeFaceDetector()(canvas)
    assert len(faces) == 1 and iou(faces[0][:4], expected) > 0.5


def test_larger_pass_pads_to_multiples_of_32(detect, astronaut):
    canvas, scale, left, top = detect.letterbox(astronaut[:300], side=384)  # 512x300 photo
    assert canvas.shape == (256, 384) and scale == 0.75 and (left, top) == (0, 15)


def test_no_face_on_flat_grey_or_coffee(detect):
    assert detect(np.full((480, 640), 128, np.uint8)) == []
    assert detect(cv2.cvtColor(skimage.data.coffee(), cv2.COLOR_RGB2GRAY)) == []


@pytest.mark.parametrize("bad", [np.zeros((64, 64), np.float32), np.zeros((64, 64, 3), np.uint8),
                                 np.zeros((0, 64), np.uint8), [[0, 1], [2, 3]]])
def test_bad_input_raises_data_error(detect, bad):
    with pytest.raises(DataError):
        detect(bad)


def test_bad_settings_raise_config_error():
    with pytest.raises(ConfigError):
        BlazeFaceDetector(score_threshold=1.5)
    with pytest.raises(ConfigError):
        BlazeFaceDetector(nms_iou=0.0)
    with pytest.raises(ConfigError):
        BlazeFaceDetector(sides=(200,))


def test_weighted_nms_merges_overlapping_boxes_by_score():
    boxes = np.array([[0, 0, 10, 10, 5], [4, 0, 14, 10, 9], [50, 50, 60, 60, 0]], np.float32)
    out = weighted_nms(boxes, np.array([0.6, 0.9, 0.8]), iou=0.3)
    # Boxes 0 and 1 overlap by IoU 60/140 = 0.43: merged, weights 0.6 and 0.9, best score kept.
    assert [s for _, s in out] == [0.9, 0.8]
    np.testing.assert_allclose(out[0][0], [2.4, 0, 12.4, 10, 7.4], rtol=1e-6)
    np.testing.assert_allclose(out[1][0], boxes[2])


def test_anchors_are_cell_centres():
    a = anchor_centres()
    assert a.shape == (2304, 2)
    np.testing.assert_allclose(a[0], [2, 2])
    np.testing.assert_allclose(a[1], [6, 2])  # row-major: x varies fastest
    np.testing.assert_allclose(a[-1], [190, 190])


@pytest.mark.parametrize("fast", [dict(backend="torch", bf16=True), dict(backend="onnx")],
                         ids=["torch bf16", "onnx"])
def test_faster_runtimes_stay_close_to_float32_pytorch(astronaut, fast):
    exact, fast = BlazeFaceDetector(backend="torch", bf16=False), BlazeFaceDetector(**fast)
    canvas = exact.letterbox(astronaut)[0]
    (r32, l32), (r16, l16) = exact.raw(canvas), fast.raw(canvas)
    assert int(l16.argmax()) == int(l32.argmax())
    assert abs(l16[549] - l32[549]) < 0.1
    np.testing.assert_allclose(r16[549, :4], r32[549, :4], atol=1.0)  # pixels of a 192 input
    assert iou(fast(astronaut)[0][:4], exact(astronaut)[0][:4]) > 0.95


def pass_sides(detect: BlazeFaceDetector, gray: np.ndarray) -> list[int]:
    """The longer side of each pass ``detect`` makes on ``gray``."""
    calls = []
    run_pass = detect._candidates
    detect._candidates = lambda g, side: calls.append(side) or run_pass(g, side)
    try:
        detect(gray)
    finally:
        del detect._candidates
    return calls


def test_adaptive_passes_look_only_for_what_the_first_may_miss(astronaut):
    adaptive, every = BlazeFaceDetector(), BlazeFaceDetector(adaptive=False)
    assert pass_sides(every, astronaut) == [192, 384]
    # The face cut out large (60 % of the picture): one pass, same box as with both passes.
    x, y, w, h = ASTRONAUT_FACE
    close = np.ascontiguousarray(astronaut[y - 40:y + h + 40, x - 40:x + w + 40])
    assert pass_sides(adaptive, close) == [192]
    assert iou(adaptive(close)[0][:4], every(close)[0][:4]) > 0.9
    # The face at 20 % of the photo: a second pass just big enough for faces of 10 % to be
    # MIN_FACE_PX wide (240 px, rounded up to a multiple of 32).
    assert pass_sides(adaptive, astronaut) == [192, 256]
    assert iou(adaptive(astronaut)[0][:4], every(astronaut)[0][:4]) > 0.9
    # The photo shrunk into a big empty canvas (face 7 % of its side): the first pass finds
    # nothing, so the second runs in full.
    canvas = np.full((800, 800), 128, np.uint8)
    canvas[400:656, 300:556] = cv2.resize(astronaut, (256, 256), interpolation=cv2.INTER_AREA)
    assert pass_sides(adaptive, canvas) == [192, 384]
    assert len(adaptive(canvas)) == 1
    assert pass_sides(adaptive, np.full((480, 640), 128, np.uint8)) == [192, 384]


def test_adaptive_passes_find_a_bystander_half_the_size_of_the_closest_face(astronaut):
    """The astronaut twice on a 1280x720 picture, her face at 15 % of its width and at 7.4 %:
    the 192 pass finds only the first, and a second pass sized for faces half as big (smaller
    than the full 384) finds the other."""
    scene = np.full((720, 1280), 128, np.uint8)
    close = cv2.resize(astronaut, (1024, 1024), interpolation=cv2.INTER_LINEAR)  # face 190 px
    scene[:, :760] = close[:720, :760]
    scene[100:612, 760:1272] = astronaut[:, ::-1]  # face 95 px, mirrored
    adaptive = BlazeFaceDetector()
    first, second = pass_sides(adaptive, scene)
    assert first == 192 and 192 < second < 384
    faces = adaptive(scene)
    assert len(faces) == 2
    assert iou(faces[1][:4], (1272 - 176 - 95, 166, 95, 95)) > 0.5


@pytest.mark.parametrize("side", [192, 384])
def test_onnx_file_matches_the_pytorch_network(astronaut, side):
    """The bundled ONNX graph (uint8 grey in, stem reduced to one channel) gives the float32
    PyTorch outputs, on a square and on a non-square canvas of the larger pass."""
    torch_net, onnx = BlazeFaceDetector(backend="torch", bf16=False), BlazeFaceDetector()
    canvas = torch_net.letterbox(astronaut[:, :300], side)[0]  # 300x512: 224x384 at 384
    for want, got in zip(torch_net.raw(canvas), onnx.raw(canvas), strict=True):
        assert got.shape == want.shape and got.dtype == np.float32
        np.testing.assert_allclose(got, want, atol=2e-3)


def test_backend_and_onnx_file_are_checked(tmp_path):
    with pytest.raises(ConfigError, match="backend"):
        BlazeFaceDetector(backend="tflite")
    with pytest.raises(ModelError, match="missing"):
        BlazeFaceDetector(onnx_path=tmp_path / "none.onnx")
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not a graph")
    with pytest.raises(ModelError, match="cannot load"):
        BlazeFaceDetector(onnx_path=junk)


def test_onnx_threads_sleep_between_passes():
    """Spinning ONNX Runtime threads would take the 2 cores from PyTorch's classifier, which runs
    right after detection; the session uses torch's thread count, the 192-px pass one thread."""
    detect = BlazeFaceDetector()
    options = detect.session.get_session_options()
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    assert options.intra_op_num_threads == torch.get_num_threads()
    assert detect.small_session.get_session_options().intra_op_num_threads == 1
