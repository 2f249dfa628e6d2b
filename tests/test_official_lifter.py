"""The official ORPose lifter: its forward and normalisation against a plain numpy
re-implementation of the official code, and official checkpoints with or without 3D."""

import json
import logging

import numpy as np
import pytest
import torch

from orpose.checkpoints.detectron2 import load_detectron2_student, to_detectron2
from orpose.data.coco import PoseDataset
from orpose.evaluation.mpjpe import compute_mpjpe
from orpose.export.export import ExportableStudent, export_onnx
from orpose.inference.onnx_runner import OnnxStudent
from orpose.lifting.official_lifter import (
    H36_STATS_ENV,
    OfficialLifter,
    OfficialLifterConfig,
    read_h36_stats,
)
from orpose.predictor import StudentPredictor, load_student, save_student
from orpose.skeleton import PERSON_CATEGORY
from orpose.student import StudentConfig, build_student

SETTINGS = {"min_size": (96,), "max_size": 128, "detections_per_img": 3, "box_score_thresh": 0.0}
CONFIG = StudentConfig(
    backbone="resnet18_fpn", norm="frozen_bn", head_convs=(16, 16), box_head_size=32, **SETTINGS
)
D2_LIFTER = "roi_heads.keypoint_head.nw2Dto3D_"
# Martinez's Human3.6M joints used in 2D (no Neck/Nose) and 3D (no root), of 32
USE_2D = [0, 1, 2, 3, 6, 7, 8, 12, 13, 15, 17, 18, 19, 25, 26, 27]
USE_3D = [1, 2, 3, 6, 7, 8, 12, 13, 14, 15, 17, 18, 19, 25, 26, 27]


# -- the reference: the official code's steps, written again in numpy ---------------------------


def reference_h36m_input(kps: np.ndarray) -> np.ndarray:
    """COCOtoH36 + neck removal of keypoints3d_head.py (one person, (17, 2) -> (32,))."""
    match = [0, 12, 14, 16, 11, 13, 15, 0, 0, 0, 0, 5, 7, 9, 6, 8, 10]
    pose = kps[match].copy()
    pose[0] = (kps[11] + kps[12]) / 2.0
    pose[8] = (kps[5] + kps[6]) / 2.0
    pose[7] = (pose[0] + pose[8]) / 2.0
    pose[9] = (kps[3] + kps[4]) / 2.0
    pose[10] = (kps[3] + kps[4]) / 2.0
    return np.concatenate([pose[0:8, 0:2], pose[9:, 0:2]], axis=0).reshape(-1)


def reference_network(x: np.ndarray, w: dict[str, np.ndarray]) -> np.ndarray:
    """LinearModel.forward in eval mode (dropout off, batch norm on running statistics)."""

    def linear(v, name):
        return v @ w[f"{name}.weight"].T + w[f"{name}.bias"]

    def bn(v, name):
        scale = w[f"{name}.weight"] / np.sqrt(w[f"{name}.running_var"] + 1e-5)
        return (v - w[f"{name}.running_mean"]) * scale + w[f"{name}.bias"]

    def relu(v):
        return np.maximum(v, 0.0)

    y = relu(bn(linear(x, "w1"), "batch_norm1"))
    for i in range(2):
        s = f"linear_stages.{i}"
        z = relu(bn(linear(y, f"{s}.w1"), f"{s}.batch_norm1"))
        z = relu(bn(linear(z, f"{s}.w2"), f"{s}.batch_norm2"))
        y = y + z
    return linear(y, "w2")


def reference_lift(kps: np.ndarray, w: dict[str, np.ndarray], stats: dict) -> np.ndarray:
    """The official 3D of one person's COCO keypoints (17, 2): Human3.6M-17 (17, 3) mm."""
    mu2d = np.array(stats["data_mean_2d"])[stats["dim_to_use_2d"]]
    std2d = np.array(stats["data_std_2d"])[stats["dim_to_use_2d"]]
    out = reference_network((reference_h36m_input(kps) - mu2d) / std2d, w)
    # utils_eval.py unNormalizeData and the dim_use selection
    mean, std = np.array(stats["data_mean_3d"]), np.array(stats["data_std_3d"])
    dims = np.array(stats["dim_to_use_3d"])
    full = np.zeros((1, 96))
    full[:, dims] = out
    full = full * std.reshape(1, 96) + mean.reshape(1, 96)
    return full[:, np.hstack((np.arange(3), dims))][0].reshape(17, 3)


