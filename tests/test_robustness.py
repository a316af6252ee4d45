"""Bad input gives one clear line, never a traceback: a corpus of broken files and options.

Every case runs the real CLI (``ferlab.cli.main``) in-process on files generated here and checks
exit status 2, exactly one line on stderr that names the culprit (file or option) and what is
wrong, and no traceback. Valid variants (CRLF, UTF-8 BOM, UTF-16, gzip, extra whitespace) must
read back the very same faces. A few cases also run as a real subprocess, with and without
``--debug``.
"""

from __future__ import annotations

import gzip
import io
import json
import shutil
import struct
import subprocess
import sys
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ferlab.cli import COMMANDS, main
from ferlab.data import load_faces
from ferlab.errors import DataError
from ferlab.synthetic import make_faces, make_split_faces

N_FACES = 24
HEADER = b"emotion,pixels,Usage\n"


# --------------------------------------------------------------------------------------------
# Building blocks for the corpus


@pytest.fixture(scope="module")
def few_faces():
    return make_faces(N_FACES, seed=11, usage="Training")


def _pixels(img: np.ndarray) -> bytes:
    return " ".join(map(str, img.reshape(-1).tolist())).encode()


def _rows(faces, n: int = 6) -> bytes:
    return b"".join(b"%d,%s,Training\n" % (faces.labels[i], _pixels(faces.images[i]))
                    for i in range(n))


def _good_csv(faces) -> bytes:
    return HEADER + _rows(faces, len(faces))


def _png(img: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="PNG")
    return buf.getvalue()


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG that claims ``width x height`` grey pixels: what a decompression bomb looks like
    to the reader, without spending the memory to build one."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
            + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b""))


def _write(tmp: Path, name: str, data: bytes) -> Path:
    p = tmp / name
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(data)
    return p


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    """Run ``ferlab argv`` in-process; (exit status, stdout, stderr)."""
    capsys.readouterr()
    try:
        rc = main([str(a) for a in argv])
    except SystemExit as e:  # argparse's own errors exit from inside parse_args
        rc = e.code
    out, err = capsys.readouterr()
    return rc, out, err


def assert_one_clear_line(rc: int, err: str, expect: list[str]) -> str:
    lines = err.strip().splitlines()
    assert rc == 2, f"exit status {rc}, stderr: {err!r}"
    assert len(lines) == 1, f"expected exactly one line on stderr, got:\n{err}"
    assert "Traceback" not in err
    line = lines[0].lower()
    for word in expect:
        assert word.lower() in line, f"{word!r} missing from: {lines[0]}"
    return lines[0]


# --------------------------------------------------------------------------------------------
# The corpus: ferlab data FILE (every reader: CSV plain/gzipped, image folders, archives)

