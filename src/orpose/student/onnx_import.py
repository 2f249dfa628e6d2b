"""Import a convolutional ONNX graph as a native, trainable PyTorch module (``torch.fx``).

Why: the only pretrained weights available offline are the teacher's ONNX models (PP-PicoDet,
PP-TinyPose). The CPU student starts from them, so their graphs must become ordinary PyTorch
modules that train fast, run at any input size and export back to ONNX. A generic converter
wraps every ONNX node in its own module (reshapes with shape tensors, splits, resizes to fixed
sizes); this one emits what a hand-written network would hold:

- ``Conv`` followed by ``Add`` of a per-channel constant (batch norm folded by the exporter)
  becomes one ``nn.Conv2d`` with that bias, a trainable parameter;
- ``Reshape -> Transpose(0, 2, 1, 3, 4) -> Reshape`` becomes ``channel_shuffle``;
- ``Resize`` to sizes fixed for one input size becomes ``interpolate`` to the size of the tensor
  it is added to or concatenated with, so that any input size works;
- ``Split`` takes its sizes from the channel counts (independent of the input size);
- ``Mul`` by an exact 1 is dropped;
- other nodes become the matching ``torch`` functions; constants become buffers (or Python
  numbers when they are scalars).

Only the nodes the requested outputs depend on are imported (the graph is cut there, by
:func:`needed_nodes`). The result is a ``torch.fx.GraphModule`` (``module.code`` shows it as
Python) whose ``forward`` returns a tuple of the requested tensors; its convolutions are
``module.convs.conv0``, ``conv1``, ... in graph order, and :func:`convs_computing` tells which of
them a tensor of the ONNX graph depends on. Unsupported nodes raise :class:`OnnxImportError`
naming the node.

Users: the CPU student's PicoDet detector and TinyPose trunk (``student/picodet.py``,
``student/topdown.py``) and the ``picodet_lcnet`` backbone (``student/onnx_backbone.py``).
"""

from __future__ import annotations

import operator
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import fx, nn

from orpose.errors import ModelError


class OnnxImportError(ModelError):
    """An ONNX graph that this importer cannot turn into a native module."""


# set by orpose.export while it traces the student for an ONNX graph in two steps (a TorchScript
# trace first, see orpose.export.export): the export-only code paths below apply then too. A
# context variable: an export in one thread leaves another thread's inference as it is
_TRACING_FOR_EXPORT: ContextVar[bool] = ContextVar("orpose_tracing_for_export", default=False)


def exporting() -> bool:
    """Whether the code runs for an exported graph (torch.onnx.export, or our trace for it)."""
    return _TRACING_FOR_EXPORT.get() or torch.onnx.is_in_onnx_export()


@contextmanager
def tracing_for_export() -> Iterator[None]:
    """Mark a TorchScript trace whose graph becomes an ONNX export (:func:`exporting`); nests."""
    token = _TRACING_FOR_EXPORT.set(True)
    try:
        yield
    finally:
        _TRACING_FOR_EXPORT.reset(token)


ONNX_CONV = "onnx_conv"  # fx node meta of each imported conv: the ONNX Conv node's output


def _attrs(node) -> dict[str, Any]:
    import onnx

    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def static_shapes(model) -> dict[str, list[int]]:
    """Inferred tensor shapes of a fixed-size graph (dims without a value are 0)."""
    import onnx

    graph = onnx.shape_inference.infer_shapes(model).graph
    return {
        v.name: [d.dim_value for d in v.type.tensor_type.shape.dim]
        for v in (*graph.value_info, *graph.input, *graph.output)
    }


def needed_nodes(graph, outputs: Sequence[str]) -> list:
    """The nodes the ``outputs`` depend on, in graph (topological) order."""
    producer = {out: node for node in graph.node for out in node.output}
    missing = [name for name in outputs if name not in producer]
    if missing:
        raise OnnxImportError(f"tensors not found in the ONNX graph: {', '.join(missing)}")
    needed: set[int] = set()
    todo = list(outputs)
    while todo:
        node = producer.get(todo.pop())
        if node is None or id(node) in needed:
            continue
        needed.add(id(node))
        todo.extend(node.input)
    return [node for node in graph.node if id(node) in needed]


def _safe(name: str) -> str:
    return re.sub(r"\W", "_", name).strip("_") or "t"


