"""The official ORPose lifter (CAMMA-public/ORPose-Color), ported: Martinez et al.'s network on
16 Human3.6M joints built from COCO-17, with the official Human3.6M normalisation.

References are to ``keypoints_3d/keypoints3d_head.py`` (``StandardKeypoints3DHead``) and
``keypoints_3d/utils_eval.py`` (``MPJPE_Evaluator``) of the official repository.

What the official code does, and :class:`OfficialLifter` reproduces:

1. COCO -> Human3.6M-17 (``COCOtoH36``, lines 65 and 283-296): joint ``j`` takes COCO joint
   ``coco_to_h36_match[j]`` = (0, 12, 14, 16, 11, 13, 15, 0, 0, 0, 0, 5, 7, 9, 6, 8, 10), then
   pelvis (0) = mid-hips, "neck" (8) = mid-shoulders, "thorax" (7) = mid(pelvis, neck), and 9 and
   10 = mid-ears;
2. the 16 input joints drop index 8 (lines 242-248: ``[0:8] + [9:]``, x and y interleaved, 32
   numbers). In Martinez's 2D order (``dim_to_use_2d``: Hip, RHip, RKnee, RFoot, LHip, LKnee,
   LFoot, Spine, Thorax, Head, LShoulder, LElbow, LWrist, RShoulder, RElbow, RWrist) the Spine slot
   receives mid(pelvis, mid-shoulders) and both the Thorax and the Head slots receive the mid-ears:
   a quirk of the official code, kept;
3. input normalisation (lines 66-73, 250-256): ``(x - data_mean_2d[dim_to_use_2d]) /
   data_std_2d[dim_to_use_2d]``, on the keypoints in the pixels of the image the network saw. The
   official test mapper does not resize (``keypoints_3d/utils_db.py`` lines 136-153: down- then
   up-sampling back to the image's own size), so these are the input image's pixels;
4. the network (``make2Dto3DNetwork``, lines 112-179): ``w1`` 32 -> 1024, ``batch_norm1``, ReLU,
   dropout 0.5, two residual stages (``linear_stages.{0,1}``: ``w1``, ``batch_norm1``, ReLU,
   dropout, ``w2``, ``batch_norm2``, ReLU, dropout, plus the input), ``w2`` 1024 -> 48. The
   module names here are the official ones, so ``nw2Dto3D_soft.*`` / ``nw2Dto3D_hard.*`` weights
   load by renaming the prefix only (see :mod:`orpose.checkpoints.detectron2`);
5. output un-normalisation (``utils_eval.py`` ``unNormalizeData``, lines 34-48, and lines
   156-160): the 48 numbers go to ``dim_to_use_3d`` of a 96-vector of zeros, times
   ``data_std_3d`` plus ``data_mean_3d``, then the 17 joints ``[0, 1, 2] + dim_to_use_3d`` are kept
   (Human3.6M-17: Hip, RHip, RKnee, RFoot, LHip, LKnee, LFoot, Spine, Thorax, Neck/Nose, Head,
   LShoulder, LElbow, LWrist, RShoulder, RElbow, RWrist), in mm, camera frame (x right, y down,
   z forward; the official evaluator compares them with MVOR's camera-frame ground truth as they
   are). The root (Hip) is ``data_mean_3d[0:3]`` (0 in the official file): the pose is relative
   to the network's pelvis, not re-rooted at its own mid-hips (orpose's ``mpjpe`` re-roots both
   poses; ``mpjpe_official`` takes it as given, as the official evaluator).

Human3.6M-17 -> COCO-17 (orpose's output order): the 12 limb joints map one to one (the inverse
of step 1); COCO's face has no Human3.6M twin: the nose takes Neck/Nose (9, what the official
evaluator calls the head, ``H36toCAMMA`` line 51) and both eyes and both ears take Head (10).
None is NaN, so results stay valid JSON and pass the prediction checks; the 8 upper-body joints
of the MPJPE (shoulders, elbows, wrists, hips) are all direct.

The mask argument is accepted for the interface of :class:`orpose.lifting.Lifter` and ignored:
the official network has no notion of a missing joint (it lifts every predicted keypoint).

The statistics: the official ``data/h36stats.json`` (Martinez's Human3.6M statistics), which
orpose does not ship: the user points to it with ``--h36-stats FILE`` (``orpose predict``,
``export``, ``eval --model``) or the ``ORPOSE_H36_STATS`` environment variable. Once loaded they
are buffers of the module, saved in converted orpose checkpoints.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from orpose.errors import MissingResourceError, ModelError

KIND = "official_h36m"  # the ``lifter_config["kind"]`` that selects this lifter
H36_STATS_ENV = "ORPOSE_H36_STATS"
# keypoints3d_head.py line 65: Human3.6M joint j <- COCO joint COCO_TO_H36M_MATCH[j]
COCO_TO_H36M_MATCH: tuple[int, ...] = (0, 12, 14, 16, 11, 13, 15, 0, 0, 0, 0, 5, 7, 9, 6, 8, 10)
# keypoints3d_head.py lines 243-248: the 16 input joints (the mid-shoulders "neck", 8, dropped)
INPUT_JOINTS: tuple[int, ...] = (0, 1, 2, 3, 4, 5, 6, 7, 9, 10, 11, 12, 13, 14, 15, 16)
# COCO joint i <- Human3.6M-17 joint H36M_TO_COCO[i] (see the module docstring for the face)
H36M_TO_COCO: tuple[int, ...] = (9, 10, 10, 10, 10, 11, 14, 12, 15, 13, 16, 4, 1, 5, 2, 6, 3)
STATS_FIELDS: dict[str, int] = {
    "data_mean_2d": 64,
    "data_std_2d": 64,
    "dim_to_use_2d": 32,
    "data_mean_3d": 96,
    "data_std_3d": 96,
    "dim_to_use_3d": 48,
}
STAT_BUFFERS = ("mean_2d", "std_2d", "mean_3d", "std_3d")


@dataclass
class OfficialLifterConfig:
    """Architecture of the official lifter (``LinearModel`` defaults, keypoints3d_head.py
    line 140); ``kind`` names its entry of the lifter kinds
    (:func:`orpose.lifting.kinds.make_lifter`)."""

    kind: str = KIND
    hidden: int = 1024
    stages: int = 2
    dropout: float = 0.5

    def to_dict(self) -> dict:
        return asdict(self)


def h36_stats_path(path: Path | str | None = None) -> Path | None:
    """The statistics file: ``path``, else ``$ORPOSE_H36_STATS``, else None."""
    if path is None or str(path) == "":
        path = os.environ.get(H36_STATS_ENV) or None
    return Path(path).expanduser() if path is not None else None


def read_h36_stats(path: Path | str) -> dict[str, np.ndarray]:
    """The official ``h36stats.json`` as arrays, its structure checked (errors name the file)."""
    path = Path(path)
    if not path.is_file():
        raise MissingResourceError(f"{path}: no such Human3.6M statistics file (h36stats.json)")
    from orpose.data.coco import read_json  # any decoding failure: one line naming the file

    data = read_json(path)
    if not isinstance(data, dict):
        raise ModelError(f"{path}: expected a JSON object with {', '.join(STATS_FIELDS)}")
    out = {}
    for name, size in STATS_FIELDS.items():
        try:
            value = np.asarray(data[name], dtype=np.float64)
        except KeyError:
            raise ModelError(f"{path}: field '{name}' is missing") from None
        except (TypeError, ValueError):
            raise ModelError(f"{path}: field '{name}' is not a list of numbers") from None
        if value.shape != (size,) or not np.isfinite(value).all():
            raise ModelError(f"{path}: field '{name}' must hold {size} finite numbers")
        out[name] = value
    for name, full in (("dim_to_use_2d", 64), ("dim_to_use_3d", 96)):
        index = out[name]
        if (index != np.round(index)).any() or index.min() < 0 or index.max() >= full:
            raise ModelError(f"{path}: field '{name}' must hold indices in [0, {full})")
        if name == "dim_to_use_3d" and index.min() < 3:
            raise ModelError(f"{path}: field 'dim_to_use_3d' must not use the root (0..2)")
        out[name] = index.astype(np.int64)
    return out


def coco_to_h36m(keypoints: torch.Tensor) -> torch.Tensor:
    """``COCOtoH36`` (keypoints3d_head.py lines 283-296): ``(..., 17, C)`` COCO ->
    ``(..., 17, C)`` Human3.6M-17 with the official midpoints."""
    k = keypoints
    pelvis = (k[..., 11, :] + k[..., 12, :]) / 2.0
    neck = (k[..., 5, :] + k[..., 6, :]) / 2.0
    ears = (k[..., 3, :] + k[..., 4, :]) / 2.0
    joints = [k[..., c, :] for c in COCO_TO_H36M_MATCH]
    joints[0], joints[8], joints[7] = pelvis, neck, (pelvis + neck) / 2.0
    joints[9], joints[10] = ears, ears
    return torch.stack(joints, dim=-2)


class _Stage(nn.Module):
    """One residual stage of ``LinearModel`` (keypoints3d_head.py lines 113-137)."""

    def __init__(self, width: int, dropout: float):
        super().__init__()
        self.w1 = nn.Linear(width, width)
        self.batch_norm1 = nn.BatchNorm1d(width)
        self.w2 = nn.Linear(width, width)
        self.batch_norm2 = nn.BatchNorm1d(width)
        self.relu = nn.ReLU(inplace=True)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.dropout(self.relu(self.batch_norm1(self.w1(x))))
        y = self.dropout(self.relu(self.batch_norm2(self.w2(y))))
        return x + y


class MartinezNet(nn.Module):
    """``LinearModel`` (keypoints3d_head.py lines 139-177): 32 -> ``hidden`` -> stages -> 48."""

    def __init__(self, hidden: int = 1024, stages: int = 2, dropout: float = 0.5):
        super().__init__()
        self.w1 = nn.Linear(2 * len(INPUT_JOINTS), hidden)
        self.batch_norm1 = nn.BatchNorm1d(hidden)
        self.linear_stages = nn.ModuleList([_Stage(hidden, dropout) for _ in range(stages)])
        self.w2 = nn.Linear(hidden, 3 * len(INPUT_JOINTS))
        self.relu = nn.ReLU(inplace=True)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.dropout(self.relu(self.batch_norm1(self.w1(x))))
        for stage in self.linear_stages:
            y = stage(y)
        return self.w2(y)


class OfficialLifter(nn.Module):
    """17 COCO keypoints in pixels (+ an ignored mask) -> 17 joints in mm, COCO order, as the
    official ORPose network computes them (see the module docstring)."""

    def __init__(
        self,
        config: OfficialLifterConfig | None = None,
        stats: dict[str, np.ndarray] | None = None,
        **overrides,
    ):
        super().__init__()
        overrides.pop("kind", None)
        cfg = config or OfficialLifterConfig()
        if overrides:
            cfg = OfficialLifterConfig(**{**cfg.to_dict(), **overrides})
        if cfg.kind != KIND:
            raise ValueError(f"not an official lifter config (kind {cfg.kind!r})")
        self.config = cfg
        self.net = MartinezNet(cfg.hidden, cfg.stages, cfg.dropout)
        # statistics, set from h36stats.json (set_statistics) and saved with the weights
        self.register_buffer("mean_2d", torch.zeros(2 * len(INPUT_JOINTS)))
        self.register_buffer("std_2d", torch.ones(2 * len(INPUT_JOINTS)))
        self.register_buffer("mean_3d", torch.zeros(17 * 3))
        self.register_buffer("std_3d", torch.ones(17 * 3))
        if stats is not None:
            self.set_statistics(stats)

    @torch.no_grad()
    def set_statistics(self, stats: dict[str, np.ndarray]) -> None:
        """Buffers from :func:`read_h36_stats`'s arrays (steps 3 and 5 of the module docstring)."""
        use_2d = np.asarray(stats["dim_to_use_2d"], dtype=np.int64)
        use_3d = np.concatenate([np.arange(3), np.asarray(stats["dim_to_use_3d"], dtype=np.int64)])
        std_3d = np.asarray(stats["data_std_3d"], dtype=np.float64)[use_3d].copy()
        std_3d[:3] = 0.0  # the root: zeros times std plus mean (unNormalizeData) = the mean
        values = {
            "mean_2d": np.asarray(stats["data_mean_2d"], dtype=np.float64)[use_2d],
            "std_2d": np.asarray(stats["data_std_2d"], dtype=np.float64)[use_2d],
            "mean_3d": np.asarray(stats["data_mean_3d"], dtype=np.float64)[use_3d],
            "std_3d": std_3d,
        }
        for name, value in values.items():
            buffer = getattr(self, name)
            buffer.copy_(torch.as_tensor(value, dtype=buffer.dtype))

    def normalise(self, keypoints2d: torch.Tensor) -> torch.Tensor:
        """``(N, 17, 2)`` COCO pixels -> the network's input ``(N, 32)``."""
        h36m = coco_to_h36m(keypoints2d.to(self.mean_2d.dtype))
        x = h36m[:, list(INPUT_JOINTS), :].reshape(h36m.shape[0], -1)
        return (x - self.mean_2d) / self.std_2d

    def h36m(self, keypoints2d: torch.Tensor) -> torch.Tensor:
        """Human3.6M-17 ``(N, 17, 3)`` mm, as the official evaluator gets them."""
        out = self.net(self.normalise(keypoints2d))
        full = torch.cat([out.new_zeros((out.shape[0], 3)), out], dim=1)
        return (full * self.std_3d + self.mean_3d).view(-1, 17, 3)

    def forward(self, keypoints2d: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """(N, 17, 2) pixels (and an ignored (N, 17) mask) -> (N, 17, 3) mm, COCO order."""
        del mask  # the official network lifts every keypoint
        return self.h36m(keypoints2d)[:, list(H36M_TO_COCO), :]


def official_lifter_keys(stages: int = 2) -> list[str]:
    """The state-dict keys of the official network (``nw2Dto3D_*`` minus its prefix) with
    ``stages`` residual stages, num_batches_tracked excluded."""
    net = MartinezNet(hidden=1, stages=stages)
    return [k for k in net.state_dict() if not k.endswith("num_batches_tracked")]
