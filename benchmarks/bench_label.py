"""Labelling throughput of the teacher on this machine: images/s and people/s per preset.

Runs the real ``orpose label`` engine (reading, teacher, journal, file assembly) on the first N
images of a folder, once per preset, after a short warm-up, and prints one line per preset.

    python benchmarks/bench_label.py                      # 50 images of coco_person_val500
    python benchmarks/bench_label.py --images DIR --count 100 --presets single full --threads 2
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

from orpose.workflow.bench import machine


def link_first_images(source: Path, count: int, folder: Path) -> int:
    """Symlink the first ``count`` images of ``source`` into ``folder`` (the run's input)."""
    from orpose.data.sources import list_images

    images = list_images(source)[:count]
    folder.mkdir(parents=True)
    for path in images:
        (folder / path.name).symlink_to(path.resolve())
    return len(images)


def bench_preset(preset: str, inputs: Path, warmup: Path, work: Path, args) -> dict:
    from orpose.teacher.config import load_config
    from orpose.teacher.labelling import run_labelling
    from orpose.teacher.teacher import Teacher

    teacher = Teacher.from_config(load_config(preset), args.models_dir, threads=args.threads)
    run_labelling([warmup], work / f"warmup_{preset}.json", teacher, progress=False)
    load = os.getloadavg()[0]
    started = time.perf_counter()
    summary = run_labelling([inputs], work / f"{preset}.json", teacher, progress=False)
    wall = time.perf_counter() - started
    return {
        "preset": preset,
        "images": summary.images,
        "persons": summary.persons,
        "wall": wall,
        "images_per_s": summary.images / wall,
        "people_per_s": summary.persons / wall,
        "load": load,
    }


def main() -> None:
    from orpose.onnx_session import execution_providers
    from orpose.paths import models_dir, shared_data

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=Path, help="folder of images (default: val500)")
    parser.add_argument("--count", type=int, default=50, help="images timed per preset")
    parser.add_argument("--presets", nargs="+", default=["single", "full"])
    parser.add_argument("--models-dir", type=Path, default=None)
    parser.add_argument("--threads", type=int, default=0, help="onnxruntime threads (0: default)")
    args = parser.parse_args()
    source = args.images or shared_data("coco_person_val500/images")
    args.models_dir = args.models_dir or models_dir()
    print(
        f"machine: {machine()['cpu']}, {os.cpu_count()} logical CPUs, {platform.system()}; "
        f"onnxruntime providers {execution_providers()}"
    )
    with tempfile.TemporaryDirectory(prefix="orpose_bench_") as tmp:
        work = Path(tmp)
        n = link_first_images(source, args.count, work / "images")
        warmup = work / "warmup"
        warmup.mkdir()
        first = sorted((work / "images").iterdir())[:2]
        for path in first:
            (warmup / path.name).symlink_to(path.resolve())
        print(f"{n} images from {source}")
        print(
            f"{'preset':8s} {'images':>6s} {'people':>6s} {'wall s':>8s} {'images/s':>9s} "
            f"{'people/s':>9s} {'load avg':>8s}"
        )
        for preset in args.presets:
            r = bench_preset(preset, work / "images", warmup, work, args)
            print(
                f"{r['preset']:8s} {r['images']:6d} {r['persons']:6d} {r['wall']:8.1f} "
                f"{r['images_per_s']:9.2f} {r['people_per_s']:9.2f} {r['load']:8.2f}"
            )


if __name__ == "__main__":
    main()
