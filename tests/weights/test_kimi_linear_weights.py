"""Kimi Linear and Kimi K3's weights (issue 12): the `kimi_linear` layout.

What transformers 5.24 builds (KimiLinearForCausalLM: KDA with a low-rank output gate, MLA, DeepSeek-style MoE) is
checked against its meta-device count. What only Kimi K3 has (the full-rank KDA gate, the MLA output gate, the
latent MoE, attention residuals) transformers does not build, and its `situ` activation stops transformers from
building K3 at all, so K3 is counted here by hand from vLLM 0.33's modelling code, module by module (the file and
line of each term below), at full size, and its bytes from its `quantization_config` as vLLM loads it."""

from __future__ import annotations

import copy

import pytest

from kvplan.errors import UnsupportedArchitecture
from kvplan.weights.stored import tensors_bytes, weight_bytes
from kvplan.weights.tensors import assumed_family, count_parameters, weight_tensors

from conftest import load_config

K3_SRC = "vllm-0.33.0/vllm/models/kimi_k3/nvidia"
K3 = load_config("moonshotai__Kimi-K3")


def _meta_count(text: dict) -> int:
    """transformers' KimiLinearForCausalLM on the meta device."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    transformers.logging.set_verbosity_error()
    cfg = transformers.AutoConfig.for_model("kimi_linear", **{k: v for k, v in text.items() if k != "model_type"})
    with torch.device("meta"):
        model = transformers.AutoModelForCausalLM.from_config(cfg)
    return sum(p.numel() for p in model.parameters())


def _reduced_k3(layers: int = 4, experts: int = 8, *, k3_only: bool = True) -> dict:
    """K3's text config with few layers (KDA on all but the last, which is MLA) and few experts, its dimensions
    kept. Without `k3_only` the modules transformers does not build are switched off and the activation set to
    silu (no parameters either way), so transformers can build it."""
    text = copy.deepcopy(K3["text_config"])
    text["num_hidden_layers"] = layers
    text["num_experts"] = experts
    text["linear_attn_config"]["kda_layers"] = list(range(1, layers))
    text["linear_attn_config"]["full_attn_layers"] = [layers]
    text.pop("quantization_config")
    if not k3_only:
        text["hidden_act"] = "silu"
        text["linear_attn_config"]["use_full_rank_gate"] = False
        for key in ("mla_use_output_gate", "routed_expert_hidden_size", "attn_res_block_size"):
            text[key] = None
    return text


def _vllm_params(text: dict) -> int:
    """Kimi K3's parameters as vLLM 0.33 builds KimiLinearForCausalLM, less each MoE layer's
    `e_score_correction_bias` (an nn.Parameter in vLLM, model.py:445-447; a buffer in transformers, which kvplan
    follows: it is counted in the bytes)."""
    h, vocab, n = text["hidden_size"], text["vocab_size"], text["num_hidden_layers"]
    lin = text["linear_attn_config"]
    kh, kd, k = lin["num_heads"], lin["head_dim"], lin["short_conv_kernel_size"]
    p = kh * kd
    heads, nope, rope, v = (
        text[x] for x in ("num_attention_heads", "qk_nope_head_dim", "qk_rope_head_dim", "v_head_dim")
    )
    q_rank, kv_rank = text["q_lora_rank"], text["kv_lora_rank"]
    experts, inter, latent = text["num_experts"], text["moe_intermediate_size"], text["routed_expert_hidden_size"]
    assert lin["use_full_rank_gate"] and text["mla_use_output_gate"] and text["latent_moe_use_norm"]
    assert text["moe_layer_freq"] == 1 and text["attn_res_block_size"] and not text["tie_word_embeddings"]
    # kda.py:635-663 in_proj_qkvgfab = q, k, v, g (projection_size each), f_a (head_dim), b (heads); :664 f_b_proj;
    # :671 dt_bias; :678-685 conv1d (3 x projection, 1, kernel); :814 A_log; :860 o_norm; :878 o_proj
    kda = h * (4 * p + kd + kh) + kd * p + p + 3 * p * k + kh + kd + p * h
    # mla.py:222-234 fused_qkv_a_g_proj = q_a (q_lora_rank), kv_a (kv_lora_rank + rope), g (heads x v_head_dim);
    # :252 q_a_layernorm; :253 q_b_proj; :287 kv_a_layernorm; :288 kv_b_proj; :297 o_proj
    mla = h * (q_rank + kv_rank + rope + heads * v) + q_rank + q_rank * heads * (nope + rope)
    mla += kv_rank + kv_rank * heads * (nope + v) + heads * v * h
    # model.py:437-443 gate (GateLinear, hidden -> experts); :449-465 shared experts: KimiMLP of
    # moe_intermediate_size x num_shared_experts (:241 gate_up, :249 down); :477 routed_expert_down_proj, :484
    # routed_expert_norm, :494 routed_expert_up_proj; :543-547 experts of hidden routed_expert_hidden_size (w13 and w2)
    shared = inter * text["num_shared_experts"]
    moe = experts * h + 3 * h * shared + latent * h + latent + h * latent + experts * 3 * inter * latent
    dense = 3 * h * text["intermediate_size"]  # model.py:779 KimiMLP(intermediate_size)
    # model.py:791-793 two norms; :804-821 attn_res: two norms, two hidden -> 1 projections
    per_layer = 2 * h + 2 * h + 2 * h
    kda_layers = len(lin["kda_layers"])
    dense_layers = text["first_k_dense_replace"]  # model.py:701-706
    body = kda_layers * kda + (n - kda_layers) * mla + dense_layers * dense + (n - dense_layers) * moe + n * per_layer
    # model.py:970 embed_tokens; :1004 norm; :1006-1015 output_attn_res_norm and _proj; :1422 lm_head (untied)
    return vocab * h + body + h + 2 * h + vocab * h


def test_synthetic_kimi_linear_matches_transformers():
    config = load_config("synthetic/kimi_linear")
    assert count_parameters(config) == _meta_count(config)


@pytest.mark.parametrize(
    "change",
    [
        {"q_lora_rank": None},  # a full-rank q_proj (transformers KimiLinearAttention, vLLM mla.py:263)
        {"attention_bias": True},  # biases on q_a, kv_a and o (transformers only)
        {"first_k_dense_replace": 2, "num_shared_experts": 2},
        {"tie_word_embeddings": True},  # never tied (`_tied_weights_keys = {}`)
    ],
    ids=["no-q-lora", "attention-bias", "dense-2-shared-2", "tied"],
)
def test_synthetic_kimi_linear_switches_match_transformers(change):
    config = {**load_config("synthetic/kimi_linear"), **change}
    assert count_parameters(config) == _meta_count(config)


def test_kimi_k3_without_its_own_modules_matches_transformers():
    """K3's dimensions (hidden 7168, 96 KDA heads of 128, MLA with q-LoRA, 3072-wide experts, 2 shared) on four
    layers and eight experts, its K3-only modules off: transformers' count."""
    text = _reduced_k3(k3_only=False)
    assert count_parameters(text) == _meta_count(text)


