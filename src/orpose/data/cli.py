"""``orpose data``: check pose files, convert MVOR, make privacy-preserving low-res copies, draw."""

from __future__ import annotations

import argparse
import contextlib
import os
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from orpose.config import cli_input_path, cli_number
from orpose.data.coco import (
    KEYPOINT_FIELDS,
    DatasetError,
    PoseDataset,
    load_pose_dataset,
    repeated_image_files,
    write_json_atomic,
)
from orpose.data.mvor import MvorDataset
from orpose.errors import UserError
from orpose.paths import shared_data

DOWNSCALE = cli_number(float, min=1, max=1000)  # a downscale factor, as every verb takes it


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("data", help="check, convert and visualise datasets")
    verbs = p.add_subparsers(dest="data_command", metavar="VERB", required=True)

    check = verbs.add_parser("check", help="validate a COCO pose file and print its statistics")
    check.add_argument("file", type=Path)
    check.add_argument(
        "--images",
        type=Path,
        default=None,
        help="image folder (default: images/ beside the file, else its folder)",
    )
    check.add_argument(
        "--no-decode",
        action="store_true",
        help="only check that the images exist (default: decode each one to its end, so that "
        "empty, truncated or non-image files are reported)",
    )
    check.set_defaults(func=run_check)

    mvor = verbs.add_parser(
        "mvor-to-coco", help="MVOR annotations to a COCO-17 ground truth with 3D (mm, per camera)"
    )
    mvor.add_argument(
        "--mvor",
        type=Path,
        default=None,
        help="camma_mvor_2018.json (default: <shared>/data/mvor/camma_mvor_2018.json)",
    )
    # bounds of the parser; the MVOR file then names the cameras and days it holds
    mvor.add_argument(
        "--cameras",
        type=cli_number(int, min=1, max=99),
        nargs="+",
        default=[1, 2, 3],
        help="MVOR cameras, 1-3 (default: all)",
    )
    mvor.add_argument(
        "--days",
        type=cli_number(int, min=1, max=9999),
        nargs="+",
        default=None,
        help="MVOR days, 1-4 (default: all)",
    )
    mvor.add_argument(
        "--images",
        type=Path,
        default=None,
        metavar="DIR",
        help="MVOR image root (holding day4/cam3/color/000000.png, as MVOR's file names): keep "
        "only the selected frames present under it; pass the same DIR to `orpose eval --images` "
        "and `orpose label --images`",
    )
    mvor.add_argument("--out", type=Path, required=True)
    mvor.set_defaults(func=run_mvor_to_coco)

    degrade = verbs.add_parser(
        "downscale", help="store images at 1/s resolution (privacy-preserving copies)"
    )
    degrade.add_argument("inputs", nargs="+", type=cli_input_path, help="images or folders")
    degrade.add_argument(
        "--scale", type=DOWNSCALE, required=True, help="downscale factor s, 1-1000 (e.g. 12)"
    )
    degrade.add_argument("--out", type=Path, required=True, help="output folder")
    degrade.set_defaults(func=run_downscale)

    subset = verbs.add_parser(
        "subset",
        help="the first N images (with people) of a COCO file, or of a folder of images (an "
        "images-only COCO file), image paths made absolute",
    )
    subset.add_argument("file", type=Path)
    subset.add_argument("--num", type=cli_number(int, min=1, max=10**9), required=True)
    subset.add_argument("--images", type=Path, default=None)
    subset.add_argument(
        "--with-keypoints",
        action="store_true",
        help="only images with at least one person with keypoints",
    )
    subset.add_argument("--out", type=Path, required=True)
    subset.set_defaults(func=run_subset)

    show = verbs.add_parser("show", help="draw the annotations of a COCO pose file on its images")
    show.add_argument("file", type=Path)
    show.add_argument("--images", type=Path, default=None)
    show.add_argument("--out", type=Path, required=True, help="folder for the PNG overlays")
    show.add_argument(
        "--num", type=cli_number(int, min=1, max=10**6), default=8, help="how many images [8]"
    )
    show.add_argument(
        "--field",
        default="keypoints",
        choices=("keypoints", "keypoints_soft"),
        help="2D keypoint field to draw [keypoints]",
    )
    show.set_defaults(func=run_show)


def run_check(args: argparse.Namespace) -> int:
    """Validate the file and its images: every bad image is listed on stdout, and the error
    line (stderr, exit code 2) names the file, the first bad image and how many there are."""
    from orpose.data.images import undecodable_images

    ds = load_pose_dataset(args.file, image_root=args.images, check_images=True)
    if not args.no_decode:
        bad = undecodable_images(ds)
        for img, path, problem in bad:
            print(f"bad image: id {img['id']}: {path}: {problem}")
        if bad:
            img, path, problem = bad[0]
            more = f" (and {len(bad) - 1} more, listed above)" if len(bad) > 1 else ""
            raise DatasetError(
                f"{args.file}: image id {img['id']}: field 'file_name': {path}: {problem}; "
                f"{len(bad)} of {len(ds.images)} images cannot be decoded{more}"
            )
    for img, earlier, path in repeated_image_files(ds):
        print(
            f"warning: image id {img['id']}: {path} is also image id {earlier['id']}'s (orpose "
            "eval refuses such a ground truth; label takes the image once)"
        )
    persons = [a for a in ds.annotations if not a.get("iscrowd", 0)]
    found = "found" if args.no_decode else "decoded"
    print(
        f"{args.file}: valid; {len(ds.images)} images (all {found} under {ds.image_root}), "
        f"{len(ds.annotations)} annotations ({len(persons)} non-crowd)"
    )
    for key in KEYPOINT_FIELDS:
        carrying = [a for a in ds.annotations if key in a]
        if carrying:
            people = sum(1 for a in carrying if has_keypoints(a, key))
            print(
                f"  {key}: {people} people with keypoints "
                f"({len(carrying)} annotations carry the field)"
            )
    return 0


