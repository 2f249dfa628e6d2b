"""Keypoints from a top-down model's output maps, with sub-pixel precision.

Coordinates returned here are in *map* units (heatmap cells, or SimCC bins); :mod:`pose` turns
them into input pixels, then image pixels.

- Heatmaps ``(N, K, H, W)``: the integer argmax refined either by DARK (Zhang et al., CVPR 2020,
  "Distribution-Aware Coordinate Representation": a second-order Taylor step on the log of the
  smoothed heatmap, which finds the centre of a Gaussian-shaped peak) or by the classic quarter
  step towards the higher neighbour (Newell et al.). Confidence = the heatmap's maximum, clipped
  to [0, 1].
- SimCC ``(N, K, Wx)`` and ``(N, K, Hy)``: one 1-D classification per axis (RTMPose);
  location = argmax per axis, confidence = the smaller of the two maxima (MMPose's rule), clipped
  to [0, 1] since RTMPose's values are not probabilities.
"""

from __future__ import annotations

import cv2
import numpy as np


def heatmap_argmax(heatmaps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Integer peak (x, y) of each map ``(..., H, W)`` and its value."""
    h, w = heatmaps.shape[-2:]
    flat = heatmaps.reshape(*heatmaps.shape[:-2], h * w)
    index = flat.argmax(axis=-1)
    peak = np.take_along_axis(flat, index[..., None], axis=-1)[..., 0]
    coords = np.stack([index % w, index // w], axis=-1).astype(np.float64)
    return coords, peak


def refine_quarter(heatmaps: np.ndarray, coords: np.ndarray) -> np.ndarray:
    """Move each integer peak a quarter cell towards its higher neighbour, per axis."""
    h, w = heatmaps.shape[-2:]
    maps = heatmaps.reshape(-1, h, w)
    xy = coords.reshape(-1, 2).astype(int)
    out = coords.reshape(-1, 2).astype(np.float64).copy()
    for i, (x, y) in enumerate(xy):
        m = maps[i]
        if 0 < x < w - 1:
            out[i, 0] += 0.25 * np.sign(m[y, x + 1] - m[y, x - 1])
        if 0 < y < h - 1:
            out[i, 1] += 0.25 * np.sign(m[y + 1, x] - m[y - 1, x])
    return out.reshape(coords.shape)


def refine_dark(heatmaps: np.ndarray, coords: np.ndarray, kernel: int = 11) -> np.ndarray:
    """DARK sub-pixel refinement: ``offset = -Hessian^-1 * gradient`` of the log heatmap at the
    integer peak, after a Gaussian blur that makes the peak Gaussian-shaped again.

    Peaks on the border, or where the log heatmap is not locally concave, keep their integer
    position; the step is capped at one cell.
    """
    h, w = heatmaps.shape[-2:]
    maps = heatmaps.reshape(-1, h, w).astype(np.float32)
    xy = coords.reshape(-1, 2).astype(int)
    out = coords.reshape(-1, 2).astype(np.float64).copy()
    if kernel > 1:
        kernel += 1 - kernel % 2  # odd sizes only
        maps = np.stack([cv2.GaussianBlur(m, (kernel, kernel), 0) for m in maps])
    log = np.log(np.maximum(maps, 1e-10)).astype(np.float64)
    x, y = xy[:, 0], xy[:, 1]
    inside = (x > 0) & (x < w - 1) & (y > 0) & (y < h - 1)
    i, x, y = np.nonzero(inside)[0], x[inside], y[inside]
    if len(i):
        at = lambda dy, dx: log[i, y + dy, x + dx]  # noqa: E731
        dx = 0.5 * (at(0, 1) - at(0, -1))
        dy = 0.5 * (at(1, 0) - at(-1, 0))
        dxx = at(0, 1) - 2 * at(0, 0) + at(0, -1)
        dyy = at(1, 0) - 2 * at(0, 0) + at(-1, 0)
        dxy = 0.25 * (at(1, 1) - at(1, -1) - at(-1, 1) + at(-1, -1))
        det = dxx * dyy - dxy**2
        concave = (det > 1e-12) & (dxx < 0)
        safe = np.where(concave, det, 1.0)
        step_x = -(dyy * dx - dxy * dy) / safe
        step_y = -(dxx * dy - dxy * dx) / safe
        ok = concave & (np.abs(step_x) <= 1) & (np.abs(step_y) <= 1)
        out[i[ok], 0] += step_x[ok]
        out[i[ok], 1] += step_y[ok]
    return out.reshape(coords.shape)


def decode_heatmaps(
    heatmaps: np.ndarray, method: str = "dark", kernel: int = 11
) -> tuple[np.ndarray, np.ndarray]:
    """Keypoints ``(..., K, 2)`` in heatmap cells and confidences ``(..., K)`` in [0, 1]."""
    coords, peak = heatmap_argmax(heatmaps)
    if method == "dark":
        coords = refine_dark(heatmaps, coords, kernel)
    elif method == "quarter":
        coords = refine_quarter(heatmaps, coords)
    elif method != "argmax":
        raise ValueError(f"unknown heatmap decoding {method!r} (dark, quarter or argmax)")
    return coords, np.clip(peak, 0.0, 1.0)


def decode_simcc(simcc_x: np.ndarray, simcc_y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Keypoints ``(..., K, 2)`` in SimCC bins and confidences ``(..., K)`` in [0, 1]."""
    x = simcc_x.argmax(axis=-1)
    y = simcc_y.argmax(axis=-1)
    confidence = np.minimum(simcc_x.max(axis=-1), simcc_y.max(axis=-1))
    return np.stack([x, y], axis=-1).astype(np.float64), np.clip(confidence, 0.0, 1.0)
