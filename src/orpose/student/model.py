"""The ORPose student: torchvision Faster R-CNN + two-branch keypoint head + two lifters.

Detection, RoIAlign and NMS are torchvision's (``FasterRCNN``, ``MultiScaleRoIAlign``); orpose
adds the soft/hard keypoint branches (:mod:`orpose.student.roi_heads`) and two 2D-to-3D lifters
(:class:`orpose.lifting.Lifter`) trained on the teacher's 2D against the soft 3D labels.

Inference follows the paper: 2D = argmax of mean(HM_soft, HM_hard); 3D = mean of
lift_soft(argmax HM_soft) and lift_hard(argmax HM_hard), root-relative, mm. ``single_branch``
(Table 3): one heatmap branch and one lifter, 3D = that lifter on the branch's argmax.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch
from torch import nn
from torchvision.models.detection import FasterRCNN
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
from torchvision.models.detection.transform import GeneralizedRCNNTransform

from orpose.compat_torchvision import resize_keypoints, set_rpn_test_proposals
from orpose.config import build, option
from orpose.student.backbones import build_backbone, use_stride_in_1x1
from orpose.student.heads import TwoBranchKeypointHead
from orpose.student.losses import weighted_losses
from orpose.student.pooling import multiscale_roi_align
from orpose.student.roi_heads import ORPoseRoIHeads

BRANCH_KEYS = ("keypoints_soft_branch", "keypoints_hard_branch")


@dataclass
class StudentConfig:
    """Architecture and losses of the student; saved in every checkpoint."""

    family: str = "keypoint_rcnn"
    backbone: str = "resnet50_fpn"  # a name of orpose.student.backbones.BACKBONES
    # picodet_lcnet: "random" = the same network with random weights (the control experiment)
    backbone_init: str = option("pretrained", choices=("pretrained", "random"))
    trainable_backbone_layers: int = 5
    # backbone normalisation: bn | gn | frozen_bn (for pretrained weights)
    norm: str = option("bn", choices=("bn", "gn", "frozen_bn"))
    # ResNet bottlenecks stride in their first 1x1 convolution, as detectron2's MSRA ResNets
    # (official ORPose students) do; torchvision strides in the 3x3 (see use_stride_in_1x1)
    stride_in_1x1: bool = False
    box_head_size: int = 1024  # width of the box head's two FC layers (torchvision: 1024)
    head_convs: tuple[int, ...] = (512,) * 8  # the paper's head; fewer/narrower for CPUs
    min_size: tuple[int, ...] = (480,)  # shorter image side fed to the network (training picks one)
    max_size: int = 800
    box_score_thresh: float = 0.05
    detections_per_img: int = 100
    rpn_post_nms_top_n_train: int = 1500  # the official config's POST_NMS_TOPK_TRAIN
    box_batch_size_per_image: int = 512
    single_branch: bool = False  # one heatmap branch + one lifter for both label sets (Table 3)
    max_keypoint_rois: int | None = None  # cap on positive RoIs per image in the keypoint head
    # True: only positive proposals with >= 1 visible hard keypoint inside them feed the keypoint
    # head, as detectron2's select_proposals_with_visible_keypoints in the official code
    keypoint_rois_with_visible: bool = False
    # detectron2's ROIAlignV2 (aligned=True) box and keypoint pooling, and RoIAlign's samples per
    # bin side (0: adaptive, detectron2's); both set for official detectron2 weights
    roi_align_aligned: bool = False
    roi_sampling_ratio: int = option(2, min=0)
    # keypoints_scores: sigmoid of the peak logit, or detectron2's probability (the official one)
    keypoint_score: str = option("sigmoid", choices=("sigmoid", "probability"))
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
            box_roi_pool=multiscale_roi_align(
                featmap_names, 7, config.roi_sampling_ratio, config.roi_align_aligned
            ),
            box_head=TwoMLPHead(backbone.out_channels * 7 * 7, config.box_head_size),
            box_predictor=FastRCNNPredictor(config.box_head_size, 2),
            rpn_post_nms_top_n_train=config.rpn_post_nms_top_n_train,
            box_score_thresh=config.box_score_thresh,
            box_detections_per_img=config.detections_per_img,
            box_batch_size_per_image=config.box_batch_size_per_image,
        )
        self.config = config
        if config.stride_in_1x1:
            use_stride_in_1x1(self.backbone)
        old = self.roi_heads
        self.roi_heads = ORPoseRoIHeads(
            box_roi_pool=old.box_roi_pool,
            box_head=old.box_head,
            box_predictor=old.box_predictor,
            fg_iou_thresh=0.5,
            bg_iou_thresh=0.5,
            batch_size_per_image=config.box_batch_size_per_image,
            positive_fraction=0.25,
            bbox_reg_weights=None,
            score_thresh=config.box_score_thresh,
            nms_thresh=0.5,
            detections_per_img=config.detections_per_img,
            keypoint_roi_pool=multiscale_roi_align(
                featmap_names, 14, config.roi_sampling_ratio, config.roi_align_aligned
            ),
            keypoint_head=TwoBranchKeypointHead(
                backbone.out_channels,
                config.head_convs,
                single_branch=config.single_branch,
                lifter_config=dict(config.lifter_config) if config.lifters else None,
                keypoint_score=config.keypoint_score,
            ),
            max_keypoint_rois=config.max_keypoint_rois,
            keypoint_rois_with_visible=config.keypoint_rois_with_visible,
        )
        self.transform = ORPoseTransform(
            config.min_size, config.max_size, self.transform.image_mean, self.transform.image_std
        )

    @property
    def keypoint_head(self) -> TwoBranchKeypointHead:
        return self.roi_heads.kp_head

    def lifting_losses(self, targets: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
        """L3D_soft and L3D_hard: each lifter on the teacher's 2D, against the soft 3D labels."""
        with_3d = [t for t in targets if "keypoints3d_soft" in t and t["has3d"].any()]
        empty = torch.zeros(0, 17, 3)
        soft = torch.cat([t["keypoints_soft"][t["has3d"]] for t in with_3d]) if with_3d else empty
        hard = torch.cat([t["keypoints"][t["has3d"]] for t in with_3d]) if with_3d else empty
        target = (
            torch.cat([t["keypoints3d_soft"][t["has3d"]] for t in with_3d]) if with_3d else empty
        )
        return self.keypoint_head.lifting_losses(soft, hard, target, self.config.lift_loss_unit_mm)

    def lift(self, detections: list[dict[str, torch.Tensor]], mappings: list | None = None) -> None:
        """Add ``keypoints3d``: the mean of both lifters on their branch's keypoints, or the
        single branch's one lifter on its keypoints (in place);
        ``mappings``: per image, the lifters' input map (see
        :meth:`orpose.student.keypoint_head.KeypointHead.lift`; None: pixels as they are)."""
        mappings = mappings if mappings is not None else [None] * len(detections)
        for det, mapping in zip(detections, mappings, strict=True):
            soft, hard = (det[k][..., :2] for k in BRANCH_KEYS)
            det["keypoints3d"] = self.keypoint_head.lift(soft, hard, mapping)

    def forward(self, images, targets=None, lift_mappings: list | None = None):
        out = super().forward(images, targets)
        if self.training:
            if self.keypoint_head.has_lifters:
                out.update(self.lifting_losses(targets))
            return weighted_losses(out, self.config.loss_weights)
        if self.keypoint_head.has_lifters:
            self.lift(out, lift_mappings)
        return out


def set_test_proposals(model: ORPoseStudent, count: int) -> None:
    """The predictor hook of the family (:func:`orpose.predictor.limit_proposals`): keep at
    most ``count`` RPN proposals per image at inference."""
    set_rpn_test_proposals(model.rpn, count)


def build_student(config: StudentConfig | dict | None = None) -> ORPoseStudent:
    """A student with randomly initialised weights (see :mod:`orpose.checkpoints` to load)."""
    if config is None:
        config = StudentConfig()
    elif isinstance(config, dict):
        config = StudentConfig.from_dict(config)
    return ORPoseStudent(config)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
