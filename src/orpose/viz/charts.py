"""Charts of evaluation results (matplotlib, written to files: no display needed)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from orpose.scales import scale_from_label, scale_label


def save_figure(fig, path: Path | str) -> Path:
    """Lay out, write (parent folders made) and close a figure; returns the path."""
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_ap_versus_scale(reports: Sequence, path: Path | str, title: str = "") -> Path:
    """Box AP and keypoint AP (%) against the downscale factor, from ScaleReport objects."""
    points = [(scale_from_label(r.scale), r) for r in reports]
    points = sorted((p for p in points if p[0] is not None), key=lambda p: p[0])
    fig, ax = plt.subplots(figsize=(5, 3.5))
    xs = [p[0] for p in points]
    ax.plot(xs, [100 * r.box["AP"] for _, r in points], "o-", label="Box AP")
    ax.plot(xs, [100 * r.keypoints["AP"] for _, r in points], "s-", label="Keypoint AP")
    ax.set_xlabel("downscale factor s (image shrunk to 1/s, then restored)")
    ax.set_ylabel("AP (%)")
    ax.set_xticks(xs)
    ax.set_xticklabels([scale_label(x) for x in xs])
    ax.grid(alpha=0.3)
    ax.legend()
    if title:
        ax.set_title(title)
    return save_figure(fig, path)


def plot_loss_curves(csv_path: Path | str, path: Path | str) -> Path:
    """Every ``loss_*`` column and the total of a training ``metrics.csv`` against iterations."""
    import csv

    with open(csv_path) as f:
        rows = list(csv.DictReader(f))
    fig, ax = plt.subplots(figsize=(6, 4))
    if rows:
        its = [int(r["iteration"]) for r in rows]
        keys = [k for k in rows[0] if k.startswith("loss_") or k == "total"]
        window = max(1, len(rows) // 15)  # a moving average over about 1/15 of the run
        for i, key in enumerate(keys):
            values = np.array([float(r[key]) for r in rows])
            colour = "0.3" if key == "total" else f"C{i % 10}"
            ax.plot(its, values, color=colour, lw=0.6, alpha=0.3)
            smooth = np.convolve(values, np.ones(window) / window, mode="valid")
            ax.plot(its[window - 1 :], smooth, color=colour, label=key,
                    lw=2.2 if key == "total" else 1.4)  # fmt: skip
        ax.set_yscale("log")
        ax.set_title(f"thin: logged values; thick: mean of {window} logs", fontsize=8)
        ax.legend(fontsize=7)
    ax.set_xlabel("iteration")
    ax.set_ylabel("loss (weighted)")
    ax.grid(alpha=0.3)
    return save_figure(fig, path)


BOX_AND_KEYPOINT_AP = (("box_ap", "Box AP (%)"), ("keypoint_ap", "Keypoint AP (%)"))
# where keypoint AP at 8-12x is lost: people of 32^2-96^2 px of area become a few pixels tall
KEYPOINT_AP_BY_SIZE = (
    ("keypoint_apm", "Keypoint AP, medium people (%)"),
    ("keypoint_apl", "Keypoint AP, large people (%)"),
)


def _value(text: str | float | None) -> float:
    """A metrics.csv cell as a number (empty or missing: NaN, drawn as a gap)."""
    try:
        return float(text)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return float("nan")


def plot_models_versus_scale(
    rows: dict[str, Sequence[dict]],
    path: Path | str,
    title: str = "",
    panels: Sequence[tuple[str, str]] = BOX_AND_KEYPOINT_AP,
    spreads: dict[str, Sequence[dict]] | None = None,
) -> Path:
    """AP against the downscale factor, one line per model, one panel per metric.

    ``rows`` maps a model's name (teacher, student, ...) to its ``metrics.csv`` rows (``scale``
    and each panel's column, in %); ``panels`` lists ``(column, title)``: by default box AP and
    keypoint AP, the paper's question in one picture, namely which model holds up as the image
    shrinks (``KEYPOINT_AP_BY_SIZE``: the same by person size). ``spreads`` maps a model of
    ``rows`` (the mean of several training seeds) to rows of (lowest, highest) pairs: drawn as a
    band around its line, so that a difference inside it reads as the seed's.
    """
    # AP panels share one % axis; an MPJPE panel (mm, lower is better) gets its own
    in_mm = [key.startswith("mpjpe") for key, _ in panels]
    fig, axes = plt.subplots(1, len(panels), figsize=(4.5 * len(panels), 3.6),
                             sharey=not any(in_mm))  # fmt: skip
    axes = np.atleast_1d(axes)
    all_scales: set[float] = set()
    for name, model_rows in rows.items():
        points = sorted(
            (scale_from_label(str(r["scale"])), r)
            for r in model_rows
            if scale_from_label(str(r["scale"])) is not None
        )
        xs = [p[0] for p in points]
        all_scales.update(xs)
        band = {str(r["scale"]): r for r in (spreads or {}).get(name, [])}
        for ax, (key, _) in zip(axes, panels, strict=True):
            (line,) = ax.plot(xs, [_value(r[key]) for _, r in points], "o-", label=name)
            pairs = [band.get(str(r["scale"]), {}).get(key) for _, r in points]
            if pairs and all(isinstance(pair, tuple) for pair in pairs):
                ax.fill_between(xs, [pair[0] for pair in pairs], [pair[1] for pair in pairs],
                                color=line.get_color(), alpha=0.2, linewidth=0)  # fmt: skip
    for ax, (_, label) in zip(axes, panels, strict=True):
        ax.set_title(label)
        ax.set_xlabel("downscale factor s")
        ax.set_xticks(sorted(all_scales))
        ax.set_xticklabels([scale_label(x) for x in sorted(all_scales)])
        ax.grid(alpha=0.3)
    for ax, mm in zip(axes, in_mm, strict=True):
        if mm or ax is axes[0]:
            ax.set_ylabel("MPJPE (mm)" if mm else "AP (%)")
    axes[-1].legend(fontsize=8)
    if title:
        fig.suptitle(title)
    return save_figure(fig, path)
