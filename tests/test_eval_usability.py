"""``orpose eval`` on pseudo-label files (--keypoints, recorded downscale), the APm and APl
columns, and ``orpose data check``'s count of people with keypoints."""

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from conftest import person_keypoints
from orpose.cli import main


def _write_gt(tmp_path: Path) -> Path:
    """Two 640x480 images, one large person each (area > 96^2, so APl is defined)."""
    import cv2

    (tmp_path / "images").mkdir(exist_ok=True)
    images, annotations = [], []
    for image_id in (1, 2):
        name = f"img{image_id}.png"
        cv2.imwrite(str(tmp_path / "images" / name), np.full((480, 640, 3), 90, np.uint8))
        images.append({"id": image_id, "file_name": name, "width": 640, "height": 480})
        kps = person_keypoints(150 + 200 * image_id, 60, scale=2.0)
        x0, y0 = kps[:, 0].min() - 10, kps[:, 1].min() - 10
        w, h = kps[:, 0].max() + 10 - x0, kps[:, 1].max() + 10 - y0
        annotations.append({
            "id": image_id, "image_id": image_id, "category_id": 1, "iscrowd": 0,
            "bbox": [x0, y0, w, h], "area": w * h, "num_keypoints": 17,
            "keypoints": kps.reshape(-1).tolist(),
        })  # fmt: skip
    path = tmp_path / "gt.json"
    path.write_text(json.dumps({"images": images, "annotations": annotations}))
    return path


def _write_labels(tmp_path: Path, gt_path: Path, downscale: float | None = None) -> Path:
    """An orpose COCO file: the soft set is the ground truth, the hard set lost its arms."""
    gt = json.loads(gt_path.read_text())
    annotations = []
    for a in gt["annotations"]:
        soft = np.asarray(a["keypoints"], dtype=float).reshape(17, 3)
        soft[:, 2] = 0.9
        hard = soft.copy()
        hard[:, 2] = 2
        hard[5:11] = 0  # shoulders, elbows, wrists under the threshold
        annotations.append({
            "id": a["id"], "image_id": a["image_id"] + 100, "category_id": 1, "score": 0.95,
            "bbox": a["bbox"], "keypoints": hard.reshape(-1).tolist(),
            "keypoints_soft": soft.reshape(-1).tolist(),
        })  # fmt: skip
    images = [{**img, "id": img["id"] + 100} for img in gt["images"]]
    info = {"orpose": {"downscale": downscale}} if downscale is not None else {}
    path = tmp_path / ("labels.json" if downscale is None else f"labels_{downscale:g}x.json")
    path.write_text(json.dumps({"info": info, "images": images, "annotations": annotations}))
    return path


def _rows(out: Path) -> list[dict]:
    with open(out / "metrics.csv") as f:
        return list(csv.DictReader(f))


def test_keypoints_soft_or_hard(tmp_path):
    gt = _write_gt(tmp_path)
    labels = _write_labels(tmp_path, gt)
    assert main(["eval", "--gt", str(gt), "--pred", str(labels), "--out", str(tmp_path / "s"),
                 "--no-plot"]) == 0  # fmt: skip
    assert main(["eval", "--gt", str(gt), "--pred", str(labels), "--out", str(tmp_path / "h"),
                 "--no-plot", "--keypoints", "hard"]) == 0  # fmt: skip
    soft, hard = _rows(tmp_path / "s")[0], _rows(tmp_path / "h")[0]
    assert float(soft["keypoint_ap"]) == pytest.approx(100.0)
    assert float(hard["keypoint_ap"]) < 50.0  # the hard set's zeroed arms are scored
    assert float(soft["box_ap"]) == float(hard["box_ap"])  # same people, same boxes


def test_keypoints_hard_on_a_results_list_is_refused(tmp_path, capsys):
    gt = _write_gt(tmp_path)
    results = [{"image_id": a["image_id"], "category_id": 1, "bbox": a["bbox"], "score": 1.0,
                "keypoints": a["keypoints"]}
               for a in json.loads(gt.read_text())["annotations"]]  # fmt: skip
    pred = tmp_path / "results.json"
    pred.write_text(json.dumps(results))
    assert main(["eval", "--gt", str(gt), "--pred", str(pred), "--keypoints", "hard",
                 "--no-plot", "--out", str(tmp_path / "e")]) == 2  # fmt: skip
    assert "--keypoints hard needs an orpose COCO file" in capsys.readouterr().err


