"""``orpose lift``: clear one-line errors, and a tiny train + eval run end to end."""

from __future__ import annotations

import json

import pytest
import torch

from orpose import paths
from orpose.cli import main


@pytest.fixture(autouse=True)
def _one_thread():
    """``orpose lift`` sets the thread count of the process: give the other tests theirs back."""
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def test_eval_of_a_missing_checkpoint_is_one_clear_line(tmp_path, capsys):
    assert main(["lift", "eval", str(tmp_path / "missing.pt")]) == 2
    err = capsys.readouterr().err.strip()
    assert "missing.pt" in err and len(err.splitlines()) == 1


def test_train_on_a_missing_folder(tmp_path, capsys):
    code = main(
        [
            "lift",
            "train",
            "--mocap",
            str(tmp_path / "nope"),
            "--out",
            str(tmp_path / "l.pt"),
            "--no-progress",
        ]
    )
    assert code == 2
    assert "nope" in capsys.readouterr().err


def test_train_on_a_malformed_bvh_names_the_file(tmp_path, capsys):
    folder = tmp_path / "bvh"
    folder.mkdir()
    (folder / "01_01.bvh").write_text("HIERARCHY\nROOT Hips\n{\n")
    code = main(
        ["lift", "train", "--mocap", str(folder), "--out", str(tmp_path / "l.pt"), "--no-progress"]
    )
    assert code == 2
    assert "01_01.bvh" in capsys.readouterr().err


@pytest.mark.shared
def test_tiny_train_then_eval(tmp_path, capsys):
    shared = paths.shared_data("mocap/cmu_bvh/09", required=False)
    mvor = paths.shared_data("mvor/camma_mvor_2018.json", required=False)
    if shared is None or mvor is None:
        pytest.skip("shared mocap/MVOR data not found (set ORPOSE_SHARED to the shared folder)")
    folder = tmp_path / "bvh"
    folder.mkdir()
    # Two short running clips, named as two subjects so that one can be held out.
    (folder / "09_01.bvh").write_bytes((shared / "09_01.bvh").read_bytes())
    (folder / "10_01.bvh").write_bytes((shared / "09_02.bvh").read_bytes())
    out = tmp_path / "run" / "lifter.pt"
    code = main(
        [
            "lift",
            "train",
            "--mocap",
            str(folder),
            "--out",
            str(out),
            "--epochs",
            "2",
            "--hidden",
            "32",
            "--test-subjects",
            "10",
            "--no-progress",
        ]
    )
    assert code == 0, capsys.readouterr().err
    assert out.is_file() and (out.parent / "mocap_cache.npz").is_file()
    code = main(["lift", "eval", str(out), "--max-samples", "100", "--mvor", str(mvor)])
    assert code == 0, capsys.readouterr().err
    text = capsys.readouterr().out
    assert "MVOR real 3D, all cameras" in text and "mocap hold-out, ground-truth 2D" in text
    report = json.loads(out.with_suffix(".eval.json").read_text())
    rows = {r["name"]: r for r in report["rows"]}
    assert rows["MVOR real 3D, all cameras"]["n"] == 3 * 1061
    assert rows["mocap hold-out, ground-truth 2D"]["mpjpe_upper_mm"] > 0
