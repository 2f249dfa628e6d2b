"""The default score threshold of ``orpose predict`` per downscale factor, chosen on labelled
images that are not the OR test frames.

    python benchmarks/score_thresholds.py --gt GT.json --pred 1=pred_1x.json --pred 8=pred_8x.json \
        [--pred 12=...] [--min-precision 0.8]

The prediction files are ``orpose eval --model`` outputs (every detection, score threshold 0).
For each factor it prints the recall and precision of the people shown at each candidate
threshold (orpose.evaluation.shown: one-to-one matches at box IoU >= 0.5) and the lowest
candidate whose precision is at least ``--min-precision``: the rule behind
``orpose.evaluation.shown.SCORE_THRESHOLDS``. ``--ceiling`` also prints, per factor, the highest
recall any threshold (0.01 to 0.99) reaches at that precision: what the ranking of the
candidates allows, whatever the threshold.
"""

from __future__ import annotations

import argparse
import json

from orpose.data.coco import load_pose_dataset
from orpose.evaluation.shown import shown_people

CANDIDATES = (0.1, 0.12, 0.15, 0.17, 0.2, 0.25, 0.3, 0.4, 0.5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gt", required=True)
    parser.add_argument("--pred", action="append", required=True, metavar="S=FILE")
    parser.add_argument("--min-precision", type=float, default=0.8)
    parser.add_argument("--ceiling", action="store_true", help="the best threshold's recall too")
    args = parser.parse_args()
    gt = load_pose_dataset(args.gt)
    print(f"{args.gt}: {len(gt.images)} images; recall / precision (%) of the people shown")
    print("| factor | " + " | ".join(f"{t:g}" for t in CANDIDATES) + " | chosen |")
    print("|---" * (len(CANDIDATES) + 2) + "|")
    for spec in args.pred:
        factor, path = spec.split("=", 1)
        with open(path) as f:
            results = json.load(f)
        shown = [shown_people(gt, results, t) for t in CANDIDATES]
        cells = [f"{100 * s.recall:.0f} / {100 * s.precision:.0f}" for s in shown]
        chosen = next((s.threshold for s in shown if s.precision >= args.min_precision), None)
        print(f"| {factor}x | " + " | ".join(cells) + f" | {chosen} |")
        if args.ceiling:
            fine = [shown_people(gt, results, t / 100) for t in range(1, 100)]
            ok = [s for s in fine if s.precision >= args.min_precision]
            best = max(ok, key=lambda s: s.recall, default=None)
            print(
                f"  {factor}x ceiling: no threshold keeps precision >= {args.min_precision:g}"
                if best is None
                else f"  {factor}x ceiling: recall {100 * best.recall:.1f}% at precision "
                f"{100 * best.precision:.1f}% (threshold {best.threshold:g})"
            )


if __name__ == "__main__":
    main()
