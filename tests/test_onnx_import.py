"""The native ONNX importer against onnxruntime, the reference that runs the teacher's files."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper

from orpose.student.onnx_import import OnnxImportError, import_onnx
from orpose.student.picodet import PicoDet
from orpose.student.topdown import import_pose_trunk


@pytest.fixture(scope="module")
def models(shared):
    folder = shared / "models"
    paths = {
        "pose": folder / "tinypose_256x192.onnx",
        "detector": folder / "picodet_s_320_lcnet_pedestrian.onnx",
    }
    for path in paths.values():
        if not path.is_file():
            pytest.skip(f"{path} missing")
    return paths


def _ort(path, feed):
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: feed})


def test_tinypose_matches_onnxruntime_and_takes_any_size(models):
    model = onnx.load(str(models["pose"]))
    heatmap = next(o.name for o in model.graph.output if len(o.type.tensor_type.shape.dim) == 4)
    producer = {out: n for n in model.graph.node for out in n.output}
    net = import_onnx(model, [producer[heatmap].input[0]]).eval()  # before the Identity
    x = np.random.default_rng(0).uniform(-2, 2, (1, 3, 256, 192)).astype(np.float32)
    reference = next(o for o in _ort(models["pose"], x) if o.ndim == 4)
    with torch.no_grad():
        (ours,) = net(torch.from_numpy(x))
        # NHWC memory (what training uses) gives the same numbers
        net_cl = net.to(memory_format=torch.channels_last)
        (ours_cl,) = net_cl(torch.from_numpy(x).contiguous(memory_format=torch.channels_last))
        (small,) = net(torch.zeros(3, 3, 128, 96))
    assert np.abs(ours.numpy() - reference).max() < 1e-5
    assert np.abs(ours_cl.numpy() - reference).max() < 1e-5
    assert tuple(small.shape) == (3, 17, 32, 24)
    assert sum(p.numel() for p in net.parameters()) == 1_300_177  # batch norm folded in


def test_pose_trunk_and_last_layer_recompose_the_model(models):
    model = onnx.load(str(models["pose"]))
    trunk, last = import_pose_trunk(model)
    x = np.random.default_rng(1).uniform(-2, 2, (1, 3, 256, 192)).astype(np.float32)
    reference = next(o for o in _ort(models["pose"], x) if o.ndim == 4)
    with torch.no_grad():
        (features,) = trunk(torch.from_numpy(x))
        ours = last(features)
    assert last.kernel_size == (1, 1) and last.out_channels == 17
    assert np.abs(ours.numpy() - reference).max() < 1e-5


def test_picodet_decoding_matches_onnxruntime(models):
    detector = PicoDet.from_onnx(models["detector"]).eval()
    x = np.random.default_rng(2).uniform(-2, 2, (1, 3, 320, 320)).astype(np.float32)
    outputs = _ort(models["detector"], x)
    scores = next(o for o in outputs if o.ndim == 3 and o.shape[1] == 1)[0, 0]
    boxes = next(o for o in outputs if o.ndim == 3 and o.shape[-1] == 4)[0]
    with torch.no_grad():
        ours_scores, ours_boxes = detector(torch.from_numpy(x))
        wide = torch.from_numpy(x[:, :, :160, :224].copy())
        wide_scores, wide_boxes = detector(wide)
        wide_levels = detector.levels(wide)
        pair_scores, pair_boxes = detector(torch.from_numpy(np.concatenate([x, x[:, :, ::-1]])))
    assert detector.strides == [8, 16, 32, 64]
    # the file stores fp16-converted constants: about 1e-5 on scores, 1e-3 px on boxes
    assert np.abs(ours_scores[0].numpy() - scores).max() < 1e-4
    assert np.abs(ours_boxes[0].numpy() - boxes).max() < 2e-3
    # a non-square input, against a per-level reference (cells level by level, row-major)
    assert wide_boxes.shape[1] == 20 * 28 + 10 * 14 + 5 * 7 + 3 * 4
    start = 0
    for level in wide_levels:
        _, _, h, w = level.logit_a.shape
        probs = torch.softmax(level.box_logits.reshape(1, 4, 8, h, w), 2)
        dist = (probs * torch.arange(8.0).view(1, 1, 8, 1, 1)).sum(2)[0] * level.stride
        cy, cx = torch.meshgrid(torch.arange(h) + 0.5, torch.arange(w) + 0.5, indexing="ij")
        cx, cy = cx * level.stride, cy * level.stride
        box = torch.stack([cx - dist[0], cy - dist[1], cx + dist[2], cy + dist[3]], -1)
        score = torch.sqrt(torch.sigmoid(level.logit_a) * torch.sigmoid(level.logit_b))[0, 0]
        torch.testing.assert_close(wide_boxes[0, start : start + h * w], box.reshape(-1, 4))
        torch.testing.assert_close(wide_scores[0, start : start + h * w], score.reshape(-1))
        start += h * w
    # a batch: each image decoded on its own cells (the flipped one differs)
    torch.testing.assert_close(pair_boxes[:1], ours_boxes, rtol=0, atol=1e-3)
    torch.testing.assert_close(pair_scores[:1], ours_scores, rtol=0, atol=1e-5)
    assert (pair_boxes[1] - ours_boxes[0]).abs().max() > 1


def test_unsupported_node_names_itself():
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 4, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 4, 4])
    graph = helper.make_graph([helper.make_node("Erf", ["x"], ["y"])], "g", [x], [y])
    model = helper.make_model(graph)
    with pytest.raises(OnnxImportError, match=r"Erf \(y\) is not supported"):
        import_onnx(model, ["y"])


def test_missing_output_is_named():
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 4, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 4, 4])
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g", [x], [y])
    with pytest.raises(OnnxImportError, match="not found in the ONNX graph: z"):
        import_onnx(helper.make_model(graph), ["z"])


def test_exported_trunk_has_no_shape_arithmetic_and_matches_pytorch(models, tmp_path):
    """The re-exported TinyPose carries its channel shuffles as constant Gathers and its
    upsamplings as constant-scale Resizes (no Shape nodes: they cost ORT a node dispatch each
    and keep its NCHWc Upsample off), and still computes the same heatmaps at any batch size."""
    import onnxruntime as ort

    trunk = import_pose_trunk(onnx.load(str(models["pose"])))[0].eval()

    class Features(torch.nn.Module):  # the exporter takes a plain module returning a tensor
        def __init__(self):
            super().__init__()
            self.trunk = trunk

        def forward(self, x):
            return self.trunk(x)[0]

    net = Features().eval()
    path = tmp_path / "trunk.onnx"
    with torch.no_grad():
        torch.onnx.export(net, (torch.zeros(2, 3, 256, 192),), str(path), input_names=["x"],
                          dynamic_axes={"x": {0: "people"}}, opset_version=17,
                          dynamo=False)  # fmt: skip
    ops = [n.op_type for n in onnx.load(str(path)).graph.node]
    assert "Shape" not in ops and "Transpose" not in ops
    assert ops.count("Gather") >= 40  # one per channel shuffle
    x = np.random.default_rng(2).uniform(-2, 2, (3, 3, 256, 192)).astype(np.float32)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (exported,) = session.run(None, {"x": x})
    with torch.no_grad():
        ours = net(torch.from_numpy(x))
    assert np.abs(exported - ours.numpy()).max() < 1e-4


def test_export_tracing_mark_nests_and_stays_in_its_thread():
    """The export-only code paths switch on for the exporting thread only, and a nested mark
    does not switch them off early."""
    import threading

    from orpose.student.onnx_import import exporting, tracing_for_export

    seen = []
    with tracing_for_export():
        with tracing_for_export():
            pass
        seen.append(exporting())
        other = threading.Thread(target=lambda: seen.append(exporting()))
        other.start()
        other.join()
    seen.append(exporting())
    assert seen == [True, False, False]
