"""The one place that knows the skeletons: COCO-17, MVOR's 10 upper-body joints, Human3.6M-17.

Every other module indexes keypoints through the names and tables defined here, so that a change
of convention (a flip pair, the root, the MPJPE joints) happens in one file. So is the one
horizontal flip of image coordinates (:func:`flip_x`, :func:`flip_keypoints`,
:func:`flip_boxes`): keypoints are pixel indices (x' = width - 1 - x), boxes continuous edges
(x' = width - x).

Arrays follow one convention: keypoints are ``(..., 17, C)`` with ``C`` = 2 (x, y), 3 (x, y, v or
confidence) or 3 for 3D (x, y, z); the last channel of a 2D array is a visibility / confidence.
"""

from __future__ import annotations

import numpy as np

COCO_KEYPOINTS: tuple[str, ...] = (
    "nose",
    "left_eye",
    "right_eye",
    "left_ear",
    "right_ear",
    "left_shoulder",
    "right_shoulder",
    "left_elbow",
    "right_elbow",
    "left_wrist",
    "right_wrist",
    "left_hip",
    "right_hip",
    "left_knee",
    "right_knee",
    "left_ankle",
    "right_ankle",
)
NUM_KEYPOINTS = len(COCO_KEYPOINTS)
KEYPOINT_INDEX: dict[str, int] = {name: i for i, name in enumerate(COCO_KEYPOINTS)}

# Left/right pairs, swapped when an image is flipped horizontally.
FLIP_PAIRS: tuple[tuple[int, int], ...] = tuple(
    (KEYPOINT_INDEX[f"left_{part}"], KEYPOINT_INDEX[f"right_{part}"])
    for part in ("eye", "ear", "shoulder", "elbow", "wrist", "hip", "knee", "ankle")
)


def _flip_permutation(pairs: tuple[tuple[int, int], ...], n: int) -> tuple[int, ...]:
    perm = list(range(n))
    for a, b in pairs:
        perm[a], perm[b] = b, a
    return tuple(perm)


# FLIP_INDEX[i] is the keypoint that joint i becomes after a horizontal flip.
FLIP_INDEX: tuple[int, ...] = _flip_permutation(FLIP_PAIRS, NUM_KEYPOINTS)

# The COCO skeleton (0-based), as in the COCO person_keypoints category.
LIMBS: tuple[tuple[int, int], ...] = (
    (15, 13), (13, 11), (16, 14), (14, 12), (11, 12), (5, 11), (6, 12), (5, 6), (5, 7),
    (6, 8), (7, 9), (8, 10), (1, 2), (0, 1), (0, 2), (1, 3), (2, 4), (3, 5), (4, 6),
)  # fmt: skip

# Per-keypoint OKS sigmas of the COCO keypoint challenge (pycocotools' cocoeval.py).
OKS_SIGMAS = np.array(
    [0.26, 0.25, 0.25, 0.35, 0.35, 0.79, 0.79, 0.72, 0.72, 0.62, 0.62, 1.07, 1.07, 0.87, 0.87,
     0.89, 0.89]
) / 10.0  # fmt: skip

# The 8 upper-body joints over which the ORPose paper reports MPJPE.
UPPER_BODY_JOINTS: tuple[int, ...] = tuple(
    KEYPOINT_INDEX[f"{side}_{part}"]
    for part in ("shoulder", "elbow", "wrist", "hip")
    for side in ("left", "right")
)
ROOT_JOINTS: tuple[int, int] = (KEYPOINT_INDEX["left_hip"], KEYPOINT_INDEX["right_hip"])

# COCO's category entry, written into every file orpose produces.
PERSON_CATEGORY: dict = {
    "id": 1,
    "name": "person",
    "supercategory": "person",
    "keypoints": list(COCO_KEYPOINTS),
    "skeleton": [[a + 1, b + 1] for a, b in LIMBS],
}


def root_position(keypoints: np.ndarray) -> np.ndarray:
    """Mid-hips of ``(..., 17, C)`` keypoints: the root of every root-relative pose in orpose."""
    return (keypoints[..., ROOT_JOINTS[0], :3] + keypoints[..., ROOT_JOINTS[1], :3]) / 2.0


