"""Files that would run code, and broken files, are refused by every verb that reads a model:
exit code 2, one line naming the file, no traceback, nothing executed, finished files unchanged."""

from __future__ import annotations

import os
import pickle
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from orpose.checkpoints import read_checkpoint
from orpose.cli import main
from orpose.errors import ModelError


class _RunsCode:
    """Unpickling this calls os.system: what a hostile checkpoint does."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _hostile_files(tmp_path: Path) -> dict[str, Path]:
    marker = tmp_path / "EXECUTED"
    files = {}
    files["torch_zip"] = tmp_path / "hostile.pt"
    torch.save({"model": {}, "student_config": {}, "x": _RunsCode(marker)}, files["torch_zip"])
    files["plain_pickle"] = tmp_path / "hostile.pkl"
    files["plain_pickle"].write_bytes(pickle.dumps({"model": _RunsCode(marker)}))
    good = tmp_path / "good.pt"
    torch.save({"model": {"w": torch.zeros(3)}, "student_config": {}}, good)
    files["truncated"] = tmp_path / "truncated.pt"
    files["truncated"].write_bytes(good.read_bytes()[:200])
    files["empty"] = tmp_path / "empty.pt"
    files["empty"].write_bytes(b"")
    files["text"] = tmp_path / "text.pt"
    files["text"].write_text("this is not a checkpoint\n")
    return files


def test_read_checkpoint_refuses_code_and_broken_files(tmp_path):
    for kind, path in _hostile_files(tmp_path).items():
        with pytest.raises(ModelError, match=str(path.name)):
            read_checkpoint(path)
        assert not (tmp_path / "EXECUTED").exists(), kind


def test_detectron2_style_numpy_pickles_still_load(tmp_path):
    path = tmp_path / "model_final.pkl"
    weights = {"model": {"backbone.bottom_up.stem.conv1.weight": np.ones((2, 3), np.float32)}}
    path.write_bytes(pickle.dumps(weights))
    loaded = read_checkpoint(path)
    assert np.array_equal(loaded["model"]["backbone.bottom_up.stem.conv1.weight"], np.ones((2, 3)))


def _one_line_error(capsys, path: Path) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert "Traceback" not in err[0] and path.name in err[0]
    return err[0]


@pytest.mark.parametrize("kind", ["torch_zip", "plain_pickle", "truncated", "empty", "text"])
def test_every_model_verb_refuses_in_one_line(tmp_path, capsys, kind):
    path = _hostile_files(tmp_path)[kind]
    image = tmp_path / "img.png"
    import cv2

    cv2.imwrite(str(image), np.full((48, 64, 3), 90, np.uint8))
    gt = tmp_path / "gt.json"
    gt.write_text('{"images": [{"id": 1, "file_name": "img.png", "width": 64, "height": 48}], '
                  '"annotations": []}')  # fmt: skip
    commands = [
        ["predict", str(path), str(image), "--out", str(tmp_path / "pred")],
        ["export", str(path), "--out", str(tmp_path / "export"), "--check-count", "0"],
        ["eval", "--gt", str(gt), "--model", str(path), "--out", str(tmp_path / "eval")],
    ]
    for argv in commands:
        assert main(argv) == 2, argv
        _one_line_error(capsys, path)
        assert not (tmp_path / "EXECUTED").exists()


def test_train_resume_refuses_a_hostile_last_checkpoint(tmp_path, capsys):
    from conftest import tiny_dataset_json

    data = tiny_dataset_json(tmp_path)
    out = tmp_path / "run"
    out.mkdir()
    hostile = _hostile_files(tmp_path)["torch_zip"]
    (out / "last.pt").write_bytes(hostile.read_bytes())
    config = tmp_path / "c.yaml"
    config.write_text(
        "student: {backbone: resnet18_fpn, head_convs: [8], min_size: [64], max_size: 96, "
        "box_head_size: 16, lifters: false}\n"
        f"data: {{train: [{data}]}}\nsolver: {{iterations: 1, batch_size: 1}}\n"
    )
    assert main(["train", str(config), "--out", str(out), "--resume"]) == 2
    _one_line_error(capsys, out / "last.pt")
    assert not (tmp_path / "EXECUTED").exists()
    assert (out / "last.pt").read_bytes() == hostile.read_bytes()  # left as it was


def test_picodet_file_is_verified_or_named_by_the_user(shared, tmp_path, monkeypatch):
    from orpose.student.onnx_backbone import PICODET_ENV, picodet_onnx_path

    real = shared / "models" / "picodet_s_320_lcnet_pedestrian.onnx"
    monkeypatch.delenv(PICODET_ENV, raising=False)
    assert picodet_onnx_path() == real
    tampered = tmp_path / "models" / real.name
    tampered.parent.mkdir()
    tampered.write_bytes(real.read_bytes()[:-1] + b"x")
    monkeypatch.setenv("ORPOSE_MODELS", str(tampered.parent))
    with pytest.raises(ModelError, match="sha256"):
        picodet_onnx_path()
    monkeypatch.setenv(PICODET_ENV, str(tampered))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert picodet_onnx_path() == tampered
    assert any("unverified" in str(w.message) for w in caught)
