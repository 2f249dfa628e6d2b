"""The camera a lifter's 2D input comes from, and the map of an image's pixels to the lifter's own.

The lifter (:mod:`orpose.lifting.model`) was trained on 2D keypoints seen by MVOR-like cameras
(:class:`orpose.lifting.cameras.CameraSampling`: fx = fy ~538 px, principal point ~(320, 240),
640x480 images) and reads where a person is and how large it looks in those pixels. Keypoints of
any other image reach it through a pinhole re-projection: the same viewing rays, expressed in the
lifter's camera, ``u' = (u - cx) * F / fx + CX`` (and so for ``v``). Root-relative 3D in the
camera frame does not change under a change of intrinsics, so the lift is right for any camera.

Two things are mapped, in this order (:func:`lift_mapping`):

1. the pixels of the image the network saw to the pixels of the original frame: the native
   low-resolution path poses the small frame itself (53x40 at 12x), whose pixels are
   ``original / small`` times larger (pixel centres, as
   :func:`orpose.data.lowres.results_to_larger` maps the 2D results);
2. the original frame's pixels to the lifter's camera with the frame's intrinsics
   (``--camera``). Without them the frame's pixels are taken as the lifter's own, as they
   always were: right for MVOR-like 640x480 cameras.

Intrinsics come from a JSON file (``fx``, ``fy``, ``cx``, ``cy``, optionally ``width`` and
``height``; or an MVOR camera entry: ``focallength``, ``principalpoint``, ``imagesize``; or the
MVOR annotation file itself with the camera's 1-based number, ``camma_mvor_2018.json:3``) or a
literal ``fx,fy,cx,cy`` (:func:`read_camera`). Intrinsics with a size are scaled to a frame of
another size. This module does not import torch: the mapping is two multiply-adds that work on
tensors and arrays alike.
"""

from __future__ import annotations

import logging
import math
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from orpose.errors import DatasetError, UserError

log = logging.getLogger(__name__)

# The lifter's camera: the centre of CameraSampling's intrinsics (orpose.lifting.cameras).
LIFTER_FOCAL_PX = 538.0
LIFTER_IMAGE_SIZE = (640, 480)
FIELDS = ("fx", "fy", "cx", "cy")
ASPECT_TOLERANCE = 0.02  # relative: a frame whose aspect differs more is probably cropped


@dataclass(frozen=True)
class Intrinsics:
    """A pinhole camera's intrinsics in pixels (pixel centres at integer coordinates) and, when
    known, the (width, height) of the frames they are for."""

    fx: float
    fy: float
    cx: float
    cy: float
    width: int | None = None
    height: int | None = None

    @property
    def size(self) -> tuple[int, int] | None:
        return (self.width, self.height) if self.width and self.height else None

    def to_dict(self) -> dict:
        return {k: v for k, v in asdict(self).items() if v is not None}

    def for_size(self, width: int, height: int) -> Intrinsics:
        """The intrinsics for frames of ``width`` x ``height``: scaled along each axis when they
        are for frames of another size (a resized frame of the same camera), else as they are."""
        if self.size is None or self.size == (width, height):
            return self
        sx, sy = width / self.width, height / self.height
        if abs(sx / sy - 1) > ASPECT_TOLERANCE:
            log.warning(
                "camera intrinsics for %dx%d frames applied to %dx%d frames (another aspect: "
                "scaled along each axis, as a resized frame)",
                self.width,
                self.height,
                width,
                height,
            )
        return Intrinsics(
            self.fx * sx, self.fy * sy, (self.cx + 0.5) * sx - 0.5, (self.cy + 0.5) * sy - 0.5,
            width, height,
        )  # fmt: skip


# MVOR's cameras as the lifter was trained for (fx 534.8-541.4 px, principal within 6 px of the
# centre): frame pixels are taken as the lifter's own when no camera is given.
LIFTER_CAMERA = Intrinsics(
    LIFTER_FOCAL_PX, LIFTER_FOCAL_PX, LIFTER_IMAGE_SIZE[0] / 2, LIFTER_IMAGE_SIZE[1] / 2,
    *LIFTER_IMAGE_SIZE,
)  # fmt: skip


@dataclass(frozen=True)
class LiftMapping:
    """``xy * scale + offset``, per axis: an image's pixels -> the lifter camera's pixels."""

    scale: tuple[float, float] = (1.0, 1.0)
    offset: tuple[float, float] = (0.0, 0.0)

    @property
    def is_identity(self) -> bool:
        return self.scale == (1.0, 1.0) and self.offset == (0.0, 0.0)

    def apply(self, xy):
        """``(..., 2)`` points (a tensor or an array) mapped; other channels are not given."""
        if self.is_identity:
            return xy
        if hasattr(xy, "new_tensor"):  # torch, without importing it
            return xy * xy.new_tensor(self.scale) + xy.new_tensor(self.offset)
        import numpy as np

        return np.asarray(xy) * np.asarray(self.scale) + np.asarray(self.offset)


