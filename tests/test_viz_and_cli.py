"""Drawing, 3D plots and the command line's behaviour on good and bad input."""

import json
import re
import subprocess
import sys

import numpy as np

from conftest import person_keypoints, tiny_dataset_json
from orpose.cli import main
from orpose.viz.draw2d import draw_people, draw_skeleton
from orpose.viz.plot3d import place_at_root, plot_skeletons_3d


def test_skeleton_is_drawn_only_where_keypoints_are_shown():
    image = np.zeros((200, 200, 3), np.uint8)
    kps = person_keypoints(100, 20)
    kps[15:, 2] = 0  # ankles hidden
    draw_skeleton(image, kps)
    assert image[int(kps[0, 1]), int(kps[0, 0])].any()  # nose drawn
    assert not image[int(kps[16, 1]), int(kps[16, 0])].any()  # hidden ankle not drawn


def test_draw_people_leaves_the_input_untouched():
    image = np.zeros((200, 200, 3), np.uint8)
    person = {"bbox": [70, 10, 60, 180], "score": 0.8,
              "keypoints": person_keypoints(100, 20).reshape(-1).tolist()}  # fmt: skip
    out = draw_people(image, [person])
    assert not image.any() and out.any()


def test_3d_plot_is_written(tmp_path):
    pose = np.random.default_rng(0).normal(0, 300, (17, 3))
    path = plot_skeletons_3d([place_at_root(pose, [0, 0, 3000])], tmp_path / "p.png", title="t")
    assert path.stat().st_size > 5000
    np.testing.assert_allclose(place_at_root(pose, [1, 2, 3]), pose + [1, 2, 3])


# Words of each verb's own --help that no other verb's help holds: its options, sub-verbs and
# terms. A verb whose help loses one fails; a word that another verb's help also holds fails too
# (it would not tell the two apart).
VERB_WORDS = {
    "data": ("validate", "subset", "statistics"),
    "label": ("--detector", "--pose-model", "--frames-dir", "--det-flip"),
    "label-merge": ("--allow-missing", "shards", "unsharded"),
    "label-models": ("sha256", "licence"),
    "lift": ("mocap", "subjects"),
    "train": ("--resume", "--eval-set", "KEY=VALUE"),
    "self-label": ("agree", "averaged", "stored_downscale"),
    "soup": ("Wortsman", "architecture"),
    "eval": ("--gt", "--pred", "--max-detections", "--skip-bad-images"),
    "predict": ("--track", "--smooth", "--overlay", "--root-depth"),
    "export": ("--opset", "--format", "--tolerance", "--check-images"),
    "demo": ("--no-mvor", "--teacher-preset", "--unlabelled-images"),
    "experiment": ("--dry-run", "--only"),
    "bench": ("--warmup", "--runtimes", "--people"),
    "adapt": ("--oversample", "--pool"),
}


def _has_word(text: str, word: str) -> bool:
    return re.search(rf"(?<![\w-]){re.escape(word)}(?![\w-])", text) is not None


def test_cli_lists_each_pipeline_verb_on_its_own_line():
    out = subprocess.run([sys.executable, "-m", "orpose.cli", "--help"], capture_output=True,
                         text=True, check=True).stdout  # fmt: skip
    listed = re.findall(r"^ {4}(\S+)", out, flags=re.MULTILINE)
    assert listed == list(VERB_WORDS)  # each verb once, in the pipeline's order


def test_each_verb_help_holds_its_own_words(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "1000")  # one line per paragraph: no word split at a hyphen
    helps = {}
    for verb in VERB_WORDS:
        assert main([verb, "--help"]) == 0
        helps[verb] = capsys.readouterr().out
        assert helps[verb].startswith(f"usage: orpose {verb} "), verb
    for verb, words in VERB_WORDS.items():
        missing = [w for w in words if not _has_word(helps[verb], w)]
        assert missing == [], f"orpose {verb} --help lost {missing}"
        for other, text in helps.items():
            shared = [w for w in words if other != verb and _has_word(text, w)]
            assert shared == [], f"{shared} of orpose {verb} --help also in orpose {other}'s"


def test_data_check_and_show(tmp_path, capsys):
    path = tiny_dataset_json(tmp_path)
    assert main(["data", "check", str(path)]) == 0
    assert "valid; 2 images" in capsys.readouterr().out
    assert main(["data", "show", str(path), "--out", str(tmp_path / "viz")]) == 0
    assert len(list((tmp_path / "viz").glob("*.png"))) == 2


def test_data_check_reports_a_bad_file_in_one_line(tmp_path, capsys):
    path = tiny_dataset_json(tmp_path)
    data = json.loads(path.read_text())
    data["annotations"][0]["keypoints"] = data["annotations"][0]["keypoints"][:30]
    path.write_text(json.dumps(data))
    assert main(["data", "check", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0
    assert "tiny.json: annotation id 11: field 'keypoints': expected 17 keypoints" in err


def test_downscale_writes_small_images_only(tmp_path):
    import cv2

    src = tmp_path / "src"
    src.mkdir()
    cv2.imwrite(str(src / "a.png"), np.zeros((480, 640, 3), np.uint8))
    assert main(["data", "downscale", str(src), "--scale", "12", "--out", str(tmp_path / "o")]) == 0
    assert cv2.imread(str(tmp_path / "o" / "a.png")).shape == (40, 53, 3)


def test_data_subset_keeps_the_first_images_with_absolute_paths(tmp_path):
    from orpose.data.coco import load_pose_dataset

    path = tiny_dataset_json(tmp_path)
    out = tmp_path / "elsewhere" / "sub.json"
    assert main(["data", "subset", str(path), "--num", "1", "--out", str(out)]) == 0
    sub = load_pose_dataset(out, check_images=True)
    assert [img["id"] for img in sub.images] == [1]
    assert [a["id"] for a in sub.annotations] == [11]
    assert sub.image_path(1).is_absolute()
