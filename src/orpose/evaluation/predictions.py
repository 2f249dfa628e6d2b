"""Prediction files: COCO results lists, or orpose's own COCO files (pseudo labels), validated.

A result is one detected person::

    {"image_id": 139, "category_id": 1, "bbox": [x, y, w, h], "score": 0.97,
     "keypoints": [x, y, s] * 17,                 # s: keypoint confidence
     "keypoints3d": [x, y, z] * 17}               # optional; mm, root-relative (mid-hips)

A COCO-format file with ``images`` and ``annotations`` (what ``orpose label`` writes) is accepted
too: its images are matched to the ground truth by file (the same path, else the longest
trailing part of the path, never ambiguously), the soft keypoints (x, y, c) are used when
present, and ``keypoints3d_soft`` (else ``keypoints3d_hard``) stands for the 3D.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

from orpose.data.coco import (
    DatasetError,
    PoseDataset,
    check_numbers,
    default_image_root,
    read_json,
    within_image,
)
from orpose.skeleton import NUM_KEYPOINTS

MAX_3D_MM = 1e5  # 100 m from the root joint: a 3D keypoint further away is not a person's


def result_from_annotation(ann: Any, image_id: int) -> dict:
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
    for key in ("keypoints3d_soft", "keypoints3d_hard", "keypoints3d"):
        if key in ann:
            result["keypoints3d"] = ann[key]
            break
    return result


def _normal(path: Path | str) -> str:
    return os.path.normpath(os.path.abspath(path))


def _trailing_match(a: tuple[str, ...], b: tuple[str, ...]) -> int:
    """How many last components of two paths are equal (``cam1/000001.png``, ``000001.png``: 1)."""
    k = 0
    while k < min(len(a), len(b)) and a[-1 - k] == b[-1 - k]:
        k += 1
    return k


def match_images_to_ground_truth(images: list, path: Path, gt: PoseDataset) -> dict[Any, int]:
    """Image ids of an orpose COCO file -> ground-truth image ids, by file: first the same file
    on disk (absolute names; relative ones from the file's image root, as ``orpose label``
    writes them), then the ground-truth image sharing the most trailing path components
    (``.../cam1/000001.png`` is ``cam1/000001.png``, not ``cam2/000001.png``). A name that fits
    two ground-truth images equally (a bare ``000001.png`` for both cameras), or two images that
    both fit one, is a DatasetError naming them: scoring one image's people on another's would
    be silently wrong. Images of no ground-truth image (or of one matched by its own file) are
    left out."""
    gt_by_file = {_normal(gt.image_path(img)): img["id"] for img in gt.images}
    by_base_name: dict[str, list[tuple[tuple[str, ...], dict]]] = {}  # only these can match
    for img in gt.images:
        parts = Path(os.path.normpath(img["file_name"])).parts
        by_base_name.setdefault(parts[-1] if parts else "", []).append((parts, img))
    root = default_image_root(path)
    named: list[tuple[Any, str]] = []
    for img in images:
        if isinstance(img, dict) and isinstance(img.get("id"), int | str):
            named.append((img["id"], str(img.get("file_name", ""))))
    id_map: dict[Any, int] = {}
    for image_id, name in named:
        found = gt_by_file.get(_normal(name if Path(name).is_absolute() else root / name))
        if found is not None:
            id_map[image_id] = found
    exact = set(id_map.values())
    matched_by: dict[int, str] = {}
    for image_id, name in named:
        if image_id in id_map or not name:
            continue
        parts = Path(os.path.normpath(name)).parts
        candidates = by_base_name.get(parts[-1] if parts else "", [])
        scores = [(_trailing_match(parts, gt_path), img) for gt_path, img in candidates]
        best = max((k for k, _ in scores), default=0)
        if best == 0:
            continue
        fits = [img for k, img in scores if k == best]
        if len(fits) > 1:
            ids = ", ".join(str(img["id"]) for img in fits[:5])
            raise DatasetError(
                f"{path}: image id {image_id!r}: field 'file_name': {name!r} fits {len(fits)} "
                f"images of the ground truth {gt.path} equally (ids {ids}: "
                f"{', '.join(repr(img['file_name']) for img in fits[:2])}); name the images by "
                "their path (orpose label with the ground truth as input does)"
            )
        target = fits[0]["id"]
        if target in exact:
            continue  # the ground-truth image's own file is in the file too: this is another
        if target in matched_by:
            raise DatasetError(
                f"{path}: images {matched_by[target]!r} and {name!r} both fit the ground-truth "
                f"image id {target} ({fits[0]['file_name']!r}) of {gt.path}; name the images "
                "by their path"
            )
        matched_by[target] = name
        id_map[image_id] = target
    return id_map


def _results_from_coco(data: dict, path: Path, gt: PoseDataset) -> list[tuple[str, dict]]:
    """Turn an orpose COCO file into ``(record name, result)`` pairs, mapping its images onto the
    ground truth's by file (:func:`match_images_to_ground_truth`)."""
    for key in ("images", "annotations"):
        if not isinstance(data.get(key, []), list):
            raise DatasetError(f"{path}: top level: field '{key}': expected a list")
    id_map = match_images_to_ground_truth(data.get("images", []), path, gt)
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
                    result_from_annotation(ann, id_map[image_id]),
                )
            )
    return pairs


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _in_image(values: list, size: tuple[float, float] | None) -> bool:
    """Whether (x, y) pairs of a flat list lie within ``orpose.data.coco.COORD_MARGIN`` image
    sizes of the image (no size: not checked)."""
    return size is None or within_image(values, size)


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
