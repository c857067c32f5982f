"""Engine models on hand-computed integers (the real-cache and real-log comparisons live elsewhere)."""

from __future__ import annotations

import pytest

from conftest import load_config
from kvplan import layers as L
from kvplan.architectures import model_shape
from kvplan.engines import Request, pipeline_stages
from kvplan.engines.transformers import TransformersEngine
from kvplan.engines.vllm import VllmEngine
from kvplan.errors import UsageError
from kvplan.estimate import estimate_config

TINY = {"model_type": "llama", "hidden_size": 256, "num_hidden_layers": 4, "num_attention_heads": 8,
        "num_key_value_heads": 4, "head_dim": 32, "torch_dtype": "float32"}


def test_llama_and_deepseek_bytes_per_token():
    assert estimate_config(load_config("meta-llama__Llama-3.1-8B")).bytes_per_token == 131_072
    v3 = load_config("deepseek-ai__DeepSeek-V3")
    assert estimate_config(v3).bytes_per_token == 70_272  # 61 x (512 + 64) x 2
    assert estimate_config(v3, kv_dtype="fp8").bytes_per_token == 35_136
    assert estimate_config(v3, engine="naive").bytes_per_token == 1_748_992  # 2 x 61 x 7168 x 2


def test_transformers_fp8_quantized_cache_matches_the_measured_bytes():
    # Measured in shared/notes/transformers-cache.md: B=2, 255 tokens, QuantizedCache(fp8) -> 522,272 bytes.
    est = estimate_config(TINY, engine="transformers", kv_dtype="fp8", seq_len=255, batch=2)
    assert est.kv_cache_bytes == 522_272


def test_transformers_int4_quantized_prefill_bytes():
    # quanto 4-bit: 0.625 B per element; the notes measured 256,000 B for 200 quantized tokens (B=2).
    assert estimate_config(TINY, engine="transformers", kv_dtype="int4", seq_len=200, batch=2).kv_cache_bytes == 256_000


def test_quantized_transformers_cache_refuses_hybrid_models():
    with pytest.raises(UsageError, match="full attention"):
        estimate_config(load_config("google__gemma-2-9b"), engine="transformers", kv_dtype="fp8")


def test_vllm_pages_round_up_to_blocks():
    # 100 tokens = 7 blocks of 16 = 112 tokens of Llama-3.1-8B pages.
    assert estimate_config(load_config("meta-llama__Llama-3.1-8B"), seq_len=100).kv_cache_bytes == 112 * 131_072


def test_vllm_raises_the_attention_block_for_qwen3_next():
    # GDN state page: (3 x 8192 conv + 32 x 128 x 128 ssm) x 2 B = 1,097,728 B; an attention token is
    # 2 x 2 x 256 x 2 = 2048 B, so the block grows to 16 x cdiv(1,097,728, 16 x 2048) = 544 tokens.
    est = estimate_config(load_config("Qwen__Qwen3-Next-80B-A3B"))
    assert est.block_size == 544


def test_vllm_int8_adds_per_token_head_scales():
    est = estimate_config(TINY, kv_dtype="int8")
    assert est.bytes_per_token == 4 * (4 * 64 * 1 + 2 * 4 * 4)


def test_vllm_refuses_int4():
    with pytest.raises(UsageError, match="int4"):
        estimate_config(TINY, kv_dtype="int4")


def test_sliding_window_transformers_keeps_window_minus_one():
    shape = model_shape(load_config("mistralai__Mistral-7B-v0.1"))
    req = Request(8192, 1, "bfloat16", "bfloat16")
    cost = TransformersEngine().stage_costs(shape.caches(), req)[0]
    assert cost.kind == L.SLIDING and cost.tokens == 4095 and cost.bytes == 32 * 4096 * 4095


def test_vllm_sliding_reservation_includes_the_prefill_budget():
    shape = model_shape(load_config("mistralai__Mistral-7B-v0.1"))
    req = Request(32768, 1, "bfloat16", "bfloat16", max_num_batched_tokens=2048)
    plan = VllmEngine().plan(shape.caches(), req)
    (spec,) = plan.specs
    assert VllmEngine().blocks_per_request(spec, req) == (4095 + 2048 + 15) // 16 + 1


def test_pipeline_stages_split_like_vllm():
    assert [len(r) for r in pipeline_stages(32, 3)] == [11, 11, 10]
    assert [len(r) for r in pipeline_stages(61, 4)] == [15, 15, 16, 15]  # vLLM docs: 61 layers, PP4


def test_pp_per_gpu_is_the_fullest_stage():
    est = estimate_config(load_config("meta-llama__Llama-3.1-8B"), pp=3, seq_len=1024)
    assert est.kv_cache_bytes_per_gpu == 11 * 4096 * 1024
    assert est.kv_cache_bytes == 32 * 4096 * 1024
