"""MiniMax-M3's caches against real transformers tensors (issue 12).

transformers 5.24 builds the published `minimax_m3` config as MiniMaxM3VLTextConfig (its __post_init__ reads
`sparse_attention_config` and `moe_layer_freq`) and MiniMaxM3VLForCausalLM. On a reduced copy (M3's head shapes
and index dim, four layers of which the last two sparse, four experts) built on the meta device, every cache layer's
tensors (`keys`, `values` and the sparse layers' `idx_keys`) must equal kvplan's per-layer estimate exactly, for
DynamicCache and StaticCache."""

from __future__ import annotations

import copy

import pytest

from kvplan.core import specs as L
from kvplan.core.shapes import model_shape
from kvplan.engines.base import Request
from kvplan.engines.transformers import TransformersEngine, TransformersStaticEngine

from conftest import load_config

torch_cache = pytest.importorskip(
    "kvplan.profiling.ground_truth", reason="needs torch + transformers (the profile extra)"
)

M3 = load_config("MiniMaxAI__MiniMax-M3")


def _reduced() -> dict:
    config = copy.deepcopy(M3)
    config.update(num_hidden_layers=4, moe_layer_freq=[0, 1, 1, 1], num_local_experts=4)
    config["sparse_attention_config"].update(
        sparse_attention_freq=[0, 0, 1, 1], sparse_disable_index_value=[0, 0, 1, 1]
    )
    return config


def _expected(engine, shape, tokens: int, batch: int) -> list[int]:
    req = Request(tokens, batch, "bfloat16", "bfloat16")
    return [sum(engine.stage_costs([c], req)[0].bytes for c in layer) for layer in shape.layers]


def test_published_config_builds_transformers_layer_types_as_kvplan_reads_them():
    """No model is built: transformers' config of the full published file marks the same layers sparse as kvplan,
    with the same index dim (sparse_index_dim over index_head_dim)."""
    hf_config = torch_cache.hf_config_from_dict(M3)
    assert type(hf_config).__name__ == "MiniMaxM3VLTextConfig"
    shape = model_shape(M3)
    assert [len(layer) == 2 for layer in shape.layers] == [t == "minimax_m3_sparse" for t in hf_config.layer_types]
    assert {c for c in shape.caches() if isinstance(c, L.IndexKeys)} == {L.IndexKeys(hf_config.index_head_dim)}


@pytest.fixture(scope="module")
def reduced_model():
    config = _reduced()
    hf_config = torch_cache.hf_config_from_dict(config)
    return config, hf_config, torch_cache.build_model(hf_config, dtype="bfloat16", device="meta")


@pytest.mark.parametrize("seq_len,batch,decode", [(37, 1, 0), (5, 2, 3), (300, 1, 1)])
def test_dynamic_cache_bytes_equal_kvplan(reduced_model, seq_len, batch, decode):
    config, hf_config, model = reduced_model
    shape = model_shape(config)
    measured = torch_cache.measure_forward_cache(
        hf_config, seq_len=seq_len, batch=batch, decode_steps=decode, model=model, device="meta"
    )
    # the sparse layers hold the indexer's keys as a tensor of their own: [batch, 1, tokens, index dim]
    assert [m["class"] for m in measured][2:] == ["MiniMaxM3VLSparseCacheLayer"] * 2
    assert measured[3]["tensors"]["idx_keys"][0] == (batch, 1, seq_len + decode, 128)
    assert "idx_keys" not in measured[0]["tensors"]
    expected = _expected(TransformersEngine.for_shape(shape), shape, seq_len + decode, batch)
    assert [m["nbytes"] for m in measured] == expected


def test_static_cache_bytes_equal_kvplan(reduced_model):
    """StaticCache(max_cache_len): StaticLayer K/V and MiniMaxM3VLSparseStaticCacheLayer's zero-filled idx_keys of
    max_cache_len tokens (modeling_minimax_m3_vl.py:105-131)."""
    torch = pytest.importorskip("torch")
    from transformers import StaticCache

    config, hf_config, model = reduced_model
    shape = model_shape(config)
    cache = StaticCache(config=hf_config, max_cache_len=40)
    ids = torch.zeros((2, 37), dtype=torch.long, device="meta")
    model(input_ids=ids, **{torch_cache.cache_keyword(model): cache}, use_cache=True, logits_to_keep=1)
    measured = torch_cache.cache_layer_bytes(cache)
    assert measured[2]["class"] == "MiniMaxM3VLSparseStaticCacheLayer"
    assert [m["nbytes"] for m in measured] == _expected(TransformersStaticEngine.for_shape(shape), shape, 40, 2)
