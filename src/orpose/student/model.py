"""The ORPose student: torchvision Faster R-CNN + two-branch keypoint head + two lifters.

Detection, RoIAlign and NMS are torchvision's (``FasterRCNN``, ``MultiScaleRoIAlign``); orpose
adds the soft/hard keypoint branches (:mod:`orpose.student.roi_heads`) and two 2D-to-3D lifters
(:class:`orpose.lifting.Lifter`) trained on the teacher's 2D against the soft 3D labels.

Inference follows the paper: 2D = argmax of mean(HM_soft, HM_hard); 3D = mean of
lift_soft(argmax HM_soft) and lift_hard(argmax HM_hard), root-relative, mm.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch
from torch import nn
from torchvision.models.detection import FasterRCNN
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
from torchvision.models.detection.transform import GeneralizedRCNNTransform, resize_keypoints
from torchvision.ops import MultiScaleRoIAlign

from orpose.config import build, option
from orpose.lifting import Lifter
from orpose.student.backbones import build_backbone
from orpose.student.heads import TwoBranchKeypointHead
from orpose.student.losses import lifting_loss
from orpose.student.roi_heads import ORPoseRoIHeads

BRANCH_KEYS = ("keypoints_soft_branch", "keypoints_hard_branch")


@dataclass
class StudentConfig:
    """Architecture and losses of the student; saved in every checkpoint."""

    family: str = "keypoint_rcnn"
    backbone: str = "resnet50_fpn"  # resnet50_fpn | resnet18_fpn | mobilenet_v3_fpn | picodet_lcnet
    # picodet_lcnet: "random" = the same network with random weights (the control experiment)
    backbone_init: str = option("pretrained", choices=("pretrained", "random"))
    trainable_backbone_layers: int = 5
    # backbone normalisation: bn | gn | frozen_bn (for pretrained weights)
    norm: str = option("bn", choices=("bn", "gn", "frozen_bn"))
    box_head_size: int = 1024  # width of the box head's two FC layers (torchvision: 1024)
    head_convs: tuple[int, ...] = (512,) * 8  # the paper's head; fewer/narrower for CPUs
    min_size: tuple[int, ...] = (480,)  # shorter image side fed to the network (training picks one)
    max_size: int = 800
    box_score_thresh: float = 0.05
    detections_per_img: int = 100
    rpn_post_nms_top_n_train: int = 1500  # the official config's POST_NMS_TOPK_TRAIN
    box_batch_size_per_image: int = 512
    single_branch: bool = False  # one heatmap branch for both label sets (ablations)
    max_keypoint_rois: int | None = None  # cap on positive RoIs per image in the keypoint head
    lifters: bool = True
    loss_weights: dict[str, float] = option(
        merge=True,
        default_factory=lambda: {
            "loss_classifier": 1.0,
            "loss_box_reg": 1.0,
            "loss_objectness": 1.0,
            "loss_rpn_box_reg": 1.0,
            "loss_kp2d_hard": 1.0,
            "loss_kp2d_soft": 1.0,
            "loss_kp3d_soft": 1.0,
            "loss_kp3d_hard": 1.0,
        },
    )
    lift_loss_unit_mm: float = 100.0
    lifter_config: dict = field(default_factory=dict)  # LifterConfig overrides (see init_lifter)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["head_convs"] = list(self.head_convs)
        d["min_size"] = list(self.min_size)
        return d

    @classmethod
    def from_dict(cls, d: dict, where: str = "student") -> StudentConfig:
        """A checked config (see :func:`orpose.config.build`); errors name ``where``."""
        return build(cls, d, where, "student.")


class ORPoseTransform(GeneralizedRCNNTransform):
    """torchvision's resize and normalisation, also carrying soft and per-branch keypoints."""

    def resize(self, image, target=None):
        h, w = image.shape[-2:]
        image, target = super().resize(image, target)
        if target is not None and "keypoints_soft" in target:
            target["keypoints_soft"] = resize_keypoints(
                target["keypoints_soft"], (h, w), image.shape[-2:]
            )
        return image, target

    def postprocess(self, result, image_shapes, original_image_sizes):
        result = super().postprocess(result, image_shapes, original_image_sizes)
        if self.training:
            return result
        for pred, im_s, o_im_s in zip(result, image_shapes, original_image_sizes, strict=True):
            for key in BRANCH_KEYS:
                if key in pred:
                    pred[key] = resize_keypoints(pred[key], im_s, o_im_s)
        return result


