"""The keypoint-head abstraction both students share: branches, lifters, losses and decoding.

The paper's head (docs/architecture.md, "Design intent") has two heatmap branches, HM_soft and
HM_hard, each feeding its own 2D-to-3D lifter; the 2D losses compare each branch with its
pseudo-label set and the 3D losses compare each lifter (fed the teacher's 2D, or the CPU
student's own decoded 2D: ``TopDownStudentConfig.lift_input``) with the soft 3D labels. At
inference the 2D keypoints come from the mean of both branches and the 3D from the mean of both
lifters, each lifter fed its own branch's keypoints.

The paper's Table 3 single branch (``single_branch``) has ONE heatmap layer and ONE lifter,
trained on the hard set, the soft set or both (the loss weights pick them): both 2D losses train
that layer, both 3D losses that lifter, and at inference the 3D is that lifter on the layer's
keypoints. They keep the names ``soft`` and ``lift_soft`` (so that tools naming modules, such as
the FLOP counter, find them); ``hard`` and ``lift_hard`` do not exist, so every parameter is in
the state dict once.

:class:`KeypointHead` owns what does not depend on the network around it: the branch layout
(two branches, or the single branch), the lifters and their losses. Each family adds its
trunk, its 2D losses and its decoding, as detectron2 keeps each ROI head's loss beside it:

- :class:`orpose.student.roi_heads.RCNNKeypointHead` (Keypoint R-CNN, the paper's student):
  RoIAlign features -> conv stack -> two ConvTranspose branches, spatial cross-entropy losses;
- :class:`TopDownKeypointHead` (the CPU student): image crops -> a pretrained top-down pose
  trunk -> two 1x1-conv branches, heatmap regression losses and dense distillation; its
  Gaussian targets and its DARK decoding are the heatmap codec's (:mod:`orpose.heatmaps`, the
  teacher's too).
"""

from __future__ import annotations

import copy
import math

import torch
from torch import nn

from orpose.heatmaps import dark_refine, gaussian_heatmaps
from orpose.lifting.kinds import make_lifter  # the lifter kinds' one factory
from orpose.skeleton import FLIP_INDEX
from orpose.student.losses import lifting_loss

BRANCHES = ("soft", "hard")


