"""Engines' caches for Gemma 4, Gemma 3n and MiMo-V2-Flash (issue 12): vLLM 0.33's KV-cache specs, each rule with
the vLLM file and line it follows, and SGLang's logged MiMo pools. The figures are written out from the engines'
arithmetic, not read back from kvplan."""

from __future__ import annotations

import dataclasses

import yaml

from kvplan.core import specs as L
from kvplan.core.shapes import model_shape
from kvplan.core.units import cdiv
from kvplan.engines import Request
from kvplan.engines.base import kv_heads_per_rank
from kvplan.engines.sglang import SglangEngine
from kvplan.engines.vllm import VllmEngine
from kvplan.planning.estimate import estimate_config

from conftest import FIXTURES, load_config

# in-flight tokens = max_num_batched_tokens without async scheduling at PP 1 (VllmConfig.max_in_flight_tokens);
# 2049 makes window - 1 + in_flight land on a block boundary for MiMo's 128-token window, not for 129
REQ = Request(32768, 1, "bfloat16", "bfloat16", max_num_batched_tokens=2049, async_scheduling=False)


def _costs(shape, req=REQ):
    return {c.kind: c for c in VllmEngine(shape).stage_costs(shape.caches(), req)}


def test_gemma4_31b_global_pages_unify_with_sliding_pages():
    """FullAttentionSpec / SlidingWindowSpec page = block x kv_heads x (head_size + head_size_v) x 2 B
    (v1/kv_cache_interface.py:590-601): sliding 16 x 16 x 512 x 2 = 262144, full (global) 16 x 4 x 1024 x 2 =
    131072, which divides it, so the full layers' block doubles to 32 (v1/core/kv_cache_planning.py:392-395).
    Layer counts 50 and 10 -> groups of 10 layers: sliding pays 50 layers, full 10."""
    shape = model_shape(load_config("nvidia__Gemma-4-31B-IT-NVFP4"))
    plan = VllmEngine(shape).plan(shape.caches(), REQ)
    assert {(s.kind, s.page, s.block_size) for s in plan.specs} == {
        (L.SLIDING, 262144, 16),
        (L.FULL, 262144, 32),
    }
    assert plan.group_size == 10
    costs = _costs(shape)
    sliding_blocks = cdiv(1024 - 1 + 2049, 16) + 1  # SlidingWindowSpec.max_memory_usage_bytes (:937-940)
    assert costs[L.SLIDING].bytes == 50 * sliding_blocks * 262144
    assert costs[L.FULL].bytes == 10 * cdiv(32768, 32) * 262144


def test_kv_sharing_consumers_get_no_spec():
    """A layer with kv_sharing_target_layer_name gets no KVCacheSpec and no pages (v1/worker/gpu_model_runner.py:
    7096-7107; Gemma 4 sets it on the last num_kv_shared_layers, models/gemma4.py:471-510, Gemma 3n likewise,
    models/gemma3n.py:355-399): the plan equals the plan of the producing layers alone."""
    cfg = dict(load_config("nvidia__Gemma-4-31B-IT-NVFP4")["text_config"])
    shared = model_shape({**cfg, "num_kv_shared_layers": 30})
    producers = dataclasses.replace(shared, layers=shared.layers[:30])
    assert VllmEngine(shared).plan(shared.caches(), REQ) == VllmEngine(producers).plan(producers.caches(), REQ)
    assert _costs(shared)[L.NONE].bytes == 0 and _costs(shared)[L.NONE].layers == 30
    gemma3n = model_shape(load_config("synthetic/gemma3n_text"))
    assert _costs(gemma3n)[L.NONE].layers == 2


def test_mimo_v2_flash_k_and_v_sizes_and_vllm_window():
    """MiMoV2Attention passes head_size 192 and head_size_v 128 (models/mimo_v2.py:346-358): pages
    16 x 4 x 320 x 2 = 40960 (full) and 16 x 8 x 320 x 2 = 81920 (sliding), the full block doubling to 32. Its
    sliding layers get `sliding_window_size` (128) as their window (models/mimo_v2.py:416 -> :318), one less than
    transformers' 129: cdiv(128 - 1 + 2049, 16) + 1 = 137 pages (129 would need 138). 39 sliding and 9 full layers
    -> groups of 9: sliding pays cdiv(39, 9) x 9 = 45 layers."""
    shape = model_shape(load_config("XiaomiMiMo__MiMo-V2-Flash"))
    plan = VllmEngine(shape).plan(shape.caches(), REQ)
    assert {(s.kind, s.page, s.block_size, s.window) for s in plan.specs} == {
        (L.SLIDING, 81920, 16, 128),
        (L.FULL, 81920, 32, None),
    }
    costs = _costs(shape)
    assert costs[L.SLIDING].bytes == 45 * 137 * 81920
    assert costs[L.FULL].bytes == 9 * cdiv(32768, 32) * 81920


