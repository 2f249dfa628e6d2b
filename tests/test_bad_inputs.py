"""A catalogue of bad inputs through the CLI verbs: exit code 2, one line naming the file and the
field, no traceback, and finished output files left as they were (issue #12).

Every case builds its own tiny input in ``tmp_path``: none needs the shared data.
"""

from __future__ import annotations

import copy
import json
import logging
import math
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from conftest import person_keypoints, tiny_dataset_json
from orpose.cli import main
from orpose.data.coco import DatasetError, load_pose_dataset
from orpose.data.lowres import LowResSchedule
from orpose.data.sources import image_file_problem
from orpose.evaluation.coco_ap import evaluate_ap
from orpose.evaluation.predictions import load_predictions
from orpose.teacher.config import TeacherConfig
from orpose.teacher.teacher import Person
from orpose.training.dataset import PseudoLabelDataset, UnreadableImageError

# -- helpers --


def jpeg_bytes(width: int = 64, height: int = 48, seed: int = 0) -> bytes:
    image = np.random.default_rng(seed).integers(0, 255, (height, width, 3), np.uint8)
    ok, data = cv2.imencode(".jpg", image)
    assert ok
    return data.tobytes()


BAD_IMAGES = {  # name -> bytes of a file that must not pass as an image
    "text.jpg": b"this is a text file, not a JPEG\n",
    "empty.jpg": b"",
    "truncated.jpg": jpeg_bytes()[: len(jpeg_bytes()) // 2],
}
BAD_REASONS = {"text.jpg": "not an image", "empty.jpg": "empty", "truncated.jpg": "truncated"}


def make_coco(root: Path, files: dict[str, bytes], **image_fields) -> Path:
    """A COCO file ``gt.json`` with ``images/`` beside it: one image (and one person) per file."""
    (root / "images").mkdir(parents=True, exist_ok=True)
    images, annotations = [], []
    for i, (name, data) in enumerate(files.items(), start=1):
        (root / "images" / name).write_bytes(data)
        images.append({"id": i, "file_name": name, "width": 64, "height": 48, **image_fields})
        kps = person_keypoints(30, 5, scale=0.2)
        annotations.append({
            "id": i, "image_id": i, "category_id": 1, "iscrowd": 0, "area": 600.0,
            "bbox": [20.0, 4.0, 20.0, 35.0], "num_keypoints": 17,
            "keypoints": kps.reshape(-1).tolist(),
        })  # fmt: skip
    path = root / "gt.json"
    path.write_text(json.dumps({"images": images, "annotations": annotations}))
    return path


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file below ``folder`` with its bytes (to show that finished outputs are untouched)."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def one_error_line(err: str, verb: str, *needles: str) -> str:
    """The single line on stderr: ``orpose VERB: error: ...`` containing every needle."""
    lines = [line for line in err.splitlines() if line.strip()]
    assert "Traceback" not in err
    assert len(lines) == 1, f"expected one line on stderr, got {lines}"
    line = lines[0]
    assert line.startswith(f"orpose {verb}: error: ")
    for needle in needles:
        assert needle in line, f"{needle!r} not in {line!r}"
    return line


# -- eval: prediction files --


def good_result() -> dict:
    return {
        "image_id": 1,
        "category_id": 1,
        "bbox": [70.0, 20.0, 60.0, 180.0],
        "score": 0.9,
        "keypoints": person_keypoints(100, 30).reshape(-1).tolist(),
    }


BAD_RESULTS = [  # (case, change to a good result, field named in the error)
    ("score_string", {"score": "high"}, "score"),
    ("score_list", {"score": [0.9]}, "score"),
    ("score_nan", {"score": math.nan}, "score"),
    ("score_inf", {"score": math.inf}, "score"),
    ("score_bool", {"score": True}, "score"),
    ("bbox_negative_width", {"bbox": [70.0, 20.0, -5.0, 180.0]}, "bbox"),
    ("bbox_absurd", {"bbox": [1e30, 20.0, 60.0, 180.0]}, "bbox"),
    ("bbox_nan", {"bbox": [70.0, math.nan, 60.0, 180.0]}, "bbox"),
    ("bbox_string", {"bbox": "70 20 60 180"}, "bbox"),
    ("category_other", {"category_id": 2}, "category_id"),
    ("category_string", {"category_id": "1"}, "category_id"),
    ("image_id_list", {"image_id": [1]}, "image_id"),
    ("image_id_unknown", {"image_id": 99}, "image_id"),
    ("keypoints_absurd", {"keypoints": [1e30] * 51}, "keypoints"),
    ("keypoints_short", {"keypoints": [1.0] * 48}, "keypoints"),
    ("keypoints3d_absurd", {"keypoints3d": [1e9] * 51}, "keypoints3d"),
]


@pytest.mark.parametrize(
    ("change", "field"), [c[1:] for c in BAD_RESULTS], ids=[c[0] for c in BAD_RESULTS]
)
def test_eval_refuses_bad_prediction_with_one_line(tmp_path, capsys, change, field):
    gt = tiny_dataset_json(tmp_path, with_images=False)
    out = tmp_path / "report"
    out.mkdir()
    (out / "metrics.json").write_text('[{"finished": "earlier run"}]')
    before = snapshot(out)
    bad = {**good_result(), **change}
    pred = tmp_path / "pred.json"
    pred.write_text(json.dumps([good_result(), bad]))  # json writes NaN / Infinity literally
    code = main(["eval", "--gt", str(gt), "--pred", str(pred), "--out", str(out)])
    assert code == 2
    one_error_line(capsys.readouterr().err, "eval", str(pred), "result #1", f"field '{field}'")
    assert snapshot(out) == before


def test_eval_names_the_annotation_of_a_bad_orpose_coco_prediction(tmp_path, capsys):
    gt = tiny_dataset_json(tmp_path, with_images=False)
    data = json.loads(gt.read_text())
    data["annotations"][1]["score"] = "0.9"
    pred = tmp_path / "labels.json"
    pred.write_text(json.dumps(data))
    assert main(["eval", "--gt", str(gt), "--pred", str(pred), "--out", str(tmp_path / "o")]) == 2
    one_error_line(
        capsys.readouterr().err, "eval", str(pred), "annotation #1 (id 12)", "field 'score'"
    )


def test_ground_truth_without_keypoints_is_ignored_for_keypoint_ap_not_crashed_on(tmp_path):
    """A person with a box only counts for box AP; pycocotools ignores it for keypoint AP, so
    neither a box-only result nor one with keypoints on it is a false positive."""
    path = tiny_dataset_json(tmp_path, with_images=False)
    data = json.loads(path.read_text())
    for key in ("keypoints", "keypoints_soft", "num_keypoints"):
        data["annotations"][1].pop(key)
    path.write_text(json.dumps(data))
    gt = load_pose_dataset(path)
    results = [
        {
            "image_id": a["image_id"],
            "category_id": 1,
            "bbox": a["bbox"],
            "score": 1.0,
            "keypoints": a.get("keypoints") or person_keypoints(180, 30).reshape(-1).tolist(),
        }
        for a in data["annotations"]
    ]
    ap = evaluate_ap(gt, load_predictions(copy.deepcopy(results), gt))
    assert ap["bbox"]["AP"] == pytest.approx(1.0)
    assert ap["keypoints"]["AP"] == pytest.approx(1.0)
    code = main(["eval", "--gt", str(path), "--pred", str(_dump(tmp_path, results))])
    assert code == 0


def test_mpjpe_matches_a_3d_ground_truth_without_2d_keypoints_by_its_box(tmp_path):
    from orpose.evaluation.mpjpe import compute_mpjpe

    path = tiny_dataset_json(tmp_path, with_images=False)
    data = json.loads(path.read_text())
    pose = np.random.default_rng(0).normal(0, 300, (17, 3))
    pose -= pose[[11, 12]].mean(axis=0)
    for ann in data["annotations"]:
        ann.pop("keypoints")
        ann["keypoints3d"] = np.column_stack([pose + 2000, np.ones(17)]).reshape(-1).tolist()
    path.write_text(json.dumps(data))
    gt = load_pose_dataset(path)
    results = [
        {**good_result(), "image_id": a["image_id"], "bbox": a["bbox"],
         "keypoints3d": pose.reshape(-1).tolist()}
        for a in data["annotations"]
    ]  # fmt: skip
    mpjpe = compute_mpjpe(gt, load_predictions(results, gt))
    assert mpjpe.persons == 2 and mpjpe.mpjpe == pytest.approx(0.0, abs=1e-6)


def _dump(folder: Path, results: list[dict]) -> Path:
    path = folder / "results.json"
    path.write_text(json.dumps(results))
    return path


# -- eval --model: undecodable ground-truth images --


def test_eval_model_stops_at_a_bad_image_keeps_the_journal_and_can_skip_it(tmp_path, capsys):
    from orpose.predictor import save_student
    from orpose.student import StudentConfig, build_student

    torch.manual_seed(0)
    tiny = StudentConfig(
        backbone="resnet18_fpn", box_head_size=64, head_convs=(16,), min_size=(64,),
        max_size=96, detections_per_img=2, box_score_thresh=0.0, lifter_config={"hidden": 16},
    )  # fmt: skip
    checkpoint = save_student(build_student(tiny), tmp_path / "last.pt")
    good = (tmp_path / "g.png").as_posix()
    cv2.imwrite(good, np.full((48, 64, 3), 120, np.uint8))
    files = {"a.png": Path(good).read_bytes(), "b.jpg": BAD_IMAGES["text.jpg"]}
    gt = make_coco(tmp_path / "gt", files)
    out = tmp_path / "eval"
    args = ["eval", "--gt", str(gt), "--model", str(checkpoint), "--scales", "1", "--out", str(out)]
    args += ["--proposals", "10", "--no-plot"]
    assert main(args) == 2
    err = capsys.readouterr().err
    line = [x for x in err.replace("\r", "\n").splitlines() if "error:" in x]
    assert len(line) == 1 and "Traceback" not in err
    one_error_line(line[0], "eval", str(gt), "image id 2", "field 'file_name'", "b.jpg")
    journal = out / "pred_1x.jsonl"
    done = journal.read_bytes()
    assert [json.loads(x)["image_id"] for x in done.splitlines()] == [1]  # image 1 kept
    assert main([*args, "--skip-bad-images"]) == 0
    assert journal.read_bytes() == done  # resumed: image 1 not redone, the bad one not journaled
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics[0]["scale"] == "1x"


# -- data check: images that exist but are not images --


@pytest.mark.parametrize("bad", sorted(BAD_IMAGES))
def test_data_check_decodes_images_and_names_the_bad_one(tmp_path, capsys, bad):
    gt = make_coco(tmp_path, {"good.jpg": jpeg_bytes(), bad: BAD_IMAGES[bad]})
    before = gt.read_bytes()
    assert main(["data", "check", str(gt)]) == 2
    captured = capsys.readouterr()
    one_error_line(
        captured.err, "data", str(gt), "image id 2", "field 'file_name'", bad, BAD_REASONS[bad]
    )
    assert "1 of 2 images" in captured.err
    assert f"bad image: id 2: {tmp_path / 'images' / bad}" in captured.out
    assert gt.read_bytes() == before
    assert main(["data", "check", str(gt), "--no-decode"]) == 0  # existence only, on request


def test_data_check_lists_every_bad_image_and_counts_them(tmp_path, capsys):
    gt = make_coco(tmp_path, {"good.jpg": jpeg_bytes(), **BAD_IMAGES})
    assert main(["data", "check", str(gt)]) == 2
    captured = capsys.readouterr()
    one_error_line(captured.err, "data", "3 of 4 images", "and 2 more")
    assert all(name in captured.out for name in BAD_IMAGES)


def test_image_file_problem_accepts_whole_images_only(tmp_path):
    for name, data in {**BAD_IMAGES, "good.jpg": jpeg_bytes()}.items():
        (tmp_path / name).write_bytes(data)
    cv2.imwrite(str(tmp_path / "good.png"), np.zeros((8, 8, 3), np.uint8))
    assert image_file_problem(tmp_path / "good.jpg") is None
    assert image_file_problem(tmp_path / "good.png") is None
    for name, reason in BAD_REASONS.items():
        assert reason in image_file_problem(tmp_path / name)
    assert "cannot be read" in image_file_problem(tmp_path / "missing.jpg")


# -- file names that leave the image root --


@pytest.mark.parametrize(
    ("file_name", "message"),
    [
        ("../../etc/passwd", "leaves the image root"),
        ("sub/../../outside.jpg", "leaves the image root"),
        ("/etc/passwd", "absolute path outside the image root"),
    ],
)
def test_file_names_leaving_the_image_root_are_refused(tmp_path, capsys, file_name, message):
    gt = make_coco(tmp_path, {"good.jpg": jpeg_bytes()})
    data = json.loads(gt.read_text())
    data["images"][0]["file_name"] = file_name
    gt.write_text(json.dumps(data))
    with pytest.raises(DatasetError, match=message):
        load_pose_dataset(gt)
    for argv in (["data", "check", str(gt)], ["eval", "--gt", str(gt), "--pred", str(gt)]):
        assert main(argv) == 2
        verb = argv[0]
        one_error_line(capsys.readouterr().err, verb, str(gt), "image #0", "field 'file_name'")


def test_absolute_names_inside_the_root_and_written_by_data_subset_are_kept(tmp_path, capsys):
    gt = make_coco(tmp_path / "set", {"a.jpg": jpeg_bytes(), "b.jpg": jpeg_bytes(seed=1)})
    data = json.loads(gt.read_text())
    data["images"][0]["file_name"] = str(tmp_path / "set" / "images" / "a.jpg")  # inside root
    gt.write_text(json.dumps(data))
    assert len(load_pose_dataset(gt, check_images=True).images) == 2
    subset = tmp_path / "elsewhere" / "subset.json"  # no images/ beside it: names outside
    assert main(["data", "subset", str(gt), "--num", "2", "--out", str(subset)]) == 0
    assert all(
        Path(img["file_name"]).is_absolute() for img in json.loads(subset.read_text())["images"]
    )
    assert main(["data", "check", str(subset)]) == 0
    folder_subset = tmp_path / "elsewhere" / "pool.json"
    assert main(["data", "subset", str(tmp_path / "set" / "images"), "--num", "2",
                 "--out", str(folder_subset)]) == 0  # fmt: skip
    assert main(["data", "check", str(folder_subset)]) == 0
    capsys.readouterr()


# -- label: folders of bad images --


class TinyTeacher:
    """One person per image, from the image size (no models needed)."""

    def __init__(self) -> None:
        self.config = TeacherConfig(keypoint_threshold=0.5)

    def describe(self) -> dict:
        return {"config": self.config.to_dict(), "models": [{"name": "tiny"}]}

    def label(self, image: np.ndarray) -> list[Person]:
        h, w = image.shape[:2]
        kps = np.column_stack([np.linspace(1, w - 1, 17), np.full(17, h / 2), np.full(17, 0.9)])
        return [Person(np.array([0.0, 0.0, w - 1.0, h - 1.0]), 0.9, 0.9, kps)]


@pytest.fixture
def tiny_teacher(monkeypatch):
    from orpose.teacher.teacher import Teacher

    monkeypatch.setattr(Teacher, "from_config", classmethod(lambda cls, *a, **k: TinyTeacher()))


def label_args(inputs: Path, out: Path) -> list[str]:
    return ["label", str(inputs), "--out", str(out), "--no-progress", "--preset", "single"]


def test_label_a_folder_of_undecodable_images_fails_in_one_line_and_keeps_the_journal(
    tmp_path, capsys, tiny_teacher
):
    folder = tmp_path / "bad"
    folder.mkdir()
    for name in ("empty.jpg", "text.jpg"):
        (folder / name).write_bytes(BAD_IMAGES[name])
    run = tmp_path / "run"
    run.mkdir()
    (run / "earlier.json").write_text('{"finished": true}')
    before = snapshot(run)
    out = run / "labels.json"
    assert main(label_args(folder, out)) == 2
    one_error_line(capsys.readouterr().err, "label", str(folder / "empty.jpg"), "empty file")
    assert not out.exists()
    journal = run / "labels.journal.jsonl"
    keys = [json.loads(x).get("key") for x in journal.read_text().splitlines()[1:]]
    assert sorted(Path(k).name for k in keys) == ["empty.jpg", "text.jpg"]
    assert {k: v for k, v in snapshot(run).items() if k in before} == before


def test_label_a_folder_without_images_fails_in_one_line(tmp_path, capsys, tiny_teacher):
    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "readme.txt").write_text("no images here")
    assert main(label_args(folder, tmp_path / "labels.json")) == 2
    one_error_line(capsys.readouterr().err, "label", str(folder), "holds no image")


