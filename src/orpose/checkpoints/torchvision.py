"""torchvision's COCO Keypoint R-CNN weights as the starting weights of the student.

torchvision's ``keypointrcnn_resnet50_fpn_coco-*`` checkpoint (the paper's "default student",
a local file: nothing is fetched from a model hub): backbone, RPN and box branch load as they
are, the keypoint conv stack into the shared convs, and the single keypoint predictor into BOTH
heatmap branches. An orpose checkpoint of the same architecture loads the same way (stage 2).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from orpose.safe_checkpoint import read_checkpoint

_PREFIX_MAP = (
    ("roi_heads.keypoint_head.", ("roi_heads.kp_head.convs.",)),
    ("roi_heads.keypoint_predictor.", ("roi_heads.kp_head.soft.", "roi_heads.kp_head.hard.")),
)


def map_torchvision_keypointrcnn(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename a torchvision ``KeypointRCNN`` state dict to the student's parameter names."""
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        for old, news in _PREFIX_MAP:
            if key.startswith(old):
                for new in news:
                    out[new + key[len(old) :]] = value
                break
        else:
            out[key] = value
    return out


def read_weight_file(path: Path | str) -> dict:
    """A starting-weights file as saved: a torchvision state dict or an orpose checkpoint."""
    return read_checkpoint(path)


def checkpoint_lifter_config(saved: dict) -> dict | None:
    """The lifter architecture an orpose checkpoint records; None for other weight files."""
    if isinstance(saved, dict) and isinstance(saved.get("student_config"), dict):
        return dict(saved["student_config"].get("lifter_config") or {})
    return None


def load_torchvision_keypointrcnn(
    model: nn.Module, path: Path | str, saved: dict | None = None
) -> list[str]:
    """Load torchvision COCO Keypoint R-CNN weights (or an orpose checkpoint of the same
    architecture) into a Keypoint R-CNN student; returns the student keys left untouched.
    ``saved``: the file's content when the caller has already read it with
    :func:`read_weight_file`.

    Raises ValueError naming the file when a tensor's shape does not fit (for example a
    checkpoint of another backbone).
    """
    from orpose.student.onnx_backbone import legacy_backbone_weights  # imports torchvision

    state = read_weight_file(path) if saved is None else saved
    if isinstance(state, dict) and "model" in state and isinstance(state["model"], dict):
        state = state["model"]
    own = model.state_dict()
    mapped = map_torchvision_keypointrcnn(legacy_backbone_weights(state, own))
    for key, value in mapped.items():
        if key in own and own[key].shape != value.shape:
            raise ValueError(
                f"{path}: parameter '{key}': shape {tuple(value.shape)} does not fit the student's "
                f"{tuple(own[key].shape)} (backbone {model.config.backbone!r})"
            )
    # BatchNorm's counter exists in one layout and not the other (FrozenBatchNorm2d has none)
    mapped = {k: v for k, v in mapped.items() if not k.endswith("num_batches_tracked") or k in own}
    # a single-branch student has one heatmap layer (`soft`): the copy meant for `hard` goes
    mapped = {k: v for k, v in mapped.items()
              if not k.startswith("roi_heads.kp_head.hard.") or k in own}  # fmt: skip
    unexpected = [k for k in mapped if k not in own]
    if unexpected:
        raise ValueError(
            f"{path}: not a torchvision Keypoint R-CNN checkpoint for this student "
            f"(unknown parameters such as '{unexpected[0]}')"
        )
    missing = model.load_state_dict(mapped, strict=False).missing_keys
    return [k for k in missing if not k.endswith("num_batches_tracked")]
