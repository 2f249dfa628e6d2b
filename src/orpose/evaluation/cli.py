"""``orpose eval``: score predictions against ground truth, one row per downscale factor.

Predictions come either from files (``--pred [SCALE=]FILE``, repeatable) or from a student
checkpoint (``--model``), which is run on the ground-truth images degraded at each ``--scales``.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def parse_pred_spec(spec: str) -> tuple[str, Path]:
    """``8=preds_8x.json`` -> ("8x", path); a bare path is the 1x row."""
    if "=" in spec:
        label, path = spec.split("=", 1)
        label = label.strip()
        if label.replace(".", "", 1).isdigit():
            label = f"{float(label):g}x"
        return label, Path(path)
    return "1x", Path(spec)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "eval",
        help="COCO box/keypoint AP and MPJPE of predictions, per downscale factor",
        description="Score predictions against COCO-format ground truth (pycocotools AP; MPJPE "
        "by the ORPose protocol when both sides carry 3D). Give one --pred per downscale factor "
        "as SCALE=FILE (e.g. --pred 1=p1.json --pred 12=p12.json; a bare FILE is 1x), or a "
        "student checkpoint with --model to predict the ground-truth images at each --scales.",
    )
    p.add_argument("--gt", required=True, type=Path, help="ground-truth COCO keypoints JSON")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--pred",
        action="append",
        metavar="[SCALE=]FILE",
        help="COCO results list or orpose COCO file (pseudo labels); repeatable",
    )
    source.add_argument(
        "--model",
        type=Path,
        metavar="CHECKPOINT",
        help="student checkpoint (last.pt) to run on the ground-truth images",
    )
    p.add_argument(
        "--scales",
        type=float,
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
    p.add_argument("--limit", type=int, default=None, help="with --model: first N images only")
    p.add_argument("--device", default=None, help="with --model: cpu, cuda, cuda:1, ...")
    p.add_argument(
        "--max-detections",
        type=int,
        default=None,
        help="with --model: keep the N best people per image (default: the checkpoint's, 100; "
        "keypoint AP reads the best 20, box AP the best 100, so 20 speeds a CPU evaluation up "
        "and leaves keypoint AP unchanged)",
    )
    p.add_argument(
        "--proposals",
        type=int,
        default=None,
        help="with --model: RPN proposals per image (default 1000); fewer is faster on a CPU",
    )
    p.add_argument(
        "--out",
        type=Path,
        default=None,
        help="folder for metrics.json / metrics.csv (default: <first pred>.eval/, "
        "or eval/ beside the checkpoint)",
    )
    p.add_argument("--no-plot", action="store_true", help="skip the AP-versus-scale chart")
    p.set_defaults(func=run_eval)


def run_eval(args: argparse.Namespace) -> int:
    from orpose.cli import UserError
    from orpose.data.coco import load_pose_dataset
    from orpose.evaluation.predictions import load_predictions
    from orpose.evaluation.report import evaluate_predictions

    gt = load_pose_dataset(args.gt, image_root=args.images, check_images=args.model is not None)
    if args.model is not None:
        return run_model_eval(args, gt)
    specs = [parse_pred_spec(s) for s in args.pred]
    labels = [label for label, _ in specs]
    if len(set(labels)) != len(labels):
        raise UserError(f"--pred: the same scale is given twice ({', '.join(labels)})")
    reports = [evaluate_predictions(gt, load_predictions(path, gt), label) for label, path in specs]
    return print_and_save(reports, args.out or specs[0][1].with_suffix(".eval"), args.no_plot)


def run_model_eval(args: argparse.Namespace, gt) -> int:
    """Predict the ground-truth images at every scale with a student, then score each."""
    from orpose.cli import UserError
    from orpose.data.coco import PoseDataset, write_json_atomic
    from orpose.evaluation.report import evaluate_predictions
    from orpose.evaluation.runner import predict_dataset
    from orpose.inference.predictor import StudentPredictor

    predictor = StudentPredictor.from_checkpoint(args.model, args.device, args.proposals)
    if args.max_detections is not None:
        if args.max_detections < 1:
            raise UserError(f"--max-detections must be >= 1, got {args.max_detections}")
        predictor.model.roi_heads.detections_per_img = args.max_detections
    out = args.out or args.model.parent / "eval"
    if args.limit is not None:
        keep = {img["id"] for img in gt.images[: args.limit]}
        gt = PoseDataset(
            gt.images[: args.limit],
            [a for a in gt.annotations if a["image_id"] in keep],
            gt.categories,
            gt.info,
            gt.image_root,
            gt.path,
        )
    reports = []
    for scale in args.scales:
        results = predict_dataset(predictor, gt, scale, out / f"pred_{scale:g}x.jsonl")
        write_json_atomic(out / f"pred_{scale:g}x.json", results)
        reports.append(evaluate_predictions(gt, results, scale))
    return print_and_save(reports, out, args.no_plot)


def print_and_save(reports: list, out: Path, no_plot: bool) -> int:
    """Print the paper-style table (and per-joint MPJPE), save JSON/CSV and the chart."""
    from orpose.evaluation.report import format_per_joint, format_table, save_reports

    print(format_table(reports))
    per_joint = format_per_joint(reports)
    if per_joint:
        print(per_joint)
    json_path, csv_path = save_reports(reports, out)
    print(f"saved {json_path} and {csv_path}")
    if len(reports) > 1 and not no_plot:
        from orpose.viz.charts import plot_ap_versus_scale

        print(f"saved {plot_ap_versus_scale(reports, out / 'ap_vs_scale.png')}")
    return 0