def test_label_refuses_a_coco_input_whose_file_name_leaves_the_root(tmp_path, capsys, tiny_teacher):
    gt = make_coco(tmp_path, {"good.jpg": jpeg_bytes()})
    data = json.loads(gt.read_text())
    data["images"][0]["file_name"] = "../../../etc/passwd"
    gt.write_text(json.dumps(data))
    assert main(label_args(gt, tmp_path / "labels.json")) == 2
    one_error_line(capsys.readouterr().err, "label", str(gt), "field 'file_name'")


def test_label_warns_about_a_truncated_jpeg_and_skips_undecodable_files(
    tmp_path, caplog, tiny_teacher
):
    folder = tmp_path / "mixed"
    folder.mkdir()
    (folder / "a_good.jpg").write_bytes(jpeg_bytes())
    (folder / "b_truncated.jpg").write_bytes(BAD_IMAGES["truncated.jpg"])
    (folder / "c_text.jpg").write_bytes(BAD_IMAGES["text.jpg"])
    out = tmp_path / "labels.json"
    with caplog.at_level(logging.WARNING):
        assert main(label_args(folder, out)) == 0
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert any("b_truncated.jpg" in w and "truncated" in w for w in warnings)
    assert any("c_text.jpg" in w and "not an image" in w for w in warnings)
    labels = json.loads(out.read_text())
    assert sorted(Path(i["file_name"]).name for i in labels["images"]) == [
        "a_good.jpg",
        "b_truncated.jpg",
    ]
    assert [Path(s["key"]).name for s in labels["info"]["skipped"]] == ["c_text.jpg"]


