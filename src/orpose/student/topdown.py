"""The CPU student: one network that detects people, crops them and estimates their 2D/3D pose.

Why this design (docs/student.md): the paper's student starts from COCO-pretrained Keypoint
R-CNN weights; the only pretrained weights here are the teacher's PP-PicoDet detector and
PP-TinyPose networks. So the student is built from them, as one ``nn.Module`` with one forward
pass (and, only with ``flip_test``, the teacher's pose flip as its one test-time augmentation):

1. the whole image, resized to the detector's input, goes through :class:`PicoDet` (imported
   natively from the teacher's ONNX file, decoding written for any input size), then NMS;
2. each detected person is cut from the image with ``roi_align`` (the teacher's crop
   geometry: the box widened to the pose input's aspect and enlarged 1.25x; one bilinear sample
   per output pixel, as ``cv2.warpAffine`` cuts the teacher's crops);
3. the crops go through :class:`TopDownKeypointHead`: the PP-TinyPose trunk, natively imported,
   then the two heatmap branches HM_soft and HM_hard, split from its last layer;
4. keypoints = DARK-refined peaks of mean(HM_soft, HM_hard); 3D = mean of the two lifters, each on
   its branch's keypoints; the person score is the detection score times the mean confident
   keypoint score (the teacher's rescoring). ``single_branch`` (the paper's Table 3): one
   heatmap layer and one lifter, trained on the label sets the loss weights keep.

A small frame (the native low-resolution path, ``native_max_side``) runs the detector at half its
input size and poses people on 128x96 crops (or smaller ones, trained as such) with a head of
its own, the teacher's PP-TinyPose 128x96 imported the same way (``native_pose_model``): the full
trunk, trained on 256x192 crops, sees people at half its scale there and poses them badly
(docs/inference.md).

Untrained, the student therefore equals the single-pass teacher (except that people at most
``small_crop_max_height`` pixels tall go through the trunk on half-size crops, and those up to
``middle_crop_max_height`` on three-quarter-size ones); training (see
:mod:`orpose.training.topdown`) teaches both parts low resolution by distillation.

A checkpoint holds the ONNX graphs the student was imported from (as bytes, parsed by ``onnx``,
never executed) and their sha256, so a saved student rebuilds without the teacher's files.
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops import batched_nms, clip_boxes_to_image, remove_small_boxes, roi_align

from orpose.compat_torchvision import topk_min
from orpose.config import build, option
from orpose.errors import ConfigError, ModelError
from orpose.student.keypoint_head import TopDownKeypointHead
from orpose.student.losses import weighted_losses
from orpose.student.onnx_import import import_onnx
from orpose.student.picodet import (
    LevelOutputs,
    PicoDet,
    find_head_tensors,
    level_shift,
    shift_levels,
)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
RESCORE_KEYPOINT_THRESHOLD = 0.2  # as the teacher's det_x_pose person score
PRE_NMS_TOP_K = 1000
# what _pose_group returns for the people of one crop size, in this order
GROUP_KEYS = ("keypoints", "keypoints_scores", "keypoints_soft_branch", "keypoints_hard_branch")


@dataclass
class TopDownConfig:
    """Architecture, inference thresholds and losses of the top-down student."""

    family: str = "picodet_tinypose"
    detector: str = "picodet_s_320_lcnet_pedestrian"  # manifest names of the starting models
    pose_model: str = "tinypose_256x192"
    detector_size: tuple[int, int] = (320, 320)  # (width, height) the image is resized to
    crop_size: tuple[int, int] = (192, 256)  # (width, height) of a person crop
    # The native low-resolution path: an input whose longer side is at most native_max_side
    # (e.g. a 12x frame, 53x40) runs at these sizes instead (0: never); see docs/inference.md
    native_max_side: int = option(160, min=0)
    native_detector_size: tuple[int, int] = (160, 160)
    # at most the native pose model's input, with crop_size's aspect; smaller crops must be
    # trained. Measured (docs/inference.md, longer recipe): 72x96 makes a 12x frame 0.20-0.21 of
    # a 1x frame instead of 0.22, for native keypoint AP 12.0 instead of 14.3 at 12x
    native_crop_size: tuple[int, int] = (96, 128)
    # The native path's pose head: a pretrained top-down model made for native_crop_size crops
    # (PP-TinyPose 128x96), with branches of its own; "" = the full path's head on half-size
    # crops (checkpoints written before this option). Measured (docs/inference.md, all 500
    # val500 images): keypoint AP at 12x on the native path 12.6 instead of 0.5 (demo student)
    native_pose_model: str = "tinypose_128x96"
    # People whose crop region is at most small_crop_max_height image pixels tall are posed on
    # small_crop_size crops (0: never): a full-size crop would upsample them 4x or more, and the
    # trunk costs a quarter per person. Measured (docs/inference.md): 64 costs 0.2 keypoint AP
    # at 1x on val500; 96 costs 2.3 and 128 costs 7.4 (the trunk was trained at 256x192)
    small_crop_max_height: int = option(64, min=0)
    small_crop_size: tuple[int, int] = (96, 128)
    # The same one size up: people taller than small_crop_max_height and at most
    # middle_crop_max_height go through middle_crop_size crops (0: never); a 192x144 crop costs
    # the trunk about 0.56 of a full one. Measured (docs/inference.md, first 100 val500 images):
    # 96 costs 0.4 keypoint AP at 1x (0.1 at 12x) for 10% of the time on PETS frames; 128 costs
    # 1.3 for 15%
    middle_crop_max_height: int = option(96, min=0)
    middle_crop_size: tuple[int, int] = (144, 192)
    box_padding: float = option(1.25, min=1)
    # Frames at full resolution (a downscale factor of 1) go through a detector of their own:
    # this share of the trained detector's weights plus the rest of the starting detector's
    # (set at the end of training, orpose.training.trainer; 1: one detector for every frame).
    # Why: distillation at low resolution makes the detector score more background at 1x, and
    # every candidate costs a pose pass. Measured on the demo student (docs/student.md), 1x,
    # 0.5 against 1: MVOR box / keypoint AP 47.6 / 46.5 against 46.8 / 45.8, val500 (first 100)
    # 48.1 / 62.4 against 46.1 / 60.6, 7-12% less time per PETS frame, 1.11-1.35x the
    # frames/s through predict on the OR frames
    full_res_detector_share: float = option(0.5, min=0, max=1)
    # The same for the lifters: frames at full resolution are lifted by this share of the
    # trained lifters' weights plus the rest of their starting ones (init_lifter, trained on
    # motion capture), set at the end of training (1: one set of lifters for every frame).
    # Why: the lifters learn from the student's 2D of degraded crops (lift_input), which helps
    # at 8x-12x and costs at 1x. Measured (docs/student.md), the demo student at 1x, MVOR
    # MPJPE: 160.2 mm with share 1, 154.5 with 0, 151.0 with 0.25 (chosen on frames 0-30,
    # best on frames 31-60 too), 151.8 with 0.5
    full_res_lifter_share: float = option(0.25, min=0, max=1)
    # The same for the pose head (its trunk and heatmap branches; 1: one head for every frame,
    # the default). Why: with it a recipe can leave the rest of its weights as trained
    # (solver.final_weight_mix 1), which at 8x-12x is worth far more in the operating room than
    # the final mix's 1x accuracy on COCO. Measured on the longer recipe with the OR data
    # (docs/student.md): MVOR keypoint AP at 12x 29.0 unmixed against 23.7 with the final mix
    # 0.5, val500 keypoint AP at 1x 60.0 unmixed against 61.4, and 61.1 with a head of 0.5 x
    # trained + 0.5 x start for full-resolution frames; both CPU recipes set 0.5
    full_res_head_share: float = option(1.0, min=0, max=1)
    det_min_score: float = option(0.05, min=0, max=1)
    nms_iou: float = option(0.6, above=0, max=1)
    pose_min_score: float = option(0.2, min=0, max=1)  # below: not posed (and not returned)
    # pose each person on its crop and on the crop's mirror image and average the heatmaps (the
    # teacher's pose flip): twice the pose work per person. Measured on the 61 OR test frames
    # (docs/student.md): keypoint AP +1.3 / +1.4 / +2.5 and MPJPE -0 / -2 / -8 mm at 1x / 8x /
    # 12x. predict / eval / export --flip set it
    flip_test: bool = False
    max_people: int = option(20, min=1)
    single_branch: bool = False  # one heatmap layer + one lifter for both label sets (Table 3)
    lifters: bool = True
    lifter_config: dict = field(default_factory=dict)
    heatmap_sigma: float = option(2.0, above=0)  # of the soft and hard targets, in heatmap cells
    # the same for the native head (None: heatmap_sigma); smaller native crops read the
    # teacher's peaks between cells, narrower than 2 cells (0.75 wide at 72x96). Measured
    # (docs/inference.md): 0.75 at 72x96, longer recipe: native keypoint AP 12.0 at 12x, not 11.0
    native_heatmap_sigma: float | None = option(None, above=0)
    dark_kernel: int = 11
    lift_loss_unit_mm: float = 100.0
    # what the lifters learn from in training: the student's own 2D of the (degraded) crop,
    # decoded as at inference ("own"), so that they learn to lift the errors the student makes
    # at each downscale factor; or the teacher's 2D of the label ("labels", before 2026-12-06).
    # Measured in the demo's recipe: 12x MPJPE on the OR frames 196 instead of 202 mm
    lift_input: str = option("own", choices=("labels", "own"))
    loss_weights: dict[str, float] = option(
        merge=True,
        default_factory=lambda: {
            "loss_det_cls": 1.0,
            "loss_det_box": 1.0,
            "loss_kp2d_hard": 1.0,
            "loss_kp2d_soft": 1.0,
            "loss_kp2d_kd": 1.0,
            "loss_kp3d_soft": 1.0,
            "loss_kp3d_hard": 1.0,
        },
    )

    def to_dict(self) -> dict:
        d = asdict(self)
        for key in ("detector_size", "crop_size", "native_detector_size", "native_crop_size",
                    "small_crop_size", "middle_crop_size"):  # fmt: skip
            d[key] = list(d[key])
        return d

    @classmethod
    def from_dict(cls, d: dict, where: str = "student") -> TopDownConfig:
        """A checked config (see :func:`orpose.config.build`); errors name ``where``."""
        config = build(cls, d, where, "student.")
        small, middle = config.small_crop_max_height, config.middle_crop_max_height
        if 0 < middle <= small:
            raise ConfigError(
                f"{where}: student.middle_crop_max_height ({middle}) must be above "
                f"student.small_crop_max_height ({small}), or 0 (no middle crops)"
            )
        return config


def onnx_sources(config: TopDownConfig) -> dict[str, bytes]:
    """The verified ONNX files of the starting models, read from the models folder."""
    from orpose.manifest import find_model, load_manifest, verify_model
    from orpose.paths import models_dir

    manifest = load_manifest()
    out = {}
    roles = [("detector", config.detector, "detector"), ("pose", config.pose_model, "pose")]
    if config.native_pose_model and config.native_max_side > 0:
        roles.append(("native_pose", config.native_pose_model, "pose"))
    for role, name, task in roles:
        spec = find_model(name, manifest, task)
        out[role] = Path(verify_model(spec, models_dir())).read_bytes()
    return out


class TopDownStudent(nn.Module):
    """Detector + RoIAlign crops + two-branch pose head + lifters, one module.

    - ``forward(images)`` (eval): a list of RGB ``(3, H, W)`` tensors in [0, 1] -> per image a
      dict with ``boxes`` (x1y1x2y2), ``scores`` (person score), ``det_scores``, ``labels``,
      ``keypoints`` ``(N, 17, 3)`` (x, y, 1), ``keypoints_scores`` ``(N, 17)`` in [0, 1],
      ``keypoints_soft_branch`` / ``keypoints_hard_branch`` and ``keypoints3d`` (mm).
    - training uses the parts: :meth:`detector_input`, ``detector.levels``, :meth:`crop`,
      ``head`` and ``native_head`` (:meth:`head_for`), and :meth:`losses` on their outputs;
      see :mod:`orpose.training.topdown`.
    """

    # The groups of a training batch (orpose.training.distillation_data): person crops (group ->
    # the key of their pixels; ``people_native`` go through the native path's head) and whole
    # views (group -> whether it is the native path's, whose detector input may be smaller: it
    # then skips the teacher detector's finest levels, :func:`level_shift`)
    CROP_GROUPS: ClassVar[dict[str, str]] = {"people": "crop", "people_native": "native_crop"}
    VIEW_GROUPS: ClassVar[dict[str, bool]] = {"images": False, "images_native": True}
    # oneDNN's convolutions of this depthwise-heavy network run 1.5-1.9x faster on NHWC weights
    # (the pose head's 16 crops: 0.23 s against 0.39-0.45 s in eval, 2-core AMD EPYC); the
    # student is built so, and loading weights (``load_state_dict`` copies in place) and moving
    # it to a device keep it so. The values do not change.
    MEMORY_FORMAT: ClassVar[torch.memory_format] = torch.channels_last

    def __init__(self, config: TopDownConfig, sources: dict[str, bytes] | None = None):
        super().__init__()
        import onnx

        self.config = config
        sources = sources if sources is not None else onnx_sources(config)
        self.sources = dict(sources)
        self.unmixed_prefixes: tuple[str, ...] = ()  # state keys a final weight mix skips
        self.sha256 = {k: hashlib.sha256(v).hexdigest() for k, v in sources.items()}
        det_model = onnx.load_from_string(sources["detector"])
        names, strides = find_head_tensors(det_model)
        self.detector = PicoDet(import_onnx(det_model, names), strides)
        # the detector of full-resolution frames (config.full_res_detector_share): starts as the
        # starting detector, takes no part in training, is set from both at its end
        # (:meth:`settle_full_res_detector`)
        self.full_res_detector: PicoDet | None = None
        if config.full_res_detector_share < 1:
            self.full_res_detector = copy.deepcopy(self.detector).requires_grad_(False)
        lifter_config = dict(config.lifter_config) if config.lifters else None
        pose_model = onnx.load_from_string(sources["pose"])
        self.head = self._pose_head(pose_model, config.crop_size, lifter_config)
        # the lifters of full-resolution frames (config.full_res_lifter_share): copies of the
        # head's, made again when the head's are set (:meth:`set_lifters`), no part in
        # training, set from both at its end (:meth:`settle_full_res_lifters`)
        self.full_res_lifters: nn.ModuleDict | None = None
        self._copy_full_res_lifters()
        # the pose head of full-resolution frames (config.full_res_head_share): the same trunk
        # and branches without lifters (the full-resolution lifters are their own part); no part
        # in training, set from both at its end (:meth:`settle_full_res_head`)
        self.full_res_head: TopDownKeypointHead | None = None
        if config.full_res_head_share < 1:
            self.full_res_head = self._pose_head(pose_model, config.crop_size)
            self.full_res_head.requires_grad_(False)
        # the native path's own head (no lifters: its keypoints go through the full head's)
        self.native_head: TopDownKeypointHead | None = None
        if config.native_pose_model and config.native_max_side > 0:
            if "native_pose" not in sources:
                raise ModelError(
                    f"no 'native_pose' graph for student.native_pose_model "
                    f"({config.native_pose_model!r})"
                )
            native_model = onnx.load_from_string(sources["native_pose"])
            native_input = input_size(native_model)
            check_native_crop(config, native_input)
            self.native_head = self._pose_head(
                native_model, config.native_crop_size, sigma=config.native_heatmap_sigma
            )
            if tuple(config.native_crop_size) != native_input:
                # trained on crops its pretrained start was not made for: the final weight mix
                # (solver.final_weight_mix) leaves it as trained
                self.unmixed_prefixes = ("native_head.",)
        # None: the path follows the input's size; True/False forces one (ONNX export, tests)
        self.force_native: bool | None = None
        # set on an export's copy only (orpose.export.export.crop_size_branches): per crop size,
        # its pose work as a TorchScript branch that a graph runs only when someone needs it
        self.crop_branches: nn.ModuleList | None = None
        # set on an export's copy only (orpose.export.export.detector_branches): the two
        # detectors as a TorchScript choice that a graph makes from its factor input
        self.detector_branches: nn.Module | None = None
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), False)
        self._teacher_level_sizes: list[tuple[int, int]] | None = None  # see losses
        self.to(memory_format=self.MEMORY_FORMAT)

    def _pose_head(
        self, pose_model, crop_size: tuple[int, int], lifter_config: dict | None = None,
        sigma: float | None = None,
    ) -> TopDownKeypointHead:  # fmt: skip
        """A two-branch head on the trunk of a top-down pose graph (parsed ONNX) made for
        ``crop_size``; ``sigma``: its targets' width (None: ``heatmap_sigma``)."""
        c = self.config
        trunk, last = import_pose_trunk(pose_model)
        return TopDownKeypointHead(
            trunk,
            last,
            crop_size,
            stride=input_size(pose_model)[1] // heatmap_height(pose_model),
            single_branch=c.single_branch,
            lifter_config=lifter_config,
            sigma=sigma or c.heatmap_sigma,
            dark_kernel=c.dark_kernel,
        )

    # -- the parts, shared by training and inference ----------------------------------------
    def head_for(self, native: bool) -> TopDownKeypointHead:
        """The pose head of the full path, or of the native path (its own where it has one)."""
        return self.native_head if native and self.native_head is not None else self.head

    def pose_head_for(self, native: bool, factor: float | None = None) -> TopDownKeypointHead:
        """The head that poses a frame shrunk ``factor`` times (None or at most 1: at full
        resolution, through the full-resolution head where the student has one; the native path
        always takes its own)."""
        if at_full_resolution(factor, native) and self.full_res_head is not None:
            return self.full_res_head
        return self.head_for(native)

    def normalise(self, pixels: torch.Tensor) -> torch.Tensor:
        return (pixels - self.mean) / self.std

    def sizes(self, native: bool) -> tuple[tuple[int, int], tuple[int, int]]:
        """(detector input, crop) sizes as (width, height): the full or the native path's."""
        c = self.config
        return (c.native_detector_size, c.native_crop_size) if native else (
            c.detector_size, c.crop_size)  # fmt: skip

    def crop_shape(
        self, native: bool = False, size: tuple[int, int] | None = None
    ) -> tuple[int, int]:
        """(width, height) of a person crop: ``size`` where given (a smaller tier's, see
        :meth:`crop_tiers`), else the full path's or the native path's."""
        return tuple(size) if size is not None else self.sizes(native)[1]

    def crop_tiers(self) -> list[tuple[int, tuple[int, int]]]:
        """(largest crop-region height, crop size) of the smaller crop sizes of the full path,
        smallest first; people taller than the last go through the full-size crop."""
        c = self.config
        tiers = [(c.small_crop_max_height, tuple(c.small_crop_size)),
                 (c.middle_crop_max_height, tuple(c.middle_crop_size))]  # fmt: skip
        return [t for t in tiers if t[0] > 0]

    def is_native(self, image: torch.Tensor) -> bool:
        """Whether an image is small enough for the native low-resolution path."""
        if self.force_native is not None:
            return self.force_native
        return 0 < max(image.shape[-2:]) <= self.config.native_max_side

    def detector_input(self, images: torch.Tensor, native: bool = False) -> torch.Tensor:
        """``(N, 3, H, W)`` images in [0, 1] -> the detector's normalised input (stretched)."""
        w, h = self.sizes(native)[0]
        resized = F.interpolate(images, size=(h, w), mode="bilinear", align_corners=False)
        return self.normalise(resized)

    def crop_regions(self, boxes: torch.Tensor) -> torch.Tensor:
        """Each box's crop region (x1, y1, x2, y2) ``(R, 4)``: widened or heightened to the crop
        aspect (both paths' crops have the same), then enlarged by ``box_padding`` (the teacher's
        ``box_region``)."""
        cw, ch = self.config.crop_size
        aspect = cw / ch
        cx = (boxes[:, 0] + boxes[:, 2]) / 2
        cy = (boxes[:, 1] + boxes[:, 3]) / 2
        w = (boxes[:, 2] - boxes[:, 0]).clamp_min(1.0)
        h = (boxes[:, 3] - boxes[:, 1]).clamp_min(1.0)
        w, h = torch.maximum(w, h * aspect), torch.maximum(h, w / aspect)
        w, h = w * self.config.box_padding, h * self.config.box_padding
        return torch.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], 1)

    def crop(
        self,
        images: torch.Tensor,
        regions: torch.Tensor,
        index: torch.Tensor,
        native: bool = False,
        size: tuple[int, int] | None = None,
    ) -> torch.Tensor:
        """Normalised crops ``(R, 3, ch, cw)`` of ``regions`` (image ``index`` of each) from
        ``images`` ``(N, 3, H, W)`` in [0, 1]; outside the image is black, as the teacher pads.

        Crop pixel u samples image pixel x = region.x1 + u * width / cw (pixel indices, as
        ``cv2.warpAffine`` cuts the teacher's crops), with one bilinear sample per crop pixel.
        """
        cw, ch = self.crop_shape(native, size)
        scale = self._region_scale(regions, native, size)
        # roi_align(aligned=True) samples bin j of a box at x1 + (j + 0.5) * bin - 0.5
        shift = (0.5 - 0.5 * scale).repeat(1, 2)
        rois = torch.cat([index[:, None].to(regions.dtype), regions + shift], 1)
        crops = roi_align(images, rois, (ch, cw), spatial_scale=1.0, sampling_ratio=1,
                          aligned=True)  # fmt: skip
        return self.normalise(crops)

    def _region_scale(
        self, regions: torch.Tensor, native: bool = False, size: tuple[int, int] | None = None
    ) -> torch.Tensor:
        """Image pixels per crop pixel ``(R, 2)`` along x and y."""
        cw, ch = self.crop_shape(native, size)
        return torch.stack(
            [(regions[:, 2] - regions[:, 0]) / cw, (regions[:, 3] - regions[:, 1]) / ch], 1
        )

    def crop_to_image(
        self, points: torch.Tensor, regions: torch.Tensor, native: bool = False,
        size: tuple[int, int] | None = None,
    ) -> torch.Tensor:  # fmt: skip
        """Crop-pixel points ``(R, K, 2)`` -> image pixels (the inverse of :meth:`crop`)."""
        return regions[:, None, :2] + points * self._region_scale(regions, native, size)[:, None]

    def image_to_crop(
        self, points: torch.Tensor, regions: torch.Tensor, native: bool = False
    ) -> torch.Tensor:
        """Image-pixel points ``(R, K, 2)`` -> crop pixels."""
        return (points - regions[:, None, :2]) / self._region_scale(regions, native)[:, None]

    # -- training ----------------------------------------------------------------------------
    def losses(
        self,
        heads: list[tuple[torch.Tensor, torch.Tensor]],
        pyramids: list[list[LevelOutputs]],
        batch: dict[str, dict[str, torch.Tensor]],
    ) -> dict[str, torch.Tensor]:
        """The student's training losses, weighted by ``loss_weights``: its heads' (the paper's
        two 2D losses and the distillation of the teacher's heatmaps), its lifters' and its
        detector's (:meth:`PicoDet.distillation_losses`).

        ``heads``: (HM_soft, HM_hard) of each crop group of ``batch`` present
        (:data:`CROP_GROUPS` order), ``pyramids``: the detector levels of each view group
        present (:data:`VIEW_GROUPS` order); ``batch``: the targets, per group."""
        dev = self.mean.device
        crop_groups = [g for g in self.CROP_GROUPS if g in batch]
        view_groups = [
            (g, self.native_level_shift() if native else 0)
            for g, native in self.VIEW_GROUPS.items()
            if g in batch
        ]
        out: dict[str, torch.Tensor] = {}

        def add(losses: dict[str, torch.Tensor]) -> None:
            for k, v in losses.items():
                out[k] = out[k] + v if k in out else v

        for group, (hm_soft, hm_hard) in zip(crop_groups, heads, strict=True):
            p = {k: v.to(dev) for k, v in batch[group].items()}
            if group == "people":
                add(self.head.losses(hm_soft, hm_hard, p["soft"], p["hard"], p["teacher"]))
                with3d = p["has3d"].bool()
                soft_2d, hard_2d = p["soft_image"], p["hard_image"]
                if self.config.lift_input == "own" and self.head.has_lifters and with3d.any():
                    soft_2d, hard_2d = self.own_lift_input(hm_soft, hm_hard, p["crop_to_lift"])
                add(
                    self.head.lifting_losses(
                        soft_2d[with3d],
                        hard_2d[with3d],
                        p["pose3d"][with3d],
                        self.config.lift_loss_unit_mm,
                    )
                )
            else:  # the native low-resolution path: its smaller crops, through its own head
                add(self.head_for(True).losses(hm_soft, hm_hard, p["native_soft"],
                                               p["native_hard"], p["native_teacher"]))  # fmt: skip
        for (group, shift), levels in zip(view_groups, pyramids, strict=True):
            scores, boxes = batch[group]["scores"].to(dev), batch[group]["boxes"].to(dev)
            if shift:
                scores, boxes = shift_levels(scores, boxes, self.teacher_level_sizes(), shift)
            add(self.detector.distillation_losses(levels, scores, boxes))
        return weighted_losses(out, self.config.loss_weights)

    @torch.no_grad()
    def own_lift_input(
        self, hm_soft: torch.Tensor, hm_hard: torch.Tensor, crop_to_lift: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The student's own keypoints of its training crops as the lifters' input ``(R, 17,
        3)`` (x, y, 1: every joint given, as at inference): each branch decoded as
        :meth:`_pose_group` decodes it, taken from crop pixels to the label's image pixels by
        ``crop_to_lift`` ``(R, 2, 3)``. No gradient reaches the heads through them."""
        out = []
        for hm in (hm_soft, hm_hard):
            points, _ = self.head.decode(hm.detach().float())
            xy = points @ crop_to_lift[:, :, :2].transpose(1, 2) + crop_to_lift[:, None, :, 2]
            out.append(torch.cat([xy, torch.ones_like(xy[..., :1])], -1))
        return out[0], out[1]

    def _copy_full_res_lifters(self) -> None:
        """The full-resolution lifters as frozen copies of the head's (None without lifters or
        with ``full_res_lifter_share`` 1)."""
        self.full_res_lifters = None
        if self.head.has_lifters and self.config.full_res_lifter_share < 1:
            branches = ("soft",) if self.head.single_branch else ("soft", "hard")
            copies = {b: copy.deepcopy(self.head.lifter(b)) for b in branches}
            self.full_res_lifters = nn.ModuleDict(copies).requires_grad_(False)

    def set_lifters(self, lifter: nn.Module) -> None:
        """Every lifter starts from one trained lifter (``init_lifter``; its architecture
        wins): the head's and the full-resolution ones."""
        self.head.set_lifters(lifter)
        self._copy_full_res_lifters()

    def settle_full_res_parts(self, start_state: dict[str, torch.Tensor]) -> None:
        """At the end of training: the full-resolution detector, lifters and head from the
        trained ones and their starts (the registry's ``settle_weights``)."""
        self.settle_full_res_detector(start_state)
        self.settle_full_res_lifters(start_state)
        self.settle_full_res_head(start_state)

    @torch.no_grad()
    def settle_full_res_head(self, start_state: dict[str, torch.Tensor]) -> None:
        """The full-resolution head becomes ``share`` x the trained head + (1 - share) x its
        own starting weights (``start_state``, by key), ``share`` = ``full_res_head_share``.
        No-op without one."""
        if self.full_res_head is None:
            return
        trained = self.head.state_dict()
        share = self.config.full_res_head_share
        mix_from_start(self.full_res_head, trained, start_state, "full_res_head.", share)

    @torch.no_grad()
    def settle_full_res_lifters(self, start_state: dict[str, torch.Tensor]) -> None:
        """The full-resolution lifters become ``share`` x the trained lifters + (1 - share) x
        their own starting weights (``start_state``, by key), ``share`` =
        ``full_res_lifter_share``. No-op without them."""
        if self.full_res_lifters is None:
            return
        share = self.config.full_res_lifter_share
        for branch, lifter in self.full_res_lifters.items():
            trained = self.head.lifter(branch).state_dict()
            mix_from_start(lifter, trained, start_state, f"full_res_lifters.{branch}.", share)

    def lift(
        self,
        soft_xy: torch.Tensor,
        hard_xy: torch.Tensor,
        mapping=None,
        factor: float | torch.Tensor | None = None,
    ) -> torch.Tensor:
        """3D of the people of a frame shrunk ``factor`` times (None or at most 1: at full
        resolution, through the full-resolution lifters where the student has them; a tensor,
        an exported graph's input: both sets, then the frame's)."""
        if self.full_res_lifters is None:
            return self.head.lift(soft_xy, hard_xy, mapping)
        if isinstance(factor, torch.Tensor):
            full = self.head.lift(soft_xy, hard_xy, mapping, self.full_res_lifters)
            return torch.where(factor <= 1, full, self.head.lift(soft_xy, hard_xy, mapping))
        lifters = self.full_res_lifters if at_full_resolution(factor) else None
        return self.head.lift(soft_xy, hard_xy, mapping, lifters)

    @torch.no_grad()
    def settle_full_res_detector(self, start_state: dict[str, torch.Tensor]) -> None:
        """At the end of training: the full-resolution detector becomes ``share`` x the trained
        detector + (1 - share) x its own starting weights (``start_state``: the student's
        starting state, by key), ``share`` = ``full_res_detector_share``. No-op without one."""
        if self.full_res_detector is None:
            return
        share = self.config.full_res_detector_share
        trained = self.detector.state_dict()
        mix_from_start(self.full_res_detector, trained, start_state, "full_res_detector.", share)

    def native_level_shift(self) -> int:
        """How many of the teacher detector's finest levels the native path's detector input
        skips (1: half the full input, 0: the same)."""
        c = self.config
        shift = level_shift(tuple(c.detector_size), tuple(c.native_detector_size))
        if shift is None:
            raise ConfigError(
                f"student.native_detector_size {list(c.native_detector_size)} must be "
                f"student.detector_size {list(c.detector_size)} divided by 1, 2, 4... for the "
                "native path to be trained"
            )
        return shift

    def teacher_level_sizes(self) -> list[tuple[int, int]]:
        """(height, width) of the teacher detector's levels at its input size (computed once:
        the student's detector has the same levels at ``detector_size``)."""
        if self._teacher_level_sizes is None:
            w, h = self.config.detector_size
            with torch.no_grad():
                probe = self.detector.levels(torch.zeros(1, 3, h, w, device=self.mean.device))
            self._teacher_level_sizes = [tuple(level.logit_a.shape[-2:]) for level in probe]
        return self._teacher_level_sizes

    # -- inference ---------------------------------------------------------------------------
    def detector_for(self, factor: float | None, native: bool = False) -> PicoDet:
        """The detector of a frame shrunk ``factor`` times (None or at most 1: a frame at its
        full resolution; the native path always takes the trained detector)."""
        if at_full_resolution(factor, native) and self.full_res_detector is not None:
            return self.full_res_detector
        return self.detector

    def detect(
        self,
        image: torch.Tensor,
        native: bool = False,
        min_score: float | torch.Tensor | None = None,
        factor: float | torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Person boxes (image pixels) and detection scores of one ``(3, H, W)`` image, the
        people to pose: detected with at least ``pose_min_score``, or ``min_score`` if higher
        (a caller that shows people from that score: a person's score is at most its
        detection score, so the others could not be shown). ``factor``: how many times the
        image was shrunk (and upsampled back) before it got here, which picks the detector
        (:meth:`detector_for`; a tensor: an exported graph's input)."""
        c = self.config
        h, w = image.shape[-2:]
        x = self.detector_input(image[None], native)
        if isinstance(factor, torch.Tensor) and self.full_res_detector is not None and not native:
            if self.detector_branches is not None:  # an exported graph: an If runs one
                scores, boxes = self.detector_branches(x, factor)
            else:  # a flat graph (int8 quantization reads one): both, then the frame's
                full, low = self.full_res_detector(x), self.detector(x)
                pick = factor <= 1
                scores = torch.where(pick, full[0], low[0])
                boxes = torch.where(pick, full[1], low[1])
        else:
            scores, boxes = self.detector_for(None if factor is None else float(factor), native)(x)
        scores, boxes = scores[0], boxes[0]
        dw, dh = self.sizes(native)[0]
        size = image_size(image).to(boxes)  # (h, w), a tensor also while tracing for ONNX
        scale = torch.stack([size[1] / dw, size[0] / dh]).repeat(2)
        boxes = boxes * scale
        keep = scores >= c.det_min_score
        scores, boxes = scores[keep], boxes[keep]
        top = scores.topk(topk_min(scores, PRE_NMS_TOP_K, 0)).indices
        scores, boxes = scores[top], clip_boxes_to_image(boxes[top], (h, w))
        keep = remove_small_boxes(boxes, 1e-3)
        scores, boxes = scores[keep], boxes[keep]
        keep = batched_nms(boxes, scores, torch.zeros_like(scores, dtype=torch.long), c.nms_iou)
        if isinstance(min_score, torch.Tensor):  # an exported graph's optional input
            least = min_score.clamp(min=c.pose_min_score)
        else:
            least = c.pose_min_score if min_score is None else max(c.pose_min_score, min_score)
        keep = keep[scores[keep] >= least][: c.max_people]
        return boxes[keep], scores[keep]

    def pose(
        self,
        image: torch.Tensor,
        boxes: torch.Tensor,
        native: bool = False,
        lift_mapping=None,
        factor: float | torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        """Keypoints of the given persons of one image (the second half of the forward).

        On the full path, people no taller (crop region) than a tier of :meth:`crop_tiers` go
        through the trunk on that tier's smaller crops, the others on full-size ones; the
        results come back in the order of ``boxes``. ``lift_mapping``
        (:func:`orpose.lifting.intrinsics.lift_mapping`; None: the image's pixels as they are)
        takes the keypoints to the lifter's camera for 3D only: on the native path, to the
        pixels of the frame the small image was shrunk from, for which the lifters were
        trained; the 2D results stay in the image's pixels. ``factor``: how many times the
        image was shrunk, which picks the lifters (:meth:`lift`; the native path's are always
        the trained ones)."""
        regions = self.crop_regions(boxes)
        tiers = [] if native else self.crop_tiers()
        if not tiers:
            out = self._pose_group(image, regions, native, factor=factor)
        else:
            heights = regions[:, 3] - regions[:, 1]
            limits = [-math.inf, *(limit for limit, _ in tiers)]  # tiers grow: (lo, hi] each
            masks = [heights > limits[-1]]  # the full-size crop
            masks += [(heights > lo) & (heights <= hi) for lo, hi in itertools.pairwise(limits)]
            sizes = [None, *(size for _, size in tiers)]
            groups = [torch.nonzero(m)[:, 0] for m in masks]
            # eager PyTorch skips the crop sizes nobody needs (each trunk call dispatches its
            # ~1000 operators even on no crop); a trace keeps every call, its shapes being data
            # it cannot branch on, unless crop_branches (scripted) do the skipping in the graph
            used = [i for i, g in enumerate(groups) if torch.jit.is_tracing() or len(g)] or [0]
            branches = self.crop_branches if torch.jit.is_tracing() else None
            # an export's branches of a student with a full-resolution head choose it by factor
            chosen = (factor,) if branches is not None and self.full_res_head is not None else ()
            parts = [
                self._pose_group(image, regions[groups[i]], False, sizes[i], factor)
                if branches is None
                else dict(zip(GROUP_KEYS, branches[i](image, regions[groups[i]], *chosen),
                              strict=True))
                for i in used
            ]  # fmt: skip
            back = torch.argsort(torch.cat([groups[i] for i in used]))  # -> order of boxes
            out = {key: torch.cat([p[key] for p in parts])[back] for key in parts[0]}
        if self.head.has_lifters:
            out["keypoints3d"] = self.lift(
                out["keypoints_soft_branch"][..., :2],
                out["keypoints_hard_branch"][..., :2],
                lift_mapping,
                math.inf if native else factor,
            )
        return out

    def _pose_group(
        self, image: torch.Tensor, regions: torch.Tensor, native: bool,
        size: tuple[int, int] | None = None, factor: float | torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:  # fmt: skip
        """2D keypoints (both branches and their mean) of people cropped at one crop size, by
        the head of ``factor`` (:meth:`pose_head_for`; a tensor, a flat graph's input: both
        heads, then the frame's).

        The three heatmap sets are decoded as one batch: in an exported graph each decoding is
        some 200 small nodes, a cost per frame that weighs most on small frames (one decoding
        instead of three: the native 12x frame 4-6% faster in onnxruntime, 640x480 about 1%, in
        two timings of the graphs in alternation)."""
        if isinstance(factor, torch.Tensor) and not native and self.full_res_head is not None:
            full = self._pose_group(image, regions, native, size, None)
            low = self._pose_group(image, regions, native, size, math.inf)
            return {key: torch.where(factor <= 1, full[key], low[key]) for key in full}
        index = torch.zeros(regions.shape[0], dtype=torch.long, device=regions.device)
        head = self.pose_head_for(native, None if factor is None else float(factor))
        crops = self.crop(image[None], regions, index, native, size)
        if self.config.flip_test:  # the crops and their mirror images in one batch
            n = crops.shape[0]
            hm_soft, hm_hard = head(torch.cat([crops, torch.flip(crops, [-1])]))
            width = crops.shape[-1]
            hm_soft = (hm_soft[:n] + head.unflip(hm_soft[n:], width)) / 2
            hm_hard = (hm_hard[:n] + head.unflip(hm_hard[n:], width)) / 2
        else:
            hm_soft, hm_hard = head(crops)
        points, scores = head.decode(torch.cat([(hm_soft + hm_hard) / 2, hm_soft, hm_hard]))
        xy = self.crop_to_image(points, regions.repeat(3, 1), native, size)
        xy = torch.cat([xy, torch.ones_like(xy[..., :1])], -1)
        n = hm_soft.shape[0]
        return {
            "keypoints": xy[:n],
            "keypoints_scores": scores[:n],
            "keypoints_soft_branch": xy[n : 2 * n],
            "keypoints_hard_branch": xy[2 * n :],
        }

    def forward(
        self,
        images: list[torch.Tensor],
        lift_mappings: list | None = None,
        min_scores: list[float | None] | None = None,
        factors: list[float | None] | None = None,
    ) -> list[dict[str, torch.Tensor]]:
        """Per image its people (see the class); ``lift_mappings``: one per image (or None)
        for the lifters' input, see :meth:`pose`; ``min_scores``: one per image (or None), the
        least detection score to pose, see :meth:`detect`; ``factors``: one per image (or
        None: at full resolution), how many times it was shrunk, see :meth:`detect`."""
        results = []
        mappings = lift_mappings if lift_mappings is not None else [None] * len(images)
        leasts = min_scores if min_scores is not None else [None] * len(images)
        shrunk = factors if factors is not None else [None] * len(images)
        for image, mapping, least, factor in zip(images, mappings, leasts, shrunk, strict=True):
            native = self.is_native(image)
            boxes, det_scores = self.detect(image, native, least, factor)
            out = self.pose(image, boxes, native, mapping, factor)
            out.update(
                boxes=boxes,
                det_scores=det_scores,
                scores=det_scores * pose_confidence(out["keypoints_scores"]),
                labels=torch.ones_like(det_scores, dtype=torch.long),
            )
            results.append(out)
        return results


def at_full_resolution(factor: float | None, native: bool = False) -> bool:
    """Whether a frame shrunk ``factor`` times (None: not shrunk) goes through the parts the
    CPU student keeps for full-resolution frames (its detector, lifters and head); the native
    path never does."""
    return not native and (factor is None or factor <= 1)


def mix_from_start(
    part: nn.Module,
    trained: dict[str, torch.Tensor],
    start_state: dict[str, torch.Tensor],
    prefix: str,
    share: float,
) -> None:
    """Every floating-point entry of ``part`` (a full-resolution copy) becomes ``share`` x the
    trained twin's (``trained``, by the part's own keys) + (1 - share) x its own start
    (``start_state``, the student's starting state, under ``prefix``)."""
    with torch.no_grad():
        for key, value in part.state_dict().items():
            if value.is_floating_point():
                start = start_state[prefix + key].to(value)
                value.copy_(share * trained[key].to(value) + (1 - share) * start)


def unmixed_prefixes(model: nn.Module) -> tuple[str, ...]:
    """Its registry entry's ``unmixed_prefixes``: the parts the final weight mix leaves as
    trained (the native head, when trained on crops its pretrained start was not made for)."""
    return tuple(getattr(model, "unmixed_prefixes", ()))


def pose_confidence(keypoint_scores: torch.Tensor) -> torch.Tensor:
    """Mean of each person's keypoint scores of at least RESCORE_KEYPOINT_THRESHOLD ``(R,)``
    (0 where none is): the pose half of the person score, as the teacher's det x pose."""
    confident = (keypoint_scores >= RESCORE_KEYPOINT_THRESHOLD).to(keypoint_scores.dtype)
    return (keypoint_scores * confident).sum(-1) / confident.sum(-1).clamp_min(1.0)


def image_size(image: torch.Tensor) -> torch.Tensor:
    """``(height, width)`` of a ``(..., H, W)`` tensor as a float tensor; traced as a shape
    (not a constant) so that an exported graph accepts any image size."""
    if torch.jit.is_tracing():
        return torch._shape_as_tensor(image)[-2:].float()
    return torch.tensor(image.shape[-2:], dtype=torch.float32)


def heatmap_height(pose_model) -> int:
    """Rows of the pose model's heatmap output."""
    for output in pose_model.graph.output:
        dims = [d.dim_value for d in output.type.tensor_type.shape.dim]
        if len(dims) == 4:
            return dims[2]
    raise ModelError("pose model: no 4-D heatmap output")


def check_native_crop(config: TopDownConfig, model_size: tuple[int, int]) -> None:
    """The native crops may be smaller than the native pose model's input (the head is then
    trained at that size, see docs/inference.md) but keep the full path's aspect: both paths
    share the crop regions. Errors name the keys."""
    (w, h), (fw, fh) = config.native_crop_size, config.crop_size
    if w * fh != h * fw or w > model_size[0] or h > model_size[1]:
        raise ConfigError(
            f"student.native_crop_size {list(config.native_crop_size)} must keep the aspect of "
            f"student.crop_size {list(config.crop_size)} and be at most the "
            f"input of student.native_pose_model ({config.native_pose_model!r}: "
            f"{model_size[0]}x{model_size[1]}, width x height)"
        )


def input_size(pose_model) -> tuple[int, int]:
    """(width, height) of a top-down pose model's image input."""
    inits = {t.name for t in pose_model.graph.initializer}
    for i in pose_model.graph.input:
        dims = [d.dim_value for d in i.type.tensor_type.shape.dim]
        if i.name not in inits and len(dims) == 4:
            if dims[2] <= 0 or dims[3] <= 0:
                raise ModelError(f"pose model: its input {i.name!r} has no fixed height and width")
            return dims[3], dims[2]
    raise ModelError("pose model: no 4-D image input")


def import_pose_trunk(pose_model) -> tuple[nn.Module, nn.Conv2d]:
    """A top-down heatmap model's trunk (everything but its last 1x1 convolution) and that
    convolution, which becomes the two branches."""
    from onnx import numpy_helper

    from orpose.student.onnx_import import make_conv

    graph = pose_model.graph
    producer = {out: node for node in graph.node for out in node.output}
    consts = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    heatmap = next(o.name for o in graph.output if len(o.type.tensor_type.shape.dim) == 4)
    node, add = producer[heatmap], None
    while node.op_type in ("Identity", "Add"):
        add = node if node.op_type == "Add" else add
        node = producer[node.input[0]]
    if node.op_type != "Conv":
        raise ModelError("pose model: its heatmaps do not come from a convolution")
    last, _ = make_conv(node, consts, add)
    if last.kernel_size != (1, 1):
        raise ModelError("pose model: its last layer is not a 1x1 convolution")
    return import_onnx(pose_model, [node.input[0]]), last
