"""The attention-only families of the 2025-26 catalog (issue 12): Llama 4, SmolLM3, GLM-4.5 (glm4_moe),
Devstral 2 (ministral3, fp8 with static activation scales), Kimi-K2.5/K2.6 (kimi_k25 wrapper) and
Hunyuan-A13B (remote code). The catalog configs themselves are checked by the catalog-walking tests
(tests/weights/test_weights.py, tests/profiling/test_against_transformers.py); here: the switches the catalog
configs do not exercise, against transformers' meta-device builds, and Hunyuan against its own modelling code.

Hunyuan-A13B's code is Tencent-Hunyuan/Hunyuan-A13B (GitHub, commit 2798f3c) models/hunyuan.py (HunYuanModel,
HunYuanMoEV1ForCausalLM: the classes `auto_map` names) and models/modeling_hunyuan.py (HunYuanDecoderLayer,
HunYuanAttention, HunYuanMoE, HunYuanMLP, HunYuanTopKGate); transformers 5.24 cannot build model_type "hunyuan".
"""

from __future__ import annotations

import pytest

from kvplan.core import specs as L
from kvplan.core.families import family_of
from kvplan.core.shapes import model_shape
from kvplan.planning.estimate import estimate
from kvplan.weights.stored import weight_bytes
from kvplan.weights.tensors import assumed_family, count_parameters, uncounted_parts, weight_tensors

from conftest import load_config

SMALL = {
    "hidden_size": 256,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "num_hidden_layers": 4,
    "intermediate_size": 512,
    "vocab_size": 1000,
}


def _meta_params(model_type: str, fields: dict) -> int:
    """Parameters of transformers' AutoModelForCausalLM for `fields`, built on the meta device."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    transformers.logging.set_verbosity_error()
    cfg = transformers.AutoConfig.for_model(model_type, **fields)
    with torch.device("meta"):
        model = transformers.AutoModelForCausalLM.from_config(cfg)
    return sum(p.numel() for p in model.parameters())


# Each omits or flips a field the catalog configs set, so the family's defaults and switches are exercised.
SWITCHES = {
    # Maverick-style interleave (dense layers of intermediate_size_mlp), biases, no head_dim (default 128, not 64)
    "llama4_text-interleave-bias-default-head-dim": (
        "llama4_text",
        {**SMALL, "interleave_moe_layer_step": 2, "attention_bias": True, "num_local_experts": 4},
    ),
    "llama4_text-moe-layers-listed": (
        "llama4_text",
        {**SMALL, "moe_layers": [0, 3], "intermediate_size_mlp": 384, "head_dim": 32, "use_qk_norm": False},
    ),
    # omitted: intermediate_size_mlp / num_local_experts (Llama4TextConfig defaults 16384 / 16)
    "llama4_text-defaults": ("llama4_text", {**SMALL, "head_dim": 64, "interleave_moe_layer_step": 4}),
    # SmolLM3Config ties embeddings unless told otherwise; both bias switches
    "smollm3-default-tied-biases": ("smollm3", {**SMALL, "attention_bias": True, "mlp_bias": True, "pad_token_id": 0}),
    "smollm3-untied": ("smollm3", {**SMALL, "tie_word_embeddings": False, "pad_token_id": 0}),
    # omitted first_k_dense_replace / n_shared_experts / n_routed_experts / moe_intermediate_size (1 / 1 / 128 / 1408)
    "glm4_moe-defaults": ("glm4_moe", {**SMALL, "head_dim": 64}),
    "glm4_moe-switches": (
        "glm4_moe",
        {
            **SMALL,
            "head_dim": 48,
            "attention_bias": True,
            "use_qk_norm": True,
            "first_k_dense_replace": 2,
            "n_shared_experts": 2,
            "n_routed_experts": 4,
            "moe_intermediate_size": 64,
        },
    ),
    "glm4_moe-no-bias-no-qk-norm": (
        "glm4_moe",
        {**SMALL, "first_k_dense_replace": 0, "n_routed_experts": 4, "moe_intermediate_size": 64},
    ),
    # Ministral3Config: head_dim 128 when omitted (not 256 / 4 = 64)
    "ministral3-default-head-dim": ("ministral3", dict(SMALL)),
    "ministral3-head-dim": ("ministral3", {**SMALL, "head_dim": 80, "tie_word_embeddings": True}),
}


@pytest.mark.torch
@pytest.mark.parametrize("name", sorted(SWITCHES))
def test_switches_match_transformers_meta_count(name):
    model_type, fields = SWITCHES[name]
    config = {"model_type": model_type, **fields}
    assert assumed_family(config) is None
    assert count_parameters(config) == _meta_params(model_type, fields)


def _meta_state_bytes(config: dict) -> int:
    """Bytes of transformers' model for a raw config, built on the meta device in bf16: its parameters (tied ones
    once) and persistent buffers, each at its own dtype."""
    ground_truth = pytest.importorskip("kvplan.profiling.ground_truth")
    model = ground_truth.build_model(ground_truth.hf_config_from_dict(config), dtype="bfloat16", device="meta")
    persistent = set(model.state_dict())
    tensors = list(model.parameters()) + [b for n, b in model.named_buffers() if n in persistent]
    return sum(t.numel() * t.element_size() for t in tensors)


@pytest.mark.torch
@pytest.mark.parametrize(
    "name",
    [
        "zai-org__GLM-4.5",
        "glm4_moe-switches",
        "glm4_moe-defaults",
        "HuggingFaceTB__SmolLM3-3B",
        "meta-llama__Llama-4-Scout-17B-16E-Instruct",
        "meta-llama__Llama-4-Maverick-17B-128E-Instruct",
        "allenai__Olmo-3.1-32B-Instruct",
    ],
)
def test_bytes_equal_transformers_state_dict(name):
    """GLM-4.5's router weight and e_score_correction_bias are float32 in transformers (Glm4MoeTopkRouter) and in
    vLLM 0.33 (glm4_moe.py:141-150, GateLinear params_dtype=torch.float32): kvplan's bf16 figure keeps them at
    4 bytes; every other tensor at the model's 2."""
    config = {"model_type": SWITCHES[name][0], **SWITCHES[name][1]} if name in SWITCHES else load_config(name)
    assert weight_bytes(config, dtype_bytes=2) == _meta_state_bytes(config)


