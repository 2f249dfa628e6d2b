"""``orpose demo`` and ``orpose experiment``: chains of the other verbs, with a report."""

from __future__ import annotations

import argparse
from pathlib import Path

from orpose.config import cli_input_path, cli_number
from orpose.errors import UserError
from orpose.outputs import check_output_file, refuse_overwriting_inputs
from orpose.paths import shared_data
from orpose.workflow.bench import (
    CPU_STUDENT,
    PAPER,
    PEOPLE_SWEEP,
    TEACHER_SETTINGS,
    BenchPlan,
    format_table,
    lowres_ratios,
    machine,
    run_bench,
    save_report,
)
from orpose.workflow.bench_accuracy import parse_accuracy_set
from orpose.workflow.demo import run_demo
from orpose.workflow.demo_options import DemoOptions
from orpose.workflow.experiment import ExperimentError, run_experiment
from orpose.workflow.steps import StepError

_COUNT = cli_number(int, min=1, max=10**6)  # images, frames, a frame step


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "demo",
        help="the whole method, small, on the shared data: label, lift, train, eval, predict",
        description="Run the whole chain on the shared models and data (../shared, ORPOSE_SHARED "
        "or --shared): teacher pseudo labels of unlabelled images and video frames, a lifter, a "
        "short student training with low-resolution augmentation, teacher and student AP at "
        "each downscale factor on the labelled operating-room test frames (MVOR; with PCK and "
        "MPJPE) and on real labelled images, and student predictions on real 12x "
        "operating-room frames. Writes OUT/report.md (tables, charts, overlays, 3D skeletons, "
        "the exact commands and config). About 10-16 minutes on an idle 2-core CPU; rerunning "
        "resumes.",
    )
    p.add_argument("--out", type=Path, default=Path("orpose_demo"), help="[orpose_demo]")
    p.add_argument(
        "--shared",
        type=Path,
        default=None,
        help="folder holding models/ and data/ (default: $ORPOSE_SHARED, ../shared)",
    )
    p.add_argument(
        "--iterations",
        type=cli_number(int, min=1, max=10**9),
        default=None,
        help="student training iterations of 16 person crops and 4 images [300]",
    )
    p.add_argument("--unlabelled-images", type=_COUNT, default=None, help="[200]")
    p.add_argument(
        "--pool-images", type=_COUNT, default=None, help="sports photos of person_pool/lspet [400]"
    )
    p.add_argument(
        "--video-step",
        type=_COUNT,
        default=None,
        help="label every k-th frame of the PETS video [20]",
    )
    p.add_argument(
        "--val-images", type=_COUNT, default=None, help="labelled images for the AP tables [40]"
    )
    p.add_argument(
        "--scales",
        type=cli_number(float, min=1, max=1000),
        nargs="+",
        default=None,
        help="[1 8 10 12]",
    )
    p.add_argument(
        "--lifter",
        type=Path,
        default=None,
        help="use this lifter checkpoint instead of training one",
    )
    p.add_argument(
        "--teacher-preset",
        choices=("single", "full"),
        default=None,
        help="single (default, fast) or full test-time augmentation",
    )
    p.add_argument(
        "--no-mvor",
        dest="mvor",
        action="store_false",
        help="skip the operating-room test (teacher and student on the MVOR frames of the "
        "shared folder)",
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help="tiny sizes (a minute or two): checks that every stage runs; the numbers mean nothing",
    )
    p.set_defaults(func=run_demo_cli)
    register_experiment(subparsers)
    register_bench(subparsers)
    register_adapt(subparsers)


def run_demo_cli(args: argparse.Namespace) -> int:
    given = {
        key: value
        for key in (
            "mvor",
            "iterations",
            "unlabelled_images",
            "pool_images",
            "video_step",
            "val_images",
            "scales",
            "lifter",
            "teacher_preset",
            "shared",
        )
        if (value := getattr(args, key)) is not None
    }
    for key in ("iterations", "unlabelled_images", "pool_images", "video_step", "val_images"):
        if key in given and given[key] < 1:
            raise_user_error(f"--{key.replace('_', '-')} must be >= 1, got {given[key]}")
    opts = (
        DemoOptions.quick(out=args.out, **given)
        if args.quick
        else DemoOptions(out=args.out, **given)
    )
    try:
        report = run_demo(opts)
    except StepError as err:
        raise_user_error(str(err))
    print(f"\nreport: {report}")
    return 0


