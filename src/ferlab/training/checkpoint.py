"""``checkpoint.pt``: everything a run needs to continue exactly where it stopped.

It holds the model's and the optimiser's state dicts, the EMA's where the run averages weights,
the lookahead's slow weights where it has them, and the
:class:`~ferlab.training.state.TrainState` as a plain dict. It is written whole or not at all
(:func:`~ferlab.io_utils.atomic_write`) after the epoch's history and best model, so a
checkpoint at epoch k always comes with a history of at least k rows.
"""

from __future__ import annotations

from pathlib import Path

import torch

from ..errors import ModelError
from ..io_utils import atomic_write
from ..model_file import load_checkpoint
from ..runs import RunFolder
from .ema import WeightEMA
from .lookahead import Lookahead
from .state import TrainState


def save_checkpoint(path: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                    ema: WeightEMA | None, state: TrainState,
                    lookahead: Lookahead | None = None) -> Path:
    """Write the checkpoint atomically; returns ``path``."""
    ck = {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
          "state": state.to_dict()}
    if ema is not None:
        ck["ema"] = ema.state_dict()
    if lookahead is not None:
        ck["lookahead"] = lookahead.state_dict()
    return atomic_write(path, lambda p: torch.save(ck, p))


def resume_from_checkpoint(run: RunFolder, model: torch.nn.Module,
                           optimizer: torch.optim.Optimizer, ema: WeightEMA | None,
                           lookahead: Lookahead | None = None, *,
                           model_name: str, clean: bool = True
                           ) -> tuple[TrainState, list[dict]]:
    """Load the run's checkpoint into ``model``, ``optimizer``, ``ema`` and ``lookahead``.

    Args:
        run: the run folder.
        model_name: the run's model, for the error message.
        clean: remove temporary files a write cut short by ``kill -9`` left (rank 0 only).

    Returns:
        The state after the last finished epoch, and the history rows up to it.

    Raises:
        ModelError: the checkpoint cannot be read, or does not fit the model and config.
    """
    if clean:
        for tmp in run.path.glob(".*.tmp"):  # of a write cut by kill -9
            tmp.unlink(missing_ok=True)
    path = run.checkpoint_path
    ck = load_checkpoint(path)
    try:
        model.load_state_dict(ck["model"])
        optimizer.load_state_dict(ck["optimizer"])
        if ema is not None:
            ema.load_state_dict(ck["ema"])
        if lookahead is not None:
            lookahead.load_state_dict(ck["lookahead"])
        state = TrainState.from_dict(ck["state"])
        history = run.history()[: state.epoch]
    except (KeyError, TypeError, ValueError, RuntimeError) as e:
        first = (str(e).splitlines() or [""])[0]
        raise ModelError(f"{path}: checkpoint does not fit this run's {model_name!r} model and "
                         f"config: {type(e).__name__} {first}") from e
    return state, history
