"""The demo report links only pictures it has, says why any other is missing, counts the
plausible people per operating-room frame, and opens with the MVOR operating-room table."""

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
        mvor=True,
        mvor_frames=None,
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
        "teacher (single): eval/mvor_teacher/metrics.csv was not written",
        "student (10 iterations): eval/mvor_student/metrics.csv was not written",
        "No operating-room test frames shown: data/mvor_test.json was not written",
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


def write_metrics(path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True)
    keys = list(rows[0])
    path.write_text(",".join(keys) + "\n" + "".join(
        ",".join(str(r[k]) for k in keys) + "\n" for r in rows))  # fmt: skip


def mvor_row(scale, box, kpt, pck, mpjpe, official, matched="nan", people="nan") -> dict:
    return {"scale": scale, "box_ap": box, "keypoint_ap": kpt, "keypoint_apl": kpt,
            "mpjpe_mm": mpjpe, "mpjpe_official_mm": official, "mvor_pck": pck,
            "mpjpe_matched_mm": matched, "mpjpe_matched_persons": people}  # fmt: skip


def test_the_report_opens_with_the_mvor_table_beside_the_papers_rows(tmp_path):
    write_metrics(tmp_path / "eval/mvor_teacher/metrics.csv",
                  [mvor_row("1x", 45.12, 44.91, 61.04, 175.3, 160.2),
                   mvor_row("12x", 24.0, 15.7, 30.0, 240.4, "nan")])  # fmt: skip
    write_metrics(tmp_path / "eval/mvor_student/metrics.csv",
                  [mvor_row("1x", 44.6, 44.8, 62.5, 182.0, 170.0, 158.4, 82),
                   mvor_row("12x", 23.9, 21.7, 35.26, 219.0, 200.0, 169.6, 71)])  # fmt: skip
    report = write_demo_report(demo_options(tmp_path), [], [], 0.0).read_text()
    title = "## Operating room (MVOR, 61 frames of day 4, camera 3)"
    assert title in report
    assert report.index(title) < report.index("## Teacher and student at each downscale factor")
    table = report[report.index("| model | 1x | 12x |") :].split("\n\n")[0].splitlines()
    assert table[2:] == [
        "| teacher (single) | 45.1 / 44.9 / 61.0 / 175 (160) / - [-] "
        "| 24.0 / 15.7 / 30.0 / 240 (-) / - [-] |",
        "| student (10 iterations) | 44.6 / 44.8 / 62.5 / 182 (170) / 158 [82] "
        "| 23.9 / 21.7 / 35.3 / 219 (200) / 170 [71] |",
        "| paper, ORPose_all (MVOR+) | 50.6 / 55.8 / - / - (134) / - "
        "| 47.5 / 49.5 / - / - (138) / - |",
        "| paper, teacher (MVOR+) | 53.8 / 57.8 / - / - (135) / - |  |",
    ]
    assert "Not measured" not in report


def test_no_mvor_says_so_instead_of_a_table(tmp_path):
    report = write_demo_report(
        SimpleNamespace(**{**vars(demo_options(tmp_path)), "mvor": False}), [], [], 0.0
    ).read_text()
    assert report.count("*(Not run: the demo ran with --no-mvor.)*") == 2
    assert "| paper, ORPose_all (MVOR+)" not in report


def test_mvor_frames_are_drawn_with_the_student_at_1x_and_12x_and_one_in_3d(tmp_path):
    root = tmp_path / "mvor_images"
    name = "day4/cam3/color/000000.png"
    (root / name).parent.mkdir(parents=True)
    cv2.imwrite(str(root / name), np.full((480, 640, 3), 90, np.uint8))
    gt3d = np.zeros((17, 4))
    gt3d[5:13, :3] = np.random.default_rng(1).normal(0, 200, (8, 3)) + [0, 0, 3000]
    gt3d[5:13, 3] = 2  # the upper body and the hips annotated, as in MVOR
    kps = person_keypoints(300, 100, scale=1.5)
    truth = [{"id": 1, "image_id": 7, "category_id": 1, "iscrowd": 0, "bbox": [260, 90, 80, 260],
              "area": 20800.0, "num_keypoints": 17, "keypoints": kps.ravel().tolist(),
              "keypoints3d": gt3d.ravel().tolist()},
             {"id": 2, "image_id": 7, "category_id": 1, "iscrowd": 0, "bbox": [10, 10, 50, 90],
              "area": 4500.0, "num_keypoints": 0, "keypoints": [0.0] * 51}]  # fmt: skip
    gt = {"info": {"mvor_selection": {"image_root": str(root)}},
          "images": [{"id": 7, "file_name": name, "width": 640, "height": 480}],
          "annotations": truth, "categories": [{"id": 1, "name": "person"}]}  # fmt: skip
    (tmp_path / "data").mkdir()
    (tmp_path / "data/mvor_test.json").write_text(json.dumps(gt))
    student = tmp_path / "eval/mvor_student"
    student.mkdir(parents=True)
    # a low score: the 3D panel shows the prediction MPJPE matches, whatever its score
    (student / "pred_1x.json").write_text(json.dumps([{**person(0.2), "image_id": 7}]))
    report = write_demo_report(demo_options(tmp_path), [], [], 0.0).read_text()
    assert "(MVOR, 1 frames of day 4, camera 3)" in report
    assert "; 2 annotated people, 1 with 2D keypoints, 1 with 3D)" in report
    for picture in ("000000_gt.jpg", "000000_1x.jpg", "000000_3d_gt.png",
                    "000000_3d_student_1x.png"):  # fmt: skip
        assert f"report/mvor/{picture}" in report
    no_12x = "student 12x, frame 000000: not shown: eval/mvor_student/pred_12x.json was not"
    assert no_12x in report
    assert all((tmp_path / p).is_file() for p in linked_pictures(report))
