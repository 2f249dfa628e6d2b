"""Training samples from pseudo-label (or ground-truth) COCO files, with the paper's augmentation.

Each sample is drawn with its own seed (see :mod:`orpose.training.sampler`), so an image's
low-resolution factor and flip depend only on (run seed, iteration, position in the batch): a
resumed run sees exactly the data the uninterrupted one would have seen, with any number of
loader workers.
"""

from __future__ import annotations

import random

import numpy as np
import torch

from orpose.data.coco import PoseDataset
from orpose.data.images import read_dataset_image
from orpose.data.lowres import LowResSchedule, degrade
from orpose.errors import DatasetError
from orpose.skeleton import FLIP_INDEX, NUM_KEYPOINTS, flip_boxes, flip_keypoints

MIN_BOX_SIDE = 1.0  # px; torchvision rejects degenerate boxes


class UnreadableImageError(DatasetError):
    """A training image that cannot be decoded; the message names the COCO file, the image
    record and the image file.

    Raised in a DataLoader worker, it reaches the main process through torch's
    ``ExceptionWrapper.reraise``, which builds a new exception of this type from the worker's
    whole formatted traceback; the constructor keeps only the original one-line message, so
    that ``orpose train`` still prints one line, with any number of workers.
    """

    def __init__(self, message: str = "") -> None:
        if message.startswith("Caught ") and "Traceback" in message:
            prefix = f"{type(self).__name__}: "
            lines = [line for line in message.splitlines() if prefix in line]
            if lines:
                message = lines[-1].split(prefix, 1)[1]
        super().__init__(message)


def read_training_image(dataset: PoseDataset, info: dict):
    """The RGB image of one record; an undecodable or too large file, or one whose size is not
    the record's width/height, stops training with a clear error."""
    try:
        return read_dataset_image(dataset, info)
    except DatasetError as err:
        raise UnreadableImageError(str(err)) from err


def soft_from_annotation(ann: dict) -> np.ndarray:
    """The soft 2D set; a ground-truth file has none, so its visible keypoints get confidence 1."""
    if "keypoints_soft" in ann:
        return np.asarray(ann["keypoints_soft"], dtype=np.float64).reshape(NUM_KEYPOINTS, 3)
    kps = np.asarray(ann.get("keypoints", [0.0] * 51), dtype=np.float64).reshape(NUM_KEYPOINTS, 3)
    kps[:, 2] = (kps[:, 2] > 0).astype(np.float64)
    return kps


def build_target(annotations: list[dict], width: int, flip: bool) -> dict[str, torch.Tensor]:
    """Tensors of one image's persons: boxes (xyxy), hard/soft 2D, soft 3D and its presence."""
    people = [
        a
        for a in annotations
        if not a.get("iscrowd", 0) and a["bbox"][2] >= MIN_BOX_SIDE and a["bbox"][3] >= MIN_BOX_SIDE
    ]
    n = len(people)
    boxes = np.zeros((n, 4))
    hard = np.zeros((n, NUM_KEYPOINTS, 3))
    soft = np.zeros((n, NUM_KEYPOINTS, 3))
    pose3d = np.zeros((n, NUM_KEYPOINTS, 3))
    has3d = np.zeros(n, dtype=bool)
    for i, a in enumerate(people):
        x, y, w, h = a["bbox"]
        boxes[i] = [x, y, x + w, y + h]
        if "keypoints" in a:
            hard[i] = np.asarray(a["keypoints"], dtype=np.float64).reshape(NUM_KEYPOINTS, 3)
        soft[i] = soft_from_annotation(a)
        if "keypoints3d_soft" in a:
            pose3d[i] = np.asarray(a["keypoints3d_soft"], dtype=np.float64).reshape(
                NUM_KEYPOINTS, 3
            )
            has3d[i] = True
    hard[hard[..., 2] <= 0] = 0.0
    if flip:
        boxes = flip_boxes(boxes, width)  # the image is mirrored as pixels[:, ::-1]
        hard = flip_keypoints(hard, width)
        soft = flip_keypoints(soft, width)
        hard[hard[..., 2] <= 0] = 0.0
        pose3d = pose3d[:, FLIP_INDEX]
        pose3d[..., 0] *= -1  # a mirrored person: x changes sign in the camera frame
    return {
        "boxes": torch.as_tensor(boxes, dtype=torch.float32),
        "labels": torch.ones(n, dtype=torch.int64),
        "keypoints": torch.as_tensor(hard, dtype=torch.float32),
        "keypoints_soft": torch.as_tensor(soft, dtype=torch.float32),
        "keypoints3d_soft": torch.as_tensor(pose3d, dtype=torch.float32),
        "has3d": torch.as_tensor(has3d),
    }


class PseudoLabelDataset(torch.utils.data.Dataset):
    """Images of a COCO pose file with targets; indexed by (image index, augmentation seed)."""

    def __init__(
        self,
        dataset: PoseDataset,
        lowres: LowResSchedule,
        flip: bool = True,
        images_with_people_only: bool = False,
    ):
        self.dataset = dataset
        self.lowres = lowres
        self.flip = flip
        images = dataset.images
        if images_with_people_only:
            images = [im for im in images if dataset.annotations_of(im["id"])]
        self.images = images

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, item: tuple[int, int]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        index, seed = item
        rng = random.Random(seed)
        info = self.images[index]
        image = read_training_image(self.dataset, info)
        image = degrade(image, self.lowres.sample(rng))
        flip = self.flip and rng.random() < 0.5
        if flip:
            image = np.ascontiguousarray(image[:, ::-1])
        target = build_target(self.dataset.annotations_of(info["id"]), image.shape[1], flip)
        target["image_id"] = torch.tensor(info["id"])
        tensor = torch.from_numpy(image).permute(2, 0, 1).float().div_(255.0)
        return tensor, target