def test_kimi_k3_modules_transformers_lacks_are_counted_from_vllm():
    reduced = _reduced_k3()
    assert count_parameters(reduced) == _vllm_params(reduced)
    # and each K3 module changes the count: none of them is silently ignored
    for key, value in (("mla_use_output_gate", False), ("attn_res_block_size", None), ("latent_moe_use_norm", False)):
        assert count_parameters({**reduced, key: value}) < count_parameters(reduced), key
    latent_off = {**reduced, "routed_expert_hidden_size": None}
    assert count_parameters(latent_off) != count_parameters(reduced)
    low_rank = copy.deepcopy(reduced)
    low_rank["linear_attn_config"]["use_full_rank_gate"] = False
    assert count_parameters(low_rank) != count_parameters(reduced)


def test_kimi_k3_full_size_parameters_follow_vllm():
    assert assumed_family(K3) is None
    assert count_parameters(K3) == _vllm_params(K3["text_config"])


def test_kimi_k3_mxfp4_bytes_as_vllm_loads_them():
    """`quantization_config`: compressed-tensors mxfp4-pack-quantized on every Linear but those its `ignore` names
    (self_attn, shared_experts, the dense mlp, lm_head). vLLM builds the routed experts and the latent MoE's two
    projections with the quant config (model.py:477-499, :543-560), so they are MXFP4: uint8 values [out, in/2] and
    uint8 e8m0 scales [out, in/32] (compressed_tensors_w4a4_mxfp4.py:64-88); the router (GateLinear, :437) and the
    attention-residual projections (quant_config=None, :808-821, :1009-1015) are not. The rest is bf16 but KDA's
    conv1d, dt_bias and A_log and the router bias, which vLLM holds in float32 (kda.py:671-684, :814-816;
    model.py:445-447)."""
    text = K3["text_config"]
    h, lin = text["hidden_size"], text["linear_attn_config"]
    experts, inter, latent = text["num_experts"], text["moe_intermediate_size"], text["routed_expert_hidden_size"]
    moe_layers = text["num_hidden_layers"] - text["first_k_dense_replace"]
    kda_layers, p = len(lin["kda_layers"]), lin["num_heads"] * lin["head_dim"]

    def mxfp4(out: int, inp: int) -> int:
        return out * inp // 2 + out * inp // 32

    quantized = experts * (2 * mxfp4(inter, latent) + mxfp4(latent, inter)) + mxfp4(latent, h) + mxfp4(h, latent)
    quantized_params = experts * 3 * inter * latent + 2 * latent * h
    fp32 = kda_layers * (3 * p * lin["short_conv_kernel_size"] + p + lin["num_heads"])
    bf16 = count_parameters(K3) - moe_layers * quantized_params - fp32
    expected = moe_layers * quantized + 4 * fp32 + 2 * bf16 + 4 * moe_layers * experts  # + the fp32 router bias
    assert weight_bytes(K3) == expected


