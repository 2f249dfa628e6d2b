"""MVOR's PCK@0.2 (CAMMA-public/MVOR lib/eval_pck_2dpose.py) on hand-computed cases, and its
place in `orpose eval`'s table, metrics.json and metrics.csv."""

import csv
import json

import numpy as np
import pytest

from orpose.cli import main
from orpose.data.coco import PoseDataset
from orpose.evaluation.pck import compute_mvor_pck, prediction_joints
from orpose.evaluation.report import evaluate_predictions, format_table, save_reports
from orpose.skeleton import KEYPOINT_INDEX, MVOR_KEYPOINTS, mvor_to_coco

# MVOR order: head, neck, l/r shoulder, l/r hip, l/r elbow, l/r wrist; right wrist unannotated.
# Box of the annotated joints: x 70-135, y 100-200 -> size max(66, 101) = 101 px, so a joint hits
# within 0.2 * 101 = 20.2 px.
GT10 = np.array([
    [100, 100, 2], [100, 120, 2], [120, 130, 2], [80, 130, 2], [115, 200, 2],
    [85, 200, 2], [130, 160, 2], [70, 160, 2], [135, 190, 2], [0, 0, 0],
], dtype=float)  # fmt: skip


def coco17(**joints) -> list[float]:
    """COCO-17 result keypoints, (0, 0, 0) for the joints not given (absent, MVOR's rule)."""
    k = np.zeros((17, 3))
    for name, (x, y) in joints.items():
        k[KEYPOINT_INDEX[name]] = (x, y, 0.8)
    return k.reshape(-1).tolist()


# head from the eyes: (100, 98), 2 px off; neck from the shoulders: (100, 130), 10 px off;
# left hip 30 px off (miss), right elbow 21 px off (miss), right wrist unannotated (miss).
GOOD = coco17(
    left_eye=(95, 98), right_eye=(105, 98), left_shoulder=(120, 130), right_shoulder=(80, 130),
    left_hip=(115, 230), right_hip=(85, 200), left_elbow=(130, 160), right_elbow=(70, 181),
    left_wrist=(135, 190), right_wrist=(65, 190),
)  # fmt: skip
HITS = dict(zip(MVOR_KEYPOINTS, (1, 1, 1, 1, 0, 1, 1, 0, 1, 0), strict=True))


def gt_dataset(extra_people: int = 0) -> PoseDataset:
    images = [{"id": i, "file_name": f"{i}.png", "width": 640, "height": 480} for i in (1, 2)]
    people = [(1, GT10), (1, np.zeros((10, 3)))]  # the second: box-only, not scored
    people += [(2, GT10)] * extra_people
    annotations = []
    for n, (image_id, k10) in enumerate(people, start=1):
        k17 = mvor_to_coco(k10)
        annotations.append({
            "id": n, "image_id": image_id, "category_id": 1, "iscrowd": 0,
            "bbox": [60.0, 90.0, 90.0, 120.0], "area": 10800.0,
            "keypoints": k17.reshape(-1).tolist(), "num_keypoints": int((k17[:, 2] > 0).sum()),
            "keypoints_mvor": k10.reshape(-1).tolist(),
        })  # fmt: skip
    return PoseDataset(images, annotations)


def result(keypoints: list[float], score: float, image_id: int = 1) -> dict:
    return {"image_id": image_id, "category_id": 1, "bbox": [60.0, 90.0, 90.0, 150.0],
            "score": score, "keypoints": keypoints}  # fmt: skip


RESULTS = [
    result(GOOD, 0.7),
    # better scored but far from the person (covers none of its box): not a candidate
    result(coco17(left_shoulder=(400, 400), right_shoulder=(450, 420)), 0.95),
    # covers the person exactly but scores lower than GOOD: not taken
    result(coco17(left_eye=(95, 100), right_eye=(105, 100), left_wrist=(135, 190)), 0.5),
]


def test_pck_by_hand():
    pck = compute_mvor_pck(gt_dataset(), RESULTS)
    assert pck.persons == 1 and pck.matched == 1
    assert pck.per_joint == pytest.approx({n: 100.0 * HITS[n] for n in MVOR_KEYPOINTS})
    assert pck.mean == pytest.approx(70.0)
    assert pck.groups == pytest.approx(
        {"head": 100.0, "shoulder": 100.0, "hip": 50.0, "elbow": 50.0, "wrist": 50.0}
    )
    # the unannotated right wrist counts as a miss in MVOR's figure, not over annotated joints
    assert np.isnan(pck.per_joint_annotated["right_wrist"])
    assert pck.mean_annotated == pytest.approx(700 / 9)


def test_a_person_without_a_candidate_scores_zero():
    pck = compute_mvor_pck(gt_dataset(extra_people=1), RESULTS)  # image 2 has no prediction
    assert pck.persons == 2 and pck.matched == 1
    assert pck.mean == pytest.approx(35.0)


def test_threshold_is_relative_to_the_person_size():
    # at 0.3 (30.3 px) the left hip (30 px) and right elbow (21 px) hit too
    assert compute_mvor_pck(gt_dataset(), RESULTS, threshold=0.3).mean == pytest.approx(90.0)


def test_head_and_neck_of_a_coco_prediction():
    joints = prediction_joints(coco17(left_ear=(10, 20), right_ear=(30, 20), nose=(0, 0),
                                      right_shoulder=(50, 60)))  # fmt: skip
    np.testing.assert_allclose(joints[0], [20, 20])  # no eyes: mid-ears
    np.testing.assert_allclose(joints[1], [50, 60])  # one shoulder: it
    assert np.isnan(joints[2]).all()  # left shoulder absent
    joints = prediction_joints(coco17(nose=(7, 8), left_eye=(5, 5)))
    np.testing.assert_allclose(joints[0], [7, 8])  # one eye only: the nose comes first


def test_eval_reports_pck_when_the_ground_truth_has_mvor_joints(tmp_path):
    report = evaluate_predictions(gt_dataset(), RESULTS, 1)
    assert report.pck.mean == pytest.approx(70.0)
    table = format_table([report])
    assert "PCK@0.2" in table.splitlines()[0] and "70.0" in table.splitlines()[2]
    json_path, csv_path = save_reports([report], tmp_path)
    assert json.loads(json_path.read_text())[0]["mvor_pck"]["mean"] == pytest.approx(70.0)
    row = next(csv.DictReader(csv_path.open()))
    assert float(row["mvor_pck"]) == pytest.approx(70.0)

    plain = gt_dataset()
    for ann in plain.annotations:
        del ann["keypoints_mvor"]
    report = evaluate_predictions(plain, RESULTS, 1)
    assert report.pck is None and "PCK" not in format_table([report])
    assert "mvor_pck" not in report.row()


def test_eval_cli_prints_pck_groups(tmp_path, capsys):
    gt = tmp_path / "gt.json"
    gt.write_text(json.dumps(gt_dataset().to_json()))
    pred = tmp_path / "pred.json"
    pred.write_text(json.dumps(RESULTS))
    assert main(["eval", "--gt", str(gt), "--pred", str(pred), "--out", str(tmp_path / "ev")]) == 0
    out = capsys.readouterr().out
    assert "MVOR PCK@0.2 (%): head, shoulder, hip, elbow, wrist, mean" in out
    assert "1x: 100.0, 100.0, 50.0, 50.0, 50.0, 70.0 (1 of 1 people matched)" in out
    assert "mvor_pck" in (tmp_path / "ev" / "metrics.csv").read_text()
