"""Does an exported graph give the PyTorch student's results? Measured on real images.

Detections of the two runtimes are paired by box overlap (their order may differ where two
scores are nearly equal). Boxes, scores and 3D differ by rounding only; 2D keypoints mostly too,
but a keypoint is an argmax: torchvision's ``heatmaps_to_keypoints`` resamples each 56x56 heatmap
to a grid of ceil(w) x ceil(h) cells over the box and takes the best cell. Two discrete steps
therefore turn rounding into visible differences, rarely:

- a *tie*: the two best cells are equal to rounding, either may win (the keypoint jumps by a
  cell or more, possibly far);
- a box whose width or height is within rounding of a whole pixel gets a grid one cell finer or
  coarser in the other runtime (the keypoint moves by up to half a cell, about 0.5 px).

The report keeps every keypoint's difference, so that the share beyond a tolerance is known, and
leaves people whose lifter inputs (the branch keypoints) jumped out of the 3D figure.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch
from torchvision.ops import box_iou

from orpose.data.sources import list_images, read_image_rgb
from orpose.inference.onnx_runner import OnnxStudent
from orpose.student.predictor import StudentPredictor

PAIR_IOU = 0.5
BRANCH_KEYS = ("keypoints_soft_branch", "keypoints_hard_branch")


@dataclass
class Agreement:
    images: int = 0
    people: int = 0  # paired detections
    unpaired: int = 0  # detections of one runtime with no partner in the other
    keypoint_px: list[float] = field(default_factory=list)  # per 2D keypoint, max over x and y
    ties: int = 0  # 2D keypoints that jumped to another cell (more than half a cell)
    lifter_input_ties: int = 0  # people left out of the 3D figure
    max_box_px: float = 0.0
    max_score: float = 0.0
    max_keypoint3d_mm: float = 0.0
    image_sizes: list[tuple[int, int]] = field(default_factory=list)

    @property
    def max_keypoint_px(self) -> float:
        return max(self.keypoint_px, default=0.0)

    def share_beyond(self, px: float) -> float:
        """Share of the keypoints further apart than ``px``."""
        if not self.keypoint_px:
            return 0.0
        return float((np.asarray(self.keypoint_px) > px).mean())

    def within(self, share: float) -> float:
        """The difference that this share of the keypoints stays within (a quantile)."""
        return float(np.quantile(self.keypoint_px, share)) if self.keypoint_px else 0.0

    def describe(self, tolerance: float = 0.1) -> str:
        n = len(self.keypoint_px)
        beyond = round(self.share_beyond(tolerance) * n)
        return (
            f"ONNX vs PyTorch on {self.images} image(s) ({len(set(self.image_sizes))} size(s)), "
            f"{self.people} people, {n} keypoints: 99.9% within {self.within(0.999):.4f} px, "
            f"max {self.max_keypoint_px:.4f} px; {beyond} beyond {tolerance} px "
            f"({100 * self.share_beyond(tolerance):.3f}%), of which {self.ties} heatmap tie(s); "
            f"boxes {self.max_box_px:.4f} px, scores {self.max_score:.1e}, 3D "
            f"{self.max_keypoint3d_mm:.4f} mm (without {self.lifter_input_ties} people whose "
            f"lifter input has a tie); unpaired detections: {self.unpaired}"
        )


def _pairs(a: torch.Tensor, b: torch.Tensor) -> list[tuple[int, int]]:
    """Greedy one-to-one pairing of two box sets by IoU (>= PAIR_IOU)."""
    if len(a) == 0 or len(b) == 0:
        return []
    iou = box_iou(a.float(), b.float())
    pairs = []
    while True:
        best = int(iou.argmax())
        i, j = divmod(best, iou.shape[1])
        if iou[i, j] < PAIR_IOU:
            return pairs
        pairs.append((i, j))
        iou[i, :] = -1
        iou[:, j] = -1


def _half_cell(box: torch.Tensor) -> torch.Tensor:
    """Half the argmax grid's cell along x and y: ceil(size) cells over the box (torchvision)."""
    size = (box[2:] - box[:2]).clamp(min=1.0)
    return size / size.ceil() / 2


def _jumps(
    ref: torch.Tensor, other: torch.Tensor, half_cell: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per keypoint: the largest x/y difference, and whether it jumped to another cell."""
    moved = (ref[:, :2].cpu() - other[:, :2].cpu()).abs()
    return moved.amax(-1), (moved > 1.5 * half_cell).any(-1)


def add_image(report: Agreement, ref: dict[str, torch.Tensor], other: dict[str, torch.Tensor]):
    """Accumulate one image's differences (``ref`` = PyTorch, ``other`` = exported graph)."""
    ref = {k: v.cpu() for k, v in ref.items()}
    other = {k: v.cpu() for k, v in other.items()}
    pairs = _pairs(ref["boxes"], other["boxes"])
    report.images += 1
    report.people += len(pairs)
    report.unpaired += len(ref["boxes"]) + len(other["boxes"]) - 2 * len(pairs)
    for i, j in pairs:

        def diff(key: str, i=i, j=j) -> float:
            return float((ref[key][i].float() - other[key][j].float()).abs().max())

        half_cell = _half_cell(ref["boxes"][i])
        moved, tie = _jumps(ref["keypoints"][i], other["keypoints"][j], half_cell)
        report.keypoint_px.extend(moved.tolist())
        report.ties += int(tie.sum())
        report.max_box_px = max(report.max_box_px, diff("boxes"))
        report.max_score = max(report.max_score, diff("scores"))
        branches = [k for k in BRANCH_KEYS if k in ref and k in other]
        if any(_jumps(ref[k][i], other[k][j], half_cell)[1].any() for k in branches):
            report.lifter_input_ties += 1
        elif "keypoints3d" in ref and "keypoints3d" in other:
            report.max_keypoint3d_mm = max(report.max_keypoint3d_mm, diff("keypoints3d"))


def compare_on_images(
    model,
    onnx_path: Path | str,
    images: Path,
    count: int,
    resize_to: tuple[int, int] | None = None,
) -> Agreement:
    """PyTorch student vs its ONNX graph (onnxruntime, CPU) on the first ``count`` images
    (resized to ``resize_to`` = (width, height) first, for fixed-size graphs)."""
    torch_runner = StudentPredictor(model, "cpu")
    onnx_runner = OnnxStudent(onnx_path, providers=["CPUExecutionProvider"])
    report = Agreement()
    for path in list_images(Path(images))[:count]:
        image = read_image_rgb(path)
        if resize_to is not None:
            image = cv2.resize(image, resize_to, interpolation=cv2.INTER_AREA)
        report.image_sizes.append((image.shape[1], image.shape[0]))
        add_image(report, torch_runner.detect(image), onnx_runner.detect(image))
    return report
