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

import math
from pathlib import Path
from typing import Any

from orpose.data.coco import DatasetError, PoseDataset, check_numbers, read_json
from orpose.skeleton import NUM_KEYPOINTS

# A box or keypoint may reach this many image sizes beyond each image edge, no further: more is
# a prediction in another coordinate frame (network input, another resolution) or garbage.
COORD_MARGIN = 1.0
MAX_3D_MM = 1e5  # 100 m from the root joint: a 3D keypoint further away is not a person's


def _result_from_annotation(ann: Any, image_id: int) -> dict:
    """The result an annotation of an orpose COCO file stands for; values are kept as they are
    (checked by :func:`validate_result`, so a bad one is named, not crashed on)."""
    result: dict[str, Any] = {
        "image_id": image_id,
        "category_id": ann.get("category_id", 1),
        "score": ann.get("score", 1.0),
    }
    if "bbox" in ann:
        result["bbox"] = ann["bbox"]
    for key in ("keypoints_soft", "keypoints"):
        if ann.get(key):
            result["keypoints"] = ann[key]
            break
    for key in ("keypoints3d_soft", "keypoints3d_hard"):
        if key in ann:
            result["keypoints3d"] = ann[key]
            break
    return result


def _results_from_coco(data: dict, path: Path, gt: PoseDataset) -> list[tuple[str, dict]]:
    """Turn an orpose COCO file into ``(record name, result)`` pairs, mapping its images onto the
    ground truth's by file name."""
    for key in ("images", "annotations"):
        if not isinstance(data.get(key, []), list):
            raise DatasetError(f"{path}: top level: field '{key}': expected a list")
    gt_by_name = {Path(img["file_name"]).name: img["id"] for img in gt.images}
    id_map: dict[Any, int] = {}
    for img in data.get("images", []):
        if not isinstance(img, dict) or not isinstance(img.get("id"), int | str):
            continue
        name = Path(str(img.get("file_name", ""))).name
        if name in gt_by_name:
            id_map[img.get("id")] = gt_by_name[name]
    if not id_map and data.get("images"):
        raise DatasetError(
            f"{path}: images: no file name matches an image of the ground truth {gt.path}"
        )
    pairs = []
    for i, ann in enumerate(data.get("annotations", [])):
        where = f"annotation #{i}"
        if not isinstance(ann, dict):
            raise DatasetError(f"{path}: {where}: expected an object")
        image_id = ann.get("image_id")
        if isinstance(image_id, int | str) and image_id in id_map:
            pairs.append(
                (
                    f"{where} (id {ann.get('id', '?')})",
                    _result_from_annotation(ann, id_map[image_id]),
                )
            )
    return pairs


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _in_image(values: list, size: tuple[float, float] | None) -> bool:
    """Whether (x, y) pairs of a flat list lie within :data:`COORD_MARGIN` of the image."""
    if size is None:
        return True
    w, h = size
    xs, ys = values[0::2], values[1::2]
    return all(-COORD_MARGIN * w <= x <= (1 + COORD_MARGIN) * w for x in xs) and all(
        -COORD_MARGIN * h <= y <= (1 + COORD_MARGIN) * h for y in ys
    )


def validate_result(
    result: Any,
    index: int,
    path: Path | str,
    gt_ids: set[int],
    gt_sizes: dict[int, tuple[float, float]] | None = None,
    category_ids: set[int] | None = None,
    where: str | None = None,
) -> None:
    """Check one result; the error names the file, the result and the field.

    Everything pycocotools would crash on or silently miscount is refused: an ``image_id``
    that is not an integer id of the ground truth, a ``category_id`` that is not one of its
    categories (default: person, 1), a ``score`` that is not a finite number (a string, a list,
    NaN, infinity), a ``bbox`` with a negative width or height or reaching further than one
    image size beyond the image (``gt_sizes``: width and height per image id), and keypoints
    that are not 17 finite (x, y, score) triples within the same bounds (3D: within
    :data:`MAX_3D_MM` of the root).
    """
    where = where or f"result #{index}"
    if not isinstance(result, dict):
        raise DatasetError(f"{path}: {where}: expected an object")

    def fail(key: str, message: str) -> DatasetError:
        return DatasetError(f"{path}: {where}: field '{key}': {message}")

    if "image_id" not in result:
        raise fail("image_id", "missing")
    image_id = result["image_id"]
    if not _is_int(image_id) or image_id not in gt_ids:
        raise fail("image_id", f"unknown image id {image_id!r} (not in the ground truth)")
    categories = category_ids or {1}
    category = result.get("category_id", 1)
    if not _is_int(category) or category not in categories:
        raise fail(
            "category_id",
            f"{category!r} is not a category of the ground truth "
            f"({', '.join(str(c) for c in sorted(categories))})",
        )
    for key in ("bbox", "score"):
        if key not in result:
            raise fail(key, "missing")
    score = result["score"]
    if not isinstance(score, int | float) or isinstance(score, bool) or not math.isfinite(score):
        raise fail("score", f"expected a finite number, got {score!r}")
    check_numbers(result["bbox"], 4, path, where, "bbox")
    x, y, w, h = result["bbox"]
    if w < 0 or h < 0:
        raise fail("bbox", f"negative width or height ({w!r}, {h!r})")
    size = gt_sizes.get(image_id) if gt_sizes else None
    if not _in_image([x, y, x + w, y + h], size):
        raise fail(
            "bbox",
            f"{[x, y, w, h]!r} lies far outside the {size[0]:g}x{size[1]:g} image "
            "(another coordinate frame?)",
        )
    if "keypoints" in result:
        kps = result["keypoints"]
        if isinstance(kps, list) and len(kps) != NUM_KEYPOINTS * 3 and len(kps) % 3 == 0:
            raise fail(
                "keypoints",
                f"expected {NUM_KEYPOINTS} keypoints ({NUM_KEYPOINTS * 3} numbers), "
                f"got {len(kps) // 3} keypoints",
            )
        check_numbers(kps, NUM_KEYPOINTS * 3, path, where, "keypoints")
        xy = [v for i, v in enumerate(kps) if i % 3 != 2]
        if not _in_image(xy, size):
            raise fail(
                "keypoints",
                f"a keypoint lies far outside the {size[0]:g}x{size[1]:g} image "
                "(another coordinate frame?)",
            )
    if "keypoints3d" in result:
        check_numbers(result["keypoints3d"], NUM_KEYPOINTS * 3, path, where, "keypoints3d")
        if any(abs(v) > MAX_3D_MM for v in result["keypoints3d"]):
            raise fail("keypoints3d", f"a value exceeds {MAX_3D_MM:g} mm from the root joint")


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
        pairs = _results_from_coco(data, Path(path), gt)
    elif isinstance(data, list):
        pairs = [(f"result #{i}", result) for i, result in enumerate(data)]
    else:
        raise DatasetError(f"{path}: expected a list of results")
    gt_ids = {img["id"] for img in gt.images}
    gt_sizes = {img["id"]: (img["width"], img["height"]) for img in gt.images}
    category_ids = {c["id"] for c in gt.categories if isinstance(c, dict) and "id" in c} or None
    results = []
    for i, (where, result) in enumerate(pairs):
        validate_result(result, i, path, gt_ids, gt_sizes, category_ids, where)
        result.setdefault("category_id", 1)
        results.append(result)
    return results
