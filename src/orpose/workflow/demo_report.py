"""The demo's report: ``<out>/report.md`` with its pictures in ``<out>/report/``.

Everything is read back from the files the demo's commands wrote (metrics.csv, predictions,
pseudo labels, the training log), so the page shows what the stages produced, nothing typed in.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path

import cv2
import numpy as np

from orpose.data.coco import load_pose_dataset
from orpose.data.lowres import degrade, scale_results
from orpose.data.sources import read_image_rgb
from orpose.evaluation.predictions import load_predictions
from orpose.inference.render import plot_people_3d
from orpose.scales import scale_label
from orpose.skeleton import ROOT_JOINTS, root_position, root_relative
from orpose.viz.charts import plot_models_versus_scale
from orpose.viz.draw2d import person_label
from orpose.workflow.demo_options import MVOR_CAMERA, MVOR_DAY, mvor_gt, native_scales
from orpose.workflow.report_page import (
    draw_results,
    image_link,
    machine_description,
    metrics_table,
    read_metrics,
    steps_table,
)
from orpose.workflow.steps import Step, StepRecord

SAMPLE_IMAGES = 3  # labelled images shown at 1x and at the largest scale
OR_SAMPLES = 4  # operating-room frames shown with their 3D skeletons
PLOT3D_PEOPLE = 4  # the best-scoring people (>= 0.5) drawn in 3D, side by side
PLAUSIBLE = 0.3  # people scoring at least this are drawn and counted as found
PLOT3D_SCORE = 0.5
NATIVE_ROW = "student, native low-resolution path"  # its table row and chart line
MVOR_SAMPLES = 3  # operating-room test frames drawn with the student's people
MVOR_TEST_FRAMES = 61  # ../shared/data/mvor/images: MVOR day 4, camera 3


def picture(path: Path | None, base: Path, alt: str, why: str, width: int | None = None) -> str:
    """The link to ``path``, or where it was not made, a line that says which picture is not
    there and why: the page never links (or promises) a picture that it does not have."""
    if path is not None and Path(path).is_file() and Path(path).stat().st_size > 0:
        return image_link(Path(path), base, alt, width)
    return f"*({alt}: not shown: {why})*"


def missing(path: Path, base: Path) -> str:
    """Why a picture made from ``path`` is absent: the file its step should have written."""
    return f"{os.path.relpath(path, base)} was not written (its step failed or did not run)"


def absent(paths: Sequence[Path], base: Path) -> str | None:
    """The reason of :func:`missing` for the first of ``paths`` that does not exist, if any."""
    gone = [p for p in paths if not Path(p).exists()]
    return missing(gone[0], base) if gone else None


def pseudo_label_summary(path: Path) -> str:
    if not path.is_file():
        return f"(no summary: {missing(path, path.parent.parent)})"
    data = json.loads(path.read_text())
    anns = data["annotations"]
    hard = [sum(v > 0 for v in a["keypoints"][2::3]) for a in anns]
    with_3d = sum("keypoints3d_soft" in a for a in anns)
    video = sum(
        "frame_index" in img or "#frame=" in str(img.get("orpose_key", ""))
        for img in data["images"]
    )
    return (
        f"{len(data['images'])} images ({video} of them video frames), {len(anns)} people; "
        f"on average {np.mean(hard) if hard else 0:.1f} of 17 keypoints confident enough for the "
        f"hard set; {with_3d} people lifted to 3D."
    )


def sample_comparisons(opts, report_dir: Path) -> list[str]:
    """Teacher and student on the first labelled images, at 1x and at the largest scale."""
    d = opts.out
    if not (d / "data/val.json").is_file():
        return [f"*(No labelled images shown: {missing(d / 'data/val.json', d)}.)*"]
    gt = load_pose_dataset(d / "data/val.json")
    lines = []
    for scale in sorted({min(opts.scales), max(opts.scales)}):
        tag = scale_label(scale)
        files = [d / f"teacher/val_{tag}.json", d / f"eval/student/pred_{tag}.json"]
        why = absent(files, d)
        if why is not None:
            lines.append(f"**{tag}**: *(teacher and student not shown: {why})*")
            continue
        teacher = load_predictions(files[0], gt)
        student = load_predictions(files[1], gt)
        row = []
        for img in gt.images[:SAMPLE_IMAGES]:
            try:
                image = degrade(read_image_rgb(gt.image_path(img)), scale)
            except OSError as err:
                row.append(picture(None, d, f"image {img['id']} {tag}", str(err)))
                continue
            for who, results in (("teacher", teacher), ("student", student)):
                mine = [r for r in results if r["image_id"] == img["id"]]
                path = report_dir / "samples" / f"{img['id']}_{tag}_{who}.jpg"
                draw_results(image, mine, path, min_score=PLAUSIBLE)
                row.append(picture(path, d, f"{who} {tag}", "the drawing failed", width=260))
        lines.append(
            f"**{tag}** (teacher, student; people scoring >= {PLAUSIBLE}):\n\n" + " ".join(row)
        )
    return lines


def scale_people(people: list[dict], fx: float, fy: float) -> list[dict]:
    """People (bbox, keypoints: the soft set where there is one) moved from one image size to
    another."""
    chosen = [{**p, "keypoints": p.get("keypoints_soft") or p["keypoints"]} for p in people]
    return scale_results(chosen, fx, fy)


def teacher_by_file(path: Path) -> dict[str, list[dict]]:
    """The teacher's people per image file name, from an ``orpose label`` output."""
    data = json.loads(path.read_text())
    names = {img["id"]: Path(img["file_name"]).name for img in data["images"]}
    people: dict[str, list[dict]] = {}
    for ann in data["annotations"]:
        people.setdefault(names[ann["image_id"]], []).append(ann)
    return people


