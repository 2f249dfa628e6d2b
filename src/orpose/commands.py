"""The verbs of ``orpose`` and their dispatch: the parser built from every stage's ``cli``
module, and :func:`run`, which turns an argument list into an exit code.

Each stage package owns its verbs in a ``cli`` module exposing ``register(subparsers)``; that
function adds its parser(s) and sets ``func`` (called with the parsed namespace, returning an
exit code). Heavy imports (torch, onnxruntime) happen inside the ``func``s, so ``orpose --help``
stays fast. Errors of the user's input (:class:`orpose.errors.OrposeError`) become one line on
stderr and exit code 2 (:func:`error_line`, which the workflow's steps use too). The entry point
(:mod:`orpose.cli`) runs commands through here; ``orpose demo`` / ``experiment`` / ``adapt`` run
none: their steps call the verbs' functions (:mod:`orpose.workflow.stages`).
"""

from __future__ import annotations

import argparse
import errno
import importlib
import logging
import sys

from orpose import __version__
from orpose.errors import OrposeError

# Errors of the place written to, reported in one line (what was finished is journaled)
PLACE_ERRNOS = frozenset(
    (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM)
    + (errno.EISDIR, errno.ENOTDIR)  # a folder where a file goes, a file where a folder does
    + (errno.ENAMETOOLONG,)  # a name longer than the file system takes
)

# Stage order of the paper's Figure 1; each module registers its own verbs.
COMMAND_MODULES: tuple[str, ...] = (
    "orpose.data.cli",
    "orpose.teacher.cli",
    "orpose.lifting.cli",
    "orpose.training.cli",
    "orpose.evaluation.cli",
    "orpose.inference.cli",
    "orpose.export.cli",
    "orpose.workflow.cli",
)


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


def _escape_undecodable_names() -> None:
    """Print a file name that is not valid UTF-8 (Python keeps its bytes as surrogates) escaped,
    where the terminal's encoding is strict about them (a UTF-8 locale other than C), instead of
    a UnicodeEncodeError traceback after the work is done."""
    for stream in (sys.stdout, sys.stderr):
        if getattr(stream, "errors", None) == "strict" and hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")


def run(argv: list[str] | None = None) -> int:
    """Parse ``argv`` (default: the process's) and run the verb; its exit code."""
    _escape_undecodable_names()
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as done:  # --help, --version, or argparse's one-line error (code 2)
        return int(done.code or 0) if isinstance(done.code, int | None) else 2
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
    )
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except (OrposeError, OSError) as err:
        line = error_line(args.command, err)
        if line is None:
            raise
        print(line, file=sys.stderr)
        return 2


def error_line(command: str, err: BaseException) -> str | None:
    """The one line (exit code 2) reporting an error of the user's input or of the place
    written to, as ``orpose COMMAND: error: ...``; None for any other error (a bug: its
    traceback is shown). The verbs and the workflow's steps report their errors through it."""
    if isinstance(err, OrposeError | FileNotFoundError):
        return f"orpose {command}: error: {err}"
    if isinstance(err, OSError) and err.errno in PLACE_ERRNOS:
        # a full disk, a read-only place: one line, not chained tracebacks
        where = f"{err.filename}: " if err.filename else ""
        return f"orpose {command}: error: {where}{err.strerror or err}"
    return None
