"""Training of the paper's student (Keypoint R-CNN, :mod:`orpose.student.model`): its strategy
for the shared loop (:class:`orpose.training.trainer.Trainer`).

Batches are images with their pseudo labels (:class:`orpose.training.dataset.PseudoLabelDataset`,
one per file of ``data.train``), ``solver.batch_size`` images per step, split into
``solver.accumulate`` micro-batches; the starting weights are torchvision's COCO Keypoint R-CNN
file or an orpose checkpoint (``init_weights``) and a lifter file (``init_lifter``). The losses
are the model's own (torchvision's RPN and box losses, the two-branch head's and the lifters'),
weighted by the model (``student.loss_weights``).
"""

from __future__ import annotations

import bisect
import dataclasses
import logging
import math

import torch

from orpose.checkpoints import load_lifters
from orpose.checkpoints.torchvision import (
    checkpoint_lifter_config,
    load_torchvision_keypointrcnn,
    read_weight_file,
)
from orpose.data.coco import load_pose_dataset
from orpose.data.lowres import LowResSchedule
from orpose.errors import ConfigError
from orpose.student.model import ORPoseStudent, build_student
from orpose.training.config import KEYPOINT_RCNN_WEIGHTS, TrainConfig
from orpose.training.dataset import PseudoLabelDataset
from orpose.training.sampler import IterationBatchSampler
from orpose.training.strategy import TrainingStrategy

log = logging.getLogger(__name__)
# backbones without a strided bottleneck 1x1 for student.stride_in_1x1 to move a stride into
_NO_BOTTLENECK = ("resnet18_fpn", "mobilenet_v3_fpn", "picodet_lcnet")


def collate(batch):
    return [b[0] for b in batch], [b[1] for b in batch]


def load_training_sets(config: TrainConfig) -> PseudoLabelDataset | torch.utils.data.ConcatDataset:
    """One dataset per pseudo-label file, concatenated (images of each file from its own root)."""
    if not config.data.train:
        raise ValueError("data.train lists no pseudo-label file")
    schedule = LowResSchedule.from_spec(config.data.lowres)
    sets = [
        PseudoLabelDataset(
            load_pose_dataset(path, config.data.image_root, check_images=True),
            schedule,
            config.data.flip,
            config.data.images_with_people_only,
        )
        for path in config.data.train
    ]
    return sets[0] if len(sets) == 1 else _Concat(sets)


class _Concat(torch.utils.data.ConcatDataset):
    """ConcatDataset whose items are (index, seed) pairs like PseudoLabelDataset's."""

    def __getitem__(self, item):
        index, seed = item
        d = bisect.bisect_right(self.cumulative_sizes, index)
        start = 0 if d == 0 else self.cumulative_sizes[d - 1]
        return self.datasets[d][(index - start, seed)]


class KeypointRCNNStrategy(TrainingStrategy):
    """Images and their pseudo labels through the Keypoint R-CNN student."""

    @staticmethod
    def check_config(config: TrainConfig, source: str) -> None:
        """Refuse a ``stride_in_1x1`` without strided bottlenecks, a random backbone that
        ``init_weights`` would overwrite, and a start from random weights under frozen batch
        norm; errors name the file (``source``) and the key."""
        st = config.student
        if st.stride_in_1x1 and st.backbone in _NO_BOTTLENECK:
            raise ConfigError(
                f"{source}: student.stride_in_1x1: has no effect on {st.backbone} (no strided "
                "bottleneck 1x1 convolutions; resnet50_fpn has them)"
            )
        if config.init_weights and st.backbone_init == "random":
            raise ConfigError(
                f"{source}: student.backbone_init: random has no effect when init_weights "
                f"({config.init_weights}) loads the backbone's weights"
            )
        random_start = st.backbone != "picodet_lcnet" or st.backbone_init == "random"
        if not config.init_weights and random_start and st.norm == "frozen_bn":
            raise ConfigError(
                f"{source}: init_weights: not set, so the {st.backbone} student would start from "
                "random weights under frozen batch norm (student.norm: frozen_bn); give its "
                f"starting weights (resnet50_fpn: torchvision's COCO Keypoint R-CNN file "
                f'{KEYPOINT_RCNN_WEIGHTS} in the models folder, init_weights: "{{models}}/'
                f'{KEYPOINT_RCNN_WEIGHTS}"), or train from scratch with student.norm: gn'
            )

    def build_model(self) -> ORPoseStudent:
        config = self.config
        torch.manual_seed(config.solver.seed)
        log.info("starting weights: %s", config.init_weights or "as built (no init_weights)")
        saved = read_weight_file(config.init_weights) if config.init_weights else None
        lifter_config = checkpoint_lifter_config(saved) if saved is not None else None
        if lifter_config is not None and not config.init_lifter:
            # fine-tuning an orpose checkpoint (stage 2): its lifters came from a lifter file
            # whose architecture the checkpoint records; build the same ones to load them
            config.student = dataclasses.replace(config.student, lifter_config=lifter_config)
        model = build_student(config.student)
        if saved is not None:
            load_torchvision_keypointrcnn(model, config.init_weights, saved)
        if config.init_lifter:
            load_lifters(model, config.init_lifter)
        return model.to(self.device)

    def make_loader(self, start: int) -> torch.utils.data.DataLoader:
        s, t = self.config.solver, self.trainer
        dataset = load_training_sets(self.config)
        sampler = IterationBatchSampler(
            len(dataset), s.batch_size, s.seed, start, s.iterations, t.rank, t.world_size
        )
        return torch.utils.data.DataLoader(
            dataset,
            batch_sampler=sampler,
            collate_fn=collate,
            num_workers=self.config.data.num_workers,
            # its own generator: creating the loader must not consume the global RNG (resume)
            generator=torch.Generator().manual_seed(s.seed),
        )

    def batch_count(self, batch) -> int:
        return len(batch[0])

    def micro_batches(self, batch) -> list[tuple[list, list]]:
        """``solver.accumulate`` parts of the batch's images and targets (fewer where the batch
        has fewer images; none empty), on the device."""
        images, targets = batch
        if not images:
            return []
        chunks = max(1, min(self.config.solver.accumulate, len(images)))
        size = math.ceil(len(images) / chunks)
        parts = []
        for start in range(0, len(images), size):
            imgs = [im.to(self.device) for im in images[start : start + size]]
            tgts = [{k: v.to(self.device) for k, v in t.items()}
                    for t in targets[start : start + size]]  # fmt: skip
            parts.append((imgs, tgts))
        return parts

    def losses(self, model, batch) -> dict[str, torch.Tensor]:
        images, targets = batch
        return model(images, targets)  # weighted by the model (student.loss_weights)
