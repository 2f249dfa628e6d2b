"""CMU motion capture (BVH) to COCO-17 3D joints in millimetres, with the shared data's caveats.

The CMU BVH conversion in ../shared/data/mocap/cmu_bvh needs four fixes (see the shared README):

- frame 0 is a T-pose and some files start with all-zero frames: both are dropped;
- positions are in units of 0.056444 m (``CMU_UNIT_MM`` below converts to mm);
- the thorax bone is missing, so Neck, LeftShoulder and RightShoulder get Spine1's offset,
  which lifts neck, head and arms by about 12 cm to where they belong;
- COCO's face points do not exist: nose, eyes and ears are placed at fixed fractions of the head
  bone in the Head joint's frame (approximate, see ``FACE_POINTS_IN_HEAD``).

Two more changes are conventions, not fixes. CMU's hips are the femur heads, COCO's the outer
hips, so the hips are spread to COCO's proportion (``HIP_WIDENING``); the mid-hips root stays.
And the lifter's 3D targets follow Human3.6M's hips, higher than the femur heads
(``H36M_TORSO_TO_THIGH``, :func:`raise_hips`): the 2D it is fed keeps COCO's.

World frame of the result: the file's (Y up, the rest pose faces +Z, the subject's left is +X).
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from orpose.data.coco import DatasetError
from orpose.lifting.bvh import BvhMotion, forward_kinematics, read_bvh
from orpose.skeleton import KEYPOINT_INDEX, NUM_KEYPOINTS

log = logging.getLogger(__name__)

CMU_UNIT_MM = 56.444  # one CMU BVH unit in millimetres (0.056444 m)
CMU_FPS = 120.0
CACHE_VERSION = 3

# COCO joint -> CMU BVH joint whose position it takes.
COCO_FROM_CMU: dict[str, str] = {
    "left_shoulder": "LeftArm",
    "right_shoulder": "RightArm",
    "left_elbow": "LeftForeArm",
    "right_elbow": "RightForeArm",
    "left_wrist": "LeftHand",
    "right_wrist": "RightHand",
    "left_hip": "LeftUpLeg",
    "right_hip": "RightUpLeg",
    "left_knee": "LeftLeg",
    "right_knee": "RightLeg",
    "left_ankle": "LeftFoot",
    "right_ankle": "RightFoot",
}

# Face points in the Head joint's rest frame (x = subject's left, y = up, z = forward), in units
# of the head bone length (Head's End Site offset, about 9 cm in CMU). CMU's head sits low relative
# to its shoulder joints, so the values were chosen so that, on upright walking frames, the median
# heights above the mid-shoulders (in torso lengths: nose ~0.35, eyes ~0.42, ears ~0.40) come close
# to those of frontal upright people in COCO's annotations (0.37, 0.45, 0.41 measured on the
# shared coco_person_val500 subset). An approximation: CMU has no face markers.
FACE_POINTS_IN_HEAD: dict[str, tuple[float, float, float]] = {
    "nose": (0.0, 0.8, 1.0),
    "left_eye": (0.32, 1.15, 0.85),
    "right_eye": (-0.32, 1.15, 0.85),
    "left_ear": (0.75, 0.95, 0.0),
    "right_ear": (-0.75, 0.95, 0.0),
}

THORAX_FIXED_JOINTS = ("Neck", "LeftShoulder", "RightShoulder")

# CMU's hip joints are the femur heads (hip width / shoulder width 0.48 on this data), while COCO
# annotators mark the outer hips (median 0.66 on frontal upright people of coco_person_val500).
# The lifter's inputs come from COCO-style 2D detectors, so the hips are moved apart, along the
# line joining them, to COCO's proportion.
HIP_WIDENING = 1.37

# Human3.6M's torso (mid-hips to mid-shoulders) over its thigh (hip to knee): about 427 / 440 mm,
# from the second moments of the root-relative 3D joints in data/h36stats.json of the official
# code (CAMMA-public/ORPose-Color; the statistics of the paper's lifter, trained on Human3.6M).
# CMU's femur heads give 1.24 on this data. The lifter's 3D targets get Human3.6M's higher hips,
# so that its 3D speaks the convention of the paper's lifter, whose MPJPE the tables compare with.
H36M_TORSO_TO_THIGH = 0.97


def fix_missing_thorax(motion: BvhMotion) -> None:
    """Give the joints hanging off the missing thorax bone Spine1's offset (in place)."""
    skel = motion.skeleton
    try:
        spine1 = skel.offsets[skel.index("Spine1")]
        for name in THORAX_FIXED_JOINTS:
            j = skel.index(name)
            if np.allclose(skel.offsets[j], 0.0):
                skel.offsets[j] = spine1.copy()
    except KeyError as err:
        raise DatasetError(f"{motion.path}: not a CMU skeleton: {err.args[0]}") from None


