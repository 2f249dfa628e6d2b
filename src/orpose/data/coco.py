"""COCO-format pose files: ground truth, pseudo labels and predictions, validated on load.

orpose keeps every dataset in COCO JSON so that any COCO tool still reads it. Pseudo labels and
3D ground truth ride along as extra annotation fields (see docs/formats.md):

- ``keypoints``         [x, y, v] * 17   COCO's own field; in a pseudo-label file the HARD set
                                         (keypoints under the confidence threshold have v = 0)
- ``keypoints_soft``    [x, y, c] * 17   the SOFT set: every keypoint with its confidence in [0, 1]
- ``keypoints3d_soft``  [x, y, z] * 17   lift of the soft set, mm, root-relative (mid-hips)
- ``keypoints3d_hard``  [x, y, z] * 17   lift of the hard set, mm, root-relative
- ``keypoints3d``       [x, y, z, v] * 17  3D ground truth, mm, camera frame (MVOR / MVOR+)
- ``score``             float            detection confidence of a pseudo-labelled person

A malformed file raises :class:`DatasetError` naming the file, the record and the field.
"""

from __future__ import annotations

import json
import math
import os
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from orpose.atomic import write_atomic
from orpose.errors import DatasetError
from orpose.skeleton import NUM_KEYPOINTS, PERSON_CATEGORY

# Field name -> (values per keypoint, meaning of the last value). Lengths are per person.
KEYPOINT_FIELDS: dict[str, int] = {
    "keypoints": 3,
    "keypoints_soft": 3,
    "keypoints3d_soft": 3,
    "keypoints3d_hard": 3,
    "keypoints3d": 4,
}


def _where(path: Path | str, record: str, field_name: str | None = None) -> str:
    where = f"{path}: {record}"
    return f"{where}: field '{field_name}'" if field_name else where


def _is_number(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)


def check_numbers(
    values: Any, expected_len: int | None, path: Path | str, record: str, field_name: str
) -> None:
    """Raise DatasetError unless ``values`` is a list of finite numbers of the expected length."""
    if not isinstance(values, list | tuple):
        raise DatasetError(
            f"{_where(path, record, field_name)}: expected a list of numbers, "
            f"got {type(values).__name__}"
        )
    if expected_len is not None and len(values) != expected_len:
        raise DatasetError(
            f"{_where(path, record, field_name)}: "
            f"expected {expected_len} numbers, got {len(values)}"
        )
    for i, v in enumerate(values):
        if not _is_number(v):
            raise DatasetError(
                f"{_where(path, record, field_name)}: value #{i} is {v!r}, not a finite number"
            )


def check_keypoint_field(ann: dict, field_name: str, path: Path | str, record: str) -> None:
    """Check one keypoint field of an annotation: length 17 * channels, numbers, sane flags."""
    channels = KEYPOINT_FIELDS[field_name]
    values = ann[field_name]
    if isinstance(values, list) and len(values) % channels == 0 and len(values) != 17 * channels:
        raise DatasetError(
            f"{_where(path, record, field_name)}: expected {NUM_KEYPOINTS} keypoints "
            f"({NUM_KEYPOINTS * channels} numbers), got {len(values) // channels} keypoints"
        )
    check_numbers(values, NUM_KEYPOINTS * channels, path, record, field_name)
    last = np.asarray(values, dtype=np.float64)[channels - 1 :: channels]
    if field_name == "keypoints" and not np.all(np.isin(last, (0, 1, 2))):
        raise DatasetError(
            f"{_where(path, record, field_name)}: visibility flags must be 0, 1 or 2, "
            f"got {sorted(set(last.tolist()) - {0.0, 1.0, 2.0})[:3]}"
        )
    if field_name == "keypoints_soft" and (np.any(last < 0) or np.any(last > 1)):
        raise DatasetError(f"{_where(path, record, field_name)}: confidences must lie in [0, 1]")


def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


