"""Official ORPose (detectron2) checkpoints: key mapping, value conversions, a full round trip."""

import pytest
import torch

from orpose.checkpoints import read_checkpoint, write_checkpoint
from orpose.checkpoints.detectron2 import (
    STEM_KEY,
    detectron2_name,
    load_detectron2_student,
    stem_from_detectron2,
    to_detectron2,
)
from orpose.errors import ModelError
from orpose.predictor import limit_proposals, load_student, save_student
from orpose.student import StudentConfig, build_student
from orpose.student.backbones import use_stride_in_1x1

# resnet50 keeps detectron2's bottleneck names (conv3, strides); a narrow head keeps it light
SETTINGS = {
    "min_size": (96,),
    "max_size": 128,
    "detections_per_img": 3,
    "lifter_config": {"hidden": 16},
}
CONFIG = StudentConfig(
    backbone="resnet50_fpn", norm="frozen_bn", head_convs=(64, 64), box_head_size=64, **SETTINGS
)


def _official_lifter(prefix: str) -> dict[str, torch.Tensor]:
    """The shapes of ORPose-Color's Martinez lifter (16 H36M joints in, 16 x 3 out)."""
    state = {
        f"{prefix}.w1.weight": torch.randn(1024, 32),
        f"{prefix}.w1.bias": torch.zeros(1024),
        f"{prefix}.w2.weight": torch.randn(48, 1024),
        f"{prefix}.w2.bias": torch.zeros(48),
    }
    for name in ("weight", "bias", "running_mean", "running_var"):
        state[f"{prefix}.batch_norm1.{name}"] = torch.ones(1024)
    return state


@pytest.fixture(scope="module")
def student_and_checkpoint(tmp_path_factory):
    """An orpose student, and the same weights written as an official detectron2 checkpoint."""
    torch.manual_seed(0)
    student = limit_proposals(build_student(CONFIG).eval(), 50)
    d2 = to_detectron2(student.state_dict(), num_classes=2, person_class=0)
    d2.update(_official_lifter("roi_heads.keypoint_head.nw2Dto3D_hard"))
    d2.update(_official_lifter("roi_heads.keypoint_head.nw2Dto3D_soft"))
    d2["pixel_mean"] = torch.tensor([103.530, 116.280, 123.675]).view(3, 1, 1)
    d2["pixel_std"] = torch.tensor([1.0, 1.0, 1.0]).view(3, 1, 1)
    path = tmp_path_factory.mktemp("d2") / "model_final.pth"
    torch.save({"model": d2, "iteration": 10}, path)
    return student, d2, path


def test_mapping_names_follow_detectron2():
    assert detectron2_name("backbone.body.layer1.0.conv1.weight") == (
        "backbone.bottom_up.res2.0.conv1.weight"
    )
    assert detectron2_name("backbone.body.layer3.5.bn2.running_var") == (
        "backbone.bottom_up.res4.5.conv2.norm.running_var"
    )
    assert detectron2_name("backbone.body.layer2.0.downsample.1.bias") == (
        "backbone.bottom_up.res3.0.shortcut.norm.bias"
    )
    assert detectron2_name("backbone.fpn.inner_blocks.3.0.weight") == "backbone.fpn_lateral5.weight"
    assert detectron2_name("backbone.fpn.layer_blocks.0.0.bias") == "backbone.fpn_output2.bias"
    assert detectron2_name("rpn.head.cls_logits.weight") == (
        "proposal_generator.rpn_head.objectness_logits.weight"
    )
    assert detectron2_name("roi_heads.box_head.fc7.bias") == "roi_heads.box_head.fc2.bias"
    assert detectron2_name("roi_heads.kp_head.convs.14.weight") == (
        "roi_heads.keypoint_head.conv_fcn8.weight"
    )
    assert detectron2_name("roi_heads.kp_head.soft.kps_score_lowres.weight") == (
        "roi_heads.keypoint_head.score_lowres_soft.weight"
    )
    assert detectron2_name("roi_heads.kp_head.lift_soft.head.weight") is None


def test_stem_conversion_is_exact_on_pixels():
    """detectron2's stem on BGR 0..255 - mean == the converted stem on ImageNet-normalised RGB."""
    torch.manual_seed(1)
    weight = torch.randn(8, 3, 7, 7, dtype=torch.float64)
    rgb = torch.rand(1, 3, 16, 16, dtype=torch.float64)
    mean_bgr = torch.tensor([103.530, 116.280, 123.675], dtype=torch.float64).view(1, 3, 1, 1)
    d2_input = rgb.flip(1) * 255 - mean_bgr
    mean = torch.tensor([0.485, 0.456, 0.406], dtype=torch.float64).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225], dtype=torch.float64).view(1, 3, 1, 1)
    tv_input = (rgb - mean) / std
    converted = stem_from_detectron2(weight, torch.ones(3, dtype=torch.float64))
    torch.testing.assert_close(
        torch.nn.functional.conv2d(tv_input, converted, padding=3),
        torch.nn.functional.conv2d(d2_input, weight, padding=3),
    )


