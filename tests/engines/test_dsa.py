"""DeepSeek Sparse Attention (DSA) models: DeepSeek V3.2 (`deepseek_v32`) and GLM-5.x (`glm_moe_dsa`).

Each rule's test names the engine source it follows (vLLM 0.33.0, SGLang 0.5.23, transformers 5.24); where that
source tree is on this machine (KVPLAN_ENGINE_SOURCES, default /work/src) the cited lines are read back too.
transformers' cache tensors are compared byte for byte on the meta device in
tests/profiling/test_against_transformers.py (slow).
"""

from __future__ import annotations

import pytest

from kvplan.core import specs as L
from kvplan.core.shapes import indexer_layers, model_shape
from kvplan.engines.base import Request
from kvplan.engines.llamacpp import LlamaCppEngine
from kvplan.engines.sglang import SglangEngine
from kvplan.engines.tensorrt_llm import TensorRtLlmEngine
from kvplan.engines.transformers import TransformersEngine
from kvplan.engines.vllm import VllmEngine, capacity
from kvplan.errors import ConfigError, UsageError

from conftest import ENGINE_SOURCES, check_cited_line, load_config

V32, GLM5, GLM51, GLM52 = (
    "deepseek-ai__DeepSeek-V3.2",
    "zai-org__GLM-5",
    "zai-org__GLM-5.1",
    "zai-org__GLM-5.2",
)
LATENT_BF16 = (512 + 64) * 2  # kv_lora_rank + qk_rope_head_dim, bf16
FP8_DS_MLA = 512 + 4 * 4 + 64 * 2  # 656: fp8 NoPE, 4 fp32 scales, bf16 RoPE
NVFP4_DS_MLA = 512 // 2 + 64 + 512 // 16  # 352: e2m1 NoPE, fp8 RoPE, one fp8 scale per 16
INDEXER = 128 + 128 // 128 * 4  # 132: fp8 index keys + one fp32 scale per 128, uint8


def _req(kv: str = "bfloat16", cc: str | None = "9.0", **kw) -> Request:
    return Request(kw.pop("seq_len", 8192), kw.pop("batch", 1), kv, "bfloat16", compute_capability=cc, **kw)


def _per_token(engine, name: str, req: Request) -> int:
    costs = engine.stage_costs(model_shape(load_config(name)).caches(), req)
    assert len(costs) == 1 and costs[0].kind == L.MLA
    return int(costs[0].bytes_per_token)


# ---------------------------------------------------------------------------------------------------- shapes


@pytest.mark.parametrize(("name", "layers"), [(V32, 61), ("deepseek-ai__DeepSeek-V3.2-Exp", 61), (GLM5, 78)])
def test_every_layer_runs_an_indexer(name, layers):
    """No `index_topk_freq`: vLLM's skip rule (models/deepseek_v32/attention.py:166-177, freq default 1) and
    transformers' (GlmMoeDsaConfig.__post_init__, DeepseekV32 builds an indexer on every layer) keep all."""
    shape = model_shape(load_config(name))
    assert shape.layers == tuple((L.MlaLatent(512, 64, 128, sparse=True),) for _ in range(layers))


def test_glm_5_2_shares_the_indexer_of_every_fourth_layer():
    """GLM-5.2: `indexer_types` lists 21 "full" layers (0, 1, 2, 6, 10, ... 74) and 57 "shared" ones, which hold no
    indexer keys (transformers: `indexer = None` when shared, modeling_glm_moe_dsa.py:348-349; SGLang: a 0-row
    buffer, mem_cache/index_key_cache.py:55-59). vLLM ignores `indexer_types` and skips by index_topk_freq 4 and
    index_skip_topk_offset 3 (models/deepseek_v32/attention.py:166-177): the same layers."""
    cfg = load_config(GLM52)
    full = [i for i, own in enumerate(indexer_layers(cfg)) if own]
    assert full == [0, 1, 2, *range(6, 78, 4)] and len(full) == 21
    vllm_rule = [max(i - cfg["index_skip_topk_offset"] + 1, 0) % cfg["index_topk_freq"] == 0 for i in range(78)]
    assert [t == "full" for t in cfg["indexer_types"]] == vllm_rule == indexer_layers(cfg)
    shape = model_shape(cfg)
    assert [c.index_head_dim for c in shape.caches()] == [128 if i in full else 0 for i in range(78)]
    assert all(c.sparse for c in shape.caches())


