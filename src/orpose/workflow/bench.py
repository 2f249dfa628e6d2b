"""``orpose bench``: size, cost and speed of the teacher and the students on the same real frames.

Rows, all measured in one run on the same frames (640x480, batch 1):

- the teacher (onnxruntime), each setting asked for (single pass, each test-time augmentation
  alone, full), on the full-resolution frames; the single pass also on the frames degraded 12x
  (the paper's protocol: shrunk, then upsampled back);
- each student, in each runtime (onnxruntime, PyTorch), on the full-resolution frames, on the
  frames degraded 12x and upsampled back (the paper's protocol, privacy mode's default path)
  and, for the CPU student, on the frames shrunk 12x (53x40) fed as they are (its native
  low-resolution path), with the people they detect;
- each exported graph given (``.onnx``, fp32 or int8 from ``orpose export --int8``), loaded as
  ``orpose predict`` loads it (its native graph beside it for the native 12x frames), with the
  thresholds it was exported with;
- the CPU student in onnxruntime with exactly 1, 5, 10, 20 people per frame (its top-down pose
  part runs once per person): the cost of each additional person.

All rows are timed in alternation, frame by frame (every row on frame i, in an order that
rotates, before any row on frame i+1; each row's turn starts with one untimed call on the same
frame, so that the timed call finds the caches warm, as in a stream): a slow minute of a shared
or throttled CPU then lands on every row alike instead of on one (timed one after another, rows
doing the same work differed by 15-20% on the 2-core development CPU; in blocks of five frames,
by 12%). All onnxruntime sessions share one thread pool, so that no row's idle threads spin
against the next row's work; PyTorch rows, which that pool's threads would slow, are timed after
the onnxruntime ones, in alternation among themselves. Each student row carries its speed-up
over the single-pass and the full teacher at 1x (median latency ratio). Parameters and GFLOPs
(multiply-accumulates, see :mod:`orpose.export.flops`) are counted at the row's input size and
number of people. With ``accuracy`` sets, every row that poses the people it detects is then
scored, untimed, as it was timed (:mod:`orpose.workflow.bench_accuracy`).
"""

from __future__ import annotations

import math
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from orpose.lifting.intrinsics import factor_option
from orpose.teacher.config import TeacherConfig

TEACHER_MIN_PERSON_SCORE = TeacherConfig.min_person_score  # the teacher poses detections above
BENCH_SIZE = (640, 480)  # (width, height): the paper's MVOR frames
LOWRES_SCALE = 12
TEACHER_SETTINGS = ("single", "det_flip", "det_scales", "pose_flip", "pose_scales", "full")
PEOPLE_SWEEP = (1, 5, 10, 20)
CPU_STUDENT = "cpu_student"  # the pretrained CPU student, untrained (speed needs no training)
PAPER = {
    "teacher": {"params_m": 250.1, "gflops": 1048.8},
    "student": {"params_m": 67.9, "gflops": 215.0},
}


@dataclass
class BenchRow:
    """One model, in one runtime, on one kind of input."""

    model: str  # teacher | student
    variant: str  # teacher setting, or student name
    runtime: str  # onnxruntime (-cuda, -tensorrt: its provider) | pytorch (-cuda: its device)
    input: str  # e.g. "640x480" or "53x40 (12x, native)"
    people: str  # "detected" or the forced number
    params_m: float
    gflops: float
    latencies_ms: list[float] = field(default_factory=list)
    people_per_frame: float = 0.0
    speedup: dict[str, float] = field(default_factory=dict)  # teacher setting -> its time / ours
    # set name -> box_ap, keypoint_ap (%), mpjpe_mm of what was timed (``--accuracy``)
    accuracy: dict[str, dict[str, float | None]] = field(default_factory=dict)

    @property
    def median_ms(self) -> float:
        return statistics.median(self.latencies_ms) if self.latencies_ms else float("nan")

    @property
    def p90_ms(self) -> float:
        return float(np.percentile(self.latencies_ms, 90)) if self.latencies_ms else float("nan")

    @property
    def fps(self) -> float:
        return 1000.0 / statistics.mean(self.latencies_ms) if self.latencies_ms else float("nan")

    def as_dict(self) -> dict[str, Any]:
        """For the JSON report: what is not a finite number (an export's GFLOPs) is None."""
        d = asdict(self)
        d.update(median_ms=self.median_ms, p90_ms=self.p90_ms, fps=self.fps)
        return {k: None if isinstance(v, float) and not math.isfinite(v) else v
                for k, v in d.items()}  # fmt: skip


