"""Track ids over video for ``orpose predict --track``, and optional smoothing along each track.

Ids come from ByteTrack (Zhang et al., ECCV 2022) as implemented by Roboflow's ``supervision``
(``sv.ByteTrack``): a Kalman filter per person box and IoU matching, first with the confident
detections, then with the weak ones. Only the boxes are tracked; the keypoints ride along.

Why ``supervision`` 0.30: it installs without conflicts beside this project (numpy 2,
opencv-python-headless); 0.31 moved ByteTrack into the ``trackers`` package, which requires the
GUI build ``opencv-python`` (a second ``cv2`` over the headless one), and ``norfair`` requires
numpy < 2, ``boxmot`` torch extras, pandas and ``opencv-python``.

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

import warnings
from collections.abc import Sequence

import numpy as np

from orpose.errors import UserError

TRACK_LIBRARY = "supervision>=0.30,<0.31"


def _byte_track(fps: float):
    """A fresh ``sv.ByteTrack`` for a source of ``fps`` frames per second (lost tracks are kept
    for ByteTrack's default 30 frames at 30 fps, i.e. one second)."""
    try:
        import supervision as sv
    except ImportError:
        raise UserError(
            f"--track needs the tracker library: pip install '{TRACK_LIBRARY}'"
        ) from None
    if not hasattr(sv, "ByteTrack"):
        raise UserError(
            f"--track needs sv.ByteTrack, gone from supervision {sv.__version__}: "
            f"pip install '{TRACK_LIBRARY}'"
        )
    with warnings.catch_warnings():  # deprecated since 0.28 in favour of `trackers` (see above)
        warnings.simplefilter("ignore", FutureWarning)
        return sv.ByteTrack(frame_rate=max(float(fps), 1.0))


def _detections(results: Sequence[dict]):
    import supervision as sv

    boxes = np.array([r["bbox"] for r in results], dtype=np.float64).reshape(-1, 4)
    boxes[:, 2:] += boxes[:, :2]  # xywh -> xyxy
    return sv.Detections(
        xyxy=boxes,
        confidence=np.array([r["score"] for r in results], dtype=np.float64),
        data={"index": np.arange(len(results))},
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
        self.offset = 0  # ids of the sources before this one
        self.last_id = 0
        self.frame = 0
        self.smoother = KeypointSmoother(smooth) if smooth is not None else None

    def start_source(self, fps: float) -> None:
        self.tracker = _byte_track(fps)
        self.offset = self.last_id
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
        tracked = self.tracker.update_with_detections(_detections(results))
        for index, tid in zip(tracked.data.get("index", ()), tracked.tracker_id, strict=True):
            ids[int(index)] = int(tid) + self.offset
        for r, tid in zip(results, ids, strict=True):
            r["track_id"] = tid
            if tid is not None:
                self.last_id = max(self.last_id, tid)
        if self.smoother is not None:
            self.smoother.update(self.frame, results)
        return results
