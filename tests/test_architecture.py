"""The package's shape (docs/architecture.md): checked on the source, so that it stays true."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from orpose import FLOORS

SRC = Path(__file__).resolve().parents[1] / "src" / "orpose"

# The one module that imports torchvision's private and internal names (docs/architecture.md).
COMPAT = "compat_torchvision.py"


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
    """The index in orpose.FLOORS of a module: the floor of its name or of its package's
    ("orpose" names the package's ``__init__`` only)."""
    for index, names in enumerate(FLOORS):
        for name in names:
            if module == name or (name != "orpose" and module.startswith(name + ".")):
                return index
    return None


def _import_graph() -> dict[str, set[str]]:
    """{module: the modules of the package it imports}, every import counted (module-level,
    function-local, under ``TYPE_CHECKING``)."""
    graph = {}
    for path in _modules():
        module = _module_name(path)
        graph[module] = {m for m in _imports(path) if m.startswith("orpose") and _is_module(m)}
        graph[module].discard(module)
    return graph


def _circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One circle (``[a, b, ..., a]``) per group of modules that import one another (Tarjan's
    strongly connected components; a group of n modules is shown by one of its circles)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    groups: list[set[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = set()
            while True:
                member = stack.pop()
                group.add(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(group)

    for node in sorted(graph):
        if node not in index:
            visit(node)
    circles = []
    for group in groups:
        start = min(group)
        paths = {start: [start]}  # breadth-first, inside the group, back to the start
        queue = [start]
        while queue:
            node = queue.pop(0)
            for nxt in sorted(graph[node] & group):
                if nxt == start:
                    circles.append(paths[node] + [start])
                    queue = []
                    break
                if nxt not in paths:
                    paths[nxt] = paths[node] + [nxt]
                    queue.append(nxt)
    return sorted(circles)


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _torchvision_names(path: Path) -> set[str]:
    """Every torchvision name a source file reaches, dotted: its imports (``import a.b``,
    ``from a import b``) and the attributes it takes of the modules and names they bind
    (``torchvision._is_tracing``, ``poolers._setup_scales``, ``roi_heads.keypoints_to_heatmap``)."""
    tree = ast.parse(path.read_text())
    found, bound = set(), {}  # bound: local name -> the torchvision name it stands for
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "torchvision":
                    found.add(alias.name)
                    local = alias.asname or "torchvision"
                    bound[local] = alias.name if alias.asname else "torchvision"
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("torchvision"):
            for alias in node.names:
                found.add(f"{node.module}.{alias.name}")
                bound[alias.asname or alias.name] = f"{node.module}.{alias.name}"
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute):
            chain, value = [node.attr], node.value
            while isinstance(value, ast.Attribute):
                chain.insert(0, value.attr)
                value = value.value
            if isinstance(value, ast.Name) and value.id in bound:
                found.add(".".join([bound[value.id], *chain]))
    return found


def _private_torchvision(path: Path) -> set[str]:
    """The private torchvision names a source file reaches: an underscored module, name or
    attribute on the way (``detection._utils``, ``_topk_min``, ``torchvision._is_tracing``)."""
    return {name for name in _torchvision_names(path) if any(map(_private, name.split(".")))}


def _compat_names() -> tuple[set[str], set[str]]:
    """What the compatibility module wraps: the torchvision names it imports (``module.name``)
    and the private attributes it touches (``_post_nms_top_n``)."""
    tree = ast.parse((SRC / COMPAT).read_text())
    names = {
        f"{node.module}.{alias.name}"
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("torchvision")
        for alias in node.names
    }
    attributes = {
        node.attr
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute) and _private(node.attr)
    }
    return names, attributes


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
    assert set(callers) == {"safe_checkpoint.py"}


def test_torch_save_is_called_in_one_module():
    """Every checkpoint is written atomically, by orpose.safe_checkpoint.write_checkpoint."""
    callers = {
        str(path.relative_to(SRC))
        for path in _modules()
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Attribute)
        and node.attr == "save"
        and isinstance(node.value, ast.Name)
        and node.value.id == "torch"
    }
    assert callers == {"safe_checkpoint.py"}


def test_every_module_is_on_a_floor():
    assert [_module_name(p) for p in _modules() if _floor(_module_name(p)) is None] == []


def test_the_floors_hold_without_exceptions():
    """Every name of orpose.FLOORS is a module or package of the source, on one floor, and none
    lies inside another: a package's modules are all on its floor."""
    names = [name for floor in FLOORS for name in floor]
    assert len(names) == len(set(names))
    assert [name for name in names if not _is_module(name)] == []
    nested = [(a, b) for a in names for b in names if a != "orpose" and b.startswith(a + ".")]
    assert nested == []


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
            if imported.startswith("orpose") and (_floor(imported) or 0) > own
        )
        if above:
            offenders[module] = above
    assert offenders == {}


