"""Engine models on hand-computed integers (the real-cache and real-log comparisons live elsewhere)."""

from __future__ import annotations

import pytest

from kvplan.core import specs as L
from kvplan.core.shapes import model_shape
from kvplan.engines import Request, pipeline_stages
from kvplan.engines.transformers import TransformersEngine
from kvplan.engines.vllm import VllmEngine
from kvplan.errors import UsageError
from kvplan.planning.estimate import estimate_config

from conftest import load_config

TINY = {
    "model_type": "llama",
    "hidden_size": 256,
    "num_hidden_layers": 4,
    "num_attention_heads": 8,
    "num_key_value_heads": 4,
    "head_dim": 32,
    "torch_dtype": "float32",
}


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


# ------------------------------------------------------------------------------------------------ llama.cpp
# Real `llama_kv_cache: size = ...` lines, asserted exactly (MiB = 2**20 bytes, printed with two decimals).

MIB = 2**20


@pytest.mark.parametrize(
    "seq_len,slots,kv,size_mib,cells",
    [
        # JaydenCJ/kvcalc README, llama-server -hf bartowski/Meta-Llama-3-8B-Instruct-GGUF:Q4_K_M (Apple M5):
        # "size = 1024.00 MiB (  8192 cells,  32 layers,  1/1 seqs), K (f16):  512.00 MiB, V (f16):  512.00 MiB"
        (8192, 1, "auto", 1024.00, 8192),
        # -c 8192 -np 4: "size = 1024.00 MiB (  2048 cells,  32 layers,  4/4 seqs)" (cells are per slot)
        (2048, 4, "auto", 1024.00, 2048),
        # -ctk q8_0 -ctv q8_0: "size =  544.00 MiB (  8192 cells,  32 layers,  1/1 seqs), K (q8_0):  272.00 MiB, ..."
        (8192, 1, "q8_0", 544.00, 8192),
    ],
)
def test_llamacpp_reproduces_logged_kv_size_llama3_8b(seq_len, slots, kv, size_mib, cells):
    est = estimate_config(
        load_config("meta-llama__Meta-Llama-3-8B"), engine="llama.cpp", seq_len=seq_len, batch=slots, kv_dtype=kv
    )
    assert est.kv_cache_bytes == size_mib * MIB
    (full,) = est.layers
    assert full.count == 32 and full.tokens_per_sequence == cells


def test_llamacpp_reproduces_logged_kv_size_qwen25_7b():
    # Ollama runner log, Qwen2.5-Coder-7B-Instruct Q4_K_M (same shapes as Qwen2.5-7B), n_ctx 4096:
    # "size =  224.00 MiB (  4096 cells,  28 layers,  1/1 seqs), K (f16):  112.00 MiB, V (f16):  112.00 MiB"
    est = estimate_config(load_config("Qwen__Qwen2.5-7B"), engine="llamacpp", seq_len=4096)
    assert est.kv_cache_bytes == 224 * MIB and est.kv_dtype == "fp16"  # llama.cpp's default type, not the bf16 model's


def test_llamacpp_iswa_reproduces_logged_gpt_oss_20b():
    # llama-server, gpt-oss-20b MXFP4 on 8 CANN devices, n_ctx 131072, n_ubatch 512:
    # "creating non-SWA KV cache, size = 131072 cells" / "size = 3072.00 MiB (131072 cells,  12 layers,  1/1 seqs)"
    # "creating     SWA KV cache, size = 768 cells"     / "size =   18.00 MiB (   768 cells,  12 layers,  1/1 seqs)"
    # (SWA cells: GGML_PAD(min(131072, 128 + 512), 256) = 768)
    est = estimate_config(load_config("openai__gpt-oss-20b"), engine="llamacpp", seq_len=131072)
    kinds = {k.kind: k for k in est.layers}
    assert (kinds["full_attention"].count, kinds["full_attention"].bytes) == (12, 3072 * MIB)
    assert kinds["full_attention"].tokens_per_sequence == 131072
    assert (kinds["sliding_window"].count, kinds["sliding_window"].bytes) == (12, 18 * MIB)
    assert kinds["sliding_window"].tokens_per_sequence == 768
    assert kinds["sliding_window"].bytes_per_token == 0


