"""vLLM's storage of DeepSeek-V4 (kvplan.engines.vllm.v4_layer_specs / v4_packed_groups / VllmEngine.v4_plan),
each figure worked out by hand from vLLM's source (vllm-0.33.0 unless said; 0.29.0 alike):

- every V4 spec pads its page to 576 B in the fp8_ds_mla layout (v1/kv_cache_interface.py:719-726 with
  `alignment=576`), and an fp8_ds_mla entry is 584 B (models/deepseek_v4/attention.py:880);
- the sliding ring: SlidingWindowMLASpec, 64-token blocks (v1/attention/backends/mla/sparse_swa.py:85, :120-147);
- compressed entries: MLAAttentionSpec with tokens_per_state = ratio in 256-token blocks (attention.py:860-882,
  kv_cache_interface.py:271-275);
- the indexer keys: 128 fp8 + 4 B scale = 132 B per entry (attention.py:1020-1035, :911-925);
- the compressors' fp32 state rings: 2 x coff x head_dim floats per token, 4-token blocks (ratio 4, coff 2) or
  8-token blocks (ratio 128, coff 1), sliding_window coff x ratio (models/deepseek_v4/compressor.py:139-191, :283);
- groups: `_get_packed_kv_cache_groups` (v1/core/kv_cache_planning.py:914-1041) with `_approximate_gcd` (:879-911);
  one pool block costs the widest group (:574-606); a request holds blocks in every group
  (v1/core/kv_cache_utils.py:1061-1093);
- vLLM 0.26 groups layer tuples with padded sliding pages, 0.27-0.28 the same tuples unpadded and overlaid
  (vllm-0.26.0, 0.27.0, 0.28.0 v1/core/kv_cache_utils.py, lines cited in each test).
"""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
from typer.testing import CliRunner

from kvplan.cli import app
from kvplan.core import specs as L
from kvplan.core.shapes import model_shape
from kvplan.engines.base import Request
from kvplan.engines.serving import FitInputs, SpeculativeInputs
from kvplan.engines.vllm import (
    ENTRY,
    V4_LABELS,
    VllmEngine,
    approximate_gcd,
    capacity,
    max_memory_usage_bytes,
    parse_speculative_config,
    v4_layer_specs,
    v4_packed_groups,
    v4_tuple_groups,
)
from kvplan.engines.vllm import (
    auto_kv_dtype as vllm_auto_kv_dtype,
)
from kvplan.errors import UsageError
from kvplan.weights.stored import tensors_bytes
from kvplan.weights.tensors import mtp_tensors, weight_tensors

from conftest import load_config

FLASH, PRO = "deepseek-ai__DeepSeek-V4-Flash", "deepseek-ai__DeepSeek-V4-Pro"


def _flash():
    shape = model_shape(load_config(FLASH))
    return shape, list(shape.caches())


def test_per_layer_pages_follow_the_source_arithmetic():
    """Pages of one block, by hand: ring 64 x 584 = 37,376 -> 37,440 (65 x 576); CSA entries 256/4 = 64 x 584 ->
    37,440; HCA entries 256/128 = 2 x 584 = 1,168 -> 1,728; indexer keys 64 x 132 = 8,448 -> 8,640; CSA compressor
    4 x (2 x 2 x 512) x 4 B = 32,768 -> 32,832; HCA compressor 8 x (2 x 1 x 512) x 4 B = 32,768 -> 32,832; the
    indexer's compressor 4 x (2 x 2 x 128) x 4 B = 8,192 -> 8,640."""
    csa = L.CompressedAttention(512, 128, 4, overlap=True, index_head_dim=128)
    hca = L.CompressedAttention(512, 128, 128)
    ring = L.CompressedAttention(512, 128)
    got = {c.kind: [(s.role, s.page, s.block_size, s.window) for s in v4_layer_specs(c)] for c in (csa, hca, ring)}
    assert got[L.V4_SLIDING] == [("swa", 37440, 64, 128)]
    assert got[L.HCA] == [("swa", 37440, 64, 128), ("compressed", 1728, 256, None), ("state", 32832, 8, 128)]
    assert got[L.CSA] == [
        ("swa", 37440, 64, 128),
        ("compressed", 37440, 256, None),
        ("state", 32832, 4, 8),
        ("indexer", 8640, 256, None),
        ("indexer_state", 8640, 4, 8),
    ]