# ---- SGLang: MiMo-V2-Flash's logged pools (tests/fixtures/calibration/engine_cases_2026.yaml)

_GIB = 2**30


def _case(case_id: str) -> dict:
    cases = yaml.safe_load((FIXTURES / "calibration" / "engine_cases_2026.yaml").read_text())
    return next(c for c in cases if c["id"] == case_id)


def _pool_bytes(shape, kind: str, tp: int, side: str) -> int:
    """K (or V) bytes per token of every layer of `kind` on one of `tp` ranks, bf16: SGLang's pool per-token
    size, `get_swa_num_kv_heads(tp) x (swa_head_dim + swa_v_head_dim)` for SWA layers and the full layers' own
    (model_executor/pool_configurator.py:714-726), K and V in separate buffers."""
    caches = [c for c in shape.caches() if c.kind == kind]
    return (
        sum(kv_heads_per_rank(c.num_kv_heads, tp) * (c.head_dim_k if side == "k" else c.head_dim_v) for c in caches) * 2
    )


def test_sglang_mimo_pools_hold_the_logged_k_and_v_sizes():
    """SGLang logs K and V sizes per TP rank (GiB, two decimals) for MiMo-V2-Flash at TP 4: the SWA pool of 39
    layers of 2 (8 / 4) heads of K 192 / V 128 and the full pool of 9 layers of 1 (4 / 4) head. Each buffer holds
    `#tokens + page_size` rows (mem_cache/memory_pool.py:2574-2578; --page-size 64 in #18039, 1 by default):
    without the 64 rows V would print 5.58, not 5.59."""
    shape = model_shape(load_config("XiaomiMiMo__MiMo-V2-Flash"))
    before_fix = _case("sglang-18039-mimo-v2-flash-tp4-mem07-main-2026-01")["reported"]
    tokens = before_fix["sglang_swa_layer_tokens"] + 64
    assert round(tokens * _pool_bytes(shape, L.SLIDING, 4, "k") / _GIB, 2) == before_fix["sglang_k_size_gb"]
    assert round(tokens * _pool_bytes(shape, L.SLIDING, 4, "v") / _GIB, 2) == before_fix["sglang_v_size_gb"]
    pool = _case("sglang-15464-mimo-v2-flash-swakvpool-2025-12")["reported"]
    for kind, prefix in ((L.SLIDING, "sglang_swa_pool"), (L.FULL, "sglang_full_pool")):
        for side in ("k", "v"):
            logged = pool[f"{prefix}_{side}_size_gb"]
            assert round((pool["kv_cache_tokens"] + 1) * _pool_bytes(shape, kind, 4, side) / _GIB, 2) == logged
    sglang = {
        c.kind: c for c in SglangEngine().stage_costs(shape.caches(), Request(1, 1, "bfloat16", "bfloat16", tp=4))
    }
    assert sglang[L.FULL].bytes_per_token == _pool_bytes(shape, L.FULL, 4, "k") + _pool_bytes(shape, L.FULL, 4, "v")


def test_sglang_says_it_sizes_its_pool_for_gemma4_kv_sharing_layers():
    """SGLang 0.5.23 sizes its SWA / full pools by every layer id of layer_types (configs/model_config.py:
    2753-2770, mem_cache/swa_memory_pool.py:54-56), KV-sharing consumers included: the estimate says kvplan's
    0 B for them is below SGLang's pool."""
    cfg = dict(load_config("nvidia__Gemma-4-31B-IT-NVFP4")["text_config"])
    shared = estimate_config({**cfg, "num_kv_shared_layers": 20}, engine="sglang", seq_len=4096)
    assert any("20 KV-sharing layers" in note for note in shared.notes)
    plain = estimate_config(cfg, engine="sglang", seq_len=4096)
    assert not any("KV-sharing" in note for note in plain.notes)
