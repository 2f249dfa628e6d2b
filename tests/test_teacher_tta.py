"""Test-time augmentation: views, box fusion, and heatmap averaging with the left/right swap."""

from __future__ import annotations

import numpy as np
import pytest

from orpose.manifest import load_manifest
from orpose.skeleton import FLIP_INDEX, KEYPOINT_INDEX
from orpose.teacher.boxes import Detections, nms, weighted_box_fusion
from orpose.teacher.pose import build_pose_adapter
from orpose.teacher.tta import (
    PoseAugmentation,
    View,
    detection_views,
    drop_cut_boxes,
    estimate_poses,
    fuse_augmentations,
    fuse_maps,
    merge_groups,
    pose_augmentations,
    render_view,
    view_to_image,
)

LEFT_WRIST, RIGHT_WRIST = KEYPOINT_INDEX["left_wrist"], KEYPOINT_INDEX["right_wrist"]


def heatmap_adapter():
    """The TinyPose 256x192 adapter without its ONNX file (64 x 48 maps, stride 4)."""
    return build_pose_adapter(load_manifest()["tinypose_256x192"], None, map_size=(48, 64))


def gaussian(h: int, w: int, x: float, y: float, sigma: float = 2.0) -> np.ndarray:
    ys, xs = np.mgrid[0:h, 0:w]
    return np.exp(-((xs - x) ** 2 + (ys - y) ** 2) / (2 * sigma**2))


def model_output(adapter, crop, joints_xy: np.ndarray) -> tuple[np.ndarray]:
    """What an ideal model returns for a crop: one Gaussian per joint at its map cell. On a
    mirrored crop the person's left side looks like a right side, so channels are swapped."""
    to_cell_x = crop.x.then(adapter.map_x)
    to_cell_y = crop.y.then(adapter.map_y)
    w, h = adapter.map_size
    maps = np.stack([gaussian(h, w, to_cell_x(x), to_cell_y(y)) for x, y in joints_xy])
    if crop.flipped:
        maps = maps[list(FLIP_INDEX)]
    return (maps.astype(np.float32),)


def person_joints(rng: np.random.Generator, box: np.ndarray) -> np.ndarray:
    x1, y1, x2, y2 = box
    return np.stack([rng.uniform(x1 + 5, x2 - 5, 17), rng.uniform(y1 + 5, y2 - 5, 17)], axis=1)


def test_flip_averaging_swaps_left_and_right_exactly():
    adapter = heatmap_adapter()
    box = np.array([100.0, 50.0, 180.0, 260.0])
    joints = person_joints(np.random.default_rng(0), box)
    # Make the left wrist clearly left of the right wrist, as on a real person facing us.
    joints[LEFT_WRIST], joints[RIGHT_WRIST] = [170.0, 150.0], [110.0, 150.0]
    crops = [adapter.crop(box), adapter.crop(box, flip=True)]
    maps = [model_output(adapter, c, joints) for c in crops]
    # The mirrored crop's map, reversed along x, lines up cell for cell with the reference.
    flipped_back = maps[1][0][list(FLIP_INDEX), :, ::-1]
    np.testing.assert_allclose(flipped_back, maps[0][0], atol=1e-5)
    fused = fuse_maps(adapter, crops, maps)
    np.testing.assert_allclose(fused[0], maps[0][0], atol=1e-5)
    cells, conf = adapter.decode(fused, "dark", 1)
    to_x, to_y = adapter.map_to_image(crops[0])
    decoded = np.stack([to_x(cells[:, 0]), to_y(cells[:, 1])], axis=1)
    assert np.abs(decoded - joints).max() < 0.3
    assert conf.min() > 0.9


def test_flip_averaging_without_swap_would_mix_sides():
    """Guards the test above: skipping the swap visibly breaks the wrists."""
    adapter = heatmap_adapter()
    box = np.array([100.0, 50.0, 180.0, 260.0])
    joints = person_joints(np.random.default_rng(1), box)
    joints[LEFT_WRIST], joints[RIGHT_WRIST] = [170.0, 150.0], [110.0, 150.0]
    crops = [adapter.crop(box), adapter.crop(box, flip=True)]
    maps = [model_output(adapter, c, joints) for c in crops]
    unswapped = (maps[1][0][list(FLIP_INDEX)],)  # pre-swap so that fuse_maps' swap cancels out
    fused = fuse_maps(adapter, crops, [maps[0], unswapped])
    assert fused[0][LEFT_WRIST].max() < 0.75  # two half-height peaks instead of one