def test_llama4_interleave_alternates_moe_and_dense_layers():
    config = load_config("meta-llama__Llama-4-Maverick-17B-128E-Instruct")  # interleave_moe_layer_step 2
    names = {t.name for t in weight_tensors(config)}
    assert "model.layers.1.feed_forward.router.weight" in names
    assert "model.layers.0.feed_forward.router.weight" not in names
    assert "model.layers.0.feed_forward.down_proj.weight" in names  # dense MLP of intermediate_size_mlp
    dense = next(t for t in weight_tensors(config) if t.name == "model.layers.0.feed_forward.down_proj.weight")
    assert dense.shape == (5120, 16384)


# ---- Hunyuan-A13B, from its own modelling code ------------------------------------------------------------------


def _hunyuan_a13b_by_hand() -> int:
    """modeling_hunyuan.py: HunYuanAttention (q,k,v,o without bias: attention_bias false; head_dim = 4096 / 32;
    query_layernorm + key_layernorm of head_dim with use_qk_norm), HunYuanMoE (num_experts=64 HunYuanMLP of
    intermediate_size 3072, shared_mlp of 3072 x num_shared_expert[0] = 1 with use_mixed_mlp_moe, gate.wg
    64 x 4096), two RMSNorms; hunyuan.py: embed_tokens, final norm, lm_head tied (tie_word_embeddings true)."""
    h, layers, kv, hd, inter, experts, vocab = 4096, 32, 8, 128, 3072, 64, 128167
    attention = 2 * h * h + 2 * h * kv * hd + 2 * hd
    mlp = 3 * h * inter
    moe = mlp + experts * h + experts * mlp
    return layers * (attention + moe + 2 * h) + vocab * h + h