def test_official_checkpoint_round_trip(student_and_checkpoint, tmp_path):
    student, d2, path = student_and_checkpoint
    assert d2["roi_heads.box_predictor.cls_score.weight"].shape[0] == 3  # 2 classes + background
    assert "backbone.bottom_up.stem.conv1.norm.running_mean" in d2
    # the orpose student pools as torchvision does: compare without detectron2's ROIAlignV2
    loaded, report = load_detectron2_student(
        path, stride_in_1x1=False, roi_align_aligned=False, roi_sampling_ratio=2, **SETTINGS
    )
    limit_proposals(loaded, 50)
    # the fixture's official lifters are incomplete (no residual stages): no lifters, no 3D
    assert report["unmapped"] and all("nw2Dto3D" in k for k in report["unmapped"])
    assert len(report["unmapped"]) == 2 * 8
    assert report["lifters"] == "none" and not loaded.keypoint_head.has_lifters
    assert report["missing"] == [] and len(report["warnings"]) == 1
    own, new = student.state_dict(), loaded.state_dict()
    background_box = "roi_heads.box_predictor.bbox_pred"
    for key, value in own.items():
        if key.startswith(("roi_heads.kp_head.lift_", background_box)):
            continue
        torch.testing.assert_close(new[key], value, msg=key)
    # the background box regressor does not exist in detectron2 (zeros); the person's is kept
    for suffix in ("weight", "bias"):
        torch.testing.assert_close(
            new[f"{background_box}.{suffix}"][4:], own[f"{background_box}.{suffix}"][4:]
        )
        assert not new[f"{background_box}.{suffix}"][:4].any()
    # same weights: the same detections (2D; the loaded student has no 3D)
    image = torch.rand(3, 96, 128, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        (a,), (b,) = student([image]), loaded([image])
    assert "keypoints3d" in a and "keypoints3d" not in b
    torch.testing.assert_close(a["boxes"], b["boxes"], atol=0.01, rtol=0)  # px
    torch.testing.assert_close(a["keypoints"], b["keypoints"], atol=0.01, rtol=0)
    # detectron2's keypoint probability: 1 / sum(exp(heatmap - resized peak)), not a sigmoid
    assert loaded.config.keypoint_score == "probability"
    assert not torch.allclose(a["keypoints_scores"], b["keypoints_scores"])
    assert STEM_KEY in own


def test_stride_in_1x1_is_applied_and_survives_saving(student_and_checkpoint, tmp_path):
    _, _, path = student_and_checkpoint
    loaded, _ = load_detectron2_student(path, **SETTINGS)
    assert loaded.config.head_convs == (64, 64)  # read from the checkpoint's shapes
    assert loaded.config.box_head_size == 64
    limit_proposals(loaded, 50)
    assert loaded.config.stride_in_1x1 is True  # a config field, saved with the checkpoint
    block = loaded.backbone.body.layer2[0]
    assert block.conv1.stride == (2, 2) and block.conv2.stride == (1, 1)
    with torch.no_grad():
        (det,) = loaded([torch.rand(3, 96, 128)])
    assert det["keypoints"].shape[1:] == (17, 3)
    # load_student reads the official file directly, and a converted checkpoint keeps the patch
    assert load_student(path).backbone.body.layer3[0].conv1.stride == (2, 2)
    converted = load_student(save_student(loaded, tmp_path / "converted.pt"))
    assert converted.backbone.body.layer4[0].conv1.stride == (2, 2)
    assert converted.backbone.body.layer4[0].conv2.stride == (1, 1)
    assert use_stride_in_1x1(build_student(StudentConfig(backbone="resnet18_fpn"))) == 0


def test_checkpoints_with_the_legacy_patches_field_still_load(student_and_checkpoint, tmp_path):
    """Converted checkpoints written before ``stride_in_1x1`` was a config field recorded it as
    ``patches``; they load as the field."""
    _, _, path = student_and_checkpoint
    loaded, _ = load_detectron2_student(path, **SETTINGS)
    state = read_checkpoint(save_student(loaded, tmp_path / "new.pt"))
    assert state["student_config"]["stride_in_1x1"] is True and "patches" not in state
    del state["student_config"]["stride_in_1x1"]
    state["patches"] = {"stride_in_1x1": True}
    old = load_student(write_checkpoint(state, tmp_path / "old.pt"))
    assert old.config.stride_in_1x1 is True
    assert old.backbone.body.layer2[0].conv1.stride == (2, 2)
    state["patches"] = {"bogus": True}
    with pytest.raises(ModelError, match=r"old2\.pt: field 'patches': unknown model patch"):
        load_student(write_checkpoint(state, tmp_path / "old2.pt"))


def test_a_wrong_checkpoint_is_named(tmp_path):
    path = tmp_path / "other.pth"
    torch.save({"model": {"conv.weight": torch.zeros(1)}}, path)
    with pytest.raises(ValueError, match=r"other\.pth: not a detectron2 checkpoint"):
        load_detectron2_student(path)
