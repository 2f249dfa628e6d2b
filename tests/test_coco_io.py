"""COCO pose files: round trip with the pseudo-label fields, and clear errors on bad input."""

import json

import numpy as np
import pytest

from conftest import tiny_dataset_json
from orpose.data.coco import (
    DatasetError,
    hard_from_soft,
    keypoints_array,
    load_pose_dataset,
)


def test_round_trip_keeps_every_field(tmp_path):
    path = tiny_dataset_json(tmp_path)
    ds = load_pose_dataset(path, check_images=True)
    out = ds.save(tmp_path / "copy" / "again.json")
    again = load_pose_dataset(out, image_root=ds.image_root, check_images=True)
    assert again.annotations == ds.annotations and again.images == ds.images
    soft = keypoints_array(again.annotations, "keypoints_soft")
    assert soft.shape == (2, 17, 3)
    assert keypoints_array(again.annotations, "keypoints3d_hard")[1, 16, 2] == 50
    assert ds.image_path(1) == tmp_path / "images" / "img1.png"
    assert [a["id"] for a in ds.annotations_of(2)] == [12]


def test_hard_set_drops_unconfident_keypoints():
    soft = np.array([[10.0, 20.0, 0.9], [30.0, 40.0, 0.2], [50.0, 60.0, 0.5]])
    hard = hard_from_soft(soft, threshold=0.5)
    np.testing.assert_array_equal(hard, [[10, 20, 2], [0, 0, 0], [50, 60, 2]])


def _corrupt(tmp_path, mutate):
    path = tiny_dataset_json(tmp_path)
    data = json.loads(path.read_text())
    mutate(data)
    path.write_text(json.dumps(data))
    return path


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda d: d["annotations"][0].pop("bbox"), "annotation id 11: field 'bbox': missing"),
        (lambda d: d["annotations"][1].update(keypoints=[1.0] * 48),
         "annotation id 12: field 'keypoints': expected 17 keypoints (51 numbers), got 16"),
        (lambda d: d["annotations"][0]["keypoints_soft"].__setitem__(4, "x"),
         "annotation id 11: field 'keypoints_soft': value #4 is 'x', not a finite number"),
        (lambda d: d["annotations"][0]["keypoints_soft"].__setitem__(2, 1.5),
         "annotation id 11: field 'keypoints_soft': confidences must lie in [0, 1]"),
        (lambda d: d["annotations"][0].update(keypoints3d_soft=[0.0] * 50),
         "annotation id 11: field 'keypoints3d_soft': expected 51 numbers, got 50"),
        (lambda d: d["annotations"][0].update(image_id=99),
         "annotation id 11: field 'image_id': no image with id 99"),
        (lambda d: d["images"][0].pop("width"), "field 'width': missing"),
        (lambda d: d.pop("annotations"), "field 'annotations': missing"),
    ],
)  # fmt: skip
def test_malformed_files_name_file_record_and_field(tmp_path, mutate, expected):
    path = _corrupt(tmp_path, mutate)
    with pytest.raises(DatasetError) as err:
        load_pose_dataset(path)
    assert str(path) in str(err.value)
    assert expected in str(err.value)


def test_missing_image_on_disk_is_reported(tmp_path):
    path = tiny_dataset_json(tmp_path, with_images=False)
    load_pose_dataset(path)  # fine without the check
    with pytest.raises(DatasetError, match=r"image id 1: field 'file_name': .*img1.png not found"):
        load_pose_dataset(path, check_images=True)


def test_invalid_json_names_the_file(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text("{not json")
    with pytest.raises(DatasetError, match=r"broken\.json: not valid JSON"):
        load_pose_dataset(path)


def test_shared_coco_subset_loads_with_images(val500):
    ds = load_pose_dataset(val500, check_images=True)
    assert len(ds.images) == 500
    with_kps = [a for a in ds.annotations if a.get("num_keypoints", 0) > 0 and not a["iscrowd"]]
    assert len(with_kps) == 1347
