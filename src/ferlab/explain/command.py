"""What ``ferlab explain`` does, as library functions the CLI calls (``cmd_explain`` stays thin).

:func:`explain_to_folder` writes, for each method asked for, PNG grids and the raw maps
(``.npy``) into one folder, plus ``faces.json`` (which faces, true and predicted labels) and,
with ``check=True``, ``check.json`` / ``check.png`` (deletion/insertion per method).
"""

from __future__ import annotations

import io
import re
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch

from ..constants import EMOTIONS
from ..data import load_faces, select_split
from ..errors import ConfigError, DataError
from ..io_utils import atomic_write, write_json
from .base import conv_layers, get_explainer, list_methods
from .checks import deletion_insertion
from .feature_maps import feature_maps
from .filter_emotion import filter_emotion, write_filter_emotion_csv
from .filters import visualize_filters
from .localisation import box_test_faces, localisation_check, reference_model
from .select import Selection, parse_policy, select_faces, select_images

# Methods of the CLI beyond the attribution maps.
EXTRA_METHODS = ("filters", "feature-maps", "filter-emotion")
NEEDS_FACES = ("feature-maps",)


def all_method_names() -> list[str]:
    return [*list_methods(), *EXTRA_METHODS]


def parse_methods(text: str) -> list[str]:
    """``"saliency,gradcam"`` -> list; ``"all"`` -> every attribution method."""
    names = [s.strip().lower() for s in text.split(",") if s.strip()]
    out: list[str] = []
    for n in names:
        if n == "all":
            out.extend(m for m in list_methods() if m not in out)
        elif n in all_method_names():
            if n not in out:
                out.append(n)
        else:
            raise ConfigError(f"unknown method {n!r}; choose from: {', '.join(all_method_names())}"
                              " or all")
    if not out:
        raise ConfigError("no method given")
    return out


def save_npy(path: str | Path, array: np.ndarray) -> Path:
    """Write ``array`` as ``.npy`` atomically."""
    buf = io.BytesIO()
    np.save(buf, np.asarray(array))
    return atomic_write(path, lambda p: p.write_bytes(buf.getvalue()))


def crop_photo(path: str | Path) -> np.ndarray:
    """The largest face of a photo, cropped like FER2013 (``ferlab.faces``), uint8 48x48.

    A small, nearly square picture (at most 96 px a side) is taken whole as an already cropped
    face, as ``ferlab predict`` does.

    Raises:
        DataError: no face found in the photo.
    """
    # Only photos need OpenCV and the detectors: kept off the path of explaining data files.
    from ..faces.crop import crop_face
    from ..faces.detect import detect_faces, whole_face_box
    from ..faces.photo import load_photo

    photo = load_photo(path)
    whole = whole_face_box(photo.gray.shape)
    if whole is not None:
        return crop_face(photo.gray, whole)
    boxes = detect_faces(photo.gray)
    if not boxes:
        raise DataError(f"{path}: no face found in the photo (try a frontal, well-lit face, or "
                        "crop it yourself)")
    return crop_face(photo.gray, boxes[0])


def choose_faces(model: torch.nn.Module, data: str | Path | None = None,
                 images: Sequence[str | Path] = (), select: str = "random-correct",
                 per_class: int = 1, split: str = "auto", seed: int = 0):
    """The faces to explain and the FaceSet they came from (``None`` for photos)."""
    if images:
        return select_images(model, images, crop=crop_photo), None
    if data is None:
        raise ConfigError("give faces to explain: --data FILE or --image PHOTO")

    faces = select_split(load_faces(data), split)
    policy, idx = parse_policy(select)
    return select_faces(model, faces, policy, per_class=per_class, seed=seed, indices=idx), faces


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text)