def test_approximate_gcd_is_vllms():
    """Flash's balanced buckets hold 43 rings, 21 CSA compressor pairs and 20 HCA compressors; from the floor 21
    (the CSA pair bucket stays whole) d = 22 pads 1 + 1 + 2 = 4, less than d = 21 (20 + 0 + 1) or 23 (3 + 2 + 3)."""
    assert approximate_gcd([43, 21, 20], 21) == 22
    assert approximate_gcd([61, 30, 31], 30) == 31  # Pro: 61 rings, 30 CSA pairs, 31 HCA compressors
    assert approximate_gcd([4, 4], 1) == 4  # a tie keeps the larger chunk


@pytest.mark.parametrize(
    ("name", "groups", "block_bytes"),
    [
        # Flash: 2 sliding-only, 21 CSA, 20 HCA layers. Buckets: 43 rings -> 2 groups (22 + 21); the compressed
        # bucket (21 x 37,440 + 21 x 8,640 + 20 x 1,728, unbalanced: whole) = 1,002,240 B, the widest; the CSA
        # compressor pairs (21 x 32,832 + 21 x 8,640); the HCA compressors (20 x 32,832).
        (
            FLASH,
            [("swa", 64, 22), ("swa", 64, 21), ("compressed", 256, 62), ("state", 4, 42), ("state", 8, 20)],
            1002240,
        ),
        # Pro: 30 CSA, 31 HCA: 30 x 37,440 + 30 x 8,640 + 31 x 1,728 = 1,435,968 B.
        (PRO, [("swa", 64, 31), ("swa", 64, 30), ("compressed", 256, 91), ("state", 8, 31), ("state", 4, 60)], 1435968),
    ],
)
def test_released_configs_group_like_vllm(name, groups, block_bytes):
    caches = list(model_shape(load_config(name)).caches())
    specs = [s for i, c in enumerate(caches) for s in v4_layer_specs(c, i)]
    got = v4_packed_groups(specs)
    assert sorted((g[0].role, g[0].block_size, len(g)) for g in got) == sorted(groups)
    assert max(sum(s.page for s in g) for g in got) == block_bytes
    assert sum(len(g) for g in got) == len(specs)  # every spec in exactly one group


def test_whole_model_capacity_on_h200_tp8():
    """Flash at max_model_len 1,048,576 with 8,192 batched tokens (0.33: two in-flight batches, 16,384 tokens):
    compressed cdiv(1,048,576, 256) = 4,096 blocks; each ring group cdiv(127 + 16,384, 64) + 1 = 259; the CSA
    compressor cdiv(7 + 16,384, 4) + 1 = 4,099; the HCA compressor cdiv(127 + 16,384, 8) + 1 = 2,065: 10,778 blocks
    of 1,002,240 B per request. 100 GiB hold 107,374,182,400 // 1,002,240 = 107,134 blocks: 9.94 requests,
    int(9.94... x 1,048,576) = 10,422,911 tokens. TP does not change it (one latent head, max_tp_shards=1)."""
    shape, caches = _flash()
    engine = VllmEngine(shape)
    for tp in (1, 8):
        req = Request(1048576, 1, "fp8_e4m3", "bfloat16", tp=tp, max_num_batched_tokens=8192)
        cap = capacity(caches, req, 100 * 2**30, engine)
        assert (cap.page_bytes, cap.group_size, cap.num_groups) == (1002240, 1, 5)
        assert (cap.blocks_per_request, cap.num_blocks, cap.usable_blocks) == (10778, 107134, 107133)
        assert cap.kv_cache_tokens == int(107134 / 10778 * 1048576) == 10422911
        costs = {c.kind: c for c in engine.stage_costs(caches, req)}
        assert sum(c.bytes for c in costs.values()) == 10778 * 1002240
        assert costs["compressed_kv"].bytes == 4096 * 1002240 and costs["compressed_kv"].layers == 41
        assert costs["compressed_kv"].bytes_per_token == 1002240 / 256  # one more token: a 256th of a block
        assert costs[L.V4_SLIDING].layers == 43 and costs[L.V4_SLIDING].bytes_per_token == 0
        assert costs["compressor_state"].bytes == (4099 + 2065) * 1002240


