"""kvplan.weights.tensors: exact parameter counts (checked against transformers' meta-device builds) and weight bytes."""

from __future__ import annotations

import math
import subprocess
import sys

import pytest

from kvplan.core.config import text_config
from kvplan.core.units import DTYPES
from kvplan.errors import ConfigError, UnsupportedArchitecture, UsageError
from kvplan.weights.stored import weight_bytes
from kvplan.weights.tensors import assumed_family, count_parameters, weight_tensors

from conftest import TINY_LLAMA as TINY
from conftest import all_config_names, load_config

# model_types that only exist as remote code (trust_remote_code), so transformers cannot build them natively.
# (hunyuan: Hunyuan-A13B's own code; transformers' hunyuan_v1_moe port reads other config fields, see below;
# kimi_k3: Kimi K3's wrapper, counted from vLLM's modelling code in tests/weights/test_kimi_linear_weights.py.)
REMOTE_CODE = {"chatglm", "baichuan", "internlm2", "minicpm", "hunyuan", "kimi_k3"}
NATIVE = [n for n in all_config_names() if load_config(n)["model_type"] not in REMOTE_CODE]


def meta_count(d: dict) -> int:
    """Parameters of transformers' AutoModelForCausalLM built on the meta device (never trust_remote_code)."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    transformers.logging.set_verbosity_error()
    # minimax_m3: transformers 5.24 builds the published text config as minimax_m3_vl_text (MiniMaxM3VLForCausalLM)
    spellings = {"kimi_k2": "deepseek_v3", "RefinedWebModel": "falcon", "minimax_m3": "minimax_m3_vl_text"}
    model_type = spellings.get(d["model_type"], d["model_type"])
    if model_type == "gemma3":  # multimodal: count what Gemma3ForCausalLM builds from the text config
        d, model_type = d["text_config"], "gemma3_text"
    elif model_type in ("gemma4", "lfm2_vl"):  # likewise Gemma4ForCausalLM / Lfm2ForCausalLM: no vision tower
        d, model_type = d["text_config"], d["text_config"]["model_type"]
    elif model_type not in IMAGE_TEXT_ONLY and isinstance(d.get("text_config"), dict):
        # other wrappers (llama4, mistral3, kimi_k25): the text model
        d = {**{k: v for k, v in d.items() if k not in ("text_config", "vision_config")}, **d["text_config"]}
        model_type = {"kimi_k2": "deepseek_v3"}.get(d["model_type"], d["model_type"])
    kwargs = {k: v for k, v in d.items() if k not in ("auto_map", "model_type")}
    cfg = transformers.AutoConfig.for_model(model_type, **kwargs)
    if model_type in IMAGE_TEXT_ONLY:  # no causal-LM class: the wrapper's parameters outside its vision tower
        with torch.device("meta"):
            model = transformers.AutoModelForImageTextToText.from_config(cfg)
        return sum(p.numel() for name, p in model.named_parameters() if not name.startswith("model.visual."))
    with torch.device("meta"):
        model = transformers.AutoModelForCausalLM.from_config(cfg)
    return sum(p.numel() for p in model.parameters())


# Multimodal wrappers transformers 5.24 builds only as image-text-to-text models (Qwen3VLForConditionalGeneration
# and its MoE twin: `model.visual`, `model.language_model`, `lm_head`).
IMAGE_TEXT_ONLY = {"qwen3_vl", "qwen3_vl_moe"}


@pytest.mark.torch
@pytest.mark.slow
@pytest.mark.parametrize("name", NATIVE)
def test_fixture_matches_transformers_meta_count(name):
    config = load_config(name)
    assert count_parameters(config) == meta_count(config)


# Small synthetic configs that exercise switches and families the fixture collection does not cover.
SMALL = {
    "hidden_size": 256,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "num_hidden_layers": 3,
    "intermediate_size": 512,
    "vocab_size": 1000,
}


def _small(model_type: str, **overrides) -> dict:
    return {"model_type": model_type, **SMALL, **overrides}


_DEEPSEEK = {
    "kv_lora_rank": 64,
    "qk_rope_head_dim": 16,
    "qk_nope_head_dim": 32,
    "v_head_dim": 32,
    "n_routed_experts": 4,
    "moe_intermediate_size": 64,
    "num_experts_per_tok": 2,
    "num_key_value_heads": 4,
}
SYNTHETIC = {
    "llama-biases-tied-head-dim": _small(
        "llama", attention_bias=True, mlp_bias=True, tie_word_embeddings=True, head_dim=96
    ),
    "mistral-head-dim": _small("mistral", head_dim=80),
    "granite-biases": _small("granite", attention_bias=True, mlp_bias=True),
    "glm": _small("glm", pad_token_id=0),
    "glm-no-bias": _small("glm", attention_bias=False, pad_token_id=0),
    "glm4": _small("glm4", pad_token_id=0),
    "cohere-qk-norm": _small("cohere", use_qk_norm=True, attention_bias=True),
    "cohere2": _small("cohere2", head_dim=64),
    "cohere2-head-dim-80": _small("cohere2", head_dim=80),
    "cohere2-no-head-dim": _small("cohere2"),  # Cohere2Config derives 256 / 4 = 64 (no default of 128)
    "phi": _small("phi"),
    "phi-qk-layernorm": _small("phi", qk_layernorm=True, num_key_value_heads=4),
    "olmo-no-norm-params": _small("olmo"),
    "olmo3": _small("olmo3"),
    "gemma-default-head-dim": _small("gemma"),
    "gemma2-untied": _small("gemma2", tie_word_embeddings=False, head_dim=64),
    "gemma3-default-vocab": {k: v for k, v in _small("gemma3_text").items() if k != "vocab_size"},
    "qwen2-tied": _small("qwen2", tie_word_embeddings=True),
    "qwen3-default-head-dim": _small("qwen3"),
    "starcoder2": _small("starcoder2"),
    "starcoder2-no-bias": _small("starcoder2", use_bias=False),
    "qwen2_moe-sparse-step": _small(
        "qwen2_moe",
        num_hidden_layers=4,
        decoder_sparse_step=2,
        mlp_only_layers=[1],
        num_experts=4,
        moe_intermediate_size=64,
        shared_expert_intermediate_size=128,
    ),
    "qwen2_moe-no-qkv-bias": _small(
        "qwen2_moe", qkv_bias=False, num_experts=4, moe_intermediate_size=64, shared_expert_intermediate_size=128
    ),
    "qwen3_moe-mlp-only": _small(
        "qwen3_moe", num_experts=4, moe_intermediate_size=64, mlp_only_layers=[0], head_dim=64
    ),
    "qwen3_next-interval": _small(
        "qwen3_next",
        num_hidden_layers=4,
        full_attention_interval=2,
        num_experts=4,
        moe_intermediate_size=64,
        shared_expert_intermediate_size=64,
        head_dim=64,
        linear_num_key_heads=2,
        linear_num_value_heads=4,
        linear_key_head_dim=32,
        linear_value_head_dim=32,
    ),
    "mixtral": _small("mixtral", num_local_experts=4, num_experts_per_tok=2),
    "gpt_oss": _small("gpt_oss", num_local_experts=4, num_experts_per_tok=2, head_dim=64, num_hidden_layers=2),
    "deepseek_v2-q-lora": _small(
        "deepseek_v2", q_lora_rank=96, first_k_dense_replace=1, n_shared_experts=2, **_DEEPSEEK
    ),
    "deepseek_v3-no-q-lora": _small(
        "deepseek_v3",
        q_lora_rank=None,
        first_k_dense_replace=2,
        n_shared_experts=1,
        n_group=1,
        topk_group=1,
        **_DEEPSEEK,
    ),
    "jamba": _small(
        "jamba",
        num_hidden_layers=4,
        attn_layer_period=2,
        attn_layer_offset=1,
        expert_layer_period=2,
        expert_layer_offset=0,
        num_experts=4,
        mamba_dt_rank="auto",
        mamba_proj_bias=True,
    ),
    "mamba": {
        "model_type": "mamba",
        "hidden_size": 128,
        "num_hidden_layers": 2,
        "vocab_size": 1000,
        "state_size": 8,
        "time_step_rank": "auto",
        "use_bias": True,
        "use_conv_bias": False,
    },
    "falcon-new-decoder-architecture": {
        "model_type": "falcon",
        "hidden_size": 256,
        "num_attention_heads": 8,
        "num_kv_heads": 2,
        "num_hidden_layers": 2,
        "vocab_size": 1000,
        "new_decoder_architecture": True,
    },
    "falcon-sequential-bias": {
        "model_type": "falcon",
        "hidden_size": 256,
        "num_attention_heads": 8,
        "num_hidden_layers": 2,
        "vocab_size": 1000,
        "multi_query": False,
        "parallel_attn": False,
        "bias": True,
        "ffn_hidden_size": 300,
        "tie_word_embeddings": False,
    },
    "gpt2-untied": {
        "model_type": "gpt2",
        "n_embd": 128,
        "n_head": 4,
        "n_layer": 2,
        "n_positions": 64,
        "n_inner": 200,
        "vocab_size": 1000,
        "tie_word_embeddings": False,
    },
    "gpt_neox-no-bias-tied": _small("gpt_neox", attention_bias=False, tie_word_embeddings=True),
    # Gemma 4: KV-sharing consumers (no k/v projections, double-wide MLP), per-layer inputs, k_eq_v full layers
    "gemma4_text-kv-shared-ple-double-wide": load_config("synthetic/gemma4_text_kv_shared"),
    "gemma4_text-moe-v-proj-bias-untied": {
        **load_config("synthetic/gemma4_text_kv_shared"),
        "attention_k_eq_v": False,
        "num_kv_shared_layers": 0,
        "hidden_size_per_layer_input": 0,
        "enable_moe_block": True,
        "num_experts": 4,
        "top_k_experts": 2,
        "moe_intermediate_size": 32,
        "attention_bias": True,
        "tie_word_embeddings": False,
    },
    # MiMo-V2-Flash with transformers' defaults (no swa_* keys, no hybrid_layer_pattern) and with biases
    "mimo_v2_flash-defaults": load_config("synthetic/mimo_v2_flash_defaults"),
    "mimo_v2_flash-bias": {**load_config("synthetic/mimo_v2_flash_defaults"), "attention_bias": True},
    # ---- Mamba2 / short-conv hybrids (issue 12)
    # NemotronHForCausalLM never ties its head (`_tied_weights_keys = {}`), whatever tie_word_embeddings says
    "nemotron_h-pattern-latent-biases-tied": _small(
        "nemotron_h",
        hybrid_override_pattern="M*E-ME",
        num_hidden_layers=6,
        mamba_num_heads=8,
        mamba_head_dim=32,
        n_groups=2,
        ssm_state_size=16,
        conv_kernel=3,
        n_routed_experts=4,
        num_experts_per_tok=2,
        moe_intermediate_size=64,
        moe_shared_expert_intermediate_size=96,
        moe_latent_size=64,
        mlp_bias=True,
        use_bias=True,
        use_conv_bias=False,
        tie_word_embeddings=True,
        head_dim=48,
    ),
    "nemotron_h-layers-block-type-legacy-names": {
        k: v
        for k, v in _small(
            "nemotron_h",
            layers_block_type=["mamba", "attention", "moe", "mlp"],
            mamba_num_heads=8,
            mamba_head_dim=32,
            n_groups=1,
            ssm_state_size=16,
            n_routed_experts=4,
            num_experts_per_tok=2,
            moe_intermediate_size=64,
            moe_shared_expert_intermediate_size=64,
        ).items()
        if k != "num_hidden_layers"  # as Nemotron-3-Ultra: the list alone says how many layers
    },
    # tied embeddings tie the later hybrid layers' shared blocks to the first num_mem_blocks ones; untied, each
    # hybrid layer keeps its own
    "zamba2-two-blocks-adapters-tied": {
        "model_type": "zamba2",
        "hidden_size": 64,
        "num_attention_heads": 4,
        "num_hidden_layers": 6,
        "vocab_size": 1000,
        "layers_block_type": ["mamba", "hybrid", "hybrid", "mamba", "hybrid", "hybrid"],
        "num_mem_blocks": 2,
        "use_shared_attention_adapter": True,
        "adapter_rank": 8,
        "n_mamba_heads": 4,
        "mamba_d_state": 16,
        "mamba_ngroups": 2,
        "intermediate_size": 96,
        "tie_word_embeddings": True,
    },
    "zamba2-untied-bias": {
        "model_type": "zamba2",
        "hidden_size": 64,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "num_hidden_layers": 4,
        "vocab_size": 1000,
        "layers_block_type": ["hybrid", "mamba", "hybrid", "hybrid"],
        "num_mem_blocks": 2,
        "adapter_rank": 8,
        "n_mamba_heads": 4,
        "mamba_d_state": 16,
        "add_bias_linear": True,
        "tie_word_embeddings": False,
    },
    "lfm2-full-attn-idxs-conv-bias": _small(
        "lfm2", full_attn_idxs=[1], conv_bias=True, block_auto_adjust_ff_dim=False, conv_L_cache=4
    ),
    "lfm2-auto-ff-dim-tied": _small(
        "lfm2", layer_types=["conv", "full_attention", "conv"], block_multiple_of=128, block_ffn_dim_multiplier=1.5
    ),
    "granitemoehybrid-dense-attention-bias": _small(
        "granitemoehybrid",
        layer_types=["mamba", "attention", "mamba"],
        num_local_experts=0,
        shared_intermediate_size=128,
        attention_bias=True,
        mamba_n_heads=8,
        mamba_d_state=16,
        mamba_n_groups=2,
        mamba_proj_bias=True,
        mamba_conv_bias=False,
    ),
    "granitemoehybrid-all-mamba-default": _small(
        "granitemoehybrid", mamba_n_heads=8, mamba_d_state=16, num_local_experts=4
    ),
    # DSA: the indexer on every layer (V3.2) / on the "full" layers, mlp_layer_types naming a late dense layer (GLM)
    "deepseek_v32-dsa": load_config("synthetic/deepseek_v32_dsa"),
    "glm_moe_dsa-shared-indexers": load_config("synthetic/glm_moe_dsa_shared"),
}


@pytest.mark.torch
@pytest.mark.parametrize("name", sorted(SYNTHETIC))
def test_synthetic_matches_transformers_meta_count(name):
    assert count_parameters(SYNTHETIC[name]) == meta_count(SYNTHETIC[name])


@pytest.mark.torch
@pytest.mark.parametrize("name", ["falcon40b_rw_style", "falcon40b_style", "falcon7b_mqa_style"])
def test_falcon_remote_code_configs_match_transformers(name):
    """RefinedWeb configs (Falcon-40B remote code) imply the new decoder architecture, as transformers builds them."""
    ground_truth = pytest.importorskip("kvplan.profiling.ground_truth")
    torch = pytest.importorskip("torch")
    config = load_config(name)
    with torch.device("meta"):
        import transformers

        model = transformers.AutoModelForCausalLM.from_config(ground_truth.hf_config_from_dict(config))
    assert count_parameters(config) == sum(p.numel() for p in model.parameters())


# ---- torch-free: hand-computed and published counts -----------------------------------------------------------


def _llama(hidden, layers, heads, kv_heads, inter, vocab, tied=False):
    head_dim = hidden // heads
    attn = 2 * hidden * hidden + 2 * hidden * kv_heads * head_dim
    per_layer = attn + 3 * hidden * inter + 2 * hidden
    return layers * per_layer + hidden + vocab * hidden * (1 if tied else 2)


def test_llama_3_1_8b():
    assert _llama(4096, 32, 32, 8, 14336, 128256) == 8_030_261_248
    assert count_parameters(load_config("meta-llama__Llama-3.1-8B")) == 8_030_261_248


def test_llama_3_1_70b():
    assert _llama(8192, 80, 64, 8, 28672, 128256) == 70_553_706_496
    assert count_parameters(load_config("meta-llama__Llama-3.1-70B")) == 70_553_706_496


def test_tied_embeddings_are_counted_once():
    expected = _llama(2048, 16, 32, 8, 8192, 128256, tied=True)
    assert count_parameters(load_config("meta-llama__Llama-3.2-1B-Instruct")) == expected


def test_mixtral_8x7b():
    h, inter, layers, experts = 4096, 14336, 32, 8
    per_layer = 2 * h * h + 2 * h * 1024 + experts * 3 * h * inter + experts * h + 2 * h
    assert layers * per_layer + h + 2 * 32000 * h == 46_702_792_704
    assert count_parameters(load_config("mistralai__Mixtral-8x7B-v0.1")) == 46_702_792_704


def _deepseek_v3_attention(h=7168, heads=128):
    q = h * 1536 + 1536 + 1536 * heads * 192
    kv = h * 576 + 512 + 512 * heads * 256
    return q + kv + heads * 128 * h


def test_deepseek_v3_meta_count():
    h, layers, dense, experts, inter, moe = 7168, 61, 3, 256, 18432, 2048
    mlp_dense = 3 * h * inter
    mlp_moe = experts * 3 * h * moe + experts * h + 3 * h * moe  # routed + router + one shared expert
    total = layers * (_deepseek_v3_attention() + 2 * h) + dense * mlp_dense + (layers - dense) * mlp_moe
    total += h + 2 * 129280 * h
    assert total == 671_026_404_352
    assert count_parameters(load_config("deepseek-ai__DeepSeek-V3")) == 671_026_404_352
    assert count_parameters(load_config("moonshotai__Kimi-K2-Instruct")) == 1_026_408_209_408


def _dsa_count(c: dict, indexer_layers: int) -> int:
    """DeepSeek V3.2 / GLM-5 by hand: MLA (q_a, q_a_layernorm, q_b, kv_a_with_mqa, kv_a_layernorm, kv_b, o), the
    indexer (wq_b, wk, k_norm weight + bias, weights_proj) on `indexer_layers` layers, DeepSeek's MoE."""
    h, heads, q, kv = c["hidden_size"], c["num_attention_heads"], c["q_lora_rank"], c["kv_lora_rank"]
    nope, rope, v = c["qk_nope_head_dim"], c["qk_rope_head_dim"], c["v_head_dim"]
    attn = h * q + q + q * heads * (nope + rope) + h * (kv + rope) + kv + kv * heads * (nope + v) + heads * v * h
    ih, idim = c["index_n_heads"], c["index_head_dim"]
    indexer = q * ih * idim + h * idim + 2 * idim + h * ih
    layers, dense, experts = c["num_hidden_layers"], c["first_k_dense_replace"], c["n_routed_experts"]
    moe = experts * 3 * h * c["moe_intermediate_size"] + experts * h + 3 * h * c["moe_intermediate_size"]
    total = layers * (attn + 2 * h) + indexer_layers * indexer
    total += dense * 3 * h * c["intermediate_size"] + (layers - dense) * moe
    return total + h + 2 * c["vocab_size"] * h


