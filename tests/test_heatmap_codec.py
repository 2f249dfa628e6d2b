"""The heatmap codec (orpose/heatmaps.py), which the teacher and the CPU student both decode
with, against straightforward references written here: the whole map blurred by OpenCV, the
Taylor step solved as a 2x2 system per peak, loops over cells."""

from __future__ import annotations

import json
import math

import cv2
import numpy as np
import pytest
import torch

from orpose.heatmaps import (
    blur_kernel,
    dark_refine,
    decode_heatmaps,
    gaussian_heatmaps,
    heatmap_argmax,
    quarter_refine,
)

# the 3x3 finite-difference stencils of the gradient and the Hessian at the centre cell
D_X = np.array([[0, 0, 0], [-0.5, 0, 0.5], [0, 0, 0]])
D_XX = np.array([[0, 0, 0], [1, -2, 1], [0, 0, 0]])
D_XY = np.array([[0.25, 0, -0.25], [0, 0, 0], [-0.25, 0, 0.25]])


def integer_peaks(maps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The maps ``(..., H, W)`` as a float64 list of maps, and the (x, y) of each one's first
    maximum, row-major."""
    flat = maps.reshape(-1, *maps.shape[-2:]).astype(np.float64)
    rows_cols = [np.unravel_index(np.argmax(m), m.shape) for m in flat]
    return flat, np.array([(x, y) for y, x in rows_cols], np.float64).reshape(-1, 2)


def reference_dark(maps: np.ndarray, kernel: int) -> tuple[np.ndarray, np.ndarray]:
    """DARK as written in the paper, one map at a time: blur the whole map (OpenCV, float64),
    take its log, expand it to second order at the integer argmax of the unblurred map and
    jump to the expansion's maximum, x* = x - H^-1 g; only inside the border, where the
    expansion has a maximum (H negative definite) no more than one cell away."""
    flat, coords = integer_peaks(maps)
    h, w = maps.shape[-2:]
    for i, (x, y) in enumerate(coords.astype(int)):
        if not (0 < x < w - 1 and 0 < y < h - 1):
            continue
        blurred = cv2.GaussianBlur(flat[i], (kernel, kernel), 0) if kernel > 1 else flat[i]
        patch = np.log(np.maximum(blurred, 1e-10))[y - 1 : y + 2, x - 1 : x + 2]
        gradient = np.array([(patch * D_X).sum(), (patch * D_X.T).sum()])
        dxy = (patch * D_XY).sum()
        hessian = np.array([[(patch * D_XX).sum(), dxy], [dxy, (patch * D_XX.T).sum()]])
        if np.linalg.det(hessian) <= 1e-12 or hessian[0, 0] >= 0:
            continue
        step = -np.linalg.solve(hessian, gradient)
        if np.abs(step).max() <= 1:
            coords[i] += step
    peaks = flat.max(axis=(1, 2)).clip(0, 1)
    return coords.reshape(*maps.shape[:-2], 2), peaks.reshape(maps.shape[:-2])


def reference_quarter(maps: np.ndarray) -> np.ndarray:
    """A quarter cell towards the higher neighbour along each axis, inside the border."""
    flat, coords = integer_peaks(maps)
    h, w = maps.shape[-2:]
    for (x, y), m, out in zip(coords.astype(int), flat, coords, strict=True):
        if 0 < x < w - 1 and m[y, x + 1] != m[y, x - 1]:
            out[0] += 0.25 if m[y, x + 1] > m[y, x - 1] else -0.25
        if 0 < y < h - 1 and m[y + 1, x] != m[y - 1, x]:
            out[1] += 0.25 if m[y + 1, x] > m[y - 1, x] else -0.25
    return coords.reshape(*maps.shape[:-2], 2)


def smooth_maps(seed: int = 0, size: tuple[int, int] = (64, 48)) -> np.ndarray:
    """Gaussian peaks of random widths and heights (some off the map), peaks on and next to
    every border, noise; and maps with ties, a plateau and negative values."""
    rng = np.random.default_rng(seed)
    h, w = size
    ys, xs = np.mgrid[0:h, 0:w]
    maps = np.zeros((3, 17, h, w), np.float32)
    for n in range(3):
        for k in range(17):
            cx, cy, s = rng.uniform(-1, w), rng.uniform(-1, h), rng.uniform(1, 3)
            blob = np.exp(-((xs - cx) ** 2 + (ys - cy) ** 2) / (2 * s * s))
            maps[n, k] = blob * rng.uniform(0.05, 1.3)
    border = [(0, 30), (1, 30), (w - 2, 30), (w - 1, 30), (20, 0), (20, 1), (20, h - 2),
              (20, h - 1), (1, 1), (w - 2, h - 2), (0, 0), (w - 1, h - 1)]  # fmt: skip
    for k, (cx, cy) in enumerate(border):
        maps[1, k] = np.exp(-((xs - cx - 0.3) ** 2 + (ys - cy + 0.2) ** 2) / 8)
    maps += rng.uniform(0, 0.02, maps.shape).astype(np.float32)
    maps[2, 0] = 0.0  # every cell ties: the first one wins
    maps[2, 1] = 0.5
    maps[2, 2, h // 2, w // 2 - 1] = maps[2, 2, h // 2, w // 2] = 2.0  # two equal peaks
    maps[2, 3] = -maps[2, 3]
    return maps


@pytest.fixture(scope="module")
def real_maps(shared) -> np.ndarray:
    """The teacher pose model's heatmaps (TinyPose 256x192, 64x48 cells) of val500 people."""
    from orpose.data.sources import read_image_rgb
    from orpose.manifest import find_model, load_manifest, verify_model
    from orpose.paths import models_dir
    from orpose.teacher.geometry import crop_for_box
    from orpose.training.distillation_data import TeacherOutputs, warp

    folder = shared / "data" / "coco_person_val500"
    val = json.loads((folder / "person_keypoints.json").read_text())
    files = {im["id"]: im["file_name"] for im in val["images"]}
    people = [a for a in val["annotations"] if a["num_keypoints"] > 3 and a["bbox"][3] > 60]
    crops = []
    for a in people[:12]:
        x, y, w, h = a["bbox"]
        crop = crop_for_box(np.array([x, y, x + w, y + h]), (192, 256))
        image = read_image_rgb(folder / "images" / files[a["image_id"]])
        crops.append(warp(image, crop.matrix(), (192, 256)))
    pose = verify_model(find_model("tinypose_256x192", load_manifest(), "pose"), models_dir())
    return TeacherOutputs(pose, pose).heatmaps(np.stack(crops)).astype(np.float32)


@pytest.mark.parametrize("kernel", [1, 3, 5, 7, 11, 13])
def test_dark_is_the_taylor_step_on_real_heatmaps(real_maps, kernel):
    expected, peaks = reference_dark(real_maps, kernel)
    coords, confidence = decode_heatmaps(real_maps, "dark", kernel)
    moved = np.abs(expected - np.round(expected)).max(-1) > 0
    assert moved.mean() > 0.9  # the refinement applies to most keypoints
    np.testing.assert_allclose(coords, expected, rtol=0, atol=1e-9)
    np.testing.assert_array_equal(confidence, peaks.astype(np.float32))
    # the student's decoding (torch, float32, in its graph) is the same code
    ours, score = dark_refine(torch.from_numpy(real_maps), kernel)
    np.testing.assert_allclose(ours.numpy(), expected, rtol=0, atol=1e-4)
    np.testing.assert_array_equal(score.numpy(), peaks.astype(np.float32))


@pytest.mark.parametrize("kernel", [1, 3, 11, 12])
@pytest.mark.parametrize("size", [(64, 48), (32, 24), (6, 5), (3, 4)])
def test_dark_is_the_taylor_step_on_synthetic_heatmaps(kernel, size):
    maps = smooth_maps(kernel, size)
    odd = kernel + 1 - kernel % 2  # an even size is taken as the next odd one
    expected, peaks = reference_dark(maps, odd)
    coords, confidence = decode_heatmaps(maps, "dark", kernel)
    np.testing.assert_allclose(coords, expected, rtol=0, atol=1e-9)
    np.testing.assert_array_equal(confidence, peaks.astype(np.float32))
    # one person's maps (K, H, W), as the teacher's adapters decode them
    one, _ = decode_heatmaps(maps[0], "dark", kernel)
    np.testing.assert_allclose(one, expected[0], rtol=0, atol=1e-9)


def test_dark_finds_the_centre_of_a_gaussian():
    ys, xs = np.mgrid[0:64, 0:48]
    centre = np.array([20.3, 30.7])
    peak = np.exp(-((xs - centre[0]) ** 2 + (ys - centre[1]) ** 2) / 8)[None, None]
    coords, _ = decode_heatmaps(peak, "dark", 1)
    np.testing.assert_allclose(coords[0, 0], centre, atol=1e-9)


def test_quarter_and_argmax_are_the_plain_rules():
    maps = smooth_maps(5)
    coords, confidence = decode_heatmaps(maps, "quarter")
    np.testing.assert_array_equal(coords, reference_quarter(maps))
    np.testing.assert_array_equal(confidence, maps.max(axis=(-2, -1)).clip(0, 1))
    flat = maps.reshape(*maps.shape[:2], -1)
    index = flat.argmax(-1)  # the first of equal maxima
    coords, confidence = decode_heatmaps(maps, "argmax")
    np.testing.assert_array_equal(coords, np.stack([index % 48, index // 48], -1))
    assert coords[2, 0].tolist() == [0, 0] and coords[2, 2].tolist() == [23, 32]
    np.testing.assert_array_equal(confidence, flat.max(-1).clip(0, 1))
    xy, peak = heatmap_argmax(torch.from_numpy(maps))
    np.testing.assert_array_equal(xy.numpy(), coords)
    np.testing.assert_array_equal(peak.numpy(), flat.max(-1))
    xy, _ = quarter_refine(torch.from_numpy(maps))
    np.testing.assert_array_equal(xy.numpy(), reference_quarter(maps))
    with pytest.raises(ValueError, match="unknown heatmap decoding"):
        decode_heatmaps(maps, "soft-argmax")


@pytest.mark.parametrize("kernel", [1, 3, 5, 7, 9, 11, 25])
def test_the_blur_is_opencvs(kernel):
    expected = cv2.getGaussianKernel(kernel, 0, cv2.CV_64F).ravel()
    np.testing.assert_allclose(blur_kernel(kernel, torch.float64).numpy(), expected, atol=1e-15)


def test_gaussian_targets_are_the_formula():
    rng = np.random.default_rng(0)
    points = rng.uniform(-3, 50, (2, 17, 2))
    amplitude = rng.uniform(0, 1, (2, 17))
    maps = gaussian_heatmaps(torch.from_numpy(points), torch.from_numpy(amplitude), (40, 30), 1.5)
    assert maps.shape == (2, 17, 40, 30)
    for n, k, y, x in [(0, 0, 0, 0), (1, 16, 39, 29), (0, 5, 12, 7), (1, 3, 20, 25)]:
        d2 = (x - points[n, k, 0]) ** 2 + (y - points[n, k, 1]) ** 2
        assert maps[n, k, y, x].item() == pytest.approx(
            amplitude[n, k] * math.exp(-d2 / (2 * 1.5**2)), rel=1e-12
        )
    # encoding then decoding gives the points back (inside the map)
    inside = rng.uniform(2, 27, (1, 17, 2))
    encoded = gaussian_heatmaps(torch.from_numpy(inside), torch.ones(1, 17, dtype=torch.float64),
                                (40, 30))  # fmt: skip
    coords, _ = decode_heatmaps(encoded.numpy(), "dark", 1)
    np.testing.assert_allclose(coords, inside, atol=1e-9)
