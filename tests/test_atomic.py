"""Atomic writes: a writer killed mid-write leaves a temporary file that the next write removes,
live writers' files are never touched, and the folder is fsynced after the rename (issue #12)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from orpose import atomic
from orpose.atomic import remove_stale_temporaries, write_atomic
from orpose.safe_checkpoint import read_checkpoint, write_checkpoint

KILLED_WRITE = """
import os, signal, sys
from orpose.atomic import write_atomic

def write(f):
    f.write(b"x" * 100_000)  # half a checkpoint...
    f.flush()
    os.kill(os.getpid(), signal.SIGKILL)  # ...and the process is killed

write_atomic(sys.argv[1], write, binary=True)
"""


def temporaries(target: Path) -> list[Path]:
    return sorted(target.parent.glob(f".{target.name}.*.tmp"))


def test_next_write_removes_the_temp_file_of_a_killed_checkpoint_write(tmp_path):
    target = tmp_path / "last.pt"
    write_checkpoint({"iteration": 1}, target)
    before = target.read_bytes()
    proc = subprocess.run([sys.executable, "-c", KILLED_WRITE, str(target)], timeout=60)
    assert proc.returncode == -9
    (left,) = temporaries(target)
    assert left.stat().st_size == 100_000 and target.read_bytes() == before  # target intact
    write_checkpoint({"iteration": 2}, target)
    assert temporaries(target) == []
    assert read_checkpoint(target)["iteration"] == 2


def test_only_leftovers_of_dead_writers_of_the_same_target_are_removed(tmp_path):
    target = tmp_path / "last.pt"
    host = atomic._host()
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                              capture_output=True, text=True, check=True)  # fmt: skip
        dead_pid = int(dead.stdout)
        files = {
            "dead_writer": f".last.pt.orpose-{host}-{dead_pid}-abcd1234.tmp",
            "live_writer": f".last.pt.orpose-{host}-{sleeper.pid}-abcd1234.tmp",
            "this_process": f".last.pt.orpose-{host}-{os.getpid()}-abcd1234.tmp",
            "old_untagged": ".last.pt.k2j4h5g6.tmp",
            "fresh_untagged": ".last.pt.a1b2c3d4.tmp",
            "old_other_host": ".last.pt.orpose-elsewhere-1-abcd1234.tmp",
            "fresh_other_host": ".last.pt.orpose-elsewhere-2-abcd1234.tmp",
            "other_target": f".last.pt.bak.orpose-{host}-{dead_pid}-abcd1234.tmp",
            "not_a_temp": ".last.pt.notes",
        }
        for name in files.values():
            (tmp_path / name).write_bytes(b"partial")
        old = time.time() - 2 * atomic.STALE_AFTER_S
        for key in ("old_untagged", "old_other_host"):
            os.utime(tmp_path / files[key], (old, old))
        removed = remove_stale_temporaries(target)
        assert sorted(p.name for p in removed) == sorted(
            files[k] for k in ("dead_writer", "old_untagged", "old_other_host")
        )
        kept = {k for k, name in files.items() if (tmp_path / name).exists()}
        assert kept == {"live_writer", "this_process", "fresh_untagged", "fresh_other_host",
                        "other_target", "not_a_temp"}  # fmt: skip
    finally:
        sleeper.kill()
        sleeper.wait()


def test_folder_is_fsynced_after_the_rename(tmp_path, monkeypatch):
    target = tmp_path / "sub" / "file.json"
    seen: list[tuple[str, str | None]] = []
    real_fsync_folder = atomic.fsync_folder

    def spy(folder):
        seen.append((str(folder), target.read_text() if target.exists() else None))
        real_fsync_folder(folder)

    monkeypatch.setattr(atomic, "fsync_folder", spy)
    write_atomic(target, lambda f: f.write("{}"))
    assert seen == [(str(target.parent), "{}")]  # once, after the new file took the name
    assert temporaries(target) == []


def test_a_failed_write_leaves_neither_temp_file_nor_a_changed_target(tmp_path):
    target = tmp_path / "file.json"
    target.write_text("old")

    def broken(f):
        f.write("half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        write_atomic(target, broken)
    assert target.read_text() == "old" and temporaries(target) == []
