"""Turning RGB pixels into a model's input tensor, following the model's manifest entry."""

from __future__ import annotations

import cv2
import numpy as np

from orpose.manifest import InputSpec


def normalize(image_rgb: np.ndarray, spec: InputSpec) -> np.ndarray:
    """``(H, W, 3)`` RGB pixels (already at the input size) to a ``(3, H, W)`` float32 tensor."""
    pixels = image_rgb[..., ::-1] if spec.color == "bgr" else image_rgb
    std = np.asarray(spec.std, np.float32)
    gain = np.float32(spec.scale) / std  # one multiply-add per value instead of three passes
    bias = -np.asarray(spec.mean, np.float32) / std
    chw = np.ascontiguousarray(pixels.transpose(2, 0, 1), dtype=np.float32)
    return chw * gain[:, None, None] + bias[:, None, None]


def fit_to_input(image_rgb: np.ndarray, spec: InputSpec) -> tuple[np.ndarray, float, float]:
    """Resize a whole image to the model's input as its entry says.

    Returns the input-sized image and the factors (sx, sy) with input = image * factor, so that
    outputs map back by division. Letterbox keeps the aspect ratio and puts the image at the
    top-left corner (YOLOX's convention), filling the rest with ``pad_value``.
    """
    h, w = image_rgb.shape[:2]
    if spec.resize == "stretch":
        resized = cv2.resize(image_rgb, (spec.width, spec.height), interpolation=cv2.INTER_LINEAR)
        return resized, spec.width / w, spec.height / h
    ratio = min(spec.width / w, spec.height / h)
    new_w, new_h = max(1, int(w * ratio)), max(1, int(h * ratio))
    canvas = np.full((spec.height, spec.width, 3), spec.pad_value, dtype=np.uint8)
    canvas[:new_h, :new_w] = cv2.resize(image_rgb, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
    return canvas, ratio, ratio
