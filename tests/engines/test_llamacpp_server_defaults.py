"""llama-server's slot default and llama.cpp's `-fa off` V padding, read at ONE llama.cpp commit.

Source: ggml-org/llama.cpp@0c1e57098bba43ac29e6e3b677cdceebdd22334f (2026-10-01, "webgpu: fix SSM_SCAN binding
aliasing (#29750)"), the tree llama-cpp-python 0.3.36 vendors (its sdist from PyPI, vendor/llama.cpp; its
CHANGELOG: "update llama.cpp to ggml-org/llama.cpp@0c1e57098"). The repository itself (1.4 GB) could not be brought
here, and the code index holds each file at a different commit, some of them forks; the sdist is one upstream
commit for every file. `_CITED` quotes the lines kvplan.engines.llamacpp follows; they are read back where that tree
is on this machine as `$KVPLAN_ENGINE_SOURCES/llama.cpp-0c1e57098/` (the sdist's vendor/llama.cpp), else skipped.

What the lines say:
- llama-server's `-np` defaults to -1, "auto" (common/arg.cpp:1403; the library's own default is 1, common.h:457),
  and server.cpp:156-160 turns auto into 4 slots with `kv_unified = true`, whatever -kvu/-no-kvu said. A given
  `-np N` keeps `kv_unified = false` (common.h:575) unless `-kvu` is given (arg.cpp:1724-1728).
- llama-context.cpp:290-304: n_ctx padded to 256; unified, `n_ctx_seq = n_ctx` (every slot may fill the whole
  cache); else `n_ctx_seq = GGML_PAD(n_ctx / n_seq_max, 256)`. llama-kv-cache.cpp:84 `n_stream(unified ? 1 :
  n_seq_max)`, tensors `[n_embd, kv_size, n_stream]` (:233-234), logged as "N/M seqs" = n_seq_max/n_stream
  (:301-302): the "4/1 seqs" of llama.cpp issue #22319. The SWA cache of a unified cache holds
  `n_swa x n_seq_max + n_ubatch` cells, padded (llama-kv-cache-iswa.cpp:73).
- Flash Attention: `-fa` defaults to auto (common.h:501); the cache is created once (llama-context.cpp:397) with
  `v_trans = !cparams.flash_attn` (llama-model.cpp create_memory), and `cparams.flash_attn` is true for auto and on
  (llama-context.cpp:230): auto is resolved later (:557-558), after the cache exists. So only `-fa off` transposes
  V, and then every layer's V row is the model's widest (llama-kv-cache.cpp:210, llama-hparams.cpp:199-205).
  Gemma 4 keeps V even where it has no v_proj (`attention_k_eq_v`: gemma4.cpp:246-248 uses Kcur as Vcur, and
  llama-kv-cache.cpp:231 `has_v = !is_mla`); its GGUF's full layers have `num_global_key_value_heads` heads
  (conversion/gemma.py:725-726) of `global_head_dim` 512.
"""

from __future__ import annotations

import re

import pytest
import yaml
from typer.testing import CliRunner

from kvplan.cli import app
from kvplan.core import specs as L
from kvplan.core.shapes import model_shape
from kvplan.engines import Request
from kvplan.engines.llamacpp import (
    LLAMACPP_COMMIT,
    SERVER_AUTO_SLOTS,
    LlamaCppEngine,
    context_cells,
    server_slots,
    v_values,
)
from kvplan.errors import UsageError

from conftest import ENGINE_SOURCES, FIXTURES, check_cited_line, load_config

MIB = 2**20
KIB = 2**10
runner = CliRunner()

