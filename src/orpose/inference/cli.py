"""The verb of the inference stage: ``predict`` (``orpose export`` is :mod:`orpose.export.cli`)."""

from __future__ import annotations

import argparse
import logging
import os
from collections.abc import Sequence
from pathlib import Path

from orpose.config import cli_input_path, cli_number
from orpose.cpu_threads import brief_spins
from orpose.errors import SourceError, UserError
from orpose.evaluation.shown import (
    LOWEST_DEFAULT_SCORE_THRESHOLD,
    POSE_CONFIDENCE_BOUNDS,
    SCORE_THRESHOLDS,
    describe_by_factor,
)
from orpose.inference.journal import JournalMismatch
from orpose.outputs import check_output_folder, refuse_overwriting_inputs

log = logging.getLogger(__name__)


# every number of the command line is checked by orpose.config's types: finite, in range
_FACTOR = cli_number(float, min=1, max=1000)  # a downscale factor (privacy mode: 1/S kept)
_SCORE = cli_number(float, min=0, max=1)
_root_depth = cli_number(float, above=0, max=1e6, words=("auto",))  # mm, or auto
DEFAULT_OUT = Path("orpose_predictions")
LOWRES_PATHS = ("auto", "upsampled", "native")


def _input(text: str) -> str:
    """An input as given (a path, a camera number, a URL), never an empty text (which would be
    the whole current folder: see :func:`orpose.config.cli_input_path`)."""
    cli_input_path(text)
    return text


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
    p.add_argument(
        "inputs",
        nargs="+",
        type=_input,
        help="images, folders, videos, camera index or URL",
    )
    p.add_argument(
        "--out",
        type=Path,
        default=DEFAULT_OUT,
        help="output folder (default: ./orpose_predictions)",
    )
    p.add_argument(
        "--score-threshold",
        type=_SCORE,
        default=None,
        help="people below this score are neither written nor drawn (default: by the frame's "
        "downscale factor, "
        + describe_by_factor(SCORE_THRESHOLDS)
        + ", interpolated between: see docs/inference.md, 'What a user sees'; 0 keeps every "
        "detection, as COCO AP wants)",
    )
    p.add_argument(
        "--pose-confidence-bound",
        type=cli_number(float, min=0.01, max=1),
        default=None,
        metavar="B",
        help="the CPU student (other models pose every candidate): pose only the candidates "
        "detected at least at the score threshold / B (a person's score is its detection "
        "score times its pose confidence, assumed to be at most B; default: by the frame's "
        "downscale factor, "
        + describe_by_factor(POSE_CONFIDENCE_BOUNDS)
        + ", measured on unlabelled training images; 1 poses every candidate that could be "
        "shown, for exact results; docs/inference.md)",
    )
    p.add_argument(
        "--keypoint-threshold",
        type=_SCORE,
        default=0.3,
        help="overlays hide keypoints whose score is below this (default 0.3)",
    )
    privacy = p.add_argument_group("low resolution / privacy")
    privacy.add_argument(
        "--downscale",
        type=_FACTOR,
        default=1.0,
        metavar="S",
        help="privacy mode: shrink every frame to 1/S right after decoding; no "
        "full-resolution pixel is kept or written (overlays at 1/S)",
    )
    privacy.add_argument(
        "--lowres-input",
        type=_FACTOR,
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
        "upsampled back to the camera size (the paper's protocol, the default); checkpoints "
        "lift its keypoints in the camera size's pixels, as on the upsampled frame; the same "
        "as --lowres-path native",
    )
    privacy.add_argument(
        "--lowres-path",
        choices=LOWRES_PATHS,
        default="auto",
        help="how low-resolution frames reach the student: upsampled back to the camera size "
        "(the paper's protocol) or as they are (native, faster). auto (default): native where "
        "`orpose eval --compare-lowres-paths` measured it within 1 keypoint-AP point of the "
        "upsampled path on two evaluation sets at that factor, else upsampled; the choice and "
        "its reason are printed (docs/inference.md, 'Privacy mode: which path')",
    )
    frames = p.add_argument_group("frames")
    frames.add_argument(
        "--step", type=cli_number(int, min=1, max=10**6), default=1, help="every N-th video frame"
    )
    frames.add_argument(
        "--max-frames",
        type=cli_number(int, min=1, max=10**9),
        default=None,
        help="at most N frames per video or stream",
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
        type=cli_number(int, min=0, max=10**9),
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
        type=cli_number(float, above=0, max=1e6),
        default=None,
        metavar="PX",
        help="focal length for --root-depth (default: --camera's fx, else MVOR's 538 px at 640 "
        "wide)",
    )
    lifting = p.add_argument_group("3D")
    add_camera_argument(lifting)
    track = p.add_argument_group("tracking (videos, streams, folders of frames)")
    track.add_argument(
        "--track",
        action="store_true",
        help="give each person a track id across frames (ByteTrack on the boxes): "
        "track_id in results.json, #id on the overlays",
    )
    track.add_argument(
        "--smooth",
        type=cli_number(float, above=0, max=1),
        default=None,
        metavar="ALPHA",
        help="with --track: exponential smoothing of each track's keypoints, "
        "ALPHA * new + (1 - ALPHA) * previous (0 < ALPHA <= 1; 1: none; lag (1-ALPHA)/ALPHA "
        "frames)",
    )
    cameras = p.add_argument_group("several cameras")
    cameras.add_argument(
        "--concurrent",
        action="store_true",
        help="serve every input (video, folder of frames, camera, URL) as a camera stream of "
        "one process: a frame of each in turn, posed together (threads on a CPU, one batch on a "
        "GPU), one folder of "
        "results per camera (OUT/<camera>/). Automatic when two or more live cameras or URLs "
        "are given. See docs/inference.md, 'Several cameras'",
    )
    run = p.add_argument_group("runtime")
    run.add_argument("--device", default=None, help="PyTorch device (default: cuda if available)")
    run.add_argument(
        "--threads",
        type=cli_number(int, min=0, max=1024),
        default=0,
        help="CPU threads (0: library default)",
    )
    run.add_argument(
        "--proposals",
        type=cli_number(int, min=1, max=10**5),
        default=None,
        metavar="N",
        help="checkpoints: at most N RPN proposals per frame (default: the model's, 1000); "
        "fewer is faster on CPUs",
    )
    run.add_argument(
        "--flip",
        action="store_true",
        help="checkpoints of the CPU student: pose each person also on its mirrored crop "
        "(twice the pose work; more accurate at low resolution, docs/student.md)",
    )
    run.add_argument(
        "--overwrite",
        action="store_true",
        help="start again instead of resuming from OUT/predictions.jsonl",
    )
    run.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_h36_stats_argument(run)
    p.set_defaults(func=run_predict_cli)


