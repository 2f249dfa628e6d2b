"""Test-time augmentation: which views the models see, and how their outputs are merged back.

Detector: the models here take a fixed input size, so a *scale* is a zoom on the image: scale 1
is the whole image; scale s > 1 cuts overlapping tiles of 1/s of the image's width and height
(each tile then fills the model input, so people look s times larger); s < 1 pads the image
into a canvas 1/s times larger (people look smaller). Every scale can also be seen mirrored.
One (scale, flip) pair is one augmentation; its tiles are merged with NMS, then the
augmentations are fused with weighted box fusion.

Pose: every person is cropped at each crop scale, mirrored or not; output maps are resampled
onto the grid of the first (unmirrored) crop, mirrored ones with the left/right channel swap,
and averaged where each crop saw the cell.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from orpose.teacher.boxes import Detections, nms, weighted_box_fusion
from orpose.teacher.geometry import Crop
from orpose.teacher.pose import Maps, PoseAdapter, swap_left_right


@dataclass(frozen=True)
class View:
    """A rectangle of the image (may reach outside it: padded) seen by the detector."""

    x0: float
    y0: float
    x1: float
    y1: float
    flip: bool
    group: int  # index of the (scale, flip) augmentation the view belongs to
    tiled: bool = False  # a tile of a zoomed-in scale: boxes cut by its inner edges are dropped

    @property
    def size(self) -> tuple[int, int]:
        return int(round(self.x1 - self.x0)), int(round(self.y1 - self.y0))


def tile_starts(length: float, tile: float, overlap: float) -> list[float]:
    """Evenly spread tile origins covering [0, length] with at least ``overlap`` shared."""
    if tile >= length:
        return [0.0]
    count = math.ceil((length - tile) / (tile * (1.0 - overlap))) + 1
    return [float(v) for v in np.linspace(0.0, length - tile, count)]


def detection_views(
    width: int, height: int, scales: Sequence[float], flip: bool, overlap: float
) -> list[View]:
    """All views of an image for the detector's augmentations (groups numbered in order)."""
    views: list[View] = []
    group = 0
    for scale in scales:
        if scale > 1.0:
            tw, th = width / scale, height / scale
            rects = [
                (x, y, x + tw, y + th)
                for y in tile_starts(height, th, overlap)
                for x in tile_starts(width, tw, overlap)
            ]
        else:
            pad_x, pad_y = (width / scale - width) / 2.0, (height / scale - height) / 2.0
            rects = [(-pad_x, -pad_y, width + pad_x, height + pad_y)]
        for mirrored in (False, True) if flip else (False,):
            views += [View(*r, flip=mirrored, group=group, tiled=scale > 1.0) for r in rects]
            group += 1
    return views


def render_view(image: np.ndarray, view: View, pad_value: float) -> np.ndarray:
    """The pixels of a view: the image region, padded where the view leaves the image."""
    h, w = image.shape[:2]
    vw, vh = view.size
    x0, y0 = int(round(view.x0)), int(round(view.y0))
    if x0 >= 0 and y0 >= 0 and x0 + vw <= w and y0 + vh <= h:
        pixels = image[y0 : y0 + vh, x0 : x0 + vw]
    else:
        pixels = np.full((vh, vw, 3), pad_value, dtype=image.dtype)
        sx0, sy0 = max(x0, 0), max(y0, 0)
        sx1, sy1 = min(x0 + vw, w), min(y0 + vh, h)
        pixels[sy0 - y0 : sy1 - y0, sx0 - x0 : sx1 - x0] = image[sy0:sy1, sx0:sx1]
    return np.ascontiguousarray(pixels[:, ::-1]) if view.flip else pixels


def view_to_image(dets: Detections, view: View) -> Detections:
    """Boxes found in a view, back in image pixels (un-mirrored, shifted)."""
    boxes = dets.boxes.astype(np.float64).copy()
    if view.flip:
        vw = view.size[0]
        boxes[:, [0, 2]] = vw - boxes[:, [2, 0]]
    boxes[:, [0, 2]] += round(view.x0)
    boxes[:, [1, 3]] += round(view.y0)
    return Detections(boxes, dets.scores)


