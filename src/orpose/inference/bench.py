"""``orpose bench``: size, cost and speed of the teacher and the student on the same real frames.

One row per teacher setting (single pass, each test-time augmentation alone, full) and per
student backbone and runtime (PyTorch, ONNX Runtime): parameters, GFLOPs at 640x480 (see
:mod:`.flops` for the convention), latency median and p90 and frames/s at batch 1, and the
student's speed-up over the teacher. Random-weight students run as fast as trained ones, so no
checkpoint is needed; students then detect exactly ``persons`` people per frame (score threshold
0), the work a scene with that many people costs.
"""

from __future__ import annotations

import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

BENCH_SIZE = (640, 480)  # (width, height): the paper's MVOR frames
DEFAULT_BACKBONES = ("resnet50_fpn", "resnet18_fpn", "mobilenet_v3_fpn", "picodet_lcnet")
TEACHER_SETTINGS = ("single", "det_flip", "det_scales", "pose_flip", "pose_scales", "full")
PAPER = {
    "teacher": {"params_m": 250.1, "gflops": 1048.8},
    "student": {"params_m": 67.9, "gflops": 215.0},
}


@dataclass
class BenchRow:
    """One model in one runtime."""

    model: str  # teacher | student
    variant: str  # teacher setting, or student backbone (or checkpoint name)
    runtime: str  # onnxruntime | pytorch
    params_m: float
    gflops: float  # at 640x480, MACs (see flops.py)
    latencies_ms: list[float] = field(default_factory=list)
    people_per_frame: float = 0.0
    speedup: dict[str, float] = field(default_factory=dict)  # teacher setting -> its time / ours

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
        d = asdict(self)
        d.update(median_ms=self.median_ms, p90_ms=self.p90_ms, fps=self.fps)
        return d


