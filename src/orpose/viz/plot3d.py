"""3D skeleton plots (matplotlib) that read at a glance.

Two layouts, both drawn upright (the camera frame's y points down; plots show height = -y, x to
the right and depth z receding) with equal scale on the three axes, limits fitted to what is
drawn plus a margin and three ticks per axis:

- panels (default): one panel per person, body-centred (mid-hips at the origin), in mm, all at
  one scale so that the people compare;
- scene: everyone in one camera-frame scene, in metres, each person at its root (see
  ``orpose.inference.render.root_positions``), as the paper places root-relative poses.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.ticker import FuncFormatter, MultipleLocator

from orpose.skeleton import LIMBS, root_position
from orpose.viz.draw2d import joint_colour, limb_colour

MARGIN = 0.12  # added to each side of the fitted limits, as a share of the extent
MIN_HALF_MM = 150.0  # no axis narrower than 30 cm: a side-on pose stays a readable box
PANEL_COLUMNS = 4
TICKS = 4  # at most, on the longest axis; the others share its step (equal scale)


def _rgb(c: tuple[int, int, int]) -> tuple[float, float, float]:
    return (c[0] / 255, c[1] / 255, c[2] / 255)


def place_at_root(pose3d: np.ndarray, root: Sequence[float]) -> np.ndarray:
    """Move a root-relative ``(17, 3)`` pose (mm) so that its mid-hips sit at ``root`` (mm)."""
    return np.asarray(pose3d, dtype=np.float64)[:, :3] + np.asarray(root, dtype=np.float64)


def to_plot_axes(points: np.ndarray) -> np.ndarray:
    """Camera-frame ``(N, 3)`` points (x right, y down, z forward) as plotted: (x, z, -y)."""
    p = np.asarray(points, dtype=np.float64)[:, :3]
    return np.stack([p[:, 0], p[:, 2], -p[:, 1]], axis=1)


def fitted_limits(points: np.ndarray, margin: float = MARGIN, min_half: float = MIN_HALF_MM):
    """``(3, 2)`` axis limits around ``(N, 3)`` points: their extent plus ``margin`` on each
    side, at least ``min_half`` either side of the centre."""
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 3)
    pts = pts[np.isfinite(pts).all(axis=1)]
    if not len(pts):
        pts = np.zeros((1, 3))
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    half = np.maximum((hi - lo) / 2 * (1 + 2 * margin), min_half)
    centre = (lo + hi) / 2
    return np.stack([centre - half, centre + half], axis=1)


def _draw_pose(ax, plotted: np.ndarray, shown: np.ndarray) -> None:
    for a, b in LIMBS:
        if shown[a] and shown[b]:
            ax.plot(*zip(plotted[a], plotted[b], strict=True), color=_rgb(limb_colour(a, b)), lw=2)
    ax.scatter(*plotted[shown].T, s=8, c=[_rgb(joint_colour(j)) for j in np.flatnonzero(shown)])


def tick_step(limits: np.ndarray, ticks: int = TICKS) -> float:
    """One round tick step (1, 2, 2.5 or 5 x 10^k) for all three axes: the smallest that gives
    the longest axis at most ``ticks`` ticks. Shorter axes get fewer, so that labels never crowd
    on a narrow side, and equal steps keep the equal scale visible."""
    longest = int(np.argmax(limits[:, 1] - limits[:, 0]))
    lo, hi = limits[longest]
    power = 10.0 ** np.floor(np.log10(max(hi - lo, 1e-9) / ticks))
    for step in (m * power for m in (1, 2, 2.5, 5, 10, 20, 25, 50)):
        if np.floor(hi / step) - np.ceil(lo / step) + 1 <= ticks:
            return float(step)
    return float(100 * power)


def _style(ax, limits: np.ndarray, unit: str, per_unit: float) -> None:
    """Equal scale (box sides proportional to the limits), few ticks, readable units."""
    names = ("x", "depth z", "height -y")
    axes = (ax.xaxis, ax.yaxis, ax.zaxis)
    setters = (ax.set_xlim, ax.set_ylim, ax.set_zlim)
    label_setters = (ax.set_xlabel, ax.set_ylabel, ax.set_zlabel)
    ticks = FuncFormatter(lambda v, _pos: f"{v / per_unit:g}")
    step = tick_step(limits)
    for axis, setter, set_label, (lo, hi), name in zip(
        axes, setters, label_setters, limits, names, strict=True
    ):
        setter(lo, hi)
        axis.set_major_locator(MultipleLocator(step))
        axis.set_major_formatter(ticks)
        set_label(f"{name} ({unit})", fontsize=8, labelpad=0)
    ax.tick_params(labelsize=7, pad=1)
    ax.set_box_aspect(tuple(limits[:, 1] - limits[:, 0]), zoom=0.85)


def plot_skeletons_3d(
    poses: Sequence[np.ndarray],
    path: Path | str | None = None,
    visible: Sequence[np.ndarray] | None = None,
    title: str = "",
    elev: float = 12,
    azim: float = -70,
    labels: Sequence[str] | None = None,
    scene: bool = False,
):
    """Plot ``(17, 3)`` camera-frame poses in mm (x right, y down, z forward).

    ``scene=False``: one body-centred panel per pose (mm); ``scene=True``: all poses where they
    are, in one scene (m). ``labels`` name the people (panel titles, or text above each head).
    The default view is from just above the camera, a little to the side, so that depth shows.
    Returns the figure, or saves it and returns the path when ``path`` is given.
    """
    poses = [np.asarray(p, dtype=np.float64)[:, :3] for p in poses]
    shown = [
        np.ones(len(p), bool) if visible is None else np.asarray(visible[i], bool)
        for i, p in enumerate(poses)
    ]
    labels = list(labels) if labels is not None else [""] * len(poses)
    if scene or len(poses) <= 1:
        fig = plt.figure(figsize=(5.2, 5))
        ax = fig.add_subplot(projection="3d")
        centred = not scene
        plotted = [to_plot_axes(p - root_position(p) if centred else p) for p in poses]
        drawn = [q[m] for q, m in zip(plotted, shown, strict=True)]
        limits = fitted_limits(np.concatenate(drawn) if drawn else np.zeros((1, 3)))
        for q, m, label in zip(plotted, shown, labels, strict=True):
            _draw_pose(ax, q, m)
            if label and m.any():
                top = q[m][np.argmax(q[m][:, 2])]
                ax.text(top[0], top[1], top[2] + 120, label, fontsize=8, ha="center")
        _style(ax, limits, "mm" if centred else "m", 1.0 if centred else 1000.0)
        ax.view_init(elev=elev, azim=azim)
        if title:
            ax.set_title(title, fontsize=9)
    else:
        columns = min(PANEL_COLUMNS, len(poses))
        rows = -(-len(poses) // columns)
        fig = plt.figure(figsize=(2.5 * columns, 3.4 * rows + 0.3))
        fig.subplots_adjust(left=0, right=1, bottom=0.02, top=0.9, wspace=0.05)
        plotted = [to_plot_axes(p - root_position(p)) for p in poses]
        drawn = [q[m] for q, m in zip(plotted, shown, strict=True)]
        limits = fitted_limits(np.concatenate(drawn))  # one scale for all: people compare
        for i, (q, m, label) in enumerate(zip(plotted, shown, labels, strict=True)):
            ax = fig.add_subplot(rows, columns, i + 1, projection="3d")
            _draw_pose(ax, q, m)
            _style(ax, limits, "mm", 1.0)
            ax.view_init(elev=elev, azim=azim)
            if label:
                ax.set_title(label, fontsize=9)
        if title:
            fig.suptitle(title, fontsize=10)
    if path is None:
        return fig
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")  # 3D boxes of poses are narrow
    plt.close(fig)
    return path
