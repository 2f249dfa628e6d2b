"""Axis-aligned coordinate maps between image, crop (model input) and output-map pixels.

Top-down crops here never rotate, so every map is separable: ``u = scale * x + shift`` per axis.
Keeping them as explicit 1-D affine maps lets test-time augmentation compose image -> flipped,
rescaled crop -> heatmap cells exactly, and resample one augmentation's output onto another's
grid without approximation.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class AxisMap:
    """``v -> scale * v + shift`` along one axis."""

    scale: float = 1.0
    shift: float = 0.0

    def __call__(self, v: np.ndarray | float) -> np.ndarray | float:
        return self.scale * v + self.shift

    def inverse(self) -> AxisMap:
        return AxisMap(1.0 / self.scale, -self.shift / self.scale)

    def then(self, other: AxisMap) -> AxisMap:
        """The map that applies ``self`` first, then ``other``."""
        return AxisMap(other.scale * self.scale, other.scale * self.shift + other.shift)


@dataclass(frozen=True)
class Crop:
    """How one person crop is cut: image pixels -> model-input pixels, per axis."""

    x: AxisMap
    y: AxisMap
    flipped: bool = False

    def matrix(self) -> np.ndarray:
        """The 2 x 3 matrix for ``cv2.warpAffine`` (source image -> crop)."""
        return np.array([[self.x.scale, 0.0, self.x.shift], [0.0, self.y.scale, self.y.shift]])


def box_region(
    box: np.ndarray, aspect: float, padding: float = 1.25, scale: float = 1.0
) -> tuple[float, float, float, float]:
    """Centre and size of the region cut around an x1, y1, x2, y2 box: widened or heightened to
    the input's ``aspect`` (width / height), then enlarged by ``padding * scale``."""
    x1, y1, x2, y2 = (float(v) for v in box)
    w, h = max(x2 - x1, 1.0), max(y2 - y1, 1.0)
    if w > aspect * h:
        h = w / aspect
    else:
        w = h * aspect
    grow = padding * scale
    return (x1 + x2) / 2.0, (y1 + y2) / 2.0, w * grow, h * grow


def crop_for_box(
    box: np.ndarray,
    input_size: tuple[int, int],
    padding: float = 1.25,
    scale: float = 1.0,
    flip_mirror: float | None = None,
) -> Crop:
    """The crop that maps the box's padded region onto a ``(width, height)`` input, its centre
    on the input's centre. With ``flip_mirror`` = c the crop is mirrored as ``u -> c - u``:
    c is chosen by the pose head so that mirroring the crop equals reversing the output map.
    """
    in_w, in_h = input_size
    cx, cy, w, h = box_region(box, in_w / in_h, padding, scale)
    x = AxisMap(in_w / w, in_w / 2.0 - cx * in_w / w)
    y = AxisMap(in_h / h, in_h / 2.0 - cy * in_h / h)
    if flip_mirror is not None:
        x = x.then(AxisMap(-1.0, flip_mirror))
    return Crop(x, y, flipped=flip_mirror is not None)


def resample_axis(
    values: np.ndarray, axis: int, source: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Linear interpolation of ``values`` along ``axis`` at fractional ``source`` positions.

    Returns the resampled array and a boolean mask (along that axis) of positions that fell
    inside the source grid; outside ones are 0 and must not count in an average.
    """
    n = values.shape[axis]
    valid = (source >= -1e-6) & (source <= n - 1 + 1e-6)
    pos = np.clip(source, 0, n - 1)
    lo = np.floor(pos).astype(int)
    hi = np.minimum(lo + 1, n - 1)
    frac = pos - lo
    shape = [1] * values.ndim
    shape[axis] = len(source)
    w_hi = frac.reshape(shape)
    w_valid = valid.reshape(shape)
    out = np.take(values, lo, axis=axis) * (1 - w_hi) + np.take(values, hi, axis=axis) * w_hi
    return np.where(w_valid, out, 0.0), valid