class KeypointHead(nn.Module):
    """Branch layout and lifters. Subclasses set the heatmap branches through
    :meth:`make_branches` and compute them with :meth:`branches`.

    Two branches (default): ``soft`` / ``hard`` heatmap layers and ``lift_soft`` / ``lift_hard``
    lifters. ``single_branch``: one heatmap layer ``soft`` and one lifter ``lift_soft``, which
    both label sets train (no ``hard`` nor ``lift_hard`` module, not even as a second name)."""

    def __init__(self, single_branch: bool = False, lifter_config: dict | None = None):
        super().__init__()
        self.single_branch = single_branch
        self.lifter_config = lifter_config
        if lifter_config is not None:
            self.lift_soft = make_lifter(lifter_config)
            if not single_branch:
                self.lift_hard = make_lifter(lifter_config)
        if single_branch:
            self._register_load_state_dict_pre_hook(self._single_branch_weights)

    @property
    def has_lifters(self) -> bool:
        return hasattr(self, "lift_soft")

    def make_branches(self, branch: nn.Module) -> None:
        """``branch`` becomes HM_soft; HM_hard is a copy of it (two branches only)."""
        self.soft = branch
        if not self.single_branch:
            self.hard = copy.deepcopy(branch)

    def branches(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(HM_soft, HM_hard) of ``features``; with a single branch both are its one output."""
        soft = self.soft(features)
        return soft, soft if self.single_branch else self.hard(features)

    def lifter(self, branch: str) -> nn.Module:
        """The lifter of ``branch`` ("soft" or "hard"): the one lifter of a single branch."""
        return self.lift_soft if self.single_branch or branch == "soft" else self.lift_hard

    def set_lifters(self, lifter: nn.Module) -> None:
        """The lifters start from one trained lifter (its architecture wins): both start from
        it, or the single branch's one lifter is it."""
        self.lift_soft = lifter
        if not self.single_branch:
            self.lift_hard = copy.deepcopy(lifter)
        self.lifter_config = lifter.config.to_dict()

    def _single_branch_weights(self, state_dict, prefix, *_args) -> None:
        """Loading into a single branch: ``hard.*`` entries equal to their ``soft.*`` twins
        (the one shared layer, as single-branch files listed it before they had one lifter)
        are dropped; weights with a second lifter are refused in one line (which of two
        lifters is the one trained on the run's label sets cannot be told from the file)."""
        if any(k.startswith(prefix + "lift_hard.") for k in state_dict):
            raise RuntimeError(
                "these weights have two lifters (lift_soft, lift_hard) but the single-branch "
                "student has one (single-branch checkpoints saved before it had one lifter "
                "must be trained again)"
            )
        hard = prefix + "hard."
        for key in [k for k in state_dict if k.startswith(hard)]:
            twin = state_dict.get(prefix + "soft." + key[len(hard) :])
            if isinstance(twin, torch.Tensor) and torch.equal(twin, state_dict[key]):
                del state_dict[key]

    def lifting_losses(
        self,
        soft: torch.Tensor,
        hard: torch.Tensor,
        target_mm: torch.Tensor,
        unit_mm: float,
    ) -> dict[str, torch.Tensor]:
        """L3D_soft and L3D_hard: the soft / hard lifter on the 2D ``(N, 17, 3)`` (x, y, v or
        confidence) of that set (the teacher's, or the student's own branch's), against the soft
        3D labels ``(N, 17, 3)`` mm. With
        a single branch both terms go through its one lifter."""
        if not self.has_lifters:
            return {}
        if len(target_mm) == 0:
            zero = sum(p.sum() for p in self.lift_soft.parameters()) * 0
            return {"loss_kp3d_soft": zero, "loss_kp3d_hard": zero.clone()}
        lifted_soft = self.lifter("soft")(soft[..., :2], soft[..., 2] > 0)
        lifted_hard = self.lifter("hard")(hard[..., :2], hard[..., 2] > 0)
        return {
            "loss_kp3d_soft": lifting_loss(lifted_soft, target_mm, unit_mm),
            "loss_kp3d_hard": lifting_loss(lifted_hard, target_mm, unit_mm),
        }

    def lift(
        self, soft_xy: torch.Tensor, hard_xy: torch.Tensor, mapping=None, lifters=None
    ) -> torch.Tensor:
        """3D ``(N, 17, 3)`` mm: the mean of both lifters, each on its own branch's keypoints,
        its hips at least the lifters' floor apart in eval mode (:meth:`Lifter.widen_hips`);
        with a single branch its one lifter on ``soft_xy`` (the one layer's keypoints, which
        ``hard_xy`` repeats). ``lifters``: other lifters of the same layout, by branch name
        (the CPU student's full-resolution ones); default the head's own.

        ``mapping`` (:class:`orpose.lifting.intrinsics.LiftMapping`, None: the identity) takes
        the keypoints from the image's pixels to the lifter camera's (the original frame of a
        small one, the frame's intrinsics); the 2D outputs do not change."""
        if mapping is not None:
            soft_xy = mapping.apply(soft_xy)
        visible = torch.ones(soft_xy.shape[:2], dtype=torch.bool, device=soft_xy.device)
        soft = lifters["soft"] if lifters is not None else self.lift_soft
        if self.single_branch:
            return soft(soft_xy, visible)
        hard = lifters["hard"] if lifters is not None else self.lift_hard
        if mapping is not None:
            hard_xy = mapping.apply(hard_xy)
        mean = (soft(soft_xy, visible) + hard(hard_xy, visible)) / 2
        # two lifters that disagree on which hip is nearer pull the mean's hips together again
        # (other lifter kinds than orpose's have no floor)
        widen = getattr(soft, "widen_hips", None)
        return widen(mean) if widen is not None and not soft.training else mean


# -- heatmap regression (top-down models) ---------------------------------------------------------


def heatmap_loss(
    predicted: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None
) -> torch.Tensor:
    """Squared error summed over each heatmap's cells, averaged over the weighted heatmaps.

    ``weight`` ``(N, K)`` (default 1): 0 leaves a keypoint out (not in the hard set). Summing
    over cells keeps the loss of one heatmap independent of its resolution's cell count
    (a wrong peak costs about pi * sigma^2, about 12.6 for sigma 2, whatever the map size).
    """
    per_map = (predicted.float() - target.float()).pow(2).sum((-2, -1))
    if weight is None:
        return per_map.mean() if per_map.numel() else predicted.sum() * 0
    total = weight.sum()
    if total <= 0:
        return predicted.sum() * 0
    return (per_map * weight).sum() / total


class TopDownKeypointHead(KeypointHead):
    """A pretrained top-down trunk on person crops, then two 1x1-conv heatmap branches.

    The branches start as copies of the trunk's own last layer (PP-TinyPose: 40 -> 17 channels
    at stride 4), so the untrained student already predicts what the pretrained model does.
    ``single_branch``: that layer is the one branch, HM_soft and HM_hard are both its output,
    so every loss below trains it.

    Losses (all heatmap regression, the loss the trunk was trained with; weights in the config):
    - ``loss_kp2d_hard``: HM_hard against unit Gaussians at the hard set's keypoints (those
      with v > 0 only);
    - ``loss_kp2d_soft``: HM_soft against Gaussians of peak c at the soft set's keypoints (a
      doubtful keypoint asks for a low, not a missing, peak: the heatmap analogue of the
      official code's confidence-scaled logits);
    - ``loss_kp2d_kd``: HM_soft against the teacher's own heatmaps of the same crop at full
      resolution (dense distillation; at 1x it also keeps the student close to where it started).
    """

    def __init__(
        self,
        trunk: nn.Module,
        last_layer: nn.Conv2d,
        input_size: tuple[int, int],
        stride: int = 4,
        single_branch: bool = False,
        lifter_config: dict | None = None,
        sigma: float = 2.0,
        dark_kernel: int = 11,
    ):
        super().__init__(single_branch, lifter_config)
        self.trunk = trunk
        self.make_branches(copy.deepcopy(last_layer))
        self.input_size = tuple(input_size)  # (width, height) of a crop
        self.stride = stride
        self.sigma = sigma
        self.dark_kernel = dark_kernel

    @property
    def map_size(self) -> tuple[int, int]:
        """(width, height) of the heatmaps."""
        w, h = self.input_size
        return math.ceil(w / self.stride), math.ceil(h / self.stride)

    def forward(self, crops: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """HM_soft and HM_hard ``(R, 17, H, W)`` of normalised crops ``(R, 3, h, w)`` (one
        tensor twice with a single branch)."""
        (features,) = self.trunk(crops)
        return self.branches(features)

    def losses(
        self,
        hm_soft: torch.Tensor,
        hm_hard: torch.Tensor,
        soft: torch.Tensor,
        hard: torch.Tensor,
        teacher: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        """The 2D losses; ``soft`` / ``hard`` ``(R, 17, 3)`` in crop pixels (x, y, c or v),
        ``teacher`` ``(R, 17, H, W)`` heatmaps of the clean crops (None: no distillation)."""
        size = hm_soft.shape[-2:]
        cells_soft = soft[..., :2] / self.stride
        cells_hard = hard[..., :2] / self.stride
        soft_target = gaussian_heatmaps(cells_soft, soft[..., 2].clamp(0, 1), size, self.sigma)
        visible = (hard[..., 2] > 0).to(hm_hard.dtype)
        hard_target = gaussian_heatmaps(cells_hard, visible, size, self.sigma)
        out = {
            "loss_kp2d_hard": heatmap_loss(hm_hard, hard_target, visible),
            "loss_kp2d_soft": heatmap_loss(hm_soft, soft_target),
        }
        if teacher is not None:
            out["loss_kp2d_kd"] = heatmap_loss(hm_soft, teacher)
        return out

    def decode(self, heatmaps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Keypoints in crop pixels ``(R, 17, 2)`` and their scores ``(R, 17)`` in [0, 1]."""
        cells, scores = dark_refine(heatmaps, self.dark_kernel)
        return cells * self.stride, scores

    def unflip(self, heatmaps: torch.Tensor, crop_width: int) -> torch.Tensor:
        """Heatmaps ``(R, 17, h, w)`` of mirrored crops as those of the crops themselves: the
        columns reversed, left and right joints swapped, and moved onto the unmirrored grid.

        Cell j stands for crop pixel ``stride * j`` (:meth:`decode`); mirrored, column j of the
        reversed map stands for pixel ``stride * j + d * stride`` with
        ``d = (crop_width - 1) / stride - (w - 1)`` cells (0.75 for 4-pixel cells), so each
        cell is read between its reversed neighbours ``j - 1`` and ``j`` (linear
        interpolation; the first column keeps its own value)."""
        w = heatmaps.shape[-1]
        d = (crop_width - 1) / self.stride - (w - 1)
        reversed_ = torch.flip(heatmaps, [-1])[:, list(FLIP_INDEX)]
        if d <= 0:
            return reversed_
        before = torch.cat([reversed_[..., :1], reversed_[..., :-1]], -1)
        return d * before + (1 - d) * reversed_
