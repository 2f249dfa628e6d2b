"""Hostile inputs, third campaign (issue #27): the remaining early --out checks, duplicated
inputs, and the failures a fresh campaign found (outputs over inputs, names OpenCV crashes on,
images matched by base name, malformed MVOR files, resumed results of another model...).

Every case builds its own tiny input in ``tmp_path``; nothing needs the shared data or a model
file (predictions come from a fake predictor).
"""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys

import pytest
from PIL import Image

from conftest import person_keypoints
from orpose.cli import main
from orpose.data.coco import DatasetError, load_pose_dataset
from orpose.errors import ImageFileError, ModelError, SourceError, UserError
from orpose.inference.journal import JournalMismatch
from orpose.inference.pipeline import PredictOptions, run_predict
from orpose.outputs import check_output_file, check_output_folder, refuse_overwriting_inputs
from test_hostile_inputs import one_error_line, write_gt, write_jpeg
from test_inference_predict import FakePredictor, write_video

# -- (a) early --out checks of the remaining verbs --------------------------------------------


def test_the_remaining_verbs_check_their_out_before_work(tmp_path, capsys):
    """export, lift train, bench, data subset, data mvor-to-coco, label-merge and label
    --frames-dir: exit 2 naming the option and the path, before any input is read (the inputs
    named here do not even exist)."""
    blocker = tmp_path / "blocker"
    blocker.write_text("I am a file")
    folder = tmp_path / "a_folder"
    folder.mkdir()
    missing = str(tmp_path / "missing")
    image = write_jpeg(tmp_path / "a.jpg")
    file_outputs = {
        "lift train": ["lift", "train", "--mocap", missing],
        "bench": ["bench", "--frames", missing],
        "data subset": ["data", "subset", missing + ".json", "--num", "1"],
        "data mvor-to-coco": ["data", "mvor-to-coco", "--mvor", missing + ".json"],
        "label-merge": ["label-merge", missing + ".json"],
    }
    for verb, argv in file_outputs.items():
        for out, expected in ((folder, "is a folder"), (blocker / "x.json", "cannot be written")):
            assert main([*argv, "--out", str(out)]) == 2, verb
            one_error_line(capsys.readouterr().err, verb, f"--out {out}", expected)
    for out, expected in ((blocker, "exists and is a file"), (blocker / "x", "cannot be written")):
        assert main(["export", missing + ".pt", "--out", str(out)]) == 2
        one_error_line(capsys.readouterr().err, "export", f"--out {out}", expected)
        argv = ["label", str(image), "--out", str(tmp_path / "l.json"), "--frames-dir", str(out)]
        assert main(argv) == 2
        one_error_line(capsys.readouterr().err, "label", f"--frames-dir {out}", expected)


def test_a_name_too_long_for_the_file_system_is_one_line(tmp_path, capsys):
    long = "x" * 300
    with pytest.raises(UserError, match="the name is too long"):
        check_output_file(tmp_path / f"{long}.json")
    with pytest.raises(UserError, match="the name is too long"):
        check_output_folder(tmp_path / long)
    assert main(["data", "subset", str(tmp_path), "--num", "1", "--out", f"{long}.json"]) == 2
    one_error_line(capsys.readouterr().err, "data subset", "the name is too long")


# -- (b) duplicates ---------------------------------------------------------------------------


def test_predict_predicts_an_image_given_twice_once(tmp_path, caplog):
    """The same image by two spellings, a folder twice, a folder and one of its files: each
    image once (it stopped on a false 'the inputs changed' before), with one warning line."""
    folder = tmp_path / "in"
    a, b = write_jpeg(folder / "a.jpg"), write_jpeg(folder / "b.jpg")
    inputs = [str(a), str(folder / ".." / "in" / "a.jpg"), str(folder), str(folder), str(b)]
    options = PredictOptions(out=tmp_path / "out", progress=False)
    with caplog.at_level(logging.WARNING, "orpose.inference.pipeline"):
        summary = run_predict(FakePredictor(), inputs, options)
    images = json.loads((tmp_path / "out" / "images.json").read_text())["images"]
    assert [img["file_name"] for img in images] == [str(a), str(b)]
    assert summary.frames == 2 and len(json.loads(summary.results.read_text())) == 2
    warnings = [r for r in caplog.records if "given more than once" in r.getMessage()]
    assert len(warnings) == 1 and "5 input(s)" in warnings[0].getMessage()