def drop_cut_boxes(
    dets: Detections, view: View, width: int, height: int, margin: float = 0.02
) -> Detections:
    """Drop tile boxes that touch an inner tile edge: the person continues outside the tile and
    its box there is truncated (a neighbouring tile or the whole image sees it whole)."""
    if not view.tiled or not len(dets):
        return dets
    vw, vh = view.size
    mx, my = margin * vw, margin * vh
    b = dets.boxes
    cut = np.zeros(len(dets), dtype=bool)
    if view.x0 > 0.5:
        cut |= b[:, 0] <= view.x0 + mx
    if view.x1 < width - 0.5:
        cut |= b[:, 2] >= view.x1 - mx
    if view.y0 > 0.5:
        cut |= b[:, 1] <= view.y0 + my
    if view.y1 < height - 0.5:
        cut |= b[:, 3] >= view.y1 - my
    return dets.select(~cut)


def merge_groups(
    views: Sequence[View], per_view: Sequence[Detections], width: int, height: int, nms_iou: float
) -> list[Detections]:
    """One detection set per augmentation: its views' boxes in image pixels, tiles NMS-merged."""
    groups: dict[int, list[Detections]] = {}
    for view, dets in zip(views, per_view, strict=True):
        boxes = drop_cut_boxes(view_to_image(dets, view), view, width, height)
        groups.setdefault(view.group, []).append(boxes)
    merged = []
    for group in sorted(groups):
        parts = groups[group]
        merged.append(parts[0] if len(parts) == 1 else nms(Detections.concat(parts), nms_iou))
    return merged


def fuse_augmentations(
    groups: Sequence[Detections],
    width: int,
    height: int,
    iou: float,
    conf_type: str,
    skip_score: float,
) -> Detections:
    """WBF across augmentations; a single augmentation passes through untouched."""
    if len(groups) == 1:
        return groups[0]
    fused = weighted_box_fusion(groups, width, height, iou, conf_type, skip_score=skip_score)
    order = np.argsort(-fused.scores, kind="stable")
    return fused.select(order)


@dataclass(frozen=True)
class PoseAugmentation:
    scale: float
    flip: bool


def pose_augmentations(scales: Sequence[float], flip: bool) -> list[PoseAugmentation]:
    """The first entry is the reference grid the others are resampled onto."""
    return [PoseAugmentation(s, f) for s in scales for f in ((False, True) if flip else (False,))]


def estimate_poses(
    adapter: PoseAdapter,
    image: np.ndarray,
    boxes: np.ndarray,
    augmentations: Sequence[PoseAugmentation],
    decode: str = "dark",
    kernel: int = 11,
) -> np.ndarray:
    """Soft keypoints ``(N, 17, 3)`` (x, y, confidence in image pixels) of the boxed persons."""
    if not len(boxes):
        return np.zeros((0, 17, 3))
    crops = [[adapter.crop(box, a.scale, a.flip) for a in augmentations] for box in boxes]
    maps = adapter.infer(image, [c for person in crops for c in person])
    out = np.zeros((len(boxes), 17, 3))
    k = len(augmentations)
    for i, person_crops in enumerate(crops):
        fused = fuse_maps(adapter, person_crops, maps[i * k : (i + 1) * k])
        cells, confidence = adapter.decode(fused, decode, kernel)
        to_x, to_y = adapter.map_to_image(person_crops[0])
        out[i, :, 0] = to_x(cells[:, 0])
        out[i, :, 1] = to_y(cells[:, 1])
        out[i, :, 2] = confidence
    return out


def fuse_maps(adapter: PoseAdapter, crops: Sequence[Crop], maps: Sequence[Maps]) -> Maps:
    """Average of one person's output maps on the first crop's grid (flips un-swapped); each
    crop counts only where it saw the cell."""
    reference = crops[0]
    if len(crops) == 1:
        return maps[0]
    sums = [np.zeros_like(a) for a in maps[0]]
    weights = [np.zeros_like(a) for a in maps[0]]
    for crop, m in zip(crops, maps, strict=True):
        if crop.flipped:
            m = swap_left_right(m)
        if crop == reference:
            masks: Maps = tuple(np.ones_like(a) for a in m)
        else:
            m, masks = adapter.resample(m, *adapter.cell_map(reference, crop))
        for j, (a, w) in enumerate(zip(m, masks, strict=True)):
            sums[j] += a * w
            weights[j] += w
    return tuple(s / np.maximum(w, 1e-6) for s, w in zip(sums, weights, strict=True))
