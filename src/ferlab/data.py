"""Readers for every FER2013-style format, plain or gzipped, into one in-memory ``FaceSet``.

Formats (chosen by the CSV header or by the path being a folder or archive):

* Kaggle ``fer2013.csv``: ``emotion,pixels,Usage``
* course ``train.csv``: ``label,feature``; course ``test.csv``: ``id,feature``
* image folders ``<root>/<split>/<emotion>/*.png|jpg`` or ``<root>/<emotion>/*``, as a folder or
  a ``.zip`` / ``.tar`` / ``.tar.gz`` archive of one

Faces stay ``uint8 [N, 48, 48]`` in memory (the 32k-row shared file is 74 MB). Pixel text is
parsed with vectorised numpy over raw bytes rather than per token in Python: that is what makes
the 300 MB shared CSV load in seconds.
"""

from __future__ import annotations

import csv
import gzip
import io
import sys
import tarfile
import warnings
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .constants import EMOTIONS, IMAGE_SIZE, NUM_CLASSES, NUM_PIXELS
from .errors import DataError
from .images import IMAGE_SUFFIXES, read_gray

csv.field_size_limit(min(sys.maxsize, 2**31 - 1))

# Folder names accepted for each class and each split of an image folder.
_EMOTION_ALIASES = {
    **{e: i for i, e in enumerate(EMOTIONS)},
    **{str(i): i for i in range(NUM_CLASSES)},
    "anger": 0, "disgusted": 1, "fearful": 2, "happiness": 3, "sadness": 4, "surprised": 5,
}
# The widely used JPEG release names Training 'train', PublicTest 'validation' and PrivateTest
# 'test' (see shared/data/README.md).
_SPLIT_ALIASES = {
    "train": "Training", "training": "Training",
    "val": "PublicTest", "valid": "PublicTest", "validation": "PublicTest",
    "publictest": "PublicTest", "public": "PublicTest",
    "test": "PrivateTest", "privatetest": "PrivateTest", "private": "PrivateTest",
}


