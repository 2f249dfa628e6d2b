"""FLOP counts of the student (PyTorch graph) and of the teacher's ONNX models (ONNX graph).

Convention, as the paper's figures (detectron2's ``flop_count``, i.e. fvcore): one fused
multiply-add counts as ONE flop, so "GFLOPs" here are giga multiply-accumulates (GMACs); a counter
that counts multiply and add separately would report twice as much.

- student: fvcore's :class:`~fvcore.nn.FlopCountAnalysis` over the traced model (the same trace as
  the ONNX export). fvcore counts convolutions, transposed convolutions, linear layers, matmuls,
  batch norms and bilinear upsampling; RoIAlign, NMS, the box decoding and other element-wise ops
  are not counted (negligible next to the convolutions). Without fvcore, PyTorch's own
  :class:`torch.utils.flop_counter.FlopCounterMode` is used (its count halved to MACs).
- teacher: every ``Conv``, ``ConvTranspose``, ``Gemm`` and ``MatMul`` node of the ONNX graph, with
  tensor shapes from ONNX shape inference (the shared models have fixed input sizes).

The student's cost grows with the number of people, as its keypoint head runs once per detected
box: counts are taken with a fixed number of detections (``persons``).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
import torch
from torch.utils.flop_counter import FlopCounterMode

from orpose.export.export import ExportableStudent
from orpose.predictor import fix_people
from orpose.student.registry import family_of


@dataclass
class FlopCount:
    """Multiply-accumulates (one fused multiply-add = one flop), total and per part."""

    total: float
    parts: dict[str, float] = field(default_factory=dict)
    counter: str = ""

    @property
    def gflops(self) -> float:
        return self.total / 1e9


def _fvcore_count(wrapper: torch.nn.Module, image: torch.Tensor) -> FlopCount:
    """fvcore's count, split into the parts of the student's family (its registry entry's
    ``flop_parts``; the wrapper names the student ``model``)."""
    from fvcore.nn import FlopCountAnalysis  # optional (see student_flops)

    analysis = FlopCountAnalysis(wrapper, (image,))
    analysis.unsupported_ops_warnings(False)
    analysis.uncalled_modules_warnings(False)
    analysis.tracer_warnings("none")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        total = float(analysis.total())
        by_module = analysis.by_module()
    parts = {}
    for part, names in family_of(wrapper.model).flop_parts.items():
        parts[part] = float(sum(by_module.get(f"model.{n}", 0) for n in names))
    return FlopCount(total, parts, "fvcore")


def _torch_count(wrapper: torch.nn.Module, image: torch.Tensor) -> FlopCount:
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        wrapper(image)
    return FlopCount(counter.get_total_flops() / 2.0, {}, "torch.utils.flop_counter (MACs)")


def student_flops(model, image: torch.Tensor, persons: int | None = None) -> FlopCount:
    """Multiply-accumulates of one student forward pass on ``image`` ``(3, H, W)`` in [0, 1].

    ``persons``: the keypoint head and lifters run on exactly this many boxes (score threshold 0,
    at most ``persons`` detections), so that random-weight and trained students compare.
    """
    wrapper = ExportableStudent(model.cpu())
    if persons is not None:
        fix_people(wrapper.model, persons)
    try:  # an optional dependency
        import fvcore  # noqa: F401
    except ImportError:
        return _torch_count(wrapper, image)
    with torch.no_grad():
        return _fvcore_count(wrapper, image)


# -- ONNX graphs ----------------------------------------------------------------------------------


def _shapes(model) -> dict[str, list[int]]:
    """Every tensor's static shape after shape inference (unknown dims are 0)."""
    inferred = onnx.shape_inference.infer_shapes(model)
    shapes: dict[str, list[int]] = {}
    graph = inferred.graph
    for info in [*graph.input, *graph.value_info, *graph.output]:
        dims = info.type.tensor_type.shape.dim
        shapes[info.name] = [d.dim_value for d in dims]
    for init in graph.initializer:
        shapes[init.name] = list(init.dims)
    return shapes


def _node_macs(node, shapes: dict[str, list[int]]) -> int:
    def shape(name: str) -> list[int]:
        return shapes.get(name, [])

    op = node.op_type
    if op in ("Conv", "ConvTranspose"):
        weight = shape(node.input[1])  # Conv: (Cout, Cin/g, k..); ConvTranspose: (Cin, Cout/g, k..)
        if op == "Conv":
            return int(np.prod(shape(node.output[0]), dtype=np.int64) * np.prod(weight[1:]))
        return int(np.prod(shape(node.input[0]), dtype=np.int64) * np.prod(weight[1:]))
    if op == "Gemm":
        a, b = shape(node.input[0]), shape(node.input[1])
        trans_a = any(at.name == "transA" and at.i for at in node.attribute)
        k = a[0] if trans_a else a[-1]
        n = b[0] if any(at.name == "transB" and at.i for at in node.attribute) else b[-1]
        m = a[-1] if trans_a else a[0]
        return int(m * n * k)
    if op == "MatMul":
        a = shape(node.input[0])
        return int(np.prod(shape(node.output[0]), dtype=np.int64) * (a[-1] if a else 0))
    return 0


def onnx_macs(path: Path | str) -> int:
    """Multiply-accumulates of one run of a fixed-size ONNX graph (Conv/ConvTranspose/Gemm/MatMul).

    Raises ValueError when a counted node has an unknown shape (e.g. a dynamic input size).
    """
    model = onnx.load(str(path))
    shapes = _shapes(model)
    total = 0
    for node in model.graph.node:
        if node.op_type not in ("Conv", "ConvTranspose", "Gemm", "MatMul"):
            continue
        involved = [*node.input[:2], node.output[0]]
        if any(not shapes.get(n) or 0 in shapes[n] for n in involved):
            raise ValueError(f"{path}: node {node.name or node.op_type}: shapes unknown")
        total += _node_macs(node, shapes)
    return total


def onnx_parameters(path: Path | str) -> int:
    """Number of weights stored in an ONNX graph (its initializers)."""
    from orpose.export.branch_weights import initializers

    model = onnx.load(str(path))  # branches' copies of a weight count once
    return int(sum(np.prod(t.dims, dtype=np.int64) for t in initializers(model.graph).values()))
