"""Training pairs for the lifter: 3D mocap poses seen by virtual cameras, with noise and masks.

Every call draws fresh cameras, so each epoch sees new views of the same poses. Masks imitate
what the lifter meets in practice: complete poses, random missing joints (the hard pseudo-label
set), hidden legs (the operating table) and upper-body-only inputs (MVOR's annotation).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch

from orpose.lifting.cameras import CameraSampling, mid_hips, sample_cameras
from orpose.skeleton import FLIP_INDEX, KEYPOINT_INDEX, NUM_KEYPOINTS, UPPER_BODY_JOINTS

LEG_JOINTS: tuple[int, ...] = tuple(
    KEYPOINT_INDEX[f"{side}_{part}"] for part in ("knee", "ankle") for side in ("left", "right")
)
MIN_VISIBLE = 3  # a mask with fewer visible joints is replaced by a full one


@dataclass
class MaskSampling:
    """Probabilities of the mask patterns (they need not sum to 1: the rest is 'all visible')."""

    random: float = 0.3  # each joint dropped with probability ``random_rate``
    random_rate: float = 0.25
    legs_hidden: float = 0.2  # knees and ankles missing (plus light random dropout)
    upper_body_only: float = 0.2  # only the 8 MPJPE joints given (plus light random dropout)
    light_rate: float = 0.05

    def to_dict(self) -> dict:
        return asdict(self)


def sample_masks(n: int, cfg: MaskSampling, gen: torch.Generator) -> torch.Tensor:
    """``(n, 17)`` float masks (1 = joint given) drawn from the patterns of ``cfg``."""
    u = torch.rand(n, generator=gen)
    edges = torch.cumsum(torch.tensor([cfg.random, cfg.legs_hidden, cfg.upper_body_only]), 0)
    pattern = torch.bucketize(u, edges, right=True)  # 0 random, 1 legs, 2 upper, 3 full
    rate = torch.where(pattern == 0, cfg.random_rate, cfg.light_rate)
    rate = torch.where(pattern == 3, 0.0, rate)
    mask = (torch.rand(n, NUM_KEYPOINTS, generator=gen) >= rate[:, None]).float()
    legs = torch.zeros(NUM_KEYPOINTS, dtype=torch.bool)
    legs[list(LEG_JOINTS)] = True
    upper = torch.zeros(NUM_KEYPOINTS, dtype=torch.bool)
    upper[list(UPPER_BODY_JOINTS)] = True
    mask[(pattern == 1)[:, None] & legs[None]] = 0.0
    mask[(pattern == 2)[:, None] & ~upper[None]] = 0.0
    too_few = mask.sum(1) < MIN_VISIBLE
    mask[too_few] = 1.0
    return mask


@dataclass
class SampleSet:
    """Inputs and targets: 2D pixels (N,17,2), mask (N,17), 3D root-relative camera mm (N,17,3)."""

    keypoints2d: torch.Tensor
    mask: torch.Tensor
    target3d: torch.Tensor

    def __len__(self) -> int:
        return self.keypoints2d.shape[0]


def mirror_poses(joints: torch.Tensor) -> torch.Tensor:
    """A mirrored person (x -> -x with left and right swapped): still a valid human pose."""
    out = joints[:, list(FLIP_INDEX)].clone()
    out[..., 0] = -out[..., 0]
    return out


def make_samples(
    joints_world: torch.Tensor,
    gen: torch.Generator,
    cameras: CameraSampling,
    masks: MaskSampling | None,
    noise_px: float | tuple[float, float] = 0.0,
    mirror: bool = True,
    or_only: bool = False,
    targets_world: torch.Tensor | None = None,
) -> SampleSet:
    """View each (N,17,3) world pose (mm) through a random camera.

    ``noise_px``: a fixed Gaussian sigma, or a (low, high) range from which each sample draws its
    own sigma. ``masks=None`` gives every joint. ``targets_world``: the 3D targets where they
    follow another joint convention than the 2D (mocap.raise_hips), seen through the same cameras.
    """
    joints = joints_world.to(torch.float64)
    targets = joints if targets_world is None else targets_world.to(torch.float64)
    n = joints.shape[0]
    if mirror:
        flip = torch.rand(n, generator=gen) < 0.5
        joints = torch.where(flip[:, None, None], mirror_poses(joints), joints)
        targets = torch.where(flip[:, None, None], mirror_poses(targets), targets)
    cams = sample_cameras(mid_hips(joints), cameras, gen, or_only=or_only)
    cam_points = cams.to_camera(joints)
    cam_targets = cam_points if targets_world is None else cams.to_camera(targets)
    kp2d = cams.project(cam_points)
    if isinstance(noise_px, tuple):
        lo, hi = noise_px
        sigma = lo + (hi - lo) * torch.rand(n, 1, 1, generator=gen, dtype=torch.float64)
    else:
        sigma = torch.full((n, 1, 1), float(noise_px), dtype=torch.float64)
    kp2d = kp2d + sigma * torch.randn(kp2d.shape, generator=gen, dtype=torch.float64)
    target = cam_targets - mid_hips(cam_targets)[:, None, :]
    mask = torch.ones(n, NUM_KEYPOINTS) if masks is None else sample_masks(n, masks, gen)
    return SampleSet(kp2d.float(), mask, target.float())
