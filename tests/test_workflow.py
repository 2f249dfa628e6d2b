"""The demo and experiment machinery: recorded resumable steps, specs, tables, and the whole
demo chain on the shared data (quick sizes)."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import pytest
import torch

from conftest import tiny_dataset_json
from orpose.errors import ConfigError
from orpose.workflow import stages
from orpose.workflow.experiment import (
    experiment_steps,
    load_experiment,
    schedule_overrides,
)
from orpose.workflow.report_page import metrics_table
from orpose.workflow.steps import Step, StepError, StepRunner, call, write_commands
from test_workflow_calls import parses_no_command_line


def subset_step(src: Path, out: Path, num: int = 1, name: str = "subset") -> Step:
    argv = ["data", "subset", str(src), "--num", str(num), "--out", str(out)]
    return Step(name, argv, [out], call=call(stages.subset, src, num, out))


def journal_names(runner: StepRunner) -> list[str]:
    return [json.loads(line)["name"] for line in runner.journal.read_text().splitlines()]


def test_steps_run_once_then_skip_and_rerun_when_the_command_changes(tmp_path):
    data = tiny_dataset_json(tmp_path)
    out = tmp_path / "sub.json"
    runner = StepRunner(tmp_path / "work")
    first = runner.run(subset_step(data, out))
    assert not first.skipped and out.exists()
    assert len(json.loads(out.read_text())["images"]) == 1

    again = StepRunner(tmp_path / "work").run(subset_step(data, out))
    assert again.skipped  # same command, output present: not run again

    changed = StepRunner(tmp_path / "work")
    record = changed.run(subset_step(data, out, num=2))
    assert not record.skipped
    assert len(json.loads(out.read_text())["images"]) == 2
    assert journal_names(changed) == ["subset", "subset"]

    out.unlink()  # an output deleted by hand makes the step run again
    assert not StepRunner(tmp_path / "work").run(subset_step(data, out, num=2)).skipped


def test_a_failing_step_names_the_command_and_is_not_journaled(tmp_path):
    runner = StepRunner(tmp_path)
    bad = subset_step(tmp_path / "missing.json", tmp_path / "out.json")
    with pytest.raises(StepError, match=r"subset.*orpose data subset .*missing\.json"):
        runner.run(bad)
    assert not runner.journal.exists()


def test_a_step_that_does_not_write_its_output_fails(tmp_path):
    data = tiny_dataset_json(tmp_path)
    step = subset_step(data, tmp_path / "sub.json")
    step.outputs.append(tmp_path / "never_written.txt")
    with pytest.raises(StepError, match="never_written"):
        StepRunner(tmp_path / "w").run(step)


def test_commands_script_lists_each_step(tmp_path):
    steps = [
        Step("a", ["data", "subset", "x y.json", "--num", "1"], about="why a"),
        Step("b", ["eval"]),
    ]
    text = write_commands(steps, tmp_path / "c.sh", "header line").read_text()
    assert text.startswith("#!/bin/sh\nset -e\n# header line")
    assert "# a: why a\norpose data subset 'x y.json' --num 1" in text  # quoted for the shell
    assert text.rstrip().endswith("orpose eval")


def test_metrics_table_is_one_row_per_model_and_omits_mpjpe_without_3d():
    def row(scale, box, kpt, apl):
        return {"scale": scale, "box_ap": box, "keypoint_ap": kpt, "keypoint_apl": apl,
                "mpjpe_mm": "nan"}  # fmt: skip

    rows = {
        "teacher": [row("1x", "51.27", "67.5", "71.04"), row("12x", "16.04", "16.6", "30.0")],
        "student": [row("1x", "15.2", "0.3", "1.0")],
    }
    lines = metrics_table(rows, ["1x", "12x"]).splitlines()
    assert lines[0] == (
        "| model | Box-AP 1x | Keypoint2D-AP 1x | Keypoint2D-AP_L 1x | Box-AP 12x "
        "| Keypoint2D-AP 12x | Keypoint2D-AP_L 12x |"
    )
    assert lines[2] == "| teacher | 51.3 | 67.5 | 71.0 | 16.0 | 16.6 | 30.0 |"
    assert lines[3] == "| student | 15.2 | 0.3 | 1.0 | - | - | - |"  # a scale not evaluated: "-"
    with_3d = {"s": [{"scale": "1x", "box_ap": "1", "keypoint_ap": "2", "keypoint_apl": "3",
                      "mpjpe_mm": "134.13"}]}  # fmt: skip
    assert metrics_table(with_3d, ["1x"]).splitlines()[2] == "| s | 1.0 | 2.0 | 3.0 | 134.1 |"


def write_spec(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "spec.yaml"
    path.write_text(text)
    return path


SPEC = """
gt: {gt}
scales: [1, 12]
train: [labels.json]
schedule: {{iterations: 40}}
runs:
  teacher: {{teacher: single}}
  all: {{train: orpose_all.yaml, label: ORPose_all}}
  untrained: {{train: orpose_fixed_1x.yaml, set: [solver.iterations=0]}}
