"""How far apart two rows of a table really are, on a small test set: a paired bootstrap.

On 61 OR frames an AP difference of a point or two can be luck. This resamples the test images
with replacement (the same draw for both prediction files), scores both with orpose's own
evaluation (pycocotools, as `orpose eval`) and prints the observed difference with the 5th-95th
percentile interval of the resampled differences:

    python benchmarks/paired_bootstrap.py --gt GT.json --a A_pred_12x.json --b B_pred_12x.json \
        [--images DIR] [--samples 200] [--metric keypoint_ap|box_ap]

Prediction files are anything `orpose eval --pred` reads (COCO results or `orpose label` output).
"""

from __future__ import annotations

import argparse
import copy
from pathlib import Path

import numpy as np
from tqdm import tqdm

from orpose.data.coco import PoseDataset, load_pose_dataset
from orpose.evaluation.cli import load_pred_file
from orpose.evaluation.coco_ap import evaluate_ap


def resampled(gt: PoseDataset, results: list[list[dict]], draw: np.ndarray):
    """The ground truth and each result list on the drawn images, each draw a new image id."""
    images, annotations, outs = [], [], [[] for _ in results]
    by_image = [dict() for _ in results]
    for k, r in enumerate(results):
        for det in r:
            by_image[k].setdefault(det["image_id"], []).append(det)
    for new_id, index in enumerate(draw, start=1):
        img = gt.images[index]
        images.append({**img, "id": new_id})
        for ann in gt.annotations_of(img["id"]):
            annotations.append(
                {**copy.deepcopy(ann), "id": len(annotations) + 1, "image_id": new_id}
            )
        for k in range(len(results)):
            outs[k] += [{**det, "image_id": new_id} for det in by_image[k].get(img["id"], [])]
    return PoseDataset(images, annotations, gt.categories), outs


def score(gt: PoseDataset, results: list[dict], metric: str) -> float:
    ap = evaluate_ap(gt, results)
    return 100 * (ap["bbox"]["AP"] if metric == "box_ap" else ap["keypoints"]["AP"])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--gt", type=Path, required=True)
    p.add_argument("--images", type=Path, default=None)
    p.add_argument("--a", required=True, help="prediction file of row A")
    p.add_argument("--b", required=True, help="prediction file of row B")
    p.add_argument("--samples", type=int, default=200)
    p.add_argument("--metric", choices=("keypoint_ap", "box_ap"), default="keypoint_ap")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    gt = load_pose_dataset(args.gt, args.images)
    a = load_pred_file(args.a, gt)[1]
    b = load_pred_file(args.b, gt)[1]
    observed = score(gt, a, args.metric) - score(gt, b, args.metric)
    rng = np.random.default_rng(args.seed)
    diffs = []
    for _ in tqdm(range(args.samples), desc="bootstrap"):
        draw = rng.integers(0, len(gt.images), len(gt.images))
        sample, (ra, rb) = resampled(gt, [a, b], draw)
        diffs.append(score(sample, ra, args.metric) - score(sample, rb, args.metric))
    low, high = np.percentile(diffs, [5, 95])
    share = float(np.mean(np.asarray(diffs) > 0))
    print(
        f"{args.metric} A - B = {observed:+.1f} points (90% interval {low:+.1f} to {high:+.1f}; "
        f"A ahead in {100 * share:.0f}% of {args.samples} resamples of {len(gt.images)} images)"
    )


if __name__ == "__main__":
    main()
