"""The 2D-to-3D lifter: Martinez et al. (2017)'s residual MLP, taking a joint mask as input.

``Lifter.forward(keypoints2d, mask)`` takes RAW pixel coordinates and does all the normalisation
itself, differentiably, so the student can embed it in its graph:

1. masked joints are zeroed; the visible joints are centred on their mean and divided by their
   RMS spread (translation and scale invariance: the same pose at any size or place);
2. the normalised joints are standardised with statistics of the training data (buffers),
   then masked joints are zeroed again, so their input coordinates cannot influence the output;
3. the network sees [normalised 2D (34), mask (17), standardised centre (2) and log-spread (1)];
   centre and spread tell it where in the (MVOR-like, 640x480, f ~538 px) image the person is,
   which changes the viewing direction, and how far away;
4. the output (51) is un-standardised to mm and re-rooted at its own mid-hips, so the result is
   exactly root-relative;
5. in eval mode, the two hips are pushed out to at least the training targets' median hip
   half-width (``hip_half_width``, fitted with the statistics; 0 in lifters fitted before it:
   off). A lifter trained on a squared error hedges over which hip is nearer the camera by
   pulling both towards the root; a body's hips do not come closer together, so only their
   spread is restored, along the direction the network gave (docs/lifting.md, "A floor on
   the hip width").

BatchNorm needs two samples in training mode; with a batch of 0 or 1 the layers use their
running statistics instead (as in eval mode), so any batch size works in either mode.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from orpose.skeleton import NUM_KEYPOINTS, ROOT_JOINTS

MIN_SPREAD_PX = 1.0  # the RMS spread of one visible joint is 0: keep the division finite


@dataclass
class LifterConfig:
    """Architecture of the lifter (saved in checkpoints so that loading needs nothing else)."""

    num_joints: int = NUM_KEYPOINTS
    hidden: int = 1024
    blocks: int = 2
    dropout: float = 0.1  # Martinez: 0.5 for ~200 epochs; 0.1 measured best for minutes of CPU

    def to_dict(self) -> dict:
        return asdict(self)


class SafeBatchNorm1d(nn.BatchNorm1d):
    """BatchNorm1d that falls back to running statistics for batches of fewer than 2 samples."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training and x.shape[0] < 2:
            return F.batch_norm(
                x, self.running_mean, self.running_var, self.weight, self.bias, False, 0.0, self.eps
            )
        return super().forward(x)


class _Layer(nn.Sequential):
    """Linear -> BatchNorm -> ReLU -> Dropout, Martinez's building block."""

    def __init__(self, n_in: int, n_out: int, dropout: float):
        super().__init__(
            nn.Linear(n_in, n_out),
            SafeBatchNorm1d(n_out),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
        )


