"""Where frames come from: image files, folders of images, video files, with frame stepping.

Every source yields :class:`Frame` objects carrying a stable key (the image path, or
``video.avi#frame=000120``) so that long jobs can record what they finished and resume.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from orpose.data.coco import load_pose_dataset
from orpose.data.images import (  # noqa: F401  (the one decoder; re-exported for importers)
    image_file_problem,
    max_image_pixels,
    opencv_path,
    read_image_rgb,
)
from orpose.errors import SourceError

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"})
VIDEO_SUFFIXES = frozenset({".avi", ".mp4", ".mov", ".mkv", ".mpg", ".mpeg", ".webm", ".m4v"})
MAX_CAMERA_INDEX = 9999  # larger numbers overflow OpenCV's int (a traceback, not a camera)
STREAM_SCHEMES = ("rtsp://", "rtsps://", "rtmp://", "http://", "https://", "udp://", "tcp://")

# Applied to every decoded RGB frame before anything else sees it (e.g. privacy downscaling), so
# that the decoded full-size array is dropped inside the source, not kept by the caller.
FramePrepare = Callable[[np.ndarray], np.ndarray]


@dataclass
class Frame:
    """One RGB frame (``(H, W, 3)`` uint8) and where it came from."""

    key: str  # unique and stable across runs: the file path, or video path + frame index
    image: np.ndarray | None  # None when the file could not be decoded
    source: str  # the image file or the video file
    frame_index: int | None = None  # position in the video, None for still images
    error: str | None = None  # why ``image`` is None

    @property
    def height(self) -> int:
        return 0 if self.image is None else self.image.shape[0]

    @property
    def width(self) -> int:
        return 0 if self.image is None else self.image.shape[1]


def video_frame_key(video: Path | str, index: int) -> str:
    return f"{video}#frame={index:06d}"


def list_images(folder: Path) -> list[Path]:
    """Image files of a folder (recursively), sorted so that runs are reproducible."""
    return sorted(
        p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()
    )


def is_video(path: Path) -> bool:
    return path.suffix.lower() in VIDEO_SUFFIXES


def _identity(image: np.ndarray) -> np.ndarray:
    return image


def iter_images(paths: Iterable[Path], prepare: FramePrepare | None = None) -> Iterator[Frame]:
    """Frames of still images; an unreadable file yields a frame with ``error`` set."""
    prepare = prepare or _identity
    for path in paths:
        try:
            image = prepare(read_image_rgb(path))
        except OSError as err:
            yield Frame(str(path), None, str(path), error=str(err))
            continue
        yield Frame(str(path), image, str(path))


def open_capture(source: Path | str | int) -> cv2.VideoCapture:
    """OpenCV's capture of a video file, a stream URL or a camera number; SourceError naming it
    when its name is not valid UTF-8 text (OpenCV would crash the process on it)."""
    if isinstance(source, int):
        return cv2.VideoCapture(source)
    text = opencv_path(source)
    if text is None:
        raise SourceError(
            f"{str(source)!r}: the name is not valid UTF-8 text, which OpenCV cannot open: "
            "rename the file"
        )
    return cv2.VideoCapture(text)


def count_video_frames(path: Path | str) -> int:
    cap = open_capture(path)
    try:
        return int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    finally:
        cap.release()


def video_fps(path: Path | str, default: float = 25.0) -> float:
    """Frames per second a video or stream declares (``default`` when it declares none)."""
    cap = open_capture(path)
    try:
        fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
    finally:
        cap.release()
    return fps if 0 < fps < 1000 else default


def iter_video(
    path: Path | str,
    step: int = 1,
    start: int = 0,
    limit: int | None = None,
    prepare: FramePrepare | None = None,
) -> Iterator[Frame]:
    """Every ``step``-th frame of a video from ``start``, decoded with OpenCV (FFmpeg backend).

    Frames are decoded in order and the skipped ones are only grabbed, not converted, which is
    faster than seeking with most codecs. ``prepare`` maps each decoded RGB frame (see
    :data:`FramePrepare`).
    """
    if step < 1:
        raise ValueError(f"frame step must be >= 1, got {step}")
    cap = open_capture(path)
    if not cap.isOpened():
        raise SourceError(f"{path}: cannot be opened as a video")
    width, height = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
    if width * height > max_image_pixels():
        cap.release()
        raise SourceError(
            f"{path}: frames of {width}x{height} pixels are above the limit of "
            f"{max_image_pixels() / 1e6:g} megapixels (ORPOSE_MAX_IMAGE_PIXELS)"
        )
    yield from _read_capture(cap, str(path), step, start, limit, prepare or _identity)


def _read_capture(
    cap: cv2.VideoCapture,
    name: str,
    step: int,
    start: int,
    limit: int | None,
    prepare: FramePrepare,
) -> Iterator[Frame]:
    """Frames of an opened capture; released when the iteration ends or is abandoned."""
    try:
        index, produced = 0, 0
        while limit is None or produced < limit:
            if index < start or (index - start) % step:
                if not cap.grab():
                    break
                index += 1
                continue
            ok, bgr = cap.read()
            if not ok:
                break
            image = prepare(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
            del bgr  # the decoded full frame must not outlive ``prepare``
            yield Frame(video_frame_key(name, index), image, name, frame_index=index)
            produced += 1
            index += 1
    finally:
        cap.release()


def is_stream(raw: str | Path) -> bool:
    """A camera index (``0``, ``1``...) or a network stream URL (rtsp, http...), not a file."""
    text = str(raw)
    return text.isdigit() or text.lower().startswith(STREAM_SCHEMES)


def iter_stream(
    source: str | int,
    step: int = 1,
    limit: int | None = None,
    prepare: FramePrepare | None = None,
) -> Iterator[Frame]:
    """Frames of a live camera (its index) or a stream URL, until it ends or ``limit`` frames.

    Keys are ``<source>#frame=<n>``, counted from the moment the stream was opened.
    """
    if step < 1:
        raise ValueError(f"frame step must be >= 1, got {step}")
    text = str(source)
    if text.isdigit() and (not text.isascii() or int(text) > MAX_CAMERA_INDEX):
        raise SourceError(f"{text}: not a camera index (0-{MAX_CAMERA_INDEX}) nor a file")
    cap = open_capture(int(text) if text.isdigit() else text)
    if not cap.isOpened():
        kind = "camera" if text.isdigit() else "stream"
        raise SourceError(f"{text}: cannot open the {kind}")
    yield from _read_capture(cap, text, step, 0, limit, prepare or _identity)


@dataclass(frozen=True)
class SourceSpec:
    """One input as the user named it, expanded: a list of images or one video."""

    path: Path
    images: tuple[Path, ...] = ()
    video: bool = False


def coco_image_paths(path: Path, image_root: Path | None = None) -> tuple[Path, ...]:
    """The images a COCO file lists (``file_name`` resolved as the dataset loader does, under
    ``image_root`` when given: ``--images``)."""
    dataset = load_pose_dataset(path, image_root=image_root, check_images=True)
    if not dataset.images:
        raise SourceError(f"{path}: images: the COCO file lists no image")
    return tuple(dataset.image_path(img) for img in dataset.images)


def expand_inputs(inputs: Iterable[Path | str], image_root: Path | None = None) -> list[SourceSpec]:
    """Resolve command-line inputs (images, folders, videos, COCO files) and fail early on a
    wrong one. A COCO ``.json`` stands for the images it lists: the way to label exactly the
    images of a labelled or subset file (relative names resolved under ``image_root`` when
    given, else as the dataset loader's default)."""
    specs = []
    for raw in inputs:
        if not str(raw).strip():  # Path("") is "." : the whole current folder, unasked
            raise SourceError(
                f"{str(raw)!r}: an input is an empty name (an unset shell variable?); name a "
                "file or folder ('.' for the current folder)"
            )
        path = Path(raw)
        if path.is_file() and path.suffix.lower() == ".json":
            specs.append(SourceSpec(path, coco_image_paths(path, image_root)))
        elif path.is_dir():
            images = list_images(path)
            if not images:
                raise SourceError(
                    f"{path}: folder holds no image ({', '.join(sorted(IMAGE_SUFFIXES))})"
                )
            specs.append(SourceSpec(path, tuple(images)))
        elif path.is_file() and is_video(path):
            specs.append(SourceSpec(path, video=True))
        elif path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES:
            specs.append(SourceSpec(path, (path,)))
        elif not path.exists():
            raise SourceError(f"{path}: no such file or folder")
        else:
            raise SourceError(f"{path}: not an image, a folder of images or a video file")
    return specs


def iter_frames(
    specs: Iterable[SourceSpec], video_step: int = 1, prepare: FramePrepare | None = None
) -> Iterator[Frame]:
    """All frames of the expanded inputs, in order: images as they are, videos every k-th frame."""
    for spec in specs:
        if spec.video:
            yield from iter_video(spec.path, step=video_step, prepare=prepare)
        else:
            yield from iter_images(spec.images, prepare=prepare)