def explain_to_folder(model: torch.nn.Module, out: str | Path, methods: Sequence[str],
                      sel: Selection | None = None, faces=None, layer: str | None = None,
                      check: bool = False, filter_options: dict | None = None,
                      method_options: dict | None = None,
                      log: Callable[[str], None] = print) -> dict:
    """Run ``methods`` and write their figures and arrays into ``out``.

    Args:
        model: the model to explain.
        out: output folder (created).
        methods: attribution method names and/or ``filters``, ``feature-maps``,
            ``filter-emotion``.
        sel: the faces for attribution methods and feature maps.
        faces: the data set for ``filter-emotion``.
        layer: layer for Grad-CAM-type methods, filters, feature maps, filter-emotion
            (comma-separated names allowed for filters and filter-emotion).
        check: also score each attribution method by deletion/insertion on ``model``, and by
            its localisation ratio on small-box synthetic faces (a reference model trained for
            the purpose in seconds, :mod:`ferlab.explain.localisation`).
        filter_options: keyword arguments of :func:`visualize_filters`.
        method_options: per method, keyword arguments of its explainer.

    Returns:
        A summary: per method the seconds taken and the files written; the check scores.

    Example:
        >>> sel, faces = choose_faces(model, "fer2013.csv")  # doctest: +SKIP
        >>> explain_to_folder(model, "explain", ["gradcam"], sel)  # doctest: +SKIP
    """
    from . import figures  # matplotlib, loaded only when there are figures to write

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    summary: dict = {"methods": {}}
    attribution = [m for m in methods if m in list_methods()]
    if (attribution or "feature-maps" in methods) and (sel is None or len(sel) == 0):
        raise DataError("no faces to explain (the selection is empty)")
    if sel is not None:
        write_json(out / "faces.json", [
            {"name": sel.names[i], "index": int(sel.index[i]),
             "true": EMOTIONS[sel.labels[i]] if sel.labels[i] >= 0 else None,
             "pred": EMOTIONS[int(sel.preds[i])],
             "probs": {e: round(float(p), 4) for e, p in zip(EMOTIONS, sel.probs[i], strict=True)}}
            for i in range(len(sel))])
        save_npy(out / "faces.npy", sel.images)
        for note in sel.notes:
            log(f"note: {note}")
    maps: dict[str, np.ndarray] = {}
    signed: dict[str, bool] = {}
    x = sel.inputs() if sel is not None else None
    target = torch.from_numpy(sel.preds) if sel is not None else None
    opts = method_options or {}
    for name in attribution:
        t0 = time.perf_counter()
        explainer = get_explainer(name, model, layer, **opts.get(name, {}))
        m = explainer.attribute(x, target)[:, 0].numpy()
        seconds = time.perf_counter() - t0
        maps[name], signed[name] = m, explainer.signed
        files = [save_npy(out / f"{name}.npy", m.astype(np.float32)),
                 figures.explanation_grid(sel, m, name, out / f"{name}.png", explainer.signed)]
        summary["methods"][name] = {"seconds": round(seconds, 3),
                                    "seconds_per_face": round(seconds / len(sel), 3),
                                    "layer": explainer.layer_name, "files": [str(f) for f in files]}
        log(f"{name}: {len(sel)} faces in {seconds:.2f} s -> {files[1]}")
    if len(maps) > 1:
        p = figures.methods_grid(sel, maps, out / "methods.png", signed)
        log(f"all methods side by side -> {p}")
    if check and maps:
        results = {n: deletion_insertion(model, x, m[:, None], target) for n, m in maps.items()}
        g = torch.Generator().manual_seed(0)
        results["random"] = deletion_insertion(model, x, torch.rand(x.shape, generator=g), target)
        scores = {n: r.summary() for n, r in results.items()}
        figures.deletion_insertion_figure(results, out / "check.png")
        summary["check"] = scores
        log("localisation check: training the small-box reference model (seconds) ...")
        local = localisation_scores(list(maps), opts)
        summary["localisation"] = local
        write_json(out / "check.json", {"faces": len(sel), "scores": scores,
                                        "localisation": local,
                                        "about": "deletion: area under the predicted-class "
                                                 "probability as the top pixels are blurred away "
                                                 "(lower is better); insertion: as they are put "
                                                 "back into a blurred face (higher is better); "
                                                 "localisation: on synthetic faces whose class "
                                                 "lives in one small box, median share of the "
                                                 "map's mass in the box / the box's share of the "
                                                 "image (1 = chance)"})
    layers = [s.strip() for s in layer.split(",")] if layer else [None]
    if "filters" in methods:
        for ln in layers:
            t0 = time.perf_counter()
            res = visualize_filters(model, ln, **(filter_options or {}))
            stem = f"filters_{_slug(res.layer)}"
            files = [figures.filter_grid(res, out / f"{stem}.png"),
                     save_npy(out / f"{stem}.npy", res.images.astype(np.float32))]
            summary["methods"].setdefault("filters", {})[res.layer] = {
                "seconds": round(time.perf_counter() - t0, 3), "files": [str(f) for f in files],
                "activation": res.activation.round(4).tolist()}
            log(f"filters of {res.layer}: {len(res.filters)} images -> {files[0]}")
    if "feature-maps" in methods:
        for ln in layers:
            for i in range(len(sel)):
                fm = feature_maps(model, sel.images[i], ln)
                lname = ln or _first_conv(model)
                stem = f"feature_maps_{_slug(lname)}_{_slug(sel.names[i])}"
                files = [figures.feature_map_grid(sel.images[i], fm, lname, out / f"{stem}.png",
                                                  sel.title(i).replace("\n", ", ")),
                         save_npy(out / f"{stem}.npy", fm.astype(np.float32))]
                summary["methods"].setdefault("feature-maps", []).extend(str(f) for f in files)
            log(f"feature maps of {ln or _first_conv(model)} for {len(sel)} faces -> {out}")
    if "filter-emotion" in methods:
        if faces is None:
            raise ConfigError("filter-emotion needs labelled faces: give --data FILE")
        tables = [filter_emotion(model, faces, ln) for ln in layers]
        files = [write_filter_emotion_csv(tables, out / "filter_emotion.csv"),
                 figures.filter_emotion_figure(tables, out / "filter_emotion.png")]
        summary["methods"]["filter-emotion"] = {"files": [str(f) for f in files]}
        summary["filter_emotion"] = tables
        log(f"filter -> emotion table ({sum(len(t.class_means) for t in tables)} filters) -> "
            f"{files[0]}")
    return summary