tables:
  - {{title: T1, rows: [teacher, untrained]}}
  - {{title: T2, rows: [all]}}
"""


def test_experiment_spec_becomes_label_train_eval_commands(tmp_path):
    spec = load_experiment(write_spec(tmp_path, SPEC.format(gt=tmp_path / "gt.json")))
    steps = {s.name: s for s in experiment_steps(spec, tmp_path / "out")}
    assert list(steps) == ["eval-set", "teacher-1x", "teacher-12x", "teacher-eval", "all-train",
                           "all-eval", "untrained-train", "untrained-eval"]  # fmt: skip
    assert "--downscale 12 --preset single" in steps["teacher-12x"].command
    train = steps["all-train"].command
    # orpose_all: 20k iterations, steps 14k/16k/18k -> shortened to 40 with the same shape
    assert "solver.iterations=40" in train and "'solver.steps=[28,32,36]'" in train
    assert "'data.train=[labels.json]'" in train and "--resume" in train
    assert "solver.iterations=0" in steps["untrained-train"].command
    assert "--scales 1 12" in steps["all-eval"].command


def test_schedule_override_keeps_the_paper_schedule_shape(tmp_path):
    from orpose.paths import configs_dir

    spec = load_experiment(write_spec(tmp_path, SPEC.format(gt="gt.json")))
    spec.iterations, spec.iterations_factor = None, 0.05
    sets = schedule_overrides(configs_dir() / "orpose_fixed_8x.yaml", spec, [])
    # fixed_8x: 10k iterations, steps 7k/8k/9k, warm-up 100 -> 500, 350/400/450, 50
    assert sets[:3] == ["solver.iterations=500", "solver.steps=[350,400,450]",
                        "solver.warmup_iterations=50"]  # fmt: skip


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("runs: {a: {teacher: single}}", "gt: missing"),
        ("gt: g.json\nrunz: {}", "unknown key(s) runz"),
        ("gt: g.json\nlimit: abc\nruns: {a: {teacher: single}}", "limit: expected an integer"),
        ("gt: g.json\nlimit: 0\nruns: {a: {teacher: single}}", "limit: must be >= 1"),
        ("gt: g.json\nscales: [1, 0.5]\nruns: {a: {teacher: single}}", "scales: must be >= 1"),
        ("gt: g.json\nscales: []\nruns: {a: {teacher: single}}", "scales: expected at least"),
        ("gt: g.json\nset: a.b=1\nruns: {a: {teacher: single}}", "set: expected a list"),
        ("gt: g.json\nschedule: {iterations: -1}\nruns: {a: {teacher: single}}",
         "schedule.iterations: must be >= 0"),
        ("gt: g.json\nschedule: {iterations_factor: 0}\nruns: {a: {teacher: single}}",
         "schedule.iterations_factor: must be > 0"),
        ("gt: g.json\nschedule: {steps: 3}\nruns: {a: {teacher: single}}",
         "unknown key(s) schedule.steps"),
        ("gt: g.json\neval: {proposals: 2.5}\nruns: {a: {teacher: single}}",
         "eval.proposals: expected an integer"),
        ("gt: g.json", "runs: no run defined"),
        ("gt: g.json\nruns: [a]", "runs: expected a mapping"),
        ("gt: g.json\nruns: {a: 3}", "runs.a: expected a mapping of settings"),
        ("gt: g.json\nruns: {a: {teacher: single, model: m.pt}}", "runs.a: give exactly one"),
        ("gt: g.json\nruns: {a: {teacher: best}}", "runs.a.teacher: expected one of single, full"),
        ("gt: g.json\nruns: {a: {model: m.pt, lable: x}}", "unknown key(s) runs.a.lable"),
        ("gt: g.json\nruns: {a: {teacher: single}}\ntables: [{rows: [b]}]", "'b' is not a run"),
        ("gt: g.json\nruns: {a: {teacher: single}}\ntables: [{row: [a]}]",
         "unknown key(s) tables[0].row"),
        ("gt: g.json\nruns: {a: {train: orpose_all.yaml}}", "train: training runs need"),
    ],
)  # fmt: skip
def test_bad_experiment_specs_name_the_file_and_the_key(tmp_path, text, message):
    path = write_spec(tmp_path, text)
    with pytest.raises(ConfigError, match=re.escape(f"{path}: ")) as err:
        load_experiment(path)
    assert message in str(err.value)


@pytest.mark.parametrize(
    ("text", "key"),
    [('limit: "abc"', "limit: expected an integer, got 'abc'"), ("limits: 3", "limits")],
)
def test_a_spec_with_a_wrong_type_or_an_unknown_key_fails_on_the_cli(tmp_path, capsys, text, key):
    from orpose.cli import main

    path = write_spec(tmp_path, f"gt: g.json\n{text}\nruns: {{a: {{teacher: single}}}}\n")
    with pytest.raises(ConfigError, match=re.escape(f"{path}: ")) as err:
        load_experiment(path)
    assert key in str(err.value)
    assert main(["experiment", str(path), "--dry-run", "--out", str(tmp_path / "o")]) == 2
    assert f"{path}: " in capsys.readouterr().err and not (tmp_path / "o").exists()


def test_spec_inherits_its_base_and_takes_null_as_the_default(tmp_path, monkeypatch):
    (tmp_path / "shared/data").mkdir(parents=True)
    monkeypatch.setenv("ORPOSE_SHARED", str(tmp_path / "shared"))
    (tmp_path / "base.yaml").write_text(SPEC.format(gt='"{shared}/gt.json"') + "limit: 30\n")
    child = write_spec(tmp_path, "base: base.yaml\nlimit: null\nschedule: {iterations: 0}\n")
    spec = load_experiment(child)
    assert spec.evaluations[0].limit is None and spec.iterations == 0 and spec.scales == [1.0, 12.0]
    assert spec.gt == (tmp_path / "shared/gt.json").resolve()
    assert list(spec.runs) == ["teacher", "all", "untrained"]
    assert spec.runs["untrained"].label == "untrained" and spec.tables[1].title == "T2"
    # iterations: 0 shortens every training run to no training at all
    from orpose.paths import configs_dir

    sets = schedule_overrides(configs_dir() / "orpose_all.yaml", spec, [])
    assert sets[0] == "solver.iterations=0"


def test_experiment_runs_and_tables_on_real_images(tmp_path, shared, val500, monkeypatch):
    """Teacher, an untrained and a 2-iteration student on 2 real images: the results page's
    numbers are the runs' metrics.csv, and the teacher's equal pycocotools' own evaluation."""
    from orpose.cli import main

    monkeypatch.setenv("ORPOSE_SHARED", str(shared))
    monkeypatch.chdir(tmp_path)
    assert main(["data", "subset", str(val500), "--num", "2", "--with-keypoints",
                 "--out", "gt2.json"]) == 0  # fmt: skip
    spec = write_spec(
        tmp_path,
        """
gt: gt2.json
scales: [1, 12]
train: [gt2.json]
schedule: {iterations: 2}
set: [student.backbone=resnet18_fpn, "student.head_convs=[32]", "student.min_size=[160]",
      student.max_size=224, student.lifters=false, solver.batch_size=1, data.num_workers=0,
      init_weights=null, student.norm=bn]
eval: {max_detections: 5, proposals: 50}
runs:
  teacher: {teacher: single}
  untrained: {train: orpose_fixed_1x.yaml, set: [solver.iterations=0]}
  tiny: {train: orpose_all.yaml}
  seeded: {train: orpose_all.yaml, seeds: [0, 1], soup: true}
tables:
  - {title: Table 1, rows: [teacher, untrained]}
  - {title: Table 2, rows: [tiny, seeded]}
""",
    )
    # its two images are val500's: trained on deliberately, which must be said
    assert main(["experiment", str(spec), "--out", "exp"]) == 2
    parsed = parses_no_command_line(monkeypatch)  # the steps call the stages' functions
    assert main(["experiment", str(spec), "--out", "exp", "--allow-eval-overlap"]) == 0
    assert len(parsed) == 1  # the experiment's own command line only
    results = (tmp_path / "exp/results.md").read_text()
    assert "## Table 1" in results and "## Table 2" in results
    assert (tmp_path / "exp/table1_ap_vs_scale.png").stat().st_size > 1000
    with open(tmp_path / "exp/runs/teacher/eval/metrics.csv") as f:
        teacher = {r["scale"]: r for r in csv.DictReader(f)}
    kpt_1x = float(teacher["1x"]["keypoint_ap"])
    assert f"| teacher | {float(teacher['1x']['box_ap']):.1f} | {kpt_1x:.1f} |" in results
    assert kpt_1x == pytest.approx(100 * cocoeval_keypoint_ap(
        tmp_path / "gt2.json", tmp_path / "exp/runs/teacher/pred_1x.json"), abs=1e-6)  # fmt: skip
    assert (tmp_path / "exp/runs/untrained/train/last.pt").exists()  # iterations=0 -> checkpoint
    assert "| tiny |" in results
    # two seeds, tabled as their mean, and their weight average made and scored as one student
    assert "| seeded (mean of 2 seeds) |" in results
    assert "| seeded: the 2 seeds' weight average (one student) |" in results
    seeds = [torch.load(tmp_path / f"exp/runs/seeded/seed{s}/train/last.pt",
                        weights_only=True)["model"] for s in (0, 1)]  # fmt: skip
    soup = torch.load(tmp_path / "exp/runs/seeded/soup/last.pt", weights_only=True)["model"]
    assert any(not torch.equal(v, seeds[1][k]) for k, v in seeds[0].items())  # two networks
    for key, value in soup.items():
        if value.is_floating_point():
            torch.testing.assert_close(value, (seeds[0][key] + seeds[1][key]) / 2)
    assert (tmp_path / "exp/runs/seeded/soup/eval/metrics.csv").exists()
    # a second invocation finds every step done and only rewrites the page
    assert main(["experiment", str(spec), "--out", "exp", "--allow-eval-overlap"]) == 0
    assert "earlier run" in (tmp_path / "exp/results.md").read_text()


