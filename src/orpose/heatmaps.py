"""The heatmap codec: keypoints to Gaussian heatmaps and heatmaps back to keypoints, once for
the teacher and the students.

Coordinates are in heatmap *cells* (x, y; cell centres at integers); each caller turns them
into its own pixels (the teacher's pose adapters, the CPU student's head).

- Encoding (:func:`gaussian_heatmaps`): a Gaussian of a given peak centred on each keypoint, the
  target top-down models such as PP-TinyPose and HRNet are trained with (sigma 2 cells).
- Decoding: the integer argmax (:func:`heatmap_argmax`, the first cell of equal maxima), refined
  either by DARK (:func:`dark_refine`; Zhang et al., CVPR 2020, "Distribution-Aware Coordinate
  Representation": a second-order Taylor step on the log of the Gaussian-blurred heatmap, which
  finds the centre of a Gaussian-shaped peak) or by the classic quarter step towards the higher
  neighbour (:func:`quarter_refine`, Newell et al.). Confidence = the map's maximum, clipped to
  [0, 1].

Written once, in torch, so that the student's decoding runs inside its graph (ONNX export
included: no data-dependent Python control flow, -1 for the people axis); the teacher, which
works in numpy, calls :func:`decode_heatmaps`, which runs the same functions in float64.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch
import torch.nn.functional as F

METHODS = ("dark", "quarter", "argmax")

# -- encoding -------------------------------------------------------------------------------------


def gaussian_heatmaps(
    points: torch.Tensor, amplitude: torch.Tensor, size: tuple[int, int], sigma: float = 2.0
) -> torch.Tensor:
    """Heatmaps ``(N, K, H, W)`` with a Gaussian of peak ``amplitude`` ``(N, K)`` centred on each
    point ``(N, K, 2)`` (x, y in heatmap cells, sub-cell precision); ``size`` is (H, W)."""
    h, w = size
    ys = torch.arange(h, dtype=points.dtype, device=points.device).view(1, 1, h, 1)
    xs = torch.arange(w, dtype=points.dtype, device=points.device).view(1, 1, 1, w)
    dx = xs - points[..., 0, None, None]
    dy = ys - points[..., 1, None, None]
    return amplitude[..., None, None] * torch.exp(-(dx * dx + dy * dy) / (2 * sigma * sigma))


# -- decoding -------------------------------------------------------------------------------------


def heatmap_argmax(heatmaps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Integer peaks (x, y) ``(N, K, 2)`` of ``(N, K, H, W)`` heatmaps, in their dtype, and the
    maxima ``(N, K)`` (not clipped)."""
    x, y, peak = _argmax(heatmaps)
    return torch.stack([x, y], -1).to(heatmaps.dtype), peak


