"""A weight average of students trained from one start ("model soup"): one network as cheap as
each of them, usually better than their mean.

Why: the training seed alone moves one short run of a recipe by up to 3 AP points on the OR
frames (docs/student.md), so a user who trains a recipe several times holds several equally good
students and can deploy only one. Students fine-tuned from the same starting weights (here: the
teacher's own networks) stay in one basin of the loss, where the average of their weights is a
network at least as good as the mean of theirs (Wortsman et al., "Model soups: averaging weights
of multiple fine-tuned models improves accuracy without increasing inference time", ICML 2022,
the "uniform soup"); the final weight mix of the trainer (WiSE-FT) is the two-model case with the
starting weights. Students trained from different starts have nothing to average: the result
is then a broken network, which nothing here can detect, so the sources are recorded.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

from orpose.checkpoints.student import load_student, student_state
from orpose.errors import ModelError, UserError
from orpose.manifest import sha256_of
from orpose.safe_checkpoint import write_checkpoint

__all__ = ["soup_students"]


def _differences(first: dict, other: dict, prefix: str = "") -> list[str]:
    """The keys (dotted) whose values differ between two nested config dicts."""
    out = []
    for key in sorted(set(first) | set(other), key=str):
        a, b = first.get(key), other.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            out += _differences(a, b, f"{prefix}{key}.")
        elif a != b:
            out.append(f"{prefix}{key}")
    return out


def soup_students(paths: Sequence[Path | str], out: Path | str) -> Path:
    """Write ``out``: the student whose every floating-point weight (batch-norm statistics
    included) is the mean of the students in ``paths``; integer entries (counters) come from
    the first. Every file must load as an orpose student and all must share one config (the
    architecture); an error names the file and the field. The result records its sources
    (``soup``: file name and sha256 of each) and loads like any student checkpoint."""
    paths = [Path(p) for p in paths]
    if len(paths) < 2:
        raise UserError(f"a weight average needs at least two students, got {len(paths)}")
    if len({p.resolve() for p in paths}) < len(paths):
        raise UserError("a student is given twice: each file counts once in the average")
    models = [load_student(p) for p in paths]
    first_config = models[0].config.to_dict()
    for path, model in zip(paths[1:], models[1:], strict=True):
        differ = _differences(first_config, model.config.to_dict())
        if differ:
            raise ModelError(
                f"{path}: field 'student_config.{differ[0]}' differs from {paths[0]}'s: only "
                "students of one architecture, trained from one start, can be averaged"
            )
    states = [m.state_dict() for m in models]
    averaged = {}
    with torch.no_grad():
        for key, value in states[0].items():
            if value.is_floating_point():
                total = sum(s[key].double() for s in states)
                averaged[key] = (total / len(states)).to(value.dtype)
            else:
                averaged[key] = value
    soup = models[0]
    soup.load_state_dict(averaged)
    record = [{"file": p.name, "sha256": sha256_of(p)} for p in paths]
    return write_checkpoint({**student_state(soup), "soup": record}, out)
