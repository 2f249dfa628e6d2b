"""MVOR's 2D pose metric: PCK@0.2 over its 10 upper-body joints.

Reference: CAMMA-public/MVOR, ``lib/eval_pck_2dpose.py`` (run by ``tools/run_eval_pck_2dpose.sh``;
its README lists OpenPose 57.1, RTPose 73.8 and AlphaPose 76.2 mean PCK on all of MVOR). orpose
re-implements the protocol as that script computes it:

- Ground truth: every person with at least one 2D joint (``keypoints_mvor``, [x, y, v] * 10, as
  ``orpose data mvor-to-coco`` writes it); a joint is annotated when its (x, y) is not (0, 0),
  whatever its flag; box-only people are not scored.
- Predictions: COCO-17 keypoints of each detected person; a keypoint at (0, 0) is absent (the
  convention of MVOR's detection files), every other one is used, whatever its confidence (as
  MVOR's notebook does for torchvision's Keypoint R-CNN). MVOR's 10 joints come from COCO-17 by
  :func:`orpose.skeleton.coco_to_mvor`: head = mid-eyes, else mid-ears, else the nose, else one
  eye or ear; neck = mid-shoulders, else one shoulder; the 8 other joints are COCO's own.
- Matching, per ground-truth person and image: the box around its annotated joints and the box
  around each prediction's present COCO keypoints (all 17), in MVOR's inclusive pixel convention
  (width = x2 - x1 + 1); the predictions whose intersection covers more than 0.3 of the
  ground-truth box are candidates and the highest-scoring one is taken (the first on a tie). A
  prediction may serve several people; a person without a candidate scores 0 on every joint.
- Hit: a joint within ``threshold`` (0.2) x the person's size, the longer side of the box around
  its annotated joints (+1 px), of the annotation.
- Per joint, PCK = hits / scored people: **a joint the ground truth does not annotate counts as
  a miss** (the script's denominator is the number of people, not of annotated joints), so the
  ground truth itself scores below 100 when joints are unannotated. ``per_joint_annotated`` (and
  ``mean_annotated``) divide by the annotated joints instead.
- Reported: head (the mean of head and neck, as the script's left/right averaging pairs them),
  shoulder, hip, elbow, wrist (left and right averaged), and their mean, which equals the mean
  over the 10 joints.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from orpose.data.coco import PoseDataset, check_numbers
from orpose.skeleton import MVOR_KEYPOINTS, NUM_KEYPOINTS, NUM_MVOR_KEYPOINTS, coco_to_mvor

MVOR_FIELD = "keypoints_mvor"
PCK_THRESHOLD = 0.2  # fraction of the person's size (MVOR's default)
MATCH_OVERLAP = 0.3  # share of the ground-truth box a prediction must cover to be a candidate
# MVOR's reported groups: head pairs head and neck; the others pair left and right.
PCK_GROUPS: dict[str, tuple[str, str]] = {
    "head": ("head", "neck"),
    "shoulder": ("left_shoulder", "right_shoulder"),
    "hip": ("left_hip", "right_hip"),
    "elbow": ("left_elbow", "right_elbow"),
    "wrist": ("left_wrist", "right_wrist"),
}


@dataclass
class PckResult:
    """MVOR PCK in percent: per joint, per group and mean, over ``persons`` scored people."""

    threshold: float
    per_joint: dict[str, float]
    per_joint_annotated: dict[str, float]
    persons: int
    matched: int  # people with a matched prediction

    @property
    def groups(self) -> dict[str, float]:
        return {g: (self.per_joint[a] + self.per_joint[b]) / 2 for g, (a, b) in PCK_GROUPS.items()}

    @property
    def mean(self) -> float:
        return float(np.mean(list(self.per_joint.values())))

    @property
    def mean_annotated(self) -> float:
        return float(np.nanmean(list(self.per_joint_annotated.values())))

    def as_dict(self) -> dict:
        return {
            "threshold": self.threshold,
            "mean": self.mean,
            "groups": self.groups,
            "per_joint": self.per_joint,
            "mean_annotated": self.mean_annotated,
            "per_joint_annotated": self.per_joint_annotated,
            "persons": self.persons,
            "matched": self.matched,
        }


def has_mvor_keypoints(gt: PoseDataset) -> bool:
    """Whether the ground truth carries MVOR's 10 joints (``keypoints_mvor``)."""
    return any(MVOR_FIELD in a for a in gt.annotations)


def prediction_joints(keypoints17: Sequence[float] | np.ndarray) -> np.ndarray:
    """``(10, 2)`` MVOR joints of one prediction's COCO-17 keypoints, NaN where absent."""
    k = np.asarray(keypoints17, dtype=np.float64).reshape(NUM_KEYPOINTS, 3).copy()
    k[:, 2] = np.any(k[:, :2] != 0, axis=1)  # present unless at (0, 0), whatever the score
    mvor = coco_to_mvor(k)
    return np.where(mvor[:, 2:3] > 0, mvor[:, :2], np.nan)