def test_eval_refuses_a_ground_truth_listing_an_image_twice(tmp_path, capsys):
    write_jpeg(tmp_path / "images" / "a.jpg")
    gt = write_gt(tmp_path, {"a.jpg": (64, 48)})
    data = json.loads(gt.read_text())
    data["images"].append({**data["images"][0], "id": 2, "file_name": "./a.jpg"})
    gt.write_text(json.dumps(data))
    pred = tmp_path / "pred.json"
    pred.write_text("[]")
    argv = ["eval", "--gt", str(gt), "--pred", str(pred), "--out", str(tmp_path / "e")]
    assert main(argv) == 2
    one_error_line(capsys.readouterr().err, "eval", str(gt), "image id 2", "is also image id 1's")
    assert main(["data", "check", str(gt)]) == 0  # data check warns (label takes it once)
    assert "warning: image id 2:" in capsys.readouterr().out


def test_pseudo_labels_are_matched_to_the_ground_truth_by_path_not_base_name(tmp_path, capsys):
    """cam1/000001.png and cam2/000001.png: a label file's person on cam1 was scored on cam2
    (matched by base name, the last one winning): AP 0.00 for a perfect prediction."""
    root = tmp_path / "images"
    for cam in ("cam1", "cam2"):
        (root / cam).mkdir(parents=True)
        Image.new("RGB", (64, 48)).save(root / cam / "000001.png")
    kps = person_keypoints(30, 5, scale=0.2)
    person = {"id": 1, "image_id": 1, "category_id": 1, "iscrowd": 0, "area": 600.0,
              "bbox": [20.0, 4.0, 20.0, 35.0], "num_keypoints": 17,
              "keypoints": kps.reshape(-1).tolist()}  # fmt: skip
    images = [{"id": i, "file_name": f"cam{i}/000001.png", "width": 64, "height": 48}
              for i in (1, 2)]  # fmt: skip
    gt = tmp_path / "gt.json"
    gt.write_text(json.dumps({"images": images, "annotations": [person]}))
    soft = kps.copy()
    soft[:, 2] = 0.9
    found = {**person, "image_id": 7, "score": 0.9, "keypoints_soft": soft.reshape(-1).tolist()}
    labels = {"info": {"orpose": {}}, "annotations": [found], "images": [
        {"id": 7, "file_name": str(root / "cam1" / "000001.png"), "width": 64, "height": 48},
        {"id": 8, "file_name": str(root / "cam2" / "000001.png"), "width": 64, "height": 48},
    ]}  # fmt: skip
    pred = tmp_path / "labels.json"
    pred.write_text(json.dumps(labels))
    assert main(["eval", "--gt", str(gt), "--pred", str(pred), "--out", str(tmp_path / "e")]) == 0
    (row,) = json.loads((tmp_path / "e" / "metrics.json").read_text())
    assert row["bbox"]["AP"] == pytest.approx(1) and row["keypoints"]["AP"] == pytest.approx(1)
    for img in labels["images"]:  # bare names fit both ground-truth images: refused by name
        img["file_name"] = "000001.png"
    pred.write_text(json.dumps(labels))
    assert main(["eval", "--gt", str(gt), "--pred", str(pred), "--out", str(tmp_path / "f")]) == 2
    one_error_line(capsys.readouterr().err, "eval", str(pred), "fits 2 images", "ids 1, 2")


# -- outputs that would destroy or feed back into inputs -----------------------------------------


def test_outputs_over_inputs_are_refused_before_work(tmp_path, capsys):
    """data downscale IMGS --out IMGS wrote its 1/s PNGs over the original PNGs; data subset
    GT --out GT replaced the ground truth by its first N images; label X --out X --restart would
    write JSON over the image; label-merge into one of its shards."""
    folder = tmp_path / "imgs"
    original = write_jpeg(folder / "a.jpg")
    Image.open(original).save(folder / "b.png")
    before = (folder / "b.png").read_bytes()
    gt = write_gt(tmp_path, {"a.jpg": (64, 48)})
    runs = {
        "data downscale": (["data", "downscale", str(folder), "--scale", "2", "--out",
                            str(folder)], "lies in the input folder"),
        "data subset": (["data", "subset", str(gt), "--num", "1", "--out", str(gt)],
                        "is the input"),
        "label": (["label", str(original), "--out", str(original), "--restart"], "is the input"),
        "label-merge": (["label-merge", str(gt), "--out", str(gt)], "is the input"),
    }  # fmt: skip
    for verb, (argv, expected) in runs.items():
        assert main(argv) == 2, verb
        one_error_line(capsys.readouterr().err, verb, "--out", expected)
    assert (folder / "b.png").read_bytes() == before
    assert json.loads(gt.read_text())["images"][0]["file_name"] == "a.jpg"
    link = tmp_path / "link.json"
    link.symlink_to(gt)
    with pytest.raises(UserError, match="is the input"):
        refuse_overwriting_inputs(link, [gt])
    with pytest.raises(UserError, match="lies in the input folder"):
        refuse_overwriting_inputs(folder / "sub" / "deeper", [folder], folder=True)
    refuse_overwriting_inputs(tmp_path / "elsewhere", [folder, "rtsp://camera"], folder=True)


