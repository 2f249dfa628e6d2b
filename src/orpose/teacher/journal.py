"""The append-only labelling journal: what makes a killed run resumable.

One JSON object per line. The first line is a header describing the run (inputs, teacher
configuration, model checksums); every later line is one finished image, written and fsynced
before the next image starts. A run killed at any moment leaves at most one torn last line,
which is cut off when the journal is reopened, so on resume every image is either fully
recorded or redone: none is lost and none is recorded twice.
"""

from __future__ import annotations

from pathlib import Path

from orpose.errors import UserError
from orpose.jsonl import JsonlWriter, read_records

JOURNAL_FORMAT = "orpose-label-journal/1"


class Journal:
    """Reads, repairs and appends to one journal file (see :mod:`orpose.jsonl`)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._writer: JsonlWriter | None = None

    def read(self) -> tuple[dict | None, list[dict]]:
        """The header and the records of complete lines; a torn tail is truncated away."""
        parsed = read_records(self.path)
        if not parsed:
            return None, []
        header = parsed[0].get("header")
        if not isinstance(header, dict) or parsed[0].get("format") != JOURNAL_FORMAT:
            raise UserError(f"{self.path}: not an orpose labelling journal (remove it to restart)")
        return header, parsed[1:]

    def start(self, header: dict) -> None:
        """Create the journal with its header line (the file must not exist or be empty)."""
        with JsonlWriter(self.path, truncate=True) as writer:
            writer.append({"format": JOURNAL_FORMAT, "header": header})

    def append(self, record: dict) -> None:
        """Write one record durably: it is on disk when this returns."""
        if self._writer is None:
            self._writer = JsonlWriter(self.path)
        self._writer.append(record)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