# name -> (file name, content builder from faces or None for "make nothing", words the line names)
DataCase = tuple[str, Callable[[object], bytes] | None, list[str]]
CSV_CASES: dict[str, DataCase] = {
    "missing_file": ("nope.csv", None, ["nope.csv", "no such file"]),
    "empty_file": ("empty.csv", lambda f: b"", ["empty.csv", "empty"]),
    "header_only": ("header.csv", lambda f: HEADER, ["header.csv", "no faces"]),
    "unknown_header": ("cols.csv", lambda f: b"a,b,c\n1,2,3\n", ["cols.csv", "header"]),
    "short_row": ("short.csv", lambda f: _good_csv(f) + b"3,1 2 3\n",
                  ["short.csv", f"row {N_FACES + 2}", "columns"]),
    "label_7": ("label7.csv", lambda f: HEADER + b"7," + _rows(f, 1)[2:],
                ["label7.csv", "row 2", "label 7", "0-6"]),
    "label_negative": ("labelneg.csv", lambda f: HEADER + b"-1," + _rows(f, 1)[2:],
                       ["labelneg.csv", "row 2", "0-6"]),
    "label_text": ("labeltxt.csv", lambda f: HEADER + b"happy," + _rows(f, 1)[2:],
                   ["labeltxt.csv", "row 2", "happy"]),
    "pixel_256": ("p256.csv", lambda f: HEADER + _rows(f, 2) + b"3,256" + b" 0" * 2303
                  + b",Training\n", ["p256.csv", "row 4", "256", "0-255"]),
    "pixel_wraps_int32": ("pbig.csv", lambda f: HEADER + b"3,4294967296" + b" 0" * 2303
                          + b",Training\n", ["pbig.csv", "row 2", "out of range"]),
    "pixel_negative": ("pneg.csv", lambda f: HEADER + b"3,-5" + b" 0" * 2303 + b",Training\n",
                       ["pneg.csv", "row 2", "-5"]),
    "pixel_text": ("ptxt.csv", lambda f: HEADER + b"3,12a" + b" 0" * 2303 + b",Training\n",
                   ["ptxt.csv", "row 2", "12a"]),
    "pixel_float": ("pfloat.csv", lambda f: HEADER + b"3,1.5" + b" 0" * 2303 + b",Training\n",
                    ["pfloat.csv", "row 2", "1.5"]),
    "too_few_pixels": ("few.csv", lambda f: HEADER + b"3," + b"0 " * 2303 + b",Training\n",
                       ["few.csv", "row 2", "2304", "2303"]),
    "too_many_pixels": ("many.csv", lambda f: HEADER + b"3," + b"0 " * 2305 + b",Training\n",
                        ["many.csv", "row 2", "2304", "2305"]),
    "empty_pixels": ("nopix.csv", lambda f: HEADER + b"3,,Training\n",
                     ["nopix.csv", "row 2", "2304"]),
    "truncated_gzip": ("cut.csv.gz", lambda f: gzip.compress(_good_csv(f))[:5000],
                       ["cut.csv.gz", "truncated"]),
    "corrupt_gzip": ("bad.csv.gz", lambda f: b"\x1f\x8b\x08\x00" + b"\xff" * 200,
                     ["bad.csv.gz", "gzip"]),
    "gzip_of_garbage": ("junk.csv.gz", lambda f: gzip.compress(bytes(range(256)) * 40),
                        ["junk.csv.gz"]),
    "latin1_usage": ("latin1.csv", lambda f: HEADER + _rows(f, 1).replace(
        b"Training", b"Entra\xeenement"), ["latin1.csv", "row 2", "utf-8"]),
    "latin1_header": ("latin1h.csv", lambda f: b"\xe9motion,pixels,Usage\n" + _rows(f, 1),
                      ["latin1h.csv", "row 1", "utf-8"]),
    "unterminated_quote": ("quote.csv", lambda f: HEADER + b'3,"0 0 0,Training\n',
                           ["quote.csv", "unterminated"]),
    "random_bytes": ("noise.csv", lambda f: np.random.default_rng(0).integers(
        0, 256, 4000, dtype=np.uint8).tobytes(), ["noise.csv"]),
    "png_named_csv": ("face.csv", lambda f: _png(f.images[0]), ["face.csv"]),
    "utf16_odd_length": ("odd16.csv", lambda f: "emotion,pixels".encode("utf-16") + b"\x00",
                         ["odd16.csv", "utf-16"]),
    "nul_bytes": ("nul.csv", lambda f: HEADER + b"3,\x00\x00,Training\n",
                  ["nul.csv", "row 2", "pixel"]),
    "test_csv_bad_id": ("test.csv", lambda f: b"id,feature\nx7," + _pixels(f.images[0]) + b"\n",
                        ["test.csv", "row 2", "id"]),
}


@pytest.mark.parametrize("case", list(CSV_CASES), ids=list(CSV_CASES))
def test_bad_data_file_gives_one_line(case, tmp_path, capsys, few_faces):
    name, build, expect = CSV_CASES[case]
    path = tmp_path / name if build is None else _write(tmp_path, name, build(few_faces))
    rc, _, err = run_cli(capsys, "data", path, "--out", tmp_path / "grid.png")
    assert_one_clear_line(rc, err, expect)
    assert not (tmp_path / "grid.png").exists()


def _folder(tmp: Path, files: dict[str, bytes]) -> Path:
    root = tmp / "faces"
    root.mkdir()
    for rel, data in files.items():
        _write(root, rel, data)
    return root


def _zip(tmp: Path, files: dict[str, bytes]) -> Path:
    import zipfile

    p = tmp / "faces.zip"
    with zipfile.ZipFile(p, "w") as z:
        for rel, data in files.items():
            z.writestr(rel, data)
    return p


