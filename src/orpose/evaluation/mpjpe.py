"""3D error as the ORPose protocol measures it.

Reference: CAMMA-public/ORPose-Color, keypoints_3d/utils_eval.py.

Each ground-truth person with 3D is matched to the prediction of the same image with the highest
OKS against its 2D ground truth (box area as the OKS scale, COCO sigmas, as the official code).
No rotation or scale alignment; errors are Euclidean distances in mm in the camera frame. Two
numbers come out:

- ``mpjpe`` (recommended): both poses made root-relative to their own mid-hips, invisible
  ground-truth joints excluded (the mean over visible person-joints), persons whose two hips are
  not both annotated skipped (``skipped_no_root``).
- ``mpjpe_official``: MPJPE_Evaluator.process/evaluate of the official code, reproduced exactly.
  The ground truth is made relative to the mean of its two stored hip coordinates, whether the
  hips are annotated or not (every person with 3D counts, ``persons_official``); the prediction
  is taken as the lifter gives it (its origin is the lifter's root, not re-rooted at its own
  mid-hips); both are multiplied by the ground truth's visibility, so an invisible joint adds an
  error of 0 while still counting in the denominator (each joint's error sum is divided by the
  number of matched persons); the reported figure is the mean of the per-joint means over
  ``joints``. The match uses the box clipped to the image (detectron2 clips ground-truth boxes
  at load) and, on equal OKS, the highest-scoring prediction (detectron2's output order).

A ground-truth person in an image without any 3D prediction is skipped by the official code;
orpose does the same and counts it in ``missed``.

Both take the best of all the image's predictions, however low their score, so a model that keeps
more low-score candidates gets more chances per person (docs/evaluation.md: the teacher's MPJPE at
10x falls from 224 to 171 mm between people kept from 0.3 and from 0.05). A third number does not
reward candidates:

- ``mpjpe_matched``: the predictions, in score order, each take the unmatched ground-truth person
  of the image with the highest OKS of at least 0.5 (COCO's one-to-one matching, at the threshold
  of keypoint AP50); the error as ``mpjpe`` over the matched persons (``persons_matched``). A
  duplicate of a person already taken by a higher score cannot take it again; a ground-truth
  person that no prediction reaches at OKS 0.5 does not enter (its share is ``persons_matched`` /
  ``persons``).
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
    ROOT_JOINTS,
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
    persons_official: int = 0  # matched persons in ``mpjpe_official`` (hips annotated or not)
    mpjpe_matched: float = float("nan")  # as ``mpjpe``, one-to-one in score order at OKS >= 0.5
    persons_matched: int = 0  # persons in ``mpjpe_matched``
    # per person, for plots and debugging: its annotation and image, the OKS and errors of its
    # prediction and where that prediction is in the results (``result``; ``result_official``
    # for the official convention's pick)
    errors: list[dict] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {
            "mpjpe": self.mpjpe,
            "mpjpe_official": self.mpjpe_official,
            "per_joint": self.per_joint,
            "persons": self.persons,
            "missed": self.missed,
            "skipped_no_root": self.skipped_no_root,
            "persons_official": self.persons_official,
            "mpjpe_matched": self.mpjpe_matched,
            "persons_matched": self.persons_matched,
        }


def pose_errors(pred3d: np.ndarray, gt3d: np.ndarray) -> np.ndarray:
    """Per-joint Euclidean distance after making both poses root-relative (mid-hips)."""
    return np.linalg.norm(root_relative(pred3d) - root_relative(gt3d[:, :3]), axis=-1)


def official_pose_errors(pred3d: np.ndarray, gt3d: np.ndarray) -> np.ndarray:
    """Per-joint error of the official evaluator (utils_eval.py, MPJPE_Evaluator.process).

    ``gt3d`` ``(17, 4)`` (x, y, z, v): relative to the mean of its two stored hips, visible or
    not. ``pred3d`` ``(17, 3)``: used as given (root-relative as the lifter returns it). Both are
    multiplied by the ground truth's visibility, so an invisible joint's error is 0.
    """
    gt3d = np.asarray(gt3d, dtype=np.float64)
    visible = (gt3d[:, 3] > 0).astype(np.float64)[:, None]
    pelvis = (gt3d[ROOT_JOINTS[0], :3] + gt3d[ROOT_JOINTS[1], :3]) / 2.0
    gt_rel = (gt3d[:, :3] - pelvis) * visible
    pred = np.asarray(pred3d, dtype=np.float64)[:, :3] * visible
    return np.linalg.norm(pred - gt_rel, axis=-1)


def _clipped_xywh(bbox: Sequence[float], image: dict | None) -> np.ndarray:
    """A ground-truth box clipped to its image, as detectron2's ``Boxes.clip`` at load."""
    x, y, w, h = (float(v) for v in bbox)
    x1, y1, x2, y2 = x, y, x + w, y + h
    if image and image.get("width") and image.get("height"):
        width, height = float(image["width"]), float(image["height"])
        x1, x2 = min(max(x1, 0.0), width), min(max(x2, 0.0), width)
        y1, y2 = min(max(y1, 0.0), height), min(max(y2, 0.0), height)
    return np.array([x1, y1, x2 - x1, y2 - y1])


