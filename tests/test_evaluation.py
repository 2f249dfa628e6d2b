"""AP against pycocotools' own file-based path, MPJPE by hand, and clear errors on bad results."""

import copy
import json

import numpy as np
import pytest
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from conftest import person_keypoints
from orpose.cli import main
from orpose.data.coco import DatasetError, PoseDataset, load_pose_dataset
from orpose.evaluation.coco_ap import evaluate_ap
from orpose.evaluation.mpjpe import compute_mpjpe, oks_matrix, score_order_matches
from orpose.evaluation.predictions import load_predictions


def gt_as_results(ds: PoseDataset) -> list[dict]:
    results = []
    for a in ds.annotations:
        if a.get("iscrowd", 0):
            continue
        result = {"image_id": a["image_id"], "category_id": 1, "bbox": a["bbox"], "score": 1.0}
        if a.get("num_keypoints", 0) > 0:  # persons without keypoints only get a box
            kps = np.asarray(a["keypoints"], dtype=float).reshape(17, 3)
            kps[:, 2] = 1.0
            result["keypoints"] = kps.reshape(-1).tolist()
        results.append(result)
    return results


def perturbed(results: list[dict], seed: int = 0) -> list[dict]:
    rng = np.random.default_rng(seed)
    out = copy.deepcopy(results)
    for r in out:
        if "keypoints" in r:
            kps = np.asarray(r["keypoints"]).reshape(17, 3)
            kps[:, :2] += rng.normal(0, 6, (17, 2))
            r["keypoints"] = kps.reshape(-1).tolist()
        box = np.asarray(r["bbox"]) + rng.normal(0, 4, 4)
        box[2:] = np.maximum(box[2:], 0.0)  # a negative width or height is refused on load
        r["bbox"] = box.tolist()
        r["score"] = float(rng.uniform(0.1, 1))
    return out


def test_ground_truth_as_predictions_gives_ap_one(val500):
    gt = load_pose_dataset(val500)
    ap = evaluate_ap(gt, load_predictions(gt_as_results(gt), gt))
    assert ap["bbox"]["AP"] == pytest.approx(1.0)
    assert ap["keypoints"]["AP"] == pytest.approx(1.0)


def test_ap_equals_pycocotools_file_path(val500, tmp_path):
    gt = load_pose_dataset(val500)
    results = perturbed(gt_as_results(gt))
    ours = evaluate_ap(gt, results)
    coco_gt = COCO(str(val500))
    for iou_type, key in (("bbox", "bbox"), ("keypoints", "keypoints")):
        res_path = tmp_path / f"res_{iou_type}.json"
        res_path.write_text(json.dumps([r for r in results if iou_type in r]))
        ev = COCOeval(coco_gt, coco_gt.loadRes(str(res_path)), iou_type)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
        assert ours[key]["AP"] == pytest.approx(ev.stats[0], abs=1e-9)
        assert 0.2 < ours[key]["AP"] < 0.99  # the perturbation really costs AP


def _gt_with_3d() -> PoseDataset:
    kps = person_keypoints(100, 50)
    pose3d = np.zeros((17, 4))
    pose3d[:, :3] = np.random.default_rng(0).uniform(-500, 500, (17, 3)) + [0, 0, 3000]
    pose3d[:, 3] = 1
    pose3d[7, 3] = 0  # left elbow invisible
    ann = {"id": 1, "image_id": 5, "category_id": 1, "iscrowd": 0, "bbox": [70, 40, 60, 170],
           "area": 10200.0, "keypoints": kps.reshape(-1).tolist(), "num_keypoints": 17,
           "keypoints3d": pose3d.reshape(-1).tolist()}  # fmt: skip
    return PoseDataset(images=[{"id": 5, "file_name": "a.png", "width": 320, "height": 240}],
                       annotations=[ann])  # fmt: skip


def test_mpjpe_by_hand_on_a_tiny_case():
    gt = _gt_with_3d()
    gt3d = np.asarray(gt.annotations[0]["keypoints3d"]).reshape(17, 4)[:, :3]
    rel = gt3d - (gt3d[11] + gt3d[12]) / 2
    good = rel.copy()
    good[5] += [30, 40, 0]  # 50 mm off on the left shoulder
    good[9] += [0, 0, 100]  # 100 mm off on the left wrist
    good[7] += [999, 0, 0]  # the invisible left elbow must not count
    bad = rel + 400.0
    kps = person_keypoints(100, 50)
    far = person_keypoints(220, 50)
    results = [
        {"image_id": 5, "bbox": [0, 0, 1, 1], "score": 0.9,
         "keypoints": kps.reshape(-1).tolist(), "keypoints3d": good.reshape(-1).tolist()},
        {"image_id": 5, "bbox": [0, 0, 1, 1], "score": 0.99,
         "keypoints": far.reshape(-1).tolist(), "keypoints3d": bad.reshape(-1).tolist()},
    ]  # fmt: skip
    res = compute_mpjpe(gt, results)
    assert res.persons == 1 and res.missed == 0
    # 8 upper-body joints, left elbow invisible -> 7 counted: (50 + 100) / 7
    assert res.mpjpe == pytest.approx(150 / 7)
    # official convention: invisible joint adds 0 but counts -> (50 + 100) / 8
    assert res.mpjpe_official == pytest.approx(150 / 8)
    assert res.per_joint["left_shoulder"] == pytest.approx(50)
    assert np.isnan(res.per_joint["left_elbow"])
    # the same pose shifted in space (not root-relative) gives the same error
    shifted = copy.deepcopy(results)
    shifted[0]["keypoints3d"] = (good + [10, 20, 3000]).reshape(-1).tolist()
    assert compute_mpjpe(gt, shifted).mpjpe == pytest.approx(150 / 7)
    assert compute_mpjpe(gt, []).missed == 1


