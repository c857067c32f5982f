"""The built-in catalog: real Hugging Face `config.json` files shipped inside the package.

Each model is one file, `<org>__<name>.json`, whose catalog name is the Hub repo id `<org>/<name>`; where
each file came from is in `SOURCES.md` next to them. The files are found through `importlib.resources`, so
they load from a source checkout and from an installed wheel alike. Pure Python (json, importlib); this
module imports nothing else from kvplan.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

_SUFFIX = ".json"
_SEPARATOR = "__"  # file name `<org>__<name>.json` <-> catalog name `<org>/<name>`


@dataclass(frozen=True)
class CatalogEntry:
    """One catalog model: its name (a Hub repo id), the outer `model_type` of its config, and the file."""

    name: str
    model_type: str | None
    path: Path


def catalog_dir() -> Path:
    """The folder that holds the catalog's JSON files (inside the installed package)."""
    return Path(str(resources.files(__name__)))


def catalog_names() -> list[str]:
    """Every catalog name, sorted case-insensitively (e.g. `meta-llama/Llama-3.1-8B`)."""
    return sorted(_files_by_name(), key=str.lower)


def catalog_path(name: str) -> Path | None:
    """The config file for catalog name `name` (exact match, case-insensitive), or None."""
    return _files_by_name_lower().get(name.lower())


def matches(query: str) -> list[tuple[str, Path]]:
    """The catalog models that `query` designates, as (name, file) pairs, case-insensitively.

    A full name (`meta-llama/Llama-3.1-8B`) matches itself; a short name without a slash (`Llama-3.1-8B`)
    matches every model whose part after the slash equals it, so more than one result means ambiguous.
    """
    wanted = query.lower()
    files = _files_by_name()
    exact = [name for name in files if name.lower() == wanted]
    if exact or "/" in query:
        return [(name, files[name]) for name in exact]
    return sorted((name, path) for name, path in files.items() if name.split("/", 1)[1].lower() == wanted)


def catalog_entries() -> list[CatalogEntry]:
    """Every catalog model with its outer `model_type` (None where the config has none), sorted by name."""
    files = _files_by_name()
    return [CatalogEntry(name, _model_type(files[name]), files[name]) for name in catalog_names()]


def _files_by_name() -> dict[str, Path]:
    folder = catalog_dir()
    return {
        path.name[: -len(_SUFFIX)].replace(_SEPARATOR, "/", 1): path
        for path in folder.glob(f"*{_SEPARATOR}*{_SUFFIX}")
        if path.is_file()
    }


def _files_by_name_lower() -> dict[str, Path]:
    return {name.lower(): path for name, path in _files_by_name().items()}


def _model_type(path: Path) -> str | None:
    value = json.loads(path.read_text(encoding="utf-8")).get("model_type")
    return value if isinstance(value, str) else None
