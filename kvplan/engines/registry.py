"""The engines kvplan knows: one line each in BUILTIN. Every list of engines in kvplan derives from here.

Each engine's module builds its own `EngineEntry` (kvplan.engines.entry): its names, its storage model, its
serving model and the vocabulary of its config files. Adding an engine is its module and one line below (or, at
run time, `register(entry)`); kvplan estimate, recommend, check, plan files, engine configs, lint, the CLI's help
and render all ask the registry, never an engine's name.

Lists come in registry order; lookups take any spelling (`canonical_engine`: case-insensitive, aliases).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from kvplan.core.shapes import ModelShape
from kvplan.engines import lightllm, llamacpp, naive, sglang, tensorrt_llm, tgi, transformers, vllm, xinference
from kvplan.engines.base import Engine
from kvplan.engines.entry import ConfigVocabulary, EngineEntry
from kvplan.engines.serving import ServingModel
from kvplan.errors import Text, UsageError

BUILTIN: tuple[EngineEntry, ...] = (
    vllm.ENTRY,
    sglang.ENTRY,
    transformers.ENTRY,
    transformers.STATIC_ENTRY,
    llamacpp.ENTRY,
    tensorrt_llm.ENTRY,
    lightllm.ENTRY,
    tgi.ENTRY,
    xinference.ENTRY,
    naive.ENTRY,
)
DEFAULT_ENGINE = vllm.ENTRY.name  # what estimate, recommend and plan files use when no engine is named

_ENTRIES: dict[str, EngineEntry] = {}


def _spellings(entry: EngineEntry) -> set[str]:
    return {entry.name, *entry.aliases}


def register(entry: EngineEntry) -> EngineEntry:
    """Add an engine (last in every list). Its name and aliases must be new, and `stores_like` a known engine."""
    taken = {s for e in _ENTRIES.values() for s in _spellings(e)}
    clash = sorted(s for s in _spellings(entry) if s.strip().lower() != s or s in taken)
    if clash:
        raise ValueError(f"engine {entry.name!r}: {', '.join(clash)} already taken or not lower case")
    if entry.stores_like is not None and lookup(entry.stores_like) is None:
        raise ValueError(f"engine {entry.name!r} stores like unknown engine {entry.stores_like!r}")
    if entry.storage is not None and entry.stores_like is not None:
        raise ValueError(f"engine {entry.name!r} has a storage model and stores_like")
    if isinstance(entry.serving, ServingModel) and entry.storage is None and entry.stores_like is None:
        raise ValueError(f"engine {entry.name!r} has a serving model but nothing sizes its caches")
    _ENTRIES[entry.name] = entry
    return entry


def unregister(name: str) -> EngineEntry:
    """Remove an engine (by any spelling); returns its entry."""
    entry = engine_entry(name)
    del _ENTRIES[entry.name]
    return entry


def entries(where: Callable[[EngineEntry], bool] | None = None) -> tuple[EngineEntry, ...]:
    """Every registered engine (those `where` accepts), in registry order."""
    return tuple(e for e in _ENTRIES.values() if where is None or where(e))


def names(where: Callable[[EngineEntry], bool] | None = None) -> tuple[str, ...]:
    return tuple(e.name for e in entries(where))


def canonical_engine(name: str) -> str:
    """An engine's name as kvplan spells it (`llama.cpp` -> `llamacpp`, `trtllm` -> `tensorrt-llm`); an unknown
    name comes back lower-cased."""
    key = str(name).strip().lower()
    for entry in _ENTRIES.values():
        if key in entry.aliases:
            return entry.name
    return key


def lookup(name: str) -> EngineEntry | None:
    """The entry of `name` (any spelling), or None."""
    return _ENTRIES.get(canonical_engine(name))


def engine_entry(name: str) -> EngineEntry:
    """The entry of `name` (any spelling); a UsageError naming the engines for an unknown one."""
    entry = lookup(name)
    if entry is None:
        raise UsageError(f"unknown engine {name!r}", hint="use one of: " + ", ".join(names()))
    return entry


# ------------------------------------------------------------------------------------------------ the lists


def _sized(e: EngineEntry) -> bool:
    return isinstance(e.serving, ServingModel)


def estimate_engines() -> tuple[str, ...]:
    """Engines with a storage model of their own: what `kvplan estimate --engine` takes."""
    return names(lambda e: e.storage is not None)


def sized_engines() -> tuple[str, ...]:
    """Engines with a serving model (budget and fit): what `kvplan recommend` and `kvplan check` size."""
    return names(_sized)


def command_engines() -> tuple[str, ...]:
    """Engines whose serve command every plan prints (Recommendation.flags)."""
    return names(lambda e: e.serving is not None)


def plan_engines() -> tuple[str, ...]:
    """Engines a plan file's `engine:` may name."""
    return names(lambda e: e.plannable)


