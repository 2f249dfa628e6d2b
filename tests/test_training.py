"""Training: schedule, data order, augmentation of targets, and bit-exact resume on CPU."""

import numpy as np
import pytest
import torch
import yaml

from conftest import person_keypoints, tiny_dataset_json
from orpose.checkpoints import read_checkpoint
from orpose.training.config import ConfigError, SolverConfig, load_train_config
from orpose.training.dataset import build_target
from orpose.training.sampler import samples_for_iteration
from orpose.training.trainer import Trainer, lr_factor


def test_lr_schedule_warmup_and_steps_by_hand():
    s = SolverConfig(lr=0.01, steps=[10, 20], gamma=0.1, warmup_iterations=4, warmup_factor=0.2)
    assert lr_factor(0, s) == pytest.approx(0.2)
    assert lr_factor(2, s) == pytest.approx(0.2 * 0.5 + 0.5)
    assert lr_factor(4, s) == 1.0
    assert lr_factor(10, s) == pytest.approx(0.1)
    assert lr_factor(25, s) == pytest.approx(0.01)


def test_sampler_visits_each_image_once_per_epoch_and_splits_ranks():
    seen = [i for it in range(5) for i, _ in samples_for_iteration(10, 2, 7, it)]
    assert sorted(seen) == list(range(10))
    assert samples_for_iteration(10, 2, 7, 3) == samples_for_iteration(10, 2, 7, 3)
    both = samples_for_iteration(10, 4, 7, 2)
    assert samples_for_iteration(10, 4, 7, 2, rank=1, world_size=2) == both[1::2]


def test_flipped_target_mirrors_boxes_keypoints_and_3d():
    kps = person_keypoints(100, 20)
    soft = kps.copy()
    soft[:, 2] = 0.5
    pose3d = np.random.default_rng(0).normal(0, 300, (17, 3))
    ann = {
        "bbox": [80.0, 10.0, 40.0, 170.0],
        "keypoints": kps.ravel().tolist(),
        "keypoints_soft": soft.ravel().tolist(),
        "keypoints3d_soft": pose3d.ravel().tolist(),
    }
    tiny = {"bbox": [5.0, 5.0, 0.5, 10.0]}  # degenerate: dropped
    t = build_target([ann, tiny], width=320, flip=True)
    assert t["boxes"].tolist() == [[200.0, 10.0, 240.0, 180.0]]
    # the new left shoulder (5) is the old right shoulder (6), mirrored
    assert t["keypoints"][0, 5, 0].item() == pytest.approx(319 - kps[6, 0])  # pixel indices
    assert t["keypoints_soft"][0, 5, 2].item() == pytest.approx(0.5)
    np.testing.assert_allclose(
        t["keypoints3d_soft"][0, 5].numpy(), [-pose3d[6, 0], pose3d[6, 1], pose3d[6, 2]], rtol=1e-5
    )
    assert t["has3d"].tolist() == [True]


def _tiny_config(tmp_path, iterations: int):
    data = tiny_dataset_json(tmp_path)
    cfg = {
        "student": {
            "backbone": "resnet18_fpn",
            "head_convs": [16, 16],
            "min_size": [96],
            "max_size": 128,
            "box_batch_size_per_image": 16,
            "rpn_post_nms_top_n_train": 50,
            "lifter_config": {"hidden": 16},
        },
        "data": {"train": [str(data)], "lowres": "all"},
        "solver": {
            "iterations": iterations,
            "batch_size": 2,
            "accumulate": 2,
            "lr": 0.01,
            "steps": [3],
            "warmup_iterations": 2,
            "checkpoint_every": 2,
            "log_every": 1,
        },
    }
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_resume_continues_bit_for_bit(tmp_path):
    torch.set_num_threads(1)  # one thread: the same reduction order in both runs
    config = _tiny_config(tmp_path, 4)
    straight = Trainer(load_train_config(config), tmp_path / "a", "cpu").run()
    Trainer(load_train_config(config, ["solver.iterations=2"]), tmp_path / "b", "cpu").run()
    resumed = Trainer(load_train_config(config), tmp_path / "b", "cpu").run(resume=True)
    a = torch.load(straight, weights_only=False)
    b = torch.load(resumed, weights_only=False)
    assert a["iteration"] == b["iteration"] == 4
    for key, value in a["model"].items():
        assert torch.equal(value, b["model"][key]), key
    rows = (tmp_path / "b" / "metrics.csv").read_text().splitlines()
    assert [r.split(",")[0] for r in rows[1:]] == ["1", "2", "3", "4"]
    assert (tmp_path / "b" / "loss_curves.png").exists()


