"""One registry of student families: each entry holds all that is particular to its family.

As timm's ``register_model``: code that needs to know about families (checkpoints, the predictor,
training, export, bench) asks the registry instead of keeping its own list or testing a model's
attributes. An entry (:class:`StudentFamily`) carries

- its config class and builder;
- its inference limits (:attr:`~StudentFamily.limits`, where each knob of
  :mod:`orpose.predictor` lives on the model) and its predictor hooks (``set_proposals``);
- its FLOP parts (:mod:`orpose.export.flops`: part -> module names);
- its legacy defaults (config fields added later, with the value older files were built with)
  and legacy loss-weight keys;
- the losses its training returns (the keys ``student.loss_weights`` may weight) and the
  training settings only it reads;
- its training strategy (``"module:Class"``, the per-family part of
  :class:`orpose.training.trainer.Trainer`: the registry sits below training, so it names it);
- facts such as "CPU" or "has an int8 recipe", "its resize stays in an exported graph",
  and which parts a final weight mix leaves as trained (``unmixed_prefixes``).

The backbones are a parallel registry of the same kind
(:data:`orpose.student.backbones.BACKBONES`, written by ``register_backbone``, read by
``backbone_spec``; :func:`backbone_of` finds a student's): each entry holds its builder and
what export needs to know (``fixed_size_export``). Both are :class:`orpose.registry.Registry`
tables, the package's one registry mechanism: a name is registered once, an unknown name is
refused listing the known ones.

A config dict names its family under ``family`` (default ``keypoint_rcnn``, the paper's student,
for files written before there were several).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from torch import nn

from orpose.errors import ConfigError
from orpose.registry import Registry

if TYPE_CHECKING:
    from orpose.student.backbones import BackboneSpec

DEFAULT_FAMILY = "keypoint_rcnn"
# The inference limits every family names (see orpose.predictor): the most people per image and
# the least person score; optional: "detection_score", a score filter before NMS, and "flip", the
# switch of the pose flip test (a family that poses person crops)
LIMITS = ("people", "score")


def _frozen(mapping: Mapping | None = None) -> Mapping:
    return MappingProxyType(dict(mapping or {}))


@dataclass(frozen=True)
class StudentFamily:
    """A kind of student: everything the rest of the package knows about it."""

    name: str
    config_class: type
    build: Callable[..., nn.Module]
    strategy: str  # "module:Class" of its training strategy (orpose.training)
    summary: str
    # limit name -> dotted attribute path from the model ("roi_heads.detections_per_img")
    limits: Mapping[str, str] = field(default_factory=_frozen)
    # predictor hook: keep at most ``count`` region proposals at inference (None: no proposals)
    set_proposals: Callable[[nn.Module, int], None] | None = None
    # FLOP-count part -> names of the modules (from the model) whose counts it sums
    flop_parts: Mapping[str, tuple[str, ...]] = field(default_factory=_frozen)
    # config fields added later: a saved config without one was built as this value says
    legacy_defaults: Mapping[str, Any] = field(default_factory=_frozen)
    # the losses its training returns: the keys ``student.loss_weights`` weights
    losses: tuple[str, ...] = ()
    # loss-weight keys earlier versions wrote but that weighted no loss: accepted at this value
    legacy_loss_weights: Mapping[str, float] = field(default_factory=_frozen)
    # training settings ("section.name") only this family's training reads
    settings: tuple[str, ...] = ()
    cpu: bool = False  # meant to train and run on a CPU
    int8: bool = False  # has an int8 export recipe (orpose.export.int8)
    # the config field naming its backbone (a name of BACKBONES), None: no backbone choice
    backbone_field: str | None = None
    # export keeps its image resize inside the graph (orpose.export's TraceableTransform)
    resize_in_graph: bool = False
    # its forward takes ``min_scores``, per image the least detection score to pose (callers
    # that show people from a score skip posing those who could not reach it)
    min_score_per_image: bool = False
    # its forward takes ``factors``, per image how many times it was shrunk (1: full
    # resolution), which picks its detector (the CPU student's full_res_detector_share)
    factor_per_image: bool = False
    # the smaller crop sizes its full path poses people at, of a built model (its
    # ``crop_tiers``; export puts each size's pose work in an If branch); None: one size
    crop_tiers: Callable[[nn.Module], list] | None = None
    # the state-dict prefixes the final weight mix (solver.final_weight_mix) leaves as trained,
    # of a built model (None: none)
    unmixed_prefixes: Callable[[nn.Module], tuple[str, ...]] | None = None
    # at the end of training, after the final weight mix: parts set from the trained weights
    # and the starting state (the CPU student's full-resolution detector); None: nothing
    settle_weights: Callable[[nn.Module, dict], None] | None = None
    # whether settle_weights needs the starting state, of a config
    settles_from_start: Callable[[Any], bool] | None = None


# the built-in families are registered on first lookup (keeps imports light)
FAMILIES: Registry[StudentFamily] = Registry(
    "student family", ConfigError, lambda: _register_builtin()
)


def register_family(family: StudentFamily) -> StudentFamily:
    """Add a family (refused: a name registered twice, an entry without the shared limits)."""
    missing = [name for name in LIMITS if name not in family.limits]
    if missing and not FAMILIES.registered(family.name):
        raise ValueError(f"student family {family.name!r}: no limit {', '.join(missing)}")
    return FAMILIES.register(family.name, family)


def families() -> dict[str, StudentFamily]:
    """Every registered family, by name (the built-in ones included)."""
    return dict(FAMILIES)


def family_of(config: Any) -> StudentFamily:
    """The family of a config object or dict, or of a student (its ``config``)."""
    if isinstance(config, nn.Module):
        config = config.config
    name = config.get("family", DEFAULT_FAMILY) if isinstance(config, dict) else config.family
    return FAMILIES.lookup(name)


def student_config(config: Any):
    """A config object of the right family from a dict (objects are returned as they are)."""
    if not isinstance(config, dict):
        return config
    return family_of(config).config_class.from_dict(dict(config))


def build_student(config: Any = None, **kwargs: Any) -> nn.Module:
    """A student of the config's family, with its starting weights (see each family)."""
    config = student_config(config if config is not None else {})
    return family_of(config).build(config, **kwargs)


