"""orpose as Python functions: load a model, call it on an image, get people back.

    import orpose

    predictor = orpose.load("orpose_demo/student/last.pt")
    for person in predictor("frame.jpg", downscale=12):  # privacy mode: 1/12 kept
        print(person.score, person.box, person.keypoints3d is not None)

- :func:`load`: a student checkpoint (either family, an official detectron2 checkpoint) or an
  exported ``.onnx`` -> :class:`Predictor`, whose call gives exactly the people ``orpose predict``
  writes for that image with the same settings (it runs the same per-frame code,
  :func:`orpose.inference.pipeline.predict_frame`);
- :func:`load_teacher`: the teacher (``orpose label``'s detector + pose model, optional lifter)
  as a callable; ``orpose.teacher`` is the teacher's package, hence the name;
- :func:`evaluate`: the metrics rows of ``orpose eval``, of prediction files, results in memory,
  a checkpoint or a :class:`Predictor`;
- :func:`train`: ``orpose train`` (config file + overrides) -> the checkpoint's path.

Every problem with an input raises an :class:`orpose.errors.OrposeError` subclass with one line
naming it, as the command line reports it (exit 2 there). The package's face (``orpose.load``...)
imports this module, and through it torch, only when first used. See docs/api.md.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from orpose.errors import ModelError, OrposeError, UserError
from orpose.skeleton import NUM_KEYPOINTS

__all__ = [
    "Person",
    "Predictor",
    "TeacherPredictor",
    "evaluate",
    "load",
    "load_teacher",
    "train",
]

ImageLike = Any  # a path (str / os.PathLike), an RGB uint8 (H, W, 3) array or a PIL image
RANDOM_PREFIX = "random:"  # orpose.predictor.RANDOM_PREFIX (not imported: torch)


# -- people ----------------------------------------------------------------------------------------


@dataclass(eq=False)
class Person:
    """One person, in the pixels of the image given (for a ``downscale`` call: of the image
    before it was shrunk, as ``orpose predict`` writes them).

    ``box``: x, y, width, height; ``keypoints``: ``(17, 3)`` x, y, confidence in COCO order
    (:data:`orpose.skeleton.COCO_KEYPOINTS`); ``keypoints3d``: ``(17, 3)`` mm, root-relative
    (mid-hips at 0), camera axes, or None for a model without lifters. Two people are equal when
    their COCO results are.
    """

    box: tuple[float, float, float, float]
    score: float
    keypoints: np.ndarray
    keypoints3d: np.ndarray | None = None

    @classmethod
    def from_coco(cls, result: Mapping[str, Any]) -> Person:
        """A person from a COCO result (``bbox``, ``score``, ``keypoints``, ``keypoints3d``)."""
        pose3d = result.get("keypoints3d")
        return cls(
            tuple(float(v) for v in result["bbox"]),
            float(result["score"]),
            np.asarray(result["keypoints"], dtype=np.float64).reshape(NUM_KEYPOINTS, 3),
            None if pose3d is None else np.asarray(pose3d, np.float64).reshape(NUM_KEYPOINTS, 3),
        )

    def to_coco(self, image_id: int | None = None) -> dict[str, Any]:
        """The COCO result of the person, as in ``orpose predict``'s results.json (with
        ``image_id`` when given)."""
        result: dict[str, Any] = {
            "category_id": 1,
            "bbox": [float(v) for v in self.box],
            "score": float(self.score),
            "keypoints": [float(v) for v in np.asarray(self.keypoints).ravel()],
        }
        if self.keypoints3d is not None:
            result["keypoints3d"] = [float(v) for v in np.asarray(self.keypoints3d).ravel()]
        if image_id is not None:
            result["image_id"] = image_id
        return result

    @property
    def box_xyxy(self) -> tuple[float, float, float, float]:
        x, y, w, h = self.box
        return x, y, x + w, y + h

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Person):
            return NotImplemented
        return self.to_coco() == other.to_coco()


# -- images ----------------------------------------------------------------------------------------


def _number(name: str, value: Any, low: float, high: float, integer: bool = False) -> Any:
    """An option's number checked as the command line checks it (finite, in range); None
    passes (the option is not given)."""
    if value is None:
        return None
    kinds = int if integer else int | float
    if isinstance(value, bool) or not isinstance(value, kinds) or not low <= value <= high:
        what = "a whole number" if integer else "a number"
        raise UserError(f"{name}: expected {what} {low:g}-{high:g}, got {value!r}")
    return value


def _factor(name: str, value: float | None) -> float | None:
    """A downscale factor as the command line takes them: a finite number 1-1000."""
    value = _number(name, value, 1, 1000)
    return None if value is None else float(value)


def as_rgb(image: ImageLike) -> np.ndarray:
    """An image as orpose takes it: RGB uint8 ``(H, W, 3)``. A path is decoded as every verb
    decodes files (:func:`orpose.data.images.read_image_rgb`: EXIF orientation ignored, the pixel
    limit applied); a PIL image is converted to RGB; an array must already be RGB uint8."""
    if isinstance(image, str | os.PathLike):
        from orpose.data.images import read_image_rgb

        return read_image_rgb(Path(image))  # ImageFileError (an OrposeError) naming the file
    if type(image).__module__.startswith("PIL.") and hasattr(image, "convert"):
        image = np.array(image.convert("RGB"))
    if not isinstance(image, np.ndarray):
        raise UserError(
            f"image: expected a path, an RGB uint8 array (H, W, 3) or a PIL image, got "
            f"{type(image).__name__}"
        )
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3 or 0 in image.shape:
        raise UserError(
            f"image: expected an RGB uint8 array (H, W, 3), got {image.dtype} {image.shape} "
            "(OpenCV frames are BGR: cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))"
        )
    if not image.flags.writeable:  # (torch warns on read-only arrays)
        return image.copy()
    return np.ascontiguousarray(image)


# -- the student -----------------------------------------------------------------------------------


def _check_model_path(path: str | os.PathLike) -> str:
    """The model spec as ``orpose predict`` takes it; ModelError for a file that is not there."""
    text = os.fspath(path)
    if text.startswith(RANDOM_PREFIX):
        return text
    where = Path(text)
    if where.is_dir():
        raise ModelError(f"{where}: a folder, not a model file (a checkpoint .pt or an .onnx)")
    if not where.is_file():
        raise ModelError(
            f"{where}: no such model file (a student checkpoint .pt/.pth or an exported .onnx)"
        )
    return text


def _camera(camera: Any):
    """``camera`` as :class:`orpose.lifting.intrinsics.Intrinsics`: given as one, as ``predict
    --camera`` takes it (a file, ``fx,fy,cx,cy``, ``MVOR_FILE:K``) or as a mapping of fx, fy,
    cx, cy (optionally width, height)."""
    if camera is None:
        return None
    from orpose.lifting.intrinsics import Intrinsics, intrinsics_from_dict, read_camera

    if isinstance(camera, Intrinsics):
        return camera
    if isinstance(camera, Mapping):
        return intrinsics_from_dict(dict(camera), "camera")
    if isinstance(camera, str | os.PathLike):
        return read_camera(os.fspath(camera))
    raise UserError(
        f"camera: expected a file, 'fx,fy,cx,cy', a mapping or Intrinsics, got "
        f"{type(camera).__name__}"
    )


class Predictor:
    """A loaded student: ``predictor(image)`` -> the :class:`Person` list ``orpose predict``
    writes for the image (see :func:`load`).

    ``runner`` is the model as ``orpose predict`` runs it (a
    :class:`orpose.predictor.StudentPredictor` or an ONNX runner); for checkpoints
    ``runner.model`` is the PyTorch module.
    """

    def __init__(self, runner: Any, path: str, score_threshold: float | None, camera: Any = None):
        self.runner = runner
        self.path = path
        self.score_threshold = score_threshold
        self.camera = camera

    def __repr__(self) -> str:
        shown = "by factor" if self.score_threshold is None else f"{self.score_threshold:g}"
        return f"Predictor({self.path!r}, score_threshold={shown})"

    def results(
        self,
        image: ImageLike,
        downscale: float = 1,
        native_lowres: bool = False,
        lowres_input: float | None = None,
    ) -> list[dict]:
        """The people of ``image`` as COCO results (without ``image_id``), exactly the entries
        of ``orpose predict``'s results.json for it with the same settings.

        ``downscale`` S > 1 (privacy mode, ``--downscale``): the image is shrunk to 1/S at once
        and only the small image is used; the people come back in the original's pixels.
        ``native_lowres`` (``--native-lowres``): a low-resolution image goes to the student as
        it is instead of upsampled (faster; the CPU student's native path). ``lowres_input``
        (``--lowres-input``): the image given is already 1/S of the camera's (default: guessed
        for images of at most 100 pixels, as predict does).
        """
        from orpose.inference.pipeline import predict_frame
        from orpose.inference.privacy import Shrinker, frame_geometry

        downscale = _factor("downscale", downscale) or 1.0
        lowres_input = _factor("lowres_input", lowres_input)
        if downscale > 1 and lowres_input is not None:
            raise UserError("downscale and lowres_input exclude each other")
        kept, original = as_rgb(image), None
        if downscale > 1:  # as predict's frame sources: shrunk right after decoding
            shrinker = Shrinker(downscale)
            kept = shrinker(kept)
            original = shrinker.last_size
        geometry = frame_geometry(kept, downscale, original, lowres_input)
        return predict_frame(self.runner, kept, geometry, native_lowres, self.score_threshold)

    def __call__(
        self,
        image: ImageLike,
        downscale: float = 1,
        native_lowres: bool = False,
        lowres_input: float | None = None,
    ) -> list[Person]:
        """The people of ``image`` (a path, an RGB uint8 array or a PIL image); see
        :meth:`results` for the options."""
        found = self.results(image, downscale, native_lowres, lowres_input)
        return [Person.from_coco(r) for r in found]

    def predict_many(self, images: Iterable[ImageLike], **options: Any) -> list[list[Person]]:
        """The people of each image, in order (the options of :meth:`__call__`)."""
        return [self(image, **options) for image in images]


def load(
    path: str | os.PathLike,
    device: str | None = "cpu",
    camera: Any = None,
    score_threshold: float | None = None,
    *,
    proposals: int | None = None,
    h36_stats: str | os.PathLike | None = None,
    threads: int = 0,
    flip: bool = False,
    pose_confidence_bound: float | None = None,
) -> Predictor:
    """A student as ``orpose predict`` loads it: an orpose checkpoint (.pt, either family), an
    official ORPose detectron2 checkpoint, an exported ``.onnx`` (with its ``_native.onnx``
    beside it, when exported) or ``random:BACKBONE`` (random weights, to try the pipeline).

    ``device``: PyTorch device (None: cuda if available); ``camera``: the intrinsics of the
    frames for 3D (``predict --camera``: a file, ``"fx,fy,cx,cy"``, ``"camma_mvor_2018.json:3"``,
    a mapping or Intrinsics; checkpoints only); ``score_threshold``: people below it are left
    out (None: predict's default for the image's downscale factor, 0.25 at 1x to 0.17 at
    10-12x, see ``orpose.evaluation.shown.SCORE_THRESHOLDS``; 0 keeps every detection, as COCO AP
    wants);
    ``proposals``, ``h36_stats``, ``threads``, ``flip``, ``pose_confidence_bound``: as
    predict's options of those names (the bound: None, by the image's downscale factor; 1,
    every person who could reach ``score_threshold`` is posed).

    A missing file, a file that is not a model and options the model cannot take raise an
    :class:`orpose.errors.OrposeError` (ModelError, UserError) naming it.
    """
    from orpose.inference.cli import build_predictor

    spec = _check_model_path(path)
    _number("score_threshold", score_threshold, 0, 1)
    _number("proposals", proposals, 1, 10**5, integer=True)
    _number("threads", threads, 0, 1024, integer=True)
    _number("pose_confidence_bound", pose_confidence_bound, 0.01, 1)
    intrinsics = _camera(camera)
    stats = None if h36_stats is None else Path(h36_stats)
    try:
        runner = build_predictor(
            spec,
            device,
            threads,
            proposals,
            stats,
            intrinsics,
            score_threshold=score_threshold,
            flip=flip,
            pose_confidence_bound=pose_confidence_bound,
        )
    except ValueError as err:  # as run_predict_cli: e.g. an ONNX graph that is not a student
        if isinstance(err, OrposeError):
            raise
        raise UserError(str(err)) from err
    threshold = None if score_threshold is None else float(score_threshold)
    return Predictor(runner, spec, threshold, intrinsics)


# -- the teacher -----------------------------------------------------------------------------------


class TeacherPredictor:
    """The teacher (``orpose label``): ``teacher(image)`` -> :class:`Person` list with the soft
    keypoints (every joint with its confidence) and, with a lifter, their 3D lift; see
    :func:`load_teacher`. ``teacher.teacher`` is the :class:`orpose.teacher.teacher.Teacher`."""

    def __init__(self, teacher: Any, lifter: Any = None):
        self.teacher = teacher
        self.lifter = lifter

    def __repr__(self) -> str:
        cfg = self.teacher.config
        return f"TeacherPredictor({cfg.detector!r}, {cfg.pose_model!r})"

    def annotations(self, image: ImageLike, downscale: float = 1) -> list[dict]:
        """The people of ``image`` as ``orpose label`` writes them (COCO annotations with the
        hard set in ``keypoints``, the soft set in ``keypoints_soft``, 3D in
        ``keypoints3d_soft`` / ``_hard``), without ids. ``downscale`` S: the image degraded by S
        (down, then up) first, as ``label --downscale``."""
        from orpose.data.lowres import degrade
        from orpose.teacher.lift3d import add_3d
        from orpose.teacher.writer import person_annotation

        downscale = _factor("downscale", downscale) or 1.0
        rgb = as_rgb(image)
        seen = degrade(rgb, downscale) if downscale > 1 else rgb
        people = self.teacher.label(seen)
        threshold = self.teacher.config.keypoint_threshold
        if self.lifter is not None:
            add_3d(people, self.lifter, threshold)
        return [person_annotation(p, threshold) for p in people]

    def __call__(self, image: ImageLike, downscale: float = 1) -> list[Person]:
        """The people of ``image``: box, score, the soft keypoints, the soft set's 3D lift."""
        return [
            Person.from_coco(
                {**a, "keypoints": a["keypoints_soft"], "keypoints3d": a.get("keypoints3d_soft")}
            )
            for a in self.annotations(image, downscale)
        ]