def _argmax(heatmaps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Column and row (int64) of each map's first maximum, and the maximum."""
    k, h, w = heatmaps.shape[1:]
    # -1 for the people axis everywhere: in an exported graph it may be 0 (nobody in a group)
    peak, index = heatmaps.reshape(-1, k, h * w).max(-1)
    return index % w, torch.div(index, w, rounding_mode="floor"), peak


def quarter_refine(heatmaps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Peaks of ``(N, K, H, W)`` heatmaps moved a quarter cell towards the higher neighbour, per
    axis (not on the border); (x, y) ``(N, K, 2)`` and the maxima clipped to [0, 1]."""
    k, h, w = heatmaps.shape[1:]
    x, y, peak = _argmax(heatmaps)
    flat = heatmaps.reshape(-1, k, h * w)

    def towards(inside: torch.Tensor, after: torch.Tensor, before: torch.Tensor) -> torch.Tensor:
        """+-0.25 towards the higher of the cells ``after`` and ``before`` the peak, if inside."""
        higher = flat.gather(-1, after[..., None]) - flat.gather(-1, before[..., None])
        step = 0.25 * torch.sign(higher[..., 0])
        return torch.where(inside, step, torch.zeros_like(step))

    left, right = (x - 1).clamp(min=0), (x + 1).clamp(max=w - 1)
    up, down = (y - 1).clamp(min=0), (y + 1).clamp(max=h - 1)
    dx = towards((x > 0) & (x < w - 1), y * w + right, y * w + left)
    dy = towards((y > 0) & (y < h - 1), down * w + x, up * w + x)
    xy = torch.stack([x.to(heatmaps.dtype) + dx, y.to(heatmaps.dtype) + dy], -1)
    return xy, peak.clamp(0.0, 1.0)


def blur_kernel(kernel: int, dtype: torch.dtype, device=None) -> torch.Tensor:
    """The 1-D Gaussian of ``cv2.GaussianBlur(m, (kernel, kernel), 0)``, that is
    ``cv2.getGaussianKernel(kernel, 0)``: up to 9 taps OpenCV's own fixed table (binomial-like,
    exact binary fractions; OpenCV 4 has tables up to 7 taps), above it sigma =
    0.3 * ((kernel - 1) / 2 - 1) + 0.8, normalised (computed in ``dtype``)."""
    if kernel <= 9:
        table = cv2.getGaussianKernel(kernel, 0, cv2.CV_64F).ravel()
        return torch.from_numpy(table).to(dtype=dtype, device=device)
    sigma = 0.3 * ((kernel - 1) * 0.5 - 1) + 0.8
    taps = torch.arange(kernel, dtype=dtype, device=device) - (kernel - 1) / 2
    g = torch.exp(-(taps**2) / (2 * sigma**2))
    return g / g.sum()


def _reflect(index: torch.Tensor, n: int) -> torch.Tensor:
    """Cell indices outside [0, n) reflected as OpenCV's BORDER_REFLECT_101 (any distance)."""
    if n == 1:
        return torch.zeros_like(index)
    folded = torch.remainder(index, 2 * (n - 1))
    return (n - 1) - (n - 1 - folded).abs()


def dark_refine(heatmaps: torch.Tensor, kernel: int = 11) -> tuple[torch.Tensor, torch.Tensor]:
    """Peaks of ``(N, K, H, W)`` heatmaps with DARK sub-cell refinement: at the integer argmax,
    ``offset = -Hessian^-1 * gradient`` of the log of the map blurred by a ``kernel`` x
    ``kernel`` Gaussian (:func:`blur_kernel`, reflected border; an even size is taken as the
    next odd one, 1 or less: no blur), which makes the peak Gaussian-shaped again.

    Peaks on the border, or where the log map is not locally concave, keep their integer
    position; so does a step of more than one cell. Returns (x, y) ``(N, K, 2)`` in cells and
    the maxima ``(N, K)`` clipped to [0, 1], in the heatmaps' dtype.
    """
    k, h, w = heatmaps.shape[1:]
    kernel = max(kernel, 1)
    kernel += 1 - kernel % 2
    xi, yi, peak = _argmax(heatmaps)
    x, y = xi.to(heatmaps.dtype), yi.to(heatmaps.dtype)
    if h < 3 or w < 3:  # every peak is on the border
        return torch.stack([x, y], -1), peak.clamp(0.0, 1.0)
    g = blur_kernel(kernel, heatmaps.dtype, heatmaps.device)
    inside = (xi > 0) & (xi < w - 1) & (yi > 0) & (yi < h - 1)
    xc, yc = xi.clamp(1, w - 2), yi.clamp(1, h - 2)
    # Only the 3x3 cells around each peak of the blurred map are needed: blur just the
    # (kernel + 2)^2 window around them (the same sums as blurring the whole map, about 300x
    # less work on a 64x48 map; it was a tenth of the student's time per person on a CPU).
    pad = kernel // 2
    if pad < h and pad < w:  # one reflection: torch's "reflect" is BORDER_REFLECT_101
        padded = F.pad(heatmaps, (pad, pad, pad, pad), mode="reflect")
    else:
        rows = _reflect(torch.arange(-pad, h + pad, device=heatmaps.device), h)
        cols = _reflect(torch.arange(-pad, w + pad, device=heatmaps.device), w)
        padded = heatmaps.index_select(-2, rows).index_select(-1, cols)
    ph, pw = h + 2 * pad, w + 2 * pad
    span = torch.arange(kernel + 2, device=heatmaps.device)
    rows = (yc - 1)[..., None, None] + span[:, None]  # padded row of window row a
    cols = (xc - 1)[..., None, None] + span[None, :]
    cells = (kernel + 2) ** 2
    window = padded.reshape(-1, k, ph * pw).gather(-1, (rows * pw + cols).reshape(-1, k, cells))
    window = window.reshape(-1, k, kernel + 2, kernel + 2)
    # band[b, b + j] = g[j]: blurred 3x3 = band @ window @ band^T
    band = torch.stack([F.pad(g, (b, 2 - b)) for b in range(3)])
    blurred = band @ window @ band.T
    log = torch.log(blurred.clamp_min(1e-10))  # (n, k, 3, 3), the peak at [1, 1]

    def at(dy: int, dx: int) -> torch.Tensor:
        return log[..., 1 + dy, 1 + dx]

    dx = 0.5 * (at(0, 1) - at(0, -1))
    dy = 0.5 * (at(1, 0) - at(-1, 0))
    dxx = at(0, 1) - 2 * at(0, 0) + at(0, -1)
    dyy = at(1, 0) - 2 * at(0, 0) + at(-1, 0)
    dxy = 0.25 * (at(1, 1) - at(1, -1) - at(-1, 1) + at(-1, -1))
    det = dxx * dyy - dxy * dxy
    concave = (det > 1e-12) & (dxx < 0) & inside
    safe = torch.where(concave, det, torch.ones_like(det))
    step_x = -(dyy * dx - dxy * dy) / safe
    step_y = -(dxx * dy - dxy * dx) / safe
    ok = concave & (step_x.abs() <= 1) & (step_y.abs() <= 1)
    zero = torch.zeros_like(step_x)
    x = x + torch.where(ok, step_x, zero)
    y = y + torch.where(ok, step_y, zero)
    return torch.stack([x, y], -1), peak.clamp(0.0, 1.0)


def decode_heatmaps(
    heatmaps: np.ndarray, method: str = "dark", kernel: int = 11
) -> tuple[np.ndarray, np.ndarray]:
    """The codec for numpy callers (the teacher): heatmaps ``(..., K, H, W)`` -> keypoints
    ``(..., K, 2)`` in cells (float64) and confidences ``(..., K)`` in [0, 1] (the maps' dtype).

    ``method``: ``dark`` (:func:`dark_refine` with ``kernel``), ``quarter``
    (:func:`quarter_refine`) or ``argmax``; computed in float64."""
    if method not in METHODS:
        raise ValueError(f"unknown heatmap decoding {method!r} (dark, quarter or argmax)")
    maps = np.asarray(heatmaps)
    lead, (h, w) = maps.shape[:-2], maps.shape[-2:]
    tensor = torch.from_numpy(np.ascontiguousarray(maps, np.float64).reshape(1, -1, h, w))
    if method == "dark":
        xy, peak = dark_refine(tensor, kernel)
    elif method == "quarter":
        xy, peak = quarter_refine(tensor)
    else:
        xy, peak = heatmap_argmax(tensor)
        peak = peak.clamp(0.0, 1.0)
    return xy.numpy().reshape(*lead, 2), peak.numpy().reshape(lead).astype(maps.dtype)
