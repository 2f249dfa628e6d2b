"""Pseudo labels of low-resolution-only recordings, made by a student itself (self-training).

An operating room that keeps only privacy-preserving 1/S recordings (say 53x40 frames) gives the
teacher nothing to work with: it was never trained on such frames and is worse than the student
there (README: 12x keypoint AP). The student labels them instead, and only where it agrees with
itself: each frame is upsampled by S (the paper's protocol) and posed as it is and mirrored; a
person is kept when both passes find them (box IoU >= ``min_iou``) with a person score of at
least ``min_score``; its keypoints are the mean of the two passes and each keypoint's confidence
is the mean score damped by how far the two passes disagree (a Gaussian of the distance in units
of ``agreement`` x the box height). The file is an ordinary pseudo-label COCO file in the small
frames' own pixels, each image record marked ``stored_downscale: S``, which the distillation data
(:mod:`orpose.training.distillation_data`) trains at S.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import asdict
from pathlib import Path

import numpy as np
from tqdm import tqdm

from orpose.data.coco import box_iou_xywh
from orpose.data.lowres import upsample
from orpose.data.sources import Frame
from orpose.lifting.intrinsics import factor_option
from orpose.skeleton import NUM_KEYPOINTS, flip_boxes, flip_keypoints
from orpose.training.temporal_labels import TrackRule, temporal_people

Predictor = Callable[[np.ndarray], list[dict]]
HARD_THRESHOLD = 0.5  # as the teacher's keypoint_threshold: the hard set's confident keypoints


def unflip(results: list[dict], width: int) -> list[dict]:
    """Results found on a horizontally mirrored image, in the unmirrored image's pixels (pixel
    indices: x -> width - 1 - x for keypoints, edges x -> width - x for boxes)."""
    out = []
    for r in results:
        x, y, w, h = r["bbox"]
        x0, _, x1, _ = flip_boxes(np.array([x, y, x + w, y + h]), width)
        kps = flip_keypoints(np.asarray(r["keypoints"], np.float64).reshape(NUM_KEYPOINTS, 3),
                             width)  # fmt: skip
        out.append({**r, "bbox": [x0, y, x1 - x0, h], "keypoints": kps.ravel().tolist()})
    return out


def consistent_people(
    plain: list[dict], mirrored: list[dict], min_score: float, min_iou: float, agreement: float
) -> list[dict]:
    """People found by both passes (greedy by score, one-to-one), averaged (see the module)."""
    plain = [r for r in plain if r["score"] >= min_score]
    mirrored = [r for r in mirrored if r["score"] >= min_score]
    plain.sort(key=lambda r: -r["score"])
    iou = box_iou_xywh([r["bbox"] for r in plain], [r["bbox"] for r in mirrored])
    taken: set[int] = set()
    people = []
    for i, a in enumerate(plain):
        candidates = [j for j in np.argsort(-iou[i]) if j not in taken and iou[i, j] >= min_iou]
        if not candidates:
            continue
        j = int(candidates[0])
        taken.add(j)
        b = mirrored[j]
        ka = np.asarray(a["keypoints"], np.float64).reshape(NUM_KEYPOINTS, 3)
        kb = np.asarray(b["keypoints"], np.float64).reshape(NUM_KEYPOINTS, 3)
        box = (np.asarray(a["bbox"]) + np.asarray(b["bbox"])) / 2
        spread = max(agreement * box[3], 1e-6)
        distance = np.linalg.norm(ka[:, :2] - kb[:, :2], axis=1)
        conf = (ka[:, 2] + kb[:, 2]) / 2 * np.exp(-0.5 * (distance / spread) ** 2)
        keypoints = np.concatenate([(ka[:, :2] + kb[:, :2]) / 2, conf[:, None]], 1)
        people.append(
            {"bbox": box.tolist(), "score": (a["score"] + b["score"]) / 2, "keypoints": keypoints}
        )
    return people


def to_small_pixels(person: dict, factor: float) -> dict:
    """A person found on the frame upsampled by ``factor``, in the small frame's pixels."""
    kps = person["keypoints"].copy()
    kps[:, :2] = (kps[:, :2] + 0.5) / factor - 0.5
    return {**person, "bbox": [v / factor for v in person["bbox"]], "keypoints": kps}


