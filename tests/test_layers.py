"""The tree's layers, enforced on the source: which package may import which, and where torch may appear.

Static (AST over every module, imports inside functions included), so a lazy import cannot slip past a
runtime check. The layers are those of ARCHITECTURE.md.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "kvplan"
HEAVY = {"torch", "transformers", "accelerate"}
# package -> the kvplan packages it may import (besides itself and kvplan.errors)
ALLOWED = {
    "core": set(),
    "sources": {"core"},
    "weights": {"core", "sources"},
    "engines": {"core", "sources"},  # hardware profiles feed the budgets
    "planning": {"core", "sources", "weights", "engines"},
    "checking": {"core", "sources", "weights", "engines", "planning", "atomic_file"},
    "profiling": {"core", "sources", "weights", "engines", "planning", "atomic_file", "jsonout", "__version__"},
    "schemas": set(),  # data files and their loader
    "plotting": {
        "core",
        "engines",
        "planning",
        "atomic_file",
        "__version__",
    },  # matplotlib: kvplan/plotting/draw.py only
}


def _modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)


def _imports(path: Path) -> set[str]:
    """Every module name the file imports, absolute (relative imports resolved against its package)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts[:-1])
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parts, base]) if base else ".".join(parts)
            names.add(base)
            if base.split(".")[0] == "kvplan":  # `from kvplan.weights import safetensors` may name a module
                names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def _layer(path: Path) -> str:
    parts = path.relative_to(PACKAGE).parts
    return parts[0] if len(parts) > 1 else parts[0].removesuffix(".py")


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_only_profiling_imports_torch(path):
    if _layer(path) == "profiling":
        return
    heavy = {name for name in _imports(path) if name.split(".")[0] in HEAVY}
    assert not heavy, f"{path.relative_to(PACKAGE)} imports {sorted(heavy)}: only kvplan/profiling may"


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_layers_import_only_what_is_below_them(path):
    layer = _layer(path)
    if layer not in ALLOWED:
        return  # the CLI, the renderer and the package root sit on top and may import anything
    used = set()
    for name in _imports(path):
        parts = name.split(".")
        if parts[0] != "kvplan" or len(parts) == 1:
            continue
        used.add(parts[1])
    wrong = used - ALLOWED[layer] - {layer, "errors"}
    assert not wrong, f"{path.relative_to(PACKAGE)} ({layer}) imports kvplan.{sorted(wrong)}"


def test_the_walk_sees_every_layer():
    """Guards the guard: the walk finds modules in each layer and sees a known lazy import."""
    layers = {_layer(p) for p in _modules()}
    assert set(ALLOWED) <= layers
    assert "kvplan.weights.safetensors" in _imports(PACKAGE / "planning" / "resolved.py")


def _names_defined(path: Path) -> set[str]:
    """Names a module binds at top level: imports, assignments, functions and classes."""
    names: set[str] = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((a.asname or a.name).split(".")[0] for a in node.names)
        elif isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names.update(t.id for t in targets if isinstance(t, ast.Name))
    return names


def _module_exists(name: str) -> bool:
    path = PACKAGE.parent.joinpath(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_every_kvplan_import_names_a_real_module(path):
    """A lazy import of a module that moved fails only when its command runs: catch it here."""
    tree = ast.parse(path.read_text(), filename=str(path))
    missing = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "kvplan" and not node.level:
            module = node.module or ""
            if not _module_exists(module):
                missing.append(module)
            elif module == "kvplan":
                exported = _names_defined(PACKAGE / "__init__.py")
                missing += [
                    f"kvplan.{a.name}"
                    for a in node.names
                    if not _module_exists(f"kvplan.{a.name}") and a.name not in exported
                ]
        elif isinstance(node, ast.Import):
            missing += [a.name for a in node.names if a.name.split(".")[0] == "kvplan" and not _module_exists(a.name)]
    assert not missing, f"{path.relative_to(PACKAGE)} imports modules that do not exist: {missing}"


def test_only_the_plotting_draw_module_imports_matplotlib():
    """matplotlib is the `plot` extra: one module draws, so everything else runs without it."""
    users = sorted(
        str(p.relative_to(PACKAGE)) for p in _modules() if any(n.split(".")[0] == "matplotlib" for n in _imports(p))
    )
    assert users == ["plotting/draw.py"], users


def _architecture_rows() -> dict[str, list[str]]:
    text = (PACKAGE.parent / "ARCHITECTURE.md").read_text()
    rows: dict[str, list[str]] = {}
    for line in text.splitlines():
        if line.startswith("| `kvplan/") and line.split("|")[1].strip().endswith("/`"):
            package = line.split("|")[1].strip().strip("`").split("/")[1]
            rows.setdefault(package, []).append(line)
    return rows


def test_architecture_table_has_one_row_per_package():
    """ARCHITECTURE.md's layer table: one row per package (a stale second copy of a row once hid new modules)."""
    rows = _architecture_rows()
    assert sorted(rows) == sorted(ALLOWED), sorted(rows)
    assert {p: len(r) for p, r in rows.items() if len(r) != 1} == {}


def test_architecture_table_names_every_module():
    """Every module of a package is named in that package's row (as `name`), so the table says where each lives."""
    rows = _architecture_rows()
    missing = []
    for package, (row,) in rows.items():
        for path in sorted((PACKAGE / package).rglob("*.py")):
            name = path.stem
            if name == "__init__" or "__pycache__" in path.parts:
                continue
            if f"`{name}`" not in row and f"`{name}/`" not in row and f"{name}`" not in row:
                missing.append(f"{package}/{path.relative_to(PACKAGE / package)}")
    assert missing == []
