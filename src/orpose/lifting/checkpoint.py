"""Lifter checkpoints: architecture, weights, normalisation statistics and the training config.

One file is enough to rebuild the lifter: ``{"format", "version", "model", "state_dict",
"config", "extra"}``. The statistics are buffers of the module, so they travel in the state dict;
they are also copied under ``extra["statistics"]`` as plain lists for people reading the file.
Files are written and read through :mod:`orpose.safe_checkpoint`, as every checkpoint: written
atomically (a crash mid-write never leaves a truncated checkpoint), loaded without running code;
every problem with a file is a :class:`~orpose.errors.ModelError` naming it.
"""

from __future__ import annotations

from pathlib import Path

import torch

from orpose.errors import ModelError
from orpose.lifting.model import Lifter, LifterConfig
from orpose.safe_checkpoint import read_checkpoint as read_file
from orpose.safe_checkpoint import write_checkpoint

FORMAT = "orpose-lifter"
VERSION = 1
STATISTIC_BUFFERS = (
    "xy_mean", "xy_std", "centre_mean", "centre_std", "log_spread_mean", "log_spread_std",
    "out_mean", "out_std", "hip_half_width",
)  # fmt: skip


def save_lifter(
    lifter: Lifter, path: Path | str, config: dict | None = None, extra: dict | None = None
) -> Path:
    """Write a lifter with its training ``config`` and ``extra`` (plain types and tensors)."""
    stats = {name: getattr(lifter, name).detach().cpu().tolist() for name in STATISTIC_BUFFERS}
    payload = {
        "format": FORMAT,
        "version": VERSION,
        "model": lifter.config.to_dict(),
        "state_dict": {k: v.detach().cpu() for k, v in lifter.state_dict().items()},
        "config": dict(config or {}),
        "extra": {**(extra or {}), "statistics": stats},
    }
    return write_checkpoint(payload, path)


def read_checkpoint(path: Path | str, map_location: str | torch.device = "cpu") -> dict:
    """The raw checkpoint dict, checked to be an orpose lifter."""
    payload = read_file(path, map_location)
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ModelError(f"{path}: not an orpose lifter checkpoint (no format '{FORMAT}')")
    if payload.get("version", 0) > VERSION:
        raise ModelError(f"{path}: lifter checkpoint version {payload['version']} is too new")
    return payload


def lifter_from_checkpoint(payload: dict) -> Lifter:
    """Rebuild the module (train mode) from a checkpoint dict."""
    lifter = Lifter(LifterConfig(**payload["model"]))
    lifter.load_state_dict(payload["state_dict"])
    return lifter


def load_lifter(path: Path | str, map_location: str | torch.device = "cpu") -> Lifter:
    """Load a lifter in eval mode; the file holds everything (architecture and statistics)."""
    payload = read_checkpoint(path, map_location)
    lifter = lifter_from_checkpoint(payload).to(map_location)
    return lifter.eval()
