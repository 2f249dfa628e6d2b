"""The verb of the inference stage: ``predict`` (``orpose export`` is :mod:`orpose.export.cli`)."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from orpose.errors import UserError
from orpose.inference.journal import JournalMismatch

log = logging.getLogger(__name__)


def _positive_float(text: str) -> float:
    value = float(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a factor >= 1, got {text}")
    return value


def _root_depth(text: str) -> float | str:
    if text.strip().lower() == "auto":
        return "auto"
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a depth in mm or 'auto', got {text}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a depth > 0 mm, got {text}")
    return value


def register(subparsers: argparse._SubParsersAction) -> None:
    _register_predict(subparsers)


# -- predict --


def _register_predict(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "predict",
        help="2D/3D poses of people in images, folders, videos or a live camera/stream",
        description="Run a student (orpose or official detectron2 checkpoint, or an exported "
        ".onnx) over images, folders of images, video files, camera indices (0, 1...) or stream "
        "URLs (rtsp://, http://...). Writes results.json (COCO results: bbox, keypoints with "
        "scores, keypoints3d in mm root-relative) and images.json (the images index), resumably; "
        "--overlay and --plot3d-every add renders.",
    )
    p.add_argument(
        "model",
        help="student checkpoint (.pt/.pth, orpose or detectron2), exported .onnx, or "
        "random:BACKBONE (random weights: to try the pipeline)",
    )
    p.add_argument("inputs", nargs="+", help="images, folders, videos, camera index or URL")
    p.add_argument(
        "--out",
        type=Path,
        default=Path("orpose_predictions"),
        help="output folder (default: ./orpose_predictions)",
    )
    p.add_argument(
        "--score-threshold",
        type=float,
        default=0.5,
        help="people below this score are neither written nor drawn (default 0.5; "
        "0 keeps every detection, as COCO AP wants)",
    )
    p.add_argument(
        "--keypoint-threshold",
        type=float,
        default=0.3,
        help="overlays hide keypoints whose score is below this (default 0.3)",
    )
    privacy = p.add_argument_group("low resolution / privacy")
    privacy.add_argument(
        "--downscale",
        type=_positive_float,
        default=1.0,
        metavar="S",
        help="privacy mode: shrink every frame to 1/S right after decoding; no "
        "full-resolution pixel is kept or written (overlays at 1/S)",
    )
    privacy.add_argument(
        "--lowres-input",
        type=_positive_float,
        default=None,
        metavar="S",
        help="the input is already shrunk S times (default: guessed, 640/width "
        "for frames of at most 100 px, else 1)",
    )
    privacy.add_argument(
        "--native-lowres",
        action="store_true",
        help="give low-resolution frames to the student as they are (the CPU student's native "
        "path: several times faster, see docs/inference.md for what it costs in AP) instead of "
        "upsampled back to the camera size (the paper's protocol, the default)",
    )
    frames = p.add_argument_group("frames")
    frames.add_argument("--step", type=int, default=1, help="every N-th video frame")
    frames.add_argument(
        "--max-frames", type=int, default=None, help="at most N frames per video or stream"
    )
    render = p.add_argument_group("rendering")
    render.add_argument(
        "--overlay",
        action="store_true",
        help="2D skeleton overlays: one image per input image, one .mp4 per "
        "video or stream (in OUT/overlays)",
    )
    render.add_argument(
        "--plot3d-every",
        type=int,
        default=0,
        metavar="N",
        help="a 3D skeleton plot of every N-th frame (OUT/plots3d; 0: none)",
    )
    render.add_argument(
        "--root-depth",
        type=_root_depth,
        default=None,
        metavar="MM|auto",
        help="3D plots: one scene with each pose at its image position, at this root depth "
        "(mm) or, with 'auto', at the depth estimated from its 2D and 3D sizes, as in the "
        "paper's figures (default: one body-centred panel per person)",
    )
    render.add_argument(
        "--focal",
        type=float,
        default=None,
        metavar="PX",
        help="focal length for --root-depth (default: MVOR's 538 px at 640 wide)",
    )
    track = p.add_argument_group("tracking (videos, streams, folders of frames)")
    track.add_argument(
        "--track",
        action="store_true",
        help="give each person a track id across frames (ByteTrack on the boxes): "
        "track_id in results.json, #id on the overlays",
    )
    track.add_argument(
        "--smooth",
        type=float,
        default=None,
        metavar="ALPHA",
        help="with --track: exponential smoothing of each track's keypoints, "
        "ALPHA * new + (1 - ALPHA) * previous (0 < ALPHA <= 1; 1: none; lag (1-ALPHA)/ALPHA "
        "frames)",
    )
    run = p.add_argument_group("runtime")
    run.add_argument("--device", default=None, help="PyTorch device (default: cuda if available)")
    run.add_argument("--threads", type=int, default=0, help="CPU threads (0: library default)")
    run.add_argument(
        "--proposals",
        type=int,
        default=None,
        metavar="N",
        help="checkpoints: at most N RPN proposals per frame (default: the model's, 1000); "
        "fewer is faster on CPUs",
    )
    run.add_argument(
        "--overwrite",
        action="store_true",
        help="start again instead of resuming from OUT/predictions.jsonl",
    )
    run.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_h36_stats_argument(run)
    p.set_defaults(func=run_predict_cli)


def add_h36_stats_argument(parser) -> None:
    """``--h36-stats FILE``: the official lifters' Human3.6M statistics (official checkpoints)."""
    parser.add_argument(
        "--h36-stats",
        type=Path,
        default=None,
        metavar="FILE",
        help="official ORPose (detectron2) checkpoints: the official data/h36stats.json that "
        "their lifters need for 3D (default: $ORPOSE_H36_STATS); without it, or without lifter "
        "weights in the checkpoint, the model gives 2D only and says so",
    )