def load_teacher(
    preset: str = "single",
    lifter: str | os.PathLike | Any = None,
    *,
    config: str | os.PathLike | None = None,
    models_dir: str | os.PathLike | None = None,
    manifest: str | os.PathLike | None = None,
    threads: int = 0,
    **settings: Any,
) -> TeacherPredictor:
    """The teacher of ``orpose label``: ``preset`` "single" (one pass, no test-time
    augmentation) or "full" (every augmentation: slower, what ``label`` does by default),
    updated by a YAML ``config`` and by ``settings`` (fields of
    :class:`orpose.teacher.config.TeacherConfig`, e.g. ``pose_flip=True``,
    ``min_person_score=0.4``). ``lifter``: a lifter checkpoint (``orpose lift train``) for 3D.
    The ONNX models come from ``models_dir`` (default: $ORPOSE_MODELS, else the shared folder's
    models/), checked against the manifest's sha256."""
    from orpose.paths import models_dir as default_models_dir
    from orpose.teacher.config import load_config
    from orpose.teacher.teacher import Teacher

    teacher_config = load_config(preset, config, **settings)
    if models_dir is None:
        folder = default_models_dir(required=False)
    else:
        folder = Path(models_dir)
        if not folder.is_dir():
            raise UserError(f"models_dir {folder}: no such folder")
    if isinstance(lifter, str | os.PathLike):  # before the models: a missing file stops at once
        from orpose.teacher.lift3d import load_lifter

        lifter = load_lifter(lifter)
    teacher = Teacher.from_config(teacher_config, folder, manifest, threads)
    return TeacherPredictor(teacher, lifter)