@dataclass
class FaceSet:
    """Faces and what is known about them.

    Attributes:
        images: ``uint8 [N, 48, 48]`` grey levels.
        labels: ``int64 [N]`` class index 0-6, or -1 where unknown (``test.csv``).
        usage: ``[N]`` split name per face ("Training", "PublicTest", ...; "" if none).
        ids: ``int64 [N]`` the ``id`` column of ``test.csv``, else the row's position.
        source: where the faces came from (for messages).
        rows: ``int64 [N]`` the file line (CSV) each face came from, for error messages.
        names: file names for image-folder faces, else empty.
        skipped: bad rows skipped with ``skip_bad_rows``: list of (row, reason).
    """

    images: np.ndarray
    labels: np.ndarray
    usage: np.ndarray
    ids: np.ndarray
    source: str = ""
    rows: np.ndarray | None = None
    names: list[str] = field(default_factory=list)
    skipped: list[tuple[int, str]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def has_labels(self) -> bool:
        return bool(len(self.labels)) and bool((self.labels >= 0).all())

    def subset(self, index: np.ndarray | slice) -> FaceSet:
        """The faces at ``index`` (a mask, positions or a slice), as a new FaceSet."""
        idx = np.arange(len(self))[index]
        return FaceSet(
            images=self.images[idx], labels=self.labels[idx], usage=self.usage[idx],
            ids=self.ids[idx], source=self.source,
            rows=None if self.rows is None else self.rows[idx],
            names=[self.names[i] for i in idx] if self.names else [],
        )

    def split_names(self) -> list[str]:
        """Split names present, in the canonical order first."""
        present = list(dict.fromkeys(self.usage.tolist()))
        order = {"Training": 0, "PublicTest": 1, "PrivateTest": 2}
        return sorted(present, key=lambda u: (order.get(u, 3), u))

    def class_counts(self) -> dict[str, list[int]]:
        """Per split, the number of faces of each class (index order 0-6)."""
        out = {}
        for u in self.split_names():
            lab = self.labels[self.usage == u]
            out[u or "all"] = np.bincount(lab[lab >= 0], minlength=NUM_CLASSES).tolist()
        return out


# --------------------------------------------------------------------------------------------
# Opening files


class _GuardedReader(io.RawIOBase):
    """A binary stream turning gzip truncation and corruption into a DataError naming the file."""

    def __init__(self, inner, path: Path) -> None:
        self.inner, self.path = inner, path

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        try:
            return self.inner.readinto(b)
        except EOFError as e:
            raise DataError(f"{self.path}: gzip stream is truncated (incomplete download?)") from e
        except (gzip.BadGzipFile, zlib.error, OSError) as e:
            raise DataError(f"{self.path}: corrupt gzip file: {e}") from e

    def close(self) -> None:
        self.inner.close()
        super().close()


def _open_binary(path: Path) -> io.BufferedReader:
    """Open a file for streaming, gunzipping it when it starts with the gzip magic number."""
    if not path.exists():
        raise DataError(f"{path}: no such file or directory")
    if path.is_dir():
        raise DataError(f"{path}: is a directory, expected a CSV file")
    try:
        f = open(path, "rb")  # noqa: SIM115  (closed by the caller's with-block)
        magic = f.peek(2)[:2]  # peek, not read+seek: pipes (<(zcat ...), FIFOs) cannot seek
    except OSError as e:
        raise DataError(f"{path}: cannot read: {e.strerror or e}") from e
    inner = gzip.GzipFile(fileobj=f) if magic == b"\x1f\x8b" else f
    return io.BufferedReader(_GuardedReader(inner, path), buffer_size=1 << 20)


def _csv_lines(path: Path) -> Iterator[tuple[int, list[bytes]]]:
    """(line number, fields as bytes) for each CSV record. Fast path: a plain split on commas;
    lines with quotes go through the csv module. UTF-16 files are re-encoded to UTF-8 first."""
    with _open_binary(path) as f:
        head = f.peek(4)[:4]
        if head[:2] in (b"\xff\xfe", b"\xfe\xff"):
            try:
                text = f.read().decode("utf-16")
            except UnicodeDecodeError as e:
                raise DataError(f"{path}: undecodable UTF-16 text: {e}") from e
            stream: Iterator[bytes] = iter(io.BytesIO(text.encode("utf-8")))
        else:
            stream = iter(f)
        line_no = 0
        pending = b""  # a quoted field spanning lines is joined until its quotes balance
        for raw in stream:
            line_no += 1
            if line_no == 1 and raw.startswith(b"\xef\xbb\xbf"):
                raw = raw[3:]  # UTF-8 byte order mark
            line = pending + raw
            if b'"' in line:
                if line.count(b'"') % 2:
                    pending = line
                    continue
                pending = b""
                try:
                    rec = next(csv.reader([line.decode("utf-8")]))
                except (UnicodeDecodeError, csv.Error) as e:
                    raise DataError(f"{path}: row {line_no}: not valid UTF-8 CSV: {e}") from e
                yield line_no, [x.encode("utf-8") for x in rec]
            else:
                yield line_no, line.rstrip(b"\r\n").split(b",")
        if pending:
            raise DataError(f"{path}: row {line_no}: unterminated quoted field")


# --------------------------------------------------------------------------------------------
# Pixel parsing

_CHUNK_ROWS = 1024  # rows collected before parsing, so memory stays bounded while streaming
_NOT_PIXEL_TEXT = b"0123456789 \t\r\n"


def _pixel_problem(field: bytes, values: np.ndarray) -> str | None:
    """Why a pixel field is not 2304 grey levels, or None if it is."""
    stray = field.translate(None, _NOT_PIXEL_TEXT)
    if stray:
        tok = next((t for t in field.split() if not t.isdigit()), stray[:8])
        return f"pixel value {tok.decode('utf-8', 'replace')!r} is not an integer in 0-255"
    if values.size and values.max() > 255:
        return f"pixel value {int(values.max())} is out of range 0-255"
    if values.size != NUM_PIXELS:
        return f"expected {NUM_PIXELS} pixel values (48x48), found {values.size}"
    return None


def _parse_pixel_chunk(fields: list[bytes]) -> tuple[np.ndarray, list[str | None]]:
    """Parse whitespace-separated grey levels; returns ``uint8 [n, 2304]`` and a problem per row.

    numpy's C text parser reads each row (``np.fromstring`` with a separator: about 4x faster
    than splitting into Python strings); a byte filter catches what it would silently stop at.
    """
    out = np.zeros((len(fields), NUM_PIXELS), dtype=np.uint8)
    problems: list[str | None] = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # raised on text it cannot parse
        for i, field in enumerate(fields):
            try:
                values = np.fromstring(field, dtype=np.int64, sep=" ")  # int32 wraps 2**32 to 0
            except ValueError:
                values = np.zeros(0, dtype=np.int64)
            problem = _pixel_problem(field, values)
            if problem is None:
                out[i] = values
            problems.append(problem)
    return out, problems


# --------------------------------------------------------------------------------------------
# CSV readers

_LAYOUTS = {
    # kind -> (label column, pixel column, usage column, id column), lower-cased
    "kaggle": ("emotion", "pixels", "usage", None),
    "train": ("label", "feature", None, None),
    "test": (None, "feature", None, "id"),
}


def _detect_layout(header: list[str], path: Path) -> tuple[str, dict[str, int]]:
    cols = {h.strip().lower(): i for i, h in enumerate(header)}
    if "pixels" in cols:  # Kaggle layout; a test file may lack 'emotion'
        kind = "kaggle"
    elif "feature" in cols and "label" in cols:
        kind = "train"
    elif "feature" in cols and "id" in cols:
        kind = "test"
    else:
        raise DataError(
            f"{path}: row 1: header {','.join(header)!r} is not a known layout; expected "
            "'emotion,pixels,Usage' (fer2013.csv), 'label,feature' (train.csv) or "
            "'id,feature' (test.csv)")
    return kind, cols


def _text(field: bytes, path: Path, line: int) -> str:
    try:
        return field.decode("utf-8").strip()
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: row {line}: undecodable text (not UTF-8): {field[:20]!r}") from e


def read_csv(path: str | Path, skip_bad_rows: bool = False) -> FaceSet:
    """Read a Kaggle ``fer2013.csv``, a course ``train.csv`` or ``test.csv`` (plain or gzipped).

    Args:
        path: the CSV file; gzip is recognised by content, not by name.
        skip_bad_rows: skip malformed rows and list them in ``FaceSet.skipped`` instead of
            raising.

    Raises:
        DataError: naming the file, the row (1-based line, header = 1) and the problem.

    Example:
        >>> faces = read_csv("fer2013.csv.gz")  # doctest: +SKIP
        >>> faces.images.shape, faces.class_counts()["Training"]  # doctest: +SKIP
    """
    path = Path(path)
    lines = _csv_lines(path)
    try:
        _, header_b = next(lines)
    except StopIteration:
        raise DataError(f"{path}: file is empty, expected a CSV header") from None
    header = [_text(h, path, 1) for h in header_b]
    kind, cols = _detect_layout(header, path)
    label_key, pixel_key, usage_key, id_key = _LAYOUTS[kind]
    i_label = cols.get(label_key) if label_key else None
    i_pix = cols[pixel_key]
    i_usage = cols.get(usage_key) if usage_key else None
    i_id = cols.get(id_key) if id_key else None
    width = len(header)

    labels: list[int] = []
    usages: list[str] = []
    ids: list[int] = []
    line_nums: list[int] = []
    chunks: list[np.ndarray] = []
    pending: list[bytes] = []
    pending_lines: list[int] = []
    keep: list[bool] = []
    skipped: list[tuple[int, str]] = []

    def bad(line: int, msg: str) -> None:
        if not skip_bad_rows:
            raise DataError(f"{path}: row {line}: {msg}")
        skipped.append((line, msg))

    def flush() -> None:
        parsed, problems = _parse_pixel_chunk(pending)
        for line, p in zip(pending_lines, problems, strict=True):
            if p is not None:
                bad(line, p)
            keep.append(p is None)
        chunks.append(parsed)
        pending.clear()
        pending_lines.clear()

    n_rows = 0
    for line, rec in lines:
        if len(rec) == 1 and not rec[0].strip():
            continue  # blank line
        n_rows += 1
        if len(rec) < width:
            bad(line, f"expected {width} columns ({','.join(header)}), found {len(rec)}")
            continue
        label = -1
        if i_label is not None:
            s = _text(rec[i_label], path, line)
            if not s.lstrip("-").isdigit():
                bad(line, f"label {s!r} is not an integer 0-6")
                continue
            label = int(s)
            if not 0 <= label < NUM_CLASSES:
                bad(line, f"label {label} is outside 0-6")
                continue
        ident = len(ids)
        if i_id is not None:
            s = _text(rec[i_id], path, line)
            if not s.lstrip("-").isdigit():
                bad(line, f"id {s!r} is not an integer")
                continue
            ident = int(s)
        labels.append(label)
        usages.append(_text(rec[i_usage], path, line) if i_usage is not None else "")
        ids.append(ident)
        line_nums.append(line)
        pending.append(rec[i_pix])
        pending_lines.append(line)
        if len(pending) == _CHUNK_ROWS:
            flush()
    if pending:
        flush()
    if not n_rows:
        raise DataError(f"{path}: no faces in the file (header only)")
    mask = np.asarray(keep, dtype=bool)
    if not mask.any():  # also when every row was skipped before its pixels were parsed
        raise DataError(f"{path}: every one of its {n_rows} rows is malformed; first: row "
                        f"{skipped[0][0]}: {skipped[0][1]}")
    images = np.concatenate(chunks)[mask].reshape(-1, IMAGE_SIZE, IMAGE_SIZE)
    skipped.sort()
    return FaceSet(
        images=images, labels=np.asarray(labels, dtype=np.int64)[mask],
        usage=np.asarray(usages, dtype=object)[mask], ids=np.asarray(ids, dtype=np.int64)[mask],
        source=str(path), rows=np.asarray(line_nums, dtype=np.int64)[mask], skipped=skipped)


# --------------------------------------------------------------------------------------------
# Image folders and archives


def _classify_path(parts: tuple[str, ...]) -> tuple[str, int] | None:
    """(split, class) from the folders above an image, or None if they name no class."""
    if not parts:
        return None
    label = _EMOTION_ALIASES.get(parts[-1].strip().lower())
    if label is None:
        return None
    split = ""
    if len(parts) >= 2:
        split = _SPLIT_ALIASES.get(parts[-2].strip().lower(), parts[-2])
    return split, label


def _iter_folder(root: Path) -> Iterator[tuple[str, tuple[str, ...], bytes | Path]]:
    for p in sorted(root.rglob("*")):
        if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES:
            yield str(p), p.relative_to(root).parts[:-1], p


def _iter_archive(path: Path) -> Iterator[tuple[str, tuple[str, ...], bytes | Path]]:
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as z:
                for info in sorted(z.infolist(), key=lambda i: i.filename):
                    name = info.filename
                    if not info.is_dir() and Path(name).suffix.lower() in IMAGE_SUFFIXES:
                        yield f"{path}:{name}", Path(name).parts[:-1], z.read(info)
            return
        with tarfile.open(path, "r:*") as t:
            for m in sorted(t.getmembers(), key=lambda m: m.name):
                if m.isfile() and Path(m.name).suffix.lower() in IMAGE_SUFFIXES:
                    f = t.extractfile(m)
                    if f is not None:
                        yield f"{path}:{m.name}", Path(m.name).parts[:-1], f.read()
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError) as e:
        raise DataError(f"{path}: cannot read archive: {e}") from e


