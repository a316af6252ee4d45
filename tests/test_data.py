"""Readers for every format, every kind of bad row, and the splits."""

from __future__ import annotations

import gzip

import numpy as np
import pytest

from ferlab.data import load_faces, make_split, read_csv, select_split, split_random
from ferlab.errors import DataError
from ferlab.synthetic import (
    write_fer2013_csv,
    write_image_folder,
    write_test_csv,
    write_train_csv,
)


def _same(a, b):
    np.testing.assert_array_equal(a.images, b.images)
    np.testing.assert_array_equal(a.labels, b.labels)


@pytest.mark.parametrize("name", ["fer2013.csv", "fer2013.csv.gz", "data.bin"])
def test_kaggle_csv_round_trip(tmp_path, small_faces, name):
    path = write_fer2013_csv(small_faces, tmp_path / name)
    if name == "data.bin":  # gzip recognised by content, not by name
        path.write_bytes(gzip.compress(path.read_bytes()))
    got = load_faces(path)
    _same(got, small_faces)
    assert got.images.dtype == np.uint8 and got.images.shape == (70, 48, 48)
    assert set(got.usage) == {"Training"}
    assert got.rows[0] == 2  # header is row 1


def test_train_and_test_csv(tmp_path, small_faces):
    _same(load_faces(write_train_csv(small_faces, tmp_path / "train.csv")), small_faces)
    test = load_faces(write_test_csv(small_faces, tmp_path / "test.csv.gz"))
    np.testing.assert_array_equal(test.images, small_faces.images)
    assert (test.labels == -1).all() and not test.has_labels
    np.testing.assert_array_equal(test.ids, np.arange(70))


def test_image_folder_and_archive(tmp_path, small_faces):
    root = write_image_folder(small_faces, tmp_path / "faces", split="train")
    got = load_faces(root)
    assert len(got) == 70 and set(got.usage) == {"Training"}
    # PNG is lossless: same faces, in folder order
    order = np.lexsort((np.arange(70), small_faces.labels))
    assert sorted(got.labels.tolist()) == sorted(small_faces.labels.tolist())
    assert {got.images[i].tobytes() for i in range(70)} == {
        small_faces.images[i].tobytes() for i in order}
    import tarfile

    tgz = tmp_path / "faces.tar.gz"
    with tarfile.open(tgz, "w:gz") as t:
        t.add(root / "train", arcname="train")
    assert len(load_faces(tgz)) == 70


def test_crlf_bom_whitespace_accepted(tmp_path, small_faces):
    path = write_fer2013_csv(small_faces.subset(slice(0, 3)), tmp_path / "a.csv")
    text = path.read_text().replace(",Training", ", Training ").replace("\n", "\r\n")
    path.write_bytes(b"\xef\xbb\xbf" + text.encode())
    got = load_faces(path)
    _same(got, small_faces.subset(slice(0, 3)))
    assert set(got.usage) == {"Training"}


def _csv_with_row(tmp_path, row: str) -> str:
    path = tmp_path / "bad.csv"
    good = "0," + " ".join(["7"] * 2304) + ",Training"
    path.write_text(f"emotion,pixels,Usage\n{good}\n{row}\n{good}\n")
    return path


PIX = " ".join(["7"] * 2303)


@pytest.mark.parametrize("row, problem", [
    (f"0,{PIX},Training", "expected 2304 pixel values"),
    (f"0,{PIX} 7 7,Training", "found 2305"),
    (f"0,{PIX} 2.5,Training", "'2.5' is not an integer"),
    (f"0,{PIX} -1,Training", "'-1' is not an integer"),
    (f"0,{PIX} 300,Training", "300 is out of range"),
    (f"7,{PIX} 1,Training", "label 7 is outside 0-6"),
    (f"x,{PIX} 1,Training", "label 'x' is not an integer"),
    (f"0,{PIX} 1", "expected 3 columns"),
])
def test_bad_rows_name_file_row_and_problem(tmp_path, row, problem):
    path = _csv_with_row(tmp_path, row)
    with pytest.raises(DataError) as e:
        read_csv(path)
    assert str(path) in str(e.value) and "row 3" in str(e.value) and problem in str(e.value)
    faces = read_csv(path, skip_bad_rows=True)
    assert len(faces) == 2 and faces.skipped[0][0] == 3 and problem in faces.skipped[0][1]


def test_undecodable_text(tmp_path):
    path = tmp_path / "latin.csv"
    path.write_bytes(b"emotion,pixels,Usage\n0," + b" ".join([b"1"] * 2304) + b",Tr\xe9ning\n")
    with pytest.raises(DataError, match="row 2: undecodable text"):
        read_csv(path)


@pytest.mark.parametrize("content, problem", [
    (b"", "empty"),
    (b"a,b,c\n1,2,3\n", "not a known layout"),
    (b"emotion,pixels,Usage\n", "no faces"),
])
def test_bad_files(tmp_path, content, problem):
    path = tmp_path / "f.csv"
    path.write_bytes(content)
    with pytest.raises(DataError, match=problem):
        read_csv(path)


def test_truncated_gzip_and_missing(tmp_path, small_faces):
    path = write_fer2013_csv(small_faces, tmp_path / "f.csv.gz")
    path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])
    with pytest.raises(DataError, match="truncated"):
        read_csv(path)
    with pytest.raises(DataError, match="no such file"):
        load_faces(tmp_path / "nope.csv")
    with pytest.raises(DataError, match="is a directory"):
        read_csv(tmp_path)


def test_splits(faces):
    train, val = make_split(faces, "auto")
    assert len(train) == 700 and len(val) == 140 and set(val.usage) == {"PublicTest"}
    train, val = make_split(faces, "last:100")
    assert len(val) == 100 and len(train) == 600
    np.testing.assert_array_equal(val.images, faces.images[600:700])  # Training rows only
    a = make_split(faces, "stratified:0.2", seed=5)[1]
    b = make_split(faces, "stratified:0.2", seed=5)[1]
    np.testing.assert_array_equal(a.ids, b.ids)  # seeded
    counts = np.bincount(a.labels, minlength=7)
    assert counts.min() == counts.max() == 20  # 100 per class in Training, 20% of each
    _, r = split_random(faces, 0.1, seed=1)
    assert len(r) == 84
    assert len(select_split(faces, "PublicTest")) == 140
    assert len(select_split(faces, "test")) == 140
    with pytest.raises(DataError):
        select_split(faces, "PrivateTest")
    with pytest.raises(DataError):
        make_split(faces, "bogus:1")
