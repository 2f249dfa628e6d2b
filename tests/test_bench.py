"""``orpose bench``: FLOP counters, timing statistics, the table, and a small end-to-end run."""

import json
from functools import partial

import cv2
import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from orpose.cli import main
from orpose.export.flops import onnx_macs, onnx_parameters, student_flops
from orpose.predictor import limit_proposals, save_student
from orpose.student import build_student
from orpose.workflow.bench import (
    BenchRow,
    Timed,
    add_speedups,
    format_table,
    lowres_ratios,
    teacher_cost,
    time_interleaved,
)
from test_inference_predict import TINY


def _graph(path) -> None:
    """Conv 3->8 (3x3, 16x16 out), ConvTranspose 8->4 (2x2 s2), Gemm 32x10, MatMul (4x5)@(5x6)."""
    weights = {
        "conv_w": np.ones((8, 3, 3, 3), np.float32),
        "deconv_w": np.ones((8, 4, 2, 2), np.float32),
        "gemm_w": np.ones((10, 32), np.float32),
        "mm_b": np.ones((5, 6), np.float32),
    }
    nodes = [
        helper.make_node("Conv", ["x", "conv_w"], ["c"], pads=[1, 1, 1, 1]),
        helper.make_node("ConvTranspose", ["c", "deconv_w"], ["d"], strides=[2, 2]),
        helper.make_node("Gemm", ["v", "gemm_w"], ["g"], transB=1),
        helper.make_node("MatMul", ["m", "mm_b"], ["mm"]),
    ]
    inputs = [
        helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 16, 16]),
        helper.make_tensor_value_info("v", TensorProto.FLOAT, [2, 32]),
        helper.make_tensor_value_info("m", TensorProto.FLOAT, [4, 5]),
    ]
    outputs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in ("d", "g", "mm")]
    initializers = [numpy_helper.from_array(v, k) for k, v in weights.items()]
    graph = helper.make_graph(nodes, "counted", inputs, outputs, initializers)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))


def test_onnx_counter_counts_each_multiply_accumulate_once(tmp_path):
    _graph(tmp_path / "g.onnx")
    conv = 16 * 16 * 8 * 3 * 3 * 3
    deconv = 16 * 16 * 8 * 4 * 2 * 2  # every input pixel scattered into a 2x2 patch per output
    gemm, matmul = 2 * 10 * 32, 4 * 6 * 5
    assert onnx_macs(tmp_path / "g.onnx") == conv + deconv + gemm + matmul
    assert onnx_parameters(tmp_path / "g.onnx") == 8 * 27 + 8 * 16 + 320 + 30


def test_student_flops_grow_with_the_people_in_the_keypoint_head():
    torch.manual_seed(0)
    model = limit_proposals(build_student(TINY).eval(), 50)
    image = torch.rand(3, 96, 128)
    one, two = student_flops(model, image, persons=1), student_flops(model, image, persons=2)
    assert one.counter == "fvcore" and one.total > 0
    assert set(one.parts) >= {"backbone", "rpn", "box_head", "keypoint_head", "lifters"}
    assert two.parts["backbone"] == one.parts["backbone"]
    per_person = two.parts["keypoint_head"] - one.parts["keypoint_head"]
    # the head's 16-channel 3x3 conv on 14x14 RoIs, then the 16->17 4x4 deconvolutions
    assert per_person >= 14 * 14 * 16 * 256 * 9


def test_rows_are_timed_in_alternation_and_counted_after():
    calls = []

    def runner(name):
        return lambda frame: calls.append((name, frame)) or [None] * frame

    def cost(people, name):
        return float(len(name)), float(people)

    def timed(name):
        row = BenchRow("teacher", name, "onnxruntime", "640x480", "detected", 0.0, 0.0)
        return Timed(row, runner(name), [1, 2, 3], partial(cost, name=name))

    rows = [timed("a"), timed("bb")]
    rows[1].forced_people = 5
    time_interleaved(rows, warmup=1, block=2, progress=False)
    # one warm-up each; then per block of 2 frames each row in turn, starting one row later each
    # block, its turn opened by an untimed call on the block's first frame
    assert calls == [("a", 1), ("bb", 1),
                     ("a", 1), ("a", 1), ("a", 2), ("bb", 1), ("bb", 1), ("bb", 2),
                     ("bb", 3), ("bb", 3), ("a", 3), ("a", 3)]  # fmt: skip
    a, b = (t.finish() for t in rows)
    assert len(a.latencies_ms) == 3 and a.people_per_frame == 2.0
    assert (a.params_m, a.gflops) == (1.0, 2.0)  # counted at the people it saw
    assert (b.params_m, b.gflops) == (2.0, 5.0)  # or at the people it was forced to


