"""``orpose bench --accuracy``: each row scored as it was timed, against pycocotools; the
teacher's people as results; clear errors on bad set specs."""

import json

import numpy as np
import pytest
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from orpose.data.coco import load_pose_dataset
from orpose.errors import UserError
from orpose.workflow.bench_accuracy import (
    AccuracySet,
    format_accuracy,
    lifting_camera,
    parse_accuracy_set,
    score_row,
    teacher_predictor,
)
from test_evaluation import gt_as_results, perturbed


class Oracle:
    """Returns the (perturbed) ground truth of the images in the order ``orpose eval`` visits
    them, in the pixels of the image it is given (a shrunk one on the native path)."""

    def __init__(self, gt, results):
        self.gt, self.results, self.calls, self.sizes = gt, results, 0, []

    def __call__(self, image: np.ndarray) -> list[dict]:
        img = self.gt.images[self.calls]
        self.calls += 1
        self.sizes.append(image.shape[1::-1])
        sx, sy = image.shape[1] / img["width"], image.shape[0] / img["height"]
        out = []
        for r in self.results:
            if r["image_id"] != img["id"]:
                continue
            r = {k: v for k, v in r.items() if k != "image_id"}
            x, y, w, h = r["bbox"]
            r["bbox"] = [x * sx, y * sy, w * sx, h * sy]
            # keypoints as pixel centres, the inverse of orpose.data.lowres.results_to_larger
            kps = np.asarray(r["keypoints"], dtype=float).reshape(17, 3)
            kps[:, 0] = (kps[:, 0] + 0.5) * sx - 0.5
            kps[:, 1] = (kps[:, 1] + 0.5) * sy - 0.5
            r["keypoints"] = kps.reshape(-1).tolist()
            out.append(r)
        return out


def _pycocotools_ap(gt_path, results, image_ids, iou_type, tmp_path):
    coco = COCO(str(gt_path))
    kept = [r for r in results if r["image_id"] in image_ids and iou_type in r]
    (tmp_path / f"{iou_type}.json").write_text(json.dumps(kept))
    ev = COCOeval(coco, coco.loadRes(str(tmp_path / f"{iou_type}.json")), iou_type)
    ev.params.imgIds = sorted(image_ids)
    ev.evaluate()
    ev.accumulate()
    ev.summarize()
    return 100 * ev.stats[0]


@pytest.mark.parametrize("scale,native", [(1, False), (12, False), (12, True)])
def test_a_row_is_scored_as_pycocotools_scores_its_results(val500, tmp_path, scale, native):
    gt = load_pose_dataset(val500)
    # people with keypoints (a student's results always have them)
    results = [r for r in perturbed(gt_as_results(gt), seed=1) if "keypoints" in r]
    count = 3
    first = [img["id"] for img in gt.images[:count]]
    oracle = Oracle(gt, results)
    scores = score_row(oracle, AccuracySet("val500", val500), gt, scale, native, count)
    assert oracle.calls == count  # only the first --accuracy-count images
    if native:  # the native path gets the small frame, and its results go back to full size
        assert all(max(size) <= 60 for size in oracle.sizes)
    else:  # the paper's protocol: the frame at its own size (degraded and upsampled back)
        sizes = [(img["width"], img["height"]) for img in gt.images[:count]]
        assert [tuple(s) for s in oracle.sizes] == sizes
    # the results went back to the images' pixels; AP as pycocotools gives it on those images
    box = _pycocotools_ap(val500, results, set(first), "bbox", tmp_path)
    keypoints = _pycocotools_ap(val500, results, set(first), "keypoints", tmp_path)
    assert scores["box_ap"] == pytest.approx(box, abs=1e-6)
    assert scores["keypoint_ap"] == pytest.approx(keypoints, abs=1e-6)
    assert 0 < scores["keypoint_ap"] < 100  # the perturbation costs AP: not a trivial 100
    assert scores["mpjpe_mm"] is None  # no 3D on either side
    assert format_accuracy(scores).count("/") == 2 and format_accuracy(scores).endswith("-")


class FakeTeacher:
    class config:  # stands for a TeacherConfig
        keypoint_threshold = 0.5

    def label(self, image):
        from orpose.teacher.teacher import Person

        kps = np.zeros((17, 3))
        kps[:, 0], kps[:, 1], kps[:, 2] = np.arange(17) + 10, 20.0, np.linspace(0, 1.4, 17)
        return [Person(np.array([5.0, 6.0, 45.0, 86.0]), 0.8, 0.9, kps)]