def cocoeval_keypoint_ap(gt_path: Path, labels_path: Path) -> float:
    """pycocotools on its own: the teacher's soft keypoints as results, matched by file name."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    gt = COCO(str(gt_path))
    by_name = {Path(img["file_name"]).name: img["id"] for img in gt.dataset["images"]}
    labels = json.loads(labels_path.read_text())
    ids = {img["id"]: by_name[Path(img["file_name"]).name] for img in labels["images"]}
    results = [{"image_id": ids[a["image_id"]], "category_id": 1, "bbox": a["bbox"],
                "score": a["score"], "keypoints": a["keypoints_soft"]}
               for a in labels["annotations"]]  # fmt: skip
    ev = COCOeval(gt, gt.loadRes(results), "keypoints")
    ev.evaluate()
    ev.accumulate()
    ev.summarize()
    return float(ev.stats[0])


def test_demo_quick_runs_every_stage_and_writes_the_report(tmp_path, shared, monkeypatch):
    from orpose.cli import main
    from orpose.workflow.report_page import metric_cell

    monkeypatch.setenv("ORPOSE_SHARED", str(shared))  # --shared sets it; restored afterwards

    out = tmp_path / "demo"
    parsed = parses_no_command_line(monkeypatch)  # the steps call the stages' functions
    assert main(["demo", "--quick", "--out", str(out), "--shared", str(shared)]) == 0
    assert len(parsed) == 1  # the demo's own command line only
    report = (out / "report.md").read_text()
    with open(out / "eval/student/metrics.csv") as f:
        student = {r["scale"]: r for r in csv.DictReader(f)}
    assert (
        f"| {float(student['12x']['box_ap']):.1f} | {float(student['12x']['keypoint_ap']):.1f} |"
        in report
    )
    with open(out / "eval/student_native/metrics.csv") as f:
        (native,) = csv.DictReader(f)  # the native path is scored at 12x only (not at 1x)
    cells = [metric_cell(native[k]) for k in ("box_ap", "keypoint_ap", "keypoint_apl")]
    assert native["scale"] == "12x"
    assert f"| student, native low-resolution path | - | - | - | {' | '.join(cells)} |" in report
    linked = re.findall(r'(?:src="|\]\()([^")]+\.(?:png|jpg))', report)
    assert len(linked) >= 10
    assert all((out / p).is_file() for p in linked), "every picture the page links exists"
    assert "orpose train" in report and "init_lifter:" in report  # commands and config
    labels = json.loads((out / "labels/train.json").read_text())
    assert labels["annotations"] and "keypoints3d_soft" in labels["annotations"][0]
    assert (out / "commands.sh").read_text().count("\norpose ") == len(
        (out / "steps.jsonl").read_text().splitlines()
    )
    # the operating-room test: 3 MVOR frames, teacher and student at 1x and 12x, table first
    with open(out / "eval/mvor_student/metrics.csv") as f:
        mvor = {r["scale"]: r for r in csv.DictReader(f)}
    assert set(mvor) == {"1x", "12x"} and float(mvor["1x"]["mpjpe_mm"]) > 0
    assert float(mvor["1x"]["mvor_pck"]) >= 0
    assert (out / "eval/mvor_teacher/metrics.csv").is_file()
    title = "## Operating room (MVOR, 3 of the 61 frames of day 4, camera 3)"
    assert report.index(title) < report.index("## Teacher and student at each downscale factor")
    assert f"| student (4 iterations) | {float(mvor['1x']['box_ap']):.1f} / " in report
    assert "report/mvor/" in report and "_3d_gt.png" in report


def demo_step_commands(**options) -> dict[str, str]:
    from orpose.workflow.demo import demo_steps
    from orpose.workflow.demo_options import DemoOptions

    steps = demo_steps(DemoOptions(out=Path("d"), **options), Path("/s/data"))
    return {step.name: step.command for step in steps}


def test_the_demo_scores_teacher_and_student_on_the_mvor_test_frames():
    full = demo_step_commands()
    assert full["mvor-gt"] == (
        "orpose data mvor-to-coco --mvor /s/data/mvor/camma_mvor_2018.json --days 4 --cameras 3 "
        "--images /s/data/mvor/images --out d/data/mvor_test.json"
    )
    assert "mvor-subset" not in full  # all 61 frames
    for s in (1, 8, 10, 12):
        assert full[f"teacher-mvor-{s}x"] == (
            "orpose label d/data/mvor_test.json --images /s/data/mvor/images --downscale "
            f"{s} --preset single --lifter d/lifter/lifter.pt --out d/teacher/mvor_{s}x.json "
            "--no-progress"
        )
    assert full["teacher-mvor-eval"] == (
        "orpose eval --gt d/data/mvor_test.json --images /s/data/mvor/images --pred "
        "1=d/teacher/mvor_1x.json --pred 8=d/teacher/mvor_8x.json --pred "
        "10=d/teacher/mvor_10x.json --pred 12=d/teacher/mvor_12x.json --out d/eval/mvor_teacher "
        "--no-plot"
    )
    student = full["student-mvor-eval"]
    assert student.startswith("orpose eval --gt d/data/mvor_test.json --model d/student/last.pt ")
    camera = "--camera /s/data/mvor/camma_mvor_2018.json:3"
    for part in ("--scales 1 8 10 12", "--images /s/data/mvor/images", camera,
                 "--out d/eval/mvor_student"):  # fmt: skip
        assert part in student
    names = list(full)  # the MVOR ground truth comes with the data, the scoring after training
    assert names.index("mvor-gt") < names.index("lifter")
    assert names.index("student-train") < names.index("student-mvor-eval")

    few = demo_step_commands(mvor_frames=3)
    assert few["mvor-subset"] == (
        "orpose data subset d/data/mvor_test.json --num 3 --images /s/data/mvor/images "
        "--with-keypoints --out d/data/mvor_test_3.json"
    )
    assert "--gt d/data/mvor_test_3.json" in few["student-mvor-eval"]
    assert not [name for name in demo_step_commands(mvor=False) if "mvor" in name]


def test_a_step_cannot_change_torchs_thread_count_for_the_next(tmp_path):
    import torch

    from orpose.workflow import steps

    def lowering():
        torch.set_num_threads(1)  # what `orpose lift train` does by default
        return 0

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        assert steps.run_call(Step("lift", ["lift", "train"], call=call(lowering))) == 0
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize("flags, mvor", [([], True), (["--no-mvor"], False)])
def test_no_mvor_switches_the_operating_room_test_off(tmp_path, monkeypatch, flags, mvor):
    from orpose.cli import main
    from orpose.workflow import cli

    seen = []
    monkeypatch.setattr(cli, "run_demo", lambda opts: seen.append(opts) or tmp_path / "r.md")
    assert main(["demo", "--quick", "--out", str(tmp_path), *flags]) == 0
    assert seen[0].mvor is mvor and seen[0].mvor_frames == 3
