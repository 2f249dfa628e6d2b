"""Verbs of the teacher stage: ``label``, ``label-merge`` and ``label-models``."""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from orpose.config import cli_input_path, cli_number, cli_numbers
from orpose.errors import UserError
from orpose.manifest import ModelError, load_manifest, sha256_of, verify_model
from orpose.outputs import check_output_file, check_output_folder, refuse_overwriting_inputs
from orpose.paths import models_dir
from orpose.teacher.config import load_config

log = logging.getLogger(__name__)


# zoom factors of the teacher's test-time augmentation (as TeacherConfig checks them in files)
_SCALES = cli_numbers(float, min=0.25, max=4)
_SHARE = cli_number(float, min=0, max=1)


def _add_teacher_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("teacher (defaults: the preset, then --config)")
    g.add_argument(
        "--preset",
        default="full",
        choices=("single", "full"),
        help="single: no test-time augmentation; full: every augmentation (default)",
    )
    g.add_argument("--config", type=Path, help="YAML file overriding fields of the preset")
    g.add_argument("--detector", help="detector model name in the manifest")
    g.add_argument("--pose-model", help="top-down pose model name in the manifest")
    g.add_argument(
        "--det-scales",
        type=_SCALES,
        metavar="S,S",
        help="detector zoom factors, e.g. 1,1.5 (>1: overlapping tiles)",
    )
    g.add_argument(
        "--det-flip",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="also detect on the mirrored image",
    )
    g.add_argument(
        "--pose-flip",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="average heatmaps of the mirrored crop (left/right swapped)",
    )
    g.add_argument(
        "--pose-scales", type=_SCALES, metavar="S,S", help="pose crop scales, e.g. 1,1.15"
    )
    g.add_argument(
        "--min-score",
        type=_SHARE,
        dest="min_person_score",
        help="minimum person score to pose and write a person",
    )
    g.add_argument(
        "--keypoint-threshold",
        type=_SHARE,
        help="soft confidence below which a keypoint is invisible in the hard set",
    )
    g.add_argument(
        "--min-keypoints",
        type=cli_number(int, min=0, max=17),
        help="drop persons with fewer hard keypoints than this",
    )
    g.add_argument(
        "--person-score",
        choices=("det", "det_x_pose"),
        help="written person score: detector's, or times mean keypoint confidence",
    )
    m = p.add_argument_group("models")
    m.add_argument(
        "--models-dir",
        type=Path,
        help="folder of the ONNX files (default: $ORPOSE_MODELS, else "
        "$ORPOSE_SHARED/models, else ../shared/models)",
    )
    m.add_argument("--manifest", type=Path, help="extra model manifest (YAML/JSON), see docs")
    m.add_argument(
        "--threads",
        type=cli_number(int, min=0, max=1024),
        default=0,
        help="onnxruntime threads (0: its default)",
    )


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "label",
        help="pseudo-label images and videos with the teacher (detector + 2D pose [+ 3D])",
        description="Run the teacher over image files, folders and videos and write one COCO "
        "pseudo-label file (soft and hard 2D sets, optional 3D). Interrupted runs resume where "
        "they stopped when the same command is run again.",
    )
    p.add_argument(
        "inputs",
        nargs="+",
        type=cli_input_path,
        help="images, folders of images, video files, COCO files (their images)",
    )
    p.add_argument("--out", type=Path, required=True, help="pseudo-label file to write (.json)")
    p.add_argument(
        "--video-step",
        type=cli_number(int, min=1, max=10**6),
        default=1,
        metavar="K",
        help="label every K-th video frame",
    )
    p.add_argument(
        "--downscale",
        type=cli_number(float, min=1, max=1000),
        default=1.0,
        metavar="S",
        help="degrade every image by S (down then up, bilinear) before the teacher",
    )
    p.add_argument(
        "--shard", metavar="I/N", help="label only part I of N (0-based); join with label-merge"
    )
    p.add_argument(
        "--lifter", type=Path, metavar="CKPT", help="2D-to-3D lifter checkpoint: adds 3D sets"
    )
    p.add_argument(
        "--frames-dir",
        type=Path,
        help="where labelled video frames are saved (default: <out stem>_frames/)",
    )
    p.add_argument("--frame-format", default="jpg", choices=("jpg", "png"))
    p.add_argument(
        "--images",
        type=Path,
        default=None,
        metavar="DIR",
        help="image root of COCO-file inputs whose file names are relative (as `orpose eval "
        "--images`; default: images/ beside the file, else its folder)",
    )
    p.add_argument("--restart", action="store_true", help="discard an earlier journal and output")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    _add_teacher_options(p)
    p.set_defaults(func=run_label)

    merge = subparsers.add_parser(
        "label-merge",
        help="join the files of sharded 'orpose label --shard I/N' runs",
        description="Join shard files into one pseudo-label file, identical to an unsharded run.",
    )
    merge.add_argument("shards", nargs="+", type=Path, help="the shard files (OUT.shardIofN.json)")
    merge.add_argument("--out", type=Path, required=True)
    merge.add_argument(
        "--allow-missing", action="store_true", help="merge even if shards are missing"
    )
    merge.set_defaults(func=run_merge)

    models = subparsers.add_parser(
        "label-models",
        help="list the teacher's models and check them",
        description="List the models of the manifest (task, output, input size, licence) and "
        "check that each file is in the models folder with the sha256 the manifest records.",
    )
    models.add_argument(
        "--models-dir", type=Path, help="default: $ORPOSE_MODELS, else <shared folder>/models"
    )
    models.add_argument(
        "--manifest", type=Path, help="a YAML/JSON manifest adding to the packaged models.yaml"
    )
    models.set_defaults(func=run_models)


