"""ONNX / TorchScript export of the student: the exported graphs give PyTorch's results."""

import numpy as np
import pytest
import torch

from orpose.cli import main
from orpose.export.agreement import Agreement, add_image, compare_on_images
from orpose.export.export import (
    OUTPUT_NAMES,
    ExportableStudent,
    TraceableTransform,
    export_onnx,
)
from orpose.inference.onnx_runner import OnnxStudent
from orpose.predictor import StudentPredictor, limit_proposals, save_student
from orpose.student import StudentConfig, build_student
from orpose.student.model import ORPoseTransform

TINY = StudentConfig(
    backbone="resnet18_fpn",
    box_head_size=64,
    head_convs=(16, 16),
    min_size=(128,),
    max_size=160,
    detections_per_img=4,
    box_score_thresh=0.0,
    lifter_config={"hidden": 16},
)
# (height, width): landscape, portrait, square, and sizes where a float32 scale floors one pixel
# short (150x200 -> 119x159 in torchvision's own traced resize)
SIZES = [(150, 200), (200, 150), (97, 131), (160, 160)]


@pytest.fixture(scope="module")
def tiny_student():
    torch.manual_seed(0)
    return limit_proposals(build_student(TINY).eval(), 50)


@pytest.fixture(scope="module")
def exported(tiny_student, tmp_path_factory):
    """The tiny student through ``orpose export``: ONNX, TorchScript and a checkpoint."""
    folder = tmp_path_factory.mktemp("export")
    checkpoint = save_student(tiny_student, folder / "last.pt")
    options = "--format onnx torchscript checkpoint --proposals 50 --check-count 0"
    assert main(["export", str(checkpoint), "--out", str(folder / "out"), *options.split()]) == 0
    out = folder / "out"
    assert (out / "last_orpose.pt").is_file()
    return out / "last.onnx", out / "last.torchscript.pt"


def _images() -> list[np.ndarray]:
    rng = np.random.default_rng(3)
    return [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for h, w in SIZES]


def test_traced_resize_picks_pytorchs_size_for_every_input(tmp_path):
    import onnxruntime as ort

    class Resize(torch.nn.Module):
        def __init__(self, transform):
            super().__init__()
            self.transform = transform

        def forward(self, x):
            return self.transform.resize(x)[0]

    for min_size, max_size in ((128, 160), (240, 320), (480, 800)):
        args = ((min_size,), max_size, [0.0] * 3, [1.0] * 3)
        eager = Resize(ORPoseTransform(*args).eval())
        path = tmp_path / f"resize_{min_size}.onnx"
        with torch.no_grad():
            torch.onnx.export(
                Resize(TraceableTransform(*args).eval()),
                (torch.rand(3, 48, 64),),
                str(path),
                dynamo=False,
                opset_version=17,
                input_names=["image"],
                dynamic_axes={"image": {1: "h", 2: "w"}},
            )
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        for h, w in [*SIZES, (120, 160), (100, 180), (302, 500), (333, 500), (427, 640)]:
            x = torch.rand(3, h, w)
            (onnx_out,) = session.run(None, {"image": x.numpy()})
            with torch.no_grad():
                reference = eager(x)
            assert onnx_out.shape == tuple(reference.shape), (min_size, h, w)
            np.testing.assert_allclose(onnx_out, reference.numpy(), atol=1e-4)


def test_onnx_and_torchscript_agree_with_pytorch_at_any_size(tiny_student, exported):
    onnx_path, script_path = exported
    runner = OnnxStudent(onnx_path, providers=["CPUExecutionProvider"])
    assert runner.output_names == list(OUTPUT_NAMES)
    scripted = torch.jit.load(str(script_path))
    reference = StudentPredictor(tiny_student, "cpu")
    onnx_report, script_report = Agreement(), Agreement()
    for image in _images():
        ref = reference.detect(image)
        add_image(onnx_report, ref, runner.detect(image))
        tensor = torch.from_numpy(image).permute(2, 0, 1).float() / 255.0
        with torch.no_grad():
            add_image(script_report, ref, dict(zip(OUTPUT_NAMES, scripted(tensor), strict=True)))
    for report in (onnx_report, script_report):
        assert report.people == len(SIZES) * TINY.detections_per_img
        assert report.unpaired == 0 and report.ties == 0
        assert report.max_keypoint_px < 1e-2 and report.max_box_px < 1e-2
        assert report.max_keypoint3d_mm < 1e-2
    # COCO results through the runner: same layout as the PyTorch predictor's
    (first,) = runner(_images()[0])[:1]
    assert len(first["keypoints"]) == 51 and len(first["keypoints3d"]) == 51


def test_graph_without_detections_returns_empty_outputs(tiny_student, tmp_path):
    """Thresholds are constants of the graph; an image with nobody yields (0, ...) outputs."""
    strict = ExportableStudent(tiny_student).model
    strict.roi_heads.score_thresh = 1.1  # nothing passes: the traced path must not depend on it
    path = export_onnx(strict, tmp_path / "empty.onnx", torch.rand(3, 64, 80))
    out = OnnxStudent(path, providers=["CPUExecutionProvider"]).detect(_images()[1])
    assert out["boxes"].shape == (0, 4) and out["keypoints"].shape == (0, 17, 3)
    assert out["keypoints3d"].shape == (0, 17, 3)


@pytest.mark.shared
def test_onnx_agrees_on_real_images(tiny_student, exported, val500):
    report = compare_on_images(tiny_student, exported[0], val500.parent / "images", 2)
    assert report.images == 2 and report.people == 2 * TINY.detections_per_img
    assert report.unpaired == 0 and len(report.keypoint_px) == 17 * report.people
    assert report.max_keypoint_px < 1e-2, report.describe()


def test_agreement_tells_ties_from_rounding():
    """A keypoint that jumped to another heatmap cell is a tie, not a rounding difference."""
    keypoints = torch.rand(2, 17, 3) * 40 + 5
    ref = {
        "boxes": torch.tensor([[0.0, 0, 50, 80], [60, 0, 110, 80]]),
        "scores": torch.ones(2),
        "keypoints": keypoints,
        "keypoints_soft_branch": keypoints.clone(),
        "keypoints3d": torch.zeros(2, 17, 3),
    }
    moved = {k: v.clone() for k, v in ref.items()}
    moved["keypoints"][0, 3, 0] += 3.0  # three cells further
    moved["keypoints"][1, :, 1] += 0.004
    moved["keypoints_soft_branch"][1, 0, 0] += 2.0  # a lifter input jumped: its 3D is left out
    moved["keypoints3d"][1] += 50.0
    report = Agreement()
    add_image(report, ref, {k: v.flip(0) for k, v in moved.items()})  # order may differ
    assert report.people == 2 and len(report.keypoint_px) == 34 and report.ties == 1
    assert report.max_keypoint_px == pytest.approx(3.0)
    assert report.share_beyond(0.01) == pytest.approx(1 / 34)
    assert report.lifter_input_ties == 1 and report.max_keypoint3d_mm == 0.0
    assert "1 beyond 0.1 px" in report.describe()
