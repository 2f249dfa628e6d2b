"""The student's heatmap encoding and decoding are inverse: COCO pixel indices in, the same out.

Encoding: the student's own targets (``orpose.student.losses._targets``); decoding: the student's
own ``decode_heatmaps``; heatmap size: what the student's keypoint head outputs.
"""

import copy

import numpy as np
import torch

from orpose.data.coco import PoseDataset, load_pose_dataset
from orpose.evaluation.coco_ap import evaluate_ap
from orpose.student.heads import TwoBranchKeypointHead
from orpose.student.losses import _targets
from orpose.student.roi_heads import decode_heatmaps


def _heatmap_size() -> int:
    head = TwoBranchKeypointHead(4, (4,))
    with torch.no_grad():
        soft, _ = head(torch.zeros(1, 4, 14, 14))  # the student pools 14 x 14 keypoint features
    assert soft.shape[-1] == soft.shape[-2]
    return soft.shape[-1]


def _round_trip(keypoints: torch.Tensor, rois: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Targets -> peaked heatmaps -> decoded ``(R, 17, 3)``, and which keypoints had a target.

    The peak is a Gaussian of one cell centred on the target cell, as a trained head's output
    (a one-hot map would also do for boxes wider than the heatmap, but resampled to a box much
    narrower than the heatmap, bicubic's negative lobes can move its argmax).
    """
    size = _heatmap_size()
    cells, valid, _ = _targets([keypoints], [rois], size)
    grid = torch.arange(size, dtype=torch.float32)
    cx, cy = (cells % size).float(), (cells // size).float()
    gx = torch.exp(-0.5 * (grid[None, :] - cx[:, None]) ** 2)
    gy = torch.exp(-0.5 * (grid[None, :] - cy[:, None]) ** 2)
    logits = 10.0 * gy[:, :, None] * gx[:, None, :] * valid[:, None, None]
    decoded, _ = decode_heatmaps(logits.view(len(rois), -1, size, size), rois)
    return decoded, valid.view(len(rois), -1)


def test_ground_truth_through_targets_and_decoding_scores_ap_099(val500):
    gt = load_pose_dataset(val500)
    images = gt.images[:100]
    ids = {img["id"] for img in images}
    anns = [a for a in gt.annotations if a["image_id"] in ids]
    people = [a for a in anns if not a.get("iscrowd", 0) and a.get("num_keypoints", 0) > 0]
    kps = torch.tensor([a["keypoints"] for a in people], dtype=torch.float32).view(-1, 17, 3)
    xywh = torch.tensor([a["bbox"] for a in people], dtype=torch.float32)
    rois = torch.cat([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], dim=1)  # the RoIs = GT boxes

    decoded, valid = _round_trip(kps, rois)

    visible = kps[..., 2] > 0
    # COCO annotates occluded limbs beyond the person's box; no heatmap of that box holds them
    # (torchvision and detectron2 drop them from the targets alike): score only what can be
    # encoded, and make sure that is nearly everything
    outside = visible & ~valid
    assert outside.sum() < 0.05 * visible.sum()
    err = (decoded[..., :2] - kps[..., :2])[valid]
    assert err.mean(dim=0).abs().max() < 0.1  # unbiased (px)

    scored = copy.deepcopy(anns)
    by_id = {a["id"]: a for a in scored}
    results = []
    for i, a in enumerate(people):
        target = np.asarray(by_id[a["id"]]["keypoints"], dtype=np.float64).reshape(17, 3)
        target[outside[i].numpy()] = 0
        by_id[a["id"]]["keypoints"] = target.reshape(-1).tolist()
        by_id[a["id"]]["num_keypoints"] = int((target[:, 2] > 0).sum())
        out = decoded[i].double().numpy().copy()
        out[:, 2] = 1.0
        results.append({"image_id": a["image_id"], "category_id": 1, "bbox": a["bbox"],
                        "score": 1.0, "keypoints": out.reshape(-1).tolist()})  # fmt: skip
    ap = evaluate_ap(PoseDataset(images=images, annotations=scored), results)["keypoints"]
    assert ap["AP"] >= 0.99


def test_round_trip_is_unbiased_and_a_half_pixel_would_show():
    """Random boxes and sizes, integer keypoints (as COCO's): the mean error is ~0 px (< 0.1);
    encoding with detectron2's +0.5 but decoding without its -0.5 is caught as a 0.5 px bias."""
    gen = torch.Generator().manual_seed(0)
    n = 150
    x1 = torch.rand(n, 2, generator=gen) * 300
    wh = 20 + torch.rand(n, 2, generator=gen) * 280
    rois = torch.cat([x1, x1 + wh], dim=1)
    cell = wh / _heatmap_size()
    kps = torch.full((n, 17, 3), 2.0)
    # away from the outermost cells, where the decoding's resampling sees the map's border
    margin = (cell + 1)[:, None, :]
    inner = (
        x1[:, None, :]
        + margin
        + torch.rand(n, 17, 2, generator=gen) * (wh[:, None, :] - 2 * margin)
    )
    kps[..., :2] = inner.floor()

    decoded, valid = _round_trip(kps, rois)
    assert valid.all()
    err = (decoded[..., :2] - kps[..., :2]).reshape(-1, 2)
    assert err.mean(dim=0).abs().max() < 0.1
    # every keypoint comes back within its cell: half a cell plus half a decoding pixel
    bound = (cell / 2 + 0.5 * wh / wh.ceil())[:, None, :] + 1e-3
    assert ((decoded[..., :2] - kps[..., :2]).abs() <= bound).all()

    shifted = kps.clone()
    shifted[..., :2] += 0.5
    decoded_half, _ = _round_trip(shifted, rois)
    half = (decoded_half[..., :2] - kps[..., :2]).reshape(-1, 2).mean(dim=0)
    assert half.min() > 0.4
