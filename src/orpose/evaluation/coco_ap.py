"""COCO box AP and keypoint AP through pycocotools, the reference implementation."""

from __future__ import annotations

import contextlib
import copy
import io

import numpy as np
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from orpose.data.coco import PoseDataset
from orpose.skeleton import NUM_KEYPOINTS

# Names of the 12 / 10 numbers COCOeval.summarize() fills, in its order.
BOX_STAT_NAMES = (
    "AP",
    "AP50",
    "AP75",
    "APs",
    "APm",
    "APl",
    "AR1",
    "AR10",
    "AR100",
    "ARs",
    "ARm",
    "ARl",
)
KEYPOINT_STAT_NAMES = ("AP", "AP50", "AP75", "APm", "APl", "AR", "AR50", "AR75", "ARm", "ARl")


def coco_api(gt: PoseDataset) -> COCO:
    """An in-memory pycocotools COCO object for the ground truth (no file round trip).

    A person annotated with a box but without ``keypoints`` (valid COCO, accepted by ``orpose
    data check``) is given 17 zero keypoints and ``num_keypoints`` 0: what COCO's own files
    hold for such a person. pycocotools then ignores it for keypoint AP (a detection on it is
    neither a hit nor a false positive) and counts it for box AP like any person.
    """
    data = copy.deepcopy(gt.to_json())
    for ann in data["annotations"]:
        # pycocotools needs an area; COCO's own files always have one, derived files may not.
        ann.setdefault("area", float(ann["bbox"][2] * ann["bbox"][3]))
        ann.setdefault("iscrowd", 0)
        if "keypoints" not in ann:
            ann["keypoints"] = [0] * (NUM_KEYPOINTS * 3)
            ann["num_keypoints"] = 0
        ann.setdefault("num_keypoints", int(np.count_nonzero(np.asarray(ann["keypoints"])[2::3])))
    api = COCO()
    api.dataset = data
    with contextlib.redirect_stdout(io.StringIO()):
        api.createIndex()
    return api


def _summarize(
    gt_api: COCO, results: list[dict], iou_type: str, sigmas: np.ndarray | None = None
) -> dict[str, float]:
    names = BOX_STAT_NAMES if iou_type == "bbox" else KEYPOINT_STAT_NAMES
    if not results:
        return dict.fromkeys(names, 0.0)
    with contextlib.redirect_stdout(io.StringIO()):
        dt_api = gt_api.loadRes(copy.deepcopy(results))
        ev = COCOeval(gt_api, dt_api, iou_type)
        if sigmas is not None:
            ev.params.kpt_oks_sigmas = sigmas
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return {name: float(v) for name, v in zip(names, ev.stats, strict=True)}


def evaluate_ap(gt: PoseDataset, results: list[dict]) -> dict[str, dict[str, float]]:
    """Box AP (all results) and keypoint AP (results with keypoints) against ``gt``.

    Values are pycocotools' own (0..1); -1 means that no ground truth exists for that measure.
    """
    gt_api = coco_api(gt)
    box_results = [{k: v for k, v in r.items() if k != "keypoints"} for r in results]
    kpt_results = [r for r in results if "keypoints" in r]
    return {
        "bbox": _summarize(gt_api, box_results, "bbox"),
        "keypoints": _summarize(gt_api, kpt_results, "keypoints"),
    }
