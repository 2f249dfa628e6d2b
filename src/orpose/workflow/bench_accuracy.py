"""Accuracy beside speed in ``orpose bench`` (``--accuracy``): each timed row, as it was timed
(same model, runtime, thresholds, factor and path), scored on labelled sets.

A row that takes 1.7x less time than the teacher is only worth it if its keypoints are as good;
a privacy path that costs a quarter of a frame is only worth it if it loses (almost) nothing.
So ``orpose bench --accuracy mvor val500`` runs each row's predictor over the first
``--accuracy-count`` images of each set at the row's factor, the way ``orpose eval`` does
(:func:`orpose.evaluation.cli.model_reports`: degraded and upsampled back, or shrunk and fed as
it is on the native path), and puts box AP, keypoint AP and (where both sides have 3D) MPJPE
beside the row's frames per second. The accuracy pass is not timed and comes after the timing.

Sets: ``mvor`` (the 61 operating-room test frames of the shared folder, MVOR day 4, camera 3,
converted as ``orpose data mvor-to-coco`` does; with that camera's intrinsics), ``val500`` (the
shared coco_person_val500), or a COCO file ``FILE.json[,images=DIR][,camera=SPEC]`` (``camera``
as ``orpose eval --camera``). A set's camera reaches the rows that lift in PyTorch (checkpoints
in the PyTorch runtime); ONNX graphs, the bench's own exports included, lift with the default
intrinsics they were exported with, as ``orpose predict`` runs them.
"""

from __future__ import annotations

import contextlib
import io
import math
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from orpose.errors import UserError

MVOR_DAY, MVOR_CAMERA = 4, 3  # the OR test frames of the shared folder (../shared/DESIGN.md)
NAMED_SETS = ("mvor", "val500")
METRICS = ("box_ap", "keypoint_ap", "mpjpe_mm")


@dataclass(frozen=True)
class AccuracySet:
    """A labelled set to score the rows on: its name in the table, the COCO ground truth, the
    image root (None: the file's own) and the camera the students lift with (None: default)."""

    name: str
    gt: Path
    images: Path | None = None
    camera: str | None = None


def parse_accuracy_set(spec: str) -> AccuracySet | str:
    """``mvor`` / ``val500`` (resolved later, they need the shared folder) or
    ``FILE.json[,images=DIR][,camera=SPEC]`` (SPEC may hold commas: ``fx,fy,cx,cy``); a
    malformed spec is one line (exit 2)."""
    if spec in NAMED_SETS:
        return spec
    path, *options = re.split(r",(?=(?:images|camera)=)", spec)
    fields: dict[str, str] = {}
    for option in options:
        key, _, value = option.partition("=")
        if not value:
            raise UserError(f"--accuracy {spec}: {key}= is empty")
        fields[key] = value
    gt = Path(path)
    if not gt.is_file():
        raise UserError(f"--accuracy {spec}: {gt}: no such COCO file")
    images = Path(fields["images"]) if "images" in fields else None
    if images is not None and not images.is_dir():
        raise UserError(f"--accuracy {spec}: images={images}: no such folder")
    return AccuracySet(gt.stem, gt, images, fields.get("camera"))


def resolve_sets(specs: Sequence[AccuracySet | str], workdir: Path) -> list[AccuracySet]:
    """The named shared sets made concrete (MVOR's test frames converted to COCO in
    ``workdir``); files as given."""
    from orpose.paths import shared_data

    out: list[AccuracySet] = []
    for spec in specs:
        if isinstance(spec, AccuracySet):
            out.append(spec)
        elif spec == "val500":
            val500 = shared_data("coco_person_val500/person_keypoints.json")
            out.append(AccuracySet("val500", val500))
        elif spec == "mvor":
            from orpose.data.cli import mvor_to_coco

            annotations = shared_data("mvor/camma_mvor_2018.json")
            images = shared_data("mvor/images")
            gt = workdir / "mvor_test.json"
            with contextlib.redirect_stdout(io.StringIO()):  # its summary line: not the bench's
                mvor_to_coco(gt, mvor=annotations, days=[MVOR_DAY], cameras=[MVOR_CAMERA],
                             images=images)  # fmt: skip
            out.append(AccuracySet("mvor", gt, images, f"{annotations}:{MVOR_CAMERA}"))
        names = [s.name for s in out]
        if len(set(names)) < len(names):
            raise UserError(
                f"--accuracy: two sets are named {out[-1].name!r} (a set's column is the name of "
                "its file without .json): give each once, under a file name of its own"
            )
    return out


