"""``orpose label``'s engine: walk the inputs, label each frame once, journal it, write the file.

Resumable by construction: every finished frame is journaled (fsync) before the next one, a
restarted run skips journaled keys, and the COCO file is assembled from the journal at the end
(also after a resume). Shards split the frames by their position in each input (``position %
N == i``), so N processes or machines label disjoint parts whose union is the whole.

Damaged inputs: a file that cannot be decoded is skipped with a warning and journaled as skipped
(listed in ``info.skipped``); a file that decodes only in part (a truncated JPEG, which OpenCV
fills with grey) is labelled with a warning naming it. A run (not a shard) in which no input at
all could be read stops with an error instead of writing an empty file; its journal stays.
"""

from __future__ import annotations

import json
import logging
import math
import os
import queue
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from tqdm import tqdm

from orpose.data.lowres import degrade
from orpose.data.sources import (
    SourceError,
    SourceSpec,
    count_video_frames,
    expand_inputs,
    image_file_problem,
    iter_video,
    read_image_rgb,
)
from orpose.errors import UserError
from orpose.teacher.journal import Journal
from orpose.teacher.lift3d import add_3d
from orpose.teacher.teacher import Teacher
from orpose.teacher.writer import image_id_for, person_annotation, write_labels

log = logging.getLogger(__name__)

FRAME_FORMATS = {"jpg": [cv2.IMWRITE_JPEG_QUALITY, 95], "png": [cv2.IMWRITE_PNG_COMPRESSION, 3]}


MAX_SHARDS = 10_000  # more parts than that is a typo (each part is one labelling process)


@dataclass(frozen=True)
class Shard:
    """Part ``index`` of ``count`` (0-based)."""

    index: int = 0
    count: int = 1

    @classmethod
    def parse(cls, text: str) -> Shard:
        try:
            index, count = (int(v) for v in text.split("/"))
        except ValueError:
            raise UserError(f"--shard expects I/N such as 0/4, got {text!r}") from None
        if count < 1 or not 0 <= index < count or count > MAX_SHARDS:
            raise UserError(f"--shard {text}: need 0 <= I < N <= {MAX_SHARDS}")
        return cls(index, count)

    def owns(self, position: int) -> bool:
        return position % self.count == self.index


@dataclass
class Loaded:
    """One frame to label, or the reason it cannot be."""

    key: str
    image_id: int | None
    source: str
    frame_index: int | None = None
    file: str | None = None  # the image file the labels point at (saved frame for videos)
    image: np.ndarray | None = None
    error: str | None = None
    warning: str | None = None  # decoded, but damaged (a truncated file): labelled, with a warning


@dataclass
class LabelSummary:
    out: Path
    images: int  # labelled in this call
    persons: int  # written in this call
    skipped: int  # unreadable inputs met in this call
    already_done: int  # frames found in the journal on start
    seconds: float

    @property
    def images_per_second(self) -> float:
        return self.images / self.seconds if self.seconds > 0 else 0.0

    @property
    def persons_per_second(self) -> float:
        return self.persons / self.seconds if self.seconds > 0 else 0.0


def output_paths(out: Path, shard: Shard | None) -> tuple[Path, Path, Path]:
    """Labels file, journal, default frames folder. Shards get their own file and journal but
    share the frames folder of the final (merged) file, so merged file names need no rewrite."""
    labels = out
    if shard is not None and shard.count > 1:
        labels = out.with_name(f"{out.stem}.shard{shard.index}of{shard.count}{out.suffix}")
    journal = labels.with_name(labels.stem + ".journal.jsonl")
    return labels, journal, out.with_name(out.stem + "_frames")


def video_folder_names(specs: list[SourceSpec]) -> dict[int, str]:
    """A frames sub-folder per video input: its stem, made unique when two videos share one."""
    names: dict[int, str] = {}
    for number, spec in enumerate(specs):
        if spec.video:
            stem = spec.path.stem
            names[number] = stem if stem not in names.values() else f"{stem}_{number + 1}"
    return names


