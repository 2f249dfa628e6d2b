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
teacher's) and boxes with scores in input pixels at inference.
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