def load_frames(source: Path, count: int, size: tuple[int, int] = BENCH_SIZE) -> list[np.ndarray]:
    """``count`` RGB frames spread over a video (or the first images of a folder), at ``size``."""
    from orpose.data.sources import count_video_frames, iter_video, list_images, read_image_rgb

    if source.is_dir():
        images = [read_image_rgb(p) for p in list_images(source)[:count]]
    else:
        step = max(1, count_video_frames(source) // max(count, 1))
        images = [f.image for f in iter_video(source, step=step, limit=count)]
    if not images:
        raise ValueError(f"{source}: no frame to benchmark on")
    return [cv2.resize(im, size, interpolation=cv2.INTER_LINEAR) for im in images]


def time_calls(
    run: Callable[[np.ndarray], Any], frames: Sequence[np.ndarray], warmup: int
) -> tuple[list[float], list[Any]]:
    """Latency in ms of ``run`` on each frame after ``warmup`` untimed calls; and its outputs."""
    for i in range(warmup):
        run(frames[i % len(frames)])
    times, outputs = [], []
    for frame in frames:
        start = time.perf_counter()
        outputs.append(run(frame))
        times.append((time.perf_counter() - start) * 1000.0)
    return times, outputs


def machine() -> dict[str, Any]:
    """What the numbers were measured on."""
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


# -- teacher --------------------------------------------------------------------------------------


def teacher_config(setting: str):
    """A teacher preset (``single``, ``full``) or ``single`` plus one augmentation."""
    from orpose.teacher.config import AUGMENTATIONS, PRESETS

    if setting in PRESETS:
        return PRESETS[setting]
    if setting in AUGMENTATIONS:
        return PRESETS["single"].replace(**AUGMENTATIONS[setting])
    raise ValueError(f"unknown teacher setting {setting!r}; known: {', '.join(TEACHER_SETTINGS)}")


def teacher_cost(teacher, persons: int, size: tuple[int, int] = BENCH_SIZE) -> tuple[float, float]:
    """(parameters in millions, GFLOPs) of one frame of ``size`` with ``persons`` people.

    Detector runs once per view of its augmentations, the pose model once per person and pose
    augmentation; each run's MACs are counted on its ONNX graph.
    """
    from orpose.inference.flops import onnx_macs, onnx_parameters
    from orpose.teacher.tta import detection_views, pose_augmentations

    cfg = teacher.config
    det_path, pose_path = teacher.detector.model.path, teacher.pose.model.path
    views = detection_views(*size, cfg.det_scales, cfg.det_flip, cfg.det_tile_overlap)
    pose_runs = persons * len(pose_augmentations(cfg.pose_scales, cfg.pose_flip))
    macs = onnx_macs(det_path) * len(views) + onnx_macs(pose_path) * pose_runs
    params = onnx_parameters(det_path) + onnx_parameters(pose_path)
    return params / 1e6, macs / 1e9


def bench_teacher(
    setting: str, frames: Sequence[np.ndarray], warmup: int, persons: int, threads: int
) -> BenchRow:
    from orpose.paths import models_dir
    from orpose.teacher.teacher import Teacher

    teacher = Teacher.from_config(teacher_config(setting), models_dir(), threads=threads)
    params, gflops = teacher_cost(teacher, persons)
    times, outputs = time_calls(teacher.label, frames, warmup)
    people = float(np.mean([len(o) for o in outputs]))
    return BenchRow("teacher", setting, "onnxruntime", params, gflops, times, people)


# -- student --------------------------------------------------------------------------------------


def random_student(backbone: str, persons: int):
    """A random-weight student of the paper's inference architecture (frozen batch norm) that
    detects exactly ``persons`` people per frame."""
    from orpose.student.model import StudentConfig, build_student

    config = StudentConfig(
        backbone=backbone, norm="frozen_bn", box_score_thresh=0.0, detections_per_img=persons
    )
    torch.manual_seed(0)
    return build_student(config).eval()


def bench_student(
    name: str,
    model,
    frames: Sequence[np.ndarray],
    warmup: int,
    persons: int,
    runtimes: Sequence[str],
    threads: int,
    workdir: Path,
    device: str = "cpu",
) -> list[BenchRow]:
    """PyTorch and/or ONNX Runtime rows of one student (the ONNX graph is exported to workdir).

    ``device`` is PyTorch's; onnxruntime uses CUDA when ``device`` is a GPU and its build has
    the CUDA provider, else the CPU.
    """
    from orpose.inference.export import export_onnx
    from orpose.inference.flops import student_flops
    from orpose.inference.onnx_runner import OnnxStudent
    from orpose.inference.predictor import StudentPredictor
    from orpose.student.model import count_parameters

    sample = torch.from_numpy(frames[0]).permute(2, 0, 1).float() / 255.0
    params = count_parameters(model) / 1e6
    gflops = student_flops(model, sample, persons).gflops
    rows = []
    if "pytorch" in runtimes:
        predictor = StudentPredictor(model, device)
        times, outputs = time_calls(predictor, frames, warmup)
        people = float(np.mean([len(o) for o in outputs]))
        runtime = "pytorch" if device == "cpu" else f"pytorch-{device}"
        rows.append(BenchRow("student", name, runtime, params, gflops, times, people))
        model.cpu()
    if "onnxruntime" in runtimes:
        path = export_onnx(model, workdir / f"{name}.onnx", sample)
        providers = onnx_providers(device)
        runner = OnnxStudent(path, threads=threads, providers=providers)
        times, outputs = time_calls(runner, frames, warmup)
        people = float(np.mean([len(o) for o in outputs]))
        runtime = "onnxruntime" if providers[0].startswith("CPU") else "onnxruntime-cuda"
        rows.append(BenchRow("student", name, runtime, params, gflops, times, people))
    return rows


def onnx_providers(device: str) -> list[str]:
    """CUDA first for a GPU device when this onnxruntime build has it; the CPU otherwise."""
    import onnxruntime as ort

    if device != "cpu" and "CUDAExecutionProvider" in ort.get_available_providers():
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


def add_speedups(rows: list[BenchRow]) -> None:
    """Each student row's speed-up over each teacher setting (teacher median / student median)."""
    teachers = {r.variant: r.median_ms for r in rows if r.model == "teacher"}
    for row in rows:
        if row.model == "student":
            row.speedup = {k: v / row.median_ms for k, v in teachers.items()}


# -- report ---------------------------------------------------------------------------------------


def format_table(rows: Sequence[BenchRow], reference: str = "full") -> str:
    """A plain-text table; the last column is the speed-up over the teacher ``reference``."""
    head = (
        "model",
        "variant",
        "runtime",
        "params (M)",
        "GFLOPs",
        "median ms",
        "p90 ms",
        "frames/s",
        "people",
        f"x teacher {reference}",
    )
    lines = []
    for r in rows:
        ratio = r.speedup.get(reference)
        lines.append(
            (
                r.model,
                r.variant,
                r.runtime,
                f"{r.params_m:.1f}",
                f"{r.gflops:.1f}",
                f"{r.median_ms:.0f}",
                f"{r.p90_ms:.0f}",
                f"{r.fps:.2f}",
                f"{r.people_per_frame:.1f}",
                f"{ratio:.2f}" if ratio else "-",
            )
        )
    widths = [max(len(str(x)) for x in col) for col in zip(head, *lines, strict=True)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    out = [fmt.format(*head), fmt.format(*("-" * w for w in widths))]
    out += [fmt.format(*line) for line in lines]
    return "\n".join(out)


def save_json(path: Path, rows: Sequence[BenchRow], settings: dict[str, Any]) -> Path:
    from orpose.data.coco import write_json_atomic

    payload = {
        "machine": machine(),
        "settings": settings,
        "paper": PAPER,
        "rows": [r.as_dict() for r in rows],
    }
    return write_json_atomic(path, payload)


@dataclass
class BenchPlan:
    """What one ``orpose bench`` run measures."""

    frames: Path
    count: int = 5
    warmup: int = 1
    persons: int = 5
    backbones: tuple[str, ...] = DEFAULT_BACKBONES
    checkpoints: tuple[Path, ...] = ()
    teacher_settings: tuple[str, ...] = TEACHER_SETTINGS
    runtimes: tuple[str, ...] = ("pytorch", "onnxruntime")
    threads: int = 0
    proposals: int | None = None  # RPN proposals kept per frame (None: the model's 1000)
    device: str = "cpu"  # PyTorch device of the students


def run_bench(plan: BenchPlan, log: Callable[[str], None] = print) -> list[BenchRow]:
    """Every row of the plan, teacher first; a model that cannot be built is reported, skipped."""
    from orpose.inference.predictor import limit_proposals, load_student

    if plan.threads > 0:
        torch.set_num_threads(plan.threads)
    frames = load_frames(plan.frames, plan.count)
    rows: list[BenchRow] = []
    for setting in plan.teacher_settings:
        log(f"teacher {setting} ...")
        rows.append(bench_teacher(setting, frames, plan.warmup, plan.persons, plan.threads))
    students = [(b, lambda b=b: random_student(b, plan.persons)) for b in plan.backbones]
    students += [(Path(c).stem, lambda c=c: load_student(c)) for c in plan.checkpoints]
    with tempfile.TemporaryDirectory(prefix="orpose_bench_") as tmp:
        for name, build in students:
            log(f"student {name} ...")
            try:
                model = limit_proposals(build(), plan.proposals)
            except (FileNotFoundError, ImportError, ValueError) as err:
                log(f"  skipped: {err}")
                continue
            rows += bench_student(
                name,
                model,
                frames,
                plan.warmup,
                plan.persons,
                plan.runtimes,
                plan.threads,
                Path(tmp),
                plan.device,
            )
    add_speedups(rows)
    return rows


def bench_settings(plan: BenchPlan) -> dict[str, Any]:
    d = asdict(plan)
    d["frames"] = str(plan.frames)
    d["checkpoints"] = [str(c) for c in plan.checkpoints]
    d["size"] = list(BENCH_SIZE)
    return d


def write_report(path: Path, rows: Sequence[BenchRow], plan: BenchPlan) -> Path:
    return save_json(path, rows, bench_settings(plan))
