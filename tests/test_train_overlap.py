"""``orpose train`` refuses a training set that holds an image of an evaluation set (the same
file content under any name), unless ``--allow-eval-overlap``; ``orpose adapt`` forwards it."""

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

import orpose.data.overlap as overlap
from orpose.cli import main
from orpose.data.overlap import (
    EvalOverlapError,
    check_eval_overlap,
    find_eval_overlap,
    protected_eval_sets,
)
from orpose.workflow.adapt import AdaptOptions, adapt_steps


def png_bytes(seed: int) -> bytes:
    """A small image file (PNG bytes); different seeds, different bytes of the same length."""
    import cv2

    pixels = np.random.default_rng(seed).integers(0, 256, (12, 16, 3), dtype=np.uint8)
    ok, data = cv2.imencode(".png", pixels, [cv2.IMWRITE_PNG_COMPRESSION, 0])
    assert ok
    return data.tobytes()


def write_images(folder: Path, names_and_seeds: dict[str, int]) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, seed in names_and_seeds.items():
        (folder / name).write_bytes(png_bytes(seed))
        paths.append(folder / name)
    return paths


def coco_file(path: Path, names: list[str]) -> Path:
    """A COCO file listing ``names`` (images/ beside it), one person each."""
    images = [{"id": i + 1, "file_name": n, "width": 16, "height": 12} for i, n in enumerate(names)]
    anns = [{"id": i + 1, "image_id": i + 1, "category_id": 1, "bbox": [1.0, 1.0, 8.0, 8.0],
             "area": 64.0, "iscrowd": 0, "keypoints": [0] * 51, "num_keypoints": 0}
            for i in range(len(names))]  # fmt: skip
    path.write_text(json.dumps({"images": images, "annotations": anns}))
    return path


def train_config(tmp_path: Path, train: list[Path]) -> Path:
    cfg = {
        "student": {"backbone": "resnet18_fpn", "head_convs": [16, 16]},
        "data": {"train": [str(p) for p in train]},
        "solver": {"iterations": 1, "steps": [], "warmup_iterations": 1},
    }
    path = tmp_path / "train.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.fixture
def no_shared(tmp_path, monkeypatch):
    """No shared folder: only the sets named on the command line are protected."""
    monkeypatch.setenv("ORPOSE_SHARED", str(tmp_path / "no_shared_here"))
    assert protected_eval_sets() == []


@pytest.fixture
def fake_trainer(monkeypatch):
    """Training itself is not under test: a trainer that records that it was asked to run."""
    ran = []

    class Fake:
        def __init__(self, config, out, device):
            self.out = out

        def run(self, resume=False):
            ran.append(self.out)
            return self.out / "last.pt"

    monkeypatch.setattr("orpose.training.cli.trainer_class", lambda config: Fake)
    return ran


@pytest.fixture
def sets(tmp_path):
    """A training file whose 2 of 3 images are evaluation images renamed, and the eval folder."""
    write_images(tmp_path / "eval", {"e1.png": 1, "e2.png": 2, "e3.png": 3})
    write_images(tmp_path / "images", {"t1.png": 1, "t2.png": 7, "t3.png": 3})
    labels = coco_file(tmp_path / "labels.json", ["t1.png", "t2.png", "t3.png"])
    return labels, tmp_path / "eval"


