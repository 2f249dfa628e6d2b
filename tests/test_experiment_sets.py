"""Experiment specs with several evaluation sets (the OR frames and COCO images): the commands
each run becomes, the combined table with the paper's rows, and refusals before any work."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import pytest

from orpose.errors import ConfigError
from orpose.workflow.experiment import (
    experiment_steps,
    load_experiment,
    write_experiment_report,
)

SPEC = """
evaluations:
  mvor:
    label: MVOR
    gt: mvor.json
    mvor: true
    days: [4]
    cameras: [3]
    images: mvor_images
    camera: "mvor.json:3"
  val:
    gt: val.json
    limit: 7
    columns: [keypoint_ap]
scales: [1, 12]
train: [labels.json]
schedule: {iterations: 5}
runs:
  teacher: {teacher: single}
  all: {train: cpu_student.yaml, label: ORPose_all}
paper_note: made-up figures
paper:
  published: {1x: "50.6 / 55.8 / 134"}
tables:
  - {title: T1, rows: [teacher, all], paper: [published]}
"""


SEEDED = SPEC.replace("schedule: {iterations: 5}", "schedule: {iterations: 5}\nseeds: [3, 7]")
SOUPED = SEEDED + "soup: true\n"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "spec.yaml"
    path.write_text(text)
    return path


def test_each_run_is_scored_on_every_set_with_its_own_options(tmp_path):
    spec = load_experiment(write(tmp_path, SPEC))
    steps = {s.name: s for s in experiment_steps(spec, tmp_path / "o")}
    assert list(steps) == [
        "mvor-to-coco-mvor", "eval-set-mvor", "eval-set-val",
        "teacher-mvor-1x", "teacher-mvor-12x", "teacher-mvor-eval",
        "teacher-val-1x", "teacher-val-12x", "teacher-val-eval",
        "all-train", "all-eval-mvor", "all-eval-val",
    ]  # fmt: skip
    convert = steps["mvor-to-coco-mvor"].command
    assert "--days 4" in convert and "--cameras 3" in convert and "--images mvor_images" in convert
    assert "o/data/mvor_from_mvor.json" in steps["eval-set-mvor"].command
    assert "--num 7" in steps["eval-set-val"].command
    # the camera's intrinsics go to the student's evaluation on its set only
    assert "--camera mvor.json:3" in steps["all-eval-mvor"].command
    assert "--camera" not in steps["all-eval-val"].command
    assert "o/runs/all/mvor/eval" in steps["all-eval-mvor"].command
    assert "o/runs/teacher/val/pred_12x.json" in steps["teacher-val-eval"].command


def write_metrics(path: Path, rows: list[dict]) -> None:
    path.mkdir(parents=True, exist_ok=True)
    with open(path / "metrics.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def test_the_table_holds_each_sets_columns_and_the_papers_row(tmp_path):
    spec = load_experiment(write(tmp_path, SPEC))
    out = tmp_path / "o"
    write_metrics(out / "runs/teacher/mvor/eval", [
        {"scale": "1x", "box_ap": 45.14, "keypoint_ap": 44.96, "mpjpe_mm": 164.2},
        {"scale": "12x", "box_ap": 24.0, "keypoint_ap": 15.8, "mpjpe_mm": "nan"},
    ])  # fmt: skip
    write_metrics(out / "runs/teacher/val/eval", [
        {"scale": "1x", "box_ap": 50.0, "keypoint_ap": 61.84, "mpjpe_mm": ""},
        {"scale": "12x", "box_ap": 9.0, "keypoint_ap": 15.9, "mpjpe_mm": ""},
    ])  # fmt: skip
    text = write_experiment_report(spec, out, []).read_text()
    assert "| model | MVOR 1x | MVOR 12x | val 1x | val 12x |" in text
    assert "| teacher | 45.1 / 45.0 / 164.2 | 24.0 / 15.8 / - | 61.8 | 15.9 |" in text
    assert "| ORPose_all | not run | not run | not run | not run |" in text
    assert "| paper: published | 50.6 / 55.8 / 134 | - | - | - |" in text
    assert "MVOR: box AP / kpt AP / MPJPE mm; val: kpt AP" in text
    assert "made-up figures" in text
    assert (out / "table1_mvor_vs_scale.png").stat().st_size > 1000


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda s: "gt: g.json\n" + s, "evaluations: give either gt"),
        (lambda s: s.replace("paper: [published]", "paper: [other]"), "'other' is not a row"),
        (lambda s: s.replace("    mvor: true\n", ""), "evaluations.mvor.days: days and cameras"),
        (lambda s: s.replace("[keypoint_ap]", "[kpt]"), "evaluations.val.columns: expected one"),
        (lambda s: s.replace("limit: 7", "limit: 0"), "evaluations.val.limit: must be >= 1"),
        (lambda s: s.replace("  val:\n    gt: val.json", "  val:\n    gts: val.json"),
         "unknown key(s) evaluations.val.gts"),
        # seeds (the spec's edits apply to its seeded form, whose seeds are [3, 7])
        (lambda s: s.replace("{teacher: single}", "{teacher: single, seeds: [1]}"),
         "runs.teacher.seeds: only a training run"),
        (lambda s: s.replace("seeds: [3, 7]", "seeds: [3, 3]"), "seeds: a seed is given twice"),
        (lambda s: s.replace("seeds: [3, 7]", "seeds: [-1]"), "seeds: must be >= 0"),
        # the seeds' weight average needs two seeds of a training run
        (lambda s: s.replace("seeds: [3, 7]", "seeds: [3]") + "soup: true\n",
         "soup: a weight average needs at least two seeds"),
        (lambda s: s.replace("label: ORPose_all}", "label: ORPose_all, seeds: [], soup: true}"),
         "runs.all.soup: a weight average needs a training run with at least two seeds"),
        (lambda s: s.replace("{teacher: single}", "{teacher: single, soup: true}"),
         "runs.teacher.soup: a weight average needs a training run"),
    ],
)  # fmt: skip
def test_bad_evaluation_sets_and_seeds_name_the_file_and_the_key(tmp_path, edit, message):
    path = write(tmp_path, edit(SEEDED))
    with pytest.raises(ConfigError, match=re.escape(f"{path}: ")) as err:
        load_experiment(path)
    assert message in str(err.value)


def test_missing_pseudo_labels_stop_before_any_work(tmp_path, capsys, monkeypatch):
    from orpose.cli import main

    monkeypatch.chdir(tmp_path)
    path = write(tmp_path, SPEC)
    assert main(["experiment", str(path), "--out", "o"]) == 2
    err = capsys.readouterr().err
    assert "train: labels.json not found" in err and "orpose demo" in err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "o").exists()


def _coco(path: Path, image: str) -> None:
    import json

    path.write_text(json.dumps({
        "images": [{"id": 1, "file_name": image, "width": 8, "height": 6}],
        "annotations": [], "categories": [{"id": 1, "name": "person"}],
    }))  # fmt: skip


def test_pseudo_labels_holding_an_evaluation_image_are_refused(tmp_path, capsys, monkeypatch):
    import numpy as np
    from PIL import Image

    from orpose.cli import main

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ORPOSE_SHARED", str(tmp_path / "no_shared"))
    pixels = np.random.default_rng(0).integers(0, 255, (6, 8, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(tmp_path / "eval.png")
    (tmp_path / "copy.png").write_bytes((tmp_path / "eval.png").read_bytes())
    _coco(tmp_path / "val.json", str(tmp_path / "eval.png"))
    _coco(tmp_path / "labels.json", str(tmp_path / "copy.png"))
    spec = SPEC.replace("  mvor:\n    label: MVOR\n    gt: mvor.json\n    mvor: true\n"
                        "    days: [4]\n    cameras: [3]\n    images: mvor_images\n"
                        '    camera: "mvor.json:3"\n', "")  # fmt: skip
    path = write(tmp_path, spec)
    assert main(["experiment", str(path), "--out", "o"]) == 2
    err = capsys.readouterr().err
    assert "copy.png" in err and "--allow-eval-overlap" in err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "o").exists()
    # with the override, the training runs are told so too
    from orpose.workflow.experiment import load_experiment as load

    loaded = load(path)
    loaded.allow_eval_overlap = True
    steps = {s.name: s for s in experiment_steps(loaded, tmp_path / "o")}
    assert steps["all-train"].argv[-1] == "--allow-eval-overlap"


def test_a_training_run_with_seeds_trains_and_scores_once_per_seed(tmp_path):
    spec = load_experiment(write(tmp_path, SEEDED))
    steps = {s.name: s for s in experiment_steps(spec, tmp_path / "o")}
    assert [n for n in steps if n.startswith("all")] == [
        "all-seed3-train", "all-seed3-eval-mvor", "all-seed3-eval-val",
        "all-seed7-train", "all-seed7-eval-mvor", "all-seed7-eval-val",
    ]  # fmt: skip
    train = steps["all-seed7-train"].command
    # the seed comes last, after the spec's and the run's overrides, so that it is the one used
    assert train.endswith("--set solver.seed=7") and "o/runs/all/seed7/train" in train
    assert "o/runs/all/seed7/train/last.pt" in steps["all-seed7-eval-val"].command
    assert "o/runs/all/seed7/val/eval" in steps["all-seed7-eval-val"].command
    assert "teacher-mvor-eval" in steps  # the teacher is deterministic: no seeds
    # a run's own seeds replace the spec's; an empty list is one run with the config's seed
    one = load_experiment(write(tmp_path, SEEDED.replace(
        "label: ORPose_all}", "label: ORPose_all, seeds: []}")))  # fmt: skip
    assert "all-train" in {s.name for s in experiment_steps(one, tmp_path / "o")}


def test_the_table_of_a_run_with_seeds_shows_their_mean_and_spread(tmp_path):
    spec = load_experiment(write(tmp_path, SEEDED))
    out = tmp_path / "o"
    write_metrics(out / "runs/all/seed3/mvor/eval", [
        {"scale": "1x", "box_ap": 40.0, "keypoint_ap": 45.0, "mpjpe_mm": 150.0},
        {"scale": "12x", "box_ap": 20.0, "keypoint_ap": 24.0, "mpjpe_mm": 190.0},
    ])  # fmt: skip
    write_metrics(out / "runs/all/seed7/mvor/eval", [
        {"scale": "1x", "box_ap": 42.0, "keypoint_ap": 44.0, "mpjpe_mm": 160.0},
        {"scale": "12x", "box_ap": 26.0, "keypoint_ap": 27.0, "mpjpe_mm": 200.0},
    ])  # fmt: skip
    write_metrics(out / "runs/all/seed3/val/eval", [
        {"scale": "1x", "box_ap": 50.0, "keypoint_ap": 61.0, "mpjpe_mm": ""},
    ])  # fmt: skip
    text = write_experiment_report(spec, out, []).read_text()
    # the row's name counts the seeds of its least finished set (one seed of val so far)
    row = "| ORPose_all (mean of 1 of 2 seeds) | 41.0 / 44.5 / 155.0 | 23.0 / 25.5 / 195.0 | "
    assert row in text
    assert ("| ORPose_all: lowest-highest of the seeds | 40.0-42.0 / 44.0-45.0 / 150.0-160.0 | "
            "20.0-26.0 / 24.0-27.0 / 190.0-200.0 |") in text  # fmt: skip
    # the means are written as one run's file, with the spread beside them
    with open(out / "runs/all/mvor/seeds/metrics.csv") as f:
        means = {row["scale"]: row for row in csv.DictReader(f)}
    assert float(means["12x"]["keypoint_ap"]) == 25.5 and means["12x"]["seeds"] == "2"
    with open(out / "runs/all/mvor/seeds/metrics_spread.csv") as f:
        spread = {row["scale"]: row for row in csv.DictReader(f)}
    assert float(spread["1x"]["mpjpe_mm_lowest"]) == 150.0
    assert float(spread["1x"]["mpjpe_mm_highest"]) == 160.0
    with open(out / "runs/all/val/seeds/metrics.csv") as f:
        assert next(csv.DictReader(f))["seeds"] == "1"
    assert (out / "table1_mvor_vs_scale.png").stat().st_size > 1000  # the spread as a band


def test_the_seeds_weight_average_is_made_scored_and_tabled(tmp_path):
    spec = load_experiment(write(tmp_path, SOUPED))
    steps = {s.name: s for s in experiment_steps(spec, tmp_path / "o")}
    assert [n for n in steps if n.startswith("all")][-3:] == [
        "all-soup", "all-soup-eval-mvor", "all-soup-eval-val"]  # fmt: skip
    o = tmp_path / "o"
    assert steps["all-soup"].argv == ["soup", str(o / "runs/all/seed3/train/last.pt"),
                                      str(o / "runs/all/seed7/train/last.pt"),
                                      "--out", str(o / "runs/all/soup/last.pt")]  # fmt: skip
    assert f"--model {o}/runs/all/soup/last.pt" in steps["all-soup-eval-val"].command
    assert "o/runs/all/soup/val/eval" in steps["all-soup-eval-val"].command
    # without soup: no weight average; a run may turn the spec's off
    assert "all-soup" not in {s.name for s in experiment_steps(
        load_experiment(write(tmp_path, SEEDED)), tmp_path / "o")}  # fmt: skip
    off = SOUPED.replace("label: ORPose_all}", "label: ORPose_all, soup: false}")
    assert "all-soup" not in {s.name for s in experiment_steps(
        load_experiment(write(tmp_path, off)), tmp_path / "o")}  # fmt: skip

    out = tmp_path / "o"
    for seed, ap in ((3, 24.0), (7, 27.0)):
        write_metrics(
            out / f"runs/all/seed{seed}/mvor/eval",
            [{"scale": "12x", "box_ap": 20.0, "keypoint_ap": ap, "mpjpe_mm": 190.0}],
        )
    write_metrics(
        out / "runs/all/soup/mvor/eval",
        [{"scale": "12x", "box_ap": 21.0, "keypoint_ap": 28.5, "mpjpe_mm": 185.0}],
    )
    text = write_experiment_report(spec, out, []).read_text()
    assert "| ORPose_all (mean of 2 seeds) | not run | 20.0 / 25.5 / 190.0 |" in text
    assert ("| ORPose_all: the 2 seeds' weight average (one student) | not run | "
            "21.0 / 28.5 / 185.0 | not run | not run |") in text  # fmt: skip