# -- evaluation ------------------------------------------------------------------------------------


class _Thresholded:
    """A Predictor's runner, keeping what the Predictor keeps (people at or above its score
    threshold): what :func:`evaluate` scores when given a :class:`Predictor`."""

    accepts_original_size = True

    def __init__(self, predictor: Predictor):
        self.predictor = predictor

    @property
    def accepts_factor(self) -> bool:
        return getattr(self.predictor.runner, "accepts_factor", False)

    def __call__(
        self,
        image: np.ndarray,
        original_size: tuple[int, int] | None = None,
        factor: float | None = None,
    ):
        from orpose.lifting.intrinsics import call_with_original_size, factor_option

        runner = self.predictor.runner
        options = {} if factor is None else factor_option(runner, factor)
        found = (
            runner(image, **options)
            if original_size is None
            else call_with_original_size(runner, image, original_size, **options)
        )
        return [r for r in found if r["score"] >= self.predictor.score_threshold]


def _is_prediction_file(source: Any) -> bool:
    if not isinstance(source, str | os.PathLike):
        return False
    text = os.fspath(source)
    return text.lower().endswith(".json") or ("=" in text and not Path(text).exists())


def evaluate(
    gt: str | os.PathLike | Any,
    predictions: Any,
    scales: Sequence[float] = (1, 8, 10, 12),
    *,
    images: str | os.PathLike | None = None,
    out: str | os.PathLike | None = None,
    keypoints: str = "soft",
    device: str | None = "cpu",
    limit: int | None = None,
    max_detections: int | None = None,
    proposals: int | None = None,
    min_person_score: float | None = None,
    native_lowres: bool = False,
    camera: Any = None,
    skip_bad_images: bool = False,
    h36_stats: str | os.PathLike | None = None,
    flip: bool = False,
) -> list[dict]:
    """The rows ``orpose eval`` computes (metrics.csv: scale, box and keypoint AP in %, MPJPE in
    mm, MVOR PCK, shown recall / precision...), one per prediction set.

    ``gt``: a COCO keypoints file (``images``: its image folder, default images/ beside it).
    ``predictions``, as ``orpose eval`` takes them:

    - prediction files: a path (``.json``, or ``"12=pred_12x.json"``), a list of them or a
      mapping ``{scale: file}``, one row each, as ``--pred`` (``keypoints``: the soft or hard
      set of an orpose COCO file); ``scales`` is not used;
    - results in memory: a list of COCO result dicts (one row, 1x) or ``{scale: results}``;
    - a model, run on the ground-truth images degraded at each of ``scales``: a checkpoint path
      (what ``orpose eval --model`` does, with its options ``device``, ``limit``,
      ``max_detections``, ``proposals``, ``min_person_score``, ``native_lowres``, ``camera``,
      ``skip_bad_images``, ``h36_stats``, ``flip``), or a :class:`Predictor` from :func:`load` (an
      ``.onnx`` path is loaded with ``load(path, score_threshold=0)``), whose people at or above
      its ``score_threshold`` are scored (``load(path, score_threshold=0)`` is what ``eval
      --model`` scores).

    ``out``: a folder for metrics.json / metrics.csv (and, for a model, the predictions per
    scale, resumable as with the command); None writes nothing.
    """
    from orpose.data.coco import PoseDataset, load_pose_dataset, refuse_repeated_images
    from orpose.evaluation.cli import refuse_repeated_labels, require_ground_truth

    is_model = isinstance(predictions, Predictor) or (
        isinstance(predictions, str | os.PathLike) and not _is_prediction_file(predictions)
    )
    if keypoints not in ("soft", "hard"):
        raise UserError(f"keypoints: expected 'soft' or 'hard', got {keypoints!r}")
    if not is_model:
        for name, value in (("camera", camera), ("skip_bad_images", skip_bad_images or None)):
            if value is not None:
                raise UserError(f"{name} applies to a model only (prediction files carry theirs)")
    if isinstance(gt, PoseDataset):
        dataset = gt
    else:
        dataset = load_pose_dataset(Path(gt), image_root=images, check_images=is_model)
    refuse_repeated_images(dataset)
    if is_model:
        return _evaluate_model(
            dataset,
            predictions,
            [_factor("scales", s) for s in scales],
            out,
            device=device,
            limit=limit,
            max_detections=max_detections,
            proposals=proposals,
            min_person_score=min_person_score,
            native_lowres=native_lowres,
            camera=camera,
            skip_bad_images=skip_bad_images,
            h36_stats=h36_stats,
            flip=flip,
        )
    if flip:
        raise UserError("flip applies to a model only (prediction files are already predicted)")
    require_ground_truth(dataset)
    loaded = _prediction_sets(predictions, dataset, keypoints)
    refuse_repeated_labels(loaded, "predictions")
    from orpose.evaluation.report import evaluate_predictions

    reports = [evaluate_predictions(dataset, results, label) for label, results in loaded]
    return _rows(reports, out)


