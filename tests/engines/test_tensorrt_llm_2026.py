"""TensorRT-LLM and the 2026 families: DSA (DeepSeek V3.2, GLM-5.x) sized from its DSACacheManager; MiniMax-M3
refused with what TensorRT-LLM registers (Kimi K3: tests/engines/test_tensorrt_llm_kda_dsa.py; DeepSeek-V4:
tests/engines/test_tensorrt_llm_deepseek_v4.py).

Read from the NVIDIA/TensorRT-LLM code index (each file at the commit the index holds for it; the whole repository,
2.5 GB, could not be fetched): tensorrt_llm/_torch/attention_backend/sparse/dsa/cache_manager.py at 0bbb76d2,
tensorrt_llm/_torch/attention_backend/sparse/dsa/params.py at 36449222, tensorrt_llm/_torch/models/_arch_index.py at
065ff9e9 (the static table of every `@register_auto_model` architecture; its test_lazy_model_zoo.py fails on any
drift from the decorators). Where a checkout of those files is on this machine (KVPLAN_ENGINE_SOURCES, default
/work/src, as TensorRT-LLM-<commit>/...) the cited lines are read back.
"""

from __future__ import annotations

import pytest

from kvplan.core import specs as L
from kvplan.core.shapes import indexer_layers, model_shape
from kvplan.engines.base import Request
from kvplan.engines.registry import get_engine
from kvplan.engines.tensorrt_llm import DEFAULT_TOKENS_PER_BLOCK, TensorRtLlmEngine
from kvplan.errors import UsageError

from conftest import ENGINE_SOURCES, check_cited_line, load_config

V32, GLM5, GLM51, GLM52 = ("deepseek-ai__DeepSeek-V3.2", "zai-org__GLM-5", "zai-org__GLM-5.1", "zai-org__GLM-5.2")
LATENT = 512 + 64  # kv_lora_rank + qk_rope_head_dim (cache_manager.py:290)
INDEXER = 128 + 128 // 128 * 4  # 132: index_head_dim fp8 bytes + one fp32 scale per 128 (:324-326)


def _req(kv: str = "bfloat16", **kw) -> Request:
    return Request(kw.pop("seq_len", 8192), kw.pop("batch", 1), kv, "bfloat16", **kw)


def _costs(name: str, req: Request):
    shape = model_shape(load_config(name))
    return get_engine("tensorrt-llm", shape).stage_costs(shape.caches(), req)


def _per_token(name: str, req: Request) -> int:
    costs = _costs(name, req)
    assert len(costs) == 1 and costs[0].kind == L.MLA
    return int(costs[0].bytes_per_token)


# ---------------------------------------------------------------------------------------------------- DSA


@pytest.mark.parametrize(("kv", "latent_bytes"), [("bfloat16", 2), ("float16", 2), ("fp8_e4m3", 1)])
def test_dsa_token_is_the_latent_in_the_kv_dtype_plus_132_indexer_bytes(kv, latent_bytes):
    """DSACacheManager.get_cache_size_per_token (cache_manager.py:261-328): mem_per_token 2, 1 with an fp8 KV cache
    (:284-287), times the local layers x (kv_lora_rank + qk_rope_head_dim) (:290, :301), plus the indexer K cache of
    every layer that runs its own indexer, raw uint8 whatever the KV dtype (:319-327)."""
    latent = LATENT * latent_bytes
    assert _per_token(V32, _req(kv)) == 61 * (latent + INDEXER)
    assert _per_token(GLM5, _req(kv)) == 78 * (latent + INDEXER)
    assert _per_token(GLM51, _req(kv)) == 78 * (latent + INDEXER)


def test_glm_5_2_shared_indexer_layers_hold_the_latent_only():
    """GLM-5.2: 21 "full" layers of 78. TensorRT-LLM's `_is_full_indexer_layer` (llmapi/llm_args.py,
    DeepSeekSparseAttentionConfig) reads index_topk_pattern, else index_topk_freq 4 / index_skip_topk_offset 3 —
    the layers kvplan's indexer_layers gives — and only those own an indexer row (cache_manager.py:303-317)."""
    cfg = load_config(GLM52)
    freq, offset = cfg["index_topk_freq"], cfg["index_skip_topk_offset"]
    trtllm_rule = [max(i - offset + 1, 0) % freq == 0 for i in range(cfg["num_hidden_layers"])]
    assert trtllm_rule == indexer_layers(cfg) and sum(trtllm_rule) == 21
    bf16, fp8 = _per_token(GLM52, _req()), _per_token(GLM52, _req("fp8_e4m3"))
    assert bf16 == 21 * (2 * LATENT + INDEXER) + 57 * 2 * LATENT == 92_628
    assert fp8 == 21 * (LATENT + INDEXER) + 57 * LATENT == 47_700