def test_no_package_init_imports_above_its_modules():
    """Importing a module runs its packages' ``__init__`` first: those must not reach above the
    module's floor either (the package ``orpose`` is base: its ``__init__`` resolves the API
    lazily)."""
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
    assert _floor("orpose.safe_checkpoint") == 0 < _floor("orpose.lifting.checkpoint")
    assert _floor("orpose.compat_torchvision") == 0 < _floor("orpose.student.topdown")
    assert _floor("orpose.lifting.official_lifter") < _floor("orpose.student.keypoint_head")
    assert _floor("orpose.student.model") < _floor("orpose.checkpoints.detectron2")
    assert _floor("orpose.checkpoints.student") == _floor("orpose.predictor")
    assert _floor("orpose.predictor") < _floor("orpose.training.cli") < _floor("orpose.api")


def test_no_import_circles():
    """No module imports itself through others, by any import (module-level, function-local or
    under ``TYPE_CHECKING``): a circle hidden in a function body is still one."""
    assert _circles(_import_graph()) == []


def test_the_circle_check_sees_a_circle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": set(), "e": {"e2"}, "e2": {"e"}}
    assert _circles(graph) == [["a", "b", "c", "a"], ["e", "e2", "e"]]
    assert _circles({"a": {"b"}, "b": set()}) == []


def test_private_torchvision_names_only_in_the_compat_module():
    """torchvision's private names (underscored modules, names and module attributes) and the
    internals that orpose.compat_torchvision wraps (``heatmaps_to_keypoints``, the RPN's
    ``_post_nms_top_n`` ...) are reached from that module only."""
    wrapped, attributes = _compat_names()
    offenders = {}
    for path in _modules():
        if path == SRC / COMPAT:
            continue
        module = _module_name(path)
        reached = _private_torchvision(path) | (_torchvision_names(path) & wrapped)
        reached |= {
            node.attr
            for node in ast.walk(ast.parse(path.read_text()))
            if isinstance(node, ast.Attribute) and node.attr in attributes
        }
        if reached:
            offenders[module] = sorted(reached)
    assert offenders == {}


def test_the_private_name_check_sees_private_names(tmp_path):
    source = tmp_path / "probe.py"
    source.write_text(
        "import torchvision\n"
        "from torchvision.ops import poolers as p, roi_align\n"
        "from torchvision.models.detection._utils import BoxCoder\n"
        "from torchvision.models.detection import roi_heads\n"
        "def f(x):\n"
        "    roi_heads.heatmaps_to_keypoints(x, x)\n"
        "    from torchvision.models.detection.transform import _get_shape_onnx\n"
        "    return (torchvision._is_tracing(), p._setup_scales, torchvision.__version__,\n"
        "            roi_align)\n"
    )
    assert _private_torchvision(source) == {
        "torchvision._is_tracing",
        "torchvision.ops.poolers._setup_scales",
        "torchvision.models.detection._utils.BoxCoder",
        "torchvision.models.detection.transform._get_shape_onnx",
    }
    wrapped, attributes = _compat_names()
    assert _torchvision_names(source) & wrapped == {
        "torchvision._is_tracing",
        "torchvision.ops.poolers._setup_scales",
        "torchvision.models.detection.roi_heads.heatmaps_to_keypoints",
        "torchvision.models.detection.transform._get_shape_onnx",
    }
    assert "_post_nms_top_n" in attributes
