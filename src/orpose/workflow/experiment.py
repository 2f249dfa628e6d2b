"""``orpose experiment SPEC``: the structure of the paper's Tables 1-3, filled by real runs.

A spec (YAML) names the labelled evaluation set, the pseudo labels to train on, the runs and the
tables. A run is one of

- ``teacher: single|full``: the teacher on the evaluation images degraded at each scale;
- ``train: CONFIG``: a student trained with a training config (``configs/`` or a path), then
  evaluated at each scale (``solver.iterations=0`` evaluates the starting weights: the paper's
  default student before training);
- ``model: CHECKPOINT``: an existing student evaluated at each scale.

Every run becomes ordinary ``orpose`` commands (label / train / eval) executed as resumable steps;
the tables are then read back from each run's ``metrics.csv``. ``schedule`` shrinks every training
run the same way (CPU versions of the paper's schedules), ``set`` overrides config keys of all of
them (for example a smaller backbone).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from orpose.config import build, option, read_yaml_with_base
from orpose.errors import ConfigError, ExperimentError
from orpose.paths import configs_dir, expand_shared
from orpose.scales import scale_label, scale_tag
from orpose.workflow.report_page import (
    image_link,
    machine_description,
    metrics_table,
    read_metrics,
    steps_table,
)
from orpose.workflow.steps import Step, StepRunner, write_commands

RUN_KINDS = ("teacher", "train", "model")


# -- the spec file as written: typed and range-checked by orpose.config.build ---------------------


@dataclass
class ScheduleKeys:
    iterations: int | None = option(None, min=0)  # every training run shortened to this ...
    iterations_factor: float = option(1.0, above=0)  # ... or scaled by this factor


@dataclass
class EvalKeys:
    max_detections: int | None = option(None, min=1)
    proposals: int | None = option(None, min=1)


@dataclass
class RunKeys:
    """One entry of ``runs``: exactly one of ``teacher``, ``train``, ``model``."""

    teacher: str | None = option(None, choices=("single", "full"))
    train: str | None = None  # a training config (as given, beside the spec, or in configs/)
    model: str | None = None  # a student checkpoint
    set: list[str] = field(default_factory=list)
    label: str | None = None


@dataclass
class SpecKeys:
    """The top-level keys of a spec (docs/workflow.md); null means the default."""

    gt: str = ""  # required
    images: str | None = None
    limit: int | None = option(None, min=1)
    scales: list[float] = option(default_factory=lambda: [1.0, 8.0, 10.0, 12.0], min=1)
    train: list[str] = field(default_factory=list)
    lifter: str | None = None
    init_weights: str | None = None
    schedule: ScheduleKeys = field(default_factory=ScheduleKeys)
    set: list[str] = field(default_factory=list)
    eval: EvalKeys = field(default_factory=EvalKeys)
    runs: dict[str, Any] = field(default_factory=dict)  # name -> RunKeys, built one by one
    tables: list[Any] = field(default_factory=list)  # TableSpec, built one by one


# -- the spec as the steps use it: paths resolved, runs checked -----------------------------------


@dataclass
class RunSpec:
    name: str
    kind: str  # teacher | train | model
    value: str  # teacher preset, config file, or checkpoint
    set: list[str] = field(default_factory=list)
    label: str = ""  # the row's name in the tables


@dataclass
class TableSpec:
    title: str = ""
    rows: list[str] = field(default_factory=list)


@dataclass
class ExperimentSpec:
    path: Path
    gt: Path
    images: Path | None
    limit: int | None
    scales: list[float]
    train: list[str]
    lifter: str | None
    init_weights: str | None
    iterations: int | None  # every training run shortened to this many iterations ...
    iterations_factor: float  # ... or scaled by this factor (steps and warm-up follow)
    set: list[str]
    max_detections: int | None
    proposals: int | None
    runs: dict[str, RunSpec]
    tables: list[TableSpec]


def _fail(path: Path, key: str, message: str) -> ConfigError:
    return ConfigError(f"{path}: {key}: {message}")


def _run(name: str, run: Any, path: Path) -> RunSpec:
    keys = build(RunKeys, run, str(path), f"runs.{name}.")
    kinds = [k for k in RUN_KINDS if getattr(keys, k) is not None]
    if len(kinds) != 1:
        raise _fail(path, f"runs.{name}", f"give exactly one of {', '.join(RUN_KINDS)}")
    kind = kinds[0]
    return RunSpec(name, kind, getattr(keys, kind), keys.set, keys.label or name)


def load_experiment(path: Path | str) -> ExperimentSpec:
    """Read and check a spec (``base:`` inheritance as in training configs); every error is a
    ConfigError naming the file and the key."""
    path = Path(path)
    data = read_yaml_with_base(path)
    known = {f.name for f in fields(SpecKeys)}  # a known key set to null: its default
    keys = build(SpecKeys, {k: v for k, v in data.items() if v is not None or k not in known},
                 str(path))  # fmt: skip
    if not keys.gt:
        raise _fail(path, "gt", "missing: the labelled COCO file to evaluate on")
    if not keys.scales:
        raise _fail(path, "scales", "expected at least one downscale factor")
    runs = {name: _run(name, run, path) for name, run in keys.runs.items()}
    if not runs:
        raise _fail(path, "runs", "no run defined")
    tables = []
    for i, table in enumerate(keys.tables):
        table = build(TableSpec, table, str(path), f"tables[{i}].")
        for row in table.rows:
            if row not in runs:
                raise _fail(path, f"tables[{i}].rows", f"{row!r} is not a run of 'runs'")
        tables.append(TableSpec(table.title or f"Table {i + 1}", table.rows))
    if any(r.kind == "train" for r in runs.values()) and not keys.train:
        raise _fail(path, "train", "training runs need pseudo-label files (orpose label)")

    def expanded(value: str | None) -> str | None:
        return expand_shared(value) if value else None

    return ExperimentSpec(
        path=path,
        gt=Path(expand_shared(keys.gt)),
        images=Path(expand_shared(keys.images)) if keys.images else None,
        limit=keys.limit,
        scales=keys.scales,
        train=[expand_shared(t) for t in keys.train],
        lifter=expanded(keys.lifter),
        init_weights=expanded(keys.init_weights),
        iterations=keys.schedule.iterations,
        iterations_factor=keys.schedule.iterations_factor,
        set=keys.set,
        max_detections=keys.eval.max_detections,
        proposals=keys.eval.proposals,
        runs=runs,
        tables=tables,
    )


def find_config(name: str, spec_path: Path) -> Path:
    """A training config: as given, beside the spec, or in the project's ``configs/``."""
    for candidate in (Path(name), spec_path.parent / name, configs_dir() / name):
        if candidate.is_file():
            return candidate
    raise ExperimentError(f"{spec_path}: training config {name!r} not found")


