"""Privacy-preserving low resolution, exactly as the ORPose paper.

An image of size W x H is downsampled by a factor s to int(W / s) x int(H / s) with bilinear
interpolation, then upsampled back to W x H before it enters a network (s = 12 turns 640x480 into
53x40). The official code resizes with detectron2's ``T.Resize(interp=Image.BILINEAR)``, i.e. PIL's
bilinear filter, which widens its support when shrinking (it averages, rather than skips,
pixels). :func:`degrade` uses PIL itself; :func:`degrade_tensor` uses torch's antialiased bilinear
resize, which follows the same filter, for batches already on a device.

The random schedule of ORPose_all draws s = 1 with probability 0.3, s in [2, 8] with 0.35 and
s in [8, 12] with 0.35 (integers, bounds included as in the paper's text; the official code's
``random_(2, 8)`` / ``random_(8, 12)`` exclude the upper bound: s in {2..7} and {8..11},
ORPose-Color keypoints_3d/utils_db.py lines 110-118; ``all_official``, i.e.
:meth:`LowResSchedule.official_all`, reproduces it).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

import numpy as np
from PIL import Image

PAPER_SCALES: tuple[int, ...] = (1, 8, 10, 12)


def low_resolution_size(width: int, height: int, scale: float) -> tuple[int, int]:
    """(width, height) of an image downsampled by ``scale``, floored as in the official code."""
    if scale < 1:
        raise ValueError(f"downscale factor must be >= 1, got {scale}")
    return max(1, int(width / scale)), max(1, int(height / scale))


def downsample(image: np.ndarray, scale: float) -> np.ndarray:
    """The privacy-preserving small image: ``(H, W, C)`` uint8 shrunk by ``scale``."""
    if scale == 1:
        return image
    h, w = image.shape[:2]
    return np.array(Image.fromarray(image).resize(low_resolution_size(w, h, scale), Image.BILINEAR))


def upsample(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bring a small image back to ``size`` = (width, height) with PIL bilinear."""
    if (image.shape[1], image.shape[0]) == tuple(size):
        return image
    return np.array(Image.fromarray(image).resize(tuple(size), Image.BILINEAR))


def degrade(image: np.ndarray, scale: float) -> np.ndarray:
    """Downsample by ``scale`` then upsample to the original size: what the networks see."""
    if scale == 1:
        return image
    h, w = image.shape[:2]
    return upsample(downsample(image, scale), (w, h))


def scale_results(
    results: list[dict], sx: float, sy: float, pixel_centres: bool = False
) -> list[dict]:
    """COCO results (``bbox``, ``keypoints``) with x scaled by ``sx`` and y by ``sy``.

    Boxes are continuous edges (x -> x * f). Keypoints too by default; ``pixel_centres`` maps
    them as the centres of pixels (x -> (x + 0.5) * f - 0.5), which is how results found on a
    small image land on the pixels of the larger one it was shrunk from."""
    shift = 0.5 if pixel_centres else 0.0
    scaled = []
    for r in results:
        r = dict(r)
        x, y, w, h = r["bbox"]
        r["bbox"] = [x * sx, y * sy, w * sx, h * sy]
        kps = np.asarray(r["keypoints"], dtype=np.float64).reshape(-1, 3).copy()
        kps[:, 0] = (kps[:, 0] + shift) * sx - shift
        kps[:, 1] = (kps[:, 1] + shift) * sy - shift
        r["keypoints"] = kps.ravel().tolist()
        scaled.append(r)
    return scaled


def results_to_larger(
    results: list[dict], small_size: tuple[int, int], large_size: tuple[int, int]
) -> list[dict]:
    """COCO results found on a small image, in the pixels of a larger one of the same view
    (sizes ``(width, height)``): the native low-resolution path."""
    sx, sy = large_size[0] / small_size[0], large_size[1] / small_size[1]
    return scale_results(results, sx, sy, pixel_centres=True)


def degrade_tensor(image, scale: float):
    """:func:`degrade` for a float tensor ``(C, H, W)`` or ``(N, C, H, W)`` (any device)."""
    import torch.nn.functional as F

    if scale == 1:
        return image
    batched = image.dim() == 4
    x = image if batched else image[None]
    h, w = x.shape[-2:]
    sw, sh = low_resolution_size(w, h, scale)
    small = F.interpolate(x, size=(sh, sw), mode="bilinear", align_corners=False, antialias=True)
    big = F.interpolate(small, size=(h, w), mode="bilinear", align_corners=False, antialias=True)
    return big if batched else big[0]


@dataclass(frozen=True)
class LowResSchedule:
    """Which downscale factor each training image gets.

    ``fixed`` set: every image at that factor (ORPose_fixed_sx). Otherwise the ORPose_all mixture:
    ``p_full`` of the images at 1x, ``p_mid`` in ``mid_range`` and the rest in ``low_range``
    (integer factors, bounds included). The paper splits the non-1x share evenly (0.3 / 0.35 /
    0.35); ``all:P1,PMID,PLOW`` weights it otherwise, e.g. toward 8-12x for an OR deployed in
    privacy mode.
    """

    fixed: float | None = None
    p_full: float = 0.3
    p_mid: float = 0.35
    mid_range: tuple[int, int] = (2, 8)
    low_range: tuple[int, int] = (8, 12)

    @classmethod
    def official_all(cls) -> LowResSchedule:
        """ORPose_all as the official code draws it: s in {2..7} and {8..11}."""
        return cls(mid_range=(2, 7), low_range=(8, 11))

    @classmethod
    def from_spec(cls, spec: str | float | int) -> LowResSchedule:
        """``"all"`` for ORPose_all (the paper's bounds), ``"all_official"`` for the official
        code's draws, ``"all:P1,PMID,PLOW"`` for the paper's ranges with other shares (three
        non-negative numbers summing to 1, e.g. ``all:0.2,0.1,0.7``), or a fixed factor
        (``"12"``, ``12`` or ``"12x"``)."""
        if isinstance(spec, str):
            text = spec.strip().lower()
            if text == "all":
                return cls()
            if text.startswith("all:"):
                shares = [float(v) for v in text[4:].split(",")]
                if len(shares) != 3 or min(shares) < 0 or not math.isclose(sum(shares), 1.0):
                    raise ValueError(f"expected three shares summing to 1, got {spec!r}")
                return cls(p_full=shares[0], p_mid=shares[1])
            if text == "all_official":
                return cls.official_all()
            spec = float(text.rstrip("x"))
        if spec < 1:
            raise ValueError(f"downscale factor must be >= 1, got {spec}")
        return cls(fixed=float(spec))

    def sample(self, rng: random.Random) -> float:
        """Draw one factor; deterministic for a seeded ``rng``."""
        if self.fixed is not None:
            return self.fixed
        if rng.random() < self.p_full:
            return 1.0
        p_mid = self.p_mid / (1.0 - self.p_full) if self.p_full < 1 else 0.0
        lo, hi = self.mid_range if rng.random() < p_mid else self.low_range
        return float(rng.randint(lo, hi))
