"""One way to write a file so that a crash never leaves half of it behind.

The content goes to a temporary file beside the target, is flushed to disk, gets the usual file
mode (``mkstemp`` creates 0600 files), then replaces the target in one ``os.replace``; the folder
is fsynced after it, so that the new name survives a power cut too.

A writer killed mid-write (SIGKILL, power cut) leaves its temporary file behind. The temporary
name carries the writer's host and process id (``.last.pt.orpose-HOST-PID-XXXXXXXX.tmp``), and
every write first removes the leftovers of the same target whose writer is gone: same host and
that process no longer exists; another host's (a shared folder), or a name without a writer
(written before names carried one, ``.last.pt.XXXXXXXX.tmp``), only once it is untouched for
:data:`STALE_AFTER_S`. The temporary files of live writers are never touched.

Checkpoints go through :func:`orpose.safe_checkpoint.write_checkpoint`, which uses it.
"""

from __future__ import annotations

import os
import re
import socket
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO

STALE_AFTER_S = 600.0  # a temporary file of an unknown writer, untouched this long, is a leftover
_TAG = re.compile(r"orpose-(?P<host>[A-Za-z0-9_]*)-(?P<pid>[0-9]+)-[A-Za-z0-9_]+\.tmp")
_UNTAGGED = re.compile(r"[a-z0-9_]{8}\.tmp")  # mkstemp's name, before tags


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9_]", "_", socket.gethostname())[:32]


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # e.g. PermissionError: it exists, owned by someone else
        return True
    return True


def _is_leftover(rest: str, path: Path, now: float) -> bool:
    """Whether ``.<target>.<rest>`` is a temporary file of a writer that is gone."""
    tagged = _TAG.fullmatch(rest)
    if tagged is None and _UNTAGGED.fullmatch(rest) is None:
        return False  # not a temporary file of ours (or of another target)
    if tagged is not None and tagged["host"] == _host():
        pid = int(tagged["pid"])
        return pid != os.getpid() and not _process_exists(pid)
    try:
        return now - path.stat().st_mtime > STALE_AFTER_S
    except OSError:
        return False


def remove_stale_temporaries(path: Path | str) -> list[Path]:
    """Remove the temporary files that dead writers of ``path`` left beside it; returns them."""
    path = Path(path)
    prefix = f".{path.name}."
    removed = []
    now = time.time()
    try:
        entries = list(os.scandir(path.parent))
    except OSError:
        return removed
    for entry in entries:
        if not entry.name.startswith(prefix):
            continue
        candidate = Path(entry.path)
        if _is_leftover(entry.name[len(prefix) :], candidate, now):
            try:
                candidate.unlink()
                removed.append(candidate)
            except OSError:  # already gone (another cleaner) or not ours to remove
                pass
    return removed


def fsync_folder(folder: Path | str) -> None:
    """Make a rename or creation in ``folder`` durable (no-op where folders cannot be fsynced)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_atomic(
    path: Path | str, write: Callable[[IO], None], binary: bool = False, newline: str | None = None
) -> Path:
    """Call ``write(file)`` on a temporary file, then move it over ``path``; returns ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path)
    prefix = f".{path.name}.orpose-{_host()}-{os.getpid()}-"
    fd, tmp = tempfile.mkstemp(prefix=prefix, suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb" if binary else "w", newline=None if binary else newline) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
        fsync_folder(path.parent)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