def teacher_predictor(teacher, lifter=None) -> Callable[[np.ndarray], list[dict]]:
    """The teacher as ``orpose label`` + ``orpose eval`` score it: each person written as
    ``orpose label`` (``--lifter``: with its 3D) writes it, read back as ``orpose eval`` reads a
    pseudo-label file (its soft keypoints and their lift); the image id is set by the caller."""
    from orpose.evaluation.predictions import result_from_annotation
    from orpose.teacher.lift3d import add_3d
    from orpose.teacher.writer import person_annotation

    threshold = teacher.config.keypoint_threshold

    def run(image: np.ndarray) -> list[dict]:
        people = teacher.label(image)
        if lifter is not None:
            add_3d(people, lifter, threshold)
        annotations = (person_annotation(person, threshold) for person in people)
        return [result_from_annotation(ann, image_id=-1) for ann in annotations]

    return run


@contextlib.contextmanager
def lifting_camera(predictor, camera: str | None) -> Iterator[None]:
    """A student predictor that lifts (``camera`` attribute) lifts with the set's camera for the
    time of its pass; others (the teacher, exported graphs) as they are."""
    if camera is None or not hasattr(predictor, "camera"):
        yield
        return
    from orpose.lifting.intrinsics import read_camera

    before, predictor.camera = predictor.camera, read_camera(camera)
    try:
        yield
    finally:
        predictor.camera = before


def score_row(
    predictor: Callable, accuracy_set: AccuracySet, dataset, scale: float, native: bool,
    count: int | None,
) -> dict[str, float | None]:  # fmt: skip
    """Box AP, keypoint AP (%) and MPJPE (mm, None without 3D) of one row on one set."""
    from orpose.evaluation.cli import model_reports

    with lifting_camera(predictor, accuracy_set.camera):
        (report,), _ = model_reports(
            predictor, dataset, [scale], None, limit=count, native_lowres=native
        )
    row = report.row()
    # None, not NaN, in the JSON report: no 3D on one side (the teacher without --lifter), no
    # annotated person among the images scored
    return {key: float(row[key]) if math.isfinite(row[key]) else None
            for key in METRICS}  # fmt: skip


def load_sets(sets: Sequence[AccuracySet]) -> list[tuple[AccuracySet, Any]]:
    """Each set with its ground truth loaded (images checked to exist) and its camera read:
    before any timing, so that a bad one stops the bench at once."""
    from orpose.data.coco import load_pose_dataset
    from orpose.lifting.intrinsics import read_camera

    for s in sets:
        if s.camera is not None:
            read_camera(s.camera)  # a DatasetError naming the file and field
    return [(s, load_pose_dataset(s.gt, image_root=s.images, check_images=True)) for s in sets]


def format_accuracy(values: dict[str, float | None] | None) -> str:
    """``box / keypoint / MPJPE`` of one row on one set, ``-`` for what is missing."""
    if not values:
        return "-"

    def fmt(key: str, digits: int) -> str:
        v = values.get(key)
        return "-" if v is None or not math.isfinite(v) else f"{v:.{digits}f}"

    return f"{fmt('box_ap', 1)} / {fmt('keypoint_ap', 1)} / {fmt('mpjpe_mm', 0)}"