def add_camera_argument(parser) -> None:
    """``--camera``: the frames' intrinsics, which the lifters' 2D input goes through."""
    parser.add_argument(
        "--camera",
        default=None,
        metavar="FILE|fx,fy,cx,cy",
        help="checkpoints: the intrinsics of the camera's (full-resolution) frames, for 3D: a "
        "JSON file with fx, fy, cx, cy in pixels (optionally width and height: the frame size "
        "they are for, scaled to frames of another size), an MVOR camera entry (focallength, "
        "principalpoint, imagesize), an MVOR annotation file with the camera's number "
        "(camma_mvor_2018.json:3), or fx,fy,cx,cy. The lifters were trained on MVOR-like "
        "cameras (fx 538 px at 640x480); the keypoints are re-projected into such a camera, so "
        "3D stays right for other cameras and frame sizes. Default: the frame's pixels as they "
        "are (right for MVOR-like 640x480 frames). See docs/lifting.md",
    )


def read_camera_option(spec: str | None):
    """The parsed ``--camera`` (None when not given); errors exit 2 naming the file and field."""
    if spec is None:
        return None
    from orpose.lifting.intrinsics import read_camera

    return read_camera(spec)


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
    camera=None,
    *,
    score_threshold: float | None = None,
    flip: bool = False,
    pose_confidence_bound: float | None = None,
):
    """A PyTorch predictor for checkpoints, an onnxruntime one for .onnx files; ``camera``
    (:class:`orpose.lifting.intrinsics.Intrinsics`): the frames' intrinsics for 3D. A checkpoint
    does not pose people below ``score_threshold`` (None: below the lowest of predict's
    defaults), who could not be shown anyway; ``flip``: it poses mirrored crops too;
    ``pose_confidence_bound``: see predict's ``--pose-confidence-bound`` (None: by factor)."""
    predictor = _build_predictor(
        model, device, threads, proposals, h36_stats, camera, score_threshold, flip
    )
    if pose_confidence_bound is not None:
        if not 0.01 <= pose_confidence_bound <= 1:
            raise UserError(
                f"--pose-confidence-bound: expected a number 0.01-1, got {pose_confidence_bound:g}"
            )
        predictor.pose_confidence_bound = float(pose_confidence_bound)
    return predictor


def pose_bound_setting(predictor, bound: float | None) -> dict:
    """The pose-confidence bound as a predict folder records it (who is posed, so who is
    shown, may depend on it): absent where it changes nothing, for a model that poses every
    candidate and for B = 1 (the exact rule, as folders predicted before the bound existed)."""
    if not getattr(predictor, "accepts_min_score", False) or bound == 1:
        return {}
    return {"pose_confidence_bound": "by factor" if bound is None else bound}


