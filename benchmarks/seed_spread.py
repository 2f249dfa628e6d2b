"""Mean and spread of one recipe trained with several seeds: what a single run can resolve.

    python benchmarks/seed_spread.py RUN1/mvor/metrics.csv RUN2/mvor/metrics.csv ... \
        [--columns box_ap keypoint_ap mpjpe_mm]

Each file is an ``orpose eval`` ``metrics.csv`` of the same evaluation set (one row per scale)
for one training seed of the same recipe (``orpose train ... --set solver.seed=N``). Prints a
Markdown table: per scale, the mean of each column and its lowest-highest value over the runs.
The seed alone moved the demo's recipe on the 61 MVOR frames by up to 3.4 box-AP points, 2.9
keypoint-AP points and 8 mm (docs/student.md), so a variant is compared by its mean over the
same seeds, not by one run.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from orpose.evaluation.report import mean_and_spread
from orpose.workflow.report_page import read_metrics


def spread(files: list[Path], columns: list[str]) -> dict[str, dict[str, tuple[float, ...]]]:
    """Per scale and column: (mean, lowest, highest) over the files' values (the summary that
    ``orpose experiment`` makes of a run with ``seeds``)."""
    runs = [read_metrics(f) for f in files]
    for f, run in zip(files, runs, strict=True):
        missing = [c for c in columns if not run or c not in run[0]]
        if missing:
            raise SystemExit(f"{f}: no column {missing[0]!r}")
    means, spreads = mean_and_spread(runs)
    return {
        mean["scale"]: {c: (mean[c], *low_high[c]) for c in columns}
        for mean, low_high in zip(means, spreads, strict=True)
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("metrics", type=Path, nargs="+", help="metrics.csv of each seed's run")
    parser.add_argument("--columns", nargs="+", default=["box_ap", "keypoint_ap", "mpjpe_mm"])
    args = parser.parse_args(argv)
    missing = [str(f) for f in args.metrics if not f.is_file()]
    if missing:
        print(f"seed_spread: no such file: {missing[0]}", file=sys.stderr)
        return 2
    table = spread(args.metrics, args.columns)
    print(f"{len(args.metrics)} runs; per scale {' / '.join(args.columns)}: mean (lowest-highest)")
    print("| | " + " | ".join(table) + " |")
    print("|---" * (len(table) + 1) + "|")
    means = [" / ".join(f"{v[0]:.1f}" for v in cells.values()) for cells in table.values()]
    ranges = [" / ".join(f"{v[1]:.1f}-{v[2]:.1f}" for v in cells.values())
              for cells in table.values()]  # fmt: skip
    print("| mean | " + " | ".join(means) + " |")
    print("| spread | " + " | ".join(ranges) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
