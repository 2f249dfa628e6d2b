"""The demo report links only pictures it has, says why any other is missing, and counts the
plausible people per operating-room frame."""

import json
import re
from types import SimpleNamespace

import cv2
import numpy as np

from conftest import person_keypoints
from orpose.workflow.demo_report import write_demo_report


def demo_options(out):
    return SimpleNamespace(
        out=out,
        teacher_preset="single",
        iterations=10,
        scales=[1, 12],
        val_images=5,
        unlabelled_images=10,
        pool_images=5,
        video_step=10,
    )


def linked_pictures(report: str) -> list[str]:
    return re.findall(r'(?:src="|\]\()([^")]+\.(?:png|jpg))', report)


def test_a_demo_whose_steps_wrote_nothing_gets_a_report_that_says_why(tmp_path):
    report = write_demo_report(demo_options(tmp_path), [], [], 0.0).read_text()
    assert linked_pictures(report) == []
    for why in (
        "AP versus downscale factor: not shown: eval/teacher/metrics.csv was not written",
        "student loss curves: not shown: student/loss_curves.png was not written",
        "pseudo labels: not shown: report/pseudo_labels has no picture",
        "No labelled images shown: data/val.json was not written",
        "No operating-room frames shown: or_predictions/images.json was not written",
        'low-resolution path" is the same student given the small image as it is',
        "eval/student_native/metrics.csv was not written",
    ):
        assert why in report


def person(score: float, with_3d: bool = True) -> dict:
    kps = person_keypoints(300, 100, scale=1.5)
    kps[:, 2] = 0.9
    r = {"bbox": [260, 90, 80, 260], "score": score, "keypoints": kps.ravel().tolist()}
    if with_3d:
        r["keypoints3d"] = np.random.default_rng(0).normal(0, 300, 51).tolist()
    return r


def test_or_frames_count_plausible_people_and_explain_a_missing_3d_panel(tmp_path):
    pred = tmp_path / "or_predictions"
    pred.mkdir()
    images, results = [], []
    for i, people in enumerate([[0.8, 0.35, 0.1], [0.4, 0.05]], start=1):
        frame = tmp_path / f"or{i}.png"
        cv2.imwrite(str(frame), np.full((40, 53, 3), 90, np.uint8))
        images.append({"id": i, "file_name": str(frame), "width": 636, "height": 480,
                       "lowres_width": 53, "lowres_height": 40})  # fmt: skip
        results += [{**person(s), "image_id": i} for s in people]
    (pred / "images.json").write_text(json.dumps({"info": {}, "images": images}))
    (pred / "results.json").write_text(json.dumps(results))
    report = write_demo_report(demo_options(tmp_path), [], [], 0.0).read_text()
    # 0.8 and 0.35 in frame 1, 0.4 in frame 2 score >= 0.3: 1.5 of the 2.5 written per frame
    assert "Plausible people per frame (score >= 0.3): student 1.5 (of 2.5 written)" in report
    assert "teacher, frame or1: not shown: teacher/or12x.json was not written" in report
    assert "3D or2: not shown: no person of this frame scores >= 0.5" in report
    assert "report/or12x/or1_3d.png" in report  # frame 1 has a person >= 0.5: drawn
    assert all((tmp_path / p).is_file() for p in linked_pictures(report))
