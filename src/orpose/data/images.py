"""The one way orpose decodes an image file: its size read first, a pixel limit, one EXIF rule.

Every verb that reads a still image (``label``, ``predict``, ``eval --model``, ``train``, ``data
check / show / downscale / subset``, ``export``'s check, ``bench``, ``demo``) goes through
:func:`read_image_rgb` (and ``data check`` through :func:`undecodable_images`):

1. **Size before pixels.** The width and height come from the file's header (Pillow's lazy
   open: nothing is decoded), and a file above the pixel limit (or with one side more than
   :data:`MAX_ASPECT_RATIO` times the other) is refused before a single pixel is decoded. A
   2.6 MB PNG can claim 30000x30000 pixels: 2.7 GB once decoded, several times that in the
   copies that follow. The limit is :data:`DEFAULT_MAX_IMAGE_PIXELS` (50 megapixels:
   an 8K frame is 33) unless the environment variable ``ORPOSE_MAX_IMAGE_PIXELS`` sets another.
2. **One EXIF rule: the stored pixel order.** Pixels are decoded by OpenCV with
   ``IMREAD_IGNORE_ORIENTATION``: an EXIF orientation tag is ignored, as by pycocotools'
   users, torchvision's COCO datasets and Pillow's ``Image.open``, so that the image every verb
   sees has the width and height that COCO files (and ``orpose data subset``) record. A phone
   photo tagged "rotate 90" is processed as stored (sideways), the same way by every verb.
   File names that are not valid UTF-8 are decoded from the file's bytes (OpenCV's Python
   binding crashes the process on such a name: :func:`opencv_path`).
3. **Records agree with files.** :func:`read_dataset_image` decodes the image of a COCO record
   and refuses it, naming the file, the record and the field, when the recorded ``width`` /
   ``height`` differ from the decoded image (annotations drawn on another pixel grid).
"""

from __future__ import annotations

import math
import os
import threading
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image, UnidentifiedImageError

from orpose.errors import ConfigError, DatasetError, ImageFileError

if TYPE_CHECKING:
    from orpose.data.coco import PoseDataset

MAX_PIXELS_ENV = "ORPOSE_MAX_IMAGE_PIXELS"
DEFAULT_MAX_IMAGE_PIXELS = 50_000_000
# A side more than this many times the other is refused as the pixel limit is: resized to the
# networks' input sizes, a 1x2000 strip has a side of 0 pixels (a traceback, not a skip)
MAX_ASPECT_RATIO = 100

_PILLOW_LIMIT_LOCK = threading.Lock()


def max_image_pixels() -> int:
    """The pixel limit: ``$ORPOSE_MAX_IMAGE_PIXELS`` when set, else the default (50 MP)."""
    text = os.environ.get(MAX_PIXELS_ENV, "").strip()
    if not text:
        return DEFAULT_MAX_IMAGE_PIXELS
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 1 or value != int(value) or value > 1e12:
        raise ConfigError(
            f"{MAX_PIXELS_ENV}={text}: expected a whole number of pixels between 1 and 1e12 "
            f"(default {DEFAULT_MAX_IMAGE_PIXELS})"
        )
    return int(value)


TIFF_ORIENTATION = 274  # the TIFF tag (a TIFF file's own, not EXIF's)


