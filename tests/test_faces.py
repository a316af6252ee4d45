"""Face detection, the FER2013-style crop, and photos in every odd image mode."""

from __future__ import annotations

import io

import cv2
import numpy as np
import pytest
from PIL import Image

from ferlab.constants import IMAGE_SIZE
from ferlab.errors import ConfigError, DataError
from ferlab.faces.crop import CROP_SCALE, FRAMING, crop_box, crop_face, crop_faces
from ferlab.faces.detect import FALLBACK_MIN_FACE, Box, detect_faces, make_detector
from ferlab.faces.detect import BlazeFaceDetector as BlazeFaceFinder
from ferlab.faces.detect import FallbackDetector as FirstFound
from ferlab.faces.detect import HaarDetector as FaceDetector
from ferlab.faces.photo import list_photos, load_photo

# The astronaut's face patch with context (the detector needs some) and her face inside it.
PATCH = (slice(30, 200), slice(140, 310))
FACE_IN_PATCH = (36, 36, 95, 95)


def _patch(rgb):
    return np.ascontiguousarray(rgb[PATCH])


def _square(box: Box) -> Box:
    x, y, side = crop_box(box)
    return Box(x, y, side, side)


def _assert_box(found: Box, expected: tuple[int, int, int, int], min_iou: float = 0.7):
    """``found`` frames the face as a Haar box ``expected`` does: compared as the squares each
    cuts out (every detector's box is mapped to the FER2013 framing, see faces.FRAMING). The two
    detectors' frames of one face differ by up to ~15 % in side (compare_detectors.py --sizes),
    hence 0.7 across detectors."""
    iou = _square(found).iou(_square(Box(*expected)))
    assert iou >= min_iou, f"found {found}, expected {expected} (crop IoU {iou:.2f})"


@pytest.mark.parametrize("name", ["blazeface", "haar"])
def test_finds_the_astronaut_face(astronaut, name):
    rgb, box = astronaut
    faces = detect_faces(load_photo(rgb).gray, make_detector(name))
    assert len(faces) == 1
    _assert_box(faces[0], box, 0.8 if name == "haar" else 0.7)
    assert faces[0].kind == {"blazeface": "blazeface", "haar": "frontal"}[name]


def test_detector_by_name_and_profile_means_haar():
    auto = make_detector()
    assert isinstance(auto, FirstFound)
    assert [type(d) for d in auto.detectors] == [BlazeFaceFinder, FaceDetector]
    assert isinstance(make_detector("haar"), FaceDetector)
    assert isinstance(make_detector("blazeface"), BlazeFaceFinder)
    assert isinstance(make_detector(profile=True), FaceDetector)
    with pytest.raises(ConfigError, match="Haar"):
        make_detector("blazeface", profile=True)
    with pytest.raises(ConfigError, match="detector"):
        make_detector("mtcnn")


def test_blazeface_crop_moves_up_and_grows_as_calibrated():
    scale, dx, dy = FRAMING["blazeface"]
    x, y, side = crop_box(Box(100, 100, 100, 100, kind="blazeface"))
    assert side == round(100 * scale)
    assert (x + side / 2, y + side / 2) == pytest.approx((150 + 100 * dx, 150 + 100 * dy),
                                                          abs=0.5)


@pytest.mark.parametrize("max_side", [320, None, "blazeface"])
def test_faces_pasted_at_known_places_are_found_and_cropped(astronaut, max_side):
    rgb, _ = astronaut
    patch = _patch(rgb)
    canvas = np.full((600, 800, 3), (120, 130, 140), np.uint8)
    canvas[20:190, 30:200] = patch  # one face as it is
    big = cv2.resize(patch, None, fx=1.5, fy=1.5, interpolation=cv2.INTER_LINEAR)
    canvas[300:300 + big.shape[0], 450:450 + big.shape[1]] = big  # and one 1.5x larger
    fx, fy, fw, fh = FACE_IN_PATCH
    expected = [(450 + round(1.5 * fx), 300 + round(1.5 * fy), round(1.5 * fw), round(1.5 * fh)),
                (30 + fx, 20 + fy, fw, fh)]  # largest first
    photo = load_photo(canvas)
    detector = (BlazeFaceFinder() if max_side == "blazeface" else
                FaceDetector(max_side=max_side))
    faces = detector(photo.gray)
    assert len(faces) == 2
    for f, e in zip(faces, expected, strict=True):
        _assert_box(f, e)
    crops = crop_faces(photo.gray, faces)
    assert crops.shape == (2, IMAGE_SIZE, IMAGE_SIZE) and crops.dtype == np.uint8
    # Both crops show the same face at two sizes: they must look alike.
    diff = np.abs(crops[0].astype(int) - crops[1].astype(int)).mean()
    assert diff < 20, diff


