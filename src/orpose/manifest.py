"""The model manifest: which ONNX files orpose may run, how to feed them, and their checksums.

A model is used only through a manifest entry, and only when its file's sha256 matches the entry:
a wrong or tampered file fails loudly instead of producing silently wrong pseudo labels. The
built-in manifest (``models.yaml`` beside this module) lists the project's shared models; a user
manifest of the same shape adds or overrides entries. Nothing is ever downloaded.

At the base of the package: the teacher runs these models, and the students are built from
them (the CPU student imports the teacher's ONNX graphs, the ``picodet_lcnet`` backbone is cut
from the PicoDet detector). An entry names its ``task`` (detector or pose), checked here, and its
``output`` kind, which only the adapters know: each adapter registers the kind it decodes in a
registry (:class:`orpose.registry.Registry`: ``DETECTOR_ADAPTERS`` in
:mod:`orpose.teacher.detectors`, ``POSE_ADAPTERS`` in :mod:`orpose.teacher.pose`), and
:func:`adapter_for` refuses an unknown kind, naming the manifest and the model. The manifest
itself is data (files, their sha256, how to feed them), not a registry of code.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

import yaml

from orpose.errors import ModelError

TASKS = ("detector", "pose")
BUILTIN_MANIFEST = "models.yaml"
T = TypeVar("T")


@dataclass(frozen=True)
class InputSpec:
    """How an image becomes the model's input tensor (1 x 3 x height x width, float32)."""

    height: int
    width: int
    color: str = "rgb"  # channel order the model expects: rgb or bgr
    resize: str = "stretch"  # stretch: whole image to the input size; letterbox: top-left, padded
    pad_value: float = 114.0  # fill of letterbox borders and out-of-image areas (0..255)
    scale: float = 1.0 / 255.0  # value = (pixel * scale - mean) / std
    mean: tuple[float, float, float] = (0.0, 0.0, 0.0)
    std: tuple[float, float, float] = (1.0, 1.0, 1.0)


@dataclass(frozen=True)
class ModelSpec:
    """One manifest entry."""

    name: str
    task: str  # detector | pose
    output: str  # the adapter's kind: boxes_scores | yolox (detectors), heatmap | simcc (pose)
    file: str
    sha256: str
    input: InputSpec
    licence: str = "unknown"
    source: str = ""
    class_id: int = 0  # detectors: the person class among the model's classes
    strides: tuple[int, ...] = (8, 16, 32)  # yolox: grid strides of the head's levels
    box_padding: float = 1.25  # pose: the person box is enlarged by this before cropping
    heatmap_offset: float = 0.0  # heatmap: input x = map x * stride + offset (see decode.py)
    simcc_split: float = 2.0  # simcc: bins per input pixel (RTMPose: 2)
    outputs: tuple[str, ...] = ()  # output names in the order the adapter expects (optional)
    base_dir: Path | None = field(default=None, compare=False)  # folder of a user manifest
    manifest: str = field(default="", compare=False)  # the manifest the entry was read from

    def as_dict(self) -> dict[str, Any]:
        """The entry as recorded in a pseudo-label file's info (enough to reproduce the run)."""
        return {
            "name": self.name,
            "file": self.file,
            "sha256": self.sha256,
            "task": self.task,
            "output": self.output,
            "licence": self.licence,
            "source": self.source,
        }


def _parse_input(raw: Any, where: str) -> InputSpec:
    if not isinstance(raw, dict) or "height" not in raw or "width" not in raw:
        raise ModelError(f"{where}: field 'input' needs at least height and width")
    norm = raw.get("normalize", {}) or {}
    spec = InputSpec(
        height=int(raw["height"]),
        width=int(raw["width"]),
        color=str(raw.get("color", "rgb")).lower(),
        resize=str(raw.get("resize", "stretch")).lower(),
        pad_value=float(raw.get("pad_value", 114.0)),
        scale=float(norm.get("scale", 1.0 / 255.0)),
        mean=tuple(float(v) for v in norm.get("mean", (0.0, 0.0, 0.0))),
        std=tuple(float(v) for v in norm.get("std", (1.0, 1.0, 1.0))),
    )
    if spec.color not in ("rgb", "bgr"):
        raise ModelError(f"{where}: input.color must be rgb or bgr, got {spec.color!r}")
    if spec.resize not in ("stretch", "letterbox"):
        raise ModelError(f"{where}: input.resize must be stretch or letterbox, got {spec.resize!r}")
    if len(spec.mean) != 3 or len(spec.std) != 3 or 0.0 in spec.std:
        raise ModelError(f"{where}: input.normalize needs 3 means and 3 non-zero stds")
    return spec