IMAGE_CASES: dict[str, tuple[Callable[[Path, object], Path], list[str]]] = {
    "empty_folder": (lambda t, f: _folder(t, {}), ["faces", "no images"]),
    "text_as_png": (lambda t, f: _folder(t, {"happy/0.png": _png(f.images[0]),
                                             "sad/1.png": b"not an image at all"}),
                    ["1.png", "not an image"]),
    "truncated_png": (lambda t, f: _folder(t, {"happy/0.png": _png(f.images[0])[:60]}),
                      ["0.png"]),
    "bomb_png": (lambda t, f: _folder(t, {"angry/bomb.png": _png_header_only(20000, 20000)}),
                 ["bomb.png", "too large"]),
    "big_png": (lambda t, f: _folder(t, {"angry/big.png": _png_header_only(9000, 9000)}),
                ["big.png", "too large"]),
    "corrupt_zip": (lambda t, f: _write(t, "faces.zip", b"PK\x03\x04" + b"\x00" * 100),
                    ["faces.zip", "archive"]),
    "zip_without_classes": (lambda t, f: _zip(t, {"misc/0.png": _png(f.images[0])}),
                            ["faces.zip", "no images"]),
    "zip_with_bad_image": (lambda t, f: _zip(t, {"happy/0.png": b"\x89PNG broken"}),
                           ["faces.zip:happy/0.png"]),
    "truncated_tar_gz": (lambda t, f: _write(t, "faces.tar.gz", gzip.compress(b"x" * 600)[:30]),
                         ["faces.tar.gz", "archive"]),
}


@pytest.mark.parametrize("case", list(IMAGE_CASES), ids=list(IMAGE_CASES))
def test_bad_image_data_gives_one_line(case, tmp_path, capsys, few_faces):
    build, expect = IMAGE_CASES[case]
    path = build(tmp_path, few_faces)
    rc, _, err = run_cli(capsys, "data", path, "--out", tmp_path / "grid.png")
    assert_one_clear_line(rc, err, expect)


def test_every_row_bad_even_when_skipping(tmp_path, capsys, few_faces):
    path = _write(tmp_path, "allbad.csv", HEADER + b"9,1 2,Training\n8,3,Training\n")
    rc, _, err = run_cli(capsys, "data", path, "--skip-bad-rows", "--out", tmp_path / "g.png")
    assert_one_clear_line(rc, err, ["allbad.csv", "every one of its 2 rows", "row 2"])


def test_skip_bad_rows_counts_what_it_skipped(tmp_path, capsys, few_faces):
    data = _good_csv(few_faces) + b"3,1 2 3,Training\n"
    path = _write(tmp_path, "mixed.csv", data)
    rc, out, err = run_cli(capsys, "data", path, "--skip-bad-rows", "--out", tmp_path / "g.png")
    assert rc == 0 and err == ""
    assert f"{N_FACES} faces" in out and "skipped 1 bad rows" in out


# --------------------------------------------------------------------------------------------
# The corpus: ferlab train options and run folders


@pytest.fixture(scope="module")
def train_csv(tmp_path_factory):
    from ferlab.synthetic import write_fer2013_csv

    return write_fer2013_csv(make_split_faces(60, 20, seed=2),
                             tmp_path_factory.mktemp("train") / "fer.csv.gz")


TRAIN_OPTION_CASES: dict[str, tuple[list[str], list[str]]] = {
    "negative_lr": (["--lr", "-0.1"], ["learning rate", "-0.1"]),
    "zero_lr": (["--lr", "0"], ["learning rate"]),
    "nan_lr": (["--lr", "nan"], ["learning rate", "nan"]),
    "inf_lr": (["--lr", "inf"], ["learning rate", "inf"]),
    "text_lr": (["--lr", "fast"], ["--lr", "fast"]),
    "zero_epochs": (["--epochs", "0"], ["--epochs", "positive"]),
    "negative_epochs": (["--epochs", "-3"], ["--epochs", "-3"]),
    "text_epochs": (["--epochs", "ten"], ["--epochs", "ten"]),
    "zero_batch": (["--batch-size", "0"], ["--batch-size"]),
    "unknown_model": (["--model", "alexnet"], ["--model", "alexnet"]),
    "model_args_not_json": (["--model-args", "{width: 8"], ["--model-args", "json"]),
    "model_args_list": (["--model-args", "[8]"], ["--model-args", "json object"]),
    "model_args_unknown_key": (["--model-args", '{"depth": 3}'], ["cnn-leaky", "depth"]),
    "model_args_bad_value": (["--model", "vgg", "--model-args", '{"width": 0}'],
                             ["vgg", "width"]),
    "label_smoothing_2": (["--label-smoothing", "2"], ["label smoothing"]),
    "erase_above_1": (["--erase", "1.5"], ["erase"]),
    "negative_weight_decay": (["--weight-decay", "-1"], ["--weight-decay"]),
    "inf_rotation": (["--rotation", "inf"], ["--rotation"]),
    "negative_limit": (["--limit", "-5"], ["limit"]),
    "unknown_optimizer": (["--optimizer", "rmsprop"], ["--optimizer", "rmsprop"]),
    "bad_val_split": (["--val-split", "half"], ["split", "half"]),
    "val_split_too_big": (["--val-split", "last:100000"], ["fer.csv.gz", "100000"]),
    "val_split_fraction_1": (["--val-split", "random:1.5"], ["1.5"]),
}