def test_hunyuan_a13b_matches_its_modelling_code():
    config = load_config("tencent__Hunyuan-A13B")
    assert assumed_family(config) is None
    assert _hunyuan_a13b_by_hand() == 80_393_183_232  # "80B total parameters" (the model card)
    assert count_parameters(config) == 80_393_183_232
    gates = 32 * 64 * 4096  # HunYuanTopKGate: nn.Linear(hidden_size, num_experts, dtype=torch.float32)
    assert weight_bytes(config) == 2 * (80_393_183_232 - gates) + 4 * gates  # bfloat16 but the fp32 gates


def test_hunyuan_head_dim_is_hidden_over_heads():
    """HunYuanAttention: `self.head_dim = self.hidden_size // self.num_heads` (attention_head_dim is not read)."""
    config = {**load_config("tencent__Hunyuan-A13B"), "attention_head_dim": 64}
    assert {(c.head_dim_k, c.num_kv_heads) for c in model_shape(config).caches()} == {(128, 8)}
    assert count_parameters(config) == 80_393_183_232


def _tiny_hunyuan(**overrides) -> dict:
    return {
        "model_type": "hunyuan",
        **SMALL,
        "num_experts": 4,
        "use_mixed_mlp_moe": True,
        "num_shared_expert": [2] * 4,
        "use_qk_norm": True,
        "tie_word_embeddings": True,
        **overrides,
    }


def test_hunyuan_cross_layer_attention_layers_have_no_kv_projections():
    """With use_cla, layer i is a "cross" layer when i % cla_share_factor != 0 and builds no k_proj / v_proj
    (modeling_hunyuan.py:559, HunYuanAttention.__init__: `if self.attention_type == 'self':` around k_proj, v_proj)."""
    h, hd, kv, inter, experts, vocab = 256, 64, 2, 512, 4, 1000
    attention = 2 * h * h + 2 * hd  # q, o, query/key layernorm
    kv_proj = 2 * h * kv * hd
    mlp = 3 * h * inter
    per_layer = attention + (2 * mlp) + experts * h + experts * mlp + 2 * h  # shared_mlp is 2 x intermediate
    expected = 4 * per_layer + 2 * kv_proj + vocab * h + h  # layers 0 and 2 keep k_proj / v_proj
    config = _tiny_hunyuan(use_cla=True, cla_share_factor=2)
    assert count_parameters(config) == expected
    assert count_parameters(_tiny_hunyuan()) == expected + 2 * kv_proj
    names = {t.name for t in weight_tensors(config)}
    assert "model.layers.2.self_attn.k_proj.weight" in names
    assert "model.layers.3.self_attn.k_proj.weight" not in names


def test_hunyuan_cross_layers_still_cache_kv():
    """The cross layers reuse the K/V projections of the last self layer but still rotate them and call
    `past_key_value.update(key_states, value_states, self.layer_idx, ...)` at their own index
    (modeling_hunyuan.py:684, and the flash-attention / sdpa classes at :795 and :996); SGLang 0.5.23 likewise
    runs every cross layer's `self.attn(q, k, v, forward_batch)` through its own RadixAttention layer
    (sglang/srt/models/hunyuan.py:333, :380): every layer holds a full K/V cache of num_key_value_heads x
    head_dim."""
    shape = model_shape(_tiny_hunyuan(use_cla=True, cla_share_factor=2))
    assert list(shape.layers) == [(L.FullAttention(2, 64, 64),)] * 4


def test_hunyuan_dense_and_classification_head():
    """num_experts 1 (the default): one HunYuanMLP per layer, and no MoE for the engines; add_classification_head:
    no final norm, pool_head + pool_head2."""
    h, hd, kv, inter, vocab = 256, 64, 2, 512, 1000
    per_layer = 2 * h * h + 2 * h * kv * hd + 3 * h * inter + 2 * h
    dense = {"model_type": "hunyuan", **SMALL}
    assert count_parameters(dense) == 4 * per_layer + h + 2 * vocab * h  # untied by default
    assert "moe" not in model_shape(dense).features and "moe" in model_shape(_tiny_hunyuan()).features
    head = {**dense, "add_classification_head": True, "class_num": 3}
    assert count_parameters(head) == 4 * per_layer + 2 * vocab * h + h * h + 3 * h


