"""The crop that matches training preprocessing: a face box framed as FER2013 frames its faces.

FER2013's faces were framed by a face detector, so a photo's face is cut out the same way: the
detector's box grown about its centre by how that detector's boxes sit in a FER2013 frame
(:data:`FRAMING`), made grey and resized to 48x48. How the framing was measured:
``benchmarks/FACES.md`` ("The crop").

Example:
    >>> import numpy as np
    >>> crop_face(np.full((200, 200), 128, np.uint8), Box(50, 50, 100, 100)).shape
    (48, 48)
"""

from __future__ import annotations

import cv2
import numpy as np

from ..constants import IMAGE_SIZE
from .detect import Box

# Side of a FER2013 frame over the side of the Haar box found in it: 1 / 0.969.
CROP_SCALE = 1.032

# BlazeFace's box is tighter than Haar's and sits lower on the face: its frame is 1.079 box
# sides, centred 0.047 box sides above the box's centre (measured on real heads both find).
BLAZE_SCALE = 1.079
BLAZE_DY = -0.047

# How each detector's box sits in a FER2013 frame: (frame side / box side, frame centre - box
# centre in box sides, x and y), by the box's ``kind``.
FRAMING: dict[str, tuple[float, float, float]] = {
    "frontal": (CROP_SCALE, 0.0, 0.0),
    "profile": (CROP_SCALE, 0.0, 0.0),
    "blazeface": (BLAZE_SCALE, 0.0, BLAZE_DY),
    "whole": (1.0, 0.0, 0.0),  # a picture that is already a face crop is taken as it is
}


def crop_box(box: Box, scale: float | None = None) -> tuple[int, int, int]:
    """The square ``(x, y, side)`` cut out for ``box``, framed as FER2013 frames faces.

    Its side is ``max(w, h) * scale`` and its centre the box's, both as :data:`FRAMING` says for
    the detector that found the box; a ``scale`` given here overrides the side, not the centre.

    Example:
        >>> crop_box(Box(10, 10, 100, 100, kind="whole"))
        (10, 10, 100)
    """
    frame_scale, dx, dy = FRAMING.get(box.kind, FRAMING["frontal"])
    box_side = max(box.w, box.h)
    side = max(1, round(box_side * (frame_scale if scale is None else scale)))
    cx = box.x + box.w / 2 + dx * box_side
    cy = box.y + box.h / 2 + dy * box_side
    return round(cx - side / 2), round(cy - side / 2), side


def crop_face(gray: np.ndarray, box: Box, scale: float | None = None, size: int = IMAGE_SIZE
              ) -> np.ndarray:
    """The ``size`` x ``size`` uint8 face for ``box``, framed like FER2013.

    Parts of the square that fall outside the photo repeat its edge pixels, rather than black,
    which a model trained on FER2013 has never seen at a face's border. A ``whole`` box (a
    picture that is already a face crop) is taken as it is, without the margin.
    """
    x, y, side = crop_box(box, 1.0 if box.kind == "whole" else scale)
    h, w = gray.shape
    pad = max(0, -x, -y, x + side - w, y + side - h)
    if pad:
        gray = cv2.copyMakeBorder(gray, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
        x, y = x + pad, y + pad
    patch = gray[y:y + side, x:x + side]
    # INTER_AREA averages when shrinking (no aliasing); linear when a small face is enlarged.
    interp = cv2.INTER_AREA if side > size else cv2.INTER_LINEAR
    return cv2.resize(patch, (size, size), interpolation=interp)


def crop_faces(gray: np.ndarray, boxes: list[Box], scale: float | None = None) -> np.ndarray:
    """uint8 ``[N, 48, 48]`` crops of every box (``[0, 48, 48]`` when there are none)."""
    if not boxes:
        return np.zeros((0, IMAGE_SIZE, IMAGE_SIZE), np.uint8)
    return np.stack([crop_face(gray, b, scale) for b in boxes])
