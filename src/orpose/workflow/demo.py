"""``orpose demo``: the whole method, small, on the shared data, in minutes on a CPU.

teacher labels unlabelled images and video frames -> a lifter is trained (or loaded) -> the CPU
student (PicoDet + TinyPose, built from the teacher's own models, configs/cpu_student.yaml) learns
low resolution by distillation (ORPose_all schedule) -> teacher and
student are scored on real labelled images (COCO val500) and on the labelled operating-room test
frames (MVOR day 4, camera 3; box/keypoint AP, PCK, MPJPE) at 1x/8x/10x/12x -> the student predicts
the real 12x operating-room frames -> a report folder with tables, charts, overlays and 3D
skeletons.

Every step calls a stage's function with typed arguments and is recorded as the ordinary
``orpose`` command it equals (see :mod:`orpose.workflow.steps`), so the report's commands can be
rerun by hand and an interrupted demo resumes.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from orpose.paths import configs_dir, shared_dir
from orpose.scales import scale_label, scale_tag
from orpose.workflow import stages
from orpose.workflow.demo_options import (
    MVOR_ANNOTATIONS,
    MVOR_CAMERA,
    MVOR_DAY,
    MVOR_IMAGES,
    DemoOptions,
    mvor_gt,
    native_scales,
)
from orpose.workflow.steps import Step, StepRunner, call, write_commands

DEMO_CONFIG = "cpu_student.yaml"  # the default CPU student (docs/student.md)


def student_eval_step(
    name: str, checkpoint: Path, val: Path, scales: list[float], max_detections: int,
    options: dict[str, Any], out: Path, why: str,
) -> Step:  # fmt: skip
    """``orpose eval`` of the student checkpoint on the labelled images at ``scales``;
    ``options``: more of the verb's options by name (True: a flag)."""
    flags = [
        a
        for key, value in options.items()
        for a in ([f"--{key.replace('_', '-')}"] + ([] if value is True else [value]))
    ]
    argv = ["eval", "--gt", val, "--model", checkpoint, "--scales", *scales,
            "--max-detections", max_detections, *flags, "--out", out, "--no-plot"]  # fmt: skip
    scores = [float(s) for s in scales]
    run = call(stages.evaluate, val, out, model=checkpoint, plot=False, scales=scores,
               max_detections=max_detections, **options)  # fmt: skip
    return Step(name, argv, [out / "metrics.csv"], why, run)


def mvor_data_steps(opts: DemoOptions, data: Path) -> list[Step]:
    """MVOR's annotations of the test frames as COCO ground truth (and its first frames)."""
    full, gt = opts.out / "data/mvor_test.json", mvor_gt(opts)
    images = data / MVOR_IMAGES
    convert = ["data", "mvor-to-coco", "--mvor", data / MVOR_ANNOTATIONS, "--days", MVOR_DAY,
               "--cameras", MVOR_CAMERA, "--images", images, "--out", full]  # fmt: skip
    steps = [
        Step(
            "mvor-gt",
            convert,
            [full],
            "the operating-room test frames' annotations (2D, MVOR's 10 joints, 3D) as COCO",
            call(
                stages.mvor_to_coco,
                full,
                mvor=data / MVOR_ANNOTATIONS,
                days=[MVOR_DAY],
                cameras=[MVOR_CAMERA],
                images=images,
            ),
        )
    ]
    if gt != full:
        subset = ["data", "subset", full, "--num", opts.mvor_frames, "--images", images,
                  "--with-keypoints", "--out", gt]  # fmt: skip
        steps.append(
            Step(
                "mvor-subset",
                subset,
                [gt],
                "the first operating-room test frames with annotated keypoints",
                call(stages.subset, full, opts.mvor_frames, gt, images=images, with_keypoints=True),
            )
        )
    return steps


