"""Training samples for the top-down student: person crops and detector images, with targets.

Each iteration draws ``batch_size`` persons and ``detector_batch_size`` images of the pseudo-label
files (a pure function of the run seed and the iteration, as for the Keypoint R-CNN student, so
a resumed run sees the same data). A sample is augmented, degraded by a low-resolution factor of
the schedule (the paper's transform, on the whole image), and paired with its targets:

- a person: the student's crop of the degraded image (the teacher's crop geometry, jittered in
  scale, position and, sometimes, rotation, mirrored half of the time), the soft and hard
  pseudo-label keypoints in that crop's pixels, the teacher pose model's heatmaps of the same
  crop at FULL resolution (dense distillation), and the 2D/3D pseudo labels for the lifters;
- an image: the detector's input of the degraded (randomly cut and mirrored) image, and the
  teacher detector's per-cell scores and boxes of the same view at full resolution.

Images stored at low resolution only (an image record with ``stored_downscale`` S > 1, such as
privacy-preserving 12x recordings of an operating room, labelled by a student itself: see
:mod:`orpose.training.self_labels`) have no clean view for the teacher: their persons are upsampled
by S (the paper's protocol) and trained as they are, with the pseudo labels' own Gaussians as the
distillation target, and they teach the detector nothing.

The teacher's outputs are computed on the fly with onnxruntime from the verified model files, so
any augmentation has exact targets and nothing is cached on disk.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from orpose.data.coco import PoseDataset
from orpose.data.lowres import LowResSchedule, degrade, downsample, upsample
from orpose.heatmaps import gaussian_heatmaps
from orpose.skeleton import FLIP_INDEX, NUM_KEYPOINTS, flip_x
from orpose.student.picodet import level_shift
from orpose.training.dataset import read_training_image, soft_from_annotation

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], np.float32)
MIN_PERSON_SIDE = 8.0  # px; smaller pseudo-labelled boxes are not trained on as crops


@dataclass(frozen=True)
class Augmentation:
    """Random changes of a training sample (see ``data`` in the training config)."""

    flip: bool = True
    scale_jitter: float = 0.25  # crop size x U(1 - j, 1 + j)
    shift_jitter: float = 0.1  # crop centre moved by U(-j, j) x crop size
    rotation: float = 30.0  # degrees, U(-r, r) ...
    rotation_prob: float = 0.3  # ... for this share of the crops
    image_crop: float = 0.7  # detector images: a random cut of at least this share per side
    native_share: float = 0.5  # samples at >= native_min_scale also trained on the native path
    native_min_scale: float = 4.0


def normalise(pixels: np.ndarray) -> np.ndarray:
    """RGB uint8 ``(..., H, W, 3)`` -> ImageNet-normalised float32 ``(..., 3, H, W)``."""
    x = pixels.astype(np.float32) / 255.0
    x = (x - IMAGENET_MEAN) / IMAGENET_STD
    return np.ascontiguousarray(np.moveaxis(x, -1, -3))


def crop_matrix(
    box: np.ndarray,
    crop_size: tuple[int, int],
    padding: float,
    rng: random.Random | None = None,
    aug: Augmentation | None = None,
    flip: bool = False,
) -> np.ndarray:
    """The 2 x 3 image -> crop matrix of a person box: the teacher's geometry (box widened to the
    crop's aspect, enlarged by ``padding``, centred), then the random jitter and mirror."""
    cw, ch = crop_size
    x1, y1, x2, y2 = (float(v) for v in box)
    w, h = max(x2 - x1, 1.0), max(y2 - y1, 1.0)
    aspect = cw / ch
    w, h = max(w, h * aspect), max(h, w / aspect)
    w, h = w * padding, h * padding
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    angle = 0.0
    if rng is not None and aug is not None:
        zoom = rng.uniform(1 - aug.scale_jitter, 1 + aug.scale_jitter)
        w, h = w * zoom, h * zoom
        cx += rng.uniform(-aug.shift_jitter, aug.shift_jitter) * w
        cy += rng.uniform(-aug.shift_jitter, aug.shift_jitter) * h
        if rng.random() < aug.rotation_prob:
            angle = math.radians(rng.uniform(-aug.rotation, aug.rotation))
    s = cw / w
    cos, sin = math.cos(angle) * s, math.sin(angle) * s
    # u = s R (x - c) + (cw/2, ch/2): at angle 0 exactly the teacher's u = (x - x1) * cw / w
    m = np.array([[cos, sin, 0.0], [-sin, cos, 0.0]])
    m[:, 2] = np.array([cw / 2, ch / 2]) - m[:, :2] @ np.array([cx, cy])
    if flip:
        m = np.array([[-1.0, 0.0, flip_x(0.0, cw)], [0.0, 1.0, 0.0]]) @ np.vstack([m, [0, 0, 1]])
    return m


