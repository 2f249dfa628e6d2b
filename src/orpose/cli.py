"""The ``orpose`` command (the console entry point; ``python -m orpose.cli`` for torchrun).

The verbs follow the pipeline (data, label, lift, train, eval, predict, export, demo, experiment,
bench); they are registered and dispatched by :mod:`orpose.commands`.
"""

from __future__ import annotations

import sys

from orpose.commands import run
from orpose.errors import UserError  # noqa: F401  (re-exported for older imports)


def main(argv: list[str] | None = None) -> int:
    return run(argv)


if __name__ == "__main__":
    sys.exit(main())
