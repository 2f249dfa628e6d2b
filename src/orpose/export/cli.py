"""The verb of the export stage: ``orpose export`` (ONNX, TorchScript, orpose checkpoint)."""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from orpose.config import cli_input_path, cli_number
from orpose.data.coco import write_json_atomic
from orpose.errors import UserError
from orpose.inference.cli import add_h36_stats_argument
from orpose.outputs import check_output_folder
from orpose.paths import shared_data

EXPORT_FORMATS = ("onnx", "torchscript", "checkpoint")
# int8: what the help text states (orpose.export.int8, imported with onnxruntime when used)
DEFAULT_CALIBRATION_COUNT = 32
MAX_CALIBRATION_COUNT = 10_000
DEFAULT_INT8_TOLERANCE = 3.0  # pixels: the median keypoint within this of the fp32 graph's
INT8_MAX_UNPAIRED = 0.1  # share of the people the int8 graph may find or lose
SIZE_RANGE = (32, 8192)  # pixels per side of the tracing image (3 x 8192 x 8192 floats: 0.8 GB)
# the factor of the check of a graph's detector for shrunk frames (privacy mode's largest)
PRIVACY_CHECK_SCALE = 12


def register(subparsers: argparse._SubParsersAction) -> None:
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
    p.add_argument(
        "--opset", type=cli_number(int, min=11, max=99), default=17, help="ONNX opset (>= 11) [17]"
    )
    p.add_argument(
        "--size",
        type=_size,
        default="640x480",
        metavar="WxH",
        help="size of the tracing image (default 640x480); the graph takes any size, except "
        "for the picodet_lcnet backbone, whose graph takes this size only",
    )
    p.add_argument(
        "--proposals",
        type=cli_number(int, min=1, max=10**5),
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
    p.add_argument(
        "--check-count",
        type=cli_number(int, min=0, max=10**6),
        default=5,
        help="images checked (0: no check)",
    )
    add_h36_stats_argument(p)
    p.add_argument(
        "--tolerance",
        type=cli_number(float, min=0, max=1e4),
        default=0.1,
        metavar="PX",
        help="keypoint difference (pixels) the check accepts (default 0.1)",
    )
    p.add_argument(
        "--flip",
        action="store_true",
        help="the CPU student: the graphs pose each person also on its mirrored crop "
        "(orpose predict --flip; twice the pose work)",
    )
    p.add_argument(
        "--max-share",
        type=cli_number(float, min=0, max=1),
        default=0.005,
        metavar="SHARE",
        help="share of keypoints (and of detections unpaired) allowed beyond the tolerance: "
        "argmax ties and grid steps, see docs/inference.md (default 0.005)",
    )
    int8 = p.add_argument_group("int8 (the CPU student; see docs/inference.md, 'An int8 student')")
    int8.add_argument(
        "--int8",
        action="store_true",
        help="also write int8 copies of the ONNX graphs (NAME.int8.onnx and "
        "NAME.int8_native.onnx): static QDQ quantization with ONNX Runtime, calibrated on "
        "frames of the training sources, checked against the fp32 graphs on the check images",
    )
    int8.add_argument(
        "--calibration",
        type=cli_input_path,
        default=None,
        metavar="DIR_OR_COCO",
        help="calibration frames: a folder of images or a COCO file (e.g. the teacher's "
        "pseudo-labels); never evaluation images (default: the shared "
        "coco_person_unlabeled300 and or_x images)",
    )
    int8.add_argument(
        "--calibration-count",
        type=cli_number(int, min=1, max=MAX_CALIBRATION_COUNT),
        default=None,
        metavar="N",
        help=f"calibration frames, spread over the sources (default {DEFAULT_CALIBRATION_COUNT})",
    )
    int8.add_argument(
        "--int8-tolerance",
        type=cli_number(float, min=0, max=1e4),
        default=None,
        metavar="PX",
        help="the int8 check fails where the median keypoint is further than PX pixels from the "
        "fp32 graph's, at 1x, at 12x upsampled or on the native 12x graph (pixels of the "
        f"full-size photo; default {DEFAULT_INT8_TOLERANCE:g}), or where more than "
        f"{INT8_MAX_UNPAIRED * 100:.0f}%% of the people are found by one graph only",
    )
    p.set_defaults(func=run_export_cli)


def _size(text: str) -> tuple[int, int]:
    """``--size WxH``: two whole numbers, each within :data:`SIZE_RANGE` (argparse's one-line
    error otherwise: a 0x0 or 100000x100000 tracing image is a traceback or 120 GB)."""
    low, high = SIZE_RANGE
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WxH such as 640x480, got {text!r}") from None
    if not (low <= w <= high and low <= h <= high):
        raise argparse.ArgumentTypeError(
            f"expected WxH with each side {low}-{high} pixels, got {text!r}"
        )
    return w, h


def _default_check_images() -> Path | None:
    return shared_data("coco_person_val500/images", required=False)


def run_export_cli(args: argparse.Namespace) -> int:
    # imported here, not at the top: the command line registers this verb at start-up,
    # and these import torch and onnxruntime
    from orpose.export.agreement import compare_on_images
    from orpose.export.export import (
        export_onnx,
        export_torchscript,
        has_branches,
        has_fixed_size,
        sample_image,
        takes_factor,
    )
    from orpose.inference.onnx_runner import NATIVE_SUFFIX
    from orpose.predictor import (
        limit_proposals,
        model_name,
        resolve_student,
        save_student,
        set_flip_test,
    )
    from orpose.student.registry import families, family_of

    is_random = args.checkpoint.startswith("random:")
    out = args.out or (Path("exports") if is_random else Path(args.checkpoint).parent)
    if args.out is not None or out.is_dir() or is_random:  # (a missing checkpoint: named below)
        check_output_folder(out)  # before the model is loaded
    images = args.check_images or _default_check_images()
    calibration = _calibration_frames(args, images)  # before the model is loaded too
    try:
        model = limit_proposals(resolve_student(args.checkpoint, args.h36_stats), args.proposals)
        set_flip_test(model, args.flip)
    except ValueError as err:
        raise UserError(str(err)) from err
    if calibration and not family_of(model).int8:
        recipes = ", ".join(name for name, f in families().items() if f.int8)
        raise UserError(f"--int8: only the CPU student (family {recipes}) has an int8 "
                        f"recipe; {args.checkpoint} is a {model.config.family}")  # fmt: skip
    stem = model_name(args.checkpoint)
    size = args.size
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
        native_side = getattr(model.config, "native_max_side", 0)
        if native_side > 0:  # the CPU student's native low-resolution path: a graph of its own
            native = onnx_path.with_name(onnx_path.stem + NATIVE_SUFFIX)
            small = sample_image((min(size[0], native_side), min(size[1], native_side) * 3 // 4))
            export_onnx(model, native, small, args.opset, native=True)
            write_json_atomic(native.with_suffix(".json"), {"native_max_side": native_side})
            print(f"saved {native} (frames of at most {native_side} px; orpose predict and "
                  "onnx_runner.load_onnx_student pick it by frame size)")  # fmt: skip
        if args.check_count > 0:
            if images is None:
                raise UserError("no images for the check: give --check-images or --check-count 0")
            resize = size if fixed else None
            # the graph's two detectors each checked: at 1x and on frames upsampled from 12x
            factors = [None, float(PRIVACY_CHECK_SCALE)] if takes_factor(model) else [None]
            for factor in factors:
                report = compare_on_images(model, onnx_path, images, args.check_count, resize,
                                           factor)  # fmt: skip
                if factor is not None:
                    print(f"at {factor:g}x, upsampled back (the detector trained at low "
                          "resolution):")  # fmt: skip
                print(report.describe(args.tolerance))
                beyond = report.share_beyond(args.tolerance)
                if beyond > args.max_share or report.unpaired > args.max_share * report.people:
                    raise UserError("ONNX and PyTorch disagree beyond the tolerance (see above)")
        if calibration and not has_branches(model):
            _write_int8(onnx_path, onnx_path, native_side, calibration, images, args)
        elif calibration:  # int8 quantizes a flat graph (the quantizer skips If branches)
            with tempfile.TemporaryDirectory(dir=out) as tmp:
                flat = export_onnx(model, Path(tmp) / onnx_path.name, sample_image(size),
                                   args.opset, skip_empty_crops=False)  # fmt: skip
                _write_int8(onnx_path, flat, native_side, calibration, images, args)
    return 0


def _calibration_frames(args: argparse.Namespace, check_images: Path | None) -> list[Path]:
    """The int8 calibration images (none without --int8), checked before anything is loaded:
    the options need --int8 and ONNX; no image may be an evaluation image."""
    if not args.int8:
        given = [f"--{name.replace('_', '-')}" for name in
                 ("calibration", "calibration_count", "int8_tolerance")
                 if getattr(args, name) is not None]  # fmt: skip
        if given:
            raise UserError(f"{', '.join(given)}: only with --int8")
        return []
    if "onnx" not in args.format:
        raise UserError("--int8 quantizes the ONNX graphs: give --format onnx too")
    from orpose.export.int8 import (
        calibration_images,
        default_calibration_sources,
        refuse_eval_images,
    )

    sources = [args.calibration] if args.calibration is not None else default_calibration_sources()
    count = args.calibration_count or DEFAULT_CALIBRATION_COUNT
    frames = calibration_images(sources, count)
    extra = [check_images] if args.check_images is not None and check_images is not None else []
    refuse_eval_images(frames, extra)
    return frames


def _write_int8(onnx_path: Path, flat: Path, native_side: int, frames: list[Path],
                check_images: Path | None, args: argparse.Namespace) -> None:  # fmt: skip
    """The int8 graphs beside the fp32 ones (quantized from ``flat``, the export without If
    branches), and their check against them (exit 2 beyond the tolerance, the int8 files
    removed)."""
    from orpose.data.lowres import degrade, downsample
    from orpose.data.sources import list_images
    from orpose.export.agreement import compare_graphs, grey_noise
    from orpose.export.int8 import PRIVACY_SCALES, native_path, quantize_student

    print(f"int8: calibrating on {len(frames)} frame(s) ({frames[0].parent} ...)")
    graphs = quantize_student(onnx_path, frames, native_side, flat_graph=flat)
    for graph in graphs:
        kept = ", ".join(f"{n} {why.replace('_', ' ')}" for why, n in graph.kept_fp32.items() if n)
        print(f"saved {graph.path} ({graph.quantized} convolutions in int8; fp32: {kept})")
    if args.check_count == 0:
        return
    if check_images is None:
        raise UserError("no images for the int8 check: give --check-images or --check-count 0")
    scale = PRIVACY_SCALES[-1]
    photos = list_images(check_images)[: args.check_count]
    # (what, fp32 graph, int8 graph, frames' preparation, px of 1x per px, the graphs' factor)
    checks = [("full graph, 1x", onnx_path, graphs[0].path, None, 1.0, 1.0),
              (f"full graph, {scale}x upsampled", onnx_path, graphs[0].path,
               lambda im: degrade(im, scale), 1.0, float(scale))]  # fmt: skip
    if len(graphs) > 1:
        checks.append((f"native graph, {scale}x (px of 1x)", native_path(onnx_path),
                       graphs[1].path, lambda im: downsample(im, scale), scale, None))  # fmt: skip
    tolerance = DEFAULT_INT8_TOLERANCE if args.int8_tolerance is None else args.int8_tolerance
    failed = []
    for what, fp32, int8, prepare, px, factor in checks:
        report = compare_graphs(fp32, int8, photos, prepare, factor=factor)
        floor = compare_graphs(fp32, fp32, photos, prepare, perturb=grey_noise(), factor=factor)
        print(report.describe_int8(what, px))
        print(f"  (fp32 against itself on the photos +-1 grey level: {floor.summary(px)})")
        if report.people == 0 and report.unpaired == 0:
            print(f"  note: nobody on these photos at {what}: nothing was compared")
        median = report.within(0.5) * px
        if median > tolerance or report.unpaired > INT8_MAX_UNPAIRED * max(report.people, 1):
            failed.append(f"{what}: median {median:.2f} px, {report.unpaired} unpaired")
    if failed:
        for graph in graphs:
            graph.path.unlink(missing_ok=True)
            graph.path.with_suffix(".json").unlink(missing_ok=True)
        raise UserError(
            f"int8 and fp32 disagree beyond --int8-tolerance {tolerance:g} px or "
            f"{INT8_MAX_UNPAIRED:.0%} unpaired ({'; '.join(failed)}); int8 files removed"
        )
