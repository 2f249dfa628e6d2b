"""Keypoints from a top-down model's output maps, in *map* units (heatmap cells, or SimCC bins);
:mod:`pose` turns them into input pixels, then image pixels.

- Heatmaps ``(N, K, H, W)``: the heatmap codec, :func:`orpose.heatmaps.decode_heatmaps` (the
  integer argmax refined by DARK or the quarter step; the students decode with the same code).
- SimCC ``(N, K, Wx)`` and ``(N, K, Hy)``: one 1-D classification per axis (RTMPose);
  location = argmax per axis, confidence = the smaller of the two maxima (MMPose's rule), clipped
  to [0, 1] since RTMPose's values are not probabilities.
"""

from __future__ import annotations

import numpy as np


def decode_simcc(simcc_x: np.ndarray, simcc_y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Keypoints ``(..., K, 2)`` in SimCC bins and confidences ``(..., K)`` in [0, 1]."""
    x = simcc_x.argmax(axis=-1)
    y = simcc_y.argmax(axis=-1)
    confidence = np.minimum(simcc_x.max(axis=-1), simcc_y.max(axis=-1))
    return np.stack([x, y], axis=-1).astype(np.float64), np.clip(confidence, 0.0, 1.0)
