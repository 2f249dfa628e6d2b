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
