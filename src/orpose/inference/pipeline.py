"""``orpose predict``: frames from images, folders, videos or live streams -> results and renders.

Per frame: decode (shrunk at once in privacy mode) -> network input -> the student (PyTorch or
ONNX Runtime) -> one journal line -> optional overlay and 3D plot. The journal makes long runs
resumable; ``results.json`` / ``images.json`` are assembled from it at the end, also when the run
is stopped early: by Ctrl-C, or by SIGTERM (``kill``, a job scheduler, ``docker stop``), which is
handled the same way: the frame in flight is dropped, the overlay video is finished (a playable
file of the frames so far) and the result files list every journaled frame; rerunning the same
command resumes after them.

With ``--track`` each frame's people then get track ids (and, with ``--smooth``, smoothed
keypoints) from :mod:`.tracking`, after the journal line is written: the journal keeps the model's
own output, and a resumed run replays the journaled frames through the tracker in order.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Executor
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from orpose.data.sources import (
    Frame,
    count_video_frames,
    expand_inputs,
    is_stream,
    iter_images,
    iter_stream,
    iter_video,
    video_fps,
)
from orpose.evaluation.shown import default_pose_confidence_bound, default_score_threshold
from orpose.inference.journal import JOURNAL_NAME, PredictionJournal
from orpose.inference.privacy import LOWRES_MAX_SIDE, FrameGeometry, Shrinker, frame_geometry
from orpose.inference.render import (
    VIDEO_SUFFIX,
    VideoSink,
    overlay,
    plot_people_3d,
    safe_name,
    write_image_rgb,
)
from orpose.inference.tracking import PoseTracker
from orpose.lifting.intrinsics import call_with_original_size, factor_option
from orpose.paths import file_stamp

log = logging.getLogger(__name__)
Predictor = Callable[[np.ndarray], list[dict]]
LOG_NAME = "predict.log"


@dataclass
class PredictOptions:
    """What ``orpose predict`` does besides running the model (see ``orpose predict --help``)."""

    out: Path
    # people below this are neither written nor drawn; None: predict's default for the frame's
    # downscale factor (orpose.evaluation.shown.default_score_threshold)
    score_threshold: float | None = 0.5
    keypoint_threshold: float = 0.3  # drawing only: keypoints below this score are hidden
    downscale: float = 1.0  # privacy mode when > 1
    lowres_input: float | None = None  # factor of already-shrunk input; None: guessed
    video_step: int = 1
    max_frames: int | None = None  # per video or stream
    overlays: bool = False
    plot3d_every: int = 0  # 0: no 3D plots; n: every n-th frame
    root_depth_mm: float | str | None = None  # "auto": each person at its estimated depth
    focal_px: float | None = None
    resume: bool = True
    progress: bool = True
    track: bool = False  # track ids across frames (ByteTrack, see .tracking)
    smooth: float | None = None  # with track: exponential smoothing of keypoints along a track
    # low-resolution frames given to the student as they are (the CPU student's native path)
    # instead of upsampled back to the network size (the paper's protocol)
    native_lowres: bool = False


@dataclass
class Source:
    """One input as it will be read."""

    name: str
    kind: str  # images | video | stream
    images: tuple[Path, ...] = ()
    frames: int | None = None  # expected number of frames (None: unknown, a live stream)
    fps: float = 25.0


@dataclass
class PredictSummary:
    frames: int = 0
    skipped: int = 0  # frames that could not be decoded (or were refused: too large), warned
    predicted: int = 0  # frames run through the model in this run (the rest came from the journal)
    people: int = 0
    seconds: float = 0.0
    results: Path | None = None
    images: Path | None = None
    rendered: list[Path] = field(default_factory=list)
    stopped: str | None = None  # why the run ended early ("Ctrl-C", "SIGTERM"), None if it did not
    tracks: int = 0  # with --track: distinct track ids

    @property
    def fps(self) -> float:
        return self.predicted / self.seconds if self.seconds > 0 else 0.0


def input_identity(raw: str | Path) -> str:
    """What makes two inputs the same: the resolved file (``a.jpg``, ``./a.jpg`` and its
    absolute path are one image), the camera's number (``0``, ``00``) or the stream's URL."""
    text = str(raw)
    if is_stream(text):
        return f"camera {int(text)}" if text.isdigit() else text
    return str(Path(text).resolve())


def plan_sources(inputs: list[str], options: PredictOptions) -> list[Source]:
    """Images, folders and videos (checked now, before any work), and live streams. An image,
    video or stream given more than once (a folder named twice, a folder and one of its files,
    two spellings of one path) is predicted once, with one warning line: results.json and
    images.json then hold each frame once, as the counts printed say."""
    sources: list[Source] = []
    seen: set[str] = set()
    repeated: list[str] = []

    def first_time(raw: str | Path) -> bool:
        identity = input_identity(raw)
        if identity in seen:
            repeated.append(str(raw))
            return False
        seen.add(identity)
        return True

    for raw in inputs:
        if is_stream(raw):
            if first_time(raw):
                sources.append(Source(str(raw), "stream", frames=options.max_frames))
            continue
        (spec,) = expand_inputs([raw])
        if not spec.video:
            images = tuple(path for path in spec.images if first_time(path))
            if images:
                sources.append(Source(str(spec.path), "images", images, len(images)))
            continue
        if not first_time(spec.path):
            continue
        n = max(0, count_video_frames(spec.path))
        n = -(-n // options.video_step)
        if options.max_frames is not None:
            n = min(n, options.max_frames)
        fps = video_fps(spec.path) / options.video_step
        sources.append(Source(str(spec.path), "video", frames=n, fps=fps))
    if repeated:
        more = f" and {len(repeated) - 1} more" if len(repeated) > 1 else ""
        log.warning(
            "%d input(s) given more than once (%s%s): each predicted once",
            len(repeated),
            repeated[0],
            more,
        )
    return sources


def source_frames(source: Source, options: PredictOptions, prepare) -> Iterator[Frame]:
    if source.kind == "images":
        return iter_images(source.images, prepare=prepare)
    if source.kind == "video":
        return iter_video(
            source.name, options.video_step, limit=options.max_frames, prepare=prepare
        )
    return iter_stream(source.name, options.video_step, options.max_frames, prepare=prepare)


def image_record(frame: Frame, image_id: int, geometry: FrameGeometry, downscale: float) -> dict:
    """The images-index entry of a frame (sizes are the results' coordinate frame)."""
    record: dict[str, Any] = {
        "id": image_id,
        "file_name": frame.key,
        "width": geometry.network_size[0],
        "height": geometry.network_size[1],
    }
    if frame.frame_index is not None:
        record["frame_index"] = frame.frame_index
    if geometry.lowres:
        record["lowres_width"], record["lowres_height"] = geometry.kept_size
        record["downscale"] = geometry.factor if downscale <= 1 else downscale
    return record


def network_input(
    kept: np.ndarray, geometry: FrameGeometry, native_lowres: bool
) -> tuple[np.ndarray, tuple[int, int] | None]:
    """What the student is given for a kept frame, and the size of the frame to lift in when it
    is given the small frame as it is (the native path; None: the paper's protocol, the small
    frame upsampled to the network size)."""
    if native_lowres and geometry.lowres:
        return kept, geometry.network_size
    return geometry.network_input(kept), None


def frame_threshold(geometry: FrameGeometry, score_threshold: float | None) -> float:
    """The score from which a frame's people are kept: ``score_threshold``, or (None)
    predict's default for the frame's downscale factor."""
    if score_threshold is None:
        return default_score_threshold(geometry.factor)
    return score_threshold


def min_score_option(
    predictor: Predictor, threshold: float, factor: float = 1.0
) -> dict[str, float]:
    """``min_score`` for a predictor that can skip posing the people detected below it
    (``accepts_min_score``): a person's score is its detection score times its pose confidence,
    so a candidate detected below ``threshold / B`` could be kept only with a pose confidence
    above B. B is the predictor's ``pose_confidence_bound``, or (None) predict's default for
    frames shrunk ``factor`` times (``orpose.evaluation.shown.POSE_CONFIDENCE_BOUNDS``; 1: every
    candidate that could be kept is posed). On the OR frames at 1x, posing from 0.25 instead of
    the student's 0.2 poses 7.3 people per frame instead of 12.4 (docs/inference.md)."""
    from orpose.predictor import SCORE_DECIMALS

    if not getattr(predictor, "accepts_min_score", False):
        return {}
    bound = getattr(predictor, "pose_confidence_bound", None)
    if bound is None:
        bound = default_pose_confidence_bound(factor)
    # a result's score is rounded before it meets the threshold: a person just below it in
    # float32 may be kept, so pose from half a rounding step lower
    return {"min_score": (threshold - 0.5 * 10.0**-SCORE_DECIMALS) / bound}


def kept_results(
    found: list[dict],
    geometry: FrameGeometry,
    native_size: tuple[int, int] | None,
    score_threshold: float | None,
) -> list[dict]:
    """The student's results for a frame, in network pixels, people below ``score_threshold``
    left out (None: predict's default for the frame's downscale factor)."""
    if native_size is not None:  # found on the small frame itself
        found = geometry.from_kept(found)
    threshold = frame_threshold(geometry, score_threshold)
    return [r for r in found if r["score"] >= threshold]


def predict_frame(
    predictor: Predictor,
    kept: np.ndarray,
    geometry: FrameGeometry,
    native_lowres: bool = False,
    score_threshold: float | None = 0.0,
) -> list[dict]:
    """The results of one kept frame (in network pixels, without ``image_id``), people below
    ``score_threshold`` left out (None: predict's default for the frame's downscale factor):
    what ``orpose predict`` journals for it, and what :class:`orpose.api.Predictor` returns."""
    image, native_size = network_input(kept, geometry, native_lowres)
    threshold = frame_threshold(geometry, score_threshold)
    options = min_score_option(predictor, threshold, geometry.factor)
    options.update(factor_option(predictor, geometry.factor))
    if native_size is None:
        found = predictor(image, **options)
    else:  # the student lifts in the network frame's pixels, as on the upsampled frame
        found = call_with_original_size(predictor, image, native_size, **options)
    return kept_results(found, geometry, native_size, threshold)


def predict_frames(
    predictor: Predictor,
    frames: list[tuple[np.ndarray, FrameGeometry]],
    native_lowres: bool = False,
    score_threshold: float | None = 0.0,
    pool: Executor | None = None,
) -> list[list[dict]]:
    """:func:`predict_frame` for several kept frames (one per camera stream) at once. On a GPU,
    in one network call (the PyTorch students' ``batch``). On a CPU, each frame in a thread of
    ``pool`` when given: the networks release Python's lock, and the top-down student's many
    small operations leave a core idle that another camera's frame can use (measured in
    docs/inference.md, 'Several cameras'); else one after the other."""
    batch = getattr(predictor, "batch", None)
    on_gpu = getattr(getattr(predictor, "device", None), "type", "cpu") != "cpu"
    if len(frames) > 1 and batch is not None and on_gpu:
        inputs = [network_input(kept, geometry, native_lowres) for kept, geometry in frames]
        images, sizes = [image for image, _ in inputs], [size for _, size in inputs]
        told: dict[str, list] = {}
        if getattr(predictor, "accepts_min_score", False):
            least = [min_score_option(predictor, frame_threshold(geometry, score_threshold),
                                      geometry.factor)
                     for _, geometry in frames]  # fmt: skip
            told["min_scores"] = [option["min_score"] for option in least]
        if getattr(predictor, "accepts_factor", False):
            told["factors"] = [geometry.factor for _, geometry in frames]
        found = batch(images, sizes, **told)
        return [
            kept_results(results, geometry, size, score_threshold)
            for results, (_, geometry), (_, size) in zip(found, frames, inputs, strict=True)
        ]
    args = (native_lowres, score_threshold)
    if len(frames) > 1 and pool is not None:
        futures = [pool.submit(predict_frame, predictor, *frame, *args) for frame in frames]
        return [future.result() for future in futures]
    return [predict_frame(predictor, *frame, *args) for frame in frames]


class Renderer:
    """Overlays and 3D plots of one run (all below ``out``)."""

    def __init__(self, options: PredictOptions):
        self.options = options
        self.sink: VideoSink | None = None
        self.rendered: list[Path] = []
        self.video_names: set[str] = set()

    def start_source(self, source: Source) -> None:
        self.close_source()
        if self.options.overlays and source.kind != "images":
            base = safe_name(Path(source.name).stem if source.kind == "video" else source.name)
            name, number = base, 1
            while name in self.video_names:  # a/clip.avi and b/clip.avi: clip, clip_2
                number += 1
                name = f"{base}_{number}"
            self.video_names.add(name)
            path = self.options.out / "overlays" / f"{name}_overlay{VIDEO_SUFFIX}"
            self.sink = VideoSink(path, source.fps)

    def close_source(self) -> None:
        if self.sink is not None:
            self.sink.close()
            if self.sink.frames:
                self.rendered.append(self.sink.path)
            self.sink = None

    def frame(self, frame: Frame, image_id: int, geometry: FrameGeometry, results: list[dict]):
        opts = self.options
        if opts.overlays:
            drawn = overlay(frame.image, geometry.to_kept(results), opts.keypoint_threshold)
            if self.sink is not None:
                self.sink.write(drawn)
            else:
                name = f"{image_id:06d}_{safe_name(Path(frame.source).stem)}.jpg"
                self.rendered.append(write_image_rgb(opts.out / "overlays" / name, drawn))
        if opts.plot3d_every and (image_id - 1) % opts.plot3d_every == 0:
            path = opts.out / "plots3d" / f"{image_id:06d}.png"
            title = Path(frame.key).name[-60:]
            plotted = plot_people_3d(
                path, results, geometry.network_size, opts.root_depth_mm, opts.focal_px, title
            )
            if plotted is not None:
                self.rendered.append(plotted)


@contextmanager
def log_to_file(out: Path) -> Iterator[None]:
    """The run's log lines also go to ``out/predict.log`` (messages only, never pixel data)."""
    logger = logging.getLogger("orpose.inference")
    # a path that is not valid UTF-8 (kept by Python as surrogates) is written escaped
    handler = logging.FileHandler(out / LOG_NAME, encoding="utf-8", errors="backslashreplace")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    level = logger.level
    if logger.getEffectiveLevel() > logging.INFO:
        logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
        handler.close()


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread so that the run stops as on Ctrl-C."""


class StopOnSigterm:
    """While active (main thread only), the first SIGTERM raises :class:`Terminated`; once
    :meth:`disarm` is called (the results are being written) further ones are ignored, so that
    a repeated ``kill`` cannot cut the final files short (SIGKILL still ends the process)."""

    def __init__(self) -> None:
        self.armed = False
        self.previous: Any = None

    def _handle(self, signum: int, frame: Any) -> None:
        if self.armed:
            self.armed = False
            raise Terminated(signal.Signals(signum).name)
        log.warning(
            "%s received while writing the results: finishing first", signal.Signals(signum).name
        )

    def disarm(self) -> None:
        self.armed = False

    def __enter__(self) -> StopOnSigterm:
        if threading.current_thread() is threading.main_thread():
            self.previous = signal.signal(signal.SIGTERM, self._handle)
            self.armed = True
        return self

    def __exit__(self, *exc: object) -> None:
        if self.previous is not None:
            signal.signal(signal.SIGTERM, self.previous)
            self.previous = None
        self.armed = False


def run_predict(
    predictor: Predictor,
    inputs: list[str],
    options: PredictOptions,
    info: dict[str, Any] | None = None,
) -> PredictSummary:
    """Run ``predictor`` over every frame of ``inputs``; write results (and renders) to out.

    Ctrl-C and SIGTERM stop the run early with everything done so far written (see the module
    docstring); ``PredictSummary.stopped`` tells which.
    """
    options.out.mkdir(parents=True, exist_ok=True)
    sources = plan_sources(inputs, options)
    with log_to_file(options.out), StopOnSigterm() as guard:
        return _run(predictor, sources, options, info or {}, guard)


class PredictRun:
    """One ``orpose predict`` run: the per-frame work and its bookkeeping."""

    def __init__(self, predictor: Predictor, options: PredictOptions, info: dict[str, Any]):
        self.predictor = predictor
        self.options = options
        self.info = info
        self.shrinker = Shrinker(options.downscale) if options.downscale > 1 else None
        self.journal = PredictionJournal(
            options.out / JOURNAL_NAME, resume=options.resume, settings=run_settings(options, info)
        )
        self.renderer = Renderer(options)
        self.summary = PredictSummary()
        self.warned = False
        self.tracker = PoseTracker(options.smooth) if options.track else None
        self.track_seconds = 0.0

    def plan(
        self, frame: Frame, image_id: int, original: tuple[int, int] | None = None
    ) -> tuple[FrameGeometry, list[dict] | None]:
        """A decoded frame's geometry and, when the journal has it, its results (None: it
        must be predicted). ``original``: the decoded frame's size in privacy mode (default:
        the size this run's shrinker saw last)."""
        opts = self.options
        if original is None and self.shrinker is not None:
            original = self.shrinker.last_size
        if original is not None and max(original) <= LOWRES_MAX_SIDE and not self.warned:
            self.warned = True
            log.warning(
                "%s is already %dx%d: --downscale shrinks it further (use "
                "--lowres-input for low-resolution input)",
                frame.key,
                *original,
            )
        geometry = frame_geometry(frame.image, opts.downscale, original, opts.lowres_input)
        entry = self.journal.done(frame.key, image_id)
        return geometry, None if entry is None else entry["results"]

    def record(
        self,
        frame: Frame,
        image_id: int,
        geometry: FrameGeometry,
        results: list[dict],
        predicted: bool,
    ) -> None:
        """Journal (when ``predicted`` now), track, count and render one frame's results."""
        if predicted:
            for r in results:
                r["image_id"] = image_id
            self.journal.append(
                image_record(frame, image_id, geometry, self.options.downscale), results
            )
            self.summary.predicted += 1
        self.summary.frames += 1
        if self.tracker is not None:  # after the journal: it keeps the model's own output
            started = time.perf_counter()
            self.tracker.update(results)  # in place, so results.json gets the ids
            self.track_seconds += time.perf_counter() - started
        self.summary.people += len(results)
        self.renderer.frame(frame, image_id, geometry, results)

    def frame(self, frame: Frame, image_id: int) -> None:
        """Predict (or take from the journal), record and render one decoded frame."""
        opts = self.options
        geometry, done = self.plan(frame, image_id)
        if done is None:
            results = predict_frame(
                self.predictor, frame.image, geometry, opts.native_lowres, opts.score_threshold
            )
            self.record(frame, image_id, geometry, results, predicted=True)
        else:
            self.record(frame, image_id, geometry, done, predicted=False)

    def finish(self, seconds: float, info: dict[str, Any]) -> PredictSummary:
        """Close the renders and the journal, write results.json and images.json."""
        summary = self.summary
        summary.seconds = seconds
        self.renderer.close_source()
        self.journal.close()
        run_info = {**info, "options": _jsonable(asdict(self.options))}
        summary.results, summary.images = self.journal.write_outputs(self.options.out, run_info)
        summary.rendered = self.renderer.rendered
        if self.tracker is not None:
            summary.tracks = self.tracker.last_id
            log.info(
                "tracking: %d track id(s), %.2f ms per frame (tracker alone)",
                summary.tracks,
                1000 * self.track_seconds / max(summary.frames, 1),
            )
        log.info(
            "predict: %d frame(s) (%d run now, %.2f frames/s), %d people -> %s",
            summary.frames,
            summary.predicted,
            summary.fps,
            summary.people,
            summary.results,
        )
        return summary