def raise_user_error(message: str) -> None:
    raise UserError(message)


def register_experiment(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "experiment",
        help="the paper's Tables 1-3 on your data: teacher, default student, ORPose_fixed_sx, "
        "ORPose_all and the ablations at each downscale factor",
        description="Run every run of an experiment spec (configs/experiments/*.yaml: paper.yaml "
        "full size for GPUs, cpu.yaml reduced) as ordinary orpose label/train/eval commands, "
        "resumably, and write OUT/results.md with the tables and AP-versus-scale charts.",
    )
    p.add_argument("spec", type=Path, help="experiment YAML (see configs/experiments/)")
    p.add_argument("--out", type=Path, default=None, help="[runs/experiments/<spec name>]")
    p.add_argument("--only", nargs="+", default=None, metavar="RUN", help="run only these runs")
    p.add_argument("--dry-run", action="store_true", help="print the commands, run nothing")
    p.add_argument(
        "--allow-eval-overlap",
        action="store_true",
        help="train even if the pseudo labels hold images of an evaluation set (refused otherwise)",
    )
    p.set_defaults(func=run_experiment_cli)


def run_experiment_cli(args: argparse.Namespace) -> int:
    out = args.out or Path("runs/experiments") / args.spec.stem
    try:
        path = run_experiment(args.spec, out, args.only, args.dry_run, args.allow_eval_overlap)
    except (ExperimentError, StepError) as err:
        raise_user_error(str(err))
    if not args.dry_run:
        print(f"\nresults: {path}")
    return 0


# -- bench --


def register_bench(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "bench",
        help="parameters, GFLOPs, latency and frames/s of teacher and students on real frames",
        description="Benchmark the teacher (onnxruntime) and the students (onnxruntime, "
        "PyTorch) on the same real frames at 640x480, batch 1, and on the same frames shrunk "
        "12x (53x40: the CPU student's native low-resolution path), plus the CPU student with "
        "exactly 1, 5, 10 and 20 people per frame. Speed does not depend on the weights: "
        "without --checkpoint the CPU student is timed at its start.",
    )
    p.add_argument("--frames", type=Path, default=None,
                   help="video or image folder (default: the shared PETS 2009 video)")  # fmt: skip
    p.add_argument("--count", type=_COUNT, default=10, help="timed frames per row (default 10)")
    p.add_argument(
        "--warmup",
        type=cli_number(int, min=0, max=10**6),
        default=2,
        help="untimed runs first (default 2)",
    )
    p.add_argument(
        "--students",
        nargs="*",
        default=[CPU_STUDENT],
        help=f"{CPU_STUDENT} and/or Keypoint R-CNN backbones with random weights "
        "(resnet50_fpn, resnet18_fpn, mobilenet_v3_fpn, picodet_lcnet) [cpu_student]",
    )
    p.add_argument("--checkpoint", type=Path, action="append", default=[],
                   help="a trained student to time as well (repeatable): a checkpoint, or an "
                   "exported .onnx (fp32 or int8, e.g. student.int8.onnx from orpose export "
                   "--int8; its native graph beside it is used for the 12x frames)")  # fmt: skip
    p.add_argument("--teacher", nargs="*", default=["single", "full"], dest="teacher_settings",
                   choices=TEACHER_SETTINGS, help="teacher settings [single full]")  # fmt: skip
    p.add_argument("--runtimes", nargs="+", default=["onnxruntime", "pytorch"],
                   choices=("onnxruntime", "pytorch"))  # fmt: skip
    p.add_argument("--people", type=cli_number(int, min=1, max=1000), nargs="*",
                   default=list(PEOPLE_SWEEP),
                   help="forced people per frame for the cost per person [1 5 10 20]")  # fmt: skip
    p.add_argument(
        "--threads",
        type=cli_number(int, min=0, max=1024),
        default=0,
        help="CPU threads (0: library default)",
    )
    p.add_argument("--device", default="cpu", help="PyTorch device of the students")
    p.add_argument("--student-min-score", type=cli_number(float, min=-1, max=1), default=None,
                   metavar="S",
                   help="students pose people detected with at least S (default: the "
                   "teacher's min_person_score, 0.3, so both pose the same candidates; -1: "
                   "each model's own threshold; an exported graph poses from S, or its own "
                   "threshold where higher, through its min_score input; one exported before "
                   "that input from its own)")  # fmt: skip
    p.add_argument("--quick", action="store_true",
                   help="3 frames, 1 warm-up, onnxruntime only, people 1 and 5")  # fmt: skip
    p.add_argument("--accuracy", nargs="+", default=[], metavar="SET",
                   help="after the timing, score every row as it was timed on these labelled "
                   "sets: mvor (the shared OR test frames), val500 (the shared COCO val500), "
                   "or FILE.json[,images=DIR][,camera=SPEC]: box AP / keypoint AP / MPJPE "
                   "beside the speed")  # fmt: skip
    p.add_argument(
        "--accuracy-count",
        type=_COUNT,
        default=None,
        metavar="N",
        help="score on the first N images of each set (default: all)",
    )
    p.add_argument("--lifter", type=Path, default=None,
                   help="lifter for the teacher's 3D in the accuracy columns (as orpose label "
                   "--lifter; default: no teacher MPJPE)")  # fmt: skip
    p.add_argument("--out", type=Path, default=Path("bench.json"), help="JSON report")
    p.set_defaults(func=run_bench_cli)


