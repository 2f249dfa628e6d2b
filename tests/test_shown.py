"""What a user sees: recall and precision of the people shown at the predict threshold."""

import pytest

from orpose.data.coco import PoseDataset
from orpose.evaluation.shown import shown_people


def dataset():
    images = [{"id": 1, "file_name": "a.png", "width": 100, "height": 100},
              {"id": 2, "file_name": "b.png", "width": 100, "height": 100}]  # fmt: skip
    anns = [
        {"id": 1, "image_id": 1, "category_id": 1, "bbox": [0, 0, 10, 20], "iscrowd": 0},
        {"id": 2, "image_id": 1, "category_id": 1, "bbox": [50, 50, 10, 20], "iscrowd": 0},
        {"id": 3, "image_id": 1, "category_id": 1, "bbox": [80, 0, 20, 20], "iscrowd": 1},
    ]
    return PoseDataset(images, anns)


def result(image_id, bbox, score):
    return {"image_id": image_id, "bbox": bbox, "score": score}


def test_recall_and_precision_by_hand():
    results = [
        result(1, [0, 0, 10, 20], 0.9),  # matches person 1
        result(1, [1, 0, 10, 20], 0.8),  # the same person again: one-to-one, unmatched
        result(1, [50, 50, 10, 20], 0.3),  # person 2, but below the threshold: not shown
        result(2, [0, 0, 5, 5], 0.7),  # an image without people: unmatched
        result(1, [80, 0, 20, 20], 0.6),  # the crowd region is nobody to find
    ]
    shown = shown_people(dataset(), results, 0.5)
    assert (shown.annotated, shown.shown, shown.matched) == (2, 4, 1)
    assert shown.recall == pytest.approx(0.5)
    assert shown.precision == pytest.approx(0.25)
    everything = shown_people(dataset(), results, 0.0)
    assert (everything.matched, everything.recall) == (2, 1.0)


def test_iou_below_one_half_does_not_match():
    # a box overlapping person 1 with IoU 1/3 (10x20 vs 10x20 shifted by 5 px in x)
    shown = shown_people(dataset(), [result(1, [5, 0, 10, 20], 0.9)], 0.5)
    assert shown.matched == 0
    assert shown_people(dataset(), [result(1, [2, 0, 10, 20], 0.9)], 0.5).matched == 1


def test_default_threshold_follows_the_downscale_factor():
    from orpose.evaluation.shown import SCORE_THRESHOLDS, default_score_threshold

    for factor, threshold in SCORE_THRESHOLDS:
        assert default_score_threshold(factor) == pytest.approx(threshold)
    assert default_score_threshold(4.5) == pytest.approx((0.25 + 0.2) / 2)  # halfway 1x-8x
    assert default_score_threshold(24) == pytest.approx(SCORE_THRESHOLDS[-1][1])
    # the evaluation's "shown" row at 12x uses 12x's threshold: a 0.18 person is shown there
    people = [result(1, [0, 0, 10, 20], 0.18)]
    assert shown_people(dataset(), people, factor=12).matched == 1
    assert shown_people(dataset(), people, factor=1).matched == 0


def test_predict_shows_by_the_frame_factor(tmp_path):
    import cv2
    import numpy as np

    from orpose.inference.pipeline import PredictOptions, run_predict

    class Scored:  # one person scored 0.18: under 1x's 0.25, over 12x's 0.17
        def __call__(self, image):
            return [{"category_id": 1, "bbox": [1, 1, 20, 40], "score": 0.18,
                     "keypoints": [5.0, 5.0, 1.0] * 17}]  # fmt: skip

    cv2.imwrite(str(tmp_path / "a.png"), np.full((480, 640, 3), 90, np.uint8))
    counts = {}
    for factor in (1, 12):
        options = PredictOptions(out=tmp_path / f"o{factor}", progress=False,
                                 score_threshold=None, downscale=factor)  # fmt: skip
        counts[factor] = run_predict(Scored(), [str(tmp_path / "a.png")], options).people
    assert counts == {1: 0, 12: 1}


def test_the_api_default_is_predicts_by_factor():
    import numpy as np

    from orpose.api import Predictor

    class Scored:
        def __call__(self, image):
            return [{"category_id": 1, "bbox": [1, 1, 20, 40], "score": 0.18,
                     "keypoints": [5.0, 5.0, 1.0] * 17}]  # fmt: skip

    predictor = Predictor(Scored(), "scored", None)
    frame = np.full((480, 640, 3), 90, np.uint8)
    assert len(predictor(frame)) == 0 and len(predictor(frame, downscale=12)) == 1
    assert "by factor" in repr(predictor)
