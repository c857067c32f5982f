"""No engine-specific rule outside kvplan/engines/: every list of engines, and every decision that depends on one,
goes through kvplan.engines.registry.

The rule: outside kvplan/engines/, no string constant (case-insensitive, exact) equals an engine's name, alias,
display name or flag key — not in a comparison or membership test, a dict / set / tuple / list literal, a
function default, a call argument, an assignment, a return or a subscript. Docstrings and longer messages
("use --engine llamacpp") are fine: only a whole constant counts. The one exemption is a package's version in a
dict (`{"transformers": transformers.__version__}`): that names a Python package, not an engine.
"""

from __future__ import annotations

import ast
from pathlib import Path

import kvplan
from kvplan.engines.registry import BUILTIN

PACKAGE = Path(kvplan.__file__).parent
SPELLINGS = frozenset(s.lower() for e in BUILTIN for s in (e.name, *e.aliases, e.display, e.flag_key))


def _is_version_of(key: ast.expr | None, value: ast.expr) -> bool:
    """`"name": name.__version__` in a dict literal."""
    return (
        isinstance(key, ast.Constant)
        and isinstance(value, ast.Attribute)
        and value.attr == "__version__"
        and isinstance(value.value, ast.Name)
        and value.value.id == key.value
    )


def engine_names_in(source: str) -> list[tuple[int, str, str]]:
    """(line, constant, where) of every engine spelling used as a whole string constant in `source`."""
    tree = ast.parse(source)
    parents: dict[ast.AST, ast.AST] = {}
    exempt: set[ast.AST] = set()
    for node in ast.walk(tree):
        for child in ast.iter_child_nodes(node):
            parents[child] = node
        if isinstance(node, ast.Dict):
            exempt.update(
                k for k, v in zip(node.keys, node.values, strict=True) if k is not None and _is_version_of(k, v)
            )
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and ast.get_docstring(
            node, clean=False
        ):
            exempt.add(node.body[0].value)  # type: ignore[attr-defined]
    return [
        (node.lineno, node.value, type(parents.get(node)).__name__)
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and node.value.lower() in SPELLINGS
        and node not in exempt
    ]


def test_the_rule_catches_engine_rules_and_spares_prose():
    code = '''
"""vllm"""
def f(engine="vllm", x=None):
    """Docstrings may say llama.cpp."""
    if engine == "sglang" or engine in ("tgi", "other"):
        return {"llama.cpp": 1}
    g(x, "TRTLLM")
    raise ValueError("use --engine lightllm instead")
env = {"transformers": transformers.__version__, "naive": other.__version__}
'''
    found = {(value, where) for _, value, where in engine_names_in(code)}
    assert found == {
        ("vllm", "arguments"),
        ("sglang", "Compare"),
        ("tgi", "Tuple"),
        ("llama.cpp", "Dict"),
        ("TRTLLM", "Call"),
        ("naive", "Dict"),
    }


def test_no_engine_names_outside_the_engines_package():
    files = [p for p in PACKAGE.rglob("*.py") if "engines" not in p.relative_to(PACKAGE).parts[:1]]
    assert len(files) > 20  # the walk sees the whole package
    hits = [
        f"{path.relative_to(PACKAGE.parent)}:{line}: {value!r} in a {where}"
        for path in sorted(files)
        for line, value, where in engine_names_in(path.read_text(encoding="utf-8"))
    ]
    assert not hits, "engine-specific rules outside kvplan/engines/ (ask kvplan.engines.registry):\n" + "\n".join(hits)