def test_recorded_downscale_names_the_row_unless_a_scale_is_given(tmp_path):
    gt = _write_gt(tmp_path)
    low = _write_labels(tmp_path, gt, downscale=12)
    full = _write_labels(tmp_path, gt)
    out = tmp_path / "e"
    assert main(["eval", "--gt", str(gt), "--pred", str(full), "--pred", str(low),
                 "--out", str(out), "--no-plot"]) == 0  # fmt: skip
    assert [r["scale"] for r in _rows(out)] == ["1x", "12x"]
    assert main(["eval", "--gt", str(gt), "--pred", f"8={low}", "--out", str(out),
                 "--no-plot"]) == 0  # fmt: skip
    assert [r["scale"] for r in _rows(out)] == ["8x"]  # an explicit SCALE= wins
    # two files at the same recorded factor are the same row twice: refused
    assert main(["eval", "--gt", str(gt), "--pred", str(low), "--pred", str(low),
                 "--out", str(out), "--no-plot"]) == 2  # fmt: skip


def test_keypoint_apl_in_table_csv_and_json(tmp_path, capsys):
    gt = _write_gt(tmp_path)
    labels = _write_labels(tmp_path, gt)
    out = tmp_path / "e"
    assert main(["eval", "--gt", str(gt), "--pred", str(labels), "--out", str(out),
                 "--no-plot"]) == 0  # fmt: skip
    printed = capsys.readouterr().out
    header = next(line for line in printed.splitlines() if line.strip().startswith("Scale"))
    assert "Keypoint2D-APl" in header
    row = _rows(out)[0]
    assert float(row["keypoint_apl"]) == pytest.approx(100.0)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics[0]["keypoints"]["APl"] == pytest.approx(1.0)


def test_keypoint_apm_and_apl_match_pycocotools_by_size(tmp_path, capsys):
    """A medium person posed 2 px off and a large one 12 px off, both with exact boxes: the csv's
    keypoint APm and APl are pycocotools' own by-size keypoint figures (not the boxes', which
    are 100), read here from COCOeval directly."""
    import contextlib
    import io

    import cv2
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    (tmp_path / "images").mkdir()
    cv2.imwrite(str(tmp_path / "images" / "a.png"), np.full((480, 640, 3), 90, np.uint8))
    annotations, results = [], []
    for ann_id, (x, scale, shift) in enumerate([(120, 0.5, 2.0), (400, 2.0, 12.0)], 1):
        kps = person_keypoints(x, 40, scale=scale)
        x0, y0 = kps[:, 0].min() - 5, kps[:, 1].min() - 5
        w, h = kps[:, 0].max() + 5 - x0, kps[:, 1].max() + 5 - y0
        box = [float(x0), float(y0), float(w), float(h)]
        annotations.append({"id": ann_id, "image_id": 1, "category_id": 1, "iscrowd": 0,
                            "bbox": box, "area": float(w * h), "num_keypoints": 17,
                            "keypoints": kps.reshape(-1).tolist()})  # fmt: skip
        moved = kps.copy()
        moved[:, 0] += shift
        results.append({"image_id": 1, "category_id": 1, "bbox": box, "score": 0.9 - 0.1 * ann_id,
                        "keypoints": moved.reshape(-1).tolist()})  # fmt: skip
    assert annotations[0]["area"] < 96**2 < annotations[1]["area"]  # one medium, one large
    gt_path, pred = tmp_path / "gt.json", tmp_path / "pred.json"
    image = {"id": 1, "file_name": "a.png", "width": 640, "height": 480}
    gt_path.write_text(json.dumps({"images": [image], "annotations": annotations,
                                   "categories": [{"id": 1, "name": "person"}]}))  # fmt: skip
    pred.write_text(json.dumps(results))
    out = tmp_path / "e"
    assert main(["eval", "--gt", str(gt_path), "--pred", str(pred), "--out", str(out),
                 "--no-plot"]) == 0  # fmt: skip
    header = next(line for line in capsys.readouterr().out.splitlines() if "Scale" in line)
    assert "Keypoint2D-APm" in header
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO(str(gt_path))
        check = COCOeval(coco, coco.loadRes(str(pred)), "keypoints")
        check.evaluate()
        check.accumulate()
        check.summarize()
    row = _rows(out)[0]
    assert float(row["keypoint_apm"]) == pytest.approx(100 * check.stats[3])
    assert float(row["keypoint_apl"]) == pytest.approx(100 * check.stats[4])
    for key in ("keypoint_apm", "keypoint_apl"):  # both missed the strict OKS thresholds
        assert 0.0 < float(row[key]) < 100.0
    assert float(row["box_ap"]) == pytest.approx(100.0)


