"""The paper's keypoint head for Keypoint R-CNN: a shared conv stack, then a soft and a hard
heatmap branch, each with its lifter; the losses and the decoding beside it.

RoIAlign 14x14 -> N conv3x3 (512 channels in the paper) + ReLU -> two branches, each a
ConvTranspose(4, stride 2) and a bilinear x2 upsampling to 17 x 56 x 56 heatmaps. The conv stack is
torchvision's ``KeypointRCNNHeads``; each branch is the predictor torchvision uses for its own
Keypoint R-CNN, so a standard COCO Keypoint R-CNN checkpoint loads into either branch. The branch
layout and the lifters are :class:`orpose.student.keypoint_head.KeypointHead`'s, shared with the
CPU student's head; with ``single_branch`` (Table 3) there is one predictor and one lifter.
"""

from __future__ import annotations

import torch
from torchvision.models.detection.keypoint_rcnn import KeypointRCNNHeads, KeypointRCNNPredictor

from orpose.compat_torchvision import heatmaps_to_keypoints
from orpose.skeleton import NUM_KEYPOINTS
from orpose.student.keypoint_head import KeypointHead
from orpose.student.losses import hard_heatmap_loss, soft_heatmap_loss


def decode_heatmaps(
    heatmaps: torch.Tensor, boxes: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Heatmap logits ``(R, K, S, S)`` over ``boxes`` ``(R, 4)`` -> keypoints ``(R, K, 3)`` and peak
    logits ``(R, K)``: the inverse of the targets of :mod:`orpose.student.losses`.

    torchvision's ``heatmaps_to_keypoints``: each map is resized (bicubic) to ceil(w) x ceil(h)
    cells over its box and the best cell's centre is returned, in COCO pixel indices (the frame
    the targets were encoded in; no half-pixel shift, see the losses module).
    """
    return heatmaps_to_keypoints(heatmaps, boxes)


KEYPOINT_SCORES = ("sigmoid", "probability")


def keypoint_probability(heatmaps: torch.Tensor, peak_logits: torch.Tensor) -> torch.Tensor:
    """detectron2's keypoint score ``(R, K)`` (``heatmaps_to_keypoints``, the official one).

    The softmax of the resized map's peak, normalised over the heatmap's own ``S x S`` cells so
    that boxes of any size compare: ``exp(peak - peak) / sum(exp(heatmap - peak))`` =
    ``1 / sum(exp(heatmap - peak))``, with ``peak`` the maximum of the bicubic-resized map
    (``peak_logits``, what :func:`decode_heatmaps` returns). Positive; it can exceed 1 slightly
    when the resized map overshoots the heatmap's own maximum, as in detectron2.
    """
    return 1.0 / torch.exp(heatmaps - peak_logits[..., None, None]).sum((-2, -1))


class TwoBranchKeypointHead(KeypointHead):
    """Shared convs, then (HM_soft, HM_hard) logits ``(R, 17, 4S, 4S)`` from ``(R, C, S, S)``
    (``single_branch``: one predictor, its logits returned as both)."""

    def __init__(
        self,
        in_channels: int,
        conv_layers: tuple[int, ...] = (512,) * 8,
        num_keypoints: int = NUM_KEYPOINTS,
        single_branch: bool = False,
        lifter_config: dict | None = None,
        keypoint_score: str = "sigmoid",
    ):
        super().__init__(single_branch, lifter_config)
        if keypoint_score not in KEYPOINT_SCORES:
            raise ValueError(
                f"keypoint_score: expected one of {KEYPOINT_SCORES}, got {keypoint_score!r}"
            )
        self.keypoint_score = keypoint_score
        self.convs = KeypointRCNNHeads(in_channels, list(conv_layers))
        # single_branch: one predictor (and one lifter) serves both label sets (Table 3)
        self.make_branches(KeypointRCNNPredictor(conv_layers[-1], num_keypoints))

    def forward(self, roi_features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.branches(self.convs(roi_features))

    def losses(
        self,
        hm_soft: torch.Tensor,
        hm_hard: torch.Tensor,
        soft: list[torch.Tensor],
        hard: list[torch.Tensor],
        rois: list[torch.Tensor],
    ) -> dict[str, torch.Tensor]:
        """The paper's 2D losses (spatial cross-entropy), per image lists of matched keypoints."""
        return {
            "loss_kp2d_hard": hard_heatmap_loss(hm_hard, hard, rois),
            "loss_kp2d_soft": soft_heatmap_loss(hm_soft, soft, rois),
        }

    def decode(self, heatmaps: torch.Tensor, boxes: torch.Tensor):
        """Keypoints ``(R, 17, 3)`` in image pixels and their scores ``(R, 17)``:
        ``keypoint_score`` "sigmoid" maps the peak logit to (0, 1); "probability" is
        detectron2's (:func:`keypoint_probability`)."""
        keypoints, logits = decode_heatmaps(heatmaps, boxes)
        if self.keypoint_score == "probability":
            return keypoints, keypoint_probability(heatmaps, logits)
        return keypoints, logits.sigmoid()
