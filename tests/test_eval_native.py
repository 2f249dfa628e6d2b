"""`orpose eval --model ... --native-lowres`: the student gets the small image itself and its
results come back in the ground truth's pixels; the paper's protocol gets the image upsampled."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import tiny_dataset_json
from orpose.data.coco import load_pose_dataset
from orpose.evaluation.runner import predict_dataset


class Recorder:
    """A predictor that remembers the images it got and finds one person at pixel (2, 1)."""

    def __init__(self):
        self.shapes: list[tuple[int, ...]] = []

    def __call__(self, image: np.ndarray) -> list[dict]:
        self.shapes.append(image.shape)
        kps = [2.0, 1.0, 0.9] * 17
        return [{"category_id": 1, "bbox": [1.0, 1.0, 4.0, 8.0], "score": 0.8, "keypoints": kps}]


@pytest.mark.parametrize("native", [False, True])
def test_native_eval_feeds_the_small_image_and_maps_back(tmp_path, native):
    gt = load_pose_dataset(tiny_dataset_json(tmp_path))  # 320x240 images
    predictor = Recorder()
    results = predict_dataset(predictor, gt, 10, tmp_path / f"j{native}.jsonl", native=native)
    assert len(results) == 2 and {r["image_id"] for r in results} == {1, 2}
    if not native:  # the paper's protocol: 32x24 upsampled back to 320x240, results as found
        assert predictor.shapes == [(240, 320, 3)] * 2
        assert results[0]["bbox"] == [1.0, 1.0, 4.0, 8.0]
        return
    assert predictor.shapes == [(24, 32, 3)] * 2
    assert results[0]["bbox"] == pytest.approx([10.0, 10.0, 40.0, 80.0])
    # the centre of small pixel 2 covers large pixels 20..29: centre 24.5
    assert results[0]["keypoints"][:3] == pytest.approx([24.5, 14.5, 0.9])
