"""The one configuration layer (orpose.config) through the training config: every bad value is a
ConfigError naming the file and the dotted key, before any work starts."""

from __future__ import annotations

import pytest

from orpose.cli import main
from orpose.errors import ConfigError
from orpose.training.config import load_train_config

BASE = "student: {backbone: resnet18_fpn}\ndata: {train: [labels.json]}\n"


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("solver.iterations=abc", "solver.iterations: expected an integer, got 'abc'"),
        ("solver.iterations=2.5", "solver.iterations: expected an integer, got 2.5"),
        ("solver.lr=fast", "solver.lr: expected a number, got 'fast'"),
        ("solver.lr=.nan", "solver.lr: expected a finite number"),
        ('solver.steps="6"', "solver.steps: expected a list, got '6'"),
        ("solver.steps=[6,x]", r"solver.steps\[1\]: expected an integer"),
        ("solver.batch_size=0", "solver.batch_size: must be >= 1, got 0"),
        ("solver.batch_size=-2", "solver.batch_size: must be >= 1, got -2"),
        ("solver.checkpoint_every=0", "solver.checkpoint_every: must be >= 1, got 0"),
        ("solver.optimizer=adam", "solver.optimizer: expected one of sgd, adamw"),
        ('data.flip="no"', "data.flip: expected true or false, got 'no'"),
        ("data.train=FILE", "data.train: expected a list, got 'FILE'"),
        ("data.lowres=banana", "data.lowres: expected 'all'"),
        ("student.norm=3", "student.norm: expected a string, got 3"),
        ("student.family=yolo", "student.family: unknown student family 'yolo'"),
        ("solver.foo=1", r"unknown key\(s\) solver.foo"),
    ],
)
def test_bad_values_name_the_file_and_key(tmp_path, override, message):
    path = tmp_path / "c.yaml"
    path.write_text(BASE)
    with pytest.raises(ConfigError, match=rf"c\.yaml: .*{message}"):
        load_train_config(path, [override])


def test_yaml_syntax_error_names_the_line(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("solver:\n  lr: [0.1\n")
    with pytest.raises(ConfigError, match=r"broken\.yaml: not valid YAML at line \d+"):
        load_train_config(path)


def test_a_base_that_includes_itself_is_named(tmp_path):
    (tmp_path / "a.yaml").write_text("base: b.yaml\n")
    (tmp_path / "b.yaml").write_text("base: a.yaml\n")
    with pytest.raises(ConfigError, match=r"base: the chain of base files loops"):
        load_train_config(tmp_path / "a.yaml")


def test_good_values_are_kept_and_dicts_merge(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(BASE + "solver: {steps: [3, 6], lr: 1, clip_grad_norm: null}\n")
    config = load_train_config(
        path, ["student.loss_weights={loss_kp2d_soft: 0.5}", "data.lowres=12"]
    )
    assert config.solver.steps == [3, 6] and config.solver.lr == 1.0
    assert config.student.loss_weights["loss_kp2d_soft"] == 0.5
    assert config.student.loss_weights["loss_kp2d_hard"] == 1.0  # the defaults stay
    assert config.data.lowres == 12


def test_train_cli_reports_a_bad_config_in_one_line(tmp_path, capsys):
    path = tmp_path / "c.yaml"
    path.write_text(BASE + "solver: {checkpoint_every: 0}\n")
    assert main(["train", str(path), "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "solver.checkpoint_every" in err[0] and "c.yaml" in err[0]
    assert not (tmp_path / "run").exists()  # nothing written before the config is known good
