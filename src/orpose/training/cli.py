"""``orpose train CONFIG``: distillation training of the student, resumable."""

from __future__ import annotations

import argparse
import importlib
from pathlib import Path

import yaml

from orpose.atomic import write_atomic
from orpose.errors import UserError


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "train",
        help="train the student on pseudo labels (YAML config; resumable)",
        description="Train the ORPose student. Configs for the paper's settings live in configs/ "
        "(orpose_fixed_{1,8,10,12}x, orpose_all, the single-branch ablations, small CPU variants). "
        "Multi-GPU: torchrun --nproc_per_node=N -m orpose.cli train CONFIG ...",
    )
    p.add_argument("config", type=Path, help="training YAML")
    p.add_argument(
        "--out", type=Path, default=None, help="output folder (default: runs/<config name>)"
    )
    p.add_argument("--resume", action="store_true", help="continue from <out>/last.pt if it exists")
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config value, e.g. --set solver.iterations=200 (repeatable)",
    )
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 (default: cuda if present)")
    p.set_defaults(func=run_train)


def run_train(args: argparse.Namespace) -> int:
    from orpose.training.config import ConfigError, load_train_config

    try:
        config = load_train_config(args.config, args.overrides)
    except ConfigError as err:
        raise UserError(str(err)) from err
    out = args.out or Path("runs") / args.config.stem
    save_resolved_config(config, out / "config.yaml", args)
    try:
        checkpoint = trainer_class(config)(config, out, args.device).run(resume=args.resume)
    except ValueError as err:
        raise UserError(str(err)) from err
    print(f"checkpoint: {checkpoint}\nlogs: {out / 'metrics.csv'}, {out / 'loss_curves.png'}")
    return 0


def save_resolved_config(config, path: Path, args: argparse.Namespace) -> Path:
    """The config as trained (file + every ``--set``, paths resolved), beside the checkpoint:
    what a report cites and what reproduces the run without the command line."""
    header = f"# resolved from {args.config}" + "".join(f"\n#   --set {o}" for o in args.overrides)
    text = header + "\n" + yaml.safe_dump(config.to_dict(), sort_keys=False)
    return write_atomic(path, lambda f: f.write(text))


def trainer_class(config):
    """The training loop of the config's student family (see orpose.student.registry)."""
    from orpose.student.registry import family_of

    module, name = family_of(config.student).trainer.split(":")
    return getattr(importlib.import_module(module), name)
