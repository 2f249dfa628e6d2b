"""Box operations: non-maximum suppression and weighted box fusion (ensemble-boxes).

Boxes are ``(N, 4)`` float arrays of x1, y1, x2, y2 in pixels unless a name says otherwise.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np


@dataclass
class Detections:
    """Person boxes of one image (or one view of it) and their scores, best first not implied."""

    boxes: np.ndarray  # (N, 4) x1, y1, x2, y2
    scores: np.ndarray  # (N,)

    @classmethod
    def empty(cls) -> Detections:
        return cls(np.zeros((0, 4)), np.zeros((0,)))

    def __len__(self) -> int:
        return len(self.scores)

    def select(self, keep: np.ndarray) -> Detections:
        return Detections(self.boxes[keep], self.scores[keep])

    @classmethod
    def concat(cls, parts: Sequence[Detections]) -> Detections:
        parts = [p for p in parts if len(p)]
        if not parts:
            return cls.empty()
        return cls(
            np.concatenate([p.boxes for p in parts]), np.concatenate([p.scores for p in parts])
        )


def nms(dets: Detections, iou: float, max_keep: int | None = None) -> Detections:
    """Greedy NMS by score (OpenCV's implementation); the result is sorted best first."""
    if not len(dets):
        return dets
    xywh = np.concatenate([dets.boxes[:, :2], dets.boxes[:, 2:] - dets.boxes[:, :2]], axis=1)
    keep = np.asarray(
        cv2.dnn.NMSBoxes(xywh.tolist(), dets.scores.astype(float).tolist(), 0.0, iou), dtype=int
    ).reshape(-1)
    keep = keep[np.argsort(-dets.scores[keep], kind="stable")]
    return dets.select(keep[:max_keep] if max_keep else keep)


def clip_boxes(boxes: np.ndarray, width: float, height: float) -> np.ndarray:
    out = np.array(boxes, dtype=np.float64, copy=True)
    out[:, [0, 2]] = out[:, [0, 2]].clip(0, width)
    out[:, [1, 3]] = out[:, [1, 3]].clip(0, height)
    return out


def drop_degenerate(dets: Detections, min_size: float = 1.0) -> Detections:
    """Boxes thinner than ``min_size`` pixels carry no person (and would break WBF's IoU)."""
    wh = dets.boxes[:, 2:] - dets.boxes[:, :2]
    return dets.select(np.all(wh >= min_size, axis=1))


def weighted_box_fusion(
    groups: Sequence[Detections],
    width: float,
    height: float,
    iou: float = 0.55,
    conf_type: str = "avg",
    weights: Sequence[float] | None = None,
    skip_score: float = 0.0,
) -> Detections:
    """Fuse the detections of several augmentations with WBF (Solovyev et al., ensemble-boxes).

    Each group is one augmentation's output; with ``conf_type="avg"`` a box found by k of the M
    groups keeps about k/M of its mean score, which is how agreement across augmentations shows.
    """
    from ensemble_boxes import weighted_boxes_fusion

    if not any(len(g) for g in groups):
        return Detections.empty()
    scale = np.array([width, height, width, height], dtype=np.float64)
    boxes_list = [(clip_boxes(g.boxes, width, height) / scale).tolist() for g in groups]
    scores_list = [g.scores.astype(float).tolist() for g in groups]
    labels_list = [[0] * len(g) for g in groups]
    boxes, scores, _ = weighted_boxes_fusion(
        boxes_list,
        scores_list,
        labels_list,
        weights=list(weights) if weights else None,
        iou_thr=iou,
        skip_box_thr=skip_score,
        conf_type=conf_type,
    )
    if not len(scores):
        return Detections.empty()
    return Detections(np.asarray(boxes, dtype=np.float64) * scale, np.asarray(scores, np.float64))
