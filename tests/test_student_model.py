"""The student network: parameter count, losses on edge cases, inference outputs, weight loading."""

import pytest
import torch
from torchvision.models.detection import keypointrcnn_resnet50_fpn

from orpose.checkpoints.torchvision import load_torchvision_keypointrcnn
from orpose.student import StudentConfig, build_student
from orpose.student.model import count_parameters

TINY = StudentConfig(backbone="resnet18_fpn", head_convs=(32, 32), min_size=(128,), max_size=160,
                     box_batch_size_per_image=32, rpn_post_nms_top_n_train=100,
                     detections_per_img=5, lifter_config={"hidden": 32})  # fmt: skip


def _targets(n_people: int, confident: bool = True) -> dict:
    kps = torch.rand(n_people, 17, 3) * torch.tensor([60.0, 90.0, 0.0]) + torch.tensor([30, 20, 0])
    kps[..., 2] = 2.0 if confident else 0.0
    soft = kps.clone()
    soft[..., 2] = 0.6 if confident else 0.0
    return {"boxes": torch.tensor([[25.0, 15.0, 95.0, 115.0]] * n_people).reshape(-1, 4),
            "labels": torch.ones(n_people, dtype=torch.int64), "keypoints": kps,
            "keypoints_soft": soft, "keypoints3d_soft": torch.randn(n_people, 17, 3) * 200,
            "has3d": torch.ones(n_people, dtype=torch.bool)}  # fmt: skip


def test_resnet50_student_has_the_papers_parameter_count():
    # paper: 67.9M parameters (ResNet-50-FPN Keypoint R-CNN, 2 heatmap branches, 2 lifters),
    # detectron2's frozen batch norm (its affine terms are buffers, not parameters)
    model = build_student(StudentConfig(norm="frozen_bn"))
    assert count_parameters(model) / 1e6 == pytest.approx(67.9, abs=0.05)


def test_losses_are_finite_on_empty_images_and_unconfident_people():
    torch.manual_seed(0)
    model = build_student(TINY).train()
    images = [torch.rand(3, 120, 128) for _ in range(3)]
    targets = [_targets(0), _targets(1, confident=False), _targets(2)]
    losses = model(images, targets)
    assert set(losses) >= {"loss_kp2d_hard", "loss_kp2d_soft", "loss_kp3d_soft", "loss_kp3d_hard",
                           "loss_classifier", "loss_objectness"}  # fmt: skip
    total = sum(losses.values())
    assert torch.isfinite(total)
    total.backward()
    only_empty = model(images[:1], targets[:1])
    assert all(torch.isfinite(v) for v in only_empty.values())
    assert only_empty["loss_kp2d_hard"].item() == 0.0


def test_loss_weights_scale_each_term():
    torch.manual_seed(0)
    base = build_student(TINY).train()
    images, targets = [torch.rand(3, 120, 128)], [_targets(1)]
    torch.manual_seed(1)
    ref = base(images, targets)
    weights = {**TINY.loss_weights, "loss_kp2d_soft": 0.0}
    weighted = StudentConfig(**{**TINY.__dict__, "loss_weights": weights})
    base.config = weighted
    torch.manual_seed(1)
    out = base(images, targets)
    assert out["loss_kp2d_soft"].item() == 0.0
    assert out["loss_kp2d_hard"].item() == pytest.approx(ref["loss_kp2d_hard"].item())


def test_inference_gives_2d_from_the_mean_heatmap_and_3d_from_both_lifters():
    torch.manual_seed(0)
    model = build_student(TINY).eval()
    model.roi_heads.score_thresh = 0.0
    with torch.no_grad():
        (det,) = model([torch.rand(3, 120, 128)])
    n = len(det["boxes"])
    assert n > 0
    assert det["keypoints"].shape == (n, 17, 3) and det["keypoints3d"].shape == (n, 17, 3)
    ones = torch.ones(n, 17, dtype=torch.bool)
    soft3d = model.keypoint_head.lift_soft(det["keypoints_soft_branch"][..., :2], ones)
    hard3d = model.keypoint_head.lift_hard(det["keypoints_hard_branch"][..., :2], ones)
    torch.testing.assert_close(det["keypoints3d"], (soft3d + hard3d) / 2)
    # 3D is root-relative: mid-hips at the origin
    torch.testing.assert_close((det["keypoints3d"][:, 11] + det["keypoints3d"][:, 12]) / 2,
                               torch.zeros(n, 3), atol=1e-3, rtol=0)  # fmt: skip


def test_torchvision_keypoint_rcnn_weights_load_into_both_branches(tmp_path):
    torch.manual_seed(0)
    reference = keypointrcnn_resnet50_fpn(weights=None, weights_backbone=None)
    path = tmp_path / "keypointrcnn_resnet50_fpn_coco.pth"
    torch.save(reference.state_dict(), path)
    student = build_student(StudentConfig())
    missing = load_torchvision_keypointrcnn(student, path)
    assert all(
        k.startswith(("roi_heads.kp_head.lift_soft.", "roi_heads.kp_head.lift_hard."))
        for k in missing
    )
    ref_pred = reference.roi_heads.keypoint_predictor.kps_score_lowres.weight
    for branch in (student.roi_heads.kp_head.soft, student.roi_heads.kp_head.hard):
        torch.testing.assert_close(branch.kps_score_lowres.weight, ref_pred)
    torch.testing.assert_close(
        student.backbone.body.conv1.weight, reference.backbone.body.conv1.weight
    )
    wrong = build_student(TINY)
    with pytest.raises(ValueError, match=r"keypointrcnn_resnet50_fpn_coco\.pth: parameter"):
        load_torchvision_keypointrcnn(wrong, path)
