"""A trainable detection backbone cut, at run time, from the teacher's PicoDet ONNX detector.

Why: no ImageNet or COCO weights can be downloaded here, and the only pretrained convolutional
features at hand are inside the teacher's ONNX models (docs/architecture.md, "Pretrained features
available offline"). The ONNX file stays where it is
(``<models>/picodet_s_320_lcnet_pedestrian.onnx``, or ``$ORPOSE_PICODET_ONNX``); the module is
rebuilt from it each time a student is built, so a saved student needs that file too (its
checkpoint then overwrites the weights, and records the file's sha256: loading refuses a
checkpoint whose file has changed).

How (:func:`prepare_feature_graph`, then onnx2torch):

1. cut: keep only the nodes the chosen feature tensors depend on (``onnx.utils.Extractor``);
2. opset: convert 18 -> 14 with ``onnx.version_converter`` (onnx2torch has no converter for
   opset-18 ``ReduceMean``, whose axes became an input, nor for opset-18 ``Resize``);
3. batch norm: the exporter folded it into ``Conv`` (no bias) + ``Add`` of a per-channel
   constant; the constant becomes the conv's bias, so that it is a trainable parameter;
4. ``Mul`` by an exact 1.0 (a left-over of the exporter) is dropped;
5. ``Resize`` with constant output sizes (an upsampling in the neck) takes the size of the lateral
   tensor it is concatenated with, so that any input size works;
6. the input and output sizes become symbolic.

The result converts with ``onnx2torch.convert`` into a ``torch.fx.GraphModule`` of ordinary
``nn.Conv2d`` / ``nn.Hardswish`` modules; :class:`OnnxFeatureBackbone` wraps it as a torchvision
detection backbone (an ordered dict of feature maps and ``out_channels``).
"""

from __future__ import annotations

import hashlib
import logging
import os
import warnings
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn
from torchvision.ops.misc import FrozenBatchNorm2d

from orpose.manifest import find_model, load_manifest, sha256_of, verify_model
from orpose.paths import MissingResourceError, models_dir

if TYPE_CHECKING:
    import onnx

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
TARGET_OPSET = 14  # HardSwish needs 14; onnx2torch knows ReduceMean and Resize up to 13


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


# -- graph rewriting ------------------------------------------------------------------------------


def _static_shapes(model: onnx.ModelProto) -> dict[str, list[int]]:
    """Inferred tensor shapes of a fixed-size graph (dims without a value are 0)."""
    import onnx

    inferred = onnx.shape_inference.infer_shapes(model)
    g = inferred.graph
    return {
        v.name: [d.dim_value for d in v.type.tensor_type.shape.dim]
        for v in (*g.value_info, *g.input, *g.output)
    }


def _consumers(graph: onnx.GraphProto) -> dict[str, list[onnx.NodeProto]]:
    out: dict[str, list] = {}
    for node in graph.node:
        for name in node.input:
            out.setdefault(name, []).append(node)
    return out


def _rename_everywhere(graph: onnx.GraphProto, old: str, new: str) -> None:
    for node in graph.node:
        for i, name in enumerate(node.input):
            if name == old:
                node.input[i] = new
        for i, name in enumerate(node.output):
            if name == old:
                node.output[i] = new


