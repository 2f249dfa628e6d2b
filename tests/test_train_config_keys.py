"""Every training-config key is honoured or refused (issue 28): the optimizer the config names is
the one built, loss weights name losses the family computes, settings only the other family reads
and a Keypoint R-CNN start from random weights under frozen batch norm stop `orpose train` with
exit 2 and one line naming the file and the key."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from orpose.cli import main
from orpose.config import read_yaml_with_base
from orpose.errors import ConfigError
from orpose.student.registry import families
from orpose.training.config import KEYPOINT_RCNN_WEIGHTS, check_start_files, load_train_config
from orpose.training.trainer import build_optimizer

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
TINY = (
    "student: {backbone: resnet18_fpn, head_convs: [8], min_size: [64], max_size: 96,"
    " lifter_config: {hidden: 8}}\ndata: {train: [labels.json]}\n"
)
TOPDOWN = "student: {family: picodet_tinypose}\ndata: {train: [labels.json]}\n"


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "c.yaml"
    path.write_text(text)
    return path


def _train_fails_in_one_line(path: Path, tmp_path: Path, capsys, *overrides: str) -> str:
    sets = [a for o in overrides for a in ("--set", o)]
    assert main(["train", str(path), "--out", str(tmp_path / "run"), *sets]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(path) in err[0], err
    assert not (tmp_path / "run").exists()  # stopped before any work
    return err[0]


# -- the optimizer ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["adamw", "sgd"])
def test_keypoint_rcnn_builds_the_optimizer_the_config_names(tmp_path, name):
    from orpose.student.model import build_student

    overrides = [f"solver.optimizer={name}", "solver.backbone_lr_factor=0.1"]
    config = load_train_config(_write(tmp_path, TINY), overrides)
    model = build_student(config.student)
    optimizer, scheduler = build_optimizer(model, config.solver)
    kind = torch.optim.AdamW if name == "adamw" else torch.optim.SGD
    assert type(optimizer) is kind
    # the backbone's own learning rate holds for both optimizers
    assert sorted(g["initial_lr"] for g in optimizer.param_groups) == pytest.approx([1e-4, 1e-3])
    n_trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert sum(p.numel() for g in optimizer.param_groups for p in g["params"]) == n_trainable
    if name == "sgd":
        assert optimizer.param_groups[0]["momentum"] == 0.9
    assert scheduler.get_last_lr()[0] == pytest.approx(1e-3 * 0.001)  # warm-up start


def test_the_trainer_uses_the_shared_builder(tmp_path):
    from orpose.training.trainer import Trainer

    config = load_train_config(_write(tmp_path, TINY), ["solver.optimizer=adamw"])
    trainer = Trainer(config, tmp_path / "run", "cpu")
    optimizer, _ = trainer.build_optimizer(nn.Linear(2, 2))
    assert type(optimizer) is torch.optim.AdamW


def test_momentum_has_no_effect_with_adamw(tmp_path):
    with pytest.raises(ConfigError, match=r"c\.yaml: solver\.momentum: has no effect"):
        load_train_config(_write(tmp_path, TINY), ["solver.optimizer=adamw", "solver.momentum=0.5"])


# -- loss weights -----------------------------------------------------------------------------


def test_a_mistyped_loss_weight_stops_training_in_one_line(tmp_path, capsys):
    path = _write(tmp_path, TINY.replace("}\ndata", ", loss_weights: {loss_kp2d_sfot: 0.5}}\ndata"))
    line = _train_fails_in_one_line(path, tmp_path, capsys)
    assert "student.loss_weights.loss_kp2d_sfot" in line and "loss_kp2d_soft" in line


@pytest.mark.parametrize(
    ("base", "key", "message"),
    [
        (TOPDOWN, "loss_det_kd", "loss_det_cls, loss_det_box"),  # names no loss
        (TOPDOWN, "loss_classifier", "names no loss of the picodet_tinypose student"),
        (TINY, "loss_kp2d_kd", "names no loss of the keypoint_rcnn student"),
        (TINY, "loss_det_cls", "names no loss of the keypoint_rcnn student"),
    ],
)
def test_loss_weights_of_no_loss_of_the_family_are_refused(tmp_path, capsys, base, key, message):
    path = _write(tmp_path, base)
    line = _train_fails_in_one_line(path, tmp_path, capsys, f"student.loss_weights={{{key}: 0.0}}")
    assert f"c.yaml: student.loss_weights.{key}: " in line and message in line


def test_the_old_no_op_loss_det_kd_entry_still_loads_and_is_dropped(tmp_path):
    """Checkpoints and resolved configs of the CPU student carry ``loss_det_kd: 1.0`` (it was in
    the defaults and weighted nothing): `orpose adapt` and re-runs must still read them."""
    config = load_train_config(
        _write(tmp_path, TOPDOWN), ["student.loss_weights={loss_det_kd: 1.0}"]
    )
    assert "loss_det_kd" not in config.student.loss_weights
    assert set(config.student.loss_weights) <= set(families()["picodet_tinypose"].losses)
    assert config.student.loss_weights["loss_kp2d_kd"] == 1.0


def test_a_cpu_student_resolved_config_loads_back_equal(tmp_path):
    import argparse

    from orpose.training.cli import save_resolved_config

    path = _write(tmp_path, TOPDOWN)
    config = load_train_config(path)
    args = argparse.Namespace(config=path, overrides=[])
    saved = save_resolved_config(config, tmp_path / "resolved.yaml", args)
    assert load_train_config(saved).to_dict() == config.to_dict()


def test_the_keypoint_rcnn_losses_are_the_ones_the_model_returns():
    from orpose.student.model import StudentConfig, build_student

    torch.manual_seed(0)
    model = build_student(StudentConfig(backbone="resnet18_fpn", head_convs=(8,), min_size=(64,),
                                        max_size=96, box_batch_size_per_image=16,
                                        rpn_post_nms_top_n_train=20,
                                        lifter_config={"hidden": 8})).train()  # fmt: skip
    kps = torch.tensor([[20.0 + i, 10.0 + 3 * i, 2.0] for i in range(17)])[None]
    target = {"boxes": torch.tensor([[10.0, 5.0, 60.0, 80.0]]), "labels": torch.ones(1).long(),
              "keypoints": kps, "keypoints_soft": kps.clone(),
              "keypoints3d_soft": torch.randn(1, 17, 3),
              "has3d": torch.ones(1, dtype=torch.bool)}  # fmt: skip
    losses = model([torch.rand(3, 90, 70)], [target])
    assert sorted(losses) == sorted(families()["keypoint_rcnn"].losses)


def test_the_cpu_student_losses_are_the_ones_its_training_computes():
    from orpose.student.keypoint_head import TopDownKeypointHead
    from orpose.student.picodet import LevelOutputs, detector_kd_losses

    class Trunk(nn.Module):
        def forward(self, x):
            return (x,)

    head = TopDownKeypointHead(Trunk(), nn.Conv2d(3, 17, 1), (16, 32), lifter_config={"hidden": 8})
    hm = torch.zeros(1, 17, 8, 4)
    label = torch.zeros(1, 17, 3)
    names = set(head.losses(hm, hm, label, label, hm))
    names |= set(head.lifting_losses(label, label, torch.zeros(0, 17, 3), 100.0))
    bins = 8
    level = LevelOutputs(torch.zeros(1, 1, 2, 2), torch.zeros(1, 1, 2, 2),
                         torch.zeros(1, 4 * bins, 2, 2), 8)  # fmt: skip
    names |= set(detector_kd_losses([level], torch.full((1, 4), 0.5), torch.rand(1, 4, 4) * 16,
                                    bins))  # fmt: skip
    assert sorted(names) == sorted(families()["picodet_tinypose"].losses)


# -- settings the family's training does not read ---------------------------------------------


@pytest.mark.parametrize(
    ("base", "override", "key"),
    [
        (TINY, "solver.detector_batch_size=8", "solver.detector_batch_size"),
        (TINY, "solver.anchor_weight=0.1", "solver.anchor_weight"),
        (TINY, "data.native_share=0.3", "data.native_share"),
        (TINY, "data.rotation=10", "data.rotation"),
        (TOPDOWN, "solver.accumulate=2", "solver.accumulate"),
        (TOPDOWN, "solver.backbone_lr_factor=0.1", "solver.backbone_lr_factor"),
        (TOPDOWN, "data.images_with_people_only=true", "data.images_with_people_only"),
        (TINY, "student.stride_in_1x1=true", "student.stride_in_1x1"),
    ],
)
def test_settings_the_family_ignores_are_refused(tmp_path, base, override, key):
    with pytest.raises(ConfigError, match=rf"c\.yaml: {key}: has no effect"):
        load_train_config(_write(tmp_path, base), [override])


def test_their_defaults_still_load_as_resolved_configs_hold_them(tmp_path):
    text = "solver: {detector_batch_size: 4, anchor_weight: 0.0, accumulate: 1}\n"
    load_train_config(_write(tmp_path, TINY + text))
    load_train_config(_write(tmp_path, TOPDOWN + text))


def test_a_random_backbone_init_under_init_weights_is_refused(tmp_path):
    with pytest.raises(ConfigError, match=r"c\.yaml: student\.backbone_init: random has no"):
        load_train_config(_write(tmp_path, TINY), ["student.backbone_init=random",
                                                   "init_weights=w.pth"])  # fmt: skip


def test_native_sizes_that_cannot_be_trained_are_refused_naming_the_key(tmp_path):
    """With the native path trained (data.native_share > 0), a native detector input that is
    not the full one over a power of two, or native crops above half the full ones, are refused
    at load (before any work), naming the file and the key; untrained, any size loads."""
    trained = "data.native_share=0.5"
    for override, key in (("student.native_detector_size=[240,240]", "native_detector_size"),
                          ("student.native_crop_size=[120,160]", "native_crop_size")):  # fmt: skip
        with pytest.raises(ConfigError, match=rf"c\.yaml: student\.{key}: .* native path"):
            load_train_config(_write(tmp_path, TOPDOWN), [override, trained])
        load_train_config(_write(tmp_path, TOPDOWN), [override, "data.native_share=0"])
    for size in ("[320,320]", "[160,160]", "[80,80]"):
        load_train_config(_write(tmp_path, TOPDOWN), [f"student.native_detector_size={size}",
                                                      trained])  # fmt: skip


# -- starting weights -------------------------------------------------------------------------


def test_random_weights_under_frozen_batch_norm_are_refused(tmp_path, capsys):
    path = _write(tmp_path, TINY)
    line = _train_fails_in_one_line(path, tmp_path, capsys, "student.norm=frozen_bn")
    assert "c.yaml: init_weights: not set" in line and KEYPOINT_RCNN_WEIGHTS in line
    # the paper's configs without their weights file
    line = _train_fails_in_one_line(CONFIGS / "orpose_all.yaml", tmp_path, capsys,
                                    "init_weights=null")  # fmt: skip
    assert "init_weights: not set" in line and KEYPOINT_RCNN_WEIGHTS in line
    # from scratch, as documented: GroupNorm
    load_train_config(CONFIGS / "orpose_all.yaml", ["init_weights=null", "student.norm=gn"])


def test_the_paper_configs_read_the_weights_from_the_models_folder(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("ORPOSE_MODELS", str(tmp_path))
    config = load_train_config(CONFIGS / "orpose_fixed_1x.yaml")
    assert config.init_weights == str(tmp_path / KEYPOINT_RCNN_WEIGHTS)
    # missing: `orpose train` stops before any work, naming the key and the file
    line = _train_fails_in_one_line(CONFIGS / "orpose_fixed_1x.yaml", tmp_path, capsys)
    assert f"init_weights: {tmp_path / KEYPOINT_RCNN_WEIGHTS}: no such file" in line
    assert "models folder" in line
    (tmp_path / KEYPOINT_RCNN_WEIGHTS).write_bytes(b"x")
    check_start_files(config, "orpose_fixed_1x.yaml")  # present: training may start


def test_a_models_placeholder_without_a_models_folder_is_named(tmp_path, monkeypatch):
    monkeypatch.setenv("ORPOSE_MODELS", str(tmp_path / "absent"))
    config = load_train_config(CONFIGS / "orpose_all.yaml")
    with pytest.raises(ConfigError, match=r"init_weights: \{models\}/keypointrcnn.*ORPOSE_MODELS"):
        check_start_files(config, "orpose_all.yaml")


# -- what ships -------------------------------------------------------------------------------


def test_every_shipped_config_and_every_experiment_run_loads():
    for path in sorted(CONFIGS.glob("*.yaml")):
        load_train_config(path)
    specs = sorted((CONFIGS / "experiments").glob("*.yaml"))
    assert specs
    for spec in specs:
        data = read_yaml_with_base(spec)
        common = list(data.get("set") or [])
        if data.get("init_weights"):
            common.append(f"init_weights={data['init_weights']}")
        for name, run in (data.get("runs") or {}).items():
            if isinstance(run, dict) and run.get("train"):
                try:
                    load_train_config(CONFIGS / run["train"], [*common, *(run.get("set") or [])])
                except ConfigError as err:
                    raise AssertionError(f"{spec.name}: run {name}: {err}") from None
