"""The Python API (orpose/api.py, docs/api.md): what ``orpose.load(...)(image)`` returns is what
``orpose predict`` writes; ``orpose.evaluate`` gives ``orpose eval``'s rows; ``orpose.train`` and
``orpose.load_teacher`` run their stages; bad inputs give one-line orpose errors."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import orpose
from conftest import tiny_dataset_json
from orpose.cli import main
from orpose.data.images import read_image_rgb
from orpose.errors import ModelError, OrposeError, UserError
from orpose.predictor import save_student
from orpose.student import build_student
from test_inference_predict import TINY


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    """A tiny random Keypoint R-CNN student with lifters (always 2 people per image)."""
    torch.manual_seed(0)
    return save_student(build_student(TINY), tmp_path_factory.mktemp("api") / "last.pt")


@pytest.fixture(scope="module")
def images(shared: Path) -> list[Path]:
    """Two real COCO images of the shared evaluation set."""
    folder = shared / "data" / "coco_person_val500" / "images"
    found = sorted(folder.glob("*.jpg"))[:2]
    if len(found) < 2:
        pytest.skip(f"{folder}: fewer than 2 images")
    return found


def predict_cli(model: Path, inputs: list[Path], out: Path, *options: str) -> dict[int, list]:
    """``orpose predict``'s results.json, by image id (1, 2... in the order of ``inputs``)."""
    argv = ["predict", str(model), *map(str, inputs), "--out", str(out), "--device", "cpu"]
    assert main([*argv, "--no-progress", *options]) == 0
    by_image: dict[int, list] = {i + 1: [] for i in range(len(inputs))}
    for result in json.loads((out / "results.json").read_text()):
        by_image[result["image_id"]].append(result)
    return by_image


def coco(people: list, image_id: int) -> list[dict]:
    return [person.to_coco(image_id) for person in people]


