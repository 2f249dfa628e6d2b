"""``orpose lift train`` and ``orpose lift eval``: the 3D lifter's verbs.

torch is imported inside the functions so that ``orpose --help`` stays fast.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from orpose import paths
from orpose.config import cli_number, cli_numbers
from orpose.data.coco import write_json_atomic
from orpose.errors import UserError
from orpose.outputs import check_output_file, refuse_overwriting_inputs

DEFAULT_OUT = Path("runs/lifter/lifter.pt")
CACHE_NAME = "mocap_cache.npz"


def _default_mocap() -> str:
    return str(paths.shared_data("mocap/cmu_bvh"))


def _default_mvor() -> str:
    return str(paths.shared_data("mvor/camma_mvor_2018.json"))


_subjects = cli_numbers(int, min=0, max=10**6)  # CMU subject numbers, comma-separated
THREADS = cli_number(int, min=0, max=1024)
NOISE = cli_number(float, min=0, max=1000)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``lift`` with its ``train`` and ``eval`` sub-verbs."""
    lift = subparsers.add_parser(
        "lift", help="2D-to-3D lifter: train on motion capture, evaluate on mocap and MVOR"
    )
    verbs = lift.add_subparsers(dest="lift_command", metavar="VERB")
    lift.set_defaults(func=lambda args: lift.print_help() or 2)

    train = verbs.add_parser("train", help="train a lifter on the CMU BVH files (CPU, minutes)")
    train.add_argument("--mocap", help="folder of .bvh files [../shared/data/mocap/cmu_bvh]")
    train.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"checkpoint [{DEFAULT_OUT}]")
    train.add_argument(
        "--epochs",
        type=cli_number(int, min=1, max=10**6),
        help="epochs (one random view per pose) [25]",
    )
    train.add_argument("--batch-size", type=cli_number(int, min=1, max=2**20), help="[256]")
    train.add_argument(
        "--lr", type=cli_number(float, above=0, max=10), help="initial Adam learning rate [1e-3]"
    )
    train.add_argument(
        "--hidden", type=cli_number(int, min=1, max=65536), help="width of the MLP [1024]"
    )
    train.add_argument("--dropout", type=cli_number(float, min=0, below=1), help="dropout [0.1]")
    train.add_argument(
        "--fps", type=cli_number(float, above=0, max=1000), help="mocap frames per second kept [30]"
    )
    train.add_argument("--noise-px", type=NOISE, help="max per-sample 2D noise sigma, px [6]")
    train.add_argument(
        "--torso-to-thigh",
        type=cli_number(float, min=0, max=3),
        help="the 3D targets' hips: torso / thigh of Human3.6M's [0.97], 0 for CMU's femur heads "
        "(docs/lifting.md)",
    )
    train.add_argument("--test-subjects", type=_subjects, help="held-out CMU subjects [6,9]")
    train.add_argument("--seed", type=cli_number(int, min=0, max=2**32 - 1), help="[0]")
    train.add_argument("--threads", type=THREADS, default=1, help="torch CPU threads [1]; see docs")
    train.add_argument("--resume", action="store_true", help="continue from --out if it exists")
    train.add_argument("--no-progress", action="store_true", help="no progress bar")
    train.set_defaults(func=run_train)

    ev = verbs.add_parser("eval", help="MPJPE on held-out mocap subjects and on MVOR's 3D poses")
    ev.add_argument(
        "checkpoint",
        type=Path,
        nargs="?",
        default=DEFAULT_OUT,
        help=f"lifter checkpoint [{DEFAULT_OUT}]",
    )
    ev.add_argument("--mocap", help="folder of .bvh files [the one used for training]")
    ev.add_argument("--mvor", help="camma_mvor_2018.json [../shared/data/mvor/...]")
    ev.add_argument("--noise-px", type=NOISE, default=5.0, help="sigma of the noisy-2D test [5]")
    ev.add_argument(
        "--drop-rate",
        type=cli_number(float, min=0, max=1),
        default=0.3,
        help="joint dropout test rate [0.3]",
    )
    ev.add_argument(
        "--max-samples",
        type=cli_number(int, min=1, max=10**9),
        default=5000,
        help="mocap test views [5000]",
    )
    ev.add_argument("--json", type=Path, help="where to save the results [beside the checkpoint]")
    ev.add_argument("--threads", type=THREADS, default=1, help="torch CPU threads [1]")
    ev.set_defaults(func=run_eval)


def _train_config(out: Path, resume: bool, mocap: str | None, **options):
    """The run's config: a resumed checkpoint's own, else defaults; options (None: unset)
    override either."""
    from orpose.lifting.checkpoint import read_checkpoint
    from orpose.lifting.train import TrainConfig

    hidden, dropout, noise_px = (
        options.pop("hidden"),
        options.pop("dropout"),
        options.pop("noise_px"),
    )
    if resume and out.is_file():
        cfg = TrainConfig.from_dict(read_checkpoint(out)["config"], f"{out}: config")
        changed = [
            name
            for name, value, now in (
                ("--hidden", hidden, cfg.model.hidden),
                ("--dropout", dropout, cfg.model.dropout),
                ("--torso-to-thigh", options.get("torso_to_thigh"), cfg.torso_to_thigh),
            )
            if value is not None and value != now
        ]
        if changed:
            raise UserError(f"{out}: cannot --resume with a different {', '.join(changed)}")
    else:
        cfg = TrainConfig()
    for key, value in options.items():  # epochs, batch_size, lr, fps, test_subjects, seed, ...
        if value is not None:
            setattr(cfg, key, value)
    if noise_px is not None:
        cfg.noise_px = (0.0, noise_px)
    if hidden is not None:
        cfg.model.hidden = hidden
    if dropout is not None:
        cfg.model.dropout = dropout
    if mocap is not None or not cfg.mocap or not Path(cfg.mocap).is_dir():
        cfg.mocap = str(Path(mocap).resolve()) if mocap else _default_mocap()
    return cfg


