"""The official ORPose student checkpoints (detectron2), converted into the orpose student.

The official students (CAMMA-public/ORPose-Color, ``model_final.pth``) are detectron2
``GeneralizedRCNN`` models: ResNet-50-FPN, RPN, a 2-fc box head, and ``Keypoints3DROIHeads`` with
``StandardKeypoints3DHead`` (``conv_fcn1..8``, ``score_lowres`` = hard branch,
``score_lowres_soft`` = soft branch, and the lifters ``nw2Dto3D_hard`` / ``nw2Dto3D_soft``).
Key mapping, orpose (torchvision) name <- detectron2 name:

=============================================  ===============================================
``backbone.body.conv1.weight``                  ``backbone.bottom_up.stem.conv1.weight`` (*)
``backbone.body.bn1.*``                         ``backbone.bottom_up.stem.conv1.norm.*``
``backbone.body.layer{i}.{b}.conv{j}.weight``   ``backbone.bottom_up.res{i+1}.{b}.conv{j}.weight``
``backbone.body.layer{i}.{b}.bn{j}.*``          ``backbone.bottom_up.res{i+1}.{b}.conv{j}.norm.*``
``backbone.body.layer{i}.{b}.downsample.0.*``   ``backbone.bottom_up.res{i+1}.{b}.shortcut.*``
``backbone.body.layer{i}.{b}.downsample.1.*``   ``backbone.bottom_up.res{i+1}.{b}.shortcut.norm.*``
``backbone.fpn.inner_blocks.{k}.0.*``           ``backbone.fpn_lateral{k+2}.*``
``backbone.fpn.layer_blocks.{k}.0.*``           ``backbone.fpn_output{k+2}.*``
``rpn.head.conv.0.0.*``                         ``proposal_generator.rpn_head.conv.*``
``rpn.head.cls_logits.*``                       ``proposal_generator.rpn_head.objectness_logits.*``
``rpn.head.bbox_pred.*``                        ``proposal_generator.rpn_head.anchor_deltas.*``
``roi_heads.box_head.fc6.*`` / ``fc7.*``        ``roi_heads.box_head.fc1.*`` / ``fc2.*``
``roi_heads.box_predictor.cls_score.*``         ``roi_heads.box_predictor.cls_score.*`` (**)
``roi_heads.box_predictor.bbox_pred.*``         ``roi_heads.box_predictor.bbox_pred.*`` (**)
``roi_heads.kp_head.convs.{2n-2}.*``            ``roi_heads.keypoint_head.conv_fcn{n}.*``
``roi_heads.kp_head.hard.kps_score_lowres.*``   ``roi_heads.keypoint_head.score_lowres.*``
``roi_heads.kp_head.soft.kps_score_lowres.*``   ``roi_heads.keypoint_head.score_lowres_soft.*``
``roi_heads.kp_head.lift_{b}.net.*`` (***)      ``roi_heads.keypoint_head.nw2Dto3D_{b}.*``
=============================================  ===============================================

(*) detectron2's MSRA ResNet reads BGR pixels in 0..255 minus ``pixel_mean`` divided by
``pixel_std`` (1, 1, 1); torchvision's reads RGB in [0, 1] normalised with ImageNet's mean/std.
detectron2's ``pixel_mean`` is ImageNet's mean x 255, so the first convolution converts exactly:
its input channels are reversed (BGR -> RGB) and multiplied by 255 x ImageNet std / pixel_std.

(**) detectron2 puts the background class last (``num_classes + 1`` rows) and has no
background box regressor; torchvision puts background first. The person class (``person_class``,
0 in the official models) and the background rows are picked; torchvision's unused background
box regressor is set to zero.

(***) ``{b}`` = ``soft`` / ``hard``. The official lifters take 16 Human3.6M joints normalised
with Human3.6M statistics that the checkpoint does not hold (the official ``data/h36stats.json``);
they load into :class:`~orpose.lifting.official_lifter.OfficialLifter` (the official network,
COCO -> Human3.6M conversion and normalisation) when both lifters' weights are complete AND the
statistics are given (``h36_stats``, else ``$ORPOSE_H36_STATS``): the student then gives the
official 3D. Otherwise it has no lifters (no ``keypoints3d``, no 3D output in exports) and one
warning names what is missing; the report says which (``lifters``: ``official`` or ``none``).

Other detectron2 differences, carried by the config rather than by the weights (set by
:func:`student_config_for`; a keyword override wins): ``STRIDE_IN_1X1`` (detectron2's MSRA
ResNets stride in the first 1x1 convolution of a bottleneck, torchvision in the 3x3: the config
field ``stride_in_1x1``, see :func:`orpose.student.backbones.use_stride_in_1x1`, on by default and
saved with converted checkpoints as every config field), ``ROIAlignV2`` pooling
(``roi_align_aligned=True``, ``roi_sampling_ratio=0``: the box and keypoint poolers of
detectron2, see :mod:`orpose.student.pooling`), and detectron2's keypoint probability as the
keypoint score (``keypoint_score="probability"``).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import fields
from pathlib import Path
from typing import Any

import numpy as np
import torch

from orpose.lifting.official_lifter import (
    H36_STATS_ENV,
    STAT_BUFFERS,
    OfficialLifter,
    OfficialLifterConfig,
    h36_stats_path,
    official_lifter_keys,
    read_h36_stats,
)
from orpose.safe_checkpoint import read_checkpoint
from orpose.student.model import ORPoseStudent, StudentConfig, build_student

log = logging.getLogger(__name__)
D2_BACKBONE_PREFIX = "backbone.bottom_up."
IMAGENET_MEAN = (0.485, 0.456, 0.406)  # RGB, as torchvision's transform
IMAGENET_STD = (0.229, 0.224, 0.225)
D2_PIXEL_STD = (1.0, 1.0, 1.0)  # detectron2's default for MSRA weights (BGR order)
STEM_KEY = "backbone.body.conv1.weight"
CLS_KEY = "roi_heads.box_predictor.cls_score"
BOX_KEY = "roi_heads.box_predictor.bbox_pred"
D2_LIFTER_PREFIX = "roi_heads.keypoint_head.nw2Dto3D_"  # + soft / hard

_RULES: tuple[tuple[str, str], ...] = (
    (r"backbone\.body\.conv1\.(.+)", r"backbone.bottom_up.stem.conv1.\1"),
    (r"backbone\.body\.bn1\.(.+)", r"backbone.bottom_up.stem.conv1.norm.\1"),
    (r"backbone\.body\.layer(\d)\.(\d+)\.conv(\d)\.(.+)", r"RES\1.\2.conv\3.\4"),
    (r"backbone\.body\.layer(\d)\.(\d+)\.bn(\d)\.(.+)", r"RES\1.\2.conv\3.norm.\4"),
    (r"backbone\.body\.layer(\d)\.(\d+)\.downsample\.0\.(.+)", r"RES\1.\2.shortcut.\3"),
    (r"backbone\.body\.layer(\d)\.(\d+)\.downsample\.1\.(.+)", r"RES\1.\2.shortcut.norm.\3"),
    (r"backbone\.fpn\.inner_blocks\.(\d)\.0\.(.+)", r"FPN_lateral\1.\2"),
    (r"backbone\.fpn\.layer_blocks\.(\d)\.0\.(.+)", r"FPN_output\1.\2"),
    (r"rpn\.head\.conv\.0\.0\.(.+)", r"proposal_generator.rpn_head.conv.\1"),
    (r"rpn\.head\.cls_logits\.(.+)", r"proposal_generator.rpn_head.objectness_logits.\1"),
    (r"rpn\.head\.bbox_pred\.(.+)", r"proposal_generator.rpn_head.anchor_deltas.\1"),
    (r"roi_heads\.box_head\.fc6\.(.+)", r"roi_heads.box_head.fc1.\1"),
    (r"roi_heads\.box_head\.fc7\.(.+)", r"roi_heads.box_head.fc2.\1"),
    (r"roi_heads\.box_predictor\.(cls_score|bbox_pred)\.(.+)", r"roi_heads.box_predictor.\1.\2"),
    (r"roi_heads\.kp_head\.convs\.(\d+)\.(.+)", r"KPCONV\1.\2"),
    (
        r"roi_heads\.kp_head\.hard\.kps_score_lowres\.(.+)",
        r"roi_heads.keypoint_head.score_lowres.\1",
    ),
    (
        r"roi_heads\.kp_head\.soft\.kps_score_lowres\.(.+)",
        r"roi_heads.keypoint_head.score_lowres_soft.\1",
    ),
    (r"roi_heads\.kp_head\.lift_(soft|hard)\.net\.(.+)", r"roi_heads.keypoint_head.nw2Dto3D_\1.\2"),
)


def detectron2_name(orpose_key: str) -> str | None:
    """The detectron2 name of an orpose student parameter, None when it has none."""
    if orpose_key.endswith("num_batches_tracked"):
        return None
    for pattern, template in _RULES:
        match = re.fullmatch(pattern, orpose_key)
        if not match:
            continue
        name = match.expand(template)
        if name.startswith("RES"):  # torchvision layer1..4 = detectron2 res2..5
            return f"{D2_BACKBONE_PREFIX}res{int(name[3]) + 1}{name[4:]}"
        if name.startswith("FPN_"):  # FPN levels 0..3 = detectron2's 2..5
            kind, rest = name[4:].split(".", 1)
            return f"backbone.fpn_{kind[:-1]}{int(kind[-1]) + 2}.{rest}"
        if name.startswith("KPCONV"):  # Sequential(conv, relu, ...): conv 2n-2 = conv_fcn{n}
            index, rest = name[6:].split(".", 1)
            return f"roi_heads.keypoint_head.conv_fcn{int(index) // 2 + 1}.{rest}"
        return name
    return None


def key_mapping(student_keys: list[str]) -> dict[str, str]:
    """orpose key -> detectron2 key, for every student key that has a detectron2 twin."""
    return {k: d2 for k in student_keys if (d2 := detectron2_name(k)) is not None}


# -- value conversions ---------------------------------------------------------------------------


def _stem_factor(pixel_std: torch.Tensor) -> torch.Tensor:
    """Per RGB input channel: what detectron2's stem weights are multiplied by for torchvision."""
    std_rgb = torch.tensor(IMAGENET_STD, dtype=torch.float64)
    return (255.0 * std_rgb / pixel_std.double().flip(0)).view(1, 3, 1, 1)