def _build_predictor(model, device, threads, proposals, h36_stats, camera, score_threshold, flip):
    if model.lower().endswith(".onnx"):
        from orpose.inference.onnx_runner import load_onnx_student

        if proposals is not None:
            raise UserError("--proposals is fixed in an ONNX graph: give it to 'orpose export'")
        if flip:
            raise UserError("--flip is fixed in an ONNX graph: give it to 'orpose export'")
        if camera is not None:
            raise UserError(
                "--camera: an ONNX graph lifts the pixels of its input as they are; give a "
                "checkpoint for another camera"
            )
        return load_onnx_student(model, threads, spin=False)
    import torch

    from orpose.predictor import StudentPredictor, set_flip_test, skip_people_below

    if threads > 0:
        torch.set_num_threads(threads)
    predictor = StudentPredictor.from_checkpoint(model, device, proposals, h36_stats, camera=camera)
    set_flip_test(predictor.model, flip)
    least = LOWEST_DEFAULT_SCORE_THRESHOLD if score_threshold is None else score_threshold
    skip_people_below(predictor.model, least)
    return predictor


def concurrent_streams(inputs: list[str], asked: bool) -> bool:
    """Whether the inputs are served as concurrent camera streams: when asked, and always for
    two or more live cameras or URLs (read one after the other, the first never ends)."""
    from orpose.data.sources import is_stream

    return asked or sum(is_stream(i) for i in inputs) >= 2


def _print_streams(summary) -> int:
    for name, camera in summary.cameras.items():
        skipped = f", skipped {camera.skipped} undecodable" if camera.skipped else ""
        tracks = f", {camera.tracks} track id(s)" if camera.tracks else ""
        print(
            f"{name}: {camera.frames} frame(s), {camera.people} people{tracks}{skipped} -> "
            f"{camera.results}"
        )
    print(
        f"{len(summary.cameras)} camera stream(s): {summary.fps:.2f} frames/s in all "
        f"({summary.seconds:.1f} s)"
    )
    if summary.stopped:
        print(f"stopped early ({summary.stopped}): rerun the same command to resume")
    return 0


def choose_lowres_path(
    model: str,
    downscale: float,
    lowres_input: float | None,
    native_lowres: bool,
    lowres_path: str,
) -> bool:
    """Whether low-resolution frames take the native path: asked (``native_lowres``,
    ``lowres_path`` native or upsampled), or chosen from the model's measured record
    (:mod:`orpose.evaluation.lowres_paths`) in privacy mode (``lowres_path`` auto); says which."""
    if lowres_path not in LOWRES_PATHS:
        raise UserError(
            f"--lowres-path: expected one of {', '.join(LOWRES_PATHS)}, got {lowres_path!r}"
        )
    if native_lowres and lowres_path == "upsampled":
        raise UserError("--native-lowres and --lowres-path upsampled exclude each other")
    if native_lowres or lowres_path != "auto":
        return native_lowres or lowres_path == "native"
    factor = downscale if downscale > 1 else lowres_input
    if factor is None or factor <= 1 or model.startswith("random:"):
        return False
    from orpose.evaluation.lowres_paths import choose_path

    choice = choose_path(model, factor)
    name = "native" if choice.native else "upsampled (the paper's protocol)"
    print(f"low resolution {factor:g}x: {name} path: {choice.reason}")
    return choice.native


def run_predict_cli(args: argparse.Namespace) -> int:
    """``orpose predict``, parsed: :func:`predict`."""
    return predict(
        args.model,
        args.inputs,
        args.out,
        score_threshold=args.score_threshold,
        keypoint_threshold=args.keypoint_threshold,
        downscale=args.downscale,
        lowres_input=args.lowres_input,
        native_lowres=args.native_lowres,
        lowres_path=args.lowres_path,
        step=args.step,
        max_frames=args.max_frames,
        overlay=args.overlay,
        plot3d_every=args.plot3d_every,
        root_depth=args.root_depth,
        focal=args.focal,
        camera=args.camera,
        track=args.track,
        smooth=args.smooth,
        concurrent=args.concurrent,
        device=args.device,
        threads=args.threads,
        proposals=args.proposals,
        flip=args.flip,
        pose_confidence_bound=args.pose_confidence_bound,
        overwrite=args.overwrite,
        progress=not args.no_progress,
        h36_stats=args.h36_stats,
    )


