"""An attribution map drawn over the 48x48 face it explains, as a PNG data URL for the page."""

from __future__ import annotations

import base64
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


def overlay_png(face: np.ndarray, heat01: np.ndarray, side: int = OVERLAY_SIDE) -> bytes:
    """PNG of the grey ``face`` (uint8 ``[48, 48]``) under the jet colour map of ``heat01``."""
    from matplotlib import colormaps  # the colour map `ferlab demo` and the report use

    grey = Image.fromarray(np.asarray(face, dtype=np.uint8)).resize((side, side),
                                                                     Image.Resampling.BILINEAR)
    heat = Image.fromarray(np.asarray(heat01, dtype=np.float32), mode="F").resize(
        (side, side), Image.Resampling.BILINEAR)
    rgb_heat = colormaps["jet"](np.clip(np.asarray(heat), 0, 1))[..., :3] * 255.0
    rgb_face = np.repeat(np.asarray(grey, dtype=np.float32)[..., None], 3, axis=2)
    mixed = (1 - HEAT_ALPHA) * rgb_face + HEAT_ALPHA * rgb_heat
    buf = io.BytesIO()
    Image.fromarray(np.clip(mixed + 0.5, 0, 255).astype(np.uint8)).save(buf, "PNG")
    return buf.getvalue()


def data_url(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")