def valid_frames(motion: BvhMotion, step: int = 1) -> np.ndarray:
    """Indices of usable frames: not the T-pose frame 0, not an all-zero frame; every ``step``."""
    nonzero = np.any(motion.motion != 0.0, axis=1)
    nonzero[0] = False
    return np.flatnonzero(nonzero)[::step]


def cmu_to_coco(
    motion: BvhMotion, frames: np.ndarray, hip_widening: float = HIP_WIDENING
) -> np.ndarray:
    """``(F, 17, 3)`` COCO joints in mm, world frame, for the selected frames."""
    return _cmu_joints_and_pelvis_up(motion, frames, hip_widening)[0]


def _cmu_joints_and_pelvis_up(
    motion: BvhMotion, frames: np.ndarray, hip_widening: float
) -> tuple[np.ndarray, np.ndarray]:
    """COCO joints (F, 17, 3) mm, and the pelvis's up direction (F, 3), a unit vector."""
    skel = motion.skeleton
    try:
        pos, rot = forward_kinematics(motion, frames)
        pelvis_up = rot[:, skel.index("Hips")] @ np.array([0.0, 1.0, 0.0])
        out = np.zeros((len(frames), NUM_KEYPOINTS, 3))
        for coco_name, cmu_name in COCO_FROM_CMU.items():
            out[:, KEYPOINT_INDEX[coco_name]] = pos[:, skel.index(cmu_name)]
        head = skel.index("Head")
    except KeyError as err:
        raise DatasetError(f"{motion.path}: not a CMU skeleton: {err.args[0]}") from None
    tip = skel.end_sites[head]
    head_len = float(np.linalg.norm(tip)) if tip is not None else float(skel.offsets[head][1])
    for name, local in FACE_POINTS_IN_HEAD.items():
        offset = np.asarray(local) * head_len
        out[:, KEYPOINT_INDEX[name]] = pos[:, head] + rot[:, head] @ offset
    return widen_hips(out, hip_widening) * CMU_UNIT_MM, pelvis_up


def widen_hips(joints: np.ndarray, factor: float = HIP_WIDENING) -> np.ndarray:
    """Move the two hips of (..., 17, 3) joints apart about their midpoint (which stays put)."""
    out = joints.copy()
    left, right = KEYPOINT_INDEX["left_hip"], KEYPOINT_INDEX["right_hip"]
    mid = (joints[..., left, :] + joints[..., right, :]) / 2.0
    out[..., left, :] = mid + (joints[..., left, :] - mid) * factor
    out[..., right, :] = mid + (joints[..., right, :] - mid) * factor
    return out


def raise_hips(
    joints: np.ndarray, pelvis_up: np.ndarray, torso_to_thigh: float = H36M_TORSO_TO_THIGH
) -> np.ndarray:
    """One person's (F, 17, 3) joints with both hips moved up the pelvis by one distance.

    The distance makes the median torso (mid-hips to mid-shoulders) over the median thigh (hip to
    knee) equal ``torso_to_thigh``; raising by d shortens the torso by about d and lengthens the
    thigh by about d. 0 leaves the joints as they are.
    """
    if torso_to_thigh <= 0:
        return joints.copy()
    k = KEYPOINT_INDEX
    hips, shoulders = [k["left_hip"], k["right_hip"]], [k["left_shoulder"], k["right_shoulder"]]
    torso = np.median(
        np.linalg.norm(joints[:, shoulders].mean(1) - joints[:, hips].mean(1), axis=-1)
    )
    thigh = np.median(
        np.linalg.norm(joints[:, hips] - joints[:, [k["left_knee"], k["right_knee"]]], axis=-1)
    )
    lift = (torso - torso_to_thigh * thigh) / (1.0 + torso_to_thigh)
    out = joints.copy()
    out[:, hips] += (lift * pelvis_up)[:, None, :]
    return out


def load_cmu_bvh(
    path: Path | str, fps: float = 30.0, hip_widening: float = HIP_WIDENING
) -> np.ndarray:
    """Read one CMU BVH file into ``(F, 17, 3)`` COCO joints (mm), sub-sampled to ``fps``."""
    return load_cmu_bvh_with_targets(path, fps, hip_widening, torso_to_thigh=0.0)[0]


