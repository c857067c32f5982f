"""YAML files with line numbers, read safely: plan files, engine configs and hardware profiles share this loader.

`read_text` reads a small UTF-8 text file (size-capped, binary refused); `load_yaml` parses one document with
PyYAML's SafeLoader only (no tags constructed, nothing executed), refuses duplicate keys, and returns the node
tree beside the data so every later message can name the line a key was written on. Errors are one line,
raised as the caller's error class. Pure Python (PyYAML); never imports torch.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from kvplan.errors import ConfigError, KvplanError

MAX_FILE_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True)
class Entry:
    """One key's value, where it was written and how to name it in a message."""

    value: Any
    line: int
    label: str  # e.g. "deployments[0].gpus", "defaults.gpus" or "key 'max-model-len'"


# libyaml's safe loader (the same SafeConstructor: no tags constructed) where PyYAML has it: ~30x faster on
# large plans; the pure-Python one otherwise. Both give the node tree with line marks.
_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def read_text(path: str | Path, what: str = "plan file") -> str:
    p = Path(path)
    try:
        if p.is_dir():
            raise ConfigError(f"{path}: is a folder, not a {what}", hint=f"pass the {what} itself")
        if p.stat().st_size > MAX_FILE_BYTES:  # a regular file says its size: refused without reading
            raise ConfigError(f"{path}: too big for a {what} ({p.stat().st_size:,} bytes)", hint=f"pass the {what}")
        with p.open("rb") as stream:  # bounded: /dev/zero or an endless pipe is refused, not read until memory ends
            raw = stream.read(MAX_FILE_BYTES + 1)
        if len(raw) > MAX_FILE_BYTES:
            raise ConfigError(f"{path}: too big for a {what} (over {MAX_FILE_BYTES:,} bytes)", hint=f"pass the {what}")
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file", hint="check the path") from None
    except OSError as exc:
        raise ConfigError(
            f"{path}: cannot read file: {exc.strerror or exc}", hint="check the path's permissions"
        ) from None
    if raw[:2] in (b"\xff\xfe", b"\xfe\xff"):
        raise ConfigError(f"{path}: UTF-16 text (PowerShell's default)", hint="save the file as UTF-8")
    if b"\x00" in raw:
        raise ConfigError(f"{path}: binary file, not a YAML {what}", hint=f"pass the {what} (YAML text)")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{path}: not UTF-8 text (bad byte at offset {exc.start})", hint="save the file as UTF-8"
        ) from None


def load_yaml(
    path: str | Path,
    text: str,
    *,
    error: type[KvplanError] = ConfigError,
    describe: Callable[[yaml.YAMLError], str] | None = None,
    hint: str = "write plain YAML: no !!tags; check quoting and indentation",
) -> tuple[Any, yaml.Node | None]:
    """Parse one YAML document with the safe loader; return the data and its node tree (for line numbers).

    Tags outside plain YAML (`!!python/object/apply:...`) are refused, never constructed; a key given twice in
    one mapping is an error. Problems are raised as `error` (one line); `describe` words a syntax error the
    caller's way (hardware profiles name the key being written), else `path:line: invalid YAML: ...`.
    """
    try:
        loader = _LOADER(text)
    except yaml.reader.ReaderError as exc:
        raise error(_reader_message(path, text, exc), hint="remove control characters from the file") from None
    try:
        node = loader.get_single_node()
        if node is not None:
            _refuse_duplicates(path, node, error)
        data = loader.construct_document(node) if node is not None else None
    except yaml.reader.ReaderError as exc:
        raise error(_reader_message(path, text, exc), hint="remove control characters from the file") from None
    except yaml.YAMLError as exc:
        raise error(describe(exc) if describe else _yaml_message(path, exc), hint=hint) from None
    except RecursionError:
        raise error(f"{path}: YAML nested too deeply", hint="these files are shallow mappings") from None
    finally:
        loader.dispose()
    return data, node


def _reader_message(path: str | Path, text: str, exc: yaml.reader.ReaderError) -> str:
    line = text[: max(0, exc.position)].count("\n") + 1
    char = exc.character if isinstance(exc.character, int) else ord(str(exc.character)[:1] or "?")
    return f"{path}:{line}: invalid YAML: character #x{char:04x} is not allowed in YAML text"


