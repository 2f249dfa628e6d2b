"""``mpjpe_official`` against an independent re-implementation of the official evaluator.

The reference below follows MPJPE_Evaluator (keypoints_3d/utils_eval.py of
CAMMA-public/ORPose-Color) step by step, with plain loops and without orpose code: per image,
OKS of every ground truth against every detection (ground-truth box clipped to the image and
converted to x, y, w, h; its area as scale; the enlarged-box distance when no keypoint is
visible), argmax per ground truth (detections in score order), the ground truth relative to the
mean of its two stored hips, the prediction as given, both multiplied by the visibility, the
per-joint error summed over persons and divided by their count, then
(shoulder + hip + elbow + wrist) / 4 with each pair averaged.
"""

import numpy as np
import pytest

from orpose.data.coco import PoseDataset
from orpose.evaluation.mpjpe import compute_mpjpe

SIGMAS = [0.26, 0.25, 0.25, 0.35, 0.35, 0.79, 0.79, 0.72, 0.72, 0.62, 0.62, 1.07, 1.07, 0.87,
          0.87, 0.89, 0.89]  # fmt: skip
L_SHOULDER, R_SHOULDER, L_ELBOW, R_ELBOW, L_WRIST, R_WRIST, L_HIP, R_HIP = 5, 6, 7, 8, 9, 10, 11, 12
WIDTH, HEIGHT = 640, 480


def reference_mpjpe(images, gts, preds):
    """The official evaluation on plain lists (dicts with numpy arrays), written independently."""
    variances = [(2 * s / 10.0) ** 2 for s in SIGMAS]
    total = {j: 0.0 for j in range(17)}
    count = 0
    for image in images:
        image_gts = [g for g in gts if g["image_id"] == image["id"]]
        dets = sorted(
            [p for p in preds if p["image_id"] == image["id"]], key=lambda p: -p["score"]
        )  # detectron2's output order; sorted() is stable
        if not image_gts or not dets:
            continue
        for g in image_gts:
            x, y, w, h = g["bbox"]
            x1, y1 = min(max(x, 0), image["width"]), min(max(y, 0), image["height"])
            x2, y2 = min(max(x + w, 0), image["width"]), min(max(y + h, 0), image["height"])
            bw, bh = x2 - x1, y2 - y1
            area = bw * bh
            n_visible = sum(1 for k in range(17) if g["kps"][k][2] > 0)
            best, best_oks = None, -1.0
            for d in dets:
                terms = []
                for k in range(17):
                    xd, yd = d["kps"][k][0], d["kps"][k][1]
                    if n_visible > 0:
                        if g["kps"][k][2] <= 0:
                            continue
                        dx, dy = xd - g["kps"][k][0], yd - g["kps"][k][1]
                    else:
                        dx = max(0.0, (x1 - bw) - xd) + max(0.0, xd - (x1 + 2 * bw))
                        dy = max(0.0, (y1 - bh) - yd) + max(0.0, yd - (y1 + 2 * bh))
                    e = (dx * dx + dy * dy) / variances[k] / (area + np.spacing(1)) / 2
                    terms.append(np.exp(-e))
                oks = sum(terms) / len(terms)
                if oks > best_oks:  # the first maximum wins, as np.argmax
                    best, best_oks = d, oks
            gt3d = g["kps3d"]
            pelvis = [(gt3d[L_HIP][c] + gt3d[R_HIP][c]) / 2.0 for c in range(3)]
            for j in range(17):
                vis = 1.0 if gt3d[j][3] > 0 else 0.0
                diff = [best["kps3d"][j][c] * vis - (gt3d[j][c] - pelvis[c]) * vis
                        for c in range(3)]  # fmt: skip
                total[j] += float(np.sqrt(sum(v * v for v in diff)))
            count += 1
    err = {j: total[j] / count for j in total}
    shoulder = (err[L_SHOULDER] + err[R_SHOULDER]) / 2.0
    hip = (err[L_HIP] + err[R_HIP]) / 2.0
    elbow = (err[L_ELBOW] + err[R_ELBOW]) / 2.0
    wrist = (err[L_WRIST] + err[R_WRIST]) / 2.0
    return (shoulder + hip + elbow + wrist) / 4.0, count