def test_indexer_types_that_vllm_would_read_differently_are_refused():
    cfg = dict(load_config(GLM52), index_topk_freq=2)
    with pytest.raises(ConfigError, match="indexer_types"):
        model_shape(cfg)
    pattern = dict(load_config(GLM5), index_topk_pattern="FS" * 39)
    assert indexer_layers(pattern) == [i % 2 == 0 for i in range(78)]


def test_transformers_config_class_derives_the_same_indexer_layers():
    """transformers' own GlmMoeDsaConfig (configuration_glm_moe_dsa.py:134-148) from the freq/offset fields."""
    transformers = pytest.importorskip("transformers")
    cfg = {k: v for k, v in load_config(GLM52).items() if k not in ("indexer_types", "model_type")}
    hf = transformers.GlmMoeDsaConfig(**cfg)
    assert [t == "full" for t in hf.indexer_types] == indexer_layers(load_config(GLM52))


# ---------------------------------------------------------------------------------------------------- vLLM


@pytest.mark.parametrize(
    ("kv", "cc", "latent"),
    [
        ("bfloat16", "9.0", LATENT_BF16),  # FLASH_ATTN_MLA_SPARSE, bf16 latent
        ("bfloat16", None, LATENT_BF16),
        ("bfloat16", "10.0", LATENT_BF16),  # FLASHMLA_SPARSE / FA4, bf16 latent
        ("fp8_e4m3", "9.0", FP8_DS_MLA),  # FLASHMLA_SPARSE: fp8 -> fp8_ds_mla
        ("fp8_e4m3", None, FP8_DS_MLA),  # no GPU: Hopper's
        ("fp8_e4m3", "10.0", 512 + 64),  # FLASHINFER_MLA_SPARSE: "standard fp8"
        ("fp8_e4m3", "12.0", FP8_DS_MLA),  # FLASHINFER_MLA_SPARSE_SM120: fp8 -> fp8_ds_mla
        ("bfloat16", "12.0", FP8_DS_MLA),  # ... and auto too
        ("nvfp4", "10.0", NVFP4_DS_MLA),  # FLASHMLA_SPARSE nvfp4_ds_mla
    ],
)
def test_vllm_latent_layout_and_indexer_bytes(kv, cc, latent):
    """vLLM 0.33.0 sizes a sparse MLA token as the latent in its backend's layout (MLAAttention.get_kv_cache_spec,
    model_executor/layers/attention/mla_attention.py:1386-1388: fp8_ds_mla 656, nvfp4_ds_mla 352, else
    head_size 576 x dtype, MLAAttentionSpec head_size_v 0) after `_canonicalize_sparse_mla_kv_cache_dtype`
    (:359-375) for the backend platforms/cuda.py:83-155 picks; plus the indexer's MLAAttentionSpec of
    head_size 128 + 128 // 128 * 4 = 132 uint8 (models/deepseek_v32/attention.py:95-99) whatever the KV dtype."""
    engine = VllmEngine()
    assert _per_token(engine, V32, _req(kv, cc)) == 61 * (latent + INDEXER)
    assert _per_token(engine, GLM5, _req(kv, cc)) == 78 * (latent + INDEXER)
    assert _per_token(engine, GLM52, _req(kv, cc)) == 21 * (latent + INDEXER) + 57 * latent


def test_vllm_v3_2_figures_against_the_dense_mla_reading():
    """The issue's figures: read as dense MLA with the indexer keys in the KV dtype, V3.2 was 704 B (fp8) / 1408 B
    (bf16) per token and layer; vLLM stores 788 / 1284 (11 % more, 9 % less)."""
    engine = VllmEngine()
    assert _per_token(engine, V32, _req("fp8_e4m3")) == 61 * 788
    assert _per_token(engine, V32, _req("bfloat16")) == 61 * 1284
    assert (704 * 61) / _per_token(engine, V32, _req("fp8_e4m3")) == pytest.approx(0.893, abs=1e-3)
    assert (1408 * 61) / _per_token(engine, V32, _req("bfloat16")) == pytest.approx(1.097, abs=1e-3)


