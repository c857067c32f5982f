"""How vLLM 0.33 stores MiniMax-M3 under the architectures it registers (MiniMaxM3Sparse*): every expectation is
written from vLLM's source, each cited line checked against the sdist under KVPLAN_ENGINE_SOURCES (skipped where absent).

The config is vLLM's own: `MiniMaxM3Config` / `MiniMaxM3TextConfig` (vllm/transformers_utils/configs/
minimax_m3.py), whose defaults "mirror the text_config of the MiniMax-M3-preview checkpoint" (:11); no real
MiniMaxM3Sparse* config.json with a repository and commit to cite was found (the catalog's MiniMaxAI/MiniMax-M3
names MiniMaxM3ForCausalLM, which neither vLLM nor SGLang registers)."""

from __future__ import annotations

from pathlib import Path

import pytest

from kvplan.core import specs as L
from kvplan.core.shapes import model_shape
from kvplan.engines.base import Request
from kvplan.engines.vllm import MSA_BLOCK_SIZE, VllmEngine, capacity, estimate_notes
from kvplan.errors import UsageError

from conftest import ENGINE_SOURCES, check_cited_line

VLLM = ENGINE_SOURCES / "vllm-0.33.0" / "vllm"
CONFIGS = VLLM / "transformers_utils/configs/minimax_m3.py"
M3_MODEL = VLLM / "models/minimax_m3/nvidia/model.py"
INDEXER = VLLM / "models/minimax_m3/common/indexer.py"
SPARSE = VLLM / "models/minimax_m3/common/sparse_attention.py"

# (file, line, text): the facts the expectations below are written from
CITED = [
    # vLLM's config: the text backbone's defaults and the VL wrapper that builds it from a dict
    (CONFIGS, 14, 'model_type = "minimax_m3_text"'),
    (CONFIGS, 15, 'architectures = ["MiniMaxM3SparseForCausalLM"]'),
    (CONFIGS, 24, "num_hidden_layers: int = 60,"),
    (CONFIGS, 26, "num_key_value_heads: int = 4,"),
    (CONFIGS, 27, "head_dim: int = 128,"),
    (CONFIGS, 94, '"sparse_index_dim": 128,'),
    (CONFIGS, 98, '"sparse_disable_index_value": [0] * 3 + [1] * 57,'),
    (CONFIGS, 102, '"sparse_attention_freq": [0] * 3 + [1] * 57,'),
    (CONFIGS, 132, 'model_type = "minimax_m3_vl"'),
    (CONFIGS, 143, "text_config = MiniMaxM3TextConfig(**text_config)"),
    (CONFIGS, 89, "self.sparse_attention_config = ("),
    # GQA K/V on every layer, KV heads split by TP down to one per rank
    (M3_MODEL, 315, "self.num_kv_heads = max(1, self.total_num_kv_heads // tp_size)"),
    (M3_MODEL, 429, "self.num_kv_heads = max(1, self.total_num_kv_heads // tp_size)"),
    (M3_MODEL, 564, "return FullAttentionSpec("),
    # the indexer keys: one head of sparse_index_dim, bf16 unless --attention-config says otherwise
    (M3_MODEL, 507, "self.indexer_kv_dtype = vllm_config.attention_config.resolve_indexer_kv_dtype("),
    (M3_MODEL, 508, '"bf16"'),
    (INDEXER, 121, "cache_dtype = torch.bfloat16"),
    (INDEXER, 147, "return MLAAttentionSpec("),
    (INDEXER, 149, "num_kv_heads=1,"),
    (INDEXER, 150, "head_size=self.head_dim,"),
    # kernel blocks of 128 only; the smallest block every backend accepts; a multiple passes
    (SPARSE, 167, "return [128]"),
    (INDEXER, 95, "return [128]"),
    (
        VLLM / "platforms/interface.py",
        723,
        "if all(b.supports_block_size(default_block_size) for b in backend_classes):",
    ),
    (VLLM / "platforms/interface.py", 737, "for candidate in candidates:"),
    (VLLM / "v1/attention/backend.py", 136, "if block_size % supported_size == 0:"),
    # one KV-cache group: MLAAttentionSpec groups as a FullAttentionSpec, all layers of one base type
    (VLLM / "v1/core/single_type_kv_cache_manager.py", 2709, "uniform_type_base_spec=FullAttentionSpec"),
    (VLLM / "v1/kv_cache_interface.py", 325, "isinstance(spec, uniform_type_base_spec) for spec in kv_cache_specs"),
    (VLLM / "v1/core/kv_cache_planning.py", 1143, "elif uniform_spec := UniformTypeKVCacheSpecs.from_specs("),
    # vLLM's own tests load the Hub id MiniMaxAI/MiniMax-M3 under both served architectures (the refusal's hint)
    (VLLM.parent / "tests/models/registry.py", 450, '"MiniMaxM3SparseForCausalLM": _HfExamplesInfo('),
    (VLLM.parent / "tests/models/registry.py", 451, '"MiniMaxAI/MiniMax-M3",'),
    (VLLM.parent / "tests/models/registry.py", 1165, '"MiniMaxM3SparseForConditionalGeneration": _HfExamplesInfo('),
    (VLLM.parent / "tests/models/registry.py", 1166, '"MiniMaxAI/MiniMax-M3",'),
    # the sparse layers: sparse_attention_freq's nonzero entries, none without the list
    (M3_MODEL, 101, 'cfg = getattr(config, "sparse_attention_config", None)'),
    (M3_MODEL, 104, 'freq = cfg.get("sparse_attention_freq")'),
    (M3_MODEL, 106, "return set()"),
    # the sparse backend's KV dtypes
    (SPARSE, 141, '"bfloat16",'),
    (SPARSE, 144, '"fp8_e5m2",'),
]


@pytest.mark.parametrize(("source", "line", "text"), CITED, ids=[f"{s.name}:{n}" for s, n, _ in CITED])
def test_cited_vllm_lines(source, line, text):
    check_cited_line(source, line, text)


LAYERS, SPARSE_LAYERS, KV_HEADS, HEAD_DIM, INDEX_DIM = 60, 57, 4, 128, 128
_FREQ = [0] * 3 + [1] * 57