def mvor_eval_steps(opts: DemoOptions, data: Path, lifter: Path, checkpoint: Path) -> list[Step]:
    """Teacher (one ``orpose label`` per factor, then ``orpose eval --pred``) and student
    (``orpose eval --model``, MVOR camera 3's intrinsics for 3D) on the MVOR test frames."""
    d, gt, images = opts.out, mvor_gt(opts), data / MVOR_IMAGES
    steps, preds, pred_files = [], [], {}
    for s in opts.scales:
        pred = d / f"teacher/mvor_{scale_label(s)}.json"
        preds += ["--pred", f"{scale_tag(s)}={pred}"]
        pred_files[scale_tag(s)] = pred
        label = ["label", gt, "--images", images, "--downscale", s, "--preset", opts.teacher_preset,
                 "--lifter", lifter, "--out", pred, "--no-progress"]  # fmt: skip
        steps.append(
            Step(
                f"teacher-mvor-{scale_label(s)}",
                label,
                [pred],
                f"the teacher on the operating-room test frames degraded {scale_label(s)}",
                call(
                    stages.label,
                    [gt],
                    pred,
                    images=images,
                    downscale=float(s),
                    preset=opts.teacher_preset,
                    lifter=lifter,
                    progress=False,
                ),
            )
        )
    out = d / "eval/mvor_teacher"
    steps.append(
        Step(
            "teacher-mvor-eval",
            ["eval", "--gt", gt, "--images", images, *preds, "--out", out, "--no-plot"],
            [out / "metrics.csv"],
            "the teacher's box AP, keypoint AP, MVOR PCK and MPJPE in the operating room",
            call(stages.evaluate, gt, out, pred=pred_files, images=images, plot=False),
        )
    )
    camera = f"{data / MVOR_ANNOTATIONS}:{MVOR_CAMERA}"
    steps.append(
        student_eval_step(
            "student-mvor-eval", checkpoint, gt, opts.scales, opts.max_detections,
            {"images": images, "proposals": 300, "camera": camera},
            d / "eval/mvor_student",
            "the student's box AP, keypoint AP, MVOR PCK and MPJPE in the operating room",
        )
    )  # fmt: skip
    return steps


def operating_room_steps(
    opts: DemoOptions, data: Path, lifter: Path, or12: Path, steps: list[Step]
) -> list[Path]:
    """Append the steps that label operating-room frames for training; returns the training
    files they add (each repeated by its oversampling)."""
    d, files = opts.out, []
    if opts.or_x_oversample:
        or_x, or_x_labels = d / "data/or_x.json", d / "labels/or_x.json"
        steps.append(Step(
            "or-x-subset", ["data", "subset", data / "or_x", "--num", opts.or_x_images,
                            "--out", or_x], [or_x],
            "frames of another operating room (OR-X), unlabelled",
            call(stages.subset, data / "or_x", opts.or_x_images, or_x)))  # fmt: skip
        steps.append(Step(
            "or-x-labels", ["label", or_x, "--preset", opts.teacher_preset, "--lifter", lifter,
                            "--out", or_x_labels, "--no-progress"], [or_x_labels],
            "the teacher's pseudo labels of the other operating room",
            call(stages.label, [or_x], or_x_labels, preset=opts.teacher_preset, lifter=lifter,
                 progress=False)))  # fmt: skip
        files += [or_x_labels] * opts.or_x_oversample
    if opts.or_self_oversample:
        untrained, self_labels = d / "untrained", d / "labels/or12x_self.json"
        overrides = ["solver.iterations=0", f"data.train=[{d / 'labels/train.json'}]",
                     f"init_lifter={lifter}"]  # fmt: skip
        steps.append(Step(
            "untrained-student", ["train", configs_dir() / DEMO_CONFIG, "--out", untrained,
                                  *[a for o in overrides for a in ("--set", o)]],
            [untrained / "last.pt"],
            "the student before training (the single-pass teacher as one network)",
            call(stages.train, configs_dir() / DEMO_CONFIG, untrained, overrides)))  # fmt: skip
        steps.append(Step(
            "or-12x-self-labels", ["self-label", untrained / "last.pt", or12,
                                   "--stored-downscale", 12, "--out", self_labels,
                                   "--no-progress"], [self_labels],
            "the MVOR room's 12x-only frames, labelled by the student itself "
            "(flip-consistent people only)",
            call(stages.self_label, untrained / "last.pt", [or12], self_labels,
                 stored_downscale=12.0, progress=False)))  # fmt: skip
        files += [self_labels] * opts.or_self_oversample
    return files


