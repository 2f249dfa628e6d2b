"""onnxruntime sessions, made the same way everywhere (teacher models, exported students).

CUDA first where this onnxruntime build has it, the CPU always as the fallback; an optional cap
on the intra-op threads; warnings of fp16-converted files kept off the user's terminal; and,
where PyTorch shares the cores (training), idle threads that sleep instead of spinning.
"""

from __future__ import annotations

from pathlib import Path

import onnxruntime as ort


def execution_providers() -> list[str]:
    """CUDA first when this onnxruntime build has it; CPU always as the fallback."""
    available = ort.get_available_providers()
    wanted = ["CUDAExecutionProvider"] if "CUDAExecutionProvider" in available else []
    return [*wanted, "CPUExecutionProvider"]


def session_options(threads: int = 0, spin: bool = True):
    """``threads`` > 0 caps the intra-op threads (0: onnxruntime decides); ``spin=False`` lets
    idle threads sleep (PyTorch shares these cores)."""
    options = ort.SessionOptions()
    if threads > 0:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    if not spin:
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3
    return options


def open_session(path: Path | str, threads: int = 0, spin: bool = True,
                 providers: list[str] | None = None):  # fmt: skip
    """An ``InferenceSession`` of an ONNX file with the options above."""
    return ort.InferenceSession(
        str(path), session_options(threads, spin), providers=providers or execution_providers()
    )