def _yaml_message(path: str | Path, exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    problem = " ".join(str(getattr(exc, "problem", None) or exc).split())
    context = " ".join(str(getattr(exc, "context", None) or "").split())
    if isinstance(exc, yaml.constructor.ConstructorError) and "tag" in problem:
        tag = problem.split("tag", 1)[1].strip(" '\"")
        tag = tag.replace("tag:yaml.org,2002:", "!!")
        problem = f"unsupported YAML tag '{tag}' (only plain YAML values are allowed; nothing was run)"
    elif context and context not in problem:
        problem = f"{problem} ({context})"
    where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
    return f"{where}: invalid YAML: {problem}" if "unsupported YAML tag" not in problem else f"{where}: {problem}"


def _refuse_duplicates(path: str | Path, node: yaml.Node, error: type[KvplanError], depth: int = 0) -> None:
    """A key given twice in one mapping is an error (PyYAML would silently keep the last)."""
    if depth > 4:
        return
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, int] = {}
        for key_node, value_node in node.value:
            if isinstance(key_node, yaml.ScalarNode) and key_node.tag != "tag:yaml.org,2002:merge":
                line = key_node.start_mark.line + 1
                if key_node.value in seen:
                    raise error(
                        f"{path}:{line}: duplicate key '{key_node.value}' (first given on line {seen[key_node.value]})",
                        hint="give each key once",
                    )
                seen[key_node.value] = line
            _refuse_duplicates(path, value_node, error, depth + 1)
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            _refuse_duplicates(path, item, error, depth + 1)


def mapping_entries(
    data: dict, node: yaml.Node | None, label: Callable[[str], str], default_line: int
) -> dict[str, Entry]:
    """The keys of a constructed mapping with the line each was written on (merge keys included)."""
    lines: dict[str, int] = {}
    if isinstance(node, yaml.MappingNode):
        for key_node, _ in node.value:
            if isinstance(key_node, yaml.ScalarNode):
                lines.setdefault(key_node.value, key_node.start_mark.line + 1)
    return {str(k): Entry(v, lines.get(str(k), default_line), label(str(k))) for k, v in data.items()}


def node_line(node: yaml.Node | None, default: int = 1) -> int:
    return node.start_mark.line + 1 if node is not None else default


def child(node: yaml.Node | None, key: str) -> yaml.Node | None:
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            if isinstance(key_node, yaml.ScalarNode) and key_node.value == key:
                return value_node
    return None


def dotted(where: str, key: str) -> str:
    """The label of key `key` of the mapping at `where` (e.g. "deployments[0].gpus")."""
    return f"{where}.{key}"


def did_you_mean(key: str, allowed: tuple[str, ...] | list[str]) -> str:
    close = difflib.get_close_matches(str(key), list(allowed), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def load_yaml_documents(
    path: str | Path,
    text: str,
    *,
    error: type[KvplanError] = ConfigError,
    hint: str = "write plain YAML: no !!tags; check quoting and indentation",
) -> list[tuple[Any, yaml.Node]]:
    """Parse every document of a `---`-separated YAML stream (a Kubernetes manifest with a ConfigMap beside the
    workload) with the same safe loader and checks as `load_yaml`; return each document's data and node tree.
    Empty documents are left out."""
    try:
        loader = _LOADER(text)
    except yaml.reader.ReaderError as exc:
        raise error(_reader_message(path, text, exc), hint="remove control characters from the file") from None
    out: list[tuple[Any, yaml.Node]] = []
    try:
        while loader.check_node():
            node = loader.get_node()
            if node is None:
                continue
            _refuse_duplicates(path, node, error)
            out.append((loader.construct_document(node), node))
    except yaml.reader.ReaderError as exc:
        raise error(_reader_message(path, text, exc), hint="remove control characters from the file") from None
    except yaml.YAMLError as exc:
        raise error(_yaml_message(path, exc), hint=hint) from None
    except RecursionError:
        raise error(f"{path}: YAML nested too deeply", hint="these files are shallow mappings") from None
    finally:
        loader.dispose()
    return out
