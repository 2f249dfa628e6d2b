"""Run an exported student (ONNX) with onnxruntime: the same results as the PyTorch predictor.

Pre-processing is only the conversion of an RGB uint8 image to float ``(3, H, W)`` in [0, 1]:
resizing, normalisation and post-processing are inside the graph (see :mod:`orpose.export`).

The graph's interface, which :mod:`orpose.export.export` writes and this module reads:
:data:`INPUT_NAME` (float32 ``(3, H, W)``, RGB in [0, 1]), optionally :data:`MIN_SCORE_NAME`
and :data:`FACTOR_NAME` (float32 scalars with defaults in the graph), and :data:`OUTPUT_NAMES`
(each with the number of people as its first axis; ``keypoints3d`` only for students with
lifters).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from orpose.data.coco import read_json
from orpose.errors import DatasetError, ModelError
from orpose.onnx_session import open_session
from orpose.predictor import detections_to_results

INPUT_NAME = "image"
# optional (a default inside the graph): the least detection score to pose, raised above the
# graph's own by callers that keep people from a score only (the CPU student's exports)
MIN_SCORE_NAME = "min_score"
# optional (default 1): how many times the image was shrunk and upsampled back; the CPU
# student's graph picks its full-resolution detector at 1 (``full_res_detector_share``)
FACTOR_NAME = "factor"
OUTPUT_NAMES: tuple[str, ...] = (
    "boxes",
    "scores",
    "keypoints",
    "keypoints_scores",
    "keypoints3d",
    "keypoints_soft_branch",
    "keypoints_hard_branch",
)


def image_to_input(image: np.ndarray) -> np.ndarray:
    """RGB uint8 ``(H, W, 3)`` -> float32 ``(3, H, W)`` in [0, 1], as the PyTorch predictor does."""
    return np.ascontiguousarray(image.transpose(2, 0, 1), dtype=np.float32) / np.float32(255.0)


class OnnxStudent:
    """``runner(image)`` -> COCO result dicts, like
    :class:`orpose.predictor.StudentPredictor`."""

    def __init__(
        self,
        path: Path | str,
        score_threshold: float = 0.0,
        threads: int = 0,
        providers: list[str] | None = None,
        spin: bool = True,
    ):
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"{self.path}: no such ONNX model")
        try:
            self.session = open_session(self.path, threads, spin, providers=providers)
        except Exception as err:  # onnxruntime's InvalidProtobuf, Fail...: no common base class
            if not type(err).__module__.startswith("onnxruntime"):
                raise
            why = (str(err).splitlines() or [type(err).__name__])[0][:300]
            raise ModelError(f"{self.path}: not a readable ONNX model ({why})") from None
        inputs = [i.name for i in self.session.get_inputs()]
        if inputs != [INPUT_NAME]:
            raise ValueError(f"{self.path}: not an orpose student graph (inputs {inputs})")
        rank = len(self.session.get_inputs()[0].shape or ())
        self.output_names = [o.name for o in self.session.get_outputs()]
        missing = [n for n in OUTPUT_NAMES[:4] if n not in self.output_names]
        if rank != 3 or missing:  # another model with an input called "image"
            raise ValueError(
                f"{self.path}: not an orpose student graph (its input 'image' has rank {rank}, "
                f"a student's 3; its outputs {self.output_names[:6]} lack {missing})"
            )
        self.score_threshold = score_threshold
        optional = {i.name for i in self.session.get_overridable_initializers()}
        # graphs exported before the input, and other families', pose from their own threshold
        self.accepts_min_score = MIN_SCORE_NAME in optional
        self.accepts_factor = FACTOR_NAME in optional

    def detect(
        self, image: np.ndarray, min_score: float | None = None, factor: float | None = None
    ) -> dict[str, torch.Tensor]:
        """One RGB uint8 image -> the student's detections (as tensors, on the CPU);
        ``min_score``: pose nobody detected below it; ``factor``: how many times the image was
        shrunk (where the graph takes them)."""
        feed = {INPUT_NAME: image_to_input(image)}
        if min_score is not None and self.accepts_min_score:
            feed[MIN_SCORE_NAME] = np.array(min_score, np.float32)
        if factor is not None and self.accepts_factor:
            feed[FACTOR_NAME] = np.array(factor, np.float32)
        outputs = self.session.run(self.output_names, feed)
        return {
            name: torch.from_numpy(value)
            for name, value in zip(self.output_names, outputs, strict=True)
        }

    def __call__(
        self, image: np.ndarray, min_score: float | None = None, factor: float | None = None
    ) -> list[dict]:
        return detections_to_results(self.detect(image, min_score, factor), self.score_threshold)


class OnnxStudentPair:
    """The CPU student's two graphs: the native low-resolution one for frames whose longer side
    is at most ``max_side``, the full one for the others (what the PyTorch student does)."""

    def __init__(self, full: OnnxStudent, native: OnnxStudent, max_side: int):
        self.full, self.native, self.max_side = full, native, max_side
        self.accepts_min_score = full.accepts_min_score or native.accepts_min_score
        self.accepts_factor = full.accepts_factor

    def pick(self, image: np.ndarray) -> OnnxStudent:
        return self.native if max(image.shape[:2]) <= self.max_side else self.full

    def detect(
        self, image: np.ndarray, min_score: float | None = None, factor: float | None = None
    ) -> dict[str, torch.Tensor]:
        return self.pick(image).detect(image, min_score, factor)

    def __call__(
        self, image: np.ndarray, min_score: float | None = None, factor: float | None = None
    ) -> list[dict]:
        return self.pick(image)(image, min_score, factor)


NATIVE_SUFFIX = "_native.onnx"  # beside student.onnx: the CPU student's native low-res graph


def load_onnx_student(
    path: Path | str, threads: int = 0, spin: bool = True
) -> OnnxStudent | OnnxStudentPair:
    """An exported student; with its native low-resolution graph when ``orpose export`` wrote
    one beside it (``<name>_native.onnx`` and the size limit in ``<name>_native.json``)."""
    path = Path(path)
    full = OnnxStudent(path, threads=threads, spin=spin)
    native = path.with_name(path.stem + NATIVE_SUFFIX)
    meta = native.with_suffix(".json")
    if not native.is_file() or not meta.is_file():
        return full
    data = read_json(meta)
    max_side = data.get("native_max_side") if isinstance(data, dict) else None
    if isinstance(max_side, bool) or not isinstance(max_side, int) or not 1 <= max_side <= 10**5:
        raise DatasetError(
            f"{meta}: field 'native_max_side': expected a whole number of pixels 1-100000, got "
            f"{max_side!r} (rewrite it with orpose export, or remove {native.name})"[:400]
        )
    return OnnxStudentPair(full, OnnxStudent(native, threads=threads, spin=spin), max_side)