def _prediction_sets(predictions: Any, gt: Any, keypoints: str) -> list[tuple[str, list[dict]]]:
    """(row label, validated results) of each prediction set, as ``--pred`` reads them."""
    from orpose.evaluation.cli import load_pred_file, parse_pred_spec
    from orpose.evaluation.predictions import load_predictions

    if isinstance(predictions, str | os.PathLike):
        return [load_pred_file(os.fspath(predictions), gt, keypoints)]
    if isinstance(predictions, Mapping):
        sets = []
        for scale, source in predictions.items():
            if isinstance(source, str | os.PathLike):
                sets.append(load_pred_file(f"{scale}={os.fspath(source)}", gt, keypoints))
            else:  # the row label as --pred SCALE=FILE gives it (8 -> 8x, a word as it is)
                label = parse_pred_spec(f"{scale}=<results>")[0]
                sets.append((label, load_predictions(_results_list(source, scale), gt)))
        return sets
    if isinstance(predictions, Sequence) and all(
        isinstance(p, str | os.PathLike) for p in predictions
    ):
        return [load_pred_file(os.fspath(p), gt, keypoints) for p in predictions]
    return [("1x", load_predictions(_results_list(predictions, "predictions"), gt))]


def _results_list(source: Any, where: Any) -> list[dict]:
    if not isinstance(source, Sequence) or isinstance(source, str | bytes):
        raise UserError(
            f"{where}: expected prediction files, COCO results (a list of dicts), a mapping "
            f"{{scale: results}}, a checkpoint or a Predictor; got {type(source).__name__}"
        )
    return list(source)


