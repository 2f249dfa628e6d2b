"""The real teacher models on a few shared images (skipped where ../shared is missing)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from orpose.cli import main
from orpose.data.coco import PoseDataset, load_pose_dataset
from orpose.paths import shared_dir

pytestmark = pytest.mark.shared

SHARED = shared_dir(required=False)
VAL = SHARED / "data" / "coco_person_val500" if SHARED else None
VIDEO = SHARED / "data" / "pets09_s2l1" / "vtest_480x360.avi" if SHARED else None
MODELS = SHARED / "models" if SHARED else None


@pytest.fixture(scope="module")
def val_subset() -> PoseDataset:
    if VAL is None or not (VAL / "person_keypoints.json").is_file():
        pytest.skip("../shared/data/coco_person_val500 not found (set ORPOSE_SHARED)")
    gt = load_pose_dataset(VAL / "person_keypoints.json")

    # Three images with several well-visible people: enough to see a broken teacher.
    def well_visible(img: dict) -> int:
        return sum(a["num_keypoints"] >= 10 for a in gt.annotations_of(img["id"]))

    chosen = [img for img in gt.images if well_visible(img) >= 2][:3]
    ids = {img["id"] for img in chosen}
    return PoseDataset(
        chosen,
        [a for a in gt.annotations if a["image_id"] in ids],
        gt.categories,
        gt.info,
        gt.image_root,
        gt.path,
    )


def link_images(dataset: PoseDataset, folder: Path) -> Path:
    folder.mkdir()
    for img in dataset.images:
        (folder / img["file_name"]).symlink_to(dataset.image_path(img).resolve())
    return folder


@pytest.mark.parametrize("preset", ["single", "full"])
def test_label_cli_on_real_images_scores_like_a_pose_model(tmp_path, val_subset, preset):
    from orpose.evaluation.coco_ap import evaluate_ap
    from orpose.evaluation.predictions import load_predictions

    images = link_images(val_subset, tmp_path / "images_in")
    out = tmp_path / "labels.json"
    code = main(
        [
            "label",
            str(images),
            "--out",
            str(out),
            "--preset",
            preset,
            "--models-dir",
            str(MODELS),
            "--no-progress",
        ]
    )
    assert code == 0
    labels = load_pose_dataset(out, check_images=True)
    assert len(labels.images) == 3 and len(labels.annotations) >= 4
    for ann in labels.annotations:
        soft = np.array(ann["keypoints_soft"]).reshape(17, 3)
        x, y, w, h = ann["bbox"]
        inside = (soft[:, 0] > x - w) & (soft[:, 0] < x + 2 * w) & (soft[:, 1] > y - h)
        assert inside.all() and soft[:, 2].min() >= 0 and soft[:, 2].max() <= 1
    ap = evaluate_ap(val_subset, load_predictions(out, val_subset))
    assert ap["keypoints"]["AP"] > 0.4, ap["keypoints"]
    assert ap["bbox"]["AP"] > 0.3, ap["bbox"]


def test_label_cli_on_video_frames(tmp_path):
    if VIDEO is None or not VIDEO.is_file():
        pytest.skip("../shared/data/pets09_s2l1 not found (set ORPOSE_SHARED)")
    out = tmp_path / "video.json"
    code = main(
        [
            "label",
            str(VIDEO),
            "--out",
            str(out),
            "--preset",
            "single",
            "--video-step",
            "300",
            "--models-dir",
            str(MODELS),
            "--no-progress",
        ]
    )
    assert code == 0
    labels = load_pose_dataset(out, check_images=True)
    assert [img["frame_index"] for img in labels.images] == [0, 300, 600]
    assert all(img["width"] == 480 and img["height"] == 360 for img in labels.images)
    per_frame = [len(labels.annotations_of(img["id"])) for img in labels.images]
    assert min(per_frame) >= 2  # PETS S2L1 shows several walking people in every frame
    info = json.loads(out.read_text())["info"]
    assert info["orpose"]["teacher"]["models"][0]["sha256"].startswith("ac80e2a1")
