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

from dataclasses import dataclass, field
from pathlib import Path

from orpose.config import read_yaml_with_base
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


@dataclass
class RunSpec:
    name: str
    kind: str  # teacher | train | model
    value: str  # teacher preset, config file, or checkpoint
    set: list[str] = field(default_factory=list)
    label: str = ""  # the row's name in the tables


@dataclass
class TableSpec:
    title: str
    rows: list[str]


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


def _fail(path: Path, key: str, message: str) -> ExperimentError:
    return ExperimentError(f"{path}: {key}: {message}")


def _str_list(data: dict, key: str, path: Path) -> list[str]:
    value = data.get(key) or []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _fail(path, key, "expected a list of strings")
    return value


def load_experiment(path: Path | str) -> ExperimentSpec:
    """Read and check a spec (``base:`` inheritance as in training configs)."""
    path = Path(path)
    try:
        data = read_yaml_with_base(path)
    except ConfigError as err:
        raise ExperimentError(str(err)) from err
    known = {"gt", "images", "limit", "scales", "train", "lifter", "init_weights", "schedule",
             "set", "eval", "runs", "tables"}  # fmt: skip
    unknown = set(data) - known
    if unknown:
        raise _fail(path, ", ".join(sorted(unknown)), f"unknown key(s); known: {sorted(known)}")
    if not data.get("gt"):
        raise _fail(path, "gt", "missing: the labelled COCO file to evaluate on")
    runs = {}
    for name, run in (data.get("runs") or {}).items():
        if not isinstance(run, dict):
            raise _fail(path, f"runs.{name}", "expected a mapping")
        kinds = [k for k in RUN_KINDS if k in run]
        if len(kinds) != 1:
            raise _fail(path, f"runs.{name}", f"give exactly one of {', '.join(RUN_KINDS)}")
        extra = set(run) - {*RUN_KINDS, "set", "label"}
        if extra:
            raise _fail(path, f"runs.{name}", f"unknown key(s) {', '.join(sorted(extra))}")
        kind = kinds[0]
        value = str(run[kind])
        if kind == "teacher" and value not in ("single", "full"):
            raise _fail(path, f"runs.{name}.teacher", f"expected single or full, got {value!r}")
        runs[name] = RunSpec(name, kind, value, _str_list(run, "set", path),
                             str(run.get("label") or name))  # fmt: skip
    if not runs:
        raise _fail(path, "runs", "no run defined")
    tables = []
    for i, table in enumerate(data.get("tables") or []):
        rows = table.get("rows") or []
        for row in rows:
            if row not in runs:
                raise _fail(path, f"tables[{i}].rows", f"{row!r} is not a run of 'runs'")
        tables.append(TableSpec(str(table.get("title") or f"Table {i + 1}"), list(rows)))
    schedule = data.get("schedule") or {}
    evaluation = data.get("eval") or {}
    needs_training = any(r.kind == "train" for r in runs.values())
    train = [expand_shared(t) for t in _str_list(data, "train", path)]
    if needs_training and not train:
        raise _fail(path, "train", "training runs need pseudo-label files (orpose label)")
    return ExperimentSpec(
        path=path,
        gt=Path(expand_shared(str(data["gt"]))),
        images=Path(expand_shared(str(data["images"]))) if data.get("images") else None,
        limit=data.get("limit"),
        scales=[float(s) for s in data.get("scales") or [1, 8, 10, 12]],
        train=train,
        lifter=expand_shared(str(data["lifter"])) if data.get("lifter") else None,
        init_weights=(
            expand_shared(str(data["init_weights"])) if data.get("init_weights") else None
        ),
        iterations=schedule.get("iterations"),
        iterations_factor=float(schedule.get("iterations_factor", 1.0)),
        set=_str_list(data, "set", path),
        max_detections=evaluation.get("max_detections"),
        proposals=evaluation.get("proposals"),
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
    total = spec.iterations or max(1, round(solver.iterations * spec.iterations_factor))
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
