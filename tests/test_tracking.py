"""``orpose predict --track``: ByteTrack ids on synthetic people, smoothing, resume, the CLI.

The tracker tests turn every warning into an error: the tracker library is used through its
current API, with nothing deprecated and nothing silenced."""

import json

import cv2
import numpy as np
import pytest

from orpose.cli import main
from orpose.errors import UserError
from orpose.inference.pipeline import PredictOptions, run_predict
from orpose.inference.tracking import KeypointSmoother, PoseTracker


def person(x: float, y: float, w: float = 40, h: float = 100, score: float = 0.9) -> dict:
    """A detection with its box at (x, y) and keypoints spread inside it."""
    kps = np.zeros((17, 3))
    kps[:, 0], kps[:, 1], kps[:, 2] = x + w / 2, np.linspace(y, y + h, 17), 0.9
    return {"bbox": [x, y, w, h], "score": score, "keypoints": kps.ravel().tolist()}


@pytest.mark.filterwarnings("error")
def test_ids_stay_with_people_walking_across_each_other():
    """Two people walk towards each other and cross (their boxes overlap, up to IoU 0.8, for a
    few frames), a third stands still; detections come in a different order every frame."""
    tracker = PoseTracker()
    tracker.start_source(fps=10)
    order = np.random.default_rng(0).permutation
    seen: dict[str, set] = {"right": set(), "left": set(), "still": set()}
    for t in range(40):
        people = {
            "right": person(20 + 8 * t, 100),
            "left": person(340 - 8 * t, 112),
            "still": person(500, 300),
        }
        names = [list(people)[i] for i in order(3)]
        results = tracker.update([dict(people[n]) for n in names])
        for name, r in zip(names, results, strict=True):
            seen[name].add(r["track_id"])
    assert all(len(ids) == 1 for ids in seen.values()), seen
    assert len({next(iter(ids)) for ids in seen.values()}) == 3
    assert tracker.last_id == 3


@pytest.mark.filterwarnings("error")
def test_a_person_missed_for_a_few_frames_keeps_its_id_and_a_newcomer_gets_a_new_one():
    tracker = PoseTracker()
    tracker.start_source(fps=10)
    ids = []
    for t in range(20):
        people = [] if 8 <= t < 11 else [person(50 + 5 * t, 80)]  # missed for 3 frames
        if t >= 14:
            people.append(person(400, 50))  # someone walks in
        ids.append([r["track_id"] for r in tracker.update(people)])
    assert {i for frame in ids[:8] + ids[11:] for i in frame[:1]} == {1}
    assert ids[14][1] is None  # unconfirmed in its first frame, as ByteTrack does
    assert {frame[1] for frame in ids[15:]} == {2}


@pytest.mark.filterwarnings("error")
def test_ids_are_unique_over_the_run_across_sources():
    tracker = PoseTracker()
    tracker.start_source(fps=25)
    first = [tracker.update([person(10, 10), person(200, 10)]) for _ in range(3)][-1]
    tracker.start_source(fps=25)
    second = [tracker.update([person(10, 10)]) for _ in range(3)][-1]
    assert [r["track_id"] for r in first] == [1, 2]
    assert [r["track_id"] for r in second] == [3]


@pytest.mark.filterwarnings("error")
def test_weak_detections_continue_a_track_but_start_none():
    """ByteTrack's thresholds: a tracked person whose score drops to 0.15 (partly hidden) keeps
    its id through the second association; a newcomer at 0.3 starts no track (0.35 needed), and
    a detection at 0.05 is never matched."""
    tracker = PoseTracker()
    tracker.start_source(fps=10)
    ids = []
    for t in range(12):
        people = [person(50 + 4 * t, 80, score=0.15 if 5 <= t < 9 else 0.9)]
        people.append(person(400, 50, score=0.3))
        if t >= 6:
            people.append(person(300 + 2 * t, 300, score=0.05))
        ids.append([r["track_id"] for r in tracker.update(people)])
    assert [frame[0] for frame in ids] == [1] * 12
    assert all(frame[1:] == [None] * (len(frame) - 1) for frame in ids)
    assert tracker.last_id == 1


