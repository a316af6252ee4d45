"""Faces in photos and video: find them, crop them as FER2013 did, classify, draw, explain.

The pipeline, one module a step::

    photo.py        load_photo(file | bytes | array)  -> Photo (upright RGB + grey)
    detect.py       make_detector("auto")(gray)       -> [Box]   (blazeface.py: the network)
    crop.py         crop_faces(gray, boxes)           -> uint8 [N, 48, 48], framed like FER2013
    recognizer.py   Recognizer(model).classify(crops) -> probabilities [N, 7]; also the whole
                    chain, detect_emotions(image)     -> [RecognizedFace], and explain(face)
    draw.py         annotate(rgb, faces)              -> the photo with boxes, labels and bars
    command.py      predict_photos(...)               -> ``ferlab predict --image``
    video.py        analyze_video(source, out_dir)    -> ``ferlab video``: CSV, plot, video

The names below are imported on first use, so that importing one step (``ferlab.faces.detect``
for ``ferlab explain``, ``ferlab.faces.blazeface`` for the scripts) does not load the others.

Example:
    >>> import numpy as np
    >>> from ferlab.faces import crop_faces, detect_faces
    >>> gray = np.full((200, 200), 128, np.uint8)
    >>> boxes = detect_faces(gray)                  # a flat grey picture holds no face
    >>> boxes, crop_faces(gray, boxes).shape
    ([], (0, 48, 48))
"""

from __future__ import annotations

from ..lazy import lazy_exports

# public name -> the module of this package that defines it
_EXPORTS = {
    "Photo": "photo", "load_photo": "photo", "list_photos": "photo",
    "Box": "detect", "Detector": "detect", "HaarDetector": "detect",
    "BlazeFaceDetector": "detect", "FallbackDetector": "detect", "make_detector": "detect",
    "detect_faces": "detect",
    "crop_box": "crop", "crop_face": "crop", "crop_faces": "crop", "FRAMING": "crop",
    "Recognizer": "recognizer", "RecognizedFace": "recognizer", "photo_record": "recognizer",
    "annotate": "draw", "save_png": "draw", "COLORS": "draw",
    "predict_photos": "command",
    "analyze_video": "video", "VideoResult": "video",
}

__all__ = list(_EXPORTS)


__getattr__ = lazy_exports(__name__, _EXPORTS)