@pytest.mark.torch
def test_hunyuan_a13b_dimensions_in_transformers_port():
    """transformers 5.24's hunyuan_v1_moe port of the same model (its own config fields: head_dim, an int
    moe_topk; shared_mlp of intermediate_size) builds the A13B's dimensions to the same count on the meta device,
    and caches K/V of 8 x 128 in every one of the 32 layers."""
    ground_truth = pytest.importorskip("kvplan.profiling.ground_truth")
    transformers = pytest.importorskip("transformers")
    config = load_config("tencent__Hunyuan-A13B")
    keys = ("hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads")
    port = {k: config[k] for k in keys + ("vocab_size", "num_experts", "tie_word_embeddings")}
    port.update(head_dim=config["attention_head_dim"], moe_topk=8)
    assert _meta_params("hunyuan_v1_moe", port) == count_parameters(config)
    hf = transformers.AutoConfig.for_model("hunyuan_v1_moe", **port)
    measured = ground_truth.measure_forward_cache(hf, seq_len=37, device="meta")
    assert [m["nbytes"] for m in measured] == [2 * 8 * 128 * 37 * 2] * 32  # K and V, bf16
    assert list(model_shape(config).layers) == [(L.FullAttention(8, 128, 128),)] * 32


# ---- fp8 with static activation scales (Devstral 2) ------------------------------------------------------------


@pytest.mark.torch
@pytest.mark.parametrize("name", ["mistralai__Devstral-2-123B-Instruct", "mistralai__Devstral-Small-2-24B-Instruct"])
def test_devstral_fp8_bytes_equal_transformers_fp8_model(name):
    """transformers' FineGrainedFP8 replacement of the text model on the meta device (what from_pretrained builds
    for this quantization_config): fp8 weights, an fp32 weight_scale_inv and, for activation_scheme "static", an
    fp32 activation_scale per Linear; embeddings, norms and lm_head (modules_to_not_convert) in bf16."""
    ground_truth = pytest.importorskip("kvplan.profiling.ground_truth")
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    from transformers.integrations.finegrained_fp8 import replace_with_fp8_linear

    transformers.logging.set_verbosity_error()
    config = load_config(name)
    qc = config["quantization_config"]
    fp8 = transformers.FineGrainedFP8Config(
        activation_scheme=qc["activation_scheme"],
        weight_block_size=qc["weight_block_size"],
        modules_to_not_convert=qc["modules_to_not_convert"],
    )
    with torch.device("meta"):
        model = transformers.AutoModelForCausalLM.from_config(
            ground_truth.hf_config_from_dict(config), dtype=torch.bfloat16
        )
        model = replace_with_fp8_linear(
            model, modules_to_not_convert=qc["modules_to_not_convert"], quantization_config=fp8, pre_quantized=True
        )
    stored = sum(p.numel() * p.element_size() for p in model.parameters())
    assert weight_bytes(config) == stored
    dynamic = {**config, "quantization_config": {**qc, "activation_scheme": "dynamic"}}
    matrices = sum(1 for t in weight_tensors(config) if t.role == "linear")
    assert weight_bytes(config) - weight_bytes(dynamic) == 4 * matrices


# ---- wrappers: Kimi-K2.5/K2.6 and Devstral-Small-2 (mistral3) ---------------------------------------------------


def test_kimi_k25_is_the_deepseek_v3_family():
    """Kimi_K25Config builds its text_config as deepseek_v3 (transformers models/kimi_k25/configuration_kimi_k25.py
    sub_configs_defaults; kimi_k2 is rewritten to deepseek_v3)."""
    assert family_of("kimi_k25").name == "deepseek_v3"
    for name in ("moonshotai__Kimi-K2.5", "moonshotai__Kimi-K2.6"):
        config = load_config(name)
        assert assumed_family(config) is None
        assert count_parameters(config) == count_parameters({**config["text_config"], "model_type": "deepseek_v3"})