class ORPoseStudent(FasterRCNN):
    """The single-network student. ``forward`` is torchvision's detection API:

    - training: ``model(images, targets)`` -> dict of weighted losses. Each target holds
      ``boxes`` (xyxy), ``labels`` (1), ``keypoints`` (hard set, ``(N, 17, 3)``),
      ``keypoints_soft`` (``(N, 17, 3)``, last channel = confidence), and optionally
      ``keypoints3d_soft`` ``(N, 17, 3)`` mm with ``has3d`` ``(N,)`` bool;
    - inference: ``model(images)`` -> per image ``boxes``, ``scores``, ``keypoints`` (x, y, 1),
      ``keypoints_scores``, and ``keypoints3d`` (mm, root-relative) when lifters are on.
    """

    def __init__(self, config: StudentConfig):
        backbone, featmap_names, anchor_sizes = build_backbone(
            config.backbone, config.trainable_backbone_layers, config.norm, config.backbone_init
        )
        anchors = AnchorGenerator(anchor_sizes, ((0.5, 1.0, 2.0),) * len(anchor_sizes))
        super().__init__(
            backbone,
            num_classes=None,
            min_size=config.min_size,
            max_size=config.max_size,
            rpn_anchor_generator=anchors,
            box_roi_pool=MultiScaleRoIAlign(featmap_names, 7, 2),
            box_head=TwoMLPHead(backbone.out_channels * 7 * 7, config.box_head_size),
            box_predictor=FastRCNNPredictor(config.box_head_size, 2),
            rpn_post_nms_top_n_train=config.rpn_post_nms_top_n_train,
            box_score_thresh=config.box_score_thresh,
            box_detections_per_img=config.detections_per_img,
            box_batch_size_per_image=config.box_batch_size_per_image,
        )
        self.config = config
        old = self.roi_heads
        self.roi_heads = ORPoseRoIHeads(
            old.box_roi_pool,
            old.box_head,
            old.box_predictor,
            0.5,
            0.5,
            config.box_batch_size_per_image,
            0.25,
            None,
            config.box_score_thresh,
            0.5,
            config.detections_per_img,
            keypoint_roi_pool=MultiScaleRoIAlign(featmap_names, 14, 2),
            keypoint_head=TwoBranchKeypointHead(
                backbone.out_channels, config.head_convs, single_branch=config.single_branch
            ),
            max_keypoint_rois=config.max_keypoint_rois,
        )
        self.transform = ORPoseTransform(
            config.min_size, config.max_size, self.transform.image_mean, self.transform.image_std
        )
        if config.lifters:
            self.lift_soft = Lifter(**config.lifter_config)
            self.lift_hard = Lifter(**config.lifter_config)

    def lifting_losses(self, targets: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
        """L3D_soft and L3D_hard: each lifter on the teacher's 2D, against the soft 3D labels."""
        with_3d = [t for t in targets if "keypoints3d_soft" in t and t["has3d"].any()]
        if not with_3d:
            zero = sum(p.sum() for p in self.lift_soft.parameters()) * 0
            return {"loss_kp3d_soft": zero, "loss_kp3d_hard": zero.clone()}
        soft = torch.cat([t["keypoints_soft"][t["has3d"]] for t in with_3d])
        hard = torch.cat([t["keypoints"][t["has3d"]] for t in with_3d])
        target = torch.cat([t["keypoints3d_soft"][t["has3d"]] for t in with_3d])
        unit = self.config.lift_loss_unit_mm
        return {
            "loss_kp3d_soft": lifting_loss(
                self.lift_soft(soft[..., :2], soft[..., 2] > 0), target, unit
            ),
            "loss_kp3d_hard": lifting_loss(
                self.lift_hard(hard[..., :2], hard[..., 2] > 0), target, unit
            ),
        }

    def lift(self, detections: list[dict[str, torch.Tensor]]) -> None:
        """Add ``keypoints3d``: the mean of both lifters on their branch's keypoints (in place)."""
        for det in detections:
            soft, hard = (det[k][..., :2] for k in BRANCH_KEYS)
            ones = torch.ones(soft.shape[:2], dtype=torch.bool, device=soft.device)
            det["keypoints3d"] = (self.lift_soft(soft, ones) + self.lift_hard(hard, ones)) / 2

    def forward(self, images, targets=None):
        out = super().forward(images, targets)
        if self.training:
            if self.config.lifters:
                out.update(self.lifting_losses(targets))
            w = self.config.loss_weights
            return {k: v * w.get(k, 1.0) for k, v in out.items()}
        if self.config.lifters:
            self.lift(out)
        return out


def build_student(config: StudentConfig | dict | None = None) -> ORPoseStudent:
    """A student with randomly initialised weights (see :mod:`orpose.student.weights` to load)."""
    if config is None:
        config = StudentConfig()
    elif isinstance(config, dict):
        config = StudentConfig.from_dict(config)
    return ORPoseStudent(config)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