def _check_pixel_mean(pixel_mean: torch.Tensor) -> None:
    expected = torch.tensor(IMAGENET_MEAN, dtype=torch.float64).flip(0) * 255.0
    if not torch.allclose(pixel_mean.double().flatten(), expected, atol=1e-2):
        raise ValueError(
            f"pixel_mean {pixel_mean.flatten().tolist()} is not ImageNet's mean x 255 (BGR): the "
            "first convolution cannot be converted exactly"
        )


def stem_from_detectron2(weight: torch.Tensor, pixel_std: torch.Tensor) -> torch.Tensor:
    """BGR 0..255 stem weights -> RGB [0, 1] ImageNet-normalised stem weights."""
    return (weight.double().flip(1) * _stem_factor(pixel_std)).to(weight.dtype)


def stem_to_detectron2(weight: torch.Tensor, pixel_std: torch.Tensor) -> torch.Tensor:
    return (weight.double() / _stem_factor(pixel_std)).flip(1).to(weight.dtype)


def _classes_of(d2: Mapping[str, torch.Tensor]) -> int:
    return d2[f"{CLS_KEY}.weight"].shape[0] - 1


def predictor_from_detectron2(
    d2: Mapping[str, torch.Tensor], suffix: str, person_class: int
) -> dict[str, torch.Tensor]:
    """torchvision's (background, person) rows of the box predictor from detectron2's."""
    classes = _classes_of(d2)
    if not 0 <= person_class < classes:
        raise ValueError(f"person class {person_class} outside the model's {classes} classes")
    cls = d2[f"{CLS_KEY}.{suffix}"]
    box = d2[f"{BOX_KEY}.{suffix}"]
    agnostic = box.shape[0] == 4
    person_box = box[:4] if agnostic else box[4 * person_class : 4 * person_class + 4]
    return {
        f"{CLS_KEY}.{suffix}": torch.stack([cls[classes], cls[person_class]]),
        f"{BOX_KEY}.{suffix}": torch.cat([torch.zeros_like(person_box), person_box]),
    }


