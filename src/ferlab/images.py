"""Decoding image files to grey levels, whatever mode they come in.

One function for every place that opens an image (data folders, photos, the demo), so EXIF
orientation, RGBA, CMYK, 16-bit and palette images are handled the same way everywhere.
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import DataError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".pgm")

# Pillow warns above this many pixels and raises at twice it; make both an error for us.
MAX_PIXELS = 64_000_000


def open_image(source: str | Path | bytes, name: str | None = None) -> Image.Image:
    """Open an image file (path or bytes) upright (EXIF orientation applied), fully decoded.

    Raises:
        DataError: the file is missing, not an image, truncated, or larger than ``MAX_PIXELS``.
    """
    label = name or str(source if not isinstance(source, bytes) else "<bytes>")
    Image.MAX_IMAGE_PIXELS = MAX_PIXELS
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            fp = io.BytesIO(source) if isinstance(source, bytes) else open(source, "rb")  # noqa: SIM115
            with fp:
                img = Image.open(fp)
                if img.width * img.height > MAX_PIXELS:
                    raise DataError(f"{label}: image of {img.width}x{img.height} pixels is larger "
                                    f"than the {MAX_PIXELS:,} pixels ferlab accepts")
                img.load()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise DataError(f"{label}: image too large (possible decompression bomb): {e}") from e
    except FileNotFoundError as e:
        raise DataError(f"{label}: no such file") from e
    except IsADirectoryError as e:
        raise DataError(f"{label}: is a directory, expected an image file") from e
    except UnidentifiedImageError as e:
        raise DataError(f"{label}: not an image file Pillow can read") from e
    except (OSError, SyntaxError, ValueError) as e:
        raise DataError(f"{label}: cannot decode image: {e}") from e
    try:
        return ImageOps.exif_transpose(img)
    except Exception:  # noqa: BLE001  (a broken EXIF block should not make the image unusable)
        return img


def _on_white(img: Image.Image) -> Image.Image:
    """Images with transparency composited onto white, as a viewer shows them, rather than
    having their alpha dropped to black; others unchanged."""
    if img.mode in ("RGBA", "LA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        return Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba)
    return img


def to_gray(img: Image.Image) -> np.ndarray:
    """Grey levels ``uint8 [H, W]`` of any Pillow image (ITU-R 601 luma for colour)."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        a = np.asarray(img, dtype=np.float64)
        hi = a.max() if a.size else 0
        if img.mode == "F":
            scale = 255.0 / max(hi, 1e-9)
        else:
            scale = 255.0 / (65535.0 if hi > 255 else 255.0)
        return np.clip(a * scale + 0.5, 0, 255).astype(np.uint8)
    return np.asarray(_on_white(img).convert("L"), dtype=np.uint8)


def to_rgb(img: Image.Image) -> np.ndarray:
    """``uint8 [H, W, 3]`` RGB of any Pillow image (for drawing annotated photos)."""
    gray_modes = ("I;16", "I;16B", "I;16L", "I", "F")
    if img.mode in gray_modes:
        g = to_gray(img)
        return np.repeat(g[:, :, None], 3, axis=2)
    return np.asarray(_on_white(img).convert("RGB"), dtype=np.uint8)


def read_gray(source: str | Path | bytes, size: int | None = None, name: str | None = None
              ) -> np.ndarray:
    """Decode an image file to ``uint8 [H, W]`` grey levels, resized to ``size`` if given."""
    img = open_image(source, name)
    g = to_gray(img)
    if size is not None and g.shape != (size, size):
        g = np.asarray(Image.fromarray(g).resize((size, size), Image.Resampling.BILINEAR))
    return g
