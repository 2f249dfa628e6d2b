"""Backbones of the student, built by torchvision with random weights (nothing is downloaded).

Each factory returns (module with ``out_channels``, the feature-map names the RoI pools read, and
anchor sizes per level). Pretrained weights come from local files: see ``orpose.student.weights``.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn
from torchvision.models.detection.backbone_utils import mobilenet_backbone, resnet_fpn_backbone
from torchvision.ops.misc import FrozenBatchNorm2d

from orpose.student.onnx_backbone import picodet_lcnet_backbone

BackboneFactory = Callable[
    [int, Callable], tuple[nn.Module, list[str], tuple[tuple[int, ...], ...]]
]
_FPN_ANCHORS = ((32,), (64,), (128,), (256,), (512,))

# Normalisation layers. "frozen_bn" is right for fine-tuning pretrained weights (torchvision's
# choice then); "bn" trains from scratch with large enough batches; "gn" (GroupNorm, 32 groups)
# trains from scratch with the small per-device batches of detection.
NORM_LAYERS: dict[str, Callable[..., nn.Module]] = {
    "frozen_bn": FrozenBatchNorm2d,
    "bn": nn.BatchNorm2d,
    "gn": lambda channels: nn.GroupNorm(32 if channels % 32 == 0 else 8, channels),
}


def _resnet_fpn(name: str) -> BackboneFactory:
    def build(trainable_layers: int, norm_layer: Callable):
        backbone = resnet_fpn_backbone(
            backbone_name=name,
            weights=None,
            norm_layer=norm_layer,
            trainable_layers=trainable_layers,
        )
        return backbone, ["0", "1", "2", "3"], _FPN_ANCHORS

    return build


def _mobilenet_v3_fpn(trainable_layers: int, norm_layer: Callable):
    backbone = mobilenet_backbone(
        backbone_name="mobilenet_v3_large",
        weights=None,
        fpn=True,
        norm_layer=norm_layer,
        trainable_layers=min(trainable_layers, 6),
    )
    return backbone, ["0", "1"], ((32, 64, 128, 256, 512),) * 3


BACKBONES: dict[str, BackboneFactory] = {
    "resnet50_fpn": _resnet_fpn("resnet50"),
    "resnet18_fpn": _resnet_fpn("resnet18"),
    "mobilenet_v3_fpn": _mobilenet_v3_fpn,
    # pretrained, built at run time from the teacher's PicoDet ONNX file (onnx_backbone.py)
    "picodet_lcnet": picodet_lcnet_backbone,
}


BACKBONE_INITS = ("pretrained", "random")


def build_backbone(
    name: str, trainable_layers: int = 5, norm: str = "bn", init: str = "pretrained"
):
    """Build a registered backbone; an unknown name lists the known ones.

    ``init="random"`` re-initialises a backbone that would otherwise come with weights (PyTorch's
    default init of every layer): the control experiment that shows what pretraining brings.
    The torchvision backbones are random either way (their weights come from ``init_weights``).
    """
    if name not in BACKBONES:
        raise ValueError(f"unknown backbone {name!r}; known: {', '.join(sorted(BACKBONES))}")
    if norm not in NORM_LAYERS:
        raise ValueError(f"unknown norm {norm!r}; known: {', '.join(sorted(NORM_LAYERS))}")
    if init not in BACKBONE_INITS:
        raise ValueError(f"unknown backbone init {init!r}; known: {', '.join(BACKBONE_INITS)}")
    backbone, names, anchors = BACKBONES[name](trainable_layers, NORM_LAYERS[norm])
    if init == "random":
        reset_weights(backbone)
    return backbone, names, anchors


def reset_weights(module: nn.Module) -> int:
    """Give every layer of ``module`` PyTorch's default random init; returns how many were reset.

    Parameters keep their ``requires_grad`` (a frozen random backbone stays frozen).
    """
    count = 0
    for layer in module.modules():
        if layer is not module and hasattr(layer, "reset_parameters"):
            layer.reset_parameters()
            count += 1
    return count