def predictor_to_detectron2(
    own: Mapping[str, torch.Tensor], suffix: str, num_classes: int, person_class: int
) -> dict[str, torch.Tensor]:
    """detectron2 rows (classes then background) from torchvision's; other classes get zeros."""
    cls = own[f"{CLS_KEY}.{suffix}"]
    box = own[f"{BOX_KEY}.{suffix}"]
    d2_cls = cls.new_zeros((num_classes + 1, *cls.shape[1:]))
    d2_cls[num_classes] = cls[0]
    d2_cls[person_class] = cls[1]
    d2_box = box.new_zeros((4 * num_classes, *box.shape[1:]))
    d2_box[4 * person_class : 4 * person_class + 4] = box[4:8]
    return {f"{CLS_KEY}.{suffix}": d2_cls, f"{BOX_KEY}.{suffix}": d2_box}


# -- whole state dicts ---------------------------------------------------------------------------


def _as_tensor(value: Any) -> torch.Tensor:
    """detectron2 checkpoints hold tensors (.pth) or numpy arrays (.pkl)."""
    return value if isinstance(value, torch.Tensor) else torch.as_tensor(np.asarray(value))


def from_detectron2(
    d2: Mapping[str, Any], student_keys: list[str], person_class: int = 0
) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Rename and convert a detectron2 state dict; returns (orpose state, unmapped d2 keys)."""
    d2 = {k: _as_tensor(v) for k, v in d2.items()}
    pixel_std = d2.get("pixel_std", torch.tensor(D2_PIXEL_STD)).flatten()
    if "pixel_mean" in d2:
        _check_pixel_mean(d2["pixel_mean"])
    mapping = key_mapping(student_keys)
    state: dict[str, torch.Tensor] = {}
    for own_key, d2_key in mapping.items():
        if d2_key not in d2 or own_key.startswith((CLS_KEY, BOX_KEY)):
            continue
        value = d2[d2_key]
        state[own_key] = stem_from_detectron2(value, pixel_std) if own_key == STEM_KEY else value
    for suffix in ("weight", "bias"):
        if f"{CLS_KEY}.{suffix}" in d2:
            state.update(predictor_from_detectron2(d2, suffix, person_class))
    used = set(mapping.values()) | {"pixel_mean", "pixel_std"}
    return state, sorted(k for k in d2 if k not in used and not k.endswith("num_batches_tracked"))


def to_detectron2(
    state: Mapping[str, torch.Tensor], num_classes: int = 1, person_class: int = 0
) -> dict[str, torch.Tensor]:
    """The inverse renaming (tests, and sharing an orpose student with detectron2 tools)."""
    out: dict[str, torch.Tensor] = {}
    for own_key, d2_key in key_mapping(list(state)).items():
        if own_key.startswith((CLS_KEY, BOX_KEY)):
            continue
        value = state[own_key]
        out[d2_key] = (
            stem_to_detectron2(value, torch.tensor(D2_PIXEL_STD)) if own_key == STEM_KEY else value
        )
    for suffix in ("weight", "bias"):
        out.update(predictor_to_detectron2(state, suffix, num_classes, person_class))
    return out


# -- architecture ---------------------------------------------------------------------------------


def detectron2_state(checkpoint: Any) -> dict[str, Any] | None:
    """The model state of a detectron2 checkpoint object, None when it is not one."""
    state = checkpoint.get("model", checkpoint) if isinstance(checkpoint, dict) else None
    if not isinstance(state, dict) or not any(str(k).startswith(D2_BACKBONE_PREFIX) for k in state):
        return None
    return state


def student_config_for(d2: Mapping[str, Any], **overrides: Any) -> StudentConfig:
    """The orpose architecture of a detectron2 student: backbone depth and head from its shapes."""
    if f"{D2_BACKBONE_PREFIX}res2.0.conv3.weight" in d2:
        blocks = {
            s: sum(
                1 for k in d2 if re.match(rf"{D2_BACKBONE_PREFIX}res{s}\.\d+\.conv1\.weight$", k)
            )
            for s in (3, 4)
        }
        if blocks != {3: 4, 4: 6}:
            raise ValueError(
                f"only ResNet-50 detectron2 students are supported (res3/res4 blocks "
                f"{blocks[3]}/{blocks[4]})"
            )
        backbone = "resnet50_fpn"
    else:
        backbone = "resnet18_fpn"
    convs = sorted(
        (int(m.group(1)), _as_tensor(v).shape[0])
        for k, v in d2.items()
        if (m := re.fullmatch(r"roi_heads\.keypoint_head\.conv_fcn(\d+)\.weight", k))
    )
    settings: dict[str, Any] = {
        "backbone": backbone,
        "norm": "frozen_bn",
        # detectron2's ROIAlignV2 poolers (sampling ratio 0) and keypoint probability
        "roi_align_aligned": True,
        "roi_sampling_ratio": 0,
        "keypoint_score": "probability",
        # the official lifters replace orpose's (see load_detectron2_student)
        "lifters": False,
    }
    if convs:
        settings["head_convs"] = tuple(c for _, c in convs)
    fc1 = d2.get("roi_heads.box_head.fc1.weight")
    if fc1 is not None and "box_head_size" in {f.name for f in fields(StudentConfig)}:
        settings["box_head_size"] = int(_as_tensor(fc1).shape[0])
    settings["stride_in_1x1"] = backbone == "resnet50_fpn"  # bottlenecks: detectron2's MSRA layout
    settings.update(overrides)
    return StudentConfig(**settings)


def official_lifter_stages(d2: Mapping[str, Any], branch: str) -> int:
    """How many residual stages a checkpoint's ``nw2Dto3D_{branch}`` lifter has (2 officially)."""
    pattern = rf"{re.escape(D2_LIFTER_PREFIX)}{branch}\.linear_stages\.(\d+)\.w1\.weight"
    found = [int(m.group(1)) for k in d2 if (m := re.fullmatch(pattern, k))]
    return max(found) + 1 if found else 2


