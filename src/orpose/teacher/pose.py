"""Top-down 2D pose adapters: crop persons, run the model, keep its output maps.

An adapter owns what depends on the output kind: how output maps relate to input pixels, how to
resample them onto another crop's grid (for test-time augmentation) and how to decode them.

- ``heatmap`` (TinyPose, HRNet, SimpleBaseline): ``K x H x W`` maps of stride ``input / map``;
  input pixel = cell * stride + ``heatmap_offset`` (0 for models trained with the common
  ``int(x / stride + 0.5)`` target rule, such as HRNet and PaddleDetection's TinyPose).
- ``simcc`` (RTMPose): ``K x (W * split)`` and ``K x (H * split)`` 1-D maps; pixel = bin / split.

Each adapter registers its kind in :data:`POSE_ADAPTERS`, the one list of the pose output kinds
(a manifest entry naming another kind is refused when its adapter is built).
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from orpose.heatmaps import decode_heatmaps
from orpose.manifest import ModelError, ModelSpec, adapter_for
from orpose.registry import Registry
from orpose.skeleton import FLIP_INDEX, NUM_KEYPOINTS
from orpose.teacher.decode import decode_simcc
from orpose.teacher.geometry import AxisMap, Crop, crop_for_box, resample_axis
from orpose.teacher.preprocess import normalize
from orpose.teacher.runtime import OnnxModel

Maps = tuple[np.ndarray, ...]  # one person's output maps: (heatmaps,) or (simcc_x, simcc_y)


class PoseAdapter:
    """Common part: cropping, batching, the model-input <-> map-cell axis maps."""

    def __init__(
        self, spec: ModelSpec, model: OnnxModel | None, map_size: tuple[int, int] | None = None
    ) -> None:
        self.spec = spec
        self.model = model
        self.input_size = (spec.input.width, spec.input.height)
        # Cells along x and y of the output maps: from the model, or given (tests, no model).
        self.map_size = map_size or self.map_size_of(model)
        self.map_x, self.map_y = self.input_to_map()

    # --- to be provided by each output kind -------------------------------------------------
    def map_size_of(self, model: OnnxModel | None) -> tuple[int, int]:
        raise NotImplementedError

    def input_to_map(self) -> tuple[AxisMap, AxisMap]:
        raise NotImplementedError

    def split_outputs(self, outputs: list[np.ndarray]) -> list[Maps]:
        raise NotImplementedError

    def resample(self, maps: Maps, x: AxisMap, y: AxisMap) -> tuple[Maps, Maps]:
        """Maps on the reference grid, where reference cell -> this crop's cell is (x, y);
        plus, per map, a mask broadcastable to it: 1 where the crop saw that cell."""
        raise NotImplementedError

    def decode(self, maps: Maps, method: str, kernel: int) -> tuple[np.ndarray, np.ndarray]:
        """Keypoints (K, 2) in map cells and confidences (K,)."""
        raise NotImplementedError

    # --- shared ------------------------------------------------------------------------------
    def flip_mirror(self) -> float:
        """Input mirror constant c (u -> c - u) under which flipping the crop reverses the map
        exactly: cell j and cell n-1-j of the x axis are mirror images of each other."""
        to_input = self.map_x.inverse()
        return float(to_input(0.0) + to_input(self.map_size[0] - 1.0))

    def crop(self, box: np.ndarray, scale: float = 1.0, flip: bool = False) -> Crop:
        mirror = self.flip_mirror() if flip else None
        return crop_for_box(box, self.input_size, self.spec.box_padding, scale, mirror)

    def cut(self, image: np.ndarray, crop: Crop) -> np.ndarray:
        pad = self.spec.input.pad_value
        return cv2.warpAffine(
            image,
            crop.matrix(),
            self.input_size,
            flags=cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_CONSTANT,
            borderValue=(pad, pad, pad),
        )

    def infer(self, image: np.ndarray, crops: Sequence[Crop]) -> list[Maps]:
        """Output maps of every crop of one image, run as one batch."""
        if not crops:
            return []
        if self.model is None:
            raise RuntimeError("adapter built without a model")
        batch = np.stack([normalize(self.cut(image, c), self.spec.input) for c in crops])
        return self.split_outputs(self.model.run(batch))

    def map_to_image(self, crop: Crop) -> tuple[AxisMap, AxisMap]:
        """Map cell -> image pixel for a crop."""
        return (
            self.map_x.inverse().then(crop.x.inverse()),
            self.map_y.inverse().then(crop.y.inverse()),
        )

    def cell_map(self, reference: Crop, other: Crop) -> tuple[AxisMap, AxisMap]:
        """Reference crop's map cell -> the other crop's map cell, through the image."""
        ref_x, ref_y = self.map_to_image(reference)
        return (ref_x.then(other.x).then(self.map_x), ref_y.then(other.y).then(self.map_y))


# output kind -> adapter, one registry (orpose.registry)
POSE_ADAPTERS: Registry[type[PoseAdapter]] = Registry("pose output kind")


@POSE_ADAPTERS.decorator("heatmap")
class HeatmapAdapter(PoseAdapter):
    """Heatmap models; ``decode`` uses DARK or the quarter-cell rule."""

    def map_size_of(self, model: OnnxModel | None) -> tuple[int, int]:
        shape = (
            None if model is None else next((s for s in model.output_shapes if len(s) == 4), None)
        )
        if shape is None or not all(isinstance(v, int) for v in shape[2:]):
            raise ModelError(f"{self.spec.name}: no 4-D heatmap output of fixed size")
        return int(shape[3]), int(shape[2])

    def input_to_map(self) -> tuple[AxisMap, AxisMap]:
        w, h = self.map_size
        sx, sy = self.input_size[0] / w, self.input_size[1] / h
        off = self.spec.heatmap_offset
        return AxisMap(1.0 / sx, -off / sx), AxisMap(1.0 / sy, -off / sy)

    def split_outputs(self, outputs: list[np.ndarray]) -> list[Maps]:
        heatmaps = next((o for o in outputs if o.ndim == 4), None)
        if heatmaps is None or heatmaps.shape[1] != NUM_KEYPOINTS:
            raise ModelError(f"{self.spec.name}: expected N x {NUM_KEYPOINTS} x H x W heatmaps")
        return [(hm.astype(np.float32),) for hm in heatmaps]

    def resample(self, maps: Maps, x: AxisMap, y: AxisMap) -> tuple[Maps, Maps]:
        w, h = self.map_size
        hm, valid_x = resample_axis(maps[0], 2, x(np.arange(w, dtype=np.float64)))
        hm, valid_y = resample_axis(hm, 1, y(np.arange(h, dtype=np.float64)))
        return (hm,), ((valid_y[:, None] & valid_x[None, :]).astype(np.float32)[None],)

    def decode(self, maps: Maps, method: str, kernel: int) -> tuple[np.ndarray, np.ndarray]:
        return decode_heatmaps(maps[0], method, kernel)


@POSE_ADAPTERS.decorator("simcc")
class SimccAdapter(PoseAdapter):
    """SimCC models (RTMPose): separate x and y classifications."""

    def map_size_of(self, model: OnnxModel | None) -> tuple[int, int]:
        split = self.spec.simcc_split
        return int(round(self.input_size[0] * split)), int(round(self.input_size[1] * split))

    def input_to_map(self) -> tuple[AxisMap, AxisMap]:
        split = self.spec.simcc_split
        return AxisMap(split, 0.0), AxisMap(split, 0.0)

    def split_outputs(self, outputs: list[np.ndarray]) -> list[Maps]:
        wx, hy = self.map_size
        three_d = [o for o in outputs if o.ndim == 3]
        if self.spec.outputs and self.model is not None:
            by_name = dict(zip(self.model.output_names, outputs, strict=True))
            three_d = [by_name[n] for n in self.spec.outputs[:2]]
        sx = next((o for o in three_d if o.shape[-1] == wx), None)
        sy = next((o for o in three_d if o.shape[-1] == hy and o is not sx), None)
        if sx is None or sy is None:
            raise ModelError(
                f"{self.spec.name}: expected SimCC outputs of {wx} and {hy} bins, got shapes "
                f"{[o.shape for o in outputs]}"
            )
        return [(a.astype(np.float32), b.astype(np.float32)) for a, b in zip(sx, sy, strict=True)]

    def resample(self, maps: Maps, x: AxisMap, y: AxisMap) -> tuple[Maps, Maps]:
        wx, hy = self.map_size
        mx, valid_x = resample_axis(maps[0], 1, x(np.arange(wx, dtype=np.float64)))
        my, valid_y = resample_axis(maps[1], 1, y(np.arange(hy, dtype=np.float64)))
        return (mx, my), (valid_x.astype(np.float32)[None], valid_y.astype(np.float32)[None])

    def decode(self, maps: Maps, method: str, kernel: int) -> tuple[np.ndarray, np.ndarray]:
        return decode_simcc(maps[0], maps[1])


def build_pose_adapter(
    spec: ModelSpec, model: OnnxModel | None, map_size: tuple[int, int] | None = None
) -> PoseAdapter:
    """The adapter of the entry's output kind (ModelError naming manifest and model if none)."""
    return adapter_for(spec, POSE_ADAPTERS)(spec, model, map_size)


def swap_left_right(maps: Maps) -> Maps:
    """Channel k of a flipped crop's output shows joint FLIP_INDEX[k] of the person."""
    return tuple(m[list(FLIP_INDEX)] for m in maps)