def test_import_orpose_is_light_and_the_api_is_its_face():
    code = (
        "import sys, orpose\n"
        "names = [n for n in orpose.__all__ if n not in ('FLOORS', '__version__')]\n"
        "heavy = [m for m in ('torch', 'onnxruntime', 'cv2') if m in sys.modules]\n"
        "print(','.join(heavy), sorted(names))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    heavy, names = done.stdout.split(" ", 1)
    assert heavy == ""
    assert "'load'" in names and "'evaluate'" in names and "'train'" in names
    assert orpose.load is orpose.api.load and orpose.Person is orpose.api.Person


def test_predictor_returns_what_predict_writes(checkpoint, images, tmp_path):
    written = predict_cli(checkpoint, images, tmp_path / "p", "--score-threshold", "0")
    predictor = orpose.load(checkpoint, score_threshold=0)
    for image_id, image in enumerate(images, start=1):
        people = predictor(image)
        assert len(people) == TINY.detections_per_img
        assert coco(people, image_id) == written[image_id]
        for person in people:
            assert person.keypoints.shape == (17, 3) and len(person.box) == 4
    # a list of images at once, and an array or a PIL image give the same people as the path
    assert predictor.predict_many(images) == [predictor(i) for i in images]
    rgb = read_image_rgb(images[0])
    from PIL import Image

    assert predictor(rgb) == predictor(images[0]) == predictor(Image.fromarray(rgb))
    assert predictor(rgb, downscale=8) == predictor(str(images[0]), downscale=8)


def test_downscale_and_native_lowres_are_predicts(checkpoint, images, tmp_path):
    image = images[:1]
    predictor = orpose.load(checkpoint, score_threshold=0)
    full = coco(predictor(image[0]), 1)
    for options in (("--downscale", "12"), ("--downscale", "12", "--native-lowres")):
        out = tmp_path / "-".join(options).strip("-")
        written = predict_cli(checkpoint, image, out, "--score-threshold", "0", *options)
        native = "--native-lowres" in options
        people = predictor(image[0], downscale=12, native_lowres=native)
        assert coco(people, 1) == written[1] and written[1]
        assert coco(people, 1) != full  # the 1/12 image, not the full one
    # people are in the original's pixels: the boxes lie within it
    w, h = read_image_rgb(image[0]).shape[1::-1]
    for person in predictor(image[0], downscale=12):
        x, y, bw, bh = person.box
        assert x >= -1 and y >= -1 and x + bw <= w + 1 and y + bh <= h + 1


def test_3d_in_mm_through_a_camera_as_predict(checkpoint, images, tmp_path):
    camera = "900,900,300,200"
    written = predict_cli(
        checkpoint, images[:1], tmp_path / "cam", "--score-threshold", "0", "--camera", camera
    )
    people = orpose.load(checkpoint, camera=camera, score_threshold=0)(images[0])
    assert coco(people, 1) == written[1]
    plain = orpose.load(checkpoint, score_threshold=0)(images[0])
    for person, other in zip(people, plain, strict=True):
        pose3d = person.keypoints3d
        assert pose3d.shape == (17, 3) and np.isfinite(pose3d).all()
        assert np.abs(pose3d[[11, 12]].mean(axis=0)).max() < 1.0  # mid-hips at 0 (mm)
        assert np.ptp(pose3d) > 10  # millimetres, not normalised units
        assert not np.allclose(pose3d, other.keypoints3d)  # the camera changes the lift
        assert np.array_equal(person.keypoints, other.keypoints)  # and not the 2D


def test_errors_are_one_line_orpose_errors(checkpoint, images, tmp_path):
    text = tmp_path / "notes.pt"
    text.write_text("not a checkpoint")
    graph = tmp_path / "model.onnx"
    graph.write_bytes(b"\x00garbage")
    for path, kind in (
        (tmp_path / "missing.pt", ModelError),
        (tmp_path, ModelError),
        (text, ModelError),
        (graph, ModelError),
    ):
        with pytest.raises(kind) as err:
            orpose.load(path)
        assert str(path) in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(UserError, match="--camera"):  # an ONNX graph lifts its pixels as they are
        orpose.load(graph, camera="1,1,1,1")
    predictor = orpose.load(checkpoint)
    for image in (tmp_path / "missing.jpg", text):
        with pytest.raises(OrposeError, match=str(image.name)):
            predictor(image)
    with pytest.raises(UserError, match=r"RGB uint8 array \(H, W, 3\)"):
        predictor(np.zeros((40, 30), np.float32))
    with pytest.raises(UserError, match="downscale"):
        predictor(images[0], downscale=0.5)
    with pytest.raises(UserError, match="score_threshold"):
        orpose.load(checkpoint, score_threshold=2)
    with pytest.raises(UserError, match="proposals: expected a whole number"):
        orpose.load(checkpoint, proposals="many")
    with pytest.raises(UserError, match="pose_confidence_bound"):
        orpose.load(checkpoint, pose_confidence_bound=0.001)


def test_the_pose_confidence_bound_reaches_the_runner(shared, checkpoint, tmp_path):
    """``orpose.load(..., pose_confidence_bound=B)`` is predict's option: the CPU student's
    runner poses from the frame's threshold / B (None: by the factor, the attribute left
    unset); a Keypoint R-CNN student, which poses every candidate, is told no least score."""
    from orpose.inference.pipeline import min_score_option
    from orpose.student.topdown import TopDownConfig, TopDownStudent

    cpu = save_student(TopDownStudent(TopDownConfig(lifters=False)), tmp_path / "cpu.pt")
    assert getattr(orpose.load(cpu).runner, "pose_confidence_bound", None) is None
    runner = orpose.load(cpu, pose_confidence_bound=0.5).runner
    assert runner.pose_confidence_bound == 0.5
    assert min_score_option(runner, 0.25, 12.0)["min_score"] == pytest.approx(0.5, abs=1e-4)
    rcnn = orpose.load(checkpoint, pose_confidence_bound=0.5).runner
    assert min_score_option(rcnn, 0.25, 12.0) == {}


def _results_of(gt: Path, shift: float) -> list[dict]:
    """COCO results near the ground truth's people (shifted by ``shift`` pixels)."""
    data = json.loads(gt.read_text())
    results = []
    for ann in data["annotations"]:
        kps = np.asarray(ann["keypoints"], float).reshape(17, 3)
        kps[:, :2] += shift
        kps[:, 2] = 0.9
        x, y, w, h = ann["bbox"]
        box = [x + shift, y, w, h]
        results.append({"image_id": ann["image_id"], "category_id": 1, "score": 0.8,
                        "bbox": box, "keypoints": kps.ravel().tolist()})  # fmt: skip
    return results


def _metrics_csv(folder: Path) -> list[dict]:
    with open(folder / "metrics.csv", newline="") as f:
        return list(csv.DictReader(f))


def _as_written(rows: list[dict]) -> list[dict]:
    return [{k: str(v) for k, v in row.items()} for row in rows]


def test_evaluate_gives_the_rows_of_orpose_eval(tmp_path):
    gt = tiny_dataset_json(tmp_path)
    near, far = tmp_path / "near.json", tmp_path / "far.json"
    near.write_text(json.dumps(_results_of(gt, 1.0)))
    far.write_text(json.dumps(_results_of(gt, 6.0)))
    out = tmp_path / "eval"
    argv = ["eval", "--gt", str(gt), "--pred", f"1={near}", "--pred", f"8={far}", "--out", str(out)]
    assert main([*argv, "--no-plot"]) == 0
    written = _metrics_csv(out)
    rows = orpose.evaluate(gt, {1: near, 8: far})
    assert _as_written(rows) == written
    assert [r["scale"] for r in rows] == ["1x", "8x"] and rows[0]["keypoint_ap"] > 50
    # results in memory, and Person lists, give the same numbers as their file
    in_memory = orpose.evaluate(gt, {1: _results_of(gt, 1.0), "8x": _results_of(gt, 6.0)})
    assert _as_written(in_memory) == written
    assert _as_written(orpose.evaluate(str(gt), str(near))) == written[:1]
    with pytest.raises(UserError, match="camera applies to a model"):
        orpose.evaluate(gt, near, camera="1,1,1,1")
    with pytest.raises(UserError, match="predictions: the same scale is given twice"):
        orpose.evaluate(gt, {1: near, "1x": far})


def test_evaluate_a_model_as_orpose_eval_model(checkpoint, val500, tmp_path):
    out = tmp_path / "eval"
    argv = ["eval", "--gt", str(val500), "--model", str(checkpoint), "--scales", "1", "12"]
    assert main([*argv, "--limit", "2", "--device", "cpu", "--out", str(out), "--no-plot"]) == 0
    rows = orpose.evaluate(val500, checkpoint, scales=(1, 12), limit=2)
    assert _as_written(rows) == _metrics_csv(out)
    assert [r["predictions"] for r in rows] == [2 * TINY.detections_per_img] * 2
    loaded = orpose.load(checkpoint, score_threshold=0)  # what eval --model scores
    again = orpose.evaluate(val500, loaded, scales=(1, 12), limit=2)
    assert _as_written(again) == _as_written(rows)
    # with out: the verb's files (predictions of each scale, metrics), one code for both
    api_out = tmp_path / "api_eval"
    orpose.evaluate(val500, checkpoint, scales=(1, 12), limit=2, out=api_out)
    for name in ("pred_1x.json", "pred_12x.json", "metrics.csv"):
        assert (api_out / name).read_text() == (out / name).read_text(), name
    with pytest.raises(UserError, match="max_detections"):
        orpose.evaluate(val500, checkpoint, max_detections=0)


def test_train_returns_a_checkpoint_that_loads(tmp_path):
    from test_training import _tiny_config

    config = _tiny_config(tmp_path, 2)
    checkpoint = orpose.train(config, tmp_path / "run", {"solver.iterations": 0}, device="cpu")
    assert checkpoint == tmp_path / "run" / "last.pt" and checkpoint.is_file()
    assert "--set solver.iterations=0" in (tmp_path / "run" / "config.yaml").read_text()
    people = orpose.load(checkpoint, score_threshold=0)(np.full((96, 128, 3), 90, np.uint8))
    assert all(p.keypoints.shape == (17, 3) for p in people)
    with pytest.raises(OrposeError, match=r"solver\.lr"):
        orpose.train(config, tmp_path / "bad", ["solver.lr=fast"])
    with pytest.raises(UserError, match="no such training config"):
        orpose.train(tmp_path / "absent.yaml", tmp_path / "none")


def test_teacher_gives_what_label_writes(images, tmp_path):
    from orpose.lifting import Lifter, LifterConfig, save_lifter

    torch.manual_seed(0)
    lifter = save_lifter(Lifter(LifterConfig(hidden=16, blocks=1)), tmp_path / "lifter.pt")
    out = tmp_path / "labels.json"
    argv = ["label", str(images[0]), "--out", str(out), "--preset", "single"]
    assert main([*argv, "--lifter", str(lifter), "--no-progress"]) == 0
    labels = json.loads(out.read_text())["annotations"]
    teacher = orpose.load_teacher("single", lifter=lifter)
    found = teacher.annotations(images[0])
    assert found == [{k: v for k, v in a.items() if k not in ("id", "image_id")} for a in labels]
    assert found, "the teacher finds the people of a COCO person image"
    people = teacher(images[0])
    assert [p.score for p in people] == [a["score"] for a in labels]
    assert people[0].keypoints3d.shape == (17, 3)
    assert np.array_equal(people[0].keypoints.ravel(), labels[0]["keypoints_soft"])