def or_samples(opts, report_dir: Path) -> list[str]:
    """Teacher and student on the real 12x operating-room frames, drawn on the network's input
    (the 53x40 frame upsampled), and the student's 3D skeletons."""
    pred = opts.out / "or_predictions"
    why = absent([pred / "images.json", pred / "results.json"], opts.out)
    if why is not None:
        return [f"*(No operating-room frames shown: {why}.)*"]
    images = json.loads((pred / "images.json").read_text())["images"]
    if not images:
        return [f"*(No operating-room frames shown: {pred / 'images.json'} lists none.)*"]
    results = json.loads((pred / "results.json").read_text())
    teacher_file = opts.out / "teacher/or12x.json"
    teacher = teacher_by_file(teacher_file) if teacher_file.is_file() else {}
    no_teacher = None if teacher_file.is_file() else missing(teacher_file, opts.out)
    by_image: dict[int, list[dict]] = {}
    for r in results:
        by_image.setdefault(r["image_id"], []).append(r)
    picks = np.linspace(0, len(images) - 1, min(OR_SAMPLES, len(images))).round().astype(int)
    lines = []
    for i in sorted(set(picks.tolist())):
        img = images[i]
        size = (img["width"], img["height"])
        try:
            small = read_image_rgb(img["file_name"])
        except OSError as err:
            lines.append(picture(None, opts.out, f"frame {Path(img['file_name']).name}", str(err)))
            continue
        network_view = cv2.resize(small, size, interpolation=cv2.INTER_LINEAR)
        name = Path(img["file_name"]).name
        stem = Path(name).stem
        fx, fy = size[0] / small.shape[1], size[1] / small.shape[0]
        teacher_people = scale_people(teacher.get(name, []), fx, fy)
        people = by_image.get(img["id"], [])
        cells = []
        for who, found in (("teacher", teacher_people), ("student", people)):
            if who == "teacher" and no_teacher is not None:
                cells.append(picture(None, opts.out, f"teacher, frame {stem}", no_teacher))
                continue
            drawn = draw_results(
                network_view, found, report_dir / "or12x" / f"{stem}_{who}.jpg", PLAUSIBLE
            )
            cells.append(
                picture(drawn, opts.out, f"{who}, frame {stem}", "the drawing failed", 300)
            )
        best = sorted((r for r in people if r["score"] >= PLOT3D_SCORE), key=lambda r: -r["score"])
        plot = plot_people_3d(
            report_dir / "or12x" / f"{stem}_3d.png",
            best[:PLOT3D_PEOPLE],
            size,
            title=f"frame {stem}: student 3D, body-centred",
        )
        no_3d = f"no person of this frame scores >= {PLOT3D_SCORE} with 3D keypoints"
        cells.append(picture(plot, opts.out, f"3D {stem}", no_3d, width=300))
        lines.append(" ".join(cells))
    lines.insert(0, people_per_frame(images, by_image, teacher, no_teacher))
    return lines