def parse_entry(name: str, raw: Any, source: str, base_dir: Path | None = None) -> ModelSpec:
    """Validate one manifest entry; errors name the manifest and the model."""
    where = f"{source}: model '{name}'"
    if not isinstance(raw, dict):
        raise ModelError(f"{where}: expected a mapping")
    for key in ("task", "output", "file", "sha256", "input"):
        if key not in raw:
            raise ModelError(f"{where}: field '{key}' missing")
    task, output = str(raw["task"]), str(raw["output"])
    if task not in TASKS:
        raise ModelError(f"{where}: task must be detector or pose, got {task!r}")
    sha = raw["sha256"]
    if not isinstance(sha, str):  # YAML reads an unquoted all-digit checksum as a number
        raise ModelError(f"{where}: sha256 must be a quoted string of 64 hexadecimal digits")
    sha = sha.lower()
    if len(sha) != 64 or any(c not in "0123456789abcdef" for c in sha):
        raise ModelError(f"{where}: sha256 must be 64 hexadecimal digits")
    return ModelSpec(
        name=name,
        task=task,
        output=output,
        file=str(raw["file"]),
        sha256=sha,
        input=_parse_input(raw["input"], where),
        licence=str(raw.get("licence", "unknown")),
        source=str(raw.get("source", "")),
        class_id=int(raw.get("class_id", 0)),
        strides=tuple(int(s) for s in raw.get("strides", (8, 16, 32))),
        box_padding=float(raw.get("box_padding", 1.25)),
        heatmap_offset=float(raw.get("heatmap_offset", 0.0)),
        simcc_split=float(raw.get("simcc_split", 2.0)),
        outputs=tuple(str(o) for o in raw.get("outputs", ())),
        base_dir=base_dir,
        manifest=source,
    )


def _entries_of(text: str, source: str, base_dir: Path | None) -> dict[str, ModelSpec]:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise ModelError(f"{source}: not valid YAML/JSON ({err})") from err
    models = data.get("models") if isinstance(data, dict) else None
    if not isinstance(models, dict):
        raise ModelError(f"{source}: expected a top-level 'models' mapping")
    return {name: parse_entry(name, raw, source, base_dir) for name, raw in models.items()}


def load_manifest(user_manifest: Path | str | None = None) -> dict[str, ModelSpec]:
    """The built-in entries, updated with a user manifest's (YAML or JSON) when one is given."""
    text = resources.files("orpose").joinpath(BUILTIN_MANIFEST).read_text()
    entries = _entries_of(text, f"orpose/{BUILTIN_MANIFEST}", None)
    if user_manifest is not None:
        path = Path(user_manifest)
        if not path.is_file():
            raise ModelError(f"{path}: model manifest not found")
        entries.update(_entries_of(path.read_text(), str(path), path.parent.resolve()))
    return entries


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def model_path(spec: ModelSpec, models_dir: Path | None) -> Path:
    """Where the entry's file should be: absolute as written, else beside a user manifest when
    it is there, else in the models folder."""
    name = Path(spec.file)
    if name.is_absolute():
        return name
    if spec.base_dir is not None and (spec.base_dir / name).is_file():
        return spec.base_dir / name
    if models_dir is None:
        raise ModelError(
            f"model '{spec.name}': no models folder; pass --models-dir or set ORPOSE_MODELS "
            "(or ORPOSE_SHARED) to the folder holding its file"
        )
    return models_dir / name


def verify_model(spec: ModelSpec, models_dir: Path | None) -> Path:
    """The model's file, after checking that it exists and that its sha256 matches the entry."""
    path = model_path(spec, models_dir)
    if not path.is_file():
        raise ModelError(f"model '{spec.name}': file {path} not found (nothing is downloaded)")
    actual = sha256_of(path)
    if actual != spec.sha256:
        raise ModelError(
            f"model '{spec.name}': {path} has sha256 {actual}, the manifest expects "
            f"{spec.sha256}; refusing to use it"
        )
    return path


def find_model(name: str, manifest: dict[str, ModelSpec], task: str) -> ModelSpec:
    """The entry called ``name``, checked to be of the wanted task."""
    if name not in manifest:
        known = ", ".join(sorted(n for n, s in manifest.items() if s.task == task))
        raise ModelError(f"unknown {task} model '{name}' (known: {known}; add it with --manifest)")
    spec = manifest[name]
    if spec.task != task:
        raise ModelError(f"model '{name}' is a {spec.task}, not a {task}")
    return spec


def adapter_for(spec: ModelSpec, adapters: Mapping[str, T]) -> T:
    """The adapter registered for the entry's output kind; an unknown kind is a ModelError
    naming the manifest and the model."""
    if spec.output not in adapters:
        where = f"{spec.manifest}: " if spec.manifest else ""
        raise ModelError(
            f"{where}model '{spec.name}': a {spec.task} output must be one of "
            f"{', '.join(sorted(adapters))}, got {spec.output!r}"
        )
    return adapters[spec.output]
