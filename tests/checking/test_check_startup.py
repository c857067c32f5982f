"""`kvplan check` and vLLM's start-up checks (kvplan.engines.vllm.startup): a plan that fits but that the release
would refuse to start is "does not fit" (exit 1), binding constraint `startup`, with a fix that re-checks clean."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

from typer.testing import CliRunner

from kvplan.checking.check import CONSTRAINTS
from kvplan.cli import app

runner = CliRunner()

HYBRID = """
deployments:
  - name: next
    model: Qwen/Qwen3-Next-80B-A3B
    gpu: rtx-a6000
    gpus: 4
    tensor_parallel_size: 4
    max_model_len: 32768
    gpu_memory_utilization: 0.88
"""


def check_json(tmp_path: Path, body: str, name: str = "kvplan.yaml") -> tuple[int, dict]:
    path = tmp_path / name
    path.write_text(textwrap.dedent(body).lstrip("\n"))
    result = runner.invoke(app, ["check", str(path), "--json"], env={"HF_HUB_OFFLINE": "1"})
    assert result.exit_code in (0, 1), result.output
    return result.exit_code, json.loads(result.stdout)


def test_startup_is_a_constraint():
    assert "startup" in CONSTRAINTS


def test_mamba_blocks_failure_is_startup_bound_and_the_max_num_seqs_fix_rechecks_clean(tmp_path):
    """vllm-0.20.0/vllm/config/compilation.py:1427-1442 (0.33.0: :1517-1532). The plan sets no max_num_seqs: vLLM
    runs with its default (256 on a 48 GB GPU, engine/arg_utils.py), above the 228 Mamba cache blocks (238 before vLLM's 32 MiB rope table joined the budget). The fix is
    vLLM's own ("Please lower max_num_seqs to at most 228"): max_num_seqs is a cap, so it is the block count, not
    the 1.x requests of max_model_len that fit at once (the plan asks for one: vLLM starts with a cap above the
    KV-limited concurrency, kv_cache_planning.py:151-195)."""
    code, data = check_json(tmp_path, HYBRID)
    row = data["deployments"][0]
    assert code == 1 and not row["ok"] and row["fits"] is False
    assert row["binding_constraint"] == "startup"
    assert "max_num_seqs (256) exceeds available Mamba cache blocks (228)" in row["binding_detail"]
    fixes = {f["key"]: f["value"] for f in row["fix"]}
    assert fixes == {"max_num_seqs": 228}
    assert int(row["max_concurrency"]) < 228 and row["required_concurrency"] == 1
    fixed = HYBRID + f"    max_num_seqs: {fixes['max_num_seqs']}\n"
    code, data = check_json(tmp_path, fixed, "fixed.yaml")
    assert code == 0 and data["deployments"][0]["binding_constraint"] is None
    assert data["deployments"][0]["recommend"]["startup_error"] is None


def test_plan_max_model_len_auto(tmp_path):
    """max_model_len: auto in a plan is vLLM's auto-fit (the longest that fits, up to the model's limit)."""
    body = """
    deployments:
      - name: chat
        model: meta-llama/Llama-3.1-8B
        gpu: 24gb
        max_model_len: auto
    """
    code, data = check_json(tmp_path, body)
    row = data["deployments"][0]
    assert code == 0 and row["ok"] and 0 < row["max_model_len"] < 131072
    assert row["max_model_len"] == row["max_model_len_fit"]
