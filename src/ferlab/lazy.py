"""Names a package exports but imports only on first use, so that ``import ferlab`` (and
``ferlab --help``) loads no heavy library."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(package: str, exports: Mapping[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` for ``package`` that imports ``exports[name]`` (a module path
    relative to the package) the first time ``name`` is asked for, and keeps it.

    Example:
        >>> getattr_ = lazy_exports("ferlab", {"EMOTIONS": "constants"})
        >>> getattr_("EMOTIONS")[3]
        'happy'
    """
    def __getattr__(name: str) -> Any:
        if name not in exports:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        module = importlib.import_module(f".{exports[name]}", package)
        value = getattr(module, name)
        setattr(importlib.import_module(package), name, value)
        return value

    return __getattr__
