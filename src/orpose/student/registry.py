"""One registry of student families: each entry carries its config class, its builder and the
facts the rest of the package needs (which trainer, whether its ONNX graph takes any image size).

As timm's ``register_model``: code that needs to know about families (checkpoints, training,
export, bench) asks the registry instead of keeping its own list. A config dict names its family
under ``family`` (default ``keypoint_rcnn``, the paper's student, for files written before there
were several).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from torch import nn

from orpose.errors import ConfigError

DEFAULT_FAMILY = "keypoint_rcnn"


@dataclass(frozen=True)
class StudentFamily:
    """A kind of student."""

    name: str
    config_class: type
    build: Callable[[Any], nn.Module]
    trainer: str  # "module:Class" of its training loop
    summary: str
    cpu: bool = False  # meant to train and run on a CPU


FAMILIES: dict[str, StudentFamily] = {}


def register_family(family: StudentFamily) -> StudentFamily:
    FAMILIES[family.name] = family
    return family


def family_of(config: Any) -> StudentFamily:
    """The family of a config object or dict."""
    _register_builtin()
    name = config.get("family", DEFAULT_FAMILY) if isinstance(config, dict) else config.family
    if name not in FAMILIES:
        raise ConfigError(f"unknown student family {name!r}; known: {', '.join(sorted(FAMILIES))}")
    return FAMILIES[name]


def student_config(config: Any):
    """A config object of the right family from a dict (objects are returned as they are)."""
    if not isinstance(config, dict):
        return config
    return family_of(config).config_class.from_dict(dict(config))


def build_student(config: Any = None, **kwargs: Any) -> nn.Module:
    """A student of the config's family, with its starting weights (see each family)."""
    _register_builtin()
    config = student_config(config if config is not None else {})
    return family_of(config).build(config, **kwargs)


_BUILTIN_DONE = False


def _register_builtin() -> None:
    """The two built-in families, registered on first use (keeps imports light)."""
    global _BUILTIN_DONE
    if _BUILTIN_DONE:
        return
    _BUILTIN_DONE = True
    from orpose.student.model import ORPoseStudent, StudentConfig
    from orpose.student.topdown import TopDownConfig, TopDownStudent

    register_family(
        StudentFamily(
            "keypoint_rcnn",
            StudentConfig,
            ORPoseStudent,
            "orpose.training.trainer:Trainer",
            "the paper's student: Keypoint R-CNN, two-branch heatmap head, two lifters",
        )
    )
    register_family(
        StudentFamily(
            "picodet_tinypose",
            TopDownConfig,
            TopDownStudent,
            "orpose.training.topdown:TopDownTrainer",
            "the CPU student: PicoDet detector + RoIAlign crops + TinyPose two-branch head",
            cpu=True,
        )
    )
