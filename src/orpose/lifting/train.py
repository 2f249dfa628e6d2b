"""Training the lifter on motion capture: fresh virtual views every epoch, resumable.

The loss is MPJPE itself (mean joint distance in mm over all 17 joints, given or not), so the
progress bar reads in millimetres. Adam with a learning rate decaying geometrically from ``lr``
to ``lr * lr_final_ratio`` over the epochs. A checkpoint (model, statistics, config, optimizer,
history) is written atomically after every epoch; ``resume`` continues from it.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from orpose.config import build
from orpose.lifting.cameras import CameraSampling
from orpose.lifting.checkpoint import (
    lifter_from_checkpoint,
    read_checkpoint,
    save_lifter,
)
from orpose.lifting.evaluate import mocap_test_views, mpjpe, predict
from orpose.lifting.mocap import H36M_TORSO_TO_THIGH, MocapSet, load_mocap_folder
from orpose.lifting.model import Lifter, LifterConfig
from orpose.lifting.synth import MaskSampling, make_samples

log = logging.getLogger(__name__)


@dataclass
class TrainConfig:
    """Everything that defines a training run (saved in the checkpoint)."""

    mocap: str = ""
    fps: float = 30.0
    test_subjects: tuple[int, ...] = (6, 9)
    epochs: int = 25
    batch_size: int = 256
    lr: float = 1e-3
    lr_final_ratio: float = 0.05
    noise_px: tuple[float, float] = (0.0, 6.0)  # per-sample Gaussian sigma range
    seed: int = 0
    stats_samples: int = 20000
    val_samples: int = 2000
    # the 3D targets' hips (mocap.raise_hips): Human3.6M's, as the paper's lifter; 0: CMU's
    torso_to_thigh: float = H36M_TORSO_TO_THIGH
    model: LifterConfig = field(default_factory=LifterConfig)
    cameras: CameraSampling = field(default_factory=CameraSampling)
    masks: MaskSampling = field(default_factory=MaskSampling)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict, where: str = "lifter training config") -> TrainConfig:
        """A checked config (see :func:`orpose.config.build`); errors name ``where``.

        A config saved before ``torso_to_thigh`` existed trained on CMU's own hips (0).
        """
        return build(cls, {"torso_to_thigh": 0.0, **d}, where)


def split_by_subject(data: MocapSet, test_subjects: tuple[int, ...]) -> tuple[MocapSet, MocapSet]:
    """Train and test poses (world, mm): no subject is in both."""
    train, test = data.by_subjects(test_subjects, include=False), data.by_subjects(test_subjects)
    if len(train) == 0 or len(test) == 0:
        raise ValueError(
            f"subject split {test_subjects} leaves an empty set (subjects: "
            f"{sorted(set(data.subjects.tolist()))})"
        )
    return train, test


def load_training_data(cfg: TrainConfig, cache: Path | None) -> tuple[MocapSet, MocapSet]:
    """Parse (or reuse the cache of) the BVH folder and split it by subject."""
    data = load_mocap_folder(cfg.mocap, cfg.fps, cache, cfg.torso_to_thigh)
    return split_by_subject(data, cfg.test_subjects)


def epoch_lr(cfg: TrainConfig, epoch: int) -> float:
    """Geometric decay from ``lr`` (first epoch) to ``lr * lr_final_ratio`` (last)."""
    frac = epoch / max(cfg.epochs - 1, 1)
    return cfg.lr * cfg.lr_final_ratio**frac


def _fit_statistics(
    lifter: Lifter,
    train_joints: torch.Tensor,
    cfg: TrainConfig,
    train_targets: torch.Tensor | None = None,
) -> None:
    gen = torch.Generator().manual_seed(cfg.seed + 10_000)
    idx = torch.randint(len(train_joints), (cfg.stats_samples,), generator=gen)
    targets = None if train_targets is None else train_targets[idx]
    s = make_samples(
        train_joints[idx], gen, cfg.cameras, cfg.masks, cfg.noise_px, targets_world=targets
    )
    lifter.fit_statistics(s.keypoints2d, s.mask, s.target3d)


def _train_epoch(
    lifter: Lifter,
    optimizer: torch.optim.Optimizer,
    train_joints: torch.Tensor,
    train_targets: torch.Tensor,
    cfg: TrainConfig,
    epoch: int,
    bar,
) -> float:
    """One pass over the training poses, each through a new random camera; mean loss (mm)."""
    gen = torch.Generator().manual_seed(cfg.seed * 1000 + epoch)
    samples = make_samples(
        train_joints, gen, cfg.cameras, cfg.masks, cfg.noise_px, targets_world=train_targets
    )
    order = torch.randperm(len(samples), generator=gen)
    lifter.train()
    for group in optimizer.param_groups:
        group["lr"] = epoch_lr(cfg, epoch)
    total, count = 0.0, 0
    n_batches = max(len(order) // cfg.batch_size, 1)  # drop the ragged last batch
    for b in range(n_batches):
        idx = order[b * cfg.batch_size : (b + 1) * cfg.batch_size]
        pred = lifter(samples.keypoints2d[idx], samples.mask[idx])
        loss = (pred - samples.target3d[idx]).norm(dim=-1).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        total += loss.item() * len(idx)
        count += len(idx)
        if bar is not None:
            bar.update(1)
            bar.set_postfix(epoch=epoch + 1, loss_mm=f"{total / count:.1f}", refresh=False)
    return total / max(count, 1)


@dataclass
class TrainResult:
    """What a run produced: the checkpoint, its history, and the time it took."""

    checkpoint: Path
    history: list[dict]
    elapsed_s: float
    lifter: Lifter


def train_lifter(
    cfg: TrainConfig,
    out: Path | str,
    train_joints: np.ndarray,
    val_joints: np.ndarray,
    resume: bool = False,
    progress: bool = True,
    train_targets: np.ndarray | None = None,
    val_targets: np.ndarray | None = None,
) -> TrainResult:
    """Train (or continue training) a lifter and checkpoint it to ``out`` after every epoch.

    With ``resume`` and an existing ``out``, the checkpoint's model, optimizer and history are
    restored and training continues at the next epoch up to ``cfg.epochs`` (which may be raised).
    ``*_targets``: the 3D targets where their joint convention differs from the joints' (the
    2D is projected from the joints); ``None``: the joints themselves.
    """
    out = Path(out)
    torch.manual_seed(cfg.seed)
    train_t = torch.as_tensor(train_joints, dtype=torch.float32)
    train_y = train_t if train_targets is None else torch.as_tensor(train_targets).float()
    val = mocap_test_views(
        val_joints, cfg.cameras, cfg.val_samples, seed=cfg.seed + 777, targets_world=val_targets
    )
    history: list[dict] = []
    start_epoch, elapsed = 0, 0.0
    lifter = Lifter(cfg.model)
    optimizer = torch.optim.Adam(lifter.parameters(), lr=cfg.lr)
    if resume and out.is_file():
        payload = read_checkpoint(out)
        lifter = lifter_from_checkpoint(payload)
        optimizer = torch.optim.Adam(lifter.parameters(), lr=cfg.lr)
        optimizer.load_state_dict(payload["extra"]["optimizer"])
        history = list(payload["extra"].get("history", []))
        start_epoch = int(payload["extra"]["epoch"]) + 1
        elapsed = float(payload["extra"].get("elapsed_s", 0.0))
        log.info("resuming %s at epoch %d/%d", out, start_epoch + 1, cfg.epochs)
    else:
        if resume:
            log.info("no checkpoint at %s: starting a new run", out)
        _fit_statistics(lifter, train_t, cfg, train_y)

    n_batches = max(len(train_t) // cfg.batch_size, 1)
    bar = None
    if progress:
        bar = tqdm(total=(cfg.epochs - start_epoch) * n_batches, desc="lift train", unit="batch")
    try:
        for epoch in range(start_epoch, cfg.epochs):
            t0 = time.perf_counter()
            loss = _train_epoch(lifter, optimizer, train_t, train_y, cfg, epoch, bar)
            val_mm = mpjpe(predict(lifter, val), val.target3d.double().numpy())
            elapsed += time.perf_counter() - t0
            history.append(
                {
                    "epoch": epoch + 1,
                    "train_loss_mm": loss,
                    "val_mpjpe_mm": val_mm,
                    "lr": epoch_lr(cfg, epoch),
                    "elapsed_s": elapsed,
                }
            )
            if bar is not None:
                bar.set_postfix(epoch=epoch + 1, loss_mm=f"{loss:.1f}", val_mm=f"{val_mm:.1f}")
            extra = {
                "epoch": epoch,
                "optimizer": optimizer.state_dict(),
                "history": history,
                "elapsed_s": elapsed,
                "train_poses": len(train_t),
                "val_poses": len(val_joints),
            }
            save_lifter(lifter, out, cfg.to_dict(), extra)
    finally:
        if bar is not None:
            bar.close()
    lifter.eval()
    return TrainResult(out, history, elapsed, lifter)