def test_llamacpp_padding_and_rules_from_source():
    cfg = load_config("meta-llama__Meta-Llama-3-8B")
    # llama-context.cpp: n_ctx = GGML_PAD(n_ctx, 256); non-unified slots: GGML_PAD(n_ctx / n_seq, 256) cells each
    assert estimate_config(cfg, engine="llamacpp", seq_len=35000).layers[0].tokens_per_sequence == 35072
    assert estimate_config(cfg, engine="llamacpp", seq_len=1000, batch=3).layers[0].tokens_per_sequence == 1024
    # Mistral v0.1's sliding_window is not used by llama.cpp: every token cached (and said so)
    est = estimate_config(load_config("mistralai__Mistral-7B-v0.1"), engine="llamacpp", seq_len=32768)
    assert est.kv_cache_bytes == 32768 * 32 * 8 * 128 * 2 * 2
    assert any("no sliding-window cache" in n for n in est.notes)
    # MLA (llama-kv-cache.cpp has_v = !is_mla): one row of kv_lora_rank 512 + rope 64 per layer, no V
    est = estimate_config(load_config("deepseek-ai__DeepSeek-V2-Lite"), engine="llamacpp", seq_len=4096)
    assert est.kv_cache_bytes == 4096 * 27 * 576 * 2
    # iq4_nl: 18 bytes per 32 values (block_iq4_nl)
    est = estimate_config(cfg, engine="llamacpp", seq_len=4096, kv_dtype="iq4_nl")
    assert est.kv_cache_bytes == 4096 * 32 * 2 * 1024 * 18 // 32


def test_llamacpp_recurrent_state_is_f32_per_slot():
    # llama-model.cpp create_memory: llama_memory_recurrent(GGML_TYPE_F32, GGML_TYPE_F32, ..., max(1, n_seq_max))
    # synthetic mamba: inner = expand 2 x hidden 64 = 128, d_conv 4, d_state 16: r = 3 x 128, s = 128 x 16 floats
    est = estimate_config(load_config("mamba"), engine="llamacpp", seq_len=4096, batch=2)
    (state,) = [k for k in est.layers if k.kind == "recurrent_state"]
    assert state.count == 4 and state.bytes == (3 * 128 + 128 * 16) * 4 * 2 * 4  # x 2 slots x 4 layers


def test_ggml_types_refused_elsewhere():
    with pytest.raises(UsageError, match="llama.cpp"):
        estimate_config(TINY, engine="sglang", kv_dtype="q4_0")
    with pytest.raises(UsageError, match="no fp8_e4m3 KV cache"):
        estimate_config(TINY, engine="llamacpp", kv_dtype="fp8")


def test_transformers_caches_falcon_new_decoder_kv_broadcast_to_every_query_head():
    # falcon40b_style: 8 heads, 2 KV heads of 16, 4 layers. transformers' FalconAttention broadcasts K/V to the
    # 8 query heads before caching (ModelShape.features); vLLM caches the 2 KV heads. Specs hold 2 either way.
    config = load_config("falcon40b_style")
    shape = model_shape(config)
    assert "falcon_new_decoder_architecture" in shape.features
    assert {c.num_kv_heads for c in shape.caches()} == {2}
    assert estimate_config(config, engine="transformers").bytes_per_token == 4 * 8 * 2 * 16 * 2
    assert estimate_config(config, engine="vllm").bytes_per_token == 4 * 2 * 2 * 16 * 2
    mqa = load_config("falcon7b_mqa_style")  # multi_query: one KV head cached by both
    assert "falcon_new_decoder_architecture" not in model_shape(mqa).features
    assert estimate_config(mqa, engine="transformers").bytes_per_token == estimate_config(mqa).bytes_per_token