def run_train(args: argparse.Namespace) -> int:
    return lift_train(
        args.out,
        mocap=args.mocap,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        hidden=args.hidden,
        dropout=args.dropout,
        fps=args.fps,
        noise_px=args.noise_px,
        torso_to_thigh=args.torso_to_thigh,
        test_subjects=args.test_subjects,
        seed=args.seed,
        threads=args.threads,
        resume=args.resume,
        progress=not args.no_progress,
    )


def lift_train(
    out: Path = DEFAULT_OUT,
    *,
    mocap: str | None = None,
    epochs: int | None = None,
    batch_size: int | None = None,
    lr: float | None = None,
    hidden: int | None = None,
    dropout: float | None = None,
    fps: float | None = None,
    noise_px: float | None = None,
    torso_to_thigh: float | None = None,
    test_subjects: list[int] | None = None,
    seed: int | None = None,
    threads: int = 1,
    resume: bool = False,
    progress: bool = True,
) -> int:
    """``orpose lift train``: a lifter trained on the CMU BVH files (``mocap``, default the
    shared folder's), saved to ``out``; None leaves a setting at the resumed checkpoint's or
    the default (docs/lifting.md). ``threads``: torch CPU threads (0: at least 1)."""
    import torch

    from orpose.lifting.train import load_training_data, train_lifter

    check_output_file(out)  # before the mocap is read (its cache goes beside it too)
    if out.is_file() and not resume:  # a finished lifter is never trained over
        raise UserError(
            f"--out {out}: a lifter checkpoint is already there; --resume continues it, "
            "or remove it (or give another --out) to train a new one"
        )
    torch.set_num_threads(max(1, threads))
    cfg = _train_config(
        out, resume, mocap, epochs=epochs, batch_size=batch_size, lr=lr, fps=fps,
        test_subjects=test_subjects, seed=seed, hidden=hidden, dropout=dropout,
        noise_px=noise_px, torso_to_thigh=torso_to_thigh,
    )  # fmt: skip
    train, test = load_training_data(cfg, out.parent / CACHE_NAME)
    print(
        f"mocap: {len(train)} training poses, {len(test)} held-out poses "
        f"(subjects {','.join(map(str, cfg.test_subjects))})"
    )
    result = train_lifter(
        cfg, out, train.joints, test.joints, resume, progress, train.targets, test.targets
    )
    last = result.history[-1] if result.history else {}
    print(
        f"lifter: {result.checkpoint} ({len(result.history)} epochs, "
        f"{result.elapsed_s:.0f} s of training; held-out clean MPJPE "
        f"{last.get('val_mpjpe_mm', float('nan')):.1f} mm)"
    )
    return 0


def run_eval(args: argparse.Namespace) -> int:
    import torch

    from orpose.lifting.checkpoint import lifter_from_checkpoint, read_checkpoint
    from orpose.lifting.evaluate import (
        PAPER_MVOR_MPJPE_MM,
        PAPER_STUDENT_MVOR_MPJPE_MM,
        evaluate_mocap,
        evaluate_mvor,
        format_table,
    )
    from orpose.lifting.train import TrainConfig, load_training_data

    payload = read_checkpoint(args.checkpoint)
    out = args.json or args.checkpoint.with_suffix(".eval.json")
    refuse_overwriting_inputs(out, [args.checkpoint], "--json")
    check_output_file(out, "--json")  # before the evaluation runs
    torch.set_num_threads(max(1, args.threads))
    lifter = lifter_from_checkpoint(payload).eval()
    cfg = TrainConfig.from_dict(payload["config"] or {}, f"{args.checkpoint}: config")
    if args.mocap or not cfg.mocap or not Path(cfg.mocap).is_dir():
        cfg.mocap = str(Path(args.mocap).resolve()) if args.mocap else _default_mocap()
    _, test = load_training_data(cfg, args.checkpoint.parent / CACHE_NAME)
    mvor = args.mvor or _default_mvor()
    rows = evaluate_mocap(
        lifter, test.joints, cfg.cameras, args.noise_px, args.drop_rate, args.max_samples,
        targets_world=test.targets,
    )  # fmt: skip
    rows += evaluate_mvor(lifter, mvor)
    print(format_table(rows))
    print(
        "(paper, full pipeline on MVOR+ with detected people and 2D: teacher "
        f"{PAPER_MVOR_MPJPE_MM:.1f} mm, student {PAPER_STUDENT_MVOR_MPJPE_MM:.1f} mm; the MVOR "
        "rows above use ground-truth 2D projected from the 3D annotations)"
    )
    write_json_atomic(
        out,
        {
            "checkpoint": str(args.checkpoint),
            "mocap": cfg.mocap,
            "mvor": str(mvor),
            "test_subjects": list(cfg.test_subjects),
            "noise_px": args.noise_px,
            "drop_rate": args.drop_rate,
            "rows": [r.to_dict() for r in rows],
            "paper_mvor_mpjpe_mm": PAPER_MVOR_MPJPE_MM,
            "paper_student_mvor_mpjpe_mm": PAPER_STUDENT_MVOR_MPJPE_MM,
            "train_epochs": len(payload["extra"].get("history", [])),
            "train_elapsed_s": payload["extra"].get("elapsed_s"),
        },
    )
    print(f"saved {out}")
    return 0