def has_keypoints(ann: dict, key: str = "keypoints") -> bool:
    """Whether an annotation holds at least one keypoint in ``key``, not merely the field.

    ``keypoints``: COCO's ``num_keypoints`` > 0 when given, else a visibility > 0; other 2D fields
    and ``keypoints3d``: a last channel (confidence / visibility) > 0; 3D lifts (no such channel):
    a non-zero value. COCO files give boxes-only people ``keypoints`` of zeros.
    """
    if key == "keypoints" and isinstance(ann.get("num_keypoints"), int | float):
        return ann["num_keypoints"] > 0
    values = np.asarray(ann.get(key) or [], dtype=np.float64)
    if key.startswith("keypoints3d") and KEYPOINT_FIELDS.get(key) == 3:
        return bool(np.any(values != 0))
    return bool(np.any(values.reshape(-1, KEYPOINT_FIELDS.get(key, 3))[:, -1] > 0))


def run_mvor_to_coco(args: argparse.Namespace) -> int:
    return mvor_to_coco(args.out, mvor=args.mvor, cameras=args.cameras, days=args.days,
                        images=args.images)  # fmt: skip


def mvor_to_coco(
    out: Path,
    *,
    mvor: Path | None = None,
    cameras: Sequence[int] = (1, 2, 3),
    days: Sequence[int] | None = None,
    images: Path | None = None,
) -> int:
    """``orpose data mvor-to-coco``: MVOR's annotations (``mvor``, default the shared file) of
    ``cameras`` (1-3) and ``days`` (None: all) as a COCO-17 ground truth with 3D, written to
    ``out``; ``images``: keep only the frames present under that MVOR image root."""
    from orpose.outputs import check_output_file, refuse_overwriting_inputs

    path = mvor or shared_data("mvor/camma_mvor_2018.json")
    refuse_overwriting_inputs(out, [path])
    check_output_file(out)  # before the MVOR file is read
    dataset = MvorDataset(path)
    camera_ids = tuple(sorted({c - 1 for c in cameras}))
    day_ids = tuple(sorted(set(days))) if days else None
    coco = dataset.to_coco17(camera_ids, day_ids, images)
    write_json_atomic(out, coco)
    persons = coco["annotations"]
    n2d = sum(1 for a in persons if a["num_keypoints"] > 0)
    n3d = sum(1 for a in persons if "keypoints3d" in a)
    where = ""
    if images is not None:
        selected = len(dataset.select_images(camera_ids, day_ids))
        where = f" (of {selected} selected, those under {images})"
    print(
        f"wrote {out}: {len(coco['images'])} images{where}, {len(persons)} persons "
        f"({n2d} with 2D keypoints, {len(persons) - n2d} box only), {n3d} with 3D"
    )
    return 0


def run_downscale(args: argparse.Namespace) -> int:
    """Write every input image at 1/s resolution as PNG: OUT/<name>.png for a file given by name,
    OUT/<path below the folder>.png for the images of a folder. Two inputs that would be written
    to one name, an unusable --out and a failed write stop the command (exit 2, naming them);
    an undecodable or too large image is skipped with a warning; no image written is an error."""
    from tqdm import tqdm

    from orpose.data.lowres import downsample
    from orpose.data.sources import expand_inputs, iter_images
    from orpose.outputs import check_output_folder, refuse_overwriting_inputs

    specs = expand_inputs(args.inputs)
    if any(s.video for s in specs):
        raise UserError("downscale takes images or folders; extract video frames first")
    targets = downscale_targets(specs, args.out)
    refuse_overwriting_inputs(args.out, args.inputs, folder=True)
    check_output_folder(args.out)
    skipped = []
    for frame in tqdm(iter_images(list(targets)), total=len(targets), unit="img"):
        if frame.image is None:
            print(f"warning: skipped {frame.error}")
            skipped.append(frame.source)
            continue
        write_png(targets[Path(frame.source)], downsample(frame.image, args.scale))
    written = len(targets) - len(skipped)
    if written == 0:
        raise UserError(f"no image written: none of the {len(targets)} inputs could be decoded")
    more = f"; skipped {len(skipped)} undecodable (warnings above)" if skipped else ""
    print(f"wrote {written} images at 1/{args.scale:g} resolution to {args.out}{more}")
    return 0


