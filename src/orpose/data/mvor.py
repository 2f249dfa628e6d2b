"""MVOR (CAMMA, Srivastav et al. 2018): multi-view OR images with 2D upper-body and 3D poses.

camma_mvor_2018.json holds 3 cameras (intrinsics, and extrinsics as 4x4 matrices mapping camera k
to camera 1), 2D annotations with 10 upper-body keypoints per person, and 3D poses of 12 points
(x, y, z, visibility) in millimetres in camera 1's frame whose first 10 follow the 2D order. A
3D pose is tied to its 2D views by the triple of image ids and the ``person_id``.

Projection follows MVOR's own tools (lib/visualize_groundtruth.py): X_k = inv(E_k) @ X_1, then
a pinhole with the focal length and principal point (lens distortion is not applied).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from orpose.data.coco import DatasetError, check_numbers, read_json
from orpose.skeleton import NUM_MVOR_KEYPOINTS, PERSON_CATEGORY, mvor_to_coco

NUM_MVOR_3D_POINTS = 12


def _is_int(x: object) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


@dataclass(frozen=True)
class Camera:
    """A pinhole camera: intrinsics and the 4x4 transform from its frame to camera 1's frame."""

    focal: tuple[float, float]
    principal_point: tuple[float, float]
    to_camera1: np.ndarray  # 4x4
    image_size: tuple[int, int] = (640, 480)

    def from_camera1(self, points: np.ndarray) -> np.ndarray:
        """``(..., 3)`` points in camera 1's frame to this camera's frame."""
        points = np.asarray(points, dtype=np.float64)[..., :3]
        inv = np.linalg.inv(self.to_camera1)
        return points @ inv[:3, :3].T + inv[:3, 3]

    def project(self, points_cam: np.ndarray) -> np.ndarray:
        """``(..., 3)`` points in this camera's frame to ``(..., 2)`` pixels."""
        p = np.asarray(points_cam, dtype=np.float64)
        z = np.where(p[..., 2] == 0.0, 1.0, p[..., 2])
        u = p[..., 0] / z * self.focal[0] + self.principal_point[0]
        v = p[..., 1] / z * self.focal[1] + self.principal_point[1]
        return np.stack([u, v], axis=-1)


@dataclass
class MvorPose3D:
    """One person's 3D pose at one multi-view moment (camera 1's frame, mm)."""

    id: str
    person_id: int
    image_ids: tuple[int, int, int]  # one image per camera, camera order
    points: np.ndarray  # (12, 4): x, y, z, visibility

    def in_camera(self, camera: Camera) -> np.ndarray:
        """``(12, 4)`` points in ``camera``'s frame, visibility kept."""
        out = self.points.copy()
        out[:, :3] = camera.from_camera1(self.points[:, :3])
        return out


@dataclass
class MvorView:
    """One 2D person annotation of one camera image, with its 3D pose when MVOR has one."""

    annotation: dict
    image: dict
    camera_index: int  # 0-based
    pose3d: MvorPose3D | None

    @property
    def keypoints(self) -> np.ndarray:
        return np.asarray(self.annotation["keypoints"], dtype=np.float64).reshape(-1, 3)


