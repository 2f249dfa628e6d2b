"""2D overlays: person boxes and 17-keypoint skeletons drawn on images with OpenCV."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from orpose.skeleton import LIMBS

# Colours (RGB) by body side so that a left/right swap is visible at a glance.
LEFT, RIGHT, CENTRE = (0, 200, 255), (255, 140, 0), (80, 220, 80)
_LEFT_JOINTS = {1, 3, 5, 7, 9, 11, 13, 15}
_RIGHT_JOINTS = {2, 4, 6, 8, 10, 12, 14, 16}


def limb_colour(a: int, b: int) -> tuple[int, int, int]:
    if a in _LEFT_JOINTS and b in _LEFT_JOINTS:
        return LEFT
    if a in _RIGHT_JOINTS and b in _RIGHT_JOINTS:
        return RIGHT
    return CENTRE


def joint_colour(j: int) -> tuple[int, int, int]:
    return LEFT if j in _LEFT_JOINTS else RIGHT if j in _RIGHT_JOINTS else CENTRE


def draw_box(
    image: np.ndarray,
    box_xywh: Sequence[float],
    colour=(255, 255, 255),
    label: str | None = None,
    thickness: int = 1,
) -> np.ndarray:
    """Draw one ``[x, y, w, h]`` box (in place) with an optional text label."""
    x, y, w, h = (int(round(v)) for v in box_xywh)
    cv2.rectangle(image, (x, y), (x + w, y + h), colour, thickness, cv2.LINE_AA)
    if label:
        cv2.putText(
            image,
            label,
            (x, max(y - 3, 8)),
            cv2.FONT_HERSHEY_SIMPLEX,
            0.35 * max(thickness, 1),
            colour,
            1,
            cv2.LINE_AA,
        )
    return image


def draw_skeleton(
    image: np.ndarray,
    keypoints: np.ndarray,
    threshold: float = 0.0,
    radius: int | None = None,
    thickness: int | None = None,
) -> np.ndarray:
    """Draw one person's ``(17, 3)`` keypoints (in place); joints with score <= threshold hidden.

    Line width and dot size follow the image size so that overlays stay legible on 53x40
    privacy frames and on full HD alike.
    """
    k = np.asarray(keypoints, dtype=np.float64).reshape(-1, 3)
    size = max(image.shape[:2])
    radius = radius or max(1, size // 160)
    thickness = thickness or max(1, size // 320)
    shown = k[:, 2] > threshold
    for a, b in LIMBS:
        if shown[a] and shown[b]:
            pa = (int(round(k[a, 0])), int(round(k[a, 1])))
            pb = (int(round(k[b, 0])), int(round(k[b, 1])))
            cv2.line(image, pa, pb, limb_colour(a, b), thickness, cv2.LINE_AA)
    for j in np.flatnonzero(shown):
        centre = (int(round(k[j, 0])), int(round(k[j, 1])))
        cv2.circle(image, centre, radius, joint_colour(int(j)), -1, cv2.LINE_AA)
    return image


def draw_people(
    image: np.ndarray,
    people: Sequence[dict],
    keypoint_field: str = "keypoints",
    threshold: float = 0.0,
    show_boxes: bool = True,
) -> np.ndarray:
    """A copy of an RGB image with every person's box (and score) and skeleton drawn."""
    canvas = np.ascontiguousarray(image.copy())
    for person in people:
        if show_boxes and "bbox" in person:
            label = f"{person['score']:.2f}" if "score" in person else None
            draw_box(canvas, person["bbox"], label=label)
        kps = person.get(keypoint_field) or person.get("keypoints")
        if kps:
            draw_skeleton(canvas, np.asarray(kps), threshold)
    return canvas
