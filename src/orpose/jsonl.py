"""Append-only JSON-lines files: the one way long orpose jobs record finished work.

Labelling, prediction, evaluation and the demo/experiment steps each append one JSON object per
finished unit of work and fsync it before going on. A job killed at any moment leaves at most one
torn last line; :func:`read_records` cuts it off (and anything after a damaged line), so on resume
every unit is either fully recorded or redone: none is lost and none is recorded twice.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


def read_records(path: Path | str) -> list[dict]:
    """The complete records of a journal (none when it does not exist); a torn tail is truncated
    away on disk so that later appends follow the last good line."""
    path = Path(path)
    if not path.exists():
        return []
    data = path.read_bytes()
    good_bytes = 0
    records: list[dict] = []
    for line in data.split(b"\n")[:-1]:  # what follows the last newline is never finished
        try:
            records.append(json.loads(line))
        except (ValueError, RecursionError):  # JSONDecodeError, bytes that are not UTF-8...
            break  # a line damaged mid-write: it and anything after it are dropped
        good_bytes += len(line) + 1
    if good_bytes != len(data):
        with open(path, "r+b") as f:
            f.truncate(good_bytes)
            f.flush()
            os.fsync(f.fileno())
    return records


class JsonlWriter:
    """Appends records durably: each is on disk when :meth:`append` returns."""

    def __init__(self, path: Path | str, truncate: bool = False):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file: Any = open(self.path, "w" if truncate else "a")  # noqa: SIM115 - kept open

    def append(self, record: Any) -> None:
        self._file.write(json.dumps(record, separators=(",", ":")) + "\n")
        self._file.flush()
        os.fsync(self._file.fileno())

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def __enter__(self) -> JsonlWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
