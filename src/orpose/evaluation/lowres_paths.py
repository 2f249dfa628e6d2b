"""Which low-resolution path privacy mode uses, chosen from measurements of the model itself.

A frame shrunk S times can reach the CPU student two ways: upsampled back to the camera size
(the paper's protocol, what it was trained on) or as it is (the native path, about a quarter of
the cost at 12x, see docs/inference.md). The native path is worth it only where it loses
(almost) nothing. ``orpose eval --compare-lowres-paths`` scores both paths of a checkpoint on an
evaluation set and records the keypoint AP of each in a small file beside the checkpoint
(``<checkpoint>.lowres_paths.json``, one entry per evaluation set). ``orpose predict
--downscale S`` then takes the native path when, at that S, it was measured on at least
:data:`MIN_SETS` evaluation sets and is within :data:`MAX_LOSS` keypoint-AP points of the
upsampled path on every one of them; otherwise it keeps the paper's protocol and says why.
The record names the checkpoint's size and modification time: a retrained or replaced file
is measured again.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from orpose.data.coco import read_json, write_json_atomic
from orpose.errors import DatasetError
from orpose.paths import file_stamp
from orpose.scales import scale_tag

SUFFIX = ".lowres_paths.json"
MAX_LOSS = 1.0  # keypoint-AP points the native path may lose against the upsampled one
MIN_SETS = 2  # evaluation sets it must be measured on (e.g. the MVOR OR frames and val500)


def record_path(model: Path | str) -> Path:
    """The record beside a checkpoint."""
    model = Path(model)
    return model.with_name(model.name + SUFFIX)


def _read(path: Path) -> dict:
    data = read_json(path)
    if not isinstance(data, dict) or not isinstance(data.get("sets"), dict):
        raise DatasetError(f"{path}: field 'sets': expected a mapping of evaluation sets")
    return data


def record_comparison(
    model: Path | str, gt: Path | str, scores: dict[float, tuple[float, float]]
) -> Path:
    """Add (or replace) the entry of evaluation set ``gt``: per scale, the keypoint AP
    (upsampled, native) in percent. Entries measured on another state of the checkpoint file
    are dropped."""
    model = Path(model)
    path = record_path(model)
    stamp = file_stamp(model)
    data = _read(path) if path.is_file() else {}
    if data.get("model_file") != stamp:
        data = {}
    sets = data.get("sets", {})
    sets[str(Path(gt).resolve())] = {
        f"{scale_tag(s)}x": {"upsampled": up, "native": native}
        for s, (up, native) in sorted(scores.items())
    }
    write_json_atomic(path, {"model_file": stamp, "sets": sets})
    return path


@dataclass(frozen=True)
class PathChoice:
    """The path for one downscale factor and the sentence that says why."""

    native: bool
    reason: str


def choose_path(model: Path | str, scale: float) -> PathChoice:
    """The native path at ``scale`` when the record beside ``model`` allows it (see the module
    docstring), else the upsampled one; ``reason`` names the figures or what is missing."""
    model = Path(model)
    path = record_path(model)
    label = f"{scale_tag(scale)}x"
    how = (
        f"`orpose eval --gt SET --model {model.name} --scales {scale_tag(scale)} "
        "--compare-lowres-paths` on two evaluation sets (e.g. the MVOR OR frames and val500)"
    )
    if not model.is_file() or not path.is_file():
        return PathChoice(False, f"the native path is not measured for this model ({how})")
    data = _read(path)
    if data.get("model_file") != file_stamp(model):
        return PathChoice(False, f"{path.name} was measured on another state of the model ({how})")
    losses = {}
    for gt, scales in data["sets"].items():
        entry = scales.get(label) if isinstance(scales, dict) else None
        if isinstance(entry, dict):
            up, native = entry.get("upsampled"), entry.get("native")
            if isinstance(up, int | float) and isinstance(native, int | float):
                losses[Path(gt).name] = up - native if math.isfinite(up - native) else math.inf
    figures = ", ".join(f"{name} {-loss:+.1f}" for name, loss in sorted(losses.items()))
    if len(losses) < MIN_SETS:
        return PathChoice(
            False,
            f"the native path is measured at {label} on {len(losses)} evaluation set(s), "
            f"{MIN_SETS} needed ({how})",
        )
    if max(losses.values()) > MAX_LOSS:
        return PathChoice(
            False,
            f"the native path loses more than {MAX_LOSS:g} keypoint-AP point at {label} "
            f"(native minus upsampled: {figures}; {path.name})",
        )
    return PathChoice(
        True,
        f"the native path is within {MAX_LOSS:g} keypoint-AP point of the upsampled one at "
        f"{label} (native minus upsampled: {figures}; {path.name})",
    )