_TREE = "llama.cpp-0c1e57098"
_CITED = [
    ("common/arg.cpp", 1403, "params.n_parallel = -1;     // auto by default"),
    ("common/arg.cpp", 1724, '{"-kvu", "--kv-unified"},'),
    ("common/arg.cpp", 1725, '{"-no-kvu", "--no-kv-unified"},'),
    ("common/arg.cpp", 1726, "(default: enabled if number of slots is auto)"),
    ("common/arg.cpp", 1728, "params.kv_unified = value;"),
    ("common/arg.cpp", 1754, 'add_opt(common_arg({ "-fa", "--flash-attn" }, "[on|off|auto]",'),
    ("common/arg.cpp", 2545, '"number of server slots (default: %d, -1 = auto)"'),
    ("common/arg.cpp", 2547, "if (value == 0) {"),
    ("common/arg.cpp", 2548, 'throw std::invalid_argument("error: invalid value for n_parallel\\n");'),
    ("common/common.h", 457, "int32_t n_parallel            =     1; // number of parallel sequences to decode"),
    ("common/common.h", 501, "flash_attn_type   = LLAMA_FLASH_ATTN_TYPE_AUTO;"),
    ("common/common.h", 575, "bool kv_unified        = false; // enable unified KV cache"),
    ("common/common.cpp", 1634, "cparams.n_seq_max         = params.n_parallel;"),
    ("common/common.cpp", 1661, "cparams.kv_unified        = params.kv_unified;"),
    ("tools/server/server.cpp", 156, "if (params.n_parallel < 0) {"),
    ("tools/server/server.cpp", 157, "n_parallel is set to auto, using n_parallel = 4 and kv_unified = true"),
    ("tools/server/server.cpp", 159, "params.n_parallel = 4;"),
    ("tools/server/server.cpp", 160, "params.kv_unified = true;"),
    ("tools/server/server-context.cpp", 4008, "int n_ctx_slot() const {"),
    ("src/llama-context.cpp", 230, "cparams.flash_attn = params.flash_attn_type != LLAMA_FLASH_ATTN_TYPE_DISABLED;"),
    ("src/llama-context.cpp", 231, "cparams.auto_fa    = params.flash_attn_type == LLAMA_FLASH_ATTN_TYPE_AUTO;"),
    ("src/llama-context.cpp", 290, "cparams.n_ctx = GGML_PAD(cparams.n_ctx, 256);"),
    ("src/llama-context.cpp", 292, "if (cparams.kv_unified) {"),
    ("src/llama-context.cpp", 293, "cparams.n_ctx_seq = cparams.n_ctx;"),
    ("src/llama-context.cpp", 295, "cparams.n_ctx_seq = cparams.n_ctx / cparams.n_seq_max;"),
    ("src/llama-context.cpp", 296, "cparams.n_ctx_seq = GGML_PAD(cparams.n_ctx_seq, 256);"),
    ("src/llama-context.cpp", 303, "cparams.n_ctx =  cparams.n_ctx_seq * cparams.n_seq_max;"),
    ("src/llama-context.cpp", 397, "memory.reset(model.create_memory(params_mem, cparams));"),
    ("src/llama-context.cpp", 557, "if (cparams.auto_fa) {"),
    ("src/llama-context.cpp", 558, "resolve(llm_fused_op_flash_attn_probe, cparams.flash_attn);"),
    ("src/llama-context.cpp", 3845, "if (params.flash_attn_type == LLAMA_FLASH_ATTN_TYPE_DISABLED) {"),
    ("src/llama-context.cpp", 3846, "quantized V cache requires flash_attn to be enabled"),
    ("src/llama-model.cpp", 2485, "/* recurrent_rs_size */ std::max((uint32_t) 1, cparams.n_seq_max),"),
    ("src/llama-model.cpp", 2843, "!cparams.flash_attn,"),
    ("src/llama-kv-cache.cpp", 84, "n_stream(unified ? 1 : n_seq_max)"),
    (
        "src/llama-kv-cache.cpp",
        210,
        "const uint32_t n_embd_v_gqa = !v_trans ? hparams.n_embd_v_gqa(il) : hparams.n_embd_v_gqa_max();",
    ),
    ("src/llama-kv-cache.cpp", 231, "const bool has_v = !is_mla;"),
    ("src/llama-kv-cache.cpp", 233, "ggml_new_tensor_3d(ctx, type_k, n_embd_k_gqa, kv_size, n_stream)"),
    ("src/llama-kv-cache.cpp", 234, "ggml_new_tensor_3d(ctx, type_v, n_embd_v_gqa, kv_size, n_stream)"),
    ("src/llama-kv-cache.cpp", 301, "(%6u cells, %3d layers, %2u/%u seqs)"),
    ("src/llama-kv-cache.cpp", 302, "kv_size, (int) layers.size(), n_seq_max, n_stream,"),
    (
        "src/llama-kv-cache-iswa.cpp",
        73,
        "uint32_t size_swa = GGML_PAD(std::min(size_base, hparams.n_swa*(unified ? n_seq_max : 1) + n_ubatch), 256);",
    ),
    ("src/llama-hparams.cpp", 199, "uint32_t llama_hparams::n_embd_v_gqa_max() const {"),
    ("src/llama-hparams.cpp", 202, "val = std::max(val, n_embd_v_gqa(il));"),
    ("src/models/gemma4.cpp", 246, "Vcur = model.layers[il].wv"),
    ("src/models/gemma4.cpp", 248, ": Kcur; // if v_proj is not present, use Kcur as Vcur"),
    (
        "conversion/gemma.py",
        725,
        "value_arr = [num_key_value_heads_swa if is_swa else num_key_value_heads_full for is_swa in swa_layers]",
    ),
]


