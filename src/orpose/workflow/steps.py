"""Run orpose commands as recorded, resumable steps.

A step is one ordinary ``orpose`` command line. The runner calls the CLI in-process (torch is
imported once), records every finished step in ``steps.jsonl`` with its command and duration, and
skips a step on a rerun when the same command already finished and its outputs exist. The
commands themselves resume their own long work (labelling and evaluation journals, ``train
--resume``), so an interrupted chain continues where it stopped.
"""

from __future__ import annotations

import shlex
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from orpose.commands import run as run_command
from orpose.jsonl import JsonlWriter, read_records


class StepError(RuntimeError):
    """A step's command failed: the message names the step and the command to rerun by hand."""


@dataclass
class Step:
    """One ``orpose`` command line and the files that prove it finished."""

    name: str
    argv: list[str]
    outputs: list[Path] = field(default_factory=list)
    about: str = ""  # one sentence for the report: why this step is there

    @property
    def command(self) -> str:
        return "orpose " + shlex.join(str(a) for a in self.argv)


@dataclass
class StepRecord:
    name: str
    command: str
    seconds: float
    skipped: bool = False


class StepRunner:
    """Runs steps in order, journaled in ``<out>/steps.jsonl``; see the module docstring."""

    def __init__(self, out: Path):
        self.out = Path(out)
        self.out.mkdir(parents=True, exist_ok=True)
        self.journal = self.out / "steps.jsonl"
        self.finished = self._read_journal()

    def _read_journal(self) -> dict[str, dict]:
        return {entry["name"]: entry for entry in read_records(self.journal)}

    def is_done(self, step: Step) -> bool:
        entry = self.finished.get(step.name)
        return (
            entry is not None
            and entry.get("command") == step.command
            and all(Path(p).exists() for p in step.outputs)
        )

    def run(self, step: Step) -> StepRecord:
        """Run one step (or skip it when already done); raise :class:`StepError` on failure."""
        if self.is_done(step):
            record = StepRecord(step.name, step.command, self.finished[step.name]["seconds"], True)
            print(f"[{step.name}] done earlier, skipped: {step.command}")
        else:
            print(f"\n[{step.name}] {step.command}", flush=True)
            start = time.monotonic()
            code = run_orpose(step.argv)
            seconds = time.monotonic() - start
            if code != 0:
                raise StepError(f"step {step.name!r} failed (exit {code}); rerun: {step.command}")
            missing = [str(p) for p in step.outputs if not Path(p).exists()]
            if missing:
                raise StepError(f"step {step.name!r} did not write {', '.join(missing)}")
            record = StepRecord(step.name, step.command, seconds)
            with JsonlWriter(self.journal) as writer:
                writer.append(
                    {"name": step.name, "command": step.command, "seconds": round(seconds, 1)}
                )
        return record

    def run_all(self, steps: Sequence[Step]) -> list[StepRecord]:
        return [self.run(step) for step in steps]


def run_orpose(argv: Sequence[str]) -> int:
    """``orpose ARGV`` in this process; its exit code.

    Torch's thread count is restored afterwards: a command may lower it for itself (``lift
    train`` runs on one thread by default), and in one process that would slow every later step.
    """
    import torch

    threads = torch.get_num_threads()
    try:
        return run_command([str(a) for a in argv])
    finally:
        torch.set_num_threads(threads)


def write_commands(steps: Sequence[Step], path: Path, header: str = "") -> Path:
    """A shell script of the steps' commands, to rerun or adapt by hand."""
    lines = ["#!/bin/sh", "set -e"]
    if header:
        lines += [f"# {line}" for line in header.splitlines()]
    for step in steps:
        lines += ["", f"# {step.name}: {step.about}" if step.about else f"# {step.name}"]
        lines.append(step.command)
    path.write_text("\n".join(lines) + "\n")
    path.chmod(0o755)
    return path