def read_image_folder(path: str | Path, skip_bad_rows: bool = False) -> FaceSet:
    """Read ``<root>/<split>/<emotion>/*`` or ``<root>/<emotion>/*`` (folder or archive).

    Split folders ``train``, ``validation`` and ``test`` map to Training, PublicTest and
    PrivateTest; class folders are emotion names (``happy``) or indices (``3``). Images of another
    size are resized to 48x48, colour is converted to grey.
    """
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such file or directory")
    items = _iter_folder(path) if path.is_dir() else _iter_archive(path)
    images, labels, usage, names, skipped = [], [], [], [], []
    for name, parents, src in items:
        where = _classify_path(tuple(x for x in parents if x not in (".", "")))
        if where is None:
            continue
        try:
            g = read_gray(src, IMAGE_SIZE, name=name)
        except DataError as e:
            if not skip_bad_rows:
                raise
            skipped.append((len(images) + len(skipped), str(e)))
            continue
        images.append(g)
        labels.append(where[1])
        usage.append(where[0])
        names.append(name)
    if not images:
        raise DataError(f"{path}: found no images under class folders named "
                        f"{'/'.join(EMOTIONS)} (or 0-6)")
    return FaceSet(images=np.stack(images), labels=np.asarray(labels, dtype=np.int64),
                   usage=np.asarray(usage, dtype=object), ids=np.arange(len(images)),
                   source=str(path), names=names, skipped=skipped)


