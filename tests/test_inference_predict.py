"""``orpose predict``: results and images index, overlays, 3D plots, resume, low-res input."""

import json

import cv2
import numpy as np
import pytest
import torch

from orpose.cli import main
from orpose.data.sources import is_stream, iter_stream
from orpose.inference.journal import JournalMismatch
from orpose.inference.pipeline import PredictOptions, run_predict
from orpose.inference.privacy import guess_lowres_factor
from orpose.predictor import save_student
from orpose.student import StudentConfig, build_student

TINY = StudentConfig(
    backbone="resnet18_fpn",
    box_head_size=64,
    head_convs=(16,),
    min_size=(64,),
    max_size=96,
    detections_per_img=2,
    box_score_thresh=0.0,
    lifter_config={"hidden": 16},
)


def write_video(path, frames: int = 3, size=(128, 96)) -> None:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, size)
    for i in range(frames):
        writer.write(np.full((size[1], size[0], 3), 30 * i, np.uint8))
    writer.release()


class FakePredictor:
    """One person per frame, at a fixed place in network pixels; records the inputs it saw."""

    def __init__(self):
        self.inputs: list[np.ndarray] = []

    def __call__(self, image: np.ndarray) -> list[dict]:
        self.inputs.append(image)
        h, w = image.shape[:2]
        kps = np.zeros((17, 3))
        kps[:, 0], kps[:, 1], kps[:, 2] = w / 2, np.linspace(h / 4, 3 * h / 4, 17), 0.9
        pose3d = np.random.default_rng(len(self.inputs)).normal(0, 200, (17, 3))
        return [
            {
                "category_id": 1,
                "bbox": [w / 4, h / 8, w / 2, 3 * h / 4],
                "score": 0.8,
                "keypoints": kps.ravel().tolist(),
                "keypoints3d": pose3d.ravel().tolist(),
            }
        ]


def test_predict_cli_writes_results_overlays_and_plots(tmp_path):
    torch.manual_seed(0)
    checkpoint = save_student(build_student(TINY), tmp_path / "last.pt")
    write_video(tmp_path / "clip.avi", frames=2)
    folder = tmp_path / "stills"
    folder.mkdir()
    for name in ("a.png", "b.png"):
        cv2.imwrite(str(folder / name), np.full((110, 120, 3), 200, np.uint8))
    out = tmp_path / "out"
    options = "--score-threshold 0 --overlay --plot3d-every 2 --root-depth 4000 --proposals 50"
    inputs = [str(tmp_path / "clip.avi"), str(folder)]
    code = main(["predict", str(checkpoint), *inputs, "--out", str(out), *options.split()])
    assert code == 0
    results = json.loads((out / "results.json").read_text())
    index = json.loads((out / "images.json").read_text())
    images = {img["id"]: img for img in index["images"]}
    assert sorted(images) == list(range(1, 5))  # 2 video frames, then 2 stills
    assert images[1]["file_name"].endswith("clip.avi#frame=000000")
    assert images[2]["frame_index"] == 1 and "frame_index" not in images[3]
    assert images[3]["file_name"].endswith("a.png")
    assert (images[1]["width"], images[1]["height"]) == (128, 96)
    assert "downscale" not in images[1]
    assert len(results) == 4 * TINY.detections_per_img
    for r in results:
        assert r["image_id"] in images and r["category_id"] == 1
        assert len(r["bbox"]) == 4 and len(r["keypoints"]) == 51 and len(r["keypoints3d"]) == 51
        root = np.asarray(r["keypoints3d"]).reshape(17, 3)[[11, 12]].mean(axis=0)
        assert np.abs(root).max() < 1.0  # root-relative
    assert index["info"]["model"] == str(checkpoint)
    video = cv2.VideoCapture(str(out / "overlays" / "clip_overlay.mp4"))
    assert int(video.get(cv2.CAP_PROP_FRAME_COUNT)) == 2
    assert int(video.get(cv2.CAP_PROP_FRAME_WIDTH)) == 128
    stills = sorted(p.name for p in (out / "overlays").glob("*.jpg"))
    assert stills == ["000003_a.jpg", "000004_b.jpg"]
    assert sorted(p.name for p in (out / "plots3d").iterdir()) == ["000001.png", "000003.png"]
    assert "predict:" in (out / "predict.log").read_text()


def test_interrupted_run_resumes_without_redoing_frames(tmp_path):
    write_video(tmp_path / "clip.avi", frames=5)
    first = FakePredictor()
    options = PredictOptions(out=tmp_path / "out", progress=False, max_frames=2)
    summary = run_predict(first, [str(tmp_path / "clip.avi")], options)
    assert summary.frames == summary.predicted == 2
    again = FakePredictor()
    options.max_frames = None
    summary = run_predict(again, [str(tmp_path / "clip.avi")], options)
    assert summary.frames == 5 and summary.predicted == 3 and len(again.inputs) == 3
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert [r["image_id"] for r in results] == [1, 2, 3, 4, 5]
    # a different input list under the same journal is refused, naming the frame
    (tmp_path / "other.avi").write_bytes((tmp_path / "clip.avi").read_bytes())
    inputs = [str(tmp_path / "other.avi"), str(tmp_path / "clip.avi")]
    with pytest.raises(JournalMismatch, match=r"clip\.avi#frame=000000 was image 1"):
        run_predict(FakePredictor(), inputs, options)


def test_score_threshold_filters_what_is_written(tmp_path):
    write_video(tmp_path / "clip.avi", frames=2)
    options = PredictOptions(out=tmp_path / "out", progress=False, score_threshold=0.9)
    summary = run_predict(FakePredictor(), [str(tmp_path / "clip.avi")], options)
    assert summary.frames == 2 and summary.people == 0
    assert json.loads((tmp_path / "out" / "results.json").read_text()) == []


def test_already_low_resolution_input_is_upsampled_for_the_network(tmp_path):
    assert guess_lowres_factor(53, 40) == 12 and guess_lowres_factor(480, 360) == 1
    cv2.imwrite(str(tmp_path / "or.png"), np.full((40, 53, 3), 120, np.uint8))
    fake = FakePredictor()
    options = PredictOptions(out=tmp_path / "out", progress=False, overlays=True)
    run_predict(fake, [str(tmp_path / "or.png")], options)
    assert fake.inputs[0].shape == (480, 636, 3)  # 53x40 x 12, as the student was trained
    (image,) = json.loads((tmp_path / "out" / "images.json").read_text())["images"]
    assert (image["width"], image["height"], image["downscale"]) == (636, 480, 12.0)
    assert (image["lowres_width"], image["lowres_height"]) == (53, 40)
    (drawn,) = (tmp_path / "out" / "overlays").glob("*.jpg")
    assert cv2.imread(str(drawn)).shape == (40, 53, 3)


def test_streams_are_recognised_and_read(tmp_path):
    assert is_stream("0") and is_stream("rtsp://camera.local/stream1")
    assert not is_stream(str(tmp_path / "clip.avi"))
    write_video(tmp_path / "clip.avi", frames=4, size=(32, 24))
    frames = list(iter_stream(str(tmp_path / "clip.avi"), step=2, limit=5))
    assert [f.frame_index for f in frames] == [0, 2]
    with pytest.raises(ValueError, match="cannot open the stream"):
        list(iter_stream("rtsp://127.0.0.1:1/none"))
