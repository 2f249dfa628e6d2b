"""onnxruntime sessions for the teacher's models: CUDA where available, else CPU, batch-aware."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from orpose.onnx_session import open_session


class OnnxModel:
    """One ONNX model with a single image input.

    Models exported with a fixed batch size (all the shared ones: batch 1) are fed in chunks of
    that size, so callers always pass whole batches and never care which kind they hold.
    """

    def __init__(
        self, path: Path | str, threads: int = 0, max_batch: int = 16, spin: bool = True
    ) -> None:
        self.path = Path(path)
        self.session = open_session(path, threads, spin)
        first = self.session.get_inputs()[0]
        self.input_name = first.name
        batch = first.shape[0]
        # A symbolic or missing batch dimension means any batch size is accepted.
        self.fixed_batch: int | None = batch if isinstance(batch, int) and batch > 0 else None
        self.chunk = self.fixed_batch or max_batch
        self.output_names = [o.name for o in self.session.get_outputs()]
        self.output_shapes = [o.shape for o in self.session.get_outputs()]

    def run(self, batch: np.ndarray) -> list[np.ndarray]:
        """Outputs for an ``(N, 3, H, W)`` batch, concatenated along the batch axis."""
        pieces: list[list[np.ndarray]] = []
        for start in range(0, len(batch), self.chunk):
            part = np.ascontiguousarray(batch[start : start + self.chunk], dtype=np.float32)
            real = len(part)
            if self.fixed_batch and real < self.fixed_batch:
                padding = np.zeros((self.fixed_batch - real, *part.shape[1:]), np.float32)
                part = np.concatenate([part, padding])
            outputs = self.session.run(self.output_names, {self.input_name: part})
            pieces.append([o[:real] for o in outputs])
        if not pieces:
            raise ValueError("empty batch")
        return [np.concatenate(group) for group in zip(*pieces, strict=True)]
