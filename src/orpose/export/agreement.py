"""Does an exported graph give the PyTorch student's results? Measured on real images.

(:func:`compare_graphs` does the same for two exported graphs, e.g. an int8 copy against its
fp32 graph, where the differences are larger and read against :func:`grey_noise`'s floor.)

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

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch
from torchvision.ops import box_iou

from orpose.data.sources import list_images, read_image_rgb
from orpose.inference.onnx_runner import OnnxStudent
from orpose.predictor import StudentPredictor
from orpose.skeleton import OKS_SIGMAS

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
    box_iou: list[float] = field(default_factory=list)  # per paired detection
    oks: list[float] = field(default_factory=list)  # per paired person: COCO OKS of the two

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

    def summary(self, scale: float = 1.0) -> str:
        """Keypoints median and 90%, OKS and unpaired detections, in few words."""
        kp = np.asarray(self.keypoint_px) * scale
        if not kp.size:
            return f"no person found by both, {self.unpaired} unpaired"
        return (f"median {np.median(kp):.2f} px, 90% within {np.quantile(kp, 0.9):.2f} px, "
                f"OKS mean {np.mean(self.oks):.3f}, {self.unpaired} unpaired")  # fmt: skip

    def describe_int8(self, what: str, scale: float = 1.0) -> str:
        """int8 vs fp32 in one line; keypoint differences in pixels times ``scale`` (the frame
        the image was shrunk from: a native 12x image's differences in 1x pixels)."""
        kp = np.asarray(self.keypoint_px) * scale
        iou = np.asarray(self.box_iou)
        if not kp.size:
            return (f"int8 vs fp32, {what}: {self.images} image(s), no person found by both "
                    f"(unpaired detections: {self.unpaired})")  # fmt: skip
        return (
            f"int8 vs fp32, {what}: {self.images} image(s), {self.people} people, keypoints "
            f"median {np.median(kp):.2f} px, 90% within {np.quantile(kp, 0.9):.2f} px, max "
            f"{kp.max():.1f} px; box IoU median {np.median(iou):.3f}, min {iou.min():.3f}; OKS "
            f"mean {np.mean(self.oks):.3f}; scores {self.max_score:.3f}; unpaired detections: "
            f"{self.unpaired}"
        )

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


def _oks(ref: torch.Tensor, other: torch.Tensor, box: torch.Tensor) -> float:
    """COCO's object keypoint similarity of two poses of one person (17 keypoints; the box
    area as the scale, as orpose.evaluation.mpjpe does); NaN for other skeletons."""
    if ref.shape[0] != len(OKS_SIGMAS):
        return float("nan")
    d2 = ((ref[:, :2].double() - other[:, :2].double()) ** 2).sum(-1).numpy()
    area = float((box[2] - box[0]) * (box[3] - box[1]))
    return float(np.exp(-d2 / (2 * (2 * OKS_SIGMAS) ** 2 * max(area, 1e-9))).mean())


def add_image(report: Agreement, ref: dict[str, torch.Tensor], other: dict[str, torch.Tensor]):
    """Accumulate one image's differences (``ref``: the reference, PyTorch or the fp32 graph;
    ``other``: the graph checked)."""
    ref = {k: v.cpu() for k, v in ref.items()}
    other = {k: v.cpu() for k, v in other.items()}
    pairs = _pairs(ref["boxes"], other["boxes"])
    if pairs:
        iou = box_iou(ref["boxes"].float(), other["boxes"].float())
        report.box_iou.extend(float(iou[i, j]) for i, j in pairs)
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
        report.oks.append(_oks(ref["keypoints"][i], other["keypoints"][j], ref["boxes"][i]))
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
    factor: float | None = None,
) -> Agreement:
    """PyTorch student vs its ONNX graph (onnxruntime, CPU) on the first ``count`` images
    (resized to ``resize_to`` = (width, height) first, for fixed-size graphs); ``factor`` > 1:
    each image shrunk that many times and upsampled back, and both told so (the CPU student's
    trained detector; without it, its full-resolution one)."""
    from orpose.data.lowres import degrade

    torch_runner = StudentPredictor(model, "cpu")
    onnx_runner = OnnxStudent(onnx_path, providers=["CPUExecutionProvider"])
    report = Agreement()
    for path in list_images(Path(images))[:count]:
        image = read_image_rgb(path)
        if resize_to is not None:
            image = cv2.resize(image, resize_to, interpolation=cv2.INTER_AREA)
        if factor is not None and factor > 1:
            image = degrade(image, factor)
        report.image_sizes.append((image.shape[1], image.shape[0]))
        ours = torch_runner.detect(image, factor=factor)
        add_image(report, ours, onnx_runner.detect(image, factor=factor))
    return report


def compare_graphs(
    reference: Path | str,
    other: Path | str,
    images: Sequence[Path],
    prepare: Callable[[np.ndarray], np.ndarray] | None = None,
    perturb: Callable[[np.ndarray], np.ndarray] | None = None,
    factor: float | None = None,
) -> Agreement:
    """One exported graph against another (e.g. int8 against fp32), both in onnxruntime on the
    CPU, on ``images`` (each through ``prepare`` first: shrunk, degraded); ``perturb``: what
    the other graph's copy of each image goes through as well (see :func:`grey_noise`);
    ``factor``: how many times ``prepare`` shrank them, for graphs that take it."""
    ref = OnnxStudent(reference, providers=["CPUExecutionProvider"])
    test = ref if Path(other) == Path(reference) else OnnxStudent(
        other, providers=["CPUExecutionProvider"])  # fmt: skip
    report = Agreement()
    for path in images:
        image = read_image_rgb(path)
        if prepare is not None:
            image = prepare(image)
        report.image_sizes.append((image.shape[1], image.shape[0]))
        theirs = test.detect(perturb(image) if perturb is not None else image, factor=factor)
        add_image(report, ref.detect(image, factor=factor), theirs)
    return report


def grey_noise(seed: int = 0) -> Callable[[np.ndarray], np.ndarray]:
    """Each pixel value moved by -1, 0 or +1 at random: a change no one sees (smaller than a
    JPEG re-encoding's), which shows how far the pipeline's own results move on their own
    (ties of heatmap peaks, boxes near the score threshold): the floor any int8 difference is
    read against."""
    rng = np.random.default_rng(seed)

    def perturb(image: np.ndarray) -> np.ndarray:
        noise = rng.integers(-1, 2, image.shape, dtype=np.int16)
        return np.clip(image.astype(np.int16) + noise, 0, 255).astype(np.uint8)

    return perturb