def save_frame(image: np.ndarray, path: Path, fmt: str) -> None:
    """Write a frame atomically (rename), so a frame file is either whole or absent."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
    ok, data = cv2.imencode(f".{fmt}", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), FRAME_FORMATS[fmt])
    if not ok:
        raise UserError(f"{path}: the video frame cannot be encoded as {fmt}")
    # written by Python: a failed write is an OSError naming the file (one line, exit 2), and
    # OpenCV never sees a path that is not valid UTF-8 (it crashes on one)
    tmp.write_bytes(data.tobytes())
    os.replace(tmp, path)


def read_checked(path: Path) -> tuple[np.ndarray | None, str | None, str | None]:
    """``(image, error, warning)`` of a still image: OpenCV's decode (what the teacher sees), and
    the file checked to its end, since OpenCV decodes a truncated JPEG without complaint."""
    try:
        image = read_image_rgb(path)
    except OSError as err:
        problem = image_file_problem(path)
        return None, f"{path}: {problem}" if problem else str(err), None
    problem = image_file_problem(path)
    return image, None, f"{path}: {problem}; labelled as OpenCV decoded it" if problem else None


def iter_work(
    specs: list[SourceSpec],
    video_step: int,
    shard: Shard,
    done: set[str],
    frames_dir: Path,
    frame_format: str,
) -> Iterator[Loaded]:
    """Frames of this shard not in ``done``, read (and video frames saved) lazily, in order. An
    image or video given twice (a folder named twice, a COCO file listing an image twice) is
    labelled once, with a warning: the counts printed are those of the file written."""
    folders = video_folder_names(specs)
    given: set[str] = set()
    for number, spec in enumerate(specs):
        if not spec.video:
            for position, path in enumerate(spec.images):
                key = str(path)
                if key in given:
                    log.warning("%s is given twice (in %s): labelled once", key, spec.path)
                    continue
                given.add(key)
                if not shard.owns(position) or key in done:
                    continue
                item = Loaded(key, image_id_for(number, position), key, file=key)
                item.image, item.error, item.warning = read_checked(path)
                yield item
            continue
        video_key = str(spec.path)
        if video_key in given:
            log.warning("%s is given twice: labelled once", video_key)
            continue
        given.add(video_key)
        if video_key in done:  # journaled as unreadable by an earlier run
            continue
        try:
            for frame in iter_video(spec.path, step=video_step):
                index = int(frame.frame_index or 0)
                if not shard.owns(index // video_step) or frame.key in done:
                    continue
                path = frames_dir / folders[number] / f"{index:06d}.{frame_format}"
                save_frame(frame.image, path, frame_format)
                yield Loaded(
                    frame.key, image_id_for(number, index), video_key, index, str(path), frame.image
                )
        except SourceError as err:
            yield Loaded(video_key, None, video_key, error=str(err))


def prefetch(items: Iterable[Any], depth: int = 4) -> Iterator[Any]:
    """Produce items in a background thread (decoding overlaps inference; both release the GIL)."""
    box: queue.Queue = queue.Queue(maxsize=depth)
    end = object()

    def produce() -> None:
        try:
            for item in items:
                box.put(item)
        except BaseException as err:  # handed to the consumer, raised there
            box.put(err)
        finally:
            box.put(end)

    threading.Thread(target=produce, daemon=True, name="orpose-label-reader").start()
    while True:
        item = box.get()
        if item is end:
            return
        if isinstance(item, BaseException):
            raise item
        yield item


def estimate_todo(specs: list[SourceSpec], video_step: int, shard: Shard, done: set[str]) -> int:
    """Frames left for the progress bar (exact for images, from the container for videos)."""
    total = 0
    for spec in specs:
        if spec.video:
            count = math.ceil(max(count_video_frames(spec.path), 0) / video_step)
            total += len([p for p in range(count) if shard.owns(p)])
        else:
            total += len([p for p in range(len(spec.images)) if shard.owns(p)])
    return max(total - len(done), 0)


def _normalized(header: dict) -> dict:
    return json.loads(json.dumps(header))


def open_journal(journal: Journal, header: dict, labels: Path, restart: bool) -> list[dict]:
    """Start or resume: the records already done, after checking the run is the same one."""
    if restart:
        journal.path.unlink(missing_ok=True)
        labels.unlink(missing_ok=True)
    old_header, records = journal.read()
    if old_header is None:
        if labels.exists():
            raise UserError(
                f"{labels} exists and has no journal to resume; pass --restart to "
                "label again and overwrite it"
            )
        journal.start(header)
        return []
    if _normalized(old_header) != _normalized(header):
        changed = sorted(
            k
            for k in set(header) | set(old_header)
            if _normalized(header).get(k) != old_header.get(k)
        )
        raise UserError(
            f"{journal.path} belongs to a run with other settings ({', '.join(changed)} differ); "
            "rerun with the same options to resume, or pass --restart"
        )
    return records


def run_labelling(
    inputs: list[Path | str],
    out: Path,
    teacher: Teacher,
    *,
    video_step: int = 1,
    downscale: float = 1.0,
    shard: Shard | None = None,
    frames_dir: Path | None = None,
    frame_format: str = "jpg",
    lifter: Any = None,
    lifter_info: dict | None = None,
    restart: bool = False,
    progress: bool = True,
    image_root: Path | None = None,
) -> LabelSummary:
    """Label every frame of the inputs (this shard's part) into a pseudo-label file.

    ``image_root`` (``--images``): the folder under which COCO-file inputs' relative image
    names are found (default: the dataset loader's, ``images/`` beside the file or its folder).
    """
    if video_step < 1:
        raise UserError(f"--video-step must be >= 1, got {video_step}")
    if downscale < 1:
        raise UserError(f"--downscale must be >= 1, got {downscale}")
    if frame_format not in FRAME_FORMATS:
        raise UserError(f"--frame-format must be one of {', '.join(FRAME_FORMATS)}")
    shard = shard or Shard()
    specs = expand_inputs(
        [Path(p).resolve() for p in inputs],
        Path(image_root).resolve() if image_root is not None else None,
    )
    labels, journal_path, default_frames = output_paths(Path(out).resolve(), shard)
    frames_dir = (frames_dir or default_frames).resolve()
    header = {
        "inputs": [str(s.path) for s in specs],
        "video_step": video_step,
        "downscale": downscale,
        "shard": [shard.index, shard.count] if shard.count > 1 else None,
        "frames_dir": str(frames_dir),
        "frame_format": frame_format,
        "teacher": teacher.describe(),
        "lifter": lifter_info,
    }
    if image_root is not None:  # absent otherwise, so earlier journals still resume
        header["image_root"] = str(Path(image_root).resolve())
    journal = Journal(journal_path)
    done_records = open_journal(journal, header, labels, restart)
    done = {r["key"] for r in done_records}
    threshold = teacher.config.keypoint_threshold
    images = persons = skipped = 0
    started = time.perf_counter()

    bar = tqdm(
        total=estimate_todo(specs, video_step, shard, done),
        unit="img",
        disable=not progress,
        dynamic_ncols=True,
    )
    try:
        with journal:
            for item in prefetch(
                iter_work(specs, video_step, shard, done, frames_dir, frame_format)
            ):
                if item.error is not None or item.image is None:
                    log.warning("skipped %s: %s", item.key, item.error)
                    journal.append(
                        {
                            "key": item.key,
                            "id": item.image_id,
                            "source": item.source,
                            "error": item.error or "unreadable",
                        }
                    )
                    skipped += 1
                    bar.update(1)
                    continue
                if item.warning is not None:
                    log.warning("damaged image %s", item.warning)
                seen = degrade(item.image, downscale) if downscale > 1 else item.image
                people = teacher.label(seen)
                if lifter is not None:
                    add_3d(people, lifter, threshold)
                journal.append(
                    {
                        "key": item.key,
                        "id": item.image_id,
                        "source": item.source,
                        "frame_index": item.frame_index,
                        "file": item.file,
                        "width": int(item.image.shape[1]),
                        "height": int(item.image.shape[0]),
                        "annotations": [person_annotation(p, threshold) for p in people],
                        **({"warning": item.warning} if item.warning else {}),
                    }
                )
                images += 1
                persons += len(people)
                bar.update(1)
                elapsed = time.perf_counter() - started
                bar.set_postfix(
                    images_per_s=f"{images / elapsed:.2f}",
                    people_per_s=f"{persons / elapsed:.1f}",
                    refresh=False,
                )
    finally:
        bar.close()
    seconds = time.perf_counter() - started
    final_header, records = journal.read()
    if shard.count == 1 and records and all("error" in r for r in records):
        raise SourceError(
            f"{records[0].get('error') or records[0]['key']}; none of the {len(records)} "
            f"input(s) could be read, so {labels} was not written (journal: {journal_path})"
        )
    write_labels(final_header or header, records, labels)
    return LabelSummary(labels, images, persons, skipped, len(done), seconds)