def test_final_weight_mix_is_the_wise_ft_average_and_resumes_from_the_raw_state(tmp_path):
    torch.set_num_threads(1)
    config = _tiny_config(tmp_path, 3)
    mix = ["solver.final_weight_mix=0.25"]
    start = Trainer(load_train_config(config, ["solver.iterations=0"]), tmp_path / "s", "cpu").run()
    last = Trainer(load_train_config(config, mix), tmp_path / "m", "cpu").run()
    s0, mixed = read_checkpoint(start), read_checkpoint(last)
    raw = read_checkpoint(tmp_path / "m" / "trained.pt")
    assert mixed["final_weight_mix"] == 0.25 and "final_weight_mix" not in raw
    assert raw["iteration"] == mixed["iteration"] == 3
    moved = 0
    for key, value in mixed["model"].items():
        if not value.is_floating_point():
            assert torch.equal(value, raw["model"][key]), key
            continue
        expected = 0.25 * raw["model"][key] + 0.75 * s0["model"][key]
        torch.testing.assert_close(value, expected, rtol=0, atol=1e-6, msg=key)
        moved += int(not torch.equal(raw["model"][key], s0["model"][key]))
    assert moved > 0  # training changed weights, so the mix is not trivially the start
    # resuming a finished run changes nothing (no second mix) ...
    again = Trainer(load_train_config(config, mix), tmp_path / "m", "cpu").run(resume=True)
    for key, value in read_checkpoint(again)["model"].items():
        assert torch.equal(value, mixed["model"][key]), key
    # ... and a longer run continues from the raw state, as a straight run does
    longer = [*mix, "solver.iterations=4"]
    Trainer(load_train_config(config, longer), tmp_path / "m", "cpu").run(resume=True)
    Trainer(load_train_config(config, longer), tmp_path / "straight", "cpu").run()
    a = read_checkpoint(tmp_path / "m" / "trained.pt")["model"]
    b = read_checkpoint(tmp_path / "straight" / "trained.pt")["model"]
    for key, value in a.items():
        assert torch.equal(value, b[key]), key


def test_bad_config_is_named(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("solver: {iterationz: 3}\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml: unknown key\(s\) solver\.iterationz"):
        load_train_config(path)


def test_resolved_config_beside_the_checkpoint_loads_back_equal(tmp_path):
    import argparse
    from pathlib import Path

    from orpose.training.cli import save_resolved_config

    config_path = Path(__file__).resolve().parents[1] / "configs/cpu_tiny.yaml"
    overrides = ["solver.iterations=7", "student.head_convs=[16,16]"]
    config = load_train_config(config_path, overrides)
    args = argparse.Namespace(config=config_path, overrides=overrides)
    saved = save_resolved_config(config, tmp_path / "config.yaml", args)
    assert "#   --set solver.iterations=7" in saved.read_text()
    assert load_train_config(saved).to_dict() == config.to_dict()


def test_every_shipped_config_loads():
    from pathlib import Path

    configs = sorted(Path(__file__).resolve().parents[1].glob("configs/*.yaml"))
    assert len(configs) >= 10
    for path in configs:
        config = load_train_config(path)
        assert config.solver.iterations > 0 and config.data.train, path
    paper = {p.stem: load_train_config(p).solver for p in configs}
    assert (paper["orpose_all"].lr, paper["orpose_all"].steps) == (0.1, [14000, 16000, 18000])
    assert (paper["orpose_fixed_12x"].lr, paper["orpose_fixed_12x"].iterations) == (0.01, 10000)


def _train_killed_mid_run(config, out, iterations: int):
    """Start ``orpose train`` (a checkpoint every iteration) and SIGKILL it right after its
    first checkpoint; the command, or None if the run had ended before the kill came."""
    import os
    import signal
    import subprocess
    import sys
    import time

    cmd = [sys.executable, "-m", "orpose.cli", "train", str(config), "--out", str(out),
           "--device", "cpu", "--resume", "--set", "solver.checkpoint_every=1",
           "--set", f"solver.iterations={iterations}"]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # one thread: the sums of the clean run
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 300
        while not (out / "last.pt").exists() and proc.poll() is None:
            assert time.monotonic() < deadline, "training wrote no checkpoint in 5 minutes"
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)  # nothing if it has already been waited for
    finally:
        proc.wait()
    return cmd if proc.returncode == -signal.SIGKILL else None


def test_cli_training_survives_a_kill_and_resumes(tmp_path):
    """``orpose train`` killed mid-run and run again with --resume goes on from its last
    checkpoint, keeps the finished iterations, and ends with the weights of a run never killed."""
    import os
    import subprocess

    from orpose.training.cli import trainer_class

    config = _tiny_config(tmp_path, 6)
    for iterations in (6, 24):  # the longer run only if the short one ended before the kill
        out = tmp_path / f"run{iterations}"
        cmd = _train_killed_mid_run(config, out, iterations)
        if cmd is not None:
            break
    assert cmd is not None, "training ended before it could be killed, twice"
    first = torch.load(out / "last.pt", weights_only=False)["iteration"]
    assert 1 <= first < iterations  # killed mid-run: a checkpoint, not the last one
    rows_before = (out / "metrics.csv").read_text().splitlines()[1 : first + 1]
    assert len(rows_before) == first

    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True)
    assert f"resumed from {out / 'last.pt'} at iteration {first}" in done.stderr
    resumed = torch.load(out / "last.pt", weights_only=False)
    assert resumed["iteration"] == iterations
    rows = (out / "metrics.csv").read_text().splitlines()[1:]
    assert [int(r.split(",")[0]) for r in rows] == list(range(1, iterations + 1))
    assert rows[:first] == rows_before  # the finished iterations were not trained again

    torch.set_num_threads(1)
    clean_config = load_train_config(config, [f"solver.iterations={iterations}"])
    clean = trainer_class(clean_config)(clean_config, tmp_path / "clean", "cpu").run()
    never_killed = torch.load(clean, weights_only=False)["model"]
    assert resumed["model"].keys() == never_killed.keys()
    for key, value in never_killed.items():
        assert torch.equal(value, resumed["model"][key]), key


