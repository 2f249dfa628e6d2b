"""torchvision's private and internal helpers, imported in this one module.

orpose composes its students from torchvision's detection parts (docs/architecture.md), and some
of what it reuses is not torchvision's public API: underscored names (``_topk_min``,
``_get_shape_onnx``, ``_is_tracing``, the poolers' ``_setup_scales`` ...), the module-level
helpers behind ``RoIHeads`` and ``GeneralizedRCNNTransform`` (``keypoints_to_heatmap``,
``heatmaps_to_keypoints``, ``resize_keypoints``) and a private attribute of the RPN. Any of them
may move or change in a torchvision release; they are named here only, under public names of
orpose, so that such a change is met in one file (tests/test_architecture.py checks that no other
module reaches them). Each is torchvision's own object, unchanged: behaviour, tracing and ONNX
export are the same as importing it from torchvision.

torchvision is unpinned (pyproject.toml); these names are in use with 0.26 and 0.29.
"""

from __future__ import annotations

from torch import nn
from torchvision import _is_tracing as is_tracing
from torchvision.models.detection._utils import _topk_min as topk_min
from torchvision.models.detection.roi_heads import heatmaps_to_keypoints, keypoints_to_heatmap
from torchvision.models.detection.transform import _get_shape_onnx as get_shape_onnx
from torchvision.models.detection.transform import resize_keypoints
from torchvision.ops.poolers import _convert_to_roi_format as convert_to_roi_format
from torchvision.ops.poolers import _filter_input as filter_input
from torchvision.ops.poolers import _onnx_merge_levels as onnx_merge_levels
from torchvision.ops.poolers import _setup_scales as setup_scales

__all__ = [
    "convert_to_roi_format",
    "filter_input",
    "get_shape_onnx",
    "heatmaps_to_keypoints",
    "is_tracing",
    "keypoints_to_heatmap",
    "onnx_merge_levels",
    "resize_keypoints",
    "set_rpn_test_proposals",
    "setup_scales",
    "topk_min",
]


def set_rpn_test_proposals(rpn: nn.Module, count: int) -> None:
    """Keep ``count`` proposals after NMS at inference (torchvision's
    ``rpn_post_nms_top_n_test``, held in the RPN's private ``_post_nms_top_n``)."""
    rpn._post_nms_top_n = {**rpn._post_nms_top_n, "testing": int(count)}
