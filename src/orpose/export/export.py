"""Export the student to ONNX (and TorchScript): one graph from the RGB image to 2D and 3D people.

The whole student is exported, as torchvision exports its own detection models: resize and
normalisation, backbone, RPN, box head with NMS, both keypoint branches and both lifters. The graph

- takes ``image``: float32 ``(3, H, W)``, RGB in [0, 1]; batch 1; H and W are **dynamic** (any
  size; the graph resizes to the student's ``min_size``/``max_size`` itself), except for the
  ``picodet_lcnet`` backbone, whose graph takes the tracing image's size only
  (its registry entry in :mod:`orpose.student.backbones`; export it at the camera's size);
- returns :data:`OUTPUT_NAMES` (the interface :mod:`orpose.inference.onnx_runner` reads), each
  with a dynamic first axis (the number of people):
  ``boxes`` (N, 4) xyxy, ``scores`` (N,), ``keypoints`` (N, 17, 3) (x, y, 1), ``keypoints_scores``
  (N, 17) heatmap logits, ``keypoints3d`` (N, 17, 3) mm root-relative, and the two branches' 2D
  (the lifters' inputs), all in the input image's pixels.

Thresholds (box score, NMS, detections per image) are constants of the graph: export the model
with the settings it will run with.

The legacy TorchScript-based exporter is used (``dynamo=False``): torchvision's detection models
trace through it, with ONNX-specific code paths for RoIAlign, NMS and the heatmap decoding.
Tracing bakes Python arithmetic on sizes into constants; :class:`TraceableTransform` keeps the
resize computed in the graph, in float64 as PyTorch computes it in Python, so that ONNX picks the
same resized size as PyTorch for every input size.
"""

from __future__ import annotations

import copy
import math
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
from torch import nn

from orpose.compat_torchvision import get_shape_onnx
from orpose.export.branch_weights import branch_local_weights
from orpose.inference.onnx_runner import FACTOR_NAME, INPUT_NAME, MIN_SCORE_NAME, OUTPUT_NAMES
from orpose.student.model import ORPoseStudent, ORPoseTransform
from orpose.student.onnx_import import tracing_for_export
from orpose.student.registry import backbone_of, family_of, limit_holder
from orpose.student.topdown import GROUP_KEYS

__all__ = [
    "DEFAULT_OPSET",
    "DEFAULT_SAMPLE_SIZE",
    "INPUT_NAME",
    "OUTPUT_NAMES",
    "ExportableStudent",
    "SkipWithoutCrops",
    "TraceableTransform",
    "crop_size_branches",
    "export_onnx",
    "export_torchscript",
    "has_branches",
    "has_crop_sizes",
    "has_fixed_size",
    "sample_image",
]
DEFAULT_OPSET = 17
DEFAULT_SAMPLE_SIZE = (640, 480)  # (width, height) of the tracing image


def has_fixed_size(model: nn.Module) -> bool:
    """Whether the exported graph of this student is for one image size only (its backbone's
    registry entry says so: ``fixed_size_export``; a family without a backbone choice: no)."""
    spec = backbone_of(model)
    return bool(spec and spec.fixed_size_export)


def sample_image(size: tuple[int, int] = DEFAULT_SAMPLE_SIZE) -> torch.Tensor:
    """A deterministic tracing image ``(3, H, W)`` of ``size`` = (width, height)."""
    return torch.rand(3, size[1], size[0], generator=torch.Generator().manual_seed(0))