def run_bench_cli(args: argparse.Namespace) -> int:
    for name in ("count", "warmup"):
        if getattr(args, name) < (1 if name == "count" else 0):
            raise_user_error(f"--{name} must be >= {1 if name == 'count' else 0}")
    if any(n < 1 for n in args.people):
        raise_user_error("--people: every count must be >= 1")
    frames = args.frames or shared_data("pets09_s2l1/vtest_480x360.avi")
    if str(args.device).startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            print(f"--device {args.device}: no CUDA GPU on this machine; the GPU rows are "
                  "skipped and the students timed on the CPU")  # fmt: skip
            args.device = "cpu"
    refuse_overwriting_inputs(args.out, [frames, *args.checkpoint])
    check_output_file(args.out)  # before anything is timed
    plan = BenchPlan(
        frames=frames,
        count=args.count,
        warmup=args.warmup,
        students=tuple(args.students),
        checkpoints=tuple(args.checkpoint),
        teacher_settings=tuple(args.teacher_settings),
        runtimes=tuple(args.runtimes),
        people=tuple(args.people),
        threads=args.threads,
        device=args.device,
        shared_pool=True,
    )
    if not args.accuracy and (args.lifter is not None or args.accuracy_count is not None):
        raise_user_error("--lifter and --accuracy-count apply to --accuracy: give the sets too")
    plan.accuracy = tuple(parse_accuracy_set(spec) for spec in args.accuracy)
    plan.accuracy_count = args.accuracy_count
    if args.lifter is not None:
        if not args.lifter.is_file():
            raise_user_error(f"--lifter {args.lifter}: no such lifter checkpoint")
        plan.teacher_lifter = args.lifter
    if args.student_min_score is not None:
        plan.student_min_score = None if args.student_min_score < 0 else args.student_min_score
    if args.quick:
        plan.count, plan.warmup, plan.runtimes, plan.people = 3, 1, ("onnxruntime",), (1, 5)
    info = machine()
    print(
        f"machine: {info['cpu']}, {info['logical_cpus']} logical CPUs"
        + (f", GPU {info['gpu']}" if "gpu" in info else "")
        + f"; {plan.count} frame(s) of {frames} at 640x480, batch 1"
    )
    rows = run_bench(plan)
    print(format_table(rows))
    for name, ratio in lowres_ratios(rows).items():
        print(f"{name}: a 12x frame costs {ratio:.2f} of a 1x frame")
    print(
        f"paper (GPU, detectron2 models): teacher {PAPER['teacher']['params_m']}M parameters / "
        f"{PAPER['teacher']['gflops']} GFLOPs, student {PAPER['student']['params_m']}M / "
        f"{PAPER['student']['gflops']} GFLOPs"
    )
    print(f"saved {save_report(args.out, rows, plan)}")
    return 0


