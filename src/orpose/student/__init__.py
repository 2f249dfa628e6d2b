"""The students: Keypoint R-CNN with a two-branch (soft/hard) heatmap head and two 3D lifters
(:mod:`orpose.student.model`), the CPU top-down student (:mod:`orpose.student.topdown`) and
their registry (:mod:`orpose.student.registry`).

The names below are resolved lazily, so that importing a module of the package does not import
torchvision. Their checkpoint formats are :mod:`orpose.checkpoints` (the floor above, which
builds students); the student as a function of an image is :mod:`orpose.predictor`.
"""

from __future__ import annotations

from orpose.lazy import lazy_exports

_WHERE = {
    "ORPoseStudent": "orpose.student.model",
    "StudentConfig": "orpose.student.model",
    "build_student": "orpose.student.model",
}
__all__ = sorted(_WHERE)
__getattr__ = lazy_exports(__name__, _WHERE)