def paste_synthetic(n: int = 3, scale: int = 3, seed: int = 5):
    """A 640x480 canvas with ``n`` synthetic faces (enlarged ``scale`` times) at known places.

    Returns ``(canvas, faces, boxes)``: the FaceSet pasted and the ``(x, y, w, h)`` of each.
    """
    from ferlab.synthetic import make_faces

    faces = make_faces(n, seed=seed)
    canvas = np.full((480, 640), 60, np.uint8)
    side = IMAGE_SIZE * scale
    places = [(20, 30), (250, 200), (470, 40), (30, 320)][:n]
    boxes = []
    for img, (x, y) in zip(faces.images, places, strict=True):
        # Nearest-neighbour enlarging keeps the 1-pixel mouth strokes crisp, so the crop can
        # give them back (a smooth enlargement blurs them past what a synthetic model reads).
        canvas[y:y + side, x:x + side] = cv2.resize(img, (side, side),
                                                    interpolation=cv2.INTER_NEAREST)
        boxes.append((x, y, side, side))
    return canvas, faces, boxes


def test_synthetic_faces_pasted_at_known_places_are_cropped_back():
    # Haar fires on the synthetic faces too (head, eyes, brows, nose, mouth in the right places);
    # BlazeFace, trained on photos, finds 2 of these 3 drawings, so this is Haar's test.
    canvas, faces, boxes = paste_synthetic(3)
    found = detect_faces(canvas, make_detector("haar"))
    assert len(found) == 3
    by_place = sorted(found, key=lambda b: b.x)
    for f, e, img in zip(by_place, sorted(boxes), faces.images[np.argsort([b[0] for b in boxes])],
                         strict=True):
        _assert_box(f, e, 0.85)
        # The crop is the pasted face again (to within resampling and Haar's 1-2 px), so a model
        # sees what it was trained on. Measured: r = 0.79-0.95; a crop 6 px (at 48) off: r < 0.35.
        r = np.corrcoef(crop_face(canvas, f).ravel(), img.ravel())[0, 1]
        assert r > 0.7, r


def test_no_face_in_flat_or_noisy_pictures():
    assert detect_faces(np.full((300, 400), 128, np.uint8)) == []
    noise = np.random.default_rng(0).integers(0, 256, (240, 320), dtype=np.uint8)
    assert detect_faces(noise) == []
    assert crop_faces(np.zeros((10, 10), np.uint8), []).shape == (0, IMAGE_SIZE, IMAGE_SIZE)


def test_profile_detector_runs_and_keeps_frontal_boxes(astronaut):
    rgb, box = astronaut
    faces = FaceDetector(profile=True)(load_photo(rgb).gray)
    assert faces and faces[0].kind == "frontal"
    _assert_box(faces[0], box, 0.8)


def test_crop_is_the_box_grown_by_crop_scale_and_resized():
    gray = np.random.default_rng(1).integers(0, 256, (300, 300), dtype=np.uint8)
    box = Box(100, 80, 100, 100)
    x, y, side = crop_box(box)
    assert side == round(100 * CROP_SCALE)
    assert (x + side / 2, y + side / 2) == pytest.approx((150, 130), abs=0.5)
    expected = cv2.resize(gray[y:y + side, x:x + side], (48, 48), interpolation=cv2.INTER_AREA)
    assert np.array_equal(crop_face(gray, box), expected)
    # scale=1 crops exactly the box
    exact = cv2.resize(gray[80:180, 100:200], (48, 48), interpolation=cv2.INTER_AREA)
    assert np.array_equal(crop_face(gray, box, scale=1.0), exact)


