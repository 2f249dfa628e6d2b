"""``orpose adapt``: a student adapted to one's own operating room from unlabelled recordings.

What a hospital does with orpose (docs/workflow.md): point it at recordings of its cameras and get
a student that knows that room. Two kinds of recordings:

- full-resolution frames: the teacher labels them (``orpose label``, single pass by default),
  as the general pool was labelled;
- frames stored only at 1/S (privacy-preserving recordings): the student labels them itself,
  flip-consistently (``orpose self-label``; with ``temporal``, the people that persist over
  consecutive frames), and trains on them at S.

Then the student is trained further from its checkpoint (``orpose train`` with ``init_weights``)
on those labels oversampled ``oversample`` times, mixed with the general pool it was trained on,
at every scale of its low-resolution schedule. Each stage is a call of its verb's function,
resumable and recorded as the ordinary command it equals (:mod:`orpose.workflow.steps`);
``commands.sh`` in the output folder replays them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import yaml

from orpose.atomic import write_atomic
from orpose.errors import UserError
from orpose.paths import configs_dir
from orpose.workflow import stages
from orpose.workflow.steps import Step, StepRunner, call, write_commands

DEFAULT_CONFIG = "cpu_student.yaml"


@dataclass
class AdaptOptions:
    """What ``orpose adapt`` was asked; see ``orpose adapt --help``."""

    checkpoint: Path
    frames: list[Path]
    out: Path
    stored_downscale: float = 1.0  # > 1: the frames exist only at 1/S (self-labelled)
    pool: list[Path] = field(default_factory=list)  # general pseudo labels (default: the run's)
    oversample: int = 4
    iterations: int = 300
    lifter: Path | None = None  # for the teacher's 3D labels (default: the run's)
    preset: str = "single"
    video_step: int = 10
    min_score: float = 0.3
    temporal: bool = False  # self-labelling: keep the people that persist over time
    # train even if the frames are images of an evaluation set (``orpose train
    # --allow-eval-overlap``): e.g. MVOR's own test camera, deliberately
    allow_eval_overlap: bool = False


def training_config(checkpoint: Path) -> dict:
    """The resolved training config of the run that wrote ``checkpoint`` (``config.yaml``
    beside it), else the default CPU student's file."""
    beside = checkpoint.parent / "config.yaml"
    path = beside if beside.is_file() else configs_dir() / DEFAULT_CONFIG
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as err:
        raise UserError(f"{path}: cannot read the training config ({err})") from None
    if not isinstance(data, dict):
        raise UserError(f"{path}: not a training config (a mapping is expected)")
    return data


def student_config(checkpoint: Path) -> dict:
    """The student's own config as saved in the checkpoint (architecture and lifter sizes)."""
    from orpose.safe_checkpoint import read_checkpoint

    state = read_checkpoint(checkpoint)
    saved = state.get("student_config") if isinstance(state, dict) else None
    if not isinstance(saved, dict):
        raise UserError(f"{checkpoint}: field 'student_config': missing (not an orpose student)")
    return saved


