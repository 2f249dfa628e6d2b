"""3D skeleton plots (matplotlib), in the camera frame with the image's y axis pointing down.

As in the paper's figures, a root-relative pose can be placed at a given root depth so that
several people share one scene.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from orpose.skeleton import LIMBS
from orpose.viz.draw2d import joint_colour, limb_colour


def _rgb(c: tuple[int, int, int]) -> tuple[float, float, float]:
    return (c[0] / 255, c[1] / 255, c[2] / 255)


def place_at_root(pose3d: np.ndarray, root: Sequence[float]) -> np.ndarray:
    """Move a root-relative ``(17, 3)`` pose (mm) so that its mid-hips sit at ``root`` (mm)."""
    return np.asarray(pose3d, dtype=np.float64)[:, :3] + np.asarray(root, dtype=np.float64)


def plot_skeletons_3d(
    poses: Sequence[np.ndarray],
    path: Path | str | None = None,
    visible: Sequence[np.ndarray] | None = None,
    title: str = "",
    elev: float = -70,
    azim: float = -90,
):
    """Plot ``(17, 3)`` poses in mm (camera frame: x right, y down, z forward).

    The default view looks roughly along the camera's axis, as the image does. Returns the
    figure, or saves it and returns the path when ``path`` is given.
    """
    fig = plt.figure(figsize=(5, 5))
    ax = fig.add_subplot(projection="3d")
    all_points = []
    for i, pose in enumerate(poses):
        p = np.asarray(pose, dtype=np.float64)[:, :3]
        shown = np.ones(len(p), bool) if visible is None else np.asarray(visible[i], bool)
        for a, b in LIMBS:
            if shown[a] and shown[b]:
                ax.plot(*zip(p[a], p[b], strict=True), color=_rgb(limb_colour(a, b)), lw=2)
        ax.scatter(
            p[shown, 0],
            p[shown, 1],
            p[shown, 2],
            s=10,
            c=[_rgb(joint_colour(j)) for j in np.flatnonzero(shown)],
        )
        all_points.append(p[shown])
    pts = np.concatenate(all_points) if all_points else np.zeros((1, 3))
    centre, half = pts.mean(axis=0), max(np.ptp(pts, axis=0).max() / 2, 500.0)
    for setter, c in zip((ax.set_xlim, ax.set_ylim, ax.set_zlim), centre, strict=True):
        setter(c - half, c + half)
    ax.set_xlabel("x (mm)")
    ax.set_ylabel("y (mm)")
    ax.set_zlabel("z (mm)")
    ax.view_init(elev=elev, azim=azim)
    if title:
        ax.set_title(title)
    if path is None:
        return fig
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
