"""Knowledge distillation (``--teacher``, ``--distill``, ``--temperature``, ``--teacher-cache``):
the student learns from a frozen teacher's softened answers as well as from the labels."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

from ..config import TrainConfig
from ..inference import predict_probs
from ..io_utils import atomic_write
from ..model_spec import load_model
from ..precision import Precision


def distillation_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor,
                      temperature: float) -> torch.Tensor:
    """KL(teacher || student) of the temperature-softened distributions, times T^2.

    The T^2 keeps the gradient's scale independent of T (Hinton et al. 2015), so the weight
    between this and the hard-label loss means the same at any temperature.
    """
    t = temperature
    return F.kl_div(F.log_softmax(student_logits / t, 1), F.log_softmax(teacher_logits / t, 1),
                    reduction="batchmean", log_target=True) * t * t


def load_teacher(spec: str, channels_last: bool) -> torch.nn.Module:
    """The frozen teacher of a distillation run (a model or an ensemble), in eval mode."""
    teacher = load_model(spec).eval().requires_grad_(False)
    if channels_last:
        teacher = teacher.to(memory_format=torch.channels_last)
    return teacher


def cached_teacher_logits(teacher: torch.nn.Module, images: torch.Tensor, bf16: bool,
                          channels_last: bool, batch_size: int) -> torch.Tensor:
    """The teacher's log-probabilities ``[N, 7]`` for each face, averaged with its mirror's.

    Computed once before training (``--teacher-cache``), they stand in for the teacher's answer
    on every augmented view of that face: the augmentations are mild, and the mirror average
    makes the target the same for a face and its flip. (``channels_last`` is accepted for the
    callers' sake; :func:`~ferlab.inference.predict_probs` picks the memory format itself.)
    """
    precision = "bf16" if bf16 else "fp32"
    probs = predict_probs(teacher, images, batch_size=batch_size, precision=precision,
                          tta="flip", fast=False, progress=True)
    return probs.clamp_min(1e-12).log()


class Distiller:
    """Mixes the teacher's soft targets into a batch's loss:
    ``(1 - weight) * hard_loss + weight * distillation_loss``.

    The teacher answers each augmented batch, or (with ``cache``) its answers for the original
    faces, computed once, stand in for it.
    """

    def __init__(self, teacher: torch.nn.Module, weight: float, temperature: float,
                 device: torch.device, cache: torch.Tensor | None = None) -> None:
        self.teacher, self.weight, self.temperature = teacher, weight, temperature
        self.device, self.cache = device, cache

    def loss(self, hard_loss: torch.Tensor, logits: torch.Tensor, x: torch.Tensor,
             idx: torch.Tensor, autocast: Callable[[], AbstractContextManager]) -> torch.Tensor:
        """The batch's loss, from its label loss, the student's ``logits`` for the batch ``x``
        (faces ``idx`` of the training set) and the run's autocast."""
        if self.cache is not None:
            teacher_logits = self.cache[idx].to(self.device)
        else:
            with torch.no_grad(), autocast():
                teacher_logits = self.teacher(x)
        soft = distillation_loss(logits.float(), teacher_logits.float(), self.temperature)
        return (1 - self.weight) * hard_loss + self.weight * soft


def teacher_cache_key(teacher: torch.nn.Module, x_train: torch.Tensor, bf16: bool) -> str:
    """What a saved teacher cache must match: the teacher's weights, the training faces and
    the precision it was computed in."""
    h = hashlib.sha256(b"bf16" if bf16 else b"fp32")
    for name, value in teacher.state_dict().items():
        h.update(name.encode())
        h.update(value.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    h.update(x_train.contiguous().numpy().tobytes())
    return h.hexdigest()


def load_teacher_cache(path: Path, key: str) -> torch.Tensor | None:
    """The logits saved at ``path`` for ``key``, or None (no file, or another teacher's)."""
    if not path.is_file():
        return None
    saved = load_file(path)
    if saved.get("key") is None or bytes(saved["key"].tolist()).decode() != key:
        return None
    return saved["logits"]


def save_teacher_cache(path: Path, key: str, logits: torch.Tensor) -> None:
    key_bytes = torch.tensor(list(key.encode()), dtype=torch.uint8)
    atomic_write(path, lambda p: save_file({"logits": logits.contiguous(), "key": key_bytes}, p))


def make_distiller(t: TrainConfig, x_train: torch.Tensor, precision: Precision,
                   device: torch.device, log: Callable[[str], None],
                   cache_path: Path | None = None) -> Distiller | None:
    """The run's :class:`Distiller` (None without ``--distill``); with ``--teacher-cache`` the
    teacher predicts every training face (``x_train``, uint8) and its mirror here, once, and
    keeps the answers in ``cache_path``, so a resumed run reads them instead of waiting again."""
    if not t.distill:
        return None
    teacher = load_teacher(t.teacher, t.channels_last).to(device)
    cache = None
    if t.teacher_cache:
        key = teacher_cache_key(teacher, x_train, precision.bf16)
        cache = load_teacher_cache(cache_path, key) if cache_path is not None else None
        if cache is not None:
            log(f"teacher {t.teacher}: its answers for {len(cache):,} faces read from "
                f"{cache_path}")
        else:
            # minutes for an ensemble teacher on a CPU: say so before, and show progress
            log(f"teacher {t.teacher} predicts {len(x_train):,} training faces and their mirrors")
            start = time.perf_counter()
            cache = cached_teacher_logits(teacher, x_train, precision.bf16, t.channels_last,
                                          t.eval_batch_size)
            log(f"teacher {t.teacher} predicted {len(cache):,} faces and their mirrors in "
                f"{time.perf_counter() - start:.0f} s")
            if cache_path is not None:
                save_teacher_cache(cache_path, key, cache)
    return Distiller(teacher, t.distill, t.temperature, device, cache)