def test_overlap_is_refused_with_exit_2_and_one_line(tmp_path, sets, no_shared, fake_trainer,
                                                     capsys):  # fmt: skip
    labels, evals = sets
    config = train_config(tmp_path, [labels])
    code = main(["train", str(config), "--eval-set", str(evals), "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err.splitlines() == [err]
    assert err.startswith(f"orpose train: error: {labels}: 2 training image(s)")
    assert "t1.png" in err and "e1.png" in err and "--allow-eval-overlap" in err
    assert fake_trainer == [] and not (tmp_path / "run").exists()  # refused before any work


def test_overlap_is_allowed_with_the_flag(tmp_path, sets, no_shared, fake_trainer, capsys):
    labels, evals = sets
    config = train_config(tmp_path, [labels])
    code = main(["train", str(config), "--eval-set", str(evals), "--out", str(tmp_path / "run"),
                 "--allow-eval-overlap"])  # fmt: skip
    assert code == 0
    assert fake_trainer == [tmp_path / "run"]
    assert "training on 2 image(s) of evaluation sets" in capsys.readouterr().err


def test_different_images_are_not_an_overlap(tmp_path, no_shared, fake_trainer, capsys):
    # same sizes (so they are hashed), different bytes
    write_images(tmp_path / "eval", {"a.png": 1, "b.png": 2})
    write_images(tmp_path / "images", {"a.png": 3, "b.png": 4})
    labels = coco_file(tmp_path / "labels.json", ["a.png", "b.png"])
    assert find_eval_overlap([labels], [tmp_path / "eval"]) == []
    config = train_config(tmp_path, [labels])
    code = main(["train", str(config), "--eval-set", str(tmp_path / "eval"),
                 "--out", str(tmp_path / "run")])  # fmt: skip
    assert code == 0 and fake_trainer == [tmp_path / "run"]
    assert "evaluation" not in capsys.readouterr().err


def test_the_shared_evaluation_sets_are_protected_by_default(tmp_path, monkeypatch):
    shared = tmp_path / "shared"
    write_images(shared / "data/mvor/images/day4/cam3/color", {"000001.png": 5})
    write_images(shared / "data/coco_person_val500/images", {"v.png": 6})
    coco_file(shared / "data/coco_person_val500/person_keypoints.json", ["v.png"])
    monkeypatch.setenv("ORPOSE_SHARED", str(shared))
    assert protected_eval_sets() == [
        shared / "data/coco_person_val500/person_keypoints.json",
        shared / "data/mvor/images",
    ]
    write_images(tmp_path / "frames", {"cam.png": 5, "coco.png": 6, "own.png": 8})
    labels = coco_file(tmp_path / "frames/labels.json", ["cam.png", "coco.png", "own.png"])
    with pytest.raises(EvalOverlapError, match=r"labels\.json: 2 training image\(s\)"):
        check_eval_overlap([labels])
    found = check_eval_overlap([labels], allow=True)
    assert {(o.train_image.name, o.eval_image.name) for o in found} == {
        ("cam.png", "000001.png"), ("coco.png", "v.png")}  # fmt: skip


def test_counts_per_training_file_and_only_equal_sizes_are_hashed(tmp_path, monkeypatch):
    monkeypatch.setattr(overlap, "_DIGESTS", {})
    write_images(tmp_path / "eval", {"e1.png": 1, "e2.png": 2})
    (tmp_path / "eval" / "odd.png").write_bytes(b"not the size of any training image")
    write_images(tmp_path / "images", {"t1.png": 1, "t2.png": 2})
    first = coco_file(tmp_path / "first.json", ["t1.png"])
    second = coco_file(tmp_path / "second.json", ["t1.png", "t2.png"])
    found = find_eval_overlap([first, second, first], [tmp_path / "eval"])
    assert [(o.train_file.name, o.train_image.name, o.eval_image.name) for o in found] == [
        ("first.json", "t1.png", "e1.png"),
        ("second.json", "t1.png", "e1.png"),
        ("second.json", "t2.png", "e2.png"),
    ]
    hashed = {Path(key[0]).name for key in overlap._DIGESTS}
    assert hashed == {"e1.png", "e2.png", "t1.png", "t2.png"}  # odd.png's size matched nothing
    message = overlap.overlap_message(found)
    assert message.startswith(f"{first}: 1 training image(s)")
    assert "2 more in 1 other training file(s)" in message


def test_a_coco_evaluation_set_and_a_missing_one(tmp_path):
    write_images(tmp_path / "gt/images", {"g.png": 1})
    gt = coco_file(tmp_path / "gt/gt.json", ["g.png"])
    write_images(tmp_path / "images", {"t.png": 1})
    labels = coco_file(tmp_path / "labels.json", ["t.png"])
    assert [o.eval_set for o in find_eval_overlap([labels], [gt])] == [gt]
    with pytest.raises(overlap.UserError, match=r"nowhere\.json: evaluation set not found"):
        find_eval_overlap([labels], [tmp_path / "nowhere.json"])


def test_adapt_forwards_the_override_to_train(tmp_path, sets, no_shared, fake_trainer, capsys):
    """adapt's training step is an ``orpose train`` command line: refused on evaluation frames
    without the flag, run with it."""
    labels, evals = sets
    opts = AdaptOptions(tmp_path / "last.pt", [evals], tmp_path / "out", stored_downscale=12)
    refused, _ = adapt_steps(opts)
    opts.allow_eval_overlap = True
    allowed, _ = adapt_steps(opts)
    assert "--allow-eval-overlap" not in refused[1].argv
    assert allowed[1].argv[-1] == "--allow-eval-overlap"
    config = Path(refused[1].argv[1])
    config.parent.mkdir(parents=True)
    config.write_text(train_config(tmp_path, [labels]).read_text())
    eval_set = ["--eval-set", str(evals)]
    assert main([*refused[1].argv, *eval_set]) == 2
    assert "--allow-eval-overlap" in capsys.readouterr().err
    assert main([*allowed[1].argv, *eval_set]) == 0
    assert fake_trainer == [tmp_path / "out/student"]