def test_crop_off_the_edge_repeats_edge_pixels():
    gray = np.zeros((100, 100), np.uint8)
    gray[:, :50] = 200
    crop = crop_face(gray, Box(-30, -30, 80, 80), scale=1.0)
    assert crop.shape == (48, 48)
    # The left part lies outside the photo: repeated from the bright left column, not black.
    assert crop[:, :5].min() == 200
    small = crop_face(gray, Box(10, 10, 20, 20))  # enlarged from 20 px
    assert small.shape == (48, 48)


def test_detector_options_are_checked():
    with pytest.raises(ConfigError):
        FaceDetector(max_side=10)
    with pytest.raises(ConfigError):
        FaceDetector(scale_factor=1.0)
    with pytest.raises(DataError, match="uint8"):
        FaceDetector()(np.zeros((50, 50), np.float32))


# --------------------------------------------------------------------------------------------
# Odd image modes: every one must give the same face as the plain RGB photo.


def _encode(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def _exif_rotated(rgb: np.ndarray) -> bytes:
    # Pixels stored turned 90 degrees, with EXIF Orientation 6 ("rotate 90 CW to view"); a viewer
    # and ferlab show the photo upright.
    img = Image.fromarray(rgb).transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    exif[0x0112] = 6
    return _encode(img, "JPEG", quality=95, exif=exif)


def _rgba(rgb: np.ndarray) -> bytes:
    a = np.full(rgb.shape[:2], 255, np.uint8)
    a[:, :40] = 0  # a transparent strip, far from the face
    return _encode(Image.fromarray(np.dstack([rgb, a]), "RGBA"), "PNG")


def _cmyk(rgb: np.ndarray) -> bytes:
    return _encode(Image.fromarray(rgb).convert("CMYK"), "JPEG", quality=95)


def _gray16(rgb: np.ndarray) -> bytes:
    g = np.asarray(Image.fromarray(rgb).convert("L"), np.uint16) * 257
    return _encode(Image.fromarray(g), "PNG")


def _palette(rgb: np.ndarray) -> bytes:
    return _encode(Image.fromarray(rgb).quantize(256), "PNG")


def _gray_alpha(rgb: np.ndarray) -> bytes:
    return _encode(Image.fromarray(rgb).convert("LA"), "PNG")


def _bgr_tiff(rgb: np.ndarray) -> bytes:
    return _encode(Image.fromarray(rgb), "TIFF")


@pytest.mark.parametrize("make", [_exif_rotated, _rgba, _cmyk, _gray16, _palette, _gray_alpha,
                                  _bgr_tiff], ids=lambda f: f.__name__.strip("_"))
def test_odd_image_modes_give_the_same_face(astronaut, tmp_path, make):
    rgb, box = astronaut
    path = tmp_path / "photo.img"
    path.write_bytes(make(rgb))
    photo = load_photo(path)
    assert photo.gray.shape == (512, 512) and photo.gray.dtype == np.uint8
    assert photo.rgb.shape == (512, 512, 3)
    faces = detect_faces(photo.gray)
    assert len(faces) == 1
    _assert_box(faces[0], box)
    ref = crop_face(load_photo(rgb).gray, faces[0])
    assert np.abs(crop_face(photo.gray, faces[0]).astype(int) - ref).mean() < 12


def test_16bit_and_float_arrays_and_bgr(astronaut):
    rgb, box = astronaut
    ref = load_photo(rgb).gray
    assert np.array_equal(load_photo(rgb[:, :, ::-1].copy(), channels="bgr").gray, ref)
    assert np.abs(load_photo(rgb.astype(np.uint16) * 257).gray.astype(int) - ref).max() <= 1
    assert np.abs(load_photo(rgb / 255.0).gray.astype(int) - ref).max() <= 1
    rgba = np.dstack([rgb, np.full(rgb.shape[:2], 255, np.uint8)])
    assert np.array_equal(load_photo(rgba).gray, ref)
    with pytest.raises(ConfigError):
        load_photo(rgb, channels="gbr")
    with pytest.raises(DataError, match="shape"):
        load_photo(np.zeros((4, 4, 2), np.uint8))


def test_decompression_bomb_is_refused(tmp_path):
    # 9000 x 9000 one-bit pixels: 10 kB on disk, 81 million pixels decoded.
    path = tmp_path / "bomb.png"
    Image.new("1", (9000, 9000)).save(path)
    assert path.stat().st_size < 200_000
    with pytest.raises(DataError, match="pixels"):
        load_photo(path)


def test_bad_files_say_which(tmp_path):
    bad = tmp_path / "notes.jpg"
    bad.write_text("not an image")
    with pytest.raises(DataError, match="notes.jpg"):
        load_photo(bad)
    with pytest.raises(DataError, match="no such"):
        load_photo(tmp_path / "missing.png")
    with pytest.raises(DataError, match="no image file"):
        list_photos(_empty(tmp_path))
    (tmp_path / "a.png").write_bytes(_encode(Image.new("RGB", (8, 8)), "PNG"))
    # A folder lists its image files (recursively, sorted); the bad one is reported when read.
    assert list_photos(tmp_path) == [tmp_path / "a.png", tmp_path / "notes.jpg"]


def _empty(tmp_path):
    d = tmp_path / "empty"
    d.mkdir()
    (d / "readme.txt").write_text("no photos here")
    return d


def test_auto_falls_back_to_haar_only_where_blazeface_finds_nothing():
    class Stub:
        def __init__(self, boxes):
            self.boxes, self.calls = boxes, 0

        def __call__(self, gray):
            self.calls += 1
            return self.boxes

    gray = np.zeros((64, 64), np.uint8)
    first, second = Stub([Box(1, 1, 10, 10, kind="blazeface")]), Stub([Box(2, 2, 9, 9)])
    assert FirstFound(first, second)(gray) == first.boxes and second.calls == 0
    empty = Stub([])
    assert FirstFound(empty, second)(gray) == second.boxes and second.calls == 1
    assert FirstFound(empty, Stub([]))(gray) == []


def test_autos_haar_fallback_looks_only_for_faces_that_fill_the_photo(astronaut):
    rgb, (x, y, w, h) = astronaut
    gray = load_photo(rgb).gray
    side = round(w * 1.2)  # a tight crop of the face, the case the fallback is for
    x0, y0 = x + w // 2 - side // 2, y + h // 2 - side // 2
    crop = cv2.resize(gray[y0:y0 + side, x0:x0 + side], (200, 200), interpolation=cv2.INTER_AREA)
    fallback = make_detector().detectors[1]
    assert fallback.min_size == FALLBACK_MIN_FACE
    assert len(fallback(crop)) == 1
    # The same crop as 25 % of a larger picture: left to BlazeFace; a full Haar search finds it.
    canvas = np.full((800, 800), 120, np.uint8)
    canvas[300:500, 300:500] = crop
    assert fallback(canvas) == []
    assert len(FaceDetector()(canvas)) == 1


def test_min_face_sets_blazefaces_passes_and_haars_search(astronaut):
    rgb, _ = astronaut
    canvas = np.full((480, 640), 100, np.uint8)
    # The astronaut at 216 px: her face is about 6 % of the longer side, under 0.1.
    canvas[200:416, 300:516] = cv2.resize(load_photo(rgb).gray, (216, 216),
                                          interpolation=cv2.INTER_AREA)
    assert len(make_detector("blazeface")(canvas)) == 1
    assert make_detector("blazeface", min_face=0.1)(canvas) == []
    fast, fine = make_detector(min_face=0.1), make_detector(min_face=0.05)
    assert fast.detectors[0].sides == (192,) and fast.detectors[1].max_side == 240
    assert fine.detectors[0].sides == (192, 384) and fine.detectors[1].max_side == 480
    # Under 0.1, faces that small are looked for in every photo, on a pass sized for them.
    assert not fine.detectors[0].adaptive and make_detector().detectors[0].adaptive
    assert make_detector("blazeface", min_face=0.08).sides == (192, 320)  # 24 / 0.08 = 300
    assert len(make_detector("blazeface", min_face=0.05)(canvas)) == 1
    assert make_detector("haar", min_face=0.9).max_side == 48
    for bad in (0.0, 1.0, -0.1):
        with pytest.raises(ConfigError, match="min_face"):
            make_detector(min_face=bad)
