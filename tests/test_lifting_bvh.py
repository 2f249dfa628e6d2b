"""BVH reading, forward kinematics and the CMU caveats (T-pose, zero frames, thorax, units)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from orpose import paths
from orpose.data.coco import DatasetError
from orpose.lifting.bvh import axis_rotation, forward_kinematics, read_bvh
from orpose.lifting.mocap import (
    CMU_UNIT_MM,
    H36M_TORSO_TO_THIGH,
    HIP_WIDENING,
    fix_missing_thorax,
    load_cmu_bvh,
    load_cmu_bvh_with_targets,
    load_mocap_folder,
    raise_hips,
    valid_frames,
)
from orpose.skeleton import KEYPOINT_INDEX, root_position

TINY_BVH = """HIERARCHY
ROOT Hips
{
  OFFSET 0 0 0
  CHANNELS 6 Xposition Yposition Zposition Zrotation Yrotation Xrotation
  JOINT Knee
  {
    OFFSET 0 -2 0
    CHANNELS 3 Zrotation Yrotation Xrotation
    End Site
    {
      OFFSET 0 -1 0
    }
  }
}
MOTION
Frames: 5
Frame Time: .0083333
0 0 0 0 0 0 0 0 0
0 0 0 0 0 0 0 0 0
0 0 0 0 0 0 0 0 0
1 2 3 90 0 0 0 0 0
1 2 3 0 0 0 0 0 0
"""


def _write(tmp_path: Path, text: str, name: str = "01_01.bvh") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def _cmu_file(name: str) -> Path:
    folder = paths.shared_data("mocap/cmu_bvh", required=False)
    if folder is None or not (folder / name).is_file():
        pytest.skip(f"shared mocap file {name} not found (set ORPOSE_SHARED to the shared folder)")
    return folder / name


def test_axis_rotations_are_right_handed():
    # A quarter turn about Z takes +X to +Y, about X takes +Y to +Z, about Y takes +Z to +X.
    for axis, src, dst in ((2, 0, 1), (0, 1, 2), (1, 2, 0)):
        v = np.zeros(3)
        v[src] = 1.0
        np.testing.assert_allclose(
            axis_rotation(axis, np.array(90.0)) @ v, np.eye(3)[dst], atol=1e-12
        )


def test_forward_kinematics_of_a_known_rotation(tmp_path):
    motion = read_bvh(_write(tmp_path, TINY_BVH))
    assert motion.skeleton.names == ["Hips", "Knee"]
    assert motion.motion.shape == (5, 9)
    pos, rot = forward_kinematics(motion, np.array([3, 4]))
    # Frame 3: root at (1, 2, 3) turned 90 degrees about Z, so the child offset (0, -2, 0)
    # becomes (2, 0, 0).
    np.testing.assert_allclose(pos[0, 0], [1, 2, 3])
    np.testing.assert_allclose(pos[0, 1], [3, 2, 3], atol=1e-12)
    np.testing.assert_allclose(pos[1, 1], [1, 0, 3], atol=1e-12)
    np.testing.assert_allclose(rot[1, 1], np.eye(3), atol=1e-12)


def test_tpose_and_zero_frames_are_dropped(tmp_path):
    motion = read_bvh(_write(tmp_path, TINY_BVH))
    # Frame 0 is the T-pose, frames 1-2 are all zero: only 3 and 4 remain.
    assert valid_frames(motion).tolist() == [3, 4]
    assert valid_frames(motion, step=2).tolist() == [3]


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("HIERARCHY\nROOT Hips\n{\n OFFSET 0 0\n}\nMOTION\nFrames: 0\nFrame Time: 1\n", "number"),
        (TINY_BVH.replace("Frames: 5", "Frames: 6"), "expected 6 frames"),
        (TINY_BVH.replace("MOTION", "MOTON"), "no MOTION"),
        (
            TINY_BVH.replace("Zrotation Yrotation Xrotation\n    End", "Zrot Y X\n    End"),
            "channel",
        ),
    ],
)
def test_malformed_bvh_names_the_file(tmp_path, text, needle):
    path = _write(tmp_path, text, "broken.bvh")
    with pytest.raises(DatasetError, match=needle) as info:
        read_bvh(path)
    assert "broken.bvh" in str(info.value)


def test_missing_bvh_is_a_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nope\.bvh"):
        read_bvh(tmp_path / "nope.bvh")


@pytest.mark.shared
def test_cmu_femur_length_matches_the_offset():
    path = _cmu_file("09/09_01.bvh")
    motion = read_bvh(path)
    skel = motion.skeleton
    femur_mm = np.linalg.norm(skel.offsets[skel.index("LeftLeg")]) * 0.056444 * 1000.0
    joints = load_cmu_bvh(path, fps=120.0, hip_widening=1.0)  # hips = femur heads
    hip, knee = joints[:, KEYPOINT_INDEX["left_hip"]], joints[:, KEYPOINT_INDEX["left_knee"]]
    np.testing.assert_allclose(np.linalg.norm(knee - hip, axis=-1), femur_mm, rtol=1e-6)
    assert 350.0 < femur_mm < 500.0  # a human thigh, so the unit conversion is right
    assert len(joints) == motion.motion.shape[0] - 1  # the T-pose frame is gone


@pytest.mark.shared
def test_cmu_hips_are_spread_to_coco_width_about_a_fixed_root():
    path = _cmu_file("09/09_01.bvh")
    femur_heads = load_cmu_bvh(path, hip_widening=1.0)
    coco = load_cmu_bvh(path)
    left, right = KEYPOINT_INDEX["left_hip"], KEYPOINT_INDEX["right_hip"]
    np.testing.assert_allclose(root_position(coco), root_position(femur_heads), atol=1e-9)
    width = np.linalg.norm(coco[:, left] - coco[:, right], axis=-1)
    np.testing.assert_allclose(
        width, HIP_WIDENING * np.linalg.norm(femur_heads[:, left] - femur_heads[:, right], axis=-1)
    )
    others = [k for k in range(17) if k not in (left, right)]
    np.testing.assert_array_equal(coco[:, others], femur_heads[:, others])


@pytest.mark.shared
def test_cmu_thorax_fix_raises_the_shoulders_by_spine1():
    path = _cmu_file("09/09_01.bvh")
    raw = read_bvh(path)
    fixed = read_bvh(path)
    fix_missing_thorax(fixed)
    frames = valid_frames(raw)
    j = raw.skeleton.index("LeftArm")
    before = forward_kinematics(raw, frames)[0][:, j]
    after = forward_kinematics(fixed, frames)[0][:, j]
    spine1 = np.linalg.norm(raw.skeleton.offsets[raw.skeleton.index("Spine1")])
    np.testing.assert_allclose(np.linalg.norm(after - before, axis=-1), spine1, rtol=1e-9)
    assert 100.0 < spine1 * CMU_UNIT_MM < 140.0  # "about 12 cm"


@pytest.mark.shared
def test_cmu_leading_zero_frames_are_skipped():
    path = _cmu_file("09/09_10.bvh")
    motion = read_bvh(path)
    zero = ~np.any(motion.motion != 0.0, axis=1)
    assert zero[1:5].all()  # the caveat of the shared README
    frames = valid_frames(motion)
    assert frames[0] == 5 and not zero[frames].any()
    joints = load_cmu_bvh(path, fps=120.0)
    assert np.all(joints[:, KEYPOINT_INDEX["nose"], 1] > joints[:, KEYPOINT_INDEX["left_hip"], 1])


@pytest.mark.shared
def test_mocap_folder_cache_round_trip(tmp_path):
    src = _cmu_file("09/09_01.bvh")
    folder = tmp_path / "bvh"
    folder.mkdir()
    for name in ("09_01.bvh", "10_01.bvh"):
        (folder / name).write_bytes(src.read_bytes())
    cache = tmp_path / "cache.npz"
    first = load_mocap_folder(folder, fps=30.0, cache=cache)
    assert cache.is_file()
    second = load_mocap_folder(folder, fps=30.0, cache=cache)
    np.testing.assert_array_equal(first.joints, second.joints)
    np.testing.assert_array_equal(first.targets, second.targets)
    assert sorted(set(first.subjects.tolist())) == [9, 10]
    assert len(first.by_subjects((10,))) == len(first) // 2


def _standing(torso: float, thigh: float, n: int = 4) -> np.ndarray:
    """Upright people (Y up): hips at 0, shoulders ``torso`` above, knees ``thigh`` below."""
    k = KEYPOINT_INDEX
    joints = np.zeros((n, 17, 3))
    for side, x in (("left", 150.0), ("right", -150.0)):
        joints[:, k[f"{side}_shoulder"]] = (x * 1.2, torso, 0.0)
        joints[:, k[f"{side}_hip"]] = (x * 0.6, 0.0, 0.0)
        joints[:, k[f"{side}_knee"]] = (x * 0.6, -thigh, 0.0)
    return joints + np.arange(n)[:, None, None] * 10.0  # people at different places


def test_raised_hips_give_the_torso_to_thigh_ratio_and_move_nothing_else():
    joints = _standing(torso=500.0, thigh=400.0)
    up = np.tile([0.0, 1.0, 0.0], (len(joints), 1))
    raised = raise_hips(joints, up, 0.97)
    # by hand: (500 - d) / (400 + d) = 0.97, so d = (500 - 388) / 1.97
    d = (500.0 - 0.97 * 400.0) / 1.97
    hips = [KEYPOINT_INDEX["left_hip"], KEYPOINT_INDEX["right_hip"]]
    np.testing.assert_allclose(
        raised[:, hips] - joints[:, hips], np.broadcast_to([0, d, 0], (4, 2, 3))
    )
    others = [j for j in range(17) if j not in hips]
    np.testing.assert_array_equal(raised[:, others], joints[:, others])
    shoulders = raised[:, [KEYPOINT_INDEX["left_shoulder"], KEYPOINT_INDEX["right_shoulder"]]]
    torso = shoulders.mean(1)[:, 1] - raised[:, hips].mean(1)[:, 1]
    thigh = raised[:, hips, 1].mean(1) - raised[:, [KEYPOINT_INDEX["left_knee"]], 1][:, 0]
    np.testing.assert_allclose(torso / thigh, 0.97)
    # along the pelvis's up, not the world's: a pelvis tipped forward moves the hips forward too
    tipped = np.tile([0.0, 0.6, 0.8], (len(joints), 1))
    np.testing.assert_allclose(
        raise_hips(joints, tipped, 0.97)[:, hips] - joints[:, hips],
        np.broadcast_to([0, 0.6 * d, 0.8 * d], (4, 2, 3)),
    )
    np.testing.assert_array_equal(raise_hips(joints, up, 0.0), joints)


@pytest.mark.shared
def test_cmu_targets_get_human36m_hips_and_the_2d_keeps_cmu_s():
    path = _cmu_file("09/09_01.bvh")
    joints, targets = load_cmu_bvh_with_targets(path)
    np.testing.assert_array_equal(joints, load_cmu_bvh(path))
    k = KEYPOINT_INDEX
    hips, shoulders = [k["left_hip"], k["right_hip"]], [k["left_shoulder"], k["right_shoulder"]]
    knees = [k["left_knee"], k["right_knee"]]

    def ratio(p: np.ndarray) -> float:
        torso = np.linalg.norm(p[:, shoulders].mean(1) - p[:, hips].mean(1), axis=-1)
        thigh = np.linalg.norm(p[:, hips] - p[:, knees], axis=-1)
        return float(np.median(torso) / np.median(thigh))

    assert ratio(joints) > 1.15  # CMU's femur heads: a long torso
    assert abs(ratio(targets) - H36M_TORSO_TO_THIGH) < 0.03
    lift = targets[:, hips] - joints[:, hips]
    assert np.all(lift[..., 1] > 0.8 * np.linalg.norm(lift, axis=-1))  # up, on a walking subject
    assert 40.0 < np.median(np.linalg.norm(lift, axis=-1)) < 80.0  # mm
