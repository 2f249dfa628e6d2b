"""Where orpose finds local models and data: nothing is ever downloaded at run time.

``ORPOSE_SHARED`` names the folder holding ``models/`` and ``data/`` (the layout of the project's
shared folder); without it, ``../shared`` then ``./shared`` relative to the working directory are
tried. ``ORPOSE_MODELS`` overrides the models folder alone.
"""

from __future__ import annotations

import os
from pathlib import Path

from orpose.errors import MissingResourceError


def shared_candidates() -> list[Path]:
    """The folders tried, in order, for the shared models and data: ``$ORPOSE_SHARED`` alone
    where it is set, else ``../shared`` then ``./shared`` (relative to the working directory)."""
    env = os.environ.get("ORPOSE_SHARED")
    return [Path(env)] if env else [Path("../shared"), Path("shared")]


def shared_dir(required: bool = True) -> Path | None:
    """The shared models-and-data folder, or None (or an error) when none is found."""
    candidates = shared_candidates()
    for c in candidates:
        if (c / "data").is_dir() or (c / "models").is_dir():
            return c.resolve()
    if required:
        tried = ", ".join(str(c) for c in candidates)
        raise MissingResourceError(
            f"shared models/data folder not found (tried {tried}); set ORPOSE_SHARED to the "
            "folder that holds models/ and data/"
        )
    return None


def models_dir(required: bool = True) -> Path | None:
    """The folder of ONNX / checkpoint files: ``ORPOSE_MODELS``, else ``<shared>/models``."""
    env = os.environ.get("ORPOSE_MODELS")
    if env:
        path = Path(env)
        if not path.is_dir() and required:
            raise MissingResourceError(f"ORPOSE_MODELS={env}: no such folder")
        return path if path.is_dir() else None
    shared = shared_dir(required)
    return None if shared is None else shared / "models"


def shared_data(relative: str, required: bool = True) -> Path | None:
    """A path under ``<shared>/data``, checked to exist."""
    shared = shared_dir(required)
    if shared is None:
        return None
    path = shared / "data" / relative
    if not path.exists():
        if required:
            raise MissingResourceError(f"{path}: not found in the shared data folder")
        return None
    return path


def configs_dir() -> Path:
    """The training configs shipped with the project (``configs/`` of the checkout), or
    ``ORPOSE_CONFIGS``: the demo and the experiments start from these files."""
    env = os.environ.get("ORPOSE_CONFIGS")
    path = Path(env) if env else Path(__file__).resolve().parents[2] / "configs"
    if not path.is_dir():
        raise MissingResourceError(
            f"{path}: the configs folder is missing; run from a checkout of orpose (pip install "
            "-e .) or set ORPOSE_CONFIGS to a copy of its configs/ folder"
        )
    return path


def expand_shared(text: str) -> str:
    """``{shared}`` in a config value -> the shared models/data folder (configs and specs)."""
    if "{shared}" in text:
        text = text.replace("{shared}", str(shared_dir()))
    return text


def file_stamp(path: str | os.PathLike) -> dict[str, int] | None:
    """``{"size", "mtime_ns"}`` of a file, None for what is not one (a camera, a stream URL):
    what tells that a file a record was made from has changed since."""
    try:
        stat = os.stat(path)
    except (OSError, ValueError):
        return None
    return {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns} if os.path.isfile(path) else None
