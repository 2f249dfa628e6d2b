"""``orpose eval``: score prediction files against ground truth, one row per downscale factor."""

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
        help="COCO box/keypoint AP and MPJPE of prediction files, per downscale factor",
        description="Score predictions against COCO-format ground truth (pycocotools AP; MPJPE "
        "by the ORPose protocol when both sides carry 3D). Give one --pred per downscale factor "
        "as SCALE=FILE (e.g. --pred 1=p1.json --pred 12=p12.json); a bare FILE is 1x.",
    )
    p.add_argument("--gt", required=True, type=Path, help="ground-truth COCO keypoints JSON")
    p.add_argument(
        "--pred",
        required=True,
        action="append",
        metavar="[SCALE=]FILE",
        help="COCO results list or orpose COCO file (pseudo labels); repeatable",
    )
    p.add_argument(
        "--out",
        type=Path,
        default=None,
        help="folder for metrics.json / metrics.csv (default: <first pred>.eval/)",
    )
    p.add_argument("--no-plot", action="store_true", help="skip the AP-versus-scale chart")
    p.set_defaults(func=run_eval)


def run_eval(args: argparse.Namespace) -> int:
    from orpose.cli import UserError
    from orpose.data.coco import load_pose_dataset
    from orpose.evaluation.predictions import load_predictions
    from orpose.evaluation.report import (
        evaluate_predictions,
        format_per_joint,
        format_table,
        save_reports,
    )

    gt = load_pose_dataset(args.gt)
    specs = [parse_pred_spec(s) for s in args.pred]
    labels = [label for label, _ in specs]
    if len(set(labels)) != len(labels):
        raise UserError(f"--pred: the same scale is given twice ({', '.join(labels)})")
    reports = [evaluate_predictions(gt, load_predictions(path, gt), label) for label, path in specs]
    print(format_table(reports))
    per_joint = format_per_joint(reports)
    if per_joint:
        print(per_joint)
    out = args.out or specs[0][1].with_suffix(".eval")
    json_path, csv_path = save_reports(reports, out)
    print(f"saved {json_path} and {csv_path}")
    if len(reports) > 1 and not args.no_plot:
        from orpose.viz.charts import plot_ap_versus_scale

        print(f"saved {plot_ap_versus_scale(reports, out / 'ap_vs_scale.png')}")
    return 0
