"""Student checkpoints: the format, atomic writes and safe loading, in one place.

Format (a ``torch.save`` dict, loaded with ``weights_only=True``, so a file can hold only
tensors and plain Python values and never runs code):

- ``model``: the state dict;
- ``student_config``: the student's config as a plain dict (its ``family`` names the registry
  entry that rebuilds it, see :mod:`orpose.student.registry`);
- ``sources`` (families imported from ONNX files): ``{role: uint8 tensor}`` with the bytes of
  each ONNX graph the student was built from, and ``sources_sha256`` ``{role: hex}``; the graphs
  are parsed by ``onnx`` (data, not code) and their checksums are checked at load;
- training checkpoints add ``optimizer``, ``scheduler``, ``iteration``, ``torch_rng`` and
  ``config`` (the training config).

Any file that is missing, empty, truncated, not a checkpoint or would need code to unpickle gives
one :class:`~orpose.errors.ModelError` naming the file.
"""

from __future__ import annotations

import hashlib
import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from orpose.atomic import save_torch_atomic
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


def student_state(model: nn.Module) -> dict[str, Any]:
    """What rebuilds a student: weights, config and (imported families) its source graphs."""
    state: dict[str, Any] = {
        "model": model.state_dict(),
        "student_config": model.config.to_dict(),
    }
    sources = getattr(model, "sources", None)
    if sources:
        state["sources"] = {
            k: torch.frombuffer(bytearray(v), dtype=torch.uint8) for k, v in sources.items()
        }
        state["sources_sha256"] = dict(model.sha256)
    patches = getattr(model, "orpose_patches", None)
    if patches:
        state["patches"] = dict(patches)
    return state


def save_student(model: nn.Module, path: Path | str) -> Path:
    """A checkpoint of ``model`` that :func:`load_student` reads, written atomically."""
    return save_torch_atomic(student_state(model), path)


def source_bytes(state: dict, path: Path | str) -> dict[str, bytes] | None:
    """The ONNX graphs a checkpoint carries, checked against their recorded sha256."""
    sources = state.get("sources")
    if sources is None:
        return None
    if not isinstance(sources, dict):
        raise ModelError(f"{path}: field 'sources' is not a mapping of graphs")
    recorded = state.get("sources_sha256") or {}
    out = {}
    for role, tensor in sources.items():
        if not isinstance(tensor, torch.Tensor) or tensor.dtype != torch.uint8:
            raise ModelError(f"{path}: field 'sources.{role}' is not a byte tensor")
        data = tensor.numpy().tobytes()
        digest = hashlib.sha256(data).hexdigest()
        if recorded.get(role) != digest:
            raise ModelError(
                f"{path}: field 'sources.{role}': sha256 {digest[:12]}... does not match the "
                "recorded checksum (the file was changed)"
            )
        out[role] = data
    return out


def student_from_state(state: Any, path: Path | str) -> nn.Module:
    """Rebuild a student (eval mode) from a checkpoint's content; errors name the file."""
    from orpose.student.registry import build_student, student_config

    if not isinstance(state, dict) or "model" not in state or "student_config" not in state:
        raise ModelError(
            f"{path}: not an orpose student checkpoint (needs 'model' and 'student_config')"
        )
    if not isinstance(state["student_config"], dict):
        raise ModelError(f"{path}: field 'student_config' is not a mapping")
    try:
        config = student_config(state["student_config"])
    except (ValueError, TypeError) as err:
        raise ModelError(f"{path}: field 'student_config': {err}") from None
    kwargs = {}
    sources = source_bytes(state, path)
    if sources is not None:
        kwargs["sources"] = sources
    model = build_student(config, **kwargs)
    patches = state.get("patches") or {}
    if patches:  # architecture changes of weights converted from detectron2
        from orpose.student.detectron2_weights import apply_patches

        apply_patches(model, patches)
        model.orpose_patches = dict(patches)
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as err:
        first = str(err).strip().splitlines()[0]
        raise ModelError(f"{path}: field 'model' does not fit the student ({first})") from None
    return model.eval()


def load_student(path: Path | str, map_location: str | torch.device = "cpu") -> nn.Module:
    """A student in eval mode from an orpose checkpoint or an official ORPose (detectron2) one."""
    from orpose.student.detectron2_weights import detectron2_state, load_detectron2_student

    state = read_checkpoint(path, map_location)
    if detectron2_state(state) is not None:
        return load_detectron2_student(path, checkpoint=state)[0]
    return student_from_state(state, path)


def load_weights_into(model: nn.Module, path: Path | str) -> None:
    """Start training from an orpose checkpoint of the same architecture (stage 2)."""
    state = read_checkpoint(path)
    weights = state.get("model") if isinstance(state, dict) else None
    if not isinstance(weights, dict):
        raise ModelError(f"{path}: no 'model' weights to start from")
    try:
        model.load_state_dict(weights)
    except RuntimeError as err:
        first = str(err).strip().splitlines()[0]
        raise ModelError(f"{path}: its weights do not fit this student ({first})") from None
