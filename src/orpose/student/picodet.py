"""The PP-PicoDet person detector as a native PyTorch module, imported from the teacher's file.

Why: the CPU student's detector starts from the teacher's own pretrained detector, then learns
low resolution. The convolutional body (LCNet backbone, CSP-PAN neck, GFL head convolutions) is
imported from the ONNX file (:mod:`orpose.student.onnx_import`); the head's decoding, which the
file hard-codes for a 320x320 input, is written here for any input size:

- score of a cell = sqrt(sigmoid(a) * sigmoid(b)), a and b being the head's two score logits
  (PicoDet's class score times its IoU-quality branch, as exported);
- box = cell centre -/+ distances, each distance the expectation of an 8-bin distribution
  (Generalized Focal Loss's "integral" regression) times the level's stride.

:class:`PicoDet` returns the raw per-level maps in training (distillation compares them with the
teacher's) and boxes with scores in input pixels at inference. Its training losses live here,
beside it (:meth:`PicoDet.distillation_losses`: a quality focal loss on the teacher's per-cell
scores, GFL's distribution focal loss on its boxes).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import fx, nn

from orpose.student.onnx_import import OnnxImportError, import_onnx, static_shapes

DFL_BINS = 8  # reg_max + 1 of PicoDet's GFL head
QFL_BETA = 2.0  # quality focal loss exponent (Li et al., Generalized Focal Loss)
BOX_MIN_SCORE = 0.05  # teacher cells below this score do not teach boxes


@dataclass
class LevelOutputs:
    """One pyramid level's raw head maps: two score logits ``(N, 1, H, W)`` and the box
    distribution logits ``(N, 4 * bins, H, W)`` (side-major: left, top, right, bottom)."""

    logit_a: torch.Tensor
    logit_b: torch.Tensor
    box_logits: torch.Tensor
    stride: int


def find_head_tensors(model) -> tuple[list[str], list[int]]:
    """Names of (logit_a, logit_b, box logits) per level of a PicoDet ONNX graph, and strides.

    Found from the graph's structure: each level's score is ``Sqrt(Sigmoid(a) * Sigmoid(b))``;
    its box branch is a ``Conv`` whose output goes through ``Transpose`` and ``Reshape`` into
    ``Softmax``. Levels are ordered by decreasing map size (increasing stride).
    """
    graph = model.graph
    producer = {out: node for node in graph.node for out in node.output}
    shapes = static_shapes(model)
    (image,) = [i for i in graph.input if i.name not in {t.name for t in graph.initializer}]
    input_h = image.type.tensor_type.shape.dim[2].dim_value
    scores, boxes = [], []
    for node in graph.node:
        if node.op_type == "Sqrt":
            mul = producer[node.input[0]]
            logits = [producer[name].input[0] for name in mul.input]
            scores.append(logits)
        if node.op_type == "Softmax":
            x = node.input[0]
            while producer[x].op_type in ("Reshape", "Transpose"):
                x = producer[x].input[0]
            boxes.append(x)
    if not scores or len(scores) != len(boxes):
        raise OnnxImportError("not a PicoDet graph: score (Sqrt) and box (Softmax) heads not found")

    def height(name: str) -> int:
        return shapes[name][2]

    scores.sort(key=lambda pair: -height(pair[0]))
    boxes.sort(key=lambda name: -height(name))
    names = [name for pair, box in zip(scores, boxes, strict=True) for name in (*pair, box)]
    strides = [input_h // height(box) for box in boxes]
    return names, strides


@functools.lru_cache(maxsize=16)
def cell_grid(levels: tuple[tuple[int, int, int], ...]) -> np.ndarray:
    """Centre x, centre y and stride ``(3, A)`` of every cell of levels given as (height, width,
    stride), level by level, row-major (read-only: it is cached). Plain numbers, so that an
    exported graph holds them as a constant: every graph resizes its image to one fixed detector
    input (``detector_size``, or ``native_detector_size`` on the native path)."""
    cells = []
    for h, w, stride in levels:
        ys, xs = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
        cells.append(np.stack([(xs.ravel() + 0.5) * stride, (ys.ravel() + 0.5) * stride,
                               np.full(xs.size, stride)]))  # fmt: skip
    grid = np.concatenate(cells, 1)
    grid.setflags(write=False)
    return grid


class PicoDet(nn.Module):
    """PicoDet body + decoding. ``forward(x)`` with ``x`` normalised ``(N, 3, H, W)``."""

    def __init__(self, body: fx.GraphModule, strides: list[int], bins: int = DFL_BINS):
        super().__init__()
        self.body = body
        self.strides = list(strides)
        self.bins = bins
        self.register_buffer("projection", torch.arange(bins, dtype=torch.float32))

    @classmethod
    def from_onnx(cls, path) -> PicoDet:
        import onnx

        model = onnx.load(str(path))
        names, strides = find_head_tensors(model)
        return cls(import_onnx(model, names), strides)

    def levels(self, x: torch.Tensor) -> list[LevelOutputs]:
        maps = self.body(x)
        return [
            LevelOutputs(maps[i], maps[i + 1], maps[i + 2], stride)
            for i, stride in zip(range(0, len(maps), 3), self.strides, strict=True)
        ]

    def decode(self, levels: list[LevelOutputs]) -> tuple[torch.Tensor, torch.Tensor]:
        """Scores ``(N, A)`` and boxes ``(N, A, 4)`` x1y1x2y2 in input pixels, over all cells of
        all levels (level by level, row-major), as the exported model orders them.

        All levels at once (one sigmoid, one softmax, one box formula): in an exported graph each
        op of a per-level loop is a node of its own, and such small nodes cost more than their
        work (one decoding instead of four: the student's frame about 3% faster in onnxruntime
        at 640x480 and at 53x40, in one timing of the two graphs in alternation)."""
        n = levels[0].logit_a.shape[0]
        a = torch.cat([level.logit_a.flatten(2) for level in levels], 2)[:, 0]
        b = torch.cat([level.logit_b.flatten(2) for level in levels], 2)[:, 0]
        scores = torch.sqrt(torch.sigmoid(a) * torch.sigmoid(b))
        logits = torch.cat([lv.box_logits.reshape(n, 4, self.bins, -1) for lv in levels], 3)
        probs = F.softmax(logits, dim=2)
        dist = (probs * self.projection.view(1, 1, -1, 1)).sum(2)  # (N, 4, A) in strides
        grid = cell_grid(tuple((int(lv.logit_a.shape[-2]), int(lv.logit_a.shape[-1]), lv.stride)
                                  for lv in levels))  # fmt: skip
        cx, cy, stride = torch.tensor(grid, dtype=dist.dtype, device=dist.device)  # a copy
        dist = dist * stride
        x1y1x2y2 = [cx - dist[:, 0], cy - dist[:, 1], cx + dist[:, 2], cy + dist[:, 3]]
        boxes = torch.stack(x1y1x2y2, -1)
        return scores, boxes

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.decode(self.levels(x))

    def distillation_losses(
        self, levels: list[LevelOutputs], scores: torch.Tensor, boxes: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """The detector's own losses (its head owns them, as detectron2's heads do): its
        ``levels`` against the teacher's per-cell scores and boxes, see
        :func:`detector_kd_losses`."""
        return detector_kd_losses(levels, scores, boxes, self.bins)


# -- the detector's distillation losses (training: orpose.training.topdown) ----------------


def quality_focal_loss(
    log_p: torch.Tensor, log_not_p: torch.Tensor, p: torch.Tensor, target: torch.Tensor
) -> torch.Tensor:
    """Per-cell BCE with a soft target, weighted by |target - p|^beta (summed, not averaged)."""
    bce = -(target * log_p + (1 - target) * log_not_p)
    return (bce * (target - p).abs().pow(QFL_BETA)).sum()


def distribution_focal_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """GFL's DFL: ``logits`` ``(M, bins)``, ``target`` ``(M,)`` in [0, bins - 1] -> ``(M,)``.

    The two bins around the target share it linearly: -(r - t) log P(l) - (t - l) log P(r).
    """
    bins = logits.shape[-1]
    target = target.clamp(0, bins - 1 - 1e-4)
    left = target.floor().long()
    w_right = target - left
    log_prob = F.log_softmax(logits, -1)
    lp_left = log_prob.gather(-1, left[:, None])[:, 0]
    lp_right = log_prob.gather(-1, (left + 1)[:, None])[:, 0]
    return -((1 - w_right) * lp_left + w_right * lp_right)


def level_shift(size: tuple[int, int], smaller: tuple[int, int]) -> int | None:
    """k where ``size`` is ``smaller`` times ``2 ** k`` on both sides (k >= 0), else None: the
    teacher's levels a detector input of ``smaller`` skips (see :func:`shift_levels`)."""
    (w, h), (sw, sh) = size, smaller
    for k in range(8):
        if (sw << k, sh << k) == (w, h):
            return k
    return None


