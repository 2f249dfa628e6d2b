"""A trainable detection backbone cut, at run time, from the teacher's PicoDet ONNX detector.

Why: no ImageNet or COCO weights can be downloaded here, and the only pretrained convolutional
features at hand are inside the teacher's ONNX models (docs/architecture.md, "Pretrained features
available offline"). The ONNX file stays where it is
(``<models>/picodet_s_320_lcnet_pedestrian.onnx``, or ``$ORPOSE_PICODET_ONNX``); the module is
rebuilt from it each time a student is built, so a saved student needs that file too (its
checkpoint then overwrites the weights, and records the file's sha256: loading refuses a
checkpoint whose file has changed).

How: the project's ONNX importer (:func:`orpose.student.onnx_import.import_onnx`, the same one
that builds the CPU student) imports the nodes the neck outputs depend on as a
``torch.fx.GraphModule`` of ``nn.Conv2d`` modules (batch norm folded into their trainable
biases) and torch functions, whose upsamplings take the size of the lateral tensor they are
concatenated with (any input size works); :class:`OnnxFeatureBackbone` wraps it as a torchvision
detection backbone (an ordered dict of feature maps and ``out_channels``).
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import warnings
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path

import torch
from torch import nn
from torchvision.ops.misc import FrozenBatchNorm2d

from orpose.manifest import find_model, load_manifest, sha256_of, verify_model
from orpose.paths import MissingResourceError, models_dir
from orpose.student.onnx_import import convs_computing, import_onnx

log = logging.getLogger(__name__)

PICODET_MODEL = "picodet_s_320_lcnet_pedestrian"  # its manifest entry
PICODET_FILE = f"{PICODET_MODEL}.onnx"
PICODET_ENV = "ORPOSE_PICODET_ONNX"  # a path to the ONNX file, overriding the models folder
# The neck (CSP-PAN) outputs, strides 8/16/32/64, 96 channels each.
PICODET_NECK_OUTPUTS = ("Div_37_o0", "Div_43_o0", "Div_49_o0", "Add_58_o0")
# The LCNet backbone's outputs that the neck reads (strides 8/16/32): everything they depend on is
# "backbone", the rest "neck" (see ``trainable_layers`` in :func:`picodet_lcnet_backbone`).
PICODET_BACKBONE_OUTPUTS = ("Div_10_o0", "Div_22_o0", "HSwish_23287_o0")
PICODET_CHANNELS = 96
PICODET_FEATURE_NAMES = ["0", "1", "2", "3"]
PICODET_ANCHORS = ((32,), (64,), (128,), (256,))


def picodet_onnx_path() -> Path:
    """The PicoDet ONNX file: ``$ORPOSE_PICODET_ONNX``, else ``<models folder>/`` + its name.

    The file in the models folder must match the manifest's sha256 (else ModelError); a file
    the user names with ``$ORPOSE_PICODET_ONNX`` is used with a printed warning when it does not
    match (it is then the user's own, unverified model).
    """
    spec = find_model(PICODET_MODEL, load_manifest(), "detector")
    env = os.environ.get(PICODET_ENV)
    if env:
        path = Path(env)
        if not path.is_file():
            raise MissingResourceError(f"{PICODET_ENV}={env}: no such file")
        if sha256_of(path) != spec.sha256:
            warnings.warn(
                f"{PICODET_ENV}={env}: sha256 differs from the manifest's {PICODET_MODEL}; "
                "using this unverified file because you named it",
                stacklevel=2,
            )
            log.warning("%s=%s: unverified model file (sha256 differs from the manifest)",
                        PICODET_ENV, env)  # fmt: skip
        return path
    folder = models_dir(required=True)
    if not (folder / PICODET_FILE).is_file():
        raise MissingResourceError(
            f"{folder / PICODET_FILE}: not found; the picodet_lcnet backbone is built from the "
            f"teacher's PicoDet ONNX file (set ORPOSE_SHARED, ORPOSE_MODELS or {PICODET_ENV})"
        )
    return verify_model(spec, folder)


# -- the torch module -----------------------------------------------------------------------------


class OnnxFeatureBackbone(nn.Module):
    """Feature maps of a converted ONNX graph as a torchvision detection backbone.

    ``forward(images)`` -> ``OrderedDict`` of the graph's outputs (named ``names``), each through
    its own ``level_norms`` module (identity when no per-level normalisation is asked for).
    ``body`` is an imported graph (:func:`orpose.student.onnx_import.import_onnx`);
    ``backbone_convs`` names the modules of ``body.convs`` that belong to the pretrained backbone
    as opposed to the neck (for partial freezing). ``rebuilt_from`` (``{"file", "sha256"}``): the
    ONNX file the module was converted from, which a saved student records and checks at load
    (see :mod:`orpose.checkpoints`).
    """

    def __init__(
        self,
        body: nn.Module,
        names: Sequence[str],
        out_channels: int,
        norm_layer: Callable[[int], nn.Module] | None = None,
        backbone_convs: Iterable[str] = (),
        rebuilt_from: dict[str, str] | None = None,
    ):
        super().__init__()
        self.body = body
        self.names = list(names)
        self.out_channels = out_channels
        self.level_norms = nn.ModuleList(
            norm_layer(out_channels) if norm_layer is not None else nn.Identity()
            for _ in self.names
        )
        self.backbone_convs = frozenset(backbone_convs)
        self.rebuilt_from = dict(rebuilt_from) if rebuilt_from else None

    def forward(self, x: torch.Tensor) -> OrderedDict[str, torch.Tensor]:
        feats = self.body(x)
        if isinstance(feats, torch.Tensor):
            feats = (feats,)
        return OrderedDict(
            (name, norm(f))
            for name, norm, f in zip(self.names, self.level_norms, feats, strict=True)
        )

    def set_trainable(self, trainable_layers: int) -> None:
        """0: backbone and neck frozen; 1: neck trainable, backbone frozen; >= 2: all trainable.

        The per-level norms always train. The imported graph has no batch norm left (it was
        folded), so frozen parts need no eval mode.
        """
        for name, module in self.body.convs.named_children():
            in_backbone = name in self.backbone_convs
            train = trainable_layers >= 2 or (trainable_layers == 1 and not in_backbone)
            for p in module.parameters():
                p.requires_grad_(train)


def build_onnx_feature_backbone(
    path: Path | str,
    outputs: Sequence[str],
    names: Sequence[str],
    out_channels: int,
    norm_layer: Callable[[int], nn.Module] | None = None,
    backbone_outputs: Sequence[str] = (),
) -> OnnxFeatureBackbone:
    """Cut ``outputs`` out of an ONNX model and import them as a trainable module; the convs
    that ``backbone_outputs`` depend on are its backbone (the rest its neck)."""
    import onnx

    data = Path(path).read_bytes()
    model = onnx.load_model_from_string(data)
    body = import_onnx(model, outputs)
    return OnnxFeatureBackbone(
        body,
        names,
        out_channels,
        norm_layer=norm_layer,
        backbone_convs=convs_computing(body, model, backbone_outputs),
        rebuilt_from={"file": str(path), "sha256": hashlib.sha256(data).hexdigest()},
    )


def picodet_lcnet_backbone(
    trainable_layers: int, norm_layer: Callable[..., nn.Module]
) -> tuple[OnnxFeatureBackbone, list[str], tuple[tuple[int, ...], ...]]:
    """The PicoDet-S LCNet backbone + CSP-PAN neck (~0.95M parameters) as a student backbone.

    - features "0".."3" at strides 8/16/32/64, 96 channels each; anchors 32/64/128/256;
    - ``trainable_layers``: 0 freezes backbone and neck, 1 trains the neck only, >= 2 trains all;
    - ``norm_layer`` (``student.norm``) is put after each neck output: ``gn`` (GroupNorm, advised:
      the stride-64 level's activations are about twenty times smaller than the others') or ``bn``;
      ``frozen_bn`` adds nothing (a frozen batch norm at its initial values is the identity);
    - the input is what the student's transform gives: RGB in [0, 1] normalised with ImageNet
      mean and std, which is PicoDet's own preprocessing.
    """
    level_norm = None if norm_layer is FrozenBatchNorm2d else norm_layer
    backbone = build_onnx_feature_backbone(
        picodet_onnx_path(),
        PICODET_NECK_OUTPUTS,
        PICODET_FEATURE_NAMES,
        PICODET_CHANNELS,
        norm_layer=level_norm,
        backbone_outputs=PICODET_BACKBONE_OUTPUTS,
    )
    backbone.set_trainable(trainable_layers)
    return backbone, list(PICODET_FEATURE_NAMES), PICODET_ANCHORS


# Keys of the body's convs in checkpoints written while a generic converter (onnx2torch) built
# the body: one module per ONNX node, named after the node's index in a rewritten graph.
_ONNX2TORCH_CONV = re.compile(r"^backbone\.body\.conv_(\d+)\.(weight|bias)$")


def legacy_backbone_weights(
    weights: Mapping[str, torch.Tensor], own: Mapping[str, torch.Tensor]
) -> dict[str, torch.Tensor]:
    """A ``picodet_lcnet`` student's weights as saved before the importer built its body.

    Those checkpoints name the body's convs ``backbone.body.conv_<node index>``; the importer names
    them ``backbone.body.convs.conv<k>``, ``k`` counting the convs in graph order, which is the
    order of the old indices (the same 58 convs, in the same order, with the same weights). They
    hold no constants: the body's constant buffers (the ONNX file's, whose sha256 the checkpoint
    records) come from ``own``, the state dict of the student being loaded. Weights of any other
    student are returned as they are.
    """
    old = sorted((int(m[1]), key) for key in weights if (m := _ONNX2TORCH_CONV.match(key)))
    if not old:
        return dict(weights)
    rank = {index: k for k, index in enumerate(sorted({index for index, _ in old}))}
    out = {key: value for key, value in weights.items() if not _ONNX2TORCH_CONV.match(key)}
    for index, key in old:
        out[f"backbone.body.convs.conv{rank[index]}.{key.rsplit('.', 1)[1]}"] = weights[key]
    for key, value in own.items():
        if key.startswith("backbone.body.") and ".convs." not in key and key not in out:
            out[key] = value
    return out