# A box or 2D keypoint may reach this many image sizes beyond each image edge, no further: more
# is another coordinate frame (another resolution, the network input) or garbage. The same rule
# for ground truth, pseudo labels (on load) and predictions (orpose.evaluation.predictions).
COORD_MARGIN = 1.0


def within_image(values: Sequence[float], size: tuple[float, float]) -> bool:
    """Whether the (x, y) pairs of a flat list lie within :data:`COORD_MARGIN` of an image of
    ``size`` = (width, height)."""
    w, h = size
    xs, ys = values[0::2], values[1::2]
    return all(-COORD_MARGIN * w <= x <= (1 + COORD_MARGIN) * w for x in xs) and all(
        -COORD_MARGIN * h <= y <= (1 + COORD_MARGIN) * h for y in ys
    )


def check_in_image(ann: dict, img: dict, path: Path | str, where: str) -> None:
    """DatasetError when the (validated) ``bbox`` or a 2D keypoint of ``ann`` lies far outside
    its image (more than :data:`COORD_MARGIN` image sizes beyond an edge): a ground-truth box of
    1e300 pixels gave box AP 0.00 and a keypoint at 1e300 a lower keypoint AP, without a word."""
    size = (img["width"], img["height"])
    x, y, w, h = ann["bbox"]
    if not within_image([x, y, x + w, y + h], size):
        raise DatasetError(
            f"{_where(path, where, 'bbox')}: {[x, y, w, h]!r} lies far outside the "
            f"{size[0]:g}x{size[1]:g} image (another coordinate frame?)"[:400]
        )
    for key in ("keypoints", "keypoints_soft"):
        values = ann.get(key)
        if values:
            xy = [v for i, v in enumerate(values) if i % 3 != 2]
            if not within_image(xy, size):
                raise DatasetError(
                    f"{_where(path, where, key)}: a keypoint lies far outside the "
                    f"{size[0]:g}x{size[1]:g} image (another coordinate frame?)"
                )


def validate_categories(categories: Any, path: Path | str) -> set[int]:
    """Check ``categories``: a list of objects with a unique integer ``id`` and a string
    ``name`` (``keypoints``, when given, a list of names); returns the ids."""
    if not isinstance(categories, list):
        raise DatasetError(
            f"{path}: top level: field 'categories': expected a list, got {categories!r}"[:300]
        )
    ids: set[int] = set()
    for i, cat in enumerate(categories):
        where = f"{path}: categories[{i}]"
        if not isinstance(cat, dict):
            raise DatasetError(f"{where}: expected an object, got {cat!r}"[:300])
        cat_id = cat.get("id")
        if not _is_int(cat_id):
            raise DatasetError(f"{where}: field 'id': expected an integer, got {cat_id!r}"[:300])
        if cat_id in ids:
            raise DatasetError(f"{where}: field 'id': duplicate id {cat_id}")
        if not isinstance(cat.get("name"), str):
            raise DatasetError(f"{where}: field 'name': expected a string, got {cat.get('name')!r}")
        names = cat.get("keypoints", [])
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise DatasetError(f"{where}: field 'keypoints': expected a list of names")
        ids.add(cat_id)
    return ids


def _require(record: dict, key: str, path: Path | str, where: str) -> Any:
    if key not in record:
        raise DatasetError(f"{_where(path, where, key)}: missing")
    return record[key]


def validate_image(img: Any, path: Path | str, index: int) -> None:
    """Check one entry of ``images``: id, file_name, width, height."""
    if not isinstance(img, dict):
        raise DatasetError(f"{path}: images[{index}]: expected an object")
    where = f"image #{index} (id {img.get('id', '?')})"
    image_id = _require(img, "id", path, where)
    if not isinstance(image_id, int) or isinstance(image_id, bool):
        raise DatasetError(f"{_where(path, where, 'id')}: expected an integer, got {image_id!r}")
    if not isinstance(_require(img, "file_name", path, where), str):
        raise DatasetError(f"{_where(path, where, 'file_name')}: expected a string")
    for key in ("width", "height"):
        v = _require(img, key, path, where)
        if not _is_number(v) or v <= 0:
            raise DatasetError(f"{_where(path, where, key)}: expected a positive number, got {v!r}")


