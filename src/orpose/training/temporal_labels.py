"""People a student finds only weakly in single frames, kept because they persist over time.

At 12x a clinician in plain view often scores 0.1-0.3 (the MVOR room's 12x recordings: 0.15
flip-consistent people per frame from 0.3, where two to four stand in view), so a per-frame
threshold keeps few of them, and a low one keeps clutter too. Over consecutive frames the two
differ: a person is found again and again at nearly the same place, a false detection comes and
goes. This module links the flip-consistent candidates of each frame into tracks with ByteTrack
(Zhang et al., ECCV 2022, Roboflow's ``trackers``, as ``orpose predict --track``: confident
candidates first, weak ones to the tracks left over, a new track only from a confident one) and
keeps a track's people when the track lasts and scores well on average. Then, as in ByteTrack's own
offline results, short gaps inside a kept track are filled by linear interpolation of box and
keypoints, so the frames where the student missed a person it found just before and after become
labels, the hard examples self-training otherwise never sees. A box that holds other kept people of
its frame (a group box) or one that another kept person of a better track nearly covers (a
duplicate) is dropped.

Input and output: per frame, a list of people ``{"bbox": [x, y, w, h], "score": s,
"keypoints": (17, 3) array}``; the output people carry ``track`` (an id) and, filled ones,
``interpolated: True``, their keypoint confidences damped by ``GAP_DAMPING`` per frame away
from the nearer detection.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from itertools import pairwise

import numpy as np

from orpose.data.coco import box_cover_xywh, box_iou_xywh, detections_of

GAP_DAMPING = 0.9  # an interpolated person's keypoint confidences x 0.9 per frame of distance


@dataclass(frozen=True)
class TrackRule:
    """Which candidates are linked and which tracks become labels."""

    candidate_score: float = 0.05  # flip-consistent people this confident are linked
    confident_score: float = 0.2  # ByteTrack's first association and new tracks
    min_frames: int = 10  # a track kept is detected in at least this many frames
    min_mean_score: float = 0.15  # and its people's mean score is at least this
    max_gap: int = 5  # missed frames inside a kept track, up to this many, are filled
    min_iou: float = 0.2  # a candidate and a track's predicted box overlap this much to match
    max_size_ratio: float = 1.5  # a track's box this much wider/taller or narrower/shorter than
    # its median is a switch to something else (a group box, clutter) and is dropped


def link(per_frame: list[list[dict]], rule: TrackRule) -> list[dict[int, dict]]:
    """Tracks over consecutive frames: each a ``{frame index: person}``, by ByteTrack.

    ``trackers`` gives a track its id at its second detection; the first, from which ByteTrack
    started it (a confident candidate of the previous frame that no track took), is put back:
    the one overlapping the track's first box most.
    """
    from trackers import ByteTrackTracker

    tracker = ByteTrackTracker(
        lost_track_buffer=rule.max_gap,
        frame_rate=30.0,  # only scales lost_track_buffer, which is given in frames
        track_activation_threshold=rule.confident_score,
        minimum_consecutive_frames=1,
        minimum_iou_threshold=rule.min_iou,
        high_conf_det_threshold=rule.confident_score,
    )
    tracks: dict[int, dict[int, dict]] = defaultdict(dict)
    unlinked: list[dict] = []  # confident candidates of the previous frame without a track
    for t, people in enumerate(per_frame):
        out = tracker.update(detections_of(people))
        ids = {int(i): int(tid) for i, tid in zip(out.data.get("index", ()), out.tracker_id,
                                                  strict=True)}  # fmt: skip
        for index, tid in ids.items():
            if tid < 0:
                continue
            if tid not in tracks and unlinked:
                overlap = box_iou_xywh([people[index]["bbox"]], [p["bbox"] for p in unlinked])[0]
                if overlap.max() >= rule.min_iou:
                    tracks[tid][t - 1] = unlinked.pop(int(overlap.argmax()))
            tracks[tid][t] = people[index]
        unlinked = [people[i] for i, tid in ids.items()
                    if tid < 0 and people[i]["score"] >= rule.confident_score]  # fmt: skip
    return [dict(sorted(track.items())) for track in tracks.values()]


def consistent_sizes(track: dict[int, dict], max_ratio: float) -> dict[int, dict]:
    """The track's people whose box width and height are both within ``max_ratio`` of the
    track's medians: a person does not change size from frame to frame, a tracker that jumped
    to a group box or to clutter does."""
    sizes = np.array([p["bbox"][2:] for p in track.values()], np.float64).reshape(-1, 2)
    ratio = np.maximum(sizes, 1e-9) / np.maximum(np.median(sizes, 0), 1e-9)
    fine = np.all((ratio <= max_ratio) & (ratio >= 1 / max_ratio), 1)
    return {t: p for (t, p), ok in zip(track.items(), fine, strict=True) if ok}


def mean_score(track: dict[int, dict]) -> float:
    """A track's people's mean score: how it is kept (:func:`kept`) and ranked."""
    return float(np.mean([p["score"] for p in track.values()]))


def kept(tracks: list[dict[int, dict]], rule: TrackRule) -> list[dict[int, dict]]:
    """The tracks that become labels, their size jumps dropped: long enough, confident enough
    on average."""
    tracks = [consistent_sizes(track, rule.max_size_ratio) for track in tracks]
    return [
        track
        for track in tracks
        if len(track) >= rule.min_frames and mean_score(track) >= rule.min_mean_score
    ]


def interpolate(a: dict, b: dict, w: float, damping: float) -> dict:
    """The person ``w`` of the way from ``a`` to ``b`` (0 < w < 1), confidences x ``damping``."""
    ka, kb = np.asarray(a["keypoints"], np.float64), np.asarray(b["keypoints"], np.float64)
    keypoints = (1 - w) * ka + w * kb
    keypoints[:, 2] = np.minimum(ka[:, 2], kb[:, 2]) * damping
    box = (1 - w) * np.asarray(a["bbox"], np.float64) + w * np.asarray(b["bbox"], np.float64)
    score = min(a["score"], b["score"])
    return {"bbox": box.tolist(), "score": score, "keypoints": keypoints, "interpolated": True}


def filled(track: dict[int, dict], max_gap: int) -> dict[int, dict]:
    """The track with gaps of at most ``max_gap`` frames filled (see the module)."""
    out = dict(track)
    frames = sorted(track)
    for t0, t1 in pairwise(frames):
        gap = t1 - t0 - 1
        if not 0 < gap <= max_gap:
            continue
        for t in range(t0 + 1, t1):
            distance = min(t - t0, t1 - t)
            out[t] = interpolate(track[t0], track[t1], (t - t0) / (t1 - t0),
                                 GAP_DAMPING**distance)  # fmt: skip
    return out


GROUP_COVER = 0.8  # a box holding this share of another person's box holds that person
GROUP_AREA = 3.0  # a box holding someone and this many times their area is not one person
DUPLICATE_COVER = 0.8  # two boxes each this much inside the other are one person twice


def is_group_box(i: int, boxes: np.ndarray, cover: np.ndarray) -> bool:
    """Whether box ``i`` of a frame's ``boxes`` ``(N, 4)`` holds others rather than one person
    (``cover[j, i]``: the share of box j inside box i, :func:`box_cover_xywh`): it covers
    ``GROUP_COVER`` of two or more other boxes, or of one at least ``GROUP_AREA`` times smaller
    (a box around the whole scene that persists, as a tracker may link one, is the case this
    catches)."""
    held = [j for j in range(len(boxes)) if j != i and cover[j, i] >= GROUP_COVER]
    area = boxes[:, 2] * boxes[:, 3]
    return len(held) >= 2 or any(area[i] >= GROUP_AREA * area[j] for j in held)


def without_group_and_duplicate_boxes(people: list[dict], ranks: list[float]) -> list[dict]:
    """One frame's kept people less group boxes (:func:`is_group_box`) and duplicates (each box
    ``DUPLICATE_COVER`` inside the other; the better-ranked one stays)."""
    boxes = np.array([p["bbox"] for p in people], np.float64).reshape(-1, 4)
    cover = box_cover_xywh(boxes, boxes)
    order = sorted((i for i in range(len(people)) if not is_group_box(i, boxes, cover)),
                   key=lambda i: -ranks[i])  # fmt: skip
    chosen: list[int] = []
    for i in order:
        if not any(min(cover[i, j], cover[j, i]) >= DUPLICATE_COVER for j in chosen):
            chosen.append(i)
    return [people[i] for i in sorted(chosen)]


def temporal_people(per_frame: list[list[dict]], rule: TrackRule) -> list[list[dict]]:
    """Per frame, the people of the kept tracks, gaps filled (see the module)."""
    out: list[list[tuple[dict, float]]] = [[] for _ in per_frame]
    for number, track in enumerate(kept(link(per_frame, rule), rule)):
        rank = mean_score(track)
        for t, person in filled(track, rule.max_gap).items():
            out[t].append(({**person, "track": number}, rank))
    result = []
    for people in out:
        result.append(without_group_and_duplicate_boxes([p for p, _ in people],
                                                        [r for _, r in people]))  # fmt: skip
    return result