class ResidualBlock(nn.Module):
    """Two layers with a skip connection around them."""

    def __init__(self, width: int, dropout: float):
        super().__init__()
        self.layers = nn.Sequential(_Layer(width, width, dropout), _Layer(width, width, dropout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.layers(x)


def normalise_2d(
    keypoints2d: torch.Tensor, mask: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Centre and scale the visible joints: (N,17,2) normalised, (N,2) centre, (N,1) log-spread.

    Masked joints come out as exactly 0 whatever their input (even NaN).
    """
    m = mask.unsqueeze(-1)
    kp = torch.where(m > 0, keypoints2d, torch.zeros_like(keypoints2d))
    count = m.sum(dim=1).clamp(min=1.0)  # (N,1)
    centre = kp.sum(dim=1) / count
    offsets = (kp - centre[:, None, :]) * m
    spread = torch.sqrt((offsets**2).sum(dim=(1, 2)) / count[:, 0] + 1e-6).clamp(min=MIN_SPREAD_PX)
    return offsets / spread[:, None, None], centre, torch.log(spread)[:, None]


class Lifter(nn.Module):
    """17 COCO keypoints in pixels plus a visibility mask -> 17 joints in mm, root-relative.

    Output frame: the camera's (x right, y down, z forward); root: mid-hips.
    """

    def __init__(self, config: LifterConfig | None = None, **overrides):
        super().__init__()
        cfg = config or LifterConfig()
        if overrides:
            cfg = LifterConfig(**{**cfg.to_dict(), **overrides})
        self.config = cfg
        j = cfg.num_joints
        self.in_features = 2 * j + j + 3
        self.stem = _Layer(self.in_features, cfg.hidden, cfg.dropout)
        self.blocks = nn.Sequential(
            *[ResidualBlock(cfg.hidden, cfg.dropout) for _ in range(cfg.blocks)]
        )
        self.head = nn.Linear(cfg.hidden, 3 * j)
        # Normalisation statistics, fitted on training data (fit_statistics) and saved with it.
        self.register_buffer("xy_mean", torch.zeros(j, 2))
        self.register_buffer("xy_std", torch.ones(j, 2))
        self.register_buffer("centre_mean", torch.tensor([320.0, 240.0]))
        self.register_buffer("centre_std", torch.tensor([200.0, 150.0]))
        self.register_buffer("log_spread_mean", torch.zeros(1))
        self.register_buffer("log_spread_std", torch.ones(1))
        self.register_buffer("out_mean", torch.zeros(j, 3))
        self.register_buffer("out_std", torch.full((j, 3), 100.0))
        self.register_buffer("hip_half_width", torch.zeros(()))  # mm; 0: no floor
        hip_mask = torch.zeros(j, 1)
        hip_mask[list(ROOT_JOINTS)] = 1.0
        self.register_buffer("hip_mask", hip_mask, persistent=False)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # lifters saved before the hip floor existed load as they were fitted: without it
        state_dict.setdefault(prefix + "hip_half_width", torch.zeros(()))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def features(self, keypoints2d: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """The network's input vector (N, in_features), fully normalised."""
        dtype = self.xy_mean.dtype
        mask = (mask > 0).to(dtype)
        xy, centre, log_spread = normalise_2d(keypoints2d.to(dtype), mask)
        xy = (xy - self.xy_mean) / self.xy_std * mask.unsqueeze(-1)
        centre = (centre - self.centre_mean) / self.centre_std
        log_spread = (log_spread - self.log_spread_mean) / self.log_spread_std
        return torch.cat([xy.flatten(1), mask, centre, log_spread], dim=1)

    def forward(self, keypoints2d: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """(N,17,2) pixels and (N,17) mask (> 0 = given) -> (N,17,3) mm, mid-hips at the origin."""
        x = self.features(keypoints2d, mask)
        y = self.head(self.blocks(self.stem(x))).view(-1, self.config.num_joints, 3)
        y = y * self.out_std + self.out_mean
        root = (y[:, ROOT_JOINTS[0]] + y[:, ROOT_JOINTS[1]]) / 2.0
        y = y - root[:, None, :]
        # the floor corrects a prediction; training fits the network's own output (trained
        # through the floor, lifters lean on it and end 1-2 mm worse: docs/lifting.md)
        return y if self.training else self.widen_hips(y)

    def widen_hips(self, y: torch.Tensor) -> torch.Tensor:
        """Root-relative (N,J,3) poses with hips at least ``hip_half_width`` from the root.

        The root is the mid-hips, so the hips are opposite: scaling both by one factor keeps the
        root where it is. A pose whose hips coincide (no direction to push along) is kept."""
        half = torch.linalg.vector_norm(y[:, ROOT_JOINTS[0]], dim=-1)  # (N,)
        factor = torch.where(
            half > 1e-3, (self.hip_half_width / half.clamp(min=1e-3)).clamp(min=1.0), 1.0
        )
        return y * (1.0 + self.hip_mask * (factor[:, None, None] - 1.0))

    @torch.no_grad()
    def fit_statistics(
        self, keypoints2d: torch.Tensor, mask: torch.Tensor, target3d: torch.Tensor
    ) -> None:
        """Set the normalisation buffers from a sample of training inputs and targets."""
        mask = (mask > 0).float()
        xy, centre, log_spread = normalise_2d(keypoints2d.float(), mask)
        m = mask.unsqueeze(-1)
        count = m.sum(0).clamp(min=1.0)
        mean = (xy * m).sum(0) / count
        var = (((xy - mean) * m) ** 2).sum(0) / count
        self.xy_mean.copy_(mean)
        self.xy_std.copy_(var.sqrt().clamp(min=1e-3))
        self.centre_mean.copy_(centre.mean(0))
        self.centre_std.copy_(centre.std(0).clamp(min=1e-3))
        self.log_spread_mean.copy_(log_spread.mean(0))
        self.log_spread_std.copy_(log_spread.std(0).clamp(min=1e-3))
        targets = target3d.float()
        self.out_mean.copy_(targets.mean(0))
        self.out_std.copy_(targets.std(0).clamp(min=1.0))
        hips = targets[:, ROOT_JOINTS[0]] - targets[:, ROOT_JOINTS[1]]
        self.hip_half_width.copy_(torch.linalg.vector_norm(hips, dim=-1).median() / 2)

    @torch.no_grad()
    def lift_numpy(
        self, keypoints: np.ndarray, threshold: float = 0.0, batch_size: int = 4096
    ) -> np.ndarray:
        """(N,17,3) [x, y, confidence-or-visibility] -> (N,17,3) float64 mm, root-relative.

        A joint is given when its third value is above ``threshold``. Runs in eval mode (the
        module's mode is restored afterwards) on the module's device.
        """
        kp = np.asarray(keypoints, dtype=np.float64)
        if kp.ndim != 3 or kp.shape[1:] != (self.config.num_joints, 3):
            raise ValueError(f"lift_numpy expects (N, {self.config.num_joints}, 3), got {kp.shape}")
        was_training = self.training
        self.eval()
        device = self.xy_mean.device
        try:
            outs = []
            for start in range(0, len(kp), batch_size):
                chunk = torch.as_tensor(kp[start : start + batch_size], device=device)
                mask = (chunk[..., 2] > threshold).float()
                outs.append(self(chunk[..., :2].float(), mask).double().cpu().numpy())
        finally:
            self.train(was_training)
        if not outs:
            return np.zeros((0, self.config.num_joints, 3))
        return np.concatenate(outs)