def test_dsa_indexer_bytes_follow_index_head_dim():
    """_get_indexer_k_cache_bytes_per_token (cache_manager.py:32-38): index_head_dim + index_head_dim // 128 x 4."""
    engine = TensorRtLlmEngine()
    for dim, expected in ((128, 132), (256, 264), (64, 64)):
        cache = L.MlaLatent(512, 64, dim, sparse=True)
        assert engine.token_bytes(cache, _req()) == 2 * LATENT + expected
    assert engine.token_bytes(L.MlaLatent(512, 64, 0, sparse=True), _req()) == 2 * LATENT  # a "shared" layer


def test_dsa_pages_round_up_to_tokens_per_block_and_replicate_over_tp():
    """Whole pages of tokens_per_block (KvCacheConfig default 32) per layer; the MLA latent and the indexer keys
    (num_kv_heads 1) are held whole on every TP rank."""
    costs = _costs(V32, _req(seq_len=100, batch=3))
    assert costs[0].bytes == 3 * 128 * 61 * (2 * LATENT + INDEXER)  # cdiv(100, 32) x 32 = 128 tokens
    assert DEFAULT_TOKENS_PER_BLOCK == 32
    assert _per_token(V32, _req(tp=8)) == _per_token(V32, _req(tp=1))


def test_dense_mla_is_unchanged_by_the_dsa_rule():
    """DeepSeek-V3 (no indexer) stays latent-only, in every KV dtype TensorRT-LLM has."""
    assert _per_token("deepseek-ai__DeepSeek-V3", _req()) == 61 * 2 * LATENT
    assert _per_token("deepseek-ai__DeepSeek-V3", _req("fp8_e4m3")) == 61 * LATENT
    assert _per_token("deepseek-ai__DeepSeek-V3", _req("nvfp4")) == 61 * LATENT // 2


@pytest.mark.parametrize("kv", ["float32", "int8", "nvfp4"])
def test_dsa_kv_dtypes_whose_estimate_disagrees_with_the_pool_are_refused(kv):
    """get_cache_size_per_token prices every KV dtype but fp8 as 2 bytes (:284-287) while the pool is in the KV
    dtype (get_cache_bytes_per_token): kvplan does not pick one of the two figures."""
    with pytest.raises(UsageError, match="counts the latent of a .* cache as 2 bytes") as info:
        _costs(GLM5, _req(kv))
    assert info.value.field == "kv_dtype" and "\n" not in info.value.message


def test_dsa_kv_dtype_tensorrt_llm_lacks_is_refused_as_before():
    with pytest.raises(UsageError, match="has no fp8_e5m2 KV cache"):
        _costs(V32, _req("fp8_e5m2"))


def test_cli_estimates_deepseek_v3_2_with_tensorrt_llm():
    from tests.test_cli import run

    result = run("estimate", "deepseek-ai/DeepSeek-V3.2", "--engine", "tensorrt-llm", "--seq-len", "8192", "--offline")
    assert result.exit_code == 0, result.output
    assert f"{61 * (2 * LATENT + INDEXER):,} B" in result.output


# ------------------------------------------------------------------------------ the families it registers


def _m3(architectures: list[str] | None):
    config = dict(load_config("MiniMaxAI__MiniMax-M3"))
    if architectures is None:
        config.pop("architectures")
    else:
        config["architectures"] = architectures
    return model_shape(config)


@pytest.mark.parametrize("architectures", [None, ["MiniMaxM3ForCausalLM"]])
def test_minimax_m3_under_an_architecture_tensorrt_llm_does_not_register(architectures):
    """_arch_index.py:77-78 lists MiniMaxM3SparseForCausalLM and MiniMaxM3SparseForConditionalGeneration only, and
    AutoModelForCausalLM looks up architectures[0] as written: the published MiniMaxM3ForCausalLM finds no class."""
    shape = _m3(architectures)
    with pytest.raises(UsageError) as info:
        get_engine("tensorrt-llm", shape).stage_costs(shape.caches(), _req(seq_len=1024))
    named = architectures[0] if architectures else "no architecture"
    assert info.value.message.startswith(f"TensorRT-LLM 065ff9e9 does not register {named}: ")
    assert "_arch_index.py:77-78" in info.value.message and info.value.field == "engine"


def test_minimax_m3_under_a_registered_architecture_is_refused_as_unread():
    shape = _m3(["MiniMaxM3SparseForCausalLM"])
    with pytest.raises(UsageError, match="does not size MiniMax-M3's indexer key cache yet") as info:
        get_engine("tensorrt-llm", shape).stage_costs(shape.caches(), _req(seq_len=1024))
    assert "registers MiniMaxM3SparseForCausalLM" in info.value.message
    assert "minimax_m3/cache_manager.py" in info.value.message


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        ("MiniMaxAI/MiniMax-M3", "does not register MiniMaxM3ForCausalLM"),
        ("deepseek-ai/DeepSeek-V4-Flash", "DeepseekV4CacheManager requires tokens_per_block 128 or 256"),
    ],
)
def test_cli_refusals_are_one_error_line_and_a_hint(model, expected):
    from tests.test_cli import run

    result = run("estimate", model, "--engine", "tensorrt-llm", "--seq-len", "8192", "--offline")
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert [line.split(":")[0] for line in lines] == ["error", "hint"], lines
    assert expected in lines[0]