def test_latency_statistics_table_and_ratios():
    full = "640x480"
    teacher = BenchRow("teacher", "full", "onnxruntime", full, "detected", 2.4, 1.8,
                       [100.0, 200.0, 300.0, 400.0])  # fmt: skip
    single = BenchRow("teacher", "single", "onnxruntime", full, "detected", 2.4, 1.0,
                      [75.0, 75.0])  # fmt: skip
    student = BenchRow("student", "cpu", "onnxruntime", full, "detected", 3.0, 5.0,
                       [50.0, 50.0, 50.0, 150.0])  # fmt: skip
    low = BenchRow("student", "cpu", "onnxruntime", "53x40 (12x, native)", "detected", 3.0,
                   0.5, [10.0, 10.0])  # fmt: skip
    add_speedups([teacher, single, student, low])
    assert student.median_ms == 50.0 and student.p90_ms == pytest.approx(120.0)
    assert student.fps == pytest.approx(1000 / 75)
    assert student.speedup == {"full": pytest.approx(5.0), "single": pytest.approx(1.5)}
    assert lowres_ratios([student, low]) == {"cpu onnxruntime native": pytest.approx(0.2)}
    table = format_table([teacher, single, student, low])
    assert "x teacher single" in table and "x teacher full" in table and "5.00" in table


@pytest.mark.shared
def test_teacher_cost_counts_views_and_people(shared):
    from orpose.teacher.teacher import Teacher
    from orpose.workflow.bench import teacher_config

    single = Teacher.from_config(teacher_config("single"), shared / "models")
    full = Teacher.from_config(teacher_config("full"), shared / "models")
    params, gflops = teacher_cost(single, persons=0)
    assert params == pytest.approx(2.45, abs=0.05)  # PicoDet-S + TinyPose 256x192
    assert teacher_cost(single, persons=2)[1] > gflops
    # full: 1 view + 4 tiles, each also flipped (10 detector runs), 4 pose runs per person
    assert teacher_cost(full, persons=0)[1] == pytest.approx(10 * gflops)


def _tiny_checkpoint_and_frames(tmp_path):
    """A tiny random student's checkpoint and a folder of one frame."""
    torch.manual_seed(0)
    checkpoint = save_student(build_student(TINY), tmp_path / "tiny.pt")
    frames = tmp_path / "frames"
    frames.mkdir()
    cv2.imwrite(str(frames / "f.png"), np.full((120, 160, 3), 90, np.uint8))
    return checkpoint, frames


def test_bench_cli_on_a_checkpoint(tmp_path, capsys, monkeypatch):
    # the CLI asks for one thread pool for the whole process: not for pytest's process, whose
    # later tests make sessions of their own (the pool is tested in test_onnx_session.py)
    asked = []
    monkeypatch.setattr("orpose.onnx_session.share_one_thread_pool",
                        lambda threads: asked.append(threads) or True)  # fmt: skip
    checkpoint, frames = _tiny_checkpoint_and_frames(tmp_path)
    out = tmp_path / "bench.json"
    options = "--count 1 --warmup 0 --students --teacher --people"
    args = ["--frames", str(frames), "--checkpoint", str(checkpoint), "--out", str(out)]
    code = main(["bench", *args, *options.split()])
    assert code == 0
    report = json.loads(out.read_text())
    rows = {(r["variant"], r["runtime"], r["input"]) for r in report["rows"]}
    assert rows == {
        (name, runtime, size)
        for name in ("tiny",)
        for runtime in ("pytorch", "onnxruntime")
        for size in ("640x480", "640x480 (12x, upsampled)")
    }
    assert all(r["gflops"] > 0 and r["median_ms"] > 0 for r in report["rows"])
    assert report["paper"]["student"]["gflops"] == 215.0 and "cpu" in report["machine"]
    assert "tiny" in capsys.readouterr().out
    assert asked == [0] and report["settings"]["shared_pool"]