def people_per_frame(
    images: list[dict],
    student: dict[int, list[dict]],
    teacher: dict[str, list[dict]],
    no_teacher: str | None,
) -> str:
    """How many plausible people (score >= PLAUSIBLE) each model finds per frame, next to all it
    wrote: raw counts mostly measure a model's score threshold, not what it found."""

    def mean_counts(per_frame: list[list[dict]]) -> tuple[float, float]:
        plausible = [sum(p.get("score", 0.0) >= PLAUSIBLE for p in f) for f in per_frame]
        return float(np.mean(plausible)), float(np.mean([len(f) for f in per_frame]))

    s_plausible, s_all = mean_counts([student.get(img["id"], []) for img in images])
    text = f"student {s_plausible:.1f} (of {s_all:.1f} written)"
    if no_teacher is None:
        names = [Path(img["file_name"]).name for img in images]
        t_plausible, t_all = mean_counts([teacher.get(n, []) for n in names])
        text = f"teacher {t_plausible:.1f} (of {t_all:.1f} written), " + text
    first = images[0]
    size_text = f"{first.get('lowres_width')}x{first.get('lowres_height')}"
    return (
        f"{len(images)} frames of {size_text} pixels. Plausible people per frame (score >= "
        f"{PLAUSIBLE}): {text}. Left: teacher, middle: student (people scoring >= {PLAUSIBLE} "
        f"drawn), right: the student's 3D of its (at most {PLOT3D_PEOPLE}) people scoring >= "
        f"{PLOT3D_SCORE}, one body-centred panel each; a missing picture says why."
    )


def _number(value, digits: int) -> str:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return "-"
    return "-" if np.isnan(number) else f"{number:.{digits}f}"


def mvor_cell(row: dict | None) -> str:
    """Box AP / keypoint AP / PCK@0.2 / MPJPE (official convention) / MPJPE matched [people
    matched] of one metrics.csv row; ``-`` where a file written before a column lacks it."""
    if not row:
        return ""
    values = [_number(row.get(key), 1) for key in ("box_ap", "keypoint_ap", "mvor_pck")]
    mpjpe, official, matched = (
        _number(row.get(k), 0) for k in ("mpjpe_mm", "mpjpe_official_mm", "mpjpe_matched_mm")
    )
    people = _number(row.get("mpjpe_matched_persons"), 0)
    return " / ".join(values) + f" / {mpjpe} ({official}) / {matched} [{people}]"


def paper_cell(numbers: tuple[float, float, float] | None) -> str:
    if numbers is None:
        return ""
    box, keypoints, mpjpe = numbers
    return f"{box:.1f} / {keypoints:.1f} / - / - ({mpjpe:.0f}) / -"


def paper_mvor() -> dict[str, dict[str, tuple[float, float, float]]]:
    """The paper's rows on MVOR+ (its re-annotated MVOR, not public; not these frames): box AP,
    keypoint AP (%), MPJPE (mm, the official evaluator's convention) per factor; ORPose_all (the
    paper's Table 2) and the teacher (1x only). The 1x MPJPEs are those `orpose lift eval` prints
    (imported here, not at the top: that module loads torch)."""
    from orpose.lifting.evaluate import PAPER_MVOR_MPJPE_MM, PAPER_STUDENT_MVOR_MPJPE_MM

    return {
        "paper, ORPose_all (MVOR+)": {
            "1x": (50.6, 55.8, PAPER_STUDENT_MVOR_MPJPE_MM),
            "8x": (49.6, 53.3, 136.0),
            "10x": (49.3, 52.1, 137.0),
            "12x": (47.5, 49.5, 138.0),
        },
        "paper, teacher (MVOR+)": {"1x": (53.81, 57.78, PAPER_MVOR_MPJPE_MM)},
    }


