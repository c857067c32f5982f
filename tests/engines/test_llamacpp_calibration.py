"""kvplan's llama.cpp storage model against llama-server measurements in
tests/fixtures/calibration/engine_cases_2026.yaml.

unslothai/unsloth #7530 (llama-server build 10107 / 857c97607, gemma-3-270m GGUF): `--ctx-size 1024
--parallel 3` allocated 1536 cells / 27.0 MiB and `--parallel 4` 1024 cells / 18.0 MiB. The "cells" there are
all streams together (n_ctx_seq x n_seq_max, the n_ctx llama-context.cpp rounds to); llama.cpp's own
`size = N cells` line prints one stream's. The flags the figures imply: `--parallel N` given, so llama-server
leaves `kv_unified` off (every slot its own stream of `GGML_PAD(n_ctx / N, 256)` cells); the SWA cache,
`GGML_PAD(min(n_ctx_seq, n_swa + n_ubatch), 256)` (llama-kv-cache-iswa.cpp), equals the base cache at these
sizes, so `--swa-full` does not change them. The config is tests/fixtures/extra_configs/google__gemma-3-270m.json
(grade C, see SOURCES.md there).
"""

from __future__ import annotations

import pytest
import yaml

from kvplan.core import specs as L
from kvplan.core.shapes import model_shape
from kvplan.engines import Request
from kvplan.engines.llamacpp import LlamaCppEngine, context_cells, dsv4_buffers

from conftest import FIXTURES, load_config

MIB = 2**20
CASES = {c["id"]: c for c in yaml.safe_load((FIXTURES / "calibration" / "engine_cases_2026.yaml").read_text())}
GEMMA3_270M = (
    "llamacpp-unsloth-7530-gemma3-270m-ctx1024-parallel3",
    "llamacpp-unsloth-7530-gemma3-270m-ctx1024-parallel4",
)


def _gemma3_270m():
    config = load_config("google__gemma-3-270m")
    shape = model_shape(config)
    return LlamaCppEngine(shape.model_type), shape.caches()


@pytest.mark.parametrize("case_id", GEMMA3_270M)
def test_unsloth_7530_gemma3_270m_cells_and_mib(case_id):
    case = CASES[case_id]
    n_ctx, n_seq = case["max_model_len"], case["max_num_seqs"]
    engine, caches = _gemma3_270m()
    req = Request(seq_len=context_cells(n_ctx, n_seq), batch=n_seq, kv_dtype="float16", model_dtype="bfloat16")
    costs = engine.context_costs(caches, req, n_ctx)
    total_cells = context_cells(n_ctx, n_seq) * n_seq
    assert total_cells == case["reported"]["llamacpp_kv_cells"]
    assert sum(c.bytes for c in costs) / MIB == case["reported"]["llamacpp_kv_size_mib"]
    assert sum(c.layers for c in costs) == 18
    # every layer, sliding or not, holds one stream's cells: the SWA cache is as large as the base cache here
    assert {c.tokens for c in costs} == {context_cells(n_ctx, n_seq)}


def test_gemma3_270m_parallel3_is_not_the_unified_figure():
    """The 27.0 MiB of -np 3 needs separate streams: one unified stream of n_ctx = 1024 cells (and a SWA cache of
    min(1024, 512 x 3 + 512)) would hold 18 x 1024 x 1 KiB = 18.0 MiB. kvplan's figure must follow the
    rounding of n_ctx / 3 = 341 up to 512 per stream."""
    engine, caches = _gemma3_270m()
    req = Request(seq_len=512, batch=3, kv_dtype="float16", model_dtype="bfloat16")
    assert context_cells(1024, 3) == 512
    assert sum(c.bytes for c in engine.context_costs(caches, req, 1024)) == 27 * MIB
    assert context_cells(768, 3) == 256  # 768 / 3 = 256 exactly: 3 x 256 cells, 13.5 MiB
    assert sum(c.bytes for c in engine.context_costs(caches, req, 768)) == 18 * 768 * 1024


def test_gemma3_270m_swa_cache_is_smaller_once_the_context_passes_the_window():
    """llama-kv-cache-iswa.cpp: the 15 sliding layers keep GGML_PAD(min(n_ctx_seq, 512 + n_ubatch 512), 256) =
    1024 cells of an 8192-cell stream, the 3 global layers all 8192."""
    engine, caches = _gemma3_270m()
    req = Request(seq_len=8192, batch=1, kv_dtype="float16", model_dtype="bfloat16")
    by_kind = {c.kind: c for c in engine.context_costs(caches, req, 8192)}
    assert {k: (c.layers, c.tokens) for k, c in by_kind.items()} == {L.FULL: (3, 8192), L.SLIDING: (15, 1024)}
    assert sum(c.bytes for c in by_kind.values()) == (3 * 8192 + 15 * 1024) * 1024


def test_context_cells_follows_llama_context_rounding():
    assert context_cells(8192, 4) == 2048
    assert context_cells(1000, 3) == 512  # GGML_PAD(1000) = 1024; 1024 / 3 = 341 -> 512
    assert context_cells(4096, 10) == 512  # 409 -> 512: 10 streams of 512 cells


def test_dsv4_plain_cache_is_empty_and_kvplan_charges_no_plain_kv():
    """llama.cpp #22319: with DeepSeek-V4 the plain (non-SWA) cache has 0 layers and 0.00 MiB: every DSV4 layer is
    SWA (models/deepseek4.cpp set_swa_pattern(0)) and its KV is in llama-kv-cache-dsv4.cpp's own caches. kvplan
    charges no plain per-layer K/V for it (no full-attention kind) and does not echo the 0 bytes either: its costs
    are the DSV4 buffers (tests/engines/test_llamacpp_dsv4.py derives them). That log is from the port's PR era
    ("4/1 seqs": the plain cache unified); at 0c1e57098 the DSV4 caches are never unified."""
    case = CASES["llamacpp-22319-dsv4-flash-393216-noswa-empty"]
    assert case["reported"]["llamacpp_kv_layers"] == 0 and case["reported"]["llamacpp_kv_size_mib"] == 0.0
    config = load_config("deepseek-ai__DeepSeek-V4-Flash")
    shape = model_shape(config)
    assert any(isinstance(c, L.CompressedAttention) for c in shape.caches())
    engine = LlamaCppEngine(shape.model_type)
    req = Request(seq_len=case["max_model_len"], batch=1, kv_dtype="float16", model_dtype="bfloat16")
    costs = engine.stage_costs(shape.caches(), req)
    assert {c.kind for c in costs} == {L.V4_SLIDING, L.CSA, L.HCA}
    assert sum(c.bytes for c in costs) == sum(dsv4_buffers(shape.caches(), req, context_cells(393216, 1)).values())
    assert sum(c.bytes for c in costs) > 0
