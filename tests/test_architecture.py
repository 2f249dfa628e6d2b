"""The package's shape (docs/architecture.md): checked on the source, so that it stays true."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "orpose"


def _imports(path: Path) -> set[str]:
    """Every module a source file imports (module-level and function-local)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
    return found


def _modules(package: str = "") -> list[Path]:
    return sorted((SRC / package).rglob("*.py"))


def test_help_imports_no_torch():
    code = (
        "import sys\n"
        "from orpose.commands import build_parser\n"
        "build_parser().format_help()\n"
        "heavy = [m for m in ('torch', 'onnxruntime', 'cv2') if m in sys.modules]\n"
        "print(','.join(heavy))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "", f"orpose --help imports {done.stdout.strip()}"


def test_only_the_entry_point_imports_the_cli():
    offenders = [
        str(p.relative_to(SRC))
        for p in _modules()
        if p.name != "cli.py" or p.parent != SRC
        if "orpose.cli" in _imports(p)
    ]
    assert offenders == []


def test_inference_imports_no_teacher_module():
    offenders = {
        str(p.relative_to(SRC)): sorted(m for m in _imports(p) if m.startswith("orpose.teacher"))
        for p in _modules("inference")
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_torch_load_is_called_in_one_module():
    callers = []
    for path in _modules():
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "load"
                and isinstance(node.func.value, ast.Name)
                and node.func.value.id == "torch"
            ):
                callers.append(str(path.relative_to(SRC)))
    assert set(callers) == {"checkpoints.py"}
