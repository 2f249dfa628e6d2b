"""Privacy-preserving low resolution at inference: shrink at decode, never keep the full frame.

Two ways a frame can be low resolution:

- ``--downscale s`` (privacy mode): every decoded frame is shrunk to 1/s (the paper's bilinear
  :func:`orpose.data.lowres.downsample`) inside the frame source, before any other code sees it;
  the decoded array is dropped there. Only the small frame and the original *size* (two integers)
  are kept.
- already low-resolution input (e.g. the 53x40 frames of ``or_lowres_12x``): the frames are used
  as they are; ``--lowres-input s`` (or the automatic guess for tiny frames) says by how much they
  were shrunk.

Either way the network sees the small frame upsampled by s (:func:`orpose.data.lowres.upsample`),
exactly what the student was trained on, and which holds no more information than the small frame.
Results are in the coordinates of that upsampled frame (the camera's original pixels), so that
they compare with full-resolution annotations; overlays are drawn on the small frame itself.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from orpose.data.lowres import (
    downsample,
    low_resolution_size,
    results_to_larger,
    scale_results,
    upsample,
)

# Frames whose longer side is at most this are taken as already low resolution (the paper's
# factors 8-12 turn 640x480 into 80x60 ... 53x40).
LOWRES_MAX_SIDE = 100
# The camera frame the automatic guess assumes (MVOR / ORPose: 640x480).
REFERENCE_WIDTH = 640


def guess_lowres_factor(width: int, height: int) -> float:
    """1 for ordinary frames; for tiny ones, the factor that brings them back to ~640 px wide."""
    if max(width, height) > LOWRES_MAX_SIDE:
        return 1.0
    return float(max(1, round(REFERENCE_WIDTH / max(width, 1))))


class Shrinker:
    """The ``prepare`` hook of the frame sources in privacy mode: full frame -> small frame.

    It remembers the size of the frame it last shrank (not its pixels): the network input is the
    small frame upsampled back to that size.
    """

    def __init__(self, scale: float):
        if scale < 1:
            raise ValueError(f"downscale factor must be >= 1, got {scale}")
        self.scale = scale
        self.last_size: tuple[int, int] | None = None  # (width, height) of the decoded frame

    def __call__(self, image: np.ndarray) -> np.ndarray:
        h, w = image.shape[:2]
        self.last_size = (w, h)
        return np.ascontiguousarray(downsample(image, self.scale))


@dataclass(frozen=True)
class FrameGeometry:
    """How one kept frame relates to the network input and the results' coordinates."""

    kept_size: tuple[int, int]  # (width, height) of the frame kept in memory and drawn on
    network_size: tuple[int, int]  # (width, height) the network sees; results are in its pixels
    factor: float  # network_size / kept_size (1 at full resolution)

    @property
    def lowres(self) -> bool:
        return self.factor != 1

    def network_input(self, kept: np.ndarray) -> np.ndarray:
        """The kept (small) frame upsampled to the network size, as in training."""
        return upsample(kept, self.network_size)

    def from_kept(self, results: list[dict]) -> list[dict]:
        """Results found on the kept (small) frame itself, in network pixels: the native
        low-resolution path (:func:`orpose.data.lowres.results_to_larger`)."""
        if not self.lowres:
            return results
        return results_to_larger(results, self.kept_size, self.network_size)

    def to_kept(self, results: list[dict]) -> list[dict]:
        """Results scaled from network pixels down to the kept frame (for drawing only)."""
        if not self.lowres:
            return results
        sx = self.kept_size[0] / self.network_size[0]
        sy = self.kept_size[1] / self.network_size[1]
        return scale_results(results, sx, sy)


def frame_geometry(
    kept: np.ndarray,
    downscale: float = 1.0,
    original_size: tuple[int, int] | None = None,
    lowres_input: float | None = None,
) -> FrameGeometry:
    """The geometry of a kept frame.

    ``downscale`` > 1: privacy mode, ``original_size`` is the decoded frame's size. Otherwise
    ``lowres_input`` (None: guessed from the frame's size) tells how much the input was shrunk.
    """
    h, w = kept.shape[:2]
    if downscale > 1:
        if original_size is None:
            raise ValueError("privacy mode needs the decoded frame's size")
        if low_resolution_size(*original_size, downscale) != (w, h):
            raise ValueError("the kept frame is not the shrunk decoded frame")
        return FrameGeometry((w, h), original_size, downscale)
    factor = guess_lowres_factor(w, h) if lowres_input is None else float(lowres_input)
    if factor < 1:
        raise ValueError(f"low-resolution input factor must be >= 1, got {factor}")
    return FrameGeometry((w, h), (round(w * factor), round(h * factor)), factor)
