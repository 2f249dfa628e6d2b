"""The orpose student checkpoint: saving, rebuilding (with its checks), starting weights.

The format (a ``torch.save`` dict, loaded with ``weights_only=True``, so a file
can hold only tensors and plain Python values and never runs code):

- ``model``: the state dict;
- ``student_config``: the student's config as a plain dict (its ``family`` names the registry
  entry that rebuilds it, see :mod:`orpose.student.registry`); architecture changes are config
  fields too (``stride_in_1x1`` of official detectron2 ResNets);
- ``sources`` (families imported from ONNX files): ``{role: uint8 tensor}`` with the bytes of
  each ONNX graph the student was built from, and ``sources_sha256`` ``{role: hex}``; the graphs
  are parsed by ``onnx`` (data, not code) and their checksums are checked at load;
- ``model_files`` (parts rebuilt at load time from a model file that stays outside the
  checkpoint, such as the ``picodet_lcnet`` backbone, rebuilt from the teacher's PicoDet ONNX
  file): ``{module name: {"file": file name, "sha256": hex}}``; loading refuses a checkpoint
  whose file, as found at load time, has another sha256;
- training checkpoints add ``optimizer``, ``scheduler``, ``iteration``, ``torch_rng`` and
  ``config`` (the training config).

Files written before ``stride_in_1x1`` was a config field carry ``patches``
(``{"stride_in_1x1": bool}``); they load as the field. Any file that is missing, empty, truncated,
not a checkpoint or would need code to unpickle gives one :class:`~orpose.errors.ModelError`
naming the file.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import torch
from torch import nn

from orpose import lifting
from orpose.errors import ModelError, OrposeError
from orpose.safe_checkpoint import read_checkpoint, write_checkpoint
from orpose.student.registry import build_student, family_of, student_config

__all__ = [
    "legacy_keys",
    "load_lifters",
    "load_student",
    "load_weights_into",
    "model_files",
    "save_student",
    "student_from_state",
    "student_state",
]

# Architecture changes recorded by older converted checkpoints -> the config field of each.
LEGACY_PATCHES = {"stride_in_1x1": "stride_in_1x1"}
# Parts that a later version added with pretrained starting weights of their own: a checkpoint
# of an earlier version starts training without them (they keep their starting weights).
ADDED_PARTS = ("native_head.",)


def model_files(model: nn.Module) -> dict[str, dict[str, str]]:
    """The model files parts of ``model`` were rebuilt from, ``{module name: {"file", "sha256"}}``
    (modules built from a file say so in their ``rebuilt_from``, see
    :class:`orpose.student.onnx_backbone.OnnxFeatureBackbone`); ``file`` is the full path."""
    out = {}
    for name, module in model.named_modules():
        source = getattr(module, "rebuilt_from", None)
        if source:
            out[name] = {"file": str(source["file"]), "sha256": str(source["sha256"])}
    return out


def student_state(model: nn.Module) -> dict[str, Any]:
    """What rebuilds a student: weights, config, its ONNX source graphs (imported families) and
    the checksums of the model files it is rebuilt from."""
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
    files = model_files(model)
    if files:
        state["model_files"] = {
            name: {"file": Path(f["file"]).name, "sha256": f["sha256"]} for name, f in files.items()
        }
    return state


def save_student(model: nn.Module, path: Path | str) -> Path:
    """A checkpoint of ``model`` that :func:`load_student` reads, written atomically."""
    return write_checkpoint(student_state(model), path)


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


def check_model_files(state: dict, model: nn.Module, path: Path | str) -> None:
    """Refuse a student rebuilt from another model file than the one it was trained from."""
    recorded = state.get("model_files") or {}
    if not isinstance(recorded, dict):
        raise ModelError(f"{path}: field 'model_files' is not a mapping")
    found = model_files(model)
    for name, entry in recorded.items():
        if not isinstance(entry, dict) or "sha256" not in entry:
            raise ModelError(f"{path}: field 'model_files.{name}' has no sha256")
        now = found.get(name)
        if now is None:
            raise ModelError(
                f"{path}: its module '{name}' was rebuilt from {entry.get('file')}, this student "
                "is built without it"
            )
        if now["sha256"] != entry["sha256"]:
            raise ModelError(
                f"{path}: trained on {entry.get('file')} with sha256 {entry['sha256'][:12]}..., "
                f"but {now['file']} has sha256 {now['sha256'][:12]}...; refusing to load it"
            )


def _config_dict(state: dict, path: Path | str) -> dict:
    """The saved student config, with the legacy ``patches`` turned into config fields."""
    if not isinstance(state["student_config"], dict):
        raise ModelError(f"{path}: field 'student_config' is not a mapping")
    config = dict(state["student_config"])
    patches = state.get("patches") or {}
    if not isinstance(patches, dict):
        raise ModelError(f"{path}: field 'patches' is not a mapping")
    for name, on in patches.items():
        if name not in LEGACY_PATCHES:
            raise ModelError(
                f"{path}: field 'patches': unknown model patch {name!r}; known: "
                f"{', '.join(LEGACY_PATCHES)}"
            )
        config[LEGACY_PATCHES[name]] = bool(on)
    config.update(legacy_fields(config))
    return config


def legacy_fields(saved_config: dict) -> dict:
    """The fields a saved student config lacks because they came later, each with the value
    that says how the saved student was built (its family's ``legacy_defaults``, see
    :mod:`orpose.student.registry`)."""
    legacy = family_of(saved_config).legacy_defaults
    return {name: value for name, value in legacy.items() if name not in saved_config}


def student_from_state(state: Any, path: Path | str) -> nn.Module:
    """Rebuild a student (eval mode) from a checkpoint's content; errors name the file."""
    if not isinstance(state, dict) or "model" not in state or "student_config" not in state:
        raise ModelError(
            f"{path}: not an orpose student checkpoint (needs 'model' and 'student_config')"
        )
    try:
        config = student_config(_config_dict(state, path))
    except (ValueError, TypeError) as err:
        raise ModelError(f"{path}: field 'student_config': {err}") from None
    kwargs = {}
    sources = source_bytes(state, path)
    if sources is not None:
        kwargs["sources"] = sources
    try:
        model = build_student(config, **kwargs)
    except OrposeError as err:  # e.g. a model file it is rebuilt from: missing or tampered with
        raise type(err)(f"{path}: {err}") from None
    check_model_files(state, model, path)
    # imported here: it imports torchvision, which a process reading lifter files does not need
    from orpose.student.onnx_backbone import legacy_backbone_weights

    weights = legacy_backbone_weights(legacy_keys(state["model"]), model.state_dict())
    try:
        model.load_state_dict(weights)
    except RuntimeError as err:
        first = str(err).strip().splitlines()[0]
        raise ModelError(f"{path}: field 'model' does not fit the student ({first})") from None
    return model.eval()