def missing_lifter_keys(d2: Mapping[str, Any]) -> list[str]:
    """The official lifter weights (both branches) a detectron2 checkpoint lacks."""
    missing = []
    for branch in ("soft", "hard"):
        prefix = f"{D2_LIFTER_PREFIX}{branch}."
        keys = official_lifter_keys(official_lifter_stages(d2, branch))
        missing += [prefix + k for k in keys if prefix + k not in d2]
    return missing


def official_lifter_for(d2: Mapping[str, Any], stats: Mapping[str, np.ndarray]) -> OfficialLifter:
    """An official lifter shaped as the checkpoint's (weights loaded later) with ``stats``."""
    w1 = _as_tensor(d2[f"{D2_LIFTER_PREFIX}soft.w1.weight"])
    config = OfficialLifterConfig(
        hidden=int(w1.shape[0]), stages=official_lifter_stages(d2, "soft")
    )
    return OfficialLifter(config, dict(stats))


def _describe_missing(keys: list[str]) -> str:
    branches = sorted({k[len(D2_LIFTER_PREFIX) :].split(".", 1)[0] for k in keys})
    where = ", ".join(f"{D2_LIFTER_PREFIX}{b}.*" for b in branches)
    count = f"{len(keys)} keys of {where}, e.g. {keys[0]}"
    return f"its lifter weights are missing or incomplete ({count})"


