"""``orpose train CONFIG``: distillation training of the student, resumable."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import yaml

from orpose.atomic import write_atomic
from orpose.config import cli_input_path, cli_number
from orpose.errors import OrposeError, UserError
from orpose.outputs import check_output_folder


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
    p.add_argument(
        "--eval-set",
        dest="eval_sets",
        type=Path,
        action="append",
        default=[],
        metavar="FILE",
        help="an evaluation set (COCO file, image folder) whose images data.train must not hold, "
        "besides the shared coco_person_val500 and MVOR test frames (repeatable)",
    )
    p.add_argument(
        "--allow-eval-overlap",
        action="store_true",
        help="train even on images of an evaluation set (same file content); without it such a "
        "training set is refused",
    )
    p.set_defaults(func=run_train)
    register_self_label(subparsers)
    register_soup(subparsers)


def register_soup(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "soup",
        help="one student from several trained from the same start (their weights averaged)",
        description="Average the weights of students trained from the same starting weights "
        "(the same recipe with other seeds: `--set solver.seed=N`) into one student that runs "
        "like each of them (a uniform 'model soup', Wortsman et al. 2022). All must share one "
        "architecture; the result records the files it was made from.",
    )
    p.add_argument("checkpoints", nargs="+", type=Path, help="two or more student checkpoints")
    p.add_argument("--out", type=Path, required=True, help="student checkpoint to write")
    p.set_defaults(func=run_soup)


def run_soup(args: argparse.Namespace) -> int:
    """``orpose soup``, parsed: :func:`soup`."""
    return soup(args.checkpoints, args.out)


def soup(checkpoints: Sequence[Path], out: Path) -> int:
    """``orpose soup A.pt B.pt ... --out OUT``: the students' weight average written to
    ``out`` (:func:`orpose.training.soup.soup_students`); prints what it wrote."""
    from orpose.training.soup import soup_students

    path = soup_students(checkpoints, out)
    print(f"{path}: the weight average of {len(checkpoints)} students")
    return 0


def register_self_label(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "self-label",
        help="pseudo labels of low-resolution-only frames by a student (flip-consistent)",
        description="Label frames stored only at 1/S (privacy-preserving recordings, e.g. 53x40 "
        "frames of a 640x480 camera at S=12) with a student itself: each frame is upsampled by S "
        "and posed as it is and mirrored; people both passes agree on are kept, with their "
        "keypoints averaged. The output is a pseudo-label COCO file in the frames' own pixels "
        "(image records marked stored_downscale: S) that `orpose train` trains at S; see "
        "`orpose adapt`.",
    )
    p.add_argument("checkpoint", type=Path, help="student checkpoint (last.pt)")
    p.add_argument("inputs", nargs="+", type=cli_input_path,
                   help="images, folders, videos, COCO files")  # fmt: skip
    p.add_argument(
        "--stored-downscale",
        type=cli_number(float, above=1, max=64),
        required=True,
        metavar="S",
        help="the factor the frames were stored at (12: 53x40 frames of a 640x480 camera)",
    )
    p.add_argument(
        "--min-score",
        type=cli_number(float, min=0, max=1),
        default=0.3,
        help="person score both passes must reach to be kept [0.3]",
    )
    p.add_argument(
        "--temporal",
        action="store_true",
        help="the frames are consecutive recordings (a video, or a folder's frames in name "
        "order): keep the people that persist over time (ByteTrack over flip-consistent "
        "candidates, short gaps filled) instead of those scoring --min-score in one frame",
    )
    p.add_argument(
        "--video-step",
        type=cli_number(int, min=1, max=10**6),
        default=1,
        help="every k-th frame of videos [1]",
    )
    p.add_argument("--out", type=Path, required=True, help="pseudo-label COCO file to write")
    p.add_argument("--device", default=None, help="cpu, cuda (default: cuda if present)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run_self_label)


def run_self_label(args: argparse.Namespace) -> int:
    """``orpose self-label``, parsed: :func:`self_label`."""
    return self_label(
        args.checkpoint,
        args.inputs,
        args.out,
        stored_downscale=args.stored_downscale,
        min_score=args.min_score,
        video_step=args.video_step,
        device=args.device,
        progress=not args.no_progress,
        temporal=args.temporal,
    )


def self_label(
    checkpoint: Path,
    inputs: Sequence[Path],
    out: Path,
    *,
    stored_downscale: float,
    min_score: float = 0.3,
    video_step: int = 1,
    device: str | None = None,
    progress: bool = True,
    temporal: bool = False,
) -> int:
    """``orpose self-label``: pseudo labels of frames stored only at 1/``stored_downscale``
    (``inputs``: images, folders, videos, COCO files) by the student ``checkpoint`` itself
    (flip-consistent people scoring at least ``min_score``; with ``temporal``, those that persist
    over consecutive frames), written to the COCO file ``out``; prints what it holds.
    ``progress`` False is ``--no-progress``."""
    from orpose.data.coco import write_json_atomic
    from orpose.data.sources import expand_inputs, iter_frames
    from orpose.predictor import StudentPredictor
    from orpose.training.self_labels import self_label as flip_consistent_labels
    from orpose.training.temporal_labels import TrackRule

    # the parser's ranges (cli_number), for a call from Python
    if not 1 < stored_downscale <= 64:
        raise UserError(f"--stored-downscale: expected 1 < S <= 64, got {stored_downscale:g}")
    if not 0 <= min_score <= 1:
        raise UserError(f"--min-score: expected a value in [0, 1], got {min_score:g}")
    if video_step < 1:
        raise UserError(f"--video-step must be >= 1, got {video_step}")
    out = Path(out)
    specs = expand_inputs([Path(i) for i in inputs])
    total = sum(len(spec.images) for spec in specs if not spec.video) or None
    predictor = StudentPredictor.from_checkpoint(Path(checkpoint), device)
    frames = iter_frames(specs, video_step)
    labels = flip_consistent_labels(predictor, frames, stored_downscale, min_score,
                                    progress=progress, total=total,
                                    temporal=TrackRule() if temporal else None)  # fmt: skip
    write_json_atomic(out, labels)
    people = len(labels["annotations"])
    kind = "lasting flip-consistent" if temporal else "flip-consistent"
    print(f"{out}: {len(labels['images'])} frames, {people} {kind} people "
          f"({people / max(len(labels['images']), 1):.2f} per frame)")  # fmt: skip
    return 0


def train_from_args(args: argparse.Namespace) -> tuple[Path, Path]:
    """The work of ``orpose train`` (and of ``orpose.train``): the config and its start files
    checked, the output folder, the train/eval overlap check (a refused run leaves no new
    folder), the resolved config saved, training. Returns the checkpoint and the folder."""
    from orpose.training.config import check_start_files, load_train_config

    config = load_train_config(args.config, args.overrides)
    check_start_files(config, str(args.config))
    out_path = Path(args.out or Path("runs") / args.config.stem)
    new_folder = not out_path.exists()
    out = check_output_folder(out_path)
    try:
        check_training_images(config, args)
    except UserError:
        if new_folder:  # refused before any work: leave no trace
            out.rmdir()
        raise
    save_resolved_config(config, out / "config.yaml", args)
    try:
        checkpoint = trainer_class(config)(config, out, args.device).run(resume=args.resume)
    except ValueError as err:
        if isinstance(err, OrposeError):
            raise
        raise UserError(str(err)) from err
    return Path(checkpoint), out


def run_train(args: argparse.Namespace) -> int:
    checkpoint, out = train_from_args(args)
    print(f"checkpoint: {checkpoint}\nlogs: {out / 'metrics.csv'}, {out / 'loss_curves.png'}")
    return 0


def check_training_images(config, args: argparse.Namespace) -> None:
    """Refuse a data.train that holds images of an evaluation set (orpose.data.overlap), unless
    ``--allow-eval-overlap``; then say how many it trains on."""
    from orpose.data.overlap import check_eval_overlap

    d = config.data
    overlaps = check_eval_overlap(d.train, args.eval_sets, d.image_root, args.allow_eval_overlap)
    if overlaps:
        first = overlaps[0]
        print(
            f"note: training on {len(overlaps)} image(s) of evaluation sets "
            f"(--allow-eval-overlap), e.g. {first.train_image} = {first.eval_image}",
            file=sys.stderr,
        )


def save_resolved_config(config, path: Path, args: argparse.Namespace) -> Path:
    """The config as trained (file + every ``--set``, paths resolved), beside the checkpoint:
    what a report cites and what reproduces the run without the command line."""
    header = f"# resolved from {args.config}" + "".join(f"\n#   --set {o}" for o in args.overrides)
    text = header + "\n" + yaml.safe_dump(config.to_dict(), sort_keys=False)
    return write_atomic(path, lambda f: f.write(text))


def trainer_class(config):
    """The training loop: one for every family, which runs the strategy the config's student
    family names (see orpose.student.registry and orpose.training.strategy)."""
    from orpose.training.trainer import Trainer

    return Trainer