def reference_coco(h36m: np.ndarray) -> np.ndarray:
    """Human3.6M-17 -> COCO-17 as documented: the face from Neck/Nose (nose) and Head."""
    order = [9, 10, 10, 10, 10, 11, 14, 12, 15, 13, 16, 4, 1, 5, 2, 6, 3]
    return h36m[order]


# -- fixtures --------------------------------------------------------------------------------------


def synthetic_stats(seed: int = 0) -> dict:
    """An h36stats.json with the official structure (root 3D statistics 0, as the real file)."""
    rng = np.random.default_rng(seed)
    use_2d = [2 * j + c for j in USE_2D for c in (0, 1)]
    use_3d = [3 * j + c for j in USE_3D for c in range(3)]
    mean_3d, std_3d = rng.normal(0, 300, 96), rng.uniform(50, 400, 96)
    mean_3d[:3] = std_3d[:3] = 0.0
    return {
        "data_mean_2d": rng.uniform(40, 120, 64).tolist(),
        "data_std_2d": rng.uniform(10, 60, 64).tolist(),
        "dim_to_ignore_2d": sorted(set(range(64)) - set(use_2d)),
        "dim_to_use_2d": use_2d,
        "data_mean_3d": mean_3d.tolist(),
        "data_std_3d": std_3d.tolist(),
        "dim_to_ignore_3d": sorted(set(range(96)) - set(use_3d)),
        "dim_to_use_3d": use_3d,
    }


def random_official_weights(seed: int) -> dict[str, torch.Tensor]:
    """An official lifter's state dict (1024 wide, 2 stages) with random weights and BN stats."""
    torch.manual_seed(seed)
    state = OfficialLifter().net.state_dict()
    out = {}
    for key, value in state.items():
        if key.endswith("num_batches_tracked"):
            out[key] = value
        elif key.endswith("running_var"):
            out[key] = torch.rand_like(value) + 0.5
        elif key.endswith("weight") and value.dim() == 2:
            out[key] = torch.randn_like(value) / value.shape[1] ** 0.5
        else:
            out[key] = torch.randn_like(value) * 0.2
    return out


def numpy_weights(state: dict[str, torch.Tensor]) -> dict[str, np.ndarray]:
    return {k: v.double().numpy() for k, v in state.items()}


@pytest.fixture(scope="module")
def stats_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("stats") / "h36stats.json"
    path.write_text(json.dumps(synthetic_stats()))
    return path


@pytest.fixture(scope="module")
def official(tmp_path_factory):
    """A detectron2-style checkpoint with random weights and random official lifters, the
    lifters' weights, and the same checkpoint without the hard lifter."""
    torch.manual_seed(0)
    student = build_student(CONFIG).eval()
    d2 = to_detectron2(student.state_dict(), num_classes=1, person_class=0)
    lifters = {"soft": random_official_weights(1), "hard": random_official_weights(2)}
    for branch, weights in lifters.items():
        d2.update({f"{D2_LIFTER}{branch}.{k}": v for k, v in weights.items()})
    folder = tmp_path_factory.mktemp("d2")
    path = folder / "model_final.pth"
    torch.save({"model": d2, "iteration": 1}, path)
    partial = folder / "no_hard_lifter.pth"
    torch.save({"model": {k: v for k, v in d2.items() if "nw2Dto3D_hard" not in k}}, partial)
    return path, partial, lifters


def _image(seed: int = 2, size=(96, 128)) -> torch.Tensor:
    return torch.rand(3, *size, generator=torch.Generator().manual_seed(seed))


# -- tests -----------------------------------------------------------------------------------------


