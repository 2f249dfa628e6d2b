"""Track ids over video for ``orpose predict --track``, and optional smoothing along each track.

Ids come from ByteTrack (Zhang et al., ECCV 2022) as implemented by Roboflow's ``trackers``
package (``trackers.ByteTrackTracker``, the successor of the deprecated ``sv.ByteTrack``, which
``supervision`` 0.31 removed): a Kalman filter per person box and IoU matching, first with the
confident detections, then with the weak ones. Only the boxes are tracked; the keypoints ride
along. The settings are those of the original ByteTrack (and of ``sv.ByteTrack``): detections
scoring at least 0.25 are matched first, those in (0.1, 0.25) second, a new track needs 0.35, a
lost track is kept for one second, and a track is confirmed (gets an id) at its second
consecutive detection, except on a source's first frame, whose people are confirmed at once
(``trackers`` has no such rule: it is given the first frame twice, see ``PoseTracker.update``).

Why ``trackers`` 2.1: from 2.2 on it requires the GUI build ``opencv-python``, a second ``cv2``
over this project's ``opencv-python-headless`` (the two are exclusive; the GUI one needs libGL).
2.1 requires only numpy, scipy and ``supervision`` and has the same ``ByteTrackTracker``
constructor and ``update`` as the current release, which this module also runs with (checked
against 2.6.1): lift the cap in ``pyproject.toml`` once ``trackers`` accepts the headless OpenCV.
``norfair`` 2.3 requires numpy < 2; ``boxmot`` requires torch extras, pandas and
``opencv-python``.

Smoothing (``--smooth ALPHA``) is an exponential moving average of each track's 2D keypoint
positions and 3D joints, ``s_t = ALPHA * x_t + (1 - ALPHA) * s_{t-1}``, restarted whenever a
track was not seen in the previous frame. One parameter, no state beyond the last pose: it
lags by ``(1 - ALPHA) / ALPHA`` frames on steady motion, which a One-Euro filter would adapt
away, at the cost of two more parameters to tune. Keypoint scores and boxes are left as detected.

The tracker only ever sees what the prediction journal holds (the people written, in frame
order), so a resumed run replays the journaled frames through it and continues with the state an
uninterrupted run would have: ids and smoothed keypoints come out the same.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from orpose.data.coco import detections_of
from orpose.errors import UserError

TRACK_LIBRARY = "trackers>=2.1,<2.2"
# ByteTrack's thresholds (the paper's, and sv.ByteTrack's defaults)
MATCH_SCORE = 0.25  # detections at least this confident are matched first
LOW_SCORE = 0.1  # weaker ones, above this, are matched second, to the tracks left over
NEW_TRACK_SCORE = 0.35  # a detection that matches no track starts one from this score
MIN_IOU = 0.2  # a detection and a track's predicted box must overlap this much to match
LOST_SECONDS = 1.0  # a track unseen for this long is dropped


def _byte_track(fps: float):
    """A fresh ``trackers.ByteTrackTracker`` for a source of ``fps`` frames per second."""
    try:
        from trackers import ByteTrackTracker
    except ImportError:
        raise UserError(
            f"--track needs the tracker library: pip install '{TRACK_LIBRARY}'"
        ) from None
    return ByteTrackTracker(
        lost_track_buffer=round(30 * LOST_SECONDS),  # counted in frames at 30 frames/s
        frame_rate=max(float(fps), 1.0),
        track_activation_threshold=NEW_TRACK_SCORE,
        minimum_consecutive_frames=2,
        minimum_iou_threshold=MIN_IOU,
        high_conf_det_threshold=MATCH_SCORE,
    )


class KeypointSmoother:
    """Exponential smoothing of each track's keypoints (see the module docstring)."""

    def __init__(self, alpha: float):
        if not 0 < alpha <= 1:
            raise UserError(f"--smooth: expected 0 < ALPHA <= 1, got {alpha}")
        self.alpha = alpha
        self.state: dict[int, tuple[int, dict[str, np.ndarray]]] = {}  # id -> (frame, fields)

    def reset(self) -> None:
        self.state.clear()

    def update(self, frame: int, results: Sequence[dict]) -> None:
        """Smooth (in place) the ``keypoints`` x, y and ``keypoints3d`` of tracked people."""
        for r in results:
            tid = r.get("track_id")
            if tid is None:
                continue
            current = {"keypoints": np.asarray(r["keypoints"], dtype=np.float64).reshape(-1, 3)}
            if r.get("keypoints3d"):
                current["keypoints3d"] = np.asarray(r["keypoints3d"], dtype=np.float64)
            last_frame, previous = self.state.get(tid, (None, {}))
            if last_frame == frame - 1:
                a = self.alpha
                current["keypoints"][:, :2] = (
                    a * current["keypoints"][:, :2] + (1 - a) * previous["keypoints"][:, :2]
                )
                if "keypoints3d" in current and "keypoints3d" in previous:
                    current["keypoints3d"] = (
                        a * current["keypoints3d"] + (1 - a) * previous["keypoints3d"]
                    )
            self.state[tid] = (frame, current)
            r["keypoints"] = current["keypoints"].ravel().tolist()
            if "keypoints3d" in current:
                r["keypoints3d"] = current["keypoints3d"].ravel().tolist()


class PoseTracker:
    """Track ids (``track_id``, unique over the run) for the people of consecutive frames.

    Each source (video, stream, folder of images) starts a fresh ByteTrack; ids keep counting
    up across sources so that no two people of one ``results.json`` share an id.
    """

    def __init__(self, smooth: float | None = None):
        self.tracker = None
        self.ids: dict[int, int] = {}  # the tracker's ids of this source -> ids of the run
        self.last_id = 0
        self.frame = 0
        self.smoother = KeypointSmoother(smooth) if smooth is not None else None

    def start_source(self, fps: float) -> None:
        self.tracker = _byte_track(fps)
        self.ids = {}
        self.frame = 0
        if self.smoother is not None:
            self.smoother.reset()

    def update(self, results: list[dict]) -> list[dict]:
        """Set ``track_id`` on every person of the next frame (in place): an int, or None for a
        person the tracker has not confirmed (the first frame of a track after the source's
        first frame, or a detection too weak to start one). Returns ``results``."""
        if self.tracker is None:
            self.start_source(25.0)
        self.frame += 1
        ids: list[int | None] = [None] * len(results)
        kept = [i for i, r in enumerate(results) if r["score"] > LOW_SCORE]
        detections = detections_of([results[i] for i in kept])
        if self.frame == 1:
            # ByteTrack confirms the people of a source's first frame at once; ByteTrackTracker
            # confirms a track at its second detection: it sees the first frame twice (its
            # tracks start there at rest, as they would anyway).
            self.tracker.update(detections)
            detections = detections_of([results[i] for i in kept])
        tracked = self.tracker.update(detections)
        confirmed = {
            int(index): int(tid)
            for index, tid in zip(tracked.data.get("index", ()), tracked.tracker_id, strict=True)
            if tid >= 0
        }
        for tid in sorted(set(confirmed.values()) - set(self.ids)):  # in confirmation order
            self.last_id += 1
            self.ids[tid] = self.last_id
        for index, tid in confirmed.items():
            ids[kept[index]] = self.ids[tid]
        for r, tid in zip(results, ids, strict=True):
            r["track_id"] = tid
        if self.smoother is not None:
            self.smoother.update(self.frame, results)
        return results
