"""An attribution map drawn over the 48x48 face it explains, as an image data URL for the page.

JPEG rather than PNG: it encodes a colour overlay many times faster, and the map is smooth, so
JPEG's losses do not show.
"""

from __future__ import annotations

import base64
import functools
import io

import numpy as np
from PIL import Image

OVERLAY_SIDE = 192  # pixels of the picture sent: 4x the face, enough to see eye from brow
HEAT_ALPHA = 0.45  # share of the colour map over the face, as `ferlab demo` draws it


def normalized_magnitude(heat: np.ndarray) -> np.ndarray:
    """``|heat|`` scaled to 0..1 by its maximum (all zeros stay zeros).

    Signed maps (LIME's weights) are shown by magnitude, scaled per map, as in ``ferlab demo``:
    the question is where the model looks, and each method has its own units.

    Example:
        >>> normalized_magnitude(np.array([[-2.0, 1.0]])).tolist()
        [[1.0, 0.5]]
    """
    a = np.abs(np.nan_to_num(np.asarray(heat, dtype=np.float32)))
    top = float(a.max()) if a.size else 0.0
    return a / top if top > 0 else a


@functools.cache
def _jet() -> np.ndarray:
    """The jet colour map (what `ferlab demo` and the report draw) as a 256-entry RGB table:
    looked up once, since matplotlib builds a colour map object on every access."""
    from matplotlib import colormaps

    return (colormaps["jet"](np.linspace(0.0, 1.0, 256))[:, :3] * 255.0).astype(np.float32)


def overlay_jpeg(face: np.ndarray, heat01: np.ndarray, side: int = OVERLAY_SIDE) -> bytes:
    """JPEG of the grey ``face`` (uint8 ``[48, 48]``) under the jet colour map of ``heat01``."""
    grey = Image.fromarray(np.asarray(face, dtype=np.uint8)).resize((side, side),
                                                                     Image.Resampling.BILINEAR)
    heat = Image.fromarray(np.asarray(heat01, dtype=np.float32), mode="F").resize(
        (side, side), Image.Resampling.BILINEAR)
    index = np.clip(np.asarray(heat) * 255.0 + 0.5, 0, 255).astype(np.uint8)
    rgb_face = np.repeat(np.asarray(grey, dtype=np.float32)[..., None], 3, axis=2)
    mixed = (1 - HEAT_ALPHA) * rgb_face + HEAT_ALPHA * _jet()[index]
    buf = io.BytesIO()
    Image.fromarray(np.clip(mixed + 0.5, 0, 255).astype(np.uint8)).save(buf, "JPEG", quality=92)
    return buf.getvalue()


def data_url(jpeg: bytes) -> str:
    return "data:image/jpeg;base64," + base64.b64encode(jpeg).decode("ascii")
