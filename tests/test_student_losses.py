"""The student's losses on tiny hand-built cases, checked against values computed independently."""

import math

import numpy as np
import pytest
import torch

from orpose.student.losses import hard_heatmap_loss, lifting_loss, soft_heatmap_loss


def _log_softmax(x: np.ndarray) -> np.ndarray:
    m = x.max()
    return x - (m + math.log(np.exp(x - m).sum()))


def _case():
    """One RoI (0, 0)-(4, 4), 2 keypoints, 4x4 heatmaps with known logits."""
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(1, 2, 4, 4))
    roi = torch.tensor([[0.0, 0.0, 4.0, 4.0]])
    # keypoint 0 at pixel (2.5, 1.5) -> heatmap cell x=2, y=1 -> index 1 * 4 + 2 = 6
    # keypoint 1 at (0.2, 3.9) -> cell x=0, y=3 -> index 12
    return logits, roi


def test_hard_loss_is_the_mean_spatial_cross_entropy_of_visible_keypoints():
    logits, roi = _case()
    kps = torch.tensor([[[2.5, 1.5, 2.0], [0.2, 3.9, 2.0]]])
    ce0 = -_log_softmax(logits[0, 0].ravel())[6]
    expected = (ce0 - _log_softmax(logits[0, 1].ravel())[12]) / 2
    got = hard_heatmap_loss(torch.tensor(logits), [kps], [roi])
    assert got.item() == pytest.approx(expected, rel=1e-6)
    kps[0, 1, 2] = 0  # second keypoint invisible: only the first counts
    got = hard_heatmap_loss(torch.tensor(logits), [kps], [roi])
    assert got.item() == pytest.approx(-_log_softmax(logits[0, 0].ravel())[6], rel=1e-6)


def test_soft_loss_scales_logits_by_confidence():
    logits, roi = _case()
    kps = torch.tensor([[[2.5, 1.5, 0.8], [0.2, 3.9, 0.3]]])
    expected = -(_log_softmax(0.8 * logits[0, 0].ravel())[6]
                 + _log_softmax(0.3 * logits[0, 1].ravel())[12]) / 2  # fmt: skip
    got = soft_heatmap_loss(torch.tensor(logits), [kps], [roi])
    assert got.item() == pytest.approx(expected, rel=1e-6)
    outside = torch.tensor([[[9.0, 9.0, 0.9], [0.2, 3.9, 0.0]]])  # outside the RoI / conf 0
    assert soft_heatmap_loss(torch.tensor(logits), [outside], [roi]).item() == 0.0


def test_losses_are_finite_and_differentiable_without_people():
    logits = torch.zeros(0, 17, 56, 56, requires_grad=True)
    nobody, no_rois = [torch.zeros(0, 17, 3)], [torch.zeros(0, 4)]
    for loss_fn in (hard_heatmap_loss, soft_heatmap_loss):
        loss = loss_fn(logits, nobody, no_rois)
        assert loss.item() == 0.0
        loss.backward()
    no_confident = torch.zeros(1, 17, 3)
    one = torch.randn(1, 17, 56, 56, requires_grad=True)
    box = torch.tensor([[0.0, 0.0, 50.0, 50.0]])
    assert hard_heatmap_loss(one, [no_confident], [box]).item() == 0.0


def test_lifting_loss_is_smooth_l1_in_decimetres():
    pred = torch.zeros(1, 17, 3)
    target = torch.zeros(1, 17, 3)
    target[0, 0, 0] = 50.0  # 0.5 unit: quadratic zone, 0.5 * 0.5^2 = 0.125
    target[0, 1, 1] = 300.0  # 3 units: linear zone, 3 - 0.5 = 2.5
    expected = (0.125 + 2.5) / 51
    assert lifting_loss(pred, target).item() == pytest.approx(expected, rel=1e-6)
