"""Teacher configuration: models, test-time augmentations and pseudo-label thresholds.

Two presets: ``single`` (one pass of each model, no augmentation) and ``full`` (every
augmentation). A YAML file may override any field of a preset, and the command line overrides
both; the resolved configuration is recorded in every pseudo-label file.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orpose.config import build, read_yaml
from orpose.errors import UserError


@dataclass(frozen=True)
class TeacherConfig:
    """Every knob of the teacher. Scales are zoom factors: 1 = the whole image (detector) or the
    padded person box (pose); > 1 zooms in (detector: overlapping tiles), < 1 zooms out."""

    detector: str = "picodet_s_320_lcnet_pedestrian"
    pose_model: str = "tinypose_256x192"
    # Detector test-time augmentation.
    det_scales: tuple[float, ...] = (1.0,)
    det_flip: bool = False
    det_tile_overlap: float = 0.25  # fraction of a tile shared with its neighbour
    det_min_score: float = 0.05  # candidates below this are dropped before NMS / fusion
    det_nms_iou: float = 0.6
    det_max_detections: int = 100
    wbf_iou: float = 0.55
    # ensemble-boxes conf_type. "max" keeps a fused box's best score; "avg" scales it by the share
    # of augmentations that found it, which measured worse here (docs/teacher.md).
    wbf_conf_type: str = "max"
    # Pose test-time augmentation.
    pose_flip: bool = False
    pose_scales: tuple[float, ...] = (1.0,)
    heatmap_decode: str = "dark"  # dark, quarter or argmax
    dark_kernel: int = 11
    # Who becomes a pseudo-labelled person, and which keypoints are hard.
    min_person_score: float = 0.3  # detection score (after fusion) needed to be posed and written
    keypoint_threshold: float = 0.5  # soft confidence below this -> invisible in the hard set
    min_keypoints: int = 0  # drop persons with fewer hard keypoints than this
    person_score: str = "det_x_pose"  # or det: the written score, see teacher.person_scores

    def __post_init__(self) -> None:
        problems = []
        if not self.det_scales or any(s <= 0 for s in self.det_scales):
            problems.append("det_scales must be positive numbers")
        if not self.pose_scales or any(s <= 0 for s in self.pose_scales):
            problems.append("pose_scales must be positive numbers")
        if not 0 <= self.det_tile_overlap < 1:
            problems.append("det_tile_overlap must lie in [0, 1)")
        if not 0 <= self.keypoint_threshold <= 1:
            problems.append("keypoint_threshold must lie in [0, 1]")
        if self.heatmap_decode not in ("dark", "quarter", "argmax"):
            problems.append("heatmap_decode must be dark, quarter or argmax")
        if self.person_score not in ("det", "det_x_pose"):
            problems.append("person_score must be det or det_x_pose")
        if self.wbf_conf_type not in ("avg", "max", "box_and_model_avg", "absent_model_aware_avg"):
            problems.append("wbf_conf_type must be one of ensemble-boxes' conf types")
        if problems:
            raise UserError("teacher config: " + "; ".join(problems))

    def to_dict(self) -> dict[str, Any]:
        return {
            k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()
        }

    def replace(self, **changes: Any) -> TeacherConfig:
        """A copy with some fields changed (None values are ignored, lists become tuples)."""
        known = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(changes) - known)
        if unknown:
            raise UserError(f"teacher config: unknown field(s) {', '.join(unknown)}")
        clean = {
            k: tuple(v) if isinstance(v, list) else v for k, v in changes.items() if v is not None
        }
        return dataclasses.replace(self, **clean)


PRESETS: dict[str, TeacherConfig] = {
    "single": TeacherConfig(),
    "full": TeacherConfig(
        det_scales=(1.0, 1.5), det_flip=True, pose_flip=True, pose_scales=(1.0, 0.9)
    ),
}
# One switch per augmentation, as measured in docs/teacher.md (each added alone to "single").
AUGMENTATIONS: dict[str, dict[str, Any]] = {
    "det_flip": {"det_flip": True},
    "det_scales": {"det_scales": PRESETS["full"].det_scales},
    "pose_flip": {"pose_flip": True},
    "pose_scales": {"pose_scales": PRESETS["full"].pose_scales},
}


def load_config(
    preset: str = "full", path: Path | str | None = None, **overrides: Any
) -> TeacherConfig:
    """A preset, updated by a YAML file's fields, then by explicit overrides (None = unset)."""
    if preset not in PRESETS:
        raise UserError(f"unknown teacher preset {preset!r} (choose {', '.join(PRESETS)})")
    config = PRESETS[preset]
    if path is not None:
        data = read_yaml(path)  # typed and range-checked like every config (orpose.config)
        config = build(TeacherConfig, {**config.to_dict(), **data}, str(path))
    return config.replace(**overrides)
