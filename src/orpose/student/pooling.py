"""Multi-scale RoIAlign with detectron2's ``ROIAlignV2`` option (``aligned=True``).

torchvision's :class:`~torchvision.ops.MultiScaleRoIAlign` always pools with ``aligned=False``
(a box's corner at pixel index ``x`` samples feature coordinate ``x * scale``); detectron2's
``ROIAlignV2``, the pooler of the official ORPose students (box head: detectron2's default
``ROI_BOX_HEAD.POOLER_TYPE``; keypoint head: ``POOLER_TYPE: "ROIAlignV2"``, ORPose-Color
``keypoints_3d/config.py`` line 32), shifts the box by half a pixel (``x * scale - 0.5``), which
is where continuous coordinates put the pixel centres. :class:`MultiScaleRoIAlignV2` is
torchvision's pooler (same level assignment, same scales, same ONNX path) calling
``roi_align(..., aligned=True)``; ONNX opset >= 16 exports it (``coordinate_transformation_mode
= half_pixel``).
"""

from __future__ import annotations

import torch
from torch import Tensor
from torchvision.ops import MultiScaleRoIAlign, roi_align

from orpose.compat_torchvision import (
    convert_to_roi_format,
    filter_input,
    is_tracing,
    onnx_merge_levels,
    setup_scales,
)


def _multiscale_roi_align_v2(
    features: list[Tensor],
    boxes: list[Tensor],
    output_size: tuple[int, int],
    sampling_ratio: int,
    scales: list[float],
    mapper,
) -> Tensor:
    """torchvision's ``_multiscale_roi_align`` with ``aligned=True``."""
    rois = convert_to_roi_format(boxes)

    def pool(feature: Tensor, level_rois: Tensor, scale: float) -> Tensor:
        return roi_align(feature, level_rois, output_size, scale, sampling_ratio, aligned=True)

    if len(features) == 1:
        return pool(features[0], rois, scales[0])
    levels = mapper(boxes)
    first = features[0]
    result = first.new_zeros((len(rois), first.shape[1], *output_size))
    traced = []
    for level, (feature, scale) in enumerate(zip(features, scales, strict=True)):
        index = torch.where(levels == level)[0]
        pooled = pool(feature, rois[index], scale)
        if is_tracing():
            traced.append(pooled.to(first.dtype))
        else:
            result[index] = pooled.to(result.dtype)
    if is_tracing():
        result = onnx_merge_levels(levels, traced)
    return result


class MultiScaleRoIAlignV2(MultiScaleRoIAlign):
    """:class:`~torchvision.ops.MultiScaleRoIAlign` pooling with ``aligned=True``."""

    def forward(
        self, x: dict[str, Tensor], boxes: list[Tensor], image_shapes: list[tuple[int, int]]
    ) -> Tensor:
        features = filter_input(x, self.featmap_names)
        if self.scales is None or self.map_levels is None:
            self.scales, self.map_levels = setup_scales(
                features, image_shapes, self.canonical_scale, self.canonical_level
            )
        return _multiscale_roi_align_v2(
            features, boxes, self.output_size, self.sampling_ratio, self.scales, self.map_levels
        )


def multiscale_roi_align(
    featmap_names: list[str], output_size: int, sampling_ratio: int, aligned: bool = False
) -> MultiScaleRoIAlign:
    """torchvision's pooler, or its ``aligned=True`` twin (detectron2's ``ROIAlignV2``)."""
    cls = MultiScaleRoIAlignV2 if aligned else MultiScaleRoIAlign
    return cls(featmap_names, output_size, sampling_ratio)
