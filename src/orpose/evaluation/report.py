"""Per-scale evaluation reports: the paper's table (Box-AP, Keypoint2D-AP, Keypoint3D-MPJPE)."""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path

from orpose.data.coco import PoseDataset, write_json_atomic
from orpose.evaluation.coco_ap import evaluate_ap
from orpose.evaluation.mpjpe import MpjpeResult, compute_mpjpe
from orpose.evaluation.pck import PCK_THRESHOLD, PckResult, compute_mvor_pck
from orpose.evaluation.shown import ShownResult, shown_people
from orpose.scales import scale_from_label, scale_label


@dataclass
class ScaleReport:
    """Everything measured for one set of predictions (one downscale factor)."""

    scale: str  # "1x", "8x", ... or a user label
    box: dict[str, float]
    keypoints: dict[str, float]
    mpjpe: MpjpeResult | None
    num_predictions: int
    pck: PckResult | None = None  # MVOR's PCK@0.2, when the ground truth has keypoints_mvor
    shown: ShownResult | None = None  # what `orpose predict` shows at its default threshold

    def row(self) -> dict[str, float | str | int]:
        """The flat row of the paper's tables: AP in percent as the paper prints them (and
        ``mvor_pck``, MVOR's mean PCK in percent, when measured)."""
        row: dict[str, float | str | int] = {
            "scale": self.scale,
            # pycocotools' -1 (no ground truth for the measure) is NaN, printed "-", not -100
            "box_ap": _percent_or_nan(self.box["AP"]),
            "box_ap50": _percent_or_nan(self.box["AP50"]),
            "keypoint_ap": _percent_or_nan(self.keypoints["AP"]),
            "keypoint_ap50": _percent_or_nan(self.keypoints["AP50"]),
            # medium (32^2-96^2) and large (> 96^2) people; pycocotools gives -1 when the
            # ground truth has none. At 12x a medium person is a few pixels tall: most of what
            # separates 12x keypoint AP from 1x comes from them (docs/student.md)
            "keypoint_apm": _percent_or_nan(self.keypoints.get("APm", -1.0)),
            "keypoint_apl": _percent_or_nan(self.keypoints.get("APl", -1.0)),
            "mpjpe_mm": self.mpjpe.mpjpe if self.mpjpe else float("nan"),
            "mpjpe_official_mm": self.mpjpe.mpjpe_official if self.mpjpe else float("nan"),
            "mpjpe_persons": self.mpjpe.persons if self.mpjpe else 0,
            # one-to-one in score order at OKS >= 0.5: does not reward low-score candidates
            "mpjpe_matched_mm": self.mpjpe.mpjpe_matched if self.mpjpe else float("nan"),
            "mpjpe_matched_persons": self.mpjpe.persons_matched if self.mpjpe else 0,
            "predictions": self.num_predictions,
        }
        if self.pck is not None:
            row["mvor_pck"] = self.pck.mean
        if self.shown is not None:
            row["shown_recall"] = 100 * self.shown.recall
            row["shown_precision"] = 100 * self.shown.precision
        return row

    def as_dict(self) -> dict:
        out = {
            "scale": self.scale,
            "bbox": self.box,
            "keypoints": self.keypoints,
            "mpjpe": self.mpjpe.as_dict() if self.mpjpe else None,
            "predictions": self.num_predictions,
        }
        if self.pck is not None:
            out["mvor_pck"] = self.pck.as_dict()
        if self.shown is not None:
            out["shown"] = self.shown.as_dict()
        return out


def _percent_or_nan(value: float) -> float:
    return 100 * value if value >= 0 else float("nan")


def evaluate_predictions(
    gt: PoseDataset, results: list[dict], scale: float | str = 1
) -> ScaleReport:
    """Box AP, keypoint AP, (when both sides have 3D) MPJPE and (when the ground truth has
    MVOR's 10 joints, ``keypoints_mvor``) MVOR's PCK@0.2 of one prediction set."""
    ap = evaluate_ap(gt, results)
    return ScaleReport(
        scale_label(scale),
        ap["bbox"],
        ap["keypoints"],
        compute_mpjpe(gt, results),
        len(results),
        compute_mvor_pck(gt, results),
        shown_people(gt, results, factor=scale_from_label(scale_label(scale)) or 1.0),
    )


def _fmt(value: float, digits: int = 2) -> str:
    return (
        "-"
        if value is None or (isinstance(value, float) and math.isnan(value))
        else f"{value:.{digits}f}"
    )


def _shown(shown: ShownResult | None) -> str:
    """Recall / precision (%) of the people shown at the predict threshold."""
    if shown is None:
        return "-"
    return f"{_fmt(100 * shown.recall, 0)}/{_fmt(100 * shown.precision, 0)}"


