"""The package's shape (docs/architecture.md): checked on the source, so that it stays true."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from orpose import FLOORS

SRC = Path(__file__).resolve().parents[1] / "src" / "orpose"

# Compatibility modules that re-export a module moved to a higher floor, for importers owned
# elsewhere: {module: the higher modules it may import}; each goes, with its entry here, once its
# importers import the new place. None at present.
REEXPORTS_UPWARDS: dict[str, set[str]] = {}


def _is_module(name: str) -> bool:
    """Whether ``orpose.x.y`` names a module or package of the source tree."""
    path = SRC.joinpath(*name.split(".")[1:])
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def _module_name(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """Every module a source file imports (module-level and function-local); ``from a import b``
    counts ``a.b`` too when that is a module of the package."""
    found = set()
    module_name = _module_name(path) if path.is_relative_to(SRC) else "orpose.probe"
    package = module_name if path.name == "__init__.py" else module_name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level:  # relative: resolved against the importing module's package
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                module = f"{base}.{module}" if module else base
            found.add(module)
            found.update(
                f"{module}.{alias.name}"
                for alias in node.names
                if module.startswith("orpose") and _is_module(f"{module}.{alias.name}")
            )
    return found


def _floor(module: str) -> int | None:
    """The index in orpose.FLOORS of a module: its most specific name there."""
    best, floor = -1, None
    for index, names in enumerate(FLOORS):
        for name in names:
            exact = module == name
            inside = name != "orpose" and module.startswith(name + ".")
            if (exact or inside) and len(name) > best:
                best, floor = len(name), index
    return floor


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
    assert set(callers) == {"checkpoints/safe.py"}


def test_torch_save_is_called_in_one_module():
    """Every checkpoint is written atomically, by orpose.checkpoints.safe.write_checkpoint."""
    callers = {
        str(path.relative_to(SRC))
        for path in _modules()
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Attribute)
        and node.attr == "save"
        and isinstance(node.value, ast.Name)
        and node.value.id == "torch"
    }
    assert callers == {"checkpoints/safe.py"}


def test_every_module_is_on_a_floor():
    assert [_module_name(p) for p in _modules() if _floor(_module_name(p)) is None] == []
    # a compatibility module that is gone takes its exception with it
    assert [m for m in REEXPORTS_UPWARDS if not _is_module(m)] == []


def test_no_floor_imports_a_higher_floor():
    """The order of orpose.FLOORS holds: data -> lifting -> teacher -> student -> training ->
    evaluation -> inference -> export -> workflow, with the base below all and the entry point
    above; a module may import its own floor and the floors below only."""
    offenders = {}
    for path in _modules():
        module = _module_name(path)
        own = _floor(module)
        above = sorted(
            imported
            for imported in _imports(path)
            if imported.startswith("orpose")
            and (_floor(imported) or 0) > own
            and imported not in REEXPORTS_UPWARDS.get(module, ())
        )
        if above:
            offenders[module] = above
    assert offenders == {}


def test_no_package_init_imports_above_its_modules():
    """Importing a module runs its packages' ``__init__`` first: those must not reach above the
    module's floor either (``orpose.checkpoints.safe`` is base, so ``orpose/checkpoints/__init__``
    re-exports the student formats lazily)."""
    offenders = {}
    for path in _modules():
        module = _module_name(path)
        own = _floor(module)
        parts = module.split(".")
        for depth in range(2, len(parts)):
            package = ".".join(parts[:depth])
            init = SRC.joinpath(*parts[1:depth], "__init__.py")
            above = sorted(
                imported
                for imported in _imports(init)
                if imported.startswith("orpose") and (_floor(imported) or 0) > own
            )
            if above:
                offenders[f"{module} (via {package})"] = above
    assert offenders == {}


def test_the_base_floor_loads_no_stage():
    """At run time too: importing every base module loads no module of a stage."""
    base = [_module_name(p) for p in _modules() if _floor(_module_name(p)) == 0]
    packages = {name.rsplit(".", depth)[0] for name in base for depth in range(name.count("."))}
    code = (
        "import importlib, sys\n"
        f"for name in {base!r}:\n"
        "    importlib.import_module(name)\n"
        "print(' '.join(sorted(m for m in sys.modules if m.startswith('orpose'))))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert [m for m in done.stdout.split() if _floor(m) != 0 and m not in packages] == []


def test_the_floor_check_sees_an_upward_import(tmp_path):
    """The check itself: a lower floor importing a higher one, directly or function-locally."""
    source = tmp_path / "probe.py"
    source.write_text("def f():\n    from orpose.inference import cli\n    import orpose.export\n")
    imported = _imports(source)
    assert {"orpose.inference", "orpose.inference.cli", "orpose.export"} <= imported
    assert _floor("orpose.data.coco") < _floor("orpose.teacher.cli") < _floor("orpose.export.cli")
    assert _floor("orpose.checkpoints.safe") == 0 < _floor("orpose.lifting.checkpoint")
    assert _floor("orpose.checkpoints.detectron2") == _floor("orpose.student.model")