def _person(rng, x, y, w, h):
    kps = np.zeros((17, 3))
    kps[:, 0] = rng.uniform(x, x + w, 17)
    kps[:, 1] = rng.uniform(y, y + h, 17)
    kps[:, 2] = 2
    pose = np.zeros((17, 4))
    pose[:, :3] = rng.uniform(-400, 400, (17, 3)) + [100, -50, 3500]
    pose[:, 3] = 1
    return kps, pose


def _scene(seed: int = 0):
    """Images, ground truths and predictions covering the cases the official code treats apart."""
    rng = np.random.default_rng(seed)
    images = [{"id": i, "file_name": f"{i}.png", "width": WIDTH, "height": HEIGHT}
              for i in range(1, 6)]  # fmt: skip
    gts, preds = [], []

    def add_gt(image_id, bbox, kps, pose):
        gts.append({"image_id": image_id, "bbox": list(bbox), "kps": kps, "kps3d": pose})

    def add_pred(image_id, kps, pose3d, score):
        preds.append({"image_id": image_id, "kps": kps, "kps3d": pose3d, "score": score})

    def lifted(pose, noise=30.0, shift=(0.0, 0.0, 0.0)):
        # a lifter output: root-relative (mid-hips at the origin) plus noise, optionally shifted
        rel = pose[:, :3] - (pose[L_HIP, :3] + pose[R_HIP, :3]) / 2
        return rel + rng.normal(0, noise, (17, 3)) + np.asarray(shift)

    def noisy(kps, sd=3.0):
        out = kps.copy()
        out[:, :2] += rng.normal(0, sd, (17, 2))
        out[:, 2] = rng.uniform(0.2, 1, 17)
        return out

    # image 1: two people, everything visible, plus a far-away distractor with the top score
    for bbox in ((50, 40, 120, 300), (300, 60, 140, 320)):
        kps, pose = _person(rng, *bbox)
        add_gt(1, bbox, kps, pose)
        add_pred(1, noisy(kps), lifted(pose), float(rng.uniform(0.5, 0.9)))
    far, _ = _person(rng, 560, 400, 30, 30)
    add_pred(1, noisy(far), lifted(_person(rng, 0, 0, 1, 1)[1]), 0.99)

    # image 2: invisible 3D joints (one elbow, one wrist) and unlabelled 2D keypoints
    kps, pose = _person(rng, 100, 100, 150, 300)
    pose[L_ELBOW, 3] = 0
    pose[R_WRIST, 3] = 0
    kps[[0, 1, 2, 15], 2] = 0
    add_gt(2, (100, 100, 150, 300), kps, pose)
    add_pred(2, noisy(kps), lifted(pose), 0.8)

    # image 3: a prediction whose origin is not its mid-hips (the official code keeps it so),
    # and a box running out of the image (clipped before the OKS)
    kps, pose = _person(rng, 520, 200, 110, 260)
    add_gt(3, (520, 200, 160, 320), kps, pose)
    add_pred(3, noisy(kps), lifted(pose, shift=(40.0, -25.0, 60.0)), 0.7)

    # image 4: one hip not annotated in 3D (its stored coordinates still give the pelvis), and a
    # person with no visible 2D keypoint (matched by the enlarged-box distance)
    kps, pose = _person(rng, 200, 50, 100, 250)
    pose[R_HIP, 3] = 0
    pose[R_HIP, :3] += [35.0, 10.0, -20.0]  # a stored but unannotated hip
    add_gt(4, (200, 50, 100, 250), kps, pose)
    add_pred(4, noisy(kps), lifted(pose), 0.6)
    kps2, pose2 = _person(rng, 420, 100, 90, 200)
    kps2[:, 2] = 0
    add_gt(4, (420, 100, 90, 200), kps2, pose2)
    add_pred(4, noisy(kps2, sd=5.0), lifted(pose2), 0.5)

    # image 5: two equally hopeless detections (OKS 0 for both): the higher score is taken,
    # whatever the file order
    kps, pose = _person(rng, 20, 20, 60, 120)
    add_gt(5, (20, 20, 60, 120), kps, pose)
    for score, dx in ((0.3, 400.0), (0.9, 450.0)):
        moved = kps.copy()
        moved[:, 0] += dx
        add_pred(5, moved, lifted(pose, shift=(score * 100, 0, 0)), score)
    return images, gts, preds


