"""Training configuration: YAML files with an optional ``base`` to inherit from.

A config has three sections: ``student`` (see :class:`orpose.student.StudentConfig`), ``data``
and ``solver`` (see the dataclasses below). ``base: other.yaml`` (relative to the file) is loaded
first and deep-merged under the file; ``--set solver.lr=0.01`` overrides a value from the CLI.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from orpose.student.model import StudentConfig


class ConfigError(ValueError):
    """A training config that cannot be used; the message names the file and the key."""


@dataclass
class DataConfig:
    train: list[str] = field(default_factory=list)  # pseudo-label / ground-truth COCO files
    image_root: str | None = None  # default: images/ beside each file, else its folder
    lowres: str = "1"  # "all" (ORPose_all) or a fixed factor such as "12"
    flip: bool = True
    images_with_people_only: bool = False
    num_workers: int = 0


@dataclass
class SolverConfig:
    iterations: int = 5000
    batch_size: int = 32  # images per optimizer step (the paper: 32)
    accumulate: int = 1  # micro-batches per step: batch_size / accumulate images each
    lr: float = 1e-3
    steps: list[int] = field(default_factory=lambda: [2000, 3000, 4000])
    gamma: float = 0.1
    warmup_iterations: int = 100
    warmup_factor: float = 0.001
    momentum: float = 0.9
    weight_decay: float = 1e-4
    clip_grad_norm: float | None = None
    backbone_lr_factor: float = (
        1.0  # the backbone's lr = lr x this (fine-tuning pretrained features)
    )
    amp: bool = True  # mixed precision, on CUDA only
    seed: int = 12312  # the official configs' SEED
    checkpoint_every: int = 500
    log_every: int = 20


@dataclass
class TrainConfig:
    student: StudentConfig = field(default_factory=StudentConfig)
    data: DataConfig = field(default_factory=DataConfig)
    solver: SolverConfig = field(default_factory=SolverConfig)
    init_weights: str | None = None  # torchvision COCO Keypoint R-CNN .pth (the default student)
    init_lifter: str | None = None  # orpose lifter checkpoint for both lifters

    def to_dict(self) -> dict:
        return {
            "student": self.student.to_dict(),
            "data": asdict(self.data),
            "solver": asdict(self.solver),
            "init_weights": self.init_weights,
            "init_lifter": self.init_lifter,
        }

    @classmethod
    def from_dict(cls, d: dict, source: str = "<config>") -> TrainConfig:
        d = dict(d)
        unknown = set(d) - {f.name for f in fields(cls)} - {"base"}
        if unknown:
            raise ConfigError(f"{source}: unknown key(s) {', '.join(sorted(unknown))}")
        try:
            return cls(
                student=StudentConfig.from_dict(d.get("student") or {}),
                data=_section(DataConfig, d.get("data"), source, "data"),
                solver=_section(SolverConfig, d.get("solver"), source, "solver"),
                init_weights=d.get("init_weights"),
                init_lifter=d.get("init_lifter"),
            )
        except (TypeError, ValueError) as err:
            if isinstance(err, ConfigError):
                raise
            raise ConfigError(f"{source}: {err}") from err


def _section(kind: type, values: dict | None, source: str, name: str):
    values = dict(values or {})
    unknown = set(values) - {f.name for f in fields(kind)}
    if unknown:
        raise ConfigError(f"{source}: {name}: unknown key(s) {', '.join(sorted(unknown))}")
    return kind(**values)


def deep_merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for key, value in over.items():
        out[key] = (
            deep_merge(out[key], value)
            if isinstance(value, dict) and isinstance(out.get(key), dict)
            else value
        )
    return out


def read_yaml_with_base(path: Path) -> dict:
    """A YAML mapping with its ``base`` chain merged in (paths relative to each file)."""
    if not path.is_file():
        raise ConfigError(f"{path}: no such config file")
    with open(path) as f:
        data = yaml.safe_load(f) or {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    if "base" in data:
        data = deep_merge(read_yaml_with_base(path.parent / data.pop("base")), data)
    return data


def parse_override(text: str) -> tuple[list[str], Any]:
    """``solver.lr=0.01`` -> (["solver", "lr"], 0.01), the value parsed as YAML."""
    if "=" not in text:
        raise ConfigError(f"--set {text}: expected KEY=VALUE, e.g. solver.lr=0.01")
    key, value = text.split("=", 1)
    return key.strip().split("."), yaml.safe_load(value)


def load_train_config(path: Path | str, overrides: list[str] = ()) -> TrainConfig:
    """Read a training config file, apply ``--set`` overrides, validate."""
    path = Path(path)
    data = read_yaml_with_base(path)
    for text in overrides:
        keys, value = parse_override(text)
        node = data
        for k in keys[:-1]:
            node = node.setdefault(k, {})
        node[keys[-1]] = value
    config = TrainConfig.from_dict(data, str(path))
    base_dir = path.parent
    config.data.train = [str(_resolve(p, base_dir)) for p in config.data.train]
    return config


def _resolve(p: str, base_dir: Path) -> Path:
    """Config paths: ``{shared}`` is the shared models/data folder (see orpose.paths); relative
    paths are taken from the working directory, else from the config file's folder."""
    if "{shared}" in p:
        from orpose.paths import shared_dir

        p = p.replace("{shared}", str(shared_dir()))
    path = Path(p).expanduser()
    if path.is_absolute() or path.exists():
        return path
    return base_dir / path if (base_dir / path).exists() else path
