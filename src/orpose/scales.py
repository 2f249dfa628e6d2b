"""Downscale factors as orpose writes them, in one place.

A factor ``s`` (the image shrunk to 1/s, then restored) appears in file names, step names and
command lines as its tag (``12.0`` -> ``"12"``, ``1.5`` -> ``"1.5"``) and in tables, charts and
file names as its label, the tag plus ``x`` (``"12x"``: ``pred_12x.json``, ``val_12x.json``).
"""

from __future__ import annotations


def scale_tag(scale: float) -> str:
    """``12.0`` -> ``"12"``, ``1.5`` -> ``"1.5"``: a factor in names and command lines."""
    return f"{scale:g}"


def scale_label(scale: float | str) -> str:
    """``8`` -> ``"8x"``; strings are kept as the user wrote them."""
    if isinstance(scale, str):
        return scale
    return f"{scale_tag(scale)}x"


def scale_from_label(label: str) -> float | None:
    """``"8x"`` (or ``"8"``) -> ``8.0``; None for a label that names no factor."""
    try:
        return float(label.rstrip("x"))
    except ValueError:
        return None
