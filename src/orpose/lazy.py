"""Lazy package faces: names a package re-exports, imported only when first used.

The command line imports every stage package to register its verbs; a package whose face
imported torch or torchvision eagerly would make ``orpose --help`` load them. A package lists
where each name lives and takes its module ``__getattr__`` (PEP 562) from :func:`lazy_exports`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(package: str, where: Mapping[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` for ``package`` that imports ``where[name]`` on first use."""

    def __getattr__(name: str) -> Any:
        if name in where:
            return getattr(importlib.import_module(where[name]), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__
