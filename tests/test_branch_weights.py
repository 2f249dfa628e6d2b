"""branch_local_weights: an If branch's weights moved into the branch, the graph's results kept."""

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

from orpose.export.branch_weights import branch_local_weights, initializers, subgraphs


def _graph_with_branches(path) -> None:
    """y = x @ W (then) or x @ W + b (else), the weights handed in as the exporter does: top
    level initializers through Identity nodes; ``b`` is also read at the top level."""
    w = numpy_helper.from_array(np.arange(6, dtype=np.float32).reshape(2, 3), "W")
    b = numpy_helper.from_array(np.ones(3, np.float32), "b")
    then = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W_id"], ["y_then"])], "then", [],
        [helper.make_tensor_value_info("y_then", TensorProto.FLOAT, [1, 3])])  # fmt: skip
    orelse = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W_id"], ["xw"]),
         helper.make_node("Add", ["xw", "b"], ["y_else"])], "else", [],
        [helper.make_tensor_value_info("y_else", TensorProto.FLOAT, [1, 3])])  # fmt: skip
    nodes = [
        helper.make_node("Identity", ["W"], ["W_id"]),
        helper.make_node("If", ["cond"], ["y"], then_branch=then, else_branch=orelse),
        helper.make_node("Mul", ["y", "b"], ["z"]),
    ]
    graph = helper.make_graph(
        nodes, "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2]),
         helper.make_tensor_value_info("cond", TensorProto.BOOL, [])],
        [helper.make_tensor_value_info("z", TensorProto.FLOAT, [1, 3])],
        initializer=[w, b],
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))


def _run(path) -> list[np.ndarray]:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = np.array([[1.0, -2.0]], np.float32)
    return [session.run(None, {"x": x, "cond": np.array(c)})[0] for c in (True, False)]


def test_weights_move_into_the_branches_that_read_them(tmp_path):
    path = tmp_path / "g.onnx"
    _graph_with_branches(path)
    before = _run(path)
    model = onnx.load(str(path))
    assert branch_local_weights(model) == 1  # W; b stays: the top level reads it too
    onnx.save(model, str(path))
    onnx.checker.check_model(model)
    assert [t.name for t in model.graph.initializer] == ["b"]
    assert not any(n.op_type == "Identity" for n in model.graph.node)
    assert [[t.name for t in g.initializer] for g in subgraphs(model.graph)] == [["W"], ["W"]]
    assert sorted(initializers(model.graph)) == ["W", "b"]  # a copied weight counts once
    for ours, theirs in zip(_run(path), before, strict=True):
        np.testing.assert_array_equal(ours, theirs)
    np.testing.assert_array_equal(before[0], [[-6.0, -7.0, -8.0]])  # x @ W, times b = 1


def test_an_output_made_by_an_identity_of_a_weight_keeps_its_name(tmp_path):
    path = tmp_path / "g.onnx"
    _graph_with_branches(path)
    model = onnx.load(str(path))
    model.graph.node.append(helper.make_node("Identity", ["b"], ["b_out"]))
    model.graph.output.append(helper.make_tensor_value_info("b_out", TensorProto.FLOAT, [3]))
    branch_local_weights(model)
    assert [o.name for o in model.graph.output] == ["z", "b_out"]
    onnx.checker.check_model(model)


def test_graph_without_branches_is_left_as_it_was():
    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])],
    )  # fmt: skip
    model = helper.make_model(graph)
    data = model.SerializeToString()
    assert branch_local_weights(model) == 0 and model.SerializeToString() == data
