"""Prediction files: COCO results lists, or orpose's own COCO files (pseudo labels), validated.

A result is one detected person::

    {"image_id": 139, "category_id": 1, "bbox": [x, y, w, h], "score": 0.97,
     "keypoints": [x, y, s] * 17,                 # s: keypoint confidence
     "keypoints3d": [x, y, z] * 17}               # optional; mm, root-relative (mid-hips)

A COCO-format file with ``images`` and ``annotations`` (what ``orpose label`` writes) is accepted
too: its images are matched to the ground truth by file name, the soft keypoints (x, y, c) are
used when present, and ``keypoints3d_soft`` (else ``keypoints3d_hard``) stands for the 3D.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from orpose.data.coco import DatasetError, PoseDataset, check_numbers, read_json
from orpose.skeleton import NUM_KEYPOINTS


def _result_from_annotation(ann: dict, image_id: int) -> dict:
    result = {
        "image_id": image_id,
        "category_id": 1,
        "bbox": list(ann["bbox"]),
        "score": float(ann.get("score", 1.0)),
        "keypoints": list(ann.get("keypoints_soft") or ann.get("keypoints") or []),
    }
    for key in ("keypoints3d_soft", "keypoints3d_hard"):
        if key in ann:
            result["keypoints3d"] = list(ann[key])
            break
    return result


def _results_from_coco(data: dict, path: Path, gt: PoseDataset) -> list[dict]:
    """Turn an orpose COCO file into results, mapping its images onto the ground truth's."""
    gt_by_name = {Path(img["file_name"]).name: img["id"] for img in gt.images}
    id_map: dict[Any, int] = {}
    for img in data.get("images", []):
        name = Path(str(img.get("file_name", ""))).name
        if name in gt_by_name:
            id_map[img.get("id")] = gt_by_name[name]
    if not id_map and data.get("images"):
        raise DatasetError(
            f"{path}: images: no file name matches an image of the ground truth {gt.path}"
        )
    return [
        _result_from_annotation(ann, id_map[ann["image_id"]])
        for ann in data.get("annotations", [])
        if ann.get("image_id") in id_map
    ]


def validate_result(result: Any, index: int, path: Path | str, gt_ids: set[int]) -> None:
    """Check one result; the error names the file, the result and the field."""
    where = f"result #{index}"
    if not isinstance(result, dict):
        raise DatasetError(f"{path}: {where}: expected an object")
    if "image_id" not in result:
        raise DatasetError(f"{path}: {where}: field 'image_id': missing")
    if result["image_id"] not in gt_ids:
        raise DatasetError(
            f"{path}: {where}: field 'image_id': unknown image id {result['image_id']!r} "
            "(not in the ground truth)"
        )
    for key, length in (("bbox", 4), ("score", None)):
        if key not in result:
            raise DatasetError(f"{path}: {where}: field '{key}': missing")
        if length:
            check_numbers(result[key], length, path, where, key)
    if "keypoints" in result:
        kps = result["keypoints"]
        if isinstance(kps, list) and len(kps) != NUM_KEYPOINTS * 3 and len(kps) % 3 == 0:
            raise DatasetError(
                f"{path}: {where}: field 'keypoints': expected {NUM_KEYPOINTS} keypoints "
                f"({NUM_KEYPOINTS * 3} numbers), got {len(kps) // 3} keypoints"
            )
        check_numbers(kps, NUM_KEYPOINTS * 3, path, where, "keypoints")
    if "keypoints3d" in result:
        check_numbers(result["keypoints3d"], NUM_KEYPOINTS * 3, path, where, "keypoints3d")


def load_predictions(source: Path | str | list[dict], gt: PoseDataset) -> list[dict]:
    """Load and validate predictions for ``gt`` from a file or an in-memory results list."""
    path: Path | str = "<predictions>"
    if isinstance(source, str | Path):
        path = Path(source)
        data = read_json(path)
    else:
        data = source
    if isinstance(data, dict):
        if "annotations" not in data:
            raise DatasetError(
                f"{path}: expected a COCO results list or a COCO file with 'annotations'"
            )
        data = _results_from_coco(data, Path(path), gt)
    if not isinstance(data, list):
        raise DatasetError(f"{path}: expected a list of results")
    gt_ids = {img["id"] for img in gt.images}
    for i, result in enumerate(data):
        validate_result(result, i, path, gt_ids)
        result.setdefault("category_id", 1)
    return data
