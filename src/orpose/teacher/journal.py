"""The append-only labelling journal: what makes a killed run resumable.

One JSON object per line. The first line is a header describing the run (inputs, teacher
configuration, model checksums); every later line is one finished image, written and fsynced
before the next image starts. A run killed at any moment leaves at most one torn last line,
which is cut off when the journal is reopened, so on resume every image is either fully
recorded or redone: none is lost and none is recorded twice.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from orpose.cli import UserError

JOURNAL_FORMAT = "orpose-label-journal/1"


class Journal:
    """Reads, repairs and appends to one journal file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file: Any = None

    def read(self) -> tuple[dict | None, list[dict]]:
        """The header and the records of complete lines; a torn tail is truncated away."""
        if not self.path.exists():
            return None, []
        data = self.path.read_bytes()
        lines = data.split(b"\n")
        complete = lines[:-1]  # the part after the last newline is never a finished record
        good_bytes = 0
        parsed: list[dict] = []
        for line in complete:
            try:
                parsed.append(json.loads(line))
            except json.JSONDecodeError:
                break  # a line damaged mid-write: it and anything after it are dropped
            good_bytes += len(line) + 1
        if good_bytes != len(data):
            with open(self.path, "r+b") as f:
                f.truncate(good_bytes)
                f.flush()
                os.fsync(f.fileno())
        if not parsed:
            return None, []
        header = parsed[0].get("header")
        if not isinstance(header, dict) or parsed[0].get("format") != JOURNAL_FORMAT:
            raise UserError(f"{self.path}: not an orpose labelling journal (remove it to restart)")
        return header, parsed[1:]

    def start(self, header: dict) -> None:
        """Create the journal with its header line (the file must not exist or be empty)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "w") as f:
            f.write(json.dumps({"format": JOURNAL_FORMAT, "header": header}) + "\n")
            f.flush()
            os.fsync(f.fileno())

    def append(self, record: dict) -> None:
        """Write one record durably: it is on disk when this returns."""
        if self._file is None:
            self._file = open(self.path, "a")  # noqa: SIM115 - kept open across many appends
        self._file.write(json.dumps(record, separators=(",", ":")) + "\n")
        self._file.flush()
        os.fsync(self._file.fileno())

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
