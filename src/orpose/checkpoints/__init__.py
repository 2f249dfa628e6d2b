"""Checkpoints: every file format of orpose's networks, read and written in one package.

Modules:

- :mod:`orpose.checkpoints.safe`: safe loading (the package's one ``torch.load``) and atomic
  saving of any checkpoint; at the base of the package, so that the lifting stage reads its files
  (:mod:`orpose.lifting.checkpoint`, format ``orpose-lifter``) through it too;
- :mod:`orpose.checkpoints.student`: the orpose student checkpoint (its format is documented
  there): saving, rebuilding with the checksums of its ONNX sources and model files checked,
  starting weights;
- :mod:`orpose.checkpoints.torchvision`: torchvision's COCO Keypoint R-CNN weights as the
  starting weights of the Keypoint R-CNN student;
- :mod:`orpose.checkpoints.detectron2`: the official ORPose students (detectron2 ``.pth`` /
  ``.pkl``), converted on load.

The names below are re-exported lazily, so that importing ``orpose.checkpoints.safe`` (the base
floor) runs this file without importing the students (a higher floor).
"""

from __future__ import annotations

from orpose.lazy import lazy_exports

_SAFE = ("ArrayUnpickler", "read_checkpoint", "write_checkpoint")
_STUDENT = (
    "legacy_keys",
    "load_lifters",
    "load_student",
    "load_weights_into",
    "model_files",
    "save_student",
    "student_from_state",
    "student_state",
)
_WHERE = {
    **dict.fromkeys(_SAFE, "orpose.checkpoints.safe"),
    **dict.fromkeys(_STUDENT, "orpose.checkpoints.student"),
}
__all__ = sorted(_WHERE)
__getattr__ = lazy_exports(__name__, _WHERE)
