"""Run the stages as recorded, resumable steps.

A step is a call of a stage's Python function with typed arguments (:class:`Call`: the function
an ``orpose`` verb runs after parsing its command line, :mod:`orpose.workflow.stages`) and the
ordinary ``orpose`` command line it equals, which is what is recorded: the runner makes the call
in-process (torch is imported once; no command line is parsed), records every finished step in
``steps.jsonl`` with its command and duration, and skips a step on a rerun when the same command
already finished and its outputs exist. ``commands.sh`` lists the command lines, to rerun by hand
(tests/test_workflow.py checks that each line makes the verb call the step's function with the
same arguments). The stages resume their own long work (labelling and evaluation journals,
``train --resume``), so an interrupted chain continues where it stopped. An error of the input
stops the chain with the verb's one-line message (exit code 2 there).
"""

from __future__ import annotations

import logging
import shlex
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orpose.commands import error_line
from orpose.errors import OrposeError
from orpose.jsonl import JsonlWriter, read_records


class StepError(RuntimeError):
    """A step's command failed: the message names the step and the command to rerun by hand."""


@dataclass(frozen=True)
class Call:
    """A stage's function and its typed arguments: ``Call(subset, file, 10, out)()`` is
    ``subset(file, 10, out)``."""

    function: Callable[..., Any]
    args: tuple = ()
    kwargs: dict[str, Any] = field(default_factory=dict)

    def __call__(self) -> Any:
        return self.function(*self.args, **self.kwargs)


def call(function: Callable[..., Any], *args: Any, **kwargs: Any) -> Call:
    return Call(function, args, kwargs)


@dataclass
class Step:
    """One call of a stage's function, the ``orpose`` command line it equals (recorded in
    ``steps.jsonl`` and ``commands.sh``) and the files that prove it finished."""

    name: str
    argv: list[str]  # the command line: its first word names the verb in error messages
    outputs: list[Path] = field(default_factory=list)
    about: str = ""  # one sentence for the report: why this step is there
    call: Call | None = None  # what runs: the function the verb of ``argv`` calls

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
            code = run_call(step)
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


def run_call(step: Step) -> int:
    """Make the step's call in this process; its exit code as its verb's (0, or 2 for an error
    of the input, reported in the verb's one line on stderr).

    Torch's thread count is restored afterwards: a stage may lower it for itself (``lift
    train`` runs on one thread by default), and in one process that would slow every later step.
    """
    import torch

    if step.call is None:
        raise ValueError(f"step {step.name!r} has no call (a stage function to run)")
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    threads = torch.get_num_threads()
    try:
        return int(step.call() or 0)
    except (OrposeError, OSError) as err:
        line = error_line(step.argv[0] if step.argv else step.name, err)
        if line is None:
            raise
        print(line, file=sys.stderr)
        return 2
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
