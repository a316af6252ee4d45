"""``ferlab predict --image``: every face of a photo, or of every photo in a folder.

Example:
    >>> predict_photos("bundled", "group.jpg", out="annotated.png")  # doctest: +SKIP
"""

from __future__ import annotations

import sys
from pathlib import Path

from ..errors import DataError, FerlabError
from ..io_utils import write_json
from .draw import annotate, save_png
from .photo import list_photos
from .recognizer import Recognizer, photo_record


def _annotated_path(out: Path, photo: Path, many: bool) -> Path:
    if not many:
        return out
    return out / f"{photo.stem}.annotated.png"


def predict_photos(model: str, image: str, out: str | None = None, json_path: str | None = None,
                   tta: bool | str = False, detector: str | None = None,
                   min_face: float | None = None, precision: str = "auto",
                   threads: int = 0, runtime: str | None = "auto") -> int:
    """``ferlab predict --image``: every face of a photo (or every photo in a folder).

    Prints one line per face (box, label, probabilities) and says so when a photo has no face.
    ``out`` is the annotated image for one photo, or a folder for a folder of photos (one
    ``NAME.annotated.png`` each). ``json_path`` gets ``{"model", "precision", "photos":
    [{"photo", "width", "height", "faces": [{"box", "detector", "label", "probabilities"}]}]}``.
    In a folder, a file that cannot be decoded is reported and skipped.

    Returns:
        0 when at least one face was found, 1 when no photo had a face.

    Raises:
        FerlabError: the model or a single photo cannot be read (the CLI prints one line).
    """
    photos = list_photos(image)
    many = Path(image).is_dir()
    rec = Recognizer(model, tta=tta, detector=detector, min_face=min_face, precision=precision,
                     threads=threads, runtime=runtime)
    records, n_faces, skipped = [], 0, 0
    out_p = Path(out) if out else None
    if out_p is not None and many and out_p.suffix.lower() in (".png", ".jpg", ".jpeg"):
        raise DataError(f"--out {out}: with a folder of photos, --out must be a folder")
    for p in photos:
        try:
            photo, faces = rec.analyze(p)
            faces = sorted(faces, key=lambda f: (f.box.x, f.box.y))  # numbered left to right
        except DataError as e:
            if not many:
                raise
            print(f"skipped {e}", file=sys.stderr)
            skipped += 1
            continue
        n_faces += len(faces)
        h, w = photo.gray.shape
        if not faces:
            print(f"{p}: no face found ({w}x{h} pixels)")
        else:
            print(f"{p}: {len(faces)} face{'s' if len(faces) > 1 else ''}")
            for i, f in enumerate(faces):
                b = f.box
                top = sorted(f.probabilities.items(), key=lambda kv: -kv[1])[:3]
                print(f"  face {i}: box x={b.x} y={b.y} w={b.w} h={b.h}  {f.label} "
                      f"{f.score:.0%}  (" + ", ".join(f"{k} {v:.0%}" for k, v in top) + ")")
        records.append(photo_record(str(p), photo, faces))
        if out_p is not None:
            dest = save_png(annotate(photo.rgb, faces), _annotated_path(out_p, p, many))
            if not many:
                print(f"wrote {dest}")
    if out_p is not None and many:
        print(f"wrote {len(records)} annotated photos to {out_p}")
    if json_path:
        write_json(json_path, {"model": rec.model_name, "precision": rec.computes_in,
                               "photos": records})
        print(f"wrote {json_path}")
    if many:
        print(f"{len(records)} photos, {n_faces} faces" + (f", {skipped} skipped" if skipped
                                                           else ""))
    if not records:
        raise FerlabError(f"{image}: no photo could be read")
    return 0 if n_faces else 1
