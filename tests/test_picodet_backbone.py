"""The picodet_lcnet backbone (the ONNX importer on PicoDet's backbone and neck): agreement with
onnxruntime, any size, gradients, old checkpoints."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from orpose.paths import MissingResourceError
from orpose.student import StudentConfig, build_student
from orpose.student.onnx_backbone import (
    PICODET_CHANNELS,
    PICODET_ENV,
    PICODET_FEATURE_NAMES,
    PICODET_NECK_OUTPUTS,
    build_onnx_feature_backbone,
    picodet_lcnet_backbone,
    picodet_onnx_path,
)
from orpose.student.onnx_import import OnnxImportError

MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
ATOL = 1e-4  # measured: 1.4e-5 on these inputs, 3.1e-5 on COCO images (activations up to 16)


def _image(batch: int, height: int, width: int, seed: int = 0) -> torch.Tensor:
    """Pixels in [0, 1], normalised as PicoDet (and the student's transform) do."""
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(batch, 3, height, width, generator=g) - MEAN) / STD


def _session(model: onnx.ModelProto) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    return ort.InferenceSession(
        model.SerializeToString(), options, providers=["CPUExecutionProvider"]
    )


# -- PicoDet's patterns on a small graph (no shared folder needed) --------------------------------


def _tiny_graph(
    batch: int = 1, height: int = 16, width: int = 16, lateral: int | None = None
) -> onnx.ModelProto:
    """conv+add(BN) -> hardswish -> mul 1 -> conv+add -> SE (opset-18 ReduceMean) -> resize to a
    fixed size -> concat with the lateral tensor (PicoDet's patterns) -> conv + scalar add.

    The weights do not depend on the size; the Resize's fixed sizes are those of the lateral
    tensor for this input (or ``lateral`` x ``lateral``).
    """
    rng = np.random.default_rng(0)

    def const(name: str, *shape: int) -> onnx.TensorProto:
        return numpy_helper.from_array((0.3 * rng.normal(size=shape)).astype(np.float32), name)

    h1, w1 = (height + 1) // 2, (width + 1) // 2  # the lateral tensor m1 (stride 2)
    sizes = [lateral, lateral] if lateral else [h1, w1]
    inits = [
        const("w1", 8, 3, 3, 3),
        const("b1", 1, 8, 1, 1),
        numpy_helper.from_array(np.ones((1, 1, 1, 1), np.float32), "one"),
        const("w2", 8, 8, 3, 3),
        const("b2", 1, 8, 1, 1),
        numpy_helper.from_array(np.array([2, 3], np.int64), "axes"),
        numpy_helper.from_array(np.array([batch, 8, *sizes], np.int64), "sizes"),
        const("w3", 4, 16, 1, 1),
        const("scalar", 1),
    ]
    conv = {"pads": [1, 1, 1, 1], "strides": [2, 2]}
    nodes = [
        helper.make_node("Conv", ["x", "w1"], ["c1"], **conv),
        helper.make_node("Add", ["c1", "b1"], ["a1"]),
        helper.make_node("HardSwish", ["a1"], ["h1"]),
        helper.make_node("Mul", ["h1", "one"], ["m1"]),
        helper.make_node("Conv", ["m1", "w2"], ["c2"], **conv),
        helper.make_node("Add", ["c2", "b2"], ["a2"]),
        helper.make_node("ReduceMean", ["a2", "axes"], ["r"], keepdims=1),
        helper.make_node("HardSigmoid", ["r"], ["s"], alpha=0.1666259765625, beta=0.5),
        helper.make_node("Mul", ["a2", "s"], ["se"]),
        helper.make_node(
            "Resize",
            ["se", "", "", "sizes"],
            ["up"],
            mode="nearest",
            coordinate_transformation_mode="asymmetric",
            nearest_mode="floor",
        ),
        helper.make_node("Concat", ["up", "m1"], ["cat"], axis=1),
        helper.make_node("Relu", ["cat"], ["r2"]),
        helper.make_node("Conv", ["r2", "w3"], ["c3"]),
        helper.make_node("Add", ["c3", "scalar"], ["out"]),  # not per channel: stays an Add
    ]
    graph = helper.make_graph(
        nodes,
        "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 3, height, width])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, [batch, 4, h1, w1])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=9)
    onnx.checker.check_model(model)
    return model


def test_picodet_patterns_import_and_match_onnxruntime_at_any_size(tmp_path):
    path = tmp_path / "tiny.onnx"
    onnx.save(_tiny_graph(), str(path))
    # "m1" plays LCNet's output: the first conv is the backbone, the others the neck
    tiny = build_onnx_feature_backbone(path, ["out"], ["0"], 4, backbone_outputs=["m1"]).eval()
    assert tiny.backbone_convs == {"conv0"}
    convs = list(tiny.body.convs.children())
    assert len(convs) == 3 and all(isinstance(c.bias, torch.nn.Parameter) for c in convs)
    # the two batch-norm Adds became the biases of the first two convs, the Mul by 1 is gone
    np.testing.assert_array_equal(convs[0].bias.detach().numpy(), _init(path, "b1").reshape(-1))
    assert [n.target.__name__ for n in tiny.body.graph.nodes if n.op == "call_function"].count(
        "mul"
    ) == 1  # the SE block's
    tiny.set_trainable(1)
    assert [c.weight.requires_grad for c in convs] == [False, True, True]
    # other sizes and batches, odd ones included (a non-integer upsampling factor): the graph
    # imported at 16x16 against onnxruntime on the same graph written for that size
    for shape in [(1, 3, 16, 16), (2, 3, 20, 28), (1, 3, 18, 22)]:
        x = np.random.default_rng(2).normal(size=shape).astype(np.float32)
        (ref,) = _session(_tiny_graph(shape[0], *shape[2:])).run(["out"], {"x": x})
        with torch.no_grad():
            out = tiny(torch.from_numpy(x))["0"]
        assert out.shape == (shape[0], 4, (shape[2] + 1) // 2, (shape[3] + 1) // 2)
        np.testing.assert_allclose(out.numpy(), ref, atol=1e-5, rtol=1e-5)


def _init(path, name: str) -> np.ndarray:
    model = onnx.load(str(path))
    return next(numpy_helper.to_array(t) for t in model.graph.initializer if t.name == name)


def test_resize_without_a_lateral_tensor_is_refused(tmp_path):
    path = tmp_path / "tiny.onnx"
    onnx.save(_tiny_graph(lateral=6), str(path))
    with pytest.raises(OnnxImportError, match="not followed by an Add or Concat with a tensor"):
        build_onnx_feature_backbone(path, ["out"], ["0"], 4)


def test_a_missing_onnx_file_is_named(monkeypatch, tmp_path):
    monkeypatch.setenv(PICODET_ENV, str(tmp_path / "nope.onnx"))
    with pytest.raises(MissingResourceError, match=r"ORPOSE_PICODET_ONNX=.*nope\.onnx"):
        picodet_onnx_path()


# -- the real PicoDet graph (needs ../shared/models) ----------------------------------------------


@pytest.fixture(scope="module")
def picodet_file():
    try:
        return picodet_onnx_path()
    except MissingResourceError as err:
        pytest.skip(f"the PicoDet ONNX file is needed (../shared/models or $ORPOSE_SHARED): {err}")


@pytest.fixture(scope="module")
def backbone(picodet_file):
    torch.manual_seed(0)
    return build_onnx_feature_backbone(
        picodet_file, PICODET_NECK_OUTPUTS, PICODET_FEATURE_NAMES, PICODET_CHANNELS
    ).eval()


@pytest.fixture(scope="module")
def neck_session(picodet_file):
    """onnxruntime on the original, full detector, with the neck tensors as extra outputs."""
    model = onnx.load(str(picodet_file))
    for name in PICODET_NECK_OUTPUTS:
        model.graph.output.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, None))
    return _session(model)


