"""Optional 3D pseudo labels: the soft and hard 2D sets lifted by a trained 2D-to-3D lifter.

The lifter comes from :mod:`orpose.lifting` (``load_lifter(path).lift_numpy(keypoints, threshold)``
-> ``(N, 17, 3)`` mm, root-relative); the lifting package resolves its names lazily, so its
modules (and torch) load only when a checkpoint is given: the teacher runs without a lifter.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from orpose import lifting
from orpose.data.coco import hard_from_soft
from orpose.errors import UserError
from orpose.teacher.teacher import Person


class Lifter(Protocol):
    def lift_numpy(self, keypoints: np.ndarray, threshold: float = ...) -> np.ndarray: ...


def load_lifter(path: Path | str) -> Any:
    """The lifter of a checkpoint, through orpose.lifting (whose modules load on first use)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: lifter checkpoint not found")
    try:
        load = lifting.load_lifter  # the lifting package resolves it (and imports torch) now
    except ImportError as err:
        raise UserError(
            f"--lifter needs the orpose.lifting stage, which failed to import ({err})"
        ) from err
    return load(path)


def add_3d(people: Sequence[Person], lifter: Lifter, keypoint_threshold: float) -> None:
    """Attach ``keypoints3d_soft`` (lift of every joint of the soft set) and
    ``keypoints3d_hard`` (lift of the hard set: only joints above the threshold count)."""
    if not people:
        return
    soft = np.stack([np.asarray(p.keypoints, dtype=np.float64) for p in people])
    soft3d = np.asarray(lifter.lift_numpy(soft, threshold=0.0), dtype=np.float64)
    hard = hard_from_soft(soft, keypoint_threshold)
    hard[..., 2] = (hard[..., 2] > 0).astype(np.float64)  # visibility 2 -> confidence 1
    hard3d = np.asarray(lifter.lift_numpy(hard, threshold=0.5), dtype=np.float64)
    # A person without any hard joint has no meaningful hard lift; zeros keep the file valid.
    soft3d, hard3d = np.nan_to_num(soft3d), np.nan_to_num(hard3d)
    for person, s3, h3 in zip(people, soft3d, hard3d, strict=True):
        person.extra["keypoints3d_soft"] = s3.reshape(17, 3)
        person.extra["keypoints3d_hard"] = h3.reshape(17, 3)