def predict(
    model: str | os.PathLike,
    inputs: Sequence[str | os.PathLike],
    out: Path = DEFAULT_OUT,
    *,
    score_threshold: float | None = None,
    keypoint_threshold: float = 0.3,
    downscale: float = 1.0,
    lowres_input: float | None = None,
    native_lowres: bool = False,
    lowres_path: str = "auto",
    step: int = 1,
    max_frames: int | None = None,
    overlay: bool = False,
    plot3d_every: int = 0,
    root_depth: float | str | None = None,
    focal: float | None = None,
    camera: str | None = None,
    track: bool = False,
    smooth: float | None = None,
    concurrent: bool = False,
    device: str | None = None,
    threads: int = 0,
    proposals: int | None = None,
    flip: bool = False,
    pose_confidence_bound: float | None = None,
    overwrite: bool = False,
    progress: bool = True,
    h36_stats: Path | None = None,
) -> int:
    """``orpose predict``: run the student ``model`` (a checkpoint, an exported .onnx or
    ``random:BACKBONE``) over ``inputs`` (images, folders, videos, camera numbers, URLs) and write
    results.json and images.json in ``out``, resumably (``overwrite``: start again); print the
    summary. ``score_threshold`` None: by the frame's downscale factor; ``progress`` False is
    ``--no-progress``; the other options are the verb's of those names (``orpose predict
    --help``)."""
    from orpose.inference.pipeline import PredictOptions, run_predict
    from orpose.inference.streams import run_predict_streams

    model, inputs, out = os.fspath(model), [os.fspath(i) for i in inputs], Path(out)
    if step < 1:
        raise UserError("--step must be >= 1")
    if downscale > 1 and lowres_input is not None:
        raise UserError("--downscale and --lowres-input exclude each other")
    if smooth is not None and not track:
        raise UserError("--smooth smooths along tracks: give --track too")
    if smooth is not None and not 0 < smooth <= 1:
        raise UserError(f"--smooth: expected 0 < ALPHA <= 1, got {smooth:g}")
    native = choose_lowres_path(model, downscale, lowres_input, native_lowres, lowres_path)
    intrinsics = read_camera_option(camera)
    if focal is None and intrinsics is not None:
        focal = intrinsics.fx
    if overlay or plot3d_every:  # images written where a rerun would read them back
        from orpose.data.sources import is_stream

        files = [i for i in inputs if not is_stream(i)]
        refuse_overwriting_inputs(out, files, folder=True)
    check_output_folder(out)  # before the model is loaded or a frame read
    brief_spins()  # before PyTorch loads: idle threads sleep soon (docs/inference.md)
    options = PredictOptions(
        out=out,
        score_threshold=score_threshold,
        keypoint_threshold=keypoint_threshold,
        downscale=downscale,
        lowres_input=lowres_input,
        video_step=step,
        max_frames=max_frames,
        overlays=overlay,
        plot3d_every=plot3d_every,
        root_depth_mm=root_depth,
        focal_px=focal,
        resume=not overwrite,
        progress=progress,
        track=track,
        smooth=smooth,
        native_lowres=native,
    )
    try:
        predictor = build_predictor(
            model, device, threads, proposals, h36_stats, intrinsics,
            score_threshold=score_threshold, flip=flip,
            pose_confidence_bound=pose_confidence_bound,
        )  # fmt: skip
    except ValueError as err:
        raise UserError(str(err)) from err
    try:
        info = {"model": model}
        if intrinsics is not None:
            info["camera"] = intrinsics.to_dict()
        if proposals is not None:  # they change the results too
            info["proposals"] = proposals
        if h36_stats is not None:
            info["h36_stats"] = str(h36_stats)
        if flip:
            info["flip"] = True
        info.update(pose_bound_setting(predictor, pose_confidence_bound))
        if concurrent_streams(inputs, concurrent):
            return _print_streams(run_predict_streams(predictor, inputs, options, info))
        summary = run_predict(predictor, inputs, options, info)
    except JournalMismatch as err:
        raise UserError(str(err)) from err
    if summary.frames == 0 and summary.skipped and not summary.stopped:
        raise SourceError(
            f"no frame predicted: none of the {summary.skipped} input image(s) could be decoded "
            f"(warnings above); {summary.results} holds no result"
        )
    skipped = f", skipped {summary.skipped} undecodable (warnings above)" if summary.skipped else ""
    print(
        f"{summary.frames} frame(s), {summary.people} people, {summary.fps:.2f} frames/s "
        f"-> {summary.results}, {summary.images}{skipped}"
    )
    if track:
        print(f"{summary.tracks} track id(s) (track_id in {summary.results})")
    if summary.stopped:
        print(f"stopped early ({summary.stopped}): rerun the same command to resume")
    for path in summary.rendered[:5]:
        print(f"rendered {path}")
    if len(summary.rendered) > 5:
        print(f"... and {len(summary.rendered) - 5} more in {out}")
    return 0
