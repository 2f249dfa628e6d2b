"""Distillation training of the top-down CPU student (:mod:`orpose.student.topdown`).

Both parts learn low resolution from the teacher at full resolution, in the same iterations:

- pose: ``batch_size`` person crops of degraded images against the teacher pose model's heatmaps
  of the clean crops (``loss_kp2d_kd``) and against the pseudo labels (``loss_kp2d_soft``,
  ``loss_kp2d_hard``: the paper's two sets, one per branch), plus the lifters' losses;
- detection: ``detector_batch_size`` degraded images against the teacher detector's per-cell
  scores (``loss_det_cls``, a quality focal loss) and boxes (``loss_det_box``, GFL's distribution
  focal loss on the teacher's distances) on the clean images.

At 1x the distillation targets are the starting network's own outputs, so they also keep the
student where it started (the 1x accuracy the paper's student must not lose);
``solver.anchor_weight`` adds a pull of every weight towards its starting value (L2-SP).
"""

from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F

from orpose.data.coco import load_pose_dataset
from orpose.data.lowres import LowResSchedule
from orpose.student.picodet import LevelOutputs
from orpose.training.distillation_data import (
    Augmentation,
    DistillationData,
    TeacherOutputs,
    collate,
)
from orpose.training.sampler import samples_for_iteration
from orpose.training.trainer import Trainer, unwrap

QFL_BETA = 2.0  # quality focal loss exponent (Li et al., Generalized Focal Loss)
BOX_MIN_SCORE = 0.05  # teacher cells below this score do not teach boxes


def quality_focal_loss(
    log_p: torch.Tensor, log_not_p: torch.Tensor, p: torch.Tensor, target: torch.Tensor
) -> torch.Tensor:
    """Per-cell BCE with a soft target, weighted by |target - p|^beta (summed, not averaged)."""
    bce = -(target * log_p + (1 - target) * log_not_p)
    return (bce * (target - p).abs().pow(QFL_BETA)).sum()


def distribution_focal_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """GFL's DFL: ``logits`` ``(M, bins)``, ``target`` ``(M,)`` in [0, bins - 1] -> ``(M,)``.

    The two bins around the target share it linearly: -(r - t) log P(l) - (t - l) log P(r).
    """
    bins = logits.shape[-1]
    target = target.clamp(0, bins - 1 - 1e-4)
    left = target.floor().long()
    w_right = target - left
    log_prob = F.log_softmax(logits, -1)
    lp_left = log_prob.gather(-1, left[:, None])[:, 0]
    lp_right = log_prob.gather(-1, (left + 1)[:, None])[:, 0]
    return -((1 - w_right) * lp_left + w_right * lp_right)


