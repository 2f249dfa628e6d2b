"""What a user sees: the people ``orpose predict`` shows at its score threshold, against the
annotated people.

AP ranks every detection and never asks where the threshold is; a user sees only the people
above it. Two numbers say whether that view is right: recall (the share of the annotated people,
crowd regions aside, that a shown person covers, matched one-to-one at box IoU >= 0.5, greedily
by score) and precision (the share of the shown people that match someone). An image without
annotations counts all its shown people as unmatched.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import asdict, dataclass

import numpy as np

from orpose.data.coco import PoseDataset, box_iou_xywh

# orpose predict --score-threshold's default at full resolution: the lowest of 0.5 / 0.4 / 0.3 /
# 0.25 / 0.2 whose precision stays >= 80% on the demo's 40 COCO val500 images (0.25: 83%; 0.2:
# 75%), chosen there and not on the operating-room test frames (README); 0.5 before, which showed
# 19% of MVOR's annotated people at 1x and 1% at 12x
DEFAULT_SCORE_THRESHOLD = 0.25
# Per downscale factor, by the same rule (benchmarks/score_thresholds.py on the same 40 images,
# the demo's student): a low-resolution person scores lower, and one threshold for every factor
# (0.25) hid most of them at 8x-12x while precision there stayed at 98-100%. Factors between are
# interpolated, beyond the last the last is kept.
SCORE_THRESHOLDS: tuple[tuple[float, float], ...] = ((1, 0.25), (8, 0.2), (10, 0.17), (12, 0.17))
MATCH_IOU = 0.5


def by_factor(table: tuple[tuple[float, float], ...], factor: float) -> float:
    """A per-downscale-factor table's value at ``factor``: interpolated between its factors,
    the first or the last beyond them."""
    factors, values = zip(*table, strict=True)
    return float(np.interp(factor, factors, values))


def describe_by_factor(table: tuple[tuple[float, float], ...]) -> str:
    """A per-factor table as the command line's help shows it: "0.25 at 1x, 0.2 at 8x, ..."."""
    return ", ".join(f"{value:g} at {factor:g}x" for factor, value in table)


def default_score_threshold(factor: float = 1.0) -> float:
    """``orpose predict``'s default score threshold for frames shrunk ``factor`` times."""
    return by_factor(SCORE_THRESHOLDS, factor)


LOWEST_DEFAULT_SCORE_THRESHOLD = min(t for _, t in SCORE_THRESHOLDS)

# A person's score is its detection score times its pose confidence (the mean of its keypoint
# scores of at least 0.2), so a candidate detected below threshold / B can be shown only if its
# pose confidence exceeds B; predict poses no such candidate (orpose.inference.pipeline). B per
# downscale factor: the lowest of 0.5, 0.55 ... 1 under which no person shown at predict's
# default threshold was skipped, on the unlabelled training sources (or_x and
# coco_person_unlabeled300, the shipped demo student; benchmarks/pose_confidence_bounds.py),
# not on the test frames. Blurred people's heatmap peaks are lower, so the bound is lower at
# 8x-12x. 1 poses every candidate that could be shown (predict --pose-confidence-bound 1: the
# results are then exact).
POSE_CONFIDENCE_BOUNDS: tuple[tuple[float, float], ...] = (
    (1, 0.85),
    (8, 0.7),
    (10, 0.75),
    (12, 0.65),
)


def default_pose_confidence_bound(factor: float = 1.0) -> float:
    """``orpose predict``'s default pose-confidence bound for frames shrunk ``factor`` times
    (interpolated between the factors of :data:`POSE_CONFIDENCE_BOUNDS`)."""
    return by_factor(POSE_CONFIDENCE_BOUNDS, factor)


@dataclass
class ShownResult:
    """Recall and precision (in [0, 1]) of the people shown at ``threshold``."""

    threshold: float
    annotated: int
    shown: int
    matched: int

    @property
    def recall(self) -> float:
        return self.matched / self.annotated if self.annotated else float("nan")

    @property
    def precision(self) -> float:
        return self.matched / self.shown if self.shown else float("nan")

    def as_dict(self) -> dict:
        return {**asdict(self), "recall": self.recall, "precision": self.precision}


def shown_people(
    gt: PoseDataset, results: list[dict], threshold: float | None = None, factor: float = 1.0
) -> ShownResult:
    """Recall and precision of the results at ``threshold`` (see the module; None: predict's
    default for frames shrunk ``factor`` times)."""
    if threshold is None:
        threshold = default_score_threshold(factor)
    by_image: dict[int, list[dict]] = defaultdict(list)
    for r in results:
        if r.get("score", 0.0) >= threshold:
            by_image[r["image_id"]].append(r)
    annotated = shown = matched = 0
    for img in gt.images:
        people = [a for a in gt.annotations_of(img["id"]) if not a.get("iscrowd", 0)]
        found = sorted(by_image.get(img["id"], []), key=lambda r: -r["score"])
        annotated += len(people)
        shown += len(found)
        iou = box_iou_xywh([r["bbox"] for r in found], [a["bbox"] for a in people])
        free = np.ones(len(people), bool)
        for i in range(len(found)):
            candidates = np.where(free & (iou[i] >= MATCH_IOU))[0]
            if len(candidates):
                free[candidates[np.argmax(iou[i, candidates])]] = False
                matched += 1
    return ShownResult(threshold, annotated, shown, matched)
