"""Shared fixtures: model configs copied from the project's collection (tests/fixtures/configs)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent / "fixtures"
CONFIGS = FIXTURES / "configs"


def config_path(name: str) -> Path:
    """A fixture config by file stem, looked up in configs/, configs/extra/ and configs/synthetic/."""
    for folder in (CONFIGS, CONFIGS / "extra", CONFIGS / "synthetic"):
        path = folder / f"{name}.json"
        if path.exists():
            return path
    raise FileNotFoundError(name)


def load_config(name: str) -> dict:
    return json.loads(config_path(name).read_text())


def all_config_names() -> list[str]:
    return sorted(p.stem for p in CONFIGS.glob("*.json"))


@pytest.fixture(autouse=True)
def _wide_terminal(monkeypatch):
    """Rich wraps to the terminal width; tests read output, so give them a wide, stable one."""
    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.setenv("NO_COLOR", "1")
