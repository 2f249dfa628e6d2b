"""2D-to-3D lifting: a Martinez-style lifter trained on motion capture, robust to missing joints.

Public API: :class:`Lifter` (``forward(keypoints2d_px, mask) -> (N, 17, 3)`` mm, root-relative,
camera frame; ``lift_numpy`` for arrays), :func:`load_lifter` and :func:`save_lifter`.
See docs/lifting.md.
"""

from orpose.lifting.checkpoint import load_lifter, save_lifter
from orpose.lifting.model import Lifter, LifterConfig

__all__ = ["Lifter", "LifterConfig", "load_lifter", "save_lifter"]
