"""Virtual cameras: look-at geometry, projection of known points, and the sampled viewpoints."""

from __future__ import annotations

import numpy as np
import torch

from orpose.data.mvor import Camera
from orpose.lifting.cameras import (
    CameraBatch,
    CameraSampling,
    look_at,
    mid_hips,
    sample_cameras,
)
from orpose.lifting.synth import make_samples, mirror_poses


def _camera(centre, target, f=538.0, principal=(320.0, 240.0)) -> CameraBatch:
    c = torch.tensor([centre], dtype=torch.float64)
    t = torch.tensor([target], dtype=torch.float64)
    return CameraBatch(
        look_at(c, t),
        c,
        torch.tensor([[f, f]], dtype=torch.float64),
        torch.tensor([principal], dtype=torch.float64),
    )


def test_projection_of_known_points():
    # Camera 5 m in front of the origin (at -Z), looking at it along +Z, world Y up.
    cam = _camera((0.0, 0.0, -5000.0), (0.0, 0.0, 0.0))
    pts = torch.tensor(
        [[[0.0, 0.0, 0.0], [1000.0, 0.0, 0.0], [0.0, 500.0, 0.0]]], dtype=torch.float64
    )
    local = cam.to_camera(pts)
    np.testing.assert_allclose(local[0, 0].numpy(), [0.0, 0.0, 5000.0], atol=1e-9)
    uv = cam.project(local)[0].numpy()
    np.testing.assert_allclose(uv[0], [320.0, 240.0], atol=1e-9)
    # Looking along +Z with Y up, world +X is the camera's left: u decreases by f * 1000 / 5000.
    np.testing.assert_allclose(uv[1], [320.0 - 538.0 * 0.2, 240.0], atol=1e-9)
    # World up is image up (v decreases): camera y points down, as in MVOR.
    np.testing.assert_allclose(uv[2], [320.0, 240.0 - 538.0 * 0.1], atol=1e-9)


def test_projection_agrees_with_mvor_camera():
    cam = _camera((0.0, 0.0, 0.0), (0.0, 0.0, 1000.0), f=538.6, principal=(315.8, 241.9))
    mvor = Camera(focal=(538.6, 538.6), principal_point=(315.8, 241.9), to_camera1=np.eye(4))
    pts = np.random.default_rng(0).uniform([-800, -800, 1500], [800, 800, 4000], size=(1, 20, 3))
    ours = cam.project(cam.to_camera(torch.as_tensor(pts)))[0].numpy()
    # Our look-at along +Z has x = -X_world, y = -Y_world: flip to MVOR's identity frame.
    theirs = mvor.project(pts[0] * np.array([-1.0, -1.0, 1.0]))
    np.testing.assert_allclose(ours, theirs, atol=1e-9)


def test_sampled_cameras_are_proper_rotations_and_or_views_look_down():
    gen = torch.Generator().manual_seed(0)
    hips = torch.zeros(500, 3, dtype=torch.float64)
    cams = sample_cameras(hips, CameraSampling(), gen, or_only=True)
    r = cams.rotation
    eye = torch.eye(3, dtype=torch.float64).expand_as(r)
    torch.testing.assert_close(r @ r.transpose(1, 2), eye)
    torch.testing.assert_close(torch.linalg.det(r), torch.ones(500, dtype=torch.float64))
    assert (cams.centre[:, 1] >= 800.0 - 1e-6).all()  # mounted at least 0.8 m above the hips
    dist = cams.centre.norm(dim=1)
    assert (dist > 1200.0).all() and (dist < 4100.0).all()


def test_samples_are_root_relative_and_in_front_of_the_camera():
    gen = torch.Generator().manual_seed(1)
    pose = torch.zeros(1, 17, 3)
    pose[0, :, 1] = torch.linspace(1600.0, 0.0, 17)  # a vertical stick figure, hips near 0.9 m
    pose[0, 11, 0], pose[0, 12, 0] = 100.0, -100.0
    s = make_samples(pose.repeat(64, 1, 1), gen, CameraSampling(), None, 0.0, mirror=False)
    torch.testing.assert_close(mid_hips(s.target3d), torch.zeros(64, 3), atol=1e-3, rtol=0)
    # Rigid motion: the 3D shape (distances to the hips) is preserved by every camera.
    lengths = (pose - mid_hips(pose)[:, None]).norm(dim=-1).expand(64, 17)
    torch.testing.assert_close(s.target3d.norm(dim=-1), lengths, rtol=1e-4, atol=1e-2)
    assert torch.isfinite(s.keypoints2d).all()


def test_targets_of_another_convention_share_the_camera_and_the_mirror():
    pose = torch.zeros(1, 17, 3)
    pose[0, :, 1] = torch.linspace(1600.0, 0.0, 17)
    pose[0, 11, 0], pose[0, 12, 0] = 100.0, -100.0
    poses = pose.repeat(64, 1, 1)
    targets = poses.clone()
    targets[:, [11, 12], 1] += 60.0  # hips 60 mm higher in the targets' convention
    plain = make_samples(poses, torch.Generator().manual_seed(3), CameraSampling(), None, 2.0)
    both = make_samples(
        poses, torch.Generator().manual_seed(3), CameraSampling(), None, 2.0, targets_world=targets
    )
    torch.testing.assert_close(both.keypoints2d, plain.keypoints2d)  # the 2D: the joints'
    # the targets: root-relative to their own (raised) mid-hips, so every other joint is 60 mm
    # nearer the hips along the body's up, in whatever camera frame and mirror each sample drew
    shift = (both.target3d - plain.target3d)[:, [0, 5, 16]]
    up = plain.target3d[:, 0] - plain.target3d[:, 16]
    up = up / up.norm(dim=-1, keepdim=True)
    torch.testing.assert_close(shift, -60.0 * up[:, None].expand(64, 3, 3), atol=1e-3, rtol=0)
    torch.testing.assert_close(both.target3d[:, 11, 0], -both.target3d[:, 12, 0], atol=1e-3, rtol=0)


def test_mirroring_swaps_sides_and_is_an_involution():
    pose = torch.randn(3, 17, 3, dtype=torch.float64)
    mirrored = mirror_poses(pose)
    torch.testing.assert_close(mirrored[:, 11, 0], -pose[:, 12, 0])  # left hip <- right hip
    torch.testing.assert_close(
        mirrored[:, 0], pose[:, 0] * torch.tensor([-1.0, 1.0, 1.0], dtype=torch.float64)
    )
    torch.testing.assert_close(mirror_poses(mirrored), pose)
