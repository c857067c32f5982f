"""`kvplan recommend`: the per-GPU KV budget, vLLM capacity from it, fit and flags, checked against real logs
(tests/fixtures/calibration, llm-d vLLM 0.19 on H100 80GB)."""

from __future__ import annotations

import json

import pytest
import yaml
from typer.testing import CliRunner

from conftest import FIXTURES
from kvplan.cli import app
from kvplan.errors import UsageError
from kvplan.recommend import recommend, sglang_mem_fraction_static

GIB = 2**30
CASES = {c["id"]: c for c in yaml.safe_load((FIXTURES / "calibration" / "engine_cases.yaml").read_text())}
runner = CliRunner()


def _rec(model, **kw):
    kw.setdefault("gpu_profile", "h100-sxm-80gb")
    return recommend(model, offline=True, **kw)


@pytest.mark.parametrize("case_id,model,blocks,tokens,concurrency", [
    ("llmd-v0190-meta-llama-llama-h100-80gb-tp1pp1dp1-8192-dtbf16", "meta-llama/Llama-3.1-8B", 29750, None, 58.11),
    ("llmd-v0190-google-gemma-2-9b-it-h100-80gb-tp1pp1dp1-8192", "google/gemma-2-9b-it", 21110, None, 20.6),
    ("llmd-v0190-meta-llama-llama-3-1-8b-h100-80gb-tp1pp1dp1-32768", "meta-llama/Llama-3.1-8B", 29751, None, 14.53),
])
def test_kv_memory_reproduces_vllm_blocks_and_concurrency(case_id, model, blocks, tokens, concurrency):
    case = CASES[case_id]
    r = case["reported"]
    assert r["kv_cache_blocks"] == blocks and r["max_concurrency"] == concurrency
    rec = _rec(model, max_model_len=case["max_model_len"], kv_memory=f"{r['available_kv_cache_gib']}GiB",
               gpu_memory_utilization=case["gpu_memory_utilization"])
    assert rec.available_kv_memory_bytes == int(r["available_kv_cache_gib"] * GIB)
    assert abs(rec.num_blocks - blocks) <= 3
    assert rec.block_size == 16
    assert abs(rec.max_concurrency - concurrency) <= 0.02
    if "llama" in model.lower():  # full attention: tokens = blocks x 16, logged value within the rounding
        assert abs(rec.kv_cache_tokens - r["kv_cache_tokens"]) <= 3 * 16
    assert rec.fits
    assert rec.max_num_seqs == min(int(concurrency), 1024)
    assert rec.max_num_batched_tokens == 8192
    assert rec.budget[0].name == "kv_memory"


def test_modelled_budget_close_to_logged_available_memory():
    """Without --kv-memory, the modelled budget (vLLM <= 0.20: no CUDA-graph term) is near the logged 58.11 GiB."""
    rec = _rec("meta-llama/Llama-3.1-8B", max_model_len=8192, gpu_memory_utilization=0.95, cudagraph_profiling=False)
    assert abs(rec.available_kv_memory_bytes / GIB - 58.11) < 0.3
    names = [t.name for t in rec.budget]
    assert names == ["total_x_utilization", "weights", "activation_peak", "non_torch"]
    assert sum(t.bytes for t in rec.budget) == rec.available_kv_memory_bytes
    with_graphs = _rec("meta-llama/Llama-3.1-8B", max_model_len=8192, gpu_memory_utilization=0.95)
    assert with_graphs.budget[-1].name == "cudagraph"
    assert 0.5 * GIB < -with_graphs.budget[-1].bytes < 1.5 * GIB


def test_tp_splits_weights_and_adds_non_torch():
    one = _rec("meta-llama/Llama-3.1-8B", max_model_len=8192, gpu_memory_utilization=0.95, cudagraph_profiling=False)
    two = _rec("meta-llama/Llama-3.1-8B", gpus=2, max_model_len=8192, gpu_memory_utilization=0.95,
               cudagraph_profiling=False)
    assert two.tp == 2 and two.weights_bytes == one.weights_bytes // 2
    assert abs(two.available_kv_memory_bytes / GIB - 63.76) < 0.4  # logged TP2 value
    assert two.num_blocks > 2 * one.num_blocks  # half the KV heads per GPU and more memory


def test_405b_on_one_l4_does_not_fit():
    rec = recommend("meta-llama/Llama-3.1-405B", gpu_profile="l4", offline=True)
    assert rec.fits is False
    assert rec.available_kv_memory_bytes == 0 and rec.num_blocks == 0 and rec.max_model_len_fit == 0
    assert rec.min_tp_to_fit is None  # not even TP 8 of L4s hold 810 GB of weights
    assert rec.max_model_len == 131072


