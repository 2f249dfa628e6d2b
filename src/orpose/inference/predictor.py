"""The student as a function from an RGB image to COCO-style person results."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from orpose.student.model import ORPoseStudent, StudentConfig, build_student


def load_student(path: Path | str, map_location: str | torch.device = "cpu") -> ORPoseStudent:
    """A student from a training checkpoint (``last.pt``) in eval mode; errors name the file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such checkpoint")
    state = torch.load(path, map_location=map_location, weights_only=False)
    if not isinstance(state, dict) or "model" not in state or "student_config" not in state:
        raise ValueError(f"{path}: not an orpose student checkpoint (needs 'model' and "
                         "'student_config')")  # fmt: skip
    model = build_student(StudentConfig.from_dict(state["student_config"]))
    model.load_state_dict(state["model"])
    return model.eval()


def detections_to_results(det: dict[str, torch.Tensor], score_threshold: float = 0.0) -> list[dict]:
    """One image's detections to COCO results (bbox xywh, keypoints [x, y, score] x 17, 3D mm)."""
    keep = det["scores"] >= score_threshold
    boxes = det["boxes"][keep].cpu().numpy().astype(np.float64)
    scores = det["scores"][keep].cpu().numpy()
    kps = det["keypoints"][keep].cpu().numpy().astype(np.float64)
    kps[..., 2] = det["keypoints_scores"][keep].sigmoid().cpu().numpy()
    has3d = "keypoints3d" in det
    pose3d = det["keypoints3d"][keep].cpu().numpy() if has3d else None
    results = []
    for i in range(len(boxes)):
        x1, y1, x2, y2 = boxes[i]
        r = {"category_id": 1, "bbox": [round(float(v), 2) for v in (x1, y1, x2 - x1, y2 - y1)],
             "score": round(float(scores[i]), 5),
             "keypoints": [round(float(v), 3) for v in kps[i].ravel()]}  # fmt: skip
        if pose3d is not None:
            r["keypoints3d"] = [round(float(v), 1) for v in pose3d[i].ravel()]
        results.append(r)
    return results


class StudentPredictor:
    """``predictor(image)`` -> list of result dicts (without ``image_id``)."""

    def __init__(self, model: ORPoseStudent, device: str | torch.device | None = None,
                 score_threshold: float = 0.0):  # fmt: skip
        if device is None:
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.score_threshold = score_threshold

    @classmethod
    def from_checkpoint(cls, path: Path | str, device: str | None = None, **kwargs):
        return cls(load_student(path), device, **kwargs)

    @torch.inference_mode()
    def __call__(self, image: np.ndarray) -> list[dict]:
        tensor = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float() / 255.0
        (det,) = self.model([tensor.to(self.device)])
        return detections_to_results(det, self.score_threshold)