def load_frames(source: Path, count: int, size: tuple[int, int] = BENCH_SIZE) -> list[np.ndarray]:
    """``count`` RGB frames spread over a video (or the first images of a folder), at ``size``."""
    import cv2

    from orpose.data.sources import (
        SourceError,
        count_video_frames,
        iter_video,
        list_images,
        read_image_rgb,
    )

    if source.is_dir():
        images = [read_image_rgb(p) for p in list_images(source)[:count]]
    else:
        step = max(1, count_video_frames(source) // max(count, 1))
        images = [f.image for f in iter_video(source, step=step, limit=count)]
    if not images:
        raise SourceError(f"{source}: no frame to benchmark on (no image, or an empty video)")
    return [cv2.resize(im, size, interpolation=cv2.INTER_LINEAR) for im in images]


@dataclass
class Timed:
    """A row being measured: what it runs, on which frames, and how its size and cost are
    counted once the number of people it saw is known."""

    row: BenchRow
    run: Callable[[np.ndarray], Any]
    frames: Sequence[np.ndarray]
    cost: Callable[[int], tuple[float, float]]  # people per frame -> (params M, GFLOPs)
    forced_people: int | None = None
    outputs: list[Any] = field(default_factory=list)
    # for the accuracy pass: the factor and path of the row's frames, and its predictor as
    # ``orpose eval`` scores it (None: ``run``)
    scale: float = 1.0
    native: bool = False
    predictor: Callable[[np.ndarray], list[dict]] | None = None

    def finish(self) -> BenchRow:
        """The row with its people per frame, parameters and GFLOPs filled in."""
        counts = [len(o) for o in self.outputs]
        self.row.people_per_frame = float(np.mean(counts)) if counts else 0.0
        people = self.forced_people or max(0, round(self.row.people_per_frame))
        self.row.params_m, self.row.gflops = self.cost(people)
        return self.row


BLOCK = 1  # frames a row runs in a row before the next row's turn


def time_interleaved(
    timed: Sequence[Timed], warmup: int, block: int = BLOCK, progress: bool = True
) -> None:
    """Latency in ms of every row on each of its frames, in alternation: ``warmup`` untimed
    calls per row, then block by block (``block`` frames) every row once, starting one row
    later each block. A row's turn begins with one untimed call on the block's first frame:
    the rows before it left the CPU caches holding their own weights, and the steady state of a
    camera stream (one model, frame after frame) is what is timed. Measured: the native 12x
    graph took 18 ms run after itself and 24-29 ms right after the full-resolution graphs."""
    from tqdm import tqdm

    for t in timed:
        for i in range(warmup):
            t.run(t.frames[i % len(t.frames)])
    count = min((len(t.frames) for t in timed), default=0)
    starts = range(0, count, block)
    for k, first in enumerate(tqdm(starts, desc="timing", unit="block", disable=not progress)):
        k %= max(len(timed), 1)
        for t in (*timed[k:], *timed[:k]):
            t.run(t.frames[first])
            for i in range(first, min(first + block, count)):
                start = time.perf_counter()
                t.outputs.append(t.run(t.frames[i]))
                t.row.latencies_ms.append((time.perf_counter() - start) * 1000.0)


def machine() -> dict[str, Any]:
    """What the numbers were measured on."""
    import torch

    cpu = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info: dict[str, Any] = {
        "cpu": cpu,
        "logical_cpus": os.cpu_count(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
    }
    if hasattr(os, "getloadavg"):
        info["load_average_1min"] = round(os.getloadavg()[0], 2)
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    try:
        import onnxruntime as ort

        info["onnxruntime"] = ort.__version__
        info["onnxruntime_providers"] = ort.get_available_providers()
    except ImportError:
        pass
    return info


def shrink(frames: Sequence[np.ndarray], scale: float, upsample: bool) -> list[np.ndarray]:
    """Frames shrunk by ``scale`` (the paper's bilinear), upsampled back when asked."""
    from orpose.data.lowres import degrade, downsample

    return [degrade(f, scale) if upsample else downsample(f, scale) for f in frames]


# -- teacher --------------------------------------------------------------------------------------


def teacher_config(setting: str, people: int | None = None):
    """A teacher preset (``single``, ``full``) or ``single`` plus one augmentation; ``people``:
    pose exactly that many detections per frame (score threshold 0)."""
    from orpose.teacher.config import AUGMENTATIONS, PRESETS

    if setting in PRESETS:
        config = PRESETS[setting]
    elif setting in AUGMENTATIONS:
        config = PRESETS["single"].replace(**AUGMENTATIONS[setting])
    else:
        raise ValueError(
            f"unknown teacher setting {setting!r}; known: {', '.join(TEACHER_SETTINGS)}"
        )
    if people is not None:
        config = config.replace(min_person_score=0.0, det_min_score=0.0,
                                det_max_detections=people)  # fmt: skip
    return config


def teacher_cost(teacher, persons: int, size: tuple[int, int] = BENCH_SIZE) -> tuple[float, float]:
    """(parameters in millions, GFLOPs) of one frame of ``size`` with ``persons`` people.

    The detector runs once per view of its augmentations, the pose model once per person and
    pose augmentation; each run's MACs are counted on its ONNX graph.
    """
    from orpose.export.flops import onnx_macs, onnx_parameters
    from orpose.teacher.tta import detection_views, pose_augmentations

    cfg = teacher.config
    det_path, pose_path = teacher.detector.model.path, teacher.pose.model.path
    views = detection_views(*size, cfg.det_scales, cfg.det_flip, cfg.det_tile_overlap)
    pose_runs = persons * len(pose_augmentations(cfg.pose_scales, cfg.pose_flip))
    macs = onnx_macs(det_path) * len(views) + onnx_macs(pose_path) * pose_runs
    params = onnx_parameters(det_path) + onnx_parameters(pose_path)
    return params / 1e6, macs / 1e9


def prepare_teacher(setting: str, put: FrameInput, threads: int, lifter=None) -> Timed:
    """A teacher setting's row on the frames of ``put`` (``lifter``: its 3D for the accuracy
    pass)."""
    from orpose.onnx_session import runtime_name
    from orpose.paths import models_dir
    from orpose.teacher.teacher import Teacher
    from orpose.workflow.bench_accuracy import teacher_predictor

    teacher = Teacher.from_config(teacher_config(setting), models_dir(), threads=threads)
    runtime = runtime_name(teacher.detector.model.session)
    row = BenchRow("teacher", setting, runtime, put.label, "detected", 0.0, 0.0)
    return Timed(row, teacher.label, put.images, lambda people: teacher_cost(teacher, people),
                 scale=put.scale, predictor=teacher_predictor(teacher, lifter))  # fmt: skip


# -- students -------------------------------------------------------------------------------------


def cpu_student():
    """The CPU student at its start (the single-pass teacher as one network)."""
    from orpose.student.topdown import TopDownConfig, TopDownStudent

    return TopDownStudent(TopDownConfig()).eval()


def random_rcnn_student(backbone: str):
    """A random-weight Keypoint R-CNN student (frozen batch norm): speed needs no training."""
    import torch

    from orpose.student.model import StudentConfig, build_student

    torch.manual_seed(0)
    return build_student(StudentConfig(backbone=backbone, norm="frozen_bn")).eval()


def has_native_path(model) -> bool:
    return getattr(model.config, "native_max_side", 0) > 0


@dataclass
class StudentRunner:
    """One student in one runtime: ``run(frame)`` -> results; native graph for small frames."""

    run: Callable[[np.ndarray], list[dict]]
    runtime: str


class BoundRunner:
    """A runner with some keyword options fixed (``min_score``, ``factor``), which still says
    what it accepts (``accepts_*``), so that scoring it the way ``orpose eval`` does is right."""

    def __init__(self, runner: Callable, **options: Any):
        self.runner, self.options = runner, options

    def __getattr__(self, name: str) -> Any:
        if name.startswith("accepts_"):
            return getattr(self.runner, name, False)
        raise AttributeError(name)

    @property
    def camera(self) -> Any:
        """The runner's camera (the accuracy pass lifts with the set's: ``lifting_camera``);
        an AttributeError where the runner has none."""
        return self.runner.camera

    @camera.setter
    def camera(self, value: Any) -> None:
        self.runner.camera = value

    def __call__(self, image: np.ndarray, **options: Any) -> list[dict]:
        return self.runner(image, **{**self.options, **options})


def at_factor(run: Callable, scale: float, native: bool) -> Callable:
    """``run`` for frames shrunk ``scale`` times and upsampled back: told so where it picks its
    detector by the factor (``accepts_factor``, the CPU student)."""
    told = {} if native else factor_option(run, scale)
    return BoundRunner(run, **told) if told else run


def student_runners(model, name: str, runtimes: Sequence[str], threads: int, workdir: Path,
                    sample: np.ndarray, small: np.ndarray,
                    device: str = "cpu") -> list[StudentRunner]:  # fmt: skip
    """PyTorch and/or onnxruntime runners (the ONNX graphs are exported to ``workdir``)."""
    from orpose.export.export import export_onnx
    from orpose.inference.onnx_runner import OnnxStudent, OnnxStudentPair
    from orpose.predictor import StudentPredictor

    runners = []
    if "pytorch" in runtimes:
        runtime = "pytorch" if device == "cpu" else f"pytorch-{device}"
        runners.append(StudentRunner(StudentPredictor(model, device), runtime))
    if "onnxruntime" in runtimes:
        model = _copy(model).cpu()  # the PyTorch runner above may hold the model on a GPU
        full = export_onnx(model, workdir / f"{name}.onnx", _tensor(sample))
        runner = OnnxStudent(full, threads=threads)
        if has_native_path(model):
            native = export_onnx(model, workdir / f"{name}_native.onnx", _tensor(small),
                                 native=True)  # fmt: skip
            runner = OnnxStudentPair(runner, OnnxStudent(native, threads=threads),
                                     model.config.native_max_side)  # fmt: skip
        runners.append(StudentRunner(runner, onnx_runtime(runner)))
    return runners


def onnx_runtime(runner) -> str:
    """The runtime column of an exported student's rows (its full graph's provider)."""
    from orpose.inference.onnx_runner import OnnxStudentPair
    from orpose.onnx_session import runtime_name

    return runtime_name((runner.full if isinstance(runner, OnnxStudentPair) else runner).session)


def _tensor(image: np.ndarray):
    from orpose.predictor import image_tensor

    return image_tensor(image)


def student_cost(model, frame: np.ndarray, people: int) -> tuple[float, float]:
    """(parameters in millions, GFLOPs) of a student on ``frame`` with ``people`` people."""
    from orpose.export.flops import student_flops
    from orpose.student.model import count_parameters

    flops = student_flops(model.cpu(), _tensor(frame), max(1, people))
    return count_parameters(model) / 1e6, flops.gflops


def prepare_students(
    name: str, model, plan: BenchPlan, frames: list[np.ndarray], workdir: Path
) -> list[Timed]:
    """A student's rows: each runtime at 1x and 12x, then the people sweep (onnxruntime)."""
    from orpose.predictor import fix_people

    inputs = frame_inputs(frames, plan.scales, has_native_path(model))
    small = shrink(frames[:1], LOWRES_SCALE, upsample=False)[0]  # the native graph's example
    timed = []
    runners = student_runners(model, name, plan.runtimes, plan.threads, workdir, frames[0],
                              small, plan.device)  # fmt: skip
    for runner in runners:
        for put in inputs:
            row = BenchRow("student", name, runner.runtime, put.label, "detected", 0.0, 0.0)
            cost = partial(student_cost, model, put.images[0])
            run = at_factor(runner.run, put.scale, put.native)
            timed.append(Timed(row, run, put.images, cost, scale=put.scale,
                               native=put.native))  # fmt: skip
    if plan.people and "onnxruntime" in plan.runtimes:
        for count in plan.people:
            forced = fix_people(_copy(model), count)
            (runner,) = student_runners(forced, f"{name}_{count}", ("onnxruntime",),
                                        plan.threads, workdir, frames[0], small)  # fmt: skip
            row = BenchRow("student", name, runner.runtime, inputs[0].label, str(count), 0.0, 0.0)
            cost = partial(student_cost, forced, frames[0])
            timed.append(Timed(row, runner.run, frames, cost, forced_people=count))
    return timed


def prepare_export(path: Path, plan: BenchPlan, frames: list[np.ndarray]) -> list[Timed]:
    """An exported student (.onnx: fp32 or int8, with its native graph when ``orpose export``
    wrote one beside it), as ``orpose predict`` loads it: onnxruntime rows at 1x and 12x.
    It poses people from ``plan.student_min_score`` where the graph takes a ``min_score``
    (graphs exported before it: from their own threshold); its other thresholds are the
    graph's own; GFLOPs are not counted (a graph of any image size)."""
    from orpose.export.flops import onnx_parameters
    from orpose.inference.onnx_runner import OnnxStudentPair, load_onnx_student

    runner = load_onnx_student(path, plan.threads)
    run = runner
    if runner.accepts_min_score and plan.student_min_score is not None:
        run = BoundRunner(runner, min_score=plan.student_min_score)
    params = onnx_parameters(path) / 1e6
    inputs = frame_inputs(frames, plan.scales, isinstance(runner, OnnxStudentPair))
    return [
        Timed(BenchRow("student", path.name, onnx_runtime(runner), put.label, "detected", 0.0,
                       0.0),
              at_factor(run, put.scale, put.native), put.images,
              lambda people: (params, float("nan")), scale=put.scale, native=put.native)
        for put in inputs
    ]  # fmt: skip


@dataclass
class FrameInput:
    """The frames of one kind of row: full resolution, or 12x upsampled back (the paper's
    protocol, privacy mode's default path) or 12x as they are (the native path)."""

    label: str
    images: list[np.ndarray]
    scale: float = 1.0
    native: bool = False


def frame_inputs(frames: list[np.ndarray], scales: Sequence[int], native: bool) -> list[FrameInput]:
    """1x, and at 12x the upsampled frames and, for a model with a native path, the small
    ones."""
    inputs = [FrameInput(f"{BENCH_SIZE[0]}x{BENCH_SIZE[1]}", list(frames))]
    if LOWRES_SCALE not in scales:
        return inputs
    label = f"{inputs[0].label} ({LOWRES_SCALE}x, upsampled)"
    inputs.append(FrameInput(label, shrink(frames, LOWRES_SCALE, upsample=True), LOWRES_SCALE))
    if native:
        small = shrink(frames, LOWRES_SCALE, upsample=False)
        w, h = small[0].shape[1], small[0].shape[0]
        inputs.append(FrameInput(f"{w}x{h} ({LOWRES_SCALE}x, native)", small, LOWRES_SCALE, True))
    return inputs


def is_export(path: Path | str) -> bool:
    return str(path).lower().endswith(".onnx")


def _copy(model):
    import copy

    return copy.deepcopy(model).eval()


def add_speedups(rows: list[BenchRow]) -> None:
    """Each student row's speed-up over each teacher setting at full resolution (median
    latency ratio)."""
    full_res = f"{BENCH_SIZE[0]}x{BENCH_SIZE[1]}"
    teachers = {
        r.variant: r.median_ms for r in rows if r.model == "teacher" and r.input == full_res
    }
    for row in rows:
        if row.model == "student":
            row.speedup = {k: v / row.median_ms for k, v in teachers.items()}


def lowres_ratios(rows: Sequence[BenchRow]) -> dict[str, float]:
    """Per student, runtime and low-resolution path: median latency at 12x / median at 1x
    (people as detected)."""
    out = {}
    for row in rows:
        if row.model != "student" or row.people != "detected" or "x," not in row.input:
            continue
        path = "native" if "native" in row.input else "upsampled"
        base = next(
            (r for r in rows if r.model == "student" and r.variant == row.variant
             and r.runtime == row.runtime and r.people == "detected" and "x," not in r.input),
            None,
        )  # fmt: skip
        if base is not None:
            out[f"{row.variant} {row.runtime} {path}"] = row.median_ms / base.median_ms
    return out


# -- report ---------------------------------------------------------------------------------------


def format_table(rows: Sequence[BenchRow]) -> str:
    """A plain-text table with the speed-ups over the single-pass and the full teacher."""
    from orpose.workflow.bench_accuracy import format_accuracy

    sets = list(dict.fromkeys(name for r in rows for name in r.accuracy))
    head = ("model", "variant", "runtime", "input", "people", "params (M)", "GFLOPs",
            "median ms", "p90 ms", "frames/s", "x teacher single", "x teacher full",
            *(f"{name}: box / kpt AP / mm" for name in sets))  # fmt: skip
    lines = []
    for r in rows:
        people = r.people if r.people != "detected" else f"{r.people_per_frame:.1f} detected"
        lines.append((
            r.model, r.variant, r.runtime, r.input, people, f"{r.params_m:.2f}",
            f"{r.gflops:.2f}", f"{r.median_ms:.0f}", f"{r.p90_ms:.0f}", f"{r.fps:.2f}",
            *(f"{r.speedup[k]:.2f}" if k in r.speedup else "-" for k in ("single", "full")),
            *(format_accuracy(r.accuracy.get(name)) for name in sets),
        ))  # fmt: skip
    widths = [max(len(str(x)) for x in col) for col in zip(head, *lines, strict=True)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    out = [fmt.format(*head), fmt.format(*("-" * w for w in widths))]
    out += [fmt.format(*line) for line in lines]
    return "\n".join(out)


@dataclass
class BenchPlan:
    """What one ``orpose bench`` run measures."""

    frames: Path
    count: int = 10
    warmup: int = 2
    students: tuple[str, ...] = (CPU_STUDENT,)  # CPU_STUDENT and/or R-CNN backbone names
    checkpoints: tuple[Path, ...] = ()
    teacher_settings: tuple[str, ...] = ("single", "full")
    runtimes: tuple[str, ...] = ("onnxruntime", "pytorch")
    scales: tuple[int, ...] = (1, LOWRES_SCALE)
    people: tuple[int, ...] = PEOPLE_SWEEP  # forced people per frame (onnxruntime only)
    threads: int = 0
    device: str = "cpu"  # PyTorch device of the students
    # students pose people detected with at least this score (None: each model's own); the
    # default is the teacher's min_person_score, so that both pose the same candidates
    student_min_score: float | None = TEACHER_MIN_PERSON_SCORE
    # one onnxruntime thread pool for every session of this process, from now on (rows run in
    # turn; with a pool per session, the threads of the row that just ran spin against the next
    # one, see orpose.onnx_session): the CLI asks for it, its process ends with the bench
    shared_pool: bool = False
    # labelled sets to score each row on (bench_accuracy: "mvor", "val500" or AccuracySet),
    # on their first accuracy_count images (None: all); the teacher's 3D through teacher_lifter
    accuracy: tuple = ()
    accuracy_count: int | None = None
    teacher_lifter: Path | None = None


def run_bench(plan: BenchPlan, log: Callable[[str], None] = print) -> list[BenchRow]:
    """Every row of the plan, teacher first; a model that cannot be built is reported, skipped."""
    import torch

    from orpose.onnx_session import share_one_thread_pool

    if plan.threads > 0:
        torch.set_num_threads(plan.threads)
    if plan.shared_pool:  # recorded as granted or not
        plan.shared_pool = share_one_thread_pool(plan.threads)
    frames = load_frames(plan.frames, plan.count)
    # the accuracy sets are read before anything is timed: a bad one stops the run at once
    sets_dir = tempfile.TemporaryDirectory(prefix="orpose_bench_sets_")
    try:
        return _run_bench(plan, frames, _accuracy_sets(plan, Path(sets_dir.name)), log)
    finally:
        sets_dir.cleanup()


def _accuracy_sets(plan: BenchPlan, workdir: Path) -> list:
    """The plan's accuracy sets, resolved and loaded (their cameras read), or []."""
    if not plan.accuracy:
        return []
    from orpose.workflow.bench_accuracy import load_sets, resolve_sets

    return load_sets(resolve_sets(plan.accuracy, workdir))


def _run_bench(plan: BenchPlan, frames: list[np.ndarray], sets: list,
               log: Callable[[str], None]) -> list[BenchRow]:  # fmt: skip
    from orpose.checkpoints.student import load_student
    from orpose.errors import OrposeError
    from orpose.predictor import set_min_person_score

    timed: list[Timed] = []
    lifter = None
    if plan.accuracy and plan.teacher_lifter is not None:
        from orpose.teacher.lift3d import load_lifter

        lifter = load_lifter(plan.teacher_lifter)
    full_res, *upsampled = frame_inputs(frames, plan.scales, native=False)
    for setting in plan.teacher_settings:
        log(f"teacher {setting} ...")
        timed.append(prepare_teacher(setting, full_res, plan.threads, lifter))
    if upsampled and "single" in plan.teacher_settings:  # the paper's protocol at 12x
        timed.append(prepare_teacher("single", upsampled[0], plan.threads, lifter))
    builders = [(s, (cpu_student if s == CPU_STUDENT else
                     lambda s=s: random_rcnn_student(s))) for s in plan.students]  # fmt: skip
    builders += [(Path(c).stem, lambda c=c: load_student(c))
                 for c in plan.checkpoints if not is_export(c)]  # fmt: skip
    for path in (Path(c) for c in plan.checkpoints if is_export(c)):
        log(f"student {path.name} (exported graph) ...")
        try:
            timed += prepare_export(path, plan, frames)
        except (OrposeError, FileNotFoundError, ValueError) as err:
            log(f"  skipped: {err}")
    with tempfile.TemporaryDirectory(prefix="orpose_bench_") as tmp:
        for name, build in builders:
            log(f"student {name} (built, exported) ...")
            try:
                model = set_min_person_score(build(), plan.student_min_score)
            except (OrposeError, FileNotFoundError, ImportError, ValueError) as err:
                log(f"  skipped: {err}")
                continue
            timed += prepare_students(name, model, plan, frames, Path(tmp))
        # PyTorch rows apart: the shared pool's threads would spin against PyTorch's work
        for group in (
            [t for t in timed if t.row.runtime.startswith("onnxruntime")],
            [t for t in timed if not t.row.runtime.startswith("onnxruntime")],
        ):
            if group:
                log(f"timing {len(group)} {group[0].row.runtime} rows in alternation ...")
                time_interleaved(group, plan.warmup)
        if sets:
            score_rows(timed, sets, plan.accuracy_count, log)
    rows = [t.finish() for t in timed]
    add_speedups(rows)
    return rows


def score_rows(timed: Sequence[Timed], sets: Sequence, count: int | None,
               log: Callable[[str], None] = print) -> None:  # fmt: skip
    """After the timing: each row with the people it detects (not the forced sweeps) scored on
    each accuracy set (``(AccuracySet, ground truth)`` pairs, the first ``count`` images) at
    its factor and path (:mod:`orpose.workflow.bench_accuracy`)."""
    from orpose.workflow.bench_accuracy import score_row

    for t in timed:
        if t.forced_people is not None:
            continue
        for accuracy_set, dataset in sets:
            log(f"accuracy: {t.row.variant} {t.row.runtime} {t.row.input} on {accuracy_set.name}")
            t.row.accuracy[accuracy_set.name] = score_row(
                t.predictor or t.run, accuracy_set, dataset, t.scale, t.native, count
            )


def save_report(path: Path, rows: Sequence[BenchRow], plan: BenchPlan) -> Path:
    from orpose.data.coco import write_json_atomic

    settings = asdict(plan)
    settings["frames"] = str(plan.frames)
    settings["checkpoints"] = [str(c) for c in plan.checkpoints]
    settings["accuracy"] = [a if isinstance(a, str) else str(a.gt) for a in plan.accuracy]
    settings["teacher_lifter"] = str(plan.teacher_lifter) if plan.teacher_lifter else None
    settings["size"] = list(BENCH_SIZE)
    payload = {
        "machine": machine(),
        "settings": settings,
        "paper": PAPER,
        "rows": [r.as_dict() for r in rows],
        "lowres_over_full": lowres_ratios(rows),
    }
    return write_json_atomic(path, payload)
