"""Several cameras in one ``orpose predict`` process: one folder per camera, resumable, and the
batched network call equal to one call per frame."""

import json

import numpy as np
import pytest
import torch

from orpose.inference.cli import concurrent_streams
from orpose.inference.pipeline import PredictOptions, Source
from orpose.inference.streams import camera_names, run_predict_streams
from orpose.predictor import StudentPredictor
from orpose.student import build_student
from test_inference_predict import TINY, FakePredictor, write_video


class BatchFake(FakePredictor):
    """The fake, with the batched call the PyTorch students have on a GPU (records the batch
    sizes)."""

    device = torch.device("cuda")  # only its type is read: the batch is for GPUs

    def __init__(self):
        super().__init__()
        self.batches: list[int] = []

    def batch(self, images, original_sizes):
        self.batches.append(len(images))
        return [self(image) for image in images]


def test_two_videos_as_cameras_get_a_folder_each_and_resume(tmp_path):
    write_video(tmp_path / "cam1.avi", frames=4)
    write_video(tmp_path / "cam2.avi", frames=2)
    fake = BatchFake()
    options = PredictOptions(out=tmp_path / "out", progress=False, track=True)
    inputs = [str(tmp_path / "cam1.avi"), str(tmp_path / "cam2.avi")]
    summary = run_predict_streams(fake, inputs, options)
    assert list(summary.cameras) == ["cam1", "cam2"]
    assert [c.frames for c in summary.cameras.values()] == [4, 2]
    # a frame of each camera per network call while both run, then cam1 alone
    assert fake.batches == [2, 2] and len(fake.inputs) == 6
    for name, frames in (("cam1", 4), ("cam2", 2)):
        results = json.loads((tmp_path / "out" / name / "results.json").read_text())
        images = json.loads((tmp_path / "out" / name / "images.json").read_text())["images"]
        assert [i["id"] for i in images] == list(range(1, frames + 1))
        assert sorted({r["image_id"] for r in results}) == list(range(1, frames + 1))
        assert {r["track_id"] for r in results} == {1}  # one person, one track per camera
    again = BatchFake()  # a rerun reads every frame back from the journals
    summary = run_predict_streams(again, inputs, options)
    assert again.inputs == [] and summary.predicted == 0
    assert [c.frames for c in summary.cameras.values()] == [4, 2]


def test_on_a_cpu_the_cameras_frames_are_posed_in_threads(tmp_path):
    import threading

    write_video(tmp_path / "a.avi", frames=3)
    write_video(tmp_path / "b.avi", frames=3)

    class Threads(BatchFake):
        device = torch.device("cpu")

        def __init__(self):
            super().__init__()
            self.threads: set[str] = set()

        def __call__(self, image):
            self.threads.add(threading.current_thread().name)
            return super().__call__(image)

    fake = Threads()
    options = PredictOptions(out=tmp_path / "out", progress=False)
    summary = run_predict_streams(fake, [str(tmp_path / "a.avi"), str(tmp_path / "b.avi")], options)
    assert fake.batches == [] and len(fake.inputs) == 6  # no batch on a CPU
    assert all(name.startswith("orpose-camera") for name in fake.threads)
    assert [c.frames for c in summary.cameras.values()] == [3, 3]


def test_privacy_mode_shrinks_each_camera_and_predicts_on_the_camera_size(tmp_path):
    write_video(tmp_path / "a.avi", frames=3, size=(128, 96))
    write_video(tmp_path / "b.avi", frames=3, size=(160, 120))
    fake = FakePredictor()  # no batch: frames go through one at a time
    options = PredictOptions(out=tmp_path / "out", progress=False, downscale=4)
    run_predict_streams(fake, [str(tmp_path / "a.avi"), str(tmp_path / "b.avi")], options)
    assert sorted({x.shape for x in fake.inputs}) == [(96, 128, 3), (120, 160, 3)]
    (image,) = json.loads((tmp_path / "out" / "b" / "images.json").read_text())["images"][:1]
    assert (image["lowres_width"], image["lowres_height"], image["width"]) == (40, 30, 160)