@pytest.mark.parametrize(
    ("name", "indexers", "meta"),
    [
        # transformers 5.24 on the meta device (kvplan/sources/catalog/SOURCES-2026.md; re-run for this change)
        ("deepseek-ai__DeepSeek-V3.2", 61, 671_877_929_216),
        ("deepseek-ai__DeepSeek-V3.2-Exp", 61, 671_877_929_216),
        ("zai-org__GLM-5", 78, 743_911_199_232),
        ("zai-org__GLM-5.1", 78, 743_911_199_232),
        ("zai-org__GLM-5.2", 21, 743_377_000_704),  # 57 "shared" layers build no indexer
    ],
)
def test_dsa_meta_counts(name, indexers, meta):
    config = load_config(name)
    assert _dsa_count(config, indexers) == meta
    assert count_parameters(config) == meta


def test_deepseek_v32_fp8_built_by_hand():
    """DeepSeek-V3's fp8 layout plus the indexer: wq_b and wk fp8 with 128x128 block scales; k_norm and
    weights_proj unquantized (transformers `_keep_in_fp32_modules = ["indexer.weights_proj"]`; vLLM
    deepseek_v2.py:860-862: "weights_proj is stored in BF16")."""
    h, layers = 7168, 61
    indexer = _fp8_block(64 * 128, 1536) + _fp8_block(128, h) + 2 * (2 * 128 + 64 * h)
    expected = weight_bytes(load_config("deepseek-ai__DeepSeek-V3")) + layers * indexer
    assert weight_bytes(load_config("deepseek-ai__DeepSeek-V3.2")) == expected