def test_predict_renders_are_not_written_into_an_input_folder(tmp_path, capsys):
    folder = tmp_path / "frames"
    write_jpeg(folder / "a.jpg")
    out = folder / "pred"
    assert main(["predict", "random:x", str(folder), "--out", str(out), "--overlay"]) == 2
    one_error_line(capsys.readouterr().err, "predict", f"--out {out}", "lies in the input folder")


def test_lift_train_never_trains_over_a_finished_lifter(tmp_path, capsys):
    lifter = tmp_path / "lifter.pt"
    lifter.write_bytes(b"a finished lifter")
    assert main(["lift", "train", "--mocap", str(tmp_path), "--out", str(lifter)]) == 2
    one_error_line(capsys.readouterr().err, "lift", f"--out {lifter}", "--resume continues it")
    assert lifter.read_bytes() == b"a finished lifter"


# -- silent data loss and false reports -----------------------------------------------------------


def test_two_videos_of_one_stem_get_two_overlay_videos(tmp_path):
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        write_video(tmp_path / name / "clip.avi", frames=2)
    inputs = [str(tmp_path / "a" / "clip.avi"), str(tmp_path / "b" / "clip.avi")]
    options = PredictOptions(out=tmp_path / "out", overlays=True, progress=False)
    summary = run_predict(FakePredictor(), inputs, options)
    names = sorted(p.name for p in summary.rendered)
    assert names == ["clip_2_overlay.mp4", "clip_overlay.mp4"]
    assert sorted(p.name for p in (tmp_path / "out" / "overlays").iterdir()) == names


def test_predict_with_no_decodable_input_is_an_error(tmp_path, capsys, monkeypatch, caplog):
    import orpose.inference.cli as predict_cli

    monkeypatch.setattr(predict_cli, "build_predictor", lambda *a, **k: FakePredictor())
    bad = tmp_path / "bad.jpg"
    bad.write_text("not an image")
    argv = ["predict", "m.pt", str(bad), "--out", str(tmp_path / "o"), "--no-progress"]
    with caplog.at_level(logging.WARNING, "orpose.inference.pipeline"):
        assert main(argv) == 2
    assert f"skipped {bad}" in caplog.text  # the warning naming the file, then the error line
    err = capsys.readouterr().err
    assert "orpose predict: error: no frame predicted: none of the 1 input image(s)" in err
    assert "Traceback" not in err
    good = write_jpeg(tmp_path / "good.jpg")
    argv = ["predict", "m.pt", str(good), str(bad), "--out", str(tmp_path / "p"), "--no-progress"]
    assert main(argv) == 0
    assert "1 frame(s)" in (out := capsys.readouterr().out) and "skipped 1 undecodable" in out


def test_predict_never_resumes_results_of_other_settings(tmp_path):
    """Another model, or --downscale 12 after a full-resolution run, into the same --out
    reused the first run's results (and called them the second's)."""
    image = write_jpeg(tmp_path / "a.jpg", 640, 480)
    plain = PredictOptions(out=tmp_path / "out", progress=False)
    run_predict(FakePredictor(), [str(image)], plain, {"model": "A"})
    with pytest.raises(JournalMismatch, match=r"changed: model\)"):
        run_predict(FakePredictor(), [str(image)], plain, {"model": "B"})
    private = PredictOptions(out=plain.out, downscale=12, progress=False)
    with pytest.raises(JournalMismatch, match=r"changed: downscale\)"):
        run_predict(FakePredictor(), [str(image)], private, {"model": "A"})
    again = run_predict(FakePredictor(), [str(image)], plain, {"model": "A"})
    assert again.predicted == 0 and again.frames == 1  # the same settings resume
    fresh = PredictOptions(out=plain.out, downscale=12, progress=False, resume=False)
    assert run_predict(FakePredictor(), [str(image)], fresh, {"model": "A"}).predicted == 1


