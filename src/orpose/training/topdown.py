"""Distillation training of the top-down CPU student (:mod:`orpose.student.topdown`).

Both parts learn low resolution from the teacher at full resolution, in the same iterations:

- pose: ``batch_size`` person crops of degraded images against the teacher pose model's heatmaps
  of the clean crops (``loss_kp2d_kd``) and against the pseudo labels (``loss_kp2d_soft``,
  ``loss_kp2d_hard``: the paper's two sets, one per branch), plus the lifters' losses;
- detection: ``detector_batch_size`` degraded images against the teacher detector's per-cell
  scores (``loss_det_cls``, a quality focal loss) and boxes (``loss_det_box``, GFL's distribution
  focal loss on the teacher's distances) on the clean images.

The losses are the student's (:meth:`orpose.student.topdown.TopDownStudent.losses`, the
detector's beside it: :meth:`orpose.student.picodet.PicoDet.distillation_losses`), weighted there;
this module is the family's strategy for the shared loop (:class:`TopDownStrategy`): its starting
model, its batches (the teacher's targets made on the fly, :mod:`orpose.training.distillation_data`)
and the one forward pass that feeds the losses.

At 1x the distillation targets are the starting network's own outputs, so they also keep the
student where it started (the 1x accuracy the paper's student must not lose);
``solver.anchor_weight`` adds a pull of every weight towards its starting value (L2-SP).
"""

from __future__ import annotations

import dataclasses

import torch

from orpose.data.coco import load_pose_dataset
from orpose.data.lowres import LowResSchedule
from orpose.errors import ConfigError
from orpose.student.picodet import LevelOutputs
from orpose.training.distillation_data import (
    Augmentation,
    DistillationData,
    TeacherOutputs,
    collate,
    undistillable_native_size,
)
from orpose.training.sampler import samples_for_iteration
from orpose.training.strategy import TrainingStrategy, unwrap


class DistillationForward(torch.nn.Module):
    """The student's training forward: heatmaps of crop batches and detector levels of image
    batches in one call, so that DistributedDataParallel (which averages gradients only for
    passes through its wrapped module's ``forward``) sees every output."""

    def __init__(self, student: torch.nn.Module):
        super().__init__()
        self.student = student

    def forward(
        self, crops: list[torch.Tensor], views: list[torch.Tensor], native: list[bool]
    ) -> tuple[list[tuple[torch.Tensor, torch.Tensor]], list[list[LevelOutputs]]]:
        """Heatmaps of each crop batch (``native[i]``: through the native path's head) and the
        detector levels of each image batch."""
        heads = [self.student.head_for(n)(c) for c, n in zip(crops, native, strict=True)]
        return heads, [self.student.detector.levels(v) for v in views]