def test_glm_4_9b_matches_published_count():
    # GLM-4-9B-Chat (remote code modeling_chatglm.py) reports 9399951360 parameters when loaded.
    h, layers, ffn, vocab, qkv = 4096, 40, 13696, 151552, 4096 + 2 * 2 * 128
    per_layer = h * qkv + qkv + h * h + h * 2 * ffn + ffn * h + 2 * h
    assert layers * per_layer + h + 2 * vocab * h == 9_399_951_360
    assert count_parameters(load_config("THUDM__glm-4-9b-chat")) == 9_399_951_360


def test_internlm2_matches_published_count():
    # internlm2(_5)-7b: 7737708544 elements in the published BF16 checkpoint (227 tensors).
    assert _llama(4096, 32, 32, 8, 14336, 92544) == 7_737_708_544
    assert count_parameters(load_config("internlm__internlm2-7b")) == 7_737_708_544
    assert count_parameters(load_config("internlm__internlm2_5-7b")) == 7_737_708_544


def test_minicpm_2b_matches_published_count():
    assert _llama(2304, 40, 36, 36, 5760, 122753, tied=True) == 2_724_880_896
    assert count_parameters(load_config("openbmb__MiniCPM-2B-sft-bf16")) == 2_724_880_896


def test_baichuan2_7b_from_modeling_code():
    # modeling_baichuan.py: W_pack (3h x h), o_proj, SwiGLU MLP, two RMSNorms, NormHead (vocab x h): "7.5B".
    assert _llama(4096, 32, 32, 32, 11008, 125696) == 7_505_973_248
    assert count_parameters(load_config("baichuan-inc__Baichuan2-7B")) == 7_505_973_248


