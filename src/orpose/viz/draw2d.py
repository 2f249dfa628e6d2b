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


# Box colours (RGB) of tracked people: one per track id, so that an id switch shows as a change
# of colour; matplotlib's tab10 without its grey, bright enough on dark OR frames.
TRACK_COLOURS = (
    (31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
    (140, 86, 75), (227, 119, 194), (188, 189, 34), (23, 190, 207),
)  # fmt: skip


def track_colour(track_id: int) -> tuple[int, int, int]:
    return TRACK_COLOURS[(int(track_id) - 1) % len(TRACK_COLOURS)]


def person_label(person: dict) -> str | None:
    """``#7 0.93`` for a tracked person (track id, score), the score alone otherwise."""
    parts = []
    if person.get("track_id") is not None:
        parts.append(f"#{person['track_id']}")
    if "score" in person:
        parts.append(f"{person['score']:.2f}")
    return " ".join(parts) or None


def draw_box(
    image: np.ndarray,
    box_xywh: Sequence[float],
    colour=(255, 255, 255),
    label: str | None = None,
    thickness: int = 1,
    filled_label: bool = False,
) -> np.ndarray:
    """Draw one ``[x, y, w, h]`` box (in place) with an optional text label above it;
    ``filled_label`` writes it in black on a patch of the box's colour (legible on any
    background: track ids on grey floors)."""
    x, y, w, h = (int(round(v)) for v in box_xywh)
    cv2.rectangle(image, (x, y), (x + w, y + h), colour, thickness, cv2.LINE_AA)
    if label:
        font, scale = cv2.FONT_HERSHEY_SIMPLEX, 0.35 * max(thickness, 1)
        (tw, th), base = cv2.getTextSize(label, font, scale, 1)
        origin = (x, max(y - 3, th + 2))
        text_colour = colour
        if filled_label:
            top_left = (origin[0] - 1, origin[1] - th - 2)
            cv2.rectangle(image, top_left, (origin[0] + tw + 1, origin[1] + base - 1), colour, -1)
            text_colour = (0, 0, 0)
        cv2.putText(image, label, origin, font, scale, text_colour, 1, cv2.LINE_AA)
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
    """A copy of an RGB image with every person's box (score; track id as ``#id`` in the track's
    colour when tracked) and skeleton drawn."""
    canvas = np.ascontiguousarray(image.copy())
    for person in people:
        if show_boxes and "bbox" in person:
            tracked = person.get("track_id") is not None
            colour = track_colour(person["track_id"]) if tracked else (255, 255, 255)
            thickness = max(1, max(canvas.shape[:2]) // 400) if tracked else 1
            draw_box(canvas, person["bbox"], colour, person_label(person), thickness, tracked)
        kps = person.get(keypoint_field) or person.get("keypoints")
        if kps:
            draw_skeleton(canvas, np.asarray(kps), threshold)
    return canvas