def test_smoothing_damps_jitter_along_a_track_and_restarts_after_a_gap():
    rng = np.random.default_rng(1)
    smoother = KeypointSmoother(alpha=0.3)
    raw, smoothed = [], []
    for frame in range(1, 61):
        r = person(100, 100)
        kps = np.asarray(r["keypoints"]).reshape(-1, 3)
        kps[:, :2] += rng.normal(0, 4, (17, 2))
        r.update(keypoints=kps.ravel().tolist(), track_id=1, keypoints3d=[float(frame)] * 51)
        raw.append(kps[:, :2].copy())
        smoother.update(frame, [r])
        smoothed.append(np.asarray(r["keypoints"]).reshape(-1, 3))
    np.testing.assert_allclose(smoothed[0][:, :2], raw[0])  # nothing to average yet
    assert np.all(smoothed[-1][:, 2] == 0.9)  # scores are kept as detected
    assert np.std(np.diff(smoothed, axis=0)[..., :2]) < 0.5 * np.std(np.diff(raw, axis=0))
    later = person(300, 100)
    later.update(track_id=1)
    smoother.update(70, [later])  # the track was not seen in frame 69: no pull towards x = 120
    assert later["keypoints"] == person(300, 100)["keypoints"]
    with pytest.raises(UserError, match="ALPHA"):
        KeypointSmoother(alpha=0)


def write_walkers(path, frames: int = 8, size=(160, 96)) -> None:
    """A video of two bright 'people' (rectangles) walking right and left on a dark floor."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, size)
    for t in range(frames):
        image = np.full((size[1], size[0], 3), 20, np.uint8)
        image[20:80, 10 + 6 * t : 26 + 6 * t] = 230
        image[30:90, 130 - 6 * t : 146 - 6 * t] = 230
        writer.write(image)
    writer.release()


class BlobDetector:
    """A stand-in detector: each bright blob of the frame is a person (score 0.9)."""

    def __init__(self):
        self.calls = 0

    def __call__(self, image: np.ndarray) -> list[dict]:
        self.calls += 1
        mask = (image.max(axis=2) > 128).astype(np.uint8)
        count, _, stats, _ = cv2.connectedComponentsWithStats(mask)
        people = []
        for x, y, w, h, _area in stats[1:count]:
            r = person(float(x), float(y), float(w), float(h))
            r["keypoints3d"] = np.random.default_rng(int(x)).normal(0, 100, 51).tolist()
            people.append(r)
        return people


@pytest.mark.filterwarnings("error")
def test_resumed_tracking_replays_the_journal_and_matches_an_uninterrupted_run(tmp_path):
    video = str(tmp_path / "walk.avi")
    write_walkers(tmp_path / "walk.avi")
    whole = PredictOptions(out=tmp_path / "whole", progress=False, track=True, smooth=0.5)
    assert run_predict(BlobDetector(), [video], whole).tracks == 2
    split = PredictOptions(
        out=tmp_path / "split", progress=False, track=True, smooth=0.5, max_frames=3
    )
    run_predict(BlobDetector(), [video], split)
    split.max_frames = None
    again = BlobDetector()
    summary = run_predict(again, [video], split)
    assert summary.predicted == again.calls == 5  # the first 3 frames came from the journal
    expected = json.loads((tmp_path / "whole" / "results.json").read_text())
    resumed = json.loads((tmp_path / "split" / "results.json").read_text())
    assert resumed == expected and len(expected) == 16
    assert {r["track_id"] for r in expected} == {1, 2}
    # the journal keeps the detector's own keypoints; smoothing is redone from it on every run
    lines = (tmp_path / "split" / "predictions.jsonl").read_text().splitlines()
    assert all("track_id" not in r for line in lines for r in json.loads(line)["results"])


@pytest.mark.slow  # a random ResNet-18 student at 800 px: ~10 s on 2 loaded cores
def test_predict_cli_writes_track_ids_and_draws_them(tmp_path):
    write_walkers(tmp_path / "walk.avi", frames=2, size=(64, 48))
    out = tmp_path / "out"
    args = ["predict", "random:resnet18_fpn", str(tmp_path / "walk.avi"), "--out", str(out)]
    options = "--track --smooth 0.6 --overlay --score-threshold 0 --proposals 8 --no-progress"
    assert main([*args, *options.split()]) == 0
    results = json.loads((out / "results.json").read_text())
    assert results and all("track_id" in r for r in results)
    assert any(isinstance(r["track_id"], int) for r in results)
    info = json.loads((out / "images.json").read_text())["info"]["options"]
    assert info["track"] is True and info["smooth"] == 0.6
    assert (out / "overlays" / "walk_overlay.mp4").stat().st_size > 0
    assert "tracking:" in (out / "predict.log").read_text()


def test_smooth_without_track_is_refused_in_one_line(tmp_path, capsys):
    video = tmp_path / "walk.avi"
    write_walkers(video, frames=1)
    base = ["predict", "random:resnet18_fpn", str(video), "--out", str(tmp_path / "o")]
    assert main([*base, "--smooth", "0.5"]) == 2
    assert "--smooth smooths along tracks: give --track too" in capsys.readouterr().err
    assert main([*base, "--track", "--smooth", "1.5"]) == 2
    err = capsys.readouterr().err  # checked at the parser, as every number (issue #27)
    assert "argument --smooth: expected a finite number in (0, 1], got '1.5'" in err
