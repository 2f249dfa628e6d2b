"""Published detectors on the MVOR test frames, scored by orpose's own evaluation.

Why: orpose's numbers on the 61 MVOR frames of ../shared (day 4, camera 3, 000000-000060) need
peers measured on the same frames by the same code. MVOR's repository (CAMMA-public/MVOR,
``detections_results/``) ships the detections of OpenPose (default and multi-scale), RTPose,
AlphaPose, Faster R-CNN and R-FCN on every MVOR image. This converts them to orpose prediction
files (COCO results lists, written to ``--out``) and scores each as ``orpose eval --pred`` does:
box AP (every peer; COCO AP against every annotated person, box-only ones included), keypoint AP
over the 8 COCO joints MVOR annotates (peers with COCO-17 keypoints) and MVOR's PCK@0.2
(:mod:`orpose.evaluation.pck`). The detections are read from a clone of the repository, never
stored in orpose.

    git clone https://github.com/CAMMA-public/MVOR   # the detections, not the images
    python benchmarks/mvor_peers.py MVOR                  # the 61 frames of ../shared
    python benchmarks/mvor_peers.py MVOR --all-mvor       # all 2196 images: MVOR's README figures

Pairing: a ``*_kps.json`` file holds the COCO-17 keypoints (``coco_keypoints``, (0, 0, 0) for a
missing joint) and its ``*_bbox.json`` twin the box of the same detection, in the same order
(checked: same length, same image ids). AlphaPose's keypoint file (``alphapose_kps.json``) is
read when present; where it is not, AlphaPose is scored on boxes only.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from orpose.data.coco import PoseDataset, write_json_atomic
from orpose.data.mvor import MvorDataset
from orpose.errors import OrposeError
from orpose.evaluation.cli import load_pred_file
from orpose.evaluation.report import ScaleReport, evaluate_predictions
from orpose.paths import shared_data

# name, keypoint file (COCO-17 in ``coco_keypoints``) or None, box file
PEERS: tuple[tuple[str, str | None, str], ...] = (
    ("OpenPose", "openpose_kps.json", "openpose_bbox.json"),
    ("OpenPose, multi-scale", "openpose_kps_multiscale.json", "openpose_bbox_multiscale.json"),
    ("RTPose", "rtpose_kps.json", "rtpose_bbox.json"),
    ("AlphaPose", "alphapose_kps.json", "alphapose_bbox.json"),
    ("Faster R-CNN", None, "faster_rcnn_bbox.json"),
    ("R-FCN (deformable conv.)", None, "dfcnet_rfcn_bbox.json"),
)


def read_list(path: Path) -> list[dict]:
    data = json.loads(path.read_text())
    if not isinstance(data, list):
        raise OrposeError(f"{path}: expected a list of detections")
    return data


def to_results(boxes: list[dict], keypoints: list[dict] | None, image_ids: set[int]) -> list[dict]:
    """orpose results of one peer's detections on ``image_ids``."""
    if keypoints is not None and (
        len(keypoints) != len(boxes)
        or any(k["image_id"] != b["image_id"] for k, b in zip(keypoints, boxes, strict=True))
    ):
        raise OrposeError("keypoint and box files do not list the same detections in order")
    results = []
    for i, det in enumerate(boxes):
        if det["image_id"] not in image_ids:
            continue
        result = {
            "image_id": int(det["image_id"]),
            "category_id": 1,
            "bbox": [float(v) for v in det["bbox"]],
            "score": float(det["score"]),
        }
        if keypoints is not None:
            result["keypoints"] = [float(v) for v in keypoints[i]["coco_keypoints"]]
        results.append(result)
    return results


def markdown(rows: list[tuple[str, int, ScaleReport]]) -> str:
    head = (
        "| method | detections | Box-AP | Box-AP50 | Keypoint-AP (8 joints) | Keypoint-AP50 "
        "| PCK@0.2 | head / shoulder / hip / elbow / wrist |"
    )
    lines = [head, "|" + "---|" * 8]
    for name, count, rep in rows:
        box = f"{100 * rep.box['AP']:.1f} | {100 * rep.box['AP50']:.1f}"
        if rep.pck is not None and rep.pck.matched:
            kpt = f"{100 * rep.keypoints['AP']:.1f} | {100 * rep.keypoints['AP50']:.1f}"
            pck = f"{rep.pck.mean:.1f}"
            groups = " / ".join(f"{v:.1f}" for v in rep.pck.groups.values())
        else:
            kpt, pck, groups = "- | -", "-", "-"
        lines.append(f"| {name} | {count} | {box} | {kpt} | {pck} | {groups} |")
    return "\n".join(lines)


def ground_truth(all_mvor: bool, images: Path) -> PoseDataset:
    mvor = MvorDataset(shared_data("mvor/camma_mvor_2018.json"))
    # all of MVOR, or the frames of day 4, camera 3 present under ``images``
    coco = mvor.to_coco17() if all_mvor else mvor.to_coco17((2,), (4,), images)
    return PoseDataset(coco["images"], coco["annotations"], coco["categories"], coco["info"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("mvor_repo", type=Path, help="clone of CAMMA-public/MVOR")
    parser.add_argument(
        "--images",
        type=Path,
        default=None,
        help="MVOR image root (default: <shared>/data/mvor/images): its frames are scored",
    )
    parser.add_argument(
        "--all-mvor", action="store_true", help="score all 2196 MVOR images (no image needed)"
    )
    parser.add_argument(
        "--out", type=Path, default=Path("mvor_peers"), help="folder for the prediction files"
    )
    args = parser.parse_args()
    folder = args.mvor_repo / "detections_results"
    if not folder.is_dir():
        parser.error(f"{folder}: no such folder (clone CAMMA-public/MVOR)")
    try:
        gt = ground_truth(args.all_mvor, args.images or shared_data("mvor/images"))
        gt_file = write_json_atomic(args.out / "gt.json", gt.to_json())
        image_ids = {img["id"] for img in gt.images}
        rows = []
        for name, kps_file, box_file in PEERS:
            if not (folder / box_file).is_file():
                print(f"skipped {name}: {folder / box_file} missing")
                continue
            kps_path = folder / kps_file if kps_file else None
            keypoints = read_list(kps_path) if kps_path and kps_path.is_file() else None
            results = to_results(read_list(folder / box_file), keypoints, image_ids)
            pred_file = write_json_atomic(args.out / f"{Path(box_file).stem}.json", results)
            _, loaded = load_pred_file(str(pred_file), gt)  # as `orpose eval --pred` reads it
            rows.append((name, len(loaded), evaluate_predictions(gt, loaded, "1x")))
    except (OrposeError, OSError, KeyError, ValueError) as error:
        parser.error(str(error))
    people = [a for a in gt.annotations if a.get("num_keypoints", 0) > 0]
    print(
        f"{len(gt.images)} MVOR images, {len(gt.annotations)} annotated people "
        f"({len(people)} with 2D keypoints); detections from {folder}; ground truth {gt_file}\n"
    )
    print(markdown(rows))


if __name__ == "__main__":
    main()