def test_smallest_tp_and_fp8_alternative():
    rec = recommend("meta-llama/Llama-3.1-70B", gpu_profile="h100-sxm-80gb", offline=True)
    assert rec.fits is False and rec.min_tp_to_fit == 4  # 131.4 GiB of weights; TP 2 leaves < 0 GiB at 0.9
    rec = recommend("meta-llama/Llama-3.1-70B", gpu_profile="h100-sxm-80gb", gpus=1, max_model_len=8192,
                    gpu_memory_utilization=0.95, cudagraph_profiling=False, offline=True)
    assert rec.fits is False and rec.min_tp_to_fit == 2
    assert rec.fp8_kv is not None and rec.fp8_kv["fits"] is False
    rec = _rec("meta-llama/Llama-3.1-8B", max_model_len=131072, concurrency=5)
    assert rec.fits is False and rec.max_concurrency < 5
    assert rec.fp8_kv["fits"] is True and rec.fp8_kv["changes_answer"] is True
    assert rec.fp8_kv["max_concurrency"] == pytest.approx(2 * rec.max_concurrency, rel=0.01)


def test_max_model_len_fit_is_the_largest_one_request_length():
    rec = _rec("meta-llama/Llama-3.1-8B", kv_memory="1GiB", max_model_len=131072)
    # 1 GiB / 128 KiB per token (32 layers x 8 heads x 128 x 2 x 2 bytes) = 8192 tokens = 512 blocks
    assert rec.num_blocks == 512 and rec.max_model_len_fit == 8192 and not rec.fits
    assert "--max-model-len 8192" in rec.flags["vllm"]


def test_flags_for_every_engine():
    rec = _rec("meta-llama/Llama-3.1-8B", max_model_len=32768, kv_dtype="fp8")
    assert set(rec.flags) == {"vllm", "sglang", "llama.cpp", "lightllm", "tgi", "xinference"}
    assert rec.flags["vllm"].startswith("vllm serve meta-llama/Llama-3.1-8B --max-model-len 32768 --max-num-seqs ")
    assert rec.flags["vllm"].endswith("--kv-cache-dtype fp8")
    assert "--context-length 32768" in rec.flags["sglang"]
    assert f"-np {rec.max_num_seqs}" in rec.flags["llama.cpp"]
    assert f"--max_total_token_num {rec.kv_cache_tokens}" in rec.flags["lightllm"]
    assert "--max-total-tokens 32768" in rec.flags["tgi"]
    assert "max_model_len 32768" in rec.flags["xinference"]


def test_sglang_heuristic_budget():
    # 81090 MB (< 90 GB tier): reserved = 512 + 8192 x 1.5 + 256 x 2 + 1/8 x 1024 = 13440 MB -> 0.834
    assert sglang_mem_fraction_static(85028896768, 1, 1) == 0.834
    rec = _rec("meta-llama/Llama-3.1-8B", engine="sglang", max_model_len=8192)
    assert rec.block_size == 1 and rec.num_blocks == rec.kv_cache_tokens
    expected = int(85028896768 * rec.gpu_memory_utilization) - rec.weights_bytes
    assert rec.available_kv_memory_bytes == expected
    assert rec.kv_cache_tokens == expected // (128 * 1024)


def test_other_engines_refused():
    with pytest.raises(UsageError, match="recommend supports vllm and sglang for now"):
        _rec("meta-llama/Llama-3.1-8B", engine="transformers")


def test_cli_json_and_exit_codes():
    result = runner.invoke(app, ["recommend", "meta-llama/Llama-3.1-8B", "--gpu-profile", "h100-sxm-80gb",
                                 "--kv-memory", "58.11GiB", "--max-model-len", "8k", "--offline", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    for key in ("gpu_profile", "gpus", "engine", "tp", "pp", "weights_bytes", "available_kv_memory_bytes",
                "kv_cache_tokens", "num_blocks", "block_size", "max_model_len", "max_concurrency", "max_num_seqs",
                "max_num_batched_tokens", "kv_dtype", "fits", "budget", "flags"):
        assert key in data
    assert abs(data["num_blocks"] - 29750) <= 3
    bad = runner.invoke(app, ["recommend", "meta-llama/Llama-3.1-8B", "--gpu-profile", "no-such-gpu", "--offline"])
    assert bad.exit_code == 2
    table = runner.invoke(app, ["recommend", "meta-llama/Llama-3.1-405B", "--gpu-profile", "l4", "--offline"])
    assert table.exit_code == 0 and "no" in table.stdout and "vllm serve" in table.stdout
    engine = runner.invoke(app, ["recommend", "meta-llama/Llama-3.1-8B", "-g", "h100", "--engine", "tgi", "--offline"])
    assert engine.exit_code == 2