@pytest.mark.parametrize("cc", [None, "9.0", "10.0", "10.3", "12.0", "12.1"])
def test_vllm_block_size_is_the_indexers_64(cc):
    """The DSA indexer's backend takes only 64-token kernel blocks on CUDA (v1/attention/backends/mla/indexer.py:
    285-286) and every sparse MLA backend a multiple of 64 or 32, so the block size all backends accept is 64
    (platforms/interface.py:700-747), with any KV dtype (dense MLA on Hopper with bf16 keeps 16)."""
    caches = model_shape(load_config(V32)).caches()
    for kv in ("bfloat16", "fp8_e4m3"):
        assert VllmEngine().block_size(caches, _req(kv, cc)) == 64
    dense = model_shape(load_config("deepseek-ai__DeepSeek-V3")).caches()
    assert VllmEngine().block_size(dense, _req("bfloat16", "9.0")) == 16


def test_vllm_block_size_must_be_a_multiple_of_64():
    """`supports_block_size` (v1/attention/backend.py:122-138): block_size % 64 for the indexer's [64]."""
    caches = model_shape(load_config(V32)).caches()
    with pytest.raises(UsageError, match="multiple of 64"):
        VllmEngine().stage_costs(caches, _req(block_size=32))
    costs = VllmEngine().stage_costs(caches, _req(block_size=128, seq_len=100))
    assert costs[0].bytes == 61 * 128 * (LATENT_BF16 + INDEXER)


@pytest.mark.parametrize(
    ("kv", "cc", "version", "match"),
    [
        ("fp8_e5m2", "9.0", None, "no fp8_e5m2 cache"),  # no sparse backend lists fp8_e5m2
        ("int8", "9.0", None, "no int8 cache"),
        ("nvfp4", "9.0", None, "SM100"),  # flashmla_sparse.py:250-254
        ("nvfp4", "10.0", "0.29", "nvfp4_ds_mla"),  # config/cache.py adds it in 0.30.0
        ("bfloat16", "8.0", None, "no sparse MLA"),  # no sparse backend supports SM80 (A100)
        ("fp8_e4m3", "8.9", None, "no sparse MLA"),
    ],
)
def test_vllm_refuses_what_no_sparse_backend_serves(kv, cc, version, match):
    caches = model_shape(load_config(GLM5)).caches()
    with pytest.raises(UsageError, match=match):
        VllmEngine().stage_costs(caches, _req(kv, cc, engine_version=version))


