"""The teacher: person detector -> top-down 2D pose (-> optional 3D lifter), with TTA."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from orpose.manifest import ModelSpec, adapter_for, find_model, load_manifest, verify_model
from orpose.teacher.boxes import Detections
from orpose.teacher.config import TeacherConfig
from orpose.teacher.detectors import DETECTOR_ADAPTERS, OnnxDetector, build_detector
from orpose.teacher.pose import POSE_ADAPTERS, PoseAdapter, build_pose_adapter
from orpose.teacher.runtime import OnnxModel
from orpose.teacher.tta import (
    detection_views,
    estimate_poses,
    fuse_augmentations,
    merge_groups,
    pose_augmentations,
    render_view,
)

# Keypoints at least this confident count in the det_x_pose person score (as in HRNet/MMPose's
# top-down rescoring).
RESCORE_KEYPOINT_THRESHOLD = 0.2


@dataclass
class Person:
    """One pseudo-labelled person, in image pixels."""

    box: np.ndarray  # (4,) x1, y1, x2, y2
    score: float  # the person score written to the file
    det_score: float  # the (fused) detection score
    keypoints: np.ndarray  # (17, 3) soft set: x, y, confidence
    extra: dict[str, Any] = field(default_factory=dict)  # e.g. 3D sets


def person_scores(det_scores: np.ndarray, keypoints: np.ndarray, mode: str) -> np.ndarray:
    """The written person score: the detector's, or times the mean confident-keypoint score."""
    if mode == "det":
        return det_scores
    conf = keypoints[..., 2]
    confident = conf >= RESCORE_KEYPOINT_THRESHOLD
    mean = np.where(
        confident.any(-1), (conf * confident).sum(-1) / np.maximum(confident.sum(-1), 1), 0
    )
    return det_scores * mean


class Teacher:
    """Labels one RGB image at a time; all models and augmentations come from the config."""

    def __init__(
        self,
        config: TeacherConfig,
        detector: OnnxDetector,
        pose: PoseAdapter,
        models: list[ModelSpec] | None = None,
    ) -> None:
        self.config = config
        self.detector = detector
        self.pose = pose
        self.models = models or [detector.spec, pose.spec]
        self.pose_augmentations = pose_augmentations(config.pose_scales, config.pose_flip)

    @classmethod
    def from_config(
        cls,
        config: TeacherConfig,
        models_dir: Path | None,
        manifest: Path | str | None = None,
        threads: int = 0,
    ) -> Teacher:
        """Find, verify (sha256) and load both models."""
        entries = load_manifest(manifest)
        det_spec = find_model(config.detector, entries, "detector")
        pose_spec = find_model(config.pose_model, entries, "pose")
        # an output kind no adapter decodes is refused before any file is read
        adapter_for(det_spec, DETECTOR_ADAPTERS), adapter_for(pose_spec, POSE_ADAPTERS)
        det_model = OnnxModel(verify_model(det_spec, models_dir), threads)
        pose_model = OnnxModel(verify_model(pose_spec, models_dir), threads)
        return cls(
            config,
            build_detector(det_spec, det_model),
            build_pose_adapter(pose_spec, pose_model),
            [det_spec, pose_spec],
        )

    def detect(self, image: np.ndarray) -> Detections:
        """Person boxes of the image, fused over the detector's augmentations."""
        cfg = self.config
        h, w = image.shape[:2]
        views = detection_views(w, h, cfg.det_scales, cfg.det_flip, cfg.det_tile_overlap)
        pad = self.detector.spec.input.pad_value
        pixels = [render_view(image, v, pad) for v in views]
        per_view = self.detector.detect(
            pixels, cfg.det_min_score, cfg.det_nms_iou, cfg.det_max_detections
        )
        groups = merge_groups(views, per_view, w, h, cfg.det_nms_iou)
        fused = fuse_augmentations(groups, w, h, cfg.wbf_iou, cfg.wbf_conf_type, cfg.det_min_score)
        return fused.select(np.arange(min(len(fused), cfg.det_max_detections)))

    def keypoints(self, image: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        """Soft keypoints ``(N, 17, 3)`` of the given boxes, fused over the pose augmentations."""
        cfg = self.config
        return estimate_poses(
            self.pose, image, boxes, self.pose_augmentations, cfg.heatmap_decode, cfg.dark_kernel
        )

    def label(self, image: np.ndarray) -> list[Person]:
        """Every person of an RGB image whose score passes the config's thresholds."""
        cfg = self.config
        dets = self.detect(image)
        dets = dets.select(dets.scores >= cfg.min_person_score)
        keypoints = self.keypoints(image, dets.boxes)
        scores = person_scores(dets.scores, keypoints, cfg.person_score)
        people = []
        for box, score, det_score, kps in zip(
            dets.boxes, scores, dets.scores, keypoints, strict=True
        ):
            if int((kps[:, 2] >= cfg.keypoint_threshold).sum()) < cfg.min_keypoints:
                continue
            people.append(Person(box, float(score), float(det_score), kps))
        return people

    def describe(self) -> dict[str, Any]:
        """What produced the labels: config and model entries (with checksums)."""
        return {"config": self.config.to_dict(), "models": [m.as_dict() for m in self.models]}
