"""The built-in catalog: real Hugging Face `config.json` files shipped inside the package.

Each model is one file, `<org>__<name>.json`, whose catalog name is the Hub repo id `<org>/<name>`; where
each file came from is in `SOURCES.md` and `SOURCES-2026.md` next to them. `aliases.json` names the same layouts
under the names people type (`Qwen/Qwen3.6-27B` for NVIDIA's NVFP4 stand-in, `-Instruct` releases), each with
the config it reads and why; `quantized_build` matches `-FP8` / `-AWQ` / `-NVFP4` / ... builds of a catalog
model by name. The files are found through `importlib.resources`, so
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
_ALIASES = "aliases.json"
# Name endings of quantized builds (`RedHatAI/Llama-3.1-8B-Instruct-FP8-dynamic`, `Qwen/Qwen3-8B-AWQ`): the
# layout is the catalog model's, the quantization is not known (longest first; matched case-insensitively).
QUANTIZED_SUFFIXES = (
    "-fp8-dynamic",
    "-gptq-int4",
    "-gptq-int8",
    "-awq-int4",
    "-w4a16",
    "-w8a8",
    "-nvfp4",
    "-mxfp4",
    "-int4",
    "-int8",
    "-fp8",
    "-fp4",
    "-awq",
)


@dataclass(frozen=True)
class Alias:
    """Another name for a catalog layout: `config` is the catalog name read; `drop_quantization` removes that
    config's quantization_config; `weights_unknown`: the alias is a quantized build whose quantization the
    catalog lacks (weights not counted); `source`: why the layout is the same."""

    name: str
    config: str
    drop_quantization: bool
    weights_unknown: bool
    source: str


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


def aliases() -> list[Alias]:
    """Every alias of `aliases.json`, sorted case-insensitively by name."""
    data = json.loads((catalog_dir() / _ALIASES).read_text(encoding="utf-8"))
    found = [
        Alias(
            name=a["name"],
            config=a["config"],
            drop_quantization=bool(a["drop_quantization"]),
            weights_unknown=a["weights"] == "unknown",
            source=a["source"],
        )
        for a in data["aliases"]
    ]
    return sorted(found, key=lambda a: a.name.lower())


def alias_matches(query: str) -> list[Alias]:
    """The aliases `query` designates, case-insensitively: a full name, or the part after the slash."""
    wanted = query.lower()
    every = aliases()
    if "/" in query:
        return [a for a in every if a.name.lower() == wanted]
    return [a for a in every if a.name.split("/", 1)[1].lower() == wanted]


def quantized_build(query: str) -> tuple[str, str] | None:
    """(catalog name, suffix) when `query` is a quantized build of one catalog model or alias by its name
    (`org/Llama-3.1-8B-FP8` -> `meta-llama/Llama-3.1-8B`), else None (also when the stem is ambiguous)."""
    short = query.rsplit("/", 1)[-1]
    lowered = short.lower()
    for suffix in QUANTIZED_SUFFIXES:
        if lowered.endswith(suffix) and len(short) > len(suffix):
            stem = short[: -len(suffix)]
            names = {name for name, _ in matches(stem)} | {a.config for a in alias_matches(stem)}
            if len(names) == 1:
                return names.pop(), short[-len(suffix) :]
            return None
    return None


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