def test_vllm_keeps_latent_and_indexer_in_one_group():
    """Latent and indexer specs are both MLAAttentionSpec (a FullAttentionSpec, v1/core/single_type_kv_cache_
    manager.py:2661-2665) with one block size, so get_kv_cache_groups makes one UniformTypeKVCacheSpecs group
    (v1/core/kv_cache_planning.py:1143-1146) whose block costs every layer's page (kv_cache_interface.py:1318-1320):
    no padding, no page unification, one block table. GLM-5.2's 21 + 57 layers are one group as well."""
    engine = VllmEngine()
    caches = model_shape(load_config(GLM52)).caches()
    req = _req(seq_len=4096)
    page = 64 * (21 * (LATENT_BF16 + INDEXER) + 57 * LATENT_BF16)
    cap = capacity(caches, req, 10 * page + 5, engine)
    assert (cap.num_groups, cap.num_blocks, cap.block_size, cap.blocks_per_request) == (1, 10, 64, 4096 // 64)
    assert cap.page_bytes * cap.group_size == page
    costs = engine.stage_costs(caches, req)
    assert [(c.kind, c.layers, c.bytes) for c in costs] == [(L.MLA, 78, 64 * page)]
    cap = capacity(model_shape(load_config(V32)).caches(), req, 10**10, engine)
    assert (cap.num_groups, cap.num_blocks) == (1, 10**10 // (61 * 64 * (LATENT_BF16 + INDEXER)))


def test_vllm_replicates_the_latent_and_indexer_on_every_tp_rank():
    """Both specs have num_kv_heads 1 and max_tp_shards 1 (mla_attention.py:1377-1378, deepseek_v2.py:660-662)."""
    engine = VllmEngine()
    assert _per_token(engine, V32, _req(tp=8)) == _per_token(engine, V32, _req(tp=1))


def test_vllm_serve_command_spells_nvfp4_ds_mla():
    """config/cache.py:52-53: sparse MLA's NVFP4 cache is `nvfp4_ds_mla` ("nvfp4" has no sparse backend)."""
    from kvplan.planning.recommend import recommend

    rec = recommend(
        "zai-org/GLM-5", gpu_profile="b200", gpus=8, tp=8, max_model_len=32768, kv_dtype="nvfp4", offline=True
    )
    assert "--kv-cache-dtype nvfp4_ds_mla" in rec.flags["vllm"]


# ---------------------------------------------------------------------------------------------------- SGLang


@pytest.mark.parametrize(
    ("kv", "cc", "arch_glm", "latent"),
    [
        ("bfloat16", "9.0", False, LATENT_BF16),
        ("bfloat16", "10.0", False, LATENT_BF16),
        ("fp8_e4m3", "9.0", False, FP8_DS_MLA),  # flashmla_kv: the scaled layout
        ("fp8_e4m3", None, False, FP8_DS_MLA),
        ("fp8_e4m3", "10.0", False, 576),  # trtllm: the raw layout
        ("fp8_e4m3", "12.0", False, 576),
        ("fp8_e4m3", "12.0", True, FP8_DS_MLA),  # GLM on SM120: flashinfer_sparse_mla
    ],
)
def test_sglang_dsa_pool_cell(kv, cc, arch_glm, latent):
    """SGLang 0.5.23's cell size (model_executor/pool_configurator.py:379-409): calculate_mla_kv_cache_dim
    (mem_cache/kv_cache_configurator.py:3412-3475: 512 + 512 // 128 * 4 + 64 x 2 bytes for fp8_e4m3 off the
    trtllm / TileLang raw layouts) x KV bytes, plus 132 uint8 indexer bytes per layer that runs an indexer
    (`_compute_dsa_indexer_cell_size`, :560-634); the DSA backends by GPU and KV dtype from
    arg_groups/overrides.py:636-720."""
    arch = ("GlmMoeDsaForCausalLM",) if arch_glm else ("DeepseekV32ForCausalLM",)
    engine = SglangEngine(arch)
    assert _per_token(engine, V32, _req(kv, cc)) == 61 * (latent + INDEXER)
    assert _per_token(engine, GLM52, _req(kv, cc)) == 21 * (latent + INDEXER) + 57 * latent


def test_sglang_refuses_fp8_e5m2_for_dsa():
    """arg_groups/overrides.py:714-720 choose DSA backends for fp8_e4m3 only; kvplan has not read e5m2's."""
    with pytest.raises(UsageError, match="fp8_e5m2"):
        SglangEngine().stage_costs(model_shape(load_config(V32)).caches(), _req("fp8_e5m2"))
    SglangEngine().stage_costs(model_shape(load_config("deepseek-ai__DeepSeek-V3")).caches(), _req("fp8_e5m2"))


# ------------------------------------------------------------------------------------ the other engines


def test_transformers_caches_latent_and_indexer_keys_in_the_model_dtype():
    """DynamicIndexedLayer (cache_utils.py:316-350): keys [B, T, 512], values [B, T, 64], indexer_keys
    [B, T, index_head_dim] in the model dtype, only where the layer ran its indexer (checked on the meta device)."""
    engine = TransformersEngine()
    assert _per_token(engine, V32, _req()) == 61 * (512 + 64 + 128) * 2
    assert _per_token(engine, GLM52, _req()) == 21 * (512 + 64 + 128) * 2 + 57 * (512 + 64) * 2
    with pytest.raises(UsageError, match="full attention"):
        engine.stage_costs(model_shape(load_config(V32)).caches(), _req("fp8_e4m3"))


def test_llamacpp_refuses_dsa_of_a_model_type_it_has_no_dsa_arch_for():
    """llama.cpp's DSA cache is sized for deepseek32 and glm-dsa (tests/engines/test_llamacpp_dsa.py); a sparse latent
    under any other model_type is refused."""
    with pytest.raises(UsageError, match="DSA"):
        LlamaCppEngine("deepseek_v3").stage_costs(model_shape(load_config(GLM51)).caches(), _req())


def test_tensorrt_llm_sizes_dsa_latent_and_indexer_keys():
    """TensorRT-LLM's DSACacheManager (rules and cited lines: tests/engines/test_tensorrt_llm_2026.py): the latent
    in the KV dtype plus 132 uint8 indexer bytes per full-indexer layer, the same indexer bytes as vLLM's."""
    engine = TensorRtLlmEngine()
    assert _per_token(engine, V32, _req()) == 61 * (LATENT_BF16 + INDEXER)
    assert _per_token(engine, GLM52, _req("fp8_e4m3")) == 21 * (576 + INDEXER) + 57 * 576


# ------------------------------------------------------------------------------ the cited source lines


_SOURCES = ENGINE_SOURCES
_CITED = [
    (
        "vllm-0.33.0/vllm/model_executor/layers/attention/mla_attention.py",
        1386,
        'state_content_bytes={"fp8_ds_mla": 656, "nvfp4_ds_mla": 352}',
    ),
    ("vllm-0.33.0/vllm/models/deepseek_v32/attention.py", 96, "head_dim=self.head_dim + self.head_dim // self."),
    ("vllm-0.33.0/vllm/models/deepseek_v32/attention.py", 97, "dtype=torch.uint8"),
    ("vllm-0.33.0/vllm/models/deepseek_v32/attention.py", 172, "max(layer_id - index_skip_topk_offset + 1, 0)"),
    ("vllm-0.33.0/vllm/v1/attention/backends/mla/indexer.py", 286, "else [64]"),
    ("vllm-0.33.0/vllm/v1/core/kv_cache_planning.py", 1143, "UniformTypeKVCacheSpecs.from_specs(kv_cache_spec)"),
    ("vllm-0.33.0/vllm/v1/kv_cache_interface.py", 1320, "sum(spec.page_size_bytes for spec in self.kv_cache"),
    ("sglang-0.5.23/sglang/srt/mem_cache/kv_cache_configurator.py", 3471, "+ kv_lora_rank // quant_block_size * 4"),
    ("sglang-0.5.23/sglang/srt/model_executor/pool_configurator.py", 569, "index_head_dim // DSATokenToKVPool"),
    ("sglang-0.5.23/sglang/srt/arg_groups/overrides.py", 716, 'default = "trtllm" if major >= 10 else "flashmla_kv"'),
    ("sglang-0.5.23/sglang/srt/mem_cache/index_key_cache.py", 59, "0 if self.pool.skip_topk_layers[layer_idx]"),
]


@pytest.mark.parametrize(("path", "line", "text"), _CITED)
def test_cited_engine_source_lines(path, line, text):
    check_cited_line(_SOURCES / path, line, text)


def test_vllm_estimate_says_which_layout_and_the_glm_blackwell_default():
    """The notes name the latent layout, the indexer layers and, for GLM-5 with a 16-bit cache where the GPU may
    be SM100, vLLM's own auto -> fp8 switch (model_executor/models/config.py:89-101), which kvplan cannot see
    behind a resolved `auto`."""
    from kvplan.engines.vllm import estimate_notes

    shape = model_shape(load_config(GLM52))
    notes = estimate_notes(VllmEngine(shape), shape, _req("fp8_e4m3", None), frozenset({L.MLA}))
    assert "fp8_ds_mla" in notes[0] and "21 of 78 layers" in notes[0] and "Hopper" in notes[0]
    assert len(notes) == 1
    for cc, expected in (("10.0", 2), (None, 2), ("9.0", 1)):
        assert len(estimate_notes(VllmEngine(shape), shape, _req("bfloat16", cc), frozenset({L.MLA}))) == expected
