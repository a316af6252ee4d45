"""What a run has done so far: the part of the checkpoint that is not tensors.

Stored in ``checkpoint.pt`` as a plain dict under ``"state"`` (``epoch``, ``best_acc``,
``best_epoch``, ``plateau_scale``, ``plateau_best``, ``plateau_wait``, ``seconds``), so
checkpoints written before this class existed load, and a checkpoint reads without ferlab's
classes (``torch.load(weights_only=True)``).

Example:
    >>> state = TrainState()
    >>> state.end_epoch(1, seconds=2.0, val_acc=0.5), state.end_epoch(2, 2.0, 0.5)
    (True, False)
    >>> TrainState.from_dict(state.to_dict()) == state
    True
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .schedule import Plateau


@dataclass
class TrainState:
    """The resumable state of a run (besides the model, optimiser and EMA weights).

    Attributes:
        epoch: epochs finished.
        best_acc: the best validation accuracy so far (-1 before the first epoch).
        best_epoch: the epoch that reached it (0 before the first), whose weights are saved.
        plateau: the plateau schedule's state.
        seconds: time spent in finished epochs, over every call that resumed the run.
    """

    epoch: int = 0
    best_acc: float = -1.0
    best_epoch: int = 0
    plateau: Plateau = field(default_factory=Plateau)
    seconds: float = 0.0

    def end_epoch(self, epoch: int, seconds: float, val_acc: float) -> bool:
        """Count ``epoch`` as finished; whether it is the best so far.

        Only a strictly higher accuracy improves, so the best epoch is the earliest of equal
        ones: the rule :func:`ferlab.runs.best_row` reads back from the history.
        """
        self.epoch = epoch
        self.seconds += seconds
        improved = val_acc > self.best_acc
        if improved:
            self.best_acc, self.best_epoch = val_acc, epoch
        return improved

    def to_dict(self) -> dict:
        """The checkpoint's ``"state"``: plain numbers only."""
        return {"epoch": self.epoch, "best_acc": self.best_acc, "best_epoch": self.best_epoch,
                "plateau_scale": self.plateau.scale, "plateau_best": self.plateau.best,
                "plateau_wait": self.plateau.wait, "seconds": self.seconds}

    @classmethod
    def from_dict(cls, d: dict) -> TrainState:
        """The state saved by :meth:`to_dict`; a missing key keeps its starting value.

        Raises:
            TypeError: ``d`` is not a dict.
        """
        if not isinstance(d, dict):
            raise TypeError(f"checkpoint state must be a dict, found {type(d).__name__}")
        fresh = cls()
        return cls(epoch=d.get("epoch", fresh.epoch), best_acc=d.get("best_acc", fresh.best_acc),
                   best_epoch=d.get("best_epoch", fresh.best_epoch),
                   plateau=Plateau(scale=d.get("plateau_scale", fresh.plateau.scale),
                                   best=d.get("plateau_best", fresh.plateau.best),
                                   wait=d.get("plateau_wait", fresh.plateau.wait)),
                   seconds=d.get("seconds", fresh.seconds))
