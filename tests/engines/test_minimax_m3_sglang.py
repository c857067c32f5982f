"""How SGLang 0.5.23 sizes MiniMax-M3 under the architectures it registers (MiniMaxM3Sparse*): the cell of
MiniMaxSparseKVPool, every expectation written from SGLang's source (cited lines checked against the sdist under
/work/src, skipped where absent). The config is vLLM 0.33's own MiniMax-M3 config (tests/engines/
test_minimax_m3_vllm.py); no real MiniMaxM3Sparse* config.json with a repository and commit to cite was found."""

from __future__ import annotations

import pytest

from kvplan.core import specs as L
from kvplan.core.shapes import M3_INDEX_VALUES, QUANTIZED, model_shape
from kvplan.engines import sglang
from kvplan.engines.base import Request
from kvplan.engines.sglang import SglangEngine
from kvplan.engines.vllm import VllmEngine
from kvplan.errors import UsageError
from tests.engines.test_minimax_m3_vllm import HEAD_DIM, INDEX_DIM, KV_HEADS, LAYERS, SPARSE_LAYERS, _config

from conftest import ENGINE_SOURCES, check_cited_line

SRT = ENGINE_SOURCES / "sglang-0.5.23" / "sglang" / "srt"
POOLS = SRT / "model_executor/pool_configurator.py"
MEMORY = SRT / "mem_cache/memory_pool.py"
OVERRIDES = SRT / "arg_groups/model_overrides/minimax_m3.py"

CITED = [
    # the cell: K and V of every layer, plus one index key per k-only sparse layer
    (POOLS, 410, "elif is_minimax_sparse(model_config.hf_config):"),
    (POOLS, 438, "kv_heads = model_config.get_num_kv_heads(get_parallel().attn_tp_size)"),
    (POOLS, 477, "(num_dense * full_pool_ratio + num_sparse)"),
    (POOLS, 478, "* 2"),
    (POOLS, 484, "(num_indexer_kv * 2 + num_indexer_k_only)"),
    (POOLS, 485, "* indexer_head_dim"),
    (POOLS, 486, "* indexer_dtype_size"),
    (POOLS, 490, "return main_pool_bytes + indexer_bytes * full_pool_ratio"),
    # the index keys' dtype
    (MEMORY, 5831, "def get_minimax_sparse_index_dtype("),
    (MEMORY, 5839, "_is_cuda and get_platform().is_sm90 and kv_cache_dtype == torch.float8_e4m3fn"),
    (MEMORY, 5841, "return kv_cache_dtype"),
    (MEMORY, 5844, "return model_dtype"),
    (OVERRIDES, 147, "elif get_platform().is_sm100:"),
    (OVERRIDES, 158, 'overrides["attention_backend"] = "trtllm_mha"'),
    (SRT / "server_args.py", 606, 'args.kv_cache_dtype == "fp8_e4m3"'),
    (SRT / "server_args.py", 607, 'and args.attention_backend == "trtllm_mha"'),
    (SRT / "server_args.py", 608, "and get_platform().is_sm100"),
    (SRT / "utils/common.py", 311, "_check_cuda_device_version, device_capability_majors=[10], cuda_version=(12, 8)"),
    # the NVFP4 checkpoints' other pool
    (SRT / "mem_cache/kv_cache_configurator.py", 2572, "pool_cls = MiniMaxSparseKVPool"),
    (SRT / "mem_cache/kv_cache_configurator.py", 2576, "pool_cls = MiniMaxM3Nvfp4KVPool"),
    (SRT / "configs/model_config.py", 443, 'return quantization == "minimax_m3_nvfp4" and get_platform().is_blackwell'),
    # the sparse layers and the k-only ones, from sparse_attention_config alone
    (SRT / "configs/model_config.py", 461, 'sparse_freq = sparse_cfg["sparse_attention_freq"]'),
    (SRT / "configs/model_config.py", 468, 'flags = sparse_cfg.get("sparse_disable_index_value")'),
    (SRT / "configs/model_config.py", 470, "return []"),
    # a wrapper's text_config goes through transformers' class for its model_type; no sparse config: an error
    (SRT / "configs/minimax_vl.py", 23, "return cls(**sub_config)"),
    (SRT / "configs/minimax_vl.py", 44, 'self.text_config = _coerce_sub_config(text_config, "mixtral")'),
    (SRT / "configs/model_config.py", 456, 'raise ValueError("Could not find sparse config.'),
]


@pytest.mark.parametrize(("source", "line", "text"), CITED, ids=[f"{s.name}:{n}" for s, n, _ in CITED])
def test_cited_sglang_lines(source, line, text):
    check_cited_line(source, line, text)