class FakeLifter:
    def lift_numpy(self, keypoints, threshold=0.0):
        return np.ones((len(keypoints), 17, 3)) * 7.0


def test_teacher_people_become_results_with_their_soft_keypoints_and_lift():
    (result,) = teacher_predictor(FakeTeacher())(np.zeros((100, 100, 3), np.uint8))
    assert result["bbox"] == [5.0, 6.0, 40.0, 80.0] and result["score"] == 0.8
    kps = np.asarray(result["keypoints"]).reshape(17, 3)
    assert kps[0, 0] == 10 and kps[:, 2].max() == 1.0  # confidences clipped to [0, 1]
    assert "keypoints3d" not in result  # no lifter: no 3D, no MPJPE
    (lifted,) = teacher_predictor(FakeTeacher(), FakeLifter())(np.zeros((100, 100, 3), np.uint8))
    assert lifted["keypoints3d"] == [7.0] * 51


def test_a_student_lifts_with_the_sets_camera_only_during_its_pass(mvor_json):
    class Student:
        camera = None

    student = Student()
    with lifting_camera(student, f"{mvor_json}:3"):
        assert student.camera is not None and student.camera.fx > 0
    assert student.camera is None
    teacher = object()  # no camera attribute: left alone
    with lifting_camera(teacher, f"{mvor_json}:3"):
        pass


def test_bad_accuracy_sets_are_one_line_errors(tmp_path):
    assert parse_accuracy_set("mvor") == "mvor" and parse_accuracy_set("val500") == "val500"
    with pytest.raises(UserError, match="no such COCO file"):
        parse_accuracy_set(str(tmp_path / "missing.json"))
    gt = tmp_path / "gt.json"
    gt.write_text("{}")
    with pytest.raises(UserError, match="no such COCO file"):  # an unknown option: the path's
        parse_accuracy_set(f"{gt},size=3")
    with pytest.raises(UserError, match=r"images=.*no such folder"):
        parse_accuracy_set(f"{gt},images={tmp_path / 'nowhere'}")
    spec = parse_accuracy_set(f"{gt},images={tmp_path},camera=1,2,3,4")
    assert spec == AccuracySet("gt", gt, tmp_path, "1,2,3,4")  # camera=fx,fy,cx,cy


def test_named_sets_are_the_shared_test_sets_and_names_are_unique(shared, tmp_path):
    from orpose.workflow.bench_accuracy import load_sets, resolve_sets

    ((mvor, gt),) = load_sets(resolve_sets(["mvor"], tmp_path))
    assert mvor.name == "mvor" and mvor.camera.endswith("camma_mvor_2018.json:3")
    assert len(gt.images) == 61  # the OR test frames of the shared folder, all present
    assert sum(1 for a in gt.annotations if not a.get("iscrowd", 0)) == 182
    with pytest.raises(UserError, match="two sets are named 'mvor'"):
        resolve_sets(["mvor", AccuracySet("mvor", mvor.gt)], tmp_path)


def test_a_bad_camera_stops_the_sets_before_any_timing(val500, tmp_path):
    from orpose.errors import OrposeError
    from orpose.workflow.bench_accuracy import load_sets

    camera = tmp_path / "camera.json"
    camera.write_text('{"fx": 500, "fy": 500, "cx": 320}')
    with pytest.raises(OrposeError, match="cy"):
        load_sets([AccuracySet("val500", val500, None, str(camera))])


def test_eval_predictions_made_with_other_settings_are_not_resumed(val500, tmp_path):
    """``orpose eval --model`` resumes from its journals only when they were made with the same
    settings: after a run without --flip, the same folder with --flip is refused in one line
    (it would have scored the earlier predictions)."""
    from orpose.evaluation.cli import model_reports

    gt = load_pose_dataset(val500)
    results = [r for r in gt_as_results(gt) if "keypoints" in r]
    plain = {"model": "m.pt", "flip": False}
    (first,), _ = model_reports(Oracle(gt, results), gt, [1], tmp_path, limit=2, settings=plain)
    assert first.row()["keypoint_ap"] == pytest.approx(100.0)
    (again,), _ = model_reports(Oracle(gt, []), gt, [1], tmp_path, limit=2, settings=plain)
    assert again.row()["keypoint_ap"] == pytest.approx(100.0)  # resumed: nothing predicted again
    with pytest.raises(UserError, match=r"other settings \(changed: flip\)"):
        model_reports(Oracle(gt, []), gt, [1], tmp_path, limit=2, settings={**plain, "flip": True})