def test_multi_scale_maps_resample_onto_reference_grid():
    adapter = heatmap_adapter()
    box = np.array([40.0, 30.0, 120.0, 230.0])
    joints = person_joints(np.random.default_rng(2), box)
    augs = pose_augmentations((1.0, 1.3, 0.9), flip=True)
    crops = [adapter.crop(box, a.scale, a.flip) for a in augs]
    maps = [model_output(adapter, c, joints) for c in crops]
    fused = fuse_maps(adapter, crops, maps)
    cells, _ = adapter.decode(fused, "dark", 1)
    to_x, to_y = adapter.map_to_image(crops[0])
    decoded = np.stack([to_x(cells[:, 0]), to_y(cells[:, 1])], axis=1)
    assert np.abs(decoded - joints).max() < 0.6


class DotModel:
    """Stands in for an ONNX pose model: every channel peaks at the brightest input pixel."""

    def __init__(self) -> None:
        self.fixed_batch = None
        self.output_shapes = [[1, 17, 64, 48]]

    def run(self, batch: np.ndarray) -> list[np.ndarray]:
        out = []
        for x in batch:
            brightness = x.sum(axis=0)
            v, u = np.unravel_index(brightness.argmax(), brightness.shape)
            out.append(np.repeat(gaussian(64, 48, u / 4.0, v / 4.0)[None], 17, axis=0))
        return [np.stack(out).astype(np.float32)]


def test_estimate_poses_end_to_end_with_flip_and_scales():
    spec = load_manifest()["tinypose_256x192"]
    adapter = build_pose_adapter(spec, DotModel())  # map size read from output_shapes
    image = np.zeros((300, 200, 3), np.uint8)
    image[141, 83] = 255  # the dot, at x = 83, y = 141
    boxes = np.array([[40.0, 60.0, 130.0, 250.0]])
    for augs in ([(1.0, False)], [(1.0, False), (1.0, True), (1.2, False), (1.2, True)]):
        kps = estimate_poses(adapter, image, boxes, [PoseAugmentation(s, f) for s, f in augs])
        assert kps.shape == (1, 17, 3)
        assert np.abs(kps[0, :, 0] - 83).max() < 1.0
        assert np.abs(kps[0, :, 1] - 141).max() < 1.0


class DotSimccModel:
    """A SimCC (RTMPose-like) stand-in: 1-D peaks at the brightest input pixel, 2 bins/pixel."""

    def __init__(self) -> None:
        self.fixed_batch = None
        self.output_shapes = [[1, 17, 384], [1, 17, 512]]
        self.output_names = ["simcc_x", "simcc_y"]

    def run(self, batch: np.ndarray) -> list[np.ndarray]:
        xs, ys = [], []
        for x in batch:
            brightness = x.sum(axis=0)
            v, u = np.unravel_index(brightness.argmax(), brightness.shape)
            xs.append(np.exp(-((np.arange(384) - 2 * u) ** 2) / 8.0))
            ys.append(np.exp(-((np.arange(512) - 2 * v) ** 2) / 8.0))
        return [np.repeat(np.stack(xs)[:, None], 17, 1), np.repeat(np.stack(ys)[:, None], 17, 1)]


def test_simcc_adapter_end_to_end_with_flip_and_scales():
    import dataclasses

    spec = dataclasses.replace(load_manifest()["tinypose_256x192"], output="simcc", simcc_split=2.0)
    adapter = build_pose_adapter(spec, DotSimccModel())
    assert adapter.map_size == (384, 512)
    image = np.zeros((300, 200, 3), np.uint8)
    image[96:99, 120:123] = 255  # a 3x3 dot centred on x = 121, y = 97 (survives resampling)
    boxes = np.array([[60.0, 20.0, 170.0, 280.0]])
    augs = [PoseAugmentation(s, f) for s in (1.0, 0.9) for f in (False, True)]
    kps = estimate_poses(adapter, image, boxes, augs)
    assert np.abs(kps[0, :, 0] - 121).max() < 1.0
    assert np.abs(kps[0, :, 1] - 97).max() < 1.0
    assert kps[0, :, 2].min() > 0.5


