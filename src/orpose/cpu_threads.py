"""CPU threads that do not fight: what ``orpose predict`` sets before PyTorch is loaded.

PyTorch's OpenMP threads and ONNX Runtime's pool spin for a while after each parallel region
before they sleep. One process alone gains a little from it; two or three processes on the same
cores (one per OR camera, or beside the hospital's other software) lose most of their time to
it: each one's spinning threads hold the cores the other one's work waits for. Measured on the
2-core development CPU, see docs/inference.md, 'Several cameras'.
"""

from __future__ import annotations

import os
import sys

WAIT_POLICY = "OMP_WAIT_POLICY"


def passive_waits() -> bool:
    """Idle OpenMP threads sleep at once (``OMP_WAIT_POLICY=PASSIVE``) unless the user chose a
    policy. It is read when PyTorch loads its OpenMP runtime: False when it is too late (torch
    already imported) or the user set one."""
    if "torch" in sys.modules or WAIT_POLICY in os.environ:
        return False
    os.environ[WAIT_POLICY] = "PASSIVE"
    return True


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity, e.g. a container's share)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)
