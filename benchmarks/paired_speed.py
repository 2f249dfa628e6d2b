"""The student's speed-up over the teacher measured in alternation, frame by frame.

usage: python benchmarks/paired_speed.py CHECKPOINT [--count 30] [--rounds 3] [--threads 2]

``orpose bench`` times one row after another; on a shared or throttled CPU, a slow minute then
lands on one row only, and rows doing the same work can differ by 15% or more. Here the single-
pass teacher, the full teacher and the student (ONNX Runtime, the exported graphs) each run once
per frame, in an order that rotates every frame, so that slow periods hit all of them alike. It
prints each model's median latency and the median over frames of the per-frame ratios (teacher
ms / student ms), the same frames and people thresholds as ``orpose bench``.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("checkpoint", type=Path)
    p.add_argument("--frames", type=Path, default=None, help="video or folder (default: PETS)")
    p.add_argument("--count", type=int, default=30, help="frames per round")
    p.add_argument("--rounds", type=int, default=3, help="passes over the frames")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()

    import torch

    from orpose.checkpoints.student import load_student
    from orpose.paths import models_dir, shared_dir
    from orpose.student.predictor import set_min_person_score
    from orpose.teacher.teacher import Teacher
    from orpose.workflow.bench import (
        load_frames,
        student_runners,
        teacher_config,
    )

    torch.set_num_threads(args.threads)
    source = args.frames or shared_dir() / "data/pets09_s2l1/vtest_480x360.avi"
    frames = load_frames(source, args.count)
    single = Teacher.from_config(teacher_config("single"), models_dir(), threads=args.threads)
    model = load_student(args.checkpoint)
    model = set_min_person_score(model, single.config.min_person_score)
    with tempfile.TemporaryDirectory() as tmp:
        (student,) = student_runners(model, "student", ("onnxruntime",), args.threads,
                                     Path(tmp), frames[0], frames[0])  # fmt: skip
        runs = {
            "teacher single": single.label,
            "teacher full": Teacher.from_config(
                teacher_config("full"), models_dir(), threads=args.threads
            ).label,
            "student": student.run,
        }
        names = list(runs)
        for name in names:  # warm-up
            runs[name](frames[0])
        ms: dict[str, list[float]] = {n: [] for n in names}
        people: dict[str, list[int]] = {n: [] for n in names}
        k = 0
        for _ in range(args.rounds):
            for frame in frames:
                for name in names[k % 3 :] + names[: k % 3]:
                    start = time.perf_counter()
                    out = runs[name](frame)
                    ms[name].append((time.perf_counter() - start) * 1000.0)
                    people[name].append(len(out))
                k += 1
    for name in names:
        p90 = np.percentile(ms[name], 90)
        print(f"{name:15s} median {np.median(ms[name]):7.1f} ms  p90 {p90:7.1f} ms  "
              f"{np.mean(people[name]):.1f} people")  # fmt: skip
    s = np.array(ms["student"])
    for teacher in ("teacher single", "teacher full"):
        ratio = np.array(ms[teacher]) / s
        print(f"student vs {teacher}: median per-frame ratio {np.median(ratio):.2f}x "
              f"(quartiles {np.percentile(ratio, 25):.2f}-{np.percentile(ratio, 75):.2f}), "
              f"ratio of medians {np.median(ms[teacher]) / np.median(s):.2f}x")  # fmt: skip
    print(f"{len(s)} paired frames ({args.rounds} rounds of {len(frames)}), {args.threads} threads")


if __name__ == "__main__":
    main()
