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
    import supervision as sv
    from trackers import ByteTrackTracker

    from orpose.data.coco import box_iou_xywh

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
        boxes = np.array([p["bbox"] for p in people], np.float64).reshape(-1, 4)
        boxes[:, 2:] += boxes[:, :2]
        detections = sv.Detections(
            xyxy=boxes,
            confidence=np.array([p["score"] for p in people], np.float64),
            data={"index": np.arange(len(people))},
        )
        out = tracker.update(detections)
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


def kept(tracks: list[dict[int, dict]], rule: TrackRule) -> list[dict[int, dict]]:
    """The tracks that become labels, their size jumps dropped: long enough, confident enough
    on average."""
    tracks = [consistent_sizes(track, rule.max_size_ratio) for track in tracks]
    return [
        track
        for track in tracks
        if len(track) >= rule.min_frames
        and np.mean([p["score"] for p in track.values()]) >= rule.min_mean_score
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


def covered(inner: list[float], outer: list[float]) -> float:
    """The share of box ``inner``'s area (x, y, w, h) that box ``outer`` covers."""
    x0, y0 = max(inner[0], outer[0]), max(inner[1], outer[1])
    x1 = min(inner[0] + inner[2], outer[0] + outer[2])
    y1 = min(inner[1] + inner[3], outer[1] + outer[3])
    area = max(inner[2] * inner[3], 1e-9)
    return max(x1 - x0, 0.0) * max(y1 - y0, 0.0) / area


GROUP_COVER = 0.8  # a box holding this share of another person's box holds that person
GROUP_AREA = 3.0  # a box holding someone and this many times their area is not one person


def is_group_box(i: int, people: list[dict]) -> bool:
    """Whether person ``i``'s box holds others rather than one person: it covers
    ``GROUP_COVER`` of two or more other boxes, or of one at least ``GROUP_AREA`` times
    smaller (a box around the whole scene that persists, as a tracker may link one, is the
    case this catches)."""
    box = people[i]["bbox"]
    held = [p["bbox"] for j, p in enumerate(people)
            if j != i and covered(p["bbox"], box) >= GROUP_COVER]  # fmt: skip
    area = box[2] * box[3]
    return len(held) >= 2 or any(area >= GROUP_AREA * b[2] * b[3] for b in held)


def without_group_and_duplicate_boxes(people: list[dict], ranks: list[float]) -> list[dict]:
    """One frame's kept people less group boxes (:func:`is_group_box`) and duplicates (80% of
    the box inside a better-ranked person's and 80% of that one inside it)."""
    n = len(people)
    order = sorted((i for i in range(n) if not is_group_box(i, people)), key=lambda i: -ranks[i])
    chosen: list[int] = []
    for i in order:
        box = people[i]["bbox"]
        if not any(covered(box, people[j]["bbox"]) >= 0.8 and covered(people[j]["bbox"], box)
                   >= 0.8 for j in chosen):  # fmt: skip
            chosen.append(i)
    return [people[i] for i in sorted(chosen)]


def temporal_people(per_frame: list[list[dict]], rule: TrackRule) -> list[list[dict]]:
    """Per frame, the people of the kept tracks, gaps filled (see the module)."""
    out: list[list[tuple[dict, float]]] = [[] for _ in per_frame]
    for number, track in enumerate(kept(link(per_frame, rule), rule)):
        rank = float(np.mean([p["score"] for p in track.values()]))
        for t, person in filled(track, rule.max_gap).items():
            out[t].append(({**person, "track": number}, rank))
    result = []
    for people in out:
        result.append(without_group_and_duplicate_boxes([p for p, _ in people],
                                                        [r for _, r in people]))  # fmt: skip
    return result
