"""Checkpoints: the students' file formats (orpose's own, torchvision's, the official ORPose).

Modules:

- :mod:`orpose.checkpoints.student`: the orpose student checkpoint (its format is documented
  there): saving, rebuilding with the checksums of its ONNX sources and model files checked,
  starting weights;
- :mod:`orpose.checkpoints.torchvision`: torchvision's COCO Keypoint R-CNN weights as the
  starting weights of the Keypoint R-CNN student;
- :mod:`orpose.checkpoints.detectron2`: the official ORPose students (detectron2 ``.pth`` /
  ``.pkl``), converted on load.

Every file is read and written through :mod:`orpose.safe_checkpoint` (the base floor: the
package's one ``torch.load`` and ``torch.save``), whose names are re-exported here, as are the
student format's. This package is the floor above :mod:`orpose.student` (it builds students);
the names are resolved lazily, so that importing the package imports no torch.
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
    **dict.fromkeys(_SAFE, "orpose.safe_checkpoint"),
    **dict.fromkeys(_STUDENT, "orpose.checkpoints.student"),
}
__all__ = sorted(_WHERE)
__getattr__ = lazy_exports(__name__, _WHERE)