def _models_dir(folder: Path | None) -> Path | None:
    if folder is not None:
        if not folder.is_dir():
            raise UserError(f"--models-dir {folder}: no such folder")
        return folder
    return models_dir(required=False)


def run_label(args: argparse.Namespace) -> int:
    return label(
        args.inputs,
        args.out,
        video_step=args.video_step,
        downscale=args.downscale,
        shard=args.shard,
        lifter=args.lifter,
        frames_dir=args.frames_dir,
        frame_format=args.frame_format,
        images=args.images,
        restart=args.restart,
        progress=not args.no_progress,
        preset=args.preset,
        config=args.config,
        models_dir=args.models_dir,
        manifest=args.manifest,
        threads=args.threads,
        **{key: getattr(args, key) for key in TEACHER_SETTINGS},
    )


# the teacher's single settings that `label` takes as options (None: the preset's / config's)
TEACHER_SETTINGS = (
    "detector",
    "pose_model",
    "det_scales",
    "det_flip",
    "pose_flip",
    "pose_scales",
    "min_person_score",
    "keypoint_threshold",
    "min_keypoints",
    "person_score",
)


def label(
    inputs: Sequence[Path],
    out: Path,
    *,
    video_step: int = 1,
    downscale: float = 1.0,
    shard: str | None = None,
    lifter: Path | None = None,
    frames_dir: Path | None = None,
    frame_format: str = "jpg",
    images: Path | None = None,
    restart: bool = False,
    progress: bool = True,
    preset: str = "full",
    config: Path | None = None,
    models_dir: Path | None = None,
    manifest: Path | None = None,
    threads: int = 0,
    **settings: Any,
) -> int:
    """``orpose label``: the teacher's pseudo labels of ``inputs`` (images, folders, videos,
    COCO files) written to ``out``, resumably. The teacher is the ``preset`` updated by a YAML
    ``config`` and by ``settings`` (:data:`TEACHER_SETTINGS`, None: unset); ``lifter``: a lifter
    checkpoint for 3D; the other options are the verb's (``orpose label --help``)."""
    from orpose.teacher.labelling import Shard, run_labelling
    from orpose.teacher.teacher import Teacher

    unknown = sorted(set(settings) - set(TEACHER_SETTINGS))
    if unknown:
        raise TypeError(f"label() got unknown teacher settings: {', '.join(unknown)}")
    inputs, out = [Path(p) for p in inputs], Path(out)
    lifter = None if lifter is None else Path(lifter)
    parsed_shard = Shard.parse(shard) if shard else None  # before any work, as below
    image_root = _image_root(images, inputs)
    refuse_overwriting_inputs(out, inputs)
    check_output_file(out)  # before the models are loaded or an image read
    check_frames_dir(inputs, out, frames_dir)
    teacher_config = load_config(preset, config, **settings)
    teacher = Teacher.from_config(teacher_config, _models_dir(models_dir), manifest, threads)
    loaded_lifter = lifter_info = None
    if lifter is not None:
        from orpose.teacher.lift3d import load_lifter

        loaded_lifter = load_lifter(lifter)
        lifter_info = {"path": str(lifter.resolve()), "sha256": sha256_of(lifter)}
    summary = run_labelling(
        inputs,
        out,
        teacher,
        video_step=video_step,
        downscale=downscale,
        shard=parsed_shard,
        frames_dir=frames_dir,
        frame_format=frame_format,
        lifter=loaded_lifter,
        lifter_info=lifter_info,
        restart=restart,
        progress=progress,
        image_root=image_root,
    )
    resumed = f" (resumed: {summary.already_done} already done)" if summary.already_done else ""
    print(
        f"{summary.out}: labelled {summary.images} images, {summary.persons} persons, skipped "
        f"{summary.skipped} in {summary.seconds:.1f} s ({summary.images_per_second:.2f} images/s, "
        f"{summary.persons_per_second:.2f} people/s){resumed}"
    )
    return 0


