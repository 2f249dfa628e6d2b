"""Several OR cameras on one CPU box: separate ``orpose predict`` processes against one process
serving every camera (``orpose predict --concurrent``), in one run.

    python benchmarks/cameras.py MODEL VIDEO [--frames 20] [--cameras 3] [--rounds 2]

Each camera is the same video (its first ``--frames`` frames). Rows, each timed ``--rounds``
times in turn, figures from the frames/s each process prints (its frame loop, model loading
left out):
- one process, one camera (the reference);
- N processes side by side: with default settings (what a user does first: idle threads spin
  briefly, orpose.cpu_threads), with OpenMP's own default spin count (``GOMP_SPINCOUNT=300000``,
  what ``orpose predict`` ran with before), and with no spinning (``OMP_WAIT_POLICY=PASSIVE``);
- one process serving the N cameras.
It prints, per row, the frames/s of all cameras together and of one camera's share, and the
aim of issue 29: one process with N cameras >= 2.5x one camera's share when N processes run
side by side.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from orpose.workflow.bench import machine

FPS = re.compile(r"([0-9.]+) frames/s")


def predict(model: str, inputs: list[str], out: Path, frames: int, env: dict, extra=()) -> list:
    """Start one ``orpose predict`` process (not waited for)."""
    command = [sys.executable, "-m", "orpose.cli", "predict", model, *inputs, "--out", str(out)]
    command += ["--max-frames", str(frames), "--no-progress", "--overwrite", *extra]
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)  # fmt: skip


def fps_of(process) -> float:
    """The frames/s a finished predict process printed last (all cameras together)."""
    output, _ = process.communicate()
    if process.returncode != 0:
        raise SystemExit(f"orpose predict failed:\n{output[-2000:]}")
    return float(FPS.findall(output)[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model")
    parser.add_argument("video")
    parser.add_argument("--frames", type=int, default=20)
    parser.add_argument("--cameras", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    n = args.cameras
    chosen = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "KMP_BLOCKTIME")
    base = {k: v for k, v in os.environ.items() if k not in chosen}
    settings = (
        ("default", base),
        ("GOMP_SPINCOUNT=300000 (before)", {**base, "GOMP_SPINCOUNT": "300000"}),
        ("OMP_WAIT_POLICY=PASSIVE", {**base, "OMP_WAIT_POLICY": "PASSIVE"}),
    )
    rows: dict[str, list[tuple[float, float]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        for _ in range(args.rounds):
            one = fps_of(predict(args.model, [args.video], out / "one", args.frames, base))
            rows.setdefault("1 process, 1 camera", []).append((one, one))
            for label, env in settings:
                procs = [
                    predict(args.model, [args.video], out / f"p{i}", args.frames, env)
                    for i in range(n)
                ]
                each = [fps_of(p) for p in procs]
                key = f"{n} processes side by side, {label}"
                rows.setdefault(key, []).append((sum(each), statistics.mean(each)))
            links = []
            for i in range(n):  # copies of the video: n cameras (one file would be read once)
                copy = out / f"cam{i + 1}{Path(args.video).suffix}"
                if not copy.exists():
                    shutil.copyfile(args.video, copy)
                links.append(str(copy))
            together = fps_of(
                predict(args.model, links, out / "together", args.frames, base, ["--concurrent"])
            )
            rows.setdefault(f"1 process, {n} cameras (--concurrent)", []).append(
                (together, together / n)
            )
    info = machine()
    print(f"CPU: {info['cpu']}, {info['logical_cpus']} logical cores; model {args.model}")
    print(f"{args.frames} frames per camera, {args.rounds} round(s), median of the rounds")
    print("| setting | frames/s, all cameras | frames/s, one camera's share |")
    print("|---|---|---|")
    medians = {}
    for key, values in rows.items():
        total = statistics.median(v[0] for v in values)
        share = statistics.median(v[1] for v in values)
        medians[key] = (total, share)
        print(f"| {key} | {total:.2f} | {share:.2f} |")
    together = medians[f"1 process, {n} cameras (--concurrent)"][0]
    for label, _ in settings:
        share = medians[f"{n} processes side by side, {label}"][1]
        print(
            f"one process with {n} cameras / one camera's share of {n} processes ({label}): "
            f"{together / share:.2f}x (aim >= 2.5x)"
        )


if __name__ == "__main__":
    main()