# ------------------------------------------------------------------------------ the cited source lines


_SOURCES = ENGINE_SOURCES
_DSA = "TensorRT-LLM-0bbb76d2/tensorrt_llm/_torch/attention_backend/sparse/dsa/cache_manager.py"
_ARCH = "TensorRT-LLM-065ff9e9/tensorrt_llm/_torch/models/_arch_index.py"
_CITED = [
    (_DSA, 36, "data_bytes = index_head_dim // 2 if use_fp4 else index_head_dim"),
    (_DSA, 37, "scale_bytes = index_head_dim // quant_block_size * 4"),
    (_DSA, 152, "self.quant_block_size = 128"),
    (_DSA, 284, "mem_per_token = 2"),
    (_DSA, 286, "quant_config.quant_mode.has_fp8_kv_cache()"),
    (_DSA, 290, "head_dim = config.kv_lora_rank + config.qk_rope_head_dim"),
    (_DSA, 301, "mem_per_token *= num_attention_layers * head_dim"),
    (_DSA, 325, "indexer_data_dim + index_head_dim // quant_block_size * 4"),
    (
        "TensorRT-LLM-36449222/tensorrt_llm/_torch/attention_backend/sparse/dsa/params.py",
        50,
        'indexer_k_dtype: Literal["fp8", "fp4"] = "fp8"',
    ),
    (_ARCH, 44, '"DeepseekV32ForCausalLM": "modeling_deepseekv3"'),
    (_ARCH, 46, '"DeepseekV4ForCausalLM": "modeling_deepseekv4"'),
    (_ARCH, 59, '"GlmMoeDsaForCausalLM": "modeling_deepseekv3"'),
    (_ARCH, 66, '"KimiK3ForConditionalGeneration": "modeling_kimi_k3_vl"'),
    (_ARCH, 67, '"KimiLinearForCausalLM": "modeling_kimi_linear"'),
    (_ARCH, 77, '"MiniMaxM3SparseForCausalLM": "modeling_minimaxm3"'),
    (_ARCH, 78, '"MiniMaxM3SparseForConditionalGeneration": "modeling_minimaxm3"'),
]


@pytest.mark.parametrize(("path", "line", "text"), _CITED)
def test_cited_engine_source_lines(path, line, text):
    check_cited_line(_SOURCES / path, line, text)


def test_glm_5_and_deepseek_v3_2_are_registered_architectures():
    """The catalog configs name the architectures _arch_index.py:44 and :59 register (modeling_deepseekv3)."""
    assert load_config(V32)["architectures"] == ["DeepseekV32ForCausalLM"]
    for name in (GLM5, GLM51, GLM52):
        assert load_config(name)["architectures"] == ["GlmMoeDsaForCausalLM"]


def test_recommend_divides_the_kv_budget_by_the_dsa_page():
    """The pool holds the memory left for the KV cache over one 32-token page of every layer's latent and indexer
    keys (fp8: 61 x (576 + 132) bytes a token), the budget get_cache_size_per_token divides."""
    from kvplan.planning.recommend import recommend

    rec = recommend(
        "deepseek-ai/DeepSeek-V3.2",
        engine="tensorrt-llm",
        gpu_profile="b200",
        gpus=8,
        tp=8,
        max_model_len=32768,
        kv_dtype="fp8",
        offline=True,
    ).to_dict()
    page = 32 * 61 * (LATENT + INDEXER)
    assert rec["num_blocks"] == rec["available_kv_memory_bytes"] // page > 0
    assert rec["kv_cache_tokens"] == 32 * rec["num_blocks"]
    assert rec["kv_bytes_per_request"] == 32768 * 61 * (LATENT + INDEXER)


def test_a_config_whose_first_dsa_layer_is_shared_is_refused():
    """TensorRT-LLM forces a DSA layer 0 that resolves to "shared" to "full" (DeepSeekSparseAttentionConfig.
    _is_full_indexer_layer), so it holds indexer keys kvplan's layer table does not: refused. A pattern that starts
    with "F" is sized."""
    cfg = dict(load_config(GLM5), index_topk_pattern="S" + "F" * 77)
    shape = model_shape(cfg)
    assert shape.layers[0][0].index_head_dim == 0
    with pytest.raises(UsageError, match="layer 0 run its own indexer") as info:
        get_engine("tensorrt-llm", shape).stage_costs(shape.caches(), _req())
    assert "\n" not in info.value.message
    cfg["index_topk_pattern"] = "F" + "S" * 77
    shape = model_shape(cfg)
    per_token = get_engine("tensorrt-llm", shape).stage_costs(shape.caches(), _req())[0].bytes_per_token
    assert per_token == 78 * 2 * LATENT + INDEXER