def load_cmu_bvh_with_targets(
    path: Path | str,
    fps: float = 30.0,
    hip_widening: float = HIP_WIDENING,
    torso_to_thigh: float = H36M_TORSO_TO_THIGH,
) -> tuple[np.ndarray, np.ndarray]:
    """One CMU BVH file as the joints a 2D detector sees and the lifter's 3D targets (both
    ``(F, 17, 3)`` mm; the targets' hips per :func:`raise_hips`)."""
    motion = read_bvh(path)
    fix_missing_thorax(motion)
    file_fps = 1.0 / motion.frame_time if motion.frame_time > 0 else CMU_FPS
    step = max(1, round(file_fps / fps))
    frames = valid_frames(motion, step)
    if len(frames) == 0:
        raise DatasetError(f"{path}: no usable frame (only the T-pose or all-zero frames)")
    joints, pelvis_up = _cmu_joints_and_pelvis_up(motion, frames, hip_widening)
    return joints, raise_hips(joints, pelvis_up, torso_to_thigh)


@dataclass
class MocapSet:
    """3D poses from many BVH files (mm, world frame): the joints a 2D detector sees, the lifter's
    targets (``None``: the same), the subject and the file of each."""

    joints: np.ndarray
    subjects: np.ndarray  # (N,) int
    files: list[str]
    file_index: np.ndarray  # (N,) int into ``files``
    targets: np.ndarray | None = None

    def select(self, keep: np.ndarray) -> MocapSet:
        targets = None if self.targets is None else self.targets[keep]
        return MocapSet(
            self.joints[keep], self.subjects[keep], self.files, self.file_index[keep], targets
        )

    def by_subjects(self, subjects: tuple[int, ...], include: bool = True) -> MocapSet:
        """The poses of (or, with ``include=False``, not of) these subjects."""
        inside = np.isin(self.subjects, np.asarray(subjects, dtype=int))
        return self.select(inside if include else ~inside)

    def __len__(self) -> int:
        return len(self.joints)


def subject_of(path: Path) -> int:
    """CMU subject number from a file name such as ``07_12.bvh``."""
    try:
        return int(path.stem.split("_")[0])
    except ValueError:
        raise DatasetError(f"{path}: cannot read the CMU subject from the file name") from None


def _fingerprint(files: list[Path], fps: float, torso_to_thigh: float) -> str:
    h = hashlib.sha256(f"v{CACHE_VERSION} fps={fps} torso={torso_to_thigh}".encode())
    for f in files:
        st = f.stat()
        h.update(f"{f.name} {st.st_size} {int(st.st_mtime)}".encode())
    return h.hexdigest()


def load_mocap_folder(
    folder: Path | str,
    fps: float = 30.0,
    cache: Path | str | None = None,
    torso_to_thigh: float = H36M_TORSO_TO_THIGH,
) -> MocapSet:
    """Every ``*.bvh`` under ``folder`` as a :class:`MocapSet`, cached in an ``.npz`` if asked.

    The cache is reused only when the file list, sizes, times, ``fps`` and the targets' hip
    convention (``torso_to_thigh``, :func:`raise_hips`) match.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: motion-capture folder not found")
    files = sorted(folder.rglob("*.bvh"))
    if not files:
        raise DatasetError(f"{folder}: no .bvh files")
    key = _fingerprint(files, fps, torso_to_thigh)
    names = [str(f.relative_to(folder)) for f in files]
    if cache is not None and Path(cache).is_file():
        with np.load(cache) as npz:
            if str(npz["key"]) == key:
                log.info("mocap: using the cache %s", cache)
                targets = npz["targets"] if torso_to_thigh > 0 else None  # else the joints
                return MocapSet(npz["joints"], npz["subjects"], names, npz["file_index"], targets)
    parts, targets, subjects, index = [], [], [], []
    for i, f in enumerate(files):
        joints, target = load_cmu_bvh_with_targets(f, fps, torso_to_thigh=torso_to_thigh)
        parts.append(joints.astype(np.float32))
        targets.append(target.astype(np.float32))
        subjects.append(np.full(len(joints), subject_of(f)))
        index.append(np.full(len(joints), i))
    result = MocapSet(
        np.concatenate(parts),
        np.concatenate(subjects),
        names,
        np.concatenate(index),
        np.concatenate(targets) if torso_to_thigh > 0 else None,
    )
    if cache is not None:
        _save_cache(Path(cache), key, result)
    return result


def _save_cache(path: Path, key: str, data: MocapSet) -> None:
    """Write the npz through a temporary name so a crash never leaves a truncated cache."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.npz")
    np.savez(
        tmp,
        key=key,
        joints=data.joints,
        targets=data.joints if data.targets is None else data.targets,
        subjects=data.subjects,
        file_index=data.file_index,
    )
    tmp.replace(path)