def fold_conv_bias(graph: onnx.GraphProto, shapes: dict[str, list[int]]) -> int:
    """``Conv`` then ``Add`` of a per-channel constant -> ``Conv`` with that bias; returns count.

    Folded batch norm comes out of the exporter this way; as a bias it is trained with the conv.
    """
    from onnx import numpy_helper

    inits = {t.name: t for t in graph.initializer}
    consumers = _consumers(graph)
    outputs = {o.name for o in graph.output}
    folded = []
    for conv in graph.node:
        if conv.op_type != "Conv" or conv.output[0] in outputs:
            continue
        users = consumers.get(conv.output[0], [])
        if len(users) != 1 or users[0].op_type != "Add":
            continue
        add = users[0]
        other = [name for name in add.input if name != conv.output[0]]
        if len(other) != 1 or other[0] not in inits or conv.input[1] not in inits:
            continue
        constant = numpy_helper.to_array(inits[other[0]])
        weight = numpy_helper.to_array(inits[conv.input[1]])
        # per output channel: (1, C, 1, 1) once broadcast against the conv's N, C, H, W output
        aligned = (1,) * (weight.ndim - constant.ndim) + constant.shape
        per_channel = aligned == (1, weight.shape[0]) + (1,) * (weight.ndim - 2)
        if not per_channel or shapes.get(conv.output[0]) != shapes.get(add.output[0]):
            continue
        bias = constant.reshape(-1).astype(weight.dtype)
        if len(conv.input) > 2 and conv.input[2]:
            bias = bias + numpy_helper.to_array(inits[conv.input[2]])
            del conv.input[2]
        name = f"{add.output[0]}_bias"
        graph.initializer.append(numpy_helper.from_array(bias, name))
        conv.input.append(name)
        conv.output[0] = add.output[0]
        folded.append(add)
    for add in folded:
        graph.node.remove(add)
    return len(folded)


def drop_unit_mul(graph: onnx.GraphProto, shapes: dict[str, list[int]]) -> int:
    """Remove ``Mul`` by a constant that is exactly 1 (the result keeps the ``Mul``'s name)."""
    from onnx import numpy_helper

    inits = {t.name: t for t in graph.initializer}
    dropped = 0
    for node in list(graph.node):
        if node.op_type != "Mul":
            continue
        consts = [name for name in node.input if name in inits]
        if len(consts) != 1:
            continue
        (x,) = [name for name in node.input if name not in inits]
        value = numpy_helper.to_array(inits[consts[0]])
        if not np.all(value == 1) or shapes.get(x) != shapes.get(node.output[0]):
            continue
        if x in {v.name for v in (*graph.input, *graph.output)}:
            continue
        graph.node.remove(node)
        _rename_everywhere(graph, x, node.output[0])
        dropped += 1
    return dropped


def resize_to_lateral(graph: onnx.GraphProto, shapes: dict[str, list[int]]) -> int:
    """``Resize`` to constant sizes, then ``Concat`` -> resize to the lateral tensor's size.

    The exporter wrote the upsampled sizes for a 320x320 input; the lateral tensor is found among
    the ``Concat``'s other inputs as the one whose (320x320) shape equals those sizes.
    """
    from onnx import helper, numpy_helper

    inits = {t.name: t for t in graph.initializer}
    consumers = _consumers(graph)
    rewritten = 0
    for node in list(graph.node):
        if node.op_type != "Resize" or len(node.input) < 4 or node.input[3] not in inits:
            continue
        sizes = numpy_helper.to_array(inits[node.input[3]]).tolist()
        users = consumers.get(node.output[0], [])
        laterals = [
            name
            for user in users
            if user.op_type == "Concat"
            for name in user.input
            if name != node.output[0] and shapes.get(name) == sizes
        ]
        if len(users) != 1 or not laterals:
            raise ValueError(
                f"Resize to fixed sizes {sizes} ({node.output[0]}) is not followed by a Concat "
                "with a tensor of that size: cannot make it independent of the input size"
            )
        size_name = f"{node.output[0]}_size"
        shape = helper.make_node("Shape", [laterals[0]], [size_name])
        node.input[3] = size_name
        # both must run after the lateral tensor exists: just before the Concat
        graph.node.remove(node)
        at = list(graph.node).index(users[0])
        graph.node.insert(at, node)
        graph.node.insert(at, shape)
        rewritten += 1
    return rewritten


def _drop_unused_initializers(graph: onnx.GraphProto) -> None:
    used = {name for node in graph.node for name in node.input}
    for init in list(graph.initializer):
        if init.name not in used:
            graph.initializer.remove(init)


def _make_sizes_symbolic(graph: onnx.GraphProto) -> None:
    """Batch, height and width of the input and outputs become named (symbolic) dimensions."""
    inputs = {value.name for value in graph.input}
    for value in (*graph.input, *graph.output):
        dims = value.type.tensor_type.shape.dim
        if len(dims) != 4:
            continue
        for i, label in ((0, "batch"), (2, "height"), (3, "width")):
            dims[i].Clear()
            dims[i].dim_param = label if value.name in inputs else f"{value.name}_{label}"
    del graph.value_info[:]