# Options that name things of the user's model, not of the reference model.
_MODEL_SPECIFIC = ("layer",)


def localisation_scores(methods: Sequence[str], method_options: dict | None = None
                        ) -> dict[str, dict[str, float]]:
    """Localisation ratio per method on small-box synthetic faces (see
    :func:`~ferlab.explain.localisation.localisation_check`), with the methods' options as the
    user chose them (layers excepted: the reference model has its own)."""

    model = reference_model()
    x, labels, boxes = box_test_faces()
    opts = {n: {k: v for k, v in (method_options or {}).get(n, {}).items()
                if k not in _MODEL_SPECIFIC} for n in methods}
    return localisation_check(model, x, boxes, methods, torch.from_numpy(labels), opts)


def _first_conv(model: torch.nn.Module) -> str:

    return conv_layers(model)[0]


def format_layers(rows: list[dict]) -> str:
    """The ``--list-layers`` table; the layers Grad-CAM uses by default are marked."""
    # columns as wide as their longest entry (an ensemble's names are long: members.0.body.0.0)
    shapes = ["x".join(map(str, r["shape"])) for r in rows]
    wn = max([len("layer")] + [len(r["name"]) for r in rows]) + 2
    wt = max([len("type")] + [len(r["type"]) for r in rows]) + 2
    ws = max([len("output")] + [len(s) for s in shapes]) + 2
    lines = [f"{'layer':<{wn}}{'type':<{wt}}{'output':<{ws}}".rstrip()]
    for r, shape in zip(rows, shapes, strict=True):
        mark = "conv" + ("  <- Grad-CAM default" if r.get("cam_default") else "") if r["conv"] \
            else ""
        lines.append(f"{r['name']:<{wn}}{r['type']:<{wt}}{shape:<{ws}}{mark}".rstrip())
    cam = [r["name"] for r in rows if r.get("cam_default")]
    if cam:
        per_member = " of each member" if any(n.startswith("members.") for n in cam) else ""
        lines.append(f"Grad-CAM's default: the deepest conv layer of each grid size{per_member} "
                     f"({', '.join(cam)}), their maps multiplied: the deepest says which class, "
                     "the finest where" + ("; the members' maps are averaged" if per_member
                                           else "") +
                     ". --layer NAME[,NAME...] chooses others.")
    return "\n".join(lines)


# A method whose deletion area is not this much below the random map's (or insertion area above
# it) is marked: differences this small are within what the face sample and ties give.
RANDOM_MARGIN = 0.02


def random_verdict(s: dict[str, float], rand: dict[str, float] | None,
                   margin: float = RANDOM_MARGIN) -> str:
    """``""`` when a method beats the random map on both curves, else what it fails on."""
    if rand is None:
        return ""
    bad = [k for k, better in (("deletion", rand["deletion"] - s["deletion"]),
                               ("insertion", s["insertion"] - rand["insertion"]))
           if better < margin]
    return f"no better than random on {' and '.join(bad)}" if bad else ""


def format_check(scores: dict[str, dict[str, float]],
                 localisation: dict[str, dict[str, float]] | None = None) -> str:
    """The ``--check`` table, best (highest insertion - deletion) first, ``random`` included;
    methods that do not beat the random map are marked, and with ``localisation`` each method's
    ratio on small-box synthetic faces stands beside its scores."""
    local = localisation or {}
    head = f"{'method':<22}{'deletion':>9}{'insertion':>10}{'ins-del':>9}"
    if local:
        head += f"{'in-box':>8}"
    lines = [head, "  (deletion: lower is better; insertion: higher is better"
             + ("; in-box: mass in the evidence box / chance on small-box synthetic faces, "
                "median; 1 = chance" if local else "") + ")"]
    rand = scores.get("random")
    for n, s in sorted(scores.items(), key=lambda kv: -kv[1]["insertion_minus_deletion"]):
        row = (f"{n:<22}{s['deletion']:>9.3f}{s['insertion']:>10.3f}"
               f"{s['insertion_minus_deletion']:>9.3f}")
        if local:
            row += f"{local[n]['median']:>7.2f}x" if n in local else f"{'':>8}"
        verdict = random_verdict(s, rand) if n != "random" else ""
        lines.append(row + (f"  <- {verdict} (margin {RANDOM_MARGIN})" if verdict else ""))
    return "\n".join(lines)