LEGACY_PREFIXES = (("lift_soft.", "roi_heads.kp_head.lift_soft."),
                   ("lift_hard.", "roi_heads.kp_head.lift_hard."))  # fmt: skip


def legacy_keys(weights: dict) -> dict:
    """Weights of Keypoint R-CNN students saved before the keypoint head owned the lifters."""
    out = {}
    for key, value in weights.items():
        for old, new in LEGACY_PREFIXES:
            if key.startswith(old):
                key = new + key[len(old) :]
                break
        out[key] = value
    return out


def load_student(
    path: Path | str,
    map_location: str | torch.device = "cpu",
    h36_stats: Path | str | None = None,
) -> nn.Module:
    """A student in eval mode from an orpose checkpoint or an official ORPose (detectron2) one.

    ``h36_stats``: the official ``h36stats.json`` its lifters need (default
    ``$ORPOSE_H36_STATS``; official checkpoints only, see
    :func:`orpose.checkpoints.detectron2.load_detectron2_student`, whose report stays on the
    model as ``orpose_load_report`` and whose warnings are logged).
    """
    # imported here: the converter builds the whole Keypoint R-CNN student (torchvision's
    # detection models), which a process reading lifter or CPU-student files does not need
    from orpose.checkpoints.detectron2 import detectron2_state, load_detectron2_student

    state = read_checkpoint(path, map_location)
    if detectron2_state(state) is not None:
        return load_detectron2_student(path, checkpoint=state, h36_stats=h36_stats)[0]
    return student_from_state(state, path)


def load_weights_into(model: nn.Module, path: Path | str) -> None:
    """Start training from an orpose checkpoint of the same architecture (stage 2)."""
    state = read_checkpoint(path)
    weights = state.get("model") if isinstance(state, dict) else None
    if not isinstance(weights, dict):
        raise ModelError(f"{path}: no 'model' weights to start from")
    weights = derived_parts(weights, model.state_dict())
    missing = [k for k in model.state_dict() if k not in weights]
    added_only = bool(missing) and all(k.startswith(ADDED_PARTS) for k in missing)
    try:
        result = model.load_state_dict(weights, strict=not added_only)
        if added_only and result.unexpected_keys:  # still strict about everything else
            raise RuntimeError(f"Unexpected key(s) in state_dict: {result.unexpected_keys[0]!r}")
    except RuntimeError as err:
        first = str(err).strip().splitlines()[0]
        raise ModelError(f"{path}: its weights do not fit this student ({first})") from None


# Parts a later version added as copies of another part: a checkpoint of an earlier version
# starts them from that part's weights (the CPU student's full-resolution detector, lifters and
# head).
DERIVED_PARTS = (
    ("full_res_detector.", "detector."),
    ("full_res_lifters.soft.", "head.lift_soft."),
    ("full_res_lifters.hard.", "head.lift_hard."),
    ("full_res_head.", "head."),
)


def derived_parts(weights: dict, wanted: dict) -> dict:
    """``weights`` with the :data:`DERIVED_PARTS` that ``wanted`` (a state dict) has and
    ``weights`` lacks, copied from their source part, and without those ``wanted`` lacks (a
    student built with one detector starting from one with two)."""
    derived = tuple(part for part, _ in DERIVED_PARTS)
    out = {k: v for k, v in weights.items() if k in wanted or not k.startswith(derived)}
    for key in wanted:
        for part, source in DERIVED_PARTS:
            origin = source + key[len(part) :]
            if key.startswith(part) and key not in out and origin in weights:
                out[key] = weights[origin].clone()
    return out


def load_lifters(model: nn.Module, lifter_path: Path | str) -> None:
    """Initialise both lifters of a Keypoint R-CNN student from one orpose lifter checkpoint."""
    head = model.keypoint_head
    head.set_lifters(lifting.load_lifter(lifter_path))
    # the lifter's own architecture wins, so that a saved student rebuilds the same modules
    model.config.lifter_config = head.lifter_config
