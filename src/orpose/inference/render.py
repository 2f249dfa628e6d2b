"""Rendered outputs of ``orpose predict``: 2D overlays (images or videos) and 3D skeleton plots.

Overlays are drawn on the frame that is kept in memory, so in privacy mode they are written at
the low resolution (see :mod:`.privacy`); 3D plots are drawn from the 3D keypoints alone and
never contain a camera pixel.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from orpose.data.images import opencv_path
from orpose.errors import UserError
from orpose.skeleton import ROOT_JOINTS
from orpose.viz.draw2d import draw_people, person_label

VIDEO_FOURCC = "mp4v"  # MPEG-4 part 2: in every OpenCV FFmpeg build, any frame size (even sides)
VIDEO_SUFFIX = ".mp4"
MVOR_FOCAL_PX = 538.0  # MVOR's cameras (640x480): the default focal length for 3D placement
DEFAULT_ROOT_DEPTH_MM = 4000.0  # --root-depth auto, when no person's depth can be estimated


def safe_name(text: str) -> str:
    """A file-name-safe version of a source name (paths, URLs)."""
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_")
    return name[-120:] or "source"


def overlay(image: np.ndarray, results: Sequence[dict], keypoint_threshold: float) -> np.ndarray:
    """A copy of the RGB frame with every person's box, score and skeleton."""
    return draw_people(image, results, threshold=keypoint_threshold)