class TopDownStrategy(TrainingStrategy):
    """The top-down student's data and losses for the shared loop (checkpoints, exact resume,
    logs). ``solver.batch_size`` = person crops, ``solver.detector_batch_size`` = images."""

    autocast = False  # float32 on every device

    @staticmethod
    def check_config(config, source: str) -> None:
        """Refuse, before any work, native-path sizes that cannot be distilled when the native
        path is trained (``data.native_share`` > 0): its detector input must be the full one
        divided by 1, 2, 4... (the teacher's levels then line up), its crops at most half the
        full crops, with their aspect. Errors name the file (``source``) and the key."""
        st, d = config.student, config.data
        if st.native_max_side <= 0 or d.native_share <= 0:
            return
        native = (st.native_detector_size, st.native_crop_size)
        key = undistillable_native_size(st.detector_size, st.crop_size, native)
        if key == "native_detector_size":
            raise ConfigError(
                f"{source}: student.native_detector_size: {list(st.native_detector_size)} must "
                f"be student.detector_size {list(st.detector_size)} divided by 1, 2, 4... for "
                "the native path to be trained (data.native_share > 0)"
            )
        if key == "native_crop_size":
            raise ConfigError(
                f"{source}: student.native_crop_size: {list(st.native_crop_size)} must keep the "
                f"aspect of student.crop_size {list(st.crop_size)} and be at most half of it for "
                "the native path to be trained (data.native_share > 0)"
            )

    def build_model(self):
        from orpose.student.registry import build_student

        torch.manual_seed(self.config.solver.seed)
        model = build_student(self.config.student)
        if self.config.init_weights:
            from orpose.checkpoints import load_weights_into

            load_weights_into(model, self.config.init_weights)
        if self.config.init_lifter:
            from orpose.lifting import load_lifter

            model.set_lifters(load_lifter(self.config.init_lifter))
            self.config.student = dataclasses.replace(
                self.config.student, lifter_config=model.head.lifter_config
            )
        model.config = self.config.student
        if model.native_head is not None and self.config.data.native_share == 0:
            # the native path is not trained: its head stays out of the optimizer (no weight
            # decay, no pull towards its start, no optimizer state)
            model.native_head.requires_grad_(False)
        # built in NHWC (TopDownStudent.MEMORY_FORMAT), which .to keeps; inputs are made NHWC too
        return model.to(self.device)

    def keeps_start_state(self) -> bool:
        return self.config.solver.anchor_weight > 0  # the pull towards the start

    def make_loader(self, start: int) -> torch.utils.data.DataLoader:
        s, d = self.config.solver, self.config.data
        data = self.dataset()
        n_persons, n_images = len(data.persons), len(data.images)
        rank, world_size = self.trainer.rank, self.trainer.world_size

        def batches():
            for it in range(start, s.iterations):
                people = samples_for_iteration(
                    n_persons, s.batch_size, s.seed, it, rank, world_size
                )
                images = samples_for_iteration(
                    n_images, s.detector_batch_size, s.seed + 1, it, rank, world_size
                ) if s.detector_batch_size else []  # fmt: skip
                yield [("person", i, seed) for i, seed in people] + [
                    ("image", i, seed) for i, seed in images
                ]

        return torch.utils.data.DataLoader(
            data,
            batch_sampler=list(batches()),
            collate_fn=collate,
            num_workers=d.num_workers,
            generator=torch.Generator().manual_seed(s.seed),
        )

    def dataset(self) -> DistillationData:
        from orpose.manifest import find_model, load_manifest, verify_model
        from orpose.paths import models_dir

        c, d = self.config.student, self.config.data
        if not d.train:
            raise ValueError("data.train lists no pseudo-label file")
        manifest = load_manifest()
        det = verify_model(find_model(c.detector, manifest, "detector"), models_dir())
        pose = verify_model(find_model(c.pose_model, manifest, "pose"), models_dir())
        sets = [load_pose_dataset(p, d.image_root, check_images=True) for p in d.train]
        aug = Augmentation(
            flip=d.flip,
            scale_jitter=d.scale_jitter,
            shift_jitter=d.shift_jitter,
            rotation=d.rotation,
            rotation_prob=d.rotation_prob,
            image_crop=d.image_crop,
            native_share=d.native_share,
        )
        native = None
        if c.native_max_side > 0 and d.native_share > 0:
            native = (c.native_detector_size, c.native_crop_size)
        return DistillationData(
            sets,
            LowResSchedule.from_spec(d.lowres),
            TeacherOutputs(det, pose, threads=torch.get_num_threads()),
            c.crop_size,
            c.detector_size,
            c.box_padding,
            aug,
            native,
        )

    def distributed_module(self, model: torch.nn.Module) -> torch.nn.Module:
        return DistillationForward(model)

    def batch_count(self, batch) -> int:
        return len(batch["people"]["crop"]) if "people" in batch else 0

    def losses(self, model, batch) -> dict[str, torch.Tensor]:
        """The student's weighted losses on the batch (one pass through ``model``, the DDP
        wrapper under torchrun), and ``loss_anchor`` (``solver.anchor_weight`` x the squared
        distance of the trainable weights to their start) where asked."""
        core = unwrap(model)

        def nhwc(images: torch.Tensor) -> torch.Tensor:
            x = core.normalise(images.to(self.device).permute(0, 3, 1, 2).float() / 255.0)
            return x.contiguous(memory_format=torch.channels_last)

        crop_groups = [g for g in core.CROP_GROUPS if g in batch]
        view_groups = [g for g in core.VIEW_GROUPS if g in batch]
        # one pass through ``model`` (the DDP wrapper under torchrun) for all inputs
        forward = DistillationForward(core) if model is core else model
        heads, pyramids = forward(
            [nhwc(batch[g][core.CROP_GROUPS[g]]) for g in crop_groups],
            [nhwc(batch[g]["view"]) for g in view_groups],
            [g == "people_native" for g in crop_groups],
        )
        losses = core.losses(heads, pyramids, batch)
        anchor = self.config.solver.anchor_weight
        if anchor > 0:
            start = self.trainer.start_state
            pull = sum(
                (p - start[n].to(p.device)).pow(2).sum()
                for n, p in core.named_parameters()
                if p.requires_grad
            )
            losses["loss_anchor"] = anchor * pull
        return losses