def load_faces(path: str | Path, skip_bad_rows: bool = False) -> FaceSet:
    """Read any supported data: a CSV (plain/gzipped), an image folder, or an archive of one."""
    p = Path(path)
    if p.is_dir():
        return read_image_folder(p, skip_bad_rows)
    name = p.name.lower()
    if name.endswith((".zip", ".tar", ".tar.gz", ".tgz")):
        return read_image_folder(p, skip_bad_rows)
    return read_csv(p, skip_bad_rows)


# --------------------------------------------------------------------------------------------
# Splits: every choice of faces by split goes through select_split (the faces of one named
# split) or make_split (a training/validation pair from a --val-split spec, which holds out
# with split_last or split_random).


def select_split(faces: FaceSet, split: str | None) -> FaceSet:
    """Faces of one named split.

    Args:
        faces: any faces.
        split: ``all`` or None: every face; ``test``: every row not for training (PublicTest
            and PrivateTest) where the file has Training rows too, else every face; ``auto``:
            the PublicTest (validation) rows where the file has them, else every face; or a
            Usage name or its alias (``Training``/``train``, ``PublicTest``/``val``, ...).

    Raises:
        DataError: the file has no rows of that split.

    Example:
        >>> from ferlab.synthetic import make_split_faces
        >>> len(select_split(make_split_faces(70, 14), "val"))
        14
    """
    if split in (None, "all"):
        return faces
    names = faces.split_names()
    if split == "test":  # every row that is not for training (PublicTest and PrivateTest)
        test = faces.usage != "Training"
        return faces.subset(test) if test.any() and "Training" in names else faces
    if split == "auto":
        return faces.subset(faces.usage == "PublicTest") if "PublicTest" in names else faces
    canon = _SPLIT_ALIASES.get(split.lower(), split)
    if canon not in names:
        raise DataError(f"{faces.source}: no {split!r} rows; the file has {names or ['none']}")
    return faces.subset(faces.usage == canon)