def mvor_table(models: dict[str, list[dict]], scales: Sequence[str]) -> str:
    """Our models (metrics.csv rows) and the paper's MVOR+ rows, one column per factor."""
    lines = ["| model | " + " | ".join(scales) + " |", "|---|" + "---|" * len(scales)]
    for name, rows in models.items():
        by_scale = {r["scale"]: r for r in rows}
        lines.append(f"| {name} | " + " | ".join(mvor_cell(by_scale.get(s)) for s in scales) + " |")
    for name, numbers in paper_mvor().items():
        cells = [paper_cell(numbers.get(s)) for s in scales]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _count_images(path: Path) -> int | None:
    return len(json.loads(path.read_text())["images"]) if path.is_file() else None


def mvor_title(opts) -> str:
    """``Operating room (MVOR, 61 frames of day 4, camera 3)``; the quick demo's few frames as
    ``3 of the 61``."""
    total = _count_images(opts.out / "data/mvor_test.json") or MVOR_TEST_FRAMES
    used = _count_images(mvor_gt(opts)) if opts.mvor_frames is not None else total
    frames = f"{total}" if used in (None, total) else f"{used} of the {total}"
    return f"Operating room (MVOR, {frames} frames of day {MVOR_DAY}, camera {MVOR_CAMERA})"


def people_summary(gt_path: Path) -> str:
    """How many annotated people the MVOR ground truth holds, and how many have 2D and 3D."""
    if not gt_path.is_file():
        return ""
    anns = json.loads(gt_path.read_text())["annotations"]
    with_2d = sum(a.get("num_keypoints", 0) > 0 for a in anns)
    with_3d = sum("keypoints3d" in a for a in anns)
    return f"; {len(anns)} annotated people, {with_2d} with 2D keypoints, {with_3d} with 3D"


def mvor_section(opts) -> list[str]:
    """The operating-room test: the table of teacher, student and the paper's rows."""
    d = opts.out
    title = f"## {mvor_title(opts)}"
    if not opts.mvor:
        return [title, "*(Not run: the demo ran with --no-mvor.)*"]
    files = {
        f"teacher ({opts.teacher_preset})": d / "eval/mvor_teacher/metrics.csv",
        f"student ({opts.iterations} iterations)": d / "eval/mvor_student/metrics.csv",
    }
    models = {name: read_metrics(p) if p.is_file() else [] for name, p in files.items()}
    gone = [f"{name}: {missing(p, d)}" for name, p in files.items() if not p.is_file()]
    note = f" *(Not measured: {'; '.join(gone)}.)*" if gone else ""
    return [
        title,
        "The labelled operating-room test frames (MVOR's own annotations, "
        f"`orpose data mvor-to-coco`{people_summary(mvor_gt(opts))}), never trained on. Each "
        "cell: box AP / keypoint AP (%, over the 8 joints MVOR shares with COCO) / MVOR's "
        "PCK@0.2 (%, its 10 upper-body joints) / MPJPE in mm (in brackets: the official "
        "evaluator's convention, the paper's; docs/evaluation.md) / MPJPE matched in mm: the "
        "same error over the people matched one-to-one in score order at OKS >= 0.5, which a "
        "low-score duplicate cannot improve (in square brackets: how many). The teacher is "
        "scored through `orpose label --downscale s`, the student through `orpose eval --model` "
        "with camera 3's intrinsics." + note,
        mvor_table(models, [scale_label(s) for s in opts.scales]),
        "The paper's rows are on MVOR+ (its re-annotated MVOR, not public), not on these frames, "
        "and its student learnt the operating room from 77k unlabelled OR images; the demo's "
        f"student, from {or_training_summary(opts)}.",
    ]


