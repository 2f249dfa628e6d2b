"""``orpose label``'s engine with a stand-in teacher: skips, sharding + merge, resume, kill."""

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

from orpose.cli import UserError
from orpose.data.coco import load_pose_dataset
from orpose.teacher.config import TeacherConfig
from orpose.teacher.labelling import Shard, output_paths, run_labelling
from orpose.teacher.teacher import Person
from orpose.teacher.writer import merge_label_files

TESTS_DIR = Path(__file__).resolve().parent


class FakeTeacher:
    """Deterministic persons derived from the pixels; optionally slow, to be killed mid-run."""

    def __init__(self, delay: float = 0.0) -> None:
        self.config = TeacherConfig(keypoint_threshold=0.5)
        self.delay = delay
        self.calls = 0

    def describe(self) -> dict:
        return {"config": self.config.to_dict(), "models": [{"name": "fake"}]}

    def label(self, image: np.ndarray) -> list[Person]:
        self.calls += 1
        time.sleep(self.delay)
        h, w = image.shape[:2]
        people = []
        for i in range(1 + int(image[0, 0, 0]) % 3):
            conf = (image[1, :17, 1].astype(float) + 37 * i) % 256 / 255.0
            xy = np.stack([np.linspace(2, w - 2, 17), np.full(17, h / 2 + i)], axis=1)
            box = np.array([1.0 + i, 2.0, w - 1.0, h - 2.0])
            people.append(Person(box, 0.9 - 0.1 * i, 0.9, np.column_stack([xy, conf])))
        return people


def make_inputs(root: Path, images: int = 6, frames: int = 12) -> tuple[Path, Path]:
    """A folder of small PNGs plus one corrupt file, and a short MJPG video."""
    rng = np.random.default_rng(0)
    folder = root / "imgs"
    folder.mkdir(parents=True)
    for i in range(images):
        cv2.imwrite(str(folder / f"im{i:02d}.png"), rng.integers(0, 255, (40, 56, 3), np.uint8))
    (folder / "im99_corrupt.jpg").write_bytes(b"\xff\xd8 this is not a jpeg")
    video = root / "clip.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 10, (64, 48))
    for i in range(frames):
        writer.write(np.full((48, 64, 3), 10 * i, np.uint8))
    writer.release()
    return folder, video


def content(path: Path) -> tuple[list, list, list]:
    data = json.loads(path.read_text())
    return data["images"], data["annotations"], data["info"]["skipped"]


@pytest.fixture
def inputs(tmp_path):
    return make_inputs(tmp_path / "in")


def test_label_writes_loadable_file_and_lists_corrupt_image(tmp_path, inputs):
    folder, video = inputs
    out = tmp_path / "run" / "labels.json"
    summary = run_labelling([folder, video], out, FakeTeacher(), video_step=5, progress=False)
    assert summary.images == 6 + 3 and summary.skipped == 1
    dataset = load_pose_dataset(out, check_images=True)  # the student can train on it
    assert len(dataset.images) == 9
    skipped = dataset.info["skipped"]
    assert len(skipped) == 1 and skipped[0]["key"].endswith("im99_corrupt.jpg")
    frames = [img for img in dataset.images if "frame_index" in img]
    assert [img["frame_index"] for img in frames] == [0, 5, 10]
    assert frames[0]["file_name"] == "labels_frames/clip/000000.jpg"
    assert (out.parent / "labels_frames" / "clip" / "000010.jpg").is_file()
    assert len({img["id"] for img in dataset.images}) == 9
    assert dataset.info["orpose"]["video_step"] == 5


def test_sharding_and_merge_equal_unsharded(tmp_path, inputs):
    folder, video = inputs
    whole = tmp_path / "one" / "labels.json"
    run_labelling([folder, video], whole, FakeTeacher(), video_step=2, progress=False)
    out = tmp_path / "split" / "labels.json"
    shard_files = []
    for i in range(3):
        summary = run_labelling(
            [folder, video], out, FakeTeacher(), video_step=2, shard=Shard(i, 3), progress=False
        )
        shard_files.append(summary.out)
        assert summary.out == output_paths(out, Shard(i, 3))[0]
    parts = [{img["id"] for img in content(p)[0]} for p in shard_files]
    assert all(parts) and not (parts[0] & parts[1] or parts[0] & parts[2] or parts[1] & parts[2])
    with pytest.raises(UserError, match="missing"):
        merge_label_files(shard_files[:2], out)
    merge_label_files(shard_files, out)
    assert content(out) == content(whole)
    load_pose_dataset(out, check_images=True)


