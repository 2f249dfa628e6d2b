"""Run a predictor over a ground-truth set at one downscale factor, resumably.

Each image's results are appended to a JSON-lines journal as soon as they exist, so an
interrupted evaluation continues where it stopped; the journal is the prediction file's source.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
from tqdm import tqdm

from orpose.data.coco import PoseDataset
from orpose.data.lowres import degrade
from orpose.data.sources import read_image_rgb
from orpose.jsonl import JsonlWriter, read_records

Predictor = Callable[[np.ndarray], list[dict]]


def _finished(journal: Path) -> dict[int, list[dict]]:
    return {entry["image_id"]: entry["results"] for entry in read_records(journal)}


def predict_dataset(
    predictor: Predictor, gt: PoseDataset, scale: float, journal: Path
) -> list[dict]:
    """Results for every image of ``gt`` degraded by ``scale`` (journal-backed, resumable)."""
    done = _finished(journal)
    images = gt.images
    todo = [img for img in images if img["id"] not in done]
    with JsonlWriter(journal) as writer:
        skipped = len(images) - len(todo)
        progress = tqdm(todo, f"predict {scale:g}x", len(images), unit="img", initial=skipped)
        for img in progress:
            image = degrade(read_image_rgb(gt.image_path(img)), scale)
            results = predictor(image)
            for r in results:
                r["image_id"] = img["id"]
            writer.append({"image_id": img["id"], "results": results})
            done[img["id"]] = results
    return [r for img in images for r in done[img["id"]]]