def write_image_rgb(path: Path, image: np.ndarray) -> Path:
    """Write an overlay image; a failed write (OpenCV only says False: a full disk, a read-only
    place, a folder in the way) is a UserError naming the file (one line, exit code 2)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    ok, data = cv2.imencode(path.suffix or ".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    if not ok:
        raise UserError(f"{path}: cannot be encoded as {path.suffix or '.jpg'}")
    # written by Python, not by OpenCV: a failed write is an OSError naming the file (one line),
    # and OpenCV never sees a path that is not valid UTF-8 (it crashes on one)
    path.write_bytes(data.tobytes())
    return path


class VideoSink:
    """An overlay video, opened at its first frame's size (sides rounded down to even numbers,
    as the codec needs: frames are cropped by at most one pixel, never enlarged)."""

    def __init__(self, path: Path, fps: float):
        self.path = path
        self.fps = fps
        self.size: tuple[int, int] | None = None
        self.writer: cv2.VideoWriter | None = None
        self.frames = 0

    def write(self, image: np.ndarray) -> None:
        if self.writer is None:
            h, w = image.shape[:2]
            self.size = (max(2, w - w % 2), max(2, h - h % 2))
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fourcc = cv2.VideoWriter_fourcc(*VIDEO_FOURCC)
            text = opencv_path(self.path)
            if text is None:
                raise UserError(
                    f"{str(self.path)!r}: not valid UTF-8 text, which OpenCV cannot write to: "
                    "give an --out of another name"
                )
            self.writer = cv2.VideoWriter(text, fourcc, self.fps, self.size)
            if not self.writer.isOpened():
                raise UserError(
                    f"{self.path}: cannot open a {VIDEO_FOURCC} video writer (a read-only place, "
                    "a folder of that name, or no such codec in this OpenCV build)"
                )
        w, h = self.size
        frame = np.ascontiguousarray(image[:h, :w])
        if frame.shape[:2] != (h, w):  # a smaller frame in the same stream: pad it
            frame = cv2.copyMakeBorder(frame, 0, h - frame.shape[0], 0, w - frame.shape[1], 0)
        self.writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
        self.frames += 1

    def close(self) -> None:
        if self.writer is not None:
            self.writer.release()
            self.writer = None


ROOT_DEPTH_AUTO = "auto"  # --root-depth auto: each person at its own estimated depth
DEPTH_RANGE_MM = (500.0, 30000.0)  # estimates outside are clipped: 0.5 m to 30 m from the camera


def estimate_root_depth(result: dict, focal_px: float, min_score: float = 0.3) -> float | None:
    """The camera-to-mid-hips distance (mm) at which the person's 3D pose, seen by a pinhole
    camera of ``focal_px``, has the size of its 2D pose: weak perspective, ``u - u_root =
    focal * X / Z``, solved for ``Z`` by least squares over the joints scoring ``min_score``.

    Why: the student's 3D is root-relative (its depth is unknown); its size in mm against the
    2D size in pixels is what tells how far away a person stands. None when the two do not
    agree in sign (a pose too small or degenerate to say).
    """
    kps = np.asarray(result["keypoints"], dtype=np.float64).reshape(-1, 3)
    pose = np.asarray(result["keypoints3d"], dtype=np.float64).reshape(-1, 3)
    uv = kps[:, :2] - kps[list(ROOT_JOINTS), :2].mean(axis=0)
    xy = pose[:, :2] - pose[list(ROOT_JOINTS), :2].mean(axis=0)
    confident = kps[:, 2] >= min_score
    if confident.sum() >= 4:
        uv, xy = uv[confident], xy[confident]
    pixels_per_mm = float((uv * xy).sum() / max(float((xy * xy).sum()), 1e-9))
    if not np.isfinite(pixels_per_mm) or pixels_per_mm <= 0:
        return None
    return float(np.clip(focal_px / pixels_per_mm, *DEPTH_RANGE_MM))


def root_positions(
    results: Sequence[dict],
    depth_mm: float | Sequence[float],
    focal_px: float,
    size: tuple[int, int],
) -> list[np.ndarray]:
    """Where each person's mid-hips would be at ``depth_mm`` (one for all, or one each): the
    2D mid-hips back-projected.

    A pinhole camera with the principal point at the image centre; the paper's figures place
    root-relative poses the same way (a root depth, the image position for x and y).
    """
    cx, cy = size[0] / 2, size[1] / 2
    depths = [depth_mm] * len(results) if np.isscalar(depth_mm) else list(depth_mm)
    roots = []
    for r, depth in zip(results, depths, strict=True):
        kps = np.asarray(r["keypoints"], dtype=np.float64).reshape(-1, 3)
        u, v = kps[list(ROOT_JOINTS), :2].mean(axis=0)
        roots.append(np.array([(u - cx) * depth / focal_px, (v - cy) * depth / focal_px, depth]))
    return roots


def plot_people_3d(
    path: Path,
    results: Sequence[dict],
    size: tuple[int, int],
    root_depth_mm: float | str | None = None,
    focal_px: float | None = None,
    title: str = "",
) -> Path | None:
    """One 3D plot of every person with ``keypoints3d``; None when nobody has 3D.

    Without ``root_depth_mm``: one body-centred panel per person (root-relative, mid-hips at
    0). With a depth in mm: one scene, each person at its back-projected root at that depth;
    with ``"auto"``: at its own depth from :func:`estimate_root_depth` (people whose depth
    cannot be estimated take the others' median, else 4 m). Labels: track id and score.
    """
    from orpose.viz.plot3d import place_at_root, plot_skeletons_3d

    people = [r for r in results if r.get("keypoints3d")]
    if not people:
        return None
    poses = [np.asarray(r["keypoints3d"], dtype=np.float64).reshape(-1, 3) for r in people]
    labels = [person_label(r) or "" for r in people]
    if root_depth_mm is None:
        return plot_skeletons_3d(poses, path, title=title, labels=labels)
    focal = focal_px or MVOR_FOCAL_PX * size[0] / 640.0
    if root_depth_mm == ROOT_DEPTH_AUTO:
        found = [estimate_root_depth(r, focal) for r in people]
        known = [d for d in found if d is not None]
        fallback = float(np.median(known)) if known else DEFAULT_ROOT_DEPTH_MM
        depths: float | list[float] = [fallback if d is None else d for d in found]
    else:
        depths = float(root_depth_mm)
    roots = root_positions(people, depths, focal, size)
    placed = [place_at_root(p, root) for p, root in zip(poses, roots, strict=True)]
    return plot_skeletons_3d(placed, path, title=title, labels=labels, scene=True)