def adapt_config(opts: AdaptOptions, labels: Path) -> dict:
    """The training config of the adaptation: the original run's, starting from its weights
    (lifters included), on the pool plus ``oversample`` copies of the new labels."""
    config = training_config(opts.checkpoint)
    data = dict(config.get("data") or {})
    pool = [str(Path(p).resolve()) for p in opts.pool or data.get("train") or []]
    missing = [p for p in pool if not Path(p).is_file()]
    if missing:
        raise UserError(
            f"{missing[0]}: the general pool's pseudo labels are missing (give --pool FILE)"
        )
    data["train"] = pool + [str(labels.resolve())] * opts.oversample
    solver = dict(config.get("solver") or {})
    solver["iterations"] = opts.iterations
    solver["warmup_iterations"] = min(20, max(1, opts.iterations // 5))
    solver["checkpoint_every"] = max(1, min(50, opts.iterations))
    config.update(
        student=student_config(opts.checkpoint),
        data=data,
        solver=solver,
        init_weights=str(opts.checkpoint.resolve()),
        init_lifter=None,  # the lifters come with the weights
    )
    return config


def run_lifter(opts: AdaptOptions) -> Path | None:
    """The lifter for the teacher's 3D labels: ``--lifter``, else the original run's."""
    if opts.lifter is not None:
        return opts.lifter
    lifter = training_config(opts.checkpoint).get("init_lifter")
    return Path(lifter) if lifter and Path(lifter).is_file() else None


def adapt_steps(opts: AdaptOptions) -> tuple[list[Step], Path]:
    """The steps of an adaptation, and the adapted checkpoint's path."""
    out = opts.out
    frames = [str(f) for f in opts.frames]
    if opts.stored_downscale > 1:
        labels = out / "labels/self_labels.json"
        argv = ["self-label", opts.checkpoint, *frames, "--stored-downscale",
                opts.stored_downscale, "--min-score", opts.min_score, "--video-step",
                opts.video_step, *(["--temporal"] if opts.temporal else []), "--out", labels,
                "--no-progress"]  # fmt: skip
        run = call(stages.self_label, opts.checkpoint, [Path(f) for f in frames], labels,
                   stored_downscale=float(opts.stored_downscale), min_score=opts.min_score,
                   video_step=opts.video_step, progress=False,
                   temporal=opts.temporal)  # fmt: skip
        why = ("the student labels the low-resolution frames itself, "
               + ("keeping the people that persist over time" if opts.temporal
                  else "flip-consistently"))  # fmt: skip
        label = Step("self-label", argv, [labels], why, run)
    else:
        labels = out / "labels/teacher_labels.json"
        lifter = run_lifter(opts)
        argv = ["label", *frames, "--preset", opts.preset, "--video-step", opts.video_step,
                *(["--lifter", lifter] if lifter else []), "--out", labels,
                "--no-progress"]  # fmt: skip
        run = call(stages.label, [Path(f) for f in frames], labels, preset=opts.preset,
                   video_step=opts.video_step, lifter=lifter, progress=False)  # fmt: skip
        label = Step("teacher-label", argv, [labels], "the teacher labels the room's frames", run)
    config_path = out / "adapt_config.yaml"
    student = out / "student"
    allow = ["--allow-eval-overlap"] if opts.allow_eval_overlap else []
    train = Step(
        "student-adapt",
        ["train", config_path, "--out", student, "--resume", *allow],
        [student / "last.pt"],
        "the student trained further on the room's labels mixed with the general pool",
        call(
            stages.train,
            config_path,
            student,
            resume=True,
            allow_eval_overlap=opts.allow_eval_overlap,
        ),
    )
    steps = [label, train]
    for step in steps:
        step.argv = [str(a) for a in step.argv]
    return steps, student / "last.pt"


def run_adapt(opts: AdaptOptions) -> Path:
    """Run (or resume) an adaptation; returns the adapted checkpoint."""
    if not opts.checkpoint.is_file():
        raise UserError(f"{opts.checkpoint}: no such checkpoint")
    if opts.temporal and opts.stored_downscale <= 1:
        raise UserError("--temporal: only with --stored-downscale (frames the student labels)")
    student_config(opts.checkpoint)  # a checkpoint that is not a student stops before any work
    steps, checkpoint = adapt_steps(opts)
    runner = StepRunner(opts.out)
    write_commands(steps, opts.out / "commands.sh", f"orpose adapt {opts.checkpoint}")
    runner.run(steps[0])
    config = adapt_config(opts, Path(steps[0].outputs[0]))
    text = "# orpose adapt: the original run's config, from its weights\n"
    text += yaml.safe_dump(config, sort_keys=False)
    config_path = steps[1].call.args[0]
    if not config_path.is_file() or config_path.read_text() != text:
        write_atomic(config_path, lambda f: f.write(text))
    runner.run(steps[1])
    return checkpoint