def shift_levels(
    scores: torch.Tensor, boxes: torch.Tensor, teacher_sizes: list[tuple[int, int]], shift: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """The teacher's cells of levels ``shift`` and coarser, boxes divided by ``2 ** shift``: the
    targets of a student that sees the view at ``1 / 2 ** shift`` of the teacher's input size.

    A level of stride s on a half-size input covers the image as the teacher's level of stride
    2s does (same grid, same cell centres), and a person there is half as large in pixels.
    """
    start = sum(h * w for h, w in teacher_sizes[:shift])
    return scores[:, start:], boxes[:, start:] / 2**shift


def detector_kd_losses(
    levels: list[LevelOutputs], scores: torch.Tensor, boxes: torch.Tensor, bins: int
) -> dict[str, torch.Tensor]:
    """Dense distillation of the detector: student levels vs the teacher's per-cell scores
    ``(N, A)`` and boxes ``(N, A, 4)`` (input pixels) of the same view, cells in the same order.
    Student levels without teacher cells (the coarsest ones after :func:`shift_levels`) learn
    nothing here.

    Both losses are normalised by the sum of the teacher's scores (its "number of positives").
    """
    cells = scores.shape[1]
    kept, count = [], 0
    for level in levels:
        n = level.logit_a.shape[-2] * level.logit_a.shape[-1]
        if count + n > cells:
            break
        kept.append(level)
        count += n
    if count != cells:
        raise ValueError(f"{cells} teacher cells do not match the student's levels")
    levels = kept
    log_p, log_not_p, p, dist_logits, centres, strides = [], [], [], [], [], []
    for level in levels:
        n, _, h, w = level.logit_a.shape
        la, lb = F.logsigmoid(level.logit_a), F.logsigmoid(level.logit_b)
        lp = (0.5 * (la + lb)).reshape(n, h * w)
        prob = lp.exp()
        log_p.append(lp)
        p.append(prob)
        log_not_p.append(torch.log1p(-prob.clamp(max=1 - 1e-6)))
        logits = level.box_logits.reshape(n, 4, bins, h * w).permute(0, 3, 1, 2)
        dist_logits.append(logits)  # (N, HW, 4, bins)
        ys, xs = torch.meshgrid(
            torch.arange(h, dtype=prob.dtype), torch.arange(w, dtype=prob.dtype), indexing="ij"
        )
        centre = torch.stack([xs.reshape(-1), ys.reshape(-1)], -1).add(0.5) * level.stride
        centres.append(centre.to(prob.device))
        strides.append(torch.full((h * w,), float(level.stride), device=prob.device))
    log_p_all, log_not_all, p_all = (torch.cat(t, 1) for t in (log_p, log_not_p, p))
    normaliser = scores.sum().clamp_min(1.0)
    cls = quality_focal_loss(log_p_all, log_not_all, p_all.detach(), scores) / normaliser
    centre, stride = torch.cat(centres), torch.cat(strides)
    teacher_dist = torch.cat([centre - boxes[..., :2], boxes[..., 2:] - centre], -1)
    teacher_dist = teacher_dist / stride[None, :, None]  # (N, A, 4) in strides
    logits = torch.cat(dist_logits, 1)  # (N, A, 4, bins)
    chosen = scores >= BOX_MIN_SCORE
    if chosen.any():
        dfl = distribution_focal_loss(
            logits[chosen].reshape(-1, bins), teacher_dist[chosen].reshape(-1)
        )
        weight = scores[chosen][:, None].expand(-1, 4).reshape(-1)
        box = (dfl * weight).sum() / (4 * normaliser)
    else:
        box = logits.sum() * 0
    return {"loss_det_cls": cls, "loss_det_box": box}
