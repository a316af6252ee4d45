"""Exceptions a user can act on. The CLI prints them as one line and exits with status 2."""


class FerlabError(Exception):
    """Base class for every error ferlab raises on purpose."""

    exit_code = 2  # what the CLI exits with


class DataError(FerlabError, ValueError):
    """A data file is missing, unreadable, or has a bad row. The message names file and row."""


class ModelError(FerlabError, ValueError):
    """A model name, file or weights cannot be used."""


class ConfigError(FerlabError, ValueError):
    """An option or configuration value is out of range."""
