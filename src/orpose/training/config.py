"""Training configuration: YAML files with an optional ``base`` to inherit from.

A config has three sections: ``student`` (the config of a registered student family, see
:mod:`orpose.student.registry`), ``data`` and ``solver`` (the dataclasses below). ``base:
other.yaml`` (relative to the file) is loaded first and deep-merged under the file; ``--set
solver.lr=0.01`` overrides a value from the CLI. Every field is type- and range-checked by
:mod:`orpose.config`; errors name the file and the dotted key.

Every key is honoured or refused: a loss weight must name a loss the family's training returns
(its registry entry's ``losses``); a setting only another family's training reads (that
family's ``settings``) must keep its default; a Keypoint R-CNN student under frozen batch norm
must name its starting weights (``init_weights``). ``{models}`` in ``init_weights`` /
``init_lifter`` is the models folder (``ORPOSE_MODELS``, else ``<shared>/models``, see
:mod:`orpose.paths`).
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orpose.config import apply_overrides, build, option, read_yaml_with_base, to_plain
from orpose.data.lowres import LowResSchedule
from orpose.errors import ConfigError
from orpose.paths import expand_shared, models_dir, shared_dir
from orpose.student.model import StudentConfig
from orpose.student.registry import StudentFamily, families, family_of
from orpose.training.strategy import strategy_class

# torchvision's COCO Keypoint R-CNN weights: the paper's "default student", every Keypoint R-CNN
# run's start (configs/orpose_base.yaml names it in the models folder)
KEYPOINT_RCNN_WEIGHTS = "keypointrcnn_resnet50_fpn_coco-fc266e95.pth"

_LOSS_HINTS = {"loss_det_kd": "the detector's distillation losses: loss_det_cls, loss_det_box"}


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


def read_only_by(key: str) -> tuple[str, ...]:
    """The families whose training reads the setting ``key`` (``section.name``) that only some
    read (their entries' ``settings``): for the others any value but the default is refused
    (resolved config.yaml files hold every default)."""
    return tuple(name for name, f in families().items() if key in f.settings)


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
                f"{source}: data.lowres: expected 'all', 'all_official', 'all:P1,PMID,PLOW' "
                f"(shares summing to 1) or a downscale factor >= 1 such as 12, got "
                f"{config.data.lowres!r}"
            ) from None
        if config.solver.accumulate > config.solver.batch_size:
            raise ConfigError(f"{source}: solver.accumulate: larger than solver.batch_size")
        check_loss_weights(config, family, source)
        check_family_settings(config, family, source)
        return config


def load_train_config(path: Path | str, overrides: list[str] = ()) -> TrainConfig:
    """Read a training config file, apply ``--set`` overrides, validate."""
    path = Path(path)
    data = apply_overrides(read_yaml_with_base(path), overrides)
    config = TrainConfig.from_dict(data, str(path))
    base_dir = path.parent
    config.data.train = [str(_resolve(p, base_dir)) for p in config.data.train]
    config.init_weights = _expand_folders(config.init_weights)
    config.init_lifter = _expand_folders(config.init_lifter)
    return config


def check_loss_weights(config: TrainConfig, family: StudentFamily, source: str) -> None:
    """Every ``student.loss_weights`` key names a loss the family's training returns (its
    registry entry's ``losses``)."""
    weights = getattr(config.student, "loss_weights", None)
    if not isinstance(weights, dict):
        return
    valid = family.losses
    if not valid:  # a family registered without its losses: its config's own default keys
        default = type(config.student)().loss_weights
        valid = tuple(default)
    legacy = family.legacy_loss_weights
    for key, value in weights.items():
        if key in valid or (key in legacy and value == legacy[key]):
            continue
        hint = _LOSS_HINTS.get(key) or ", ".join(
            f"did you mean {m}?" for m in difflib.get_close_matches(key, valid, 1)
        )
        raise ConfigError(
            f"{source}: student.loss_weights.{key}: names no loss of the {family.name} student"
            + (f" ({hint})" if hint else "")
            + f"; its losses: {', '.join(valid)}"
        )
    config.student.loss_weights = {k: v for k, v in weights.items() if k in valid}


def check_family_settings(config: TrainConfig, family: StudentFamily, source: str) -> None:
    """Refuse settings the family's training would ignore (those other families' entries name
    in their ``settings``), and what its strategy refuses (``check_config``: e.g. a Keypoint
    R-CNN student that would start from random weights under frozen batch norm)."""
    if not family.losses:
        return  # what a family registered without its facts reads is its own business
    defaults = {"solver": SolverConfig(), "data": DataConfig()}
    for key in dict.fromkeys(k for f in families().values() for k in f.settings):
        section, name = key.split(".")
        value = getattr(getattr(config, section), name)
        default = getattr(defaults[section], name)
        if key not in family.settings and value != default:
            raise ConfigError(
                f"{source}: {key}: has no effect on the {family.name} student (only "
                f"{', '.join(read_only_by(key))} training reads it); remove it or keep its "
                f"default {default!r}"
            )
    s = config.solver
    if s.optimizer == "adamw" and s.momentum != defaults["solver"].momentum:
        raise ConfigError(
            f"{source}: solver.momentum: has no effect with solver.optimizer: adamw (SGD's "
            "momentum; AdamW keeps torch's betas); remove it or use solver.optimizer: sgd"
        )
    strategy_class(config).check_config(config, source)


def check_start_files(config: TrainConfig, source: str) -> None:
    """Before any training: the files ``init_weights`` and ``init_lifter`` name exist (a missing
    Keypoint R-CNN weights file is named, with where it belongs)."""
    for key in ("init_weights", "init_lifter"):
        value = getattr(config, key)
        if not value:
            continue
        for name, folder in (("{models}", "models"), ("{shared}", "shared")):
            if name in value:
                raise ConfigError(
                    f"{source}: {key}: {value}: no {folder} folder found for {name} (set "
                    "ORPOSE_MODELS to the models folder, or ORPOSE_SHARED to the folder that "
                    "holds models/)"
                )
        if Path(value).expanduser().is_file():
            continue
        where = ""
        if key == "init_weights" and Path(value).name == KEYPOINT_RCNN_WEIGHTS:
            folder = models_dir(required=False)
            where = (
                f" (torchvision's COCO Keypoint R-CNN weights: put {KEYPOINT_RCNN_WEIGHTS} in "
                f"the models folder, {folder or '$ORPOSE_MODELS or <ORPOSE_SHARED>/models'}, or "
                "set init_weights to where it is)"
            )
        raise ConfigError(f"{source}: {key}: {value}: no such file{where}")


def _expand_folders(value: str | None) -> str | None:
    """``{models}`` -> the models folder, ``{shared}`` -> the shared folder, when found (else
    left as written, for :func:`check_start_files` to name before training)."""
    if not value:
        return value
    for name, find in (("{models}", models_dir), ("{shared}", shared_dir)):
        if name in value:
            folder = find(required=False)
            if folder is not None:
                value = value.replace(name, str(folder))
    return value


def _resolve(p: str, base_dir: Path) -> Path:
    """Config paths: ``{shared}`` is the shared models/data folder (see orpose.paths); relative
    paths are taken from the working directory, else from the config file's folder."""
    path = Path(expand_shared(p)).expanduser()
    if path.is_absolute() or path.exists():
        return path
    return base_dir / path if (base_dir / path).exists() else path
