"""``orpose predict`` stopped by SIGTERM finishes the overlay video and writes its result files,
as Ctrl-C does (issue #12)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest


def write_video(path: Path, frames: int, size: tuple[int, int] = (64, 48)) -> None:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, size)
    for i in range(frames):
        writer.write(np.full((size[1], size[0], 3), (7 * i) % 256, np.uint8))
    writer.release()


def journal_lines(path: Path) -> int:
    return path.read_bytes().count(b"\n") if path.exists() else 0


@pytest.mark.slow
def test_sigterm_during_a_video_leaves_a_playable_overlay_and_the_result_files(tmp_path):
    video = tmp_path / "clip.avi"
    write_video(video, frames=60)
    out = tmp_path / "out"
    command = [
        sys.executable, "-m", "orpose.cli", "predict", "random:resnet18_fpn", str(video),
        "--overlay", "--out", str(out), "--no-progress", "--device", "cpu", "--threads", "1",
        "--proposals", "10", "--score-threshold", "0",
    ]  # fmt: skip
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while journal_lines(out / "predictions.jsonl") < 2 and proc.poll() is None:
            assert time.monotonic() < deadline, "orpose predict made no progress"
            time.sleep(0.05)
        assert proc.poll() is None, f"the run ended before the signal: {proc.communicate()}"
        os.kill(proc.pid, signal.SIGTERM)
        stdout, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, stderr
    assert "Traceback" not in stderr
    assert "stopped early (SIGTERM)" in stdout
    done = journal_lines(out / "predictions.jsonl")
    assert 2 <= done < 60
    images = json.loads((out / "images.json").read_text())["images"]
    assert [img["id"] for img in images] == list(range(1, done + 1))
    results = json.loads((out / "results.json").read_text())
    assert {r["image_id"] for r in results} <= set(range(1, done + 1))
    overlay = out / "overlays" / "clip_overlay.mp4"
    assert overlay.stat().st_size > 1000  # not the 44-byte header of an unfinished container
    capture = cv2.VideoCapture(str(overlay))
    frames = 0
    while capture.read()[0]:
        frames += 1
    capture.release()
    assert done - 1 <= frames <= done  # the signal may fall between journal and overlay
    assert "SIGTERM" in (out / "predict.log").read_text()