def make_conv(node, consts: dict[str, np.ndarray], add=None) -> tuple[nn.Conv2d, bool]:
    """The ``nn.Conv2d`` of an ONNX ``Conv`` node with constant weights; when ``add`` (the
    node's only consumer) adds a per-channel constant, it becomes the bias (returns True)."""
    a = _attrs(node)
    weight = consts.get(node.input[1])
    if weight is None or weight.ndim != 4:
        raise OnnxImportError(f"Conv {node.output[0]}: weights must be constant")
    pads = list(a.get("pads", [0, 0, 0, 0]))
    if pads[:2] != pads[2:]:
        raise OnnxImportError(f"Conv {node.output[0]}: asymmetric padding {pads}")
    bias = consts.get(node.input[2]) if len(node.input) > 2 and node.input[2] else None
    folded = False
    if add is not None:
        other = [n for n in add.input if n != node.output[0]]
        extra = consts.get(other[0]) if len(other) == 1 else None
        if extra is not None and extra.size == weight.shape[0]:
            bias = extra.reshape(-1) + (0 if bias is None else bias)
            folded = True
    out_c, in_per_group, kh, kw = weight.shape
    groups = int(a.get("group", 1))
    conv = nn.Conv2d(
        in_per_group * groups,
        out_c,
        (kh, kw),
        stride=tuple(a.get("strides", [1, 1])),
        padding=tuple(pads[:2]),
        dilation=tuple(a.get("dilations", [1, 1])),
        groups=groups,
        bias=True,
    )
    with torch.no_grad():
        conv.weight.copy_(torch.from_numpy(weight.astype(np.float32)))
        conv.bias.copy_(
            torch.zeros(out_c) if bias is None else torch.from_numpy(bias.astype(np.float32))
        )
    return conv, folded