# -- train: an undecodable training image --


def test_training_image_that_cannot_be_decoded_is_a_dataset_error(tmp_path):
    path = tiny_dataset_json(tmp_path)
    (tmp_path / "images" / "img2.png").write_bytes(b"")
    dataset = PseudoLabelDataset(load_pose_dataset(path), LowResSchedule.from_spec(1), flip=False)
    dataset[0, 0]
    with pytest.raises(UnreadableImageError) as err:
        dataset[1, 0]
    message = str(err.value)
    assert isinstance(err.value, DatasetError)
    assert f"{path}: image id 2: field 'file_name': " in message and "img2.png" in message
    assert "empty file" in message


def test_dataloader_worker_error_reaches_the_cli_as_one_line(tmp_path):
    path = tiny_dataset_json(tmp_path)
    (tmp_path / "images" / "img1.png").write_bytes(b"not a png")
    dataset = PseudoLabelDataset(load_pose_dataset(path), LowResSchedule.from_spec(1), flip=False)
    loader = torch.utils.data.DataLoader(dataset, batch_size=None, sampler=[(0, 0)], num_workers=1)
    with pytest.raises(UnreadableImageError) as err:
        next(iter(loader))
    message = str(err.value)
    assert "\n" not in message and "Traceback" not in message
    assert message.startswith(f"{path}: image id 1: field 'file_name': ")