def _photos(val500, count: int = 2) -> list[torch.Tensor]:
    """The first ``count`` val500 images at 320x320, normalised as PicoDet expects."""
    from PIL import Image

    paths = sorted((val500.parent / "images").glob("*.jpg"))[:count]
    pixels = [np.asarray(Image.open(p).convert("RGB").resize((320, 320))) for p in paths]
    return [(torch.from_numpy(a.copy()).permute(2, 0, 1)[None] / 255 - MEAN) / STD for a in pixels]


def test_matches_onnxruntime_on_the_original_model_at_320(backbone, neck_session, val500):
    """The importer's module against onnxruntime on the teacher's own file: random pixels and
    photos (activations up to ~16), every neck level."""
    for x in [_image(1, 320, 320, 0), _image(1, 320, 320, 1), *_photos(val500)]:
        refs = neck_session.run(list(PICODET_NECK_OUTPUTS), {"image": x.numpy()})
        with torch.no_grad():
            feats = backbone(x)
        assert list(feats) == ["0", "1", "2", "3"]
        for (name, f), ref, side in zip(feats.items(), refs, (40, 20, 10, 5), strict=True):
            assert f.shape == (1, 96, side, side)
            diff = np.abs(f.numpy() - ref).max()
            assert diff < ATOL, f"level {name}: max |torch - onnxruntime| = {diff:.2e}"


