"""`orpose label --images DIR`: COCO-file inputs with relative image names, as `orpose eval`."""

import json

import pytest

from orpose.cli import main
from orpose.data.coco import load_pose_dataset

pytestmark = pytest.mark.shared

FRAME = "day4/cam3/color/000000.png"


@pytest.fixture
def mvor_root(shared):
    root = shared / "data" / "mvor" / "images"
    if not (root / FRAME).is_file():
        pytest.skip(f"{root / FRAME} missing")
    return root


def one_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in err, lines
    return lines[0]


def test_label_images_resolves_relative_names_and_eval_scores_them(
    tmp_path, capsys, shared, mvor_root, mvor_json
):
    gt = tmp_path / "mvor_d4c3.json"
    assert main(["data", "mvor-to-coco", "--mvor", str(mvor_json), "--days", "4", "--cameras",
                 "3", "--images", str(mvor_root), "--out", str(gt)]) == 0  # fmt: skip
    data = json.loads(gt.read_text())
    first = next(img for img in data["images"] if img["file_name"] == FRAME)
    data["images"] = [first]
    data["annotations"] = [a for a in data["annotations"] if a["image_id"] == first["id"]]
    gt.write_text(json.dumps(data))
    capsys.readouterr()

    labels = tmp_path / "labels.json"
    label = ["label", str(gt), "--out", str(labels), "--preset", "single", "--no-progress",
             "--models-dir", str(shared / "models")]  # fmt: skip
    # without --images the relative name is looked for beside the file, and the error says so
    assert main(label) == 2
    line = one_line(capsys.readouterr().err)
    assert str(gt) in line and "field 'file_name'" in line
    assert main([*label, "--images", str(mvor_root)]) == 0
    out = load_pose_dataset(labels, check_images=True)
    assert [img["file_name"] for img in out.images] == [str((mvor_root / FRAME).resolve())]
    assert out.annotations  # people in the operating room

    report = tmp_path / "ev"
    assert main(["eval", "--gt", str(gt), "--images", str(mvor_root), "--pred", str(labels),
                 "--out", str(report)]) == 0  # fmt: skip
    pck = json.loads((report / "metrics.json").read_text())[0]["mvor_pck"]
    people = sum(1 for a in data["annotations"] if a["num_keypoints"] > 0)
    assert pck["persons"] == people and pck["matched"] >= 1


def test_label_images_needs_a_coco_input(tmp_path, capsys, mvor_root):
    code = main(["label", str(mvor_root / FRAME), "--out", str(tmp_path / "l.json"),
                 "--images", str(mvor_root)])  # fmt: skip
    assert code == 2
    assert "--images applies to COCO-file inputs" in one_line(capsys.readouterr().err)
