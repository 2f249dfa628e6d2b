"""Id switches and cost of ``orpose predict --track`` on a run's outputs (docs/inference.md).

Reads an ``orpose predict --track`` output folder and reports:

- tracks: how many ids, their lengths, and how many start after the first frame away from the
  image border (people do not appear in mid-floor: such a start is a broken track);
- id switches against an IoU chain: between consecutive frames, people paired one to one by box
  IoU (Hungarian, IoU >= 0.5, unambiguous: no second box of either frame above 0.3 with the
  other); a pair whose two track ids differ is counted as a switch, a pair where one side has
  no id (an unconfirmed first frame) is counted apart;
- the tracker alone, in ms per frame: the journal's people replayed through ``PoseTracker``
  (no decoding, no model), median of ``--repeats`` passes.

    python benchmarks/track_check.py runs/pets_track --repeats 20 [--smooth 0.5]
"""

from __future__ import annotations

import argparse
import json
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
from scipy.optimize import linear_sum_assignment

from orpose.data.sources import video_fps
from orpose.inference.tracking import PoseTracker

BORDER_PX = 20  # a track starting with its box this close to an image side walked in


def run_fps(key: str, options: dict) -> float:
    """The frame rate the run's tracker used: the video's over ``--step``, else predict's 25."""
    if "#frame=" not in key:
        return 25.0
    return video_fps(key.split("#frame=")[0]) / int(options.get("video_step", 1))


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of ``(N, 4)`` and ``(M, 4)`` xywh boxes."""
    a1, a2 = a[:, None, :2], a[:, None, :2] + a[:, None, 2:]
    b1, b2 = b[None, :, :2], b[None, :, :2] + b[None, :, 2:]
    inter = np.clip(np.minimum(a2, b2) - np.maximum(a1, b1), 0, None).prod(axis=2)
    union = a[:, None, 2:].prod(axis=2) + b[None, :, 2:].prod(axis=2) - inter
    return inter / np.maximum(union, 1e-9)


def chain_pairs(prev: list[dict], cur: list[dict]) -> list[tuple[dict, dict]]:
    """People of two consecutive frames that are unambiguously the same by box overlap."""
    if not prev or not cur:
        return []
    iou = iou_matrix(np.array([p["bbox"] for p in prev]), np.array([c["bbox"] for c in cur]))
    rows, cols = linear_sum_assignment(-iou)
    pairs = []
    for i, j in zip(rows, cols, strict=True):
        others = max(np.delete(iou[i], j).max(initial=0), np.delete(iou[:, j], i).max(initial=0))
        if iou[i, j] >= 0.5 and others < 0.3:
            pairs.append((prev[i], cur[j]))
    return pairs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run", type=Path, help="an orpose predict --track output folder")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--smooth", type=float, default=None, help="time --smooth ALPHA too")
    args = parser.parse_args()
    index = json.loads((args.run / "images.json").read_text())
    images = index["images"]
    results = json.loads((args.run / "results.json").read_text())
    fps = run_fps(images[0]["file_name"], index["info"].get("options", {}))
    by_image: dict[int, list[dict]] = defaultdict(list)
    for r in results:
        by_image[r["image_id"]].append(r)
    frames = [by_image[img["id"]] for img in images]
    width, height = images[0]["width"], images[0]["height"]

    spans: dict[int, list[int]] = {}
    for t, people in enumerate(frames):
        for r in people:
            if r["track_id"] is not None:
                spans.setdefault(r["track_id"], [t, t, 0])[1] = t
                spans[r["track_id"]][2] += 1
    mid_floor = []
    for tid, (first, _last, _n) in spans.items():
        if first == 0:
            continue
        x, y, w, h = next(r["bbox"] for r in frames[first] if r["track_id"] == tid)
        if x > BORDER_PX and y > BORDER_PX and x + w < width - BORDER_PX and y + h < height - 20:
            mid_floor.append((tid, first))
    switches, unconfirmed, pairs = [], 0, 0
    for t in range(1, len(frames)):
        for a, b in chain_pairs(frames[t - 1], frames[t]):
            pairs += 1
            if a["track_id"] is None or b["track_id"] is None:
                unconfirmed += 1
            elif a["track_id"] != b["track_id"]:
                switches.append((t, a["track_id"], b["track_id"]))

    raw = [[{k: r[k] for k in ("bbox", "score", "keypoints")} for r in people] for people in frames]
    times = []
    for _ in range(args.repeats):
        tracker = PoseTracker(args.smooth)
        tracker.start_source(fps)
        copies = [[dict(r) for r in people] for people in raw]
        started = time.perf_counter()
        for people in copies:
            tracker.update(people)
        times.append((time.perf_counter() - started) / len(frames))

    lengths = sorted((n for _f, _l, n in spans.values()), reverse=True)
    untracked = sum(r["track_id"] is None for r in results)
    print(f"{len(frames)} frames at {fps:g} frames/s, {len(results)} people, {untracked} no id")
    print(f"{len(spans)} tracks; frames per track: {lengths}")
    print(f"tracks starting mid-clip away from the border: {mid_floor or 'none'}")
    print(f"IoU-chain pairs: {pairs}; id switches: {len(switches)} {switches or ''}")
    print(f"pairs with an unconfirmed side (a track's first frame): {unconfirmed}")
    what = "tracker alone" + (f" with --smooth {args.smooth:g}" if args.smooth else "")
    print(f"{what}: {1000 * float(np.median(times)):.2f} ms per frame (median of "
          f"{args.repeats} passes, {len(results) / len(frames):.1f} people per frame)")  # fmt: skip


if __name__ == "__main__":
    main()
