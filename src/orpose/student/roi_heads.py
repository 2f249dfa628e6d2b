"""RoI heads of the student: torchvision's box branch plus the two-branch keypoint head.

The box part (sampling, RoIAlign, box head, Fast R-CNN losses, post-processing) is torchvision's
``RoIHeads.forward`` itself, called with torchvision's keypoint branch unset; only the keypoint
part is orpose's, computed after it: the keypoint head (its two heatmap branches, its losses and
decoding, see :mod:`orpose.student.heads`), and at inference the 2D keypoints from the mean
heatmap plus each branch's keypoints (for its lifter). In training the keypoint part needs the
box branch's sampled proposals and their matched people, which ``RoIHeads.forward`` does not
return: :meth:`ORPoseRoIHeads.select_training_samples` keeps them for the rest of the call.
"""

from __future__ import annotations

import torch
from torchvision.models.detection.roi_heads import RoIHeads

from orpose.student.heads import TwoBranchKeypointHead, decode_heatmaps  # noqa: F401


class ORPoseRoIHeads(RoIHeads):
    """``RoIHeads`` whose keypoint branch is :class:`TwoBranchKeypointHead`.

    ``max_keypoint_rois`` caps the positive RoIs per image that enter the keypoint head in
    training (random subset): the 8 x 512 conv stack dominates the cost on CPUs.
    ``keypoint_rois_with_visible`` keeps only the positive RoIs whose matched person has at least
    one visible (v >= 1) hard keypoint inside the RoI, before the cap: detectron2's
    ``select_proposals_with_visible_keypoints``, which the official code applies
    (ORPose-Color keypoints_3d/roi_heads.py line 85).
    """

    def __init__(
        self,
        *args,
        keypoint_roi_pool,
        keypoint_head: TwoBranchKeypointHead,
        max_keypoint_rois: int | None = None,
        keypoint_rois_with_visible: bool = False,
        **kwargs,
    ):
        super().__init__(*args, **kwargs)
        self.kp_pool = keypoint_roi_pool
        self.kp_head = keypoint_head
        self.max_keypoint_rois = max_keypoint_rois
        self.keypoint_rois_with_visible = keypoint_rois_with_visible
        self._samples = None  # the box branch's training samples, during one forward

    @staticmethod
    def _with_visible_keypoint(boxes: torch.Tensor, keypoints: torch.Tensor) -> torch.Tensor:
        """Which RoIs ``(P, 4)`` hold at least one of their person's ``(P, 17, 3)`` keypoints
        with v >= 1 (box edges included), as detectron2 selects them."""
        x, y = keypoints[..., 0], keypoints[..., 1]
        b = boxes[:, None, :]
        inside = (x >= b[..., 0]) & (x <= b[..., 2]) & (y >= b[..., 1]) & (y <= b[..., 3])
        return (inside & (keypoints[..., 2] >= 1)).any(dim=1)

    def _positive_rois(self, proposals, labels, matched_idxs, targets=None):
        rois, matched = [], []
        targets = targets if targets is not None else [None] * len(proposals)
        for boxes, lab, idx, target in zip(proposals, labels, matched_idxs, targets, strict=True):
            pos = torch.where(lab > 0)[0]
            if self.keypoint_rois_with_visible and target is not None and len(pos):
                keep = self._with_visible_keypoint(boxes[pos], target["keypoints"][idx[pos]])
                pos = pos[keep]
            if self.max_keypoint_rois is not None and len(pos) > self.max_keypoint_rois:
                pos = pos[torch.randperm(len(pos), device=pos.device)[: self.max_keypoint_rois]]
            rois.append(boxes[pos])
            matched.append(idx[pos])
        return rois, matched

    def select_training_samples(self, proposals, targets):
        """torchvision's sampling of the box branch, kept for the keypoint part of the same
        ``forward`` (its positive RoIs and their matched people)."""
        self._samples = super().select_training_samples(proposals, targets)
        return self._samples

    def forward(self, features, proposals, image_shapes, targets=None):
        # the box part is RoIHeads.forward itself: this module leaves torchvision's keypoint
        # branch unset (keypoint_roi_pool/head/predictor are None), so it stops after the boxes
        results, losses = super().forward(features, proposals, image_shapes, targets)
        if self.training:
            proposals, matched_idxs, labels, _ = self._samples
            self._samples = None
            rois, matched = self._positive_rois(proposals, labels, matched_idxs, targets)
            hm_soft, hm_hard = self.kp_head(self.kp_pool(features, rois, image_shapes))
            hard = [t["keypoints"][m] for t, m in zip(targets, matched, strict=True)]
            soft = [t["keypoints_soft"][m] for t, m in zip(targets, matched, strict=True)]
            losses.update(self.kp_head.losses(hm_soft, hm_hard, soft, hard, rois))
            return results, losses

        boxes = [r["boxes"] for r in results]
        hm_soft, hm_hard = self.kp_head(self.kp_pool(features, boxes, image_shapes))
        outputs = {
            "keypoints": (hm_soft + hm_hard) / 2,
            "keypoints_soft_branch": hm_soft,
            "keypoints_hard_branch": hm_hard,
        }
        # shape[0], not len(): a traced graph (ONNX export) must keep the counts dynamic, and
        # take the general path even when the tracing image had no detection
        counts = [b.shape[0] for b in boxes]
        flat_boxes = torch.cat(boxes) if boxes else torch.zeros(0, 4)
        for key, heatmaps in outputs.items():
            if flat_boxes.numel() == 0 and not torch.jit.is_tracing():
                kps = heatmaps.new_zeros((0, heatmaps.shape[1], 3))
                sc = heatmaps.new_zeros((0, heatmaps.shape[1]))
            else:
                kps, sc = self.kp_head.decode(heatmaps, flat_boxes)
            for result, k, s in zip(results, kps.split(counts), sc.split(counts), strict=True):
                result[key] = k
                if key == "keypoints":
                    result["keypoints_scores"] = s
        return results, {}
