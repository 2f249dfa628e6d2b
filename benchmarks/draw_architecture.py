"""Draw docs/img/architecture.png: the package's floors and the files between its stages.

    python benchmarks/draw_architecture.py [--out docs/img/architecture.png]

Left: the floors of ``orpose.FLOORS`` (a module imports its own floor and the floors below;
tests/test_architecture.py checks it). Right: the data's path, each stage a verb, each arrow the
file it hands on. docs/architecture.md has the same as text.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

from orpose import FLOORS

ROOT = Path(__file__).resolve().parents[1]

# one line per floor of orpose.FLOORS, bottom first
FLOOR_TEXT = (
    "base: errors, atomic, jsonl, paths, skeleton, heatmaps, scales, config, manifest,\n"
    "registry, onnx_session, cpu_threads, safe_checkpoint (the one torch.load / save),\n"
    "compat_torchvision, viz",
    "data: COCO / MVOR files, image sources, low-resolution degradation",
    "lifting: 2D-to-3D lifter trained on motion capture; the official ORPose lifter",
    "teacher: manifest + adapters (ONNX detector, pose model) -> pseudo labels",
    "student: the families and their registry, heads, losses",
    "checkpoints + predictor: checkpoint formats (orpose, torchvision,\n"
    "official detectron2); the student as a function of an image",
    "training: distillation of the pseudo labels",
    "evaluation: COCO AP, MPJPE",
    "inference: orpose predict, privacy mode, tracking, ONNX runner",
    "export: ONNX / TorchScript, agreement check, FLOPs",
    "workflow + commands + api: demo, experiment, bench; the verbs' dispatch; the Python API",
    "cli: the entry point",
)
COLOURS = ("#d9d9d9", "#c6dbef", "#c7e9c0", "#fdd0a2", "#dadaeb", "#e5d8bd", "#fcbba1",
           "#d4b9da", "#a1d99b", "#9ecae1", "#fdae6b", "#bdbdbd")  # fmt: skip

# (stage, x, y) of the data path, and the files on its arrows
STAGES = {
    "data": (1.0, 6.6),
    "lifting": (4.6, 6.6),
    "teacher": (2.8, 5.0),
    "training\n(student)": (2.8, 3.4),
    "evaluation": (0.9, 1.8),
    "inference": (2.8, 1.8),
    "export": (4.7, 1.8),
}
INPUTS = [
    ("COCO / MVOR json,\nimages, videos", (1.0, 7.8), "data"),
    ("CMU mocap (BVH)", (4.6, 7.8), "lifting"),
    ("models.yaml +\nONNX models", (5.4, 5.0), "teacher"),
]
FLOWS = [
    ("data", "teacher", "images, COCO-17 json,\nlow-res copies"),
    ("lifting", "teacher", "lifter.pt"),
    ("teacher", "training\n(student)", "labels.json (soft/hard 2D,\nsoft/hard 3D)"),
    ("training\n(student)", "evaluation", "last.pt"),
    ("training\n(student)", "inference", "last.pt"),
    ("training\n(student)", "export", "last.pt"),
    ("export", "inference", "student.onnx"),
]
OUTPUTS = [
    ("evaluation", (0.9, 0.55), "metrics.csv / .json,\nap_vs_scale.png"),
    ("inference", (2.8, 0.55), "results.json, images.json,\noverlays, 3D plots"),
    ("export", (4.7, 0.55), "agreement report,\nGFLOPs"),
]


def _box(ax, xy, text, colour, width=1.5, height=0.62, size=9):
    x, y = xy
    corner = (x - width / 2, y - height / 2)
    ax.add_patch(FancyBboxPatch(corner, width, height, boxstyle="round,pad=0.04", fc=colour,
                                ec="#333333", lw=1))  # fmt: skip
    ax.text(x, y, text, ha="center", va="center", fontsize=size, weight="bold")


def _arrow(ax, start, end, label="", colour="#333333", offset=(0.0, 0.0)):
    ax.add_patch(FancyArrowPatch(start, end, arrowstyle="-|>", mutation_scale=12, lw=1.2,
                                 color=colour, shrinkA=22, shrinkB=22))  # fmt: skip
    if label:
        mid = ((start[0] + end[0]) / 2 + offset[0], (start[1] + end[1]) / 2 + offset[1])
        ax.text(*mid, label, ha="center", va="center", fontsize=7.5, style="italic",
                bbox={"fc": "white", "ec": "none", "alpha": 0.85, "pad": 1})  # fmt: skip


def draw(out: Path) -> Path:
    assert len(FLOOR_TEXT) == len(FLOORS), "one line of text per floor of orpose.FLOORS"
    fig, (left, right) = plt.subplots(1, 2, figsize=(15, 8.2), width_ratios=(1.05, 1))
    left.set_title("Floors: a module imports its floor and the floors below", fontsize=11)
    for i, (text, colour) in enumerate(zip(FLOOR_TEXT, COLOURS, strict=True)):
        box = FancyBboxPatch((0.02, i * 0.9 + 0.05), 0.96, 0.78, boxstyle="round,pad=0.01",
                             fc=colour, ec="#555555")  # fmt: skip
        left.add_patch(box)
        left.text(0.05, i * 0.9 + 0.44, f"{i + 1}. {text}", va="center", fontsize=8.2)
    left.annotate("", xy=(1.02, 0.3), xytext=(1.02, len(FLOORS) * 0.9 - 0.3),
                  arrowprops={"arrowstyle": "-|>", "lw": 1.5})  # fmt: skip
    left.text(1.045, len(FLOORS) * 0.45, "imports", rotation=90, va="center", fontsize=9)
    left.set_xlim(0, 1.08)
    left.set_ylim(0, len(FLOORS) * 0.9 + 0.05)
    left.axis("off")

    right.set_title("The data's path: stages talk through files", fontsize=11)
    floor_of = {"data": 1, "lifting": 2, "teacher": 3, "training\n(student)": 6,
                "evaluation": 7, "inference": 8, "export": 9}  # as in FLOOR_TEXT  # fmt: skip
    palette = {name: COLOURS[i] for name, i in floor_of.items()}
    for name, xy in STAGES.items():
        _box(right, xy, name, palette[name])
    for text, xy, stage in INPUTS:
        right.text(*xy, text, ha="center", va="center", fontsize=7.5)
        _arrow(right, xy, STAGES[stage], colour="#777777")
    for a, b, label in FLOWS:
        offset = (0.0, 0.22) if a == "export" else (0.0, 0.0)
        _arrow(right, STAGES[a], STAGES[b], label, offset=offset)
    for stage, xy, text in OUTPUTS:
        right.text(*xy, text, ha="center", va="center", fontsize=7.5)
        _arrow(right, STAGES[stage], xy, colour="#777777")
    right.text(3.0, 8.55, "workflow (orpose demo / experiment / bench) runs these verbs as "
               "recorded steps:\nsteps.jsonl, commands.sh, report.md / results.md",
               ha="center", va="center", fontsize=8)  # fmt: skip
    right.set_xlim(-0.2, 6.2)
    right.set_ylim(0.0, 9.0)
    right.axis("off")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs/img/architecture.png")
    print(f"saved {draw(parser.parse_args().out)}")


if __name__ == "__main__":
    main()
