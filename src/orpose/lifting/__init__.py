"""2D-to-3D lifting: a Martinez-style lifter trained on motion capture, robust to missing joints.

Public API: :class:`Lifter` (``forward(keypoints2d_px, mask) -> (N, 17, 3)`` mm, root-relative,
camera frame; ``lift_numpy`` for arrays), :func:`load_lifter` and :func:`save_lifter`.
The official ORPose lifter (Martinez's network on Human3.6M statistics, for official checkpoints)
is :mod:`orpose.lifting.official_lifter`. See docs/lifting.md. The names are resolved lazily,
so that importing the package (as the command line does to register its verbs) does not import
torch.
"""

from __future__ import annotations

from orpose.lazy import lazy_exports

_WHERE = {
    "Lifter": "orpose.lifting.model",
    "LifterConfig": "orpose.lifting.model",
    "load_lifter": "orpose.lifting.checkpoint",
    "save_lifter": "orpose.lifting.checkpoint",
}
__all__ = sorted(_WHERE)
__getattr__ = lazy_exports(__name__, _WHERE)
