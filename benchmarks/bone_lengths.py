"""Bone lengths of predicted 3D against MVOR's annotated 3D: where the pipeline's 3D error lies.

    python benchmarks/bone_lengths.py GT.json PRED.json

``GT.json``: ground truth with ``keypoints3d`` (``orpose data mvor-to-coco``); ``PRED.json``: COCO
results with ``keypoints3d`` (``orpose eval --model`` writes ``pred_<S>x.json``). Each annotated
person with both hips is paired with the prediction the MPJPE of ``orpose eval`` scores for it
(best OKS in its frame); the medians of its hip width, shoulder width, upper arms, forearms and
torso (mid-hips to mid-shoulders) are printed beside the annotated ones.
"""

from __future__ import annotations

import argparse
import json

import numpy as np

from orpose.data.coco import PoseDataset, load_pose_dataset
from orpose.evaluation.mpjpe import compute_mpjpe
from orpose.skeleton import KEYPOINT_INDEX as K

SEGMENTS = {
    "hip width": ("left_hip", "right_hip"),
    "shoulder width": ("left_shoulder", "right_shoulder"),
    "left upper arm": ("left_shoulder", "left_elbow"),
    "right upper arm": ("right_shoulder", "right_elbow"),
    "left forearm": ("left_elbow", "left_wrist"),
    "right forearm": ("right_elbow", "right_wrist"),
}


def paired_poses(gt: PoseDataset, results: list[dict]) -> list[tuple[np.ndarray, np.ndarray]]:
    """(annotated (17, 4), predicted (17, 3)) of every annotated person with both hips, paired as
    ``orpose eval``'s MPJPE pairs them (the prediction it scored, ``result`` of its records)."""
    scored = compute_mpjpe(gt, results)
    if scored is None:
        return []
    anns = {a["id"]: a for a in gt.annotations}
    return [
        (
            np.asarray(anns[r["annotation_id"]]["keypoints3d"], dtype=np.float64).reshape(17, 4),
            np.asarray(results[r["result"]]["keypoints3d"], dtype=np.float64).reshape(17, 3),
        )
        for r in scored.errors
        if r.get("errors") is not None
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("gt")
    parser.add_argument("pred")
    args = parser.parse_args()
    with open(args.pred) as f:
        pairs = paired_poses(load_pose_dataset(args.gt), json.load(f))
    print(f"{len(pairs)} annotated people paired; medians in mm (predicted / annotated)")
    for name, (a, b) in SEGMENTS.items():
        i, j = K[a], K[b]
        rows = [(np.linalg.norm(p[i] - p[j]), np.linalg.norm(g[i, :3] - g[j, :3]))
                for g, p in pairs if g[i, 3] > 0 and g[j, 3] > 0]  # fmt: skip
        if rows:
            pred, true = np.median(np.asarray(rows), axis=0)
            print(f"  {name:16s} {pred:6.0f} / {true:4.0f}  ({pred / true:.2f})")
    hips, shoulders = [K["left_hip"], K["right_hip"]], [K["left_shoulder"], K["right_shoulder"]]
    rows = [(np.linalg.norm(p[shoulders].mean(0) - p[hips].mean(0)),
             np.linalg.norm(g[shoulders, :3].mean(0) - g[hips, :3].mean(0)))
            for g, p in pairs if (g[shoulders, 3] > 0).all()]  # fmt: skip
    if rows:
        pred, true = np.median(np.asarray(rows), axis=0)
        print(f"  {'torso':16s} {pred:6.0f} / {true:4.0f}  ({pred / true:.2f})")


if __name__ == "__main__":
    main()