def make_split(faces: FaceSet, spec: str = "auto", seed: int = 0) -> tuple[FaceSet, FaceSet]:
    """Train and validation sets from a split spec.

    ``auto``: Training/PublicTest when the data has them, else ``stratified:0.1``;
    ``usage``: Training vs PublicTest; ``last:N``; ``random:F``; ``stratified:F``. The last
    three hold out from the Training rows only, where the file has them.

    Raises:
        DataError: an unknown or impossible spec.
    """
    spec = spec.strip().lower()
    splits = set(faces.usage.tolist())
    if spec == "auto":
        spec = "usage" if {"Training", "PublicTest"} <= splits else "stratified:0.1"
    if spec == "usage":
        if not {"Training", "PublicTest"} <= splits:
            raise DataError(f"{faces.source}: --val-split usage needs Training and PublicTest "
                            f"rows, found {sorted(splits)}; use last:N or stratified:F")
        return select_split(faces, "Training"), select_split(faces, "PublicTest")
    kind, _, arg = spec.partition(":")
    # Hold out from the training rows only: test rows of a full file must never be trained on.
    pool = select_split(faces, "Training") if "Training" in splits else faces
    try:
        if kind == "last":
            return split_last(pool, int(arg))
        if kind in ("random", "stratified"):
            return split_random(pool, float(arg), seed, stratify=kind == "stratified")
    except ValueError as e:
        if isinstance(e, DataError):
            raise
        raise DataError(f"bad split {spec!r}: {e}") from e
    raise DataError(f"unknown split {spec!r}; use auto, usage, last:N, random:F or stratified:F")


def split_last(faces: FaceSet, n: int) -> tuple[FaceSet, FaceSet]:
    """The last ``n`` faces for validation, the rest for training (seed report 000's split)."""
    if not 0 < n < len(faces):
        raise DataError(f"{faces.source}: cannot hold out the last {n} of {len(faces)} faces")
    return faces.subset(slice(0, len(faces) - n)), faces.subset(slice(len(faces) - n, None))


def split_random(faces: FaceSet, fraction: float, seed: int = 0, stratify: bool = False
                 ) -> tuple[FaceSet, FaceSet]:
    """A seeded random ``fraction`` for validation, optionally stratified by class."""
    if not 0 < fraction < 1:
        raise DataError(f"validation fraction must be in (0, 1), got {fraction}")
    rng = np.random.default_rng(seed)
    if stratify:
        val_idx = []
        for c in np.unique(faces.labels):
            idx = np.flatnonzero(faces.labels == c)
            k = int(round(fraction * len(idx)))
            val_idx.append(rng.permutation(idx)[:k])
        val = np.sort(np.concatenate(val_idx))
    else:
        k = int(round(fraction * len(faces)))
        val = np.sort(rng.permutation(len(faces))[:k])
    mask = np.zeros(len(faces), dtype=bool)
    mask[val] = True
    if mask.all() or not mask.any():
        raise DataError(f"{faces.source}: a {fraction} split of {len(faces)} faces leaves a side "
                        "empty")
    return faces.subset(~mask), faces.subset(mask)
