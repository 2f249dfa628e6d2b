"""How far, in pixels of the downscaled image, a keypoint may land for COCO's OKS to still count it.

Why: keypoint AP at 12x is bounded by the people's size, not only by the model. OKS scores a
keypoint ``exp(-d^2 / (2 * area * k^2))`` with ``k = 2 * sigma`` (pycocotools; ``area`` the
person's annotated area at 1x), so the distance where that term falls to ``t`` is
``sqrt(-2 ln t * area) * k`` at 1x, and s times smaller in an image downscaled s times. This
prints that distance for the median person of each COCO size range (medium 32^2-96^2, large
above 96^2) at each factor, with the people counted: on coco_person_val500 most people with
keypoints are medium, and at 12x their shoulders must land within a pixel of the truth.

    python benchmarks/oks_tolerance.py                   # coco_person_val500, 1x 8x 10x 12x
    python benchmarks/oks_tolerance.py GT.json --scales 1 12 --oks 0.75
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np
from pycocotools.cocoeval import Params

from orpose.data.coco import load_pose_dataset
from orpose.errors import OrposeError
from orpose.evaluation.coco_ap import coco_api
from orpose.paths import shared_dir
from orpose.skeleton import COCO_KEYPOINTS

KEYPOINT_PARAMS = Params(iouType="keypoints")  # pycocotools' sigmas and size ranges
# one joint of each kind, left side (the right has the same sigma)
SHOWN = ("nose", "left_shoulder", "left_elbow", "left_wrist", "left_hip", "left_knee", "left_ankle")


def tolerance_px(area: float, sigma: float, scale: float, oks: float) -> float:
    """Distance in pixels of the 1/scale image at which one keypoint's OKS term equals ``oks``."""
    return math.sqrt(-2.0 * math.log(oks) * area) * 2.0 * sigma / scale


def people_areas(gt_path: Path) -> np.ndarray:
    """Areas of the non-crowd people with at least one keypoint, the ones keypoint AP scores,
    as ``orpose eval`` hands them to pycocotools (``coco_api``: a missing area is the box's)."""
    annotations = coco_api(load_pose_dataset(gt_path)).dataset["annotations"]
    return np.array([
        a["area"] for a in annotations if a["num_keypoints"] > 0 and not a["iscrowd"]
    ], dtype=float)  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("gt", nargs="?", type=Path, help="COCO keypoints file (default: val500)")
    parser.add_argument("--scales", type=float, nargs="+", default=[1, 8, 10, 12])
    parser.add_argument("--oks", type=float, default=0.5, help="OKS term to reach (AP50: 0.5)")
    args = parser.parse_args()
    if not 0 < args.oks < 1:
        parser.error(f"--oks must be between 0 and 1 (exclusive), got {args.oks:g}")
    if min(args.scales) <= 0:
        parser.error("--scales must all be above 0")
    gt = args.gt or shared_dir() / "data" / "coco_person_val500" / "person_keypoints.json"
    try:
        areas = people_areas(gt)
    except OrposeError as error:
        parser.error(str(error))
    sigmas = dict(zip(COCO_KEYPOINTS, KEYPOINT_PARAMS.kpt_oks_sigmas, strict=True))
    print(f"{gt}: {len(areas)} people with keypoints; distance (px of the downscaled image) at "
          f"which a keypoint's OKS term falls to {args.oks:g}")  # fmt: skip
    ranges = dict(zip(KEYPOINT_PARAMS.areaRngLbl, KEYPOINT_PARAMS.areaRng, strict=True))
    for size in ("medium", "large"):
        low, high = ranges[size]
        chosen = areas[(areas >= low) & (areas < high)]
        if not len(chosen):
            print(f"{size}: none")
            continue
        median = float(np.median(chosen))
        print(f"{size}: {len(chosen)} people ({100 * len(chosen) / len(areas):.0f}%), "
              f"median area {median:.0f} px^2 at 1x")  # fmt: skip
        print("  scale  " + "  ".join(f"{name:>14}" for name in SHOWN))
        for scale in args.scales:
            cells = [f"{tolerance_px(median, sigmas[n], scale, args.oks):14.2f}" for n in SHOWN]
            print(f"  {scale:4g}x  " + "  ".join(cells))


if __name__ == "__main__":
    main()
