"""One way to write a file so that a crash never leaves half of it behind.

The content goes to a temporary file beside the target, is flushed to disk, gets the usual file
mode (``mkstemp`` creates 0600 files), then replaces the target in one ``os.replace``.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_atomic(
    path: Path | str, write: Callable[[IO], None], binary: bool = False, newline: str | None = None
) -> Path:
    """Call ``write(file)`` on a temporary file, then move it over ``path``; returns ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb" if binary else "w", newline=None if binary else newline) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def save_torch_atomic(payload: Any, path: Path | str) -> Path:
    """``torch.save`` through :func:`write_atomic` (checkpoints)."""
    import torch

    return write_atomic(path, lambda f: torch.save(payload, f), binary=True)