def lift_mapping(
    image_size: tuple[int, int],
    original_size: tuple[int, int] | None = None,
    camera: Intrinsics | None = None,
) -> LiftMapping:
    """How 2D keypoints in the pixels of an image of ``image_size`` (width, height) reach the
    lifter: to the original frame's pixels (``original_size``, the frame the image was shrunk
    from; None: the image is the original), then through ``camera`` (the original frame's
    intrinsics, scaled to its size when they carry another; None: its pixels are the lifter's)
    to the lifter's camera. The identity for a 640x480 frame without a camera."""
    w, h = image_size
    ow, oh = original_size if original_size is not None else image_size
    sx, sy = ow / w, oh / h  # small -> original: x_o = (x + 0.5) * s - 0.5
    bx, by = 0.5 * sx - 0.5, 0.5 * sy - 0.5
    if camera is None:
        return LiftMapping((sx, sy), (bx, by))
    cam = camera.for_size(ow, oh)
    kx, ky = LIFTER_CAMERA.fx / cam.fx, LIFTER_CAMERA.fy / cam.fy  # original -> lifter camera
    return LiftMapping(
        (sx * kx, sy * ky),
        ((bx - cam.cx) * kx + LIFTER_CAMERA.cx, (by - cam.cy) * ky + LIFTER_CAMERA.cy),
    )


def call_with_original_size(predictor, image, original_size: tuple[int, int], **options):
    """``predictor(image, **options)`` for an image shrunk from a frame of ``original_size``
    (width, height): predictors that lift (``accepts_original_size``, the student's) are told
    the size, so that they lift in the original frame's pixels; others just get the image."""
    if getattr(predictor, "accepts_original_size", False):
        return predictor(image, original_size=tuple(original_size), **options)
    return predictor(image, **options)


def factor_option(predictor, factor: float) -> dict[str, float]:
    """The keyword that tells ``predictor`` its image was shrunk ``factor`` times (and upsampled
    back): ``{"factor": factor}`` for predictors that pick their detector by it
    (``accepts_factor``, the CPU student's), nothing for the others."""
    return {"factor": float(factor)} if getattr(predictor, "accepts_factor", False) else {}


# -- reading a camera -----------------------------------------------------------------------------

_MVOR_CAMERA = re.compile(r"^(?P<path>.+):(?P<index>\d+)$")