def validate_annotation(
    ann: Any,
    path: Path | str,
    index: int,
    image_ids: set[int],
    category_ids: set[int] | None = None,
) -> None:
    """Check one entry of ``annotations`` with every orpose extension field it carries; ids are
    integers, ``category_id`` one of ``category_ids`` (when given), ``area`` not negative."""
    if not isinstance(ann, dict):
        raise DatasetError(f"{path}: annotations[{index}]: expected an object")
    ann_id = ann.get("id", f"? (#{index})")
    where = f"annotation id {ann_id if _is_int(ann_id) else f'? (#{index})'}"
    ann_id = _require(ann, "id", path, where)
    if not _is_int(ann_id):
        raise DatasetError(f"{_where(path, where, 'id')}: expected an integer, got {ann_id!r}")
    image_id = _require(ann, "image_id", path, where)
    if not _is_int(image_id):
        raise DatasetError(
            f"{_where(path, where, 'image_id')}: expected an integer, got {image_id!r}"
        )
    if image_id not in image_ids:
        raise DatasetError(f"{_where(path, where, 'image_id')}: no image with id {image_id!r}")
    category = ann.get("category_id", PERSON_CATEGORY["id"])
    if not _is_int(category) or (category_ids is not None and category not in category_ids):
        known = ", ".join(str(c) for c in sorted(category_ids or ()))
        raise DatasetError(
            f"{_where(path, where, 'category_id')}: {category!r} is not the id of an entry of "
            f"'categories' ({known})"
        )
    check_numbers(_require(ann, "bbox", path, where), 4, path, where, "bbox")
    if ann["bbox"][2] < 0 or ann["bbox"][3] < 0:
        raise DatasetError(f"{_where(path, where, 'bbox')}: negative width or height")
    for key in ("score", "area"):
        if key in ann and not _is_number(ann[key]):
            raise DatasetError(f"{_where(path, where, key)}: expected a number, got {ann[key]!r}")
    if ann.get("area", 0) < 0:
        raise DatasetError(f"{_where(path, where, 'area')}: negative area {ann['area']!r}")
    if ann.get("iscrowd", 0) not in (0, 1):
        raise DatasetError(f"{_where(path, where, 'iscrowd')}: expected 0 or 1")
    if "num_keypoints" in ann:
        count = ann["num_keypoints"]
        if not _is_int(count) or not 0 <= count <= NUM_KEYPOINTS:
            raise DatasetError(
                f"{_where(path, where, 'num_keypoints')}: expected a whole number 0-"
                f"{NUM_KEYPOINTS}, got {count!r}"
            )
    for key in KEYPOINT_FIELDS:
        if key in ann:
            check_keypoint_field(ann, key, path, where)


@dataclass
class PoseDataset:
    """A validated COCO pose file in memory; annotations stay plain dicts, as COCO tools expect."""

    images: list[dict]
    annotations: list[dict]
    categories: list[dict] = field(default_factory=lambda: [dict(PERSON_CATEGORY)])
    info: dict = field(default_factory=dict)
    image_root: Path | None = None
    path: Path | None = None

    def __post_init__(self) -> None:
        self._by_image: dict[int, list[dict]] | None = None

    @property
    def image_by_id(self) -> dict[int, dict]:
        return {img["id"]: img for img in self.images}

    def annotations_of(self, image_id: int) -> list[dict]:
        """Annotations of one image (index built once, on first use)."""
        if self._by_image is None:
            index: dict[int, list[dict]] = defaultdict(list)
            for ann in self.annotations:
                index[ann["image_id"]].append(ann)
            self._by_image = index
        return self._by_image.get(image_id, [])

    def image_path(self, image: dict | int) -> Path:
        """Where the image file lies: ``image_root / file_name`` (absolute names kept).

        Names were checked against the root when the file was loaded (see
        :func:`file_name_problem`); a dataset built in memory is trusted as it is.
        """
        img = self.image_by_id[image] if isinstance(image, int) else image
        name = Path(img["file_name"])
        if name.is_absolute() or self.image_root is None:
            return name
        return self.image_root / name

    def to_json(self) -> dict:
        return {
            "info": self.info,
            "images": self.images,
            "annotations": self.annotations,
            "categories": self.categories,
        }

    def save(self, path: Path | str) -> Path:
        """Write the file atomically (a crash never leaves half a file behind)."""
        return write_json_atomic(path, self.to_json())


