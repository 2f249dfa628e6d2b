"""The cost of each person in fp32 and in int8: the CPU student forced to pose exactly 1, 5, 10
and 20 people per frame, exported, quantized as ``orpose export --int8`` does, and every graph
timed in alternation on the same frames (issue 29: "the people sweep measured for fp32 and
int8").

    python benchmarks/int8_people.py CHECKPOINT [--frames VIDEO] [--count 10] [--people 1 5 10 20]

``orpose bench`` builds its forced-people graphs at run time, and quantizing each of them is
minutes of calibration, so the int8 sweep lives here. Calibration: the default frames of
``orpose export --int8`` (32 spread over the shared training sources). Timing: every graph on
frame i (in an order that rotates) before any on frame i+1, each turn opened by one untimed
call, all sessions on one shared thread pool (as ``orpose bench``). It prints the median ms per
frame of each graph, each count's ratio to one person, and int8 / fp32 per count.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

from orpose.workflow.bench import BenchRow, Timed, load_frames, machine, time_interleaved


def forced_graphs(checkpoint: str, counts: list[int], folder: Path, calibration: list[Path]):
    """(count, fp32 path, int8 path) of the student forced to pose ``count`` people."""
    import numpy as np

    from orpose.export.export import export_onnx
    from orpose.export.int8 import int8_path, quantize_student
    from orpose.predictor import fix_people, image_tensor, resolve_student

    sample = image_tensor(np.zeros((480, 640, 3), np.uint8))
    out = []
    for count in counts:
        model = fix_people(resolve_student(checkpoint), count)
        fp32 = export_onnx(model, folder / f"people_{count}.onnx", sample)
        flat = export_onnx(model, folder / f"people_{count}_flat.onnx", sample,
                           skip_empty_crops=False)  # what int8 quantizes  # fmt: skip
        quantize_student(fp32, calibration, flat_graph=flat)  # the full graph only (no native)
        out.append((count, fp32, int8_path(fp32)))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint")
    parser.add_argument("--frames", type=Path, default=None, help="[the shared PETS video]")
    parser.add_argument("--count", type=int, default=10, help="timed frames per graph [10]")
    parser.add_argument("--people", type=int, nargs="+", default=[1, 5, 10, 20])
    args = parser.parse_args()
    if args.count < 1 or any(n < 1 for n in args.people):
        parser.error("--count and every --people count must be >= 1")
    args.people = sorted(set(args.people))

    from orpose.export.int8 import calibration_images, default_calibration_sources
    from orpose.inference.onnx_runner import OnnxStudent
    from orpose.onnx_session import share_one_thread_pool
    from orpose.paths import shared_data

    frames = load_frames(args.frames or shared_data("pets09_s2l1/vtest_480x360.avi"), args.count)
    calibration = calibration_images(default_calibration_sources(), 32)
    with tempfile.TemporaryDirectory(prefix="orpose_int8_people_") as tmp:
        graphs = forced_graphs(args.checkpoint, args.people, Path(tmp), calibration)
        share_one_thread_pool(0)  # after quantizing: its calibration sessions have their own
        timed = []
        for count, fp32, int8 in graphs:
            for kind, path in (("fp32", fp32), ("int8", int8)):
                row = BenchRow("student", kind, "onnxruntime", "640x480", str(count), 0.0, 0.0)
                timed.append(Timed(row, OnnxStudent(path), frames, lambda people: (0.0, 0.0)))
        time_interleaved(timed, warmup=2)
    info = machine()
    print(f"machine: {info['cpu']}, {info['logical_cpus']} logical CPUs; {args.count} frames")
    median = {(t.row.variant, int(t.row.people)): statistics.median(t.row.latencies_ms)
              for t in timed}  # fmt: skip
    one = {kind: median[(kind, args.people[0])] for kind in ("fp32", "int8")}
    first = args.people[0]
    print(f"people  fp32 ms  (x {first})  int8 ms  (x {first})  int8 / fp32")
    for count in args.people:
        f, i = median[("fp32", count)], median[("int8", count)]
        print(f"{count:6d}  {f:7.1f}  ({f / one['fp32']:.2f})  {i:7.1f}  ({i / one['int8']:.2f})"
              f"  {i / f:.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
