"""Backbones of the student, built by torchvision with random weights (nothing is downloaded).

Each factory returns (module with ``out_channels``, the feature-map names the RoI pools read, and
anchor sizes per level); each is registered by :func:`register_backbone` in :data:`BACKBONES`,
the one backbone registry (an :class:`orpose.registry.Registry`, as the student families'), and
looked up by :func:`backbone_spec`. Pretrained weights come from local files: see
:mod:`orpose.checkpoints`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import nn
from torchvision.models.detection.backbone_utils import mobilenet_backbone, resnet_fpn_backbone
from torchvision.ops.misc import FrozenBatchNorm2d

from orpose.registry import Registry
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


@dataclass(frozen=True)
class BackboneSpec:
    """One registered backbone and what the rest of the package needs to know about it."""

    name: str
    build: BackboneFactory
    summary: str
    fixed_size_export: bool = False  # its ONNX graph runs at the tracing image's size only


# The backbones: one registry (orpose.registry.Registry, as the student families'), written by
# register_backbone only, read by backbone_spec (build_backbone, export through
# orpose.student.registry.backbone_of)
BACKBONES: Registry[BackboneSpec] = Registry("backbone")


def register_backbone(
    name: str, build: BackboneFactory, summary: str, fixed_size_export: bool = False
) -> BackboneSpec:
    """Add a backbone (refused: a name registered twice)."""
    return BACKBONES.register(name, BackboneSpec(name, build, summary, fixed_size_export))


def backbone_spec(name: str) -> BackboneSpec:
    """The backbone called ``name``; an unknown name is a ValueError listing the known ones."""
    return BACKBONES.lookup(name)


# The built-in backbones
register_backbone("resnet50_fpn", _resnet_fpn("resnet50"), "the paper's student (GPUs)")
register_backbone("resnet18_fpn", _resnet_fpn("resnet18"), "CPU experiments, tests")
register_backbone("mobilenet_v3_fpn", _mobilenet_v3_fpn, "light deployments")
# exported and checked at the tracing image's size only, as when a generic converter built it
# (its graph then fixed the neck's resize sizes; the importer's graph does not)
register_backbone(
    "picodet_lcnet",
    picodet_lcnet_backbone,
    "pretrained, imported at run time from the teacher's PicoDet ONNX file (onnx_backbone.py)",
    fixed_size_export=True,
)


BACKBONE_INITS = ("pretrained", "random")


def build_backbone(
    name: str, trainable_layers: int = 5, norm: str = "bn", init: str = "pretrained"
):
    """Build a registered backbone; an unknown name lists the known ones.

    ``init="random"`` re-initialises a backbone that would otherwise come with weights (PyTorch's
    default init of every layer): the control experiment that shows what pretraining brings.
    The torchvision backbones are random either way (their weights come from ``init_weights``).
    """
    spec = backbone_spec(name)  # an unknown name: ValueError listing the known ones
    if norm not in NORM_LAYERS:
        raise ValueError(f"unknown norm {norm!r}; known: {', '.join(sorted(NORM_LAYERS))}")
    if init not in BACKBONE_INITS:
        raise ValueError(f"unknown backbone init {init!r}; known: {', '.join(BACKBONE_INITS)}")
    backbone, names, anchors = spec.build(trainable_layers, NORM_LAYERS[norm])
    if init == "random":
        reset_weights(backbone)
    return backbone, names, anchors


def use_stride_in_1x1(backbone: nn.Module) -> int:
    """Move each ResNet bottleneck's stride from its 3x3 to its first 1x1 convolution.

    detectron2's ``RESNETS.STRIDE_IN_1X1 = True`` (its MSRA ImageNet weights, and the official
    ORPose students trained from them): ``StudentConfig.stride_in_1x1``. ``backbone``: a
    torchvision FPN backbone (its ``body``) or a model holding one as ``backbone``. Returns the
    number of blocks changed (0 for ResNet-18/34, whose basic blocks have no 1x1).
    """
    changed = 0
    body = getattr(getattr(backbone, "backbone", backbone), "body", None)
    for name in ("layer1", "layer2", "layer3", "layer4"):
        for block in getattr(body, name, []):
            conv1, conv2 = getattr(block, "conv1", None), getattr(block, "conv2", None)
            conv3 = getattr(block, "conv3", None)
            if conv3 is None or conv2 is None or conv2.stride == (1, 1):
                continue
            conv1.stride, conv2.stride = conv2.stride, (1, 1)
            changed += 1
    return changed


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