def test_gpt2_small():
    h, layers, vocab, positions = 768, 12, 50257, 1024
    per_layer = 2 * 2 * h + (h * 3 * h + 3 * h) + (h * h + h) + (h * 4 * h + 4 * h) + (4 * h * h + h)
    expected = (vocab + positions) * h + layers * per_layer + 2 * h
    assert count_parameters(load_config("openai-community__gpt2")) == expected


def test_multimodal_config_counts_only_the_language_model():
    config = load_config("google__gemma-3-27b-it")
    assert count_parameters(config) == count_parameters({**config["text_config"], "model_type": "gemma3_text"})


def test_kind_of_every_tensor_is_known():
    roles = {t.role for n in all_config_names() for t in weight_tensors(load_config(n))}
    assert roles <= {"linear", "expert", "router", "embedding", "lm_head", "norm", "bias", "other", "buffer"}


# ---- family resolution ----------------------------------------------------------------------------------------


def test_known_model_types_are_not_assumed():
    for name in all_config_names():
        assert assumed_family(load_config(name)) is None, name


def test_unknown_model_type_uses_architectures_then_llama():
    base = load_config("meta-llama__Llama-3.1-8B")
    guessed = {**base, "model_type": "my_llama", "architectures": ["Qwen2ForCausalLM"]}
    assert assumed_family(guessed) == "qwen2"
    assert count_parameters(guessed) == count_parameters({**base, "model_type": "qwen2"})
    unknown = {**base, "model_type": "my_llama", "architectures": ["MyLlamaForCausalLM"]}
    assert assumed_family(unknown) == "llama"
    assert count_parameters(unknown) == 8_030_261_248


