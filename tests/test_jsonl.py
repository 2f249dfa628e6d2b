"""The shared append-only journal: records survive, a torn tail is cut off on disk."""

from __future__ import annotations

import json

from orpose.jsonl import JsonlWriter, read_records


def test_records_round_trip_and_a_torn_tail_is_truncated(tmp_path):
    path = tmp_path / "j.jsonl"
    assert read_records(path) == []
    with JsonlWriter(path) as w:
        w.append({"a": 1})
        w.append({"b": [1, 2]})
    good = path.read_bytes()
    with open(path, "ab") as f:
        f.write(b'{"c": 3, "cut mid-wri')  # what a kill during a write leaves
    assert read_records(path) == [{"a": 1}, {"b": [1, 2]}]
    assert path.read_bytes() == good  # repaired on disk, so the next append starts a clean line
    with JsonlWriter(path) as w:
        w.append({"d": 4})
    assert [json.loads(x) for x in path.read_text().splitlines()][-1] == {"d": 4}


def test_a_damaged_middle_line_drops_it_and_what_follows(tmp_path):
    path = tmp_path / "j.jsonl"
    path.write_text('{"a": 1}\n{oops\n{"b": 2}\n')
    assert read_records(path) == [{"a": 1}]
    assert path.read_text() == '{"a": 1}\n'


def test_truncate_starts_a_fresh_file(tmp_path):
    path = tmp_path / "j.jsonl"
    path.write_text('{"old": true}\n')
    with JsonlWriter(path, truncate=True) as w:
        w.append({"new": True})
    assert read_records(path) == [{"new": True}]