def test_any_input_size_and_batch(backbone):
    with torch.no_grad():
        feats = backbone(_image(1, 480, 640))
        assert [tuple(f.shape[-2:]) for f in feats.values()] == [
            (60, 80),
            (30, 40),
            (15, 20),
            (8, 10),
        ]
        pair = _image(2, 250, 333, seed=3)  # odd sizes: a non-integer upsampling in the neck
        both = backbone(pair)
        alone = backbone(pair[1:])
    assert [tuple(f.shape) for f in both.values()] == [
        (2, 96, 32, 42), (2, 96, 16, 21), (2, 96, 8, 11), (2, 96, 4, 6),
    ]  # fmt: skip
    for a, b in zip(both.values(), alone.values(), strict=True):
        torch.testing.assert_close(a[1:], b, atol=1e-5, rtol=0)


def test_parameters_trainable_layers_and_gradients(picodet_file):
    torch.manual_seed(0)
    backbone, names, anchors = picodet_lcnet_backbone(5, torch.nn.BatchNorm2d)
    assert names == ["0", "1", "2", "3"] and len(anchors) == 4
    body_params = sum(p.numel() for p in backbone.body.parameters())
    assert 0.9e6 < body_params < 1.0e6, body_params  # about 0.95M
    convs = [m for m in backbone.body.modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 58 and all(isinstance(c.bias, torch.nn.Parameter) for c in convs)
    assert isinstance(backbone.level_norms[3], torch.nn.BatchNorm2d)

    first, last = convs[0], convs[-1]  # the stem conv (backbone) and the last neck conv
    backbone.set_trainable(0)
    assert not any(p.requires_grad for p in backbone.body.parameters())
    assert all(p.requires_grad for p in backbone.level_norms.parameters())
    backbone.set_trainable(1)
    assert not first.weight.requires_grad and last.weight.requires_grad
    neck = sum(p.numel() for p in backbone.body.parameters() if p.requires_grad)
    assert 0.2 * body_params < neck < 0.6 * body_params
    backbone.set_trainable(5)
    assert all(p.requires_grad for p in backbone.parameters())

    feats = backbone.train()(_image(2, 96, 128))
    sum(f.square().mean() for f in feats.values()).backward()
    for conv in (first, last):
        assert conv.weight.grad is not None and conv.weight.grad.abs().sum() > 0
        assert conv.bias.grad is not None and conv.bias.grad.abs().sum() > 0
    no_grad = [n for n, p in backbone.named_parameters() if p.grad is None]
    assert not no_grad, no_grad


@pytest.fixture(scope="module")
def student(picodet_file):
    torch.manual_seed(0)
    config = StudentConfig(backbone="picodet_lcnet", norm="gn", head_convs=(32, 32),
                           min_size=(128,), max_size=160, box_batch_size_per_image=32,
                           rpn_post_nms_top_n_train=100, detections_per_img=5,
                           max_keypoint_rois=4, lifter_config={"hidden": 32})  # fmt: skip
    return build_student(config)


def _target() -> dict[str, torch.Tensor]:
    kps = torch.rand(1, 17, 3) * torch.tensor([60.0, 90.0, 0.0]) + torch.tensor([30.0, 20.0, 0.0])
    kps[..., 2] = 2.0
    soft = kps.clone()
    soft[..., 2] = 0.6
    return {
        "boxes": torch.tensor([[25.0, 15.0, 95.0, 115.0]]),
        "labels": torch.ones(1).long(),
        "keypoints": kps,
        "keypoints_soft": soft,
        "keypoints3d_soft": torch.randn(1, 17, 3) * 200,
        "has3d": torch.ones(1).bool(),
    }


def test_student_on_picodet_trains_and_predicts(student):
    assert isinstance(student.backbone.level_norms[0], torch.nn.GroupNorm)
    student.train()
    torch.manual_seed(1)
    losses = student([torch.rand(3, 120, 128), torch.rand(3, 130, 110)], [_target(), _target()])
    total = sum(losses.values())
    assert torch.isfinite(total)
    total.backward()
    stem = next(m for m in student.backbone.body.modules() if isinstance(m, torch.nn.Conv2d))
    assert stem.weight.grad is not None and stem.bias.grad is not None
    assert student.backbone.level_norms[3].weight.grad is not None
    student.eval()
    student.roi_heads.score_thresh = 0.0
    with torch.no_grad():
        (det,) = student([torch.rand(3, 120, 128)])
    assert det["keypoints"].shape[1:] == (17, 3)


def test_student_normalisation_is_picodets_own(student):
    from orpose.manifest import load_manifest

    spec = load_manifest()["picodet_s_320_lcnet_pedestrian"].input
    assert spec.color == "rgb" and spec.scale == pytest.approx(1 / 255)
    # the student's images are RGB in [0, 1]; its transform subtracts mean and divides by std
    assert student.transform.image_mean == pytest.approx(list(spec.mean))
    assert student.transform.image_std == pytest.approx(list(spec.std))


def test_random_init_keeps_the_architecture_but_not_the_weights(picodet_file, backbone):
    """The control experiment of docs/picodet_backbone.md: same network, PyTorch's default init."""
    from orpose.student.backbones import build_backbone

    torch.manual_seed(0)
    random_bb, _, _ = build_backbone("picodet_lcnet", 0, "gn", init="random")
    pretrained = dict(backbone.body.named_parameters())
    shuffled = dict(random_bb.body.named_parameters())
    assert pretrained.keys() == shuffled.keys()
    changed = [n for n, p in shuffled.items() if not torch.equal(p, pretrained[n])]
    assert len(changed) >= 0.9 * len(shuffled)  # every conv redrawn (a few may be all-zero biases)
    assert not any(p.requires_grad for p in random_bb.body.parameters())  # still frozen at 0
    with torch.no_grad():
        feats = random_bb(_image(1, 128, 160))
    assert all(torch.isfinite(f).all() for f in feats.values())
    with pytest.raises(ValueError, match="unknown backbone init 'imagenet'"):
        build_backbone("picodet_lcnet", 0, "gn", init="imagenet")


def test_checkpoints_with_the_old_body_keys_load_and_predict_the_same(student, tmp_path):
    """Checkpoints written before the importer built the body name its convs
    ``backbone.body.conv_<node index>`` and hold no constants: they load (and start training)
    as the same network."""
    from orpose.checkpoints import load_student, read_checkpoint, save_student, write_checkpoint
    from orpose.checkpoints.torchvision import load_torchvision_keypointrcnn

    torch.manual_seed(3)
    with torch.no_grad():  # weights of a trained student, not the file's
        for p in student.backbone.body.parameters():
            p.add_(0.01 * torch.randn_like(p))
    state = read_checkpoint(save_student(student, tmp_path / "new.pt"))
    old = {}
    for key, value in state["model"].items():
        if key.startswith("backbone.body.convs.conv"):
            k, param = key.removeprefix("backbone.body.convs.conv").split(".")
            old[f"backbone.body.conv_{2 * int(k) + (5 if int(k) > 9 else 0)}.{param}"] = value
        elif not key.startswith("backbone.body."):
            old[key] = value
    assert len(old) < len(state["model"])  # the constants are gone
    write_checkpoint({**state, "model": old}, tmp_path / "old.pt")

    student.eval()
    loaded = load_student(tmp_path / "old.pt")
    for key, value in student.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[key], value, atol=0, rtol=0, msg=key)
    image = torch.rand(3, 120, 128, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected, got = student([image])[0], loaded([image])[0]
    for key in expected:
        torch.testing.assert_close(got[key], expected[key], atol=0, rtol=0)
    # stage 2 (init_weights) reads it too
    fresh = build_student(student.config)
    assert load_torchvision_keypointrcnn(fresh, tmp_path / "old.pt") == []
    torch.testing.assert_close(fresh.backbone.body.convs.conv20.weight,
                               student.backbone.body.convs.conv20.weight)  # fmt: skip


def test_a_saved_student_records_and_checks_the_picodet_file(student, picodet_file, tmp_path,
                                                             monkeypatch):  # fmt: skip
    """The backbone is rebuilt from the ONNX file at load: the checkpoint records its sha256, and
    a student whose file changed since it was saved is refused, naming checkpoint and file."""
    import hashlib

    from orpose.checkpoints import load_student, read_checkpoint, save_student
    from orpose.errors import ModelError

    path = save_student(student, tmp_path / "student.pt")
    recorded = read_checkpoint(path)["model_files"]
    digest = hashlib.sha256(picodet_file.read_bytes()).hexdigest()
    assert recorded == {"backbone": {"file": picodet_file.name, "sha256": digest}}
    assert load_student(path).backbone.rebuilt_from["sha256"] == digest
    # the same graph, other bytes (a changed doc string): the user's own file, refused
    other = onnx.load(str(picodet_file))
    other.doc_string = "changed"
    changed = tmp_path / "picodet_changed.onnx"
    onnx.save(other, str(changed))
    monkeypatch.setenv(PICODET_ENV, str(changed))
    with pytest.warns(UserWarning, match="unverified"), pytest.raises(ModelError) as err:
        load_student(path)
    message = str(err.value)
    assert "\n" not in message and "student.pt" in message and "picodet_changed.onnx" in message
    assert digest[:12] in message and "refusing" in message
