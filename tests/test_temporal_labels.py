"""Self-labels of consecutive frames: people kept because they persist over time."""

import numpy as np
import pytest

from orpose.data.sources import Frame
from orpose.training.self_labels import self_label, unflip
from orpose.training.temporal_labels import (
    GAP_DAMPING,
    TrackRule,
    consistent_sizes,
    filled,
    temporal_people,
    without_group_and_duplicate_boxes,
)


def person(x, y, w, h, score, confidence=0.8):
    kps = np.zeros((17, 3))
    kps[:, 0] = x + w / 2
    kps[:, 1] = y + np.linspace(0.1, 0.9, 17) * h
    kps[:, 2] = confidence
    return {"bbox": [float(x), float(y), float(w), float(h)], "score": score, "keypoints": kps}


def walker(t):
    """A person walking right 1 px per frame, scoring 0.15-0.19 (below any per-frame threshold)
    after a first frame at 0.25, where ByteTrack may start a track."""
    return person(10 + t, 20, 20, 60, 0.25 if t == 0 else 0.15 + 0.02 * (t % 3))


def test_a_weak_lasting_person_is_kept_and_its_gaps_filled():
    frames = [[walker(t)] if t not in (7, 8) else [] for t in range(20)]
    out = temporal_people(frames, TrackRule(min_frames=10, max_gap=5))
    assert [len(people) for people in out] == [1] * 20
    gap = out[7][0]
    assert gap["interpolated"]
    # 1/3 of the way from frame 6 to frame 9: the box moved 1 px per frame
    np.testing.assert_allclose(gap["bbox"], [17, 20, 20, 60])
    np.testing.assert_allclose(gap["keypoints"][:, 0], 27)
    # the nearer detection is one frame away: the lower end's confidence, damped once
    assert gap["keypoints"][0, 2] == pytest.approx(0.8 * GAP_DAMPING)
    assert not out[6][0].get("interpolated", False)
    assert len({people[0]["track"] for people in out}) == 1


def test_flicker_short_and_weak_tracks_are_dropped():
    rng = np.random.default_rng(0)
    frames = []
    for t in range(30):
        people = [walker(t)]
        if t % 10 == 0:  # clutter that comes and goes, anywhere
            x, y = rng.uniform(100, 300, 2)
            people.append(person(x, y, 25, 50, 0.35))
        if 12 <= t < 17:  # confident but only five frames
            people.append(person(200, 20, 20, 60, 0.5))
        people.append(person(400, 20, 20, 60, 0.21 if t == 0 else 0.08))  # lasting, too weak
        frames.append(people)
    out = temporal_people(frames, TrackRule(min_frames=10))
    assert all(len(people) == 1 and people[0]["bbox"][0] == 10 + t
               for t, people in enumerate(out))  # fmt: skip


def test_a_group_box_and_a_duplicate_are_dropped():
    a, b = person(0, 0, 20, 60, 0.3), person(30, 0, 20, 60, 0.3)
    group = person(-2, -2, 55, 65, 0.4)
    duplicate = person(1, 1, 19, 58, 0.2)
    kept = without_group_and_duplicate_boxes([group, a, duplicate, b], [0.4, 0.3, 0.2, 0.3])
    assert kept == [a, b]
    # the better-ranked of two duplicates stays, whatever the order
    assert without_group_and_duplicate_boxes([duplicate, a], [0.5, 0.3]) == [duplicate]
    # a box around one person and much more (three times the area) is not a person either
    scene = person(-2, -2, 100, 65, 0.4)
    assert without_group_and_duplicate_boxes([scene, a], [0.4, 0.3]) == [a]
    # a near person overlapping most of a far one, less than three times its area, stays
    near = person(-5, -5, 30, 90, 0.4)
    assert without_group_and_duplicate_boxes([near, a], [0.4, 0.3]) == [near, a]


def test_a_track_that_jumps_to_another_size_loses_those_frames():
    track = {t: person(10, 10, 20, 60, 0.3) for t in range(10)}
    track[4] = person(0, 0, 60, 70, 0.3)  # three times as wide: something else
    kept = consistent_sizes(track, 1.5)
    assert sorted(kept) == [0, 1, 2, 3, 5, 6, 7, 8, 9]


def test_gaps_longer_than_the_limit_stay_empty():
    track = {0: walker(0), 1: walker(1), 9: walker(9)}
    assert sorted(filled(track, max_gap=5)) == [0, 1, 9]
    assert sorted(filled(track, max_gap=7)) == list(range(10))


def test_self_label_links_each_recording_on_its_own(tmp_path):
    """Two folders of frames: a weak person seen in both is linked within each folder; each
    folder's frames are too few for a track alone, so nothing is kept; together they would."""
    small = np.zeros((40, 53, 3), np.uint8)
    frames = []
    for folder in ("cam1", "cam2"):
        for t in range(6):
            path = tmp_path / folder / f"{t:06d}.png"
            frames.append(Frame(str(path), small, str(path)))
    calls = []

    def predictor(img, **_):
        calls.append(1)
        found = [walker(0)]
        for p in found:
            p["keypoints"] = p["keypoints"].ravel().tolist()
        mirrored = len(calls) % 2 == 0
        return unflip(found, img.shape[1]) if mirrored else found

    rule = TrackRule(min_frames=10)
    alone = self_label(predictor, frames, 12, progress=False, temporal=rule)
    assert alone["annotations"] == []
    assert alone["info"]["orpose"]["temporal"]["min_frames"] == 10
    together = [Frame(f.key, f.image, str(tmp_path / "one" / f"{i:06d}.png"))
                for i, f in enumerate(frames)]  # fmt: skip
    joined = self_label(predictor, together, 12, progress=False, temporal=rule)
    assert len(joined["annotations"]) == 12
    # per frame, the person scoring 0.25 would not pass the per-frame threshold
    assert self_label(predictor, together, 12, progress=False)["annotations"] == []