def format_table(reports: list[ScaleReport]) -> str:
    """A plain-text table like the paper's Tables 1-3 (AP in %, MPJPE in mm)."""
    header = (
        "Scale",
        "Box-AP",
        "Box-AP50",
        "Keypoint2D-AP",
        "Keypoint2D-AP50",
        "Keypoint2D-APm",
        "Keypoint2D-APl",
        "Keypoint3D-MPJPE",
        "(official conv.)",
        "3D persons",
        "MPJPE matched (persons)",
        "Shown R/P",
    )
    with_pck = any(rep.pck is not None for rep in reports)
    if with_pck:
        header = (*header, f"PCK@{PCK_THRESHOLD:g}")
    rows = [header]
    for rep in reports:
        r = rep.row()
        rows.append(
            (
                str(r["scale"]),
                _fmt(r["box_ap"]),
                _fmt(r["box_ap50"]),
                _fmt(r["keypoint_ap"]),
                _fmt(r["keypoint_ap50"]),
                _fmt(r["keypoint_apm"]),
                _fmt(r["keypoint_apl"]),
                _fmt(r["mpjpe_mm"]),
                _fmt(r["mpjpe_official_mm"]),
                str(r["mpjpe_persons"]) if rep.mpjpe else "-",
                f"{_fmt(r['mpjpe_matched_mm'])} ({r['mpjpe_matched_persons']})"
                if rep.mpjpe
                else "-",
                _shown(rep.shown),
            )
        )
        if with_pck:
            rows[-1] = (*rows[-1], _fmt(r.get("mvor_pck", float("nan")), 1))
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = ["  ".join(cell.rjust(w) for cell, w in zip(row, widths, strict=True)) for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def format_per_joint(reports: list[ScaleReport]) -> str:
    """Per-joint MPJPE (mm) of each scale that has 3D results."""
    with_3d = [r for r in reports if r.mpjpe and (r.mpjpe.persons or r.mpjpe.persons_official)]
    if not with_3d:  # no 3D, or 3D ground truth but no 3D prediction
        return ""
    names = list(with_3d[0].mpjpe.per_joint)
    lines = ["MPJPE per joint (mm): " + ", ".join(names)]
    for rep in with_3d:
        values = ", ".join(_fmt(rep.mpjpe.per_joint[n], 1) for n in names)
        lines.append(f"  {rep.scale}: {values}")
    return "\n".join(lines)


def format_pck(reports: list[ScaleReport]) -> str:
    """MVOR's PCK per joint group (%), as its own script prints it, for each scale with PCK."""
    with_pck = [r for r in reports if r.pck is not None]
    if not with_pck:
        return ""
    names = list(with_pck[0].pck.groups)
    lines = [
        f"MVOR PCK@{with_pck[0].pck.threshold:g} (%): {', '.join(names)}, mean "
        "(CAMMA-public/MVOR lib/eval_pck_2dpose.py; docs/evaluation.md)"
    ]
    for rep in with_pck:
        values = ", ".join(_fmt(v, 1) for v in rep.pck.groups.values())
        lines.append(
            f"  {rep.scale}: {values}, {_fmt(rep.pck.mean, 1)} "
            f"({rep.pck.matched} of {rep.pck.persons} people matched)"
        )
    return "\n".join(lines)


def save_reports(reports: list[ScaleReport], out_dir: Path | str) -> tuple[Path, Path]:
    """Write ``metrics.json`` (everything) and ``metrics.csv`` (the table rows) into ``out_dir``."""
    out_dir = Path(out_dir)
    json_path = write_json_atomic(out_dir / "metrics.json", [r.as_dict() for r in reports])
    return json_path, write_rows_csv([r.row() for r in reports], out_dir / "metrics.csv")


def write_rows_csv(rows: list[dict], path: Path) -> Path:
    """Table rows as a CSV file, every key of any row a column (a row without it: empty)."""
    fieldnames = list(dict.fromkeys(key for row in rows for key in row))
    with open(path, "w", newline="", encoding="utf-8", errors="backslashreplace") as f:
        writer = csv.DictWriter(f, fieldnames=fieldnames, restval="")
        writer.writeheader()
        writer.writerows(rows)
    return path


def _number(value: object) -> float:
    """A metrics cell as a float: an empty or unreadable cell (no 3D ground truth) is NaN."""
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return float("nan")


def mean_and_spread(runs: list[list[dict]]) -> tuple[list[dict], list[dict]]:
    """The rows of one recipe's ``metrics.csv`` over several training seeds, summarised: per
    scale found in every run, the mean of each column (``seeds``: how many runs), and the
    (lowest, highest) pair of each column. A single run resolves nothing finer than its seed's
    spread (up to 3 AP points and 8 mm on the 61 MVOR frames, docs/student.md), so recipes are
    compared by these means."""
    if not runs:
        return [], []
    by_scale = [{row["scale"]: row for row in run} for run in runs]
    scales = [s for s in by_scale[0] if all(s in run for run in by_scale)]
    columns = [c for c in runs[0][0] if c != "scale" and all(c in run[0] for run in runs if run)]
    means, spreads = [], []
    for scale in scales:
        mean: dict = {"scale": scale}
        spread: dict = {"scale": scale}
        for column in columns:
            values = [_number(run[scale].get(column)) for run in by_scale]
            mean[column] = float(sum(values) / len(values))
            known = not any(map(math.isnan, values))
            spread[column] = (min(values), max(values)) if known else (math.nan, math.nan)
        mean["seeds"] = len(runs)
        means.append(mean)
        spreads.append(spread)
    return means, spreads


def save_seed_summary(means: list[dict], spreads: list[dict],
                      out_dir: Path | str) -> tuple[Path, Path]:  # fmt: skip
    """``metrics.csv`` of the means (read like any evaluation's) and ``metrics_spread.csv``
    (``COLUMN_lowest``, ``COLUMN_highest`` per scale) of :func:`mean_and_spread`, in ``out_dir``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    flat = []
    for row in spreads:
        flat.append({"scale": row["scale"]})
        for column, (lowest, highest) in ((c, v) for c, v in row.items() if c != "scale"):
            flat[-1].update({f"{column}_lowest": lowest, f"{column}_highest": highest})
    return (write_rows_csv(means, out_dir / "metrics.csv"),
            write_rows_csv(flat, out_dir / "metrics_spread.csv"))  # fmt: skip
