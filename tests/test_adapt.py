"""``orpose adapt``: its commands and the training config it writes (no training run here)."""

from pathlib import Path

import pytest
import yaml

from orpose.cli import main
from orpose.errors import UserError
from orpose.safe_checkpoint import write_checkpoint
from orpose.training.config import load_train_config
from orpose.workflow.adapt import AdaptOptions, adapt_config, adapt_steps


def run_folder(tmp_path: Path) -> Path:
    """A finished run: last.pt with its student config, config.yaml beside it, its pool."""
    run = tmp_path / "run"
    run.mkdir()
    pool = tmp_path / "pool.json"
    pool.write_text("{}")
    student = {"family": "picodet_tinypose", "lifter_config": {"hidden": 256, "num_joints": 17}}
    write_checkpoint({"model": {}, "student_config": student}, run / "last.pt")
    config = {
        "student": {"family": "picodet_tinypose"},
        "data": {"train": [str(pool)], "lowres": "all"},
        "solver": {"iterations": 2000, "lr": 5e-5},
        "init_lifter": str(tmp_path / "lifter.pt"),
    }
    (run / "config.yaml").write_text(yaml.safe_dump(config))
    return run


def test_full_resolution_frames_go_through_the_teacher(tmp_path):
    run = run_folder(tmp_path)
    (tmp_path / "lifter.pt").write_bytes(b"")
    opts = AdaptOptions(run / "last.pt", [tmp_path / "frames"], tmp_path / "out", oversample=3,
                        iterations=120)  # fmt: skip
    steps, checkpoint = adapt_steps(opts)
    assert [s.name for s in steps] == ["teacher-label", "student-adapt"]
    assert steps[0].argv[:2] == ["label", str(tmp_path / "frames")]
    assert "--lifter" in steps[0].argv  # the run's own lifter labels the room in 3D
    assert checkpoint == tmp_path / "out/student/last.pt"
    labels = tmp_path / "out/labels/teacher_labels.json"
    config = adapt_config(opts, labels)
    # the run's config, from its weights (lifters included: no init_lifter to overwrite them)
    assert config["init_weights"] == str((run / "last.pt").resolve())
    assert config["init_lifter"] is None
    assert config["student"]["lifter_config"]["hidden"] == 256
    assert config["data"]["train"] == [str(tmp_path / "pool.json")] + [str(labels)] * 3
    assert config["data"]["lowres"] == "all"  # every scale, as the run was trained
    assert config["solver"]["iterations"] == 120 and config["solver"]["lr"] == 5e-5
    out = tmp_path / "adapt.yaml"
    out.write_text(yaml.safe_dump(config))
    loaded = load_train_config(out)
    assert loaded.init_weights == str((run / "last.pt").resolve())
    assert loaded.data.train[-1] == str(labels)


def test_low_resolution_recordings_are_self_labelled(tmp_path):
    run = run_folder(tmp_path)
    opts = AdaptOptions(run / "last.pt", [tmp_path / "small"], tmp_path / "out",
                        stored_downscale=12, pool=[tmp_path / "pool.json"])  # fmt: skip
    steps, _ = adapt_steps(opts)
    assert steps[0].name == "self-label"
    argv = steps[0].argv
    assert argv[:3] == ["self-label", str(run / "last.pt"), str(tmp_path / "small")]
    assert argv[argv.index("--stored-downscale") + 1] == "12"


def test_a_missing_pool_is_named(tmp_path):
    run = run_folder(tmp_path)
    (tmp_path / "pool.json").unlink()
    opts = AdaptOptions(run / "last.pt", [tmp_path], tmp_path / "out")
    with pytest.raises(UserError, match=r"pool\.json"):
        adapt_config(opts, tmp_path / "labels.json")


@pytest.mark.parametrize(
    "args", [["--stored-downscale", "nan"], ["--oversample", "0"], ["--min-score", "2"]]
)
def test_bad_options_exit_2(tmp_path, args, capsys):
    run = run_folder(tmp_path)
    code = main(["adapt", str(run / "last.pt"), str(tmp_path), "--out", str(tmp_path / "o"),
                 *args])  # fmt: skip
    assert code == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith(f"orpose adapt: error: argument {args[0]}")


def test_temporal_without_stored_downscale_exits_2_before_any_work(tmp_path, capsys):
    run = run_folder(tmp_path)
    code = main(["adapt", str(run / "last.pt"), str(tmp_path), "--out", str(tmp_path / "o"),
                 "--temporal"])  # fmt: skip
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--temporal" in err[0] and "--stored-downscale" in err[0]
    assert not (tmp_path / "o").exists()


def test_a_missing_checkpoint_exits_2(tmp_path, capsys):
    code = main(["adapt", str(tmp_path / "none.pt"), str(tmp_path), "--out", str(tmp_path / "o")])
    assert code == 2
    assert "none.pt" in capsys.readouterr().err


class _RunsCode:
    def __reduce__(self):
        return (print, ("this pickle ran code",))


def test_a_checkpoint_whose_pickle_would_run_code_is_refused_before_any_work(tmp_path, capsys):
    import torch

    evil = tmp_path / "evil.pt"
    torch.save({"model": {}, "student_config": _RunsCode()}, evil)
    code = main(["adapt", str(evil), str(tmp_path), "--out", str(tmp_path / "o")])
    captured = capsys.readouterr()
    assert code == 2
    assert "this pickle ran code" not in captured.out
    assert captured.err.strip().splitlines() == [captured.err.strip()]
    assert "evil.pt" in captured.err
    assert not (tmp_path / "o").exists()  # nothing labelled, nothing written
