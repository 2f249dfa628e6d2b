"""Evaluation images in a training set: images of the same content (sha256 of the file's bytes).

``orpose train`` (and ``orpose experiment``) refuse a training set that holds an image of an
evaluation set, whatever its name or folder: the protected sets of the shared folder
(:data:`PROTECTED_EVAL_SETS`: coco_person_val500 and the MVOR test frames, when the shared folder
is found) and any set the user names. ``--allow-eval-overlap`` (:data:`OVERRIDE_FLAG`) trains on
them anyway, for those who mean it (``orpose adapt`` on MVOR's own camera, an over-fitting check).

Only files of the same size can have the same bytes, so the check stats every image and hashes
only the files whose size occurs on both sides: a few thousand images take a fraction of a
second. Digests are cached by (path, size, mtime) for the process.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from orpose.data.coco import load_pose_dataset
from orpose.data.sources import IMAGE_SUFFIXES, list_images
from orpose.errors import UserError
from orpose.paths import shared_data

OVERRIDE_FLAG = "--allow-eval-overlap"
# Evaluation sets under <shared>/data that no training set may hold: the COCO evaluation set
# (README: "never trained on") and MVOR's test frames (day 4, camera 3).
PROTECTED_EVAL_SETS: tuple[str, ...] = ("coco_person_val500/person_keypoints.json", "mvor/images")

_CHUNK = 1 << 20
_DIGESTS: dict[tuple[str, int, int], str] = {}


class EvalOverlapError(UserError):
    """A training set holds images of an evaluation set (exit 2, one line)."""


@dataclass(frozen=True)
class Overlap:
    """One training image whose bytes are those of an evaluation image."""

    train_file: Path  # the training label file (COCO) that lists it
    train_image: Path
    eval_set: Path  # the evaluation set (COCO file, folder or image) that holds its twin
    eval_image: Path


def protected_eval_sets() -> list[Path]:
    """The protected evaluation sets of the shared folder that exist; none without the folder."""
    found = (shared_data(rel, required=False) for rel in PROTECTED_EVAL_SETS)
    return [p for p in found if p is not None]


def file_sha256(path: Path | str, st: os.stat_result | None = None) -> str:
    """The sha256 of a file's bytes, cached by (absolute path, size, mtime) for the process."""
    st = st or os.stat(path)
    key = (os.path.abspath(path), st.st_size, st.st_mtime_ns)
    digest = _DIGESTS.get(key)
    if digest is None:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            while chunk := f.read(_CHUNK):
                h.update(chunk)
        digest = _DIGESTS[key] = h.hexdigest()
    return digest


def eval_set_images(path: Path | str) -> list[Path]:
    """The images of an evaluation set: a COCO file's images (resolved as the dataset loader
    does), every image under a folder, or one image file."""
    path = Path(path)
    if path.is_dir():
        return list_images(path)
    if path.is_file() and path.suffix.lower() == ".json":
        dataset = load_pose_dataset(path)
        return [dataset.image_path(img) for img in dataset.images]
    if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES:
        return [path]
    if not path.exists():
        raise UserError(f"{path}: evaluation set not found")
    raise UserError(f"{path}: an evaluation set is a COCO .json file, a folder or an image")


def training_images(path: Path | str, image_root: Path | str | None = None) -> list[Path]:
    """The image files a training label file (COCO) names, resolved as training resolves them."""
    dataset = load_pose_dataset(path, image_root)
    return [dataset.image_path(img) for img in dataset.images]


def _sized(paths: Iterable[Path]) -> Iterable[tuple[Path, os.stat_result]]:
    """``(path, stat)`` of each existing regular file, once each."""
    seen: set[str] = set()
    for p in paths:
        key = os.path.abspath(p)
        if key in seen:
            continue
        seen.add(key)
        try:
            st = os.stat(p)
        except OSError:  # missing: the verb that reads it reports it
            continue
        if stat.S_ISREG(st.st_mode):
            yield Path(p), st


def find_eval_overlap(
    train_files: Sequence[Path | str],
    eval_sets: Sequence[Path | str],
    image_root: Path | str | None = None,
) -> list[Overlap]:
    """Every image of the training label files whose bytes equal an image of an evaluation set
    (once per training file and image), in the order of the training files.

    ``train_files``: COCO label files (``data.train``), images resolved under ``image_root``
    (``data.image_root``) or each file's default root; ``eval_sets``: COCO files, folders or
    images. Missing image files are skipped (training reports them).
    """
    by_size: dict[int, list[tuple[Path, Path, os.stat_result]]] = defaultdict(list)
    for eval_set in dict.fromkeys(Path(e) for e in eval_sets):
        for p, st in _sized(eval_set_images(eval_set)):
            by_size[st.st_size].append((eval_set, p, st))
    if not by_size:
        return []
    eval_digests: dict[str, tuple[Path, Path]] = {}
    hashed_sizes: set[int] = set()
    overlaps = []
    for train_file in dict.fromkeys(Path(t) for t in train_files):
        for p, st in _sized(training_images(train_file, image_root)):
            if st.st_size not in by_size:
                continue
            if st.st_size not in hashed_sizes:
                hashed_sizes.add(st.st_size)
                for eval_set, q, qst in by_size[st.st_size]:
                    eval_digests.setdefault(file_sha256(q, qst), (eval_set, q))
            twin = eval_digests.get(file_sha256(p, st))
            if twin is not None:
                overlaps.append(Overlap(train_file, p, *twin))
    return overlaps


def overlap_message(overlaps: Sequence[Overlap], override: str = OVERRIDE_FLAG) -> str:
    """One line: the first training file with evaluation images, one of them, and the counts."""
    first = overlaps[0]
    here = sum(o.train_file == first.train_file for o in overlaps)
    others = {o.train_file for o in overlaps} - {first.train_file}
    more = (f"; {len(overlaps) - here} more in {len(others)} other training file(s)"
            if others else "")  # fmt: skip
    return (
        f"{first.train_file}: {here} training image(s) with the same content as evaluation "
        f"images, e.g. {first.train_image} = {first.eval_image} ({first.eval_set}){more}; "
        f"evaluation images are never trained on ({override} trains on them anyway)"
    )


def check_eval_overlap(
    train_files: Sequence[Path | str],
    extra_eval_sets: Sequence[Path | str] = (),
    image_root: Path | str | None = None,
    allow: bool = False,
    override: str = OVERRIDE_FLAG,
) -> list[Overlap]:
    """Refuse training files that hold an image of an evaluation set: the protected sets of the
    shared folder (:func:`protected_eval_sets`) plus ``extra_eval_sets``.

    Raises :class:`EvalOverlapError` (one line naming the training file, one shared image, the
    count and ``override``) unless ``allow``; returns the overlaps (empty when there is none),
    so that an allowed run can say what it trains on.
    """
    eval_sets = [*protected_eval_sets(), *extra_eval_sets]
    overlaps = find_eval_overlap(train_files, eval_sets, image_root) if train_files else []
    if overlaps and not allow:
        raise EvalOverlapError(overlap_message(overlaps, override))
    return overlaps