def test_a_broken_camera_stops_the_run_with_its_error_and_keeps_the_others(tmp_path):
    write_video(tmp_path / "good.avi", frames=3)
    with pytest.raises(ValueError, match="cannot open the stream"):
        run_predict_streams(
            FakePredictor(),
            [str(tmp_path / "good.avi"), "rtsp://127.0.0.1:1/none"],
            PredictOptions(out=tmp_path / "out", progress=False),
        )
    assert (tmp_path / "out" / "good" / "results.json").is_file()


def test_camera_names_and_when_streams_are_concurrent():
    sources = [
        Source("0", "stream"),
        Source("rtsp://or.local/cam", "stream"),
        Source("/data/day1/cam1.mp4", "video"),
        Source("/other/cam1.mp4", "video"),
        Source("/data/frames/", "images"),
    ]
    assert camera_names(sources) == ["camera0", "rtsp_or.local_cam", "cam1", "cam1_2", "frames"]
    assert concurrent_streams(["0", "1"], asked=False)
    assert not concurrent_streams(["0", "clip.mp4"], asked=False)
    assert concurrent_streams(["a.mp4", "b.mp4"], asked=True)


def test_student_batch_equals_one_call_per_frame():
    torch.manual_seed(0)
    predictor = StudentPredictor(build_student(TINY), device="cpu")
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 255, (96, 128, 3), dtype=np.uint8) for _ in range(2)]
    frames.append(rng.integers(0, 255, (80, 120, 3), dtype=np.uint8))  # another camera size
    one_by_one = [predictor(f) for f in frames]
    batched = predictor.batch(frames, [None] * 3)
    assert [len(r) for r in batched] == [len(r) for r in one_by_one]
    for a, b in zip(batched, one_by_one, strict=True):
        for ra, rb in zip(a, b, strict=True):
            np.testing.assert_allclose(ra["keypoints"], rb["keypoints"], atol=1e-3)
            np.testing.assert_allclose(ra["bbox"], rb["bbox"], atol=1e-3)


def test_batched_cameras_tell_the_student_each_frames_threshold():
    """On the GPU path, one network call for the cameras' frames still gives a student that
    can skip posing (``accepts_min_score``) each frame's threshold (predict's default for its
    factor: 0.25 at 1x, 0.17 at 12x), half a rounding step lower, over the factor's
    pose-confidence bound (0.85 at 1x, 0.65 at 12x)."""
    from orpose.inference.pipeline import predict_frames
    from orpose.inference.privacy import frame_geometry

    class TellingFake(BatchFake):
        accepts_min_score = True

        def batch(self, images, original_sizes, min_scores):
            self.told = min_scores
            return super().batch(images, original_sizes)

    fake = TellingFake()
    big, small = np.zeros((480, 640, 3), np.uint8), np.zeros((40, 53, 3), np.uint8)
    frames = [(big, frame_geometry(big)), (small, frame_geometry(small))]
    found = predict_frames(fake, frames, score_threshold=None)
    assert fake.batches == [2] and [len(r) for r in found] == [1, 1]
    least = (0.25 / 0.85, 0.17 / 0.65)
    assert fake.told == pytest.approx(least, abs=1e-5)
    assert all(t < s for t, s in zip(fake.told, least, strict=True))
    fake.pose_confidence_bound = 1.0  # exact: from the thresholds themselves
    predict_frames(fake, frames, score_threshold=None)
    assert fake.told == pytest.approx([0.25, 0.17], abs=1e-5)

    class FactorFake(TellingFake):  # a student that picks its detector by the factor
        accepts_factor = True

        def batch(self, images, original_sizes, min_scores, factors):
            self.factors = factors
            return super().batch(images, original_sizes, min_scores)

    fake = FactorFake()
    predict_frames(fake, frames, score_threshold=None)
    assert fake.factors == [1.0, frames[1][1].factor] and frames[1][1].factor > 1