def test_missing_field_raises_config_error_naming_it():
    config = {k: v for k, v in load_config("meta-llama__Llama-3.1-8B").items() if k != "hidden_size"}
    with pytest.raises(ConfigError, match="hidden_size"):
        count_parameters(config)


def test_module_imports_no_torch():
    code = "import sys, kvplan.weights.tensors\nassert not {'torch', 'transformers'} & set(sys.modules)"
    subprocess.run([sys.executable, "-c", code], check=True)


# ---- weight bytes ----------------------------------------------------------------------------------------------


# quantization_config may sit in the text config only (Kimi-K2.5/K2.6): look through the wrapper
@pytest.mark.parametrize(
    "name", [n for n in all_config_names() if "quantization_config" not in text_config(load_config(n))]
)
def test_unquantized_bytes_are_params_times_dtype(name):
    """Every stored tensor at the config's dtype: the parameters plus the buffers checkpoints store (DeepSeek's,
    GLM-5's and Nemotron-H's router `e_score_correction_bias`), except the tensors whose modelling code fixes their
    dtype (the fp32 routers and router buffers of glm4_moe and hunyuan: tests/weights/test_attention_families_2026.py
    holds them to transformers')."""
    config = load_config(name)
    dtype = {"float32": 4, "float16": 2, "bfloat16": 2}[config.get("torch_dtype", config.get("dtype", "bfloat16"))]
    tensors = weight_tensors(config)
    own = {t.name: int(DTYPES[t.dtype]) for t in tensors if t.dtype is not None}  # the tensors' own dtypes
    assert {t.role for t in tensors if t.name in own or t.role == "buffer"} <= {"router", "buffer"}
    assert count_parameters(config) == sum(t.numel for t in tensors if t.role != "buffer")
    assert weight_bytes(config) == sum(t.numel * own.get(t.name, dtype) for t in tensors)
    assert weight_bytes(config, dtype_bytes=1) == sum(t.numel * own.get(t.name, 1) for t in tensors)


