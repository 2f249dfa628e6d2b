"""Virtual pinhole cameras placed around a motion-capture subject, and projection through them.

World frame: the BVH's (Y up, mm). Camera frame: x right, y down, z forward, as MVOR's cameras.
A camera is a rotation ``R`` (rows = camera axes in world coordinates), a centre ``C`` and
intrinsics; a world point ``X`` maps to ``R @ (X - C)`` then to pixels by the pinhole model.

Two families are sampled: OR-like (ceiling-mounted, 0.8-2 m above the hips, 1-3.5 m away
horizontally, so 1.3-4 m from the subject, looking down; MVOR's camera-to-person distances are
1.4-3.7 m) and general (about chest height, 2-5.5 m away), all with MVOR-like intrinsics
(fx ~538 px at 640x480). Pan/tilt jitter puts the person anywhere in the image, as in a fixed
room camera, rather than always at its centre.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch

from orpose.config import build
from orpose.skeleton import ROOT_JOINTS


@dataclass
class CameraSampling:
    """Ranges of the virtual cameras (metres, degrees, pixels)."""

    or_fraction: float = 0.75  # share of OR-like (high, looking down) views
    or_height: tuple[float, float] = (0.8, 2.0)  # camera height above the subject's hips
    or_distance: tuple[float, float] = (1.0, 3.5)  # horizontal distance to the hips
    general_height: tuple[float, float] = (-0.5, 1.0)
    general_distance: tuple[float, float] = (2.0, 5.5)
    pan_jitter_deg: float = 25.0  # the person is off the optical axis by up to this much
    tilt_jitter_deg: float = 18.0
    roll_jitter_deg: float = 5.0
    focal: float = 538.0  # MVOR: 534.8-541.4 px
    focal_jitter: float = 0.1  # relative
    image_size: tuple[int, int] = (640, 480)
    principal_jitter: float = 10.0  # px around the image centre

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict, where: str = "camera sampling") -> CameraSampling:
        """Checked ranges (see :func:`orpose.config.build`); errors name ``where``."""
        return build(cls, d, where)


@dataclass
class CameraBatch:
    """``B`` pinhole cameras: rotations (B,3,3), centres (B,3) mm, focal (B,2), principal (B,2)."""

    rotation: torch.Tensor
    centre: torch.Tensor
    focal: torch.Tensor
    principal: torch.Tensor

    def to_camera(self, points: torch.Tensor) -> torch.Tensor:
        """``(B, J, 3)`` world points to each camera's frame."""
        return (points - self.centre[:, None, :]) @ self.rotation.transpose(1, 2)

    def project(self, points_cam: torch.Tensor) -> torch.Tensor:
        """``(B, J, 3)`` camera-frame points to ``(B, J, 2)`` pixels."""
        z = points_cam[..., 2:3].clamp(min=1.0)
        return points_cam[..., :2] / z * self.focal[:, None, :] + self.principal[:, None, :]


def look_at(centre: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Rotations (B,3,3) of cameras at ``centre`` looking at ``target`` with the world's Y up."""
    forward = torch.nn.functional.normalize(target - centre, dim=-1)
    up = torch.tensor([0.0, 1.0, 0.0], dtype=centre.dtype).expand_as(forward)
    right = torch.nn.functional.normalize(torch.cross(forward, up, dim=-1), dim=-1)
    down = torch.cross(forward, right, dim=-1)
    return torch.stack([right, down, forward], dim=1)


def axis_angle_matrix(axis: int, angle: torch.Tensor) -> torch.Tensor:
    """(B,3,3) right-handed rotations by ``angle`` radians about one coordinate axis."""
    c, s = torch.cos(angle), torch.sin(angle)
    out = torch.zeros((*angle.shape, 3, 3), dtype=angle.dtype)
    i, j = [k for k in range(3) if k != axis]
    sign = 1.0 if (j - i) % 3 == 1 else -1.0
    out[..., axis, axis] = 1.0
    out[..., i, i] = c
    out[..., j, j] = c
    out[..., i, j] = -s * sign
    out[..., j, i] = s * sign
    return out


def _uniform(n: int, low: float, high: float, gen: torch.Generator) -> torch.Tensor:
    return low + (high - low) * torch.rand(n, generator=gen, dtype=torch.float64)


def sample_cameras(
    hips: torch.Tensor, cfg: CameraSampling, gen: torch.Generator, or_only: bool = False
) -> CameraBatch:
    """One random camera per subject whose mid-hips (B,3) (world, mm) are given."""
    n = hips.shape[0]
    is_or = torch.rand(n, generator=gen, dtype=torch.float64) < (
        1.0 if or_only else cfg.or_fraction
    )
    height = torch.where(
        is_or, _uniform(n, *cfg.or_height, gen), _uniform(n, *cfg.general_height, gen)
    )
    dist = torch.where(
        is_or, _uniform(n, *cfg.or_distance, gen), _uniform(n, *cfg.general_distance, gen)
    )
    azimuth = _uniform(n, 0.0, 2 * math.pi, gen)
    hips = hips.to(torch.float64)
    offset = (
        torch.stack([dist * torch.cos(azimuth), height, dist * torch.sin(azimuth)], dim=-1) * 1000.0
    )
    centre = hips + offset
    rotation = look_at(centre, hips)
    deg = math.pi / 180.0
    jitter = (
        axis_angle_matrix(2, _uniform(n, -cfg.roll_jitter_deg, cfg.roll_jitter_deg, gen) * deg)
        @ axis_angle_matrix(0, _uniform(n, -cfg.tilt_jitter_deg, cfg.tilt_jitter_deg, gen) * deg)
        @ axis_angle_matrix(1, _uniform(n, -cfg.pan_jitter_deg, cfg.pan_jitter_deg, gen) * deg)
    )
    f = cfg.focal * (1.0 + _uniform(n, -cfg.focal_jitter, cfg.focal_jitter, gen))
    w, h = cfg.image_size
    principal = torch.stack(
        [
            w / 2 + _uniform(n, -cfg.principal_jitter, cfg.principal_jitter, gen),
            h / 2 + _uniform(n, -cfg.principal_jitter, cfg.principal_jitter, gen),
        ],
        dim=-1,
    )
    return CameraBatch(jitter @ rotation, centre, torch.stack([f, f], dim=-1), principal)


def mid_hips(points: torch.Tensor) -> torch.Tensor:
    """Mid-hips (..., 3) of (..., 17, 3) points: the root of every root-relative pose."""
    return (points[..., ROOT_JOINTS[0], :] + points[..., ROOT_JOINTS[1], :]) / 2.0
