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


# The backbones, lifter kinds and teacher output kinds: registries of the same mechanism
# (orpose.registry.Registry), one registration function and one lookup each.

# the backbones as the BACKBONES dict of orpose.student.backbones held them before they were
# registered: name -> (summary, fixed_size_export)
OLD_BACKBONES = {
    "resnet50_fpn": ("the paper's student (GPUs)", False),
    "resnet18_fpn": ("CPU experiments, tests", False),
    "mobilenet_v3_fpn": ("light deployments", False),
    "picodet_lcnet": (
        "pretrained, imported at run time from the teacher's PicoDet ONNX file (onnx_backbone.py)",
        True,
    ),
}


def test_every_backbone_is_registered_once_with_the_old_tables_contents():
    from orpose.student import backbones
    from orpose.student.backbones import BACKBONES, backbone_spec, register_backbone
    from orpose.student.onnx_backbone import picodet_lcnet_backbone

    assert {n: (s.summary, s.fixed_size_export) for n, s in BACKBONES.items()} == OLD_BACKBONES
    assert all(backbone_spec(name).name == name for name in BACKBONES)
    assert backbone_spec("picodet_lcnet").build is picodet_lcnet_backbone
    assert backbone_spec("mobilenet_v3_fpn").build is backbones._mobilenet_v3_fpn
    with pytest.raises(ValueError, match="backbone 'resnet18_fpn' is registered already"):
        register_backbone("resnet18_fpn", backbones._mobilenet_v3_fpn, "again")
    assert len(BACKBONES) == len(OLD_BACKBONES)
    # every backbone of the package is registered through register_backbone, in backbones.py
    calls = {p.name for p in SRC.rglob("*.py") if 'register_backbone("' in p.read_text()}
    assert calls == {"backbones.py"}


def test_unknown_names_are_refused_with_the_known_ones():
    from orpose.errors import ConfigError
    from orpose.lifting.kinds import make_lifter
    from orpose.student.backbones import backbone_spec, build_backbone
    from orpose.student.model import StudentConfig, build_student

    known = "known: mobilenet_v3_fpn, picodet_lcnet, resnet18_fpn, resnet50_fpn"
    for call in (lambda: backbone_spec("vit"), lambda: build_backbone("vit"),
                 lambda: build_student(StudentConfig(backbone="vit"))):  # fmt: skip
        with pytest.raises(ValueError, match=rf"^unknown backbone 'vit'; {known}$"):
            call()
    with pytest.raises(ConfigError, match=r"^unknown student family 'nope'; known: keypoint_rcnn, "
                       r"picodet_tinypose$"):  # fmt: skip
        family_of({"family": "nope"})
    with pytest.raises(
        ConfigError, match=r"^unknown lifter kind 'x'; known: official_h36m, orpose$"
    ):
        make_lifter({"kind": "x"})


def test_the_lifter_kinds_are_one_registry():
    from orpose.lifting import Lifter
    from orpose.lifting.kinds import LIFTERS, make_lifter, register_lifter
    from orpose.lifting.official_lifter import KIND, OfficialLifter
    from orpose.student import keypoint_head

    assert dict(LIFTERS) == {"orpose": Lifter, KIND: OfficialLifter}
    assert keypoint_head.make_lifter is make_lifter  # the heads build their lifters through it
    plain = make_lifter({"hidden": 32, "blocks": 1})
    assert type(plain) is Lifter and plain.config.hidden == 32
    assert type(make_lifter({"kind": "orpose", "hidden": 32})) is Lifter
    official = make_lifter({"kind": KIND, "hidden": 32, "stages": 1})
    assert type(official) is OfficialLifter
    with pytest.raises(ValueError, match="lifter kind 'orpose' is registered already"):
        register_lifter("orpose", Lifter)


def test_every_registry_is_the_one_mechanism():
    from orpose.lifting.kinds import LIFTERS
    from orpose.registry import Registry
    from orpose.student.backbones import BACKBONES
    from orpose.student.registry import FAMILIES
    from orpose.teacher.detectors import DETECTOR_ADAPTERS
    from orpose.teacher.pose import POSE_ADAPTERS

    for table in (FAMILIES, BACKBONES, LIFTERS, DETECTOR_ADAPTERS, POSE_ADAPTERS):
        assert isinstance(table, Registry)
        assert not hasattr(table, "__setitem__")  # written by its register function only
    with pytest.raises(ValueError, match="output kind 'yolox' is registered already"):
        DETECTOR_ADAPTERS.register("yolox", DETECTOR_ADAPTERS["yolox"])
    # the manifest is data: it registers nothing
    assert "def register" not in (SRC / "manifest.py").read_text()


def test_export_and_the_weight_mix_read_registry_entries():
    from orpose.student.model import StudentConfig
    from orpose.student.registry import backbone_of, unmixed_prefixes
    from orpose.student.topdown import TopDownConfig

    assert families()["keypoint_rcnn"].resize_in_graph
    assert not families()["picodet_tinypose"].resize_in_graph
    assert backbone_of(StudentConfig(backbone="picodet_lcnet")).fixed_size_export
    assert not backbone_of({"backbone": "resnet18_fpn"}).fixed_size_export
    assert backbone_of(TopDownConfig()) is None  # no backbone choice
    model = torch.nn.Linear(2, 2)
    model.unmixed_prefixes = ("native_head.",)
    assert unmixed_prefixes(model, TopDownConfig()) == ("native_head.",)
    assert unmixed_prefixes(model, StudentConfig()) == ()  # its family names none
    for path in ("export/export.py", "training/trainer.py"):
        text = (SRC / path).read_text()
        assert "BACKBONES" not in text and "getattr(core" not in text
        assert "isinstance(old" not in text