def transform_points(points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Apply a 2 x 3 matrix to ``(..., 2)`` points."""
    return points @ matrix[:, :2].T + matrix[:, 2]


def warp(image: np.ndarray, matrix: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    return cv2.warpAffine(
        image, matrix, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0
    )


class TeacherOutputs:
    """The teacher's dense outputs on clean views: pose heatmaps and detector cell maps.

    Sessions open lazily (each data-loader worker opens its own).
    """

    def __init__(self, detector_path, pose_path, threads: int = 0):
        self.paths = (detector_path, pose_path)
        self.threads = threads
        self._models = None

    def _open(self):
        if self._models is None:
            from orpose.teacher.runtime import OnnxModel

            self._models = tuple(OnnxModel(p, self.threads, spin=False) for p in self.paths)
        return self._models

    def heatmaps(self, crops: np.ndarray) -> np.ndarray:
        """``(R, 17, h, w)`` heatmaps of RGB uint8 crops ``(R, H, W, 3)``."""
        pose = self._open()[1]
        outputs = pose.run(normalise(crops))
        return next(o for o in outputs if o.ndim == 4)

    def detections(self, view: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per-cell scores ``(A,)`` and boxes ``(A, 4)`` (input pixels) of one resized view."""
        detector = self._open()[0]
        outputs = detector.run(normalise(view[None]))
        boxes = next(o for o in outputs if o.shape[-1] == 4 and o.ndim == 3)
        scores = next(o for o in outputs if o is not boxes)
        return scores.reshape(-1), boxes.reshape(-1, 4)


def undistillable_native_size(
    detector_size: tuple[int, int],
    crop_size: tuple[int, int],
    native_sizes: tuple[tuple[int, int], tuple[int, int]],
) -> str | None:
    """Which of the native path's (detector, crop) sizes it cannot be distilled at, by the
    key's name (``native_detector_size``: not the full detector size divided by 1, 2, 4...;
    ``native_crop_size``: another aspect than the full crops', or above half of them), else
    None."""
    (dw, dh), (cw, ch) = native_sizes
    if level_shift(tuple(detector_size), (dw, dh)) is None:
        return "native_detector_size"
    if cw * crop_size[1] != ch * crop_size[0] or 2 * ch > crop_size[1]:
        return "native_crop_size"
    return None


class DistillationData(torch.utils.data.Dataset):
    """Persons and images of pseudo-label files; items are ``(kind, index, seed)``."""

    def __init__(
        self,
        datasets: list[PoseDataset],
        schedule: LowResSchedule,
        teacher: TeacherOutputs,
        crop_size: tuple[int, int],
        detector_size: tuple[int, int],
        padding: float = 1.25,
        augmentation: Augmentation | None = None,
        native_sizes: tuple[tuple[int, int], tuple[int, int]] | None = None,
    ):
        self.datasets = datasets
        self.schedule = schedule
        self.teacher = teacher
        self.crop_size = tuple(crop_size)
        self.detector_size = tuple(detector_size)
        self.padding = padding
        self.aug = augmentation or Augmentation()
        # (detector, crop) sizes of the native low-resolution path (None: not trained): its
        # detector input must be the full one divided by a power of two (its levels are then
        # the teacher's, from the next coarser ones on: student.picodet.level_shift), its crops
        # the full crops scaled by native_ratio <= 1/2 (same aspect), whose heatmap cells are
        # then the teacher's sampled every 1 / native_ratio cells
        self.native = native_sizes
        self.native_ratio = 0.5
        if native_sizes is not None:
            self.native_ratio = native_sizes[1][1] / self.crop_size[1]
            if undistillable_native_size(self.detector_size, self.crop_size, native_sizes):
                raise ValueError(
                    f"the native path's sizes {native_sizes} must be the detector size "
                    f"{self.detector_size} divided by 1, 2, 4... and at most half of the crop "
                    f"size {self.crop_size}, with its aspect, to be distilled"
                )
        every_image = [(d, img) for d, ds in enumerate(datasets) for img in ds.images]
        # the detector learns from the teacher's view of clean images only
        self.images = [(d, img) for d, img in every_image if stored_downscale(img) == 1]
        persons = [
            (d, img, upscale_annotation(ann, stored_downscale(img)))
            for d, img in every_image
            for ann in datasets[d].annotations_of(img["id"])
            if not ann.get("iscrowd", 0) and ("keypoints_soft" in ann or "keypoints" in ann)
        ]
        self.persons = [p for p in persons if min(p[2]["bbox"][2:]) >= MIN_PERSON_SIDE]
        self._heatmap_shape: tuple[int, int] | None = None
        if not self.persons:
            raise ValueError("the pseudo-label files hold no person to train the pose part on")

    def __len__(self) -> int:
        return len(self.persons)

    def read(self, d: int, img: dict) -> np.ndarray:
        """The RGB image of a record; one stored at 1/S comes upsampled by S."""
        image = read_training_image(self.datasets[d], img)
        stored = stored_downscale(img)
        if stored > 1:
            h, w = image.shape[:2]
            image = upsample(image, (round(w * stored), round(h * stored)))
        return image

    def label_heatmaps(self, soft: np.ndarray) -> np.ndarray:
        """Gaussians of soft keypoints ``(17, 3)`` in crop pixels at the teacher's heatmap size:
        the distillation target of a person with no clean view."""
        if self._heatmap_shape is None:
            probe = np.zeros((1, self.crop_size[1], self.crop_size[0], 3), np.uint8)
            self._heatmap_shape = tuple(self.teacher.heatmaps(probe).shape[-2:])
        stride = self.crop_size[1] / self._heatmap_shape[0]
        points = torch.from_numpy(soft[None, :, :2] / stride).float()
        amplitude = torch.from_numpy(soft[None, :, 2].clip(0, 1)).float()
        return gaussian_heatmaps(points, amplitude, self._heatmap_shape)[0].numpy()

    def __getitem__(self, item: tuple[str, int, int]) -> dict[str, np.ndarray]:
        kind, index, seed = item
        rng = random.Random(seed)
        if kind == "person":
            return self.person(index, rng)
        return self.image(index, rng)

    # -- persons -----------------------------------------------------------------------------
    def person(self, index: int, rng: random.Random) -> dict[str, np.ndarray]:
        d, img, ann = self.persons[index]
        image = self.read(d, img)
        stored = stored_downscale(img)
        # an image stored at 1/S is trained at S as it is (no clean view, no further loss)
        scale = self.schedule.sample(rng) if stored == 1 else 1.0
        flip = self.aug.flip and rng.random() < 0.5
        x, y, w, h = ann["bbox"]
        box = np.array([x, y, x + w, y + h])
        matrix = crop_matrix(box, self.crop_size, self.padding, rng, self.aug, flip)
        clean = warp(image, matrix, self.crop_size)
        student = clean if scale == 1 else warp(degrade(image, scale), matrix, self.crop_size)
        soft = soft_from_annotation(ann)
        hard = np.asarray(ann.get("keypoints", [0.0] * 51), np.float64).reshape(NUM_KEYPOINTS, 3)
        hard[hard[:, 2] <= 0] = 0.0
        order = np.asarray(FLIP_INDEX) if flip else np.arange(NUM_KEYPOINTS)
        soft_crop, hard_crop = soft[order].copy(), hard[order].copy()
        soft_crop[:, :2] = transform_points(soft_crop[:, :2], matrix)
        hard_crop[:, :2] = transform_points(hard_crop[:, :2], matrix)
        pose3d = np.asarray(ann.get("keypoints3d_soft", [0.0] * 51), np.float64)
        pose3d = pose3d.reshape(NUM_KEYPOINTS, 3)[order].copy()
        if flip:
            pose3d[:, 0] *= -1  # a mirrored person: x changes sign in the camera frame
        soft_img, hard_img = soft[order].copy(), hard[order].copy()
        to_lift = cv2.invertAffineTransform(matrix)  # crop pixels -> the lifters' image pixels
        if flip:  # the lifters see the mirrored person in (mirrored) image pixels
            width = img.get("width", image.shape[1]) if stored == 1 else image.shape[1]
            soft_img[:, 0] = flip_x(soft_img[:, 0], width)
            hard_img[:, 0] = flip_x(hard_img[:, 0], width)
            to_lift = np.array([[-1.0, 0.0, width - 1.0], [0.0, 1.0, 0.0]]) @ np.vstack(
                [to_lift, [0.0, 0.0, 1.0]]
            )
        teacher = (self.teacher.heatmaps(clean[None])[0] if stored == 1
                   else self.label_heatmaps(soft_crop))  # fmt: skip
        return {
            "crop": student,
            "teacher": teacher.astype(np.float32),
            "soft": soft_crop.astype(np.float32),
            "hard": hard_crop.astype(np.float32),
            "soft_image": soft_img.astype(np.float32),
            "hard_image": hard_img.astype(np.float32),
            "crop_to_lift": to_lift.astype(np.float32),
            "pose3d": pose3d.astype(np.float32),
            "has3d": np.array("keypoints3d_soft" in ann),
            "scale": np.float32(max(scale, stored)),
            **self.native_person(image, max(scale, stored), matrix, soft_crop, hard_crop, rng),
        }

    def wants_native(self, scale: float, rng: random.Random) -> bool:
        return (
            self.native is not None
            and scale >= self.aug.native_min_scale
            and rng.random() < self.aug.native_share
        )

    def native_person(self, image, scale, matrix, soft, hard, rng) -> dict[str, np.ndarray]:
        """The same person as the native path sees it: the smaller crop (``native_ratio`` of
        the full one) of the SMALL image (no upsampling back), its keypoints in that crop's
        pixels."""
        if not self.wants_native(scale, rng):
            return {}
        small = downsample(image, scale)
        h, w = image.shape[:2]
        # small pixel x_s covers full pixel x = (x_s + 0.5) * w / w_s - 0.5 (pixel centres)
        ax, ay = w / small.shape[1], h / small.shape[0]
        from_small = np.array([[ax, 0, 0.5 * ax - 0.5], [0, ay, 0.5 * ay - 0.5], [0, 0, 1]])
        # native crop pixel u' = full crop pixel u * ratio (both pixel-index conventions)
        r = self.native_ratio
        m_small = (np.diag([r, r]) @ matrix) @ from_small
        crop = warp(small, m_small, self.native[1])
        soft, hard = soft.copy(), hard.copy()
        soft[:, :2] *= r
        hard[:, :2] *= r
        return {"native_crop": crop, "native_soft": soft, "native_hard": hard}

    # -- images ------------------------------------------------------------------------------
    def image(self, index: int, rng: random.Random) -> dict[str, np.ndarray]:
        d, img = self.images[index % len(self.images)]
        image = self.read(d, img)
        scale = self.schedule.sample(rng)
        h, w = image.shape[:2]
        keep = self.aug.image_crop
        cw = int(round(w * rng.uniform(keep, 1.0)))
        chh = int(round(h * rng.uniform(keep, 1.0)))
        x0, y0 = rng.randint(0, w - cw), rng.randint(0, h - chh)
        view = image[y0 : y0 + chh, x0 : x0 + cw]
        if self.aug.flip and rng.random() < 0.5:
            view = view[:, ::-1]
        view = np.ascontiguousarray(view)
        size = self.detector_size
        clean = cv2.resize(view, size, interpolation=cv2.INTER_LINEAR)
        student = clean if scale == 1 else cv2.resize(degrade(view, scale), size, cv2.INTER_LINEAR)
        scores, boxes = self.teacher.detections(clean)
        out = {
            "view": student,
            "scores": scores.astype(np.float32),
            "boxes": boxes.astype(np.float32),
            "scale": np.float32(scale),
        }
        if self.wants_native(scale, rng):  # the small view itself, at the native input size
            out["native_view"] = cv2.resize(
                downsample(view, scale), self.native[0], interpolation=cv2.INTER_LINEAR
            )
        return out


NATIVE_PERSON_KEYS = ("native_crop", "native_soft", "native_hard")


def stored_downscale(img: dict) -> float:
    """The factor an image record says its file was stored at (``stored_downscale``, 1 if
    absent): a file of 1/S of the camera's resolution."""
    value = img.get("stored_downscale", 1)
    return float(value) if isinstance(value, int | float) and value >= 1 else 1.0


def upscale_annotation(ann: dict, factor: float) -> dict:
    """An annotation of an image stored at 1/``factor``, in the pixels of that image upsampled
    by ``factor``: boxes as edges (x * f), keypoints as pixel centres ((x + 0.5) * f - 0.5)."""
    if factor == 1:
        return ann
    out = dict(ann)
    out["bbox"] = [float(v) * factor for v in ann["bbox"]]
    for key in ("keypoints", "keypoints_soft"):
        if key in ann:
            kps = np.asarray(ann[key], np.float64).reshape(-1, 3).copy()
            kps[:, :2] = (kps[:, :2] + 0.5) * factor - 0.5
            out[key] = kps.ravel().tolist()
    return out


def sample_cells(heatmaps: torch.Tensor, ratio: float) -> torch.Tensor:
    """Heatmaps ``(N, K, H, W)`` of a crop, read at the cells of the same crop scaled by
    ``ratio`` (<= 1, same stride): native cell k lies at full cell k / ratio (pixel-index
    convention, as the crops); every second cell for a half-size crop, bilinear otherwise."""
    step = 1.0 / ratio
    h, w = heatmaps.shape[-2:]
    size = (math.ceil(h * ratio - 1e-6), math.ceil(w * ratio - 1e-6))
    if abs(step - round(step)) < 1e-6:
        return heatmaps[..., :: round(step), :: round(step)][..., : size[0], : size[1]]
    n = heatmaps.shape[0]
    ys = torch.arange(size[0], dtype=heatmaps.dtype) * step
    xs = torch.arange(size[1], dtype=heatmaps.dtype) * step
    grid = torch.stack(torch.meshgrid(xs / (w - 1), ys / (h - 1), indexing="xy"), -1) * 2 - 1
    return F.grid_sample(heatmaps, grid.expand(n, -1, -1, -1), mode="bilinear",
                         align_corners=True)  # fmt: skip


def _stack(group: list[dict], keys) -> dict[str, torch.Tensor]:
    return {k: torch.from_numpy(np.stack([g[k] for g in group])) for k in keys}


def collate(items: list[dict[str, np.ndarray]]) -> dict[str, dict[str, torch.Tensor]]:
    """Persons and images of one iteration, each kind stacked into tensors; the native path's
    samples (only some items have them) in groups of their own."""
    people = [i for i in items if "crop" in i]
    views = [i for i in items if "view" in i]
    out: dict[str, dict[str, torch.Tensor]] = {}
    if people:
        out["people"] = _stack(people, [k for k in people[0] if k not in NATIVE_PERSON_KEYS])
        native = [i for i in people if "native_crop" in i]
        if native:
            group = _stack(native, NATIVE_PERSON_KEYS)
            index = torch.tensor([j for j, i in enumerate(people) if "native_crop" in i])
            ratio = group["native_crop"].shape[1] / out["people"]["crop"].shape[1]
            group["native_teacher"] = sample_cells(out["people"]["teacher"][index], ratio)
            out["people_native"] = group
    if views:
        out["images"] = _stack(views, [k for k in views[0] if k != "native_view"])
        native = [j for j, i in enumerate(views) if "native_view" in i]
        if native:
            index = torch.tensor(native)
            out["images_native"] = {
                "view": _stack([views[j] for j in native], ["native_view"])["native_view"],
                "scores": out["images"]["scores"][index],
                "boxes": out["images"]["boxes"][index],
            }
    return out