class TraceableTransform(ORPoseTransform):
    """The student's transform with a resize whose output size stays an expression of the input.

    torchvision's traced resize computes the scale in float32 as ``reciprocal(size) * target``,
    which can floor to one pixel less than PyTorch's Python-float computation (e.g. 150x200 ->
    119x159 instead of 120x160). Here the scale is a true float64 division and the size a float64
    product, as in Python. Outside tracing it is the student's own resize.
    """

    def resize(self, image, target=None):
        if not torch.jit.is_tracing() or self.training or target is not None:
            return super().resize(image, target)
        shape = get_shape_onnx(image).to(torch.float64)
        # 1-D tensors, not 0-d ones: the exporter treats 0-d tensors as Python scalars and would
        # compute this division in float32
        targets = torch.tensor([self.min_size[-1], self.max_size], dtype=torch.float64)
        scale = (targets / torch.stack([shape.min(), shape.max()])).min()
        size = torch.floor(shape * scale)
        # per-axis factors whose product with the input size lands mid-way in the wanted pixel,
        # so that the exporter's float32 floor() cannot fall one pixel short
        factors = ((size + 0.5) / shape).to(torch.float32)
        resized = nn.functional.interpolate(
            image[None],
            scale_factor=(factors[0], factors[1]),  # traced tensors, as torchvision does
            mode="bilinear",
            recompute_scale_factor=True,
            align_corners=False,
        )[0]
        return resized, None


class ExportableStudent(nn.Module):
    """The student as a function of one image tensor returning a tuple (what exporters need)."""

    def __init__(self, model: nn.Module, native: bool = False):
        super().__init__()
        model = copy.deepcopy(model).eval()
        if native:  # the CPU student's native low-resolution path, as a graph of its own
            model.force_native = True
        if family_of(model).resize_in_graph:  # Keypoint R-CNN: keep its resize in the graph
            old = model.transform
            model.transform = TraceableTransform(
                old.min_size, old.max_size, old.image_mean, old.image_std
            )
        self.model = model.eval()  # the new transform too: in training mode it skips postprocess
        self.has_3d = bool(model.config.lifters)

    @property
    def output_names(self) -> tuple[str, ...]:
        return OUTPUT_NAMES if self.has_3d else tuple(n for n in OUTPUT_NAMES if n != "keypoints3d")

    @property
    def takes_min_score(self) -> bool:
        """Whether the graph gets the optional input :data:`MIN_SCORE_NAME` (the families
        whose forward takes ``min_scores``)."""
        return family_of(self.model).min_score_per_image

    @property
    def takes_factor(self) -> bool:
        """Whether the graph gets the optional input :data:`FACTOR_NAME` (:func:`takes_factor`)."""
        return takes_factor(self.model)

    def forward(
        self,
        image: torch.Tensor,
        min_score: torch.Tensor | None = None,
        factor: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, ...]:
        options = {}
        if min_score is not None:
            options["min_scores"] = [min_score]
        if factor is not None:
            options["factors"] = [factor]
        (det,) = self.model([image], **options)
        return tuple(det[name] for name in self.output_names)


def takes_factor(model: nn.Module) -> bool:
    """Whether a graph of ``model`` gets the optional input :data:`FACTOR_NAME`: a full path
    (not the native one) of a student with a detector or lifters of its own for
    full-resolution frames."""
    own = ("full_res_detector", "full_res_lifters", "full_res_head")
    return bool(
        family_of(model).factor_per_image
        and any(getattr(model, name, None) is not None for name in own)
        and not getattr(model, "force_native", False)
    )


class _CropSizePose(nn.Module):
    """The pose work of one crop size (:meth:`TopDownStudent._pose_group`) as a function of
    tensors only, for tracing."""

    def __init__(self, student: nn.Module, size: tuple[int, int] | None,
                 factor: float | None = None):  # fmt: skip
        super().__init__()
        self.student, self.size, self.factor = student, size, factor

    def forward(self, image: torch.Tensor, regions: torch.Tensor) -> tuple[torch.Tensor, ...]:
        out = self.student._pose_group(image, regions, False, self.size, self.factor)
        return tuple(out[key] for key in GROUP_KEYS)