def check_frames_dir(inputs: Sequence[Path], out: Path, frames_dir: Path | None) -> None:
    """``--frames-dir`` as an output folder, before any work: when given, and its default
    (``<out stem>_frames/``) when a video is among the inputs (its frames are saved there)."""
    from orpose.data.sources import is_video
    from orpose.teacher.labelling import output_paths

    videos = any(Path(p).is_file() and is_video(Path(p)) for p in inputs)
    option = "--frames-dir" if frames_dir is not None else "--frames-dir (default)"
    folder = frames_dir or output_paths(out, None)[2]
    if videos:  # saved frames in an input folder would be labelled again as its images
        refuse_overwriting_inputs(folder, inputs, option, folder=True)
    if frames_dir is not None or videos:
        check_output_folder(folder, option)


def _image_root(images: Path | None, inputs: Sequence[Path]) -> Path | None:
    """``--images``: only for COCO-file inputs, and a folder that exists."""
    if images is None:
        return None
    if not any(p.suffix.lower() == ".json" for p in inputs):
        raise UserError("--images applies to COCO-file inputs (.json); none is given")
    if not images.is_dir():
        raise UserError(f"--images {images}: no such folder")
    return images


def run_merge(args: argparse.Namespace) -> int:
    from orpose.teacher.writer import merge_label_files

    refuse_overwriting_inputs(args.out, args.shards)
    check_output_file(args.out)  # before the shards are read
    payload = merge_label_files(args.shards, args.out, args.allow_missing)
    print(
        f"{args.out}: {len(payload['images'])} images, {len(payload['annotations'])} persons "
        f"from {len(args.shards)} shard file(s)"
    )
    return 0


def run_models(args: argparse.Namespace) -> int:
    folder = _models_dir(args.models_dir)
    for name, spec in sorted(load_manifest(args.manifest).items()):
        try:
            status = f"ok ({verify_model(spec, folder)})"
        except ModelError as err:
            status = f"unavailable: {err}"
        size = f"{spec.input.width}x{spec.input.height}"
        print(f"{name:34s} {spec.task:8s} {spec.output:12s} {size:8s} {spec.licence:12s} {status}")
    return 0