@pytest.mark.parametrize(("path", "line", "text"), _CITED)
def test_cited_llama_cpp_source_lines(path, line, text):
    check_cited_line(ENGINE_SOURCES / _TREE / path, line, text)


def test_the_tree_is_the_pinned_commit():
    assert LLAMACPP_COMMIT.startswith(_TREE.split("-")[-1]) and len(LLAMACPP_COMMIT) == 40


# ------------------------------------------------------------------------------------------ the slot default


def test_absent_np_is_four_unified_slots_whatever_kvu_says():
    """server.cpp:156-160: n_parallel < 0 (arg.cpp:1403's auto default, or -np -1) -> 4 slots, kv_unified true."""
    assert SERVER_AUTO_SLOTS == 4
    assert server_slots() == (4, True)
    assert server_slots(-1) == (4, True)
    assert server_slots(None, kv_unified=False) == (4, True)  # -no-kvu is overridden


def test_given_np_keeps_separate_streams_unless_kvu():
    assert server_slots(1) == (1, False)  # -np 1 is one slot now (no longer turned into 4)
    assert server_slots(3) == (3, False)
    assert server_slots(3, kv_unified=True) == (3, True)


def test_np_zero_is_refused_like_llama_server():
    with pytest.raises(UsageError, match=r"-np 0") as err:
        server_slots(0)
    assert err.value.hint


@pytest.mark.parametrize(
    ("n_ctx", "n_seq", "unified", "cells"),
    [
        (1024, 4, True, 1024),
        (1000, 4, True, 1024),
        (8192, 4, True, 8192),
        (8192, 4, False, 2048),
        (1024, 3, False, 512),
        (1024, 3, True, 1024),
    ],
)
def test_cells_per_stream(n_ctx, n_seq, unified, cells):
    """llama-context.cpp:290-303: unified, one stream of GGML_PAD(n_ctx, 256); else n_ctx / n_seq per stream."""
    assert context_cells(n_ctx, n_seq, unified) == cells


def _gemma3_270m(**kw):
    shape = model_shape(load_config("google__gemma-3-270m"))
    return LlamaCppEngine(shape.model_type, **kw), shape.caches()


def _req(batch: int, kv: str = "float16", seq_len: int = 1) -> Request:
    return Request(seq_len=seq_len, batch=batch, kv_dtype=kv, model_dtype="bfloat16")


def test_unsloth_7530_cases_are_separate_streams_and_unified_would_differ():
    """The gemma-3-270m measurements (-c 1024 -np 3: 1536 cells, 27.0 MiB; -np 4: 1024 cells, 18.0 MiB) had -np
    given, so kv_unified off: kvplan's default engine reproduces them, and a unified cache would not at -np 3
    (one stream of 1024 cells, SWA min(1024, 512 x 3 + 512) = 1024: 18 layers x 1024 cells x 1 KiB = 18.0 MiB)."""
    cases = {c["id"]: c for c in yaml.safe_load((FIXTURES / "calibration" / "engine_cases_2026.yaml").read_text())}
    separate, caches = _gemma3_270m()
    unified, _ = _gemma3_270m(kv_unified=True)
    for case_id, mib in (("parallel3", 27.0), ("parallel4", 18.0)):
        case = cases[f"llamacpp-unsloth-7530-gemma3-270m-ctx1024-{case_id}"]
        n_ctx, n_seq = case["max_model_len"], case["max_num_seqs"]
        assert case["reported"]["llamacpp_kv_size_mib"] == mib
        assert sum(c.bytes for c in separate.context_costs(caches, _req(n_seq), n_ctx)) == mib * MIB
        assert sum(c.bytes for c in unified.context_costs(caches, _req(n_seq), n_ctx)) == 18 * MIB