def demo_steps(opts: DemoOptions, data: Path) -> list[Step]:
    """The demo's steps, in order; paths under ``opts.out``."""
    d = opts.out
    unlabelled, val, or12 = d / "data/unlabelled.json", d / "data/val.json", d / "data/or12x.json"
    pool = d / "data/pool.json"
    lifter = opts.lifter or d / "lifter/lifter.pt"
    labels = d / "labels/train.json"
    student = d / "student"
    unlabelled_pool = data / "coco_person_unlabeled300/images"
    val500 = data / "coco_person_val500/person_keypoints.json"
    steps = [
        Step(
            "unlabelled-subset",
            [
                "data",
                "subset",
                unlabelled_pool,
                "--num",
                opts.unlabelled_images,
                "--out",
                unlabelled,
            ],
            [unlabelled],
            "a fixed part of the unlabelled image pool",
            call(stages.subset, unlabelled_pool, opts.unlabelled_images, unlabelled),
        ),
        Step(
            "pool-subset",
            [
                "data",
                "subset",
                data / "person_pool/lspet",
                "--num",
                opts.pool_images,
                "--out",
                pool,
            ],
            [pool],
            "more unlabelled people, in varied poses",
            call(stages.subset, data / "person_pool/lspet", opts.pool_images, pool),
        ),
        Step(
            "val-subset",
            [
                "data",
                "subset",
                val500,
                "--num",
                opts.val_images,
                "--with-keypoints",
                "--out",
                val,
            ],
            [val],
            "real images with human keypoint labels, only to measure AP",
            call(stages.subset, val500, opts.val_images, val, with_keypoints=True),
        ),
        Step(
            "or-subset",
            ["data", "subset", data / "or_lowres_12x", "--num", opts.or_frames, "--out", or12],
            [or12],
            "real operating-room frames, already 12x downsampled (53x40)",
            call(stages.subset, data / "or_lowres_12x", opts.or_frames, or12),
        ),
    ]
    if opts.mvor:
        steps += mvor_data_steps(opts, data)
    if opts.lifter is None:
        steps.append(
            Step(
                "lifter",
                [
                    "lift",
                    "train",
                    "--out",
                    lifter,
                    "--epochs",
                    opts.lifter_epochs,
                    "--hidden",
                    opts.lifter_hidden,
                    "--no-progress",
                ],
                [lifter],
                "the 2D-to-3D lifter, trained on CMU motion capture",
                call(
                    stages.lift_train,
                    lifter,
                    epochs=opts.lifter_epochs,
                    hidden=opts.lifter_hidden,
                    progress=False,
                ),
            )
        )
    video = data / "pets09_s2l1/vtest_480x360.avi"
    steps.append(
        Step(
            "teacher-labels",
            [
                "label",
                unlabelled,
                pool,
                video,
                "--video-step",
                opts.video_step,
                "--preset",
                opts.teacher_preset,
                "--lifter",
                lifter,
                "--out",
                labels,
            ],
            [labels],
            "the teacher's soft and hard pseudo labels, 2D and 3D",
            call(
                stages.label,
                [unlabelled, pool, video],
                labels,
                video_step=opts.video_step,
                preset=opts.teacher_preset,
                lifter=lifter,
            ),
        )
    )
    train_files = [labels, *operating_room_steps(opts, data, lifter, or12, steps)]
    pictures = d / "report/pseudo_labels"
    steps.append(
        Step(
            "pseudo-label-pictures",
            ["data", "show", labels, "--num", 6, "--field", "keypoints_soft", "--out", pictures],
            [pictures],
            "what the student learns from",
            call(stages.show, labels, pictures, num=6, field="keypoints_soft"),
        )
    )
    overrides = [
        f"data.train=[{','.join(str(f) for f in train_files)}]",
        f"solver.iterations={opts.iterations}",
        f"solver.warmup_iterations={min(20, max(1, opts.iterations // 5))}",
        f"solver.checkpoint_every={max(1, min(50, opts.iterations))}",
        f"init_lifter={lifter}",
    ]
    steps.append(
        Step(
            "student-train",
            [
                "train",
                configs_dir() / DEMO_CONFIG,
                "--out",
                student,
                "--resume",
                *[a for o in overrides for a in ("--set", o)],
            ],
            [student / "last.pt"],
            "the student learns low resolution from the teacher (ORPose_all schedule)",
            call(stages.train, configs_dir() / DEMO_CONFIG, student, overrides, resume=True),
        )
    )
    teacher_preds = {}
    for s in opts.scales:
        pred = d / f"teacher/val_{scale_label(s)}.json"
        teacher_preds[scale_tag(s)] = pred
        steps.append(
            Step(
                f"teacher-val-{scale_label(s)}",
                [
                    "label",
                    val,
                    "--downscale",
                    s,
                    "--preset",
                    opts.teacher_preset,
                    "--out",
                    pred,
                    "--no-progress",
                ],
                [pred],
                f"the teacher on the labelled images degraded {scale_label(s)}",
                call(
                    stages.label,
                    [val],
                    pred,
                    downscale=float(s),
                    preset=opts.teacher_preset,
                    progress=False,
                ),
            )
        )
    steps.append(
        Step(
            "teacher-eval",
            [
                "eval",
                "--gt",
                val,
                *[a for tag, p in teacher_preds.items() for a in ("--pred", f"{tag}={p}")],
                "--out",
                d / "eval/teacher",
                "--no-plot",
            ],
            [d / "eval/teacher/metrics.csv"],
            "the teacher's AP per scale",
            call(stages.evaluate, val, d / "eval/teacher", pred=teacher_preds, plot=False),
        )
    )
    checkpoint = student / "last.pt"
    paper = student_eval_step(
        "student-eval", checkpoint, val, opts.scales, opts.max_detections,
        {"proposals": 300}, d / "eval/student", "the student's AP per scale",
    )  # fmt: skip
    steps.append(paper)
    if native_scales(opts.scales):
        native = student_eval_step(
            "student-eval-native", checkpoint, val, native_scales(opts.scales),
            opts.max_detections, {"native_lowres": True}, d / "eval/student_native",
            "the student's native low-resolution path (the small image as it is)",
        )  # fmt: skip
        steps.append(native)
    if opts.mvor:
        steps += mvor_eval_steps(opts, data, lifter, checkpoint)
    steps.append(
        Step(
            "student-or-12x",
            [
                "predict",
                checkpoint,
                or12,
                "--out",
                d / "or_predictions",
                "--score-threshold",
                0.3,
                "--proposals",
                300,
                "--no-progress",
            ],
            [d / "or_predictions/results.json"],
            "the student on real 12x operating-room frames",
            call(
                stages.predict,
                str(checkpoint),  # as the verb parses them: inputs may be cameras or URLs
                [str(or12)],
                d / "or_predictions",
                score_threshold=0.3,
                proposals=300,
                progress=False,
            ),
        )
    )
    steps.append(
        Step(
            "teacher-or-12x",
            [
                "label",
                or12,
                "--preset",
                opts.teacher_preset,
                "--lifter",
                lifter,
                "--out",
                d / "teacher/or12x.json",
                "--no-progress",
            ],
            [d / "teacher/or12x.json"],
            "the teacher on the same frames, for comparison",
            call(
                stages.label,
                [or12],
                d / "teacher/or12x.json",
                preset=opts.teacher_preset,
                lifter=lifter,
                progress=False,
            ),
        )
    )
    for step in steps:
        step.argv = [str(a) for a in step.argv]
    return steps