def _engine(config: dict | None = None):
    shape = model_shape(config or _config())
    return SglangEngine(shape.architectures, shape.config_model_type, shape.features), shape


@pytest.mark.parametrize(
    ("tp", "kv_dtype", "capability", "index_bytes"),
    [
        (1, "bfloat16", None, 2),
        (8, "bfloat16", "9.0", 2),
        (2, "fp8_e4m3", "9.0", 1),  # Hopper: fp8_e4m3 KV keeps the index keys in fp8
        (2, "fp8_e4m3", "10.0", 1),  # SM100: trtllm_mha by default, fp8 attention GEMMs
        (2, "fp8_e4m3", "12.0", 2),  # SM120: the model dtype
        (2, "fp8_e4m3", "8.0", 2),
        (2, "fp8_e5m2", "9.0", 2),
        (2, "fp8_e4m3", None, 1),  # no GPU: Hopper's rule
    ],
)
def test_sglang_cell_is_kv_on_60_layers_and_one_index_key_on_57(tp, kv_dtype, capability, index_bytes):
    engine, shape = _engine()
    req = Request(65536, 3, kv_dtype, "bfloat16", tp=tp, compute_capability=capability)
    costs = {c.kind: c for c in engine.stage_costs(shape.caches(), req)}
    kv_bytes = 1 if kv_dtype.startswith("fp8") else 2
    full = LAYERS * 2 * max(1, KV_HEADS // tp) * HEAD_DIM * kv_bytes
    index = SPARSE_LAYERS * INDEX_DIM * index_bytes  # k-only sparse layers: one key, never split by TP
    assert (costs[L.FULL].layers, costs[L.FULL].bytes_per_token) == (LAYERS, full)
    assert (costs[L.INDEX].layers, costs[L.INDEX].bytes_per_token) == (SPARSE_LAYERS, index)
    assert costs[L.INDEX].bytes == index * 65536 * 3


def test_sglang_refuses_a_quantized_m3_checkpoint():
    config = {**_config(), "quantization_config": {"quant_method": "mxfp8"}}
    engine, shape = _engine(config)
    with pytest.raises(UsageError, match="MiniMaxM3Nvfp4KVPool") as info:
        engine.stage_costs(shape.caches(), Request(4096, 1, "fp8_e4m3", "bfloat16"))
    assert info.value.hint


def test_sglang_entry_passes_the_shape_features():
    shape = model_shape({**_config(), "quantization_config": {"quant_method": "mxfp8"}})
    assert QUANTIZED in sglang.ENTRY.storage(shape).features
    assert QUANTIZED not in sglang.ENTRY.storage(model_shape(_config())).features


def test_sglang_without_disabled_index_values_keeps_a_value_beside_each_index_key():
    """No `sparse_disable_index_value`: get_minimax_sparse_disable_value_layer_ids returns no layer
    (configs/model_config.py:467-471), so every sparse layer counts in `num_indexer_kv * 2` (pool_configurator.py:
    484); transformers and vLLM still keep the keys alone."""
    config = _config()
    sparse = dict(config["text_config"]["sparse_attention_config"])
    del sparse["sparse_disable_index_value"]
    config["text_config"] = {**config["text_config"], "sparse_attention_config": sparse}
    engine, shape = _engine(config)
    assert M3_INDEX_VALUES in shape.features
    costs = {c.kind: c for c in engine.stage_costs(shape.caches(), Request(4096, 1, "bfloat16", "bfloat16"))}
    assert costs[L.INDEX].bytes_per_token == SPARSE_LAYERS * 2 * INDEX_DIM * 2
    vllm = {c.kind: c for c in VllmEngine(shape).stage_costs(shape.caches(), Request(4096, 1, "bfloat16", "bfloat16"))}
    assert vllm[L.INDEX].bytes_per_token == SPARSE_LAYERS * INDEX_DIM * 2


def test_sglang_m3_note_names_the_index_dtype():
    engine, shape = _engine()
    req = Request(4096, 1, "fp8_e4m3", "bfloat16")
    (note,) = sglang.estimate_notes(engine, shape, req, frozenset({L.FULL, L.INDEX}))
    assert "MiniMaxSparseKVPool" in note and "in fp8 (no GPU given: Hopper's rule taken)" in note
    (note,) = sglang.estimate_notes(engine, shape, Request(4096, 1, "bfloat16", "bfloat16"), frozenset())
    assert "in bf16:" in note and "no GPU given" not in note
