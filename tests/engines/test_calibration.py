"""kvplan's vLLM / SGLang / TensorRT-LLM models against real engine start-up logs (tests/fixtures/calibration, see its README).

(1) per-token bytes: for every `per_token_check: true` case whose architecture we hold a config for, the
per-GPU bytes per token must reproduce the printed memory and token count within the print rounding;
(2) capacity: with the printed available KV memory, vLLM's block count, logged token count and maximum
concurrency are reproduced, hybrid sliding-window models included.
"""

from __future__ import annotations

import math

import pytest
import yaml

from kvplan.core.shapes import model_shape
from kvplan.core.units import canonical_dtype
from kvplan.engines import Request, pipeline_stages
from kvplan.engines.vllm import capacity, scheduler_defaults
from kvplan.planning.estimate import estimate_config
from kvplan.sources.catalog import catalog_dir

from conftest import FIXTURES, config_path, load_config

CASES = yaml.safe_load((FIXTURES / "calibration" / "engine_cases.yaml").read_text())
GIB = 2**30
HALF_CENT = 0.005 * GIB  # values are printed with two decimals
OLD_LOGS = "0.19"  # engine_cases.yaml holds vLLM 0.10-0.19 logs: a case without a version is modelled as 0.19


def _version(case: dict) -> str | None:
    """The vLLM release a case's log came from (its rules apply); None for other engines."""
    return (case.get("engine_version") or OLD_LOGS) if case["engine"] == "vllm" else None


# Hugging Face id in the log -> the fixture config with the same architecture. Fine-tunes and quantized
# checkpoints share their base model's attention shapes; each mapping says why.
SAME_ARCHITECTURE = {
    "meta-llama/Llama-3.1-8B-Instruct": "meta-llama__Llama-3.1-8B",
    "RedHatAI/Meta-Llama-3.1-8B-Instruct-quantized.w4a16": "meta-llama__Llama-3.1-8B",  # int4 weights, bf16 KV
    "RedHatAI/Llama-3.3-70B-Instruct-fp8-dynamic": "meta-llama__Llama-3.1-70B",  # Llama 3.3 70B = 3.1 70B shapes
    "Qwen/Qwen2.5-7B-Instruct": "Qwen__Qwen2.5-7B",
    "RedHatAI/Qwen2.5-7B-Instruct-fp8-dynamic": "Qwen__Qwen2.5-7B",
    "Qwen/Qwen2.5-72B-Instruct": "Qwen__Qwen2-72B-Instruct",  # 80 layers, 8 KV heads of 128 in both
    "moonshotai/Kimi-Dev-72B": "Qwen__Qwen2-72B-Instruct",  # a Qwen2.5-72B fine-tune
    "Qwen/QwQ-32B": "Qwen__Qwen2.5-32B",  # a Qwen2.5-32B fine-tune
    "Qwen/Qwen2-7B-Instruct": "Qwen__Qwen2-7B-Instruct",
    "Qwen/Qwen3-235B-A22B-FP8": "Qwen__Qwen3-235B-A22B",
    "deepseek-ai/DeepSeek-V2-Lite-Chat": "deepseek-ai__DeepSeek-V2-Lite",
    "google/gemma-2-9b-it": "google__gemma-2-9b-it",
    "google/gemma-3-12b-it": "google__gemma-3-12b-it",
    "google/gemma-3-4b-it": "google__gemma-3-4b-it",
    "openai/gpt-oss-120b": "openai__gpt-oss-120b",
    "google/gemma-7b": "google__gemma-7b",
    "google/gemma-2-2b-it": "google__gemma-2-2b-it",
    "ibm-granite/granite-3.3-8b-instruct": "ibm-granite__granite-3.3-8b-instruct",
    "ibm-granite/granite-vision-3.3-2b": "ibm-granite__granite-vision-3.3-2b",
    "RedHatAI/Mistral-Small-3.1-24B-Instruct-2503-quantized.w8a8": "mistralai__Mistral-Small-3.1-24B-Instruct-2503",
    # Coder-0.5B = Qwen2.5-0.5B shapes: 24 layers, 2 KV heads of 64, vocab 151936
    "Qwen/Qwen2.5-Coder-0.5B-Instruct": "Qwen__Qwen2.5-0.5B-Instruct",
    "meta-llama/Llama-4-Scout-17B-16E-Instruct": "meta-llama__Llama-4-Scout-17B-16E-Instruct",
    "Qwen/Qwen3-0.6B": "Qwen__Qwen3-0.6B",
    "google/gemma-3-27b-it": "google__gemma-3-27b-it",
    "mistralai/Mixtral-8x7B-Instruct-v0.1": "mistralai__Mixtral-8x7B-v0.1",  # the Instruct fine-tune: same shapes
    "Qwen/Qwen3-30B-A3B": "Qwen__Qwen3-30B-A3B",
}


def _config_for(case: dict) -> dict:
    name = SAME_ARCHITECTURE.get(case["model_id"])
    try:
        return load_config(name) if name else None
    except FileNotFoundError:
        return None


def _kv_dtype(case: dict) -> str:
    return case.get("kv_cache_dtype") or "auto"


def _dtype(case: dict, shape) -> str:
    """The dtype the engine ran the model in (`--dtype`, e.g. float32), else the config's."""
    return canonical_dtype(case["dtype"]) if case.get("dtype") else shape.dtype


