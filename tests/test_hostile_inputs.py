"""Hostile inputs, second campaign (issue #27): a decompression bomb, images that verbs decoded
differently (EXIF), silent data loss and JSON that raised tracebacks.

Every case builds its own tiny input in ``tmp_path`` (none needs the shared data), and no test
decodes a large image: the bombs are refused from their headers, which the tests check by making
any decode of them fail.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import re
import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from conftest import person_keypoints
from orpose.cli import main
from orpose.data.coco import DatasetError, load_pose_dataset, read_json
from orpose.data.images import (
    DEFAULT_MAX_IMAGE_PIXELS,
    MAX_PIXELS_ENV,
    image_file_problem,
    image_size,
    read_dataset_image,
    read_image_rgb,
)
from orpose.errors import ConfigError, ImageFileError, SourceError
from orpose.evaluation.runner import predict_dataset
from orpose.inference.journal import PredictionJournal
from orpose.jsonl import read_records
from orpose.training.dataset import UnreadableImageError, read_training_image

REPO = Path(__file__).resolve().parents[1]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

# -- helpers --


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_bomb(width: int = 30000, height: int = 30000) -> bytes:
    """A whole, valid 1-bit PNG of ``width`` x ``height`` black pixels: about 110 kB on disk for
    30000 x 30000 (2.7 GB once decoded to RGB), written row by row without holding it."""
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    packer = zlib.compressobj(9)
    row = b"\x00" * (1 + (width + 7) // 8)
    idat = b"".join(packer.compress(row) for _ in range(height)) + packer.flush()
    return PNG_SIGNATURE + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")


def png_header_claiming(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width`` x ``height`` and whose data is a few bytes."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64)
    return PNG_SIGNATURE + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")


@pytest.fixture(scope="module")
def bomb_bytes() -> bytes:
    return png_bomb()


@pytest.fixture
def no_decode_of(monkeypatch):
    """Make any OpenCV or Pillow decode of the named files fail the test."""
    names: set[str] = set()
    imread, load = cv2.imread, Image.Image.load

    def guarded_imread(path, *args):
        assert Path(path).name not in names, f"{path} was decoded"
        return imread(path, *args)

    def guarded_load(self):
        assert Path(getattr(self, "filename", "") or "").name not in names, "decoded by Pillow"
        return load(self)

    monkeypatch.setattr(cv2, "imread", guarded_imread)
    monkeypatch.setattr(Image.Image, "load", guarded_load)
    return names


def write_jpeg(path: Path, width: int = 64, height: int = 48, orientation: int | None = None):
    """A JPEG of noise, optionally tagged with an EXIF orientation (6: "rotate 90 clockwise")."""
    pixels = np.random.default_rng(0).integers(0, 255, (height, width, 3), np.uint8)
    exif = Image.Exif()
    if orientation is not None:
        exif[0x0112] = orientation
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path, "JPEG", exif=exif.tobytes())
    return path


def write_gt(root: Path, files: dict[str, tuple[int, int]], annotations: bool = True) -> Path:
    """``gt.json`` with ``images/`` beside it: one image record per file, with the recorded
    (width, height) given, and one person each (unless ``annotations`` is False)."""
    images, anns = [], []
    for i, (name, (width, height)) in enumerate(files.items(), start=1):
        images.append({"id": i, "file_name": name, "width": width, "height": height})
        kps = person_keypoints(30, 5, scale=0.2)
        if annotations:
            anns.append({
                "id": i, "image_id": i, "category_id": 1, "iscrowd": 0, "area": 600.0,
                "bbox": [20.0, 4.0, 20.0, 35.0], "num_keypoints": 17,
                "keypoints": kps.reshape(-1).tolist(),
            })  # fmt: skip
    path = root / "gt.json"
    path.write_text(json.dumps({"images": images, "annotations": anns}))
    return path


def one_error_line(err: str, verb: str, *needles: str) -> str:
    progress = re.compile(r"^\s*\d+%\|")  # tqdm's bar, on stderr too
    lines = [line for line in err.replace("\r", "\n").splitlines() if line.strip()]
    lines = [line for line in lines if not progress.match(line)]
    assert "Traceback" not in err
    assert len(lines) == 1, f"expected one line on stderr, got {lines}"
    # run-time errors name the command (``orpose data: error:``), argparse's the verb too
    assert lines[0].startswith(f"orpose {verb.split()[0]}"), lines[0]
    assert ": error: " in lines[0], lines[0]
    for needle in needles:
        assert needle in lines[0], f"{needle!r} not in {lines[0]!r}"
    return lines[0]


# -- class 1: decompression bomb ------------------------------------------------------------------


def test_a_png_bomb_is_refused_from_its_header(tmp_path, bomb_bytes, no_decode_of):
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(bomb_bytes)
    no_decode_of.add("bomb.png")
    assert len(bomb_bytes) < 300_000
    problem = image_file_problem(bomb)
    assert "30000x30000 pixels (900.0 megapixels) is above the limit of 50 megapixels" in problem
    with pytest.raises(ImageFileError) as caught:
        read_image_rgb(bomb)
    assert isinstance(caught.value, OSError)  # what the skipping verbs catch
    assert str(caught.value).startswith(f"{bomb}: 30000x30000 pixels")
    assert MAX_PIXELS_ENV in str(caught.value)


def test_a_header_above_pillows_own_guard_is_still_measured(tmp_path, monkeypatch):
    """Pillow refuses to even open a file of more than twice its MAX_IMAGE_PIXELS; with a
    raised orpose limit, the size is still read (and Pillow's setting left as it was)."""
    path = tmp_path / "big.png"
    path.write_bytes(png_header_claiming(20000, 20000))
    monkeypatch.setenv(MAX_PIXELS_ENV, str(10**9))
    before = Image.MAX_IMAGE_PIXELS
    assert image_size(path) == (20000, 20000)
    assert before == Image.MAX_IMAGE_PIXELS


def test_the_limit_is_a_setting(tmp_path, monkeypatch):
    image = write_jpeg(tmp_path / "a.jpg")
    assert DEFAULT_MAX_IMAGE_PIXELS == 50_000_000
    monkeypatch.setenv(MAX_PIXELS_ENV, "1000")
    assert "64x48 pixels" in image_file_problem(image)
    with pytest.raises(ImageFileError, match=r"above the limit of 0\.001 megapixels"):
        read_image_rgb(image)
    monkeypatch.setenv(MAX_PIXELS_ENV, "3072")  # exactly 64 x 48: allowed
    assert read_image_rgb(image).shape == (48, 64, 3)
    for bad in ("abc", "0", "-5", "nan", "2.5"):
        monkeypatch.setenv(MAX_PIXELS_ENV, bad)
        with pytest.raises(ConfigError, match=f"{MAX_PIXELS_ENV}={bad}: expected a whole number"):
            read_image_rgb(image)


def test_a_video_above_the_limit_is_refused_before_its_frames(tmp_path, monkeypatch):
    from orpose.data.sources import iter_video

    video = tmp_path / "v.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 5, (64, 48))
    for _ in range(2):
        writer.write(np.zeros((48, 64, 3), np.uint8))
    writer.release()
    assert len(list(iter_video(video))) == 2
    monkeypatch.setenv(MAX_PIXELS_ENV, "1000")
    with pytest.raises(SourceError, match="frames of 64x48 pixels are above the limit"):
        next(iter_video(video))


def test_every_verb_refuses_or_skips_a_bomb(tmp_path, bomb_bytes, no_decode_of, caplog, capsys):
    """predict and label skip it with a warning, eval --model and train stop naming it (eval
    --skip-bad-images skips it), data check / show / subset stop, data downscale skips it."""
    from orpose.data.sources import iter_images
    from orpose.teacher.labelling import read_checked

    images = tmp_path / "set" / "images"
    images.mkdir(parents=True)
    (images / "bomb.png").write_bytes(bomb_bytes)
    no_decode_of.add("bomb.png")
    write_jpeg(images / "good.jpg")
    gt = load_pose_dataset(write_gt(tmp_path / "set", {"bomb.png": (30000, 30000)}))
    too_big = "30000x30000 pixels (900.0 megapixels) is above the limit"

    # predict (its frame source) and label: a frame with an error, skipped with a warning
    frames = list(iter_images([images / "bomb.png", images / "good.jpg"]))
    assert frames[0].image is None and too_big in frames[0].error
    assert frames[1].image.shape == (48, 64, 3)
    image, error, _ = read_checked(images / "bomb.png")
    assert image is None and too_big in error

    # eval --model: stops naming the ground truth, the record and the file ...
    with pytest.raises(DatasetError) as caught:
        predict_dataset(lambda image: [], gt, 1, tmp_path / "j.jsonl")
    assert str(caught.value).startswith(f"{gt.path}: image id 1: field 'file_name': ")
    assert too_big in str(caught.value)
    # ... or skips it with --skip-bad-images
    with caplog.at_level(logging.WARNING):
        assert predict_dataset(lambda image: [], gt, 1, tmp_path / "j.jsonl", True) == []
    assert too_big in caplog.text

    # train
    with pytest.raises(UnreadableImageError, match="above the limit"):
        read_training_image(gt, gt.images[0])

    # the data verbs, in one line
    capsys.readouterr()
    assert main(["data", "check", str(gt.path)]) == 2
    err = capsys.readouterr().err
    one_error_line(err, "data check", "image id 1", "bomb.png", too_big)
    assert main(["data", "show", str(gt.path), "--out", str(tmp_path / "show")]) == 2
    one_error_line(capsys.readouterr().err, "data show", "bomb.png", too_big)
    subset = ["data", "subset", str(images), "--num", "2", "--out", str(tmp_path / "s.json")]
    assert main(subset) == 2
    one_error_line(capsys.readouterr().err, "data subset", "bomb.png", too_big)
    out = tmp_path / "small"
    assert main(["data", "downscale", str(images), "--scale", "2", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "warning: skipped" in printed and too_big in printed
    assert "wrote 1 images" in printed and "skipped 1" in printed
    assert sorted(p.name for p in out.iterdir()) == ["good.png"]


# -- class 4: one EXIF rule -----------------------------------------------------------------------


def test_exif_orientation_is_ignored_by_every_verb(tmp_path, capsys):
    """A JPEG tagged "rotate 90" is decoded as stored (64x48), the size `data subset` records and
    `data check` accepts; ground truth recording the rotated size is refused by name."""
    from orpose.data.sources import iter_images
    from orpose.teacher.labelling import read_checked

    folder = tmp_path / "photos"
    photo = write_jpeg(folder / "phone.jpg", 64, 48, orientation=6)
    assert cv2.imread(str(photo)).shape == (64, 48, 3)  # what OpenCV's default would give
    assert read_image_rgb(photo).shape == (48, 64, 3)
    assert next(iter(iter_images([photo]))).image.shape == (48, 64, 3)  # predict
    assert read_checked(photo)[0].shape == (48, 64, 3)  # label

    subset = tmp_path / "subset.json"
    assert main(["data", "subset", str(folder), "--num", "1", "--out", str(subset)]) == 0
    record = json.loads(subset.read_text())["images"][0]
    assert (record["width"], record["height"]) == (64, 48)
    assert main(["data", "check", str(subset)]) == 0
    capsys.readouterr()

    # a ground truth made by a tool that honours EXIF records 48x64: refused, by name
    root = tmp_path / "gt"
    write_jpeg(root / "images" / "phone.jpg", 64, 48, orientation=6)
    gt = load_pose_dataset(write_gt(root, {"phone.jpg": (48, 64)}))
    assert main(["data", "check", str(gt.path)]) == 2
    one_error_line(
        capsys.readouterr().err, "data check", "image id 1", "records 48x64 (width x height) but "
        "the image file is 64x48 pixels as stored"
    )  # fmt: skip
    with pytest.raises(DatasetError) as caught:
        read_dataset_image(gt, gt.images[0])  # eval --model
    assert str(caught.value).startswith(f"{gt.path}: image id 1: fields 'width', 'height': ")
    with pytest.raises(UnreadableImageError, match="records 48x64"):  # train
        read_training_image(gt, gt.images[0])
    with pytest.raises(DatasetError, match="records 48x64"):
        predict_dataset(lambda image: [], gt, 1, tmp_path / "j.jsonl")


# -- class 3: silent data loss --------------------------------------------------------------------


def test_downscale_refuses_two_inputs_for_one_output_name(tmp_path, capsys):
    write_jpeg(tmp_path / "a" / "x.jpg")
    cv2.imwrite(str(tmp_path / "a" / "x.png"), np.zeros((48, 64, 3), np.uint8))
    write_jpeg(tmp_path / "b" / "x.jpg")
    out = tmp_path / "out"
    for inputs in ([tmp_path / "a"], [tmp_path / "a" / "x.jpg", tmp_path / "b"]):
        argv = ["data", "downscale", *map(str, inputs), "--scale", "2", "--out", str(out)]
        assert main(argv) == 2
        one_error_line(capsys.readouterr().err, "data downscale", "would both be written to",
                       str(out / "x.png"))  # fmt: skip
        assert not out.exists()  # refused before any work


def test_downscale_keeps_subfolders_and_writes_each_image_once(tmp_path, capsys):
    src = tmp_path / "src"
    write_jpeg(src / "cam1" / "000001.jpg")
    write_jpeg(src / "cam2" / "000001.jpg")
    out = tmp_path / "out"
    # the folder, and one of its images again by name: written once
    argv = ["data", "downscale", str(src), str(src / "cam1" / "000001.jpg"), "--scale", "2",
            "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    assert "wrote 2 images" in capsys.readouterr().out
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*.png")) == [
        "cam1/000001.png",
        "cam2/000001.png",
    ]
    assert cv2.imread(str(out / "cam1" / "000001.png")).shape == (24, 32, 3)


def test_downscale_reports_a_failed_write_instead_of_success(tmp_path, capsys):
    src = tmp_path / "src"
    write_jpeg(src / "cam1" / "x.jpg")
    out = tmp_path / "out"
    out.mkdir()
    (out / "cam1").write_text("a file where the sub-folder must go")
    assert main(["data", "downscale", str(src), "--scale", "2", "--out", str(out)]) == 2
    captured = capsys.readouterr()
    one_error_line(captured.err, "data downscale", str(out / "cam1" / "x.png"), "cannot be written")
    assert "wrote" not in captured.out


def test_downscale_with_nothing_decodable_is_an_error(tmp_path, capsys):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "text.jpg").write_text("not an image")
    argv = ["data", "downscale", str(tmp_path / "in"), "--scale", "2", "--out", str(tmp_path / "o")]
    assert main(argv) == 2
    one_error_line(capsys.readouterr().err, "data downscale", "no image written")


@pytest.mark.parametrize("kind", ["a file", "below a file"])
def test_an_unusable_out_stops_every_verb_before_work(tmp_path, capsys, kind):
    """predict, label, eval (--pred and --model), train and data downscale: exit 2 naming
    --out, before any model or input is read (the model named here does not even exist)."""
    blocker = tmp_path / "blocker"
    blocker.write_text("I am a file")
    out = blocker if kind == "a file" else blocker / "sub"
    image = write_jpeg(tmp_path / "images" / "a.jpg")
    gt = write_gt(tmp_path, {"a.jpg": (64, 48)})
    pred = tmp_path / "pred.json"
    pred.write_text("[]")
    missing_model = str(tmp_path / "missing.pt")
    runs = {
        "predict": ["predict", missing_model, str(image), "--out", str(out)],
        "eval": ["eval", "--gt", str(gt), "--model", missing_model, "--out", str(out)],
        "train": ["train", str(REPO / "configs" / "cpu_student.yaml"), "--out", str(out)],
        "data downscale": ["data", "downscale", str(image), "--scale", "2", "--out", str(out)],
    }
    if kind == "below a file":  # a file --out is a fine output file for these two
        runs["label"] = ["label", str(image), "--out", str(out / "labels.json")]
    for verb, argv in runs.items():
        assert main(argv) == 2, verb
        expected = "exists and is a file" if kind == "a file" else "cannot be written"
        one_error_line(capsys.readouterr().err, verb, f"--out {argv[-1]}", expected)
    assert main(["eval", "--gt", str(gt), "--pred", str(pred), "--out", str(out)]) == 2
    one_error_line(capsys.readouterr().err, "eval", f"--out {out}")


def test_label_out_naming_a_folder_is_refused(tmp_path, capsys):
    image = write_jpeg(tmp_path / "a.jpg")
    (tmp_path / "labels").mkdir()
    assert main(["label", str(image), "--out", str(tmp_path / "labels"), "--restart"]) == 2
    one_error_line(capsys.readouterr().err, "label", "is a folder; name the file to write in it")


def test_predict_resume_redoes_a_frame_whose_file_changed(tmp_path):
    image = write_jpeg(tmp_path / "a.jpg")
    journal_path = tmp_path / "out" / "predictions.jsonl"
    journal = PredictionJournal(journal_path)
    record = {"id": 1, "file_name": str(image), "width": 64, "height": 48}
    journal.append(record, [{"image_id": 1, "score": 0.9}])
    journal.close()
    assert PredictionJournal(journal_path).done(str(image), 1) is not None
    write_jpeg(image, 80, 60)  # another image saved under the same name
    resumed = PredictionJournal(journal_path)
    assert resumed.done(str(image), 1) is None  # predicted again
    resumed.append({**record, "width": 80, "height": 60}, [])
    resumed.close()
    again = PredictionJournal(journal_path)
    assert again.done(str(image), 1)["image"]["width"] == 80
    # a line of a journal written before the file stamp is taken as it is
    with open(journal_path, "a") as f:
        f.write(json.dumps({"image": {**record, "id": 2, "file_name": "old.jpg"}, "results": []}))
        f.write("\n")
    assert PredictionJournal(journal_path).done("old.jpg", 2) is not None


def test_label_labels_an_image_given_twice_once(tmp_path, caplog):
    from orpose.data.sources import expand_inputs
    from orpose.teacher.labelling import Shard, iter_work

    folder = tmp_path / "in"
    write_jpeg(folder / "a.jpg")
    write_jpeg(folder / "b.jpg")
    specs = expand_inputs([folder, folder / "a.jpg", folder])
    with caplog.at_level(logging.WARNING):
        keys = [item.key for item in iter_work(specs, 1, Shard(), set(), tmp_path / "f", "jpg")]
    assert keys == [str(folder / "a.jpg"), str(folder / "b.jpg")]
    assert "is given twice" in caplog.text


def test_a_full_disk_is_one_line(monkeypatch, tmp_path, capsys):
    import orpose.data.cli as data_cli

    def full(args):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(tmp_path / "x.json"))

    monkeypatch.setattr(data_cli, "run_check", full)
    assert main(["data", "check", "whatever.json"]) == 2
    one_error_line(capsys.readouterr().err, "data check", "x.json", "No space left on device")


# -- class 5: JSON that raised tracebacks ---------------------------------------------------------


HOSTILE_JSON = {
    "latin1.json": ('{"images": [], "name": "caf\u00e9"}'.encode("latin-1"), "not UTF-8 text"),
    "utf16.json": ('{"images": [], "annotations": []}'.encode("utf-16"), "looks like UTF-16"),
    "deep.json": (b"[" * 200_000 + b"]" * 200_000, "nested too deeply"),
    "digits.json": (b'{"images": [{"id": ' + b"7" * 5000 + b"}]}", "4300"),
    "syntax.json": (b'{"images": [1, 2,]}', "line 1 column"),
}


@pytest.mark.parametrize("name", sorted(HOSTILE_JSON))
def test_json_that_cannot_be_decoded_is_one_line_naming_the_file(tmp_path, capsys, name):
    data, needle = HOSTILE_JSON[name]
    path = tmp_path / name
    path.write_bytes(data)
    with pytest.raises(DatasetError) as caught:
        read_json(path)
    assert str(caught.value).startswith(f"{path}: not valid JSON") and needle in str(caught.value)
    assert main(["data", "check", str(path)]) == 2
    one_error_line(capsys.readouterr().err, "data check", str(path), needle)
    pred_gt = write_gt(tmp_path, {"a.jpg": (64, 48)})
    assert main(["eval", "--gt", str(pred_gt), "--pred", str(path)]) == 2
    one_error_line(capsys.readouterr().err, "eval", str(path), needle)


def test_a_utf8_byte_order_mark_is_accepted(tmp_path):
    path = tmp_path / "bom.json"
    path.write_bytes(b"\xef\xbb\xbf" + b'{"a": 1}')
    assert read_json(path) == {"a": 1}


def test_a_journal_line_that_is_not_utf8_ends_the_good_records(tmp_path):
    path = tmp_path / "j.jsonl"
    path.write_bytes(b'{"a": 1}\n{"b": "\xff\xfe"}\n{"c": 3}\n')
    assert read_records(path) == [{"a": 1}]
    assert path.read_bytes() == b'{"a": 1}\n'


def _coco(**changes) -> dict:
    data = {
        "images": [{"id": 1, "file_name": "a.jpg", "width": 64, "height": 48}],
        "annotations": [
            {
                "id": 1,
                "image_id": 1,
                "category_id": 1,
                "iscrowd": 0,
                "bbox": [1.0, 1.0, 10.0, 20.0],
                "area": 200.0,
            }
        ],
        "categories": [{"id": 1, "name": "person"}],
    }
    for key, value in changes.items():
        if key in ("image_id", "id", "category_id", "area"):
            data["annotations"][0][key] = value
        else:
            data[key] = value
    return data


@pytest.mark.parametrize(
    ("changes", "needle"),
    [
        ({"image_id": [1]}, "annotation id 1: field 'image_id': expected an integer, got [1]"),
        ({"id": [1]}, "annotation id ? (#0): field 'id': expected an integer, got [1]"),
        ({"id": {"a": 1}}, "field 'id': expected an integer"),
        ({"image_id": True}, "field 'image_id': expected an integer, got True"),
        ({"category_id": "person"}, "field 'category_id': 'person' is not the id of an entry"),
        ({"category_id": 7}, "'category_id': 7 is not the id of an entry of 'categories' (1)"),
        ({"categories": "person"}, "field 'categories': expected a list"),
        ({"categories": [1]}, "categories[0]: expected an object"),
        ({"categories": [{"id": "1", "name": "person"}]}, "categories[0]: field 'id': expected"),
        ({"categories": [{"id": [1], "name": "person"}]}, "categories[0]: field 'id': expected"),
        ({"categories": [{"id": 1}]}, "categories[0]: field 'name': expected a string"),
        (
            {"categories": [{"id": 1, "name": "p"}, {"id": 1, "name": "q"}]},
            "categories[1]: field 'id': duplicate id 1",
        ),
        ({"categories": [{"id": 1, "name": "p", "keypoints": "nose"}]}, "field 'keypoints'"),
        ({"area": -5.0}, "annotation id 1: field 'area': negative area -5.0"),
        ({"info": ["not", "an", "object"]}, "field 'info': expected an object"),
    ],
)
def test_coco_ids_categories_and_areas_are_validated(tmp_path, capsys, changes, needle):
    path = tmp_path / "gt.json"
    path.write_text(json.dumps(_coco(**changes)))
    with pytest.raises(DatasetError) as caught:
        load_pose_dataset(path)
    assert str(caught.value).startswith(f"{path}: ") and needle in str(caught.value)
    assert main(["data", "check", str(path), "--no-decode"]) == 2
    one_error_line(capsys.readouterr().err, "data check", needle)


def test_coco_without_categories_still_loads(tmp_path):
    for categories in (None, []):
        data = _coco()
        data["categories"] = categories
        path = tmp_path / "gt.json"
        path.write_text(json.dumps(data))
        assert load_pose_dataset(path).categories[0]["name"] == "person"


def test_an_empty_ground_truth_is_no_ground_truth_not_ap_minus_100(tmp_path, capsys):
    write_jpeg(tmp_path / "images" / "a.jpg")
    gt = write_gt(tmp_path, {"a.jpg": (64, 48)}, annotations=False)
    pred = tmp_path / "pred.json"
    pred.write_text("[]")
    assert main(["eval", "--gt", str(gt), "--pred", str(pred)]) == 2
    one_error_line(capsys.readouterr().err, "eval", str(gt), "no ground truth")


def test_ground_truth_without_keypoints_prints_no_keypoint_ap(tmp_path, capsys):
    """Boxes-only people: box AP is scored, keypoint AP is undefined ("-"), never -100.00."""
    write_jpeg(tmp_path / "images" / "a.jpg")
    gt = write_gt(tmp_path, {"a.jpg": (64, 48)})
    data = json.loads(gt.read_text())
    for ann in data["annotations"]:
        ann["keypoints"], ann["num_keypoints"] = [0] * 51, 0
    gt.write_text(json.dumps(data))
    kps = person_keypoints(30, 5, scale=0.2)
    kps[:, 2] = 0.9
    pred = tmp_path / "pred.json"
    result = {"image_id": 1, "category_id": 1, "bbox": [20.0, 4.0, 20.0, 35.0], "score": 0.9}
    pred.write_text(json.dumps([{**result, "keypoints": kps.reshape(-1).tolist()}]))
    assert main(["eval", "--gt", str(gt), "--pred", str(pred), "--no-plot"]) == 0
    out = capsys.readouterr().out
    assert "-100" not in out
    row = next(line for line in out.splitlines() if line.strip().startswith("1x"))
    assert row.split()[1] == "100.00" and row.split()[3] == "-"


def test_a_camera_index_too_large_for_opencv_is_refused_by_name():
    from orpose.data.sources import iter_stream

    with pytest.raises(SourceError, match=r"^9{30}: not a camera index \(0-9999\)"):
        next(iter_stream("9" * 30))


def test_an_output_file_that_is_a_folder_is_one_line(tmp_path, capsys):
    """data subset checks its --out before any image is read (it was a run-time error)."""
    write_jpeg(tmp_path / "in" / "a.jpg")
    (tmp_path / "taken").mkdir()
    argv = ["data", "subset", str(tmp_path / "in"), "--num", "1", "--out", str(tmp_path / "taken")]
    assert main(argv) == 2
    one_error_line(capsys.readouterr().err, "data subset", "taken", "is a folder")
