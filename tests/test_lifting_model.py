"""The lifter module: masks, batch sizes 0 and 1, root-relative output, numpy convenience."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from orpose.lifting import Lifter
from orpose.lifting.model import normalise_2d
from orpose.skeleton import ROOT_JOINTS


def _lifter(seed: int = 0) -> Lifter:
    torch.manual_seed(seed)
    lifter = Lifter(hidden=64)
    # Non-trivial statistics, so that the normalisation path is exercised.
    kp = torch.rand(256, 17, 2) * torch.tensor([640.0, 480.0])
    mask = (torch.rand(256, 17) > 0.2).float()
    lifter.fit_statistics(kp, mask, torch.randn(256, 17, 3) * 200.0)
    return lifter


def _inputs(n: int = 8, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    kp = 100.0 + 300.0 * torch.rand(n, 17, 2, generator=g)
    mask = (torch.rand(n, 17, generator=g) > 0.3).float()
    mask[:, :3] = 1.0
    return kp, mask


def test_masked_coordinates_do_not_change_the_output():
    lifter = _lifter().eval()
    kp, mask = _inputs()
    other = kp.clone()
    hidden = mask == 0
    other[hidden] = torch.randn(int(hidden.sum()), 2) * 1e4
    torch.testing.assert_close(lifter(kp, mask), lifter(other, mask), rtol=0, atol=0)
    other[hidden] = float("nan")
    out = lifter(other, mask)
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out, lifter(kp, mask), rtol=0, atol=0)
    # ... while the mask itself and the visible coordinates do matter.
    assert not torch.allclose(lifter(kp, torch.ones_like(mask)), lifter(kp, mask))
    moved = kp.clone()
    moved[:, 0] += 40.0
    assert not torch.allclose(lifter(moved, mask), lifter(kp, mask))


def test_masked_joints_get_no_gradient_and_bool_masks_work():
    lifter = _lifter().train()
    kp, mask = _inputs()
    kp.requires_grad_(True)
    lifter(kp, mask.bool()).sum().backward()
    assert torch.all(kp.grad[mask == 0] == 0)
    assert kp.grad[mask > 0].abs().sum() > 0


def test_normalisation_is_translation_and_scale_free():
    kp, mask = _inputs()
    a, _, log_a = normalise_2d(kp, mask)
    b, _, log_b = normalise_2d(kp * 3.0 + 50.0, mask)
    torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(
        log_b - log_a, torch.full_like(log_a, np.log(3.0)), rtol=0, atol=1e-4
    )


@pytest.mark.parametrize("train", [True, False])
@pytest.mark.parametrize("n", [0, 1, 2])
def test_any_batch_size_in_both_modes(n, train):
    lifter = _lifter().train(train)
    kp, mask = _inputs(max(n, 1))
    out = lifter(kp[:n], mask[:n])
    assert out.shape == (n, 17, 3)
    assert torch.isfinite(out).all()
    if train and n > 0:
        out.sum().backward()  # the student back-propagates through it


def test_batch_of_one_in_train_mode_keeps_running_statistics():
    lifter = _lifter().train()
    before = {k: v.clone() for k, v in lifter.state_dict().items() if "running" in k}
    kp, mask = _inputs(1)
    lifter(kp, mask)
    for k, v in before.items():
        torch.testing.assert_close(lifter.state_dict()[k], v)


def test_output_is_root_relative():
    out = _lifter().eval()(*_inputs())
    root = (out[:, ROOT_JOINTS[0]] + out[:, ROOT_JOINTS[1]]) / 2
    torch.testing.assert_close(root, torch.zeros_like(root), rtol=0, atol=1e-4)


def test_lift_numpy_thresholds_confidence():
    lifter = _lifter()
    lifter.train()
    kp, mask = _inputs(5)
    conf = np.where(mask.numpy() > 0, 0.9, 0.2)
    arr = np.concatenate([kp.numpy(), conf[..., None]], axis=-1)
    out = lifter.lift_numpy(arr, threshold=0.5)
    assert out.dtype == np.float64 and out.shape == (5, 17, 3)
    assert lifter.training  # the caller's mode is restored
    with torch.no_grad():
        expected = lifter.eval()(kp, mask).double().numpy()
    np.testing.assert_allclose(out, expected, rtol=1e-6, atol=1e-4)
    # threshold 0: every joint with a positive confidence is given, so the result changes
    assert not np.allclose(lifter.lift_numpy(arr, threshold=0.0), out)
    assert lifter.lift_numpy(np.zeros((0, 17, 3))).shape == (0, 17, 3)
    with pytest.raises(ValueError, match="17, 3"):
        lifter.lift_numpy(np.zeros((2, 17, 2)))


def test_default_size_is_martinez_like():
    n = sum(p.numel() for p in Lifter().parameters())
    assert 4.0e6 < n < 4.6e6  # "about 4.3M parameters"


def _pose_with_hips(half: torch.Tensor) -> torch.Tensor:
    """(N, 17, 3) root-relative poses: every joint somewhere, the hips at +-``half`` (N, 3)."""
    g = torch.Generator().manual_seed(3)
    pose = torch.randn(len(half), 17, 3, generator=g) * 300.0
    pose[:, ROOT_JOINTS[0]] = half
    pose[:, ROOT_JOINTS[1]] = -half
    return pose


def test_hip_floor_pushes_narrow_hips_out_along_their_direction_only():
    lifter = Lifter(hidden=64)
    lifter.hip_half_width.fill_(126.0)
    half = torch.tensor([[30.0, 0.0, 40.0], [200.0, 10.0, 0.0], [0.0, 0.0, 0.0]])
    pose = _pose_with_hips(half)
    out = lifter.widen_hips(pose)
    # narrow: |(30, 0, 40)| = 50 -> 126 along the same direction, the other hip opposite
    torch.testing.assert_close(out[0, ROOT_JOINTS[0]], torch.tensor([75.6, 0.0, 100.8]))
    torch.testing.assert_close(out[0, ROOT_JOINTS[1]], torch.tensor([-75.6, 0.0, -100.8]))
    # wide enough, and hips with no direction: kept as they are
    torch.testing.assert_close(out[1:], pose[1:], rtol=0, atol=0)
    # no other joint moves, and the mid-hips stay at the origin
    others = [j for j in range(17) if j not in ROOT_JOINTS]
    torch.testing.assert_close(out[:, others], pose[:, others], rtol=0, atol=0)
    assert out[:, list(ROOT_JOINTS)].mean(1).abs().max() < 1e-5


def test_forward_applies_the_floor_and_zero_turns_it_off():
    lifter = _lifter().eval()
    kp, mask = _inputs()
    lifter.hip_half_width.zero_()
    free = lifter(kp, mask)
    lifter.hip_half_width.fill_(10_000.0)  # wider than any output: every pose is pushed out
    floored = lifter(kp, mask)
    hips = list(ROOT_JOINTS)
    widths = torch.linalg.vector_norm(floored[:, hips[0]] - floored[:, hips[1]], dim=-1)
    torch.testing.assert_close(widths, torch.full_like(widths, 20_000.0))
    others = [j for j in range(17) if j not in hips]
    torch.testing.assert_close(floored[:, others], free[:, others], rtol=0, atol=0)
    unit = torch.nn.functional.normalize
    torch.testing.assert_close(unit(floored[:, hips[0]], dim=-1), unit(free[:, hips[0]], dim=-1))


def test_fit_statistics_sets_the_targets_median_hip_half_width():
    lifter = Lifter(hidden=64)
    half = torch.tensor([[50.0, 0.0, 0.0], [0.0, 60.0, 80.0], [150.0, 0.0, 0.0]])  # 50, 100, 150
    targets = _pose_with_hips(half)
    lifter.fit_statistics(torch.rand(3, 17, 2) * 400.0, torch.ones(3, 17), targets)
    assert float(lifter.hip_half_width) == pytest.approx(100.0)


def test_a_lifter_saved_before_the_floor_loads_without_it():
    lifter = _lifter().eval()
    lifter.hip_half_width.fill_(126.0)
    old = {k: v for k, v in lifter.state_dict().items() if k != "hip_half_width"}
    again = Lifter(hidden=64).eval()
    again.load_state_dict(old)  # strict: the missing floor is filled in, as 0
    assert float(again.hip_half_width) == 0.0
    kp, mask = _inputs()
    lifter.hip_half_width.zero_()
    torch.testing.assert_close(again(kp, mask), lifter(kp, mask), rtol=0, atol=0)


def test_the_floor_travels_in_the_checkpoint(tmp_path):
    from orpose.lifting import load_lifter, save_lifter

    lifter = _lifter().eval()
    lifter.hip_half_width.fill_(126.5)
    path = save_lifter(lifter, tmp_path / "lifter.pt")
    again = load_lifter(path)
    assert float(again.hip_half_width) == 126.5
    kp, mask = _inputs()
    torch.testing.assert_close(again(kp, mask), lifter(kp, mask), rtol=0, atol=0)


class _FixedLifter(Lifter):
    """A lifter that always gives the same pose: hips at +-``half``, floored as orpose's are."""

    def __init__(self, half: list[float]):
        super().__init__(hidden=8)
        self.half = torch.tensor(half)
        self.hip_half_width.fill_(126.0)

    def forward(self, keypoints2d: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.widen_hips(_pose_with_hips(self.half.expand(len(keypoints2d), 3)))


def test_a_students_two_lifters_floor_their_mean_too():
    from orpose.student.keypoint_head import KeypointHead

    head = KeypointHead(lifter_config={"hidden": 8})
    # each lifter's hips are 126 from the root, in directions 33 degrees apart: their mean's are
    # nearer (cos 16.7 degrees x 126 = 120.7) until the floor pushes them out again
    head.lift_soft, head.lift_hard = _FixedLifter([100.0, 0, 30.0]), _FixedLifter([100.0, 0, -30.0])
    head.eval()  # the floor corrects predictions, not what training fits
    xy = torch.rand(2, 17, 2) * 400.0
    out = head.lift(xy, xy)
    torch.testing.assert_close(out[:, ROOT_JOINTS[0]], torch.tensor([[126.0, 0.0, 0.0]] * 2))
    torch.testing.assert_close(out[:, ROOT_JOINTS[1]], torch.tensor([[-126.0, 0.0, 0.0]] * 2))


def test_training_fits_the_networks_own_output():
    lifter = _lifter().train()
    kp, mask = _inputs()
    lifter.hip_half_width.fill_(10_000.0)
    torch.manual_seed(0)  # the same dropout draws for both calls
    floored = lifter(kp, mask)
    lifter.hip_half_width.zero_()
    torch.manual_seed(0)
    torch.testing.assert_close(floored, lifter(kp, mask), rtol=0, atol=0)
