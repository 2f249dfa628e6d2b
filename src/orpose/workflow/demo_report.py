"""The demo's report: ``<out>/report.md`` with its pictures in ``<out>/report/``.

Everything is read back from the files the demo's commands wrote (metrics.csv, predictions,
pseudo labels, the training log), so the page shows what the stages produced, nothing typed in.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

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


def pseudo_label_summary(path: Path) -> str:
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
    from orpose.data.coco import load_pose_dataset
    from orpose.data.lowres import degrade
    from orpose.data.sources import read_image_rgb
    from orpose.evaluation.predictions import load_predictions

    d = opts.out
    gt = load_pose_dataset(d / "data/val.json")
    lines = []
    for scale in sorted({min(opts.scales), max(opts.scales)}):
        tag = f"{scale:g}x"
        teacher = load_predictions(d / f"teacher/val_{tag}.json", gt)
        student = load_predictions(d / f"eval/student/pred_{tag}.json", gt)
        row = []
        for img in gt.images[:SAMPLE_IMAGES]:
            image = degrade(read_image_rgb(gt.image_path(img)), scale)
            for who, results in (("teacher", teacher), ("student", student)):
                mine = [r for r in results if r["image_id"] == img["id"]]
                path = report_dir / "samples" / f"{img['id']}_{tag}_{who}.jpg"
                draw_results(image, mine, path, min_score=0.3)
                row.append(image_link(path, d, f"{who} {tag}", width=260))
        lines.append(f"**{tag}** (teacher, student; people scoring >= 0.3):\n\n" + " ".join(row))
    return lines


def scale_people(people: list[dict], fx: float, fy: float) -> list[dict]:
    """People (bbox, keypoints) moved from one image size to another."""
    scaled = []
    for p in people:
        x, y, w, h = p["bbox"]
        kps = np.asarray(p.get("keypoints_soft") or p["keypoints"], dtype=float).reshape(-1, 3)
        kps[:, 0] *= fx
        kps[:, 1] *= fy
        scaled.append(
            {**p, "bbox": [x * fx, y * fy, w * fx, h * fy], "keypoints": kps.ravel().tolist()}
        )
    return scaled


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
    import cv2

    from orpose.data.sources import read_image_rgb
    from orpose.inference.render import plot_people_3d

    pred = opts.out / "or_predictions"
    images = json.loads((pred / "images.json").read_text())["images"]
    results = json.loads((pred / "results.json").read_text())
    teacher = teacher_by_file(opts.out / "teacher/or12x.json")
    by_image: dict[int, list[dict]] = {}
    for r in results:
        by_image.setdefault(r["image_id"], []).append(r)
    picks = np.linspace(0, len(images) - 1, min(OR_SAMPLES, len(images))).round().astype(int)
    lines = []
    for i in sorted(set(picks.tolist())):
        img = images[i]
        size = (img["width"], img["height"])
        small = read_image_rgb(img["file_name"])
        network_view = cv2.resize(small, size, interpolation=cv2.INTER_LINEAR)
        name = Path(img["file_name"]).name
        stem = Path(name).stem
        fx, fy = size[0] / small.shape[1], size[1] / small.shape[0]
        teacher_people = scale_people(teacher.get(name, []), fx, fy)
        people = by_image.get(img["id"], [])
        cells = []
        for who, found in (("teacher", teacher_people), ("student", people)):
            drawn = draw_results(
                network_view, found, report_dir / "or12x" / f"{stem}_{who}.jpg", 0.3
            )
            cells.append(image_link(drawn, opts.out, f"{who}, frame {stem}", width=300))
        best = sorted((r for r in people if r["score"] >= 0.5), key=lambda r: -r["score"])
        plot = plot_people_3d(
            report_dir / "or12x" / f"{stem}_3d.png",
            best[:PLOT3D_PEOPLE],
            size,
            title=f"frame {stem}: student 3D (root-relative)",
        )
        if plot is not None:
            cells.append(image_link(plot, opts.out, f"3D {stem}", width=300))
        lines.append(" ".join(cells))
    counts = [sum(r["score"] >= 0.3 for r in by_image.get(img["id"], [])) for img in images]
    teacher_counts = [
        sum(p.get("score", 1) >= 0.3 for p in teacher.get(Path(img["file_name"]).name, []))
        for img in images
    ]
    first = images[0]
    size_text = f"{first.get('lowres_width')}x{first.get('lowres_height')}"
    lines.insert(
        0,
        f"{len(images)} frames of {size_text} pixels; people per frame (score >= 0.3): teacher "
        f"{np.mean(teacher_counts):.1f}, student {np.mean(counts):.1f}. Left: teacher, middle: "
        "student, right: the student's 3D of its (at most four) people scoring >= 0.5.",
    )
    return lines


def write_demo_report(
    opts, steps: Sequence[Step], records: Sequence[StepRecord], seconds: float
) -> Path:
    """Write ``<out>/report.md``; returns its path."""
    from orpose.viz.charts import plot_models_versus_scale

    d = opts.out
    report_dir = d / "report"
    report_dir.mkdir(parents=True, exist_ok=True)
    models = {
        f"teacher ({opts.teacher_preset})": read_metrics(d / "eval/teacher/metrics.csv"),
        f"student ({opts.iterations} iterations)": read_metrics(d / "eval/student/metrics.csv"),
    }
    scales = [f"{s:g}x" for s in opts.scales]
    chart = plot_models_versus_scale(
        models, report_dir / "ap_vs_scale.png", f"{opts.val_images} images of coco_person_val500"
    )
    loss_png = report_dir / "loss_curves.png"
    shutil.copyfile(d / "student/loss_curves.png", loss_png)
    pseudo = sorted((report_dir / "pseudo_labels").glob("*.png"))
    config = (d / "student/config.yaml").read_text()
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
        f"{pseudo_label_summary(d / 'labels/train.json')}",
        "2. The CPU student (one network built from the teacher's own pretrained models: the "
        "PicoDet detector, RoIAlign crops, the TinyPose trunk with the paper's two heatmap "
        f"branches, two lifters) trained {opts.iterations} iterations of 16 person crops and 4 "
        "images, each degraded at a random factor of the ORPose_all schedule (1x to 12x), "
        "against the teacher's outputs on the same crops and images at full resolution and "
        "against the soft and hard pseudo labels. Untrained, it equals the single-pass teacher.",
        f"3. Both were scored on {opts.val_images} real labelled images (coco_person_val500) "
        "degraded at each factor, and the student predicted real 12x operating-room frames.",
        "## Teacher and student at each downscale factor",
        "COCO AP in %, as in the paper's tables (MPJPE needs 3D ground truth, which these images "
        "do not have).\n\n" + metrics_table(models, scales),
        image_link(chart, d, "AP versus downscale factor"),
        "How to read it: the student starts as the single-pass teacher; what the minutes of "
        "training change is low resolution (8x-12x), where the teacher was never trained, while "
        f"1x should stay close. {opts.val_images} images give noisy AP "
        "(a few points); docs/student.md has the longer CPU recipe on all 500 images, and "
        "`orpose demo --iterations N` trains longer.",
        "## Training curves",
        image_link(loss_png, d, "student loss curves"),
        "## Pseudo labels (soft set drawn)",
        " ".join(image_link(p, d, p.stem, width=260) for p in pseudo),
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