def test_official_lifter_equals_the_numpy_reference(stats_file):
    stats = json.loads(stats_file.read_text())
    weights = random_official_weights(3)
    lifter = OfficialLifter(OfficialLifterConfig(), read_h36_stats(stats_file))
    lifter.net.load_state_dict(weights)
    lifter.eval()
    rng = np.random.default_rng(4)
    kps = rng.uniform(0, 160, (5, 17, 2))
    with torch.no_grad():
        out = lifter(torch.as_tensor(kps, dtype=torch.float32), torch.ones(5, 17)).double()
        h36m = lifter.h36m(torch.as_tensor(kps, dtype=torch.float32)).double()
    w = numpy_weights(weights)
    for i in range(len(kps)):
        expected = reference_lift(kps[i], w, stats)
        np.testing.assert_allclose(h36m[i].numpy(), expected, rtol=1e-4, atol=1e-2)
        np.testing.assert_allclose(out[i].numpy(), reference_coco(expected), rtol=1e-4, atol=1e-2)
    assert np.abs(h36m[:, 0].numpy()).max() == 0.0  # the root: data_mean_3d[0:3] = 0
    # the mask is ignored, as by the official network (it lifts every keypoint)
    with torch.no_grad():
        masked = lifter(torch.as_tensor(kps, dtype=torch.float32), torch.zeros(5, 17))
    torch.testing.assert_close(masked.double(), out)


def test_bad_statistics_are_named(tmp_path):
    path = tmp_path / "h36stats.json"
    stats = synthetic_stats()
    del stats["data_std_3d"]
    path.write_text(json.dumps(stats))
    with pytest.raises(Exception, match=r"h36stats\.json: field 'data_std_3d' is missing"):
        read_h36_stats(path)
    with pytest.raises(Exception, match=r"no such Human3\.6M statistics file"):
        read_h36_stats(tmp_path / "absent.json")


def test_official_checkpoint_with_statistics_gives_the_official_3d(official, stats_file, tmp_path):
    path, _, lifters = official
    stats = json.loads(stats_file.read_text())
    model, report = load_detectron2_student(path, h36_stats=stats_file, **SETTINGS)
    assert report["lifters"] == "official" and report["warnings"] == []
    assert report["unmapped"] == [] and report["missing"] == []
    assert report["h36_stats"] == str(stats_file)
    with torch.no_grad():
        (det,) = model([_image()])
    assert len(det["boxes"]) == 3
    # the official inference: each lifter on its branch's keypoints, the mean of both
    soft, hard = (det[k][..., :2].double().numpy() for k in ("keypoints_soft_branch",
                                                              "keypoints_hard_branch"))  # fmt: skip
    w_soft, w_hard = numpy_weights(lifters["soft"]), numpy_weights(lifters["hard"])
    expected = np.stack([
        reference_coco((reference_lift(s, w_soft, stats) + reference_lift(h, w_hard, stats)) / 2)
        for s, h in zip(soft, hard, strict=True)
    ])  # fmt: skip
    np.testing.assert_allclose(det["keypoints3d"].double().numpy(), expected, rtol=1e-4, atol=0.02)

    # the predictor keeps the report; its results carry the 3D; the environment variable works
    predictor = StudentPredictor(model, "cpu")
    assert predictor.load_report is report
    image = (_image().permute(1, 2, 0).numpy() * 255).astype(np.uint8)
    results = predictor(image)
    assert results and all(len(r["keypoints3d"]) == 51 for r in results)
    assert all(np.isfinite(r["keypoints3d"]).all() for r in results)

    # a converted orpose checkpoint keeps the official lifters and their statistics
    converted = load_student(save_student(model, tmp_path / "converted.pt"))
    assert converted.config.lifter_config["kind"] == "official_h36m"
    with torch.no_grad():
        (again,) = converted([_image()])
    torch.testing.assert_close(again["keypoints3d"], det["keypoints3d"])


def test_statistics_from_the_environment(official, stats_file, monkeypatch):
    path, _, _ = official
    monkeypatch.setenv(H36_STATS_ENV, str(stats_file))
    predictor = StudentPredictor.from_checkpoint(path, "cpu")
    assert predictor.load_report["lifters"] == "official"
    assert predictor.model.config.lifters and predictor.model.keypoint_head.has_lifters


