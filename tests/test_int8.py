"""``orpose export --int8``: static QDQ int8 copies of the CPU student's graphs, calibrated on
training frames, checked against fp32 on real photos, loaded by ``predict`` and ``bench``."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
import torch

from orpose.cli import main
from orpose.data.lowres import downsample
from orpose.data.sources import list_images, read_image_rgb
from orpose.export.agreement import compare_graphs
from orpose.export.cli import DEFAULT_INT8_TOLERANCE, INT8_MAX_UNPAIRED
from test_hostile_inputs import one_error_line

CALIBRATION = "coco_person_unlabeled300/images"


@pytest.fixture(scope="module")
def exported(shared, val500, tmp_path_factory):
    """The CPU student (its pretrained start, small lifters, one crop size: a third of the
    graph for ONNX Runtime's quantizer, whose time grows faster than the graph) through
    ``orpose export --int8`` on 4 calibration frames, checked on 2 photos."""
    from orpose.checkpoints import save_student
    from orpose.student.topdown import TopDownConfig, TopDownStudent

    torch.manual_seed(0)
    config = TopDownConfig(lifter_config={"hidden": 32}, small_crop_max_height=0,
                           middle_crop_max_height=0)  # fmt: skip
    student = TopDownStudent(config).eval()
    folder = tmp_path_factory.mktemp("int8")
    checkpoint = save_student(student, folder / "student.pt")
    argv = ["export", str(checkpoint), "--out", str(folder / "out"), "--int8",
            "--calibration", str(shared / "data" / CALIBRATION), "--calibration-count", "4",
            "--check-count", "2"]  # fmt: skip
    assert main(argv) == 0
    return folder / "out"


@pytest.fixture(scope="module")
def photos(val500):
    return list_images(val500.parent / "images")[:3]


def test_int8_files_hold_qdq_nodes_and_int8_weights(exported):
    for name in ("student.int8.onnx", "student.int8_native.onnx"):
        model = onnx.load(str(exported / name))
        ops = {n.op_type for n in model.graph.node}
        assert {"QuantizeLinear", "DequantizeLinear"} <= ops, name
        int8 = [t for t in model.graph.initializer if t.data_type == onnx.TensorProto.INT8]
        assert len(int8) > 50, name  # per-channel int8 convolution weights
        fp32 = onnx.load(str(exported / name.replace(".int8", "")))
        assert not any(n.op_type == "QuantizeLinear" for n in fp32.graph.node)
    meta = json.loads((exported / "student.int8_native.json").read_text())
    assert meta == json.loads((exported / "student_native.json").read_text())


def test_int8_agrees_with_fp32_on_real_photos(exported, photos):
    """Within the tolerance ``orpose export`` states (the median keypoint, in pixels of the
    full-size photo), at 1x and on the native graph at 12x; the detector stays fp32, so the
    same people are found."""
    checks = [
        (exported / "student.onnx", exported / "student.int8.onnx", None, 1),
        (exported / "student_native.onnx", exported / "student.int8_native.onnx",
         lambda im: downsample(im, 12), 12),
    ]  # fmt: skip
    for fp32, int8, prepare, scale in checks:
        report = compare_graphs(fp32, int8, photos, prepare)
        assert report.people > 0, int8.name
        assert report.within(0.5) * scale <= DEFAULT_INT8_TOLERANCE, report.describe_int8("", scale)
        assert report.unpaired <= INT8_MAX_UNPAIRED * report.people
        assert np.median(report.box_iou) > 0.99


def test_predict_and_bench_load_the_int8_export(exported, photos, tmp_path, capsys):
    from orpose.inference.onnx_runner import OnnxStudentPair, load_onnx_student
    from orpose.workflow.bench import BenchPlan, prepare_export

    int8 = exported / "student.int8.onnx"
    pair = load_onnx_student(int8)
    assert isinstance(pair, OnnxStudentPair)
    assert pair.native.path.name == "student.int8_native.onnx"
    out = tmp_path / "pred"
    argv = ["predict", str(int8), *map(str, photos[:2]), "--out", str(out), "--no-progress"]
    assert main(argv) == 0
    assert json.loads((out / "results.json").read_text())
    argv += ["--downscale", "12", "--native-lowres", "--overwrite"]
    assert main(argv) == 0
    capsys.readouterr()
    frames = [read_image_rgb(p) for p in photos[:1]]
    rows = prepare_export(int8, BenchPlan(frames=photos[0]), frames)
    assert [r.row.variant for r in rows] == ["student.int8.onnx"] * 3
    assert "upsampled" in rows[1].row.input and "native" in rows[2].row.input  # privacy paths
    assert (rows[2].scale, rows[2].native) == (12, True)
    assert isinstance(rows[2].run(rows[2].frames[0]), list)  # runs; not timed here


def test_int8_beyond_tolerance_fails_and_removes_int8_files(exported, photos, tmp_path,
                                                            monkeypatch, capsys):  # fmt: skip
    """The check of ``orpose export --int8`` (its quantization replaced by copies of the int8
    files made above): a tolerance of 0 px fails, in one message, and no int8 file is left to be
    paired by ``orpose predict``."""
    import argparse
    import shutil

    from orpose.errors import UserError
    from orpose.export import cli, int8

    for name in ("student.onnx", "student_native.onnx", "student.int8.onnx",
                 "student.int8_native.onnx", "student.int8_native.json"):  # fmt: skip
        shutil.copy(exported / name, tmp_path / name)
    graphs = [int8.Int8Graph(tmp_path / "student.int8.onnx", 1, {}),
              int8.Int8Graph(tmp_path / "student.int8_native.onnx", 1, {})]  # fmt: skip
    monkeypatch.setattr(int8, "quantize_student", lambda *a, **k: graphs)
    args = argparse.Namespace(check_count=1, int8_tolerance=0.0)
    with pytest.raises(UserError, match=r"beyond --int8-tolerance 0 px.*int8 files removed"):
        fp32 = tmp_path / "student.onnx"
        cli._write_int8(fp32, fp32, 160, photos, photos[0].parent, args)
    assert not list(tmp_path.glob("*.int8*"))
    assert (tmp_path / "student.onnx").is_file()
    capsys.readouterr()


def test_bad_int8_options_exit_2_with_one_line(shared, tmp_path, capsys):
    """Refused before any model is loaded (the checkpoint named here does not exist): argparse's
    error for values, one line for the rest."""
    ckpt = str(tmp_path / "missing.pt")
    base = ["export", ckpt, "--out", str(tmp_path / "out")]
    images = shared / "data"
    for option, value in (("--calibration-count", "0"), ("--calibration-count", "nan"),
                          ("--calibration-count", "2.5"), ("--int8-tolerance", "nan"),
                          ("--int8-tolerance", "-1"), ("--calibration", "")):  # fmt: skip
        assert main([*base, "--int8", option, value]) == 2
        last = capsys.readouterr().err.strip().splitlines()[-1]  # argparse: usage, then one line
        assert last.startswith(f"orpose export: error: argument {option}"), last
    cases = [
        (["--int8", "--calibration", str(tmp_path / "nowhere")], "no such folder"),
        (["--calibration", str(images / CALIBRATION)], "only with --int8"),
        (["--int8", "--format", "torchscript"], "--format onnx"),
        (["--int8", "--calibration", str(images / "coco_person_val500" / "images")],
         "evaluation image"),
    ]  # fmt: skip
    for extra, needle in cases:
        assert main([*base, *extra]) == 2, extra
        one_error_line(capsys.readouterr().err, "export", needle)
    argv = ["export", "random:resnet18_fpn", "--out", str(tmp_path / "rcnn"), "--int8"]
    assert main(argv) == 2  # the calibration frames pass; the model is no CPU student
    one_error_line(capsys.readouterr().err, "export", "only the CPU student")
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main([*base, "--int8", "--calibration", str(empty)]) == 2
    one_error_line(capsys.readouterr().err, "export", "holds no image")