def config_kinds() -> tuple[str, ...]:
    """Engines whose own config files `kvplan check --engine-config` reads."""
    return names(lambda e: e.config is not None)


def config_vocabulary(kind: str) -> ConfigVocabulary | None:
    entry = lookup(kind)
    return None if entry is None else entry.config


def detect_config_kind(keys: set[str]) -> str:
    """The engine whose config file has these (normalised) keys: the first whose vocabulary detects them, the
    more specific (higher priority) first; else the fallback kind."""
    kinds = sorted(entries(lambda e: e.config is not None), key=lambda e: -e.config.priority)  # type: ignore[union-attr]
    for entry in kinds:
        if entry.config.detect(keys):  # type: ignore[union-attr]
            return entry.name
    return next(e.name for e in kinds if e.config.fallback)  # type: ignore[union-attr]


def listed(items: tuple[str, ...] | list[str], last: str = "or") -> str:
    """Names in a sentence: `a, b or c`."""
    items = list(items)
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + f" {last} " + items[-1] if items else ""


# ----------------------------------------------------------------------------------------- one engine's parts


def get_engine(name: str, shape: ModelShape, options: Mapping[str, Any] | None = None) -> Engine:
    """The storage model of `name` for `shape`, for `kvplan estimate` (engines with a storage model of their own),
    built with the storage settings `options` gives (None values: not given) where its entry takes them
    (`EngineEntry.storage_options`); a setting it does not take is refused by name."""
    entry = lookup(name)
    if entry is None or entry.storage is None:
        raise UsageError(f"unknown engine {name!r}", hint="use one of: " + ", ".join(estimate_engines()))
    given = {key: value for key, value in (options or {}).items() if value is not None}
    if not given:
        return entry.storage(shape)
    fields = sorted(given)
    if not set(fields) <= entry.storage_options or entry.configured_storage is None:
        takers = list(names(lambda e: set(fields) <= e.storage_options))
        flags = listed(["{" + f + "}" for f in fields], "and")
        raise UsageError(
            Text(flags + " does not apply to {which}", which=entry.name),
            hint=Text("use it with {engine} " + listed(takers) if takers else "drop " + flags),
            field=fields[0],
        )
    return entry.configured_storage(shape, given)


def storage_entry(name: str) -> EngineEntry | None:
    """The entry whose storage model sizes `name`: its own, or the one it `stores_like`; None when neither."""
    entry = lookup(name)
    if entry is not None and entry.storage is None and entry.stores_like is not None:
        entry = lookup(entry.stores_like)
    return entry if entry is not None and entry.storage is not None else None


def storage_for(name: str, shape: ModelShape) -> Engine | None:
    """The storage model that sizes `name`'s caches for `shape` (see storage_entry), or None."""
    entry = storage_entry(name)
    return None if entry is None else entry.storage(shape)  # type: ignore[misc]


def sizing_storage(name: str, shape: ModelShape) -> Engine:
    """The storage model behind an engine with a serving model (register() makes sure there is one)."""
    storage = storage_for(name, shape)
    if storage is None:
        raise UsageError(f"engine {name!r} has no storage model to size its caches", hint="register one with it")
    return storage


def serving_model(name: str) -> ServingModel | None:
    """The serving model of `name` when kvplan models its budget, else None."""
    entry = lookup(name)
    return entry.serving if entry is not None and isinstance(entry.serving, ServingModel) else None


def engine_kv_dtype(name: str, requested: str | None, resolved: str) -> str:
    """The KV dtype engine `name` really uses for `--kv-dtype requested` (EngineEntry.kv_dtype)."""
    return engine_entry(name).kv_dtype(requested, resolved)


def flag_key(name: str) -> str:
    """The key of `name`'s command in Recommendation.flags (`llama.cpp` for llamacpp)."""
    entry = lookup(name)
    return canonical_engine(name) if entry is None else entry.flag_key


for _entry in BUILTIN:
    register(_entry)

__all__ = [
    "BUILTIN",
    "DEFAULT_ENGINE",
    "canonical_engine",
    "command_engines",
    "config_kinds",
    "config_vocabulary",
    "detect_config_kind",
    "engine_entry",
    "engine_kv_dtype",
    "entries",
    "estimate_engines",
    "flag_key",
    "get_engine",
    "listed",
    "lookup",
    "names",
    "plan_engines",
    "register",
    "serving_model",
    "sized_engines",
    "sizing_storage",
    "storage_entry",
    "storage_for",
    "unregister",
]
