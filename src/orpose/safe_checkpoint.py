"""Safe loading and atomic saving of any checkpoint file: the one ``torch.load`` of the package.

This module sits at the base of the package (it imports no stage), so that every stage reads
and writes its files through it: the lifting stage its lifter checkpoints
(:mod:`orpose.lifting.checkpoint`), the student formats of :mod:`orpose.checkpoints` theirs
(which re-exports these names: ``orpose.checkpoints.read_checkpoint``).

- :func:`read_checkpoint`: ``torch.load(weights_only=True)`` (tensors and plain values only:
  nothing in the file runs), or :class:`ArrayUnpickler` for plain pickles (detectron2's
  ``.pkl``); a missing, empty, truncated, foreign or unsafe file gives one
  :class:`~orpose.errors.ModelError` naming the file;
- :func:`write_checkpoint`: ``torch.save`` through :func:`orpose.atomic.write_atomic`, so that a
  crash never leaves half a checkpoint behind.
"""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch

from orpose.atomic import write_atomic
from orpose.errors import ModelError


class ArrayUnpickler(pickle.Unpickler):
    """Unpickles dicts of numpy arrays (detectron2's ``.pkl`` model files) and nothing else:
    every other global, the way a pickle runs code, is refused."""

    ALLOWED = frozenset(
        {
            ("numpy.core.multiarray", "_reconstruct"),
            ("numpy._core.multiarray", "_reconstruct"),
            ("numpy.core.multiarray", "scalar"),
            ("numpy._core.multiarray", "scalar"),
            ("numpy", "ndarray"),
            ("numpy", "dtype"),
            ("collections", "OrderedDict"),
        }
    )

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in self.ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"Unsupported global {module}.{name}")


def _refusal(err: Exception) -> str:
    text = str(err).strip()
    if "weights_only" in text or "Unsupported global" in text:
        return "it holds Python objects that would run code when loaded; refused"
    return text.splitlines()[0] if text else type(err).__name__


def read_checkpoint(path: Path | str, map_location: str | torch.device = "cpu") -> Any:
    """A checkpoint's content, loaded safely: ``torch.load(weights_only=True)`` (tensors and
    plain values), or for plain pickles (detectron2's ``.pkl``) :class:`ArrayUnpickler`."""
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"{path}: no such checkpoint")
    if path.stat().st_size == 0:
        raise ModelError(f"{path}: empty file, not a checkpoint")
    if not zipfile.is_zipfile(path):  # torch.save writes zip archives; the rest is a pickle
        try:
            with open(path, "rb") as f:
                return ArrayUnpickler(f, encoding="latin1").load()
        except Exception as err:
            raise ModelError(f"{path}: not a readable checkpoint ({_refusal(err)})") from None
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # torch raises many types for corrupt, foreign or unsafe files
        raise ModelError(f"{path}: not a readable checkpoint ({_refusal(err)})") from None


def write_checkpoint(payload: Any, path: Path | str) -> Path:
    """``torch.save(payload)`` to ``path``, atomically (see :mod:`orpose.atomic`); returns it."""
    return write_atomic(path, lambda f: torch.save(payload, f), binary=True)
