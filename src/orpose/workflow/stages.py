"""The stages as the workflow calls them: one Python function of typed arguments per verb.

Each is the function its verb calls after parsing its command line, so a step of ``orpose demo``
/ ``experiment`` / ``adapt`` does what its recorded command does (tests/test_workflow.py checks
it for every step):

- ``data subset`` / ``mvor-to-coco`` / ``show``: :func:`orpose.data.cli.subset`,
  :func:`~orpose.data.cli.mvor_to_coco`, :func:`~orpose.data.cli.show`;
- ``lift train``: :func:`orpose.lifting.cli.lift_train`;
- ``label``: :func:`orpose.teacher.cli.label`;
- ``eval``: :func:`orpose.evaluation.cli.evaluate_and_report`, through :func:`evaluate` here
  (prediction files as a mapping);
- ``train``: :func:`train` here, which is :func:`orpose.api.train` (``orpose.train``, which the
  verb shares: :func:`orpose.training.cli.train_from_args`) and the verb's closing lines;
- ``predict``, ``self-label``: :func:`predict`, :func:`self_label` here, which call the verb's
  function with its namespace filled from typed arguments and the verb's defaults
  (:func:`orpose.commands.verb_arguments`), until those verbs have functions of typed arguments
  of their own.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from orpose.commands import verb_arguments
from orpose.data.cli import mvor_to_coco, show, subset
from orpose.evaluation import cli as evaluation_cli
from orpose.lifting.cli import lift_train
from orpose.teacher.cli import label

__all__ = [
    "evaluate",
    "label",
    "lift_train",
    "mvor_to_coco",
    "predict",
    "self_label",
    "show",
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


def predict(model: Path | str, inputs: Sequence[Path | str], out: Path, **options: Any) -> int:
    """``orpose predict MODEL INPUTS --out OUT``; ``options``: the verb's others by their names
    (``score_threshold=0.3``, ``proposals=300``, ``no_progress=True`` ...)."""
    args = verb_arguments(
        ["predict"],
        model=os.fspath(model),
        inputs=[os.fspath(i) for i in inputs],
        out=Path(out),
        **options,
    )
    return args.func(args)


def self_label(
    checkpoint: Path,
    inputs: Sequence[Path],
    out: Path,
    *,
    stored_downscale: float,
    min_score: float = 0.3,
    video_step: int = 1,
    device: str | None = None,
    progress: bool = True,
) -> int:
    """``orpose self-label CHECKPOINT INPUTS --stored-downscale S --out OUT``: pseudo labels of
    low-resolution-only frames by the student itself (flip-consistent people)."""
    args = verb_arguments(
        ["self-label"],
        checkpoint=Path(checkpoint),
        inputs=[Path(i) for i in inputs],
        out=Path(out),
        stored_downscale=stored_downscale,
        min_score=min_score,
        video_step=video_step,
        device=device,
        no_progress=not progress,
    )
    return args.func(args)
