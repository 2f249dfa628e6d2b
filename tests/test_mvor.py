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
    assert len(gt.images) == 732  # every image of camera 2, with or without people
    with_3d = [a for a in gt.annotations if "keypoints3d" in a]
    assert len(with_3d) > 500
    box_only = [a for a in gt.annotations if a["num_keypoints"] == 0]
    assert box_only and all(a["person_id"] == -1 and not any(a["keypoints"]) for a in box_only)
    results = []
    for a in gt.annotations:
        r = {"image_id": a["image_id"], "bbox": a["bbox"], "score": 1.0}
        if a["num_keypoints"]:  # box-only people are found by box only
            kps = np.asarray(a["keypoints"], float).reshape(17, 3)
            kps[:, 2] = 1
            r["keypoints"] = kps.reshape(-1).tolist()
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


# -- mvor-to-coco: box-only people, selections, bad input --

MVOR_IMAGES_SUBDIR = ("data", "mvor", "images")


def tiny_mvor(tmp_path):
    """A hand-made MVOR file: one image, one person with 2D keypoints and one box-only person."""
    eye = [1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1]
    camera = {"focallength": [500.0, 500.0], "principalpoint": [320.0, 240.0]}
    keypoints10 = [
        [300, 100, 2], [300, 130, 2], [330, 140, 2], [270, 140, 2], [320, 260, 2],
        [280, 260, 2], [340, 190, 2], [260, 190, 1], [345, 240, 2], [255, 240, 2],
    ]  # fmt: skip
    data = {
        "images": [{"id": 10040000000, "file_name": "day4/cam3/color/000000.png", "width": 640,
                    "height": 480, "cam_id": 3, "day_id": 4}],
        "annotations": [
            {"id": 0, "image_id": 10040000000, "category_id": "1", "only_bbox": 0, "person_id": 0,
             "bbox": [240.0, 80.0, 120.0, 200.0],
             "keypoints": [float(v) for k in keypoints10 for v in k]},
            {"id": 1, "image_id": 10040000000, "category_id": "1", "only_bbox": 1,
             "person_id": -1, "bbox": [20.0, 300.0, 200.0, 150.0], "keypoints": [0] * 30},
        ],
        "annotations3D": [],
        "multiview_images": [],
        "cameras_info": {"camParams": {"intrinsics": [camera] * 3, "extrinsics": [eye] * 3}},
    }  # fmt: skip
    path = tmp_path / "tiny_mvor.json"
    path.write_text(json.dumps(data))
    return path


def coco_stats(gt_file, results, iou_type):
    import contextlib
    import io

    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(gt_file))
        ev = COCOeval(gt, gt.loadRes(results), iou_type)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return ev.stats


def test_box_only_people_are_kept_ignored_by_keypoint_ap_and_counted_by_box_ap(tmp_path):
    out = tmp_path / "tiny17.json"
    assert main(["data", "mvor-to-coco", "--mvor", str(tiny_mvor(tmp_path)),
                 "--out", str(out)]) == 0  # fmt: skip
    data = json.loads(out.read_text())
    person, box_only = data["annotations"]
    assert person["num_keypoints"] == 8 and len(person["keypoints_mvor"]) == 30
    assert box_only["num_keypoints"] == 0 and box_only["keypoints"] == [0.0] * 51
    assert box_only["bbox"] == [20.0, 300.0, 200.0, 150.0] and box_only["iscrowd"] == 0

    found = {
        "image_id": 10040000000,
        "category_id": 1,
        "bbox": person["bbox"],
        "score": 0.6,
        "keypoints": [v if i % 3 != 2 else 1.0 for i, v in enumerate(person["keypoints"])],
    }
    on_box_only = {"image_id": 10040000000, "category_id": 1, "bbox": box_only["bbox"],
                   "score": 0.9, "keypoints": [120.0, 375.0, 1.0] * 17}  # fmt: skip
    # keypoints: the box-only person is ignored, so the better-scored detection on it is
    # neither a hit nor a false positive ...
    assert coco_stats(out, [found, on_box_only], "keypoints")[0] == pytest.approx(1.0)
    # ... where dropping the person (the former conversion) made it a false positive
    dropped = tmp_path / "dropped.json"
    dropped.write_text(json.dumps({**data, "annotations": [person]}))
    assert coco_stats(dropped, [found, on_box_only], "keypoints")[0] < 0.6
    # boxes: the box-only person counts; missing it halves the recall
    assert coco_stats(out, [found, on_box_only], "bbox")[0] == pytest.approx(1.0)
    assert coco_stats(out, [found], "bbox")[8] == pytest.approx(0.5)  # AR@100


def test_days_cameras_and_images_select_the_61_shared_frames(shared, mvor_json, tmp_path):
    root = shared.joinpath(*MVOR_IMAGES_SUBDIR)
    if not root.is_dir():
        pytest.skip(f"{root} missing")
    out = tmp_path / "mvor_d4c3.json"
    assert main(["data", "mvor-to-coco", "--mvor", str(mvor_json), "--days", "4",
                 "--cameras", "3", "--images", str(root), "--out", str(out)]) == 0  # fmt: skip
    gt = load_pose_dataset(out, image_root=root, check_images=True)
    names = sorted(img["file_name"] for img in gt.images)
    assert names == [f"day4/cam3/color/{i:06d}.png" for i in range(61)]
    assert all(gt.image_path(img).is_file() for img in gt.images)
    assert len(gt.annotations) == 182
    assert sum(a["num_keypoints"] > 0 for a in gt.annotations) == 135
    assert sum("keypoints3d" in a for a in gt.annotations) == 107
    assert all(len(a["keypoints_mvor"]) == 30 for a in gt.annotations)

    out2 = tmp_path / "mvor_d4c12.json"
    assert main(["data", "mvor-to-coco", "--mvor", str(mvor_json), "--days", "4",
                 "--cameras", "1", "2", "--out", str(out2)]) == 0  # fmt: skip
    images = json.loads(out2.read_text())["images"]
    assert len(images) == 244
    assert {(img["day_id"], img["cam_id"]) for img in images} == {(4, 1), (4, 2)}


@pytest.mark.parametrize(
    ("options", "field"),
    [
        (["--days", "5"], "field 'day_id'"),
        (["--cameras", "4"], "field 'cam_id'"),
        (["--images", "EMPTY"], "field 'file_name'"),
    ],
)
def test_unknown_day_camera_or_missing_images_exit_2_in_one_line(tmp_path, capsys, options, field):
    mvor = tiny_mvor(tmp_path)
    (tmp_path / "empty").mkdir()
    options = [str(tmp_path / "empty") if o == "EMPTY" else o for o in options]
    code = main(["data", "mvor-to-coco", "--mvor", str(mvor), *options,
                 "--out", str(tmp_path / "o.json")])  # fmt: skip
    assert code == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in lines[0]
    assert lines[0].startswith("orpose data: error: ")
    assert str(mvor) in lines[0] and field in lines[0]
    assert not (tmp_path / "o.json").exists()