def or_training_summary(opts) -> str:
    """What operating-room frames the demo's student trained on, in words (options a caller
    does not have count as off)."""
    parts = []
    or_x, self_labelled = (
        getattr(opts, "or_x_oversample", 0),
        getattr(opts, "or_self_oversample", 0),
    )
    if or_x:
        parts.append(f"{opts.or_x_images} frames of another operating room labelled by the "
                     f"teacher ({or_x}x oversampled)")  # fmt: skip
    if self_labelled:
        parts.append(f"{opts.or_frames} 12x-only frames of the MVOR room from another camera, "
                     f"labelled by the untrained student itself ({self_labelled}x "
                     "oversampled)")  # fmt: skip
    return " and ".join(parts) if parts else "none (COCO, sports photos and a street video only)"


def mvor_samples(opts, report_dir: Path) -> list[str]:
    """A few MVOR test frames with the ground truth and the student's people at the smallest
    and largest factor (drawn on what the network saw), and one frame's people in 3D."""
    d = opts.out
    gt_path = mvor_gt(opts)
    if not opts.mvor:
        return ["*(Not run: the demo ran with --no-mvor.)*"]
    if not gt_path.is_file():
        return [f"*(No operating-room test frames shown: {missing(gt_path, d)}.)*"]
    info = json.loads(gt_path.read_text()).get("info", {})
    root = info.get("mvor_selection", {}).get("image_root")
    gt = load_pose_dataset(gt_path, image_root=root)
    if not gt.images:
        return [f"*(No operating-room test frames shown: {gt_path} lists none.)*"]
    scales = sorted({min(opts.scales), max(opts.scales)})
    student: dict[float, list[dict] | str] = {}
    for s in scales:
        pred = d / f"eval/mvor_student/pred_{scale_label(s)}.json"
        student[s] = load_predictions(pred, gt) if pred.is_file() else missing(pred, d)
    picks = np.linspace(0, len(gt.images) - 1, min(MVOR_SAMPLES, len(gt.images)))
    chosen = [gt.images[i] for i in sorted(set(picks.round().astype(int).tolist()))]
    out_dir = report_dir / "mvor"
    lines = [
        "Left: the ground truth (MVOR's annotations; box-only people as boxes), then the "
        f"student's people scoring >= {PLAUSIBLE} at "
        + " and at ".join(scale_label(s) for s in scales)
        + " (drawn on the degraded frame it was given)."
    ]
    for img in chosen:
        stem = Path(img["file_name"]).stem
        try:
            frame = read_image_rgb(gt.image_path(img))
        except OSError as err:
            lines.append(picture(None, d, f"frame {stem}", str(err)))
            continue
        truth = gt.annotations_of(img["id"])
        drawn = draw_results(frame, truth, out_dir / f"{stem}_gt.jpg", min_score=0.0)
        cells = [picture(drawn, d, f"ground truth, frame {stem}", "the drawing failed", 260)]
        for s in scales:
            tag = scale_label(s)
            found = student[s]
            if isinstance(found, str):
                cells.append(picture(None, d, f"student {tag}, frame {stem}", found))
                continue
            mine = [r for r in found if r["image_id"] == img["id"]]
            path = draw_results(degrade(frame, s), mine, out_dir / f"{stem}_{tag}.jpg", PLAUSIBLE)
            cells.append(
                picture(path, d, f"student {tag}, frame {stem}", "the drawing failed", 260)
            )
        lines.append(" ".join(cells))
    lines += mvor_3d(opts, gt, chosen, student[min(scales)], out_dir)
    return lines


def matched_3d(ann: dict, predictions: list[dict]) -> dict | None:
    """The prediction MPJPE compares with the annotated person ``ann``: among those of its frame
    with 3D, the best OKS against its 2D (:mod:`orpose.evaluation.mpjpe`); None when none has 3D."""
    from orpose.evaluation.mpjpe import oks_matrix

    preds = [r for r in predictions if r["image_id"] == ann["image_id"] and r.get("keypoints3d")]
    if not preds:
        return None
    gt2d = np.asarray(ann["keypoints"], dtype=np.float64).reshape(1, 17, 3)
    dt2d = np.asarray([r["keypoints"] for r in preds], dtype=np.float64).reshape(-1, 17, 3)
    oks = oks_matrix(gt2d, np.asarray([ann["bbox"]], dtype=np.float64), dt2d)[0]
    return preds[int(np.argmax(oks))]