def limit_holder(model: nn.Module, which: str) -> tuple[object, str]:
    """The object and attribute that hold ``model``'s ``which`` limit (see :data:`LIMITS`)."""
    *path, attribute = family_of(model).limits[which].split(".")
    holder: object = model
    for name in path:
        holder = getattr(holder, name)
    return holder, attribute


def unmixed_prefixes(model: nn.Module, config: Any = None) -> tuple[str, ...]:
    """The state-dict prefixes the final weight mix leaves as trained in ``model``, as the
    family of ``config`` (default: the model's) says."""
    hook = family_of(config if config is not None else model).unmixed_prefixes
    return tuple(hook(model)) if hook is not None else ()


def settle_weights(model: nn.Module, start_state: dict, config: Any = None) -> None:
    """The family's end-of-training step (``settle_weights``) on ``model``, if it has one."""
    hook = family_of(config if config is not None else model).settle_weights
    if hook is not None:
        hook(model, start_state)


def settles_from_start(config: Any) -> bool:
    """Whether the family's end-of-training step needs the starting weights, for ``config``."""
    hook = family_of(config).settles_from_start
    return bool(hook is not None and hook(student_config(config)))


def backbone_of(config: Any) -> BackboneSpec | None:
    """The backbone a student's config (or a student's) names; None for a family without a
    backbone choice."""
    from orpose.student.backbones import backbone_spec  # torchvision: imported when asked

    if isinstance(config, nn.Module):
        config = config.config
    config = student_config(config)
    field_name = family_of(config).backbone_field
    return None if field_name is None else backbone_spec(getattr(config, field_name))


