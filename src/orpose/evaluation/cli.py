"""``orpose eval``: score predictions against ground truth, one row per downscale factor.

Predictions come either from files (``--pred [SCALE=]FILE``, repeatable) or from a student
checkpoint (``--model``), which is run on the ground-truth images degraded at each ``--scales``.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import tempfile
from collections.abc import Sequence
from pathlib import Path

from orpose.config import cli_number
from orpose.data.coco import (
    DatasetError,
    PoseDataset,
    load_pose_dataset,
    read_json,
    refuse_repeated_images,
    write_json_atomic,
)
from orpose.errors import UserError
from orpose.evaluation.predictions import load_predictions
from orpose.outputs import check_output_folder
from orpose.scales import scale_from_label, scale_label


def parse_pred_spec(spec: str) -> tuple[str, Path]:
    """``8=preds_8x.json`` -> ("8x", path); a bare path is the 1x row (see
    :func:`recorded_downscale` for files that record their own factor). A label that is a
    number (``8``, ``8x``, ``1e3``, ``-5``, ``nan``) must be a downscale factor, 1-1000, as every
    verb takes them; another word names the row as it is (``teacher=FILE``); UserError else."""
    if "=" in spec:
        label, path = spec.split("=", 1)
        label = label.strip()
        if not label:
            raise UserError(f"--pred {spec}: empty SCALE before '='; give e.g. 12={path}")
        factor = scale_from_label(label)
        if factor is not None:
            if not math.isfinite(factor) or not 1 <= factor <= 1000:
                raise UserError(
                    f"--pred {spec}: the downscale factor {label!r} is not a finite number "
                    "1-1000 (a word names the row instead, e.g. teacher=FILE)"
                )
            label = scale_label(factor)
        return label, Path(path)
    return "1x", Path(spec)


def recorded_downscale(data: object) -> float | None:
    """The downscale factor an orpose COCO file records (``info.orpose.downscale``, written by
    ``orpose label --downscale``), or None."""
    info = data.get("info") if isinstance(data, dict) else None
    header = info.get("orpose") if isinstance(info, dict) else None
    value = header.get("downscale") if isinstance(header, dict) else None
    number = isinstance(value, int | float) and not isinstance(value, bool)
    if number and math.isfinite(value) and 1 <= value <= 1000:  # (JSON's 1e999 reads as inf)
        return float(value)
    return None


def select_keypoint_set(data: object, which: str, path: Path) -> object:
    """The predictions of ``data`` with the pseudo-label set ``which`` (soft / hard) to score.

    An orpose COCO file is scored on ``keypoints_soft`` (and ``keypoints3d_soft``) by default;
    ``hard`` scores COCO's ``keypoints`` field (the hard set) and its lift ``keypoints3d_hard``.
    """
    if which == "soft":
        return data
    if not isinstance(data, dict) or not isinstance(data.get("annotations"), list):
        raise UserError(
            f"{path}: --keypoints hard needs an orpose COCO file (pseudo labels with a soft and "
            "a hard set); a results list has one set of keypoints"
        )
    drop = ("keypoints_soft", "keypoints3d_soft")
    annotations = [
        {k: v for k, v in a.items() if k not in drop} if isinstance(a, dict) else a
        for a in data["annotations"]
    ]
    return {**data, "annotations": annotations}


def read_predict_folder(folder: Path) -> dict:
    """An ``orpose predict`` output folder as an orpose COCO file: its results.json as the
    annotations, its images.json's images (their files match the ground truth's, see
    :func:`orpose.evaluation.predictions.match_images_to_ground_truth`)."""
    results, index = folder / "results.json", folder / "images.json"
    for path in (results, index):
        if not path.is_file():
            raise UserError(f"{folder}: not an orpose predict folder ({path.name} is missing)")
    images = read_json(index)
    if not isinstance(images, dict) or not isinstance(images.get("images"), list):
        raise DatasetError(f"{index}: field 'images': expected a list")
    data = {"images": images["images"], "annotations": read_json(results)}
    factors = {img.get("downscale", 1) for img in images["images"] if isinstance(img, dict)}
    if len(factors) == 1:
        data["info"] = {"orpose": {"downscale": factors.pop()}}
    return data


def load_pred_file(spec: str, gt, keypoints: str = "soft") -> tuple[str, list[dict]]:
    """One ``--pred [SCALE=]FILE``: its row label and validated results. FILE may also be an
    ``orpose predict`` output folder (results.json with images.json)."""
    label, path = parse_pred_spec(spec)
    data = read_predict_folder(path) if path.is_dir() else read_json(path)
    if "=" not in spec and (scale := recorded_downscale(data)) is not None:
        label = scale_label(scale)
    try:
        return label, load_predictions(select_keypoint_set(data, keypoints, path), gt)
    except DatasetError as e:  # in-memory data is named <predictions>: name the file
        raise DatasetError(str(e).replace("<predictions>", str(path), 1)) from None


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "eval",
        help="COCO box/keypoint AP and MPJPE of predictions, per downscale factor",
        description="Score predictions against COCO-format ground truth (pycocotools AP; MPJPE "
        "by the ORPose protocol when both sides carry 3D; MVOR's PCK@0.2 when the ground truth "
        "carries keypoints_mvor, as `orpose data mvor-to-coco` writes it). Give one --pred per "
        "downscale factor as SCALE=FILE (e.g. --pred 1=p1.json --pred 12=p12.json; a bare FILE "
        "is 1x), or a student checkpoint with --model to predict the ground-truth images at each "
        "--scales.",
    )
    p.add_argument("--gt", required=True, type=Path, help="ground-truth COCO keypoints JSON")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--pred",
        action="append",
        metavar="[SCALE=]FILE",
        help="COCO results list, orpose COCO file (pseudo labels) or an `orpose predict` output "
        "folder (results.json with images.json: matched to the ground truth by file); "
        "repeatable. A bare FILE that records its downscale factor (orpose label --downscale, "
        "predict --downscale) is reported at it",
    )
    source.add_argument(
        "--model",
        type=Path,
        metavar="CHECKPOINT",
        help="student checkpoint (last.pt) to run on the ground-truth images",
    )
    p.add_argument(
        "--scales",
        type=cli_number(float, min=1, max=1000),
        nargs="+",
        default=[1, 8, 10, 12],
        help="downscale factors for --model (default: 1 8 10 12, as in the paper)",
    )
    p.add_argument(
        "--images",
        type=Path,
        default=None,
        help="image folder of the ground truth (default: images/ beside it)",
    )
    p.add_argument(
        "--limit",
        type=cli_number(int, min=1, max=10**9),
        default=None,
        help="with --model: first N images only",
    )
    p.add_argument("--device", default=None, help="with --model: cpu, cuda, cuda:1, ...")
    p.add_argument(
        "--max-detections",
        type=cli_number(int, min=1, max=10**4),
        default=None,
        help="with --model: keep the N best people per image (default: the checkpoint's, 100; "
        "keypoint AP reads the best 20, box AP the best 100, so 20 speeds a CPU evaluation up "
        "and leaves keypoint AP unchanged)",
    )
    p.add_argument(
        "--proposals",
        type=cli_number(int, min=1, max=10**5),
        default=None,
        help="with --model: RPN proposals per image (default 1000); fewer is faster on a CPU",
    )
    p.add_argument(
        "--flip",
        action="store_true",
        help="with --model (the CPU student): pose each person also on its mirrored crop, as "
        "orpose predict --flip",
    )
    p.add_argument(
        "--h36-stats",
        type=Path,
        default=None,
        metavar="FILE",
        help="with --model on an official ORPose (detectron2) checkpoint: the official "
        "data/h36stats.json its lifters need for 3D (default: $ORPOSE_H36_STATS)",
    )
    p.add_argument(
        "--out",
        type=Path,
        default=None,
        help="folder for metrics.json / metrics.csv (default: <first pred>.eval/, "
        "or eval/ beside the checkpoint)",
    )
    p.add_argument(
        "--skip-bad-images",
        action="store_true",
        help="with --model: skip ground-truth images that cannot be decoded, with a warning "
        "(they count as images without predictions); default: stop with an error naming the "
        "file (the predictions journaled so far are kept and resumed)",
    )
    p.add_argument(
        "--keypoints",
        choices=("soft", "hard"),
        default="soft",
        help="with --pred on an orpose COCO file (pseudo labels): score the soft set "
        "(keypoints_soft, keypoints3d_soft; default) or the hard set (keypoints, "
        "keypoints3d_hard)",
    )
    p.add_argument(
        "--min-person-score",
        type=cli_number(float, min=0, max=1),
        default=None,
        metavar="S",
        help="with --model: pose only people detected with at least S (default: the "
        "checkpoint's; the CPU student's cost grows with each person it poses)",
    )
    p.add_argument(
        "--native-lowres",
        action="store_true",
        help="with --model: give the student each downscaled image as it is, not upsampled "
        "back (the CPU student's native low-resolution path, as `predict --native-lowres`; "
        "3D lifted in the image's own pixels, as upsampled); "
        "default: the paper's protocol. Predictions go to pred_<s>x_native.json",
    )
    p.add_argument(
        "--compare-lowres-paths",
        action="store_true",
        help="with --model: at every scale above 1, score the upsampled path and the native "
        "one (pred_<s>x.json and pred_<s>x_native.json) and record their keypoint AP beside "
        "the checkpoint (<checkpoint>.lowres_paths.json), from which `predict --downscale S` "
        "chooses its path (docs/inference.md, 'Privacy mode: which path')",
    )
    p.add_argument(
        "--camera",
        default=None,
        metavar="FILE|fx,fy,cx,cy",
        help="with --model: the intrinsics of the ground-truth images' camera, for 3D (as "
        "`predict --camera`; e.g. MVOR camera 3: camma_mvor_2018.json:3). Default: the "
        "images' pixels as they are (right for MVOR-like 640x480 cameras)",
    )
    p.add_argument("--no-plot", action="store_true", help="skip the AP-versus-scale chart")
    p.set_defaults(func=run_eval)


def run_eval(args: argparse.Namespace) -> int:
    return evaluate_and_report(
        args.gt,
        pred=args.pred,
        model=args.model,
        scales=args.scales,
        images=args.images,
        limit=args.limit,
        device=args.device,
        max_detections=args.max_detections,
        proposals=args.proposals,
        h36_stats=args.h36_stats,
        out=args.out,
        skip_bad_images=args.skip_bad_images,
        keypoints=args.keypoints,
        min_person_score=args.min_person_score,
        flip=args.flip,
        native_lowres=args.native_lowres,
        compare_lowres_paths=args.compare_lowres_paths,
        camera=args.camera,
        plot=not args.no_plot,
    )


def evaluate_and_report(
    gt: Path,
    *,
    pred: Sequence[str] | None = None,
    model: Path | None = None,
    scales: Sequence[float] = (1, 8, 10, 12),
    images: Path | None = None,
    limit: int | None = None,
    device: str | None = None,
    max_detections: int | None = None,
    proposals: int | None = None,
    h36_stats: Path | None = None,
    out: Path | None = None,
    skip_bad_images: bool = False,
    keypoints: str = "soft",
    min_person_score: float | None = None,
    native_lowres: bool = False,
    compare_lowres_paths: bool = False,
    camera: str | None = None,
    plot: bool = True,
    flip: bool = False,
) -> int:
    """``orpose eval``: score prediction files ``pred`` (``"[SCALE=]FILE"`` each, as ``--pred``)
    or a student checkpoint ``model`` run on the ground truth's images at each of ``scales``,
    against the COCO file ``gt``; print the table and save metrics.json / metrics.csv (and the
    chart unless ``plot`` is False) in ``out``. The other options are the verb's (``orpose eval
    --help``); :func:`orpose.evaluate` returns the rows instead."""
    from orpose.evaluation.report import evaluate_predictions

    if (pred is None) == (model is None):
        raise UserError("give prediction files (--pred) or a model (--model), one of them")
    if skip_bad_images and model is None:
        raise UserError("--skip-bad-images applies to --model only (--pred reads no image)")
    if compare_lowres_paths and (model is None or native_lowres):
        raise UserError(
            "--compare-lowres-paths needs --model and runs both paths itself "
            "(without --native-lowres)"
        )
    if camera is not None and model is None:
        raise UserError("--camera applies to --model only (--pred files carry their own 3D)")
    if flip and model is None:
        raise UserError("--flip applies to --model only (--pred files are already predicted)")
    dataset = load_pose_dataset(gt, image_root=images, check_images=model is not None)
    refuse_repeated_images(dataset)
    if model is not None:
        return _model_eval(
            dataset,
            model,
            list(scales),
            out,
            limit=limit,
            device=device,
            max_detections=max_detections,
            proposals=proposals,
            h36_stats=h36_stats,
            skip_bad_images=skip_bad_images,
            min_person_score=min_person_score,
            native_lowres=native_lowres,
            compare_lowres_paths=compare_lowres_paths,
            camera=camera,
            plot=plot,
            flip=flip,
        )
    require_ground_truth(dataset)
    loaded = [load_pred_file(s, dataset, keypoints) for s in pred]
    refuse_repeated_labels(loaded, "--pred")
    folder = check_output_folder(out or parse_pred_spec(pred[0])[1].with_suffix(".eval"))
    reports = [evaluate_predictions(dataset, results, label) for label, results in loaded]
    return print_and_save(reports, folder, not plot)


def require_ground_truth(gt: PoseDataset) -> None:
    """Refuse a ground truth without a (non-crowd) person: AP would be undefined (pycocotools
    reports -1, printed as -100.00), so there is nothing to score."""
    if not any(not a.get("iscrowd", 0) for a in gt.annotations):
        raise UserError(
            f"{gt.path}: no ground truth: the file holds no (non-crowd) person annotation, so "
            "there is nothing to score against (AP is undefined)"
        )


def _model_eval(
    gt: PoseDataset,
    model: Path,
    scales: list[float],
    out: Path | None,
    *,
    limit: int | None,
    device: str | None,
    max_detections: int | None,
    proposals: int | None,
    h36_stats: Path | None,
    skip_bad_images: bool,
    min_person_score: float | None,
    native_lowres: bool,
    compare_lowres_paths: bool,
    camera: str | None,
    plot: bool,
    flip: bool = False,
) -> int:
    """Predict the ground-truth images at every scale with a student, then score each."""
    if compare_lowres_paths and flip:
        raise UserError(
            "--compare-lowres-paths records the paths that predict takes without --flip: "
            "give one of them"
        )
    # before the model is loaded: an unusable --out (or default) stops here
    name = "eval" + ("_native" if native_lowres else "") + ("_flip" if flip else "")
    out = out or model.parent / name
    check_output_folder(out)
    intrinsics = None
    if camera is not None:
        from orpose.lifting.intrinsics import read_camera

        intrinsics = read_camera(camera)
    predictor = student_for_eval(
        model,
        device,
        proposals,
        h36_stats,
        camera=intrinsics,
        max_detections=max_detections,
        min_person_score=min_person_score,
        flip=flip,
    )
    reports, compared = model_reports(
        predictor,
        gt,
        scales,
        out,
        limit=limit,
        skip_bad_images=skip_bad_images,
        native_lowres=native_lowres,
        compare_lowres_paths=compare_lowres_paths,
        settings=eval_settings(
            gt, model, proposals, h36_stats, intrinsics, max_detections, min_person_score, flip
        ),
    )
    code = print_and_save(reports, out, not plot)
    if compared:
        from orpose.evaluation.lowres_paths import record_comparison

        record = record_comparison(model, gt.path, compared)
        print(f"recorded the two paths' keypoint AP in {record}")
    return code


def eval_settings(
    gt: PoseDataset, model: Path, proposals: int | None, h36_stats: Path | None, camera,
    max_detections: int | None, min_person_score: float | None, flip: bool,
) -> dict:  # fmt: skip
    """What ``eval --model``'s predictions depend on, beside the images and the factor (which
    name the journal): the model file and the ground truth (path, size, time) and the options
    that change a prediction."""
    from orpose.paths import file_stamp

    return {
        "model": str(Path(model).resolve()),
        "model_file": file_stamp(model),
        "ground_truth": str(Path(gt.path).resolve()) if gt.path else None,
        "ground_truth_file": file_stamp(gt.path) if gt.path else None,
        "proposals": proposals,
        "h36_stats": str(h36_stats) if h36_stats is not None else None,
        "camera": camera.to_dict() if camera is not None else None,
        "max_detections": max_detections,
        "min_person_score": min_person_score,
        "flip": flip,
    }


def student_for_eval(
    model: Path,
    device: str | None = None,
    proposals: int | None = None,
    h36_stats: Path | None = None,
    *,
    camera=None,
    max_detections: int | None = None,
    min_person_score: float | None = None,
    flip: bool = False,
):
    """The student of ``orpose eval --model``: the checkpoint ``model`` with the verb's options
    (``camera``: :class:`orpose.lifting.intrinsics.Intrinsics`, or None); what
    :func:`model_reports` runs."""
    from orpose.predictor import (
        StudentPredictor,
        limit_detections,
        set_flip_test,
        set_min_person_score,
    )

    if max_detections is not None and max_detections < 1:
        raise UserError(f"--max-detections must be >= 1, got {max_detections}")
    if min_person_score is not None and not 0 <= min_person_score <= 1:
        raise UserError(f"--min-person-score must lie in [0, 1], got {min_person_score}")
    predictor = StudentPredictor.from_checkpoint(model, device, proposals, h36_stats, camera=camera)
    limit_detections(predictor.model, max_detections)  # None: the model's own
    set_min_person_score(predictor.model, min_person_score)
    set_flip_test(predictor.model, flip)
    return predictor


def model_reports(
    predictor,
    gt: PoseDataset,
    scales: Sequence[float],
    out: Path | None,
    *,
    limit: int | None = None,
    skip_bad_images: bool = False,
    native_lowres: bool = False,
    compare_lowres_paths: bool = False,
    settings: dict | None = None,
) -> tuple[list, dict[float, tuple[float, float]]]:
    """The work of ``orpose eval --model`` (and of :func:`orpose.evaluate` of a model), once
    the model is loaded: the ground-truth images (the first ``limit``) degraded at each of
    ``scales`` and predicted by ``predictor`` (journaled in ``out``, resumable, then written as
    ``pred_<scale>.json``; ``out`` None: a scratch folder, nothing kept), each scored. Returns
    the reports, one per scale (and path), and, with ``compare_lowres_paths``, the keypoint AP
    of the upsampled and native paths at each scale above 1 (else ``{}``). ``settings``: what
    the predictions are made with (:func:`eval_settings`), checked against those of the
    journals already in ``out`` (:func:`orpose.evaluation.runner.check_settings`)."""
    from orpose.evaluation.report import evaluate_predictions
    from orpose.evaluation.runner import check_settings, predict_dataset

    require_ground_truth(gt)  # after the model, whose problems are reported first
    if limit is not None:
        keep = {img["id"] for img in gt.images[:limit]}
        gt = PoseDataset(
            gt.images[:limit],
            [a for a in gt.annotations if a["image_id"] in keep],
            gt.categories,
            gt.info,
            gt.image_root,
            gt.path,
        )
    paths = [native_lowres]
    if compare_lowres_paths:
        paths = [False, True]
        if not any(scale > 1 for scale in scales):
            raise UserError("--compare-lowres-paths: give at least one scale above 1 (--scales)")
    reports = []
    compared: dict[float, list[float]] = {}
    scratch = tempfile.TemporaryDirectory(prefix="orpose_eval_") if out is None else None
    with scratch or contextlib.nullcontext(out) as where:
        folder = Path(where)
        if out is not None and settings is not None:
            check_settings(folder, settings)
        for scale in scales:
            for native in paths if scale > 1 else paths[:1]:
                name = f"pred_{scale_label(scale)}{'_native' if native else ''}"
                results = predict_dataset(
                    predictor, gt, scale, folder / f"{name}.jsonl", skip_bad_images, native
                )
                if out is not None:
                    write_json_atomic(folder / f"{name}.json", results)
                label = f"{scale_label(scale)} native" if compare_lowres_paths and native else scale
                reports.append(evaluate_predictions(gt, results, label))
                if compare_lowres_paths and scale > 1:
                    compared.setdefault(scale, []).append(reports[-1].row()["keypoint_ap"])
    return reports, {scale: (up, native) for scale, (up, native) in compared.items()}


def refuse_repeated_labels(loaded: Sequence[tuple[str, list[dict]]], option: str) -> None:
    """Refuse two prediction sets of one row label (``option``: the argument that gave them)."""
    labels = [label for label, _ in loaded]
    if len(set(labels)) != len(labels):
        raise UserError(f"{option}: the same scale is given twice ({', '.join(labels)})")


def print_and_save(reports: list, out: Path, no_plot: bool) -> int:
    """Print the paper-style table (per-joint MPJPE, MVOR PCK), save JSON/CSV and the chart."""
    from orpose.evaluation.report import format_pck, format_per_joint, format_table, save_reports

    print(format_table(reports))
    for detail in (format_per_joint(reports), format_pck(reports)):
        if detail:
            print(detail)
    json_path, csv_path = save_reports(reports, out)
    print(f"saved {json_path} and {csv_path}")
    if len(reports) > 1 and not no_plot:
        from orpose.viz.charts import plot_ap_versus_scale

        print(f"saved {plot_ap_versus_scale(reports, out / 'ap_vs_scale.png')}")
    return 0
