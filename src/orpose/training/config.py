"""Training configuration: YAML files with an optional ``base`` to inherit from.

A config has three sections: ``student`` (the config of a registered student family, see
:mod:`orpose.student.registry`), ``data`` and ``solver`` (the dataclasses below). ``base:
other.yaml`` (relative to the file) is loaded first and deep-merged under the file; ``--set
solver.lr=0.01`` overrides a value from the CLI. Every field is type- and range-checked by
:mod:`orpose.config`; errors name the file and the dotted key.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orpose.config import apply_overrides, build, option, read_yaml_with_base, to_plain
from orpose.data.lowres import LowResSchedule
from orpose.errors import ConfigError
from orpose.paths import expand_shared
from orpose.student.model import StudentConfig
from orpose.student.registry import family_of


@dataclass
class DataConfig:
    train: list[str] = field(default_factory=list)  # pseudo-label / ground-truth COCO files
    image_root: str | None = None  # default: images/ beside each file, else its folder
    # "all" (ORPose_all), "all_official" (its official draws: s in 2..7 / 8..11) or a factor
    lowres: str | float = "1"
    flip: bool = True
    images_with_people_only: bool = False
    num_workers: int = option(0, min=0)
    # top-down student only (see orpose.training.distillation_data.Augmentation)
    scale_jitter: float = option(0.25, min=0, max=0.9)
    shift_jitter: float = option(0.1, min=0, max=0.5)
    rotation: float = option(30.0, min=0, max=180)
    rotation_prob: float = option(0.3, min=0, max=1)
    image_crop: float = option(0.7, above=0, max=1)
    # share of the samples degraded >= 4x also trained on the native low-resolution path
    native_share: float = option(0.5, min=0, max=1)


@dataclass
class SolverConfig:
    iterations: int = option(5000, min=0)
    # images per optimizer step (the paper: 32); top-down student: person crops
    batch_size: int = option(32, min=1)
    detector_batch_size: int = option(4, min=0)  # top-down student: detector images per step
    optimizer: str = option("sgd", choices=("sgd", "adamw"))
    # step: x gamma at each of steps; cosine: to 0 at the last iteration
    schedule: str = option("step", choices=("step", "cosine"))
    anchor_weight: float = option(0.0, min=0)  # top-down: L2 pull towards the start (L2-SP)
    # the final last.pt = this x trained + (1 - this) x starting weights (WiSE-FT, Wortsman et
    # al., CVPR 2022); 1: the trained weights as they are; the raw ones stay in trained.pt
    final_weight_mix: float = option(1.0, above=0, max=1)
    accumulate: int = option(1, min=1)  # micro-batches per step: batch_size / accumulate each
    lr: float = option(1e-3, above=0)
    steps: list[int] = option(default_factory=lambda: [2000, 3000, 4000], min=0)
    gamma: float = option(0.1, above=0)
    warmup_iterations: int = option(100, min=0)
    warmup_factor: float = option(0.001, above=0, max=1)
    momentum: float = option(0.9, min=0, max=1)
    weight_decay: float = option(1e-4, min=0)
    clip_grad_norm: float | None = option(None, above=0)
    backbone_lr_factor: float = option(1.0, min=0)  # backbone lr = lr x this (fine-tuning)
    amp: bool = True  # mixed precision, on CUDA only
    seed: int = option(12312, min=0)  # the official configs' SEED
    checkpoint_every: int = option(500, min=1)
    snapshot_every: int = option(0, min=0)  # also keep snapshots/iter_N.pt (0: none)
    log_every: int = option(20, min=1)


@dataclass
class TrainConfig:
    student: Any = field(default_factory=StudentConfig)  # a registered family's config
    data: DataConfig = field(default_factory=DataConfig)
    solver: SolverConfig = field(default_factory=SolverConfig)
    init_weights: str | None = None  # torchvision COCO Keypoint R-CNN .pth (the default student)
    init_lifter: str | None = None  # orpose lifter checkpoint for both lifters

    def to_dict(self) -> dict:
        return {
            "student": self.student.to_dict(),
            "data": to_plain(self.data),
            "solver": to_plain(self.solver),
            "init_weights": self.init_weights,
            "init_lifter": self.init_lifter,
        }

    @classmethod
    def from_dict(cls, d: dict, source: str = "<config>") -> TrainConfig:
        if not isinstance(d, dict):
            raise ConfigError(f"{source}: expected a mapping of settings")
        d = {k: v for k, v in d.items() if k != "base"}
        student = d.pop("student", None) or {}
        if not isinstance(student, dict):
            raise ConfigError(f"{source}: student: expected a mapping of settings")
        try:
            family = family_of(student)
        except ConfigError as err:
            raise ConfigError(f"{source}: student.family: {err}") from None
        config = build(cls, d, source)
        config.student = build(family.config_class, student, source, "student.")
        try:
            LowResSchedule.from_spec(config.data.lowres)
        except ValueError:
            raise ConfigError(
                f"{source}: data.lowres: expected 'all', 'all_official' or a downscale factor "
                f">= 1 such as 12, got {config.data.lowres!r}"
            ) from None
        if config.solver.accumulate > config.solver.batch_size:
            raise ConfigError(f"{source}: solver.accumulate: larger than solver.batch_size")
        return config


def load_train_config(path: Path | str, overrides: list[str] = ()) -> TrainConfig:
    """Read a training config file, apply ``--set`` overrides, validate."""
    path = Path(path)
    data = apply_overrides(read_yaml_with_base(path), overrides)
    config = TrainConfig.from_dict(data, str(path))
    base_dir = path.parent
    config.data.train = [str(_resolve(p, base_dir)) for p in config.data.train]
    return config


def _resolve(p: str, base_dir: Path) -> Path:
    """Config paths: ``{shared}`` is the shared models/data folder (see orpose.paths); relative
    paths are taken from the working directory, else from the config file's folder."""
    path = Path(expand_shared(p)).expanduser()
    if path.is_absolute() or path.exists():
        return path
    return base_dir / path if (base_dir / path).exists() else path
