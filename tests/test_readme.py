"""The README's claims hold: the test command is CI's (plus PyTorch's CPU index), the naive-formula ratios are
the ones kvplan prints, the catalog and profile counts are the shipped ones, and no placeholder TAG/OWNER is
left in the install snippets."""

from __future__ import annotations

import re
from pathlib import Path

import kvplan
from kvplan.sources.catalog import catalog_names
from kvplan.sources.hardware import list_profiles

ROOT = Path(__file__).parents[1]
README = (ROOT / "README.md").read_text()
CPU_INDEX = " --index-url https://download.pytorch.org/whl/cpu"


def test_the_readme_test_command_is_cis_with_the_cpu_index():
    ci = (ROOT / ".ci" / "run").read_text()
    install = re.search(r"^python3 -m venv \.venv && \.venv/bin/pip install -q torch==2\.13\.0 .*$", ci, re.M)
    assert install is not None
    ci_install = install.group(0).replace(" -q", "")
    readme_line = next(line for line in README.splitlines() if line.startswith("python3 -m venv") and "torch" in line)
    assert CPU_INDEX in readme_line
    assert readme_line.replace(CPU_INDEX, "").startswith(ci_install)


def test_naive_formula_ratios():
    llama = kvplan.estimate("meta-llama/Meta-Llama-3-8B", seq_len=32768, offline=True)
    naive = kvplan.estimate("meta-llama/Meta-Llama-3-8B", seq_len=32768, engine="naive", offline=True)
    assert naive.kv_cache_bytes / llama.kv_cache_bytes == 4.0 and "4× high on\nLlama-3-8B" in README
    dsv3 = kvplan.estimate("deepseek-ai/DeepSeek-V3", seq_len=32768, offline=True)
    naive = kvplan.estimate("deepseek-ai/DeepSeek-V3", seq_len=32768, engine="naive", offline=True)
    assert round(naive.kv_cache_bytes / dsv3.kv_cache_bytes) == 25 and "25× high on DeepSeek-V3" in README


def test_counts_and_pins():
    assert f"`kvplan models`, {len(catalog_names())} real configs" in README
    assert f"{len(list_profiles(None))} accelerators" in README
    for text in (README, (ROOT / "examples" / "github-actions" / "kvplan-check.yml").read_text()):
        assert "OWNER" not in text and "@TAG" not in text and "rev: TAG" not in text