def test_bare_llama_server_c_8192_on_gemma3_270m():
    """`llama-server -c 8192` (no -np): 4 slots, one stream of 8192 cells for the 3 global layers and
    GGML_PAD(min(8192, 512 x 4 + 512), 256) = 2560 for the 15 sliding ones; 1 KiB a cell a layer (1 KV head x 256,
    K and V, f16): 3 x 8192 + 15 x 2560 = 62,976 KiB = 61.5 MiB. Read as -np 1 it would be 15 x 1024 SWA cells
    (39.0 MiB), as -np 4 four streams of 2048 (SWA 1024 each): 84.0 MiB."""
    unified, caches = _gemma3_270m(kv_unified=True)
    by_kind = {c.kind: c for c in unified.context_costs(caches, _req(SERVER_AUTO_SLOTS), 8192)}
    assert {k: (c.layers, c.tokens) for k, c in by_kind.items()} == {L.FULL: (3, 8192), L.SLIDING: (15, 2560)}
    assert sum(c.bytes for c in by_kind.values()) == (3 * 8192 + 15 * 2560) * KIB == 61.5 * MIB
    separate, _ = _gemma3_270m()
    assert sum(c.bytes for c in separate.context_costs(caches, _req(1), 8192)) == 39 * MIB
    assert sum(c.bytes for c in separate.context_costs(caches, _req(4), 8192)) == 84 * MIB


def test_gpt_oss_20b_swa_cache_grows_with_the_unified_slots():
    """The logged gpt-oss-20b start at -c 131072 -np 1 (tests/engines/test_engines.py) has 768 SWA cells,
    GGML_PAD(128 + 512, 256); with no -np the unified cache holds GGML_PAD(128 x 4 + 512, 256) = 1024, at 12 layers
    x 8 heads x 64 x 2 (K, V) x 2 B = 2 KiB a cell a layer: 24.0 MiB instead of 18.0."""
    shape = model_shape(load_config("openai__gpt-oss-20b"))
    caches = shape.caches()
    for engine, batch, cells in (
        (LlamaCppEngine(shape.model_type), 1, 768),
        (LlamaCppEngine(shape.model_type, kv_unified=True), 4, 1024),
    ):
        swa = next(c for c in engine.context_costs(caches, _req(batch), 131072) if c.kind == L.SLIDING)
        assert (swa.layers, swa.tokens, swa.bytes) == (12, cells, 12 * cells * 2 * KIB)


def test_dsv4_issue_22319_prints_the_unified_default():
    """llama.cpp #22319's "(393216 cells, 0 layers, 4/1 seqs)" is n_seq_max 4 over n_stream 1
    (llama-kv-cache.cpp:301-302): the 4 unified slots of a llama-server started without -np."""
    cases = {c["id"]: c for c in yaml.safe_load((FIXTURES / "calibration" / "engine_cases_2026.yaml").read_text())}
    case = cases["llamacpp-22319-dsv4-flash-393216-noswa-empty"]
    slots, unified = server_slots()
    assert case["reported"]["llamacpp_seqs_as_printed"] == f"{slots}/{1 if unified else slots}"
    assert context_cells(case["max_model_len"], slots, unified) == case["reported"]["llamacpp_kv_cells"]


def test_recurrent_states_are_one_per_slot_even_when_unified():
    """llama-model.cpp:2485: the recurrent memory holds max(1, n_seq_max) states, unified or not."""
    state = L.RecurrentState("mamba2", conv_channels=64, conv_kernel=4, ssm_shape=(2, 16, 16))
    for unified in (False, True):
        (cost,) = LlamaCppEngine("mamba2", kv_unified=unified).context_costs([state], _req(4), 1024)
        assert cost.bytes == 4 * int(state.state_bytes(4, 4, columns=3))


# ------------------------------------------------------------------------------------------- -fa and Gemma 4


def _gemma4(name: str, **kw):
    shape = model_shape(load_config(name))
    return LlamaCppEngine(shape.model_type, **kw), shape.caches()


