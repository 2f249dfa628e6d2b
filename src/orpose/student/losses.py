"""The distillation losses of the paper, each usable and testable alone.

Their place in the design: docs/architecture.md, "Distillation losses".

Heatmap targets use torchvision's ``keypoints_to_heatmap`` (the Heckbert discretisation of
Mask R-CNN): a keypoint becomes the index of one cell of the S x S heatmap of its RoI, and the loss
is a cross-entropy over the S * S cells (a spatial softmax).

Coordinate convention. Keypoints are COCO pixel indices (x = 0 is the centre of the first pixel)
and enter as they are: cell ``floor((x - x1) * S / w)``. The decoding
(:func:`orpose.student.roi_heads.decode_heatmaps`) returns the cell centre in the same frame, so
the round trip is unbiased (tests/test_keypoint_convention.py). detectron2 instead adds 0.5 to
the ground truth at load and subtracts it from its predictions: that pair goes with its aligned
RoIAlign (``ROIAlignV2``), which samples bin j of a box at ``x1 + (j + 0.5) * bin - 0.5``. The
student pools with torchvision's non-aligned ``MultiScaleRoIAlign`` (bin j at
``x1 + (j + 0.5) * bin``, box numbers read as pixel indices, like torchvision's ResNet whose
feature j is centred on pixel ``j * stride``), so heatmap cell j is centred where its features
are sampled only without the offset; adding it would misplace every target by half a pixel
against the features, and adding it on one side only would bias the output by 0.5 px.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from orpose.compat_torchvision import keypoints_to_heatmap


def weighted_losses(
    losses: dict[str, torch.Tensor], weights: dict[str, float]
) -> dict[str, torch.Tensor]:
    """Each loss times its weight in ``student.loss_weights`` (1 where it has none): the one
    place loss weights are applied, by each student's training losses (the trainer sums them)."""
    return {k: v * weights.get(k, 1.0) for k, v in losses.items()}


def _targets(
    keypoints: list[torch.Tensor], rois: list[torch.Tensor], size: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Flattened (cell index, valid, confidence) over all RoIs of the batch, ``(R * K,)`` each.

    ``valid`` = inside the RoI and last channel > 0; the confidence is the last channel.
    """
    cells, valid, conf = [], [], []
    for kps, boxes in zip(keypoints, rois, strict=True):
        if len(boxes) == 0:
            continue
        cell, ok = keypoints_to_heatmap(kps, boxes, size)
        cells.append(cell.view(-1))
        valid.append(ok.view(-1))
        conf.append(kps[..., 2].reshape(-1))
    if not cells:
        empty = torch.zeros(0, dtype=torch.long)
        return empty, empty.bool(), empty.float()
    return torch.cat(cells), torch.cat(valid) > 0, torch.cat(conf)


def hard_heatmap_loss(
    logits: torch.Tensor, keypoints: list[torch.Tensor], rois: list[torch.Tensor]
) -> torch.Tensor:
    """L2D_hard: spatial cross-entropy of HM_hard against the hard set, visible keypoints only.

    ``logits`` ``(R, K, S, S)``; ``keypoints`` per image ``(R_i, K, 3)`` with v > 0 for the
    keypoints kept by the hard set; ``rois`` per image ``(R_i, 4)`` xyxy. Mean over the valid
    keypoints (the official code's NORMALIZE_LOSS_BY_VISIBLE_KEYPOINTS = True).
    """
    r, k, h, w = logits.shape
    cells, valid, _ = _targets(keypoints, rois, h)
    if cells.numel() == 0 or not valid.any():
        return logits.sum() * 0
    flat = logits.reshape(r * k, h * w)
    return F.cross_entropy(flat[valid], cells[valid].to(flat.device))


def soft_heatmap_loss(
    logits: torch.Tensor, keypoints: list[torch.Tensor], rois: list[torch.Tensor]
) -> torch.Tensor:
    """L2D_soft: cross-entropy of HM_soft, its logits multiplied by the soft set's confidences.

    As in the official ORPose code: a low-confidence keypoint flattens its softmax, so the
    teacher's doubt becomes a weaker, blurrier target. Mean over keypoints with confidence > 0
    inside their RoI.
    """
    r, k, h, w = logits.shape
    cells, valid, conf = _targets(keypoints, rois, h)
    if cells.numel() == 0 or not valid.any():
        return logits.sum() * 0
    flat = logits.reshape(r * k, h * w)[valid]
    scaled = flat * conf[valid].to(flat.device, flat.dtype)[:, None]
    return F.cross_entropy(scaled, cells[valid].to(flat.device))


def lifting_loss(
    lifted_mm: torch.Tensor, target_mm: torch.Tensor, unit_mm: float = 100.0
) -> torch.Tensor:
    """L3D: smooth-L1 between a lifter's output and the soft 3D labels (both ``(N, 17, 3)`` mm).

    Distances are expressed in units of ``unit_mm`` (10 cm by default) so that smooth-L1's
    quadratic zone (|d| < 1 unit) and the loss's magnitude are comparable to the heatmap losses;
    the official code reached a similar scale by standardising with Human3.6M statistics.
    """
    if lifted_mm.numel() == 0:
        return lifted_mm.sum() * 0
    return F.smooth_l1_loss(lifted_mm / unit_mm, target_mm / unit_mm)
