"""Details of the official (detectron2) ORPose students that orpose reproduces as options:
ROIAlignV2 pooling, detectron2's keypoint probability, the keypoint-RoI selection and the
official ORPose_all draws."""

import math
import random
from collections import OrderedDict

import pytest
import torch
import torch.nn.functional as F
from torchvision.ops import MultiScaleRoIAlign, roi_align

from orpose.data.lowres import LowResSchedule
from orpose.student import StudentConfig, build_student
from orpose.student.heads import TwoBranchKeypointHead, decode_heatmaps
from orpose.student.pooling import MultiScaleRoIAlignV2


def _features():
    g = torch.Generator().manual_seed(0)
    return OrderedDict(
        (name, torch.randn(1, 4, 64 // 2**i, 64 // 2**i, generator=g))
        for i, name in enumerate(["0", "1", "2", "3"])
    )  # strides 4, 8, 16, 32 of a 256 x 256 image


def test_roi_align_v2_is_torchvisions_pooler_with_aligned_pooling():
    features = _features()
    boxes = [torch.tensor([[10.3, 20.7, 60.2, 90.9], [0.0, 0.0, 250.0, 240.0], [5, 5, 30, 22.5]])]
    shapes = [(256, 256)]
    v2 = MultiScaleRoIAlignV2(list(features), 7, 0)
    v1 = MultiScaleRoIAlign(list(features), 7, 0)
    pooled, plain = v2(features, boxes, shapes), v1(features, boxes, shapes)
    levels = v1.map_levels(boxes)
    rois = torch.cat([torch.zeros(3, 1), boxes[0]], dim=1)
    for i, level in enumerate(levels.tolist()):
        feature, scale = features[str(level)], v1.scales[level]
        expected = roi_align(feature, rois[i : i + 1], 7, scale, 0, aligned=True)
        torch.testing.assert_close(pooled[i : i + 1], expected)
        unaligned = roi_align(feature, rois[i : i + 1], 7, scale, 0, aligned=False)
        torch.testing.assert_close(plain[i : i + 1], unaligned)
    assert not torch.allclose(pooled, plain)  # the half-pixel shift matters


def test_student_pools_as_configured():
    config = StudentConfig(backbone="resnet18_fpn", head_convs=(8,), box_head_size=16)
    default = build_student(config).roi_heads
    assert type(default.box_roi_pool) is MultiScaleRoIAlign and default.kp_pool.sampling_ratio == 2
    config.roi_align_aligned, config.roi_sampling_ratio = True, 0
    aligned = build_student(config).roi_heads
    for pool in (aligned.box_roi_pool, aligned.kp_pool):
        assert isinstance(pool, MultiScaleRoIAlignV2) and pool.sampling_ratio == 0


def _detectron2_scores(maps: torch.Tensor, rois: torch.Tensor) -> torch.Tensor:
    """detectron2's heatmaps_to_keypoints score (its 4th channel), written out as a loop."""
    widths = (rois[:, 2] - rois[:, 0]).clamp(min=1).ceil()
    heights = (rois[:, 3] - rois[:, 1]).clamp(min=1).ceil()
    out = torch.zeros(maps.shape[:2])
    for i in range(len(rois)):
        size = (int(heights[i]), int(widths[i]))
        roi_map = F.interpolate(maps[[i]], size=size, mode="bicubic", align_corners=False)[0]
        k = maps.shape[1]
        peak = roi_map.view(k, -1).max(1)[0].view(k, 1, 1)
        full = (roi_map - peak).exp()
        pool = (maps[i] - peak).exp().sum((1, 2), keepdim=True)
        out[i] = (full / pool).view(k, -1).max(1)[0]
    return out


def test_keypoint_probability_is_detectron2s():
    head = TwoBranchKeypointHead(8, (8,), keypoint_score="probability")
    # by hand: a 56 x 56 box over a 56 x 56 map (bicubic resizing is the identity there);
    # keypoint 0: a single cell at logit 3, the rest 0; keypoint 1: a flat map
    maps = torch.zeros(1, 17, 56, 56)
    maps[0, 0, 5, 7] = 3.0
    box = torch.tensor([[10.0, 20.0, 66.0, 76.0]])
    keypoints, scores = head.decode(maps, box)
    assert scores[0, 0].item() == pytest.approx(1 / (1 + 3135 * math.exp(-3.0)), rel=1e-5)
    assert scores[0, 1].item() == pytest.approx(1 / 3136, rel=1e-5)
    assert keypoints[0, 0, :2].tolist() == pytest.approx([10 + 7.5, 20 + 5.5])
    # random maps over boxes of any size: detectron2's loop
    g = torch.Generator().manual_seed(1)
    maps = torch.randn(4, 17, 56, 56, generator=g) * 3
    boxes = torch.tensor([[0, 0, 30.5, 80], [10, 10, 200, 120], [5, 7, 6, 8], [0, 0, 56, 56]])
    _, scores = head.decode(maps, boxes)
    torch.testing.assert_close(scores, _detectron2_scores(maps, boxes), rtol=1e-4, atol=1e-7)
    # "sigmoid" (orpose's default): the sigmoid of the resized map's peak logit
    head.keypoint_score = "sigmoid"
    _, sig = head.decode(maps, boxes)
    torch.testing.assert_close(sig, decode_heatmaps(maps, boxes)[1].sigmoid())


def test_keypoint_rois_need_a_visible_hard_keypoint_inside():
    config = StudentConfig(backbone="resnet18_fpn", head_convs=(8,), box_head_size=16)
    heads = build_student(config).roi_heads
    proposals = [torch.tensor([[0, 0, 50, 50], [60, 60, 100, 100], [0, 0, 40, 40.0], [0, 0, 9, 9]])]
    labels = [torch.tensor([1, 1, 1, 0])]
    matched = [torch.tensor([0, 0, 1, 0])]
    keypoints = torch.zeros(2, 17, 3)
    keypoints[0, 5] = torch.tensor([50.0, 20.0, 2.0])  # on proposal 0's edge, outside 1
    keypoints[1, 6] = torch.tensor([10.0, 10.0, 0.0])  # person 1: nothing visible
    targets = [{"keypoints": keypoints}]
    rois, idx = heads._positive_rois(proposals, labels, matched, targets)
    assert len(rois[0]) == 3 and idx[0].tolist() == [0, 0, 1]  # orpose's default: all positives
    heads.keypoint_rois_with_visible = True
    rois, idx = heads._positive_rois(proposals, labels, matched, targets)
    assert rois[0].tolist() == [[0, 0, 50, 50]] and idx[0].tolist() == [0]


def test_official_orpose_all_draws():
    rng = random.Random(0)
    official = LowResSchedule.from_spec("all_official")
    draws = {official.sample(rng) for _ in range(4000)}
    assert draws == {1.0, *map(float, range(2, 12))}  # 2..7 and 8..11: 12 never
    paper = {LowResSchedule.from_spec("all").sample(rng) for _ in range(4000)}
    assert 12.0 in paper
