"""Tables that survive CI logs: in a pipe (COLUMNS unset, not a TTY: Rich's 80 columns) no name or id a user
copies is cut with "…" or broken over lines in `kvplan models`, `kvplan profiles list` and `kvplan check`; the
other columns wrap, and a table is printed wider than 80 columns only when even that cannot fit the ids."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from kvplan.sources.catalog import catalog_names
from kvplan.sources.hardware import list_profiles

ROOT = Path(__file__).parents[1]


def _piped(*args: str, columns: str | None = None) -> str:
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    env.update(PYTHONPATH=str(ROOT), NO_COLOR="1", HF_HUB_OFFLINE="1")
    if columns is not None:
        env["COLUMNS"] = columns
    done = subprocess.run(
        [sys.executable, "-m", "kvplan", *args], capture_output=True, text=True, env=env, cwd=ROOT, timeout=120
    )
    assert done.returncode in (0, 1), done.stderr
    return done.stdout


def _widest(text: str) -> int:
    return max(len(line) for line in text.splitlines())


@pytest.mark.parametrize("columns", [None, "60"])
def test_models_names_whole(columns):
    out = _piped("models", columns=columns)
    assert "…" not in out
    missing = [name for name in catalog_names() if name not in out]
    assert missing == []
    if columns is None:
        assert _widest(out) <= 80


@pytest.mark.parametrize("columns", [None, "50"])
def test_profiles_ids_whole(columns):
    out = _piped("profiles", "list", columns=columns)
    assert "…" not in out
    assert [p.id for p in list_profiles(None) if p.id not in out] == []
    if columns is None:
        assert _widest(out) <= 80


def test_check_table_keeps_deployment_model_and_gpu_whole(tmp_path):
    plan = tmp_path / "plan.yaml"
    models = ["meta-llama/Llama-3.1-8B", "mistralai/Mistral-7B-v0.1", "nvidia/NVIDIA-Nemotron-3-Nano-30B-A3B-BF16"]
    lines = ["deployments:"]
    for i, model in enumerate(models):
        lines += [f"  - name: a-rather-long-deployment-name-{i}", f"    model: {model}", "    gpu: h100-pcie-80gb"]
        lines += ["    max_model_len: 8192"]
    plan.write_text("\n".join(lines) + "\n")
    out = _piped("check", str(plan), "--offline")
    assert "…" not in out
    for i, model in enumerate(models):
        assert f"a-rather-long-deployment-name-{i}" in out and model in out
    assert out.count("h100-pcie-80gb") == len(models)
    assert _widest(out) <= 80
