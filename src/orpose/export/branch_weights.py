"""Weights of an exported graph's ``If`` branches kept inside the branches that use them.

The exporter leaves every weight at the top of the graph and hands it to a branch through an
``Identity`` node. onnxruntime then sees the branch's convolutions as taking a computed input,
not a constant, and runs them without pre-packed weights or fused layouts: the CPU student's
graph with its crop sizes as branches ran 1.4x slower (126 against 90 ms a frame on 20 MVOR
frames, 2-core development CPU). With each branch holding its own copy of the weights it reads
(``onnx`` subgraph initializers), the branched graph takes the flat graph's time and gives its
outputs exactly; the file grows by the copies (45 to 56 MB for the CPU student: its three crop
sizes share one trunk).
"""

from __future__ import annotations

import copy
from collections.abc import Iterator

import onnx

__all__ = ["branch_local_weights", "initializers", "subgraphs"]


def subgraphs(graph) -> Iterator:
    """The graphs of every node's graph attributes (``If`` branches, loop bodies), one level."""
    for node in graph.node:
        for attribute in node.attribute:
            if attribute.type == onnx.AttributeProto.GRAPH:
                yield attribute.g


def initializers(graph) -> dict:
    """Every initializer of a graph and of its subgraphs at any depth, by name (a weight copied
    into several branches counts once)."""
    found = {t.name: t for t in graph.initializer}
    for sub in subgraphs(graph):
        for name, tensor in initializers(sub).items():
            found.setdefault(name, tensor)
    return found


def _read(graph, names: set[str]) -> set[str]:
    """``names`` plus every input read by the graph's nodes, at any depth."""
    for node in graph.node:
        names.update(node.input)
    for sub in subgraphs(graph):
        _read(sub, names)
    return names


def _rename(graph, alias: dict[str, str]) -> None:
    for node in graph.node:
        for i, name in enumerate(node.input):
            node.input[i] = alias.get(name, name)
    for output in graph.output:  # (a branch's outputs; the graph's own are never aliased)
        output.name = alias.get(output.name, output.name)
    for sub in subgraphs(graph):
        _rename(sub, alias)


def branch_local_weights(model) -> int:
    """Rewrite the ``onnx.ModelProto`` in place with each top-level weight that only branches
    read copied into those branches (and the ``Identity`` nodes that passed weights on
    removed); returns how many weights moved. A graph without branches is left as it was."""
    graph = model.graph
    if not any(True for _ in subgraphs(graph)):
        return 0
    weights = {t.name for t in graph.initializer}
    outputs = {o.name for o in graph.output}  # an Identity that makes an output stays
    alias = {n.output[0]: n.input[0] for n in graph.node
             if n.op_type == "Identity" and n.input[0] in weights
             and n.output[0] not in outputs}  # fmt: skip
    kept = [n for n in graph.node if not (n.op_type == "Identity" and n.output[0] in alias)]
    del graph.node[:]
    graph.node.extend(kept)
    _rename(graph, alias)
    branches = list(subgraphs(graph))  # after the rewrite: extend() stored copies of the nodes
    top = {name for node in graph.node for name in node.input} | {o.name for o in graph.output}
    readers = {id(b): _read(b, set()) for b in branches}
    moved = 0
    for tensor in list(graph.initializer):
        users = [b for b in branches if tensor.name in readers[id(b)]]
        if not users or tensor.name in top:
            continue
        for branch in users:
            branch.initializer.append(copy.deepcopy(tensor))
        graph.initializer.remove(tensor)
        moved += 1
    return moved