class SkipWithoutCrops(nn.Module):
    """A traced crop size's pose work, run only where it has crops (scripted: an ONNX ``If``).

    Without it a graph runs the trunk of every crop size on every frame, about 1,000 nodes
    each even on no crop: 1.7 ms of a 19 ms one-person frame (docs/inference.md)."""

    def __init__(self, traced: nn.Module, joints: int):
        super().__init__()
        self.traced = traced
        self.joints = joints

    def forward(
        self, image: torch.Tensor, regions: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        if regions.size(0) > 0:
            return self.traced(image, regions)
        return no_people(image, self.joints)


def no_people(
    image: torch.Tensor, joints: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """A crop size's outputs for no one (scripted with the branches that return them)."""
    k = joints
    # distinct fill values: the exporter merges equal constants, and with them the If's
    # outputs (all three point sets then read the last one's)
    return (
        torch.full([0, k, 3], 0.0, dtype=image.dtype, device=image.device),
        torch.full([0, k], 1.0, dtype=image.dtype, device=image.device),
        torch.full([0, k, 3], 2.0, dtype=image.dtype, device=image.device),
        torch.full([0, k, 3], 3.0, dtype=image.dtype, device=image.device),
    )


class SkipUnlessChosen(nn.Module):
    """A traced crop size's pose work by one of two heads, run only where it has crops and the
    frame's factor chose that head: the full-resolution head's where the factor is at most 1
    (scripted: one ONNX ``If`` whose branch holds the weights, after a choice of no weights)."""

    def __init__(self, traced: nn.Module, joints: int, full_res: bool):
        super().__init__()
        self.traced = traced
        self.joints = joints
        self.full_res = full_res

    def forward(
        self, image: torch.Tensor, regions: torch.Tensor, factor: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        run = bool(factor <= 1.0) == self.full_res and regions.size(0) > 0
        if run:
            return self.traced(image, regions)
        return no_people(image, self.joints)


class HeadChoice(nn.Module):
    """A crop size's pose work by the full-resolution head where the frame's ``factor`` is at
    most 1 and by the trained head elsewhere: two :class:`SkipUnlessChosen` side by side, one of
    which poses the crops while the other returns no one (one level of ``If``, so that each
    branch keeps its weights, :mod:`orpose.export.branch_weights`)."""

    def __init__(self, full_res: nn.Module, lowres: nn.Module):
        super().__init__()
        self.full_res, self.lowres = full_res, lowres

    def forward(
        self, image: torch.Tensor, regions: torch.Tensor, factor: torch.Tensor
    ) -> tuple[torch.Tensor, ...]:
        a = self.full_res(image, regions, factor)
        b = self.lowres(image, regions, factor)
        return tuple(torch.cat([x, y]) for x, y in zip(a, b, strict=True))


def _crop_tiers(model: nn.Module) -> list:
    """The smaller crop sizes of the student's full path (its family's ``crop_tiers``; [] for a
    family with one size)."""
    tiers = family_of(model).crop_tiers
    return [] if tiers is None else tiers(model)


def has_crop_sizes(model: nn.Module) -> bool:
    """Whether the student's full path poses people at several crop sizes (the CPU student's
    ``crop_tiers``): its graphs then hold one ``If`` branch per size."""
    return bool(_crop_tiers(model))


def crop_size_branches(model: nn.Module, sample: torch.Tensor) -> nn.ModuleList | None:
    """Per crop size of the CPU student's full path (its ``crop_tiers``, full size first), its
    pose work traced on ``sample`` and wrapped in :class:`SkipWithoutCrops`; None for a student
    without crop sizes (the paper's, or one with ``small_crop_max_height`` 0 and no middle)."""
    tiers = _crop_tiers(model)
    if not tiers:
        return None
    h, w = sample.shape[-2:]
    # two people: any regions trace the same graph (the crop size is the branch's own)
    regions = torch.tensor([[0.1, 0.1, 0.4, 0.9], [0.5, 0.2, 0.8, 0.7]]) * torch.tensor([w, h] * 2)
    two_heads = getattr(model, "full_res_head", None) is not None and takes_factor(model)

    def traced(size, factor=None) -> tuple[nn.Module, int]:
        """One crop size's pose work (by the head of ``factor``) traced, and its joint count."""
        pose = _CropSizePose(model, size, factor)
        joints = pose(sample, regions)[0].shape[1]
        return torch.jit.trace(pose, (sample, regions), check_trace=False), joints

    branches = []
    with _quiet_tracing(), torch.no_grad(), tracing_for_export():
        for size in [None, *(size for _, size in tiers)]:
            if not two_heads:
                branches.append(torch.jit.script(SkipWithoutCrops(*traced(size))))
                continue
            full, low = (torch.jit.script(SkipUnlessChosen(*traced(size, factor), full_res))
                         for full_res, factor in ((True, None), (False, math.inf)))  # fmt: skip
            branches.append(HeadChoice(full, low))
    return nn.ModuleList(branches)


class DetectorChoice(nn.Module):
    """The CPU student's two detectors, traced, of which a graph runs one per frame (scripted:
    an ONNX ``If``): the full-resolution one where the frame's ``factor`` is at most 1."""

    def __init__(self, full_res: nn.Module, lowres: nn.Module):
        super().__init__()
        self.full_res, self.lowres = full_res, lowres

    def forward(self, x: torch.Tensor, factor: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if bool(factor <= 1.0):
            return self.full_res(x)
        return self.lowres(x)


def detector_branches(model: nn.Module) -> nn.Module | None:
    """The student's detectors as a :class:`DetectorChoice` (None: one detector)."""
    full_res = getattr(model, "full_res_detector", None)
    if full_res is None:
        return None
    w, h = model.config.detector_size
    x = torch.zeros(1, 3, h, w)
    with _quiet_tracing(), torch.no_grad(), tracing_for_export():
        traced = [torch.jit.trace(d.eval(), (x,), check_trace=False)
                  for d in (full_res, model.detector)]  # fmt: skip
        return torch.jit.script(DetectorChoice(*traced))


def has_branches(model: nn.Module) -> bool:
    """Whether the student's full graph holds ``If`` branches (its crop sizes, its two
    detectors), which int8 quantization cannot enter: it then quantizes a flat copy."""
    return has_crop_sizes(model) or takes_factor(model)


def _traced(wrapper: ExportableStudent, args: tuple[torch.Tensor, ...]) -> nn.Module:
    """What the exporters get: the wrapper itself, or for a student with crop sizes or two
    detectors its TorchScript trace on ``args`` with :func:`crop_size_branches` and
    :func:`detector_branches` inside (a trace keeps scripted modules' control flow;
    ``torch.onnx.export`` cannot find scripted modules in a module it traces)."""
    branches = crop_size_branches(wrapper.model, args[0])
    choice = detector_branches(wrapper.model) if wrapper.takes_factor else None
    if branches is None and choice is None:
        return wrapper
    wrapper.model.crop_branches = branches
    wrapper.model.detector_branches = choice
    with _quiet_tracing(), torch.no_grad(), tracing_for_export():
        return torch.jit.trace(wrapper, args, check_trace=False)


def _optional_inputs(wrapper: ExportableStudent) -> dict[str, float]:
    """The graph's optional inputs after the image, in order, with their values when a caller
    gives none: ``min_score`` (the model's own), then ``factor`` (1: full resolution)."""
    defaults = {}
    if wrapper.takes_min_score:
        defaults[MIN_SCORE_NAME] = _min_score_default(wrapper.model)
    if wrapper.takes_factor:
        if not wrapper.takes_min_score:
            raise ValueError("a graph with a factor input must take min_score too")
        defaults[FACTOR_NAME] = 1.0
    return defaults


class _MinScoreDefault(nn.Module):
    """A traced student of ``(image, min_score)`` callable as ``(image, min_score=None)``: a
    trace has no default arguments, the ONNX graph's optional inputs do."""

    def __init__(self, traced: nn.Module, min_score: float):
        super().__init__()
        self.traced = traced
        self.min_score = min_score

    def forward(self, image: torch.Tensor, min_score: torch.Tensor | None = None):
        if min_score is None:
            min_score = torch.tensor(self.min_score)
        return self.traced(image, min_score)


class _FactorDefault(nn.Module):
    """A traced student of ``(image, min_score, factor)`` callable as ``(image, min_score=None,
    factor=None)`` (see :class:`_MinScoreDefault`; ``factor`` 1: full resolution)."""

    def __init__(self, traced: nn.Module, min_score: float, factor: float):
        super().__init__()
        self.traced = traced
        self.min_score = min_score
        self.factor = factor

    def forward(
        self,
        image: torch.Tensor,
        min_score: torch.Tensor | None = None,
        factor: torch.Tensor | None = None,
    ):
        if min_score is None:
            min_score = torch.tensor(self.min_score)
        if factor is None:
            factor = torch.tensor(self.factor)
        return self.traced(image, min_score, factor)


def _min_score_default(model: nn.Module) -> float:
    """The model's own least detection score to pose (the graph's :data:`MIN_SCORE_NAME`
    default)."""
    holder, attribute = limit_holder(model, "score")
    return float(getattr(holder, attribute))


def _give_default(model, name: str, value: float) -> None:
    """Make the graph input ``name`` of the ``onnx.ModelProto`` optional: an initializer of
    that name is its value when a caller gives none (ONNX IR 4 and later; onnxruntime lists it
    among the overridable initializers, not the inputs)."""
    from onnx import numpy_helper

    model.graph.initializer.append(numpy_helper.from_array(np.array(value, np.float32), name))


@contextmanager
def _quiet_tracing() -> Iterator[None]:
    """Tracer warnings about Python values are expected here (see the module docstring)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def export_onnx(
    model: ORPoseStudent,
    path: Path | str,
    sample: torch.Tensor | None = None,
    opset: int = DEFAULT_OPSET,
    native: bool = False,
    skip_empty_crops: bool = True,
) -> Path:
    """Write the student as an ONNX graph with dynamic image size and number of people.

    ``sample`` is the tracing image ``(3, H, W)``; any image works (the graph is the same), a
    real one is the usual choice. ``native``: the CPU student's native low-resolution path (its
    smaller detector input and crops, for frames of at most ``native_max_side`` pixels).
    ``skip_empty_crops``: the CPU student's crop sizes as ``If`` branches
    (:func:`crop_size_branches`), and its two detectors (``full_res_detector_share`` < 1) as
    one (:func:`detector_branches`, picked by the optional input :data:`FACTOR_NAME`); False
    keeps one flat graph (what int8 quantization reads), which runs both detectors and keeps
    the frame's outputs.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    wrapper = ExportableStudent(model.cpu(), native).eval()
    sample = sample_image() if sample is None else sample
    names = list(wrapper.output_names)
    dynamic = {INPUT_NAME: {1: "height", 2: "width"}, **{n: {0: "people"} for n in names}}
    defaults = _optional_inputs(wrapper)
    args = (sample, *(torch.tensor(v) for v in defaults.values()))
    inputs = [INPUT_NAME, *defaults]
    traced = wrapper if native or not skip_empty_crops else _traced(wrapper, args)
    with _quiet_tracing(), torch.no_grad():
        torch.onnx.export(
            traced,
            args,
            str(path),
            dynamo=False,
            opset_version=opset,
            input_names=inputs,
            output_names=names,
            dynamic_axes=dynamic,
            do_constant_folding=True,
        )
    if traced is not wrapper or defaults:  # the rewrites: one load, one save
        import onnx

        graph = onnx.load(str(path))
        if traced is not wrapper:
            branch_local_weights(graph)
        for name, value in defaults.items():
            _give_default(graph, name, value)
        onnx.save(graph, str(path))
    return path


def export_torchscript(
    model: ORPoseStudent, path: Path | str, sample: torch.Tensor | None = None
) -> Path:
    """A TorchScript module with the ONNX graph's signature (``torch.jit.load``): ``(image,
    min_score=None, factor=None)`` for the students whose graph takes them, ``(image)`` else.

    Tracing, not scripting: the student's Python code (dataclass config, ``zip(strict=...)``)
    is outside TorchScript's language; the traced graph shares the ONNX export's code paths.
    Only the small module that gives the optional inputs their defaults is scripted.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    wrapper = ExportableStudent(model.cpu()).eval()
    sample = sample_image() if sample is None else sample
    defaults = list(_optional_inputs(wrapper).values())
    args = (sample, *(torch.tensor(v) for v in defaults))
    traced = _traced(wrapper, args)
    if traced is wrapper:
        with _quiet_tracing(), torch.no_grad():
            traced = torch.jit.trace(wrapper, args, check_trace=False)
    if len(defaults) == 1:
        traced = torch.jit.script(_MinScoreDefault(traced, *defaults))
    elif len(defaults) == 2:
        traced = torch.jit.script(_FactorDefault(traced, *defaults))
    traced.save(str(path))
    return path
