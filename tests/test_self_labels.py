"""Self-labelling of low-resolution-only frames and their training samples."""

import json
import random

import numpy as np
import pytest

from orpose.data.coco import load_pose_dataset
from orpose.data.lowres import upsample
from orpose.data.sources import Frame
from orpose.skeleton import FLIP_INDEX, KEYPOINT_INDEX
from orpose.training.distillation_data import stored_downscale, upscale_annotation
from orpose.training.self_labels import consistent_people, self_label, unflip


def person(x, y, w, h, score, keypoints):
    return {"bbox": [x, y, w, h], "score": score, "keypoints": np.ravel(keypoints).tolist()}


def test_unflip_is_its_own_inverse_and_maps_pixel_indices():
    kps = np.zeros((17, 3))
    kps[:, 0] = np.arange(17) * 3.0
    kps[:, 1] = 5.0
    kps[:, 2] = 0.9
    r = person(10, 20, 30, 40, 0.8, kps)
    flipped = unflip([r], 100)[0]
    # box edges: x -> width - x; keypoints at pixel indices: x -> width - 1 - x, sides swapped
    assert flipped["bbox"] == [60, 20, 30, 40]
    back = np.asarray(flipped["keypoints"]).reshape(17, 3)
    left_shoulder = KEYPOINT_INDEX["left_shoulder"]
    right_shoulder = KEYPOINT_INDEX["right_shoulder"]
    assert back[left_shoulder, 0] == 99 - kps[right_shoulder, 0]
    again = unflip([flipped], 100)[0]
    np.testing.assert_allclose(np.asarray(again["keypoints"]).reshape(17, 3), kps)
    assert again["bbox"] == [10, 20, 30, 40]


def test_a_flipped_image_gives_the_same_person_back():
    """A predictor that finds the bright square's corner: mirrored image, unflipped result =
    the plain one (the pixel-index convention of the flip)."""
    image = np.zeros((40, 60, 3), np.uint8)
    image[10:20, 7:15] = 255

    def predictor(img):
        ys, xs = np.nonzero(img[..., 0])
        kps = np.zeros((17, 3))
        kps[:, 0], kps[:, 1], kps[:, 2] = xs.min(), ys.min(), 1.0
        kps[list(FLIP_INDEX)] = kps  # symmetric: the same point for both sides
        return [person(xs.min(), ys.min(), xs.max() + 1 - xs.min(), ys.max() + 1 - ys.min(), 0.9,
                       kps)]  # fmt: skip

    plain = predictor(image)[0]
    mirrored = unflip(predictor(np.ascontiguousarray(image[:, ::-1])), 60)[0]
    assert mirrored["bbox"] == plain["bbox"]
    # the left edge of the square seen mirrored is its right edge: x = 14 -> 60 - 1 - 45
    assert np.asarray(mirrored["keypoints"]).reshape(17, 3)[0, 0] == 14


def test_consistent_people_keeps_agreeing_pairs_and_damps_disagreement():
    kps = np.tile([50.0, 60.0, 0.8], (17, 1))
    other = kps.copy()
    other[0, :2] += [10.0, 0.0]  # the nose 10 px off: 0.1 box heights
    a = person(0, 0, 50, 100, 0.9, kps)
    b = person(2, 0, 50, 100, 0.7, other)
    lonely = person(300, 300, 20, 40, 0.95, kps)
    weak = person(0, 0, 50, 100, 0.1, kps)
    found = consistent_people([a, lonely, weak], [b], min_score=0.3, min_iou=0.5, agreement=0.05)
    assert len(found) == 1
    p = found[0]
    assert p["score"] == pytest.approx(0.8)
    assert p["bbox"] == [1, 0, 50, 100]
    np.testing.assert_allclose(p["keypoints"][0, :2], [55, 60])
    assert p["keypoints"][1, 2] == pytest.approx(0.8)  # agreeing: the mean confidence
    # 10 px apart with a spread of 5 px: exp(-0.5 * 2^2)
    assert p["keypoints"][0, 2] == pytest.approx(0.8 * np.exp(-2.0))