def _config(architecture: str = "MiniMaxM3SparseForConditionalGeneration") -> dict:
    """vLLM's MiniMaxM3Config(text_config=...) for the defaults above, as the config.json it loads."""
    text = {
        "architectures": ["MiniMaxM3SparseForCausalLM"],
        "vocab_size": 200064,
        "hidden_size": 6144,
        "intermediate_size": 3072,
        "dense_intermediate_size": 12288,
        "shared_intermediate_size": 3072,
        "num_hidden_layers": LAYERS,
        "num_attention_heads": 64,
        "num_key_value_heads": KV_HEADS,
        "head_dim": HEAD_DIM,
        "max_position_embeddings": 524288,
        "num_local_experts": 128,
        "num_experts_per_tok": 4,
        "n_shared_experts": 1,
        "moe_layer_freq": _FREQ,
        "sparse_attention_config": {
            "use_sparse_attention": True,
            "sparse_index_dim": INDEX_DIM,
            "sparse_num_index_heads": 4,
            "sparse_topk_blocks": 16,
            "sparse_block_size": 128,
            "sparse_disable_index_value": _FREQ,
            "sparse_score_type": "max",
            "sparse_init_block": 0,
            "sparse_local_block": 1,
            "sparse_attention_freq": _FREQ,
        },
    }
    return {"architectures": [architecture], "model_type": "minimax_m3_vl", "text_config": text}


def _engine_and_caches(config: dict | None = None):
    shape = model_shape(config or _config())
    return VllmEngine(shape), shape.caches(), shape


