"""Pseudo-label records: hard set threshold, 3D sets, journal repair, file assembly."""

from __future__ import annotations

import json

import numpy as np
import pytest

from orpose.data.coco import load_pose_dataset
from orpose.teacher.journal import Journal
from orpose.teacher.lift3d import add_3d
from orpose.teacher.teacher import Person, person_scores
from orpose.teacher.writer import assemble, person_annotation


def make_person(confidences: list[float] | None = None) -> Person:
    conf = np.array(confidences if confidences is not None else np.linspace(0.05, 0.95, 17))
    xy = np.stack([np.arange(17) * 3.0 + 10, np.arange(17) * 2.0 + 20], axis=1)
    return Person(np.array([5.0, 8.0, 65.0, 70.0]), 0.8, 0.9, np.column_stack([xy, conf]))


@pytest.mark.parametrize("threshold", [0.3, 0.5, 0.8])
def test_hard_set_follows_the_threshold(threshold):
    person = make_person()
    ann = person_annotation(person, threshold)
    hard = np.array(ann["keypoints"]).reshape(17, 3)
    soft = np.array(ann["keypoints_soft"]).reshape(17, 3)
    confident = person.keypoints[:, 2] >= threshold
    assert (hard[:, 2] == np.where(confident, 2, 0)).all()
    np.testing.assert_allclose(hard[confident, :2], person.keypoints[confident, :2], atol=0.01)
    assert (hard[~confident, :2] == 0).all()
    assert ann["num_keypoints"] == int(confident.sum())
    np.testing.assert_allclose(soft, person.keypoints, atol=1e-3)  # soft set keeps everything
    assert ann["bbox"] == [5.0, 8.0, 60.0, 62.0] and ann["area"] == pytest.approx(3720.0)
    assert ann["score"] == 0.8 and ann["category_id"] == 1 and ann["iscrowd"] == 0


def test_person_score_rescoring():
    kps = make_person([0.1] * 8 + [0.6] * 9).keypoints[None]
    np.testing.assert_allclose(person_scores(np.array([0.5]), kps, "det"), [0.5])
    np.testing.assert_allclose(person_scores(np.array([0.5]), kps, "det_x_pose"), [0.3])


class FakeLifter:
    """Records what it was asked to lift; returns the 2D points with z = joint index."""

    def __init__(self) -> None:
        self.calls: list[tuple[np.ndarray, float]] = []

    def lift_numpy(self, keypoints: np.ndarray, threshold: float = 0.0) -> np.ndarray:
        self.calls.append((keypoints.copy(), threshold))
        given = keypoints[..., 2] > threshold
        out = np.zeros_like(keypoints)
        out[..., :2] = np.where(given[..., None], keypoints[..., :2], 0)
        out[..., 2] = np.arange(17)
        return out


def test_3d_sets_lift_soft_and_hard_inputs(tmp_path):
    people = [make_person(), make_person([0.9] * 17)]
    lifter = FakeLifter()
    add_3d(people, lifter, keypoint_threshold=0.5)
    (soft_in, soft_thr), (hard_in, hard_thr) = lifter.calls
    assert soft_thr == 0.0 and np.allclose(soft_in, np.stack([p.keypoints for p in people]))
    # The hard input carries only the confident joints (confidence 1), the others masked out.
    assert hard_thr == 0.5
    confident = people[0].keypoints[:, 2] >= 0.5
    assert (hard_in[0, confident, 2] == 1).all() and (hard_in[0, ~confident, 2] == 0).all()
    ann = person_annotation(people[0], 0.5)
    soft3d = np.array(ann["keypoints3d_soft"]).reshape(17, 3)
    hard3d = np.array(ann["keypoints3d_hard"]).reshape(17, 3)
    np.testing.assert_allclose(soft3d[:, :2], people[0].keypoints[:, :2], atol=0.05)
    assert (hard3d[~confident, :2] == 0).all()
    # A file holding 3D sets still loads with orpose's validator.
    header = {"inputs": []}
    record = {
        "key": "a",
        "id": 1,
        "source": "a",
        "frame_index": None,
        "file": str(tmp_path / "a.jpg"),
        "width": 100,
        "height": 100,
        "annotations": [ann],
    }
    out = tmp_path / "labels.json"
    out.write_text(json.dumps(assemble(header, [record], out)))
    data = load_pose_dataset(out)
    assert "keypoints3d_hard" in data.annotations[0]


def test_journal_cuts_a_torn_last_line(tmp_path):
    journal = Journal(tmp_path / "j.jsonl")
    journal.start({"inputs": ["x"]})
    with journal:
        journal.append({"key": "a", "id": 1})
        journal.append({"key": "b", "id": 2})
    with open(journal.path, "a") as f:
        f.write('{"key": "c", "id"')  # killed mid-write
    header, records = Journal(journal.path).read()
    assert header == {"inputs": ["x"]}
    assert [r["key"] for r in records] == ["a", "b"]
    # The torn bytes are gone, so the next append starts on a clean line.
    with Journal(journal.path) as again:
        again.append({"key": "c", "id": 3})
    assert [r["key"] for r in Journal(journal.path).read()[1]] == ["a", "b", "c"]


def test_assemble_orders_dedupes_and_lists_skips(tmp_path):
    out = tmp_path / "labels.json"
    frame = tmp_path / "labels_frames" / "v" / "000004.jpg"
    ann = person_annotation(make_person(), 0.5)
    records = [
        {
            "key": "v#4",
            "id": 20000004,
            "source": "v",
            "frame_index": 4,
            "file": str(frame),
            "width": 10,
            "height": 10,
            "annotations": [ann, ann],
        },
        {
            "key": "img",
            "id": 10000000,
            "source": "img",
            "frame_index": None,
            "file": str(tmp_path / "img.png"),
            "width": 10,
            "height": 10,
            "annotations": [ann],
        },
        {"key": "bad", "id": 10000001, "source": "bad", "error": "corrupt"},
        {
            "key": "img",
            "id": 10000000,
            "source": "img",
            "frame_index": None,
            "file": str(tmp_path / "img.png"),
            "width": 10,
            "height": 10,
            "annotations": [ann],
        },
    ]
    payload = assemble({"inputs": []}, records, out)
    assert [i["id"] for i in payload["images"]] == [10000000, 20000004]
    assert [a["id"] for a in payload["annotations"]] == [1, 2, 3]
    assert [a["image_id"] for a in payload["annotations"]] == [10000000, 20000004, 20000004]
    assert payload["images"][1]["file_name"] == "labels_frames/v/000004.jpg"
    assert payload["images"][0]["file_name"] == str(tmp_path / "img.png")
    assert payload["info"]["skipped"] == [
        {"key": "bad", "id": 10000001, "source": "bad", "error": "corrupt"}
    ]