@pytest.mark.parametrize("case", list(TRAIN_OPTION_CASES), ids=list(TRAIN_OPTION_CASES))
def test_bad_train_option_gives_one_line(case, tmp_path, capsys, train_csv):
    extra, expect = TRAIN_OPTION_CASES[case]
    out = tmp_path / "run"
    rc, _, err = run_cli(capsys, "train", "--data", train_csv, "--out", out,
                         "--model", "cnn-leaky", "--epochs", "1", *extra)
    assert_one_clear_line(rc, err, expect)
    assert not out.exists(), "a refused run must not leave a run folder behind"


def test_train_refuses_a_file_as_run_folder(tmp_path, capsys, train_csv):
    f = _write(tmp_path, "notes.txt", b"keep me")
    rc, _, err = run_cli(capsys, "train", "--data", train_csv, "--out", f, "--epochs", "1")
    assert_one_clear_line(rc, err, ["notes.txt", "not a folder"])
    assert f.read_bytes() == b"keep me"


def test_train_never_overwrites_a_run_without_force(tmp_path, capsys, train_csv):
    run = tmp_path / "run"
    run.mkdir()
    (run / "model.safetensors").write_bytes(b"precious")
    rc, _, err = run_cli(capsys, "train", "--data", train_csv, "--out", run, "--epochs", "1")
    assert_one_clear_line(rc, err, ["run", "--force"])
    assert (run / "model.safetensors").read_bytes() == b"precious"


def test_train_needs_labels(tmp_path, capsys, few_faces):
    test_csv = _write(tmp_path, "test.csv", b"id,feature\n" + b"".join(
        b"%d,%s\n" % (i, _pixels(few_faces.images[i])) for i in range(5)))
    rc, _, err = run_cli(capsys, "train", "--data", test_csv, "--out", tmp_path / "r")
    assert_one_clear_line(rc, err, ["test.csv", "labels"])


def test_train_without_data(tmp_path, capsys):
    rc, _, err = run_cli(capsys, "train", "--out", tmp_path / "r")
    assert_one_clear_line(rc, err, ["--data"])


def test_train_on_a_directory_of_nothing(tmp_path, capsys):
    (tmp_path / "d").mkdir()
    rc, _, err = run_cli(capsys, "train", "--data", tmp_path / "d", "--out", tmp_path / "r")
    assert_one_clear_line(rc, err, ["d", "no images"])


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, train_csv):
    """A finished two-epoch cnn-leaky run folder (of ``train_csv``) to damage."""
    from ferlab.config import AugmentConfig, DataConfig, ModelConfig, RunConfig, TrainConfig
    from ferlab.training.loop import train

    cfg = RunConfig(DataConfig(path=str(train_csv)), ModelConfig("cnn-leaky"),
                    AugmentConfig(flip=False, shift=0, rotation=0, zoom=0),
                    TrainConfig(epochs=2, batch_size=32))
    return train(cfg, tmp_path_factory.mktemp("runs") / "tiny", progress=False,
                 log=lambda s: None)


def _damaged_copy(run: Path, tmp: Path, damage: Callable[[Path], None]) -> Path:
    dst = tmp / "run"
    shutil.copytree(run, dst)
    damage(dst)
    return dst


def _retarget_model(run: Path) -> None:
    cfg = json.loads((run / "config.json").read_text())
    cfg["config"]["model"] = {"name": "vgg", "kwargs": {"width": 8}}
    (run / "config.json").write_text(json.dumps(cfg))