@pytest.mark.parametrize("version", ["0.30.0", "0.33.0"])
def test_auto_is_fp8_and_an_explicit_bf16_cache_is_refused(version):
    """`--kv-cache-dtype auto` becomes fp8 and then fp8_ds_mla on the default CUDA backends (0.30.0 and 0.33.0
    models/deepseek_v4/attention.py:109-110), so kvplan resolves it to fp8_e4m3 (the plan names what vLLM runs);
    an explicit bf16 cache raises in that layout (:111-116), so kvplan refuses it. Before 0.30 `auto` stays the
    model's bf16, which `_check_v4` refuses as vLLM's assert does (test_fp8_and_sm12_boundaries)."""
    shape, caches = _flash()
    assert vllm_auto_kv_dtype(shape, None, version) == "fp8_e4m3"
    assert vllm_auto_kv_dtype(shape, None, "0.29.0") is None
    assert vllm_auto_kv_dtype(model_shape(load_config("Qwen__Qwen3-8B")), None, version) is None
    req = Request(65536, 2, "bfloat16", "bfloat16", max_num_batched_tokens=2048, engine_version=version)
    with pytest.raises(UsageError, match="only supports fp8 kv-cache") as err:
        VllmEngine(shape).stage_costs(caches, req)
    assert err.value.field == "kv_dtype"
    out = CliRunner().invoke(
        app, ["estimate", "deepseek-ai/DeepSeek-V4-Flash", "--vllm-version", version, "--json", "--offline"]
    )
    assert out.exit_code == 0, out.output
    assert json.loads(out.stdout)["kv_dtype"] == "fp8_e4m3"
    out = CliRunner().invoke(
        app, ["estimate", "deepseek-ai/DeepSeek-V4-Flash", "--vllm-version", version, "--kv-dtype", "bf16"]
    )
    assert out.exit_code == 2 and "only supports fp8 kv-cache" in out.output


@pytest.mark.parametrize(
    ("changes", "field", "words"),
    [
        ({"engine_version": "0.19.1"}, "vllm_version", "first registered in vLLM 0.20.0"),
        # vllm-0.20.0 model_executor/layers/deepseek_v4_attention.py:597, 0.25.0 and 0.26.0 models/deepseek_v4/
        # attention.py:83 assert kv_cache_dtype.startswith("fp8"): `auto` (bf16 here) fails
        ({"engine_version": "0.20.0"}, "kv_dtype", "fp8 KV cache only"),
        ({"engine_version": "0.25.1"}, "kv_dtype", "fails in 0.20-0.29"),
        ({"engine_version": "0.26.0"}, "kv_dtype", "deepseek_v4_attention.py:594-613"),
        # FlashMLA's sparse backend alone, capability.major in [9, 10] (vllm-0.20.0 flashmla_sparse.py:132-133,
        # 0.23.0 models/deepseek_v4/sparse_mla.py:90-91)
        (
            {"engine_version": "0.20.0", "kv_dtype": "fp8_e4m3", "compute_capability": "12.0"},
            "gpu_profile",
            "0.20-0.23",
        ),
        (
            {"engine_version": "0.23.0", "kv_dtype": "fp8_e4m3", "compute_capability": "12.0"},
            "gpu_profile",
            "from 0.24.0",
        ),
        ({"kv_dtype": "int8"}, "kv_dtype", "fp8_ds_mla"),
        ({"kv_dtype": "nvfp4"}, "kv_dtype", "fp8_ds_mla"),
        ({"kv_dtype": "fp8_e5m2"}, "kv_dtype", "fp8_ds_mla"),
        ({"block_size": 64}, "block_size", "block size 256 only"),
        ({"pp": 2}, "pp", "pipeline stages"),
        ({"compute_capability": "8.0"}, "gpu_profile", "compute capability 8.0"),
        # kvplan reads vLLM's DCP rules from 0.33.0 alone, for DeepSeek-V4 as for every other model
        ({"engine_version": "0.22.0", "kv_dtype": "fp8_e4m3", "tp": 8, "dcp": 8}, "dcp", "from vLLM 0.33.0"),
        ({"engine_version": "0.30.0", "kv_dtype": "fp8_e4m3", "tp": 8, "dcp": 8}, "dcp", "from vLLM 0.33.0"),
        # 0.33: the compressor states are SlidingWindowMLASpec (models/deepseek_v4/compressor.py:184), dcp_sharded by
        # default, whose max_memory_usage_bytes asserts DCP 1 (v1/kv_cache_interface.py:946-950)
        ({"kv_dtype": "fp8_e4m3", "tp": 8, "dcp": 8}, "dcp", "sliding-window"),
    ],
)
def test_what_vllm_cannot_serve_or_kvplan_has_not_read_is_refused(changes, field, words):
    shape, caches = _flash()
    # bf16: what `auto` stays before 0.30 (an explicit bf16 cache from 0.30); the other refusals are asked in fp8
    base = dict(seq_len=8192, batch=1, kv_dtype="bfloat16" if "engine_version" in changes else "fp8_e4m3")
    req = Request(**{**base, "model_dtype": "bfloat16", **changes})
    with pytest.raises(UsageError) as err:
        VllmEngine(shape).stage_costs(caches, req)
    assert err.value.field == field and words in err.value.message and "\n" not in err.value.message