def _evaluate_model(gt: Any, model: Any, scales: list[float], out: Any, **options: Any):
    """``orpose eval --model`` (:func:`orpose.evaluation.cli.model_reports`) of a checkpoint
    path, an exported graph or a :class:`Predictor`."""
    from orpose.evaluation.cli import eval_settings, model_reports, student_for_eval
    from orpose.outputs import check_output_folder

    if out is not None:
        out = check_output_folder(Path(out))  # before the model is loaded
    settings = None  # what a loaded Predictor was made with cannot be told
    if isinstance(model, Predictor):
        for name in ("max_detections", "proposals", "min_person_score", "camera", "h36_stats"):
            if options[name] is not None:
                raise UserError(f"{name}: give it to orpose.load for a loaded Predictor")
        if options["flip"]:
            raise UserError("flip: give it to orpose.load for a loaded Predictor")
        runner = _Thresholded(model)
    elif os.fspath(model).lower().endswith(".onnx"):
        runner = _Thresholded(load(model, score_threshold=0, flip=options["flip"]))
    else:
        spec = _check_model_path(model)
        _number("proposals", options["proposals"], 1, 10**5, integer=True)
        _number("max_detections", options["max_detections"], 1, 10**4, integer=True)
        _number("min_person_score", options["min_person_score"], 0, 1)
        stats = None if options["h36_stats"] is None else Path(options["h36_stats"])
        camera = _camera(options["camera"])
        runner = student_for_eval(
            spec,
            options["device"],
            options["proposals"],
            stats,
            camera=camera,
            max_detections=options["max_detections"],
            min_person_score=options["min_person_score"],
            flip=options["flip"],
        )
        settings = eval_settings(gt, Path(spec), options["proposals"], stats, camera,
                                 options["max_detections"], options["min_person_score"],
                                 options["flip"])  # fmt: skip
    reports, _ = model_reports(
        runner,
        gt,
        scales,
        out,
        limit=_number("limit", options["limit"], 1, 10**9, integer=True),
        skip_bad_images=options["skip_bad_images"],
        native_lowres=bool(options["native_lowres"]),
        settings=settings,
    )
    return _rows(reports, out)


