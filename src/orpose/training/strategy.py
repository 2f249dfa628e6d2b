"""What training does differently for each student family: the strategy interface.

:class:`orpose.training.trainer.Trainer` is one loop (checkpoints, exact resume, logs,
accumulation, the final weight mix, DistributedDataParallel); each student family's registry
entry (:mod:`orpose.student.registry`, ``strategy``) names the :class:`TrainingStrategy` that
builds its starting model, its batches and its losses:

- :class:`orpose.training.keypoint_rcnn.KeypointRCNNStrategy`: the paper's student on images
  of pseudo labels, its starting weights from torchvision's Keypoint R-CNN file;
- :class:`orpose.training.topdown.TopDownStrategy`: the CPU student on person crops and whole
  images, distilled from the teacher's outputs.

The losses themselves are the student's (its heads own them, as detectron2's do), weighted
there by ``student.loss_weights`` (:func:`orpose.student.losses.weighted_losses`); the loop sums
what :meth:`TrainingStrategy.losses` returns.
"""

from __future__ import annotations

import importlib
from typing import Any

import torch

from orpose.student.registry import family_of


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The student inside a DistributedDataParallel wrapper (and a training view of it)."""
    model = getattr(model, "module", model)
    return getattr(model, "student", model)


class TrainingStrategy:
    """The per-family part of training. ``trainer``: the loop it serves (its config, device,
    rank and world size, and ``start_state``, the starting weights where kept)."""

    # mixed precision (bfloat16 autocast) where ``solver.amp`` asks for it, on CUDA
    autocast = True

    def __init__(self, trainer: Any):  # the Trainer (not imported: it imports this module)
        self.trainer = trainer

    @property
    def config(self):
        return self.trainer.config

    @property
    def device(self) -> torch.device:
        return self.trainer.device

    @staticmethod
    def check_config(config: Any, source: str) -> None:
        """Refuse, before any work, settings of a training config (``source``: its file) that
        this family's training cannot honour (:class:`~orpose.errors.ConfigError`)."""

    def build_model(self) -> torch.nn.Module:
        """The student with its starting weights (``init_weights``, ``init_lifter``), on the
        device; seeded with ``solver.seed``."""
        raise NotImplementedError

    def keeps_start_state(self) -> bool:
        """Whether its losses need the starting weights (beyond the final weight mix)."""
        return False

    def make_loader(self, start: int) -> torch.utils.data.DataLoader:
        """Batches of iterations ``start`` .. ``solver.iterations`` (this rank's share)."""
        raise NotImplementedError

    def distributed_module(self, model: torch.nn.Module) -> torch.nn.Module:
        """The module DistributedDataParallel wraps: its ``forward`` must be what a training
        step calls, since DDP averages gradients only after a pass through its own forward."""
        return model

    def batch_count(self, batch: Any) -> int:
        """Training samples in a batch, for the images/s log column."""
        raise NotImplementedError

    def micro_batches(self, batch: Any) -> list[Any]:
        """The non-empty parts of a batch that go through the network one after the other
        (gradient accumulation), each on the device; one by default."""
        return [batch]

    def losses(self, model: torch.nn.Module, batch: Any) -> dict[str, torch.Tensor]:
        """The weighted loss terms of one micro-batch through ``model`` (the DDP wrapper under
        torchrun): the step minimises their sum, and each is logged."""
        raise NotImplementedError


def strategy_class(config: Any) -> type[TrainingStrategy]:
    """The training strategy of a training config's student family (its registry entry)."""
    module, name = family_of(config.student).strategy.split(":")
    return getattr(importlib.import_module(module), name)