class MvorDataset:
    """Loader for camma_mvor_2018.json with multi-view grouping and projection."""

    def __init__(self, path: Path | str):
        self.path = Path(path)
        data = read_json(self.path)
        if not isinstance(data, dict):
            raise DatasetError(f"{self.path}: expected an MVOR object (camma_mvor_2018.json)")
        for key in ("images", "annotations", "annotations3D", "multiview_images", "cameras_info"):
            if key not in data:
                raise DatasetError(f"{self.path}: top level: field '{key}': missing")
        self._validate(data)
        self.raw = data
        self.cameras = self._read_cameras(data["cameras_info"])
        for i, img in enumerate(data["images"]):
            if not 1 <= img["cam_id"] <= len(self.cameras):
                raise self._fail(
                    f"images[{i}]",
                    f"field 'cam_id': {img['cam_id']} is not a camera of the file "
                    f"(1-{len(self.cameras)})",
                )
        self.images = {img["id"]: img for img in data["images"]}
        self.multiview = [tuple(im["id"] for im in mv["images"]) for mv in data["multiview_images"]]
        self.poses3d = [self._read_pose3d(a, i) for i, a in enumerate(data["annotations3D"])]
        self._pose_index = {(p.image_ids, p.person_id): p for p in self.poses3d}
        self._group_of_image = {image_id: group for group in self.multiview for image_id in group}

    def _fail(self, where: str, message: str) -> DatasetError:
        return DatasetError(f"{self.path}: {where}: {message}"[:400])

    def _validate(self, data: dict) -> None:
        """The structure every reader below relies on, so that a malformed file is one
        DatasetError naming the file, the record and the field (not a KeyError, a TypeError or
        a zip() mismatch): lists of objects, integer ids known to ``images``, ``cam_id`` 1 to
        the number of cameras, 10 keypoints per 2D annotation."""
        for key in ("images", "annotations", "annotations3D", "multiview_images"):
            if not isinstance(data[key], list) or not all(isinstance(x, dict) for x in data[key]):
                raise self._fail("top level", f"field '{key}': expected a list of objects")
        if not isinstance(data["cameras_info"], dict):
            raise self._fail("top level", "field 'cameras_info': expected an object")
        ids = set()
        for i, img in enumerate(data["images"]):
            where = f"images[{i}]"
            for key in ("id", "cam_id"):
                if not _is_int(img.get(key)):
                    raise self._fail(where, f"field '{key}': expected an integer, got "
                                     f"{img.get(key)!r}")  # fmt: skip
            if not isinstance(img.get("file_name"), str):
                raise self._fail(where, "field 'file_name': expected a string")
            if img["id"] in ids:
                raise self._fail(where, f"field 'id': duplicate id {img['id']}")
            ids.add(img["id"])
        for i, ann in enumerate(data["annotations"]):
            where = f"annotations[{i}]"
            if not _is_int(ann.get("image_id")) or ann["image_id"] not in ids:
                raise self._fail(where, f"field 'image_id': no image with id "
                                 f"{ann.get('image_id')!r}")  # fmt: skip
            check_numbers(ann.get("bbox"), 4, self.path, where, "bbox")
            if not ann.get("only_bbox", 0):
                check_numbers(ann.get("keypoints"), NUM_MVOR_KEYPOINTS * 3, self.path, where,
                              "keypoints")  # fmt: skip
            if "person_id" in ann and not _is_int(ann["person_id"]):
                raise self._fail(where, f"field 'person_id': expected an integer, got "
                                 f"{ann['person_id']!r}")  # fmt: skip
        for i, group in enumerate(data["multiview_images"]):
            members = group.get("images")
            if not isinstance(members, list) or not all(
                isinstance(m, dict) and m.get("id") in ids for m in members
            ):
                raise self._fail(f"multiview_images[{i}]", "field 'images': expected a list of "
                                 "objects whose 'id' is an image's")  # fmt: skip
        for i, ann in enumerate(data["annotations3D"]):
            if not _is_int(ann.get("person_id")):
                raise self._fail(f"annotations3D[{i}]", f"field 'person_id': expected an "
                                 f"integer, got {ann.get('person_id')!r}")  # fmt: skip

    def _read_cameras(self, info: dict) -> list[Camera]:
        params = info.get("camParams")
        if not isinstance(params, dict) or "intrinsics" not in params or "extrinsics" not in params:
            raise DatasetError(
                f"{self.path}: cameras_info: field 'camParams': needs 'intrinsics' and 'extrinsics'"
            )
        intrinsics, extrinsics = params["intrinsics"], params["extrinsics"]
        if (
            not isinstance(intrinsics, list)
            or not isinstance(extrinsics, list)
            or not intrinsics
            or len(intrinsics) != len(extrinsics)
        ):
            raise self._fail(
                "cameras_info: camParams",
                "fields 'intrinsics' and 'extrinsics': expected two lists with one entry per "
                "camera",
            )
        cameras = []
        for k, (intr, extr) in enumerate(zip(intrinsics, extrinsics, strict=True)):
            where = f"camera {k + 1}"
            if not isinstance(intr, dict):
                raise self._fail(where, "field 'intrinsics': expected an object")
            check_numbers(extr, 16, self.path, where, "extrinsics")
            check_numbers(intr.get("focallength"), 2, self.path, where, "focallength")
            check_numbers(intr.get("principalpoint"), 2, self.path, where, "principalpoint")
            check_numbers(intr.get("imagesize", [640, 480]), 2, self.path, where, "imagesize")
            cameras.append(
                Camera(
                    focal=tuple(intr["focallength"]),
                    principal_point=tuple(intr["principalpoint"]),
                    to_camera1=np.asarray(extr, dtype=np.float64).reshape(4, 4),
                    image_size=tuple(intr.get("imagesize", (640, 480))),
                )
            )
        return cameras

    def _read_pose3d(self, ann: dict, index: int) -> MvorPose3D:
        where = f"annotations3D id {ann.get('id', f'? (#{index})')}"
        check_numbers(
            ann.get("keypoints3D"), NUM_MVOR_3D_POINTS * 4, self.path, where, "keypoints3D"
        )
        try:
            image_ids = tuple(int(x) for x in str(ann["image_ids"]).split("_"))
        except (KeyError, ValueError) as err:
            raise DatasetError(f"{self.path}: {where}: field 'image_ids': {err}") from err
        if len(image_ids) != len(self.cameras):
            raise DatasetError(
                f"{self.path}: {where}: field 'image_ids': expected {len(self.cameras)} ids"
            )
        return MvorPose3D(
            id=str(ann["id"]),
            person_id=int(ann["person_id"]),
            image_ids=image_ids,  # type: ignore[arg-type]
            points=np.asarray(ann["keypoints3D"], dtype=np.float64).reshape(NUM_MVOR_3D_POINTS, 4),
        )

    @staticmethod
    def camera_index_of(image: dict) -> int:
        """0-based camera index of an MVOR image (its ``cam_id`` field is 1-based)."""
        return int(image["cam_id"]) - 1

    def pose3d_for(self, annotation: dict) -> MvorPose3D | None:
        """The 3D pose matching a 2D annotation (same multi-view moment and person), if any."""
        if annotation.get("person_id", -1) < 0:
            return None
        group = self._group_of_image.get(annotation["image_id"])
        if group is None:
            return None
        return self._pose_index.get((group, annotation["person_id"]))

    def views(self, with_keypoints_only: bool = True) -> Iterator[MvorView]:
        """Every 2D person annotation, joined to its image, camera and 3D pose."""
        for ann in self.raw["annotations"]:
            if with_keypoints_only and ann.get("only_bbox", 0):
                continue
            image = self.images[ann["image_id"]]
            yield MvorView(ann, image, self.camera_index_of(image), self.pose3d_for(ann))

    def project_pose(self, pose: MvorPose3D, camera_index: int) -> np.ndarray:
        """``(12, 3)`` pixel coordinates and visibility of a 3D pose seen by one camera."""
        camera = self.cameras[camera_index]
        cam_points = pose.in_camera(camera)
        return np.concatenate([camera.project(cam_points[:, :3]), cam_points[:, 3:4]], axis=1)

    def select_images(
        self,
        camera_indices: tuple[int, ...] | None = None,
        days: tuple[int, ...] | None = None,
        image_root: Path | str | None = None,
    ) -> list[dict]:
        """MVOR's image records of some cameras (0-based) and days (MVOR's ``day_id``, 1-4).

        With ``image_root``, only the images whose ``file_name`` (``day4/cam3/color/000000.png``)
        is a file under it are kept. An unknown camera or day, or a root holding none of the
        selected images, raises DatasetError naming this file and the field.
        """
        known_cameras = range(len(self.cameras))
        for c in camera_indices or ():
            if c not in known_cameras:
                raise DatasetError(
                    f"{self.path}: images: field 'cam_id': no camera {c + 1} (MVOR has cameras "
                    f"{', '.join(str(k + 1) for k in known_cameras)})"
                )
        known_days = sorted({img.get("day_id") for img in self.images.values()}, key=str)
        for d in days or ():
            if d not in known_days:
                raise DatasetError(
                    f"{self.path}: images: field 'day_id': no day {d} (MVOR has days "
                    f"{', '.join(str(k) for k in known_days)})"
                )
        chosen = [
            img
            for img in self.raw["images"]
            if (camera_indices is None or self.camera_index_of(img) in camera_indices)
            and (days is None or img.get("day_id") in days)
        ]
        if image_root is None:
            return chosen
        root = Path(image_root)
        if not root.is_dir():
            raise DatasetError(f"{root}: no such image folder (--images)")
        present = [img for img in chosen if (root / img["file_name"]).is_file()]
        if chosen and not present:
            raise DatasetError(
                f"{self.path}: images: field 'file_name': none of the {len(chosen)} selected "
                f"images is under {root} (the first would be {root / chosen[0]['file_name']})"
            )
        return present

    def to_coco17(
        self,
        camera_indices: tuple[int, ...] = (0, 1, 2),
        days: tuple[int, ...] | None = None,
        image_root: Path | str | None = None,
    ) -> dict:
        """A COCO-17 ground-truth file of the annotated persons, with 3D in each camera's frame.

        Images: those of :meth:`select_images` (every selected image, with or without people),
        with MVOR's ids and relative ``file_name``, so that ``image_root`` (``--images``) is the
        root that resolves them. Every annotated person is kept:

        - MVOR's 8 joints shared with COCO (shoulders, elbows, wrists, hips) fill ``keypoints``;
          head and neck have no COCO twin and are left out there;
        - ``keypoints_mvor`` keeps MVOR's own 10 joints ([x, y, v] * 10, MVOR's order) for its
          PCK (:mod:`orpose.evaluation.pck`);
        - a box-only person (MVOR's ``only_bbox``: no keypoints, ``person_id`` -1) gets zero
          keypoints and ``num_keypoints`` 0, as COCO's own box-only people: pycocotools' keypoint
          AP ignores it (a detection on it is neither a hit nor a false positive) while box AP
          counts it;
        - ``keypoints3d`` ([x, y, z, v] * 17, mm, that camera's frame) is added for persons with
          a 3D pose, as in MVOR+.
        """
        selected = self.select_images(camera_indices, days, image_root)
        keep = {img["id"] for img in selected}
        annotations = []
        for view in self.views(with_keypoints_only=False):
            if view.image["id"] not in keep:
                continue
            box_only = bool(view.annotation.get("only_bbox", 0))
            kps10 = np.zeros((NUM_MVOR_KEYPOINTS, 3)) if box_only else view.keypoints
            kps = mvor_to_coco(kps10[:NUM_MVOR_KEYPOINTS])
            kps[kps[:, 2] > 0, 2] = 2.0
            bbox = [float(v) for v in view.annotation["bbox"]]
            ann = {
                "id": len(annotations) + 1,
                "image_id": view.image["id"],
                "category_id": 1,
                "iscrowd": 0,
                "bbox": bbox,
                "area": bbox[2] * bbox[3],
                "keypoints": [float(v) for v in kps.reshape(-1)],
                "num_keypoints": int((kps[:, 2] > 0).sum()),
                "keypoints_mvor": [float(v) for v in kps10[:NUM_MVOR_KEYPOINTS].reshape(-1)],
                "person_id": int(view.annotation.get("person_id", -1)),
            }
            if box_only:
                ann["only_bbox"] = 1
            if view.pose3d is not None:
                pts = view.pose3d.in_camera(self.cameras[view.camera_index])[:NUM_MVOR_KEYPOINTS]
                ann["keypoints3d"] = [float(v) for v in mvor_to_coco(pts).reshape(-1)]
            annotations.append(ann)
        fields = ("id", "file_name", "width", "height", "cam_id", "day_id")
        images = [{k: img[k] for k in fields if k in img} for img in selected]
        return {
            "info": {
                "description": f"COCO-17 view of {self.path.name}",
                "mvor_selection": {
                    "source": str(self.path),
                    "cameras": sorted(c + 1 for c in camera_indices),
                    "days": sorted(days) if days is not None else "all",
                    "image_root": str(image_root) if image_root is not None else None,
                },
            },
            "images": images,
            "annotations": annotations,
            "categories": [dict(PERSON_CATEGORY)],
        }
