"""The skeleton tables against independent references (pycocotools, MVOR's and ORPose's code)."""

import numpy as np
from pycocotools.cocoeval import Params

from orpose import skeleton as sk


def test_oks_sigmas_match_pycocotools():
    np.testing.assert_allclose(sk.OKS_SIGMAS, Params(iouType="keypoints").kpt_oks_sigmas)


def test_flip_index_swaps_left_and_right_names():
    for i, j in enumerate(sk.FLIP_INDEX):
        a, b = sk.COCO_KEYPOINTS[i], sk.COCO_KEYPOINTS[j]
        if a.startswith("left_"):
            assert b == "right_" + a[5:]
        elif a.startswith("right_"):
            assert b == "left_" + a[6:]
        else:
            assert a == b == "nose"
    assert sorted(sk.FLIP_INDEX) == list(range(17))


def test_flip_keypoints_mirrors_and_is_an_involution():
    rng = np.random.default_rng(0)
    kps = np.concatenate([rng.uniform(0, 100, (17, 2)), np.full((17, 1), 2.0)], axis=1)
    flipped = sk.flip_keypoints(kps, 100)
    # the new left shoulder is the old right shoulder, mirrored
    assert flipped[5, 0] == 99 - kps[6, 0] and flipped[5, 1] == kps[6, 1]  # pixel indices
    np.testing.assert_allclose(sk.flip_keypoints(flipped, 100), kps)


def test_upper_body_joints_and_root():
    names = {sk.COCO_KEYPOINTS[j] for j in sk.UPPER_BODY_JOINTS}
    assert names == {f"{s}_{p}" for s in ("left", "right")
                     for p in ("shoulder", "elbow", "wrist", "hip")}  # fmt: skip
    pose = np.zeros((17, 3))
    pose[11], pose[12] = [100, 0, 2000], [300, 0, 2000]
    np.testing.assert_allclose(sk.root_position(pose), [200, 0, 2000])
    np.testing.assert_allclose(sk.root_relative(pose)[11], [-100, 0, 0])


def test_coco_to_mvor_follows_mvor_rules():
    kps = np.zeros((17, 3))
    kps[1], kps[2] = [10, 10, 2], [20, 12, 2]  # eyes
    kps[0] = [15, 20, 2]  # nose
    kps[5], kps[6] = [0, 50, 2], [40, 50, 1]  # shoulders
    kps[9] = [5, 90, 2]  # left wrist
    mvor = sk.coco_to_mvor(kps)
    np.testing.assert_allclose(mvor[0], [15, 11, 2])  # head = mid-eyes
    np.testing.assert_allclose(mvor[1], [20, 50, 1.5])  # neck = mid-shoulders
    np.testing.assert_allclose(mvor[8], [5, 90, 2])  # left wrist
    assert mvor[9, 2] == 0  # right wrist absent
    kps[1, 2] = 0  # one eye missing: head falls back to the nose (no ears)
    np.testing.assert_allclose(sk.coco_to_mvor(kps)[0], [15, 20, 2])


def test_mvor_round_trip_keeps_the_eight_shared_joints():
    rng = np.random.default_rng(1)
    mvor = np.concatenate([rng.uniform(0, 500, (10, 2)), np.full((10, 1), 2.0)], axis=1)
    back = sk.coco_to_mvor(sk.mvor_to_coco(mvor))
    np.testing.assert_allclose(back[2:], mvor[2:])
    assert len(sk.MVOR_TO_COCO) == 8


def test_h36m_mapping_agrees_with_the_official_orpose_index():
    # ORPose-Color utils_eval.py maps H36M joints to MVOR's 10 with this index list.
    official = [9, 8, 11, 14, 4, 1, 12, 15, 13, 16]
    for mvor_index, h36m_index in enumerate(official[2:], start=2):
        assert sk.H36M_KEYPOINTS[h36m_index] == sk.MVOR_KEYPOINTS[mvor_index]
    kps = np.zeros((17, 3))
    kps[:, :2] = np.arange(34).reshape(17, 2)
    kps[:, 2] = 1.0
    kps[12, 2] = 0.3
    h36m = sk.coco_to_h36m(kps)
    np.testing.assert_allclose(h36m[0, :2], (kps[11, :2] + kps[12, :2]) / 2)
    assert h36m[0, 2] == 0.3  # a midpoint is as reliable as its weaker end
    np.testing.assert_allclose(h36m[8, :2], (kps[5, :2] + kps[6, :2]) / 2)
    np.testing.assert_allclose(h36m[16], kps[10])
    pts = np.random.default_rng(2).normal(size=(17, 3))
    np.testing.assert_allclose(sk.coco_to_h36m(pts, score_channel=False)[7],
                               ((pts[11] + pts[12]) / 2 + (pts[5] + pts[6]) / 2) / 2)  # fmt: skip