def _run(
    predictor: Predictor,
    sources: list[Source],
    options: PredictOptions,
    info: dict[str, Any],
    guard: StopOnSigterm | None = None,
) -> PredictSummary:
    run = PredictRun(predictor, options, info)
    totals = [s.frames for s in sources]
    total = None if any(t is None for t in totals) else sum(totals)
    log.info(
        "predict: %d source(s), %s frame(s), privacy downscale %g, resuming %d frame(s)",
        len(sources),
        "unknown" if total is None else total,
        options.downscale,
        len(run.journal.entries),
    )
    progress = tqdm(total=total, unit="frame", disable=not options.progress, smoothing=0.1)
    image_id = 0
    started = time.perf_counter()
    try:
        for source in sources:
            run.renderer.start_source(source)
            if run.tracker is not None:  # journaled frames are replayed through it too
                run.tracker.start_source(source.fps)
            for frame in source_frames(source, options, run.shrinker):
                image_id += 1  # unreadable files keep their id: ids are stable across runs
                progress.update(1)
                if frame.image is None:
                    log.warning("skipped %s: %s", frame.key, frame.error)
                    run.summary.skipped += 1
                    continue
                run.frame(frame, image_id)
    except KeyboardInterrupt as stop:
        run.summary.stopped = "SIGTERM" if isinstance(stop, Terminated) else "Ctrl-C"
        log.info(
            "stopped (%s) after %d frame(s); writing what was done",
            run.summary.stopped,
            run.summary.frames,
        )
    finally:
        if guard is not None:
            guard.disarm()
        progress.close()
        summary = run.finish(time.perf_counter() - started, info)
    return summary


def run_settings(options: PredictOptions, info: dict[str, Any]) -> dict[str, Any]:
    """What a frame's journaled results depend on: the run's ``info`` (the model, its camera,
    proposals...) with the size and modification time of the model's file, and the options that
    change what is predicted (not those that only draw or count)."""
    settings: dict[str, Any] = {**info}
    model = info.get("model")
    if isinstance(model, str) and (stamp := file_stamp(model)) is not None:
        settings["model"] = os.path.realpath(model)  # ./m.pt and m.pt are one model
        settings["model_file"] = stamp
    for name in ("score_threshold", "downscale", "lowres_input", "native_lowres", "video_step"):
        settings[name] = getattr(options, name)
    return settings


def _jsonable(d: dict[str, Any]) -> dict[str, Any]:
    return {k: str(v) if isinstance(v, Path) else v for k, v in d.items()}
