"""Privacy mode: no artefact of `orpose predict --downscale` exceeds the low resolution."""

import json

import cv2
import numpy as np
import pytest

from orpose.cli import main
from orpose.data.lowres import degrade, low_resolution_size
from orpose.data.sources import iter_images, iter_video
from orpose.inference.pipeline import PredictOptions, run_predict
from orpose.inference.privacy import Shrinker
from orpose.predictor import save_student
from test_inference_predict import TINY, FakePredictor, write_video

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"}
VIDEO_SUFFIXES = {".mp4", ".avi", ".mov", ".mkv"}
TEXT_SUFFIXES = {".json", ".jsonl", ".log", ".txt", ".csv"}


def _textured(h: int, w: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _dimensions(path) -> tuple[int, int]:
    """(width, height) of an image or of every frame of a video."""
    if path.suffix.lower() in IMAGE_SUFFIXES:
        image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        return image.shape[1], image.shape[0]
    video = cv2.VideoCapture(str(path))
    sizes = set()
    while True:
        ok, frame = video.read()
        if not ok:
            break
        sizes.add((frame.shape[1], frame.shape[0]))
    assert len(sizes) == 1, sizes
    return sizes.pop()


def _longest_numbers(value) -> int:
    """Length of the longest list of numbers anywhere in a JSON document."""
    if isinstance(value, dict):
        return max((_longest_numbers(v) for v in value.values()), default=0)
    if isinstance(value, list):
        numbers = len(value) if all(isinstance(v, int | float) for v in value) else 0
        return max([numbers, *(_longest_numbers(v) for v in value)])
    return 0


def check_privacy(out, low: tuple[int, int], plots_folder: str = "plots3d") -> int:
    """Every file below ``out``: pictures and videos at most ``low``, texts without pixel data.

    3D plots are the one picture type allowed to be larger: they are drawn from 3D keypoints
    only (``render.plot_people_3d`` takes no image), so they live in their own folder.
    Returns the number of files checked.
    """
    files = [p for p in out.rglob("*") if p.is_file()]
    for path in files:
        suffix = path.suffix.lower()
        if suffix in IMAGE_SUFFIXES | VIDEO_SUFFIXES:
            if path.parent.name == plots_folder:
                continue
            w, h = _dimensions(path)
            assert w <= low[0] and h <= low[1], f"{path} is {w}x{h}, above {low}"
        elif suffix in TEXT_SUFFIXES:
            lines = path.read_text().splitlines()
            assert max((len(line) for line in lines), default=0) < 20_000, path
            if suffix in (".json", ".jsonl"):
                documents = (
                    [json.loads(line) for line in lines]
                    if suffix == ".jsonl"
                    else [json.loads("\n".join(lines))]
                )
                # no array of pixel values: a person's keypoints are the longest list, 17 x 3
                assert max(_longest_numbers(d) for d in documents) <= 51, path
        else:
            raise AssertionError(f"unexpected artefact {path}")
    return len(files)


def test_frames_are_shrunk_inside_the_source(tmp_path):
    write_video(tmp_path / "clip.avi", frames=2, size=(160, 120))
    shrinker = Shrinker(8)
    frames = list(iter_video(tmp_path / "clip.avi", prepare=shrinker))
    assert [f.image.shape for f in frames] == [(15, 20, 3)] * 2
    assert shrinker.last_size == (160, 120)  # only the size of the decoded frame is kept
    cv2.imwrite(str(tmp_path / "still.png"), _textured(90, 130, 0))
    (still,) = iter_images([tmp_path / "still.png"], prepare=shrinker)
    assert still.image.shape == (11, 16, 3) and shrinker.last_size == (130, 90)


def test_no_saved_artefact_exceeds_the_low_resolution(tmp_path):
    scale = 8
    write_video(tmp_path / "clip.avi", frames=3, size=(160, 120))
    frame = _textured(150, 200, 1)
    cv2.imwrite(str(tmp_path / "still.png"), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    fake = FakePredictor()
    out = tmp_path / "out"
    options = PredictOptions(
        out=out, progress=False, downscale=scale, overlays=True, plot3d_every=1, root_depth_mm=3000
    )
    run_predict(fake, [str(tmp_path / "clip.avi"), str(tmp_path / "still.png")], options)
    # the network saw the small frame upsampled: exactly the training-time degradation
    assert fake.inputs[-1].shape == frame.shape
    np.testing.assert_array_equal(fake.inputs[-1], degrade(frame, scale))
    # every artefact: overlays at 20x15 (video) and 25x18 (still), nothing larger
    low = max(low_resolution_size(160, 120, scale), low_resolution_size(200, 150, scale))
    assert check_privacy(out, low) >= 8
    assert _dimensions(out / "overlays" / "clip_overlay.mp4") == (20, 14)  # even sides
    assert _dimensions(next((out / "overlays").glob("*.jpg"))) == (25, 18)
    assert len(list((out / "plots3d").glob("*.png"))) == 4
    images = json.loads((out / "images.json").read_text())["images"]
    assert [(i["lowres_width"], i["lowres_height"]) for i in images] == [(20, 15)] * 3 + [(25, 18)]
    assert all(i["downscale"] == scale for i in images)
    assert (images[-1]["width"], images[-1]["height"]) == (200, 150)  # results in camera pixels


@pytest.mark.shared
def test_privacy_mode_on_the_real_video_with_a_student(tmp_path, shared):
    import torch

    from orpose.student import build_student

    torch.manual_seed(0)
    checkpoint = save_student(build_student(TINY), tmp_path / "last.pt")
    video = shared / "data" / "pets09_s2l1" / "vtest_480x360.avi"
    out = tmp_path / "out"
    options = "--downscale 12 --max-frames 2 --overlay --score-threshold 0 --proposals 50"
    code = main(["predict", str(checkpoint), str(video), "--out", str(out), *options.split()])
    assert code == 0
    assert check_privacy(out, (40, 30)) >= 5
    assert _dimensions(out / "overlays" / "vtest_480x360_overlay.mp4") == (40, 30)
    results = json.loads((out / "results.json").read_text())
    assert len(results) == 2 * TINY.detections_per_img


def test_the_check_catches_a_full_resolution_frame(tmp_path):
    cv2.imwrite(str(tmp_path / "leak.png"), _textured(120, 160, 2))
    with pytest.raises(AssertionError, match="above"):
        check_privacy(tmp_path, (20, 15))
    (tmp_path / "leak.png").unlink()
    (tmp_path / "pixels.json").write_text(json.dumps({"image": list(range(300))}))
    with pytest.raises(AssertionError, match=r"pixels\.json"):
        check_privacy(tmp_path, (20, 15))