def test_backbone_gets_its_own_learning_rate(tmp_path):
    config = load_train_config(_tiny_config(tmp_path, 2), ["solver.backbone_lr_factor=0.1"])
    trainer = Trainer(config, tmp_path / "x", "cpu")
    model = trainer.build_model()
    optimizer, _ = trainer.build_optimizer(model)
    lrs = sorted(g["initial_lr"] for g in optimizer.param_groups)  # before warm-up scaling
    assert lrs == pytest.approx([0.001, 0.01])
    n_backbone = sum(
        p.numel() for n, p in model.named_parameters() if n.startswith("backbone.body.")
    )
    assert sum(p.numel() for p in optimizer.param_groups[1]["params"]) == n_backbone


def test_stage_two_starts_from_a_stage_one_checkpoint_with_its_own_lifters(tmp_path):
    """Fine-tuning (docs/picodet_backbone.md): init_weights = an orpose checkpoint whose lifters
    came from a lifter file of another width than the config's; every weight carries over."""
    from orpose.lifting import Lifter, LifterConfig
    from orpose.lifting.checkpoint import save_lifter

    torch.manual_seed(0)
    lifter_path = save_lifter(Lifter(LifterConfig(hidden=24, blocks=1)), tmp_path / "lifter.pt")
    config = _tiny_config(tmp_path, 1)
    stage1 = Trainer(load_train_config(config, [f"init_lifter={lifter_path}"]), tmp_path / "s1",
                     "cpu").run()  # fmt: skip
    stage2 = Trainer(load_train_config(config, [f"init_weights={stage1}", "solver.iterations=0"]),
                     tmp_path / "s2", "cpu").run()  # fmt: skip
    a = torch.load(stage1, weights_only=False)
    b = torch.load(stage2, weights_only=False)
    assert b["student_config"]["lifter_config"]["hidden"] == 24  # not the config's 16
    for key, value in a["model"].items():
        assert torch.equal(value, b["model"][key]), key


def test_a_run_started_before_the_native_head_resumes_without_it(tmp_path):
    """--resume of a CPU-student run whose checkpoint has no ``native_pose_model`` (written before
    the native path had its own head) keeps that architecture instead of the new default."""
    from orpose.safe_checkpoint import write_checkpoint
    from orpose.training.config import load_train_config

    config_path = tmp_path / "c.yaml"
    config_path.write_text(yaml.safe_dump({"student": {"family": "picodet_tinypose"},
                                           "data": {"train": ["labels.json"]}}))  # fmt: skip
    for saved, expected in (({"family": "picodet_tinypose"}, ""),
                            ({"family": "picodet_tinypose", "native_pose_model": "x"},
                             "tinypose_128x96")):  # fmt: skip
        trainer = Trainer(load_train_config(config_path), tmp_path / "out", "cpu")
        trainer.out_dir.mkdir(exist_ok=True)
        write_checkpoint({"model": {}, "student_config": saved}, trainer.checkpoint_path())
        trainer.keep_resumed_architecture(read_checkpoint(trainer.checkpoint_path()))
        assert trainer.config.student.native_pose_model == expected


def test_final_weight_mix_leaves_parts_the_model_names_as_trained(tmp_path):
    """WiSE-FT keeps 1x accuracy; a native head trained on crops smaller than its pretrained
    input (whose start has no accuracy there) is named in ``unmixed_prefixes`` and stays as
    trained, as does nothing else; the 128x96 native head is mixed as before."""
    from orpose.training.config import load_train_config

    config_path = tmp_path / "c.yaml"
    config_path.write_text(yaml.safe_dump({"student": {"family": "picodet_tinypose"},
                                           "data": {"train": ["labels.json"]},
                                           "solver": {"final_weight_mix": 0.25}}))  # fmt: skip
    trainer = Trainer(load_train_config(config_path), tmp_path / "out", "cpu")
    for unmixed in ((), ("native_head.",)):
        model = torch.nn.ModuleDict({"head": torch.nn.Linear(2, 2),
                                     "native_head": torch.nn.Linear(2, 2)})  # fmt: skip
        model.unmixed_prefixes = unmixed
        trainer.start_state = {k: torch.zeros_like(v) for k, v in model.state_dict().items()}
        trained = {k: v.clone() for k, v in model.state_dict().items()}
        trainer.mix_final_weights(model)
        for key, value in model.state_dict().items():
            kept = key.startswith(unmixed) if unmixed else False
            expected = trained[key] if kept else 0.25 * trained[key]
            torch.testing.assert_close(value, expected, rtol=0, atol=1e-7, msg=key)