def shift_levels(
    scores: torch.Tensor, boxes: torch.Tensor, teacher_sizes: list[tuple[int, int]], shift: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """The teacher's cells of levels ``shift`` and coarser, boxes divided by ``2 ** shift``: the
    targets of a student that sees the view at ``1 / 2 ** shift`` of the teacher's input size.

    A level of stride s on a half-size input covers the image as the teacher's level of stride
    2s does (same grid, same cell centres), and a person there is half as large in pixels.
    """
    start = sum(h * w for h, w in teacher_sizes[:shift])
    return scores[:, start:], boxes[:, start:] / 2**shift


def detector_kd_losses(
    levels: list[LevelOutputs], scores: torch.Tensor, boxes: torch.Tensor, bins: int
) -> dict[str, torch.Tensor]:
    """Dense distillation of the detector: student levels vs the teacher's per-cell scores
    ``(N, A)`` and boxes ``(N, A, 4)`` (input pixels) of the same view, cells in the same order.
    Student levels without teacher cells (the coarsest ones after :func:`shift_levels`) learn
    nothing here.

    Both losses are normalised by the sum of the teacher's scores (its "number of positives").
    """
    cells = scores.shape[1]
    kept, count = [], 0
    for level in levels:
        n = level.logit_a.shape[-2] * level.logit_a.shape[-1]
        if count + n > cells:
            break
        kept.append(level)
        count += n
    if count != cells:
        raise ValueError(f"{cells} teacher cells do not match the student's levels")
    levels = kept
    log_p, log_not_p, p, dist_logits, centres, strides = [], [], [], [], [], []
    for level in levels:
        n, _, h, w = level.logit_a.shape
        la, lb = F.logsigmoid(level.logit_a), F.logsigmoid(level.logit_b)
        lp = (0.5 * (la + lb)).reshape(n, h * w)
        prob = lp.exp()
        log_p.append(lp)
        p.append(prob)
        log_not_p.append(torch.log1p(-prob.clamp(max=1 - 1e-6)))
        logits = level.box_logits.reshape(n, 4, bins, h * w).permute(0, 3, 1, 2)
        dist_logits.append(logits)  # (N, HW, 4, bins)
        ys, xs = torch.meshgrid(
            torch.arange(h, dtype=prob.dtype), torch.arange(w, dtype=prob.dtype), indexing="ij"
        )
        centre = torch.stack([xs.reshape(-1), ys.reshape(-1)], -1).add(0.5) * level.stride
        centres.append(centre.to(prob.device))
        strides.append(torch.full((h * w,), float(level.stride), device=prob.device))
    log_p_all, log_not_all, p_all = (torch.cat(t, 1) for t in (log_p, log_not_p, p))
    normaliser = scores.sum().clamp_min(1.0)
    cls = quality_focal_loss(log_p_all, log_not_all, p_all.detach(), scores) / normaliser
    centre, stride = torch.cat(centres), torch.cat(strides)
    teacher_dist = torch.cat([centre - boxes[..., :2], boxes[..., 2:] - centre], -1)
    teacher_dist = teacher_dist / stride[None, :, None]  # (N, A, 4) in strides
    logits = torch.cat(dist_logits, 1)  # (N, A, 4, bins)
    chosen = scores >= BOX_MIN_SCORE
    if chosen.any():
        dfl = distribution_focal_loss(
            logits[chosen].reshape(-1, bins), teacher_dist[chosen].reshape(-1)
        )
        weight = scores[chosen][:, None].expand(-1, 4).reshape(-1)
        box = (dfl * weight).sum() / (4 * normaliser)
    else:
        box = logits.sum() * 0
    return {"loss_det_cls": cls, "loss_det_box": box}


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


class TopDownTrainer(Trainer):
    """The shared loop (checkpoints, exact resume, logs) with the top-down student's data and
    losses. ``solver.batch_size`` = person crops, ``solver.detector_batch_size`` = images."""

    def build_model(self):
        from orpose.student.registry import build_student

        torch.manual_seed(self.config.solver.seed)
        model = build_student(self.config.student)
        if self.config.init_weights:
            from orpose.checkpoints import load_weights_into

            load_weights_into(model, self.config.init_weights)
        if self.config.init_lifter:
            from orpose.lifting import load_lifter

            model.head.set_lifters(load_lifter(self.config.init_lifter))
            self.config.student = dataclasses.replace(
                self.config.student, lifter_config=model.head.lifter_config
            )
        model.config = self.config.student
        if model.native_head is not None and self.config.data.native_share == 0:
            # the native path is not trained: its head stays out of the optimizer (no weight
            # decay, no pull towards its start, no optimizer state)
            model.native_head.requires_grad_(False)
        # oneDNN's convolutions are several times faster in NHWC; inputs are made NHWC too
        return model.to(self.device, memory_format=torch.channels_last)

    def keeps_start_state(self) -> bool:
        return super().keeps_start_state() or self.config.solver.anchor_weight > 0

    def make_loader(self, start: int) -> torch.utils.data.DataLoader:
        s, d = self.config.solver, self.config.data
        data = self.dataset()
        n_persons, n_images = len(data.persons), len(data.images)

        def batches():
            for it in range(start, s.iterations):
                people = samples_for_iteration(
                    n_persons, s.batch_size, s.seed, it, self.rank, self.world_size
                )
                images = samples_for_iteration(
                    n_images, s.detector_batch_size, s.seed + 1, it, self.rank, self.world_size
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

    @staticmethod
    def batch_count(batch) -> int:
        return len(batch["people"]["crop"]) if "people" in batch else 0

    def train_step(self, model, optimizer, batch, amp: bool) -> dict[str, float]:
        core = unwrap(model)
        optimizer.zero_grad(set_to_none=True)
        losses = self.losses(model, core, batch)
        w = core.config.loss_weights
        total = sum(v * w.get(k, 1.0) for k, v in losses.items())
        if self.config.solver.anchor_weight > 0:
            pull = sum(
                (p - self.start_state[n].to(p.device)).pow(2).sum()
                for n, p in core.named_parameters()
                if p.requires_grad
            )
            losses["loss_anchor"] = pull
            total = total + self.config.solver.anchor_weight * pull
        if not torch.isfinite(total):
            values = ", ".join(f"{k}={v.item():.4g}" for k, v in losses.items())
            raise FloatingPointError(f"non-finite loss at this step ({values})")
        total.backward()
        if self.config.solver.clip_grad_norm:
            torch.nn.utils.clip_grad_norm_(model.parameters(), self.config.solver.clip_grad_norm)
        optimizer.step()
        out = {k: float(v.detach()) for k, v in losses.items()}
        out["total"] = float(total.detach())
        return out

    def losses(self, model, core, batch) -> dict[str, torch.Tensor]:
        dev = self.device

        def nhwc(images: torch.Tensor) -> torch.Tensor:
            x = core.normalise(images.to(dev).permute(0, 3, 1, 2).float() / 255.0)
            return x.contiguous(memory_format=torch.channels_last)

        crop_keys = {"people": "crop", "people_native": "native_crop"}  # group -> its crops
        crop_groups = [g for g in crop_keys if g in batch]
        shifts = {"images": 0, "images_native": 1}  # group -> detector levels to skip
        view_groups = [(g, shift) for g, shift in shifts.items() if g in batch]
        # one pass through ``model`` (the DDP wrapper under torchrun) for all inputs
        forward = DistillationForward(core) if model is core else model
        heads, pyramids = forward(
            [nhwc(batch[g][crop_keys[g]]) for g in crop_groups],
            [nhwc(batch[g]["view"]) for g, _ in view_groups],
            [g == "people_native" for g in crop_groups],
        )
        out: dict[str, torch.Tensor] = {}

        def add(losses: dict[str, torch.Tensor]) -> None:
            for k, v in losses.items():
                out[k] = out[k] + v if k in out else v

        for group, (hm_soft, hm_hard) in zip(crop_groups, heads, strict=True):
            p = {k: v.to(dev) for k, v in batch[group].items()}
            if group == "people":
                add(core.head.losses(hm_soft, hm_hard, p["soft"], p["hard"], p["teacher"]))
                with3d = p["has3d"].bool()
                add(
                    core.head.lifting_losses(
                        p["soft_image"][with3d],
                        p["hard_image"][with3d],
                        p["pose3d"][with3d],
                        core.config.lift_loss_unit_mm,
                    )
                )
            else:  # the native low-resolution path: its smaller crops, through its own head
                add(core.head_for(True).losses(hm_soft, hm_hard, p["native_soft"],
                                               p["native_hard"], p["native_teacher"]))  # fmt: skip
        for (group, shift), levels in zip(view_groups, pyramids, strict=True):
            scores, boxes = batch[group]["scores"].to(dev), batch[group]["boxes"].to(dev)
            if shift:
                sizes = [tuple(t.shape[-2:]) for t in self.teacher_levels(core)]
                scores, boxes = shift_levels(scores, boxes, sizes, shift)
            add(detector_kd_losses(levels, scores, boxes, core.detector.bins))
        return out

    def teacher_levels(self, core) -> list[torch.Tensor]:
        """The (cached) shapes of the teacher detector's levels at its input size."""
        if not hasattr(self, "_teacher_levels"):
            w, h = core.config.detector_size
            with torch.no_grad():
                probe = core.detector.levels(torch.zeros(1, 3, h, w, device=self.device))
            self._teacher_levels = [level.logit_a[0, 0] for level in probe]
        return self._teacher_levels
