"""A small BVH reader with vectorised forward kinematics.

BVH (Biovision hierarchy) stores a joint tree (offsets in the parent's rest frame, rotation channel
order per joint) followed by one line of channel values per frame. Rotations are Euler angles in
degrees, applied in the order the channels are listed (intrinsic), so a joint's local rotation is
``R = R_c1 @ R_c2 @ R_c3``. Joint world positions follow
``p_j = p_parent + R_parent_world @ offset_j``, the standard BVH convention.

Malformed files raise :class:`orpose.data.coco.DatasetError` naming the file and the line.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from orpose.data.coco import DatasetError

_AXES = {"X": 0, "Y": 1, "Z": 2}


@dataclass
class BvhSkeleton:
    """The joint tree of a BVH file: names, parents (-1 for the root), offsets and channels."""

    names: list[str] = field(default_factory=list)
    parents: list[int] = field(default_factory=list)
    offsets: list[np.ndarray] = field(default_factory=list)
    channels: list[list[str]] = field(default_factory=list)
    # Offset of each joint's End Site (None when it has none): gives the tip of end bones.
    end_sites: list[np.ndarray | None] = field(default_factory=list)

    def index(self, name: str) -> int:
        try:
            return self.names.index(name)
        except ValueError:
            raise KeyError(f"BVH joint '{name}' not in the hierarchy") from None

    @property
    def num_channels(self) -> int:
        return sum(len(c) for c in self.channels)


@dataclass
class BvhMotion:
    """A parsed BVH file: its skeleton and the ``(frames, channels)`` motion table."""

    path: Path
    skeleton: BvhSkeleton
    frame_time: float
    motion: np.ndarray  # (F, C) float64, in file units and degrees


class _Tokens:
    """Whitespace tokens of the hierarchy with their line numbers, for precise error messages."""

    def __init__(self, lines: list[str], path: Path):
        self.items = [(tok, n + 1) for n, line in enumerate(lines) for tok in line.split()]
        self.pos = 0
        self.path = path

    def next(self, expected: str | None = None) -> str:
        if self.pos >= len(self.items):
            raise DatasetError(f"{self.path}: unexpected end of the HIERARCHY section")
        tok, line = self.items[self.pos]
        self.pos += 1
        if expected is not None and tok != expected:
            raise DatasetError(f"{self.path}: line {line}: expected '{expected}', found '{tok}'")
        return tok

    def numbers(self, count: int) -> list[float]:
        out = []
        for _ in range(count):
            tok = self.next()
            try:
                out.append(float(tok))
            except ValueError:
                line = self.items[self.pos - 1][1]
                raise DatasetError(f"{self.path}: line {line}: '{tok}' is not a number") from None
        return out

    def peek(self) -> str | None:
        return self.items[self.pos][0] if self.pos < len(self.items) else None


def _parse_joint(tokens: _Tokens, skel: BvhSkeleton, parent: int) -> None:
    """Parse one ``ROOT``/``JOINT`` block (its name has been read) and its children."""
    name = tokens.next()
    index = len(skel.names)
    skel.names.append(name)
    skel.parents.append(parent)
    skel.end_sites.append(None)
    tokens.next("{")
    tokens.next("OFFSET")
    skel.offsets.append(np.array(tokens.numbers(3)))
    tokens.next("CHANNELS")
    count_tok = tokens.next()
    if not count_tok.isdigit():
        raise DatasetError(f"{tokens.path}: joint {name}: bad CHANNELS count '{count_tok}'")
    chans = [tokens.next() for _ in range(int(count_tok))]
    for ch in chans:
        if len(ch) < 2 or ch[0] not in _AXES or ch[1:] not in ("position", "rotation"):
            raise DatasetError(f"{tokens.path}: joint {name}: unknown channel '{ch}'")
    skel.channels.append(chans)
    while True:
        tok = tokens.next()
        if tok == "}":
            return
        if tok == "JOINT":
            _parse_joint(tokens, skel, index)
        elif tok == "End":
            tokens.next("Site")
            tokens.next("{")
            tokens.next("OFFSET")
            skel.end_sites[index] = np.array(tokens.numbers(3))
            tokens.next("}")
        else:
            raise DatasetError(f"{tokens.path}: joint {name}: unexpected '{tok}' in the hierarchy")


def read_bvh(path: Path | str) -> BvhMotion:
    """Parse a BVH file; the motion table is kept raw (no frame is dropped here)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such BVH file")
    text = path.read_text(errors="replace")
    head, sep, body = text.partition("MOTION")
    if not sep:
        raise DatasetError(f"{path}: no MOTION section (not a BVH file?)")
    tokens = _Tokens(head.splitlines(), path)
    tokens.next("HIERARCHY")
    tokens.next("ROOT")
    skel = BvhSkeleton()
    _parse_joint(tokens, skel, -1)
    if tokens.peek() is not None:
        raise DatasetError(f"{path}: several ROOT joints are not supported")

    lines = body.strip().splitlines()
    if (
        len(lines) < 2
        or not lines[0].startswith("Frames:")
        or not lines[1].startswith("Frame Time:")
    ):
        raise DatasetError(f"{path}: MOTION section needs 'Frames:' and 'Frame Time:' lines")
    try:
        n_frames = int(lines[0].split(":")[1])
        frame_time = float(lines[1].split(":")[1])
        values = np.array(" ".join(lines[2:]).split(), dtype=np.float64)
    except ValueError as err:
        raise DatasetError(f"{path}: MOTION section: {err}") from err
    n_chan = skel.num_channels
    if values.size != n_frames * n_chan:
        raise DatasetError(
            f"{path}: MOTION section has {values.size} values, expected {n_frames} frames x "
            f"{n_chan} channels"
        )
    return BvhMotion(path, skel, frame_time, values.reshape(n_frames, n_chan))


