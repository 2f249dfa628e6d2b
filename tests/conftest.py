"""Shared fixtures: the ../shared data and tiny datasets.

Where the shared folder is missing, the tests that need it are skipped with a message, except
under CI (the environment variable ``CI`` set, as CI services and ``.ci/run`` do): there the run
stops at once with one line naming the folders looked for, instead of passing with those tests
skipped.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from orpose.paths import shared_candidates, shared_dir


def under_ci() -> bool:
    """``CI`` set to anything but empty, 0, false or no (CI services set ``CI=true``)."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def pytest_configure(config: pytest.Config) -> None:
    if under_ci() and shared_dir(required=False) is None:
        where = ", ".join(os.path.abspath(p) for p in shared_candidates())
        raise pytest.UsageError(
            f"CI: the shared models/data folder is missing (looked for {where}, a folder holding "
            "models/ or data/); set ORPOSE_SHARED=/path/to/shared, or unset CI to skip the "
            "tests that need it"
        )


@pytest.fixture(scope="session")
def shared() -> Path:
    path = shared_dir(required=False)
    if path is None:
        pytest.skip("../shared (or $ORPOSE_SHARED) not found: this test needs the shared data")
    return path


@pytest.fixture(scope="session")
def val500(shared: Path) -> Path:
    path = shared / "data" / "coco_person_val500" / "person_keypoints.json"
    if not path.is_file():
        pytest.skip(f"{path} missing")
    return path


@pytest.fixture(scope="session")
def mvor_json(shared: Path) -> Path:
    path = shared / "data" / "mvor" / "camma_mvor_2018.json"
    if not path.is_file():
        pytest.skip(f"{path} missing")
    return path


def person_keypoints(x0: float, y0: float, scale: float = 1.0) -> np.ndarray:
    """A plausible upright person's (17, 3) COCO keypoints, all visible, around (x0, y0)."""
    offsets = np.array([
        [0, 0], [-4, -4], [4, -4], [-8, -2], [8, -2], [-15, 20], [15, 20], [-20, 45], [20, 45],
        [-22, 70], [22, 70], [-10, 75], [10, 75], [-11, 115], [11, 115], [-12, 155], [12, 155],
    ], dtype=np.float64)  # fmt: skip
    kps = np.ones((17, 3)) * 2
    kps[:, :2] = offsets * scale + [x0, y0]
    return kps


def tiny_dataset_json(tmp_path: Path, with_images: bool = True) -> Path:
    """A 2-image COCO file with pseudo-label fields, images written as PNG beside it."""
    import cv2

    images, annotations = [], []
    for image_id in (1, 2):
        name = f"img{image_id}.png"
        if with_images:
            (tmp_path / "images").mkdir(exist_ok=True)
            cv2.imwrite(str(tmp_path / "images" / name), np.full((240, 320, 3), 90, np.uint8))
        images.append({"id": image_id, "file_name": name, "width": 320, "height": 240})
        kps = person_keypoints(100 + 40 * image_id, 30)
        soft = kps.copy()
        soft[:, 2] = np.linspace(0.05, 0.95, 17)
        annotations.append({
            "id": 10 + image_id, "image_id": image_id, "category_id": 1, "iscrowd": 0,
            "bbox": [70.0 + 40 * image_id, 20.0, 60.0, 180.0], "area": 10800.0,
            "score": 0.9, "num_keypoints": 17,
            "keypoints": kps.reshape(-1).tolist(),
            "keypoints_soft": soft.reshape(-1).tolist(),
            "keypoints3d_soft": np.arange(51, dtype=float).tolist(),
            "keypoints3d_hard": np.arange(51, dtype=float).tolist(),
        })  # fmt: skip
    path = tmp_path / "tiny.json"
    path.write_text(json.dumps({"images": images, "annotations": annotations}))
    return path