def build_predictor(
    model: str,
    device: str | None,
    threads: int,
    proposals: int | None = None,
    h36_stats: Path | None = None,
):
    """A PyTorch predictor for checkpoints, an onnxruntime one for .onnx files."""
    if model.lower().endswith(".onnx"):
        from orpose.inference.onnx_runner import load_onnx_student

        if proposals is not None:
            raise UserError("--proposals is fixed in an ONNX graph: give it to 'orpose export'")
        return load_onnx_student(model, threads)
    import torch

    from orpose.student.predictor import StudentPredictor

    if threads > 0:
        torch.set_num_threads(threads)
    return StudentPredictor.from_checkpoint(model, device, proposals, h36_stats)


def run_predict_cli(args: argparse.Namespace) -> int:
    from orpose.inference.pipeline import PredictOptions, run_predict

    if args.step < 1:
        raise UserError("--step must be >= 1")
    if args.downscale > 1 and args.lowres_input is not None:
        raise UserError("--downscale and --lowres-input exclude each other")
    if args.smooth is not None and not args.track:
        raise UserError("--smooth smooths along tracks: give --track too")
    if args.smooth is not None and not 0 < args.smooth <= 1:
        raise UserError(f"--smooth: expected 0 < ALPHA <= 1, got {args.smooth:g}")
    options = PredictOptions(
        out=args.out,
        score_threshold=args.score_threshold,
        keypoint_threshold=args.keypoint_threshold,
        downscale=args.downscale,
        lowres_input=args.lowres_input,
        video_step=args.step,
        max_frames=args.max_frames,
        overlays=args.overlay,
        plot3d_every=args.plot3d_every,
        root_depth_mm=args.root_depth,
        focal_px=args.focal,
        resume=not args.overwrite,
        progress=not args.no_progress,
        track=args.track,
        smooth=args.smooth,
        native_lowres=args.native_lowres,
    )
    try:
        predictor = build_predictor(
            args.model, args.device, args.threads, args.proposals, args.h36_stats
        )
    except ValueError as err:
        raise UserError(str(err)) from err
    if hasattr(predictor, "model"):  # a checkpoint: do not pose people that cannot be written
        from orpose.student.predictor import skip_people_below

        skip_people_below(predictor.model, args.score_threshold)
    try:
        summary = run_predict(predictor, args.inputs, options, {"model": str(args.model)})
    except JournalMismatch as err:
        raise UserError(str(err)) from err
    print(
        f"{summary.frames} frame(s), {summary.people} people, {summary.fps:.2f} frames/s "
        f"-> {summary.results}, {summary.images}"
    )
    if args.track:
        print(f"{summary.tracks} track id(s) (track_id in {summary.results})")
    if summary.stopped:
        print(f"stopped early ({summary.stopped}): rerun the same command to resume")
    for path in summary.rendered[:5]:
        print(f"rendered {path}")
    if len(summary.rendered) > 5:
        print(f"... and {len(summary.rendered) - 5} more in {args.out}")
    return 0