def root_relative(keypoints3d: np.ndarray) -> np.ndarray:
    """Subtract the mid-hips from ``(..., 17, 3)`` points (extra channels are dropped)."""
    xyz = np.asarray(keypoints3d, dtype=np.float64)[..., :3]
    return xyz - root_position(xyz)[..., None, :]


def flip_x(x, image_width: float):
    """A pixel-index x after a horizontal flip of an image ``image_width`` pixels wide.

    orpose's keypoints are COCO pixel indices (x = 0 is the centre of the first pixel, see
    orpose/student/losses.py), and mirroring an image (``pixels[:, ::-1]``, ``cv2.flip``) moves
    pixel i to pixel ``width - 1 - i``: so x' = width - 1 - x. Every flip of keypoints, and of any
    point or crop in pixel indices, goes through this function.
    """
    return (image_width - 1) - x


def flip_keypoints(keypoints: np.ndarray, image_width: float) -> np.ndarray:
    """Mirror ``(..., 17, C)`` image keypoints for a horizontally flipped image of that width:
    left and right joints swapped, x in pixel indices (:func:`flip_x`: x' = width - 1 - x).
    An involution: flipping twice gives the keypoints back.
    """
    flipped = np.array(keypoints, dtype=np.float64, copy=True)[..., FLIP_INDEX, :]
    flipped[..., 0] = flip_x(flipped[..., 0], image_width)
    return flipped


def flip_boxes(boxes: np.ndarray, image_width: float) -> np.ndarray:
    """Mirror ``(..., 4)`` xyxy boxes for a horizontally flipped image of that width.

    Box numbers are continuous edges (pixel i spans [i, i + 1]: COCO's ``bbox`` and torchvision's
    boxes), so an edge maps as x' = width - x and the two x edges swap: x0' = width - x1,
    x1' = width - x0 (as ``orpose.data.lowres.scale_results`` and self-labelling treat them).
    The box of pixel k, edges [k, k + 1], becomes [width - 1 - k, width - k]: the box of pixel
    :func:`flip_x` (k), so boxes and keypoints stay together.
    """
    flipped = np.array(boxes, dtype=np.float64, copy=True)
    flipped[..., [0, 2]] = image_width - flipped[..., [2, 0]]
    return flipped


# --------------------------------------------------------------------------------------------
# MVOR: 10 upper-body joints (camma_mvor_2018.json). The 3D annotations have 12 points whose
# first 10 follow this order.
MVOR_KEYPOINTS: tuple[str, ...] = (
    "head",
    "neck",
    "left_shoulder",
    "right_shoulder",
    "left_hip",
    "right_hip",
    "left_elbow",
    "right_elbow",
    "left_wrist",
    "right_wrist",
)
NUM_MVOR_KEYPOINTS = len(MVOR_KEYPOINTS)
# MVOR index -> COCO index for the joints the two skeletons share (head and neck have no COCO twin).
MVOR_TO_COCO: dict[int, int] = {
    i: KEYPOINT_INDEX[name] for i, name in enumerate(MVOR_KEYPOINTS) if name in KEYPOINT_INDEX
}
MVOR_LIMBS: tuple[tuple[int, int], ...] = (
    (0, 1), (1, 3), (3, 7), (3, 5), (7, 9), (1, 2), (2, 4), (2, 6), (6, 8), (4, 5),
)  # fmt: skip


def mvor_to_coco(keypoints: np.ndarray) -> np.ndarray:
    """``(..., 10, C)`` MVOR joints to ``(..., 17, C)`` COCO; head/neck dropped, absent joints 0."""
    keypoints = np.asarray(keypoints, dtype=np.float64)
    out = np.zeros((*keypoints.shape[:-2], NUM_KEYPOINTS, keypoints.shape[-1]))
    for mvor_index, coco_index in MVOR_TO_COCO.items():
        out[..., coco_index, :] = keypoints[..., mvor_index, :]
    return out


def _first_visible(candidates: list[np.ndarray]) -> np.ndarray:
    """Return the first (x, y, v) whose v > 0, else zeros: a per-person fallback chain."""
    for c in candidates:
        if c[2] > 0:
            return c
    return np.zeros(3)