def prepare_feature_graph(
    model: onnx.ModelProto, outputs: Sequence[str], opset: int = TARGET_OPSET
) -> onnx.ModelProto:
    """The sub-graph computing ``outputs``, rewritten for onnx2torch and any input size."""
    import onnx
    from onnx import version_converter
    from onnx.utils import Extractor

    inferred = onnx.shape_inference.infer_shapes(model)
    known = {v.name for v in (*inferred.graph.value_info, *inferred.graph.output)}
    missing = [name for name in outputs if name not in known]
    if missing:
        raise ValueError(f"tensors not found in the ONNX graph: {', '.join(missing)}")
    (image,) = [
        i.name for i in model.graph.input if i.name not in {t.name for t in model.graph.initializer}
    ]
    cut = Extractor(inferred).extract_model([image], list(outputs))
    version = max(o.version for o in cut.opset_import if o.domain in ("", "ai.onnx"))
    if version > opset:
        cut = version_converter.convert_version(cut, opset)
    shapes = _static_shapes(cut)
    graph = cut.graph
    fold_conv_bias(graph, shapes)
    drop_unit_mul(graph, shapes)
    resize_to_lateral(graph, shapes)
    _drop_unused_initializers(graph)
    _make_sizes_symbolic(graph)
    for i, node in enumerate(graph.node):
        node.name = f"{node.op_type.lower()}_{i}"  # onnx2torch names its modules after nodes
    onnx.checker.check_model(cut)
    return cut


def ancestor_nodes(graph: onnx.GraphProto, tensors: Iterable[str]) -> set[str]:
    """Names of the nodes that ``tensors`` depend on (those producing them included)."""
    producer = {out: node for node in graph.node for out in node.output}
    todo = [name for name in tensors if name in producer]
    seen: set[str] = set()
    while todo:
        node = producer[todo.pop()]
        if node.name in seen:
            continue
        seen.add(node.name)
        todo.extend(name for name in node.input if name in producer)
    return seen


# -- the torch module -----------------------------------------------------------------------------


class OnnxFeatureBackbone(nn.Module):
    """Feature maps of a converted ONNX graph as a torchvision detection backbone.

    ``forward(images)`` -> ``OrderedDict`` of the graph's outputs (named ``names``), each through
    its own ``level_norms`` module (identity when no per-level normalisation is asked for).
    ``backbone_nodes`` names the modules of ``body`` that belong to the pretrained backbone as
    opposed to the neck (for partial freezing). ``rebuilt_from`` (``{"file", "sha256"}``): the
    ONNX file the module was converted from, which a saved student records and checks at load
    (see :mod:`orpose.checkpoints`).
    """

    def __init__(
        self,
        body: nn.Module,
        names: Sequence[str],
        out_channels: int,
        norm_layer: Callable[[int], nn.Module] | None = None,
        backbone_nodes: Iterable[str] = (),
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
        self.backbone_nodes = frozenset(backbone_nodes)
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

        The per-level norms always train. The converted graph has no batch norm left (it was
        folded), so frozen parts need no eval mode.
        """
        for name, module in self.body.named_children():
            if name == "initializers":
                continue
            in_backbone = name in self.backbone_nodes
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
    """Cut ``outputs`` out of an ONNX model and convert them into a trainable module."""
    try:
        import onnx
        from onnx2torch import convert
    except ImportError as err:  # pragma: no cover - both are project dependencies
        raise ImportError(
            "the ONNX backbones need the onnx and onnx2torch packages (pip install onnx2torch)"
        ) from err

    data = Path(path).read_bytes()
    graph = prepare_feature_graph(onnx.load_model_from_string(data), outputs)
    body = convert(graph)
    return OnnxFeatureBackbone(
        body,
        names,
        out_channels,
        norm_layer=norm_layer,
        backbone_nodes=ancestor_nodes(graph.graph, backbone_outputs),
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
