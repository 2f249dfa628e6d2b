"""Privacy mode's path (upsampled or native), chosen from the model's own measurements."""

import json
import os

import cv2
import numpy as np
import pytest
import torch

from orpose.cli import main
from orpose.evaluation.lowres_paths import choose_path, record_comparison, record_path
from orpose.predictor import save_student
from orpose.student import build_student
from test_inference_predict import TINY


@pytest.fixture
def model(tmp_path):
    path = tmp_path / "last.pt"
    path.write_bytes(b"weights")
    return path


def test_native_only_when_within_one_point_on_two_sets(model, tmp_path):
    assert not choose_path(model, 12).native  # nothing measured
    record_comparison(model, tmp_path / "mvor.json", {8: (33.8, 33.5), 12: (24.4, 22.0)})
    choice = choose_path(model, 8)
    assert not choice.native and "1 evaluation set(s), 2 needed" in choice.reason
    record_comparison(model, tmp_path / "val500.json", {8: (28.0, 27.2), 12: (17.1, 16.9)})
    choice = choose_path(model, 8)  # -0.3 and -0.8: within a point on both
    assert (
        choice.native and "mvor.json -0.3" in choice.reason and "val500.json -0.8" in choice.reason
    )
    choice = choose_path(model, 12)  # -2.4 on the OR frames
    assert not choice.native and "mvor.json -2.4" in choice.reason
    assert not choose_path(model, 10).native  # a factor not measured
    # a set measured again replaces its entry; the file holds one entry per set
    record_comparison(model, tmp_path / "mvor.json", {12: (24.4, 24.0)})
    assert choose_path(model, 12).native and not choose_path(model, 8).native
    assert len(json.loads(record_path(model).read_text())["sets"]) == 2


def test_a_changed_model_is_measured_again(model, tmp_path):
    for name in ("a.json", "b.json"):
        record_comparison(model, tmp_path / name, {12: (20.0, 20.0)})
    assert choose_path(model, 12).native
    model.write_bytes(b"retrained weights")
    os.utime(model, ns=(1, 1))
    choice = choose_path(model, 12)
    assert not choice.native and "another state of the model" in choice.reason
    record_comparison(model, tmp_path / "a.json", {12: (20.0, 20.0)})  # old entries dropped
    assert list(json.loads(record_path(model).read_text())["sets"]) == [str(tmp_path / "a.json")]


def test_a_broken_record_is_one_line_error(model, tmp_path, capsys):
    record_path(model).write_text("{not json")
    code = main(
        ["predict", str(model), str(tmp_path), "--downscale", "12", "--out", str(tmp_path / "o")]
    )
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "last.pt.lowres_paths.json" in err[0]


def test_eval_records_and_predict_follows(tmp_path, capsys):
    torch.manual_seed(0)
    checkpoint = save_student(build_student(TINY), tmp_path / "last.pt")
    images = tmp_path / "images"
    images.mkdir()
    gts = []
    for k in range(2):  # two evaluation sets of one image with one person each
        cv2.imwrite(str(images / f"{k}.png"), np.full((96, 128, 3), 80 + 40 * k, np.uint8))
        kps = [[64, 20 + 3 * j, 2] for j in range(17)]
        gt = {
            "images": [{"id": 1, "file_name": f"{k}.png", "width": 128, "height": 96}],
            "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [40, 10, 48, 80],
                             "area": 3840, "iscrowd": 0, "num_keypoints": 17,
                             "keypoints": [v for kp in kps for v in kp]}],
            "categories": [{"id": 1, "name": "person"}],
        }  # fmt: skip
        gts.append(tmp_path / f"set{k}.json")
        gts[-1].write_text(json.dumps(gt))
    for k, gt in enumerate(gts):
        argv = ["eval", "--gt", str(gt), "--images", str(images), "--model", str(checkpoint)]
        argv += ["--scales", "1", "4", "--compare-lowres-paths", "--device", "cpu"]
        assert main([*argv, "--out", str(tmp_path / f"eval{k}"), "--no-plot"]) == 0
        assert (tmp_path / f"eval{k}" / "pred_4x_native.json").is_file()
        assert not (tmp_path / f"eval{k}" / "pred_1x_native.json").exists()
    record = json.loads(record_path(checkpoint).read_text())
    assert sorted(record["sets"]) == sorted(str(g.resolve()) for g in gts)
    capsys.readouterr()
    out = tmp_path / "pred"
    argv = ["predict", str(checkpoint), str(images), "--downscale", "4", "--device", "cpu"]
    assert main([*argv, "--out", str(out), "--no-progress"]) == 0
    said = capsys.readouterr().out
    expected = choose_path(checkpoint, 4).native
    assert ("4x: native path" in said) == expected and ("4x: upsampled" in said) != expected
    settings = json.loads((out / "predictions.settings.json").read_text())
    assert settings["native_lowres"] == expected
    assert main([*argv, "--out", str(tmp_path / "x"), "--native-lowres", "--lowres-path",
                 "upsampled"]) == 2  # fmt: skip