def _version(version: str):
    return Request(912128, 1, "fp8_e4m3", "bfloat16", tp=2, max_num_batched_tokens=8192, engine_version=version)


@pytest.mark.parametrize("version", ["0.20.0", "0.20.1", "0.22.0", "0.22.5"])
def test_0_20_to_0_22_size_the_pool_block_by_layer_tuples(version):
    """vllm-0.20.0 v1/core/kv_cache_utils.py (0.22.0 alike, :1179-1233): the groups are 0.26's, line for line
    (`group_and_unify_kv_cache_specs` :1408-1443, `_get_kv_cache_groups_uniform_groups` :1481-1575: tuples 22 from
    `_approximate_gcd([21, 43, 21, 20], 21)`, the compressor pages padded 32,832 -> 37,440 at :1539-1547, rings
    split 22 + 21), but `_get_kv_cache_config_deepseek_v4` (:1162-1216) makes one tensor per (tuple, page size of
    the MLA group): num_layer_tuples = the longest page-size bucket of any group, 22 (the 22 rings, :1199), times
    layer_tuple_page_bytes = 37,440 + 8,640 + 1,728 = 47,808 (:1182): a block of 1,051,776 B (:1201), where 0.23's
    bucketed slots make it 1,039,680 B. The concurrency divides a request's bytes by the first group's page,
    1,002,240 B (`get_max_concurrency_for_kv_cache_config` :872-891): at 912,128 tokens and 8,192 batched tokens (no
    in-flight doubling before 0.26: SlidingWindowSpec :420-440, min(W - 1 + 8,192, L)) 3,563 x 1,002,240 + 131 x
    43 x 37,440 + 2,051 x 967,680 + 1,041 x 748,800 = 6,546,093,120 B -> 6,532 blocks (cdiv(127 + 8,192, 64) + 1 =
    131 ring blocks, cdiv(7 + 8,192, 4) + 1 = 2,051, cdiv(127 + 8,192, 8) + 1 = 1,041); the start-up check prices
    each at 22 x 47,808 (`_max_memory_usage_bytes_from_groups` :1723-1770)."""
    shape, caches = _flash()
    engine = VllmEngine(shape)
    req = _version(version)
    plan = engine.plan(caches, req)
    assert (plan.block_bytes, plan.request_unit, plan.check_page) == (22 * 47808, 1002240, 22 * 47808)
    assert plan.block_bytes == 1051776 != VllmEngine(shape).plan(caches, _version("0.23.0")).block_bytes == 1039680
    cap = capacity(caches, req, 7234 * 1051776, engine, plan)
    by_hand = 3563 * 1002240 + 131 * 43 * 37440 + 2051 * 967680 + 1041 * 748800
    assert by_hand == 6546093120 and -(-by_hand // 1002240) == 6532
    assert (cap.num_blocks, cap.blocks_per_request) == (7234, 6532)
    # the logged "GPU KV cache size": 0.20.0 num_blocks // 5 groups x the smallest block, 4 (kv_cache_utils.py
    # :1689-1698); 0.20.1 on int(concurrency x max_model_len) (vllm-0.20.1 kv_cache_utils.py:1706)
    logged = 7234 // 5 * 4 if version == "0.20.0" else int(7234 / 6532 * 912128)
    assert cap.kv_cache_tokens == logged


@pytest.mark.parametrize("version", ["0.23.0", "0.24.0", "0.25.0", "0.25.1"])
def test_0_23_to_0_25_are_0_26s_tuples_without_the_in_flight_window(version):
    """vllm-0.23.0 `_get_kv_cache_config_deepseek_v4` (:1221-1244, with `_bucket_layers_by_page_size` :1196-1218)
    and 0.25.0 `_get_kv_cache_config_packed` (:1277-1313, `total_num_bytes_per_block` :1290) size the block per
    page size, the most slots any group has: 22 x 37,440 + 21 x 8,640 + 20 x 1,728 = 1,039,680 B as 0.26's; groups,
    concurrency and check are 0.20.0's. Their rings and compressor states still reserve W - 1 + 8,192 tokens (0.26
    reserves two batches in flight): 6,532 blocks per request at 912,128 tokens, where 0.26.0 needs 9,480."""
    shape, caches = _flash()
    engine = VllmEngine(shape)
    plan = engine.plan(caches, _version(version))
    assert (plan.block_bytes, plan.request_unit, plan.check_page) == (1039680, 1002240, 22 * 47808)
    assert capacity(caches, _version(version), 7234 * 1039680, engine, plan).blocks_per_request == 6532
    new = _version("0.26.0")
    assert capacity(caches, new, 7234 * 1039680, engine, engine.plan(caches, new)).blocks_per_request == 9480


def test_before_0_20_the_refusal_names_the_first_release():
    """vllm-0.19.1 registers no DeepseekV4ForCausalLM; vllm-0.20.0 model_executor/models/registry.py:99 does."""
    shape, caches = _flash()
    for version in ("0.19.1", "0.12.0", "0.20.0rc1.dev5"):
        with pytest.raises(UsageError) as err:
            VllmEngine(shape).stage_costs(caches, replace(_version(version), engine_version=version))
        assert "first registered in vLLM 0.20.0" in err.value.message and "0.20.0 or later" in str(err.value.hint)
    VllmEngine(shape).stage_costs(caches, _version("0.20.0"))  # 0.20.0 itself is planned


def test_0_29_is_the_first_packed_release():
    shape, caches = _flash()
    req = Request(8192, 1, "fp8_e4m3", "bfloat16", engine_version="0.29.0")
    plan = VllmEngine(shape).plan(caches, req)
    assert (plan.num_groups, plan.page, plan.block_bytes, plan.request_unit) == (5, 1002240, 0, 0)


def test_0_26_groups_layer_tuples_with_padded_sliding_pages():
    """vllm-0.26.0 v1/core/kv_cache_utils.py: one group of every MLA spec (21 x 37,440 + 21 x 8,640 + 20 x 1,728 =
    1,002,240 B; `group_and_unify_kv_cache_specs` :1525-1566); tuples 21 (MLA), 43 (rings), 21 (CSA compressor
    pairs), 20 (HCA compressors) -> `_approximate_gcd` from 21 = 22; the compressor pages padded to the smallest MLA
    page above them (32,832 -> 37,440; 8,640 stays; :1659-1676); rings split 22 + 21. The packed pool's block holds,
    per page size, the most slots any group has (:1259-1341): 22 x 37,440 + 21 x 8,640 + 20 x 1,728 = 1,039,680 B.
    A request's blocks are its bytes over the first group's page (:937-955): at 912,128 tokens and 16,384 in-flight
    tokens, 3,563 x 1,002,240 + 259 x 43 x 37,440 + 4,099 x 967,680 + 2,065 x 748,800 = 9,500,742,720 B over
    1,002,240 -> 9,480 blocks."""
    shape, caches = _flash()
    engine = VllmEngine(shape)
    req = Request(912128, 1, "fp8_e4m3", "bfloat16", tp=2, max_num_batched_tokens=8192, engine_version="0.26.0")
    plan = engine.plan(caches, req)
    assert (plan.block_bytes, plan.request_unit, plan.page) == (1039680, 1002240, 1039680)
    # the start-up check: 22 tuples x (37,440 + 8,640 + 1,728) per block (kv_cache_utils.py:1832-1880)
    assert plan.check_page == 22 * 47808
    pages = sorted((s.label, s.block_size, s.page, n) for s, n in plan.specs.items())
    assert pages == [
        ("compressed_kv", 256, 1002240, 1),
        ("compressor_state", 4, 21 * 37440 + 21 * 8640, 1),
        ("compressor_state", 8, 20 * 37440, 1),
        (L.V4_SLIDING, 64, 21 * 37440, 1),
        (L.V4_SLIDING, 64, 22 * 37440, 1),
    ]
    cap = capacity(caches, req, 7234 * 1039680, engine, plan)
    assert (cap.num_blocks, cap.blocks_per_request) == (7234, 9480)
    assert cap.kv_cache_tokens == int(7234 / 9480 * 912128)


@pytest.mark.parametrize("version", ["0.27.0", "0.28.0"])
def test_0_27_and_0_28_overlay_unpadded_layer_tuples(version):
    """vllm-0.27.0 v1/core/kv_cache_utils.py (0.28.0 alike, shifted lines): the 0.26 layer tuples (22 from
    `_approximate_gcd([21, 43, 21, 20], 21)`) without the sliding pages' padding (:1670-1754: "the packed block
    planner overlays groups"): MLA 21 x 37,440 + 21 x 8,640 + 20 x 1,728 = 1,002,240 B; rings 22 and 21 x 37,440;
    the CSA compressor pairs 21 x (32,832 + 8,640) = 870,912; the HCA compressors 20 x 32,832 = 656,640. The groups
    overlay one block as wide as the widest, 1,002,240 B (`_get_packed_kv_cache_layout` :1283-1305), and a request
    holds its blocks in every group (:937-959): at 1,048,576 tokens 4,096 + 2 x 259 + 4,099 + 2,065 = 10,778, as
    0.29's packed groups. The start-up check prices each of those blocks at 22 tuples x (37,440 + 8,640 + 1,728) =
    1,051,776 B (`_max_memory_usage_bytes_from_groups` :1890-1940): 11,336,041,728 B for one request, more than the
    10,802,142,720 B of its blocks, so a pool of 10,790 blocks holds one request (10,778 blocks) yet vLLM refuses to
    start, and accepts it from 10,778 x 1,051,776 B."""
    shape, caches = _flash()
    engine = VllmEngine(shape)
    req = Request(1048576, 1, "fp8_e4m3", "bfloat16", tp=8, max_num_batched_tokens=8192, engine_version=version)
    plan = engine.plan(caches, req)
    assert (plan.page, plan.block_bytes, plan.request_unit, plan.check_page) == (1002240, 0, 0, 1051776)
    by_hand = {
        ("compressed_kv", 41): 1002240,
        ("compressor_state", 21): 21 * (32832 + 8640),
        ("compressor_state", 20): 20 * 32832,
        (L.V4_SLIDING, 22): 22 * 37440,
        (L.V4_SLIDING, 21): 21 * 37440,
    }
    specs = [specs for i, c in enumerate(caches) for specs in v4_layer_specs(c, i)]
    groups = v4_tuple_groups(specs, pad=False)
    got = {(V4_LABELS[g[0].role], len({s.layer for s in g})): sum(s.page for s in g) for g in groups}
    assert got == by_hand and max(got.values()) == 1002240
    cap = capacity(caches, req, 10790 * 1002240, engine)
    assert (cap.blocks_per_request, cap.num_blocks) == (10778, 10790)
    assert max_memory_usage_bytes(engine, caches, req, req.seq_len) == 10778 * 1051776 == 11336041728
    fit = ENTRY.serving.fit(FitInputs(shape, engine, tuple(caches), req, 10790 * 1002240, req.seq_len))  # type: ignore[union-attr]
    assert not fit.fits_one and fit.fit_len < req.seq_len
    fit = ENTRY.serving.fit(FitInputs(shape, engine, tuple(caches), req, 11336041728, req.seq_len))  # type: ignore[union-attr]
    assert fit.fits_one and fit.fit_len == req.seq_len


def test_the_pad_is_0_26s_alone():
    """0.26 pads the compressor pages to the MLA pages (32,832 -> 37,440), 0.27 does not (kv_cache_utils.py
    :1659-1676 in 0.26.0; gone in 0.27.0, whose :1717-1719 say the overlaid groups need no common page)."""
    _, caches = _flash()
    specs = [specs for i, c in enumerate(caches) for specs in v4_layer_specs(c, i)]
    pages = [{s.page for g in v4_tuple_groups(specs, pad=p) for s in g} for p in (True, False)]
    assert 32832 not in pages[0] and 32832 in pages[1]


def _mtp(config: dict, tokens: int = 1, **draft):
    shape = model_shape(config)
    setup = parse_speculative_config({"method": "mtp", "num_speculative_tokens": tokens})
    return ENTRY.serving.speculative(SpeculativeInputs(setup, config, shape, shape.dtype, **draft))  # type: ignore[union-attr]


@pytest.mark.parametrize(("name", "layers"), [(FLASH, 43), (PRO, 61)])
def test_the_mtp_draft_is_one_sliding_ring_per_mtp_layer(name, layers):
    """vLLM builds num_nextn_predict_layers DeepSeek-V4 decoder layers after the last one (vllm-0.33.0
    models/deepseek_v4/nvidia/mtp.py:213-245; 0.26.0 :170-201); a layer past num_hidden_layers gets compress ratio
    1 (attention.py:236-242; 0.26.0 :187-190), so it registers no compressed spec (:860-864; 0.26.0 :605-608) and
    keeps only its DeepseekV4SWACache ring (:349; 0.26.0 :294) of the target's head_dim and window. The config's
    44th / 62nd `compress_ratios` entry (0) is that layer's; the target's layers are unchanged."""
    config = load_config(name)
    spec = _mtp(config)
    assert config["num_nextn_predict_layers"] == 1 and len(config["compress_ratios"]) == layers + 1
    assert spec.draft_caches == (L.CompressedAttention(512, 128),)
    assert f"after layer {layers - 1}" in spec.notes[0] and "num_nextn_predict_layers = 1" in spec.notes[0]
    assert model_shape(config).num_layers == layers
    with pytest.raises(UsageError, match="has no `num_nextn_predict_layers`"):  # nvidia/mtp.py:175 reads it
        _mtp({k: v for k, v in config.items() if k != "num_nextn_predict_layers"})
    two = _mtp({**config, "num_nextn_predict_layers": 2, "compress_ratios": [*config["compress_ratios"], 0]}, tokens=3)
    assert two.draft_caches == (L.CompressedAttention(512, 128),) * 2  # one ring per MTP layer, whatever the tokens


def test_the_mtp_layer_is_priced_as_the_checkpoint_stores_it():
    """DeepSeekV4MultiTokenPredictorLayer (vllm-0.26.0 models/deepseek_v4/nvidia/mtp.py:84-130): a decoder layer
    with no compressor and top-k routing (hashed only below num_hash_layers 3, nvidia/model.py:564), plus enorm and
    hnorm, e_proj and h_proj (h x h ReplicatedLinear, fp8 with 128 x 128 block scales), the fp32 hc_head (4 x
    16,384 + 4 + 1 floats, :109-120) and shared_head.norm. Flash's layer 1 is such a layer but hash-routed: its
    3,566,192,600 B less tid2eid (129,280 x 6 int64 = 6,205,440 B), plus the router bias (256 fp32 = 1,024 B), three
    fp32 norms (3 x 16,384), e_proj + h_proj (2 x (4,096^2 + 32 x 32 x 4) = 33,562,624 B) and hc_head (262,164 B)
    = 3,593,862,124 B. The embeddings and LM head are shared (llm_base_proposer.py:1473-1479, :1548-1575)."""
    config = load_config(FLASH)
    layer_1 = [t for t in weight_tensors(config) if ".layers.1." in t.name]
    assert tensors_bytes(config, layer_1) == 3566192600
    mtp = mtp_tensors(config)
    assert {t.name.split(".")[2] for t in mtp} == {"43"}
    assert not any("compressor" in t.name or "tid2eid" in t.name or "embed" in t.name for t in mtp)
    expected = 3566192600 - 129280 * 6 * 8 + 256 * 4 + 3 * 4096 * 4 + 2 * (4096 * 4096 + 32 * 32 * 4) + 262164
    assert tensors_bytes(config, mtp) == expected == 3593862124

    def stored_bytes(copies, extra):
        assert extra == [] and copies == [(43, "mtp.0")]
        return tensors_bytes(config, [t for t in mtp if ".layers.43." in t.name])

    spec = _mtp(config, stored_bytes=stored_bytes)
    assert spec.draft_weights == 3593862124 and "mtp.0.*" in spec.weights_source


def test_recommend_adds_the_mtp_ring_and_weights():
    """Through recommend at TP 8 on H200 (vLLM 0.33.0): the drafter's weights row is the MTP layer's 3,593,862,124 B
    over TP 8 (449,232,765 B), and the ring joins the pool: 44 rings split 22 + 22 (`approximate_gcd([44, 21, 20],
    21)` = 22: pads 0 + 1 + 2) where the target's 43 split 22 + 21. Still 5 groups, and the widest group (the
    compressed bucket, 1,002,240 B) sets every group's page (kv_cache_planning.py:574-606), so in 0.33 the ring costs
    no block more: 10,778 blocks per request at 1,048,576 tokens, with or without it."""
    args = ["recommend", "deepseek-ai/DeepSeek-V4-Flash", "-g", "h200", "--tp", "8", "--max-model-len", "1048576"]
    mtp = ["--speculative-config", '{"method": "mtp", "num_speculative_tokens": 2}', "--json", "--offline"]
    out = CliRunner().invoke(app, [*args, *mtp])
    assert out.exit_code == 0, out.output
    terms = {t["name"]: t["bytes"] for t in json.loads(out.stdout)["budget"]}
    assert terms["speculative_draft_weights"] == -(3593862124 // 8) == -449232765
    shape, caches = _flash()
    engine = VllmEngine(shape)
    req = Request(1048576, 1, "fp8_e4m3", "bfloat16", tp=8, max_num_batched_tokens=8192)
    drafted = replace(req, speculative=_mtp(load_config(FLASH)))

    def rings(r):
        specs = engine.plan(caches, r).specs.items()
        return sorted(s.layers for s, n in specs if s.label == L.V4_SLIDING for _ in range(n))

    assert (rings(req), rings(drafted)) == ([21, 22], [22, 22])
    for r in (req, drafted):
        cap = capacity(caches, r, 100 * 2**30, engine)
        assert (cap.page_bytes, cap.num_groups, cap.blocks_per_request) == (1002240, 5, 10778)


def test_0_26_arithmetic_follows_the_51041_log_with_the_mtp_draft():
    """vllm-project/vllm#51041 (vLLM 0.26.0, 2 x H20, TP 2, fp8, block 256, MTP draft): 7.01 GiB, 1,009,661
    tokens, 1.11x at max_model_len 912,128. The same 0.26 rules with the MTP layer's sliding ring (the speculative
    rules' draft, `_v4_mtp_draft`) and 8,192 in-flight tokens give 6,537 blocks per request and the logged figures
    at the pool's rounding ends; at the H20's default 8,192 batched tokens with async scheduling (on with mtp, an
    EagleModelTypes method: vllm-0.26.0 config/vllm.py:1059-1107; 2 batches at PP 1 on the V1 runner, :512-521),
    16,384 in flight, they do not (the calibration gap in tests/engines/test_calibration_2026.py); nor do they
    without the ring (5 blocks fewer per request: the tokens overshoot the log)."""
    shape, caches = _flash()
    engine = VllmEngine(shape)
    spec = _mtp(load_config(FLASH))
    req = Request(912128, 1, "fp8_e4m3", "bfloat16", tp=2, max_num_batched_tokens=4096, engine_version="0.26.0")
    req = replace(req, speculative=spec)
    low, high = (capacity(caches, req, int(g * 2**30), engine) for g in (7.005, 7.015))
    assert low.blocks_per_request == 6537
    assert low.kv_cache_tokens <= 1009661 <= high.kv_cache_tokens
    assert round(low.max_concurrency, 2) == round(high.max_concurrency, 2) == 1.11
    default = capacity(caches, replace(req, max_num_batched_tokens=8192), int(7.01 * 2**30), engine)
    assert round(default.max_concurrency, 2) == 0.76
    # without the ring: 6,532 blocks, 1,010,155-1,011,551 tokens, which miss the logged 1,009,661
    low, high = (capacity(caches, replace(req, speculative=None), int(g * 2**30), engine) for g in (7.005, 7.015))
    assert low.blocks_per_request == 6532 and not low.kv_cache_tokens <= 1009661 <= high.kv_cache_tokens


def test_estimate_and_recommend_size_v4_under_vllm():
    runner = CliRunner()
    est = runner.invoke(
        app, ["estimate", "deepseek-ai/DeepSeek-V4-Flash", "--seq-len", "1048576", "--tp", "8", "--json", "--offline"]
    )
    assert est.exit_code == 0, est.output
    report = json.loads(est.stdout)
    assert {k["kind"]: k["count"] for k in report["layers"]} == {
        L.V4_SLIDING: 43,
        "compressed_kv": 41,
        "compressor_state": 41,
    }
    # 8,192 batched tokens without a GPU profile: the same 10,778 blocks of 1,002,240 B on each of 8 GPUs
    assert report["kv_cache_bytes"] == 8 * 10778 * 1002240
    rec = runner.invoke(
        app,
        [
            "recommend",
            "deepseek-ai/DeepSeek-V4-Flash",
            "-g",
            "h200",
            "--tp",
            "8",
            "--max-model-len",
            "131072",
            "--offline",
        ],
    )
    assert rec.exit_code == 0, rec.output
    assert "KV cache tokens" in rec.output and "fits" in rec.output


def test_fp8_and_sm12_boundaries():
    """`--kv-cache-dtype auto` fails through 0.29.0 (models/deepseek_v4/attention.py asserts fp8: 0.26.0 :83, 0.27.0
    :105, 0.28.0 :106, 0.29.0 :105) and is fp8_ds_mla from 0.30.0 (:109-110; 0.33.0 :108-109); SM12x runs
    FlashInfer's SM120 layer by default from 0.24.0 (nvidia/model.py:767-768; 0.25.0 :788-789), which 0.23.0 lacks
    (nvidia/model.py:716-727: FlashMLA, SM9x/SM10x)."""
    shape, caches = _flash()
    engine = VllmEngine(shape)
    auto = replace(_version("0.30.0"), kv_dtype="bfloat16")  # what `auto` stays before 0.30
    assert vllm_auto_kv_dtype(shape, None, "0.30.0") == "fp8_e4m3" == _version("0.30.0").kv_dtype
    for version in ("0.26.0", "0.27.0", "0.28.0", "0.29.0"):
        with pytest.raises(UsageError, match="fails in 0.20-0.29"):
            engine.stage_costs(caches, replace(auto, engine_version=version))
    for version, served in (("0.20.0", False), ("0.23.0", False), ("0.24.0", True), ("0.25.0", True)):
        req = replace(_version(version), compute_capability="12.0")
        if served:
            assert engine.stage_costs(caches, req) == engine.stage_costs(caches, _version(version))
        else:
            with pytest.raises(UsageError) as err:
                engine.stage_costs(caches, req)
            assert err.value.field == "gpu_profile"