def load_detectron2_student(
    path: Path | str,
    person_class: int = 0,
    stride_in_1x1: bool = True,
    checkpoint: Any = None,
    h36_stats: Path | str | None = None,
    **config_overrides: Any,
) -> tuple[ORPoseStudent, dict[str, Any]]:
    """A student with an official (detectron2) checkpoint's weights, and a loading report.

    3D: the official lifters when the checkpoint has their weights and the Human3.6M statistics
    are given (``h36_stats``, else ``$ORPOSE_H36_STATS``); otherwise no lifters and one logged
    warning naming what is missing (a ``lifters`` override keeps orpose's own lifters instead).

    ``stride_in_1x1``: detectron2's ResNet bottleneck strides (the config field of that name).
    The report (also ``model.orpose_load_report``) lists ``unmapped`` detectron2 keys,
    ``missing`` student keys, ``lifters``
    (``official``, ``orpose`` or ``none``), ``h36_stats`` (the statistics file used, or None)
    and ``warnings``. ``checkpoint``: the file's content when the caller has read it (safely,
    see :mod:`orpose.checkpoints`).
    """
    path = Path(path)
    if checkpoint is None:
        checkpoint = read_checkpoint(path)
    d2 = detectron2_state(checkpoint)
    if d2 is None:
        raise ValueError(f"{path}: not a detectron2 checkpoint (no '{D2_BACKBONE_PREFIX}*' keys)")
    overrides = {"stride_in_1x1": stride_in_1x1, **config_overrides}
    model = build_student(student_config_for(d2, **overrides))
    warnings: list[str] = []
    lifters = "orpose" if model.keypoint_head.has_lifters else "none"
    stats_file = None
    if "lifters" not in config_overrides:
        missing_weights = missing_lifter_keys(d2)
        stats_file = h36_stats_path(h36_stats)
        problems = [_describe_missing(missing_weights)] if missing_weights else []
        if stats_file is None:
            problems.append(
                "the Human3.6M statistics of its lifters are not given (the official "
                f"data/h36stats.json: --h36-stats FILE or ${H36_STATS_ENV})"
            )
        if problems:
            stats_file = None
            warnings.append(f"{path}: official checkpoint loaded without 3D: {'; '.join(problems)}")
        else:
            head = model.keypoint_head
            head.set_lifters(official_lifter_for(d2, read_h36_stats(stats_file)))
            model.config.lifters = True
            model.config.lifter_config = dict(head.lifter_config)
            lifters = "official"
    own = model.state_dict()
    state, unmapped = from_detectron2(d2, list(own), person_class)
    for key, value in state.items():
        if own[key].shape != value.shape:
            raise ValueError(
                f"{path}: '{detectron2_name(key)}' has shape {tuple(value.shape)}, the student's "
                f"'{key}' {tuple(own[key].shape)}"
            )
    missing = model.load_state_dict(state, strict=False).missing_keys
    stat_keys = tuple(f".{name}" for name in STAT_BUFFERS) if lifters == "official" else ()
    report = {
        "unmapped": unmapped,
        "missing": [
            k
            for k in missing
            if not k.endswith("num_batches_tracked") and not (stat_keys and k.endswith(stat_keys))
        ],
        "lifters": lifters,
        "h36_stats": str(stats_file) if stats_file is not None else None,
        "warnings": warnings,
    }
    for message in warnings:
        log.warning(message)
    model.orpose_load_report = report
    return model.eval(), report