def test_matched_mpjpe_does_not_reward_a_low_score_duplicate():
    """The best-OKS figures take a low-score duplicate whose 3D happens to be right; the matched
    figure keeps the person's higher-scoring prediction, and leaves out a person nobody reaches."""
    gt = _gt_with_3d()
    second = copy.deepcopy(gt.annotations[0])
    second.update(id=2, bbox=[200, 40, 60, 170],
                  keypoints=person_keypoints(230, 50).reshape(-1).tolist())  # fmt: skip
    gt = PoseDataset(images=gt.images, annotations=[gt.annotations[0], second])
    gt3d = np.asarray(gt.annotations[0]["keypoints3d"]).reshape(17, 4)[:, :3]
    rel = gt3d - (gt3d[11] + gt3d[12]) / 2
    off = rel.copy()
    off[5] += [30, 40, 0]  # 50 mm off on the left shoulder
    near = person_keypoints(100, 50)
    near[:, 0] += 1.0  # one pixel off: OKS just below the duplicate's
    results = [
        {"image_id": 5, "bbox": [0, 0, 1, 1], "score": 0.9,
         "keypoints": near.reshape(-1).tolist(), "keypoints3d": off.reshape(-1).tolist()},
        {"image_id": 5, "bbox": [0, 0, 1, 1], "score": 0.06,  # exact 2D, exact 3D
         "keypoints": person_keypoints(100, 50).reshape(-1).tolist(),
         "keypoints3d": rel.reshape(-1).tolist()},
    ]  # fmt: skip
    res = compute_mpjpe(gt, results)
    assert res.persons == 2 and res.persons_matched == 1
    # best OKS: person 1 takes the exact duplicate (0 mm); person 2, far from both, takes the
    # nearer one, whose 3D is person 1's
    second3d = np.asarray(second["keypoints3d"]).reshape(17, 4)[:, :3]  # the same 3D as person 1
    assert np.allclose(second3d, gt3d)
    assert res.mpjpe < 50 / 7
    # matched: person 1 keeps the 0.9 prediction: 50 mm on one of its 7 visible joints
    assert res.mpjpe_matched == pytest.approx(50 / 7)
    assert score_order_matches(gt.annotations, results) == {1: 0}
    # each person's record says which result it was scored with (benchmarks/bone_lengths.py)
    picked = {r["annotation_id"]: r["result"] for r in res.errors}
    assert picked[1] == 1  # the exact duplicate, the second result
    unrelated = dict(results[0], image_id=99)  # another image's person, listed first
    again = compute_mpjpe(gt, [unrelated, *results])  # places in the list given, not per image
    assert {r["annotation_id"]: r["result"] for r in again.errors}[1] == 2


def test_score_order_matches_equal_pycocotools_at_oks_half(val500):
    """The one-to-one match of ``mpjpe_matched`` is COCOeval's at its first OKS threshold (0.5),
    with the box area as the OKS scale, on a crowded image with perturbed, duplicated people."""
    gt = load_pose_dataset(val500)
    counts = {}
    for a in gt.annotations:
        if a.get("num_keypoints", 0) > 3 and not a.get("iscrowd", 0):
            counts[a["image_id"]] = counts.get(a["image_id"], 0) + 1
    image_id = max(counts, key=counts.get)
    anns = [a for a in gt.annotations_of(image_id)
            if a.get("num_keypoints", 0) > 0 and not a.get("iscrowd", 0)]  # fmt: skip
    sub = PoseDataset(gt.images, anns)
    results = perturbed(gt_as_results(sub), seed=1) + perturbed(gt_as_results(sub), seed=2)
    gtd = copy.deepcopy(sub.to_json())
    for a in gtd["annotations"]:
        a["area"] = a["bbox"][2] * a["bbox"][3]
    coco_gt = COCO()
    coco_gt.dataset = gtd
    coco_gt.createIndex()
    ev = COCOeval(coco_gt, coco_gt.loadRes(copy.deepcopy(results)), "keypoints")
    ev.params.imgIds = [image_id]
    ev.params.maxDets = [len(results)]
    ev.evaluate()
    done = next(e for e in ev.evalImgs if e is not None and e["aRng"] == ev.params.areaRng[0])
    loaded = coco_gt.loadRes(copy.deepcopy(results)).dataset["annotations"]
    by_dt_id = {d["id"]: i for i, d in enumerate(loaded)}  # loadRes numbers them in file order
    pairs = zip(done["gtIds"], done["gtMatches"][0], strict=True)
    expected = {int(g): by_dt_id[int(d)] for g, d in pairs if d > 0}
    ours = score_order_matches(anns, results)
    assert len(expected) >= 3  # several people, each also duplicated at another score
    assert ours == expected


