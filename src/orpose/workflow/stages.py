"""The stages as the workflow calls them: one Python function of typed arguments per verb.

Each is the function its verb calls after parsing its command line, so a step of ``orpose demo``
/ ``experiment`` / ``adapt`` does what its recorded command does (checked for every step by
tests/test_workflow_calls.py):

- ``data subset`` / ``mvor-to-coco`` / ``show``: :func:`orpose.data.cli.subset`,
  :func:`~orpose.data.cli.mvor_to_coco`, :func:`~orpose.data.cli.show`;
- ``lift train``: :func:`orpose.lifting.cli.lift_train`;
- ``label``: :func:`orpose.teacher.cli.label`;
- ``eval``: :func:`orpose.evaluation.cli.evaluate_and_report`, through :func:`evaluate` here
  (prediction files as a mapping);
- ``train``: :func:`train` here, which is :func:`orpose.api.train` (``orpose.train``, which the
  verb shares: :func:`orpose.training.cli.train_from_args`) and the verb's closing lines;
- ``predict``: :func:`orpose.inference.cli.predict`;
- ``self-label``: :func:`orpose.training.cli.self_label`;
- ``soup``: :func:`orpose.training.cli.soup`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from orpose.data.cli import mvor_to_coco, show, subset
from orpose.evaluation import cli as evaluation_cli
from orpose.inference.cli import predict
from orpose.lifting.cli import lift_train
from orpose.teacher.cli import label
from orpose.training.cli import self_label, soup

__all__ = [
    "evaluate",
    "label",
    "lift_train",
    "mvor_to_coco",
    "predict",
    "self_label",
    "show",
    "soup",
    "subset",
    "train",
]


def train(
    config: Path,
    out: Path,
    overrides: Sequence[str] = (),
    *,
    resume: bool = False,
    allow_eval_overlap: bool = False,
) -> int:
    """``orpose train CONFIG --out OUT [--resume] --set KEY=VALUE ...``: :func:`orpose.api.train`
    (the verb's checks and training), then the verb's lines naming the checkpoint and logs."""
    from orpose.api import train as train_student

    checkpoint = train_student(
        config, out, overrides, resume=resume, allow_eval_overlap=allow_eval_overlap
    )
    out = Path(out)
    print(f"checkpoint: {checkpoint}\nlogs: {out / 'metrics.csv'}, {out / 'loss_curves.png'}")
    return 0


def evaluate(
    gt: Path,
    out: Path,
    *,
    pred: Mapping[str, Path] | None = None,
    model: Path | None = None,
    plot: bool = True,
    **options: Any,
) -> int:
    """``orpose eval --gt GT --out OUT``: :func:`orpose.evaluation.cli.evaluate_and_report` of
    prediction files ``pred`` (``{scale tag: file}``, as ``--pred 12=FILE``) or of a student
    checkpoint ``model``; ``options``: its others (``scales=[1.0, 12.0]``,
    ``max_detections=20``, ``images=Path(...)`` ...)."""
    preds = None if pred is None else [f"{tag}={os.fspath(path)}" for tag, path in pred.items()]
    return evaluation_cli.evaluate_and_report(
        Path(gt), pred=preds, model=model, out=Path(out), plot=plot, **options
    )
