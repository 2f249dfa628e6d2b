"""MVOR: loading, multi-view grouping, projection onto the annotated 2D, COCO-17 conversion."""

import json

import numpy as np
import pytest

from orpose.cli import main
from orpose.data.coco import DatasetError, load_pose_dataset
from orpose.data.mvor import Camera, MvorDataset
from orpose.evaluation.predictions import load_predictions
from orpose.evaluation.report import evaluate_predictions


@pytest.fixture(scope="module")
def mvor(mvor_json):
    return MvorDataset(mvor_json)


def test_counts_and_grouping(mvor):
    assert len(mvor.images) == 2196
    assert len(mvor.multiview) == 732
    assert len(mvor.poses3d) == 1061
    np.testing.assert_allclose(mvor.cameras[0].to_camera1, np.eye(4))
    assert mvor.cameras[0].focal[0] == pytest.approx(538.597)


def test_projected_3d_lands_on_annotated_2d(mvor):
    per_camera = {0: [], 1: [], 2: []}
    for view in mvor.views():
        if view.pose3d is None:
            continue
        proj = mvor.project_pose(view.pose3d, view.camera_index)[:10]
        kps = view.keypoints
        both = (kps[:, 2] > 0) & (proj[:, 2] > 0)
        per_camera[view.camera_index] += np.linalg.norm(
            proj[both, :2] - kps[both, :2], axis=1
        ).tolist()
    for cam, errors in per_camera.items():
        assert len(errors) > 1000, cam
        assert np.median(errors) < 15, (cam, np.median(errors))


def test_camera_projection_by_hand():
    cam = Camera(focal=(500.0, 400.0), principal_point=(320.0, 240.0), to_camera1=np.eye(4))
    np.testing.assert_allclose(cam.project(np.array([100.0, -50.0, 1000.0])), [370.0, 220.0])
    moved = np.eye(4)
    moved[:3, 3] = [0, 0, -500]  # camera k sits 500 mm behind camera 1
    cam_k = Camera((500.0, 400.0), (320.0, 240.0), moved)
    np.testing.assert_allclose(cam_k.from_camera1(np.array([0.0, 0.0, 1000.0])), [0, 0, 1500])


def test_coco17_conversion_scores_itself_perfectly(mvor, tmp_path):
    out = tmp_path / "mvor17.json"
    assert main(["data", "mvor-to-coco", "--mvor", str(mvor.path), "--cameras", "2",
                 "--out", str(out)]) == 0  # fmt: skip
    gt = load_pose_dataset(out)
    assert all(img["cam_id"] == 2 for img in gt.images)
    with_3d = [a for a in gt.annotations if "keypoints3d" in a]
    assert len(with_3d) > 500
    results = []
    for a in gt.annotations:
        kps = np.asarray(a["keypoints"], float).reshape(17, 3)
        kps[:, 2] = 1
        r = {"image_id": a["image_id"], "bbox": a["bbox"], "score": 1.0,
             "keypoints": kps.reshape(-1).tolist()}  # fmt: skip
        if "keypoints3d" in a:
            r["keypoints3d"] = np.asarray(a["keypoints3d"]).reshape(17, 4)[:, :3].ravel().tolist()
        results.append(r)
    report = evaluate_predictions(gt, load_predictions(results, gt), 1)
    assert report.box["AP"] == pytest.approx(1.0)
    assert report.keypoints["AP"] == pytest.approx(1.0)
    assert report.mpjpe.mpjpe == pytest.approx(0.0, abs=1e-6)
    assert report.mpjpe.persons == len(with_3d) - report.mpjpe.skipped_no_root


def test_malformed_mvor_file_is_named(tmp_path, mvor_json):
    data = json.loads(mvor_json.read_text())
    data["annotations3D"][3]["keypoints3D"] = data["annotations3D"][3]["keypoints3D"][:40]
    path = tmp_path / "mvor_bad.json"
    path.write_text(json.dumps(data))
    with pytest.raises(
        DatasetError, match=r"mvor_bad.json: annotations3D id \S+: field 'keypoints3D'"
    ):
        MvorDataset(path)
