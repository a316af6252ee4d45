"""The two ways a training run ends early on purpose, raised to the caller (and the CLI)."""

from __future__ import annotations

from ..errors import FerlabError


class RunExistsError(FerlabError):
    """The output folder already holds a run."""


class TrainingInterrupted(FerlabError):
    """SIGINT/SIGTERM arrived; the last finished epoch is saved and can be resumed."""

    exit_code = 130