def test_detection_views_tiles_and_flips():
    views = detection_views(640, 480, (1.0, 1.5), flip=True, overlap=0.25)
    groups = sorted({v.group for v in views})
    assert groups == [0, 1, 2, 3]  # (1x, 1x mirrored, 1.5x tiles, 1.5x tiles mirrored)
    tiles = [v for v in views if v.group == 2]
    assert len(tiles) == 4 and all(v.tiled for v in tiles)
    assert min(v.x0 for v in tiles) == 0 and max(v.x1 for v in tiles) == pytest.approx(640)
    assert all(v.size == (427, 320) for v in tiles)
    zoom_out = detection_views(100, 80, (0.5,), flip=False, overlap=0.25)
    assert zoom_out[0].size == (200, 160) and zoom_out[0].x0 == -50


def test_render_and_map_back_a_flipped_padded_view():
    image = np.random.default_rng(3).integers(0, 255, (40, 60, 3), dtype=np.uint8)
    view = View(-10, -5, 70, 45, flip=True, group=0)
    pixels = render_view(image, view, 114)
    assert pixels.shape == (50, 80, 3)
    canvas = pixels[:, ::-1]
    np.testing.assert_array_equal(canvas[5:45, 10:70], image)
    assert (canvas[:5] == 114).all() and (canvas[:, :10] == 114).all()
    # A box around view columns 20..30 (mirrored) is image columns 80-30-10 .. 80-20-10.
    back = view_to_image(Detections(np.array([[20.0, 10.0, 30.0, 20.0]]), np.array([0.9])), view)
    np.testing.assert_allclose(back.boxes[0], [40.0, 5.0, 50.0, 15.0])


def test_drop_cut_boxes_only_at_inner_tile_edges():
    view = View(0, 0, 100, 80, flip=False, group=0, tiled=True)
    boxes = np.array([[0.0, 10, 30, 50], [70, 10, 100, 50], [40, 10, 60, 50]])
    dets = Detections(boxes, np.array([0.9, 0.8, 0.7]))
    kept = drop_cut_boxes(dets, view, width=200, height=80)
    # Image border (x = 0) is fine, the inner edge x = 100 cuts the second box.
    np.testing.assert_allclose(kept.scores, [0.9, 0.7])


def test_wbf_fuses_two_augmentations():
    a = Detections(np.array([[10.0, 10, 50, 90], [200, 100, 240, 180]]), np.array([0.9, 0.6]))
    b = Detections(np.array([[14.0, 12, 54, 94]]), np.array([0.7]))
    fused = weighted_box_fusion([a, b], 320, 240, iou=0.55, conf_type="avg")
    order = np.argsort(-fused.scores)
    fused = fused.select(order)
    assert len(fused) == 2
    # Boxes found by both are averaged with score weights; the score is the mean score.
    expected = (0.9 * np.array([10, 10, 50, 90]) + 0.7 * np.array([14, 12, 54, 94])) / 1.6
    np.testing.assert_allclose(fused.boxes[0], expected, atol=1e-3)
    assert fused.scores[0] == pytest.approx(0.8, abs=1e-4)
    # A box only one augmentation saw keeps half its score (1 of 2 augmentations agree).
    assert fused.scores[1] == pytest.approx(0.3, abs=1e-4)
    # fuse_augmentations passes a single augmentation through untouched
    assert fuse_augmentations([a], 320, 240, 0.55, "avg", 0.0) is a


def test_merge_groups_nms_across_tiles():
    views = [View(0, 0, 60, 60, False, 0, tiled=True), View(40, 0, 100, 60, False, 0, tiled=True)]
    per_view = [
        Detections(np.array([[42.0, 5, 55, 40]]), np.array([0.8])),  # seen by both tiles
        Detections(np.array([[2.0, 5, 15, 40]]), np.array([0.7])),  # = image x 42..55
    ]
    groups = merge_groups(views, per_view, 100, 60, nms_iou=0.5)
    assert len(groups) == 1 and len(groups[0]) == 1
    assert groups[0].scores[0] == pytest.approx(0.8)


def test_nms_keeps_best_of_overlapping():
    dets = Detections(
        np.array([[0.0, 0, 10, 10], [1, 1, 10, 10], [20, 20, 30, 30]]), np.array([0.5, 0.9, 0.3])
    )
    kept = nms(dets, 0.5)
    np.testing.assert_allclose(kept.scores, [0.9, 0.3])