def test_self_label_file_is_in_small_pixels_and_trains_upsampled(tmp_path):
    small = np.random.default_rng(0).integers(0, 255, (40, 53, 3), np.uint8)
    path = tmp_path / "frame.png"
    import cv2

    cv2.imwrite(str(path), small[..., ::-1])
    seen = []
    kps = np.tile([318.5, 240.0, 0.9], (17, 1))

    def predictor(img):
        seen.append(img.shape)
        return [person(300, 100, 40, 200, 0.8, kps)] if len(seen) % 2 else unflip(
            [person(300, 100, 40, 200, 0.8, kps)], img.shape[1])  # fmt: skip

    labels = self_label(predictor, [Frame(str(path), small, str(path))], 12, progress=False)
    assert seen == [(480, 636, 3), (480, 636, 3)]
    img = labels["images"][0]
    assert (img["width"], img["height"], img["stored_downscale"]) == (53, 40, 12)
    ann = labels["annotations"][0]
    np.testing.assert_allclose(ann["bbox"], [25, 100 / 12, 40 / 12, 200 / 12], atol=0.01)
    soft = np.asarray(ann["keypoints_soft"]).reshape(17, 3)
    np.testing.assert_allclose(soft[:, 0], (318.5 + 0.5) / 12 - 0.5, atol=1e-3)
    assert ann["num_keypoints"] == 17
    out = tmp_path / "labels.json"
    out.write_text(json.dumps(labels))
    data = load_pose_dataset(out, check_images=True)
    record = data.images[0]
    assert stored_downscale(record) == 12
    back = upscale_annotation(data.annotations[0], 12)
    np.testing.assert_allclose(np.asarray(back["keypoints_soft"]).reshape(17, 3)[:, 0], 318.5,
                               atol=0.02)  # fmt: skip
    np.testing.assert_allclose(back["bbox"], [300, 100, 40, 200], atol=0.1)


def test_distillation_data_trains_stored_frames_at_their_scale(tmp_path, shared):
    """Persons of a stored 1/12 frame come upsampled, unmirrored-degraded once only, with the
    labels' own Gaussians as targets; the frame teaches the detector nothing."""
    import cv2

    from orpose.data.lowres import LowResSchedule
    from orpose.manifest import find_model, load_manifest, verify_model
    from orpose.paths import models_dir
    from orpose.training.distillation_data import Augmentation, DistillationData, TeacherOutputs

    small = np.full((40, 53, 3), 90, np.uint8)
    path = tmp_path / "f.png"
    cv2.imwrite(str(path), small)
    kps = np.tile([26.0, 20.0, 0.9], (17, 1))
    labels = {
        "images": [
            {"id": 1, "file_name": str(path), "width": 53, "height": 40, "stored_downscale": 12}
        ],
        "annotations": [
            {
                "id": 1,
                "image_id": 1,
                "category_id": 1,
                "iscrowd": 0,
                "bbox": [20, 5, 12, 30],
                "area": 360,
                "num_keypoints": 17,
                "keypoints": np.c_[kps[:, :2], np.full(17, 2)].ravel().tolist(),
                "keypoints_soft": kps.ravel().tolist(),
            }
        ],
        "categories": [{"id": 1, "name": "person"}],
    }
    f = tmp_path / "labels.json"
    f.write_text(json.dumps(labels))
    manifest = load_manifest()
    det = verify_model(find_model("picodet_s_320_lcnet_pedestrian", manifest, "detector"),
                       models_dir())  # fmt: skip
    pose = verify_model(find_model("tinypose_256x192", manifest, "pose"), models_dir())
    data = DistillationData([load_pose_dataset(f)], LowResSchedule(), TeacherOutputs(det, pose),
                            (192, 256), (320, 320),
                            augmentation=Augmentation(flip=False, scale_jitter=0,
                                                      shift_jitter=0, rotation_prob=0))  # fmt: skip
    assert data.images == [] and len(data.persons) == 1
    item = data.person(0, random.Random(0))
    assert item["scale"] == 12
    assert item["crop"].shape == (256, 192, 3)
    # the target is the labels' Gaussian: its peak on the (upsampled) keypoint's cell
    teacher = item["teacher"]
    peak = np.unravel_index(teacher[0].argmax(), teacher[0].shape)
    expected = item["soft"][0, 1::-1] / 4
    np.testing.assert_allclose(peak, expected, atol=1.0)
    assert teacher[0].max() == pytest.approx(0.9, abs=0.05)
    upsampled = upsample(small, (636, 480))
    assert upsampled.shape == (480, 636, 3)
