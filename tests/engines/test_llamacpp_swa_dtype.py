"""llama.cpp's iSWA SWA cache takes the -ctk / -ctv types like the base cache.

ggml-org/llama.cpp@0c1e57098 (the tree llama-cpp-python 0.3.36 vendors) src/llama-kv-cache-iswa.cpp:95-104 builds
both caches with the same `type_k, type_v`. PR #21277 ("kv-cache : do not quantize SWA KV cache", 2026-04-01) kept
the SWA half f16; PR #21332 reverted it on 2026-04-02 ("In some cases the SWA cache actually takes significant
portion of memory"). gemma-3-12b-it (48 layers, 8 KV heads of 256, window 1024, 5 of every 6 layers sliding) at
-c 8192 -np 1 -ctk q8_0 -ctv q8_0, -ub 512: a row of 8 x 256 = 2048 values is 2048 / 32 x 34 = 2176 B, K and V
4352 B a cell; the 40 sliding layers hold GGML_PAD(min(8192, 1024 + 512), 256) = 1536 cells, the 8 full ones 8192:
40 x 1536 x 4352 + 8 x 8192 x 4352 = 267,386,880 + 285,212,672 = 552,599,552 B.
"""

from __future__ import annotations

from kvplan.core import specs as L
from kvplan.core.shapes import model_shape
from kvplan.engines.base import Request
from kvplan.engines.llamacpp import LlamaCppEngine

from conftest import ENGINE_SOURCES, check_cited_line, load_config

ISWA = ENGINE_SOURCES / "llama.cpp-0c1e57098" / "src" / "llama-kv-cache-iswa.cpp"


def test_cited_iswa_lines_pass_type_k_and_type_v_to_both_caches():
    check_cited_line(ISWA, 95, "kv_base = std::make_unique<llama_kv_cache>(")
    check_cited_line(ISWA, 96, "model, hparams, type_k, type_v,")
    check_cited_line(ISWA, 102, "kv_swa = std::make_unique<llama_kv_cache>(")
    check_cited_line(ISWA, 103, "model, hparams, type_k, type_v,")


def test_gemma3_swa_layers_are_stored_in_q8_0():
    shape = model_shape(load_config("google__gemma-3-12b-it"))
    costs = LlamaCppEngine(shape.model_type).stage_costs(shape.caches(), Request(8192, 1, "q8_0", "bfloat16"))
    by_kind = {c.kind: c for c in costs}
    assert (by_kind[L.SLIDING].layers, by_kind[L.FULL].layers) == (40, 8)
    assert by_kind[L.SLIDING].bytes == 40 * 1536 * 4352 == 267_386_880
    assert sum(c.bytes for c in costs) == 552_599_552