def write_json_atomic(path: Path | str, payload: Any) -> Path:
    """Write JSON atomically (see :mod:`orpose.atomic`)."""
    return write_atomic(path, lambda f: json.dump(payload, f))


def read_json(path: Path | str) -> Any:
    """Read a JSON file (UTF-8, as RFC 8259 requires; a UTF-8 byte-order mark is allowed), turning
    any failure into a DatasetError that names the file: unreadable, not UTF-8 (UTF-16 says so),
    a syntax error (with its line and column), nesting too deep for the parser, or an integer
    longer than Python converts (4300 digits)."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: no such file")
    try:
        data = path.read_bytes()
    except OSError as err:
        raise DatasetError(f"{path}: cannot be read ({err.strerror or err})") from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        utf16 = data[:2] in (b"\xff\xfe", b"\xfe\xff") or b"\x00" in data[:4]
        hint = "; it looks like UTF-16: save it as UTF-8" if utf16 else ""
        raise DatasetError(
            f"{path}: not valid JSON (not UTF-8 text: byte {err.start} is {data[err.start]:#04x}"
            f"{hint})"
        ) from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise DatasetError(f"{path}: not valid JSON ({err})") from None
    except RecursionError:
        raise DatasetError(f"{path}: not valid JSON for orpose (nested too deeply)") from None
    except ValueError as err:  # e.g. an integer of more than 4300 digits
        raise DatasetError(f"{path}: not valid JSON for orpose ({err})") from None


def changed_settings(recorded: Path | str, settings: dict[str, Any]) -> list[str]:
    """The keys whose values in ``settings`` differ from those of the record ``recorded`` (a
    JSON object written by an earlier run), compared as they read back (tuples are lists); []
    when there is no record, or one that cannot be read (cut by a crash): nothing to tell. How a
    resumable job (the predict and eval journals) tells that its finished work was made with
    other settings, before it writes its own record."""
    if not Path(recorded).is_file():
        return []
    try:
        before = read_json(recorded)
    except DatasetError:
        return []
    if not isinstance(before, dict):
        return []
    settings = json.loads(json.dumps(settings))
    return sorted(k for k in {*before, *settings} if before.get(k) != settings.get(k))


# Keys of ``info`` by which orpose's writers mark files that name images outside the image root on
# purpose: ``orpose data subset`` (absolute paths, ``subset_of``) and ``orpose label`` (still
# images by absolute path, video frames relative to the root, ``orpose``).
OUTSIDE_ROOT_WRITERS = ("subset_of", "orpose")


def names_may_leave_root(info: Any) -> bool:
    """Whether a file was written by one of :data:`OUTSIDE_ROOT_WRITERS`."""
    return isinstance(info, dict) and any(key in info for key in OUTSIDE_ROOT_WRITERS)


def file_name_problem(file_name: str, root: Path) -> str | None:
    """Why ``file_name`` leaves the image ``root``; None when it stays inside.

    The test is lexical (``..`` components are folded, symbolic links are not followed), so a
    dataset whose images are links to another disk is fine, while ``../../etc/passwd`` or an
    absolute path outside the root is not.
    """
    name = Path(file_name)
    if not name.is_absolute():
        folded = os.path.normpath(file_name)
        if folded == os.pardir or folded.startswith(os.pardir + os.sep):
            return f"{file_name!r} leaves the image root {root}"
        return None
    folded_name = Path(os.path.normpath(name))
    for base in {Path(os.path.abspath(root)), root.resolve()}:
        if folded_name == base or base in folded_name.parents:
            return None
    return (
        f"{file_name!r} is an absolute path outside the image root {root} "
        "(name a folder above it with --images, or data.image_root in a training config)"
    )


def default_image_root(json_path: Path) -> Path:
    """``images/`` beside the JSON file when it exists (the layout of the shared COCO subsets)."""
    beside = json_path.parent / "images"
    return beside if beside.is_dir() else json_path.parent


def load_pose_dataset(
    path: Path | str, image_root: Path | str | None = None, check_images: bool = False
) -> PoseDataset:
    """Load and validate a COCO pose file (ground truth or pseudo labels).

    ``check_images`` verifies that every image exists under ``image_root`` (default: ``images/``
    beside the file, else the file's folder), so that a long job fails before it starts.

    Image file names must stay inside the image root: a relative name must not climb out of it
    with ``..`` and an absolute name must lie under it, else a DatasetError names the file and
    the image record. The one exception is a file that orpose wrote with names outside the root
    on purpose, marked by its ``info`` (``subset_of``: ``orpose data subset`` writes absolute
    paths; ``orpose``: ``orpose label`` keeps still images by absolute path and may reach its
    frames folder with ``..``); its names are taken as written. A file from elsewhere whose
    absolute names lie outside its default root loads with ``--images`` set to a folder above
    them; names with ``..`` have to be rewritten relative to a root that holds the images.
    """
    path = Path(path)
    data = read_json(path)
    if not isinstance(data, dict):
        raise DatasetError(f"{path}: expected a COCO object with 'images' and 'annotations'")
    for key in ("images", "annotations"):
        if key not in data:
            raise DatasetError(f"{path}: top level: field '{key}': missing")
        if not isinstance(data[key], list):
            raise DatasetError(f"{path}: top level: field '{key}': expected a list")
    if data.get("info") is not None and not isinstance(data["info"], dict):
        raise DatasetError(f"{path}: top level: field 'info': expected an object")
    categories = data.get("categories")
    category_ids = validate_categories(categories, path) if categories not in (None, []) else None
    seen: set[int] = set()
    for i, img in enumerate(data["images"]):
        validate_image(img, path, i)
        if img["id"] in seen:
            raise DatasetError(f"{path}: image #{i}: field 'id': duplicate id {img['id']}")
        seen.add(img["id"])
    ann_ids: set = set()
    image_of = {img["id"]: img for img in data["images"]}
    for i, ann in enumerate(data["annotations"]):
        validate_annotation(ann, path, i, seen, category_ids)
        check_in_image(ann, image_of[ann["image_id"]], path, f"annotation id {ann['id']}")
        if ann["id"] in ann_ids:
            raise DatasetError(f"{path}: annotation #{i}: field 'id': duplicate id {ann['id']}")
        ann_ids.add(ann["id"])
    root = Path(image_root) if image_root is not None else default_image_root(path)
    if not names_may_leave_root(data.get("info")):
        for i, img in enumerate(data["images"]):
            problem = file_name_problem(img["file_name"], root)
            if problem is not None:
                where = _where(path, f"image #{i} (id {img['id']})", "file_name")
                raise DatasetError(f"{where}: {problem}")
    dataset = PoseDataset(
        images=data["images"],
        annotations=data["annotations"],
        categories=data.get("categories") or [dict(PERSON_CATEGORY)],
        info=data.get("info", {}),
        image_root=root,
        path=path,
    )
    if check_images:
        for img in dataset.images:
            if not dataset.image_path(img).is_file():
                raise DatasetError(
                    f"{path}: image id {img['id']}: field 'file_name': "
                    f"{dataset.image_path(img)} not found on disk"
                )
    return dataset


def repeated_image_files(dataset: PoseDataset) -> list[tuple[dict, dict, Path]]:
    """``(entry, earlier entry, path)`` of every image record whose file an earlier record of
    ``dataset`` names too (the same path, spelled alike or not: ``a.jpg``, ``./a.jpg``)."""
    first: dict[str, dict] = {}
    repeated = []
    for img in dataset.images:
        path = dataset.image_path(img)
        key = os.path.normpath(os.path.abspath(path))
        if key in first:
            repeated.append((img, first[key], path))
        else:
            first[key] = img
    return repeated


def refuse_repeated_images(dataset: PoseDataset, role: str = "a ground truth") -> None:
    """DatasetError naming the file and both image ids when two records name one image file:
    its people would be counted twice, or split between two ids that one prediction cannot
    both match (``orpose eval``; ``orpose label`` labels such an image once)."""
    repeated = repeated_image_files(dataset)
    if repeated:
        img, earlier, path = repeated[0]
        more = f" ({len(repeated)} such records)" if len(repeated) > 1 else ""
        raise DatasetError(
            f"{dataset.path}: image id {img['id']}: field 'file_name': {path} is also image id "
            f"{earlier['id']}'s{more}; {role} lists each image once (merge their annotations "
            "into one record)"
        )


def box_iou_xywh(a: Any, b: Any) -> np.ndarray:
    """IoU matrix ``(A, B)`` of COCO boxes (x, y, w, h), by pycocotools' rule for non-crowd
    boxes."""
    from pycocotools import mask

    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    if not len(a) or not len(b):
        return np.zeros((len(a), len(b)))
    return np.asarray(mask.iou(a, b, [0] * len(b)), dtype=np.float64).reshape(len(a), len(b))


def box_cover_xywh(a: Any, b: Any) -> np.ndarray:
    """Matrix ``(A, B)`` of the share of each COCO box of ``a`` (x, y, w, h) that each box of
    ``b`` covers: pycocotools' rule for crowd boxes (intersection over the first box's area)."""
    from pycocotools import mask

    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    if not len(a) or not len(b):
        return np.zeros((len(a), len(b)))
    return np.asarray(mask.iou(a, b, [1] * len(b)), dtype=np.float64).reshape(len(a), len(b))


def detections_of(results: Sequence[dict]):
    """People (``bbox`` x, y, w, h and ``score``) as ``supervision`` detections, what
    ByteTrack (``trackers``) takes; ``data["index"]`` says which person each one is."""
    import supervision as sv

    boxes = np.array([r["bbox"] for r in results], dtype=np.float64).reshape(-1, 4)
    boxes[:, 2:] += boxes[:, :2]  # xywh -> xyxy
    return sv.Detections(
        xyxy=boxes,
        confidence=np.array([r["score"] for r in results], dtype=np.float64),
        data={"index": np.arange(len(results))},
    )


def keypoints_array(annotations: Sequence[dict], field_name: str = "keypoints") -> np.ndarray:
    """Stack one keypoint field of several annotations into ``(N, 17, C)`` (C from the field)."""
    channels = KEYPOINT_FIELDS[field_name]
    if not annotations:
        return np.zeros((0, NUM_KEYPOINTS, channels))
    return np.asarray([a[field_name] for a in annotations], dtype=np.float64).reshape(
        len(annotations), NUM_KEYPOINTS, channels
    )


def flatten_keypoints(keypoints: np.ndarray, decimals: int = 2) -> list[float]:
    """``(17, C)`` array to the flat list COCO stores, rounded to keep files small."""
    return [round(float(v), decimals) for v in np.asarray(keypoints).reshape(-1)]


def hard_from_soft(soft: np.ndarray, threshold: float) -> np.ndarray:
    """The hard set from the soft one: keep (x, y) with v = 2 where c >= threshold, else zeros."""
    soft = np.asarray(soft, dtype=np.float64)
    confident = soft[..., 2] >= threshold
    hard = np.zeros_like(soft)
    hard[..., :2] = np.where(confident[..., None], soft[..., :2], 0.0)
    hard[..., 2] = np.where(confident, 2.0, 0.0)
    return hard


def make_image_entry(image_id: int, file_name: str, width: int, height: int, **extra: Any) -> dict:
    return {
        "id": int(image_id),
        "file_name": file_name,
        "width": int(width),
        "height": int(height),
        **extra,
    }
