"""RoI heads of the student: torchvision's box branch plus the two-branch keypoint head.

The box part (sampling, RoIAlign, box head, Fast R-CNN losses, post-processing) is torchvision's
own; only the keypoint part differs from ``RoIHeads``: two heatmap branches, the soft and hard 2D
losses, and at inference the 2D keypoints from the mean heatmap plus each branch's keypoints
(for its lifter).
"""

from __future__ import annotations

import torch
from torchvision.models.detection.roi_heads import RoIHeads, fastrcnn_loss, heatmaps_to_keypoints

from orpose.student.heads import TwoBranchKeypointHead
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


class ORPoseRoIHeads(RoIHeads):
    """``RoIHeads`` whose keypoint branch is :class:`TwoBranchKeypointHead`.

    ``max_keypoint_rois`` caps the positive RoIs per image that enter the keypoint head in
    training (random subset): the 8 x 512 conv stack dominates the cost on CPUs.
    """

    def __init__(
        self,
        *args,
        keypoint_roi_pool,
        keypoint_head: TwoBranchKeypointHead,
        max_keypoint_rois: int | None = None,
        **kwargs,
    ):
        super().__init__(*args, **kwargs)
        self.kp_pool = keypoint_roi_pool
        self.kp_head = keypoint_head
        self.max_keypoint_rois = max_keypoint_rois

    def _positive_rois(self, proposals, labels, matched_idxs):
        rois, matched = [], []
        for boxes, lab, idx in zip(proposals, labels, matched_idxs, strict=True):
            pos = torch.where(lab > 0)[0]
            if self.max_keypoint_rois is not None and len(pos) > self.max_keypoint_rois:
                pos = pos[torch.randperm(len(pos), device=pos.device)[: self.max_keypoint_rois]]
            rois.append(boxes[pos])
            matched.append(idx[pos])
        return rois, matched

    def forward(self, features, proposals, image_shapes, targets=None):
        if self.training:
            proposals, matched_idxs, labels, regression_targets = self.select_training_samples(
                proposals, targets
            )
        box_features = self.box_head(self.box_roi_pool(features, proposals, image_shapes))
        class_logits, box_regression = self.box_predictor(box_features)

        if self.training:
            loss_classifier, loss_box_reg = fastrcnn_loss(
                class_logits, box_regression, labels, regression_targets
            )
            rois, matched = self._positive_rois(proposals, labels, matched_idxs)
            hm_soft, hm_hard = self.kp_head(self.kp_pool(features, rois, image_shapes))
            hard = [t["keypoints"][m] for t, m in zip(targets, matched, strict=True)]
            soft = [t["keypoints_soft"][m] for t, m in zip(targets, matched, strict=True)]
            losses = {
                "loss_classifier": loss_classifier,
                "loss_box_reg": loss_box_reg,
                "loss_kp2d_hard": hard_heatmap_loss(hm_hard, hard, rois),
                "loss_kp2d_soft": soft_heatmap_loss(hm_soft, soft, rois),
            }
            return [], losses

        boxes, scores, labels = self.postprocess_detections(
            class_logits, box_regression, proposals, image_shapes
        )
        results = [
            {"boxes": b, "labels": lab, "scores": s}
            for b, s, lab in zip(boxes, scores, labels, strict=True)
        ]
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
                kps, sc = decode_heatmaps(heatmaps, flat_boxes)
            for result, k, s in zip(results, kps.split(counts), sc.split(counts), strict=True):
                result[key] = k
                if key == "keypoints":
                    # a probability, as every student reports (the heatmap's peak logit -> (0, 1))
                    result["keypoints_scores"] = s.sigmoid()
        return results, {}