def test_gemma4_v_rows_are_padded_to_the_widest_layer_only_with_fa_off():
    """gemma-4-26B-A4B in its GGUF: 25 sliding layers of 8 KV heads x 256 (2048 values of V a cell), 5 full layers
    of num_global_key_value_heads 2 x global_head_dim 512 (1024). -fa off: every V row 2048 (llama-kv-cache.cpp:210);
    K is never padded."""
    _, caches = _gemma4("google__gemma-4-26B-A4B")
    full = next(c for c in caches if c.kind == L.FULL)
    swa = next(c for c in caches if c.kind == L.SLIDING)
    assert (full.num_kv_heads, full.head_dim_v, swa.num_kv_heads, swa.head_dim_v) == (2, 512, 8, 256)
    assert [v_values(full, caches, fa) for fa in ("auto", "on", "off")] == [1024, 1024, 2048]
    assert [v_values(swa, caches, fa) for fa in ("auto", "on", "off")] == [2048, 2048, 2048]


@pytest.mark.parametrize(
    ("name", "n_ctx", "n_seq", "on_mib", "off_mib"),
    [
        # 25 x (2 x 2048 x 2 B) x 1536 SWA cells x 2 streams = 600 MiB; 5 x (2 x 1024 x 2 B) x 32768 x 2 = 1280 MiB;
        # -fa off: full rows (1024 + 2048) x 2 B = 6144 B: 5 x 6144 x 32768 x 2 = 1920 MiB
        ("google__gemma-4-26B-A4B", 65536, 2, 600 + 1280, 600 + 1920),
        # 50 x (2 x 4096 x 2 B) x 1536 = 1200 MiB; 10 x (2 x 2048 x 2 B) x 8192 = 640 MiB;
        # -fa off: 10 x (2048 + 4096) x 2 B x 8192 = 960 MiB
        ("nvidia__Gemma-4-31B-IT-NVFP4", 8192, 1, 1200 + 640, 1200 + 960),
    ],
)
def test_gemma4_kv_bytes_with_fa_auto_on_and_off(name, n_ctx, n_seq, on_mib, off_mib):
    figures = {}
    for fa in ("auto", "on", "off"):
        engine, caches = _gemma4(name, flash_attn=fa)
        figures[fa] = sum(c.bytes for c in engine.context_costs(caches, _req(n_seq), n_ctx))
    assert figures == {"auto": on_mib * MIB, "on": on_mib * MIB, "off": off_mib * MIB}


def test_models_with_one_v_width_are_the_same_with_fa_off():
    """Padding to n_embd_v_gqa_max changes nothing where every layer has the same V width (gemma-3-270m: 256)."""
    for fa in ("on", "off"):
        engine, caches = _gemma3_270m(flash_attn=fa)
        assert sum(c.bytes for c in engine.context_costs(caches, _req(3), 1024)) == 27 * MIB


def test_quantized_v_with_fa_off_is_refused():
    """llama-context.cpp:3845-3846: a quantized V cache with -fa off does not start."""
    engine, caches = _gemma3_270m(flash_attn="off")
    with pytest.raises(UsageError, match="quantized V cache requires flash_attn") as err:
        engine.context_costs(caches, _req(1, "q8_0"), 1024)
    assert err.value.hint
    with pytest.raises(UsageError, match="has no --flash-attn maybe"):
        LlamaCppEngine("gemma3_text", flash_attn="maybe")


# ---------------------------------------------------------------------------------------------- the commands


def test_estimate_notes_give_the_bare_server_and_fa_off_figures():
    """-c 65536 -np 2 on gemma-4-26B-A4B: 1880 MiB (1.84 GiB); llama-server -c 65536 without -np: one stream of
    65536 cells, SWA GGML_PAD(1024 x 4 + 512, 256) = 4608: 25 x 8 KiB x 4608 + 5 x 4 KiB x 65536 = 900 + 1280 MiB
    = 2.13 GiB; -fa off: 600 + 1920 MiB = 2.46 GiB."""
    result = runner.invoke(
        app,
        [
            "estimate",
            "google/gemma-4-26B-A4B",
            "--engine",
            "llamacpp",
            "--seq-len",
            "32768",
            "--batch",
            "2",
            "--offline",
        ],
    )
    assert result.exit_code == 0, result.output
    out = " ".join(result.output.split())
    assert "KV cache: 940.00 MiB per sequence, 1.84 GiB for the batch" in out
    assert "llama-server -c 65536 without -np: 4 slots in one unified stream of 65536 cells" in out
    assert "(2.13 GiB of KV;" in out
    assert "-fa off: 2.46 GiB of KV instead of 1.84 GiB" in out