def test_bench_asked_for_a_gpu_without_one_says_so_and_times_the_cpu(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("orpose.onnx_session.share_one_thread_pool", lambda threads: True)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    checkpoint, frames = _tiny_checkpoint_and_frames(tmp_path)
    out = tmp_path / "bench.json"
    options = "--count 1 --warmup 0 --students --teacher --people --runtimes pytorch --device cuda"
    args = ["--frames", str(frames), "--checkpoint", str(checkpoint), "--out", str(out)]
    assert main(["bench", *args, *options.split()]) == 0
    assert "no CUDA GPU on this machine; the GPU rows are skipped" in capsys.readouterr().out
    assert {r["runtime"] for r in json.loads(out.read_text())["rows"]} == {"pytorch"}


@pytest.mark.shared
def test_bench_scores_each_timed_row_beside_its_speed(tmp_path, capsys, monkeypatch, val500):
    """``--accuracy``: every row that poses the people it detects (not the forced sweep) gets
    box AP / keypoint AP / MPJPE on each set, at its own factor, in the table and the report."""
    monkeypatch.setattr("orpose.onnx_session.share_one_thread_pool", lambda threads: True)
    checkpoint, frames = _tiny_checkpoint_and_frames(tmp_path)
    out = tmp_path / "bench.json"
    options = "--count 1 --warmup 0 --students --teacher --people 2 --runtimes onnxruntime"
    args = ["--frames", str(frames), "--checkpoint", str(checkpoint), "--out", str(out),
            "--accuracy", str(val500), "--accuracy-count", "1"]  # fmt: skip
    assert main(["bench", *args, *options.split()]) == 0
    assert "person_keypoints: box / kpt AP / mm" in capsys.readouterr().out
    rows = json.loads(out.read_text())["rows"]
    scored = {r["input"]: r["accuracy"] for r in rows if r["people"] == "detected"}
    assert set(scored) == {"640x480", "640x480 (12x, upsampled)"}
    for accuracy in scored.values():
        assert set(accuracy["person_keypoints"]) == {"box_ap", "keypoint_ap", "mpjpe_mm"}
        assert 0 <= accuracy["person_keypoints"]["box_ap"] <= 100
    assert [r["accuracy"] for r in rows if r["people"] == "2"] == [{}]


def test_accuracy_options_without_sets_are_refused(tmp_path, capsys):
    from test_bad_inputs import one_error_line

    out = tmp_path / "bench.json"
    assert main(["bench", "--lifter", str(tmp_path / "l.pt"), "--out", str(out)]) == 2
    one_error_line(capsys.readouterr().err, "bench", "--lifter and --accuracy-count apply to")
    assert not out.exists()


def test_a_row_told_its_factor_still_lifts_with_the_sets_camera():
    """The 12x (and 1x) rows of a student that picks its detector by the factor are wrapped to
    pass it; the accuracy pass must still reach the runner's camera through the wrapper, and a
    runner without a camera (an exported graph) must still read as having none."""
    from orpose.workflow.bench import BoundRunner, at_factor
    from orpose.workflow.bench_accuracy import lifting_camera

    class Runner:
        accepts_factor = True
        camera = None

        def __call__(self, image, factor=None):
            return [factor, self.camera]

    inner = Runner()
    run = at_factor(inner, 12, native=False)
    assert isinstance(run, BoundRunner) and run.accepts_factor and run("img") == [12.0, None]
    with lifting_camera(run, "500,500,320,240"):
        factor, camera = run("img")
        assert factor == 12.0 and camera is not None and camera.fx == 500
    assert inner.camera is None and at_factor(inner, 12, native=True) is inner
    assert not hasattr(BoundRunner(lambda image: []), "camera")