def _engine(case: dict) -> str:
    return {"vllm": "vllm", "sglang": "sglang", "tensorrt-llm": "tensorrt-llm"}.get(case["engine"], "")


def _case_params(predicate) -> list:
    out = []
    for case in CASES:
        if not predicate(case):
            continue
        config = _config_for(case)
        reason = None
        if case["model_id"] is None:
            reason = "log names no model"
        elif config is None:
            reason = f"no config for {case['model_id']} among the fixtures"
        elif not _engine(case):
            reason = f"no {case['engine']} engine model yet"
        out.append(pytest.param(case, config, id=case["id"], marks=pytest.mark.skip(reason=reason) if reason else ()))
    return out


def _reported_memory(case: dict) -> tuple[float, float]:
    """(printed GiB, rounding half-width in GiB) of the KV memory a case reports."""
    r = case["reported"]
    if case["engine"] == "sglang":
        return r["sglang_k_size_gb"] + r["sglang_v_size_gb"], 0.01
    if case["engine"] == "tensorrt-llm":  # "Allocated 4.53 GiB for max tokens in paged KV cache (395776)"
        return r["kv_cache_gib"], 0.005
    return r["available_kv_cache_gib"], 0.005


@pytest.mark.parametrize("case,config", _case_params(lambda c: c.get("per_token_check")))
def test_bytes_per_token_reproduces_logged_capacity(case, config):
    est = estimate_config(
        config,
        engine=_engine(case),
        dtype=case.get("dtype") or "auto",
        kv_dtype=_kv_dtype(case),
        tp=case["tensor_parallel_size"] or 1,
        seq_len=case["max_model_len"] or 4096,
        vllm_version=_version(case),
    )
    per_token = est.bytes_per_token_per_gpu
    memory_gib, half = _reported_memory(case)
    # SGLang does not round to blocks; TensorRT-LLM logs the token count before rounding up to blocks (#224)
    block = case["block_size"] or (16 if case["engine"] == "vllm" else 1)
    low = math.floor((memory_gib - half) * GIB / (per_token * block)) * block
    high = math.floor((memory_gib + half) * GIB / (per_token * block)) * block
    assert low <= case["reported"]["kv_cache_tokens"] <= high, (per_token, low, high)


def _capacity_case(case: dict) -> bool:
    r = case["reported"]
    return (
        case["engine"] == "vllm"
        and r.get("available_kv_cache_gib")
        and r.get("kv_cache_tokens")
        and case.get("max_model_len")
        and (case.get("pipeline_parallel_size") or 1) == 1
    )


def _request(case: dict, shape) -> Request:
    gpu_memory = (case["reported"].get("total_gpu_memory_gib") or 80) * GIB
    budget, _ = scheduler_defaults(int(gpu_memory), case["gpu_model"] or "", vllm_version=_version(case))
    return Request(
        case["max_model_len"],
        1,
        _dtype(case, shape) if _kv_dtype(case) == "auto" else "fp8_e4m3",
        _dtype(case, shape),
        tp=case["tensor_parallel_size"] or 1,
        max_num_batched_tokens=budget,
        engine_version=_version(case),
    )


@pytest.mark.parametrize("case,config", _case_params(_capacity_case))
def test_vllm_capacity_from_available_memory(case, config):
    shape = model_shape(config)
    req = _request(case, shape)
    caches = [c for i in pipeline_stages(shape.num_layers, 1)[0] for c in shape.layers[i]]
    reported = case["reported"]
    memory = reported["available_kv_cache_gib"] * GIB
    low, high = capacity(caches, req, int(memory - HALF_CENT)), capacity(caches, req, int(memory + HALF_CENT))
    if reported.get("kv_cache_blocks"):
        assert low.num_blocks <= reported["kv_cache_blocks"] <= high.num_blocks
    assert low.kv_cache_tokens <= reported["kv_cache_tokens"] <= high.kv_cache_tokens
    if reported.get("max_concurrency"):
        blocks = reported.get("kv_cache_blocks") or high.num_blocks
        concurrency = blocks / low.blocks_per_request
        tolerance = 0.005 if reported.get("kv_cache_blocks") else (high.max_concurrency - low.max_concurrency) + 0.005
        assert abs(concurrency - reported["max_concurrency"]) <= tolerance + 1e-9, concurrency


def test_every_mapped_fixture_exists_or_is_listed_missing():
    """The mapping must not silently point at files with typos: known-missing ones are the extra configs."""
    for stem in SAME_ARCHITECTURE.values():
        try:
            config_path(stem)
        except FileNotFoundError:
            assert not (catalog_dir() / f"{stem}.json").exists()


def test_tensorrt_llm_logged_pool_is_tokens_times_per_token_bytes():
    """TensorRT-LLM #1188: "Allocated 4.53 GiB for max tokens in paged KV cache (395776)" for Qwen2.5-Coder-0.5B."""
    case = next(c for c in CASES if c["engine"] == "tensorrt-llm")
    est = estimate_config(_config_for(case), engine="tensorrt-llm", seq_len=4096)
    assert est.bytes_per_token_per_gpu == 12288  # 24 layers x 2 KV heads x 64 x 2 (K, V) x 2 bytes (fp16 KV)
    assert est.block_size == 32  # KvCacheConfig.tokens_per_block
    logged = case["reported"]["kv_cache_tokens"] * est.bytes_per_token_per_gpu / GIB
    assert round(logged, 2) == case["reported"]["kv_cache_gib"] == 4.53
