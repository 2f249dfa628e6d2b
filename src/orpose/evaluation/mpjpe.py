"""3D error as the ORPose protocol measures it.

Reference: CAMMA-public/ORPose-Color, keypoints_3d/utils_eval.py.

Each ground-truth person with 3D is matched to the prediction of the same image with the highest
OKS against its 2D ground truth (box area as the OKS scale, COCO sigmas, as the official code).
Both poses are made root-relative to their own mid-hips; no rotation or scale alignment. Errors
are Euclidean distances in mm in the camera frame.

Invisible ground-truth joints: orpose excludes them (``mpjpe``: the mean over visible
person-joints). The official code instead zeroes them in both poses, so they add an error of 0
while still counting in the denominator, which lowers the figure when joints are missing; that
number is reported too as ``mpjpe_official``. A ground-truth person in an image without any 3D
prediction is skipped by the official code; orpose does the same and counts it in ``missed``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from orpose.data.coco import PoseDataset
from orpose.skeleton import (
    COCO_KEYPOINTS,
    NUM_KEYPOINTS,
    OKS_SIGMAS,
    UPPER_BODY_JOINTS,
    root_relative,
)


def oks_matrix(
    gt_keypoints: np.ndarray, gt_boxes: np.ndarray, dt_keypoints: np.ndarray
) -> np.ndarray:
    """OKS between each ground truth ``(G, 17, 3)`` and each detection ``(D, 17, >=2)``.

    Follows pycocotools' computeOks with the box area (w * h) as scale; a ground truth without
    visible keypoints is compared by distance to an enlarged box, as there.
    """
    g, d = len(gt_keypoints), len(dt_keypoints)
    out = np.zeros((g, d))
    if g == 0 or d == 0:
        return out
    variances = (OKS_SIGMAS * 2) ** 2
    for j in range(g):
        xg, yg, vg = gt_keypoints[j, :, 0], gt_keypoints[j, :, 1], gt_keypoints[j, :, 2]
        x, y, w, h = gt_boxes[j]
        area = w * h
        visible = vg > 0
        for i in range(d):
            xd, yd = dt_keypoints[i, :, 0], dt_keypoints[i, :, 1]
            if visible.any():
                dx, dy = xd - xg, yd - yg
            else:
                dx = np.maximum(0, (x - w) - xd) + np.maximum(0, xd - (x + 2 * w))
                dy = np.maximum(0, (y - h) - yd) + np.maximum(0, yd - (y + 2 * h))
            e = (dx**2 + dy**2) / variances / (area + np.spacing(1)) / 2
            if visible.any():
                e = e[visible]
            out[j, i] = np.exp(-e).sum() / e.shape[0]
    return out


@dataclass
class MpjpeResult:
    """Per-joint and summary 3D errors (mm) over the matched persons."""

    joints: tuple[int, ...]
    per_joint: dict[str, float]  # joint name -> mean error over persons where it is visible
    mpjpe: float  # mean over visible person-joints of ``joints``
    mpjpe_official: float  # the official code's convention (invisible joints count as 0)
    persons: int  # matched persons that entered the mean
    missed: int  # ground-truth persons with 3D in images without any 3D prediction
    skipped_no_root: int  # ground-truth persons whose hips are not both visible
    errors: list[dict] = field(default_factory=list)  # per person, for plots and debugging

    def as_dict(self) -> dict:
        return {
            "mpjpe": self.mpjpe,
            "mpjpe_official": self.mpjpe_official,
            "per_joint": self.per_joint,
            "persons": self.persons,
            "missed": self.missed,
            "skipped_no_root": self.skipped_no_root,
        }


def pose_errors(pred3d: np.ndarray, gt3d: np.ndarray) -> np.ndarray:
    """Per-joint Euclidean distance after making both poses root-relative (mid-hips)."""
    return np.linalg.norm(root_relative(pred3d) - root_relative(gt3d[:, :3]), axis=-1)


def summarize_errors(
    errors: np.ndarray, visible: np.ndarray, joints: Sequence[int]
) -> tuple[dict[str, float], float, float]:
    """(per-joint means, mean over visible person-joints, official-convention mean).

    ``errors`` and ``visible`` are ``(P, 17)``.
    """
    joints = list(joints)
    e, v = errors[:, joints], visible[:, joints].astype(bool)
    per_joint = {
        COCO_KEYPOINTS[j]: float(e[v[:, k], k].mean()) if v[:, k].any() else float("nan")
        for k, j in enumerate(joints)
    }
    mean = float(e[v].mean()) if v.any() else float("nan")
    official = float(np.where(v, e, 0.0).mean(axis=0).mean()) if len(e) else float("nan")
    return per_joint, mean, official


def compute_mpjpe(
    gt: PoseDataset, results: list[dict], joints: Sequence[int] = UPPER_BODY_JOINTS
) -> MpjpeResult | None:
    """MPJPE of ``results`` (with ``keypoints3d``) against ground truth with ``keypoints3d``.

    Returns None when the ground truth holds no 3D at all.
    """
    gt3d_anns = [a for a in gt.annotations if "keypoints3d" in a and not a.get("iscrowd", 0)]
    if not gt3d_anns:
        return None
    preds_by_image: dict[int, list[dict]] = defaultdict(list)
    for r in results:
        if "keypoints3d" in r and "keypoints" in r:
            preds_by_image[r["image_id"]].append(r)

    errors, visible, records = [], [], []
    missed = no_root = 0
    for ann in gt3d_anns:
        gt3d = np.asarray(ann["keypoints3d"], dtype=np.float64).reshape(NUM_KEYPOINTS, 4)
        if not (gt3d[11, 3] > 0 and gt3d[12, 3] > 0):
            no_root += 1
            continue
        preds = preds_by_image.get(ann["image_id"], [])
        if not preds:
            missed += 1
            continue
        gt2d = np.asarray(ann["keypoints"], dtype=np.float64).reshape(1, NUM_KEYPOINTS, 3)
        dt2d = np.asarray([p["keypoints"] for p in preds], dtype=np.float64).reshape(
            len(preds), NUM_KEYPOINTS, 3
        )
        oks = oks_matrix(gt2d, np.asarray([ann["bbox"]], dtype=np.float64), dt2d)[0]
        best = int(np.argmax(oks))
        pred3d = np.asarray(preds[best]["keypoints3d"], dtype=np.float64).reshape(NUM_KEYPOINTS, 3)
        err = pose_errors(pred3d, gt3d)
        errors.append(err)
        visible.append(gt3d[:, 3] > 0)
        records.append(
            {
                "annotation_id": ann["id"],
                "image_id": ann["image_id"],
                "oks": float(oks[best]),
                "errors": err.round(2).tolist(),
            }
        )
    err_arr = np.asarray(errors).reshape(-1, NUM_KEYPOINTS)
    vis_arr = np.asarray(visible).reshape(-1, NUM_KEYPOINTS)
    per_joint, mean, official = summarize_errors(err_arr, vis_arr, joints)
    return MpjpeResult(
        joints=tuple(joints),
        per_joint=per_joint,
        mpjpe=mean,
        mpjpe_official=official,
        persons=len(errors),
        missed=missed,
        skipped_no_root=no_root,
        errors=records,
    )