def annotation(person: dict) -> dict:
    """A pseudo-label annotation (the teacher's fields: hard ``keypoints``, ``keypoints_soft``)."""
    soft = person["keypoints"]
    visible = soft[:, 2] >= HARD_THRESHOLD
    hard = np.where(visible[:, None], np.concatenate([soft[:, :2], 2 * np.ones((17, 1))], 1), 0)
    x, y, w, h = (round(float(v), 2) for v in person["bbox"])
    return {
        "category_id": 1,
        "iscrowd": 0,
        "bbox": [x, y, w, h],
        "area": round(w * h, 2),
        "score": round(float(person["score"]), 5),
        "keypoints": [round(float(v), 2) for v in hard.ravel()],
        "num_keypoints": int(visible.sum()),
        "keypoints_soft": [round(float(v), 3) for v in soft.ravel()],
    }


def sequence_of(frame: Frame) -> str:
    """Which recording a frame belongs to: its video, or the folder of a still image (frames of
    one folder, sorted by name, are taken as consecutive)."""
    return frame.source if frame.frame_index is not None else str(Path(frame.source).parent)


def self_label(
    predictor: Predictor,
    frames: Iterable[Frame],
    factor: float,
    min_score: float = 0.3,
    min_iou: float = 0.5,
    agreement: float = 0.05,
    progress: bool = True,
    total: int | None = None,
    temporal: TrackRule | None = None,
) -> dict:
    """A pseudo-label COCO dict of frames stored at 1/``factor`` (see the module). With
    ``temporal``, the frames are consecutive recordings: flip-consistent people from
    ``temporal.candidate_score`` on are linked over time and those of lasting, confident
    tracks kept (:mod:`orpose.training.temporal_labels`) instead of thresholding each frame at
    ``min_score``."""
    images, found, sequences, skipped = [], [], [], 0
    floor = temporal.candidate_score if temporal is not None else min_score
    told = factor_option(predictor, factor)
    for frame in tqdm(frames, "self-label", total, unit="img", disable=not progress):
        if frame.image is None:
            skipped += 1
            continue
        h, w = frame.image.shape[:2]
        big = upsample(frame.image, (round(w * factor), round(h * factor)))
        plain = predictor(big, **told)
        mirrored = unflip(predictor(np.ascontiguousarray(big[:, ::-1]), **told), big.shape[1])
        images.append({"id": len(images) + 1, "file_name": str(Path(frame.source).resolve()),
                       "width": w, "height": h, "stored_downscale": factor})  # fmt: skip
        people = consistent_people(plain, mirrored, floor, min_iou, agreement)
        found.append([to_small_pixels(person, factor) for person in people])
        sequences.append(sequence_of(frame))
    if temporal is not None:
        found = linked_over_time(found, sequences, temporal)
    annotations = []
    for image, people in zip(images, found, strict=True):
        for person in people:
            annotations.append({"id": len(annotations) + 1, "image_id": image["id"],
                                **annotation(person)})  # fmt: skip
    rule = {"temporal": asdict(temporal)} if temporal is not None else {"min_score": min_score}
    info = {"self_labels": True, "stored_downscale": factor, **rule, "skipped_images": skipped}
    return {
        "info": {"orpose": info},
        "images": images,
        "annotations": annotations,
        "categories": [{"id": 1, "name": "person", "supercategory": "person"}],
    }


def linked_over_time(
    found: list[list[dict]], sequences: list[str], rule: TrackRule
) -> list[list[dict]]:
    """Per frame, the people :func:`temporal_people` keeps, each recording linked on its own."""
    out: list[list[dict]] = [[] for _ in found]
    for sequence in dict.fromkeys(sequences):
        where = [i for i, s in enumerate(sequences) if s == sequence]
        for i, people in zip(where, temporal_people([found[i] for i in where], rule),
                             strict=True):  # fmt: skip
            out[i] = people
    return out