def test_kimi_k25_int4_experts_built_by_hand():
    """Kimi-K2.5's text_config quantization_config (compressed-tensors pack-quantized, int4 groups of 32, bf16
    scales) ignores self_attn, shared_experts, the dense MLP (`re:.*mlp\\.(gate|up|gate_up|down)_proj.*`) and
    lm_head: only the 60 x 384 routed experts are packed; the rest is bf16 (plus the router's bias buffer)."""
    h, inter, moe_layers, experts = 7168, 2048, 60, 384

    def packed(out: int, inp: int) -> int:  # int32-packed int4 values + weight_shape pair + bf16 group scales
        return out * inp // 2 + 8 + out * (inp // 32) * 2

    routed = moe_layers * experts * (2 * packed(inter, h) + packed(h, inter))
    routed_params = moe_layers * experts * 3 * inter * h
    rest = 2 * (1_026_408_209_408 - routed_params) + 2 * moe_layers * experts  # bf16, e_score_correction_bias
    for name in ("moonshotai__Kimi-K2.5", "moonshotai__Kimi-K2.6"):  # K2.6 ignores lm_head by regex instead
        assert weight_bytes(load_config(name)) == routed + rest == 594_205_858_816


TOWER = "this wrapper's `vision_config` tower and its projector are"
WRAPPER_NOTES = {
    "moonshotai__Kimi-K2.5": TOWER,
    "moonshotai__Kimi-K2.6": TOWER,
    "mistralai__Devstral-Small-2-24B-Instruct": TOWER,
    # both Llama 4 catalog configs carry the Hub's vision_config (kvplan.weights.encoders counts it beside the language
    # model; Maverick's is aiconfigurator@64c5ddb6's copy of the Hub file)
    "meta-llama__Llama-4-Scout-17B-16E-Instruct": TOWER,
    "meta-llama__Llama-4-Maverick-17B-128E-Instruct": TOWER,
}


@pytest.mark.parametrize("name", sorted(WRAPPER_NOTES))
def test_wrapper_weights_say_the_vision_tower_is_not_counted(name):
    note = f"weights: the language model only (text_config); {WRAPPER_NOTES[name]} not counted"
    assert uncounted_parts(load_config(name)) == (note,)
    est = estimate(name.replace("__", "/"), seq_len=1024, offline=True)
    assert est.weights_source == "analytic"
    assert note in est.notes


def test_plain_language_models_carry_no_wrapper_note():
    assert uncounted_parts(load_config("mistralai__Devstral-2-123B-Instruct")) == ()
    assert not any("not counted" in n for n in estimate("zai-org/GLM-4.5", seq_len=1024, offline=True).notes)


# ---- shapes ------------------------------------------------------------------------------------------------------


def test_smollm3_derives_sliding_layers_on_nope_layers_only():
    """SmolLM3Config.__post_init__: without layer_types, sliding_attention where use_sliding_window, a
    sliding_window and no RoPE (no_rope_layers[i] == 0); otherwise full attention, NoPE layers included."""
    base = {"model_type": "smollm3", **SMALL, "num_hidden_layers": 8, "sliding_window": 16}
    kinds = [type(layer[0]) for layer in model_shape({**base, "use_sliding_window": True}).layers]
    assert kinds == [L.FullAttention] * 3 + [L.SlidingWindow] + [L.FullAttention] * 3 + [L.SlidingWindow]
    assert {type(c) for c in model_shape(base).caches()} == {L.FullAttention}  # use_sliding_window off
    catalog = model_shape(load_config("HuggingFaceTB__SmolLM3-3B"))  # 36 layers, 9 of them NoPE: all cache K/V
    assert catalog.caches() == [L.FullAttention(4, 128, 128)] * 36