def test_recommend_names_the_slots_its_command_gives():
    """The printed `-np N` keeps kv_unified off (arg.cpp: only an absent -np is auto), so the plan's N separate
    streams are what llama-server allocates; the note says so with the same N."""
    from kvplan.planning.recommend import recommend

    rec = recommend("google/gemma-4-26B-A4B", engine="llamacpp", gpu_profile="h100-sxm-80gb", offline=True)
    command = rec.flags["llama.cpp"]
    slots = int(re.search(r" -np (\d+) ", command).group(1))
    assert "-kvu" not in command and slots == rec.max_num_seqs
    assert any(f"-np {slots} given, so kv_unified stays off" in note for note in rec.notes)


# JaydenCJ/kvcalc README (as tests/engines/test_engines.py quotes it), llama-server -c 8192 -np 4 with
# bartowski/Meta-Llama-3-8B-Instruct-GGUF: four streams of 2048 cells, printed per stream
KVCALC_NP4 = (
    "llama_kv_cache: size = 1024.00 MiB (  2048 cells,  32 layers,  4/4 seqs), K (f16):  512.00 MiB, "
    "V (f16):  512.00 MiB"
)


def test_explain_counts_every_stream_of_the_logged_cells():
    """The cells of a size line are one stream's (llama-kv-cache.cpp:301-302 prints kv_size, then n_seq_max/n_stream):
    2048 cells x 4 streams x 32 layers x 1024 x 2 (K, V) x 2 B = 1024 MiB. kvplan explain used to read 2048 cells
    as the whole cache (256 MiB). The same cache unified would print 8192 cells, 4/1 seqs, and the same 1024 MiB."""
    from kvplan.checking.explain import ExplainOptions, explain
    from kvplan.engines.logs import parse_log

    for line in (KVCALC_NP4, KVCALC_NP4.replace("  2048 cells", "  8192 cells").replace("4/4 seqs", "4/1 seqs")):
        result = explain(parse_log(line), ExplainOptions(model="meta-llama/Meta-Llama-3-8B", offline=True))
        assert {n.name: n.kvplan for n in result.numbers} == {
            "llamacpp_kv_size": 1024,
            "llamacpp_k_size": 512,
            "llamacpp_v_size": 512,
        }
        assert result.all_within_rounding


def _estimate_cli(*args: str):
    return runner.invoke(app, ["estimate", "google/gemma-4-26B-A4B", "--seq-len", "16384", "--offline", *args])


@pytest.mark.parametrize(
    ("args", "total"),
    [
        # -c 16384 -np 1: SWA 25 x 8 KiB x 1536 = 300 MiB, full 5 x 4 KiB x 16384 = 320 MiB
        ((), "620.00 MiB for the batch"),
        (("--flash-attn", "on"), "620.00 MiB for the batch"),
        # full rows 6 KiB with -fa off: 5 x 6 KiB x 16384 = 480 MiB
        (("--flash-attn", "off"), "780.00 MiB for the batch"),
        # -c 65536 -np 4 -kvu: SWA GGML_PAD(1024 x 4 + 512, 256) = 4608 cells: 900 MiB; full 65536 cells: 1280 MiB
        (("--kv-unified", "on", "--batch", "4"), "2.13 GiB for the batch"),
        # separate streams: 4 x 1536 SWA cells = 1200 MiB, 4 x 16384 full = 1280 MiB
        (("--kv-unified", "off", "--batch", "4"), "2.42 GiB for the batch"),
    ],
)
def test_estimate_takes_llama_cpp_flash_attn_and_kv_unified(args, total):
    result = _estimate_cli("--engine", "llamacpp", *args)
    assert result.exit_code == 0, result.output
    assert total in " ".join(result.output.split())


def test_the_llama_cpp_storage_options_are_refused_elsewhere_and_when_invalid():
    for args, message in (
        (("--flash-attn", "off"), "error: --flash-attn does not apply to vllm"),
        (("--engine", "sglang", "--kv-unified", "on"), "error: --kv-unified does not apply to sglang"),
        (("--engine", "llamacpp", "--flash-attn", "maybe"), "error: unknown --flash-attn"),
        (
            ("--engine", "llamacpp", "--flash-attn", "off", "--kv-dtype", "q4_0"),
            "error: llama.cpp refuses a quantized V",
        ),
    ):
        result = _estimate_cli(*args)
        assert result.exit_code == 2, result.output
        lines = [line for line in result.output.splitlines() if line.strip()]
        assert lines[0].startswith(message) and lines[1].startswith("hint:"), lines