# -- names OpenCV crashes on, images no network input holds ------------------------------------


def test_file_names_that_are_not_utf8_never_reach_opencv(tmp_path):
    """OpenCV's Python binding crashed the process (a segmentation fault) on such a name:
    checked in a child process, so that a regression cannot take the test run down with it."""
    code = f"""
import os, numpy as np
from pathlib import Path
from PIL import Image
from orpose.data.images import read_image_rgb
from orpose.data.sources import SourceError, iter_video
from orpose.inference.render import write_image_rgb
folder = Path({str(tmp_path)!r})
name = folder / os.fsdecode(b"\\xff\\xfe.png")
Image.new("RGB", (64, 48), (10, 20, 30)).save(name)
assert read_image_rgb(name).shape == (48, 64, 3)
write_image_rgb(folder / os.fsdecode(b"out\\xff.jpg"), np.zeros((8, 8, 3), np.uint8))
video = folder / os.fsdecode(b"clip\\xff.avi")
video.write_bytes(b"x")
try:
    next(iter_video(video))
except SourceError as err:
    assert "not valid UTF-8" in str(err)
else:
    raise AssertionError("no SourceError")
import orpose.inference.cli as predict_cli
from orpose.cli import main
predict_cli.build_predictor = lambda *args, **kwargs: (lambda image: [])
out = folder / os.fsdecode(b"pred\\xff")
assert main(["predict", "m.pt", str(name), "--out", str(out), "--overlay", "--no-progress"]) == 0
assert (out / "predict.log").is_file() and (out / "images.json").is_file()
print("ok")
"""
    env = {**os.environ, "PYTHONIOENCODING": "utf-8:strict"}  # a terminal strict about names
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert done.returncode == 0 and done.stdout.strip().endswith("ok"), done.stderr[-2000:]
    assert "Traceback" not in done.stderr and "Logging error" not in done.stderr, done.stderr
    assert (tmp_path / os.fsdecode(b"out\xff.jpg")).stat().st_size > 0


def test_an_image_with_one_side_100_times_the_other_is_refused(tmp_path):
    """A 1x2000 strip was resized to a side of 0 pixels by the student: a traceback."""
    strip = tmp_path / "strip.png"
    Image.new("RGB", (1, 2000)).save(strip)
    with pytest.raises(ImageFileError, match="more than 100 times the other"):
        from orpose.data.images import read_image_rgb

        read_image_rgb(strip)
    options = PredictOptions(out=tmp_path / "o", progress=False)
    summary = run_predict(FakePredictor(), [str(strip)], options)
    assert summary.frames == 0 and summary.skipped == 1


@pytest.mark.parametrize("orientation", [3, 6])
def test_a_tiff_orientation_tag_is_refused_the_same_way_everywhere(tmp_path, orientation):
    """OpenCV flips a TIFF tagged 2-4 (its IGNORE_ORIENTATION flag notwithstanding) and cannot
    read one tagged 5-8, while data check passed both."""
    from orpose.data.images import image_file_problem, read_image_rgb

    path = tmp_path / "t.tif"
    Image.new("RGB", (64, 48)).save(path, tiffinfo={274: orientation})
    assert "TIFF orientation tag" in image_file_problem(path)
    with pytest.raises(ImageFileError, match="TIFF orientation tag"):
        read_image_rgb(path)
    Image.new("RGB", (64, 48)).save(path, tiffinfo={274: 1})
    assert image_file_problem(path) is None and read_image_rgb(path).shape == (48, 64, 3)