def _open_size(path: Path) -> tuple[int, int, int]:
    """Width, height and TIFF orientation tag (1 for other formats) from the header."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        with Image.open(path) as im:
            tags = getattr(im, "tag_v2", None) if im.format == "TIFF" else None
            orientation = tags.get(TIFF_ORIENTATION, 1) if tags is not None else 1
            return im.size[0], im.size[1], orientation


def _header_size(path: Path) -> tuple[int, int, int]:
    """(width, height) from the header; Pillow's own bomb guard (which refuses to even open a
    file above twice its limit) is lifted for this read, orpose applying its own limit."""
    try:
        return _open_size(path)
    except Image.DecompressionBombError:
        with _PILLOW_LIMIT_LOCK:
            saved, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
            try:
                return _open_size(path)
            finally:
                Image.MAX_IMAGE_PIXELS = saved


def header_problem(path: Path | str) -> tuple[tuple[int, int] | None, str | None]:
    """``((width, height), None)`` of an image file whose header is readable and within the pixel
    limit, else ``(size or None, why not)``; nothing is decoded."""
    path = Path(path)
    try:
        if path.stat().st_size == 0:
            return None, "empty file (0 bytes)"
    except OSError as err:
        return None, f"cannot be read ({err.strerror or err})"
    try:
        width, height, orientation = _header_size(path)
    except UnidentifiedImageError:
        return None, "not an image (unknown format or corrupt header)"
    except OSError as err:
        return None, f"cannot be read ({err.strerror or err})"
    except Exception as err:  # Pillow raises SyntaxError, ValueError... on a malformed header
        return None, f"not an image (corrupt header: {err})"
    if min(width, height) < 1:
        return (width, height), f"{width}x{height} pixels: an image without pixels"
    if orientation != 1:  # OpenCV flips 2-4 and fails on 5-8 whatever its flags: no one rule
        return (width, height), (
            f"a TIFF orientation tag ({orientation}), which OpenCV applies to 2-4 and cannot "
            "decode with 5-8 (unlike an EXIF tag, which every verb ignores); save the image "
            "without it, turned as it should be seen"
        )
    if max(width, height) > MAX_ASPECT_RATIO * min(width, height):
        return (width, height), (
            f"{width}x{height} pixels: one side is more than {MAX_ASPECT_RATIO} times the "
            "other, which no network input size holds; refused before decoding"
        )
    limit = max_image_pixels()
    if width * height > limit:
        return (width, height), (
            f"{width}x{height} pixels ({width * height / 1e6:.1f} megapixels) is above the "
            f"limit of {limit / 1e6:g} megapixels; refused before decoding (a larger limit: "
            f"{MAX_PIXELS_ENV})"
        )
    return (width, height), None


def opencv_path(path: Path | str) -> str | None:
    """``path`` as the text OpenCV's functions take, or None when it is not valid UTF-8 (a file
    name of other bytes, which Python keeps as surrogates): OpenCV's Python binding crashes the
    whole process (a segmentation fault) on such a text, so it must never be given one."""
    text = str(path)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return None
    return text


def _imread(path: Path | str):
    """OpenCV's decode of a file (None when it cannot), the file's bytes decoded from memory
    when its name is not valid UTF-8 (see :func:`opencv_path`): the same decoder and flags."""
    import cv2

    flags = cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION
    text = opencv_path(path)
    if text is not None:
        return cv2.imread(text, flags)
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except OSError:
        return None
    return cv2.imdecode(data, flags) if data.size else None


def image_size(path: Path | str) -> tuple[int, int]:
    """(width, height) of an image file as orpose decodes it (EXIF orientation ignored), read
    from its header; ImageFileError naming the file when it is not an image or above the limit."""
    size, problem = header_problem(path)
    if problem is not None or size is None:
        raise ImageFileError(f"{path}: {problem}")
    return size


def read_image_rgb(path: Path | str) -> np.ndarray:
    """Read an image file as RGB uint8 ``(H, W, 3)``, in its stored pixel order (EXIF orientation
    ignored), after its header size passed the pixel limit; ImageFileError (an OSError) naming
    the file when it cannot be read, is not an image or is too large."""
    import cv2

    width, height = image_size(path)
    bgr = _imread(path)
    if bgr is None:
        raise ImageFileError(
            f"{path}: cannot be read as an image (missing, corrupt or unsupported)"
        )
    if bgr.shape[:2] != (height, width):
        raise ImageFileError(
            f"{path}: decoded as {bgr.shape[1]}x{bgr.shape[0]} pixels, but its header says "
            f"{width}x{height} (changed while being read, or a malformed file)"
        )
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def image_file_problem(path: Path | str) -> str | None:
    """Why an image file is not a whole, decodable image within the pixel limit; None when it is.

    The header is read first (empty, not an image, above the limit: nothing decoded). OpenCV
    decodes a truncated JPEG without an error (the missing rows come out grey, libjpeg only
    prints "Premature end of JPEG file"), so the file is then decoded to its end with Pillow,
    which reports truncation; a file whose data Pillow cannot decode still counts as good when
    OpenCV decodes it, and one that OpenCV (every verb's decoder) cannot decode, or decodes at
    another size than the header's, is bad. Costs two full decodes.
    """
    size, problem = header_problem(path)
    if problem is not None:
        return problem
    decoded = _imread(path)  # the decoder every verb uses must take it too, at the header's size
    if decoded is not None and size is not None and decoded.shape[:2] != (size[1], size[0]):
        return (
            f"OpenCV, the decoder every verb uses, decodes it as {decoded.shape[1]}x"
            f"{decoded.shape[0]} pixels, but its header says {size[0]}x{size[1]}"
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                im.load()
    except Image.DecompressionBombError:
        return None  # within orpose's (raised) limit but above Pillow's: Pillow only refuses
    except Exception as err:  # Pillow raises OSError, SyntaxError, ValueError... on bad data
        if "truncated" in str(err):
            return "truncated image file (it ends before the image data does)"
        if decoded is not None:
            return None
        return f"cannot be decoded ({err})"
    if decoded is None:
        return "Pillow decodes it but OpenCV, the decoder every verb uses, cannot"
    return None


def record_size_problem(img: dict, size: tuple[int, int]) -> str | None:
    """Why a COCO image record does not fit an image of ``size`` = (width, height); None if it
    does. Annotations are in the recorded pixel grid: another size (an image rotated by its EXIF
    tag elsewhere, resized, or swapped for another) would silently misplace every person."""
    recorded = (img.get("width"), img.get("height"))
    if tuple(recorded) == tuple(size):
        return None
    return (
        f"records {recorded[0]}x{recorded[1]} (width x height) but the image file is "
        f"{size[0]}x{size[1]} pixels as stored (EXIF orientation is ignored: see "
        "docs/security.md); fix the record or the file"
    )


def read_dataset_image(dataset: PoseDataset, img: dict) -> np.ndarray:
    """The RGB image of one record of a COCO file; DatasetError naming the file, the record, the
    field and the image file when it cannot be decoded, is too large, or has another size than
    the record's ``width`` / ``height``."""
    path = dataset.image_path(img)
    where = f"{dataset.path or '<dataset>'}: image id {img['id']}"
    try:
        image = read_image_rgb(path)
    except OSError as err:
        problem = image_file_problem(path) or str(err).removeprefix(f"{path}: ")
        raise DatasetError(f"{where}: field 'file_name': {path}: {problem}") from err
    problem = record_size_problem(img, (image.shape[1], image.shape[0]))
    if problem is not None:
        raise DatasetError(f"{where}: fields 'width', 'height': {problem} ({path})")
    return image


def undecodable_images(dataset: PoseDataset) -> list[tuple[dict, Path, str]]:
    """``(image entry, path, problem)`` of every image whose file is not a whole, decodable image
    within the pixel limit (empty, not an image, truncated, too large: see
    :func:`image_file_problem`), or whose size is not the record's ``width``
    x ``height`` (:func:`record_size_problem`)."""
    bad = []
    for img in dataset.images:
        path = dataset.image_path(img)
        problem = image_file_problem(path)
        if problem is None:
            problem = record_size_problem(img, image_size(path))
        if problem is not None:
            bad.append((img, path, problem))
    return bad
