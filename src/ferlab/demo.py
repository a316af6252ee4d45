"""``ferlab demo``: the bundled model on a bundled photo, with nothing to download.

Writes to one folder: the annotated photo, the faces as JSON, each face's explanations (saliency,
Grad-CAM, LIME) as one figure, and ``index.html``, a self-contained page with all of them.

Example:
    >>> result = run_demo("demo-output")   # doctest: +SKIP
    >>> result.page                        # doctest: +SKIP
    PosixPath('demo-output/index.html')
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .assets import DEMO_PHOTO, bundled_model_path
from .constants import EMOTIONS
from .errors import ModelError
from .faces.draw import annotate, save_png
from .faces.recognizer import RecognizedFace, Recognizer, photo_record
from .io_utils import write_json
from .model_spec import BUNDLED, is_bundled
from .report.page import Section, figure, para, render_page, table, write_page

DEMO_METHODS = ("saliency", "gradcam", "lime")
# Who found a face, by its box kind, for the page's text.
FOUND_BY = {"blazeface": "MediaPipe's BlazeFace network", "frontal": "OpenCV's Haar cascade",
            "profile": "OpenCV's Haar profile cascade", "whole": "the whole picture (a face crop)"}
MAX_EXPLAINED = 4  # faces explained in a group photo (LIME takes about a second each)


@dataclass
class DemoResult:
    out_dir: Path
    photo: Path
    faces: list[RecognizedFace]
    annotated: Path
    json: Path
    explanations: Path | None
    page: Path
    notes: list[str] = field(default_factory=list)


def explanation_figure(rec: Recognizer, faces: list[RecognizedFace], methods=DEMO_METHODS):
    """One row per face: the 48x48 crop the model saw, then each method's map over it."""
    from .plots import plt  # matplotlib loads only when there is a figure to draw

    n = min(len(faces), MAX_EXPLAINED)
    cols = 1 + len(methods)
    fig, axes = plt.subplots(n, cols, figsize=(2.1 * cols, 2.3 * n), squeeze=False)
    for i, f in enumerate(faces[:n]):
        axes[i, 0].imshow(f.crop, cmap="gray", vmin=0, vmax=255)
        axes[i, 0].set_title(f"face {i}: {f.label} {f.score:.0%}", fontsize=9)
        for j, m in enumerate(methods, start=1):
            heat = rec.explain(f, m)
            # Signed maps (LIME weights) are shown by magnitude, scaled per map: the question is
            # where the model looks, and each method has its own units.
            heat = np.abs(heat)
            heat = heat / heat.max() if heat.max() > 0 else heat
            axes[i, j].imshow(f.crop, cmap="gray", vmin=0, vmax=255)
            axes[i, j].imshow(heat, cmap="jet", alpha=0.45, vmin=0, vmax=1)
            axes[i, j].set_title(m, fontsize=9)
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    return fig


def run_demo(out_dir: str | Path = "demo-output", model: str | Path = BUNDLED,
             photo: str | Path | None = None, methods=DEMO_METHODS,
             precision: str = "auto", threads: int = 0) -> DemoResult:
    """Run the recognizer on ``photo`` (default: the bundled astronaut) and write everything.

    ``precision`` (``auto``, ``fp32`` or ``bf16``) and ``threads`` are the classifier's; see
    :class:`~ferlab.faces.recognizer.Recognizer`.

    Raises:
        ModelError: the bundled model is not installed (the message says what to do instead).
    """
    if is_bundled(model):
        shipped = bundled_model_path() if str(model) == BUNDLED else bundled_model_path(str(model))
        if not shipped.exists():
            raise ModelError(f"the {model} model is missing ({shipped}); run the demo with a "
                             "model you trained: ferlab demo --model RUN_DIR (ferlab train "
                             "makes one)")
    out = Path(out_dir)
    photo_path = Path(photo) if photo else DEMO_PHOTO
    rec = Recognizer(model, precision=precision, threads=threads)
    img, faces = rec.analyze(photo_path)
    annotated = save_png(annotate(img.rgb, faces), out / "annotated.png")
    json_path = write_json(out / "faces.json", {"model": rec.model_name,
                                                "precision": rec.computes_in,
                                                "photos": [photo_record(str(photo_path), img,
                                                                        faces)]})
    expl = None
    notes = []
    if faces:
        expl_fig = explanation_figure(rec, faces, methods)
        from .plots import save_figure  # (as above)

        expl = save_figure(expl_fig, out / "explanations.png")
        if len(faces) > MAX_EXPLAINED:
            notes.append(f"{len(faces)} faces found; the first {MAX_EXPLAINED} are explained")
    else:
        notes.append("no face was found in the photo")

    found_by = sorted({FOUND_BY.get(f.box.kind, f.box.kind) for f in faces}) or [
        "the face detector"]
    s1 = Section("photo", "Faces and emotions").add(
        para(f"{len(faces)} face{'s' if len(faces) != 1 else ''} found in "
             f"{photo_path.name} ({img.gray.shape[1]}x{img.gray.shape[0]} pixels) with "
             f"{' and '.join(found_by)}, cropped like FER2013 faces (48x48 grey) and "
             f"classified by {rec.model_name}."),
        figure(annotated, f"{photo_path.name}: boxes, labels and probabilities"))
    if faces:
        s1.add(table(["face", "box (x, y, w, h)", *EMOTIONS],
                     [[f"{i}: {f.label}", f"{f.box.x}, {f.box.y}, {f.box.w}, {f.box.h}",
                       *[f"{f.probabilities[e]:.2f}" for e in EMOTIONS]]
                      for i, f in enumerate(faces)], caption="class probabilities per face"))
    sections = [s1]
    if expl is not None:
        sections.append(Section("explanations", "Where the model looks").add(
            para("Each map is drawn over the 48x48 face the model saw, for the predicted class. "
                 "Saliency: gradient of the class score per pixel. Grad-CAM: the last conv "
                 "layer's activations weighted by their gradients. LIME: a linear model over "
                 "superpixels switched on and off. Brighter means more weight (magnitude, "
                 "scaled per map)."),
            figure(expl, "explanations per face", wide=True)))
    for n in notes:
        s1.add(para(n))
    html = render_page("ferlab demo", sections,
                       meta=[f"photo: {photo_path}", f"model: {rec.model_name}"])
    page = write_page(out / "index.html", html)
    return DemoResult(out_dir=out, photo=photo_path, faces=faces, annotated=annotated,
                      json=json_path, explanations=expl, page=page, notes=notes)
