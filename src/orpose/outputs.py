"""Output places checked before any work starts: a long run must not end in an unwritable place.

``predict``, ``label``, ``eval``, ``train`` and ``data downscale`` call these first, so that an
``--out`` naming an existing file (where a folder is wanted), an existing folder (where a file is
wanted), a path below a file, or a read-only place stops the command with exit code 2 and one
line naming the option and the path, before any model is loaded or any input is read. The check
creates the folder that will hold the output (as the run would) and writes and removes an empty
probe file in it, which also catches read-only file systems (where permission bits say nothing,
e.g. for root). :func:`refuse_overwriting_inputs` stops an output that would overwrite an
input (or, for a folder, lie inside an input folder) the same way.
"""

from __future__ import annotations

import errno
import os
import tempfile
from collections.abc import Iterable
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
    if err.errno == errno.ENAMETOOLONG:
        return "the name is too long for the file system"
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
    if os.path.exists(path) and not os.path.isdir(path):  # (os.path: False for a too-long name)
        raise UserError(f"{option} {path}: exists and is a file, not a folder")
    _probe(path, option, path)
    return path


def check_output_file(path: Path | str, option: str = "--out") -> Path:
    """``path`` as an output file: refused when it is a folder, or its folder cannot be created
    or written (the folder is created, as the writer would). Returns it as a Path."""
    path = Path(path)
    if os.path.isdir(path):
        raise UserError(f"{option} {path}: is a folder; name the file to write in it")
    _probe(path.parent if str(path.parent) else Path("."), option, path)
    if not os.path.lexists(path):  # its own name too: too long, or refused by the file system
        try:
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
            os.unlink(path)
        except OSError as err:
            raise UserError(f"{option} {path}: cannot be written ({write_problem(err)})") from None
    return path


def _same_or_below(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def refuse_overwriting_inputs(
    out: Path | str,
    inputs: Iterable[Path | str],
    option: str = "--out",
    folder: bool = False,
) -> None:
    """UserError when the output ``out`` would destroy or feed back into an input, before any
    work: an output file that is one of the input files (``data subset gt.json --out gt.json``,
    ``label x.jpg --out x.jpg --restart``); with ``folder``, an output folder that is an input
    file, or is (or lies inside) an input folder, whose images the next run would read back as
    inputs (``data downscale imgs --out imgs`` wrote its 1/s copies over the originals).
    Inputs that are not paths on disk (streams, ``random:``) are ignored."""
    target = Path(os.path.abspath(out))
    resolved = target.resolve()
    for raw in inputs:
        given = Path(raw)
        if not os.path.exists(given):
            continue
        source = given.resolve()
        same = source == resolved or (os.path.exists(target) and os.path.samefile(given, target))
        if same and not os.path.isdir(given):
            raise UserError(
                f"{option} {out}: is the input {raw}, which would be overwritten; write to "
                "another place"
            )
        if folder and os.path.isdir(given) and _same_or_below(resolved, source):
            raise UserError(
                f"{option} {out}: lies in the input folder {raw}: what is written there would "
                "overwrite its images or be read as input by the next run; write to another "
                "folder"
            )
