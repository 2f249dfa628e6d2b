"""The model manifest: entries, lookup, and refusal of files whose checksum does not match."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from pathlib import Path

import pytest

from orpose.cli import main
from orpose.manifest import (
    ModelError,
    find_model,
    load_manifest,
    sha256_of,
    verify_model,
)
from orpose.teacher.detectors import DETECTOR_ADAPTERS, build_detector
from orpose.teacher.pose import POSE_ADAPTERS, build_pose_adapter

USER_MANIFEST = """
models:
  my_rtmpose:
    task: pose
    output: simcc
    file: rtmpose.onnx
    sha256: "{sha}"
    input:
      height: 256
      width: 192
      color: rgb
      normalize: {{scale: 1.0, mean: [123.675, 116.28, 103.53], std: [58.395, 57.12, 57.375]}}
    simcc_split: 2.0
    licence: Apache-2.0
"""


def write_user_manifest(folder: Path, content: bytes, sha: str | None = None) -> Path:
    (folder / "rtmpose.onnx").write_bytes(content)
    path = folder / "mine.yaml"
    path.write_text(USER_MANIFEST.format(sha=sha or hashlib.sha256(content).hexdigest()))
    return path


def test_builtin_manifest_lists_the_shared_models():
    entries = load_manifest()
    assert set(entries) >= {
        "picodet_s_320_lcnet_pedestrian",
        "yolox_nano_416x416",
        "tinypose_256x192",
        "tinypose_128x96",
    }
    assert entries["yolox_nano_416x416"].output == "yolox"
    assert entries["yolox_nano_416x416"].input.color == "bgr"
    assert entries["tinypose_256x192"].input.height == 256
    assert all(len(e.sha256) == 64 and e.licence for e in entries.values())


def test_user_manifest_adds_a_simcc_model(tmp_path):
    manifest = write_user_manifest(tmp_path, b"fake model bytes")
    entries = load_manifest(manifest)
    spec = find_model("my_rtmpose", entries, "pose")
    assert spec.output == "simcc" and spec.input.mean[0] == pytest.approx(123.675)
    assert verify_model(spec, models_dir=None) == tmp_path / "rtmpose.onnx"
    with pytest.raises(ModelError, match="not a detector"):
        find_model("my_rtmpose", entries, "detector")
    with pytest.raises(ModelError, match="unknown pose model"):
        find_model("nope", entries, "pose")


def test_checksum_mismatch_is_refused_naming_the_file(tmp_path):
    manifest = write_user_manifest(tmp_path, b"tampered", sha="0" * 64)
    spec = load_manifest(manifest)["my_rtmpose"]
    with pytest.raises(ModelError) as err:
        verify_model(spec, models_dir=None)
    message = str(err.value)
    assert "rtmpose.onnx" in message and "refusing" in message
    assert hashlib.sha256(b"tampered").hexdigest() in message


def test_builtin_model_with_wrong_bytes_in_models_dir_is_refused(tmp_path):
    (tmp_path / "tinypose_128x96.onnx").write_bytes(b"not the real model")
    spec = load_manifest()["tinypose_128x96"]
    with pytest.raises(ModelError, match="sha256"):
        verify_model(spec, tmp_path)


def test_missing_model_file_says_nothing_is_downloaded(tmp_path):
    spec = load_manifest()["tinypose_128x96"]
    with pytest.raises(ModelError, match="not found"):
        verify_model(spec, tmp_path)


@pytest.mark.parametrize(
    ("patch", "match"),
    [
        ("task: pose", "task must be"),
        ('sha256: "{sha}"', "64 hexadecimal"),
    ],
)
def test_malformed_entries_are_rejected(tmp_path, patch, match):
    broken = USER_MANIFEST.replace(patch, patch.split(":")[0] + ": bogus")
    path = tmp_path / "bad.yaml"
    path.write_text(broken.format(sha="a" * 64))
    with pytest.raises(ModelError, match=match):
        load_manifest(path)


def test_an_output_kind_without_adapter_is_refused_naming_manifest_and_model(tmp_path):
    """The output kinds are the adapters' registries (one list each): the manifest checks only
    the task, and building an adapter for an unknown kind names the manifest and the model."""
    path = tmp_path / "bad.yaml"
    path.write_text(USER_MANIFEST.replace("output: simcc", "output: bogus").format(sha="a" * 64))
    spec = load_manifest(path)["my_rtmpose"]
    assert set(POSE_ADAPTERS) == {"heatmap", "simcc"}
    assert set(DETECTOR_ADAPTERS) == {"boxes_scores", "yolox"}
    with pytest.raises(ModelError) as err:
        build_pose_adapter(spec, None)
    assert str(err.value) == (
        f"{path}: model 'my_rtmpose': a pose output must be one of heatmap, simcc, got 'bogus'"
    )
    detector = replace(spec, task="detector")
    with pytest.raises(ModelError, match=r"bad\.yaml: model 'my_rtmpose': a detector output"):
        build_detector(detector, None)


def test_label_cli_refuses_a_tampered_model_in_one_line(tmp_path, capsys):
    (tmp_path / "picodet_s_320_lcnet_pedestrian.onnx").write_bytes(b"tampered")
    (tmp_path / "img.png").write_bytes(b"")
    code = main(
        ["label", str(tmp_path), "--out", str(tmp_path / "o.json"), "--models-dir", str(tmp_path)]
    )
    err = capsys.readouterr().err
    assert code == 2
    assert "picodet_s_320_lcnet_pedestrian.onnx" in err and "refusing" in err
    assert not (tmp_path / "o.json").exists()


def test_sha256_of_matches_hashlib(tmp_path):
    path = tmp_path / "f.bin"
    path.write_bytes(b"x" * 3_000_000)
    assert sha256_of(path) == hashlib.sha256(b"x" * 3_000_000).hexdigest()