def test_pose_confidence_bound_is_checked_and_recorded(tmp_path, capsys):
    """--pose-confidence-bound outside [0.01, 1] is refused by the parser. A predict folder
    records the bound only where it can change who is shown: a model that poses every
    candidate (here an R-CNN student) records nothing and resumes under any bound."""
    frame = tmp_path / "f.png"
    cv2.imwrite(str(frame), np.full((48, 64, 3), 90, np.uint8))
    out = str(tmp_path / "pred")
    for bad in ("0", "1.5", "nan"):  # argparse's usage, then its one error line
        args = ["predict", "random:resnet18_fpn", str(frame), "--pose-confidence-bound", bad]
        assert main([*args, "--out", out]) == 2
        last = capsys.readouterr().err.strip().splitlines()[-1]
        assert last.startswith("orpose predict: error: argument --pose-confidence-bound")
    again = ["predict", "random:resnet18_fpn", str(frame), "--out", out]
    assert main(again) == 0
    settings = json.loads((tmp_path / "pred" / "predictions.settings.json").read_text())
    assert "pose_confidence_bound" not in settings
    assert main([*again, "--pose-confidence-bound", "0.5"]) == 0


def test_the_bound_is_recorded_where_it_can_change_who_is_shown():
    """The CPU student's runs record the default ("by factor") or the bound given; B = 1, the
    exact rule, records nothing, so folders predicted before the bound existed resume with it."""
    from orpose.inference.cli import pose_bound_setting

    class Takes:  # an exported graph with the min_score input
        accepts_min_score = True

    class Ignores:  # one without it
        accepts_min_score = False

    assert pose_bound_setting(Takes(), None) == {"pose_confidence_bound": "by factor"}
    assert pose_bound_setting(Takes(), 0.6) == {"pose_confidence_bound": 0.6}
    assert pose_bound_setting(Takes(), 1.0) == {}
    assert pose_bound_setting(Ignores(), None) == {}


def test_flip_is_refused_where_no_crop_can_be_mirrored(tmp_path, capsys):
    """--flip belongs to the CPU student's checkpoints: an R-CNN student, an ONNX graph (whose
    work is fixed at export) and prediction files are each refused in one line."""
    frame = tmp_path / "f.png"
    cv2.imwrite(str(frame), np.full((48, 64, 3), 90, np.uint8))
    out = str(tmp_path / "pred")
    assert main(["predict", "random:resnet18_fpn", str(frame), "--flip", "--out", out]) == 2
    one_error_line(capsys.readouterr().err, "predict", "--flip", "only the CPU student")
    graph = tmp_path / "student.onnx"
    graph.write_bytes(b"not read")
    assert main(["predict", str(graph), str(frame), "--flip", "--out", out]) == 2
    one_error_line(capsys.readouterr().err, "predict", "--flip is fixed in an ONNX graph")
    pred = tmp_path / "pred.json"
    pred.write_text("[]")
    assert main(["eval", "--gt", str(pred), "--pred", str(pred), "--flip"]) == 2
    one_error_line(capsys.readouterr().err, "eval", "--flip applies to --model only")
