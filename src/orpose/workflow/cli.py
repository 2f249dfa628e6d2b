"""``orpose demo`` and ``orpose experiment``: chains of the other verbs, with a report."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "demo",
        help="the whole method, small, on the shared data: label, lift, train, eval, predict",
        description="Run the whole chain on the shared models and data (../shared, ORPOSE_SHARED "
        "or --shared): teacher pseudo labels of unlabelled images and video frames, a lifter, a "
        "short student training with low-resolution augmentation, teacher and student AP at "
        "each downscale factor on real labelled images, and student predictions on real 12x "
        "operating-room frames. Writes OUT/report.md (tables, charts, overlays, 3D skeletons, "
        "the exact commands and config). About 8 minutes on an idle 2-core CPU; rerunning resumes.",
    )
    p.add_argument("--out", type=Path, default=Path("orpose_demo"), help="[orpose_demo]")
    p.add_argument(
        "--shared",
        type=Path,
        default=None,
        help="folder holding models/ and data/ (default: $ORPOSE_SHARED, ../shared)",
    )
    p.add_argument(
        "--iterations", type=int, default=None, help="student training iterations of 4 images [200]"
    )
    p.add_argument("--unlabelled-images", type=int, default=None, help="[60]")
    p.add_argument(
        "--video-step", type=int, default=None, help="label every k-th frame of the PETS video [40]"
    )
    p.add_argument(
        "--val-images", type=int, default=None, help="labelled images for the AP tables [40]"
    )
    p.add_argument("--scales", type=float, nargs="+", default=None, help="[1 8 10 12]")
    p.add_argument(
        "--lifter",
        type=Path,
        default=None,
        help="use this lifter checkpoint instead of training one",
    )
    p.add_argument(
        "--teacher-preset",
        choices=("single", "full"),
        default=None,
        help="single (default, fast) or full test-time augmentation",
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help="tiny sizes (a minute or two): checks that every stage runs; the numbers mean nothing",
    )
    p.set_defaults(func=run_demo_cli)
    register_experiment(subparsers)


def run_demo_cli(args: argparse.Namespace) -> int:
    from orpose.workflow.demo import DemoOptions, run_demo
    from orpose.workflow.steps import StepError

    given = {
        key: value
        for key in (
            "iterations",
            "unlabelled_images",
            "video_step",
            "val_images",
            "scales",
            "lifter",
            "teacher_preset",
            "shared",
        )
        if (value := getattr(args, key)) is not None
    }
    for key in ("iterations", "unlabelled_images", "video_step", "val_images"):
        if key in given and given[key] < 1:
            raise_user_error(f"--{key.replace('_', '-')} must be >= 1, got {given[key]}")
    opts = (
        DemoOptions.quick(out=args.out, **given)
        if args.quick
        else DemoOptions(out=args.out, **given)
    )
    try:
        report = run_demo(opts)
    except StepError as err:
        raise_user_error(str(err))
    print(f"\nreport: {report}")
    return 0


def raise_user_error(message: str) -> None:
    from orpose.cli import UserError

    raise UserError(message)


def register_experiment(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "experiment",
        help="the paper's Tables 1-3 on your data: teacher, default student, ORPose_fixed_sx, "
        "ORPose_all and the ablations at each downscale factor",
        description="Run every run of an experiment spec (configs/experiments/*.yaml: paper.yaml "
        "full size for GPUs, cpu.yaml reduced) as ordinary orpose label/train/eval commands, "
        "resumably, and write OUT/results.md with the tables and AP-versus-scale charts.",
    )
    p.add_argument("spec", type=Path, help="experiment YAML (see configs/experiments/)")
    p.add_argument("--out", type=Path, default=None, help="[runs/experiments/<spec name>]")
    p.add_argument("--only", nargs="+", default=None, metavar="RUN", help="run only these runs")
    p.add_argument("--dry-run", action="store_true", help="print the commands, run nothing")
    p.set_defaults(func=run_experiment_cli)


def run_experiment_cli(args: argparse.Namespace) -> int:
    from orpose.workflow.experiment import ExperimentError, run_experiment
    from orpose.workflow.steps import StepError

    out = args.out or Path("runs/experiments") / args.spec.stem
    try:
        path = run_experiment(args.spec, out, args.only, args.dry_run)
    except (ExperimentError, StepError) as err:
        raise_user_error(str(err))
    if not args.dry_run:
        print(f"\nresults: {path}")
    return 0
