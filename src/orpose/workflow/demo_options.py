"""What ``orpose demo``'s steps (:mod:`orpose.workflow.demo`) and its report
(:mod:`orpose.workflow.demo_report`) both use: the demo's sizes (:class:`DemoOptions`), the
operating-room test set it scores on and the scales at which the student's native path is scored.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

# The native low-resolution path takes frames of at most 160 px (student.native_max_side): on the
# 640-px val images, downscale factors from 4 on
NATIVE_MIN_SCALE = 4


def native_scales(scales: list[float]) -> list[float]:
    """The demo's downscale factors at which the student's native path is also scored."""
    return [s for s in scales if s >= NATIVE_MIN_SCALE]


@dataclass
class DemoOptions:
    """Sizes of the demo; the defaults take 10-16 minutes on an idle 2-core CPU."""

    out: Path = Path("orpose_demo")
    shared: Path | None = None  # models/ and data/ (default: ORPOSE_SHARED, ../shared, ./shared)
    unlabelled_images: int = 200  # from coco_person_unlabeled300
    pool_images: int = 400  # from person_pool/lspet (sports photos: varied poses)
    video_step: int = 20  # every k-th frame of the PETS video (795 frames)
    val_images: int = 40  # labelled images of coco_person_val500 for the AP tables
    scales: list[float] = field(default_factory=lambda: [1, 8, 10, 12])
    lifter: Path | None = None  # an existing lifter checkpoint instead of training one
    lifter_epochs: int = 8
    lifter_hidden: int = 1024  # MPJPE on MVOR days 1-3: 256 x 3 epochs 131.5 mm, 1024 x 8 114.0
    teacher_preset: str = "single"  # "full" (test-time augmentation) is ~7x slower
    iterations: int = 300  # student iterations (16 person crops + 4 images each)
    or_frames: int = 120  # real 12x operating-room frames to predict
    max_detections: int = 20  # people per image kept by the student in evaluation
    mvor: bool = True  # score teacher and student on the MVOR operating-room test frames
    mvor_frames: int | None = None  # the first N of them (with keypoints); None: all 61
    # the operating room in training (README, "In the operating room"): another OR's frames
    # (or_x) labelled by the teacher, oversampled; the MVOR room's 12x-only frames (the first
    # or_frames of or_lowres_12x) labelled by the untrained student itself, flip-consistently
    or_x_images: int = 242
    or_x_oversample: int = 4  # 0: leave or_x out
    or_self_oversample: int = 2  # 0: leave the self-labelled 12x frames out

    @classmethod
    def quick(cls, **overrides) -> DemoOptions:
        """A one-to-two-minute run of every stage (what the test suite runs): numbers are noise."""
        sizes = dict(
            unlabelled_images=4,
            pool_images=2,
            video_step=400,
            val_images=3,
            scales=[1, 12],
            lifter_epochs=1,
            lifter_hidden=256,
            iterations=4,
            or_frames=4,
            mvor_frames=3,
            or_x_images=2,
        )
        return cls(**{**sizes, **overrides})


# The operating-room test set (../shared/data/mvor/images: 61 frames of MVOR's day 4, camera 3;
# docs/evaluation.md "MVOR from images"): evaluated on, never trained on
MVOR_DAY, MVOR_CAMERA = 4, 3
MVOR_ANNOTATIONS, MVOR_IMAGES = "mvor/camma_mvor_2018.json", "mvor/images"


def mvor_gt(opts: DemoOptions) -> Path:
    """The MVOR ground truth the demo scores on: every converted frame, or the quick subset."""
    n = opts.mvor_frames
    return opts.out / "data" / ("mvor_test.json" if n is None else f"mvor_test_{n}.json")
