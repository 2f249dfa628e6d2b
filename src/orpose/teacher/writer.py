"""The pseudo-label file: per-person annotations, assembly of the COCO file, shard merging.

The format is the one documented in :mod:`orpose.data.coco` (hard set in COCO's ``keypoints``,
soft set in ``keypoints_soft``, optional 3D sets). Image file names: still images keep their
absolute path; saved video frames are relative to the file's image root (``images/`` beside the
file when such a folder exists, else the file's folder), so that a labels file and its frames
folder can move together. ``info["orpose"]`` keeps the run's description (needed by merges),
``info["skipped"]`` the unreadable inputs.
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from orpose import __version__
from orpose.data.coco import (
    default_image_root,
    flatten_keypoints,
    hard_from_soft,
    load_pose_dataset,
    make_image_entry,
    write_json_atomic,
)
from orpose.errors import UserError
from orpose.skeleton import PERSON_CATEGORY
from orpose.teacher.teacher import Person

# Image ids are (input number + 1) * ID_BLOCK + position (image rank in its folder listing, or
# video frame index): deterministic, independent of sharding, readable.
ID_BLOCK = 10_000_000


def person_annotation(person: Person, keypoint_threshold: float) -> dict[str, Any]:
    """One person as a COCO annotation without ``id``/``image_id`` (given at assembly)."""
    soft = np.asarray(person.keypoints, dtype=np.float64).copy()
    soft[:, 2] = soft[:, 2].clip(0.0, 1.0)
    hard = hard_from_soft(soft, keypoint_threshold)
    x1, y1, x2, y2 = (float(v) for v in person.box)
    w, h = max(x2 - x1, 0.0), max(y2 - y1, 0.0)
    hard_flat = []
    for x, y, v in hard:
        hard_flat += [round(float(x), 2), round(float(y), 2), int(v)]
    ann: dict[str, Any] = {
        "category_id": PERSON_CATEGORY["id"],
        "iscrowd": 0,
        "bbox": [round(x1, 2), round(y1, 2), round(w, 2), round(h, 2)],
        "area": round(w * h, 2),
        "score": round(person.score, 5),
        "det_score": round(person.det_score, 5),
        "keypoints": hard_flat,
        "num_keypoints": int((hard[:, 2] > 0).sum()),
        "keypoints_soft": flatten_keypoints(soft, decimals=3),
    }
    for key, value in person.extra.items():
        ann[key] = flatten_keypoints(value, decimals=1) if isinstance(value, np.ndarray) else value
    return ann


def image_id_for(input_number: int, position: int) -> int:
    if position >= ID_BLOCK:
        raise UserError(f"input #{input_number + 1} has more than {ID_BLOCK} frames; split it")
    return (input_number + 1) * ID_BLOCK + position


def _unique_by_key(records: Iterable[dict]) -> list[dict]:
    """First record of each key, ordered by image id (then key for id-less skips)."""
    seen: dict[str, dict] = {}
    for r in records:
        seen.setdefault(r["key"], r)
    return sorted(seen.values(), key=lambda r: (r.get("id") or 0, r["key"]))


def assemble(header: dict, records: Iterable[dict], out_path: Path) -> dict[str, Any]:
    """The COCO pseudo-label file from journal records (one per image, any order)."""
    root = default_image_root(out_path).resolve()
    images, annotations, skipped = [], [], []
    for r in _unique_by_key(records):
        if "error" in r:
            skipped.append({k: r.get(k) for k in ("key", "id", "source", "error")})
            continue
        is_frame = r.get("frame_index") is not None
        file_name = os.path.relpath(r["file"], root) if is_frame else r["file"]
        extra = {"orpose_key": r["key"], "orpose_source": r["source"]}
        if is_frame:
            extra["frame_index"] = r["frame_index"]
        images.append(make_image_entry(r["id"], file_name, r["width"], r["height"], **extra))
        for ann in r["annotations"]:
            annotations.append({"id": len(annotations) + 1, "image_id": r["id"], **ann})
    info = {
        "description": "orpose pseudo labels (teacher output)",
        "version": __version__,
        "date_created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "orpose": header,
        "num_images": len(images),
        "num_persons": len(annotations),
        "skipped": skipped,
    }
    return {
        "info": info,
        "images": images,
        "annotations": annotations,
        "categories": [dict(PERSON_CATEGORY)],
    }


def write_labels(header: dict, records: Iterable[dict], out_path: Path) -> dict[str, Any]:
    """Assemble and write atomically: readers never see half a file."""
    payload = assemble(header, records, out_path)
    write_json_atomic(out_path, payload)
    return payload


def records_from_file(path: Path) -> tuple[dict, list[dict]]:
    """A written pseudo-label file back to its run header and per-image records."""
    dataset = load_pose_dataset(path)
    header = dataset.info.get("orpose") if isinstance(dataset.info, dict) else None
    if not isinstance(header, dict):
        raise UserError(f"{path}: not written by 'orpose label' (no info.orpose)")
    records = []
    for img in dataset.images:
        anns = [
            {k: v for k, v in a.items() if k not in ("id", "image_id")}
            for a in dataset.annotations_of(img["id"])
        ]
        records.append(
            {
                "key": img.get("orpose_key", img["file_name"]),
                "id": img["id"],
                "source": img.get("orpose_source", ""),
                "frame_index": img.get("frame_index"),
                "file": str(dataset.image_path(img).resolve()),
                "width": img["width"],
                "height": img["height"],
                "annotations": anns,
            }
        )
    records += [dict(s) for s in dataset.info.get("skipped", [])]
    return header, records


def _run_identity(header: dict) -> dict:
    """What must agree between shards of one run (everything but the shard itself)."""
    return {k: v for k, v in header.items() if k != "shard"}


def merge_label_files(paths: Sequence[Path], out_path: Path, allow_missing: bool = False) -> dict:
    """Join the files of ``--shard i/N`` runs into one file, as if labelled in one run."""
    if not paths:
        raise UserError("label-merge: no shard file given")
    headers, records = [], []
    for path in paths:
        header, recs = records_from_file(Path(path))
        headers.append((Path(path), header))
        records += recs
    first_path, first = headers[0]
    for path, header in headers[1:]:
        if _run_identity(header) != _run_identity(first):
            raise UserError(f"{path}: labelled with other inputs or settings than {first_path}")
    shards = [tuple(h.get("shard") or (0, 1)) for _, h in headers]
    count = shards[0][1]
    if any(n != count for _, n in shards) or len(set(shards)) != len(shards):
        raise UserError(f"label-merge: shards {sorted(shards)} are not distinct parts of one split")
    missing = sorted(set(range(count)) - {i for i, _ in shards})
    if missing and not allow_missing:
        raise UserError(
            f"label-merge: shard(s) {', '.join(f'{i}/{count}' for i in missing)} "
            "missing (pass --allow-missing to merge anyway)"
        )
    merged_header = {**first, "shard": None, "merged_from": [str(p) for p in paths]}
    return write_labels(merged_header, records, out_path)
