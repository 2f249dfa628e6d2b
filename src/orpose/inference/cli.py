"""Verbs of the inference stage: ``predict`` and ``export``."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

log = logging.getLogger(__name__)

EXPORT_FORMATS = ("onnx", "torchscript", "checkpoint")


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
    _register_export(subparsers)


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
    p.set_defaults(func=run_predict_cli)


def build_predictor(model: str, device: str | None, threads: int, proposals: int | None = None):
    """A PyTorch predictor for checkpoints, an onnxruntime one for .onnx files."""
    from orpose.errors import UserError

    if model.lower().endswith(".onnx"):
        from orpose.inference.onnx_runner import OnnxStudent

        if proposals is not None:
            raise UserError("--proposals is fixed in an ONNX graph: give it to 'orpose export'")
        return OnnxStudent(model, threads=threads)
    import torch

    from orpose.inference.predictor import StudentPredictor

    if threads > 0:
        torch.set_num_threads(threads)
    return StudentPredictor.from_checkpoint(model, device, proposals)


def run_predict_cli(args: argparse.Namespace) -> int:
    from orpose.errors import UserError
    from orpose.inference.journal import JournalMismatch
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
    )
    try:
        predictor = build_predictor(args.model, args.device, args.threads, args.proposals)
    except ValueError as err:
        raise UserError(str(err)) from err
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


# -- export --


def _register_export(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "export",
        help="the student to ONNX (dynamic image size), TorchScript or an orpose checkpoint",
        description="Export a student checkpoint (orpose or official detectron2). ONNX: one graph "
        "from an RGB float image (3, H, W) in [0, 1], any H and W, to boxes, scores, 2D keypoints "
        "and 3D keypoints; checked against PyTorch on real images with onnxruntime.",
    )
    p.add_argument(
        "checkpoint", help="student checkpoint (orpose or detectron2), or random:BACKBONE"
    )
    p.add_argument(
        "--out",
        type=Path,
        default=None,
        help="output folder (default: beside the checkpoint; ./exports for random:)",
    )
    p.add_argument(
        "--format",
        nargs="+",
        choices=EXPORT_FORMATS,
        default=["onnx"],
        help="what to write (default: onnx); checkpoint converts e.g. a detectron2 "
        "file into an orpose checkpoint",
    )
    p.add_argument("--opset", type=int, default=17, help="ONNX opset (>= 11; default 17)")
    p.add_argument(
        "--size",
        default="640x480",
        metavar="WxH",
        help="size of the tracing image (default 640x480); the graph takes any size, except "
        "for the picodet_lcnet backbone, whose graph takes this size only",
    )
    p.add_argument(
        "--proposals",
        type=int,
        default=None,
        metavar="N",
        help="at most N RPN proposals per image in the exported model (default: 1000)",
    )
    p.add_argument(
        "--check-images",
        type=Path,
        default=None,
        metavar="DIR",
        help="real images for the PyTorch/ONNX check (default: the shared "
        "coco_person_val500 images when present)",
    )
    p.add_argument("--check-count", type=int, default=5, help="images checked (0: no check)")
    p.add_argument(
        "--tolerance",
        type=float,
        default=0.1,
        metavar="PX",
        help="keypoint difference (pixels) the check accepts (default 0.1)",
    )
    p.add_argument(
        "--max-share",
        type=float,
        default=0.005,
        metavar="SHARE",
        help="share of keypoints (and of detections unpaired) allowed beyond the tolerance: "
        "argmax ties and grid steps, see docs/inference.md (default 0.005)",
    )
    p.set_defaults(func=run_export_cli)


def _size(text: str) -> tuple[int, int]:
    from orpose.errors import UserError

    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise UserError(f"--size: expected WxH such as 640x480, got {text!r}") from None
    return w, h


def _default_check_images() -> Path | None:
    from orpose.paths import shared_data

    return shared_data("coco_person_val500/images", required=False)


def run_export_cli(args: argparse.Namespace) -> int:
    from orpose.errors import UserError
    from orpose.inference.agreement import compare_on_images
    from orpose.inference.export import (
        export_onnx,
        export_torchscript,
        has_fixed_size,
        sample_image,
    )
    from orpose.inference.predictor import (
        limit_proposals,
        model_name,
        resolve_student,
        save_student,
    )

    try:
        model = limit_proposals(resolve_student(args.checkpoint), args.proposals)
    except ValueError as err:
        raise UserError(str(err)) from err
    is_random = args.checkpoint.startswith("random:")
    out = args.out or (Path("exports") if is_random else Path(args.checkpoint).parent)
    stem = model_name(args.checkpoint)
    images = args.check_images or _default_check_images()
    size = _size(args.size)
    fixed = has_fixed_size(model)
    if fixed:
        print(f"note: a {model.config.backbone} graph takes {size[0]}x{size[1]} images only")
    if "checkpoint" in args.format:
        print(f"saved {save_student(model, out / f'{stem}_orpose.pt')}")
    if "torchscript" in args.format:
        script = export_torchscript(model, out / f"{stem}.torchscript.pt", sample_image(size))
        print(f"saved {script}")
    if "onnx" in args.format:
        onnx_path = export_onnx(model, out / f"{stem}.onnx", sample_image(size), args.opset)
        print(f"saved {onnx_path}")
        if args.check_count > 0:
            if images is None:
                raise UserError("no images for the check: give --check-images or --check-count 0")
            resize = size if fixed else None
            report = compare_on_images(model, onnx_path, images, args.check_count, resize)
            print(report.describe(args.tolerance))
            beyond = report.share_beyond(args.tolerance)
            if beyond > args.max_share or report.unpaired > args.max_share * report.people:
                raise UserError("ONNX and PyTorch disagree beyond the tolerance (see above)")
    return 0