# -- ground truth values without sense, malformed files ----------------------------------------


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        ({"bbox": [0, 0, 1e300, 1e300]}, "field 'bbox': [0, 0, 1e+300, 1e+300] lies far outside"),
        ({"keypoints": [1e300] + [0] * 50}, "field 'keypoints': a keypoint lies far outside"),
        ({"num_keypoints": -5}, "field 'num_keypoints': expected a whole number 0-17, got -5"),
        ({"num_keypoints": "17"}, "field 'num_keypoints': expected a whole number 0-17"),
    ],
)
def test_ground_truth_values_without_sense_are_refused(tmp_path, capsys, change, needle):
    """A ground-truth box of 1e300 gave box AP 0.00, a keypoint at 1e300 a lower keypoint AP;
    num_keypoints '17' made data subset --with-keypoints a traceback."""
    write_jpeg(tmp_path / "images" / "a.jpg")
    gt = write_gt(tmp_path, {"a.jpg": (64, 48)})
    data = json.loads(gt.read_text())
    data["annotations"][0].update(change)
    gt.write_text(json.dumps(data))
    with pytest.raises(DatasetError, match="annotation id 1"):
        load_pose_dataset(gt)
    argv = [
        "data",
        "subset",
        str(gt),
        "--num",
        "1",
        "--with-keypoints",
        "--out",
        str(tmp_path / "s.json"),
    ]
    assert main(argv) == 2
    one_error_line(capsys.readouterr().err, "data subset", str(gt), needle)


def _mvor(**changes) -> dict:
    eye = [1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1]
    camera = {"focallength": [538, 538], "principalpoint": [320, 240]}
    data = {"images": [{"id": 1, "file_name": "day1/cam1/color/000000.png", "cam_id": 1,
                        "day_id": 1, "width": 640, "height": 480}],
            "annotations": [], "annotations3D": [], "multiview_images": [],
            "cameras_info": {"camParams": {"intrinsics": [camera] * 3,
                                           "extrinsics": [eye] * 3}}}  # fmt: skip
    for key, value in changes.items():
        if key in ("intrinsics", "extrinsics"):
            data["cameras_info"]["camParams"][key] = value
        else:
            data[key] = value
    return data


@pytest.mark.parametrize(
    ("changes", "needle"),
    [
        ({"extrinsics": [[1] * 16] * 2}, "expected two lists with one entry per camera"),
        ({"intrinsics": ["x", "y", "z"]}, "camera 1: field 'intrinsics': expected an object"),
        ({"intrinsics": 5}, "expected two lists with one entry per camera"),
        ({"images": {"a": 1}}, "field 'images': expected a list of objects"),
        ({"images": [{"id": 1, "file_name": 5, "cam_id": "x"}]}, "images[0]: field 'cam_id'"),
        ({"images": [{"id": 1, "file_name": "a.png", "cam_id": 7}]}, "7 is not a camera"),
        ({"multiview_images": [{"image_ids": "abc"}]}, "multiview_images[0]: field 'images'"),
        ({"annotations": [{"image_id": 9, "bbox": [0, 0, 1, 1]}]}, "no image with id 9"),
        ({"cameras_info": []}, "field 'cameras_info': expected an object"),
        ([], "expected an MVOR object"),
    ],
)
def test_a_malformed_mvor_file_is_one_line(tmp_path, capsys, changes, needle):
    """Each was a KeyError, TypeError, AttributeError or zip() ValueError traceback."""
    path = tmp_path / "mvor.json"
    path.write_text(json.dumps(_mvor(**changes) if isinstance(changes, dict) else changes))
    argv = ["data", "mvor-to-coco", "--mvor", str(path), "--out", str(tmp_path / "o.json")]
    assert main(argv) == 2
    one_error_line(capsys.readouterr().err, "data mvor-to-coco", str(path), needle)
    assert not (tmp_path / "o.json").exists()


def test_a_camera_file_nested_too_deeply_is_one_line(tmp_path):
    from orpose.lifting.intrinsics import read_camera

    path = tmp_path / "camera.json"
    path.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(DatasetError, match="nested too deeply"):
        read_camera(str(path))


def test_a_file_that_is_not_an_orpose_student_graph_is_one_line(tmp_path, monkeypatch):
    import onnx
    from onnx import TensorProto, helper

    from orpose.inference.onnx_runner import OnnxStudent, load_onnx_student

    text = tmp_path / "text.onnx"
    text.write_text("not a graph")
    with pytest.raises(ModelError, match="not a readable ONNX model"):
        OnnxStudent(text)
    image = helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, 8, 8])
    out = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 8, 8])
    graph = helper.make_graph([helper.make_node("Identity", ["image"], ["y"])], "g", [image], [out])
    other = tmp_path / "other.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), other)
    with pytest.raises(ValueError, match=r"not an orpose student graph .*rank 4"):
        OnnxStudent(other)
    # a native graph's size file that is not what orpose export writes
    (tmp_path / "s_native.onnx").write_bytes(b"x")
    (tmp_path / "s_native.json").write_text('{"native_max_side": "abc"}')
    import orpose.inference.onnx_runner as runner

    monkeypatch.setattr(runner, "OnnxStudent", lambda path, threads=0, spin=True: path)
    with pytest.raises(DatasetError, match="field 'native_max_side'"):
        load_onnx_student(tmp_path / "s.onnx")