def register_adapt(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "adapt",
        help="adapt a student to your operating room from unlabelled recordings of its cameras",
        description="Label unlabelled frames or videos of your cameras (the teacher at full "
        "resolution; the student itself, flip-consistently, for frames stored only at 1/S with "
        "--stored-downscale S) and train the student further on them, oversampled and mixed "
        "with the general pool it was trained on, at every scale. Resumable; writes "
        "OUT/student/last.pt and OUT/commands.sh. See docs/workflow.md.",
    )
    p.add_argument("checkpoint", type=Path, help="the student to adapt (last.pt)")
    p.add_argument("frames", nargs="+", type=cli_input_path,
                   help="images, folders, videos, COCO files")  # fmt: skip
    p.add_argument("--out", type=Path, required=True, help="output folder")
    p.add_argument(
        "--stored-downscale",
        type=cli_number(float, min=1, max=64),
        default=1.0,
        metavar="S",
        help="the frames exist only at 1/S (e.g. 12 for 53x40 frames of a 640x480 camera): the "
        "student labels them itself [1: full resolution, the teacher labels them]",
    )
    p.add_argument(
        "--pool",
        type=Path,
        nargs="+",
        default=[],
        help="general pseudo-label files to mix in (default: the data.train of the run that "
        "wrote the checkpoint, from its config.yaml)",
    )
    p.add_argument(
        "--oversample",
        type=cli_number(int, min=1, max=1000),
        default=4,
        help="copies of the room's labels in the training set [4]",
    )
    p.add_argument(
        "--iterations",
        type=cli_number(int, min=1, max=10**7),
        default=300,
        help="training iterations [300]",
    )
    p.add_argument(
        "--allow-eval-overlap",
        action="store_true",
        help="train even on frames that are images of an evaluation set (e.g. MVOR's test "
        "camera, for a held-out split); refused otherwise",
    )
    p.add_argument(
        "--lifter",
        type=Path,
        default=None,
        help="lifter for the teacher's 3D labels (default: the run's init_lifter)",
    )
    p.add_argument(
        "--preset",
        choices=("single", "full"),
        default="single",
        help="the teacher's preset for full-resolution frames [single]",
    )
    p.add_argument(
        "--video-step",
        type=cli_number(int, min=1, max=10**6),
        default=10,
        help="every k-th video frame [10]",
    )
    p.add_argument(
        "--min-score",
        type=cli_number(float, min=0, max=1),
        default=0.3,
        help="self-labelling: person score both passes must reach [0.3]",
    )
    p.add_argument(
        "--temporal",
        action="store_true",
        help="self-labelling of consecutive recordings (with --stored-downscale): keep the "
        "people that persist over time instead of those scoring --min-score in one frame",
    )
    p.set_defaults(func=run_adapt_cli)


def run_adapt_cli(args: argparse.Namespace) -> int:
    from orpose.workflow.adapt import AdaptOptions, run_adapt

    # the numbers' ranges are the parser's (cli_number)
    opts = AdaptOptions(
        checkpoint=args.checkpoint, frames=args.frames, out=args.out,
        stored_downscale=args.stored_downscale,
        pool=args.pool, oversample=args.oversample, iterations=args.iterations,
        lifter=args.lifter, preset=args.preset, video_step=args.video_step,
        min_score=args.min_score, allow_eval_overlap=args.allow_eval_overlap,
        temporal=args.temporal,
    )  # fmt: skip
    try:
        checkpoint = run_adapt(opts)
    except StepError as err:
        raise_user_error(str(err))
    print(f"\nadapted student: {checkpoint}")
    return 0
