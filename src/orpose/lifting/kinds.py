"""The lifter kinds: one registry (:class:`orpose.registry.Registry`) of the 2D-to-3D lifters a
student's ``lifter_config`` may name under ``kind``, and the one factory, :func:`make_lifter`.

- ``orpose`` (a config without ``kind``): orpose's :class:`~orpose.lifting.model.Lifter`, its
  fields overridden by the config;
- ``official_h36m``: the official ORPose lifter (:mod:`orpose.lifting.official_lifter`; its
  statistics come with the weights).
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from orpose.errors import ConfigError
from orpose.registry import Registry

DEFAULT_KIND = "orpose"  # a lifter config without ``kind``


def _register_builtin() -> None:
    from orpose.lifting.model import Lifter
    from orpose.lifting.official_lifter import KIND, OfficialLifter

    register_lifter(DEFAULT_KIND, Lifter)
    register_lifter(KIND, OfficialLifter)


LIFTERS: Registry[Callable[..., nn.Module]] = Registry(
    "lifter kind", ConfigError, _register_builtin
)


def register_lifter(kind: str, build: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
    """Add a lifter kind: ``build(**lifter_config)`` (refused: a kind registered twice)."""
    return LIFTERS.register(kind, build)


def make_lifter(lifter_config: dict) -> nn.Module:
    """A lifter from a config dict, of the kind it names (``kind``; none: orpose's own); an
    unknown kind is a ConfigError listing the known ones."""
    config = dict(lifter_config)
    kind = config.get("kind", DEFAULT_KIND)
    if kind == DEFAULT_KIND:
        config.pop("kind", None)  # orpose's LifterConfig has no such field
    return LIFTERS.lookup(kind)(**config)