def test_resume_after_interruption_labels_only_the_rest(tmp_path, inputs):
    folder, video = inputs
    reference = tmp_path / "ref" / "labels.json"
    run_labelling([folder, video], reference, FakeTeacher(), video_step=3, progress=False)
    out = tmp_path / "run" / "labels.json"
    run_labelling([folder, video], out, FakeTeacher(), video_step=3, progress=False)
    journal = output_paths(out, None)[1]
    lines = journal.read_text().splitlines(keepends=True)
    journal.write_text("".join(lines[:4]) + lines[4][:25])  # header + 3 records + a torn line
    out.unlink()
    teacher = FakeTeacher()
    summary = run_labelling([folder, video], out, teacher, video_step=3, progress=False)
    assert summary.already_done == 3
    assert teacher.calls == (6 - 3) + 4  # the rest of the images and the 4 frames, once each
    keys = [json.loads(line)["key"] for line in journal.read_text().splitlines()[1:]]
    assert len(keys) == len(set(keys)) == 6 + 1 + 4
    assert content(out) == content(reference)


def test_resume_refuses_other_settings_and_existing_output(tmp_path, inputs):
    folder, _ = inputs
    out = tmp_path / "labels.json"
    run_labelling([folder], out, FakeTeacher(), progress=False)
    with pytest.raises(UserError, match="video_step"):
        run_labelling([folder], out, FakeTeacher(), video_step=2, progress=False)
    output_paths(out, None)[1].unlink()
    with pytest.raises(UserError, match="--restart"):
        run_labelling([folder], out, FakeTeacher(), progress=False)
    summary = run_labelling([folder], out, FakeTeacher(), restart=True, progress=False)
    assert summary.images == 6


KILLED_RUN = """
import sys
sys.path.insert(0, {tests!r})
from pathlib import Path
from test_teacher_labelling import FakeTeacher
from orpose.teacher.labelling import run_labelling
run_labelling([Path({folder!r}), Path({video!r})], Path({out!r}), FakeTeacher(delay=0.15),
              video_step=1, progress=False)
"""


def journal_records(path: Path) -> list[dict]:
    if not path.exists():
        return []
    lines = path.read_bytes().split(b"\n")[1:-1]  # skip the header and any unfinished line
    return [json.loads(line) for line in lines]


def test_killed_subprocess_resumes_without_duplicate_or_loss(tmp_path):
    folder, video = make_inputs(tmp_path / "in", images=8, frames=16)
    reference = tmp_path / "ref" / "labels.json"
    run_labelling([folder, video], reference, FakeTeacher(), progress=False)
    out = tmp_path / "run" / "labels.json"
    journal = output_paths(out, None)[1]
    script = KILLED_RUN.format(
        tests=str(TESTS_DIR), folder=str(folder), video=str(video), out=str(out)
    )
    proc = subprocess.Popen([sys.executable, "-c", script], start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while len(journal_records(journal)) < 4 and proc.poll() is None:
            assert time.monotonic() < deadline, "the labelling subprocess made no progress"
            time.sleep(0.01)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run ended before it could be killed"
    done_before = journal_records(journal)
    assert 4 <= len(done_before) < 8 + 1 + 16 and not out.exists()
    teacher = FakeTeacher()
    summary = run_labelling([folder, video], out, teacher, progress=False)
    assert summary.already_done == len(done_before)
    keys = [r["key"] for r in journal_records(journal)]
    assert len(keys) == len(set(keys)) == 8 + 1 + 16  # every input once: no duplicate, no loss
    assert content(out) == content(reference)
    load_pose_dataset(out, check_images=True)