def mvor_3d(opts, gt, frames: list[dict], student: list[dict] | str, out_dir: Path) -> list[str]:
    """The drawn frame with the most people annotated in 3D: the annotated 3D in camera 3's frame
    beside the student's 3D of the same people (the predictions MPJPE matches to them), each
    placed at its annotated person's mid-hips, on the joints the annotation has."""
    from orpose.viz.plot3d import place_at_root, plot_skeletons_3d

    d = opts.out

    def people_3d(img: dict) -> list[dict]:
        return [
            a
            for a in gt.annotations_of(img["id"])
            if a.get("keypoints3d")
            and (np.asarray(a["keypoints3d"]).reshape(17, 4)[list(ROOT_JOINTS), 3] > 0).all()
        ]

    img = max(frames, key=lambda i: len(people_3d(i)))
    stem = Path(img["file_name"]).stem
    anns = people_3d(img)
    tag = scale_label(min(opts.scales))
    if not anns:
        return [f"*(No 3D shown: no person of frame {stem} is annotated in 3D with both hips.)*"]
    truth = [np.asarray(a["keypoints3d"], dtype=np.float64).reshape(17, 4) for a in anns]
    shown = [t[:, 3] > 0 for t in truth]
    gt_plot = plot_skeletons_3d(
        [t[:, :3] for t in truth],
        out_dir / f"{stem}_3d_gt.png",
        visible=shown,
        title=f"frame {stem}: annotated 3D",
        scene=True,
    )
    cells = [picture(gt_plot, d, f"3D ground truth, frame {stem}", "the plot failed", 300)]
    if isinstance(student, str):
        cells.append(picture(None, d, f"student 3D {tag}, frame {stem}", student))
    else:
        poses, masks, labels = [], [], []
        for ann, t, m in zip(anns, truth, shown, strict=True):
            found = matched_3d(ann, student)
            if found is None:
                continue
            pose = root_relative(np.asarray(found["keypoints3d"]).reshape(17, 3))
            poses.append(place_at_root(pose, root_position(t[:, :3])))
            masks.append(m)
            labels.append(person_label(found) or "")
        plot = None
        if poses:
            plot = plot_skeletons_3d(
                poses,
                out_dir / f"{stem}_3d_student_{tag}.png",
                visible=masks,
                title=f"frame {stem}: student 3D at {tag}",
                labels=labels,
                scene=True,
            )
        why = f"the student wrote no person with 3D in frame {stem} at {tag}"
        cells.append(picture(plot, d, f"student 3D {tag}, frame {stem}", why, 300))
    return [
        f"Frame {stem} in 3D (camera 3's frame, metres): left, MVOR's annotated 3D (upper body); "
        f"right, the student's 3D at {tag} of the same people (for each, its prediction that "
        "MPJPE matches: the best OKS in the frame, whatever its score), placed at the annotated "
        "mid-hips (the student's 3D is root-relative), on the annotated joints; labels: scores.",
        " ".join(cells),
    ]


