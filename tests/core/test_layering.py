"""kvplan/core is the pure-arithmetic bottom layer: it imports only itself, kvplan.errors and the standard
library (never torch, transformers, the engines, planning, the weights, the profiler or the CLI)."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

import kvplan.core

CORE = Path(kvplan.core.__file__).parent
MODULES = sorted(p.name for p in CORE.glob("*.py"))


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            names.add(node.module or "")
    return names


@pytest.mark.parametrize("module", MODULES)
def test_core_imports_only_core_errors_and_the_standard_library(module):
    for name in _imports(CORE / module):
        top = name.split(".")[0]
        if top == "kvplan":
            assert name.startswith("kvplan.core") or name == "kvplan.errors", (module, name)
        else:
            assert top in sys.stdlib_module_names or top == "__future__", (module, name)


def test_the_family_table_imports_nothing_from_kvplan():
    assert not {n for n in _imports(CORE / "families.py") if n.startswith("kvplan")}
