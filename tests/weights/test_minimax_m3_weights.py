"""MiniMax-M3's weights (issue 12): the `minimax_m3` layout against transformers 5.24's MiniMaxM3VLForCausalLM
(the text model of the minimax_m3_vl wrapper) on the meta device, and at full size against a count written from
its modelling code. (Its caches: tests/core/test_kimi_minimax_shapes.py, tests/profiling/test_minimax_m3_cache.py.)"""

from __future__ import annotations

import copy

import pytest

from kvplan.errors import UnsupportedArchitecture
from kvplan.weights.stored import weight_bytes
from kvplan.weights.tensors import assumed_family, count_parameters, weight_tensors

from conftest import load_config

M3 = load_config("MiniMaxAI__MiniMax-M3")


def _meta_count(config: dict) -> int:
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    transformers.logging.set_verbosity_error()
    kwargs = {k: v for k, v in config.items() if k != "model_type"}
    cfg = transformers.AutoConfig.for_model("minimax_m3_vl_text", **kwargs)
    with torch.device("meta"):
        model = transformers.AutoModelForCausalLM.from_config(cfg)
    return sum(p.numel() for p in model.parameters())


def _reduced(**changes) -> dict:
    """M3's dimensions on four layers (dense, dense, then MoE; sparse attention on the last two) and four experts."""
    config = copy.deepcopy(M3)
    config.update(num_hidden_layers=4, moe_layer_freq=[0, 1, 1, 1], num_local_experts=4)
    sparse = config["sparse_attention_config"]
    sparse.update(sparse_attention_freq=[0, 0, 1, 1], sparse_disable_index_value=[0, 0, 1, 1])
    config.update(changes)
    return config


@pytest.mark.parametrize(
    "changes",
    [{}, {"tie_word_embeddings": True}, {"moe_layer_freq": None}],
    ids=["m3", "tied", "moe-everywhere"],
)
def test_reduced_m3_matches_transformers(changes):
    config = _reduced(**changes)
    assert count_parameters(config) == _meta_count(config)


def test_full_size_m3_follows_the_modelling_code():
    """modeling_minimax_m3_vl.py: attention q/k/v/o + per-head q/k norms (:422-427), the indexer's q (4 x 128), k
    (128) and their norms on the 57 sparse layers (:548-551), the router (:240), experts gate_up + down of
    intermediate_size (:202-203) and the shared MLP (:181-182, :261) on the 57 MoE layers, the dense MLP of
    dense_intermediate_size on the first 3 (:181-182), two norms a layer, embedding, final norm, untied head."""
    h, v, n = M3["hidden_size"], M3["vocab_size"], M3["num_hidden_layers"]
    heads, kv, hd = M3["num_attention_heads"], M3["num_key_value_heads"], M3["head_dim"]
    sparse = M3["sparse_attention_config"]
    i_heads, i_dim = sparse["sparse_num_index_heads"], sparse["sparse_index_dim"]
    e, inter = M3["num_local_experts"], M3["intermediate_size"]
    sparse_layers, moe_layers = sum(sparse["sparse_attention_freq"]), sum(M3["moe_layer_freq"])
    attn = 2 * heads * hd * h + 2 * kv * hd * h + 2 * hd
    indexer = i_heads * i_dim * h + i_dim * h + 2 * i_dim
    moe = e * h + e * 3 * inter * h + 3 * M3["shared_intermediate_size"] * h
    dense = 3 * M3["dense_intermediate_size"] * h
    expected = 2 * v * h + h + n * (attn + 2 * h) + sparse_layers * indexer
    expected += moe_layers * moe + (n - moe_layers) * dense
    assert (sparse_layers, moe_layers) == (57, 57)
    assert assumed_family(M3) is None
    assert count_parameters(M3) == expected


def test_m3_router_and_its_bias_are_float32_as_vllm_holds_them():
    """vllm-0.33.0/vllm/models/minimax_m3/nvidia/model.py:218-239: GateLinear params_dtype float32 and a float32
    e_score_correction_bias; everything else at the config's bf16."""
    tensors = weight_tensors(M3)
    fp32 = [t for t in tensors if t.dtype is not None]
    assert {t.name.rsplit(".", 1)[-1] for t in fp32} == {"weight", "e_score_correction_bias"}
    assert all(".mlp.gate." in t.name and t.dtype == "float32" for t in fp32)
    expected = sum(t.numel * (4 if t.dtype else 2) for t in tensors)
    assert weight_bytes(M3) == expected


@pytest.mark.parametrize(
    "changes,named",
    [
        ({"attention_output_gate": True}, "attention_output_gate"),
        ({"n_shared_experts": 2}, "shared_intermediate_size"),  # vLLM: intermediate_size x 2, transformers: 3072
    ],
)
def test_m3_configs_the_engines_build_differently_are_refused(changes, named):
    with pytest.raises(UnsupportedArchitecture, match=named):
        count_parameters(_reduced(**changes))
