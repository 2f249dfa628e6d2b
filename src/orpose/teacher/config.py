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

from orpose.config import build, check_fields, option, read_yaml
from orpose.errors import ConfigError, UserError

SCALE_RANGE = (0.25, 4.0)  # zoom factors of the test-time augmentation (files and --det-scales)
WBF_CONF_TYPES = ("avg", "max", "box_and_model_avg", "absent_model_aware_avg")


@dataclass(frozen=True)
class TeacherConfig:
    """Every knob of the teacher. Scales are zoom factors: 1 = the whole image (detector) or the
    padded person box (pose); > 1 zooms in (detector: overlapping tiles), < 1 zooms out."""

    detector: str = "picodet_s_320_lcnet_pedestrian"
    pose_model: str = "tinypose_256x192"
    # Detector test-time augmentation.
    det_scales: tuple[float, ...] = option((1.0,), min=SCALE_RANGE[0], max=SCALE_RANGE[1])
    det_flip: bool = False
    # fraction of a tile shared with its neighbour
    det_tile_overlap: float = option(0.25, min=0, below=1)
    # candidates below this are dropped before NMS / fusion
    det_min_score: float = option(0.05, min=0, max=1)
    det_nms_iou: float = option(0.6, above=0, max=1)
    det_max_detections: int = option(100, min=1, max=10_000)
    wbf_iou: float = option(0.55, above=0, max=1)
    # ensemble-boxes conf_type. "max" keeps a fused box's best score; "avg" scales it by the share
    # of augmentations that found it, which measured worse here (docs/teacher.md).
    wbf_conf_type: str = option("max", choices=WBF_CONF_TYPES)
    # Pose test-time augmentation.
    pose_flip: bool = False
    pose_scales: tuple[float, ...] = option((1.0,), min=SCALE_RANGE[0], max=SCALE_RANGE[1])
    heatmap_decode: str = option("dark", choices=("dark", "quarter", "argmax"))
    dark_kernel: int = option(11, min=1, max=99)  # odd (a centred Gaussian window)
    # Who becomes a pseudo-labelled person, and which keypoints are hard.
    # detection score (after fusion) needed to be posed and written
    min_person_score: float = option(0.3, min=0, max=1)
    # soft confidence below this -> invisible in the hard set
    keypoint_threshold: float = option(0.5, min=0, max=1)
    # drop persons with fewer hard keypoints than this
    min_keypoints: int = option(0, min=0, max=17)
    # or det: the written score, see teacher.person_scores
    person_score: str = option("det_x_pose", choices=("det", "det_x_pose"))

    def __post_init__(self) -> None:
        """Every field checked as a config file's are (orpose.config: type, bounds, choices),
        so that values given in code or on the command line meet the same rules; a problem is a
        ConfigError naming the field (``load_config`` adds the file)."""
        check_fields(self)
        if not self.det_scales or not self.pose_scales:
            empty = "det_scales" if not self.det_scales else "pose_scales"
            raise ConfigError(f"{empty}: expected at least one scale")
        if self.dark_kernel % 2 == 0:
            raise ConfigError(f"dark_kernel: must be odd, got {self.dark_kernel}")

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
        try:
            config = build(TeacherConfig, {**config.to_dict(), **data}, str(path))
        except ConfigError as err:  # raised by __post_init__: name the file
            message = str(err)
            raise ConfigError(
                message if message.startswith(f"{path}: ") else f"{path}: {message}"
            ) from None
    try:
        return config.replace(**overrides)
    except ConfigError as err:
        raise UserError(f"teacher config: {err}") from None
