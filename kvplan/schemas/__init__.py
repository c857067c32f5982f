"""The JSON Schemas (draft 2020-12) of every `--json` document kvplan prints: one data file per document in this
folder, the one definition of its keys (`kvplan schema COMMAND` prints it; the tests validate every command's
real output against it, so a key the code adds, renames or drops without the schema fails them).

A schema may point at another's with `{"$ref": "urn:kvplan:NAME"}` (check -> recommend, profiles list ->
profiles show); `schema()` returns it bundled: each schema it points at embedded whole under `$defs`, keeping its
own `$id`, so the printed document stands alone (draft 2020-12 bundling). Imports nothing from kvplan but errors.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from importlib import resources
from typing import Any

from kvplan.errors import UsageError

__all__ = ["COMMANDS", "DIALECT", "command_name", "schema"]

DIALECT = "https://json-schema.org/draft/2020-12/schema"
URN = "urn:kvplan:"
# the command (as typed after `kvplan`) -> its schema file (without .json)
COMMANDS = {
    "estimate": "estimate",
    "recommend": "recommend",
    "check": "check",
    "explain": "explain",
    "models": "models",
    "profiles list": "profiles-list",
    "profiles show": "profiles-show",
    "profile": "profile",
    "throughput": "throughput",
    "fleet": "fleet",
}


def command_name(words: list[str] | tuple[str, ...]) -> str:
    """`["profiles", "list"]`, `["profiles-list"]` or `["estimate"]` -> the key of COMMANDS; a UsageError naming
    the commands that have a schema otherwise."""
    text = " ".join(w.strip().lower() for w in words if w.strip()).replace("-", " ")
    if text in COMMANDS:
        return text
    raise UsageError(
        f"no JSON schema for {' '.join(words)!r}" if words else "name the command whose --json output to describe",
        hint="one of: " + ", ".join(COMMANDS),
    )


def schema(command: str) -> dict[str, Any]:
    """The bundled schema of `command` (a key of COMMANDS, or a schema file name such as "profiles-list")."""
    name = COMMANDS.get(command, command)
    root = _load(name)
    embedded: dict[str, Any] = {}
    pending = [root]
    while pending:
        for ref in sorted(set(_refs(pending.pop()))):
            other = ref.removeprefix(URN).split("#", 1)[0]
            if other != name and other not in embedded:
                embedded[other] = _load(other)
                pending.append(embedded[other])
    if embedded:
        root.setdefault("$defs", {})
        for other, body in embedded.items():
            body.pop("$schema", None)  # one dialect for the whole document
            root["$defs"][other] = body
    return root


def _load(name: str) -> dict[str, Any]:
    try:
        text = resources.files(__name__).joinpath(f"{name}.json").read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"no JSON schema named {name!r}", hint="one of: " + ", ".join(COMMANDS)) from None
    return copy.deepcopy(json.loads(text))


def _refs(node: Any) -> Iterator[str]:
    """Every `$ref` to another kvplan schema (`urn:kvplan:...`) inside `node`."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str) and value.startswith(URN):
                yield value
            else:
                yield from _refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _refs(item)
