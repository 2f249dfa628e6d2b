"""The student families' registry (issue 30 item 3): one entry per family holds all that is
particular to it, the rest of the package looks it up there; the CPU student's detector losses
live beside its detector and are checked on a hand-computed case; loss weights are applied in
one place."""

from __future__ import annotations

import dataclasses
import math
import re
from pathlib import Path

import pytest
import torch

from orpose.student.losses import weighted_losses
from orpose.student.picodet import LevelOutputs, detector_kd_losses
from orpose.student.registry import LIMITS, StudentFamily, families, family_of, register_family
from orpose.training.config import DataConfig, SolverConfig
from orpose.training.strategy import TrainingStrategy, strategy_class

SRC = Path(__file__).resolve().parents[1] / "src" / "orpose"
BUILTIN = {"keypoint_rcnn", "picodet_tinypose"}


def test_the_registry_lists_every_family_once():
    found = families()
    assert set(found) == BUILTIN
    assert all(name == family.name for name, family in found.items())
    # every config class of the package names its family by default, and only one does
    classes = [f.config_class for f in found.values()]
    assert len(set(classes)) == len(classes)
    assert {c().family for c in classes} == BUILTIN


@pytest.mark.parametrize("name", sorted(BUILTIN))
def test_each_entry_is_complete(name):
    family = families()[name]
    config = family.config_class()
    assert config.family == name and family_of(config) is family
    assert family_of(config.to_dict()) is family
    assert callable(family.build) and family.summary
    strategy = strategy_class(type("C", (), {"student": config})())
    assert issubclass(strategy, TrainingStrategy) and strategy is not TrainingStrategy
    assert set(LIMITS) <= set(family.limits)
    fields = {f.name for f in dataclasses.fields(family.config_class)}
    for path in family.limits.values():
        head, _, attribute = path.partition(".")
        assert head != "config" or attribute in fields, path
    assert family.flop_parts and all(family.flop_parts.values())
    # the losses its training returns are the ones its config weights by default
    assert sorted(family.losses) == sorted(config.loss_weights)
    assert set(family.legacy_defaults) <= fields
    assert not set(family.legacy_loss_weights) & set(family.losses)
    sections = {"solver": SolverConfig(), "data": DataConfig()}
    for key in family.settings:
        section, _, setting = key.partition(".")
        assert hasattr(sections[section], setting), key


def test_a_family_is_registered_once_and_with_its_limits():
    family = families()["keypoint_rcnn"]
    with pytest.raises(ValueError, match="registered already"):
        register_family(family)
    with pytest.raises(ValueError, match="no limit score"):
        register_family(dataclasses.replace(family, name="x", limits={"people": "a.b"}))


def test_no_family_list_or_attribute_switch_outside_the_registry():
    """Family names appear in the registry and as their config's default only; no module tells
    the families apart by a model's attributes (``hasattr(model, "roi_heads")``)."""
    names = "|".join(BUILTIN)
    allowed = {"student/registry.py", "student/model.py", "student/topdown.py"}
    offenders = []
    for path in sorted(SRC.rglob("*.py")):
        text = path.read_text()
        where = str(path.relative_to(SRC))
        if re.search(rf"[\"']({names})[\"']", text) and where not in allowed:
            offenders.append(where)
        if re.search(r"hasattr\((model|core|self\.model)\b", text):
            offenders.append(where)
    assert offenders == []


def test_detector_kd_losses_by_hand():
    """One level of one 8-pixel cell: both score logits 0 (p = 0.5) against a teacher score of
    1: QFL = BCE(0.5, 1) x |1 - 0.5|^2 = 0.25 log 2, over a normaliser of 1; uniform box
    logits: DFL = log(bins) whatever the target, weighted by the score, over 4 x 1."""
    bins = 8
    level = LevelOutputs(torch.zeros(1, 1, 1, 1), torch.zeros(1, 1, 1, 1),
                         torch.zeros(1, 4 * bins, 1, 1), 8)  # fmt: skip
    centre = 4.0  # (0 + 0.5) x stride
    box = torch.tensor([[[centre - 8, centre - 8, centre + 16, centre + 8]]])  # 1, 1, 2, 1 strides
    losses = detector_kd_losses([level], torch.ones(1, 1), box, bins)
    assert losses["loss_det_cls"].item() == pytest.approx(0.25 * math.log(2), rel=1e-6)
    assert losses["loss_det_box"].item() == pytest.approx(math.log(bins), rel=1e-6)
    # a teacher cell below BOX_MIN_SCORE teaches no box; its score still teaches the class
    quiet = detector_kd_losses([level], torch.full((1, 1), 0.01), box, bins)
    assert quiet["loss_det_box"].item() == 0.0
    expected = -(0.01 * math.log(0.5) + 0.99 * math.log(0.5)) * 0.49**2 / 1.0  # normaliser >= 1
    assert quiet["loss_det_cls"].item() == pytest.approx(expected, rel=1e-5)


def test_loss_weights_are_applied_in_one_place():
    losses = {"a": torch.tensor(2.0), "b": torch.tensor(3.0)}
    weighted = weighted_losses(losses, {"a": 0.5})
    assert {k: v.item() for k, v in weighted.items()} == {"a": 1.0, "b": 3.0}
    for path in ("student/model.py", "student/topdown.py"):
        assert "weighted_losses(" in (SRC / path).read_text()
    for path in sorted((SRC / "training").glob("*.py")):  # config.py checks the keys only
        assert "config.loss_weights" not in path.read_text(), path.name


def test_the_trainer_runs_the_strategy_its_family_names(tmp_path):
    from orpose.training.config import TrainConfig
    from orpose.training.keypoint_rcnn import KeypointRCNNStrategy
    from orpose.training.topdown import TopDownStrategy
    from orpose.training.trainer import Trainer

    for name, kind in (("keypoint_rcnn", KeypointRCNNStrategy),
                       ("picodet_tinypose", TopDownStrategy)):  # fmt: skip
        config = TrainConfig(student=families()[name].config_class())
        assert type(Trainer(config, tmp_path / name, "cpu").strategy) is kind


def test_the_predictor_finds_each_limit_through_the_registry():
    from orpose.predictor import fix_people, limit_detections, limit_proposals
    from orpose.student.model import StudentConfig, build_student

    model = build_student(StudentConfig(backbone="resnet18_fpn", head_convs=(8,),
                                        lifters=False))  # fmt: skip
    limit_detections(fix_people(model, 3), 5)
    assert model.roi_heads.detections_per_img == 5 and model.roi_heads.score_thresh == 0.0
    limit_proposals(model.eval(), 7)
    assert model.rpn.post_nms_top_n() == 7


def test_a_fake_family_of_a_student_is_refused_by_name():
    with pytest.raises(Exception, match="unknown student family 'nope'"):
        family_of({"family": "nope"})
    assert isinstance(families()["picodet_tinypose"], StudentFamily)
