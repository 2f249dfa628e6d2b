"""Person detector adapters: one class per output kind, all returning :class:`Detections`.

Each adapter registers its kind in :data:`DETECTOR_ADAPTERS`, the one list of the detector
output kinds (a manifest entry naming another kind is refused when its adapter is built).

- ``boxes_scores``: the model already decodes boxes (PP-PicoDet style): scores ``1 x C x N``
  (after sigmoid) and boxes ``1 x N x 4`` (x1, y1, x2, y2 in input pixels); only NMS is left.
- ``yolox``: the raw YOLOX head ``1 x N x (5 + C)`` per grid cell of every stride: centre
  offsets in cells, log width/height, sigmoid objectness and class scores; decoded here.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from orpose.manifest import ModelError, ModelSpec, adapter_for
from orpose.registry import Registry
from orpose.teacher.boxes import Detections, clip_boxes, drop_degenerate, nms
from orpose.teacher.preprocess import fit_to_input, normalize
from orpose.teacher.runtime import OnnxModel

PRE_NMS_TOP_K = 1000  # bounds NMS time on images with thousands of weak candidates


def yolox_grid(height: int, width: int, strides: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """Cell coordinates (N, 2) as x, y and the stride of each cell, in the head's output order.

    YOLOX concatenates its levels by increasing stride, each level row-major (x fastest).
    """
    cells, cell_strides = [], []
    for stride in strides:
        gh, gw = height // stride, width // stride
        ys, xs = np.meshgrid(np.arange(gh), np.arange(gw), indexing="ij")
        cells.append(np.stack([xs.ravel(), ys.ravel()], axis=1))
        cell_strides.append(np.full(gh * gw, stride))
    return np.concatenate(cells).astype(np.float64), np.concatenate(cell_strides).astype(np.float64)


def decode_yolox(
    raw: np.ndarray, height: int, width: int, strides: Sequence[int], class_id: int
) -> tuple[np.ndarray, np.ndarray]:
    """Boxes (x1, y1, x2, y2 in input pixels) and person scores (objectness x class) of one
    ``(N, 5 + C)`` YOLOX head output: centre = (offset + cell) * stride, size = exp(log) * stride.
    """
    grid, stride = yolox_grid(height, width, strides)
    if len(grid) != len(raw):
        raise ModelError(
            f"YOLOX output has {len(raw)} rows but a {width}x{height} input with strides "
            f"{tuple(strides)} gives {len(grid)} cells"
        )
    raw = raw.astype(np.float64)
    centre = (raw[:, :2] + grid) * stride[:, None]
    size = np.exp(np.clip(raw[:, 2:4], -20.0, 20.0)) * stride[:, None]
    boxes = np.concatenate([centre - size / 2, centre + size / 2], axis=1)
    return boxes, raw[:, 4] * raw[:, 5 + class_id]


class OnnxDetector:
    """Runs a detector on whole views (each resized to the model input) and returns boxes in the
    view's pixels after a score threshold and NMS."""

    def __init__(self, spec: ModelSpec, model: OnnxModel) -> None:
        self.spec = spec
        self.model = model

    def detect(
        self,
        views: Sequence[np.ndarray],
        min_score: float = 0.05,
        nms_iou: float = 0.6,
        max_detections: int = 100,
    ) -> list[Detections]:
        """Detections of each RGB view, in that view's pixel coordinates."""
        inputs, factors = [], []
        for view in views:
            fitted, sx, sy = fit_to_input(view, self.spec.input)
            inputs.append(normalize(fitted, self.spec.input))
            factors.append((sx, sy))
        outputs = self.model.run(np.stack(inputs))
        results = []
        for i, (view, (sx, sy)) in enumerate(zip(views, factors, strict=True)):
            boxes, scores = self.decode([o[i] for o in outputs])
            keep = scores >= min_score
            boxes, scores = boxes[keep], scores[keep]
            top = np.argsort(-scores, kind="stable")[:PRE_NMS_TOP_K]
            boxes = boxes[top] / np.array([sx, sy, sx, sy])
            dets = Detections(clip_boxes(boxes, view.shape[1], view.shape[0]), scores[top])
            results.append(nms(drop_degenerate(dets), nms_iou, max_detections))
        return results

    def decode(self, outputs: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """Boxes in input pixels and person scores from one image's outputs."""
        raise NotImplementedError


# output kind -> adapter, one registry (orpose.registry)
DETECTOR_ADAPTERS: Registry[type[OnnxDetector]] = Registry("detector output kind")


@DETECTOR_ADAPTERS.decorator("boxes_scores")
class BoxesScoresDetector(OnnxDetector):
    """PP-PicoDet style: decoded boxes and per-class sigmoid scores, no NMS inside."""

    def decode(self, outputs: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        boxes = next((o for o in outputs if o.ndim == 2 and o.shape[-1] == 4), None)
        scores = next((o for o in outputs if o is not boxes and o.ndim == 2), None)
        if boxes is None or scores is None:
            raise ModelError(
                f"{self.spec.name}: expected a boxes output (N x 4) and a scores output (C x N), "
                f"got shapes {[o.shape for o in outputs]}"
            )
        return boxes.astype(np.float64), scores[self.spec.class_id].astype(np.float64)


@DETECTOR_ADAPTERS.decorator("yolox")
class YoloxDetector(OnnxDetector):
    """Raw YOLOX head: grid decode in numpy, as the exported model leaves it undone."""

    def decode(self, outputs: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        spec = self.spec
        return decode_yolox(
            outputs[0], spec.input.height, spec.input.width, spec.strides, spec.class_id
        )


def build_detector(spec: ModelSpec, model: OnnxModel) -> OnnxDetector:
    """The adapter of the entry's output kind (ModelError naming manifest and model if none)."""
    return adapter_for(spec, DETECTOR_ADAPTERS)(spec, model)
