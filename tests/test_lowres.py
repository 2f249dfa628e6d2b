"""The paper's low-resolution transform and the ORPose_all schedule."""

import random
from collections import Counter

import numpy as np
import pytest
import torch
from PIL import Image

from orpose.data.lowres import (
    LowResSchedule,
    degrade,
    degrade_tensor,
    downsample,
    low_resolution_size,
)


def test_12x_on_640x480_passes_through_53x40():
    image = np.random.default_rng(0).integers(0, 255, (480, 640, 3), dtype=np.uint8)
    assert low_resolution_size(640, 480, 12) == (53, 40)
    assert downsample(image, 12).shape == (40, 53, 3)
    out = degrade(image, 12)
    assert out.shape == image.shape and out.dtype == np.uint8
    # the degraded image holds no more information than the 53x40 one: shrinking it again
    # gives back (almost) the same small image
    again = np.asarray(Image.fromarray(out).resize((53, 40), Image.BILINEAR), dtype=float)
    assert np.abs(again - downsample(image, 12).astype(float)).mean() < 6


def test_bilinear_downsampling_averages_like_pil_not_point_sampling():
    stripes = np.zeros((48, 64, 3), np.uint8)
    stripes[:, ::2] = 255  # one-pixel stripes: point sampling would keep pure black or white
    small = downsample(stripes, 8)
    assert small.shape == (6, 8, 3)
    assert np.all(np.abs(small.astype(int) - 127) < 20)


def test_identity_at_1x_and_constant_images_unchanged():
    image = np.full((30, 40, 3), 77, np.uint8)
    assert degrade(image, 1) is image
    np.testing.assert_array_equal(degrade(image, 10), image)


def test_tensor_version_matches_pil_version():
    rng = np.random.default_rng(3)
    small = rng.integers(0, 255, (12, 16, 3), dtype=np.uint8)
    image = np.array(Image.fromarray(small).resize((160, 120), Image.BICUBIC))
    ref = degrade(image, 8).astype(np.float32)
    t = torch.from_numpy(image).permute(2, 0, 1).float()
    out = degrade_tensor(t, 8).permute(1, 2, 0).numpy()
    assert out.shape == ref.shape
    assert np.abs(out - ref).mean() < 3.0
    assert degrade_tensor(t[None], 8).shape == (1, 3, 120, 160)


def test_schedule_is_deterministic_and_follows_the_paper_mixture():
    sched = LowResSchedule.from_spec("all")
    a = [sched.sample(random.Random(7)) for _ in range(5)]
    b = [sched.sample(random.Random(7)) for _ in range(5)]
    assert a == b
    rng = random.Random(0)
    draws = [sched.sample(rng) for _ in range(20000)]
    assert all(d == int(d) and 1 <= d <= 12 for d in draws)
    counts = Counter("full" if d == 1 else "mid" if d < 8 else "low" if d > 8 else "eight"
                     for d in draws)  # fmt: skip
    # 8 belongs to both ranges (paper: [2, 8] and [8, 12]); expected share 0.35/7 + 0.35/5
    assert abs(counts["full"] / 20000 - 0.30) < 0.015
    assert abs(counts["eight"] / 20000 - (0.35 / 7 + 0.35 / 5)) < 0.015
    assert abs(counts["mid"] / 20000 - 0.35 * 6 / 7) < 0.015
    assert abs(counts["low"] / 20000 - 0.35 * 4 / 5) < 0.015


def test_fixed_schedule_and_bad_factor():
    assert LowResSchedule.from_spec("12x").sample(random.Random(0)) == 12.0
    assert LowResSchedule.from_spec(8).sample(random.Random(0)) == 8.0
    with pytest.raises(ValueError, match="must be >= 1"):
        LowResSchedule.from_spec(0.5)


def test_weighted_schedule_draws_its_shares():
    sched = LowResSchedule.from_spec("all:0.2,0.1,0.7")
    rng = random.Random(1)
    draws = [sched.sample(rng) for _ in range(20000)]
    full = sum(d == 1 for d in draws) / 20000
    low_only = sum(d > 8 for d in draws) / 20000  # 9-12: only the low range draws them
    mid_only = sum(1 < d < 8 for d in draws) / 20000  # 2-7: only the mid range
    assert abs(full - 0.2) < 0.015
    assert abs(low_only - 0.7 * 4 / 5) < 0.015
    assert abs(mid_only - 0.1 * 6 / 7) < 0.015
    # the paper's spec draws exactly as before the weights existed (same seed, same factors)
    assert LowResSchedule.from_spec("all:0.3,0.35,0.35") == LowResSchedule.from_spec("all")


@pytest.mark.parametrize("spec", ["all:0.5,0.5", "all:0.5,0.6,0.1", "all:-0.1,0.6,0.5"])
def test_weighted_schedule_refuses_bad_shares(spec):
    with pytest.raises(ValueError, match="three shares summing to 1"):
        LowResSchedule.from_spec(spec)