def axis_rotation(axis: int, degrees: np.ndarray) -> np.ndarray:
    """``(F, 3, 3)`` rotation matrices about one coordinate axis (right-handed)."""
    a = np.radians(degrees)
    c, s = np.cos(a), np.sin(a)
    out = np.zeros((*a.shape, 3, 3))
    i, j = [k for k in range(3) if k != axis]
    out[..., axis, axis] = 1.0
    out[..., i, i] = c
    out[..., j, j] = c
    # Cyclic order (x->y->z) keeps the sign convention right-handed for every axis.
    sign = 1.0 if (j - i) % 3 == 1 else -1.0
    out[..., i, j] = -s * sign
    out[..., j, i] = s * sign
    return out


def forward_kinematics(
    motion: BvhMotion, frames: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """World positions ``(F, J, 3)`` and rotations ``(F, J, 3, 3)`` of every joint.

    ``frames`` selects rows of the motion table (all by default). Units are the file's.
    """
    skel = motion.skeleton
    table = motion.motion if frames is None else motion.motion[frames]
    n = table.shape[0]
    n_joints = len(skel.names)
    pos = np.zeros((n, n_joints, 3))
    rot = np.zeros((n, n_joints, 3, 3))
    col = 0
    for j, chans in enumerate(skel.channels):
        local_rot = np.broadcast_to(np.eye(3), (n, 3, 3)).copy()
        translation = np.zeros((n, 3))
        for ch in chans:
            axis = _AXES[ch[0]]
            if ch.endswith("position"):
                translation[:, axis] = table[:, col]
            else:
                local_rot = local_rot @ axis_rotation(axis, table[:, col])
            col += 1
        parent = skel.parents[j]
        if parent < 0:
            pos[:, j] = translation + skel.offsets[j]
            rot[:, j] = local_rot
        else:
            pos[:, j] = (
                pos[:, parent]
                + (rot[:, parent] @ (skel.offsets[j] + translation)[..., None])[..., 0]
            )
            rot[:, j] = rot[:, parent] @ local_rot
    return pos, rot