def run_demo(opts: DemoOptions) -> Path:
    """Run (or resume) the demo and write its report; returns the report's path."""
    from orpose.workflow.demo_report import write_demo_report  # OpenCV, matplotlib: not for --help

    if opts.shared is not None:
        os.environ["ORPOSE_SHARED"] = str(opts.shared)
    shared = shared_dir()
    data = shared / "data"
    no_mvor = "; --no-mvor leaves the operating-room test frames out"
    for needed in (
        "coco_person_unlabeled300/images",
        "person_pool/lspet",
        "coco_person_val500/person_keypoints.json",
        "pets09_s2l1/vtest_480x360.avi",
        "or_lowres_12x",
        "mocap/cmu_bvh",
        *((MVOR_ANNOTATIONS, MVOR_IMAGES) if opts.mvor else ()),
    ):
        if not (data / needed).exists():
            raise FileNotFoundError(
                f"{data / needed}: missing; the demo runs on the shared folder's data "
                "(--shared DIR or ORPOSE_SHARED; see README)"
                + (no_mvor if needed in (MVOR_ANNOTATIONS, MVOR_IMAGES) else "")
            )
    steps = demo_steps(opts, data)
    runner = StepRunner(opts.out)
    write_commands(steps, opts.out / "commands.sh", f"orpose demo, run from {Path.cwd()}")
    records = runner.run_all(steps)
    return write_demo_report(opts, steps, records, sum(r.seconds for r in records))
