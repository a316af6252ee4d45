"""Drawing a photo's faces: each box, its label and seven probability bars, one colour a class.

Example:
    >>> faces = rec.detect_emotions(photo.rgb)                     # doctest: +SKIP
    >>> save_png(annotate(photo.rgb, faces), "annotated.png")      # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from ..constants import EMOTIONS
from ..io_utils import atomic_write
from .recognizer import RecognizedFace

# One colour per class (box, label, bar), chosen to read on photos and for colour-blind viewers
# (Okabe-Ito palette).
COLORS: dict[str, tuple[int, int, int]] = {
    "angry": (213, 94, 0), "disgust": (0, 158, 115), "fear": (204, 121, 167),
    "happy": (240, 228, 66), "sad": (0, 114, 178), "surprise": (230, 159, 0),
    "neutral": (190, 190, 190),
}


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError):  # Pillow without FreeType: the fixed bitmap font
        return ImageFont.load_default()


def annotate(rgb: np.ndarray, faces: list[RecognizedFace], bars: bool = True) -> Image.Image:
    """The photo with each face's box, label and (``bars``) seven probability bars drawn on.

    A photo without faces gets a banner saying so, so an annotated file is never mistaken for a
    photo that was not analysed.

    Example:
        >>> faces = rec.detect_emotions(photo.rgb)                 # doctest: +SKIP
        >>> annotate(photo.rgb, faces).save("annotated.png")       # doctest: +SKIP
    """
    img = Image.fromarray(np.asarray(rgb, dtype=np.uint8)).convert("RGB")
    W, H = img.size
    draw = ImageDraw.Draw(img, "RGBA")
    if not faces:
        fs = max(12, min(W, H) // 20)
        font = _font(fs)
        draw.rectangle([0, 0, W, fs + 10], fill=(0, 0, 0, 170))
        draw.text((6, 4), "no face found", fill=(255, 255, 255), font=font)
        return img
    for f in faces:
        b, color = f.box, COLORS[f.label]
        lw = max(2, round(max(b.w, b.h) / 60))
        draw.rectangle([b.x, b.y, b.x + b.w - 1, b.y + b.h - 1], outline=color, width=lw)
        fs = int(np.clip(b.h / 7, 11, 40))
        font = _font(fs)
        text = f"{f.label} {f.score:.0%}"
        tw = int(draw.textlength(text, font=font))
        ty = b.y - fs - 8 if b.y - fs - 8 >= 0 else b.y + b.h + 2
        draw.rectangle([b.x, ty, b.x + tw + 8, ty + fs + 6], fill=color + (220,))
        draw.text((b.x + 4, ty + 2), text, fill=(0, 0, 0), font=font)
        if bars:
            _draw_bars(draw, f, W, H)
    return img


def _draw_bars(draw: ImageDraw.ImageDraw, f: RecognizedFace, W: int, H: int) -> None:
    """Seven labelled probability bars beside the box (right if there is room, else left)."""
    b = f.box
    row = int(np.clip(b.h / 7, 11, 28))
    fs = max(9, row - 3)
    font = _font(fs)
    name_w = int(max(draw.textlength(e, font=font) for e in EMOTIONS)) + 6
    bar_w = max(40, int(b.w * 0.6))
    panel_w, panel_h = name_w + bar_w + 8, row * len(EMOTIONS) + 6
    x0 = b.x + b.w + 4
    if x0 + panel_w > W:
        x0 = b.x - panel_w - 4 if b.x - panel_w - 4 >= 0 else max(0, W - panel_w)
    y0 = int(np.clip(b.y, 0, max(0, H - panel_h)))
    draw.rectangle([x0, y0, x0 + panel_w, y0 + panel_h], fill=(0, 0, 0, 150))
    for i, e in enumerate(EMOTIONS):
        y = y0 + 3 + i * row
        p = f.probabilities[e]
        draw.text((x0 + 4, y), e, fill=(255, 255, 255), font=font)
        bx = x0 + 4 + name_w
        draw.rectangle([bx, y + 2, bx + bar_w, y + row - 3], outline=(255, 255, 255, 90))
        if p > 0:
            draw.rectangle([bx, y + 2, bx + max(1, round(bar_w * p)), y + row - 3],
                           fill=COLORS[e] + (235,))


def save_png(img: Image.Image, path: str | Path) -> Path:
    """Write a Pillow image atomically (format from the suffix: png, jpg, ...)."""
    path = Path(path)
    fmt = {"jpg": "JPEG", "jpeg": "JPEG"}.get(path.suffix.lower().lstrip("."), None)
    return atomic_write(path, lambda p: img.save(p, format=fmt or "PNG"))