def test_oks_matches_pycocotools_compute_oks(val500):
    gt = load_pose_dataset(val500)
    image_id = next(a["image_id"] for a in gt.annotations if a.get("num_keypoints", 0) > 3)
    anns = [a for a in gt.annotations_of(image_id) if a.get("num_keypoints", 0) > 0]
    results = perturbed(gt_as_results(PoseDataset(gt.images, anns)), seed=3)
    coco_gt = COCO()
    gtd = copy.deepcopy(PoseDataset(gt.images, anns).to_json())
    for a in gtd["annotations"]:  # the official code's OKS scale is the box area
        a["area"] = a["bbox"][2] * a["bbox"][3]
    coco_gt.dataset = gtd
    coco_gt.createIndex()
    ev = COCOeval(coco_gt, coco_gt.loadRes(results), "keypoints")
    ev.params.imgIds = [image_id]
    ev._prepare()
    ref = ev.computeOks(image_id, 1)  # (detections sorted by score) x (ground truths)
    order = np.argsort([-r["score"] for r in results], kind="mergesort")
    ours = oks_matrix(
        np.asarray([a["keypoints"] for a in anns], float).reshape(-1, 17, 3),
        np.asarray([a["bbox"] for a in anns], float),
        np.asarray([results[i]["keypoints"] for i in order], float).reshape(-1, 17, 3),
    )
    np.testing.assert_allclose(ours, np.asarray(ref).T, rtol=1e-9)


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda r: r.update(image_id=123456789), "field 'image_id': unknown image id 123456789"),
        (lambda r: r.update(keypoints=r["keypoints"][:48]),
         "field 'keypoints': expected 17 keypoints (51 numbers), got 16 keypoints"),
        (lambda r: r.pop("score"), "field 'score': missing"),
        (lambda r: r.update(keypoints3d=[0.0] * 17), "field 'keypoints3d': expected 51 numbers"),
    ],
)  # fmt: skip
def test_bad_prediction_files_are_named(tmp_path, mutate, expected):
    gt = _gt_with_3d()
    result = {"image_id": 5, "bbox": [1, 2, 3, 4], "score": 0.5,
              "keypoints": person_keypoints(1, 1).reshape(-1).tolist()}  # fmt: skip
    good = copy.deepcopy(result)
    mutate(result)
    path = tmp_path / "preds.json"
    path.write_text(json.dumps([good, result]))
    with pytest.raises(DatasetError) as err:
        load_predictions(path, gt)
    assert f"{path}: result #1: {expected}" in str(err.value)


def test_eval_cli_prints_the_table_and_saves_files(val500, tmp_path, capsys):
    gt = load_pose_dataset(val500)
    p1, p12 = tmp_path / "p1.json", tmp_path / "p12.json"
    p1.write_text(json.dumps(gt_as_results(gt)))
    p12.write_text(json.dumps(perturbed(gt_as_results(gt))))
    out = tmp_path / "report"
    code = main(["eval", "--gt", str(val500), "--pred", f"1={p1}", "--pred", f"12={p12}",
                 "--out", str(out)])  # fmt: skip
    assert code == 0
    printed = capsys.readouterr().out
    assert "Keypoint2D-AP" in printed and "Box-AP" in printed
    row_1x = next(line for line in printed.splitlines() if line.strip().startswith("1x"))
    assert "100.00" in row_1x
    metrics = json.loads((out / "metrics.json").read_text())
    assert [m["scale"] for m in metrics] == ["1x", "12x"]
    assert metrics[1]["keypoints"]["AP"] < metrics[0]["keypoints"]["AP"]
    assert (out / "metrics.csv").read_text().startswith("scale,box_ap")
    assert (out / "ap_vs_scale.png").stat().st_size > 1000


def test_eval_cli_error_is_one_clear_line(tmp_path, capsys, val500):
    path = tmp_path / "wrong.json"
    path.write_text(json.dumps([{"image_id": -4, "bbox": [0, 0, 1, 1], "score": 1.0}]))
    assert main(["eval", "--gt", str(val500), "--pred", str(path)]) == 2
    err = capsys.readouterr().err
    assert "wrong.json: result #0: field 'image_id': unknown image id -4" in err