def _orpose_inputs(images, gts, preds):
    anns = []
    for i, g in enumerate(gts, start=1):
        kps = g["kps"]
        anns.append({
            "id": i, "image_id": g["image_id"], "category_id": 1, "iscrowd": 0,
            "bbox": g["bbox"], "area": g["bbox"][2] * g["bbox"][3],
            "keypoints": kps.reshape(-1).tolist(), "num_keypoints": int((kps[:, 2] > 0).sum()),
            "keypoints3d": g["kps3d"].reshape(-1).tolist(),
        })  # fmt: skip
    results = [
        {"image_id": p["image_id"], "category_id": 1, "bbox": [0, 0, 1, 1], "score": p["score"],
         "keypoints": p["kps"].reshape(-1).tolist(), "keypoints3d": p["kps3d"].reshape(-1).tolist()}
        for p in preds
    ]  # fmt: skip
    return PoseDataset(images=images, annotations=anns), results


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_mpjpe_official_equals_the_reference(seed):
    images, gts, preds = _scene(seed)
    gt, results = _orpose_inputs(images, gts, preds)
    expected, count = reference_mpjpe(images, gts, preds)
    res = compute_mpjpe(gt, results)
    assert res.persons_official == count == len(gts)
    assert res.mpjpe_official == pytest.approx(expected, rel=1e-12)
    # the recommended variant skips the person whose hip is not annotated
    assert res.skipped_no_root == 1 and res.persons == count - 1
    # file order does not matter (the official order is by score)
    assert compute_mpjpe(gt, results[::-1]).mpjpe_official == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize(
    "case", ["all_visible", "invisible_joints", "shifted_root", "one_hip_invisible"]
)
def test_each_case_alone(case):
    """Each case of the scene on its own image, so that a wrong rule cannot hide in an average."""
    images, gts, preds = _scene(5)
    image_id = {"all_visible": 1, "invisible_joints": 2, "shifted_root": 3,
                "one_hip_invisible": 4}[case]  # fmt: skip
    images = [im for im in images if im["id"] == image_id]
    gts = [g for g in gts if g["image_id"] == image_id]
    preds = [p for p in preds if p["image_id"] == image_id]
    if case == "one_hip_invisible":
        gts = gts[:1]
    gt, results = _orpose_inputs(images, gts, preds)
    expected, _ = reference_mpjpe(images, gts, preds)
    res = compute_mpjpe(gt, results)
    assert res.mpjpe_official == pytest.approx(expected, rel=1e-12)
    if case == "shifted_root":
        # the recommended variant re-roots the prediction: the shift costs it nothing
        unshifted = [dict(r) for r in results]
        kps3d = np.asarray(results[0]["keypoints3d"]).reshape(17, 3)
        unshifted[0]["keypoints3d"] = (kps3d - [40.0, -25.0, 60.0]).reshape(-1).tolist()
        assert compute_mpjpe(gt, unshifted).mpjpe == pytest.approx(res.mpjpe, rel=1e-12)
        assert compute_mpjpe(gt, unshifted).mpjpe_official < res.mpjpe_official
    if case == "one_hip_invisible":
        assert res.persons == 0 and res.skipped_no_root == 1 and res.persons_official == 1
    if case == "invisible_joints":
        assert res.mpjpe_official < res.mpjpe  # zeros in the official denominator