def summarize_errors(
    errors: np.ndarray, visible: np.ndarray, joints: Sequence[int]
) -> tuple[dict[str, float], float, float]:
    """(per-joint means, mean over visible person-joints, mean with invisible joints as 0).

    ``errors`` and ``visible`` are ``(P, 17)``. The third number zeroes invisible joints as the
    official code does, but over these (re-rooted) errors; ``mpjpe_official`` itself comes from
    :func:`official_pose_errors`.
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


def keypoint_arrays(records: Sequence[dict]) -> np.ndarray:
    """The ``(N, 17, 3)`` keypoints of annotations or results (zeros for one without any: an
    annotation of a person with a box only)."""
    flat = [r.get("keypoints", [0.0] * (NUM_KEYPOINTS * 3)) for r in records]
    return np.asarray(flat, dtype=np.float64).reshape(len(records), NUM_KEYPOINTS, 3)


MATCH_OKS = 0.5  # the one-to-one match of ``mpjpe_matched``: keypoint AP50's threshold


def score_order_matches(
    gt_anns: Sequence[dict], preds: Sequence[dict], threshold: float = MATCH_OKS
) -> dict[int, int]:
    """COCO's one-to-one matching of one image: the predictions, highest score first, each take
    the unmatched ground-truth person of highest OKS (box area scale, as :func:`oks_matrix`) if
    it is at least ``threshold``. Returns {annotation id: index into ``preds``}."""
    anns = [a for a in gt_anns if not a.get("iscrowd", 0)]
    if not anns or not preds:
        return {}
    boxes = np.asarray([a["bbox"] for a in anns], dtype=np.float64)
    oks = oks_matrix(keypoint_arrays(anns), boxes, keypoint_arrays(preds))
    taken = np.zeros(len(anns), dtype=bool)
    matches: dict[int, int] = {}
    for i in np.argsort([-float(p.get("score", 0.0)) for p in preds], kind="stable"):
        candidates = np.where(taken, -1.0, oks[:, i])
        best = int(np.argmax(candidates))
        if candidates[best] >= threshold:
            taken[best] = True
            matches[anns[best]["id"]] = int(i)
    return matches


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
    index_by_image: dict[int, list[int]] = defaultdict(list)  # their places in ``results``
    for k, r in enumerate(results):
        if "keypoints3d" in r and "keypoints" in r:
            preds_by_image[r["image_id"]].append(r)
            index_by_image[r["image_id"]].append(k)
    # each image's predicted 2D and score order, once for all its annotated people
    dt2d_by_image = {i: keypoint_arrays(p) for i, p in preds_by_image.items()}
    order_by_image = {
        i: np.argsort([-float(r.get("score", 0.0)) for r in p], kind="stable")
        for i, p in preds_by_image.items()
    }

    images = gt.image_by_id
    errors, visible, records, official = [], [], [], []
    matched_errors, matched_visible = [], []
    matches: dict[int, dict[int, int]] = {}  # image id -> its one-to-one matches
    missed = no_root = 0
    for ann in gt3d_anns:
        gt3d = np.asarray(ann["keypoints3d"], dtype=np.float64).reshape(NUM_KEYPOINTS, 4)
        has_root = bool(gt3d[ROOT_JOINTS[0], 3] > 0 and gt3d[ROOT_JOINTS[1], 3] > 0)
        if not has_root:
            no_root += 1
        preds = preds_by_image.get(ann["image_id"], [])
        if not preds:
            missed += int(has_root)
            continue
        # a person with 3D but no 2D keypoints is matched as COCO matches one: by its box
        gt2d, dt2d = keypoint_arrays([ann]), dt2d_by_image[ann["image_id"]]
        record = {"annotation_id": ann["id"], "image_id": ann["image_id"]}

        # the official evaluator: clipped box, detections in score order (first best OKS wins)
        order = order_by_image[ann["image_id"]]
        box = _clipped_xywh(ann["bbox"], images.get(ann["image_id"]))
        oks_off = oks_matrix(gt2d, box[None], dt2d[order])[0]
        best_off = int(order[int(np.argmax(oks_off))])
        pred3d_off = np.asarray(preds[best_off]["keypoints3d"], dtype=np.float64)
        err_off = official_pose_errors(pred3d_off.reshape(NUM_KEYPOINTS, 3), gt3d)
        official.append(err_off)
        record["errors_official"] = err_off.round(2).tolist()
        record["result_official"] = index_by_image[ann["image_id"]][best_off]

        if has_root:  # orpose's recommended variant
            oks = oks_matrix(gt2d, np.asarray([ann["bbox"]], dtype=np.float64), dt2d)[0]
            best = int(np.argmax(oks))
            pred3d = np.asarray(preds[best]["keypoints3d"], dtype=np.float64)
            err = pose_errors(pred3d.reshape(NUM_KEYPOINTS, 3), gt3d)
            errors.append(err)
            visible.append(gt3d[:, 3] > 0)
            record.update(
                oks=float(oks[best]),
                errors=err.round(2).tolist(),
                result=index_by_image[ann["image_id"]][best],
            )
            image_id = ann["image_id"]
            if image_id not in matches:
                matches[image_id] = score_order_matches(gt.annotations_of(image_id), preds)
            match = matches[image_id].get(ann["id"])
            if match is not None:
                pred3d = np.asarray(preds[match]["keypoints3d"], dtype=np.float64)
                matched_errors.append(pose_errors(pred3d.reshape(NUM_KEYPOINTS, 3), gt3d))
                matched_visible.append(gt3d[:, 3] > 0)
        else:
            record.update(oks=float(oks_off.max()), errors=None)
        records.append(record)
    err_arr = np.asarray(errors).reshape(-1, NUM_KEYPOINTS)
    vis_arr = np.asarray(visible).reshape(-1, NUM_KEYPOINTS)
    per_joint, mean, _ = summarize_errors(err_arr, vis_arr, joints)
    off_arr = np.asarray(official).reshape(-1, NUM_KEYPOINTS)[:, list(joints)]
    _, matched_mean, _ = summarize_errors(
        np.asarray(matched_errors).reshape(-1, NUM_KEYPOINTS),
        np.asarray(matched_visible).reshape(-1, NUM_KEYPOINTS),
        joints,
    )
    return MpjpeResult(
        joints=tuple(joints),
        per_joint=per_joint,
        mpjpe=mean,
        # each joint's error sum / matched persons, then the mean over the joints
        mpjpe_official=float(off_arr.mean(axis=0).mean()) if len(off_arr) else float("nan"),
        persons=len(errors),
        missed=missed,
        skipped_no_root=no_root,
        persons_official=len(official),
        mpjpe_matched=matched_mean,
        persons_matched=len(matched_errors),
        errors=records,
    )
