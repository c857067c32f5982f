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


@pytest.mark.parametrize("wrapped", [False, True])
def test_minimax_m2_refuses_m3_sparse_attention_config(wrapped):
    """An M3 text config labelled minimax_m2 (sglang-0.5.23 srt/configs/minimax_vl.py:15-16), alone or inside the
    minimax_m3_vl wrapper that transformers, vLLM and SGLang build as M3, is refused rather than read as plain GQA
    (which would drop the 57 layers' index keys); `use_sparse_attention: false` is M2's plain attention."""
    text = {**load_config("MiniMaxAI__MiniMax-M3"), "model_type": "minimax_m2"}
    config = {"model_type": "minimax_m3_vl", "text_config": text} if wrapped else text
    with pytest.raises(UnsupportedArchitecture, match="sparse_attention_config") as info:
        model_shape(config)
    assert "minimax_m3_vl_text" in str(info.value.hint)
    text["sparse_attention_config"] = {**text["sparse_attention_config"], "use_sparse_attention": False}
    assert {type(c) for c in model_shape(config).caches()} == {L.FullAttention}


def test_minimax_m3_caches_gqa_kv_everywhere_and_index_keys_on_the_sparse_layers():
    """transformers 5.24 modeling_minimax_m3_vl.py: K/V of num_key_value_heads x head_dim on every layer (:422-424),
    and on the `sparse_attention_freq` layers (configuration_minimax_m3_vl.py __post_init__ -> "minimax_m3_sparse")
    one `sparse_index_dim` key per token for the indexer (:549, :569-570)."""
    config = load_config("MiniMaxAI__MiniMax-M3")
    sparse = config["sparse_attention_config"]
    full = L.FullAttention(config["num_key_value_heads"], config["head_dim"], config["head_dim"])
    keys = L.IndexKeys(sparse["sparse_index_dim"])
    shape = model_shape(config)
    assert shape.layers == tuple((full, keys) if f else (full,) for f in sparse["sparse_attention_freq"])
    assert sum(len(layer) == 2 for layer in shape.layers) == 57 and shape.num_layers == 60
    assert keys.bytes_per_token(2) == 256 and keys.kind == L.INDEX
    assert not shape.assumptions


def test_minimax_m3_layer_types_override_the_sparse_frequency_and_sparse_index_dim_overrides_index_head_dim():
    """MiniMaxM3VLTextConfig.__post_init__: an explicit `layer_types` wins over sparse_attention_freq, and the
    legacy `sparse_index_dim` is set over `index_head_dim`; without it `index_head_dim` is read."""
    config = load_config("MiniMaxAI__MiniMax-M3")
    config["layer_types"] = ["minimax_m3_sparse"] + ["full_attention"] * 59
    config["sparse_attention_config"]["sparse_disable_index_value"] = [1] + [0] * 59
    config["index_head_dim"] = 64
    shape = model_shape(config)
    assert [len(layer) for layer in shape.layers] == [2] + [1] * 59
    assert shape.layers[0][1] == L.IndexKeys(128)
    del config["sparse_attention_config"]["sparse_index_dim"]
    assert model_shape(config).layers[0][1] == L.IndexKeys(64)
    config["layer_types"][1] = "sliding_attention"  # no window exists in M3's attention
    with pytest.raises(UnsupportedArchitecture, match="sliding_attention"):
        model_shape(config)


def test_minimax_m3_with_index_values_on_a_sparse_layer_is_refused():
    """transformers' indexer has no value path (modeling_minimax_m3_vl.py:520-522) and vLLM never builds one
    (models/minimax_m3/nvidia/model.py:402-405): M3 sets `sparse_disable_index_value` on every sparse layer."""
    config = load_config("MiniMaxAI__MiniMax-M3")
    config["sparse_attention_config"]["sparse_disable_index_value"][3] = 0
    with pytest.raises(UnsupportedArchitecture, match="sparse_disable_index_value"):
        model_shape(config)
    config["sparse_attention_config"]["sparse_disable_index_value"][3] = 1
    config["sparse_attention_config"]["sparse_disable_index_value"][0] = 0  # a dense layer: no indexer at all
    assert len(model_shape(config).layers[3]) == 2


def test_minimax_m3_without_sparse_config_is_full_attention_only():
    """No layer_types and no sparse_attention_freq: transformers makes every layer "full_attention"."""
    config = {k: v for k, v in load_config("MiniMaxAI__MiniMax-M3").items() if k != "sparse_attention_config"}
    assert {len(layer) for layer in model_shape(config).layers} == {1}


def test_minimax_m3_vl_spellings_read_the_same_caches():
    """transformers 5.24 knows MiniMax-M3 as minimax_m3_vl around a minimax_m3_vl_text model (configuration_
    minimax_m3_vl.py), vLLM 0.33 as minimax_m3_vl (transformers_utils/config.py:155): every spelling, the wrapper
    included, reads the text model's caches."""
    flat = load_config("MiniMaxAI__MiniMax-M3")
    text = {**flat, "model_type": "minimax_m3_vl_text"}
    for config in (text, {"model_type": "minimax_m3_vl", "text_config": text, "vision_config": {}}):
        assert model_shape(config).layers == model_shape(flat).layers


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