def _number(value: Any, where: str, field: str, integer: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise DatasetError(f"{where}: field '{field}': expected a number, got {value!r}")
    if not math.isfinite(value) or value <= 0:
        raise DatasetError(f"{where}: field '{field}': {value!r} is not a finite number > 0")
    if integer and value != int(value):
        raise DatasetError(f"{where}: field '{field}': {value!r} is not a whole number of pixels")
    return int(value) if integer else float(value)


def _pair(entry: dict, key: str, where: str) -> list:
    value = entry.get(key)
    if value is None:
        raise DatasetError(f"{where}: field '{key}': missing")
    if not isinstance(value, list | tuple) or len(value) != 2:
        raise DatasetError(f"{where}: field '{key}': expected 2 numbers, got {value!r}")
    return list(value)


def intrinsics_from_dict(entry: Any, where: str) -> Intrinsics:
    """Intrinsics from ``{fx, fy, cx, cy[, width, height]}`` or an MVOR camera entry
    (``focallength``, ``principalpoint``[, ``imagesize``]); DatasetError naming ``where`` and
    the field otherwise (every value a finite number > 0)."""
    if not isinstance(entry, dict):
        raise DatasetError(f"{where}: expected a JSON object with {', '.join(FIELDS)}")
    if "focallength" in entry or "principalpoint" in entry:  # MVOR's camera entry
        fx, fy = (_number(v, where, "focallength") for v in _pair(entry, "focallength", where))
        centre = _pair(entry, "principalpoint", where)
        cx, cy = (_number(v, where, "principalpoint") for v in centre)
        width = height = None
        if entry.get("imagesize") is not None:
            size = _pair(entry, "imagesize", where)
            width, height = (_number(v, where, "imagesize", integer=True) for v in size)
        return _checked(Intrinsics(fx, fy, cx, cy, width, height), where)
    for key in FIELDS:
        if key not in entry:
            raise DatasetError(f"{where}: field '{key}': missing")
    fx, fy, cx, cy = (_number(entry[k], where, k) for k in FIELDS)
    width = height = None
    if ("width" in entry) != ("height" in entry):
        missing = "height" if "width" in entry else "width"
        raise DatasetError(f"{where}: field '{missing}': missing (give both width and height)")
    if "width" in entry:
        width = _number(entry["width"], where, "width", True)
        height = _number(entry["height"], where, "height", True)
    return _checked(Intrinsics(fx, fy, cx, cy, width, height), where)


# a camera's numbers beyond these are typing errors, not optics (100k px: 10x the widest sensors)
MAX_PIXELS_SIDE = 100_000


def _checked(cam: Intrinsics, where: str) -> Intrinsics:
    """Refuse what no real camera has: a focal length or principal point beyond
    MAX_PIXELS_SIDE, or (when the image size is known) a principal point outside the image."""
    for name in ("fx", "fy", "cx", "cy", "width", "height"):
        value = getattr(cam, name)
        if value is not None and value > MAX_PIXELS_SIDE:
            raise DatasetError(f"{where}: field '{name}': {value!r} is beyond {MAX_PIXELS_SIDE} px")
    if cam.width is not None and not (cam.cx <= cam.width and cam.cy <= cam.height):
        raise DatasetError(
            f"{where}: field 'cx'/'cy': principal point ({cam.cx:g}, {cam.cy:g}) outside the "
            f"{cam.width}x{cam.height} image"
        )
    return cam


def _read_json(path: Path) -> Any:
    """The JSON of a camera file; any failure (encoding, syntax, nesting too deep, a number too
    long) is one DatasetError naming the file (orpose.data.coco.read_json, as for every JSON)."""
    from orpose.data.coco import read_json

    return read_json(path)


def _mvor_camera(data: Any, path: Path, number: int | None) -> Intrinsics:
    """Camera ``number`` (1-based) of an MVOR annotation file."""
    try:
        cameras = data["cameras_info"]["camParams"]["intrinsics"]
    except (KeyError, TypeError):
        raise DatasetError(f"{path}: field 'cameras_info.camParams.intrinsics': missing") from None
    if not isinstance(cameras, list) or not cameras:
        raise DatasetError(f"{path}: field 'cameras_info.camParams.intrinsics': expected a list")
    if number is None:
        raise UserError(
            f"--camera {path}: an MVOR file holds {len(cameras)} cameras: name one, e.g. {path}:1"
        )
    if not 1 <= number <= len(cameras):
        raise UserError(f"--camera {path}:{number}: cameras are numbered 1-{len(cameras)}")
    where = f"{path}: cameras_info.camParams.intrinsics[{number - 1}]"
    return intrinsics_from_dict(cameras[number - 1], where)


def read_camera(spec: str | Path) -> Intrinsics:
    """``--camera``: a literal ``fx,fy,cx,cy`` (or ``fx,fy,cx,cy,width,height``), a JSON file of
    intrinsics or of an MVOR camera entry, or ``MVOR_FILE:K`` (camera K, 1-based, of an MVOR
    annotation file). A bad file raises DatasetError naming the file and the field; a bad
    literal or a missing file UserError (both exit 2)."""
    text = str(spec).strip()
    path = Path(text).expanduser()
    number = None
    if not path.is_file():
        match = _MVOR_CAMERA.match(text)
        if match and Path(match["path"]).expanduser().is_file():
            path, number = Path(match["path"]).expanduser(), int(match["index"])
        elif "," in text:
            return _literal(text)
        else:
            raise UserError(f"--camera {text}: no such file (or give fx,fy,cx,cy)")
    data = _read_json(path)
    if isinstance(data, dict) and "cameras_info" in data:
        return _mvor_camera(data, path, number)
    if number is not None:
        raise UserError(f"--camera {text}: {path} is not an MVOR annotation file")
    return intrinsics_from_dict(data, str(path))


def _literal(text: str) -> Intrinsics:
    parts = [p.strip() for p in text.split(",")]
    names = (*FIELDS, "width", "height")
    if len(parts) not in (4, 6):
        raise UserError(f"--camera {text}: expected fx,fy,cx,cy (or fx,fy,cx,cy,width,height)")
    values: dict[str, Any] = {}
    for name, part in zip(names, parts, strict=False):
        try:
            values[name] = float(part)
        except ValueError:
            raise UserError(f"--camera {text}: {name} {part!r} is not a number") from None
    try:
        return intrinsics_from_dict(values, f"--camera {text}")
    except DatasetError as err:
        raise UserError(str(err)) from None
