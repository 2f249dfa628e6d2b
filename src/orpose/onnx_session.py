"""onnxruntime sessions, made the same way everywhere (teacher models, exported students).

CUDA first where this onnxruntime build has it, the CPU always as the fallback; an optional cap
on the intra-op threads; warnings of fp16-converted files kept off the user's terminal; and,
where PyTorch shares the cores (training), idle threads that sleep instead of spinning.

A process that runs several models in turn can ask for one intra-op thread pool shared by all
its sessions (:func:`share_one_thread_pool`; ``orpose bench`` does). Why: a session's idle
threads spin for a while after each run, so with a pool per session the threads of the model
that just ran spin against the work of the next one. On the 2-core development CPU the single-
pass teacher (detector, then pose model) took 177 ms per PETS frame with a pool per session and
143 ms with one shared pool, and a student session timed right after another session took 16-27%
longer than timed alone; with the shared pool it took the same.
"""

from __future__ import annotations

from pathlib import Path

import onnxruntime as ort

_pool = {"shared": False}  # whether this process's sessions use one shared thread pool


def execution_providers() -> list[str]:
    """CUDA first when this onnxruntime build has it; CPU always as the fallback."""
    available = ort.get_available_providers()
    wanted = ["CUDAExecutionProvider"] if "CUDAExecutionProvider" in available else []
    return [*wanted, "CPUExecutionProvider"]


def runtime_name(session) -> str:
    """``onnxruntime`` for a session on the CPU, ``onnxruntime-cuda`` (``-tensorrt``...) for one
    whose first provider is another: what a benchmark row says it ran on."""
    first = (session.get_providers() or ["CPUExecutionProvider"])[0]
    if first == "CPUExecutionProvider":
        return "onnxruntime"
    return "onnxruntime-" + first.removesuffix("ExecutionProvider").lower()


def share_one_thread_pool(threads: int) -> bool:
    """From now on, every session of this process runs on one intra-op pool of ``threads``
    (0: onnxruntime's default); ``threads`` and ``spin`` of later sessions no longer apply.
    False where this onnxruntime cannot (then each session keeps its own pool)."""
    from onnxruntime.capi import _pybind_state

    try:
        _pybind_state.set_global_thread_pool_sizes(threads, 1)
    except (AttributeError, RuntimeError):
        return False
    _pool["shared"] = True
    return True


def session_options(threads: int = 0, spin: bool = True):
    """``threads`` > 0 caps the intra-op threads (0: onnxruntime decides); ``spin=False`` lets
    idle threads sleep (PyTorch shares these cores)."""
    options = ort.SessionOptions()
    if _pool["shared"]:
        options.use_per_session_threads = False
    elif threads > 0:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    if not spin:
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3
    return options


def open_session(path: Path | str, threads: int = 0, spin: bool = True,
                 providers: list[str] | None = None):  # fmt: skip
    """An ``InferenceSession`` of an ONNX file with the options above."""
    providers = providers or execution_providers()
    try:
        return ort.InferenceSession(str(path), session_options(threads, spin), providers=providers)
    except RuntimeError as err:  # an environment made before the shared pool was asked for
        if not _pool["shared"] or "globalthreadpool" not in str(err).lower().replace(" ", ""):
            raise
    _pool["shared"] = False
    return ort.InferenceSession(str(path), session_options(threads, spin), providers=providers)
