"""Photos in: decoding any file, bytes, Pillow image or array into upright RGB plus grey levels.

Example:
    >>> import numpy as np
    >>> photo = load_photo(np.zeros((10, 20, 3), np.uint8))
    >>> photo.rgb.shape, photo.gray.shape
    ((10, 20, 3), (10, 20))
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from ..errors import ConfigError, DataError
from ..images import IMAGE_SUFFIXES, open_image, to_gray, to_rgb


@dataclass
class Photo:
    """A decoded photo: upright RGB for drawing and grey levels for the model."""

    rgb: np.ndarray  # uint8 [H, W, 3]
    gray: np.ndarray  # uint8 [H, W]
    name: str = ""


def load_photo(source: str | Path | bytes | np.ndarray | Image.Image, name: str | None = None,
               channels: str = "rgb") -> Photo:
    """Decode a photo from a path, bytes, a Pillow image or an array.

    Files go through :func:`ferlab.images.open_image` (EXIF orientation, RGBA, CMYK, 16-bit,
    palette; decompression bombs refused). Arrays are ``[H, W]`` grey or ``[H, W, 3|4]`` colour
    in ``channels`` order: ``"rgb"`` (Pillow, matplotlib, scikit-image) or ``"bgr"`` (OpenCV's
    ``cv2.imread`` and video frames); 16-bit and float arrays are scaled to 0..255.

    Example:
        >>> load_photo(np.zeros((10, 20, 3), np.uint8)).gray.shape
        (10, 20)
    """
    if channels not in ("rgb", "bgr"):
        raise ConfigError(f"channels must be 'rgb' or 'bgr', got {channels!r}")
    if isinstance(source, np.ndarray):
        a = _to_uint8(source, name or "<array>")
        if a.ndim == 2:
            rgb = np.repeat(a[:, :, None], 3, axis=2)
        elif a.ndim == 3 and a.shape[2] in (3, 4):
            rgb = a[:, :, :3] if channels == "rgb" else a[:, :, 2::-1]
            rgb = np.ascontiguousarray(rgb)
        else:
            raise DataError(f"{name or '<array>'}: expected an [H, W] or [H, W, 3|4] image "
                            f"array, got shape {tuple(source.shape)}")
        gray = a if a.ndim == 2 else cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
        return Photo(rgb=rgb, gray=gray, name=name or "<array>")
    if isinstance(source, Image.Image):
        img, label = source, name or "<image>"
    else:
        label = name or (str(source) if not isinstance(source, bytes) else "<bytes>")
        img = open_image(source, label)
    return Photo(rgb=to_rgb(img), gray=to_gray(img), name=label)


def _to_uint8(a: np.ndarray, name: str) -> np.ndarray:
    if a.size == 0:
        raise DataError(f"{name}: empty image array")
    if a.dtype == np.uint8:
        return a
    if a.dtype == np.uint16:
        return (a.astype(np.float32) / 257.0 + 0.5).astype(np.uint8)
    if np.issubdtype(a.dtype, np.floating):
        hi = 1.0 if float(np.nanmax(a)) <= 1.0 else 255.0
        return np.clip(np.nan_to_num(a) * (255.0 / hi) + 0.5, 0, 255).astype(np.uint8)
    if np.issubdtype(a.dtype, np.integer) or a.dtype == np.bool_:
        return np.clip(a, 0, 255).astype(np.uint8)
    raise DataError(f"{name}: cannot use an image array of dtype {a.dtype}")


def list_photos(path: str | Path) -> list[Path]:
    """The photo itself, or every image file under a folder (sorted, recursive).

    Raises:
        DataError: the path does not exist, or the folder holds no image file.
    """
    p = Path(path)
    if p.is_dir():
        files = sorted(f for f in p.rglob("*") if f.is_file()
                       and f.suffix.lower() in IMAGE_SUFFIXES and not f.name.startswith("."))
        if not files:
            raise DataError(f"{p}: folder holds no image file ({', '.join(IMAGE_SUFFIXES)})")
        return files
    if not p.exists():
        raise DataError(f"{p}: no such photo or folder")
    return [p]
