"""Facts about FER2013-style data, defined once and imported everywhere."""

# Class order is fixed by FER2013: index i of a model's output is EMOTIONS[i].
EMOTIONS: tuple[str, ...] = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
NUM_CLASSES = len(EMOTIONS)

IMAGE_SIZE = 48  # faces are IMAGE_SIZE x IMAGE_SIZE grey levels, uint8
NUM_PIXELS = IMAGE_SIZE * IMAGE_SIZE

# Default standardisation for models: grey level / 255, then (x - MEAN) / STD. These are the
# FER2013 Training-set statistics rounded to 3 decimals; a model stores the pair it was trained
# with (as buffers), so callers only ever feed it grey levels / 255.
PIXEL_MEAN = 0.508
PIXEL_STD = 0.255

# Usage values of the Kaggle file, and the split names ferlab uses for other formats.
USAGES: tuple[str, ...] = ("Training", "PublicTest", "PrivateTest")

# Face detectors (ferlab.faces), here so that the CLI lists them without importing OpenCV.
DETECTORS: tuple[str, ...] = ("auto", "blazeface", "haar")
# BlazeFace first: it finds far more real heads (turned, small); Haar backs it up on photos where
# it finds none, such as tight face crops (see ferlab.faces' module doc for both figures).
DEFAULT_DETECTOR = "auto"
