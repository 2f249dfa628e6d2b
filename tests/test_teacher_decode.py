"""Decoding of the teacher's raw model outputs: YOLOX grid, heatmaps (sub-pixel), SimCC."""

from __future__ import annotations

import numpy as np
import pytest

from orpose.heatmaps import decode_heatmaps
from orpose.teacher.decode import decode_simcc
from orpose.teacher.detectors import decode_yolox, yolox_grid


def gaussian_map(h: int, w: int, x: float, y: float, sigma: float = 2.0) -> np.ndarray:
    ys, xs = np.mgrid[0:h, 0:w]
    return np.exp(-((xs - x) ** 2 + (ys - y) ** 2) / (2 * sigma**2))


def test_yolox_grid_order_is_stride_then_row_major():
    grid, strides = yolox_grid(64, 32, (8, 16, 32))
    # 8x4 + 4x2 + 2x1 cells, x fastest within a level
    assert len(grid) == 32 + 8 + 2
    assert grid[:5].tolist() == [[0, 0], [1, 0], [2, 0], [3, 0], [0, 1]]
    assert strides[31] == 8 and strides[32] == 16 and strides[-1] == 32
    assert grid[32].tolist() == [0, 0] and grid[-1].tolist() == [0, 1]


def test_yolox_decode_hand_built_tensor():
    h, w, strides = 64, 32, (8, 16, 32)
    n = 32 + 8 + 2
    raw = np.zeros((n, 5 + 3))
    # Cell (x=2, y=5) of stride 8 is row 5 * 4 + 2 = 22: centre offset (0.5, 0.25).
    raw[22, :4] = [0.5, 0.25, np.log(3.0), np.log(2.0)]
    raw[22, 4] = 0.8  # objectness (already sigmoid in the exported head)
    raw[22, 5:] = [0.5, 0.9, 0.1]  # class scores; class 0 = person
    # Cell (x=1, y=1) of stride 16 is row 32 + 1 * 2 + 1 = 35.
    raw[35, :4] = [0.0, 0.0, 0.0, 0.0]
    raw[35, 4], raw[35, 5] = 0.5, 0.5
    boxes, scores = decode_yolox(raw, h, w, strides, class_id=0)
    # centre = ((2 + 0.5) * 8, (5 + 0.25) * 8) = (20, 42); size = (3 * 8, 2 * 8) = (24, 16)
    np.testing.assert_allclose(boxes[22], [8.0, 34.0, 32.0, 50.0])
    assert scores[22] == pytest.approx(0.4)
    np.testing.assert_allclose(boxes[35], [8.0, 8.0, 24.0, 24.0])
    assert scores[35] == pytest.approx(0.25)
    _, scores_cls1 = decode_yolox(raw, h, w, strides, class_id=1)
    assert scores_cls1[22] == pytest.approx(0.72)


def test_yolox_decode_rejects_wrong_row_count():
    from orpose.manifest import ModelError

    with pytest.raises(ModelError, match="cells"):
        decode_yolox(np.zeros((10, 6)), 64, 32, (8, 16, 32), 0)


@pytest.mark.parametrize(("x", "y"), [(20.3, 30.7), (11.75, 40.2), (30.5, 12.5)])
def test_dark_decode_finds_subpixel_peak(x, y):
    hm = gaussian_map(64, 48, x, y)[None, None]
    coords, conf = decode_heatmaps(hm, "dark", kernel=1)
    assert np.abs(coords[0, 0] - [x, y]).max() < 0.05
    assert conf[0, 0] == pytest.approx(float(hm.max()), abs=1e-6)
    # argmax alone is off by up to half a cell; the quarter rule is closer but not exact
    arg, _ = decode_heatmaps(hm, "argmax")
    assert np.abs(arg[0, 0] - [x, y]).max() > 0.2
    quarter, _ = decode_heatmaps(hm, "quarter")
    assert np.abs(quarter[0, 0] - [x, y]).max() <= 0.5


def test_dark_decode_with_blur_stays_close_and_confidence_is_clipped():
    hm = 1.7 * gaussian_map(64, 48, 25.4, 33.6)[None, None]
    coords, conf = decode_heatmaps(hm, "dark", kernel=11)
    assert np.abs(coords[0, 0] - [25.4, 33.6]).max() < 0.1
    assert conf[0, 0] == 1.0


def test_heatmap_decode_on_border_keeps_integer_peak():
    hm = np.zeros((1, 1, 8, 8))
    hm[0, 0, 0, 7] = 0.9
    coords, conf = decode_heatmaps(hm, "dark", kernel=1)
    assert coords[0, 0].tolist() == [7.0, 0.0]
    assert conf[0, 0] == pytest.approx(0.9)


def test_simcc_decode_known_peaks():
    k = 17
    sx = np.zeros((2, k, 384))
    sy = np.zeros((2, k, 512))
    for i in range(k):
        sx[0, i, 10 * i + 3] = 0.9
        sy[0, i, 20 * i + 7] = 0.6
    sx[1, :, 100] = 1.4  # RTMPose values are not probabilities: clipped to 1
    sy[1, :, 200] = 1.2
    coords, conf = decode_simcc(sx, sy)
    assert coords[0, 5].tolist() == [53.0, 107.0]
    assert conf[0, 5] == pytest.approx(0.6)  # the smaller of the two maxima
    assert coords[1, 0].tolist() == [100.0, 200.0]
    assert conf[1, 0] == 1.0