def test_no_3d_without_statistics_or_lifter_weights(official, stats_file, monkeypatch, caplog):
    path, partial, _ = official
    monkeypatch.delenv(H36_STATS_ENV, raising=False)
    cases = [(path, None, "Human3.6M statistics"), (partial, stats_file, "nw2Dto3D_hard.*")]
    for checkpoint, stats, named in cases:
        caplog.clear()
        with caplog.at_level(logging.WARNING):
            predictor = StudentPredictor.from_checkpoint(checkpoint, "cpu", h36_stats=stats)
        warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
        assert len(warnings) == 1 and named in warnings[0] and "without 3D" in warnings[0]
        assert predictor.load_report["lifters"] == "none"
        assert predictor.load_report["warnings"] == warnings
        model = predictor.model
        assert not model.config.lifters and not model.keypoint_head.has_lifters
        image = (_image().permute(1, 2, 0).numpy() * 255).astype(np.uint8)
        assert predictor.detect(image)["keypoints"].shape[0] > 0  # 2D still
        assert predictor(image) and all("keypoints3d" not in r for r in predictor(image))
        assert "keypoints3d" not in ExportableStudent(model).output_names


def test_official_3d_exports_to_onnx_with_aligned_pooling(official, stats_file, tmp_path):
    path, _, _ = official
    model, _ = load_detectron2_student(path, h36_stats=stats_file, **SETTINGS)
    assert model.config.roi_align_aligned and model.config.roi_sampling_ratio == 0
    onnx_path = export_onnx(model, tmp_path / "official.onnx", _image(5, (120, 160)))
    runner = OnnxStudent(onnx_path, providers=["CPUExecutionProvider"])
    assert "keypoints3d" in runner.output_names
    image = (_image(6, (100, 140)).permute(1, 2, 0).numpy() * 255).astype(np.uint8)
    ref = StudentPredictor(model, "cpu").detect(image)
    out = runner.detect(image)
    for key in ("boxes", "keypoints", "keypoints_scores", "keypoints3d"):
        np.testing.assert_allclose(out[key].numpy(), ref[key].numpy(), rtol=1e-3, atol=0.05)


def test_mpjpe_runs_on_the_official_3d(official, stats_file):
    """The official lifter's COCO-ordered output through the MPJPE of the 8 upper-body joints."""
    path, _, _ = official
    model, _ = load_detectron2_student(path, h36_stats=stats_file, **SETTINGS)
    image = (_image().permute(1, 2, 0).numpy() * 255).astype(np.uint8)
    results = StudentPredictor(model, "cpu")(image)
    first = results[0]
    kps = np.asarray(first["keypoints"]).reshape(17, 3)
    pose = np.asarray(first["keypoints3d"]).reshape(17, 3)
    gt3d = np.concatenate([pose, np.ones((17, 1))], axis=1)  # the prediction as ground truth
    gt2d = kps.copy()
    gt2d[:, 2] = 2
    x0, y0 = kps[:, :2].min(0)
    x1, y1 = kps[:, :2].max(0)
    ann = {"id": 1, "image_id": 1, "category_id": 1, "iscrowd": 0,
           "bbox": [float(x0), float(y0), float(x1 - x0 + 1), float(y1 - y0 + 1)],
           "keypoints": gt2d.ravel().tolist(), "keypoints3d": gt3d.ravel().tolist()}  # fmt: skip
    gt = PoseDataset([{"id": 1, "file_name": "a.png", "width": 128, "height": 96}], [ann],
                     [PERSON_CATEGORY])  # fmt: skip
    result = compute_mpjpe(gt, [{**r, "image_id": 1} for r in results])
    assert result.persons == 1 and result.mpjpe < 0.2  # rounding of the results to 0.1 mm
    assert np.isfinite(result.mpjpe_official)


def test_export_cli_takes_the_statistics(official, stats_file, tmp_path, monkeypatch):
    from orpose.cli import main

    path, _, _ = official
    monkeypatch.delenv(H36_STATS_ENV, raising=False)
    options = ["--format", "checkpoint", "--check-count", "0", "--out", str(tmp_path)]
    assert main(["export", str(path), *options, "--h36-stats", str(stats_file)]) == 0
    converted = load_student(tmp_path / "model_final_orpose.pt")
    assert converted.config.lifters and converted.config.roi_align_aligned
    assert converted.config.lifter_config["kind"] == "official_h36m"
