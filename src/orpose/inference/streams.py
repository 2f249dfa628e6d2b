"""Several cameras served by one ``orpose predict`` process, concurrently.

An OR has several ceiling cameras and often one CPU box for all of them. Run as one process per
camera, the processes fight for the cores (each sized its thread pool for the whole machine);
one process that takes a frame from every camera in turn and poses them together (in threads
on a CPU, in one batched network call on a GPU) keeps the cores busy without that fight. Each
camera is read (and, in privacy mode, shrunk) by a thread of its own, so that decoding overlaps
the network; the reader keeps at most ``PREFETCH`` frames ahead.

Each camera gets its own folder ``OUT/<camera>/`` with what a single-input run writes there
(``results.json``, ``images.json``, the resumable journal, overlays, 3D plots), its own tracks
and its own frame numbering. Live cameras and stream URLs given together are always served
this way (read one after the other, the first would never end); ``--concurrent`` serves videos
and folders of frames as cameras too (recordings of several cameras).
"""

from __future__ import annotations

import dataclasses
import logging
import queue
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from tqdm import tqdm

from orpose.data.sources import Frame
from orpose.inference.pipeline import (
    PredictOptions,
    Predictor,
    PredictRun,
    PredictSummary,
    Source,
    StopOnSigterm,
    Terminated,
    log_to_file,
    plan_sources,
    predict_frames,
    source_frames,
)
from orpose.inference.render import safe_name

log = logging.getLogger(__name__)
PREFETCH = 2  # frames a camera's reader may decode ahead of the network
_END = object()


@dataclass
class StreamsSummary:
    """Per camera its summary (in input order), and the whole run's throughput."""

    cameras: dict[str, PredictSummary]
    seconds: float = 0.0
    stopped: str | None = None

    @property
    def predicted(self) -> int:
        return sum(s.predicted for s in self.cameras.values())

    @property
    def fps(self) -> float:
        """Frames per second over all cameras together."""
        return self.predicted / self.seconds if self.seconds > 0 else 0.0


def camera_names(sources: list[Source]) -> list[str]:
    """A folder name per source: ``camera0`` for camera 0, a video's or folder's stem, a URL made
    file-safe; repeated names get ``_2``, ``_3``..."""
    names: list[str] = []
    for source in sources:
        if source.kind == "stream":
            base = f"camera{int(source.name)}" if source.name.isdigit() else source.name
        else:
            base = source.name.rstrip("/").rsplit("/", 1)[-1]
            base = base.rsplit(".", 1)[0] if source.kind == "video" else base
        base = safe_name(base)
        name, number = base, 1
        while name in names:
            number += 1
            name = f"{base}_{number}"
        names.append(name)
    return names


@dataclass
class _Failed:
    error: BaseException


class _Reader(threading.Thread):
    """Reads one source's frames into a small queue (each with the decoded frame's size, which
    privacy mode needs and the shrinker only remembers until the next frame)."""

    def __init__(self, source: Source, run: PredictRun, stop: threading.Event):
        super().__init__(name=f"orpose-reader-{source.name}", daemon=True)
        self.source, self.run_, self.stop = source, run, stop
        self.frames: queue.Queue = queue.Queue(maxsize=PREFETCH)

    def _put(self, item: Any) -> bool:
        while not self.stop.is_set():
            try:
                self.frames.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def run(self) -> None:
        shrinker = self.run_.shrinker
        frames = source_frames(self.source, self.run_.options, shrinker)
        try:
            for frame in frames:
                original = shrinker.last_size if shrinker is not None else None
                if not self._put((frame, original)):
                    break
        except BaseException as err:  # handed to the main thread, which raises it
            self._put(_Failed(err))
        finally:
            frames.close()
            self._put(_END)


def run_predict_streams(
    predictor: Predictor,
    inputs: list[str],
    options: PredictOptions,
    info: dict[str, Any] | None = None,
) -> StreamsSummary:
    """Serve every input as a camera stream of its own (see the module docstring). Ctrl-C and
    SIGTERM stop every camera with what was done written, as a single-input run does."""
    info = info or {}
    options.out.mkdir(parents=True, exist_ok=True)
    sources = plan_sources(inputs, options)
    names = camera_names(sources)
    runs = []
    for name, source in zip(names, sources, strict=True):
        camera_options = dataclasses.replace(options, out=options.out / name)
        camera_options.out.mkdir(parents=True, exist_ok=True)
        run = PredictRun(predictor, camera_options, {**info, "camera_stream": source.name})
        run.renderer.start_source(source)
        if run.tracker is not None:
            run.tracker.start_source(source.fps)
        runs.append(run)
    summary = StreamsSummary({})
    totals = [s.frames for s in sources]
    total = None if any(t is None for t in totals) else sum(totals)
    log.info("predict: %d camera stream(s) in one process: %s", len(sources), ", ".join(names))
    with log_to_file(options.out), StopOnSigterm() as guard:
        stop = threading.Event()
        pool = ThreadPoolExecutor(max(1, len(runs)), thread_name_prefix="orpose-camera")
        readers = [_Reader(s, r, stop) for s, r in zip(sources, runs, strict=True)]
        progress = tqdm(total=total, unit="frame", disable=not options.progress, smoothing=0.1)
        image_ids = [0] * len(runs)
        started = time.perf_counter()
        try:
            for reader in readers:
                reader.start()
            active = list(range(len(runs)))
            while active:
                batch: list[tuple[int, Frame, Any]] = []
                for i in list(active):
                    item = readers[i].frames.get()
                    if item is _END:
                        active.remove(i)
                        continue
                    if isinstance(item, _Failed):
                        raise item.error
                    frame, original = item
                    image_ids[i] += 1
                    progress.update(1)
                    if frame.image is None:
                        log.warning("skipped %s: %s", frame.key, frame.error)
                        runs[i].summary.skipped += 1
                        continue
                    geometry, done = runs[i].plan(frame, image_ids[i], original)
                    if done is not None:
                        runs[i].record(frame, image_ids[i], geometry, done, predicted=False)
                    else:
                        batch.append((i, frame, geometry))
                found = predict_frames(
                    predictor,
                    [(frame.image, geometry) for _, frame, geometry in batch],
                    options.native_lowres,
                    options.score_threshold,
                    pool,
                )
                for (i, frame, geometry), results in zip(batch, found, strict=True):
                    runs[i].record(frame, image_ids[i], geometry, results, predicted=True)
        except KeyboardInterrupt as why:
            summary.stopped = "SIGTERM" if isinstance(why, Terminated) else "Ctrl-C"
            log.info("stopped (%s); writing what was done", summary.stopped)
        finally:
            guard.disarm()
            stop.set()
            progress.close()
            summary.seconds = time.perf_counter() - started
            for name, run in zip(names, runs, strict=True):
                summary.cameras[name] = run.finish(summary.seconds, run.info)
            for reader in readers:
                reader.join(timeout=2)
            pool.shutdown(wait=True)
    log.info(
        "predict: %d camera stream(s), %d frame(s) run now, %.2f frames/s in all",
        len(runs),
        summary.predicted,
        summary.fps,
    )
    return summary