def _pages(tp: int, kv_bytes: int, block: int = 128) -> tuple[int, int]:
    """One layer's pages of `block` tokens: FullAttentionSpec K and V of max(1, 4 // tp) heads x 128, and the
    indexer's MLAAttentionSpec, one bf16 head of 128 (no V), on every TP rank."""
    return block * 2 * max(1, KV_HEADS // tp) * HEAD_DIM * kv_bytes, block * INDEX_DIM * 2


@pytest.mark.parametrize("architecture", ["MiniMaxM3SparseForConditionalGeneration", "MiniMaxM3SparseForCausalLM"])
@pytest.mark.parametrize(("tp", "kv_dtype", "kv_bytes"), [(1, "bfloat16", 2), (2, "fp8_e4m3", 1), (8, "bfloat16", 2)])
def test_vllm_stores_gqa_kv_on_60_layers_and_bf16_index_keys_on_57_in_one_group(architecture, tp, kv_dtype, kv_bytes):
    engine, caches, _ = _engine_and_caches(_config(architecture))
    req = Request(131072, 2, kv_dtype, "bfloat16", tp=tp)
    assert engine.block_size(caches, req) == MSA_BLOCK_SIZE == 128
    plan = engine.plan(caches, req)
    full, index = _pages(tp, kv_bytes)
    (spec,) = plan.specs  # one UniformTypeKVCacheSpecs group
    assert plan.num_groups == 1
    assert spec.page == LAYERS * full + SPARSE_LAYERS * index  # a block holds every layer's page
    assert spec.parts == ((L.FULL, LAYERS * full, LAYERS), (L.INDEX, SPARSE_LAYERS * index, SPARSE_LAYERS))
    costs = {c.kind: c for c in engine.stage_costs(caches, req)}
    blocks = 131072 // 128
    assert (costs[L.FULL].layers, costs[L.FULL].bytes) == (LAYERS, 2 * blocks * LAYERS * full)
    assert (costs[L.INDEX].layers, costs[L.INDEX].bytes) == (SPARSE_LAYERS, 2 * blocks * SPARSE_LAYERS * index)
    assert costs[L.INDEX].bytes_per_token == SPARSE_LAYERS * INDEX_DIM * 2  # whatever the TP and the KV dtype


def test_vllm_m3_pool_blocks_cost_every_layers_page():
    """The pool's blocks are the available bytes over one block of the group (every layer's page side by side)."""
    engine, caches, _ = _engine_and_caches()
    req = Request(131072, 1, "bfloat16", "bfloat16", tp=8)
    full, index = _pages(8, 2)
    block = LAYERS * full + SPARSE_LAYERS * index
    available = 100 * 2**30
    cap = capacity(caches, req, available, engine)
    assert (cap.page_bytes, cap.num_groups, cap.block_size) == (block, 1, 128)
    assert cap.num_blocks == available // block
    assert cap.blocks_per_request == 131072 // 128


def test_vllm_m3_block_size_multiple_of_128_is_kept():
    engine, caches, _ = _engine_and_caches()
    req = Request(4096, 1, "bfloat16", "bfloat16", block_size=256)
    (spec,) = engine.plan(caches, req).specs
    full, index = _pages(1, 2, block=256)
    assert (spec.block_size, spec.page) == (256, LAYERS * full + SPARSE_LAYERS * index)


def _refused(req: Request, match: str) -> UsageError:
    engine, caches, _ = _engine_and_caches()
    with pytest.raises(UsageError, match=match) as info:
        engine.stage_costs(caches, req)
    assert info.value.hint
    return info.value


def test_vllm_m3_refuses_what_kvplan_has_not_read():
    error = _refused(Request(4096, 1, "bfloat16", "bfloat16", engine_version="0.23.0"), "since 0.24.0")
    assert error.field == "vllm_version" and "registry.py:163" in str(error)
    error = _refused(Request(4096, 1, "bfloat16", "bfloat16", block_size=64), "multiple of 128")
    assert "common/sparse_attention.py:165-167" in str(error) and error.field == "block_size"
    error = _refused(Request(4096, 1, "nvfp4", "bfloat16"), "bf16 or fp8 KV cache")
    assert "sparse_attention.py:140-145" in str(error) and error.field == "kv_dtype"
    error = _refused(Request(4096, 1, "bfloat16", "bfloat16", tp=8, dcp=2), "decode context parallel")
    assert error.field == "dcp"


def test_vllm_m3_published_config_is_still_refused():
    """The catalog's MiniMaxAI/MiniMax-M3 (model_type minimax_m3, MiniMaxM3ForCausalLM) is not what vLLM serves:
    sizing the served layout does not relax that refusal (test_kimi_minimax_engines.py)."""
    config = _config()
    config["architectures"] = ["MiniMaxM3ForCausalLM"]
    with pytest.raises(UsageError, match="does not serve this config as written"):
        engine, caches, _ = _engine_and_caches(config)
        engine.stage_costs(caches, Request(4096, 1, "bfloat16", "bfloat16"))


def test_vllm_m3_text_config_in_vllms_own_spelling_is_read_alike():
    """vLLM's MiniMaxM3TextConfig serialises its model_type as minimax_m3_text: read as the same family, the same
    caches (not refused as an unknown model_type)."""
    config = _config()
    config["text_config"] = {**config["text_config"], "model_type": "minimax_m3_text"}
    assert model_shape(config).caches() == model_shape(_config()).caches()


def _layer_types_only() -> dict:
    """The sparse layers named by transformers' `layer_types` alone, without sparse_attention_config."""
    config = _config()
    text = {k: v for k, v in config["text_config"].items() if k != "sparse_attention_config"}
    text.update(layer_types=["minimax_m3_sparse" if f else "full_attention" for f in _FREQ], index_head_dim=INDEX_DIM)
    return {**config, "text_config": text}


@pytest.mark.parametrize("engine", ["vllm", "sglang"])
def test_m3_sparse_layers_named_by_layer_types_alone_are_refused_by_vllm_and_sglang(engine):
    """vLLM picks the sparse layers from sparse_attention_freq only (nvidia/model.py:98-106: none without it, every
    layer dense); SGLang indexes the list unconditionally (configs/model_config.py:460-461). transformers reads
    layer_types, so only it sizes such a config."""
    from kvplan.engines.registry import engine_entry

    shape = model_shape(_layer_types_only())
    assert sum(isinstance(c, L.IndexKeys) for c in shape.caches()) == SPARSE_LAYERS  # transformers' reading
    storage = engine_entry(engine).storage(shape)
    with pytest.raises(UsageError, match="sparse_attention_freq` only") as info:
        storage.stage_costs(shape.caches(), Request(4096, 1, "bfloat16", "bfloat16"))
    assert ("nvidia/model.py:98-106" if engine == "vllm" else "model_config.py:460-461") in str(info.value)


def test_m3_layer_types_that_contradict_the_sparse_freq_are_refused_by_vllm_only_where_they_differ():
    """transformers reads `layer_types` over sparse_attention_freq (tests/core/test_kimi_minimax_shapes.py); vLLM
    reads the freq list alone: where the two differ vLLM would build other sparse layers, so it is refused; where
    they agree, the same caches."""
    config = _config()
    sparse = {**config["text_config"]["sparse_attention_config"], "sparse_disable_index_value": [1] * LAYERS}
    text = {**config["text_config"], "layer_types": ["minimax_m3_sparse"] * LAYERS, "sparse_attention_config": sparse}
    config["text_config"] = text
    engine, caches, _ = _engine_and_caches(config)
    assert sum(isinstance(c, L.IndexKeys) for c in caches) == LAYERS  # transformers' reading
    with pytest.raises(UsageError, match="lacks or contradicts"):
        engine.stage_costs(caches, Request(4096, 1, "bfloat16", "bfloat16"))
    agreeing = ["minimax_m3_sparse" if f else "full_attention" for f in _FREQ]
    config["text_config"] = {**config["text_config"], "layer_types": agreeing}
    engine, caches, _ = _engine_and_caches(config)
    assert caches == model_shape(_config()).caches()
    assert engine.stage_costs(caches, Request(4096, 1, "bfloat16", "bfloat16"))


def test_vllm_m3_estimate_note_says_what_is_stored():
    engine, _, shape = _engine_and_caches()
    req = Request(4096, 1, "bfloat16", "bfloat16")
    notes = estimate_notes(engine, shape, req, frozenset({L.FULL, L.INDEX}))
    (note,) = [n for n in notes if "MiniMax-M3" in str(n)]
    assert "bf16 indexer key of 128 elements" in str(note) and "57 MSA layers" in str(note)


# ---------------------------------------------------------------- the releases before 0.33 (0.24-0.32)

RELEASES = ("0.24.0", "0.25.0", "0.26.0", "0.27.0", "0.28.0", "0.29.0", "0.30.0", "0.31.0", "0.32.0")
FIRST_BACKEND = RELEASES[:7]  # 0.24-0.30: the block size of the first attention layer's backend alone

# (release, rule, file under vllm-X/vllm, line, text): one citation per release per rule the layout follows.
# registry: MiniMaxM3SparseForCausalLM is registered; config: vLLM's own MiniMaxM3Config for minimax_m3_vl, the
# same defaults; sparse_layers: sparse_attention_freq's nonzero entries; kv_heads: KV heads split by TP down to
# one; gqa_spec: FullAttentionSpec on every sparse layer; index_dtype: the indexer keys default to bf16 (0.24-0.27
# read indexer_kv_dtype, default "bf16"; 0.28 on resolve "auto" to "bf16"); index_spec: one bf16 head of
# sparse_index_dim per token (MLAAttentionSpec); kernel_block: the MSA and indexer backends take 128 only;
# kv_dtypes: the sparse backend's bf16/fp8 list; grouping: MLAAttentionSpec groups as full attention, all layers
# in one UniformTypeKVCacheSpecs group; block_choice: 0.24-0.30 the first layer's backend alone (a dense layer 0
# builds vLLM's standard Attention, FlashAttention takes MultipleOf(16), so the default 16 stays and
# select_common_block_size raises), 0.31-0.32 the smallest size every backend accepts.
RELEASE_CITED = [
    ("0.24.0", "registry", "model_executor/models/registry.py", 163, '"MiniMaxM3SparseForCausalLM": ('),
    ("0.24.0", "config", "transformers_utils/config.py", 106, 'minimax_m3_vl="MiniMaxM3Config",'),
    (
        "0.24.0",
        "config",
        "transformers_utils/configs/minimax_m3.py",
        102,
        '"sparse_attention_freq": [0] * 3 + [1] * 57,',
    ),
    ("0.24.0", "sparse_layers", "models/minimax_m3/nvidia/model.py", 95, 'freq = cfg.get("sparse_attention_freq")'),
    (
        "0.24.0",
        "kv_heads",
        "models/minimax_m3/nvidia/model.py",
        419,
        "self.num_kv_heads = max(1, self.total_num_kv_heads // tp_size)",
    ),
    ("0.24.0", "gqa_spec", "models/minimax_m3/nvidia/model.py", 542, "return FullAttentionSpec("),
    ("0.24.0", "index_dtype", "config/attention.py", 55, 'indexer_kv_dtype: IndexerKVDType = "bf16"'),
    (
        "0.24.0",
        "index_dtype",
        "models/minimax_m3/nvidia/model.py",
        491,
        "self.indexer_kv_dtype = vllm_config.attention_config.indexer_kv_dtype",
    ),
    ("0.24.0", "index_spec", "models/minimax_m3/common/indexer.py", 130, "cache_dtype = torch.bfloat16"),
    ("0.24.0", "index_spec", "models/minimax_m3/common/indexer.py", 152, "return MLAAttentionSpec("),
    ("0.24.0", "index_spec", "models/minimax_m3/common/indexer.py", 154, "num_kv_heads=1,"),
    ("0.24.0", "index_spec", "models/minimax_m3/common/indexer.py", 155, "head_size=self.head_dim,"),
    ("0.24.0", "kernel_block", "models/minimax_m3/common/sparse_attention.py", 84, "return [128]"),
    ("0.24.0", "kernel_block", "models/minimax_m3/common/indexer.py", 85, "return [128]"),
    ("0.24.0", "kv_dtypes", "models/minimax_m3/common/sparse_attention.py", 61, '"fp8_e5m2",'),
    (
        "0.24.0",
        "grouping",
        "v1/core/single_type_kv_cache_manager.py",
        1458,
        "MLAAttentionSpec, FullAttentionManager, uniform_type_base_spec=FullAttentionSpec",
    ),
    (
        "0.24.0",
        "grouping",
        "v1/kv_cache_interface.py",
        155,
        "isinstance(spec, uniform_type_base_spec) for spec in kv_cache_specs.values()",
    ),
    (
        "0.24.0",
        "grouping",
        "v1/core/kv_cache_utils.py",
        1723,
        "elif uniform_spec := UniformTypeKVCacheSpecs.from_specs(kv_cache_spec):",
    ),
    ("0.24.0", "block_choice", "platforms/interface.py", 609, "backend_cls = cls._find_non_ssm_backend(vllm_config)"),
    ("0.24.0", "block_choice", "platforms/interface.py", 616, "preferred = backend_cls.get_preferred_block_size("),
    ("0.24.0", "block_choice", "v1/attention/backends/flash_attn.py", 94, "return [MultipleOf(16)]"),
    ("0.24.0", "block_choice", "v1/worker/utils.py", 328, 'raise ValueError(f"No common block size for'),
    ("0.24.0", "block_choice", "models/minimax_m3/nvidia/model.py", 681, "self.self_attn = MiniMaxM3Attention("),
    ("0.24.0", "block_choice", "models/minimax_m3/nvidia/model.py", 346, "self.attn = Attention("),
    ("0.25.0", "registry", "model_executor/models/registry.py", 154, '"MiniMaxM3SparseForCausalLM": ('),
    ("0.25.0", "config", "transformers_utils/config.py", 106, 'minimax_m3_vl="MiniMaxM3Config",'),
    (
        "0.25.0",
        "config",
        "transformers_utils/configs/minimax_m3.py",
        102,
        '"sparse_attention_freq": [0] * 3 + [1] * 57,',
    ),
    ("0.25.0", "sparse_layers", "models/minimax_m3/nvidia/model.py", 99, 'freq = cfg.get("sparse_attention_freq")'),
    (
        "0.25.0",
        "kv_heads",
        "models/minimax_m3/nvidia/model.py",
        425,
        "self.num_kv_heads = max(1, self.total_num_kv_heads // tp_size)",
    ),
    ("0.25.0", "gqa_spec", "models/minimax_m3/nvidia/model.py", 548, "return FullAttentionSpec("),
    ("0.25.0", "index_dtype", "config/attention.py", 55, 'indexer_kv_dtype: IndexerKVDType = "bf16"'),
    (
        "0.25.0",
        "index_dtype",
        "models/minimax_m3/nvidia/model.py",
        497,
        "self.indexer_kv_dtype = vllm_config.attention_config.indexer_kv_dtype",
    ),
    ("0.25.0", "index_spec", "models/minimax_m3/common/indexer.py", 139, "cache_dtype = torch.bfloat16"),
    ("0.25.0", "index_spec", "models/minimax_m3/common/indexer.py", 161, "return MLAAttentionSpec("),
    ("0.25.0", "index_spec", "models/minimax_m3/common/indexer.py", 163, "num_kv_heads=1,"),
    ("0.25.0", "index_spec", "models/minimax_m3/common/indexer.py", 164, "head_size=self.head_dim,"),
    ("0.25.0", "kernel_block", "models/minimax_m3/common/sparse_attention.py", 93, "return [128]"),
    ("0.25.0", "kernel_block", "models/minimax_m3/common/indexer.py", 94, "return [128]"),
    ("0.25.0", "kv_dtypes", "models/minimax_m3/common/sparse_attention.py", 70, '"fp8_e5m2",'),
    (
        "0.25.0",
        "grouping",
        "v1/core/single_type_kv_cache_manager.py",
        1539,
        "MLAAttentionSpec, FullAttentionManager, uniform_type_base_spec=FullAttentionSpec",
    ),
    (
        "0.25.0",
        "grouping",
        "v1/kv_cache_interface.py",
        159,
        "isinstance(spec, uniform_type_base_spec) for spec in kv_cache_specs.values()",
    ),
    (
        "0.25.0",
        "grouping",
        "v1/core/kv_cache_utils.py",
        1723,
        "elif uniform_spec := UniformTypeKVCacheSpecs.from_specs(kv_cache_spec):",
    ),
    ("0.25.0", "block_choice", "platforms/interface.py", 609, "backend_cls = cls._find_non_ssm_backend(vllm_config)"),
    ("0.25.0", "block_choice", "platforms/interface.py", 616, "preferred = backend_cls.get_preferred_block_size("),
    ("0.25.0", "block_choice", "v1/attention/backends/flash_attn.py", 77, "return [MultipleOf(16)]"),
    ("0.25.0", "block_choice", "v1/worker/utils.py", 328, 'raise ValueError(f"No common block size for'),
    ("0.25.0", "block_choice", "models/minimax_m3/nvidia/model.py", 683, "self.self_attn = MiniMaxM3Attention("),
    ("0.25.0", "block_choice", "models/minimax_m3/nvidia/model.py", 352, "self.attn = Attention("),
    ("0.26.0", "registry", "model_executor/models/registry.py", 158, '"MiniMaxM3SparseForCausalLM": ('),
    ("0.26.0", "config", "transformers_utils/config.py", 109, 'minimax_m3_vl="MiniMaxM3Config",'),
    (
        "0.26.0",
        "config",
        "transformers_utils/configs/minimax_m3.py",
        102,
        '"sparse_attention_freq": [0] * 3 + [1] * 57,',
    ),
    ("0.26.0", "sparse_layers", "models/minimax_m3/nvidia/model.py", 100, 'freq = cfg.get("sparse_attention_freq")'),
    (
        "0.26.0",
        "kv_heads",
        "models/minimax_m3/nvidia/model.py",
        425,
        "self.num_kv_heads = max(1, self.total_num_kv_heads // tp_size)",
    ),
    ("0.26.0", "gqa_spec", "models/minimax_m3/nvidia/model.py", 554, "return FullAttentionSpec("),
    ("0.26.0", "index_dtype", "config/attention.py", 67, 'indexer_kv_dtype: IndexerKVDType = "bf16"'),
    (
        "0.26.0",
        "index_dtype",
        "models/minimax_m3/nvidia/model.py",
        502,
        "self.indexer_kv_dtype = vllm_config.attention_config.indexer_kv_dtype",
    ),
    ("0.26.0", "index_spec", "models/minimax_m3/common/indexer.py", 139, "cache_dtype = torch.bfloat16"),
    ("0.26.0", "index_spec", "models/minimax_m3/common/indexer.py", 161, "return MLAAttentionSpec("),
    ("0.26.0", "index_spec", "models/minimax_m3/common/indexer.py", 163, "num_kv_heads=1,"),
    ("0.26.0", "index_spec", "models/minimax_m3/common/indexer.py", 164, "head_size=self.head_dim,"),
    ("0.26.0", "kernel_block", "models/minimax_m3/common/sparse_attention.py", 109, "return [128]"),
    ("0.26.0", "kernel_block", "models/minimax_m3/common/indexer.py", 94, "return [128]"),
    ("0.26.0", "kv_dtypes", "models/minimax_m3/common/sparse_attention.py", 86, '"fp8_e5m2",'),
    (
        "0.26.0",
        "grouping",
        "v1/core/single_type_kv_cache_manager.py",
        1861,
        "MLAAttentionSpec, FullAttentionManager, uniform_type_base_spec=FullAttentionSpec",
    ),
    (
        "0.26.0",
        "grouping",
        "v1/kv_cache_interface.py",
        171,
        "isinstance(spec, uniform_type_base_spec) for spec in kv_cache_specs.values()",
    ),
    (
        "0.26.0",
        "grouping",
        "v1/core/kv_cache_utils.py",
        1754,
        "elif uniform_spec := UniformTypeKVCacheSpecs.from_specs(kv_cache_spec):",
    ),
    ("0.26.0", "block_choice", "platforms/interface.py", 624, "backend_cls = cls._find_non_ssm_backend(vllm_config)"),
    ("0.26.0", "block_choice", "platforms/interface.py", 631, "preferred = backend_cls.get_preferred_block_size("),
    ("0.26.0", "block_choice", "v1/attention/backends/flash_attn.py", 81, "return [MultipleOf(16)]"),
    ("0.26.0", "block_choice", "v1/worker/utils.py", 348, 'raise ValueError(f"No common block size for'),
    ("0.26.0", "block_choice", "models/minimax_m3/nvidia/model.py", 689, "self.self_attn = MiniMaxM3Attention("),
    ("0.26.0", "block_choice", "models/minimax_m3/nvidia/model.py", 352, "self.attn = Attention("),
    ("0.27.0", "registry", "model_executor/models/registry.py", 162, '"MiniMaxM3SparseForCausalLM": ('),
    ("0.27.0", "config", "transformers_utils/config.py", 111, 'minimax_m3_vl="MiniMaxM3Config",'),
    (
        "0.27.0",
        "config",
        "transformers_utils/configs/minimax_m3.py",
        102,
        '"sparse_attention_freq": [0] * 3 + [1] * 57,',
    ),
    ("0.27.0", "sparse_layers", "models/minimax_m3/nvidia/model.py", 100, 'freq = cfg.get("sparse_attention_freq")'),
    (
        "0.27.0",
        "kv_heads",
        "models/minimax_m3/nvidia/model.py",
        425,
        "self.num_kv_heads = max(1, self.total_num_kv_heads // tp_size)",
    ),
    ("0.27.0", "gqa_spec", "models/minimax_m3/nvidia/model.py", 557, "return FullAttentionSpec("),
    ("0.27.0", "index_dtype", "config/attention.py", 71, 'indexer_kv_dtype: IndexerKVDType = "bf16"'),
    (
        "0.27.0",
        "index_dtype",
        "models/minimax_m3/nvidia/model.py",
        502,
        "self.indexer_kv_dtype = vllm_config.attention_config.indexer_kv_dtype",
    ),
    ("0.27.0", "index_spec", "models/minimax_m3/common/indexer.py", 139, "cache_dtype = torch.bfloat16"),
    ("0.27.0", "index_spec", "models/minimax_m3/common/indexer.py", 161, "return MLAAttentionSpec("),
    ("0.27.0", "index_spec", "models/minimax_m3/common/indexer.py", 163, "num_kv_heads=1,"),
    ("0.27.0", "index_spec", "models/minimax_m3/common/indexer.py", 164, "head_size=self.head_dim,"),
    ("0.27.0", "kernel_block", "models/minimax_m3/common/sparse_attention.py", 109, "return [128]"),
    ("0.27.0", "kernel_block", "models/minimax_m3/common/indexer.py", 94, "return [128]"),
    ("0.27.0", "kv_dtypes", "models/minimax_m3/common/sparse_attention.py", 86, '"fp8_e5m2",'),
    (
        "0.27.0",
        "grouping",
        "v1/core/single_type_kv_cache_manager.py",
        1921,
        "MLAAttentionSpec, FullAttentionManager, uniform_type_base_spec=FullAttentionSpec",
    ),
    (
        "0.27.0",
        "grouping",
        "v1/kv_cache_interface.py",
        179,
        "isinstance(spec, uniform_type_base_spec) for spec in kv_cache_specs.values()",
    ),
    (
        "0.27.0",
        "grouping",
        "v1/core/kv_cache_utils.py",
        1807,
        "elif uniform_spec := UniformTypeKVCacheSpecs.from_specs(kv_cache_spec):",
    ),
    ("0.27.0", "block_choice", "platforms/interface.py", 624, "backend_cls = cls._find_non_ssm_backend(vllm_config)"),
    ("0.27.0", "block_choice", "platforms/interface.py", 631, "preferred = backend_cls.get_preferred_block_size("),
    ("0.27.0", "block_choice", "v1/attention/backends/flash_attn.py", 84, "return [MultipleOf(16)]"),
    ("0.27.0", "block_choice", "v1/worker/utils.py", 332, 'raise ValueError(f"No common block size for'),
    ("0.27.0", "block_choice", "models/minimax_m3/nvidia/model.py", 711, "self.self_attn = MiniMaxM3Attention("),
    ("0.27.0", "block_choice", "models/minimax_m3/nvidia/model.py", 352, "self.attn = Attention("),
    ("0.28.0", "registry", "model_executor/models/registry.py", 163, '"MiniMaxM3SparseForCausalLM": ('),
    ("0.28.0", "config", "transformers_utils/config.py", 116, 'minimax_m3_vl="MiniMaxM3Config",'),
    (
        "0.28.0",
        "config",
        "transformers_utils/configs/minimax_m3.py",
        102,
        '"sparse_attention_freq": [0] * 3 + [1] * 57,',
    ),
    ("0.28.0", "sparse_layers", "models/minimax_m3/nvidia/model.py", 100, 'freq = cfg.get("sparse_attention_freq")'),
    (
        "0.28.0",
        "kv_heads",
        "models/minimax_m3/nvidia/model.py",
        425,
        "self.num_kv_heads = max(1, self.total_num_kv_heads // tp_size)",
    ),
    ("0.28.0", "gqa_spec", "models/minimax_m3/nvidia/model.py", 558, "return FullAttentionSpec("),
    (
        "0.28.0",
        "index_dtype",
        "models/minimax_m3/nvidia/model.py",
        501,
        "self.indexer_kv_dtype = vllm_config.attention_config.resolve_indexer_kv_dtype(",
    ),
    ("0.28.0", "index_dtype", "models/minimax_m3/nvidia/model.py", 502, '"bf16"'),
    ("0.28.0", "index_spec", "models/minimax_m3/common/indexer.py", 139, "cache_dtype = torch.bfloat16"),
    ("0.28.0", "index_spec", "models/minimax_m3/common/indexer.py", 161, "return MLAAttentionSpec("),
    ("0.28.0", "index_spec", "models/minimax_m3/common/indexer.py", 163, "num_kv_heads=1,"),
    ("0.28.0", "index_spec", "models/minimax_m3/common/indexer.py", 164, "head_size=self.head_dim,"),
    ("0.28.0", "kernel_block", "models/minimax_m3/common/sparse_attention.py", 109, "return [128]"),
    ("0.28.0", "kernel_block", "models/minimax_m3/common/indexer.py", 94, "return [128]"),
    ("0.28.0", "kv_dtypes", "models/minimax_m3/common/sparse_attention.py", 86, '"fp8_e5m2",'),
    (
        "0.28.0",
        "grouping",
        "v1/core/single_type_kv_cache_manager.py",
        1932,
        "MLAAttentionSpec, FullAttentionManager, uniform_type_base_spec=FullAttentionSpec",
    ),
    (
        "0.28.0",
        "grouping",
        "v1/kv_cache_interface.py",
        213,
        "isinstance(spec, uniform_type_base_spec) for spec in kv_cache_specs.values()",
    ),
    (
        "0.28.0",
        "grouping",
        "v1/core/kv_cache_utils.py",
        1767,
        "elif uniform_spec := UniformTypeKVCacheSpecs.from_specs(kv_cache_spec):",
    ),
    ("0.28.0", "block_choice", "platforms/interface.py", 624, "backend_cls = cls._find_non_ssm_backend(vllm_config)"),
    ("0.28.0", "block_choice", "platforms/interface.py", 631, "preferred = backend_cls.get_preferred_block_size("),
    ("0.28.0", "block_choice", "v1/attention/backends/flash_attn.py", 89, "return [MultipleOf(16)]"),
    ("0.28.0", "block_choice", "v1/worker/utils.py", 367, 'raise ValueError(f"No common block size for'),
    ("0.28.0", "block_choice", "models/minimax_m3/nvidia/model.py", 712, "self.self_attn = MiniMaxM3Attention("),
    ("0.28.0", "block_choice", "models/minimax_m3/nvidia/model.py", 352, "self.attn = Attention("),
    ("0.29.0", "registry", "model_executor/models/registry.py", 166, '"MiniMaxM3SparseForCausalLM": ('),
    ("0.29.0", "config", "transformers_utils/config.py", 111, 'minimax_m3_vl="MiniMaxM3Config",'),
    (
        "0.29.0",
        "config",
        "transformers_utils/configs/minimax_m3.py",
        102,
        '"sparse_attention_freq": [0] * 3 + [1] * 57,',
    ),
    ("0.29.0", "sparse_layers", "models/minimax_m3/nvidia/model.py", 100, 'freq = cfg.get("sparse_attention_freq")'),
    (
        "0.29.0",
        "kv_heads",
        "models/minimax_m3/nvidia/model.py",
        425,
        "self.num_kv_heads = max(1, self.total_num_kv_heads // tp_size)",
    ),
    ("0.29.0", "gqa_spec", "models/minimax_m3/nvidia/model.py", 558, "return FullAttentionSpec("),
    (
        "0.29.0",
        "index_dtype",
        "models/minimax_m3/nvidia/model.py",
        501,
        "self.indexer_kv_dtype = vllm_config.attention_config.resolve_indexer_kv_dtype(",
    ),
    ("0.29.0", "index_dtype", "models/minimax_m3/nvidia/model.py", 502, '"bf16"'),
    ("0.29.0", "index_spec", "models/minimax_m3/common/indexer.py", 120, "cache_dtype = torch.bfloat16"),
    ("0.29.0", "index_spec", "models/minimax_m3/common/indexer.py", 146, "return MLAAttentionSpec("),
    ("0.29.0", "index_spec", "models/minimax_m3/common/indexer.py", 148, "num_kv_heads=1,"),
    ("0.29.0", "index_spec", "models/minimax_m3/common/indexer.py", 149, "head_size=self.head_dim,"),
    ("0.29.0", "kernel_block", "models/minimax_m3/common/sparse_attention.py", 155, "return [128]"),
    ("0.29.0", "kernel_block", "models/minimax_m3/common/indexer.py", 94, "return [128]"),
    ("0.29.0", "kv_dtypes", "models/minimax_m3/common/sparse_attention.py", 132, '"fp8_e5m2",'),
    (
        "0.29.0",
        "grouping",
        "v1/core/single_type_kv_cache_manager.py",
        2076,
        "MLAAttentionSpec, FullAttentionManager, uniform_type_base_spec=FullAttentionSpec",
    ),
    (
        "0.29.0",
        "grouping",
        "v1/kv_cache_interface.py",
        237,
        "isinstance(spec, uniform_type_base_spec) for spec in kv_cache_specs.values()",
    ),
    (
        "0.29.0",
        "grouping",
        "v1/core/kv_cache_utils.py",
        1929,
        "elif uniform_spec := UniformTypeKVCacheSpecs.from_specs(kv_cache_spec):",
    ),
    ("0.29.0", "block_choice", "platforms/interface.py", 624, "backend_cls = cls._find_non_ssm_backend(vllm_config)"),
    ("0.29.0", "block_choice", "platforms/interface.py", 631, "preferred = backend_cls.get_preferred_block_size("),
    ("0.29.0", "block_choice", "v1/attention/backends/flash_attn.py", 116, "return [MultipleOf(16)]"),
    ("0.29.0", "block_choice", "v1/worker/utils.py", 376, 'raise ValueError(f"No common block size for'),
    ("0.29.0", "block_choice", "models/minimax_m3/nvidia/model.py", 712, "self.self_attn = MiniMaxM3Attention("),
    ("0.29.0", "block_choice", "models/minimax_m3/nvidia/model.py", 352, "self.attn = Attention("),
    ("0.30.0", "registry", "model_executor/models/registry.py", 168, '"MiniMaxM3SparseForCausalLM": ('),
    ("0.30.0", "config", "transformers_utils/config.py", 131, 'minimax_m3_vl="MiniMaxM3Config",'),
    (
        "0.30.0",
        "config",
        "transformers_utils/configs/minimax_m3.py",
        102,
        '"sparse_attention_freq": [0] * 3 + [1] * 57,',
    ),
    ("0.30.0", "sparse_layers", "models/minimax_m3/nvidia/model.py", 100, 'freq = cfg.get("sparse_attention_freq")'),
    (
        "0.30.0",
        "kv_heads",
        "models/minimax_m3/nvidia/model.py",
        425,
        "self.num_kv_heads = max(1, self.total_num_kv_heads // tp_size)",
    ),
    ("0.30.0", "gqa_spec", "models/minimax_m3/nvidia/model.py", 558, "return FullAttentionSpec("),
    (
        "0.30.0",
        "index_dtype",
        "models/minimax_m3/nvidia/model.py",
        501,
        "self.indexer_kv_dtype = vllm_config.attention_config.resolve_indexer_kv_dtype(",
    ),
    ("0.30.0", "index_dtype", "models/minimax_m3/nvidia/model.py", 502, '"bf16"'),
    ("0.30.0", "index_spec", "models/minimax_m3/common/indexer.py", 121, "cache_dtype = torch.bfloat16"),
    ("0.30.0", "index_spec", "models/minimax_m3/common/indexer.py", 147, "return MLAAttentionSpec("),
    ("0.30.0", "index_spec", "models/minimax_m3/common/indexer.py", 149, "num_kv_heads=1,"),
    ("0.30.0", "index_spec", "models/minimax_m3/common/indexer.py", 150, "head_size=self.head_dim,"),
    ("0.30.0", "kernel_block", "models/minimax_m3/common/sparse_attention.py", 164, "return [128]"),
    ("0.30.0", "kernel_block", "models/minimax_m3/common/indexer.py", 95, "return [128]"),
    ("0.30.0", "kv_dtypes", "models/minimax_m3/common/sparse_attention.py", 141, '"fp8_e5m2",'),
    (
        "0.30.0",
        "grouping",
        "v1/core/single_type_kv_cache_manager.py",
        2704,
        "MLAAttentionSpec, FullAttentionManager, uniform_type_base_spec=FullAttentionSpec",
    ),
    (
        "0.30.0",
        "grouping",
        "v1/kv_cache_interface.py",
        254,
        "isinstance(spec, uniform_type_base_spec) for spec in kv_cache_specs.values()",
    ),
    (
        "0.30.0",
        "grouping",
        "v1/core/kv_cache_utils.py",
        2282,
        "elif uniform_spec := UniformTypeKVCacheSpecs.from_specs(kv_cache_spec):",
    ),
    ("0.30.0", "block_choice", "platforms/interface.py", 624, "backend_cls = cls._find_non_ssm_backend(vllm_config)"),
    ("0.30.0", "block_choice", "platforms/interface.py", 631, "preferred = backend_cls.get_preferred_block_size("),
    ("0.30.0", "block_choice", "v1/attention/backends/flash_attn.py", 318, "return [MultipleOf(16)]"),
    ("0.30.0", "block_choice", "v1/worker/utils.py", 386, 'raise ValueError(f"No common block size for'),
    ("0.30.0", "block_choice", "models/minimax_m3/nvidia/model.py", 712, "self.self_attn = MiniMaxM3Attention("),
    ("0.30.0", "block_choice", "models/minimax_m3/nvidia/model.py", 352, "self.attn = Attention("),
    ("0.31.0", "registry", "model_executor/models/registry.py", 167, '"MiniMaxM3SparseForCausalLM": ('),
    ("0.31.0", "config", "transformers_utils/config.py", 131, 'minimax_m3_vl="MiniMaxM3Config",'),
    (
        "0.31.0",
        "config",
        "transformers_utils/configs/minimax_m3.py",
        102,
        '"sparse_attention_freq": [0] * 3 + [1] * 57,',
    ),
    ("0.31.0", "sparse_layers", "models/minimax_m3/nvidia/model.py", 103, 'freq = cfg.get("sparse_attention_freq")'),
    (
        "0.31.0",
        "kv_heads",
        "models/minimax_m3/nvidia/model.py",
        428,
        "self.num_kv_heads = max(1, self.total_num_kv_heads // tp_size)",
    ),
    ("0.31.0", "gqa_spec", "models/minimax_m3/nvidia/model.py", 561, "return FullAttentionSpec("),
    (
        "0.31.0",
        "index_dtype",
        "models/minimax_m3/nvidia/model.py",
        504,
        "self.indexer_kv_dtype = vllm_config.attention_config.resolve_indexer_kv_dtype(",
    ),
    ("0.31.0", "index_dtype", "models/minimax_m3/nvidia/model.py", 505, '"bf16"'),
    ("0.31.0", "index_spec", "models/minimax_m3/common/indexer.py", 121, "cache_dtype = torch.bfloat16"),
    ("0.31.0", "index_spec", "models/minimax_m3/common/indexer.py", 147, "return MLAAttentionSpec("),
    ("0.31.0", "index_spec", "models/minimax_m3/common/indexer.py", 149, "num_kv_heads=1,"),
    ("0.31.0", "index_spec", "models/minimax_m3/common/indexer.py", 150, "head_size=self.head_dim,"),
    ("0.31.0", "kernel_block", "models/minimax_m3/common/sparse_attention.py", 164, "return [128]"),
    ("0.31.0", "kernel_block", "models/minimax_m3/common/indexer.py", 95, "return [128]"),
    ("0.31.0", "kv_dtypes", "models/minimax_m3/common/sparse_attention.py", 141, '"fp8_e5m2",'),
    (
        "0.31.0",
        "grouping",
        "v1/core/single_type_kv_cache_manager.py",
        2707,
        "MLAAttentionSpec, FullAttentionManager, uniform_type_base_spec=FullAttentionSpec",
    ),
    (
        "0.31.0",
        "grouping",
        "v1/kv_cache_interface.py",
        260,
        "isinstance(spec, uniform_type_base_spec) for spec in kv_cache_specs.values()",
    ),
    (
        "0.31.0",
        "grouping",
        "v1/core/kv_cache_utils.py",
        2330,
        "elif uniform_spec := UniformTypeKVCacheSpecs.from_specs(kv_cache_spec):",
    ),
    (
        "0.31.0",
        "block_choice",
        "platforms/interface.py",
        639,
        "if all(b.supports_block_size(default_block_size) for b in backend_classes):",
    ),
    ("0.31.0", "block_choice", "platforms/interface.py", 653, "for candidate in candidates:"),
    ("0.32.0", "registry", "model_executor/models/registry.py", 163, '"MiniMaxM3SparseForCausalLM": ('),
    ("0.32.0", "config", "transformers_utils/config.py", 114, 'minimax_m3_vl="MiniMaxM3Config",'),
    (
        "0.32.0",
        "config",
        "transformers_utils/configs/minimax_m3.py",
        102,
        '"sparse_attention_freq": [0] * 3 + [1] * 57,',
    ),
    ("0.32.0", "sparse_layers", "models/minimax_m3/nvidia/model.py", 104, 'freq = cfg.get("sparse_attention_freq")'),
    (
        "0.32.0",
        "kv_heads",
        "models/minimax_m3/nvidia/model.py",
        429,
        "self.num_kv_heads = max(1, self.total_num_kv_heads // tp_size)",
    ),
    ("0.32.0", "gqa_spec", "models/minimax_m3/nvidia/model.py", 564, "return FullAttentionSpec("),
    (
        "0.32.0",
        "index_dtype",
        "models/minimax_m3/nvidia/model.py",
        507,
        "self.indexer_kv_dtype = vllm_config.attention_config.resolve_indexer_kv_dtype(",
    ),
    ("0.32.0", "index_dtype", "models/minimax_m3/nvidia/model.py", 508, '"bf16"'),
    ("0.32.0", "index_spec", "models/minimax_m3/common/indexer.py", 121, "cache_dtype = torch.bfloat16"),
    ("0.32.0", "index_spec", "models/minimax_m3/common/indexer.py", 147, "return MLAAttentionSpec("),
    ("0.32.0", "index_spec", "models/minimax_m3/common/indexer.py", 149, "num_kv_heads=1,"),
    ("0.32.0", "index_spec", "models/minimax_m3/common/indexer.py", 150, "head_size=self.head_dim,"),
    ("0.32.0", "kernel_block", "models/minimax_m3/common/sparse_attention.py", 165, "return [128]"),
    ("0.32.0", "kernel_block", "models/minimax_m3/common/indexer.py", 95, "return [128]"),
    ("0.32.0", "kv_dtypes", "models/minimax_m3/common/sparse_attention.py", 142, '"fp8_e5m2",'),
    (
        "0.32.0",
        "grouping",
        "v1/core/single_type_kv_cache_manager.py",
        2686,
        "MLAAttentionSpec, FullAttentionManager, uniform_type_base_spec=FullAttentionSpec",
    ),
    (
        "0.32.0",
        "grouping",
        "v1/kv_cache_interface.py",
        284,
        "isinstance(spec, uniform_type_base_spec) for spec in kv_cache_specs.values()",
    ),
    (
        "0.32.0",
        "grouping",
        "v1/core/kv_cache_utils.py",
        2189,
        "elif uniform_spec := UniformTypeKVCacheSpecs.from_specs(kv_cache_spec):",
    ),
    (
        "0.32.0",
        "block_choice",
        "platforms/interface.py",
        723,
        "if all(b.supports_block_size(default_block_size) for b in backend_classes):",
    ),
    ("0.32.0", "block_choice", "platforms/interface.py", 737, "for candidate in candidates:"),
]
RULES = {"registry", "config", "sparse_layers", "kv_heads", "gqa_spec", "index_dtype", "index_spec", "kernel_block"}
RULES |= {"kv_dtypes", "grouping", "block_choice"}


@pytest.mark.parametrize(
    ("release", "rule", "path", "line", "text"),
    RELEASE_CITED,
    ids=[f"{r}-{Path(p).name}:{n}" for r, _, p, n, _ in RELEASE_CITED],
)
def test_cited_lines_of_each_release(release, rule, path, line, text):
    check_cited_line(ENGINE_SOURCES / f"vllm-{release}" / "vllm" / path, line, text)


def test_every_release_cites_every_rule():
    for release in RELEASES:
        assert {rule for r, rule, *_ in RELEASE_CITED if r == release} == RULES, release


def test_0_23_does_not_register_minimax_m3():
    registry = ENGINE_SOURCES / "vllm-0.23.0/vllm/model_executor/models/registry.py"
    if not registry.exists():
        pytest.skip(f"{registry} is not on this machine")
    assert "MiniMaxM3Sparse" not in registry.read_text()


def _plan(version: str | None, block_size: int = 0, config: dict | None = None, tp: int = 1):
    engine, caches, _ = _engine_and_caches(config)
    req = Request(131072, 2, "bfloat16", "bfloat16", tp=tp, block_size=block_size, engine_version=version)
    return engine.plan(caches, req), engine.stage_costs(caches, req)


@pytest.mark.parametrize("release", RELEASES)
@pytest.mark.parametrize("block_size", [128, 256])
def test_each_release_stores_0_33s_layout_at_a_given_block_size(release, block_size):
    """0.24-0.32 build the same specs and group them alike (RELEASE_CITED): with --block-size the same pages."""
    plan, costs = _plan(release, block_size, tp=2)
    (spec,) = plan.specs
    full, index = _pages(2, 2, block=block_size)
    assert (plan.num_groups, spec.block_size, spec.page) == (1, block_size, LAYERS * full + SPARSE_LAYERS * index)
    assert (plan, costs) == _plan("0.33.0", block_size, tp=2)


@pytest.mark.parametrize("release", ["0.31.0", "0.32.0"])
def test_0_31_and_0_32_pick_128_as_0_33(release):
    """vllm-0.31.0 platforms/interface.py:639-663 (0.32.0 :723-747): the smallest size every backend accepts."""
    plan, costs = _plan(release)
    assert plan.specs == _plan("0.33.0")[0].specs and next(iter(plan.specs)).block_size == 128
    assert costs == _plan("0.33.0")[1]


@pytest.mark.parametrize("release", FIRST_BACKEND)
def test_0_24_to_0_30_cannot_start_m3_on_a_dense_first_layer_without_a_block_size(release):
    """vllm-0.24.0 platforms/interface.py:609-625: the preferred size of `_find_non_ssm_backend`'s backend alone,
    layer 0's standard Attention (nvidia/model.py:681, :346) on FlashAttention (MultipleOf(16), flash_attn.py:94)
    keeps 16, and v1/worker/utils.py:328 raises for the MSA and indexer backends' 128."""
    with pytest.raises(UsageError, match="No common block size for 16") as info:
        _plan(release)
    assert info.value.field == "block_size" and "layer 0 is dense" in str(info.value)
    assert "--block-size 128" in str(info.value.hint)


def _sparse_from_layer_0(dense: tuple[int, ...] = ()) -> dict:
    """The test config with layer 0 sparse and `dense` the only dense layers."""
    config = _config()
    freq = [0 if i in dense else 1 for i in range(LAYERS)]
    sparse = {**config["text_config"]["sparse_attention_config"], "sparse_attention_freq": freq}
    sparse["sparse_disable_index_value"] = freq
    config["text_config"] = {**config["text_config"], "sparse_attention_config": sparse, "moe_layer_freq": freq}
    return config


def test_0_24_to_0_30_start_m3_whose_stages_begin_on_a_sparse_layer():
    """The first layer's backend is then the MSA or indexer backend: get_preferred_block_size(16) is 128, the
    only size they take (vllm-0.24.0 v1/attention/backend.py:194-202), for each pipeline stage's own layers."""
    config = _sparse_from_layer_0(dense=(30,))
    engine, caches, shape = _engine_and_caches(config)
    assert sum(isinstance(c, L.IndexKeys) for c in caches) == LAYERS - 1
    plan = engine.plan(caches, Request(8192, 1, "bfloat16", "bfloat16", engine_version="0.27.0"))
    assert next(iter(plan.specs)).block_size == 128
    stage_1 = [c for i in range(30, 60) for c in shape.layers[i]]  # vLLM's split of 60 layers over 2 stages
    with pytest.raises(UsageError, match="layer 30 is dense"):
        engine.stage_costs(stage_1, Request(8192, 1, "bfloat16", "bfloat16", pp=2, engine_version="0.27.0"))
    assert engine.stage_costs(stage_1, Request(8192, 1, "bfloat16", "bfloat16", pp=2, engine_version="0.31.0"))
