"""3D plots: body-centred panels, fitted equal-scale axes, few ticks, root-depth placement."""

import matplotlib.pyplot as plt
import numpy as np

from conftest import person_keypoints
from orpose.inference.render import estimate_root_depth, plot_people_3d
from orpose.viz.plot3d import fitted_limits, plot_skeletons_3d, tick_step


def standing_pose(turn: float = 0.0) -> np.ndarray:
    """A 1.7 m upright person in mm, camera frame (y down), mid-hips at 0, turned about y."""
    kps = person_keypoints(0, 0, scale=10.0)[:, :2]  # 155 units tall -> 1550 mm
    pose = np.column_stack([kps, 60 * np.sin(np.arange(17))])
    pose -= (pose[11] + pose[12]) / 2
    c, s = np.cos(turn), np.sin(turn)
    return pose @ np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]]).T


def seen_at(pose: np.ndarray, x_mm: float, depth_mm: float, focal: float, size) -> dict:
    """The person's detection as a pinhole camera sees it at (x_mm, 300, depth_mm)."""
    cam = pose + [x_mm, 300.0, depth_mm]
    uv = cam[:, :2] / cam[:, 2:] * focal + [size[0] / 2, size[1] / 2]
    kps = np.column_stack([uv, np.full(17, 0.9)])
    (x0, y0), (x1, y1) = uv.min(axis=0), uv.max(axis=0)
    return {"bbox": [x0, y0, x1 - x0, y1 - y0], "score": 0.9, "keypoints": kps.ravel().tolist(),
            "keypoints3d": pose.ravel().tolist()}  # fmt: skip


def test_limits_are_the_extent_plus_a_margin_and_ticks_stay_few():
    limits = fitted_limits(np.array([[0, 0, -900], [400, 200, 800]]), margin=0.1, min_half=150)
    np.testing.assert_allclose(limits, [[-40, 440], [-150 + 100, 150 + 100], [-1070, 970]])
    step = tick_step(limits)
    assert step == 500  # -1000, -500, 0, 500 on the 2 m axis; one or two on the narrow ones
    assert tick_step(np.array([[0, 12000], [0, 1], [0, 1]])) in (2500, 4000, 5000)


def test_panels_are_body_centred_at_one_equal_scale():
    poses = [standing_pose() + [2000, 0, 5000], standing_pose(1.0) * 0.8 + [-500, 0, 9000]]
    fig = plot_skeletons_3d(poses, labels=["#1 0.90", "#2 0.80"])
    try:
        axes = fig.axes
        assert [ax.get_title() for ax in axes] == ["#1 0.90", "#2 0.80"]
        for ax in axes:
            limits = np.array([ax.get_xlim(), ax.get_ylim(), ax.get_zlim()])
            assert np.all(limits[:, 0] < 0) and np.all(limits[:, 1] > 0)  # mid-hips inside
            assert abs(limits[0].mean()) < 200 and abs(limits[1].mean()) < 200  # centred
            ranges = limits[:, 1] - limits[:, 0]
            np.testing.assert_allclose(ax.get_box_aspect() / ax.get_box_aspect()[0],
                                       ranges / ranges[0], rtol=1e-6)  # fmt: skip
            assert 1550 < ranges[2] < 2200  # height fitted to the pose, not a fixed cube
        np.testing.assert_allclose(axes[0].get_zlim(), axes[1].get_zlim())  # one scale
        assert len([t for t in axes[0].get_zticks() if axes[0].get_zlim()[0] <= t]) <= 5
    finally:
        plt.close(fig)


def test_root_depth_is_estimated_from_the_2d_and_3d_sizes(tmp_path):
    size, focal = (640, 480), 538.0
    people = [seen_at(standing_pose(0.3 * i), x, z, focal, size)
              for i, (x, z) in enumerate([(-1500, 3000), (0, 5000), (1800, 8000)])]  # fmt: skip
    depths = [estimate_root_depth(p, focal) for p in people]
    np.testing.assert_allclose(depths, [3000, 5000, 8000], rtol=0.05)
    flat = dict(people[0], keypoints3d=[0.0] * 51)
    assert estimate_root_depth(flat, focal) is None  # nothing to compare the 2D size with
    path = plot_people_3d(tmp_path / "scene.png", people, size, "auto", focal, "auto depth")
    assert path.stat().st_size > 5000
    fixed = plot_people_3d(tmp_path / "fixed.png", people, size, 6000.0, focal)
    assert fixed.stat().st_size > 5000
    assert plot_people_3d(tmp_path / "none.png", [{"score": 1.0}], size) is None
