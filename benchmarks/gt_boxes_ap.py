"""Keypoint AP of a CPU student's pose part alone: the ground-truth boxes in, pycocotools out.

Why: at a low resolution both the detector and the pose part lose accuracy; posing the annotated
boxes tells which of the two holds the figure down. Each image goes through the paper's protocol
(shrunk by s, upsampled back), then ``TopDownStudent.pose`` on its annotated people; a person's
score is the student's own rule with a detection score of 1 (``pose_confidence``: the mean of
its confident keypoint scores).

    python benchmarks/gt_boxes_ap.py CHECKPOINT                 # first 200 val500 images, 1x 12x
    python benchmarks/gt_boxes_ap.py CHECKPOINT --count 500 --scales 1 8 10 12
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import io
from pathlib import Path

import numpy as np
import torch
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval
from tqdm import tqdm

from orpose.checkpoints.student import load_student
from orpose.data.lowres import degrade
from orpose.data.sources import read_image_rgb
from orpose.paths import shared_dir
from orpose.predictor import image_tensor
from orpose.student.topdown import pose_confidence


def person_boxes(anns: list[dict]) -> torch.Tensor:
    """x1y1x2y2 boxes of COCO annotations."""
    return torch.tensor([[x, y, x + w, y + h] for x, y, w, h in (a["bbox"] for a in anns)],
                        dtype=torch.float32)  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("checkpoint", type=Path, help="a CPU student (picodet_tinypose) last.pt")
    p.add_argument("--gt", type=Path, help="COCO keypoint file (default: val500's)")
    p.add_argument("--count", type=int, default=200, help="first N images (default 200)")
    p.add_argument("--scales", type=float, nargs="+", default=[1, 12])
    args = p.parse_args()
    gt_path = args.gt or shared_dir() / "data/coco_person_val500/person_keypoints.json"
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(gt_path))
    ids = sorted(gt.getImgIds())[: args.count]
    model = load_student(args.checkpoint).eval()
    if not hasattr(model, "pose"):
        raise SystemExit(f"{args.checkpoint}: not a top-down CPU student (no pose part)")
    results: dict[float, list[dict]] = {s: [] for s in args.scales}
    with torch.no_grad():
        for image_id in tqdm(ids, desc="posing annotated people", unit="img"):
            info = gt.loadImgs(image_id)[0]
            anns = gt.loadAnns(gt.getAnnIds(imgIds=image_id, iscrowd=False))
            anns = [a for a in anns if np.any(np.asarray(a.get("keypoints", []))[2::3] > 0)]
            if not anns:
                continue
            image = read_image_rgb(gt_path.parent / "images" / info["file_name"])
            boxes = person_boxes(anns)
            for s in args.scales:
                pixels = image if s == 1 else degrade(image, s)
                out = model.pose(image_tensor(pixels), boxes)
                confidence = pose_confidence(out["keypoints_scores"]).tolist()
                people = zip(out["keypoints"], out["keypoints_scores"], confidence, strict=True)
                for xy, scores, score in people:
                    keypoints = torch.cat([xy[:, :2], scores[:, None]], 1).reshape(-1).tolist()
                    results[s].append({"image_id": image_id, "category_id": 1,
                                       "keypoints": keypoints, "score": score})  # fmt: skip
    print(f"{args.checkpoint}: {len(ids)} images of {gt_path}, ground-truth boxes")
    for s, found in results.items():
        if not found:
            print(f"{s:g}x: no annotated people with keypoints in these images")
            continue
        with contextlib.redirect_stdout(io.StringIO()):
            e = COCOeval(gt, gt.loadRes(copy.deepcopy(found)), "keypoints")
            e.params.imgIds = ids
            e.evaluate()
            e.accumulate()
            e.summarize()
        print(f"{s:g}x: keypoint AP {100 * e.stats[0]:.1f}  AP_L {100 * e.stats[4]:.1f}")


if __name__ == "__main__":
    main()
