"""The paper's keypoint head: a shared conv stack, then a soft and a hard heatmap branch.

RoIAlign 14x14 -> N conv3x3 (512 channels in the paper) + ReLU -> two branches, each a
ConvTranspose(4, stride 2) and a bilinear x2 upsampling to 17 x 56 x 56 heatmaps. The conv stack is
torchvision's ``KeypointRCNNHeads``; each branch is the predictor torchvision uses for its own
Keypoint R-CNN, so a standard COCO Keypoint R-CNN checkpoint loads into either branch.
"""

from __future__ import annotations

import torch
from torch import nn
from torchvision.models.detection.keypoint_rcnn import KeypointRCNNHeads, KeypointRCNNPredictor

from orpose.skeleton import NUM_KEYPOINTS


class TwoBranchKeypointHead(nn.Module):
    """Shared convs, then (HM_soft, HM_hard) logits ``(R, 17, 4S, 4S)`` from ``(R, C, S, S)``."""

    def __init__(
        self,
        in_channels: int,
        conv_layers: tuple[int, ...] = (512,) * 8,
        num_keypoints: int = NUM_KEYPOINTS,
        single_branch: bool = False,
    ):
        super().__init__()
        self.convs = KeypointRCNNHeads(in_channels, list(conv_layers))
        self.soft = KeypointRCNNPredictor(conv_layers[-1], num_keypoints)
        # single_branch: one predictor serves both label sets (the paper's Table 3 ablations)
        self.hard = (
            self.soft if single_branch else KeypointRCNNPredictor(conv_layers[-1], num_keypoints)
        )

    def forward(self, roi_features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.convs(roi_features)
        return self.soft(x), self.hard(x)