def _rows(reports: list, out: Any) -> list[dict]:
    if out is not None:
        from orpose.evaluation.report import save_reports
        from orpose.outputs import check_output_folder

        save_reports(reports, check_output_folder(Path(out)))
    return [report.row() for report in reports]


# -- training --------------------------------------------------------------------------------------


def train(
    config: str | os.PathLike,
    out: str | os.PathLike,
    overrides: Sequence[str] | Mapping[str, Any] = (),
    *,
    device: str | None = None,
    resume: bool = False,
    eval_sets: Sequence[str | os.PathLike] = (),
    allow_eval_overlap: bool = False,
) -> Path:
    """``orpose train CONFIG --out OUT --set KEY=VALUE ...``: train a student, return the path
    of its checkpoint (``OUT/last.pt``). ``overrides``: ``["solver.iterations=200"]`` or
    ``{"solver.iterations": 200}``; ``device``: None for cuda if available; ``resume``: continue
    from ``OUT/last.pt``; ``eval_sets``, ``allow_eval_overlap``: as ``--eval-set`` and
    ``--allow-eval-overlap`` (a training set holding evaluation images is refused). The config
    as trained is saved beside the checkpoint (``config.yaml``), metrics.csv and loss curves
    too. Bad configs raise ConfigError / UserError naming the file and the key."""
    from orpose.training.cli import train_from_args

    if isinstance(overrides, Mapping):
        overrides = [f"{key}={json.dumps(value)}" for key, value in overrides.items()]  # YAML
    elif isinstance(overrides, str):
        overrides = [overrides]
    args = argparse.Namespace(  # what the pieces of run_train read
        config=Path(config),
        out=Path(out),
        overrides=[str(o) for o in overrides],
        device=device,
        resume=resume,
        eval_sets=[Path(p) for p in eval_sets],
        allow_eval_overlap=allow_eval_overlap,
    )
    if not args.config.is_file():
        raise UserError(f"{args.config}: no such training config")
    return train_from_args(args)[0]