RESUME_CASES: dict[str, tuple[Callable[[Path], None], list[str]]] = {
    "no_checkpoint": (lambda r: (r / "checkpoint.pt").unlink(), ["run", "checkpoint.pt"]),
    "truncated_checkpoint": (
        lambda r: (r / "checkpoint.pt").write_bytes((r / "checkpoint.pt").read_bytes()[:999]),
        ["checkpoint.pt"]),
    "checkpoint_of_another_model": (_retarget_model, ["checkpoint.pt", "vgg"]),
    "config_not_json": (lambda r: (r / "config.json").write_text("{oops"), ["config.json"]),
    "config_unknown_field": (lambda r: (r / "config.json").write_text(
        '{"config": {"train": {"epochz": 3}}}'), ["config", "epochz"]),
    "checkpoint_is_a_folder": (lambda r: ((r / "checkpoint.pt").unlink(),
                                          (r / "checkpoint.pt").mkdir()), ["checkpoint.pt"]),
}


@pytest.mark.parametrize("case", list(RESUME_CASES), ids=list(RESUME_CASES))
def test_bad_run_folder_for_resume_gives_one_line(case, tmp_path, capsys, tiny_run):
    damage, expect = RESUME_CASES[case]
    run = _damaged_copy(tiny_run, tmp_path, damage)
    rc, _, err = run_cli(capsys, "train", "--resume", run)
    assert_one_clear_line(rc, err, expect)


# --------------------------------------------------------------------------------------------
# Commands that take a model: every --model spelling that cannot be used


