"""Property tests on the readers: any bytes either parse into sane faces or raise DataError.

Hypothesis feeds the readers random bytes, gzip streams (whole and cut short), UTF-16 text and
valid files with random mutations (flipped, inserted and deleted bytes), and checks that
nothing else ever escapes: no IndexError, UnicodeDecodeError, zlib.error, MemoryError...
Valid files in any accepted spelling read back exactly what was written.
"""

from __future__ import annotations

import gzip
import itertools
import zlib

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from ferlab.constants import IMAGE_SIZE, NUM_CLASSES
from ferlab.data import FaceSet, load_faces, read_csv
from ferlab.errors import DataError
from ferlab.images import read_gray

SETTINGS = settings(max_examples=60, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow])
_counter = itertools.count()


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return tmp_path_factory.mktemp("props")


def _pixels(img: np.ndarray) -> bytes:
    return " ".join(map(str, img.reshape(-1).tolist())).encode()


def _valid_csv(n: int = 2, seed: int = 0) -> bytes:
    rng = np.random.default_rng(seed)
    rows = [b"emotion,pixels,Usage\n"]
    for i in range(n):
        img = rng.integers(0, 256, (IMAGE_SIZE, IMAGE_SIZE), dtype=np.uint8)
        rows.append(b"%d,%s,%s\n" % (i % NUM_CLASSES, _pixels(img),
                                     b"Training" if i % 2 else b"PublicTest"))
    return b"".join(rows)


VALID = _valid_csv()


def _check(folder, data: bytes, suffix: str = ".csv") -> FaceSet | None:
    """Read ``data`` as a file; it must parse into sane faces or raise DataError."""
    path = folder / f"f{next(_counter)}{suffix}"
    path.write_bytes(data)
    try:
        faces = load_faces(path)
    except DataError as e:
        assert str(path) in str(e), f"error does not name the file: {e}"
        return None
    finally:
        path.unlink()
    assert faces.images.dtype == np.uint8
    assert faces.images.shape == (len(faces), IMAGE_SIZE, IMAGE_SIZE) and len(faces) >= 1
    assert ((faces.labels >= -1) & (faces.labels < NUM_CLASSES)).all()
    return faces


@SETTINGS
@given(st.binary(max_size=3000))
def test_random_bytes(folder, data):
    _check(folder, data)


@SETTINGS
@given(st.binary(max_size=3000), st.integers(0, 4000))
def test_random_gzip_whole_and_cut(folder, data, cut):
    z = gzip.compress(data)
    _check(folder, z, ".csv.gz")
    _check(folder, z[: cut % (len(z) + 1)], ".csv.gz")


@SETTINGS
@given(st.binary(max_size=2000))
def test_gzip_magic_then_noise(folder, data):
    _check(folder, b"\x1f\x8b" + data, ".csv.gz")


@SETTINGS
@given(st.text(max_size=400), st.sampled_from(["utf-16", "utf-16-le", "utf-8-sig", "latin-1"]))
def test_random_text_in_any_encoding(folder, text, encoding):
    try:
        data = text.encode(encoding)
    except UnicodeEncodeError:
        assume(False)
    _check(folder, b"emotion,pixels,Usage\n".decode().encode(encoding) + data)


_mutation = st.tuples(st.sampled_from(["flip", "insert", "delete"]),
                      st.integers(0, len(VALID) - 1), st.binary(min_size=1, max_size=4),
                      st.integers(1, 200))


def _mutate(data: bytes, mutations) -> bytes:
    b = bytearray(data)
    for kind, pos, blob, length in mutations:
        pos %= max(1, len(b))
        if kind == "flip":
            b[pos:pos + len(blob)] = blob
        elif kind == "insert":
            b[pos:pos] = blob
        else:
            del b[pos:pos + length]
    return bytes(b)


@SETTINGS
@given(st.lists(_mutation, min_size=1, max_size=4), st.booleans())
def test_mutated_valid_file(folder, mutations, gz):
    data = _mutate(VALID, mutations)
    _check(folder, gzip.compress(data) if gz else data, ".csv.gz" if gz else ".csv")


@SETTINGS
@given(st.lists(_mutation, min_size=1, max_size=3))
def test_mutated_gzip_stream(folder, mutations):
    """Damage inside the compressed bytes (bad CRC, bad blocks, bad length)."""
    z = gzip.compress(VALID)
    _check(folder, _mutate(z, mutations), ".csv.gz")


@SETTINGS
@given(st.binary(max_size=400), st.sampled_from([b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF89a",
                                                 b"BM", b"", b"II*\x00"]))
def test_image_decoder_random_bytes(data, magic):
    try:
        g = read_gray(magic + data, IMAGE_SIZE, name="x.png")
    except DataError as e:
        assert "x.png" in str(e)
    else:
        assert g.shape == (IMAGE_SIZE, IMAGE_SIZE) and g.dtype == np.uint8


# Valid data in every accepted spelling reads back exactly.

_spelling = st.fixed_dictionaries({
    "crlf": st.booleans(), "bom": st.booleans(), "gzip": st.booleans(),
    "spaces": st.booleans(), "blank_lines": st.booleans(), "utf16": st.booleans()})


@settings(max_examples=25, deadline=None, derandomize=True)
@given(st.integers(1, 4), st.integers(0, 2**31), _spelling)
def test_valid_files_round_trip(folder, n, seed, spelling):
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (n, IMAGE_SIZE, IMAGE_SIZE), dtype=np.uint8)
    labels = rng.integers(0, NUM_CLASSES, n)
    sep = b" , " if spelling["spaces"] else b","
    lines = [b"emotion" + sep + b"pixels" + sep + b"Usage"]
    for img, lab in zip(images, labels, strict=True):
        pix = _pixels(img)
        if spelling["spaces"]:
            pix = b"  " + pix.replace(b" ", b"   ") + b" "
        lines.append(b"%d%s%s%sTraining" % (lab, sep, pix, sep))
        if spelling["blank_lines"]:
            lines.append(b"")
    eol = b"\r\n" if spelling["crlf"] else b"\n"
    data = eol.join(lines) + eol
    if spelling["utf16"]:
        data = data.decode().encode("utf-16")
    elif spelling["bom"]:
        data = b"\xef\xbb\xbf" + data
    if spelling["gzip"]:
        data = gzip.compress(data)
    faces = _check(folder, data)
    assert faces is not None, spelling
    assert np.array_equal(faces.images, images) and np.array_equal(faces.labels, labels)


def test_truncated_gzip_error_says_truncated(folder):
    z = gzip.compress(VALID)
    path = folder / "cut.csv.gz"
    path.write_bytes(z[: len(z) // 2])
    with pytest.raises(DataError, match="truncated"):
        read_csv(path)
    path.write_bytes(z[:10] + zlib.compress(b"junk")[2:])
    with pytest.raises(DataError, match="cut.csv.gz"):
        read_csv(path)