def _box(points: np.ndarray) -> np.ndarray | None:
    """x1, y1, x2, y2 of the non-NaN rows of ``(N, 2)`` points; None when there are none."""
    ok = ~np.isnan(points).any(axis=1)
    if not ok.any():
        return None
    p = points[ok]
    return np.array([p[:, 0].min(), p[:, 1].min(), p[:, 0].max(), p[:, 1].max()])


def _coverage(gt_box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Intersection of each box with ``gt_box`` over the area of ``gt_box`` (inclusive pixels)."""
    w = np.minimum(gt_box[2], boxes[:, 2]) - np.maximum(gt_box[0], boxes[:, 0]) + 1
    h = np.minimum(gt_box[3], boxes[:, 3]) - np.maximum(gt_box[1], boxes[:, 1]) + 1
    area = (gt_box[2] - gt_box[0] + 1) * (gt_box[3] - gt_box[1] + 1)
    return np.clip(w, 0, None) * np.clip(h, 0, None) / area


def _ground_truth(gt: PoseDataset) -> dict[int, list[np.ndarray]]:
    """Per image, the ``(10, 2)`` annotated joints (NaN where unannotated) of scored people."""
    where_file = gt.path or "<ground truth>"
    people: dict[int, list[np.ndarray]] = defaultdict(list)
    for ann in gt.annotations:
        if MVOR_FIELD not in ann or ann.get("iscrowd", 0):
            continue
        record = f"annotation id {ann.get('id', '?')}"
        check_numbers(ann[MVOR_FIELD], NUM_MVOR_KEYPOINTS * 3, where_file, record, MVOR_FIELD)
        k = np.asarray(ann[MVOR_FIELD], dtype=np.float64).reshape(NUM_MVOR_KEYPOINTS, 3)[:, :2]
        annotated = np.any(k != 0, axis=1)
        if annotated.any():
            people[ann["image_id"]].append(np.where(annotated[:, None], k, np.nan))
    return people


def _predictions(results: Sequence[dict]) -> dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Per image: MVOR joints ``(D, 10, 2)``, keypoint boxes ``(D, 4)`` and scores ``(D,)`` of the
    predictions with at least one present keypoint."""
    grouped: dict[int, list[tuple[np.ndarray, np.ndarray, float]]] = defaultdict(list)
    for r in results:
        if "keypoints" not in r:
            continue
        k = np.asarray(r["keypoints"], dtype=np.float64).reshape(NUM_KEYPOINTS, 3)[:, :2]
        box = _box(np.where(np.any(k != 0, axis=1)[:, None], k, np.nan))
        if box is not None:
            grouped[r["image_id"]].append((prediction_joints(r["keypoints"]), box, r["score"]))
    return {
        image_id: (
            np.stack([j for j, _, _ in items]),
            np.stack([b for _, b, _ in items]),
            np.array([s for _, _, s in items], dtype=np.float64),
        )
        for image_id, items in grouped.items()
    }


def compute_mvor_pck(
    gt: PoseDataset, results: Sequence[dict], threshold: float = PCK_THRESHOLD
) -> PckResult | None:
    """MVOR's PCK of ``results`` (COCO-17 keypoint results); None without ``keypoints_mvor``."""
    if not has_mvor_keypoints(gt):
        return None
    image_ids = {img["id"] for img in gt.images}
    truth = _ground_truth(gt)
    preds = _predictions(results)
    hits = np.zeros(NUM_MVOR_KEYPOINTS)
    annotated = np.zeros(NUM_MVOR_KEYPOINTS)
    persons = matched = 0
    for image_id, people in truth.items():
        if image_id not in image_ids:
            continue
        for joints in people:
            persons += 1
            present = ~np.isnan(joints).any(axis=1)
            annotated += present
            if image_id not in preds:
                continue
            pred_joints, boxes, scores = preds[image_id]
            candidates = np.flatnonzero(_coverage(_box(joints), boxes) > MATCH_OVERLAP)
            if candidates.size == 0:
                continue
            best = candidates[np.argmax(scores[candidates])]  # first of equal scores
            matched += 1
            size = np.max(np.nanmax(joints, axis=0) - np.nanmin(joints, axis=0) + 1)
            dist = np.linalg.norm(pred_joints[best] - joints, axis=1)
            hits += np.nan_to_num(dist, nan=np.inf) <= threshold * size
    denominator = max(persons, 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        per_annotated = np.where(annotated > 0, 100 * hits / annotated, np.nan)
    return PckResult(
        threshold=threshold,
        per_joint={
            n: float(100 * h / denominator) for n, h in zip(MVOR_KEYPOINTS, hits, strict=True)
        },
        per_joint_annotated={
            n: float(v) for n, v in zip(MVOR_KEYPOINTS, per_annotated, strict=True)
        },
        persons=persons,
        matched=matched,
    )