def _register_builtin() -> None:
    """The two built-in families."""
    from orpose.student.model import ORPoseStudent, StudentConfig, set_test_proposals
    from orpose.student.topdown import TopDownConfig, TopDownStudent
    from orpose.student.topdown import unmixed_prefixes as topdown_unmixed

    for family in (
        StudentFamily(
            "keypoint_rcnn",
            StudentConfig,
            ORPoseStudent,
            "orpose.training.keypoint_rcnn:KeypointRCNNStrategy",
            "the paper's student: Keypoint R-CNN, two-branch heatmap head, two lifters",
            limits=_frozen(
                {"people": "roi_heads.detections_per_img", "score": "roi_heads.score_thresh"}
            ),
            set_proposals=set_test_proposals,
            flop_parts=_frozen(
                {
                    "backbone": ("backbone",),
                    "rpn": ("rpn",),
                    "box_head": ("roi_heads.box_head",),
                    "box_predictor": ("roi_heads.box_predictor",),
                    "keypoint_head": ("roi_heads.kp_head",),
                    "lifters": ("roi_heads.kp_head.lift_soft", "roi_heads.kp_head.lift_hard"),
                }
            ),
            # torchvision's RPN and box losses, ORPoseRoIHeads' two 2D losses, the two lifters'
            losses=(
                "loss_objectness",
                "loss_rpn_box_reg",
                "loss_classifier",
                "loss_box_reg",
                "loss_kp2d_hard",
                "loss_kp2d_soft",
                "loss_kp3d_soft",
                "loss_kp3d_hard",
            ),
            settings=(
                "solver.accumulate",
                "solver.backbone_lr_factor",  # its parameters under backbone.body.
                "data.images_with_people_only",
            ),
            backbone_field="backbone",
            resize_in_graph=True,
        ),
        StudentFamily(
            "picodet_tinypose",
            TopDownConfig,
            TopDownStudent,
            "orpose.training.topdown:TopDownStrategy",
            "the CPU student: PicoDet detector + RoIAlign crops + TinyPose two-branch head",
            limits=_frozen(
                {
                    "people": "config.max_people",
                    "score": "config.pose_min_score",
                    "detection_score": "config.det_min_score",
                    "flip": "config.flip_test",
                }
            ),
            flop_parts=_frozen(
                {
                    # the one that runs: the trained detector or, at 1x, the full-resolution one
                    "detector": ("detector", "full_res_detector"),
                    "pose": ("head.trunk", "head.soft", "head.hard", "native_head"),
                    "lifters": ("head.lift_soft", "head.lift_hard"),
                }
            ),
            # before their fields existed: the native path had no head, the lifters learnt
            # from the labels' 2D, one detector served every frame
            legacy_defaults=_frozen(
                {
                    "native_pose_model": "",
                    "lift_input": "labels",
                    "full_res_detector_share": 1.0,
                    "full_res_lifter_share": 1.0,
                    "full_res_head_share": 1.0,
                }
            ),
            # TopDownStudent.losses: its heads', its lifters' and its detector's (PicoDet's)
            losses=(
                "loss_kp2d_hard",
                "loss_kp2d_soft",
                "loss_kp2d_kd",
                "loss_kp3d_soft",
                "loss_kp3d_hard",
                "loss_det_cls",
                "loss_det_box",
            ),
            legacy_loss_weights=_frozen({"loss_det_kd": 1.0}),
            settings=(
                "solver.detector_batch_size",
                "solver.anchor_weight",
                "data.scale_jitter",
                "data.shift_jitter",
                "data.rotation",
                "data.rotation_prob",
                "data.image_crop",
                "data.native_share",
            ),
            cpu=True,
            int8=True,
            crop_tiers=TopDownStudent.crop_tiers,
            min_score_per_image=True,
            factor_per_image=True,
            unmixed_prefixes=topdown_unmixed,
            settle_weights=TopDownStudent.settle_full_res_parts,
            settles_from_start=lambda config: (
                config.full_res_detector_share < 1
                or (config.lifters and config.full_res_lifter_share < 1)
                or config.full_res_head_share < 1
            ),
        ),
    ):
        register_family(family)