def _model_cases(tiny_run: Path, tmp: Path) -> dict[str, tuple[Path, list[str]]]:
    good = (tiny_run / "model.safetensors").read_bytes()
    st = tmp / "models"
    st.mkdir()
    (st / "empty_dir").mkdir()
    return {
        "missing": (st / "nope.safetensors", ["nope.safetensors", "no such"]),
        "empty_folder": (st / "empty_dir", ["empty_dir", "model.safetensors"]),
        "empty_file": (_write(st, "empty.safetensors", b""), ["empty.safetensors"]),
        "truncated": (_write(st, "cut.safetensors", good[: len(good) // 2]),
                      ["cut.safetensors"]),
        "garbage": (_write(st, "junk.safetensors", b"\x10\x00\x00\x00\x00\x00\x00\x00{}junk"),
                    ["junk.safetensors"]),
        "pickle": (_write(st, "model.pt", b"\x80\x04K\x01."), ["model.pt", "pickle"]),
        "zip_pickle": (_write(st, "model.pth", b"PK\x03\x04" + b"\x00" * 64),
                       ["model.pth", "pickle"]),
        "not_ferlab": (_plain_safetensors(st / "plain.safetensors"), ["plain.safetensors",
                                                                      "ferlab"]),
        "wrong_shapes": (_mismatched_safetensors(tiny_run, st / "mismatch.safetensors"),
                         ["mismatch.safetensors", "cnn-leaky"]),
    }


def _plain_safetensors(path: Path) -> Path:
    import torch
    from safetensors.torch import save_file

    save_file({"w": torch.zeros(3)}, str(path))
    return path


def _mismatched_safetensors(run: Path, path: Path) -> Path:
    """The run's model file with one tensor replaced by one of another shape."""
    from safetensors import safe_open
    from safetensors.torch import save_file

    with safe_open(str(run / "model.safetensors"), framework="pt") as f:
        meta = f.metadata()
        state = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118  (safe_open has no iter)
    first = next(k for k, v in state.items() if v.dim() == 4)
    state[first] = state[first][:, :, :2, :2].contiguous()
    save_file(state, str(path), metadata=meta)
    return path


def _model_commands(data: Path, tmp: Path) -> dict[str, Callable[[Path], list]]:
    """argv, given the model, of each present command that reads a model."""
    candidates = {
        "evaluate": lambda m: ["evaluate", "--model", m, "--data", data, "--out", tmp / "eval"],
        "predict": lambda m: ["predict", "--model", m, "--input", data, "--out", tmp / "p.csv"],
        "ensemble": lambda m: ["ensemble", "--out", tmp / "ens", m, m],
        "explain": lambda m: ["explain", "--model", m, "--list-layers"],
    }
    return {c: argv for c, argv in candidates.items() if c in COMMANDS}


def test_bad_model_files_give_one_line(tmp_path, capsys, tiny_run, train_csv):
    commands = _model_commands(train_csv, tmp_path)
    if not commands:
        pytest.skip("no command taking --model yet")
    for name, (model, expect) in _model_cases(tiny_run, tmp_path).items():
        for cmd, argv in commands.items():
            rc, _, err = run_cli(capsys, *argv(model))
            assert rc == 2, f"{cmd} --model <{name}>: {err}"
            assert_one_clear_line(rc, err, expect)


def test_model_loader_refuses_every_bad_file(tmp_path, tiny_run):
    """The same model corpus through the library: ModelError, never anything else."""
    from ferlab.errors import ModelError
    from ferlab.model_spec import load_model

    for name, (model, expect) in _model_cases(tiny_run, tmp_path).items():
        with pytest.raises(ModelError) as info:
            load_model(model)
        for word in expect:
            assert word.lower() in str(info.value).lower(), (name, str(info.value))
    assert load_model(tiny_run).name == "cnn-leaky"


# --------------------------------------------------------------------------------------------
# Commands that read run folders (curves, compare, report): damaged or wrong folders

RUN_FOLDER_CASES: dict[str, tuple[Callable[[Path], None] | None, list[str]]] = {
    "missing_folder": (None, ["run"]),
    "empty_folder": (lambda r: [p.unlink() for p in r.iterdir()], ["run"]),
    "history_not_numbers": (lambda r: (r / "history.csv").write_text("epoch,val_acc\nx,y\n"),
                            ["history.csv"]),
    "history_not_utf8": (lambda r: (r / "history.csv").write_bytes(b"\xff\xfe\x00 junk"),
                         ["history.csv"]),
}


def _run_folder_commands(tmp: Path) -> dict[str, Callable[[Path], list]]:
    candidates = {
        "curves": lambda r: ["curves", r, "--out", tmp / "curves.png"],
        "compare": lambda r: ["compare", r],
        "report": lambda r: ["report", r, "--out", tmp / "report.html"],
    }
    return {c: argv for c, argv in candidates.items() if c in COMMANDS}


@pytest.mark.parametrize("case", list(RUN_FOLDER_CASES), ids=list(RUN_FOLDER_CASES))
def test_bad_run_folders_give_one_line(case, tmp_path, capsys, tiny_run):
    commands = _run_folder_commands(tmp_path)
    if not commands:
        pytest.skip("no command reading run folders yet")
    damage, expect = RUN_FOLDER_CASES[case]
    run = tmp_path / "run" if damage is None else _damaged_copy(tiny_run, tmp_path, damage)
    for cmd, argv in commands.items():
        rc, _, err = run_cli(capsys, *argv(run))
        assert rc == 2, f"ferlab {cmd} on <{case}>: {err}"
        assert_one_clear_line(rc, err, expect)


def test_history_reader_names_the_file(tmp_path):
    from ferlab.runs import read_history

    (tmp_path / "history.csv").write_text("epoch,val_acc\n1,oops\n")
    with pytest.raises(DataError, match="history.csv"):
        read_history(tmp_path)


# --------------------------------------------------------------------------------------------
# Valid variants are accepted and read back the same faces


VARIANTS: dict[str, Callable[[bytes], bytes]] = {
    "crlf": lambda b: b.replace(b"\n", b"\r\n"),
    "utf8_bom": lambda b: b"\xef\xbb\xbf" + b,
    "gzip": gzip.compress,
    "bom_crlf_gzip": lambda b: gzip.compress(b"\xef\xbb\xbf" + b.replace(b"\n", b"\r\n")),
    "utf16_le": lambda b: b.decode().encode("utf-16"),
    "utf16_be": lambda b: b"\xfe\xff" + b.decode().encode("utf-16-be"),
    "extra_whitespace": lambda b: b.replace(b"\n", b"  \n").replace(b",", b" , ").replace(
        b"emotion , pixels", b" Emotion ,  Pixels") + b"\n\n",
    "quoted_fields": lambda b: b.replace(b",", b',"', 1).replace(b"\n", b'"\n', 1),
    "trailing_blank_lines": lambda b: b + b"\n\n\r\n",
}


def test_quoted_variant_really_quotes():
    sample = VARIANTS["quoted_fields"](b"emotion,pixels,Usage\n3,1 2,Training\n")
    assert sample.startswith(b'emotion,"pixels,Usage"\n')


@pytest.mark.parametrize("variant", list(VARIANTS), ids=list(VARIANTS))
def test_valid_variants_read_the_same_faces(variant, tmp_path, few_faces):
    raw = _good_csv(few_faces)
    if variant == "quoted_fields":  # quote every pixel field, as spreadsheet exports do
        raw = HEADER + b"".join(b'%d,"%s",Training\n' % (few_faces.labels[i],
                                                          _pixels(few_faces.images[i]))
                                for i in range(len(few_faces)))
    else:
        raw = VARIANTS[variant](raw)
    got = load_faces(_write(tmp_path, f"{variant}.csv", raw))
    assert np.array_equal(got.images, few_faces.images)
    assert np.array_equal(got.labels, few_faces.labels)
    assert set(got.usage.tolist()) == {"Training"}


def test_valid_variant_through_the_cli(tmp_path, capsys, few_faces):
    raw = VARIANTS["bom_crlf_gzip"](_good_csv(few_faces))
    path = _write(tmp_path, "faces.csv.gz", raw)
    rc, out, err = run_cli(capsys, "data", path, "--out", tmp_path / "grid.png")
    assert rc == 0, err
    assert f"{N_FACES} faces" in out and (tmp_path / "grid.png").stat().st_size > 1000


def test_reader_error_is_a_data_error(tmp_path):
    with pytest.raises(DataError, match="row 2"):
        load_faces(_write(tmp_path, "x.csv", HEADER + b"3,1,Training\n"))


# --------------------------------------------------------------------------------------------
# --debug, and the real process


def test_debug_raises_the_real_exception(tmp_path):
    with pytest.raises(DataError, match="nope.csv"):
        main(["--debug", "data", str(tmp_path / "nope.csv")])


def _ferlab(*argv, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ferlab.cli", *map(str, argv)],
                          capture_output=True, text=True, timeout=600, **kw)


def test_process_prints_one_line_and_debug_prints_the_traceback(tmp_path):
    bad = _write(tmp_path, "bad.csv", HEADER + b"3,1 2 3,Training\n")
    plain = _ferlab("data", bad, "--out", tmp_path / "g.png")
    assert plain.returncode == 2
    assert plain.stderr.strip().splitlines() == [
        f"ferlab data: error: {bad}: row 2: expected 2304 pixel values (48x48), found 3"]
    debug = _ferlab("--debug", "data", bad, "--out", tmp_path / "g.png")
    assert debug.returncode != 0
    assert "Traceback" in debug.stderr and "DataError" in debug.stderr


def test_process_option_error_is_one_line(tmp_path):
    r = _ferlab("train", "--data", "x.csv", "--out", tmp_path / "r", "--epochs", "0")
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "--epochs" in lines[0] and "Traceback" not in r.stderr


def test_unexpected_exception_is_still_one_line(monkeypatch, capsys):
    """A bug (not a user error) still prints one line without --debug, and exit status 1."""
    import ferlab.cli as cli

    def boom(args):
        raise ZeroDivisionError("division by zero")

    monkeypatch.setattr(cli, "cmd_models", boom)
    rc, _, err = run_cli(capsys, "models")
    assert rc == 1 and len(err.strip().splitlines()) == 1
    assert "ZeroDivisionError" in err and "--debug" in err and "Traceback" not in err


def test_keyboard_interrupt_is_one_line(monkeypatch, capsys):
    import ferlab.cli as cli

    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "cmd_models", interrupted)
    rc, _, err = run_cli(capsys, "models")
    assert rc == 130 and err.strip() == "ferlab models: interrupted"


def test_unwritable_output_is_one_line(tmp_path, capsys, few_faces):
    good = _write(tmp_path, "ok.csv", _good_csv(few_faces))
    blocker = _write(tmp_path, "file", b"x")
    rc, _, err = run_cli(capsys, "data", good, "--out", blocker / "sub" / "grid.png")
    assert_one_clear_line(rc, err, ["file"])


def test_corpus_is_large_enough(tmp_path, tiny_run):
    n = (len(CSV_CASES) + len(IMAGE_CASES) + len(TRAIN_OPTION_CASES) + len(RESUME_CASES)
         + len(RUN_FOLDER_CASES) + len(_model_cases(tiny_run, tmp_path))
         + 7)  # the stand-alone cases: all rows bad, --out a file, no --force, no labels,
    # no --data, an empty folder as data, an unwritable --out
    assert n >= 30