def write_demo_report(
    opts, steps: Sequence[Step], records: Sequence[StepRecord], seconds: float
) -> Path:
    """Write ``<out>/report.md``; returns its path."""
    from orpose.student.topdown import TopDownConfig  # its crop limits: the demo's

    d = opts.out
    report_dir = d / "report"
    report_dir.mkdir(parents=True, exist_ok=True)
    metric_files = {
        f"teacher ({opts.teacher_preset})": d / "eval/teacher/metrics.csv",
        f"student ({opts.iterations} iterations)": d / "eval/student/metrics.csv",
    }
    native = d / "eval/student_native/metrics.csv"
    models = {name: read_metrics(p) if p.is_file() else [] for name, p in metric_files.items()}
    scales = [scale_label(s) for s in opts.scales]
    no_chart = absent(list(metric_files.values()), d)
    native_note = ""
    if native_scales(opts.scales):
        models[NATIVE_ROW] = read_metrics(native) if native.is_file() else []
        native_note = (
            f' The row "{NATIVE_ROW}" is the same student given the small image as it is '
            "(`--native-lowres`: a 160x160 detector input and 128x96 person crops, about a "
            "quarter of a 1x frame's work; docs/inference.md) instead of upsampled back as in "
            "the paper's protocol" + (f" ({missing(native, d)})." if not native.is_file() else ".")
        )
    chart = None
    if no_chart is None:
        chart = plot_models_versus_scale(
            models,
            report_dir / "ap_vs_scale.png",
            f"{opts.val_images} images of coco_person_val500",
        )
    loss_png, trained_png = report_dir / "loss_curves.png", d / "student/loss_curves.png"
    if trained_png.is_file():
        shutil.copyfile(trained_png, loss_png)
    pseudo = sorted((report_dir / "pseudo_labels").glob("*.png"))
    no_pseudo = "report/pseudo_labels has no picture (its step failed or did not run)"
    config_file = d / "student/config.yaml"
    config = config_file.read_text() if config_file.is_file() else f"# {missing(config_file, d)}\n"
    now = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")

    parts = [
        "# orpose demo report",
        f"Written {now} by `orpose demo`; its steps took {seconds / 60:.1f} minutes in all."
        f"\n\nMachine: "
        f"{machine_description()}.",
        "## What ran",
        "1. The teacher (person detector, top-down 2D pose, lifter) labelled "
        f"{opts.unlabelled_images} unlabelled COCO images, {opts.pool_images} sports photos "
        f"(person_pool/lspet) and every {opts.video_step}th frame of the PETS video: "
        f"{pseudo_label_summary(d / 'labels/train.json')} The operating room in training: "
        f"{or_training_summary(opts)}.",
        "2. The CPU student (one network built from the teacher's own pretrained models: the "
        "PicoDet detector, RoIAlign crops, the TinyPose trunk with the paper's two heatmap "
        f"branches, two lifters) trained {opts.iterations} iterations of 16 person crops and 4 "
        "images, each degraded at a random factor of the ORPose_all schedule (1x to 12x), "
        "against the teacher's outputs on the same crops and images at full resolution and "
        "against the soft and hard pseudo labels. Untrained, it equals the single-pass teacher "
        f"(people at most {TopDownConfig.small_crop_max_height} px tall aside, posed on "
        f"half-size crops, and those up to {TopDownConfig.middle_crop_max_height} px, on "
        "three-quarter-size ones).",
        f"3. Both were scored on the labelled operating-room test frames (MVOR) and on "
        f"{opts.val_images} real labelled images (coco_person_val500), degraded at each factor, "
        "and the student predicted real 12x operating-room frames.",
        *mvor_section(opts),
        "## Teacher and student at each downscale factor (COCO val500)",
        "COCO AP in %, as in the paper's tables (MPJPE needs 3D ground truth, which these images "
        "do not have)." + native_note + "\n\n" + metrics_table(models, scales),
        picture(chart, d, "AP versus downscale factor", no_chart or ""),
        "How to read it: the student starts as the single-pass teacher; what the minutes of "
        "training change is low resolution (8x-12x), where the teacher was never trained, while "
        f"1x should stay close. {opts.val_images} images give noisy AP "
        "(a few points); docs/student.md has the longer CPU recipe on all 500 images, and "
        "`orpose demo --iterations N` trains longer.",
        "## Training curves",
        picture(loss_png, d, "student loss curves", missing(trained_png, d)),
        "## Pseudo labels (soft set drawn)",
        " ".join(image_link(p, d, p.stem, width=260) for p in pseudo)
        or picture(None, d, "pseudo labels", no_pseudo),
        "## The student on operating-room test frames (MVOR)",
        *mvor_samples(opts, report_dir),
        "## Teacher and student on labelled images",
        *sample_comparisons(opts, report_dir),
        "## Teacher and student on real 12x operating-room frames",
        *or_samples(opts, report_dir),
        "## Commands",
        f"Each step is an ordinary `orpose` command (also in `commands.sh`):\n\n"
        f"{steps_table(records)}",
        "## Student configuration (as trained)",
        f"```yaml\n{config}```",
    ]
    path = d / "report.md"
    path.write_text("\n\n".join(parts) + "\n")
    return path
