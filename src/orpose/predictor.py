"""The student as a function from an RGB image to COCO-style person results.

On the checkpoints' floor (it loads students from their files), below training, evaluation and
inference, which all run a student on images: :class:`StudentPredictor` (``predictor(image)`` ->
result dicts), :func:`resolve_student` (a checkpoint or ``random:BACKBONE``), the knobs they set
(:func:`limit_proposals`, :func:`limit_detections`, :func:`fix_people`) and
:func:`detections_to_results`. Checkpoints: :mod:`orpose.checkpoints` (``load_student`` and
``save_student`` are re-exported here).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from orpose.checkpoints.student import load_student, save_student
from orpose.errors import UserError
from orpose.lifting.intrinsics import Intrinsics, LiftMapping, lift_mapping
from orpose.student.model import ORPoseStudent, StudentConfig, build_student
from orpose.student.registry import family_of, limit_holder

__all__ = [
    "RANDOM_PREFIX",
    "StudentPredictor",
    "detections_to_results",
    "fix_people",
    "limit_detections",
    "limit_proposals",
    "load_student",
    "model_name",
    "resolve_student",
    "save_student",
]

RANDOM_PREFIX = "random:"


SCORE_DECIMALS = 5  # of a result's score (the COCO results files)


def resolve_student(spec: str | Path, h36_stats: Path | str | None = None) -> ORPoseStudent:
    """A student from a checkpoint file, or ``random:BACKBONE`` (e.g. ``random:resnet50_fpn``):
    random weights drawn with seed 0 and frozen batch norm, as deployed. ``h36_stats``: the
    official lifters' statistics (official checkpoints; default ``$ORPOSE_H36_STATS``), see
    :func:`orpose.checkpoints.load_student`.

    Why: trying the pipeline, exporting and benchmarking need no trained model (speed and
    PyTorch/ONNX agreement do not depend on the weights); the outputs are meaningless.
    """
    text = str(spec)
    if not text.startswith(RANDOM_PREFIX):
        return load_student(text, h36_stats=h36_stats)
    torch.manual_seed(0)
    config = StudentConfig(backbone=text[len(RANDOM_PREFIX) :], norm="frozen_bn")
    return build_student(config).eval()


def model_name(spec: str | Path) -> str:
    """A file-name stem for a model spec (``random:resnet50_fpn`` -> ``random_resnet50_fpn``)."""
    text = str(spec)
    return text.replace(":", "_") if text.startswith(RANDOM_PREFIX) else Path(text).stem


def limit_proposals(model: ORPoseStudent, count: int | None) -> ORPoseStudent:
    """Keep at most ``count`` RPN proposals per image at inference (torchvision's
    ``rpn_post_nms_top_n_test``, 1000 by default).

    Why: the box head costs 12.8 M multiply-adds per proposal (its first layer is
    256 x 7 x 7 -> 1024), a large share of a CPU's time; a scene with a handful of people needs far
    fewer than 1000 candidates. None leaves the model as it is.
    """
    if count is not None:
        if count < 1:
            raise ValueError(f"the number of proposals must be >= 1, got {count}")
        hook = family_of(model).set_proposals  # a one-stage detector (the CPU student) has none
        if hook is not None:
            hook(model, count)
    return model


def _limit(model: torch.nn.Module, which: str) -> tuple[object, str]:
    """The object and attribute that hold ``model``'s ``which`` limit (its family's entry,
    :attr:`orpose.student.registry.StudentFamily.limits`)."""
    return limit_holder(model, which)


def limit_detections(model: torch.nn.Module, count: int | None) -> torch.nn.Module:
    """Keep at most ``count`` people per image (None: the model's own limit)."""
    if count is not None:
        if count < 1:
            raise ValueError(f"the number of detections must be >= 1, got {count}")
        setattr(*_limit(model, "people"), int(count))
    return model


def set_min_person_score(model: torch.nn.Module, score: float | None) -> torch.nn.Module:
    """Pose only people detected with at least ``score`` (None: the model's own threshold).

    A top-down student's cost grows with every person it poses, so this is its speed/recall
    knob: the teacher poses detections of at least 0.3 (``min_person_score``), the CPU student
    trained here 0.2 (more people for COCO AP, which rewards low-score recall)."""
    if score is not None:
        if not 0 <= score <= 1:
            raise ValueError(f"a person score threshold must lie in [0, 1], got {score}")
        setattr(*_limit(model, "score"), float(score))
    return model


def skip_people_below(model: torch.nn.Module, score: float) -> torch.nn.Module:
    """Raise the model's person threshold to ``score`` where that changes no written result:
    a person's final score is at most its detection score (the CPU student multiplies it by
    keypoint scores in [0, 1]; Keypoint R-CNN keeps it), so people detected below the output
    threshold of ``orpose predict`` would be dropped anyway, after costing a pose pass."""
    current = float(getattr(*_limit(model, "score")))
    return set_min_person_score(model, max(current, min(1.0, float(score))))


def set_flip_test(model: torch.nn.Module, on: bool) -> torch.nn.Module:
    """Pose every person also on the mirror image of its crop and average the heatmaps (the
    teacher's pose flip; ``predict`` / ``eval`` / ``export --flip``): twice the pose work, more
    accurate at low resolution (docs/student.md). Only the CPU student poses crops."""
    if on:
        family = family_of(model)
        if "flip" not in family.limits:
            raise UserError(
                f"--flip: only the CPU student poses person crops it can mirror; this model is "
                f"a {family.name}"
            )
        setattr(*_limit(model, "flip"), True)
    return model


def fix_people(model: torch.nn.Module, count: int) -> torch.nn.Module:
    """Make a student pose exactly ``count`` people per image (score thresholds 0): the work a
    scene with that many people costs, whatever the weights (benchmarks, FLOP counts)."""
    setattr(*_limit(model, "score"), 0.0)
    setattr(*_limit(model, "people"), count)
    if "detection_score" in family_of(model).limits:  # a filter before NMS (the CPU student)
        setattr(*_limit(model, "detection_score"), 0.0)
    return model


def image_tensor(image: np.ndarray) -> torch.Tensor:
    """An RGB uint8 ``(H, W, 3)`` image as the students take it: float ``(3, H, W)`` in [0, 1]."""
    return torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float() / 255.0


def detections_to_results(det: dict[str, torch.Tensor], score_threshold: float = 0.0) -> list[dict]:
    """One image's detections to COCO results (bbox xywh, keypoints [x, y, score] x 17, 3D mm)."""
    keep = det["scores"] >= score_threshold
    boxes = det["boxes"][keep].cpu().numpy().astype(np.float64)
    scores = det["scores"][keep].cpu().numpy()
    kps = det["keypoints"][keep].cpu().numpy().astype(np.float64)
    kps[..., 2] = det["keypoints_scores"][keep].cpu().numpy()  # probabilities
    has3d = "keypoints3d" in det
    pose3d = det["keypoints3d"][keep].cpu().numpy() if has3d else None
    results = []
    for i in range(len(boxes)):
        x1, y1, x2, y2 = boxes[i]
        r = {"category_id": 1, "bbox": [round(float(v), 2) for v in (x1, y1, x2 - x1, y2 - y1)],
             "score": round(float(scores[i]), SCORE_DECIMALS),
             "keypoints": [round(float(v), 3) for v in kps[i].ravel()]}  # fmt: skip
        if pose3d is not None:
            r["keypoints3d"] = [round(float(v), 1) for v in pose3d[i].ravel()]
        results.append(r)
    return results


class StudentPredictor:
    """``predictor(image)`` -> list of result dicts (without ``image_id``).

    3D: the lifters take the 2D keypoints through ``camera`` (the frames' intrinsics, see
    :mod:`orpose.lifting.intrinsics`; None: the frame's pixels as they are, right for MVOR-like
    640x480 cameras); ``predictor(small, original_size=(w, h))`` poses a frame shrunk from one of
    that size as it is (the CPU student's native path) and lifts in the original's pixels."""

    accepts_original_size = True  # see orpose.lifting.intrinsics.call_with_original_size

    @property
    def accepts_min_score(self) -> bool:
        """Whether ``predictor(image, min_score=s)`` leaves the people detected below s unposed
        (they could not be shown from s; see orpose.inference.pipeline.predict_frame): the
        families that pose from a score per image (the CPU student); others ignore it."""
        return family_of(self.model).min_score_per_image

    @property
    def accepts_factor(self) -> bool:
        """Whether ``predictor(image, factor=s)`` is told that the image was shrunk ``s`` times
        (and upsampled back), which picks the student's detector (the families with
        ``factor_per_image``); others ignore it."""
        return family_of(self.model).factor_per_image

    def __init__(self, model: ORPoseStudent, device: str | torch.device | None = None,
                 score_threshold: float = 0.0, camera: Intrinsics | None = None):  # fmt: skip
        if device is None:
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.score_threshold = score_threshold
        self.camera = camera
        # how an official checkpoint was converted (lifters, statistics, warnings), else None
        self.load_report: dict | None = getattr(model, "orpose_load_report", None)

    @classmethod
    def from_checkpoint(
        cls,
        path: Path | str,
        device: str | None = None,
        proposals: int | None = None,
        h36_stats: Path | str | None = None,
        **kwargs,
    ):
        """From a checkpoint file or ``random:BACKBONE`` (see :func:`resolve_student`); the
        loader's report of an official checkpoint stays in ``load_report`` (its warnings, such
        as 3D left out for want of lifter weights or statistics, are logged once at load)."""
        model = resolve_student(path, h36_stats)
        return cls(limit_proposals(model, proposals), device, **kwargs)

    def lift_mapping(
        self, image: np.ndarray, original_size: tuple[int, int] | None = None
    ) -> LiftMapping | None:
        """The lifters' input map for ``image`` (None: the identity, the model's default)."""
        h, w = image.shape[:2]
        mapping = lift_mapping((w, h), original_size, self.camera)
        return None if mapping.is_identity else mapping

    @torch.inference_mode()
    def detect_many(
        self,
        images: list[np.ndarray],
        original_sizes: list[tuple[int, int] | None],
        min_scores: list[float | None] | None = None,
        factors: list[float | None] | None = None,
    ) -> list[dict[str, torch.Tensor]]:
        """RGB uint8 images -> the student's raw detections (tensors on its device), in one call
        of the network; ``original_sizes``: per image the (width, height) of the frame it was
        shrunk from, for 3D (None: the image itself). Images of several sizes may be mixed.
        ``min_scores``: per image the least detection score worth posing (None: the model's
        own threshold; a family without ``min_score_per_image`` poses from its own).
        ``factors``: per image how many times it was shrunk (None: full resolution), for the
        families with ``factor_per_image``."""
        mappings = [self.lift_mapping(i, o) for i, o in zip(images, original_sizes, strict=True)]
        tensors = [image_tensor(image).to(self.device) for image in images]
        options: dict = {}
        if any(m is not None for m in mappings):
            options["lift_mappings"] = mappings
        if min_scores is not None and family_of(self.model).min_score_per_image:
            options["min_scores"] = list(min_scores)
        if factors is not None and self.accepts_factor:
            options["factors"] = list(factors)
        return self.model(tensors, **options)

    def detect(
        self,
        image: np.ndarray,
        original_size: tuple[int, int] | None = None,
        min_score: float | None = None,
        factor: float | None = None,
    ) -> dict[str, torch.Tensor]:
        """One image's raw detections (see :meth:`detect_many`)."""
        (det,) = self.detect_many([image], [original_size], [min_score], [factor])
        return det

    def __call__(
        self,
        image: np.ndarray,
        original_size: tuple[int, int] | None = None,
        min_score: float | None = None,
        factor: float | None = None,
    ) -> list[dict]:
        det = self.detect(image, original_size, min_score, factor)
        return detections_to_results(det, self.score_threshold)

    def batch(
        self,
        images: list[np.ndarray],
        original_sizes: list[tuple[int, int] | None],
        min_scores: list[float | None] | None = None,
        factors: list[float | None] | None = None,
    ) -> list[list[dict]]:
        """Several frames (e.g. one per camera) in one call of the network: per frame what
        ``predictor(image, original_size, min_score, factor)`` gives."""
        dets = self.detect_many(images, original_sizes, min_scores, factors)
        return [detections_to_results(det, self.score_threshold) for det in dets]
