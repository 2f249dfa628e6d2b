"""The resumable record of ``orpose predict``, and the result files assembled from it.

Each finished frame is one JSON line ``{"image": {...}, "results": [...]}`` appended (and flushed)
as soon as it exists, so a long video interrupted at frame 5,000 resumes at frame 5,001. The final
files are written from the journal:

- ``results.json``: a COCO results list (``image_id``, ``category_id``, ``bbox`` xywh, ``score``,
  ``keypoints`` [x, y, score] x 17, ``keypoints3d`` [x, y, z] x 17 mm root-relative);
- ``images.json``: ``{"info": {...}, "images": [...]}``, the images index (``id``,
  ``file_name`` = the frame's source key, ``width``, ``height``, ``frame_index``, and in
  low-resolution runs ``lowres_width``, ``lowres_height``, ``downscale``).

A journal line also records the size and modification time (ns) of the file the frame came from
(``source``: the image, or the video of a video frame); a rerun redoes a frame whose file has
changed since (another image saved under the same name), rather than reusing its old results.
Lines of journals written before this record (no ``source``) are taken as they are.

Beside the journal, ``predictions.settings.json`` records what the results depend on (the model
and the size and modification time of its file, the score threshold, the downscale factors...):
a rerun with other settings into the same folder stops (exit 2) instead of passing the first
run's results off as the second's (another model, or full-resolution results in a privacy run).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from orpose.data.coco import changed_settings, write_json_atomic
from orpose.jsonl import JsonlWriter, read_records
from orpose.paths import file_stamp

JOURNAL_NAME = "predictions.jsonl"
SETTINGS_NAME = "predictions.settings.json"
RESULTS_NAME = "results.json"
IMAGES_NAME = "images.json"


class JournalMismatch(ValueError):
    """A journal written for other inputs than the current run's."""


def source_file(key: str) -> str:
    """The file a frame key names: the image path, or the video of ``video.avi#frame=000120``."""
    return key.rsplit("#frame=", 1)[0]


class PredictionJournal:
    """Finished frames by source key; ``append`` makes a frame durable before returning."""

    def __init__(self, path: Path, resume: bool = True, settings: dict[str, Any] | None = None):
        self.path = path
        self.entries: dict[str, dict[str, Any]] = {}
        path.parent.mkdir(parents=True, exist_ok=True)
        if resume:  # a line cut by a crash is dropped: that frame is redone
            for entry in read_records(path):
                self.entries[entry["image"]["file_name"]] = entry
        if settings is not None:
            self._check_settings(settings)
        self._writer = JsonlWriter(path, truncate=not resume)

    def _check_settings(self, settings: dict[str, Any]) -> None:
        """JournalMismatch when the journaled frames were predicted with other ``settings``
        (recorded in :data:`SETTINGS_NAME` beside the journal); records them otherwise."""
        recorded = self.path.with_name(SETTINGS_NAME)
        if self.entries:
            changed = changed_settings(recorded, settings)
            if changed:
                raise JournalMismatch(
                    f"{self.path}: its {len(self.entries)} frame(s) were predicted with other "
                    f"settings (changed: {', '.join(changed)}); rerun with the same ones to "
                    "resume, or start again with --overwrite or another --out"
                )
        write_json_atomic(recorded, settings)

    def done(self, key: str, image_id: int) -> dict[str, Any] | None:
        """The finished entry of a frame, None when it is still to do (never done, or its file
        changed in size or modification time since it was)."""
        entry = self.entries.get(key)
        if entry is not None and entry.get("source", False) not in (False, self._stamp(key)):
            return None  # another file under the same name: predicted again
        if entry is not None and entry["image"]["id"] != image_id:
            raise JournalMismatch(
                f"{self.path}: frame {key} was image {entry['image']['id']} in the previous run, "
                f"{image_id} now: the inputs changed (use another --out, or --overwrite)"
            )
        return entry

    def _stamp(self, key: str) -> dict[str, int] | None:
        return file_stamp(source_file(key))

    def append(self, image: dict[str, Any], results: list[dict]) -> None:
        entry = {"image": image, "results": results}
        stamp = file_stamp(source_file(image["file_name"]))
        if stamp is not None:
            entry["source"] = stamp
        # recorded first: a signal that interrupts the write (Ctrl-C, SIGTERM during the fsync)
        # must not drop a finished frame from the results written on the way out
        self.entries[image["file_name"]] = entry
        self._writer.append(entry)

    def close(self) -> None:
        self._writer.close()

    def write_outputs(self, folder: Path, info: dict[str, Any]) -> tuple[Path, Path]:
        """``results.json`` and ``images.json`` of every journalled frame, in image-id order."""
        ordered = sorted(self.entries.values(), key=lambda e: e["image"]["id"])
        results = [r for e in ordered for r in e["results"]]
        images = [e["image"] for e in ordered]
        results_path = folder / RESULTS_NAME
        images_path = folder / IMAGES_NAME
        write_json_atomic(results_path, results)
        write_json_atomic(images_path, {"info": info, "images": images})
        return results_path, images_path