def coco_to_mvor(keypoints: np.ndarray) -> np.ndarray:
    """One person's ``(17, 3)`` COCO keypoints to MVOR's ``(10, 3)``.

    Head and neck follow the rule of MVOR's own tools (lib/visualize_groundtruth.py in
    CAMMA-public/MVOR): head = mid-eyes, else mid-ears, else nose, else any eye or ear; neck =
    mid-shoulders, else the visible shoulder.
    """
    k = np.asarray(keypoints, dtype=np.float64)
    idx = KEYPOINT_INDEX
    out = np.zeros((NUM_MVOR_KEYPOINTS, 3))

    def mid(a: str, b: str) -> np.ndarray:
        pa, pb = k[idx[a]], k[idx[b]]
        return (pa + pb) / 2.0 if pa[2] > 0 and pb[2] > 0 else np.zeros(3)

    out[0] = _first_visible([
        mid("left_eye", "right_eye"), mid("left_ear", "right_ear"), k[idx["nose"]],
        k[idx["right_eye"]], k[idx["left_eye"]], k[idx["right_ear"]], k[idx["left_ear"]],
    ])  # fmt: skip
    out[1] = _first_visible(
        [mid("left_shoulder", "right_shoulder"), k[idx["right_shoulder"]], k[idx["left_shoulder"]]]
    )
    for mvor_index, coco_index in MVOR_TO_COCO.items():
        out[mvor_index] = k[coco_index] if k[coco_index, 2] > 0 else 0.0
    return out


# --------------------------------------------------------------------------------------------
# Human3.6M-style 17 joints, in the order of Martinez et al.'s lifter and VideoPose3D.
H36M_KEYPOINTS: tuple[str, ...] = (
    "pelvis",
    "right_hip",
    "right_knee",
    "right_ankle",
    "left_hip",
    "left_knee",
    "left_ankle",
    "spine",
    "thorax",
    "neck_nose",
    "head",
    "left_shoulder",
    "left_elbow",
    "left_wrist",
    "right_shoulder",
    "right_elbow",
    "right_wrist",
)
# H36M joints taken directly from a COCO joint (the others are midpoints, see coco_to_h36m).
H36M_FROM_COCO: dict[int, int] = {
    1: 12, 2: 14, 3: 16, 4: 11, 5: 13, 6: 15, 9: 0, 11: 5, 12: 7, 13: 9, 14: 6, 15: 8, 16: 10,
}  # fmt: skip
H36M_LIMBS: tuple[tuple[int, int], ...] = (
    (0, 1), (1, 2), (2, 3), (0, 4), (4, 5), (5, 6), (0, 7), (7, 8), (8, 9), (9, 10),
    (8, 11), (11, 12), (12, 13), (8, 14), (14, 15), (15, 16),
)  # fmt: skip


def coco_to_h36m(keypoints: np.ndarray, score_channel: bool = True) -> np.ndarray:
    """``(..., 17, C)`` COCO keypoints (2D or 3D) to the H36M order.

    The mapping used by MMPose and VideoPose3D: pelvis = mid-hips, thorax = mid-shoulders,
    spine = mid(pelvis, thorax), head = mid-eyes, neck/nose = nose. With ``score_channel`` the
    last channel is a visibility or confidence and a derived joint takes the minimum of its
    sources' (a midpoint is only as reliable as its weaker end); pass False for plain 3D points.
    """
    k = np.asarray(keypoints, dtype=np.float64)
    out = np.zeros_like(k)
    for h36m_index, coco_index in H36M_FROM_COCO.items():
        out[..., h36m_index, :] = k[..., coco_index, :]

    def midpoint(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        m = (a + b) / 2.0
        if score_channel:
            m[..., -1] = np.minimum(a[..., -1], b[..., -1])
        return m

    out[..., 0, :] = midpoint(k[..., 11, :], k[..., 12, :])
    out[..., 8, :] = midpoint(k[..., 5, :], k[..., 6, :])
    out[..., 7, :] = midpoint(out[..., 0, :], out[..., 8, :])
    out[..., 10, :] = midpoint(k[..., 1, :], k[..., 2, :])
    return out
