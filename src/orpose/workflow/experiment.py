"""``orpose experiment SPEC``: the structure of the paper's Tables 1-3, filled by real runs.

A spec (YAML) names the labelled evaluation set, the pseudo labels to train on, the runs and the
tables. A run is one of

- ``teacher: single|full``: the teacher on the evaluation images degraded at each scale;
- ``train: CONFIG``: a student trained with a training config (``configs/`` or a path), then
  evaluated at each scale (``solver.iterations=0`` evaluates the starting weights: the paper's
  default student before training);
- ``model: CHECKPOINT``: an existing student evaluated at each scale.

Every run becomes calls of the stages' functions (label / train / eval, with typed arguments),
executed as resumable steps and recorded as the ordinary ``orpose`` commands they equal; the
tables are then read back from each run's ``metrics.csv``. ``schedule`` shrinks every training
run the same way (CPU versions of the paper's schedules), ``set`` overrides config keys of all of
them (for example a smaller backbone). ``seeds`` trains every training run once per seed: its
table row is the mean over the seeds, with a row of their lowest-highest values under it, since
the seed alone moves one run of the demo's recipe by up to 3 AP points (docs/student.md);
with ``soup: true`` the seeds' students are also averaged into one (``orpose soup``) and scored
as a row of their own.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from orpose.config import build, option, read_yaml_with_base
from orpose.errors import ConfigError, ExperimentError
from orpose.evaluation.report import mean_and_spread, save_seed_summary
from orpose.paths import configs_dir, expand_shared
from orpose.scales import scale_label, scale_tag
from orpose.workflow import stages
from orpose.workflow.report_page import (
    image_link,
    machine_description,
    metric_cell,
    metrics_table,
    read_metrics,
    steps_table,
)
from orpose.workflow.steps import Step, StepRunner, call, write_commands

RUN_KINDS = ("teacher", "train", "model")
# the metrics.csv columns an evaluation set's table may show, with their headers
METRIC_NAMES = {
    "box_ap": "box AP",
    "keypoint_ap": "kpt AP",
    "keypoint_apl": "kpt AP_L",
    "mpjpe_mm": "MPJPE mm",
    "mvor_pck": "PCK@0.2",
}


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
class EvaluationKeys:
    """One entry of ``evaluations``: a labelled set every run is scored on."""

    gt: str = ""  # required: a COCO keypoint file, or MVOR's camma_mvor_2018.json with mvor: true
    images: str | None = None
    limit: int | None = option(None, min=1)
    camera: str | None = None  # intrinsics of its camera for the students' 3D (eval --camera)
    mvor: bool = False  # gt is MVOR's own file: converted first (orpose data mvor-to-coco)
    days: list[int] = option(default_factory=list, min=1, max=4)  # MVOR days (default all)
    cameras: list[int] = option(default_factory=list, min=1, max=3)  # MVOR cameras (default all)
    columns: list[str] = option(default_factory=lambda: ["box_ap", "keypoint_ap", "mpjpe_mm"],
                                choices=tuple(METRIC_NAMES))  # fmt: skip
    label: str | None = None


@dataclass
class RunKeys:
    """One entry of ``runs``: exactly one of ``teacher``, ``train``, ``model``."""

    teacher: str | None = option(None, choices=("single", "full"))
    train: str | None = None  # a training config (as given, beside the spec, or in configs/)
    model: str | None = None  # a student checkpoint
    set: list[str] = field(default_factory=list)
    label: str | None = None
    seeds: list[int] | None = option(None, min=0)  # this training run's seeds (default: the spec's)
    soup: bool | None = None  # also the seeds' weight average as one student (default: the spec's)


@dataclass
class SpecKeys:
    """The top-level keys of a spec (docs/workflow.md); null means the default."""

    gt: str = ""  # one evaluation set (the older form) ...
    evaluations: dict[str, Any] = field(default_factory=dict)  # ... or several, by name
    images: str | None = None
    limit: int | None = option(None, min=1)
    scales: list[float] = option(default_factory=lambda: [1.0, 8.0, 10.0, 12.0], min=1)
    train: list[str] = field(default_factory=list)
    lifter: str | None = None
    init_weights: str | None = None
    schedule: ScheduleKeys = field(default_factory=ScheduleKeys)
    set: list[str] = field(default_factory=list)
    # every training run once per seed (solver.seed), tabled as the mean and the spread;
    # empty: one run with its config's seed
    seeds: list[int] = option(default_factory=list, min=0)
    # each training run with seeds also as one student: the seeds' weights averaged (orpose soup)
    soup: bool = False
    eval: EvalKeys = field(default_factory=EvalKeys)
    runs: dict[str, Any] = field(default_factory=dict)  # name -> RunKeys, built one by one
    tables: list[Any] = field(default_factory=list)  # TableSpec, built one by one
    # published figures to print under the tables: row name -> scale label -> cell text
    paper: dict[str, dict[str, str]] = field(default_factory=dict)
    paper_note: str = ""  # where those figures come from


# -- the spec as the steps use it: paths resolved, runs checked -----------------------------------


@dataclass
class RunSpec:
    name: str
    kind: str  # teacher | train | model
    value: str  # teacher preset, config file, or checkpoint
    set: list[str] = field(default_factory=list)
    label: str = ""  # the row's name in the tables
    seeds: list[int] = field(default_factory=list)  # training runs: one training per seed
    soup: bool = False  # the seeds' students also averaged into one (orpose soup) and scored

    def seed_folders(self, folder: Path) -> dict[int, Path]:
        """Each seed's folder inside the run's (empty without seeds: the run's own folder)."""
        return {seed: folder / f"seed{seed}" for seed in self.seeds}


@dataclass
class TableSpec:
    title: str = ""
    rows: list[str] = field(default_factory=list)
    paper: list[str] = field(default_factory=list)  # names of `paper` rows shown beside it


@dataclass
class EvaluationSet:
    """A labelled set the runs are scored on. ``name`` is empty for the single ``gt`` of the
    older spec form, whose files keep their former places (``data/gt.json``, ``runs/R/eval``)."""

    name: str
    gt: Path
    images: Path | None = None
    limit: int | None = None
    camera: str | None = None
    mvor: bool = False
    days: list[int] = field(default_factory=list)
    cameras: list[int] = field(default_factory=list)
    columns: list[str] | None = None  # None: every metric column (the older form)
    label: str = ""

    def folder(self, run_folder: Path) -> Path:
        return run_folder / self.name if self.name else run_folder

    def suffix(self) -> str:
        return f"-{self.name}" if self.name else ""

    def data_file(self, out: Path) -> Path:
        return out / "data" / (f"{self.name}.json" if self.name else "gt.json")


@dataclass
class ExperimentSpec:
    path: Path
    evaluations: list[EvaluationSet]
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
    paper: dict[str, dict[str, str]] = field(default_factory=dict)
    paper_note: str = ""
    allow_eval_overlap: bool = False  # --allow-eval-overlap: passed on to every training run

    @property
    def gt(self) -> Path:  # the first evaluation set's file (older callers)
        return self.evaluations[0].gt


def _fail(path: Path, key: str, message: str) -> ConfigError:
    return ConfigError(f"{path}: {key}: {message}")


def _run(name: str, run: Any, path: Path, seeds: list[int], soup: bool = False) -> RunSpec:
    keys = build(RunKeys, run, str(path), f"runs.{name}.")
    kinds = [k for k in RUN_KINDS if getattr(keys, k) is not None]
    if len(kinds) != 1:
        raise _fail(path, f"runs.{name}", f"give exactly one of {', '.join(RUN_KINDS)}")
    kind = kinds[0]
    if keys.seeds is not None and kind != "train":
        raise _fail(path, f"runs.{name}.seeds", "only a training run (train:) has seeds")
    seeds = (seeds if keys.seeds is None else keys.seeds) if kind == "train" else []
    if len(set(seeds)) != len(seeds):
        where = f"runs.{name}.seeds" if keys.seeds is not None else "seeds"
        raise _fail(path, where, f"a seed is given twice: {seeds}")
    if keys.soup and len(seeds) < 2:
        raise _fail(path, f"runs.{name}.soup",
                    "a weight average needs a training run with at least two seeds")  # fmt: skip
    # the spec's soup applies to every training run that has seeds to average
    soup = keys.soup if keys.soup is not None else soup and len(seeds) >= 2
    return RunSpec(name, kind, getattr(keys, kind), keys.set, keys.label or name, list(seeds),
                   soup)  # fmt: skip


def load_experiment(path: Path | str) -> ExperimentSpec:
    """Read and check a spec (``base:`` inheritance as in training configs); every error is a
    ConfigError naming the file and the key."""
    path = Path(path)
    data = read_yaml_with_base(path)
    known = {f.name for f in fields(SpecKeys)}  # a known key set to null: its default
    keys = build(SpecKeys, {k: v for k, v in data.items() if v is not None or k not in known},
                 str(path))  # fmt: skip
    if keys.gt and keys.evaluations:
        raise _fail(path, "evaluations", "give either gt (one set) or evaluations, not both")
    if not keys.gt and not keys.evaluations:
        raise _fail(path, "gt", "missing: the labelled COCO file to evaluate on")
    if not keys.scales:
        raise _fail(path, "scales", "expected at least one downscale factor")
    if keys.soup and len(keys.seeds) < 2:
        raise _fail(path, "soup", "a weight average needs at least two seeds (seeds:)")
    runs = {name: _run(name, run, path, keys.seeds, keys.soup) for name, run in keys.runs.items()}
    if not runs:
        raise _fail(path, "runs", "no run defined")
    tables = []
    for i, table in enumerate(keys.tables):
        table = build(TableSpec, table, str(path), f"tables[{i}].")
        for row in table.rows:
            if row not in runs:
                raise _fail(path, f"tables[{i}].rows", f"{row!r} is not a run of 'runs'")
        for row in table.paper:
            if row not in keys.paper:
                raise _fail(path, f"tables[{i}].paper", f"{row!r} is not a row of 'paper'")
        tables.append(TableSpec(table.title or f"Table {i + 1}", table.rows, table.paper))
    if any(r.kind == "train" for r in runs.values()) and not keys.train:
        raise _fail(path, "train", "training runs need pseudo-label files (orpose label)")

    def expanded(value: str | None) -> str | None:
        return expand_shared(value) if value else None

    if keys.gt:
        evaluations = [EvaluationSet("", Path(expand_shared(keys.gt)),
                                     Path(expand_shared(keys.images)) if keys.images else None,
                                     keys.limit)]  # fmt: skip
    else:
        if keys.images or keys.limit:
            raise _fail(path, "images" if keys.images else "limit",
                        "with evaluations, give it inside each set")  # fmt: skip
        evaluations = [_evaluation(name, value, path) for name, value in keys.evaluations.items()]
    return ExperimentSpec(
        path=path,
        evaluations=evaluations,
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
        paper=keys.paper,
        paper_note=keys.paper_note,
    )


def _evaluation(name: str, value: Any, path: Path) -> EvaluationSet:
    if not name.replace("_", "").isalnum():
        raise _fail(path, f"evaluations.{name}", "a set's name is letters, digits and _ only")
    keys = build(EvaluationKeys, value, str(path), f"evaluations.{name}.")
    if not keys.gt:
        raise _fail(path, f"evaluations.{name}.gt", "missing: the labelled file to evaluate on")
    if (keys.days or keys.cameras) and not keys.mvor:
        raise _fail(path, f"evaluations.{name}.days", "days and cameras need mvor: true")
    return EvaluationSet(
        name=name,
        gt=Path(expand_shared(keys.gt)),
        images=Path(expand_shared(keys.images)) if keys.images else None,
        limit=keys.limit,
        camera=expand_shared(keys.camera) if keys.camera else None,
        mvor=keys.mvor,
        days=keys.days,
        cameras=keys.cameras,
        columns=keys.columns,
        label=keys.label or name,
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


def teacher_steps(run: RunSpec, spec: ExperimentSpec, evaluation: EvaluationSet, gt: Path,
                  folder: Path) -> list[Step]:  # fmt: skip
    """The teacher on an evaluation set's images at each scale, then one evaluation of them."""
    steps, preds, pred_files = [], [], {}
    lifter = ["--lifter", spec.lifter] if spec.lifter else []
    lifter_path = Path(spec.lifter) if spec.lifter else None
    name = f"{run.name}{evaluation.suffix()}"
    for s in spec.scales:
        pred = folder / f"pred_{scale_label(s)}.json"
        preds += ["--pred", f"{scale_tag(s)}={pred}"]
        pred_files[scale_tag(s)] = pred
        argv = ["label", gt, "--downscale", scale_tag(s), "--preset", run.value, *lifter,
                "--out", pred, "--no-progress"]  # fmt: skip
        run_label = call(stages.label, [gt], pred, downscale=float(s), preset=run.value,
                         lifter=lifter_path, progress=False)  # fmt: skip
        steps.append(Step(f"{name}-{scale_label(s)}", argv, [pred],
                          f"the teacher ({run.value}) at {scale_label(s)}", run_label))  # fmt: skip
    argv = ["eval", "--gt", gt, *preds, "--out", folder / "eval", "--no-plot"]
    run_eval = call(stages.evaluate, gt, folder / "eval", pred=pred_files, plot=False)
    steps.append(Step(f"{name}-eval", argv, [folder / "eval/metrics.csv"], "its AP per scale",
                      run_eval))  # fmt: skip
    return steps


def train_step(run: RunSpec, spec: ExperimentSpec, folder: Path, seed: int | None = None) -> Step:
    """``orpose train`` of one run, with the spec's data, starting weights and overrides (and
    ``solver.seed``, last, when the run has seeds)."""
    config = find_config(run.value, spec.path)
    sets = [f"data.train=[{','.join(spec.train)}]"]
    if spec.lifter:
        sets.append(f"init_lifter={spec.lifter}")
    if spec.init_weights:
        sets.append(f"init_weights={spec.init_weights}")
    sets += [*spec.set, *schedule_overrides(config, spec, run.set), *run.set]
    if seed is not None:
        sets.append(f"solver.seed={seed}")
    argv = ["train", config, "--out", folder / "train", "--resume",
            *[a for s in sets for a in ("--set", s)]]  # fmt: skip
    if spec.allow_eval_overlap:
        argv.append("--allow-eval-overlap")
    run_train = call(stages.train, config, folder / "train", sets, resume=True,
                     allow_eval_overlap=spec.allow_eval_overlap)  # fmt: skip
    name = f"{run.name}-seed{seed}" if seed is not None else run.name
    what = f"training of {run.label}" + (f", seed {seed}" if seed is not None else "")
    return Step(f"{name}-train", argv, [folder / "train/last.pt"], what, run_train)


def model_eval_step(run: RunSpec, spec: ExperimentSpec, evaluation: EvaluationSet, gt: Path,
                    folder: Path, checkpoint: Path, part: str = "") -> Step:  # fmt: skip
    """``orpose eval --model`` of a student at every scale on one evaluation set (``part``: which
    of the run's students, ``seedN`` or ``soup``, in the step's name)."""
    options, values = [], {}
    if spec.max_detections:
        options += ["--max-detections", spec.max_detections]
        values["max_detections"] = spec.max_detections
    if spec.proposals:
        options += ["--proposals", spec.proposals]
        values["proposals"] = spec.proposals
    if evaluation.camera:
        options += ["--camera", evaluation.camera]
        values["camera"] = evaluation.camera
    argv = ["eval", "--gt", gt, "--model", checkpoint, "--scales", *map(scale_tag, spec.scales),
            *options, "--out", folder / "eval", "--no-plot"]  # fmt: skip
    run_eval = call(stages.evaluate, gt, folder / "eval", model=checkpoint, plot=False,
                    scales=[float(s) for s in spec.scales], **values)  # fmt: skip
    what = "its AP per scale" + (f" on {evaluation.label}" if evaluation.name else "")
    name = f"{run.name}-{part}" if part else run.name
    return Step(f"{name}-eval{evaluation.suffix()}", argv, [folder / "eval/metrics.csv"], what,
                run_eval)  # fmt: skip


def soup_steps(run: RunSpec, spec: ExperimentSpec, out: Path, folder: Path) -> list[Step]:
    """``orpose soup`` of a run's seeds (``runs/R/soup/last.pt``), then its evaluations."""
    students = [f / "train/last.pt" for f in run.seed_folders(folder).values()]
    soup = folder / "soup" / "last.pt"
    argv = ["soup", *students, "--out", soup]
    steps = [Step(f"{run.name}-soup", argv, [soup],
                  f"the weight average of {run.label}'s {len(students)} seeds",
                  call(stages.soup, students, soup))]  # fmt: skip
    for e in spec.evaluations:
        steps.append(model_eval_step(run, spec, e, e.data_file(out), e.folder(soup.parent),
                                     soup, "soup"))  # fmt: skip
    return steps


def evaluation_set_steps(
    evaluation: EvaluationSet, out: Path, limit_all: int = 10**9
) -> list[Step]:
    """The labelled images of one set as a COCO file with absolute paths (MVOR's own file
    converted first)."""
    gt, steps = evaluation.gt, []
    images = ["--images", evaluation.images] if evaluation.images else []
    suffix = evaluation.suffix()
    if evaluation.mvor:
        converted = out / "data" / f"{evaluation.name or 'gt'}_from_mvor.json"
        argv = ["data", "mvor-to-coco", "--mvor", gt, *images, "--out", converted]
        values: dict[str, Any] = {"mvor": gt, "images": evaluation.images}
        if evaluation.days:
            argv += ["--days", *evaluation.days]
            values["days"] = list(evaluation.days)
        if evaluation.cameras:
            argv += ["--cameras", *evaluation.cameras]
            values["cameras"] = list(evaluation.cameras)
        steps.append(Step(f"mvor-to-coco{suffix}", argv, [converted],
                          "MVOR's annotations as COCO (box-only people kept)",
                          call(stages.mvor_to_coco, converted, **values)))  # fmt: skip
        gt = converted
    target = evaluation.data_file(out)
    num = evaluation.limit or 10**9
    subset = ["data", "subset", gt, "--num", num, "--out", target, *images]
    steps.append(Step(f"eval-set{suffix}", subset, [target],
                      "the labelled evaluation images (absolute paths)",
                      call(stages.subset, gt, num, target, images=evaluation.images)))  # fmt: skip
    return steps


def experiment_steps(spec: ExperimentSpec, out: Path, only: list[str] | None = None) -> list[Step]:
    """The commands of every run (or of the ``only`` ones), in the order of the spec."""
    steps = [step for e in spec.evaluations for step in evaluation_set_steps(e, out)]
    for run in spec.runs.values():
        if only and run.name not in only:
            continue
        folder = out / "runs" / run.name
        if run.kind == "teacher":
            for e in spec.evaluations:
                steps += teacher_steps(run, spec, e, e.data_file(out), e.folder(folder))
            continue
        # a training run trains once per seed, each in a folder of its own, scored after each
        for seed, seed_folder in (run.seed_folders(folder) or {None: folder}).items():
            if run.kind == "train":
                training = train_step(run, spec, seed_folder, seed)
                steps.append(training)
                checkpoint = training.outputs[0]
            else:
                checkpoint = Path(expand_shared(run.value))
            part = f"seed{seed}" if seed is not None else ""
            for e in spec.evaluations:
                steps.append(model_eval_step(run, spec, e, e.data_file(out),
                                             e.folder(seed_folder), checkpoint, part))  # fmt: skip
        if run.soup:
            steps += soup_steps(run, spec, out, folder)
    for step in steps:
        step.argv = [str(a) for a in step.argv]
    return steps


def _cells(row: dict, columns: list[str]) -> str:
    return " / ".join(metric_cell(row.get(c)) for c in columns)


def _scale_cells(rows: list[dict] | None, columns: list[str], scales: list[str],
                 absent: str) -> list[str]:  # fmt: skip
    """One table cell per scale from a run's rows (``absent`` where a scale has no row)."""
    by_scale = {r["scale"]: r for r in rows or []}
    return [_cells(by_scale[s], columns) if s in by_scale else absent for s in scales]


@dataclass
class RunResult:
    """What a table shows of one run on one evaluation set: its metrics rows (one per scale;
    the seeds' means for a run with seeds), their lowest-highest pairs and the row labels."""

    label: str
    rows: list[dict]
    spread: list[dict] | None = None  # (lowest, highest) per column, runs with seeds only
    spread_label: str = ""
    finished: int = 0  # seeds whose evaluation was read


def run_result(run: RunSpec, run_folder: Path, evaluation: EvaluationSet) -> RunResult:
    """A run's ``eval/metrics.csv`` on one evaluation set. For a run with seeds, each finished
    seed's is read and their means (``metrics.csv``) and spread (``metrics_spread.csv``) are
    written into the set's ``seeds/`` folder of the run (beside, never over, the ``eval/`` of an
    earlier run without seeds), for tools that read one file per run."""
    folder = evaluation.folder(run_folder)
    if not run.seeds:
        path = folder / "eval/metrics.csv"
        return RunResult(run.label, read_metrics(path) if path.exists() else [])
    finished = []
    for seed_folder in run.seed_folders(run_folder).values():
        path = evaluation.folder(seed_folder) / "eval/metrics.csv"
        if path.exists():
            finished.append(read_metrics(path))
    if not finished:
        return RunResult(run.label, [])
    means, spread = mean_and_spread(finished)
    save_seed_summary(means, spread, folder / "seeds")
    count = str(len(finished)) if len(finished) == len(run.seeds) else \
        f"{len(finished)} of {len(run.seeds)}"  # fmt: skip
    noun = "seed" if len(run.seeds) == 1 else "seeds"
    return RunResult(f"{run.label} (mean of {count} {noun})", means, spread,
                     f"{run.label}: lowest-highest of the seeds", len(finished))  # fmt: skip


def soup_result(run: RunSpec, run_folder: Path, evaluation: EvaluationSet) -> RunResult:
    """The scores of a run's weight-averaged student (``runs/R/soup``) on one set."""
    path = evaluation.folder(run_folder / "soup") / "eval/metrics.csv"
    label = f"{run.label}: the {len(run.seeds)} seeds' weight average (one student)"
    return RunResult(label, read_metrics(path) if path.exists() else [])


def evaluations_table(spec: ExperimentSpec, out: Path,
                      table: TableSpec) -> tuple[str, dict, dict]:  # fmt: skip
    """One Markdown table over every evaluation set: a row per run (and per published row of
    ``table.paper``), a column per set and scale whose cell holds the set's metrics ("box AP /
    kpt AP / MPJPE mm"). Also returns, per set, the runs' metrics rows and the seeds' spreads
    (for the charts)."""
    scales = [scale_label(s) for s in spec.scales]
    header = ["model"] + [f"{e.label} {s}" for e in spec.evaluations for s in scales]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    per_set: dict[str, dict[str, list[dict]]] = {e.name: {} for e in spec.evaluations}
    spreads: dict[str, dict[str, list[dict]]] = {e.name: {} for e in spec.evaluations}
    for name in table.rows:
        run = spec.runs[name]
        results = [run_result(run, out / "runs" / name, e) for e in spec.evaluations]
        # the row's name counts the seeds of the set where the fewest have finished
        label = min((r for r in results if r.rows), key=lambda r: r.finished,
                    default=RunResult(run.label, [])).label  # fmt: skip
        cells, spread_cells = [label], []
        for e, result in zip(spec.evaluations, results, strict=True):
            if result.rows:
                per_set[e.name][label] = result.rows
            if result.spread:
                spreads[e.name][label] = result.spread
            cells += _scale_cells(result.rows, e.columns or [], scales, "not run")
            spread_cells += _scale_cells(result.spread, e.columns or [], scales, "-")
        lines.append("| " + " | ".join(cells) + " |")
        spread_label = next((r.spread_label for r in results if r.spread), "")
        if spread_label:
            lines.append("| " + " | ".join([spread_label, *spread_cells]) + " |")
        if run.soup:
            soups = [soup_result(run, out / "runs" / name, e) for e in spec.evaluations]
            soup_cells = [soups[0].label]
            for e, result in zip(spec.evaluations, soups, strict=True):
                if result.rows:
                    per_set[e.name][result.label] = result.rows
                soup_cells += _scale_cells(result.rows, e.columns or [], scales, "not run")
            lines.append("| " + " | ".join(soup_cells) + " |")
    for published in table.paper:
        figures = spec.paper[published]
        cells = [f"paper: {published}"]
        for i in range(len(spec.evaluations)):  # the published figures are the first set's
            cells += [figures.get(s, "-") if i == 0 else "-" for s in scales]
        lines.append("| " + " | ".join(cells) + " |")
    legend = "; ".join(f"{e.label}: " + " / ".join(METRIC_NAMES[c] for c in e.columns or [])
                       for e in spec.evaluations)  # fmt: skip
    return "\n".join(lines) + f"\n\nCells: {legend}.", per_set, spreads


def write_experiment_report(spec: ExperimentSpec, out: Path, records) -> Path:
    """``<out>/results.md``: one Markdown table and AP-versus-scale charts per table of the
    spec, read from the runs' ``metrics.csv`` (runs not finished yet show as missing)."""
    from orpose.viz.charts import plot_models_versus_scale

    scales = [scale_label(s) for s in spec.scales]
    sets = ", ".join(
        f"{e.label}: `{e.gt}`" + (f" (first {e.limit} images)" if e.limit else "")
        for e in spec.evaluations
    )
    parts = [
        f"# Experiment {spec.path.stem}",
        f"Spec: `{spec.path}`. Evaluation sets: {sets}. Machine: {machine_description()}.",
        "AP in %, MPJPE in mm (only where the evaluation set has 3D ground truth).",
    ]
    if spec.paper_note and any(t.paper for t in spec.tables):
        parts.append(f"Rows marked paper: {spec.paper_note}")
    named = bool(spec.evaluations[0].name)
    for i, table in enumerate(spec.tables, start=1):
        parts.append(f"## {table.title}")
        if named:
            text, per_set, spreads = evaluations_table(spec, out, table)
            parts.append(text)
            for e in spec.evaluations:
                if not per_set[e.name]:
                    continue
                panels = [(c, f"{e.label}: {METRIC_NAMES[c]}") for c in e.columns or []]
                chart = plot_models_versus_scale(per_set[e.name],
                                                 out / f"table{i}_{e.name}_vs_scale.png",
                                                 table.title, panels, spreads[e.name])  # fmt: skip
                parts.append(image_link(chart, out, f"{table.title}: {e.label} per scale"))
            continue
        models, rows, bands, missing = {}, {}, {}, []
        for name in table.rows:
            result = run_result(spec.runs[name], out / "runs" / name, spec.evaluations[0])
            if not result.rows:
                missing.append(name)
                continue
            models[result.label] = rows[result.label] = result.rows
            if result.spread:
                rows[result.spread_label] = bands[result.label] = result.spread
            if spec.runs[name].soup:
                soup = soup_result(spec.runs[name], out / "runs" / name, spec.evaluations[0])
                if soup.rows:
                    models[soup.label] = rows[soup.label] = soup.rows
        if models:
            parts.append(metrics_table(rows, scales))
            chart = plot_models_versus_scale(models, out / f"table{i}_ap_vs_scale.png",
                                             table.title, spreads=bands)  # fmt: skip
            parts.append(image_link(chart, out, f"{table.title}: AP versus downscale factor"))
        if missing:
            parts.append(f"Not run yet: {', '.join(missing)}.")
    if records:
        parts += ["## Commands of this invocation", steps_table(records)]
    path = out / "results.md"
    path.write_text("\n\n".join(parts) + "\n")
    return path


def check_training_files(spec: ExperimentSpec, only: list[str] | None = None) -> None:
    """Before any work: the pseudo-label files exist (a missing one would stop the first
    training run after the teacher's evaluations) and so does the lifter."""
    from orpose.data.overlap import OVERRIDE_FLAG, check_eval_overlap  # loads OpenCV

    if spec.lifter and not Path(spec.lifter).is_file():
        raise ExperimentError(
            f"{spec.path}: lifter: {spec.lifter} not found (`orpose lift train`, or run "
            "`orpose demo` first, which writes orpose_demo/lifter/lifter.pt)"
        )
    if not any(r.kind == "train" and (not only or r.name in only) for r in spec.runs.values()):
        return
    for name in spec.train:
        if not Path(name).is_file():
            raise ExperimentError(
                f"{spec.path}: train: {name} not found (pseudo labels: `orpose label`, or run "
                "`orpose demo` first, which writes orpose_demo/labels/)"
            )
    # no training image may be an image of an evaluation set (or of the shared held-out sets)
    held_out = [e.images if e.mvor and e.images else e.gt for e in spec.evaluations]
    overlaps = check_eval_overlap(spec.train, held_out, allow=spec.allow_eval_overlap)
    if overlaps:
        print(f"note: training on {len(overlaps)} evaluation image(s) ({OVERRIDE_FLAG})")


def run_experiment(spec_path: Path, out: Path, only: list[str] | None = None,
                   dry_run: bool = False, allow_eval_overlap: bool = False) -> Path:  # fmt: skip
    """Run (or resume) the spec's runs and write ``<out>/results.md``."""
    spec = load_experiment(spec_path)
    spec.allow_eval_overlap = allow_eval_overlap
    if only:
        unknown = [name for name in only if name not in spec.runs]
        if unknown:
            raise ExperimentError(f"{spec_path}: --only: no run named {', '.join(unknown)}")
    steps = experiment_steps(spec, out, only)
    if not dry_run:
        check_training_files(spec, only)
    out.mkdir(parents=True, exist_ok=True)
    commands = write_commands(steps, out / "commands.sh", f"orpose experiment {spec_path}")
    if dry_run:
        print(commands.read_text())
        return commands
    records = StepRunner(out).run_all(steps)
    return write_experiment_report(spec, out, records)
