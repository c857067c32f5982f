"""Shared fixtures. Real model configs are read through the built-in catalog (kvplan/sources/catalog), the
same files users get; configs kept only for tests lie in fixtures/extra_configs (real, with SOURCES.md) and
fixtures/synthetic_configs (small hand-made ones for families the catalog lacks)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kvplan.sources.catalog import catalog_dir

TESTS = Path(__file__).parent
ROOT = TESTS.parent
FIXTURES = TESTS / "fixtures"
EXTRA = FIXTURES / "extra_configs"
SYNTHETIC = FIXTURES / "synthetic_configs"


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


# Catalog configs some catalog-walking test cannot take yet (issue 12), by what they lack: Kimi-K3 has no weights
# layout (transformers cannot build it), MiniMax-M3 is refused by name (its index-key cache is not read). Tests that
# walk the catalog leave these out (`all_config_names`); tests/core/test_every_config.py reads every config,
# these included, and holds each to "read by its family or refused by name".
PENDING_FAMILIES: dict[str, str] = {
    "MiniMaxAI__MiniMax-M3": "minimax_m3",
    "moonshotai__Kimi-K3": "kimi_k3 (weights layout)",
}


def all_config_names(*, pending: bool = False) -> list[str]:
    """Every catalog config's file stem (with `pending`, also those in PENDING_FAMILIES)."""
    names = sorted(p.stem for p in catalog_dir().glob("*__*.json"))
    return names if pending else [n for n in names if n not in PENDING_FAMILIES]


@pytest.fixture(autouse=True)
def _wide_terminal(monkeypatch):
    """Rich wraps to the terminal width; tests read output, so give them a wide, stable one."""
    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.setenv("NO_COLOR", "1")


# Slow tests of the largest configs (more than HEAVY_PARAMETERS parameters: DeepSeek V3/V4, Kimi, GLM-5, Qwen3.5-397B,
# Qwen3.8, Llama-3.1-405B, ...) build hundreds of thousands of modules on the meta device: minutes each. They are
# marked `heavy` and left out of the default run, which must fit CI's 20 minutes on 2 cores; `pytest -m heavy`
# (or `-m slow`, which includes them) runs them. The same families' smaller configs and synthetic ones stay in.
HEAVY_PARAMETERS = 150_000_000_000
# Slow tests that do not take a catalog config by `name` but build a heavy one themselves.
HEAVY_TESTS = {"test_deepseek_v4_bytes_match_transformers_tensors", "test_kimi_k3_text_layout_equals_real_cache_bytes"}


def _heavy(name: str) -> bool:
    from kvplan.errors import READ_ERRORS
    from kvplan.weights.tensors import count_parameters

    try:
        return count_parameters(load_config(name.split("/")[-1].removeprefix("text-only "))) > HEAVY_PARAMETERS
    except (FileNotFoundError, *READ_ERRORS):
        return False


def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.get_closest_marker("slow") is None:
            continue
        name = getattr(getattr(item, "callspec", None), "params", {}).get("name")
        if item.originalname in HEAVY_TESTS or (isinstance(name, str) and _heavy(name)):
            item.add_marker(pytest.mark.heavy)