class _Importer:
    """One pass over the cut graph, building the fx graph and the root module."""

    def __init__(self, model, outputs: Sequence[str]):
        from onnx import numpy_helper

        self.graph = model.graph
        self.shapes = static_shapes(model)
        self.consts = {t.name: numpy_helper.to_array(t) for t in self.graph.initializer}
        for node in self.graph.node:  # Constant nodes are constants too
            if node.op_type == "Constant":
                self.consts[node.output[0]] = numpy_helper.to_array(_attrs(node)["value"])
        self.nodes = [n for n in needed_nodes(self.graph, outputs) if n.op_type != "Constant"]
        self.outputs = list(outputs)
        self.consumers: dict[str, list] = {}
        for node in self.nodes:
            for name in node.input:
                self.consumers.setdefault(name, []).append(node)
        self.root = nn.Module()
        self.root.convs = nn.ModuleDict()
        self.fx = fx.Graph()
        self.env: dict[str, fx.Node] = {}
        self.skip: set[int] = set()

    # -- helpers ---------------------------------------------------------------------------
    def value(self, name: str):
        """An fx node for a tensor, or a Python number / buffer node for a constant."""
        if name in self.env:
            return self.env[name]
        if name in self.consts:
            array = self.consts[name]
            if array.size == 1 and array.dtype.kind == "f":
                return float(array.reshape(()))
            buffer = f"const_{_safe(name)}"
            if not hasattr(self.root, buffer):
                self.root.register_buffer(buffer, torch.from_numpy(array.copy()))
            node = self.fx.get_attr(buffer)
            self.env[name] = node
            return node
        raise OnnxImportError(f"tensor {name!r} is neither computed nor constant")

    def const(self, name: str) -> np.ndarray | None:
        return self.consts.get(name) if name else None

    def only_consumer(self, name: str, op_type: str):
        users = self.consumers.get(name, [])
        if len(users) == 1 and users[0].op_type == op_type and name not in self.outputs:
            return users[0]
        return None

    def call(self, fn, *args, **kwargs) -> fx.Node:
        return self.fx.call_function(fn, args, kwargs)

    # -- node kinds ------------------------------------------------------------------------
    def conv(self, node) -> None:
        add = self.only_consumer(node.output[0], "Add")
        conv, folded = make_conv(node, self.consts, add)
        if folded:
            self.skip.add(id(add))
        key = f"conv{len(self.root.convs)}"
        self.root.convs[key] = conv
        out_name = add.output[0] if folded else node.output[0]
        call = self.fx.call_module(f"convs.{key}", (self.value(node.input[0]),))
        call.meta[ONNX_CONV] = node.output[0]  # for convs_computing (fx copies meta with graphs)
        self.env[out_name] = call

    def shuffle_pattern(self, node):
        """(transpose, last reshape, groups) when ``node`` starts a channel shuffle."""
        shape = self.const(node.input[1])
        transpose = self.only_consumer(node.output[0], "Transpose")
        back = transpose and self.only_consumer(transpose.output[0], "Reshape")
        if (
            shape is None
            or len(shape) != 5
            or back is None
            or list(_attrs(transpose)["perm"]) != [0, 2, 1, 3, 4]
        ):
            return None
        return transpose, back, int(shape[1])

    def reshape(self, node) -> None:
        """Only the channel shuffle pattern (Reshape, Transpose, Reshape) is supported."""
        pattern = self.shuffle_pattern(node)
        if pattern is None:
            raise OnnxImportError(
                f"Reshape {node.output[0]}: only channel shuffles (Reshape, Transpose(0,2,1,3,4), "
                "Reshape) can be imported"
            )
        transpose, back, groups = pattern
        self.skip.update((id(transpose), id(back)))
        channels = (self.shapes.get(node.input[0]) or [0, 0])[1]
        self.env[back.output[0]] = self.call(
            _channel_shuffle, self.value(node.input[0]), groups, channels
        )

    def resize(self, node) -> None:
        a = _attrs(node)
        mode = a.get("mode", b"nearest").decode()
        if mode not in ("nearest", "linear"):
            raise OnnxImportError(f"Resize {node.output[0]}: mode {mode!r} not supported")
        partner = self.resize_partner(node)
        x = self.value(node.input[0])
        kwargs = {"mode": "nearest" if mode == "nearest" else "bilinear"}
        if mode == "linear":
            ctm = a.get("coordinate_transformation_mode", b"half_pixel").decode()
            kwargs["align_corners"] = ctm == "align_corners"
        if partner is not None:
            self.env[node.output[0]] = self.call(
                _resize_like, x, self.value(partner), self.static_scale(node), **kwargs
            )
            return
        scales = self.const(node.input[2]) if len(node.input) > 2 else None
        if scales is None or scales.size != 4:
            raise OnnxImportError(
                f"Resize {node.output[0]}: fixed output sizes not followed by an Add or Concat "
                "with a tensor of that size"
            )
        self.env[node.output[0]] = self.call(
            F.interpolate, x, scale_factor=tuple(float(s) for s in scales[2:]), **kwargs
        )

    def static_scale(self, node) -> tuple[int, int] | None:
        """The whole-number (height, width) factor of a Resize in the imported graph, if any."""
        source, target = self.shapes.get(node.input[0]), self.shapes.get(node.output[0])
        if not source or not target or not all(source[2:]) or not all(target[2:]):
            return None
        (sh, sw), (th, tw) = source[2:], target[2:]
        return (th // sh, tw // sw) if th % sh == 0 and tw % sw == 0 else None

    def resize_partner(self, node) -> str | None:
        """The tensor whose size the resized one must take (same static shape, same consumer)."""
        target = self.shapes.get(node.output[0])
        for user in self.consumers.get(node.output[0], []):
            if user.op_type in ("Add", "Concat"):
                for name in user.input:
                    if name != node.output[0] and name not in self.consts:
                        shape = self.shapes.get(name)
                        if shape and target and shape[2:] == target[2:]:
                            return name
        return None

    def split_sizes(self, node) -> list[int] | None:
        """The channel counts of a split along the channels (None for other splits)."""
        axis = int(_attrs(node).get("axis", 0))
        rank = len(self.shapes.get(node.input[0]) or [])
        axis = axis + rank if axis < 0 else axis  # -3 of a 4-D tensor is its channel axis
        sizes = [(self.shapes.get(out) or [0, 0])[axis] for out in node.output]
        return sizes if axis == 1 and all(sizes) else None

    def split(self, node) -> None:
        sizes = self.split_sizes(node)
        if sizes is None:
            raise OnnxImportError(f"Split {node.output[0]}: only channel splits can be imported")
        parts = self.call(torch.split, self.value(node.input[0]), sizes, dim=1)
        for i, out in enumerate(node.output):
            self.env[out] = self.call(operator.getitem, parts, i)

    def simple(self, node) -> None:
        x = [self.value(name) for name in node.input if name]
        a = _attrs(node)
        op = node.op_type
        others = [v for v in x if not (isinstance(v, float) and v == 1.0)]
        if op == "Mul" and len(others) == 1:
            result = others[0]  # a multiplication by exactly 1 (the exporter leaves some)
        elif op in _BINARY:
            result = self.call(_BINARY[op], x[0], x[1])
        elif op in _UNARY:
            result = self.call(_UNARY[op], x[0])
        elif op == "HardSigmoid":
            result = self.call(_hard_sigmoid, x[0], a.get("alpha", 0.2), a.get("beta", 0.5))
        elif op == "Concat":
            result = self.call(torch.cat, tuple(x), dim=int(a["axis"]))
        elif op in ("ReduceMean", "GlobalAveragePool"):
            axes = a.get("axes")
            if axes is None and len(node.input) > 1:
                axes = self.const(node.input[1]).tolist()
            if op == "GlobalAveragePool":
                axes = [2, 3]
            keep = bool(a.get("keepdims", 1)) or op == "GlobalAveragePool"
            result = self.call(torch.mean, x[0], dim=tuple(int(v) for v in axes), keepdim=keep)
        elif op == "Softmax":
            result = self.call(torch.softmax, x[0], dim=int(a.get("axis", -1)))
        else:
            raise OnnxImportError(f"ONNX node {op} ({node.output[0]}) is not supported")
        self.env[node.output[0]] = result

    # -- the pass --------------------------------------------------------------------------
    def run(self) -> fx.GraphModule:
        inputs = {i.name for i in self.graph.input} - set(self.consts)
        for name in sorted(inputs):
            if any(name in n.input for n in self.nodes):
                self.env[name] = self.fx.placeholder(_safe(name))
        handlers = {"Conv": self.conv, "Reshape": self.reshape, "Resize": self.resize,
                    "Split": self.split}  # fmt: skip
        deferred: list = []  # Resize nodes whose size partner is computed later
        for node in self.nodes:
            if id(node) in self.skip:
                continue
            for waiting in [w for w in deferred if w.output[0] in node.input]:
                deferred.remove(waiting)
                self.resize(waiting)
            partner = self.resize_partner(node) if node.op_type == "Resize" else None
            if partner is not None and partner not in self.env:
                deferred.append(node)
                continue
            handlers.get(node.op_type, self.simple)(node)
        missing = [name for name in self.outputs if name not in self.env]
        if missing:
            raise OnnxImportError(f"outputs not produced: {', '.join(missing)}")
        self.fx.output(tuple(self.env[name] for name in self.outputs))
        module = fx.GraphModule(self.root, self.fx, class_name="ImportedOnnx")
        module.graph.lint()
        return module


def _channel_shuffle(x: torch.Tensor, groups: int, channels: int = 0) -> torch.Tensor:
    if channels and exporting():
        # one Gather of constant channel indices: the reshapes below would each carry a dozen
        # shape-arithmetic nodes (Shape, Gather, Unsqueeze, Concat) into the exported graph
        return x.index_select(1, shuffle_index(channels, groups).to(x.device))
    n, c, h, w = x.shape
    if x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous():
        # NHWC memory: permute the channels of each pixel in place of the NCHW round trip
        # (which would copy twice and hand the next convolution the slow layout)
        nhwc = x.permute(0, 2, 3, 1).reshape(n, h, w, groups, c // groups).transpose(3, 4)
        return nhwc.reshape(n, h, w, c).permute(0, 3, 1, 2)
    return x.reshape(n, groups, c // groups, h, w).transpose(1, 2).reshape(n, c, h, w)


def shuffle_index(channels: int, groups: int) -> torch.Tensor:
    """Output channel j of a channel shuffle is input channel ``index[j]``."""
    per_group = channels // groups
    return torch.arange(channels).view(groups, per_group).t().reshape(-1)


def _resize_like(x: torch.Tensor, like: torch.Tensor, scale: tuple[int, int] | None,
                 **kwargs: Any) -> torch.Tensor:  # fmt: skip
    """``x`` resized to the spatial size of ``like``.

    While exporting, by a constant whole-number factor where that gives the same size (the
    imported networks' crops and detector inputs have fixed sizes in a graph): a Resize with
    constant scales needs none of the shape arithmetic a size taken from ``like`` brings in.
    """
    h, w = like.shape[-2], like.shape[-1]
    if (
        scale is not None
        and exporting()  # eager calls (training) skip the size check
        and (int(x.shape[-2]) * scale[0], int(x.shape[-1]) * scale[1]) == (int(h), int(w))
    ):
        return F.interpolate(x, scale_factor=(float(scale[0]), float(scale[1])), **kwargs)
    return F.interpolate(x, size=(h, w), **kwargs)


def _hard_sigmoid(x: torch.Tensor, alpha: float, beta: float) -> torch.Tensor:
    return torch.clamp(x * alpha + beta, 0.0, 1.0)


fx.wrap("_channel_shuffle")
fx.wrap("_resize_like")

_BINARY = {"Add": operator.add, "Sub": operator.sub, "Mul": operator.mul, "Div": operator.truediv}
_UNARY = {
    "Relu": F.relu,
    "Sigmoid": torch.sigmoid,
    "HardSwish": F.hardswish,
    "Sqrt": torch.sqrt,
    "Identity": lambda t: t,
}


def import_onnx(model_or_path, outputs: Sequence[str]) -> fx.GraphModule:
    """The part of an ONNX model that computes ``outputs``, as a trainable native module."""
    import onnx

    model = model_or_path
    if isinstance(model_or_path, str | Path):
        model = onnx.load(str(model_or_path))
    return _Importer(model, outputs).run()


def convs_computing(module: fx.GraphModule, model, tensors: Sequence[str]) -> set[str]:
    """The keys of ``module.convs`` (imported from ``model``) that ``tensors`` depend on."""
    ancestors = {out for node in needed_nodes(model.graph, tensors) for out in node.output}
    return {
        str(node.target).removeprefix("convs.")
        for node in module.graph.nodes
        if node.op == "call_module" and node.meta.get(ONNX_CONV) in ancestors
    }
