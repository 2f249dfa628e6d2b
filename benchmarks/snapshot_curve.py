"""Keypoint AP of a training run's snapshots against the iteration, one line per scale.

usage: python benchmarks/snapshot_curve.py OUT.png ITERATION=EVAL_DIR [ITERATION=EVAL_DIR ...]
       [--reference NAME:SCALE=AP ...]

Each EVAL_DIR is the ``--out`` of ``orpose eval --model snapshots/iter_N.pt`` (its metrics.csv);
references (e.g. ``"teacher single:12x=12.7"``) are drawn as dashed horizontal lines.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

from orpose.viz.charts import plt, save_figure


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("out", type=Path)
    p.add_argument("runs", nargs="+", metavar="ITERATION=EVAL_DIR")
    p.add_argument("--reference", nargs="*", default=[], metavar="NAME:SCALE=AP")
    p.add_argument("--title", default="")
    args = p.parse_args()
    curves: dict[str, list[tuple[int, float]]] = {}
    for spec in args.runs:
        iteration, folder = spec.split("=", 1)
        with open(Path(folder) / "metrics.csv") as f:
            for row in csv.DictReader(f):
                curves.setdefault(row["scale"], []).append(
                    (int(iteration), float(row["keypoint_ap"]))
                )
    fig, ax = plt.subplots(figsize=(6, 3.8))
    for i, (scale, points) in enumerate(sorted(curves.items(), key=lambda kv: float(kv[0][:-1]))):
        points.sort()
        ax.plot([x for x, _ in points], [y for _, y in points], "o-", color=f"C{i}",
                label=f"student {scale}")  # fmt: skip
        for ref in args.reference:
            name, rest = ref.split(":", 1)
            ref_scale, value = rest.split("=")
            if ref_scale == scale:
                ax.axhline(float(value), color=f"C{i}", ls="--", lw=1, label=f"{name} {scale}")
    ax.set_xlabel("training iteration")
    ax.set_ylabel("keypoint AP (%)")
    ax.set_title(args.title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    print(save_figure(fig, args.out))


if __name__ == "__main__":
    main()