def downscale_targets(specs: list, out: Path) -> dict[Path, Path]:
    """Input image -> output PNG, each input once (an image named twice, or by its folder and by
    name, is written once); UserError naming both inputs when two would share one output."""
    targets: dict[Path, Path] = {}
    writer_of: dict[Path, Path] = {}
    seen: set[Path] = set()
    for spec in specs:
        for image in spec.images:
            if image.resolve() in seen:
                continue
            seen.add(image.resolve())
            name = image.relative_to(spec.path) if spec.path.is_dir() else Path(image.name)
            target = out / name.with_suffix(".png")
            if target in writer_of:
                raise UserError(
                    f"{writer_of[target]} and {image} would both be written to {target}; "
                    "rename one, or downscale them into separate --out folders"
                )
            writer_of[target] = image
            targets[image] = target
    return targets


def write_png(path: Path, image: np.ndarray) -> None:
    """Write an RGB image as PNG (whole or not at all: a temporary file renamed); a failed
    encode or write (full disk, read-only place) is a UserError naming the file."""
    import cv2

    from orpose.outputs import write_problem

    ok, data = cv2.imencode(".png", cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    if not ok:
        raise UserError(f"{path}: cannot be encoded as PNG")
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_bytes(data.tobytes())
        os.replace(tmp, path)
    except OSError as err:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        raise UserError(f"{path}: cannot be written ({write_problem(err)})") from None


def run_subset(args: argparse.Namespace) -> int:
    return subset(args.file, args.num, args.out, images=args.images,
                  with_keypoints=args.with_keypoints)  # fmt: skip


def subset(
    file: Path, num: int, out: Path, *, images: Path | None = None, with_keypoints: bool = False
) -> int:
    """``orpose data subset``: the first ``num`` images (with people; ``with_keypoints``: with
    a person with keypoints) of a COCO file, or of a folder of images, written to ``out`` with
    absolute image paths; ``images``: the COCO file's image root."""
    from orpose.outputs import check_output_file, refuse_overwriting_inputs

    refuse_overwriting_inputs(out, [file])
    check_output_file(out)  # before any image is read
    if file.is_dir():
        return subset_of_folder(file, num, out)
    ds = load_pose_dataset(file, image_root=images, check_images=True)
    chosen = []
    for img in ds.images:
        people = [a for a in ds.annotations_of(img["id"]) if not a.get("iscrowd", 0)]
        if with_keypoints and not any(a.get("num_keypoints", 0) > 0 for a in people):
            continue
        chosen.append({**img, "file_name": str(ds.image_path(img).resolve())})
        if len(chosen) == num:
            break
    ids = {img["id"] for img in chosen}
    written = PoseDataset(
        chosen,
        [a for a in ds.annotations if a["image_id"] in ids],
        ds.categories,
        {**ds.info, "subset_of": str(file)},
    )
    written.save(out)
    print(f"wrote {out}: {len(chosen)} images, {len(written.annotations)} annotations")
    return 0


def subset_of_folder(folder: Path, num: int, out: Path) -> int:
    """An images-only COCO file of the first ``num`` images of ``folder`` (sorted by name): a
    fixed, nameable part of an unlabelled pool that ``orpose label`` can take as its input.
    Sizes are read from the headers as every verb decodes the images (EXIF orientation ignored);
    a file that is not an image or is above the pixel limit stops it, naming the file."""
    from orpose.data.images import image_size
    from orpose.data.sources import SourceError, list_images

    paths = list_images(folder)[:num]
    if not paths:
        raise SourceError(f"{folder}: folder holds no image")
    images = []
    for i, path in enumerate(paths, start=1):
        width, height = image_size(path)
        images.append({"id": i, "file_name": str(path.resolve()), "width": width, "height": height})
    PoseDataset(images, [], info={"subset_of": str(folder)}).save(out)
    print(f"wrote {out}: {len(images)} images (no annotations)")
    return 0


def run_show(args: argparse.Namespace) -> int:
    return show(args.file, args.out, images=args.images, num=args.num, field=args.field)


def show(
    file: Path, out: Path, *, images: Path | None = None, num: int = 8, field: str = "keypoints"
) -> int:
    """``orpose data show``: the annotations of the first ``num`` images of a COCO pose file
    drawn (2D keypoint ``field``: keypoints or keypoints_soft), as PNGs in the folder ``out``."""
    from orpose.data.images import read_dataset_image
    from orpose.outputs import check_output_folder
    from orpose.viz.draw2d import draw_people

    ds = load_pose_dataset(file, image_root=images)
    check_output_folder(out)
    chosen = ds.images[:num]
    stems = [Path(img["file_name"]).stem for img in chosen]
    uses = Counter(stems)
    for img, stem in zip(chosen, stems, strict=True):
        canvas = draw_people(
            read_dataset_image(ds, img), ds.annotations_of(img["id"]), keypoint_field=field
        )
        # images of one stem in different folders: each gets its id, none is overwritten
        name = stem if uses[stem] == 1 else f"{stem}_id{img['id']}"
        write_png(out / f"{name}.png", canvas)
    print(f"wrote {min(num, len(ds.images))} overlays to {out}")
    return 0