def test_kimi_k3_quantizes_exactly_the_routed_experts_and_latent_projections():
    """Per tensor of a KDA + MoE layer and an MLA layer: which ones the checkpoint's ignore list leaves at the model
    dtype (or their own float32) and which it stores as MXFP4."""
    layers = ("model.layers.1.", "model.layers.3.")  # KDA + MoE, MLA + MoE
    tensors = [t for t in weight_tensors(K3) if t.name.startswith(layers)]
    quantized = {
        t.name.split(".", 3)[3]
        for t in tensors
        if tensors_bytes(K3, [t]) < t.numel * (4 if t.dtype == "float32" else 2)
    }
    assert quantized == {
        "mlp.experts.gate_proj.weight",
        "mlp.experts.up_proj.weight",
        "mlp.experts.down_proj.weight",
        "mlp.routed_expert_down_proj.weight",
        "mlp.routed_expert_up_proj.weight",
    }


@pytest.mark.parametrize(
    "change,named",
    [
        ({"num_experts": None}, "num_experts"),  # transformers: 256 experts; vLLM: a dense MLP everywhere
        ({"first_k_dense_replace": None}, "first_k_dense_replace"),  # defaults 1 and 0
        ({"moe_layer_freq": 2}, "moe_layer_freq"),  # transformers ignores it
        ({"num_shared_experts": None, "n_shared_experts": 1}, "num_shared_experts"),  # vLLM reads only this one
    ],
)
def test_configs_transformers_and_vllm_build_differently_are_refused(change, named):
    config = {**load_config("synthetic/kimi_linear"), **change}
    with pytest.raises(UnsupportedArchitecture, match=named):
        count_parameters(config)


def test_kimi_k3_estimate_reports_analytic_weights():
    from kvplan.planning.estimate import estimate

    result = estimate("moonshotai/Kimi-K3", seq_len=4096, batch=1, offline=True).to_dict()
    assert result["weights_source"] == "analytic"
    assert result["weights_bytes"] == weight_bytes(K3)