def test_bench_on_a_folder_without_frames_is_one_line(tmp_path):
    from orpose.workflow.bench import load_frames

    with pytest.raises(SourceError, match="no frame to benchmark on"):
        load_frames(tmp_path, 3)


# -- command-line values without sense ---------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["predict", "m.pt", ""], "argument inputs: an empty name"),
        (["label", " ", "--out", "l.json"], "argument inputs: an empty name"),
        (["data", "downscale", "", "--scale", "2", "--out", "o"], "argument inputs: an empty name"),
        (["data", "show", "g.json", "--out", "o", "--field", "bogus"], "argument --field"),
        (["export", "random:x", "--size", "0x0"], "argument --size: expected WxH with each side"),
        (["export", "random:x", "--size=-5x10"], "argument --size"),
        (["export", "random:x", "--size", "100000x100000"], "argument --size"),
    ],
)
def test_values_without_sense_stop_at_the_parser(argv, needle, capsys):
    """An empty input was the whole current folder (predicted, labelled, downscaled); a bogus
    --field drew nothing with exit 0; --size 0x0 was a traceback, 100000x100000 120 GB."""
    assert main(argv) == 2
    err = capsys.readouterr().err
    last = err.strip().splitlines()[-1]  # argparse's usage lines, then its one error line
    assert "Traceback" not in err and last.startswith("orpose ") and needle in last, last


@pytest.mark.parametrize("scale", ["0", "-5", "1e400", "nan", ""])
def test_eval_pred_scales_are_downscale_factors(tmp_path, capsys, scale):
    write_jpeg(tmp_path / "images" / "a.jpg")
    gt = write_gt(tmp_path, {"a.jpg": (64, 48)})
    pred = tmp_path / "pred.json"
    pred.write_text("[]")
    argv = ["eval", "--gt", str(gt), f"--pred={scale}={pred}", "--out", str(tmp_path / "e")]
    assert main(argv) == 2
    one_error_line(capsys.readouterr().err, "eval", f"--pred {scale}={pred}")
    argv = ["eval", "--gt", str(gt), f"--pred=teacher={pred}", "--out", str(tmp_path / "e")]
    assert main([*argv, "--no-plot"]) == 0  # a word names the row
    assert "teacher" in capsys.readouterr().out


def test_label_shards_are_bounded(tmp_path, capsys):
    image = write_jpeg(tmp_path / "a.jpg")
    argv = ["label", str(image), "--out", str(tmp_path / "l.json"), "--shard", "0/" + "9" * 20]
    assert main(argv) == 2
    one_error_line(capsys.readouterr().err, "label", "need 0 <= I < N <= 10000")


@pytest.mark.parametrize(
    ("camera", "field"),
    [
        ("500,500,1e9,240", "'cx'"),
        ("500,500,320,240,640,480", None),
        ("500,500,900,240,640,480", "outside the 640x480 image"),
        ("1e7,500,320,240", "'fx'"),
    ],
)
def test_a_camera_no_lens_has_is_refused(camera, field):
    from orpose.errors import UserError
    from orpose.lifting.intrinsics import read_camera

    if field is None:
        assert read_camera(camera).cx == 320.0
        return
    with pytest.raises(UserError, match=re.escape(field)):
        read_camera(camera)


def test_a_broken_h36_stats_file_is_one_line(tmp_path):
    from orpose.errors import OrposeError
    from orpose.lifting.official_lifter import read_h36_stats

    path = tmp_path / "h36stats.json"
    path.write_text("[" * 100000 + "]" * 100000)
    with pytest.raises(OrposeError, match=re.escape(str(path))):
        read_h36_stats(path)


def test_adapt_refuses_an_empty_frames_name(capsys):
    from orpose.cli import main

    assert main(["adapt", "ckpt.pt", "", "--out", "o"]) == 2
    assert "frames" in capsys.readouterr().err