def schedule_overrides(config_path: Path, spec: ExperimentSpec, run_set: list[str]) -> list[str]:
    """``--set`` values that shorten a run's schedule: iterations, the lr steps and the warm-up
    scaled together, so that each run keeps the shape of its paper schedule."""
    from orpose.training.config import load_train_config

    if spec.iterations is None and spec.iterations_factor == 1.0:
        return []
    solver = load_train_config(config_path, [*spec.set, *run_set]).solver
    if solver.iterations == 0:
        return []
    if spec.iterations is not None:
        total = spec.iterations
    else:
        total = max(1, round(solver.iterations * spec.iterations_factor))
    factor = total / solver.iterations
    steps = sorted({max(1, min(total, round(s * factor))) for s in solver.steps})
    # a shortened run still warms up over a tenth of its length (at most 50 iterations): a
    # warm-up of two or three iterations lets the first high-lr steps diverge
    warmup = max(round(solver.warmup_iterations * factor), min(50, total // 10))
    return [f"solver.iterations={total}", f"solver.steps=[{','.join(map(str, steps))}]",
            f"solver.warmup_iterations={warmup}",
            f"solver.checkpoint_every={max(1, min(solver.checkpoint_every, total))}"]  # fmt: skip


def teacher_steps(run: RunSpec, spec: ExperimentSpec, gt: Path, folder: Path) -> list[Step]:
    """The teacher on the evaluation images at each scale, then one evaluation of them all."""
    steps, preds = [], []
    lifter = ["--lifter", spec.lifter] if spec.lifter else []
    for s in spec.scales:
        pred = folder / f"pred_{scale_label(s)}.json"
        preds += ["--pred", f"{scale_tag(s)}={pred}"]
        argv = ["label", gt, "--downscale", scale_tag(s), "--preset", run.value, *lifter,
                "--out", pred, "--no-progress"]  # fmt: skip
        steps.append(Step(f"{run.name}-{scale_label(s)}", argv, [pred],
                          f"the teacher ({run.value}) at {scale_label(s)}"))  # fmt: skip
    argv = ["eval", "--gt", gt, *preds, "--out", folder / "eval", "--no-plot"]
    steps.append(Step(f"{run.name}-eval", argv, [folder / "eval/metrics.csv"], "its AP per scale"))
    return steps


def train_step(run: RunSpec, spec: ExperimentSpec, folder: Path) -> Step:
    """``orpose train`` of one run, with the spec's data, starting weights and overrides."""
    config = find_config(run.value, spec.path)
    sets = [f"data.train=[{','.join(spec.train)}]"]
    if spec.lifter:
        sets.append(f"init_lifter={spec.lifter}")
    if spec.init_weights:
        sets.append(f"init_weights={spec.init_weights}")
    sets += [*spec.set, *schedule_overrides(config, spec, run.set), *run.set]
    argv = ["train", config, "--out", folder / "train", "--resume",
            *[a for s in sets for a in ("--set", s)]]  # fmt: skip
    return Step(f"{run.name}-train", argv, [folder / "train/last.pt"], f"training of {run.label}")


def model_eval_step(run: RunSpec, spec: ExperimentSpec, gt: Path, folder: Path,
                    checkpoint: Path) -> Step:  # fmt: skip
    """``orpose eval --model`` of a student at every scale."""
    options = []
    if spec.max_detections:
        options += ["--max-detections", spec.max_detections]
    if spec.proposals:
        options += ["--proposals", spec.proposals]
    argv = ["eval", "--gt", gt, "--model", checkpoint, "--scales", *map(scale_tag, spec.scales),
            *options, "--out", folder / "eval", "--no-plot"]  # fmt: skip
    return Step(f"{run.name}-eval", argv, [folder / "eval/metrics.csv"], "its AP per scale")


def experiment_steps(spec: ExperimentSpec, out: Path, only: list[str] | None = None) -> list[Step]:
    """The commands of every run (or of the ``only`` ones), in the order of the spec."""
    gt = out / "data/gt.json"
    subset = ["data", "subset", spec.gt, "--num", spec.limit or 10**9, "--out", gt,
              *(["--images", spec.images] if spec.images else [])]  # fmt: skip
    steps = [Step("eval-set", subset, [gt], "the labelled evaluation images (absolute paths)")]
    for run in spec.runs.values():
        if only and run.name not in only:
            continue
        folder = out / "runs" / run.name
        if run.kind == "teacher":
            steps += teacher_steps(run, spec, gt, folder)
            continue
        if run.kind == "train":
            training = train_step(run, spec, folder)
            steps.append(training)
            checkpoint = training.outputs[0]
        else:
            checkpoint = Path(expand_shared(run.value))
        steps.append(model_eval_step(run, spec, gt, folder, checkpoint))
    for step in steps:
        step.argv = [str(a) for a in step.argv]
    return steps


def write_experiment_report(spec: ExperimentSpec, out: Path, records) -> Path:
    """``<out>/results.md``: one Markdown table and one AP-versus-scale chart per table of the
    spec, read from the runs' ``metrics.csv`` (runs not finished yet show as missing)."""
    from orpose.viz.charts import plot_models_versus_scale

    scales = [scale_label(s) for s in spec.scales]
    parts = [
        f"# Experiment {spec.path.stem}",
        f"Spec: `{spec.path}`. Evaluation set: `{spec.gt}`"
        + (f" (first {spec.limit} images)" if spec.limit else "")
        + f". Machine: {machine_description()}.",
        "AP in %, MPJPE in mm (only where the evaluation set has 3D ground truth).",
    ]
    for i, table in enumerate(spec.tables, start=1):
        models, missing = {}, []
        for name in table.rows:
            path = out / "runs" / name / "eval/metrics.csv"
            if path.exists():
                models[spec.runs[name].label] = read_metrics(path)
            else:
                missing.append(name)
        parts.append(f"## {table.title}")
        if models:
            parts.append(metrics_table(models, scales))
            chart = plot_models_versus_scale(models, out / f"table{i}_ap_vs_scale.png",
                                             table.title)  # fmt: skip
            parts.append(image_link(chart, out, f"{table.title}: AP versus downscale factor"))
        if missing:
            parts.append(f"Not run yet: {', '.join(missing)}.")
    if records:
        parts += ["## Commands of this invocation", steps_table(records)]
    path = out / "results.md"
    path.write_text("\n\n".join(parts) + "\n")
    return path


def run_experiment(spec_path: Path, out: Path, only: list[str] | None = None,
                   dry_run: bool = False) -> Path:  # fmt: skip
    """Run (or resume) the spec's runs and write ``<out>/results.md``."""
    spec = load_experiment(spec_path)
    if only:
        unknown = [name for name in only if name not in spec.runs]
        if unknown:
            raise ExperimentError(f"{spec_path}: --only: no run named {', '.join(unknown)}")
    steps = experiment_steps(spec, out, only)
    out.mkdir(parents=True, exist_ok=True)
    commands = write_commands(steps, out / "commands.sh", f"orpose experiment {spec_path}")
    if dry_run:
        print(commands.read_text())
        return commands
    records = StepRunner(out).run_all(steps)
    return write_experiment_report(spec, out, records)
