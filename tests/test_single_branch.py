"""The paper's Table 3 single branch (issue 28): one heatmap layer and one lifter, for both
student families, trained by whichever label sets the loss weights keep; two branches unchanged."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from torchvision.models.detection.keypoint_rcnn import KeypointRCNNPredictor

from orpose.checkpoints import load_student, save_student
from orpose.checkpoints.student import student_state
from orpose.errors import ModelError
from orpose.lifting import Lifter
from orpose.student import StudentConfig, build_student
from orpose.student.model import count_parameters

TINY = StudentConfig(backbone="resnet18_fpn", head_convs=(32, 32), min_size=(128,), max_size=160,
                     box_batch_size_per_image=32, rpn_post_nms_top_n_train=100,
                     detections_per_img=5, lifter_config={"hidden": 32})  # fmt: skip
HARD_ONLY = {"loss_kp2d_soft": 0.0, "loss_kp3d_soft": 0.0}


def _instances(module: torch.nn.Module, kind: type) -> int:
    """Modules of ``kind`` under every name they have (a module shared by two names counts
    twice, as it would in the state dict)."""
    return sum(isinstance(m, kind) for _, m in module.named_modules(remove_duplicate=False))


def _numel(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def _grads(loss: torch.Tensor, module: torch.nn.Module) -> list[torch.Tensor]:
    params = list(module.parameters())
    grads = torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True)
    return [torch.zeros_like(p) if g is None else g for p, g in zip(params, grads, strict=True)]


def _assert_hard_3d_loss_alone_trains_the_lifter(losses, weights, lifter, layer) -> None:
    """The weighted total's lifter gradient is the hard 3D loss's, and it is not zero; the hard
    2D loss reaches the one heatmap layer."""
    total = sum(v * weights.get(k, 1.0) for k, v in losses.items())
    from_total = _grads(total, lifter)
    from_hard = _grads(losses["loss_kp3d_hard"], lifter)
    assert sum(g.abs().sum() for g in from_hard) > 0
    for a, b in zip(from_total, from_hard, strict=True):
        torch.testing.assert_close(a, b)
    assert sum(g.abs().sum() for g in _grads(losses["loss_kp2d_hard"], layer)) > 0


# -- Keypoint R-CNN (the paper's student) ---------------------------------------------------------


def _kp_targets(n_people: int) -> dict:
    g = torch.Generator().manual_seed(n_people)
    kps = torch.rand(n_people, 17, 3, generator=g) * torch.tensor([60.0, 90.0, 0.0])
    kps += torch.tensor([30.0, 20.0, 2.0])
    soft = kps.clone()
    soft[..., 2] = 0.6
    return {"boxes": torch.tensor([[25.0, 15.0, 95.0, 115.0]] * n_people),
            "labels": torch.ones(n_people, dtype=torch.int64), "keypoints": kps,
            "keypoints_soft": soft,
            "keypoints3d_soft": torch.randn(n_people, 17, 3, generator=g) * 200,
            "has3d": torch.ones(n_people, dtype=torch.bool)}  # fmt: skip


def test_keypoint_rcnn_single_branch_has_one_heatmap_layer_and_one_lifter():
    torch.manual_seed(0)
    two = build_student(TINY)
    one = build_student(dataclasses.replace(TINY, single_branch=True))
    assert _instances(two, KeypointRCNNPredictor) == 2 and _instances(two, Lifter) == 2
    assert _instances(one, KeypointRCNNPredictor) == 1 and _instances(one, Lifter) == 1
    head = one.keypoint_head
    assert count_parameters(two) - count_parameters(one) == _numel(head.soft) + _numel(
        head.lift_soft
    )
    # every parameter once in the state dict (a final weight mix would otherwise mix it twice)
    twins = ("roi_heads.kp_head.hard.", "roi_heads.kp_head.lift_hard.")
    assert not [k for k in one.state_dict() if k.startswith(twins)]


def test_keypoint_rcnn_single_branch_3d_is_its_lifter_on_its_keypoints():
    torch.manual_seed(0)
    model = build_student(dataclasses.replace(TINY, single_branch=True)).eval()
    model.roi_heads.score_thresh = 0.0
    with torch.no_grad():
        (det,) = model([torch.rand(3, 120, 128)])
        n = len(det["boxes"])
        assert n > 0
        ones = torch.ones(n, 17, dtype=torch.bool)
        expected = model.keypoint_head.lift_soft(det["keypoints"][..., :2], ones)
    torch.testing.assert_close(det["keypoints3d"], expected)
    torch.testing.assert_close(det["keypoints_soft_branch"], det["keypoints"])


def test_keypoint_rcnn_hard_only_single_branch_trains_its_lifter_with_the_hard_3d_loss():
    torch.manual_seed(0)
    config = dataclasses.replace(TINY, single_branch=True,
                                 loss_weights={**TINY.loss_weights, **HARD_ONLY})  # fmt: skip
    model = build_student(config).train()
    losses = model([torch.rand(3, 120, 128)], [_kp_targets(3)])  # weighted by the config
    assert losses["loss_kp3d_soft"].item() == 0.0
    head = model.keypoint_head
    _assert_hard_3d_loss_alone_trains_the_lifter(losses, {}, head.lift_soft, head.soft)


def test_single_branch_checkpoints_round_trip_and_old_two_lifter_files_are_refused(tmp_path):
    torch.manual_seed(0)
    model = build_student(dataclasses.replace(TINY, single_branch=True)).eval()
    save_student(model, tmp_path / "one.pt")
    loaded = load_student(tmp_path / "one.pt")
    assert all(torch.equal(v, loaded.state_dict()[k]) for k, v in model.state_dict().items())
    # a single-branch file of the old layout: hard.* = soft.* (one shared layer), two lifters
    state = student_state(model)
    for key, value in list(state["model"].items()):
        for old, new in (("kp_head.soft.", "kp_head.hard."), ("kp_head.lift_soft.",
                                                              "kp_head.lift_hard.")):  # fmt: skip
            if old in key:
                state["model"][key.replace(old, new)] = value.clone()
    torch.save(state, tmp_path / "old.pt")
    with pytest.raises(ModelError, match=r"old\.pt: .*two lifters") as err:
        load_student(tmp_path / "old.pt")
    assert "\n" not in str(err.value)
    # the same without lifters: its duplicate heatmap entries are the one layer's
    state["model"] = {k: v for k, v in state["model"].items() if ".lift_" not in k}
    state["student_config"]["lifters"] = False
    torch.save(state, tmp_path / "old_no_lifters.pt")
    no_lifters = load_student(tmp_path / "old_no_lifters.pt")
    torch.testing.assert_close(no_lifters.keypoint_head.soft.kps_score_lowres.weight,
                               model.keypoint_head.soft.kps_score_lowres.weight)  # fmt: skip


def test_two_branch_checkpoints_keep_their_layout(tmp_path):
    torch.manual_seed(0)
    model = build_student(TINY).eval()
    keys = set(model.state_dict())
    assert {"roi_heads.kp_head.hard.kps_score_lowres.weight",
            "roi_heads.kp_head.lift_hard.xy_mean"} <= keys  # fmt: skip
    save_student(model, tmp_path / "two.pt")
    loaded = load_student(tmp_path / "two.pt")
    assert set(loaded.state_dict()) == keys
    assert all(torch.equal(v, loaded.state_dict()[k]) for k, v in model.state_dict().items())


# -- the CPU student (picodet_tinypose) -----------------------------------------------------------


@pytest.fixture(scope="module")
def topdown(shared):
    """(two-branch, single-branch) CPU students with small lifters, the same ONNX sources."""
    from orpose.student.topdown import TopDownConfig, TopDownStudent

    torch.manual_seed(0)
    config = TopDownConfig(lifter_config={"hidden": 32})
    two = TopDownStudent(config)
    one = TopDownStudent(dataclasses.replace(config, single_branch=True), sources=two.sources)
    return two, one


def test_topdown_single_branch_has_one_heatmap_layer_and_one_lifter(topdown):
    two, one = topdown
    assert _instances(two.head, Lifter) == 2 and _instances(one.head, Lifter) == 1
    # and the same for the lifters of full-resolution frames (frozen copies of the head's)
    assert list(two.full_res_lifters) == ["soft", "hard"] and list(one.full_res_lifters) == ["soft"]
    for head_two, head_one in ((two.head, one.head), (two.native_head, one.native_head)):
        names = {n for n, _ in head_one.named_children()}
        assert "soft" in names and "hard" not in names and "lift_hard" not in names
        assert {"soft", "hard"} <= {n for n, _ in head_two.named_children()}
    extra = _numel(one.head.soft) + 2 * _numel(one.head.lift_soft) + _numel(one.native_head.soft)
    assert count_parameters(two) - count_parameters(one) == extra
    twins = ("head.hard.", "head.lift_hard.", "native_head.hard.")
    assert not [k for k in one.state_dict() if k.startswith(twins)]


def test_topdown_single_branch_3d_is_its_lifter_on_its_keypoints(topdown):
    _, one = topdown
    one.eval()
    image = torch.rand(3, 240, 320, generator=torch.Generator().manual_seed(0))
    boxes = torch.tensor([[40.0, 20.0, 120.0, 220.0], [150.0, 30.0, 260.0, 230.0]])
    with torch.no_grad():
        out = one.pose(image, boxes)
        ones = torch.ones(2, 17, dtype=torch.bool)
        expected = one.head.lift_soft(out["keypoints"][..., :2], ones)
    # millimetres: the same lifter on the same 2D, up to the rounding of a matrix product whose
    # batch size differs (2e-5 mm seen on an AMD EPYC, beyond float32's default tolerance)
    torch.testing.assert_close(out["keypoints3d"], expected, atol=1e-3, rtol=1e-5)
    torch.testing.assert_close(out["keypoints_hard_branch"], out["keypoints"])


def test_topdown_hard_only_single_branch_trains_its_lifter_with_the_hard_3d_loss(topdown):
    _, one = topdown
    head = one.head.train()
    g = torch.Generator().manual_seed(1)
    crops = torch.randn(3, 3, 256, 192, generator=g)
    hm_soft, hm_hard = head(crops)
    assert hm_soft is hm_hard
    people = torch.rand(3, 17, 3, generator=g) * torch.tensor([150.0, 200.0, 0.0])
    hard, soft = people + torch.tensor([20.0, 20.0, 2.0]), people + torch.tensor([20.0, 20.0, 0.7])
    teacher = torch.rand(hm_soft.shape, generator=g)
    losses = head.losses(hm_soft, hm_hard, soft, hard, teacher)
    losses.update(head.lifting_losses(soft, hard, torch.randn(3, 17, 3, generator=g) * 200, 100.0))
    weights = {**one.config.loss_weights, **HARD_ONLY}
    try:
        _assert_hard_3d_loss_alone_trains_the_lifter(losses, weights, head.lift_soft, head.soft)
    finally:
        head.eval()
