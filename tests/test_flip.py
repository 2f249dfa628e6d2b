"""The one horizontal flip (orpose.skeleton): keypoints at pixel indices (x' = W - 1 - x), boxes
as edges (x' = W - x), the same in the Keypoint R-CNN dataset and the CPU student's crops."""

import json

import cv2
import numpy as np
import pytest

from orpose.data.coco import load_pose_dataset
from orpose.data.lowres import LowResSchedule
from orpose.skeleton import (
    COCO_KEYPOINTS,
    FLIP_INDEX,
    KEYPOINT_INDEX,
    flip_boxes,
    flip_keypoints,
    flip_x,
)
from orpose.training.dataset import PseudoLabelDataset
from orpose.training.distillation_data import crop_matrix, transform_points, warp

W, H = 64, 48


def bright_person() -> tuple[np.ndarray, np.ndarray]:
    """An image whose keypoint pixels each hold a colour of their own (the rest is black), and
    the keypoints: integer pixel indices, all visible."""
    rng = np.random.default_rng(3)
    xs = rng.choice(np.arange(3, W - 3), size=17, replace=False)
    ys = rng.choice(np.arange(3, H - 3), size=17, replace=False)
    kps = np.stack([xs, ys, np.full(17, 2)], axis=1).astype(np.float64)
    image = np.zeros((H, W, 3), np.uint8)
    for k, (x, y, _) in enumerate(kps.astype(int)):
        image[y, x] = colour(k)
    return image, kps


def colour(k: int) -> tuple[int, int, int]:
    return (40 + 10 * k, 255 - 10 * k, 100)


def test_flip_x_is_the_mirror_of_pixel_indices():
    columns = np.arange(W)
    mirrored = columns[::-1]  # what image[:, ::-1] does to pixel columns
    assert all(mirrored[int(flip_x(i, W))] == i for i in columns)


def test_flipping_an_image_and_its_keypoints_twice_is_the_identity():
    image, kps = bright_person()
    boxes = np.array([[3.0, 4.0, 20.0, 40.0], [0.0, 0.0, W, H]])
    np.testing.assert_array_equal(np.ascontiguousarray(image[:, ::-1])[:, ::-1], image)
    np.testing.assert_allclose(flip_keypoints(flip_keypoints(kps, W), W), kps)
    np.testing.assert_allclose(flip_boxes(flip_boxes(boxes, W), W), boxes)
    assert flip_boxes(boxes, W)[1].tolist() == [0.0, 0.0, W, H]  # the whole image stays whole


def test_left_and_right_joints_swap():
    for k, name in enumerate(COCO_KEYPOINTS):
        other = COCO_KEYPOINTS[FLIP_INDEX[k]]
        if name.startswith("left_"):
            assert other == "right_" + name[5:]
        elif name.startswith("right_"):
            assert other == "left_" + name[6:]
        else:
            assert other == name
    kps = np.zeros((17, 3))
    kps[:, 0] = np.arange(17)
    flipped = flip_keypoints(kps, W)
    left, right = KEYPOINT_INDEX["left_wrist"], KEYPOINT_INDEX["right_wrist"]
    assert flipped[left, 0] == W - 1 - kps[right, 0]
    assert flipped[right, 0] == W - 1 - kps[left, 0]


def flipped_sample(tmp_path):
    """A sample of the Keypoint R-CNN training dataset (orpose.training.dataset) that was
    mirrored, and the original image and keypoints."""
    image, kps = bright_person()
    (tmp_path / "images").mkdir()
    cv2.imwrite(str(tmp_path / "images" / "a.png"), image[..., ::-1])  # RGB -> BGR file
    x0, y0 = kps[:, 0].min(), kps[:, 1].min()
    x1, y1 = kps[:, 0].max() + 1, kps[:, 1].max() + 1  # the edges of the outermost pixels
    ann = {
        "id": 1, "image_id": 1, "category_id": 1, "iscrowd": 0, "num_keypoints": 17,
        "bbox": [x0, y0, x1 - x0, y1 - y0], "area": float((x1 - x0) * (y1 - y0)),
        "keypoints": kps.ravel().tolist(),
    }  # fmt: skip
    coco = {"images": [{"id": 1, "file_name": "a.png", "width": W, "height": H}],
            "annotations": [ann]}  # fmt: skip
    (tmp_path / "a.json").write_text(json.dumps(coco))
    dataset = PseudoLabelDataset(
        load_pose_dataset(tmp_path / "a.json"), LowResSchedule.from_spec(1), flip=True
    )
    for seed in range(100):
        tensor, target = dataset[0, seed]
        pixels = (tensor.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
        if not np.array_equal(pixels, image):
            np.testing.assert_array_equal(pixels, image[:, ::-1])  # a mirror, nothing else
            return pixels, target, image, kps
    pytest.fail("no seed of 100 flipped the sample")


def test_a_flipped_samples_keypoints_sit_on_their_flipped_pixels(tmp_path):
    pixels, target, _, _ = flipped_sample(tmp_path)
    flipped = target["keypoints"][0].numpy()
    for k in range(17):
        x, y = flipped[k, :2]
        assert x == int(x) and y == int(y)  # whole pixels stay whole pixels
        # joint k of the mirrored person is joint FLIP_INDEX[k] of the original: its colour
        assert tuple(pixels[int(y), int(x)]) == colour(FLIP_INDEX[k]), COCO_KEYPOINTS[k]
    # the soft set goes the same way
    np.testing.assert_allclose(target["keypoints_soft"][0, :, :2].numpy(), flipped[:, :2])


def test_a_flipped_samples_box_still_holds_its_keypoints(tmp_path):
    pixels, target, _, _ = flipped_sample(tmp_path)
    x0, y0, x1, y1 = target["boxes"][0].tolist()
    xs, ys = target["keypoints"][0, :, 0].numpy(), target["keypoints"][0, :, 1].numpy()
    # edges: pixel i spans [i, i + 1]; the box is again exactly the outermost keypoint pixels
    assert x0 == xs.min() and x1 == xs.max() + 1
    assert y0 == ys.min() and y1 == ys.max() + 1
    lit = np.argwhere(pixels.any(axis=2))
    assert lit[:, 1].min() == x0 and lit[:, 1].max() + 1 == x1


def test_the_cpu_crop_flip_agrees_with_the_image_flip():
    """The CPU student's mirrored crop (crop_matrix) puts each keypoint on its bright pixel, as
    mirroring the image first and cropping it unmirrored does (the same flip)."""
    image, kps = bright_person()
    box = np.array([0.0, 0.0, W, H])
    crop_size = (W, H)
    mirrored_crop = crop_matrix(box, crop_size, 1.0, flip=True)
    plain = crop_matrix(box, crop_size, 1.0)
    np.testing.assert_allclose(plain, [[1, 0, 0], [0, 1, 0]], atol=1e-9)  # the whole image as is
    crop = warp(image, mirrored_crop, crop_size)
    np.testing.assert_array_equal(crop, image[:, ::-1])
    moved = transform_points(kps[:, :2], mirrored_crop)
    np.testing.assert_allclose(moved, flip_keypoints(kps, W)[list(FLIP_INDEX), :2])
    for k in range(17):
        x, y = np.round(moved[k]).astype(int)
        assert tuple(crop[y, x]) == colour(k)
