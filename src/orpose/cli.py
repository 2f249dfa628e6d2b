"""The ``orpose`` command: one entry point whose verbs follow the pipeline.

Each stage package owns its verbs in a ``cli`` module exposing ``register(subparsers)``; that
function adds its parser(s) and sets ``func`` (called with the parsed namespace, returning an
exit code). Heavy imports (torch, onnxruntime) happen inside the ``func``s, so ``orpose --help``
stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from orpose import __version__

# Stage order of the paper's Figure 1; each module registers its own verbs.
COMMAND_MODULES: tuple[str, ...] = (
    "orpose.data.cli",
    "orpose.teacher.cli",
    "orpose.lifting.cli",
    "orpose.training.cli",
    "orpose.inference.cli",
    "orpose.evaluation.cli",
    "orpose.workflow.cli",
)


class UserError(Exception):
    """An error caused by the user's input: printed as one clear line, without a traceback."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="orpose",
        description="Multi-person 2D/3D pose estimation for operating-room cameras, trained "
        "without manual labels (teacher -> pseudo labels -> low-resolution student).",
    )
    parser.add_argument("--version", action="version", version=f"orpose {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module_name in COMMAND_MODULES:
        importlib.import_module(module_name).register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
    )
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    from orpose.data.coco import DatasetError
    from orpose.data.sources import SourceError

    try:
        return int(args.func(args) or 0)
    except (UserError, DatasetError, SourceError, FileNotFoundError) as err:
        print(f"orpose {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
