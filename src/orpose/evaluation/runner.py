"""Run a predictor over a ground-truth set at one downscale factor, resumably.

Each image's results are appended to a JSON-lines journal as soon as they exist, so an
interrupted evaluation continues where it stopped; the journal is the prediction file's source.

An image that cannot be decoded stops the run with a :class:`DatasetError` naming the ground
truth, the image record and the file (what is journaled stays: the rerun resumes after it), or,
with ``skip_bad_images``, is skipped with a warning and evaluated as an image without
predictions (its people count as missed, so AP is not inflated by leaving it out).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np
from tqdm import tqdm

from orpose.data.coco import PoseDataset
from orpose.data.images import read_dataset_image
from orpose.data.lowres import degrade, downsample, results_to_larger
from orpose.errors import DatasetError
from orpose.jsonl import JsonlWriter, read_records
from orpose.lifting.intrinsics import call_with_original_size, factor_option
from orpose.scales import scale_label

log = logging.getLogger(__name__)

Predictor = Callable[[np.ndarray], list[dict]]


SETTINGS_NAME = "eval.settings.json"  # beside the journals: what their predictions were made with


def check_settings(folder: Path, settings: dict) -> None:
    """A one-line UserError when ``folder`` holds prediction journals made with other
    ``settings`` (model file, ground truth, --flip, --proposals, camera...): resuming them would
    score the earlier predictions as if they were these; records ``settings`` otherwise. A
    folder from before this record resumes as it did."""
    from orpose.data.coco import changed_settings, write_json_atomic
    from orpose.errors import UserError

    recorded = folder / SETTINGS_NAME
    if any(folder.glob("pred_*.jsonl")):
        changed = changed_settings(recorded, settings)
        if changed:
            raise UserError(
                f"{folder}: its predictions were made with other settings (changed: "
                f"{', '.join(changed)}); give another --out, or remove the folder to start again"
            )
    folder.mkdir(parents=True, exist_ok=True)
    write_json_atomic(recorded, settings)


def _finished(journal: Path) -> dict[int, list[dict]]:
    return {entry["image_id"]: entry["results"] for entry in read_records(journal)}


def read_gt_image(gt: PoseDataset, img: dict) -> np.ndarray:
    """An image of the ground truth; DatasetError naming the file, record and image if it cannot
    be decoded, is above the pixel limit or has another size than the record's width/height."""
    return read_dataset_image(gt, img)


def predict_dataset(
    predictor: Predictor,
    gt: PoseDataset,
    scale: float,
    journal: Path,
    skip_bad_images: bool = False,
    native: bool = False,
) -> list[dict]:
    """Results for every image of ``gt`` degraded by ``scale`` (journal-backed, resumable).

    ``native``: the predictor gets the small image itself (``downsample``, not upsampled back:
    the CPU student's native low-resolution path) and its results are scaled to the image's
    pixels; default: the paper's protocol (the small image upsampled to the original size).

    A skipped bad image is not journaled, so a rerun after the file is repaired predicts it.
    """
    done = _finished(journal)
    images = gt.images
    todo = [img for img in images if img["id"] not in done]
    with JsonlWriter(journal) as writer:
        skipped = len(images) - len(todo)
        progress = tqdm(
            todo, f"predict {scale_label(scale)}", len(images), unit="img", initial=skipped
        )
        for img in progress:
            try:
                image = read_gt_image(gt, img)
            except DatasetError as err:
                if not skip_bad_images:
                    raise
                log.warning("skipped %s", err)
                done[img["id"]] = []
                continue
            if native and scale > 1:
                small = downsample(image, scale)
                size = image.shape[1::-1]  # the student lifts in these pixels, as upsampled
                found = call_with_original_size(predictor, small, size)
                results = results_to_larger(found, small.shape[1::-1], size)
            else:
                results = predictor(degrade(image, scale), **factor_option(predictor, scale))
            for r in results:
                r["image_id"] = img["id"]
            writer.append({"image_id": img["id"], "results": results})
            done[img["id"]] = results
    return [r for img in images for r in done[img["id"]]]
