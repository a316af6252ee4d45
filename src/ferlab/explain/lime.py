"""LIME (Ribeiro et al. 2016) for grey 48x48 faces, with face-sized superpixels, seeded.

The ``lime`` package does the sampling and the weighted ridge fit; ferlab supplies what it lacks
for FER faces: a segmentation that suits a 48x48 grey face (SLIC regions the size of an eye or a
mouth corner, rather than its default quickshift, which on 48x48 grey gives a few blobs), a
classifier that batches the perturbed faces through the model, and a fixed seed.
"""

from __future__ import annotations

import logging

import numpy as np
import torch
from skimage.segmentation import slic

from ..constants import IMAGE_SIZE
from ..inference import DEFAULT_BATCH, predict_probs
from ..precision import resolve_precision
from .base import Explainer, register_explainer


def face_segments(face: np.ndarray, n_segments: int = 60, compactness: float = 0.08,
                  sigma: float = 0.5) -> np.ndarray:
    """SLIC superpixels of a grey face ``[48, 48]`` in [0, 1]: ``int [48, 48]`` labels 0..K-1.

    Low compactness lets regions follow the dark lines of eyes, brows and mouth. Asking for 60
    gives about 45 regions (SLIC merges some) of ~50 pixels: small enough to separate an eye from
    a brow or isolate a 6x6 patch, few enough for 256 LIME samples to fit (on small-box faces
    40 asked-for segments localised worse, 80-120 less evenly across boxes:
    ``benchmarks/bench_localisation.py --lime-sweep``).
    """
    seg = slic(np.asarray(face, dtype=np.float64), n_segments=n_segments,
               compactness=compactness, sigma=sigma, channel_axis=None, start_label=0,
               enforce_connectivity=True)
    return np.unique(seg, return_inverse=True)[1].reshape(seg.shape)


def _explainer_class():
    """``LimeImageExplainer`` with a vectorised ``data_labels``: lime's own builds each perturbed
    face in a Python loop over superpixels and always shows a progress bar; the sampling (its
    RandomState, the all-on first row) is kept exactly."""
    from lime import lime_image

    class _FaceLime(lime_image.LimeImageExplainer):
        def data_labels(self, image, fudged_image, segments, classifier_fn, num_samples,
                        batch_size=10, progress_bar=False):
            n_features = np.unique(segments).shape[0]
            data = self.random_state.randint(0, 2, num_samples * n_features).reshape(
                (num_samples, n_features))
            data[0, :] = 1
            labels = []
            for i in range(0, num_samples, batch_size):
                keep = data[i:i + batch_size][:, segments].astype(bool)  # [b, H, W]
                imgs = np.where(keep[..., None], image[None], fudged_image[None])
                labels.append(classifier_fn(imgs))
            return data, np.concatenate(labels)

    return _FaceLime



@register_explainer("lime")
class LimeExplainer(Explainer):
    """Per-pixel weight of its superpixel in LIME's local linear model for the target class.

    Signed: positive superpixels support the class. Hidden superpixels are replaced by their
    own mean grey (``lime``'s default), which blurs a region away rather than painting it black.
    The defaults were chosen by ``benchmarks/bench_localisation.py --lime-sweep`` on faces whose
    class lives in one small box (see README, Explanations).

    Args:
        samples: perturbed faces per face.
        segments: SLIC superpixels per face.
        compactness: SLIC compactness (low: regions follow the strokes of the face).
        kernel_width: width of LIME's exponential kernel on the cosine distance between a sample's
            on/off vector and the whole face.
        seed: the same seed gives the same map.
        batch_size: perturbed faces per forward pass.
        precision: ``auto`` (bf16 only on CPUs with native bf16), ``fp32`` or ``bf16``: the
            precision the perturbed faces are classified in, by a copy of the model with batch
            norms folded and channels-last memory (``ferlab.inference.inference_copy``).
        fast: the former switch, kept for old callers: ``True`` = ``bf16``, ``False`` = ``fp32``
            (``None``: use ``precision``).
        classifier: what classifies the perturbed faces instead of the model: a callable from
            a batch ``[N, 1, 48, 48]`` to logits, such as the
            :class:`~ferlab.runtime.onnx_classifier.OnnxClassifier` that ``--runtime auto``
            picks (the bundled model's int8 graph). LIME needs only predictions, hundreds a
            face, so it runs where they are fastest; the map then explains that classifier.

    Example:
        >>> maps = get_explainer("lime", model, samples=256, seed=0).attribute(x)
    """

    signed = True

    def __init__(self, model, layer=None, *, samples: int = 256, segments: int = 60,
                 compactness: float = 0.08, kernel_width: float = 0.25, seed: int = 0,
                 batch_size: int = DEFAULT_BATCH, precision: str = "auto",
                 fast: bool | None = None, classifier=None) -> None:
        super().__init__(model, layer)
        self.samples, self.segments, self.compactness = samples, segments, compactness
        self.kernel_width, self.seed, self.batch_size = kernel_width, seed, batch_size
        if fast is not None:
            precision = "bf16" if fast else "fp32"
        # ferlab.precision decides, as for every command: bf16 only where it is native.
        self.precision = resolve_precision(precision).name
        self.classifier = classifier
        self.last_segments: list[np.ndarray] = []  # the superpixels of the last call, for figures

    def _classify(self, batch: np.ndarray) -> np.ndarray:
        """LIME's classifier: probabilities ``float64 [N, 7]`` for faces ``[N, 48, 48, 1]``.

        It runs ``classifier`` where one was given, else a folded private copy of the model
        (``fast=True``): folding batch norms in place would change the caller's model, and
        weights held in bf16 are cast once, not on every batch."""
        x = np.ascontiguousarray(batch[..., 0], dtype=np.float32)
        return predict_probs(self.classifier or self.model, x, batch_size=self.batch_size,
                             precision=self.precision, fast=True).numpy().astype(np.float64)

    def _attribute(self, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        logging.getLogger("lime").setLevel(logging.WARNING)
        lime_class = _explainer_class()
        maps = np.zeros((len(x), IMAGE_SIZE, IMAGE_SIZE), dtype=np.float32)
        self.last_segments = []
        for i in range(len(x)):
            face = x[i, 0].numpy().astype(np.float64)
            seg = face_segments(face, self.segments, self.compactness)
            self.last_segments.append(seg)
            # A fresh explainer per face: its RandomState is what makes the map repeatable.
            lime = lime_class(kernel_width=self.kernel_width, random_state=self.seed)
            exp = lime.explain_instance(
                face, self._classify, labels=(int(target[i]),), top_labels=None, hide_color=None,
                num_features=int(seg.max()) + 1, num_samples=self.samples,
                batch_size=self.samples, segmentation_fn=lambda _img, seg=seg: seg,
                random_seed=self.seed)
            weights = np.zeros(int(seg.max()) + 1, dtype=np.float32)
            for k, w in exp.local_exp[int(target[i])]:
                weights[k] = w
            maps[i] = weights[seg]
        return torch.from_numpy(maps)
