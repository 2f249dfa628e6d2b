"""Run a predictor over a ground-truth set at one downscale factor, resumably.

Each image's results are appended to a JSON-lines journal as soon as they exist, so an
interrupted evaluation continues where it stopped; the journal is the prediction file's source.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
from tqdm import tqdm

from orpose.data.coco import PoseDataset
from orpose.data.lowres import degrade
from orpose.data.sources import read_image_rgb

Predictor = Callable[[np.ndarray], list[dict]]


def _finished(journal: Path) -> dict[int, list[dict]]:
    done: dict[int, list[dict]] = {}
    if not journal.exists():
        return done
    with open(journal) as f:
        for line in f:
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:  # a line cut by a crash: redo that image
                continue
            done[entry["image_id"]] = entry["results"]
    return done


def predict_dataset(predictor: Predictor, gt: PoseDataset, scale: float, journal: Path,
                    limit: int | None = None) -> list[dict]:  # fmt: skip
    """Results for every image of ``gt`` degraded by ``scale`` (journal-backed, resumable)."""
    journal.parent.mkdir(parents=True, exist_ok=True)
    done = _finished(journal)
    images = gt.images[:limit] if limit else gt.images
    todo = [img for img in images if img["id"] not in done]
    with open(journal, "a") as f:
        skipped = len(images) - len(todo)
        progress = tqdm(todo, f"predict {scale:g}x", len(images), unit="img", initial=skipped)
        for img in progress:
            image = degrade(read_image_rgb(gt.image_path(img)), scale)
            results = predictor(image)
            for r in results:
                r["image_id"] = img["id"]
            f.write(json.dumps({"image_id": img["id"], "results": results}) + "\n")
            f.flush()
            os.fsync(f.fileno())
            done[img["id"]] = results
    return [r for img in images for r in done[img["id"]]]
