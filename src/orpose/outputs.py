"""Output places checked before any work starts: a long run must not end in an unwritable place.

``predict``, ``label``, ``eval``, ``train`` and ``data downscale`` call these first, so that an
``--out`` naming an existing file (where a folder is wanted), an existing folder (where a file is
wanted), a path below a file, or a read-only place stops the command with exit code 2 and one
line naming the option and the path, before any model is loaded or any input is read. The check
creates the folder that will hold the output (as the run would) and writes and removes an empty
probe file in it, which also catches read-only file systems (where permission bits say nothing,
e.g. for root).
"""

from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path

from orpose.errors import UserError


def write_problem(err: OSError) -> str:
    """Why a write failed, in words (a file in the way, a read-only place, a full disk...)."""
    if isinstance(err, FileExistsError) or err.errno == errno.ENOTDIR:
        return "a part of the path is a file, not a folder"
    if err.errno == errno.EROFS:
        return "read-only file system"
    if err.errno in (errno.EACCES, errno.EPERM):
        return "permission denied"
    if err.errno == errno.ENOSPC:
        return "no space left on the device"
    return err.strerror or str(err)


def _probe(folder: Path, option: str, shown: Path) -> None:
    """Create ``folder`` (and its parents) and write one empty file in it; UserError if not."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=".orpose-write-probe-", dir=folder)
        os.close(fd)
        os.unlink(name)
    except OSError as err:
        raise UserError(f"{option} {shown}: cannot be written ({write_problem(err)})") from None


def check_output_folder(path: Path | str, option: str = "--out") -> Path:
    """``path`` as an output folder: refused when it exists as a file or cannot be created or
    written; created otherwise (empty when new). Returns it as a Path."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise UserError(f"{option} {path}: exists and is a file, not a folder")
    _probe(path, option, path)
    return path


def check_output_file(path: Path | str, option: str = "--out") -> Path:
    """``path`` as an output file: refused when it is a folder, or its folder cannot be created
    or written (the folder is created, as the writer would). Returns it as a Path."""
    path = Path(path)
    if path.is_dir():
        raise UserError(f"{option} {path}: is a folder; name the file to write in it")
    _probe(path.parent if str(path.parent) else Path("."), option, path)
    return path