def test_keypoint_apm_and_apl_without_such_people_are_not_minus_100(tmp_path):
    from orpose.evaluation.report import ScaleReport

    stats = dict.fromkeys(("AP", "AP50", "APm", "APl"), -1.0)
    row = ScaleReport("1x", dict(stats), dict(stats), None, 0).row()
    assert np.isnan(row["keypoint_apl"]) and np.isnan(row["keypoint_apm"])


def test_data_check_counts_people_with_keypoints_not_fields(tmp_path, capsys):
    gt = _write_gt(tmp_path)
    data = json.loads(gt.read_text())
    box_only = dict(data["annotations"][0], id=3, keypoints=[0] * 51, num_keypoints=0)
    no_count = dict(data["annotations"][1], id=4)
    del no_count["num_keypoints"]  # counted by its visible keypoints
    soft = np.zeros((17, 3))
    data["annotations"][0]["keypoints_soft"] = soft.reshape(-1).tolist()  # all confidences 0
    data["annotations"] += [box_only, no_count]
    gt.write_text(json.dumps(data))
    assert main(["data", "check", str(gt)]) == 0
    out = capsys.readouterr().out
    assert "keypoints: 3 people with keypoints (4 annotations carry the field)" in out
    assert "keypoints_soft: 0 people with keypoints (1 annotations carry the field)" in out


def test_eval_reads_an_orpose_predict_folder(tmp_path):
    """`orpose predict --out DIR` then `orpose eval --pred DIR`: results.json's ids are mapped to
    the ground truth's by images.json's files, 3D kept, the factor read from the folder."""
    import cv2
    import numpy as np

    from orpose.data.coco import load_pose_dataset
    from orpose.errors import UserError
    from orpose.evaluation.cli import load_pred_file
    from orpose.inference.pipeline import PredictOptions, run_predict
    from test_inference_predict import FakePredictor

    for name in ("b.png", "a.png"):
        cv2.imwrite(str(tmp_path / name), np.full((96, 128, 3), 90, np.uint8))
    gt_file = tmp_path / "gt.json"
    images = [{"id": 7, "file_name": "a.png", "width": 128, "height": 96},
              {"id": 9, "file_name": "b.png", "width": 128, "height": 96}]  # fmt: skip
    anns = [{"id": 1, "image_id": 7, "category_id": 1, "bbox": [32, 12, 64, 72], "area": 4608,
             "iscrowd": 0, "num_keypoints": 0, "keypoints": [0] * 51}]  # fmt: skip
    gt_file.write_text(json.dumps({"images": images, "annotations": anns,
                                   "categories": [{"id": 1, "name": "person"}]}))  # fmt: skip
    out = tmp_path / "pred"
    options = PredictOptions(out=out, progress=False, score_threshold=0, downscale=4)
    run_predict(FakePredictor(), [str(tmp_path / "a.png"), str(tmp_path / "b.png")], options)
    label, results = load_pred_file(str(out), load_pose_dataset(gt_file))
    assert label == "4x" and sorted(r["image_id"] for r in results) == [7, 9]
    written = json.loads((out / "results.json").read_text())
    assert all(len(r["keypoints3d"]) == 51 for r in results) and len(written) == 2
    (out / "images.json").unlink()
    with pytest.raises(UserError, match=r"images\.json is missing"):
        load_pred_file(str(out), load_pose_dataset(gt_file))
