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


# Catalog configs whose family reader has not landed yet (issue 12), by the family that will read them. Tests
# that walk the catalog leave these out (`all_config_names`); each family's change deletes its names here, and
# `tests/core/test_every_config.py` checks that none of them is read silently as something else meanwhile.
PENDING_FAMILIES: dict[str, str] = {
    "LiquidAI__LFM2.5-VL-1.6B": "lfm2",
    "MiniMaxAI__MiniMax-M2.5": "minimax_m2",
    "MiniMaxAI__MiniMax-M2.7": "minimax_m2",
    "MiniMaxAI__MiniMax-M3": "minimax_m3",
    "Qwen__Qwen3-VL-30B-A3B-Instruct": "qwen3_vl_moe",
    "Qwen__Qwen3-VL-32B-Instruct": "qwen3_vl",
    "Qwen__Qwen3.5-122B-A10B": "qwen3_5_moe",
    "Qwen__Qwen3.5-27B": "qwen3_5",
    "Qwen__Qwen3.5-35B-A3B": "qwen3_5_moe",
    "Qwen__Qwen3.5-397B-A17B": "qwen3_5_moe",
    "Qwen__Qwen3.5-9B": "qwen3_5",
    "Qwen__Qwen3.6-35B-A3B": "qwen3_5_moe",
    "Qwen__Qwen3.8-2.4T-A95B": "qwen3_5_moe",
    "nvidia__Qwen3.6-27B-NVFP4": "qwen3_5",
    "XiaomiMiMo__MiMo-V2-Flash": "mimo_v2_flash",
    "meta-llama__Llama-4-Maverick-17B-128E-Instruct": "llama4_text (weights layout)",
    "meta-llama__Llama-4-Scout-17B-16E-Instruct": "llama4_text (weights layout)",
    "HuggingFaceTB__SmolLM3-3B": "smollm3 (weights layout)",
    "deepseek-ai__DeepSeek-V3.2": "deepseek_v32",
    "deepseek-ai__DeepSeek-V3.2-Exp": "deepseek_v32",
    "google__gemma-4-26B-A4B": "gemma4",
    "nvidia__Gemma-4-31B-IT-NVFP4": "gemma4",
    "mistralai__Devstral-2-123B-Instruct": "ministral3",
    "mistralai__Devstral-Small-2-24B-Instruct": "ministral3",
    "moonshotai__Kimi-K2.5": "kimi_k25 (weights of the wrapper)",
    "moonshotai__Kimi-K2.6": "kimi_k25 (weights of the wrapper)",
    "moonshotai__Kimi-K3": "kimi_k3",
    "nvidia__NVIDIA-Nemotron-3-Nano-30B-A3B-BF16": "nemotron_h",
    "nvidia__NVIDIA-Nemotron-3-Super-120B-A12B-FP8": "nemotron_h",
    "nvidia__NVIDIA-Nemotron-3-Ultra-550B-A55B-BF16": "nemotron_h",
    "nvidia__Nemotron-H-56B-Base-8K": "nemotron_h",
    "tencent__Hunyuan-A13B": "hunyuan",
    "zai-org__GLM-4.5": "glm4_moe (weights layout)",
    "zai-org__GLM-5": "glm_moe_dsa",
    "zai-org__GLM-5.1": "glm_moe_dsa",
    "zai-org__GLM-5.2": "glm_moe_dsa",
}


def all_config_names(*, pending: bool = False) -> list[str]:
    """Every catalog config's file stem (with `pending`, also those in PENDING_FAMILIES)."""
    names = sorted(p.stem for p in catalog_dir().glob("*.json"))
    return names if pending else [n for n in names if n not in PENDING_FAMILIES]


@pytest.fixture(autouse=True)
def _wide_terminal(monkeypatch):
    """Rich wraps to the terminal width; tests read output, so give them a wide, stable one."""
    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.setenv("NO_COLOR", "1")
