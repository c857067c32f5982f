"""Shared fixtures. Real model configs are read through the built-in catalog (kvplan/sources/catalog), the
same files users get; configs kept only for tests lie in fixtures/extra_configs (real, with SOURCES.md) and
fixtures/synthetic_configs (small hand-made ones for families the catalog lacks)."""

from __future__ import annotations

import functools
import json
import os
from pathlib import Path

import pytest

from kvplan.sources.catalog import catalog_dir

TESTS = Path(__file__).parent
ROOT = TESTS.parent
FIXTURES = TESTS / "fixtures"
EXTRA = FIXTURES / "extra_configs"
SYNTHETIC = FIXTURES / "synthetic_configs"


# A two-layer llama config for weight arithmetic by hand (tests/weights).
TINY_LLAMA = {
    "model_type": "llama",
    "hidden_size": 256,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "num_hidden_layers": 2,
    "intermediate_size": 512,
    "vocab_size": 1000,
    "torch_dtype": "bfloat16",
}


def config_path(name: str) -> Path:
    """A config by file stem (`meta-llama__Llama-3.1-8B`): the catalog, then the extra and synthetic fixtures
    (`synthetic/NAME` names a synthetic one only)."""
    if name.startswith("synthetic/"):
        name = name.removeprefix("synthetic/")
        folders: tuple[Path, ...] = (SYNTHETIC,)
    else:
        folders = (catalog_dir(), EXTRA, SYNTHETIC)
    for folder in folders:
        path = folder / f"{name}.json"
        if path.exists():
            return path
    raise FileNotFoundError(name)


def load_config(name: str) -> dict:
    return json.loads(config_path(name).read_text())


# Catalog configs some catalog-walking test cannot take yet, by family (none today: MiniMax-M3's reader landed,
# issue 12). Tests that walk the catalog leave these out (`all_config_names`); tests/core/test_every_config.py reads
# every config, these included, and holds each to "read by its family or refused by name".
PENDING_FAMILIES: dict[str, str] = {}


def all_config_names(*, pending: bool = False) -> list[str]:
    """Every catalog config's file stem (with `pending`, also those in PENDING_FAMILIES)."""
    names = sorted(p.stem for p in catalog_dir().glob("*__*.json"))
    return names if pending else [n for n in names if n not in PENDING_FAMILIES]


@pytest.fixture(autouse=True)
def _wide_terminal(monkeypatch):
    """Rich wraps to the terminal width; tests read output, so give them a wide, stable one."""
    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.setenv("NO_COLOR", "1")


# The meta-device comparisons (`slow`) of every catalog config take longer than CI's 20 minutes on 2 cores. The
# default run keeps, per family, its smallest catalog config (and every synthetic one), which exercises each
# family's reader and weights layout against transformers; the other catalog configs, and every config above
# HEAVY_PARAMETERS (minutes each: hundreds of thousands of modules on the meta device), are marked `heavy`.
# `pytest -m heavy` runs those; `pytest -m slow` runs all of them.
HEAVY_PARAMETERS = 150_000_000_000
# Slow tests that do not take a catalog config by `name` but build a heavy one themselves.
HEAVY_TESTS = {"test_deepseek_v4_bytes_match_transformers_tensors", "test_kimi_k3_text_layout_equals_real_cache_bytes"}


@functools.cache
def _kept_per_family() -> frozenset[str]:
    """The smallest catalog config of each family (by kvplan's parameter count), when below HEAVY_PARAMETERS."""
    from kvplan.core.config import text_config
    from kvplan.core.families import canonical_model_type
    from kvplan.errors import READ_ERRORS
    from kvplan.weights.tensors import count_parameters

    smallest: dict[str, tuple[int, str]] = {}
    for name in all_config_names(pending=True):
        config = load_config(name)
        try:
            params = count_parameters(config)
        except READ_ERRORS:
            params = HEAVY_PARAMETERS  # not countable: treat as big (it is still read by the fast tests)
        family = canonical_model_type(str(text_config(config).get("model_type")))
        if family not in smallest or params < smallest[family][0]:
            smallest[family] = (params, name)
    return frozenset(name for params, name in smallest.values() if params < HEAVY_PARAMETERS)


def _heavy(name: str) -> bool:
    stem = name.removeprefix("text-only ")
    if stem.startswith("synthetic/"):
        return False
    try:
        load_config(stem)
    except FileNotFoundError:
        return False
    return stem not in _kept_per_family()


def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.get_closest_marker("slow") is None:
            continue
        name = getattr(getattr(item, "callspec", None), "params", {}).get("name")
        if item.originalname in HEAVY_TESTS or (isinstance(name, str) and _heavy(name)):
            item.add_marker(pytest.mark.heavy)


# Engine source trees that tests citing file:line check their citations against; absent on CI, where those checks
# skip. vllm-X: `pip download --no-deps --no-binary :all: --no-clean vllm==X` (the unpacked sdist); sglang-0.5.23:
# the wheel unzipped; llama.cpp-0c1e57098: vendor/llama.cpp of the llama-cpp-python 0.3.36 sdist (that commit);
# TensorRT-LLM-<commit>, sglang-Fridge003-<commit>: the files at that commit of the repository.
ENGINE_SOURCES = Path(os.environ.get("KVPLAN_ENGINE_SOURCES", "/work/src"))


def check_cited_line(source: Path, line: int, text: str) -> None:
    """Line `line` (1-based) of the engine file `source` holds `text`; skip when that source is not on this machine."""
    if not source.exists():
        pytest.skip(f"{source} is not on this machine")
    assert text in source.read_text().splitlines()[line - 1]


def check_quoted_text(source: Path, text: str) -> None:
    """The engine file `source` holds `text` somewhere (a quote whose line kvplan could not count at that commit);
    skip when that source is not on this machine."""
    if not source.exists():
        pytest.skip(f"{source} is not on this machine")
    assert text in source.read_text()
