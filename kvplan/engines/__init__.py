"""Engine models: how each inference engine stores a model's caches (its storage model, kvplan.engines.base) and
how it serves (its serving model, kvplan.engines.serving), one module per engine, listed in
kvplan.engines.registry. `get_engine(name, shape)` picks a storage model."""

from __future__ import annotations

from kvplan.engines.base import Engine, KindCost, Request, pipeline_stages
from kvplan.engines.entry import ConfigVocabulary, EngineEntry
from kvplan.engines.registry import (
    DEFAULT_ENGINE,
    canonical_engine,
    engine_entry,
    entries,
    get_engine,
    lookup,
    register,
    unregister,
)

__all__ = [
    "DEFAULT_ENGINE",
    "ConfigVocabulary",
    "Engine",
    "EngineEntry",
    "KindCost",
    "Request",
    "canonical_engine",
    "engine_entry",
    "entries",
    "get_engine",
    "lookup",
    "pipeline_stages",
    "register",
    "unregister",
]