def test_olmo2_is_stored_in_float32():
    config = load_config("allenai__OLMo-2-1124-7B")
    assert weight_bytes(config) == 4 * 7_298_617_344
    assert weight_bytes(config, dtype_bytes=2) == 2 * 7_298_617_344


def _awq_bytes(out: int, inp: int, group: int = 128) -> int:
    """AutoAWQ GEMM: qweight int32 [in, out/8], qzeros int32 [in/g, out/8], scales fp16 [in/g, out]."""
    return inp * (out // 8) * 4 + (inp // group) * (out // 8) * 4 + (inp // group) * out * 2


def test_yi_34b_awq_built_by_hand():
    h, inter, layers, vocab, q, kv = 7168, 20480, 60, 64000, 56 * 128, 8 * 128
    shapes = [(q, h), (kv, h), (kv, h), (h, q), (inter, h), (inter, h), (h, inter)]
    fp16 = 2 * (2 * vocab * h + 2 * layers * h + h)  # embeddings, lm_head and norms stay float16
    expected = layers * sum(_awq_bytes(o, i) for o, i in shapes) + fp16
    assert expected == 19_225_737_216
    assert weight_bytes(load_config("01-ai__Yi-34B-Chat-4bits")) == expected


def _fp8_block(out: int, inp: int) -> int:
    return out * inp + 4 * math.ceil(out / 128) * math.ceil(inp / 128)  # fp8 weight + fp32 scale per 128x128 block


def test_deepseek_v3_fp8_built_by_hand():
    h, layers, dense, experts, vocab = 7168, 61, 3, 256, 129280
    attn = _fp8_block(1536, h) + _fp8_block(24576, 1536) + _fp8_block(576, h) + _fp8_block(32768, 512)
    attn += _fp8_block(h, 16384)
    mlp = lambda inter: 2 * _fp8_block(inter, h) + _fp8_block(h, inter)  # noqa: E731
    moe = experts * mlp(2048) + mlp(2048)
    bf16 = 2 * vocab * h + layers * (2 * h + 1536 + 512) + h + (layers - dense) * (experts * h + experts)
    expected = layers * attn + dense * mlp(18432) + (layers - dense) * moe + 2 * bf16
    assert weight_bytes(load_config("deepseek-ai__DeepSeek-V3")) == expected
    assert weight_bytes(load_config("deepseek-ai__DeepSeek-R1")) == expected


def test_gpt_oss_mxfp4_matches_published_checkpoints():
    # Tensor bytes of the published safetensors (gpt-oss-20b: model.safetensors.index.json total_size).
    assert weight_bytes(load_config("openai__gpt-oss-120b")) == 65_248_815_744
    assert weight_bytes(load_config("openai__gpt-oss-20b")) == 13_761_264_768


TINY_SHAPES = [(256, 256), (128, 256), (128, 256), (256, 256), (512, 256), (512, 256), (256, 512)]
TINY_REST = 2 * (2 * 1000 * 256 + 2 * 2 * 256 + 256)  # embeddings, lm_head, norms in bf16


def test_gptq_with_a_skipped_module():
    qc = {"quant_method": "gptq", "bits": 4, "group_size": 64, "modules_to_not_convert": ["model.layers.1.mlp"]}

    def gptq(out, inp):
        groups = inp // 64
        return (inp // 8) * out * 4 + groups * (out // 8) * 4 + groups * out * 2 + inp * 4

    mlp_bf16 = 2 * sum(o * i for o, i in TINY_SHAPES[4:])
    expected = sum(gptq(o, i) for o, i in TINY_SHAPES) + sum(gptq(o, i) for o, i in TINY_SHAPES[:4]) + mlp_bf16
    assert weight_bytes({**TINY, "quantization_config": qc}) == expected + TINY_REST


def test_compressed_tensors_w4a16_and_w8a8():
    w4 = {"num_bits": 4, "type": "int", "strategy": "group", "group_size": 128, "symmetric": True}
    qc = {
        "quant_method": "compressed-tensors",
        "format": "pack-quantized",
        "ignore": ["lm_head"],
        "config_groups": {"group_0": {"targets": ["Linear"], "weights": w4}},
    }
    packed = sum(o * i // 2 + 8 + o * (i // 128) * 2 for o, i in TINY_SHAPES)  # int32-packed + shape + bf16 scales
    assert weight_bytes({**TINY, "quantization_config": qc}) == 2 * packed + TINY_REST
    w8 = {"num_bits": 8, "type": "int", "strategy": "channel", "symmetric": True}
    qc8 = {
        "quant_method": "compressed-tensors",
        "format": "int-quantized",
        "ignore": ["re:.*down_proj$"],
        "config_groups": {"group_0": {"targets": ["Linear"], "weights": w8}},
    }
    int8 = sum(o * i + 2 * o for o, i in TINY_SHAPES[:6]) + 2 * 256 * 512
    assert weight_bytes({**TINY, "quantization_config": qc8}) == 2 * int8 + TINY_REST


def test_fp8_per_tensor_scale_without_blocks():
    qc = {"quant_method": "fp8", "activation_scheme": "dynamic"}
    expected = 2 * sum(o * i + 4 for o, i in TINY_SHAPES) + TINY_REST
    assert weight_bytes({**TINY, "quantization_config": qc}) == expected


def test_unknown_quant_method_is_refused():
    with pytest.raises(UnsupportedArchitecture, match="hqq"):
        weight_bytes({**TINY, "quantization_config": {"quant_method": "hqq"}})


def test_bad_dtype_and_dtype_bytes():
    with pytest.raises(ConfigError, match="torch_dtype"):
        weight_bytes({**TINY, "torch_dtype": "complex32"})
    with pytest.raises(UsageError):
        weight_bytes(TINY, dtype_bytes=0)


def _v4_meta_bytes(config: dict, quantized: bool) -> tuple[int, int]:
    """(bytes of every parameter and persistent buffer, fp8 block scales) of DeepseekV4ForCausalLM on meta, the
    FP8 / FP4 storage put in by transformers' own quantizer (as `from_pretrained` does before loading)."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("transformers")
    from transformers import AutoModelForCausalLM
    from transformers.quantizers.auto import AutoHfQuantizer

    from kvplan.profiling.ground_truth import hf_config_from_dict

    hf = hf_config_from_dict(config)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(hf, dtype=torch.bfloat16)
    if quantized:
        AutoHfQuantizer.from_config(hf.quantization_config, pre_quantized=True).preprocess_model(model)
    persistent = dict(model.named_buffers())
    persistent = {n: b for n, b in persistent.items() if "inv_freq" not in n}  # rotary tables are not stored
    held = sum(p.numel() * p.element_size() for p in model.parameters())
    held += sum(b.numel() * b.element_size() for b in persistent.values())
    scales = sum(p.numel() for n, p in model.named_parameters() if n.endswith(".weight_scale_inv"))
    return held, scales


@pytest.mark.torch
@pytest.mark.slow
def test_deepseek_v4_bytes_match_transformers_tensors():
    """DeepSeek-V4-Flash: float32 norms / hyper-connections / sinks / position biases, the int64 hash-routing
    table and the bf16 compressor projections, with (FP8 linears, FP4 experts with UE8M0 row scales) and without
    quantization, equal transformers' tensors byte for byte, except the FP8 block scales: kvplan keeps them
    fp32 (the V3 checkpoints) where transformers allocates UE8M0, 3 bytes less each (a 1 MB difference)."""
    config = load_config("deepseek-ai__DeepSeek-V4-Flash")
    held, scales = _v4_meta_bytes(config, quantized=True)
    assert weight_bytes(config) == held + 3 * scales
    unquantized = {k: v for k, v in config.items() if k != "quantization_config"}
    held, scales = _v4_meta_bytes(unquantized, quantized=False)
    assert scales == 0 and weight_bytes(unquantized) == held
