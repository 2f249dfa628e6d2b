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

from orpose.skeleton import ROOT_JOINTS
from orpose.viz.draw2d import draw_people

VIDEO_FOURCC = "mp4v"  # MPEG-4 part 2: in every OpenCV FFmpeg build, any frame size (even sides)
VIDEO_SUFFIX = ".mp4"
MVOR_FOCAL_PX = 538.0  # MVOR's cameras (640x480): the default focal length for 3D placement


def safe_name(text: str) -> str:
    """A file-name-safe version of a source name (paths, URLs)."""
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_")
    return name[-120:] or "source"


def overlay(image: np.ndarray, results: Sequence[dict], keypoint_threshold: float) -> np.ndarray:
    """A copy of the RGB frame with every person's box, score and skeleton."""
    return draw_people(image, results, threshold=keypoint_threshold)


def write_image_rgb(path: Path, image: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR)):
        raise OSError(f"{path}: cannot be written")
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
            self.writer = cv2.VideoWriter(str(self.path), fourcc, self.fps, self.size)
            if not self.writer.isOpened():
                raise OSError(f"{self.path}: cannot open a {VIDEO_FOURCC} video writer")
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


def root_positions(
    results: Sequence[dict], depth_mm: float, focal_px: float, size: tuple[int, int]
) -> list[np.ndarray]:
    """Where each person's mid-hips would be at ``depth_mm``: the 2D mid-hips back-projected.

    A pinhole camera with the principal point at the image centre; the paper's figures place
    root-relative poses the same way (a chosen root depth, the image position for x and y).
    """
    cx, cy = size[0] / 2, size[1] / 2
    roots = []
    for r in results:
        kps = np.asarray(r["keypoints"], dtype=np.float64).reshape(-1, 3)
        u, v = kps[list(ROOT_JOINTS), :2].mean(axis=0)
        roots.append(
            np.array([(u - cx) * depth_mm / focal_px, (v - cy) * depth_mm / focal_px, depth_mm])
        )
    return roots


def plot_people_3d(
    path: Path,
    results: Sequence[dict],
    size: tuple[int, int],
    root_depth_mm: float | None = None,
    focal_px: float | None = None,
    title: str = "",
) -> Path | None:
    """One 3D plot of every person with ``keypoints3d``; None when nobody has 3D.

    Without ``root_depth_mm`` the poses are drawn root-relative (side by side in x so that they
    do not overlap); with it, each is placed at its back-projected root at that depth.
    """
    from orpose.viz.plot3d import place_at_root, plot_skeletons_3d

    people = [r for r in results if r.get("keypoints3d")]
    if not people:
        return None
    poses = [np.asarray(r["keypoints3d"], dtype=np.float64).reshape(-1, 3) for r in people]
    if root_depth_mm is not None:
        focal = focal_px or MVOR_FOCAL_PX * size[0] / 640.0
        roots = root_positions(people, root_depth_mm, focal, size)
    else:
        roots = [np.array([1000.0 * i, 0.0, 0.0]) for i in range(len(poses))]
    placed = [place_at_root(p, root) for p, root in zip(poses, roots, strict=True)]
    return plot_skeletons_3d(placed, path, title=title)
