"""Kimi Linear / Kimi K3 and the MiniMax families (issue 12): what the shape readers make of the real configs.

Expectations are written from the modelling code's own arithmetic (cited per test), not from kvplan's output."""

from __future__ import annotations

import pytest

from kvplan.core import specs as L
from kvplan.core.shapes import model_shape
from kvplan.errors import UnsupportedArchitecture

from conftest import load_config


def test_kimi_k3_reads_kda_and_mla_layers_from_linear_attn_config():
    """The kimi_k3 wrapper's text config (kimi_linear): `linear_attn_config` lists 1-indexed KDA and full layers
    (transformers configuration_kimi_linear.py `layer_types[layer - 1]`; SGLang configs/kimi_linear.py
    `(layer_idx + 1) in kda_layers`). A KDA layer keeps a conv state over q, k and v (proj + 2 x proj_k channels,
    vLLM model_executor/layers/mamba/mamba_utils.py:311-314) and a heads x head_dim x head_dim state (:318); the
    full layers are MLA (kv_lora_rank + qk_rope_head_dim per token, vLLM models/kimi_k3/nvidia/mla.py:160)."""
    config = load_config("moonshotai__Kimi-K3")
    text = config["text_config"]
    linear = text["linear_attn_config"]
    shape = model_shape(config)
    assert shape.num_layers == text["num_hidden_layers"]
    heads, dim = linear["num_heads"], linear["head_dim"]
    for i, (cache,) in enumerate(shape.layers):
        if i + 1 in linear["kda_layers"]:
            assert isinstance(cache, L.RecurrentState) and cache.family == "kda"
            assert cache.conv_channels == heads * dim + 2 * heads * dim
            assert cache.conv_kernel == linear["short_conv_kernel_size"]
            assert cache.ssm_shape == (heads, dim, dim)
            assert cache.gate_lower_bound == linear["gate_lower_bound"]
        else:
            assert i + 1 in linear["full_attn_layers"]
            assert cache == L.MlaLatent(text["kv_lora_rank"], text["qk_rope_head_dim"])
    assert not shape.assumptions
    assert shape.hidden_size == 7168  # read, no "not divisible by num_attention_heads" error any more


def test_kimi_linear_layer_lists_must_be_distinct_and_in_range():
    config = load_config("synthetic/kimi_linear")
    config["linear_attn_config"] = {**config["linear_attn_config"], "full_attn_layers": [1, 2, 5]}
    with pytest.raises(Exception, match="kda_layers / full_attn_layers"):
        model_shape(config)


def test_kimi_linear_without_linear_attn_config_uses_transformers_defaults():
    """transformers KimiLinearConfig: linear_num_heads 32, linear_head_dim 128, linear_conv_kernel_dim 4, and
    layer_types "full_attention if i and i % 4 == 0" (configuration_kimi_linear.py __post_init__)."""
    config = {k: v for k, v in load_config("synthetic/kimi_linear").items() if k != "linear_attn_config"}
    shape = model_shape(config)
    kinds = [layer[0].kind for layer in shape.layers]
    assert kinds == [L.STATE, L.STATE, L.STATE, L.STATE, L.MLA]
    state = shape.layers[0][0]
    assert isinstance(state, L.RecurrentState)
    assert (state.conv_channels, state.conv_kernel, state.ssm_shape) == (3 * 32 * 128, 4, (32, 128, 128))
    assert state.gate_lower_bound is None


@pytest.mark.parametrize("name", ["MiniMaxAI__MiniMax-M2.5", "MiniMaxAI__MiniMax-M2.7"])
def test_minimax_m2_is_gqa_full_attention_on_every_layer(name):
    """MiniMax-M2 builds one GQA attention per layer (transformers modeling_minimax_m2.py:288-291, vLLM
    model_executor/models/minimax_m2.py:204-208); M2.7's attn_type_list is all 1s."""
    config = load_config(name)
    shape = model_shape(config)
    kv, hd = config["num_key_value_heads"], config["head_dim"]
    assert shape.layers == tuple((L.FullAttention(kv, hd, hd),) for _ in range(config["num_hidden_layers"]))
    assert not any("llama-like" in a for a in shape.assumptions)  # a family reader, not the llama guess


def test_minimax_m2_refuses_lightning_entries_in_attn_type_list():
    config = load_config("MiniMaxAI__MiniMax-M2.7")
    config["attn_type_list"] = [0] + config["attn_type_list"][1:]
    with pytest.raises(UnsupportedArchitecture, match="attn_type_list"):
        model_shape(config)


def test_minimax_m3_is_refused_naming_the_index_key_cache():
    with pytest.raises(UnsupportedArchitecture, match="index-key side cache") as info:
        model_shape(load_config("MiniMaxAI__MiniMax-M3"))
    assert "MiniMaxM3ForCausalLM" in str(info.value)  # the architecture neither vLLM nor SGLang registers


def test_minimax_m3_vl_wrapper_is_refused_by_name_not_read_as_its_text_alone():
    """transformers 5.24 knows MiniMax-M3 as minimax_m3_vl around a minimax_m3_vl_text model (configuration_
    minimax_m3_vl.py), vLLM 0.33 as minimax_m3_vl (transformers_utils/config.py:155): both spellings reach the
    same refusal."""
    text = {**load_config("MiniMaxAI__MiniMax-M3"), "model_type": "minimax_m3_vl_text"}
    for config in (text, {"model_type": "minimax_m3_vl", "text_config": text, "vision_config": {}}):
        with pytest.raises(UnsupportedArchitecture, match="index-key side cache"):
            model_shape(config)


def test_minimax_lightning_layers_hold_a_heads_x_dim_x_dim_state():
    """MiniMax-01 lightning attention caches `attn_weights_inter`, [batch, heads, head_dim, head_dim]
    (transformers modeling_minimax.py:203-210), and no convolution; full layers are GQA."""
    config = load_config("synthetic/minimax")
    shape = model_shape(config)
    heads, hd = config["num_attention_heads"], config["head_dim"]
    for kind, (cache,) in zip(config["layer_types"], shape.layers, strict=True):
        if kind == "linear_attention":
            assert cache == L.RecurrentState("lightning", 0, 1, (heads, hd, hd))
        else:
            assert cache == L.FullAttention(config["num_key_value_heads"], hd, hd)


def test_minimax_reads_attn_type_list_when_layer_types_is_absent():
    config = {k: v for k, v in load_config("synthetic/minimax").items() if k != "layer_types"}
    config["attn_type_list"] = [0, 1, 0, 1]
    kinds = [layer[0].kind for layer in model_shape(config).layers]
    assert kinds == [L.STATE, L.FULL, L.STATE, L.FULL]
