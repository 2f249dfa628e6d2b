"""``orpose data``: check pose files, convert MVOR, make privacy-preserving low-res copies, draw."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from orpose.data.coco import (
    KEYPOINT_FIELDS,
    DatasetError,
    PoseDataset,
    load_pose_dataset,
    undecodable_images,
    write_json_atomic,
)
from orpose.data.mvor import MvorDataset
from orpose.errors import UserError
from orpose.paths import shared_data


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
    mvor.add_argument("--cameras", type=int, nargs="+", default=[1, 2, 3], choices=[1, 2, 3])
    mvor.add_argument("--out", type=Path, required=True)
    mvor.set_defaults(func=run_mvor_to_coco)

    degrade = verbs.add_parser(
        "downscale", help="store images at 1/s resolution (privacy-preserving copies)"
    )
    degrade.add_argument("inputs", nargs="+", type=Path, help="images or folders")
    degrade.add_argument("--scale", type=float, required=True, help="downscale factor s (e.g. 12)")
    degrade.add_argument("--out", type=Path, required=True, help="output folder")
    degrade.set_defaults(func=run_downscale)

    subset = verbs.add_parser(
        "subset",
        help="the first N images (with people) of a COCO file, or of a folder of images (an "
        "images-only COCO file), image paths made absolute",
    )
    subset.add_argument("file", type=Path)
    subset.add_argument("--num", type=int, required=True)
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
    show.add_argument("--num", type=int, default=8, help="how many images (default 8)")
    show.add_argument(
        "--field", default="keypoints", help="keypoint field to draw (keypoints, keypoints_soft)"
    )
    show.set_defaults(func=run_show)


def run_check(args: argparse.Namespace) -> int:
    """Validate the file and its images: every bad image is listed on stdout, and the error
    line (stderr, exit code 2) names the file, the first bad image and how many there are."""
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
    path = args.mvor or shared_data("mvor/camma_mvor_2018.json")
    coco = MvorDataset(path).to_coco17(tuple(c - 1 for c in args.cameras))
    write_json_atomic(args.out, coco)
    n3d = sum(1 for a in coco["annotations"] if "keypoints3d" in a)
    print(
        f"wrote {args.out}: {len(coco['images'])} images, {len(coco['annotations'])} persons "
        f"with 2D keypoints, {n3d} with 3D"
    )
    return 0


def run_downscale(args: argparse.Namespace) -> int:
    import cv2
    from tqdm import tqdm

    from orpose.data.lowres import downsample
    from orpose.data.sources import expand_inputs, iter_images

    specs = expand_inputs(args.inputs)
    if any(s.video for s in specs):
        raise UserError("downscale takes images or folders; extract video frames first")
    images = [p for s in specs for p in s.images]
    args.out.mkdir(parents=True, exist_ok=True)
    failed = 0
    for frame in tqdm(iter_images(images), total=len(images), unit="img"):
        if frame.image is None:
            print(f"warning: {frame.error}")
            failed += 1
            continue
        small = downsample(frame.image, args.scale)
        cv2.imwrite(
            str(args.out / (Path(frame.source).stem + ".png")),
            cv2.cvtColor(small, cv2.COLOR_RGB2BGR),
        )
    print(f"wrote {len(images) - failed} images at 1/{args.scale:g} resolution to {args.out}")
    return 0


def run_subset(args: argparse.Namespace) -> int:
    if args.file.is_dir():
        return subset_of_folder(args.file, args.num, args.out)
    ds = load_pose_dataset(args.file, image_root=args.images, check_images=True)
    chosen = []
    for img in ds.images:
        people = [a for a in ds.annotations_of(img["id"]) if not a.get("iscrowd", 0)]
        if args.with_keypoints and not any(a.get("num_keypoints", 0) > 0 for a in people):
            continue
        chosen.append({**img, "file_name": str(ds.image_path(img).resolve())})
        if len(chosen) == args.num:
            break
    ids = {img["id"] for img in chosen}
    out = PoseDataset(
        chosen,
        [a for a in ds.annotations if a["image_id"] in ids],
        ds.categories,
        {**ds.info, "subset_of": str(args.file)},
    )
    out.save(args.out)
    print(f"wrote {args.out}: {len(chosen)} images, {len(out.annotations)} annotations")
    return 0


def subset_of_folder(folder: Path, num: int, out: Path) -> int:
    """An images-only COCO file of the first ``num`` images of ``folder`` (sorted by name): a
    fixed, nameable part of an unlabelled pool that ``orpose label`` can take as its input."""
    from PIL import Image

    from orpose.data.sources import SourceError, list_images

    paths = list_images(folder)[:num]
    if not paths:
        raise SourceError(f"{folder}: folder holds no image")
    images = []
    for i, path in enumerate(paths, start=1):
        with Image.open(path) as im:
            width, height = im.size
        images.append({"id": i, "file_name": str(path.resolve()), "width": width, "height": height})
    PoseDataset(images, [], info={"subset_of": str(folder)}).save(out)
    print(f"wrote {out}: {len(images)} images (no annotations)")
    return 0


def run_show(args: argparse.Namespace) -> int:
    import cv2

    from orpose.data.sources import read_image_rgb
    from orpose.viz.draw2d import draw_people

    ds = load_pose_dataset(args.file, image_root=args.images)
    args.out.mkdir(parents=True, exist_ok=True)
    for img in ds.images[: args.num]:
        canvas = draw_people(
            read_image_rgb(ds.image_path(img)),
            ds.annotations_of(img["id"]),
            keypoint_field=args.field,
        )
        out = args.out / f"{Path(img['file_name']).stem}.png"
        cv2.imwrite(str(out), cv2.cvtColor(canvas, cv2.COLOR_RGB2BGR))
    print(f"wrote {min(args.num, len(ds.images))} overlays to {args.out}")
    return 0
