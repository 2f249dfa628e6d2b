"""``orpose soup``: one student whose weights are the mean of several students' weights."""

from __future__ import annotations

import hashlib

import pytest
import torch

from orpose.checkpoints.student import load_student, save_student
from orpose.commands import run
from orpose.errors import ModelError, UserError
from orpose.safe_checkpoint import read_checkpoint
from orpose.student import StudentConfig, build_student
from orpose.training.soup import soup_students


def _tiny(**changes) -> StudentConfig:
    values = dict(
        backbone="resnet18_fpn", box_head_size=64, head_convs=(16,), min_size=(64,),
        max_size=96, detections_per_img=2, box_score_thresh=0.0, lifter_config={"hidden": 16},
    )  # fmt: skip
    return StudentConfig(**{**values, **changes})


def _student(tmp_path, name: str, seed: int, **changes):
    """A tiny student of random weights (the seed decides them), batch-norm statistics moved
    off their defaults so that their average is checked too."""
    torch.manual_seed(seed)
    model = build_student(_tiny(**changes))
    with torch.no_grad():
        for buffer_name, buffer in model.named_buffers():
            if buffer.is_floating_point() and "running_" in buffer_name:
                buffer.add_(torch.rand_like(buffer))
            elif "num_batches_tracked" in buffer_name:
                buffer.fill_(seed + 7)
    return save_student(model, tmp_path / name)


def test_the_soup_is_the_mean_of_the_weights_and_loads_as_a_student(tmp_path):
    paths = [_student(tmp_path, f"s{seed}.pt", seed) for seed in (0, 1, 2)]
    out = soup_students(paths, tmp_path / "soup" / "last.pt")

    states = [read_checkpoint(p)["model"] for p in paths]
    soup = load_student(out).state_dict()  # loads like any student checkpoint
    floats = [k for k, v in soup.items() if v.is_floating_point()]
    assert any("running_var" in k for k in floats) and len(floats) > 50
    for key in floats:
        by_hand = (states[0][key] + states[1][key] + states[2][key]) / 3
        torch.testing.assert_close(soup[key], by_hand, rtol=1e-6, atol=1e-6)
    counters = [k for k, v in soup.items() if "num_batches_tracked" in k]
    assert counters and all(int(soup[k]) == 7 for k in counters)  # the first student's
    # the weights differ from each source: an average, not a copy
    key = floats[0]
    assert not torch.equal(soup[key], states[0][key])

    record = read_checkpoint(out)["soup"]
    assert [r["file"] for r in record] == ["s0.pt", "s1.pt", "s2.pt"]
    assert record[1]["sha256"] == hashlib.sha256(paths[1].read_bytes()).hexdigest()


def test_students_of_other_architectures_or_too_few_are_refused(tmp_path):
    a = _student(tmp_path, "a.pt", 0)
    b = _student(tmp_path, "b.pt", 1, head_convs=(8,))
    with pytest.raises(ModelError, match=r"b\.pt: field 'student_config\.head_convs' differs"):
        soup_students([a, b], tmp_path / "out.pt")
    with pytest.raises(UserError, match="at least two students"):
        soup_students([a], tmp_path / "out.pt")
    with pytest.raises(UserError, match="given twice"):
        soup_students([a, tmp_path / "." / "a.pt"], tmp_path / "out.pt")
    assert not (tmp_path / "out.pt").exists()


def test_the_verb_writes_the_soup_and_gives_one_line_on_a_bad_file(tmp_path, capsys):
    a, b = _student(tmp_path, "a.pt", 0), _student(tmp_path, "b.pt", 1)
    assert run(["soup", str(a), str(b), "--out", str(tmp_path / "soup.pt")]) == 0
    assert "weight average of 2 students" in capsys.readouterr().out
    assert load_student(tmp_path / "soup.pt") is not None

    (tmp_path / "broken.pt").write_bytes(b"not a checkpoint")
    assert run(["soup", str(a), str(tmp_path / "broken.pt"), "--out", str(tmp_path / "x.pt")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "broken.pt" in err[0] and "Traceback" not in err[0]
    assert not (tmp_path / "x.pt").exists()
