"""MPJPE of a lifter on held-out mocap subjects and on MVOR's real operating-room 3D poses.

MPJPE: mean Euclidean distance in mm between predicted and true joints, both root-relative
(mid-hips), in the camera frame, without any alignment; reported over all 17 joints and over the
paper's 8 upper-body joints (skeleton.UPPER_BODY_JOINTS). On mocap, MPJPE-17 includes the joints
that were not given (the lifter has to guess them).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from orpose.data.mvor import MvorDataset
from orpose.lifting.cameras import CameraSampling
from orpose.lifting.model import Lifter
from orpose.lifting.synth import MaskSampling, SampleSet, make_samples, sample_masks
from orpose.skeleton import NUM_MVOR_KEYPOINTS, UPPER_BODY_JOINTS, mvor_to_coco, root_relative

PAPER_MVOR_MPJPE_MM = 134.88  # ORPose teacher, full pipeline, MVOR+ 1x
PAPER_STUDENT_MVOR_MPJPE_MM = 134.13  # ORPose_all student at 1x


@dataclass
class EvalRow:
    """One line of the result table; ``None`` where a column does not apply."""

    name: str
    n: int
    mpjpe_all: float | None
    mpjpe_upper: float | None

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "n": self.n,
            "mpjpe_all_mm": self.mpjpe_all,
            "mpjpe_upper_mm": self.mpjpe_upper,
        }


def joint_errors(pred: np.ndarray, target: np.ndarray) -> np.ndarray:
    """(N,17) Euclidean errors in mm."""
    return np.linalg.norm(np.asarray(pred) - np.asarray(target), axis=-1)


def mpjpe(
    pred: np.ndarray,
    target: np.ndarray,
    joints: tuple[int, ...] | None = None,
    valid: np.ndarray | None = None,
) -> float:
    """Mean per-joint position error (mm) over ``joints`` (all by default) and ``valid`` ones."""
    err = joint_errors(pred, target)
    keep = np.ones_like(err, dtype=bool) if valid is None else np.asarray(valid, dtype=bool)
    if joints is not None:
        sel = np.zeros(err.shape[1], dtype=bool)
        sel[list(joints)] = True
        keep = keep & sel[None, :]
    return float(err[keep].mean()) if keep.any() else float("nan")


@torch.no_grad()
def predict(lifter: Lifter, samples: SampleSet, batch_size: int = 4096) -> np.ndarray:
    """Run the lifter in eval mode over a sample set; (N,17,3) mm."""
    lifter.eval()
    out = [
        lifter(samples.keypoints2d[i : i + batch_size], samples.mask[i : i + batch_size])
        for i in range(0, len(samples), batch_size)
    ]
    return torch.cat(out).double().numpy() if out else np.zeros((0, 17, 3))


def _row(name: str, lifter: Lifter, samples: SampleSet) -> EvalRow:
    pred, target = predict(lifter, samples), samples.target3d.double().numpy()
    return EvalRow(name, len(samples), mpjpe(pred, target), mpjpe(pred, target, UPPER_BODY_JOINTS))


def mocap_test_views(
    joints_world: np.ndarray,
    cameras: CameraSampling,
    max_samples: int = 5000,
    seed: int = 2024,
    targets_world: np.ndarray | None = None,
) -> SampleSet:
    """A fixed set of clean, complete OR-like views of held-out poses (same for every model);
    ``targets_world``: the 3D targets where their convention differs (mocap.raise_hips)."""
    gen = torch.Generator().manual_seed(seed)
    joints = torch.as_tensor(joints_world)
    targets = None if targets_world is None else torch.as_tensor(targets_world)
    if len(joints) > max_samples:
        keep = torch.randperm(len(joints), generator=gen)[:max_samples]
        joints = joints[keep]
        targets = None if targets is None else targets[keep]
    return make_samples(
        joints, gen, cameras, None, 0.0, mirror=False, or_only=True, targets_world=targets
    )


def evaluate_mocap(
    lifter: Lifter,
    joints_world: np.ndarray,
    cameras: CameraSampling,
    noise_px: float = 5.0,
    drop_rate: float = 0.3,
    max_samples: int = 5000,
    seed: int = 2024,
    targets_world: np.ndarray | None = None,
) -> list[EvalRow]:
    """Clean 2D, noisy 2D, random joint dropout, hidden legs and upper-body-only inputs."""
    clean = mocap_test_views(joints_world, cameras, max_samples, seed, targets_world)
    gen = torch.Generator().manual_seed(seed + 1)
    n = len(clean)
    noisy_kp = clean.keypoints2d + noise_px * torch.randn(clean.keypoints2d.shape, generator=gen)

    def masked(cfg: MaskSampling) -> SampleSet:
        return SampleSet(clean.keypoints2d, sample_masks(n, cfg, gen), clean.target3d)

    none = {"random": 0.0, "legs_hidden": 0.0, "upper_body_only": 0.0, "light_rate": 0.0}
    dropped = MaskSampling(**{**none, "random": 1.0, "random_rate": drop_rate})
    legs = MaskSampling(**{**none, "legs_hidden": 1.0})
    upper = MaskSampling(**{**none, "upper_body_only": 1.0})
    noisy = SampleSet(noisy_kp, clean.mask, clean.target3d)
    return [
        _row("mocap hold-out, ground-truth 2D", lifter, clean),
        _row(f"mocap hold-out, 2D noise {noise_px:g} px", lifter, noisy),
        _row(f"mocap hold-out, {drop_rate:.0%} joints dropped", lifter, masked(dropped)),
        _row("mocap hold-out, legs hidden", lifter, masked(legs)),
        _row("mocap hold-out, 8 upper-body joints only", lifter, masked(upper)),
    ]


@dataclass
class MvorViews:
    """MVOR 3D poses seen by each camera: pixels, visibility, 3D root-relative (camera frame)."""

    keypoints2d: np.ndarray  # (M,17,2)
    visibility: np.ndarray  # (M,17) MVOR's flag: 0 absent, 1 occluded, 2 visible
    target3d: np.ndarray  # (M,17,3) mm, root-relative, that camera's frame
    camera: np.ndarray  # (M,) 0-based camera index
    in_image: np.ndarray  # (M,) all given joints project inside the image, in front of it


def mvor_views(dataset: MvorDataset) -> MvorViews:
    """Project every 3D pose into every camera with its real intrinsics and extrinsics."""
    kps, vis, tgt, cams, inside = [], [], [], [], []
    for pose in dataset.poses3d:
        for k, camera in enumerate(dataset.cameras):
            pts = mvor_to_coco(pose.in_camera(camera)[:NUM_MVOR_KEYPOINTS])  # (17, 4)
            uv = camera.project(pts[:, :3])
            given = pts[:, 3] > 0
            w, h = camera.image_size
            ok = (pts[given, 2] > 0) & (uv[given, 0] >= 0) & (uv[given, 0] < w)
            ok &= (uv[given, 1] >= 0) & (uv[given, 1] < h)
            kps.append(uv)
            vis.append(pts[:, 3])
            tgt.append(root_relative(pts[:, :3]))
            cams.append(k)
            inside.append(bool(ok.all()))
    return MvorViews(np.array(kps), np.array(vis), np.array(tgt), np.array(cams), np.array(inside))


def _mvor_row(
    name: str, lifter: Lifter, views: MvorViews, keep: np.ndarray, given: np.ndarray
) -> EvalRow:
    """MPJPE over the upper-body joints that are given (the others are not annotated)."""
    samples = SampleSet(
        torch.as_tensor(views.keypoints2d[keep], dtype=torch.float32),
        torch.as_tensor(given[keep], dtype=torch.float32),
        torch.as_tensor(views.target3d[keep], dtype=torch.float32),
    )
    pred = predict(lifter, samples)
    err = mpjpe(pred, views.target3d[keep], UPPER_BODY_JOINTS, valid=given[keep])
    return EvalRow(name, int(keep.sum()), None, err)


def evaluate_mvor(lifter: Lifter, path: Path | str) -> list[EvalRow]:
    """MPJPE-8 on MVOR's 1061 3D poses x 3 cameras, upper-body joints only as input."""
    dataset = MvorDataset(path)
    views = mvor_views(dataset)
    given = views.visibility > 0  # only MVOR's joints that have a COCO twin are > 0
    everyone = np.ones(len(views.camera), dtype=bool)
    rows = [
        _mvor_row(f"MVOR real 3D, camera {k + 1}", lifter, views, views.camera == k, given)
        for k in range(len(dataset.cameras))
    ]
    rows.append(_mvor_row("MVOR real 3D, all cameras", lifter, views, everyone, given))
    rows.append(
        _mvor_row("MVOR, poses fully inside the image", lifter, views, views.in_image, given)
    )
    rows.append(
        _mvor_row(
            "MVOR, only joints flagged visible (v=2)",
            lifter,
            views,
            everyone,
            views.visibility == 2,
        )
    )
    return rows


def format_table(rows: list[EvalRow]) -> str:
    """A fixed-width text table (mm)."""
    width = max(len(r.name) for r in rows)
    lines = [f"{'set':<{width}}  {'n':>6}  {'MPJPE-17':>9}  {'MPJPE-8 upper':>13}"]
    lines.append("-" * len(lines[0]))
    for r in rows:
        a = "-" if r.mpjpe_all is None else f"{r.mpjpe_all:.1f}"
        u = "-" if r.mpjpe_upper is None else f"{r.mpjpe_upper:.1f}"
        lines.append(f"{r.name:<{width}}  {r.n:>6}  {a:>9}  {u:>13}")
    return "\n".join(lines)
