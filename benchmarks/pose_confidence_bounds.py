"""The pose-confidence bound of ``orpose predict`` per downscale factor, chosen on unlabelled
training images (no annotation is needed).

    orpose predict STUDENT.pt FRAMES/ --downscale S --score-threshold 0 --out runs/pcb_S_frames
    python benchmarks/pose_confidence_bounds.py S=runs/pcb_S_frames [S=...]

A person's score is its detection score times its pose confidence (the mean of its keypoint
scores of at least 0.2), so a candidate detected below ``threshold / B`` can reach predict's
threshold only with a pose confidence above B. For each factor this prints, for each candidate
B, how many candidates predict would pose (of those it poses with B = 1) and how many of the
people it shows at its default threshold would be skipped, then the lowest B that skips none on
every folder of that factor: the rule behind ``orpose.evaluation.shown.POSE_CONFIDENCE_BOUNDS``.
The folders must be predicted with ``--score-threshold 0`` (every candidate the student poses).
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

import numpy as np

from orpose.evaluation.shown import default_score_threshold
from orpose.teacher.teacher import person_scores

CANDIDATES = (0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95, 1.0)


def scores_and_detections(results: list[dict]) -> tuple[np.ndarray, np.ndarray]:
    """Person scores and the detection scores they imply (score / pose confidence, the pose
    confidence as the rescoring computes it: its person score for a detection score of 1)."""
    scores = np.array([r["score"] for r in results], float)
    keypoints = np.array([r["keypoints"] for r in results], float).reshape(len(results), -1, 3)
    poses = person_scores(np.ones(len(results)), keypoints, "det_x_pose")
    detections = np.divide(scores, poses, out=np.zeros_like(scores), where=poses > 0)
    return scores, detections


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folders", nargs="+", metavar="S=FOLDER")
    args = parser.parse_args()
    by_factor: dict[float, list[str]] = defaultdict(list)
    for spec in args.folders:
        factor, folder = spec.split("=", 1)
        by_factor[float(factor)].append(folder)
    header = " | ".join(f"{b:g}" for b in CANDIDATES)
    print("posed candidates (of those posed with B = 1) / shown people skipped, per bound B")
    print(f"| factor | folder | shown | {header} |")
    print("|---" * (len(CANDIDATES) + 3) + "|")
    for factor, folders in sorted(by_factor.items()):
        threshold = default_score_threshold(factor)
        lost_anywhere = np.zeros(len(CANDIDATES), int)
        for folder in folders:
            results = json.loads((Path(folder) / "results.json").read_text())
            scores, detections = scores_and_detections(results)
            shown = scores >= threshold
            cells = []
            for i, bound in enumerate(CANDIDATES):
                posed = detections >= threshold / bound
                lost = int((shown & ~posed).sum())
                lost_anywhere[i] += lost
                cells.append(f"{posed.sum()} / {lost}")
            print(f"| {factor:g}x | {folder} | {shown.sum()} | " + " | ".join(cells) + " |")
        chosen = next(b for b, lost in zip(CANDIDATES, lost_anywhere, strict=True) if lost == 0)
        print(f"{factor:g}x (threshold {threshold:g}): lowest bound skipping nobody: {chosen}")


if __name__ == "__main__":
    main()
