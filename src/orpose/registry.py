"""The one registry mechanism: a name -> entry table, written only by ``register``.

As timm's ``register_model``: each kind of choice by name (student families, backbones, lifter
kinds, the teacher's output kinds) is one :class:`Registry`; an entry is registered once (a
name registered twice is refused), looked up through :meth:`Registry.lookup` (an unknown name
is refused listing the known ones), and the registry reads as a read-only mapping (``in``,
``get``, ``sorted(...)``). Code that needs to know about a kind asks its registry instead of
keeping its own list. The registries themselves live with what they hold
(:mod:`orpose.student.registry`, :mod:`orpose.lifting.kinds`, :mod:`orpose.teacher`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Generic, TypeVar

T = TypeVar("T")


class Registry(Mapping[str, T], Generic[T]):
    """Entries of one kind by name. ``what`` names the kind in messages ("backbone");
    ``error`` is the exception an unknown name raises; ``load``, when given, registers the
    built-in entries on first lookup (keeps imports light)."""

    def __init__(
        self,
        what: str,
        error: type[Exception] = ValueError,
        load: Callable[[], None] | None = None,
    ):
        self.what = what
        self.error = error
        self._load = load
        self._entries: dict[str, T] = {}

    def register(self, name: str, entry: T) -> T:
        """Add ``entry`` under ``name`` (refused: a name registered twice); returns it."""
        if name in self._entries:
            raise ValueError(f"{self.what} {name!r} is registered already")
        self._entries[name] = entry
        return entry

    def registered(self, name: str) -> bool:
        """Whether ``name`` is registered now (the built-in entries are not loaded for it)."""
        return name in self._entries

    def decorator(self, name: str) -> Callable[[T], T]:
        """``@registry.decorator(name)``: registers the decorated class or function."""
        return lambda entry: self.register(name, entry)

    def _loaded(self) -> dict[str, T]:
        if self._load is not None:
            load, self._load = self._load, None
            load()
        return self._entries

    def known(self) -> str:
        """The registered names, sorted, as messages list them."""
        return ", ".join(sorted(self._loaded()))

    def lookup(self, name: object) -> T:
        """The entry called ``name``; an unknown name raises ``error``, listing the known ones."""
        entries = self._loaded()
        if name not in entries:
            raise self.error(f"unknown {self.what} {name!r}; known: {self.known()}")
        return entries[name]  # type: ignore[index]

    def __getitem__(self, name: str) -> T:
        return self._loaded()[name]

    def __iter__(self) -> Iterator[str]:
        return iter(dict(self._loaded()))

    def __len__(self) -> int:
        return len(self._loaded())

    def __contains__(self, name: object) -> bool:
        return name in self._loaded()

    def __repr__(self) -> str:
        return f"Registry({self.what!r}: {self.known()})"
