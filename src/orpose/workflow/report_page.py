"""Pieces of the Markdown reports written by ``orpose demo`` and ``orpose experiment``: metric
tables read from the evaluation files, the machine, pictures of predictions."""

from __future__ import annotations

import csv
import os
import platform
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from orpose.workflow.bench import machine
from orpose.workflow.steps import StepRecord

TABLE_COLUMNS = (
    ("box_ap", "Box-AP"),
    ("keypoint_ap", "Keypoint2D-AP"),
    ("keypoint_apl", "Keypoint2D-AP_L"),  # large people: the closest proxy for OR ceiling views
    ("mpjpe_mm", "Keypoint3D-MPJPE (mm)"),
)


def read_metrics(path: Path) -> list[dict]:
    """The rows of an ``orpose eval`` ``metrics.csv`` (one per scale)."""
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def metric_cell(value: str | float | tuple | None) -> str:
    """One number of a table, one decimal; a (lowest, highest) pair of several seeds' runs as
    "lowest-highest"; "-" for nothing measured."""
    if isinstance(value, tuple):
        low, high = (metric_cell(v) for v in value)
        return "-" if "-" in (low, high) else f"{low}-{high}"
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return "-"
    return "-" if np.isnan(number) else f"{number:.1f}"


def metrics_table(models: dict[str, list[dict]], scales: Sequence[str]) -> str:
    """A Markdown table like the paper's: one row per model, per scale Box-AP / Kpt-AP / MPJPE.

    MPJPE columns appear only when some model has 3D ground truth to be scored against.
    """
    has_3d = any(metric_cell(r.get("mpjpe_mm")) != "-" for rows in models.values() for r in rows)
    columns = [c for c in TABLE_COLUMNS if has_3d or c[0] != "mpjpe_mm"]
    header = ["model"] + [f"{name} {s}" for s in scales for _, name in columns]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for model, rows in models.items():
        by_scale = {r["scale"]: r for r in rows}
        cells = [model]
        for s in scales:
            row = by_scale.get(s, {})
            cells += [metric_cell(row.get(key)) for key, _ in columns]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def steps_table(records: Sequence[StepRecord]) -> str:
    lines = ["| step | time | command |", "|---|---|---|"]
    for r in records:
        took = "earlier run" if r.skipped else f"{r.seconds:.0f} s"
        lines.append(f"| {r.name} | {took} | `{r.command}` |")
    return "\n".join(lines)


def machine_description() -> str:
    """CPU, cores, load, GPU (if any) and library versions: numbers mean little without them."""
    info = machine()
    load = info.get("load_average_1min")
    return (
        f"{info['cpu']}, {info['logical_cpus']} cores"
        + (f" (load average {load} at the end)" if load is not None else "")
        + f"; GPU: {info.get('gpu', 'none')}; Python {platform.python_version()}, "
        f"torch {info['torch']}, {platform.system()}"
    )


def image_link(path: Path, base: Path, alt: str, width: int | None = None) -> str:
    rel = os.path.relpath(path, base)
    if width:
        return f'<img src="{rel}" alt="{alt}" width="{width}">'
    return f"![{alt}]({rel})"


def draw_results(image: np.ndarray, results: Sequence[dict], path: Path, min_score: float) -> Path:
    """An overlay of the people scoring at least ``min_score`` (RGB image, written as JPEG/PNG)."""
    import cv2

    from orpose.viz.draw2d import draw_people

    people = [r for r in results if r.get("score", 1.0) >= min_score]
    canvas = draw_people(image, people, threshold=0.3)
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), cv2.cvtColor(canvas, cv2.COLOR_RGB2BGR))
    return path
