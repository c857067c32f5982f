"""How llama.cpp (`llama-server`, `llama-cli`) allocates its KV cache: n_ctx cells per layer, padded, no pages.

Rules, read from llama.cpp master (2025-2026) and checked against real start-up logs (tests/test_engines.py):
- `-c` is the TOTAL context of all `-np` slots. `llama-context.cpp`: `n_ctx = GGML_PAD(n_ctx, 256)`; without
  `--kv-unified` (the default once `-np` is given) every slot is its own stream of
  `n_ctx_seq = GGML_PAD(n_ctx / n_seq_max, 256)` cells. kvplan's `seq_len` is the tokens of one slot and
  `batch` the slots, so `-c = seq_len x batch`; `context_cells` / `LlamaCppEngine.context_costs` take a total
  `-c` that is not a multiple of the slots (-c 1024 -np 3: 3 x 512 = 1536 cells, llama.cpp's n_ctx rounded UP;
  tests/engines/test_llamacpp_calibration.py). The log prints cells per stream: "size = 1024.00 MiB
  ( 2048 cells, 32 layers, 4/4 seqs)" for `-c 8192 -np 4`. Without `-np` llama-server runs SERVER_AUTO_SLOTS (4)
  slots in ONE unified stream of `GGML_PAD(n_ctx, 256)` cells that every slot may fill ("4/1 seqs"; `server_slots`,
  `LlamaCppEngine(kv_unified=True)`); kvplan's plans give `-np`, so they run with separate streams.
- `-fa off`: V is stored transposed and every layer's V row is padded to the largest `n_embd_v_gqa` of the model
  (`LlamaCppEngine(flash_attn="off")`, Gemma 4's 512-wide global layers); `-fa auto` (the default) and `on`
  create the cache untransposed (`V_PADDING_WHY`).
- `llama-kv-cache.cpp`: per layer with KV, `K = [n_embd_k_gqa, kv_size, n_stream]` of `type_k` and V likewise
  (`n_embd_k_gqa = head_dim_k x n_head_kv`; no TP split: llama.cpp splits whole layers across GPUs). Bytes are
  ggml row sizes: f32 4, f16/bf16 2, q8_0 34/32, q5_1 24/32, q5_0 22/32, q4_1 20/32, q4_0 and iq4_nl 18/32
  (kvplan.core.units); block types need rows that are a multiple of 32 values.
- MLA models (DeepSeek V2/V3, Kimi K2): `has_v = !is_mla`: K holds the latent (kv_lora_rank + rope dims) and V
  is a view of it, so one row of `kv_lora_rank + qk_rope_head_dim` per cell.
- Interleaved sliding-window models (`llama-kv-cache-iswa.cpp`): a second cache for the SWA layers of
  `GGML_PAD(min(n_ctx_seq, n_swa + n_ubatch), 256)` cells per stream (`--swa-full` off, the default), in the
  -ctk / -ctv types like the base cache (PR #21277 kept it f16 for a day; #21332 reverted it). llama.cpp uses it
  for Gemma 2/3/3n/4, Cohere 2, gpt-oss, Llama 4 (chunked), MiMo-V2-Flash and OLMo 3 (SWA_FAMILIES); for other
  configs with a `sliding_window` (Mistral v0.1, Phi-3, Qwen2 `use_sliding_window`, Starcoder2, SmolLM3) it caches
  every token.
- MiniMax-M3 (`llama-kv-cache-msa.cpp` @0c1e57098, LLAMACPP_MINIMAX_M3): GQA K/V on every layer plus, on the layers
  after `moe_layer_freq`'s dense lead, an indexer cache of one head per cell: K of sparse_index_dim and an unread V
  of head_dim, both -ctk / -ctv; only configs naming MiniMaxM3Sparse* convert.
- Recurrent layers (`llama-memory-recurrent.cpp`, created with `GGML_TYPE_F32` for r and s): one cell per
  sequence slot holding the conv state `(d_conv - 1) x channels` and the SSM state, both float32. Kimi's KDA
  layers (kimi-linear, kimi-k3: beside MLA latent layers) and MiniMax-01's lightning layers (beside GQA layers) are
  such layers of a llama_memory_hybrid, with llama-hparams.cpp's own n_embd_r / n_embd_s (`rs_values`, read at
  LLAMACPP_COMMIT; see the KDA / lightning block below).
- DeepSeek-V4 (`llama-kv-cache-dsv4.cpp`, read at ggml-org/llama.cpp@0c1e57098): per layer a raw K-only ring of
  `GGML_PAD(min(n_ctx_seq, n_swa + n_ubatch), 256)` cells, on CSA layers compressed K and indexer K rows of
  `GGML_PAD(max(1, cdiv(n_ctx_seq, 4)), 256)` cells, on HCA layers compressed K rows of the same at 128, all in the
  -ctk type, plus F32 compressor states; every cache one stream per slot (see DSV4 below).
- DeepSeek-V3.2 and GLM-5.x (DSA; `llama-kv-cache-dsa.cpp` at 0c1e57098): the MLA latent row above on every trunk
  layer plus a lightning-indexer K row of `indexer_head_size` values on the full-indexer layers, both in the -ctk type,
  n_ctx_seq cells per stream as for the base cache (see DSA below).
- Quantized V needs Flash Attention (`-fa on`).

Below the storage model: its serving model (LlamaCppServing: memory - weights - compute buffer - --fit margin,
`-c`/`-np` flags) and its registry entry (ENTRY).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from fractions import Fraction
from typing import Any

from kvplan.core import specs as L
from kvplan.core.config import vocab_size
from kvplan.core.shapes import (
    DSA_INDEXER_TYPES_LISTED,
    M3_INDEX_DIM_NOT_SPARSE_INDEX_DIM,
    M3_INDEX_HEADS_NOT_KV_HEADS,
    M3_SPARSE_NOT_AFTER_DENSE_LEAD,
    MIMO_NOT_AS_CONVERTED,
    MIMO_WINDOW_KEYS_DIFFER,
    WINDOW_IS_SIZE_PLUS_ONE,
    ModelShape,
)
from kvplan.core.units import (
    DTYPE_BYTES,
    GGML_BLOCK_SIZE,
    GGML_BLOCK_TYPES,
    GGML_NAMES,
    cdiv,
    format_bytes,
    short_dtype,
)
from kvplan.engines.base import KindCost, Request, group_costs
from kvplan.engines.entry import EngineEntry
from kvplan.engines.serving import UBATCH, BudgetInputs, BudgetTerm, FlagInputs, ServingModel
from kvplan.errors import Text, UsageError
from kvplan.sources.gguf import (
    MINIMAX01_FULL_ATTN_INTERVAL,  # models/minimax-01.cpp:13, the loader's default
    glm_dsa_default_indexer_full,
)

CTX_PAD = 256  # llama-context.cpp: cparams.n_ctx = GGML_PAD(cparams.n_ctx, 256); SWA cache padded to 256 too
DEFAULT_UBATCH = 512  # common.h n_ubatch
# model_types whose llama.cpp architecture builds the iSWA cache (llama-model.cpp create_memory / swa_type); Gemma 3n
# and Gemma 4: swa_type LLAMA_SWA_TYPE_STANDARD in src/models/gemma3n.cpp and gemma4.cpp load_arch_hparams. At
# 0c1e57098 also MiMo-V2-Flash (models/mimo2.cpp:6, always, n_swa the config's `sliding_window`, conversion/mimo.py:159,
# as config.json says it: the converter's pinned transformers 4.57.6, requirements/requirements-convert_hf_to_gguf.txt:1
# and requirements-convert_legacy_llama.txt:4, has no mimo_v2_flash config, so AutoConfig fails and conversion/
# base.py:1288-1289 reads the file; a transformers that knows it would give sliding_window_size + 1)
# and OLMo 3 (Olmo3ForCausalLM converts to LLM_ARCH_OLMO2, conversion/olmo.py:49-52, whose loader turns SWA on when
# the GGUF has a sliding window, models/olmo2.cpp:6-8, written from the config's `sliding_window`, olmo.py:57-58)
SWA_FAMILIES_2026 = frozenset({"mimo_v2_flash", "olmo3"})
SWA_FAMILIES = SWA_FAMILIES_2026 | frozenset(
    {
        "gemma2",
        "gemma3",
        "gemma3_text",
        "gemma3n",
        "gemma3n_text",
        "gemma4",
        "gemma4_text",
        "cohere2",
        "gpt_oss",
        "llama4",
        "llama4_text",
    }
)
LLAMACPP_KV_TYPES = ("float32", "float16", "bfloat16", *GGML_BLOCK_TYPES)


def pad(n: int, to: int = CTX_PAD) -> int:
    return cdiv(n, to) * to


def context_cells(n_ctx: int, n_seq: int, unified: bool = False) -> int:
    """Cells per stream (`n_ctx_seq`) for `-c n_ctx -np n_seq`; with `--kv-unified` the one stream's
    `GGML_PAD(n_ctx, 256)` (llama-context.cpp:292-293 at LLAMACPP_COMMIT: `n_ctx_seq = n_ctx`).

    llama-context.cpp (llama_context::llama_context): `cparams.n_ctx = GGML_PAD(cparams.n_ctx, 256)`, then,
    not unified, `n_ctx_seq = GGML_PAD(n_ctx / n_seq_max, 256)` and, when `n_ctx != n_ctx_seq * n_seq_max`,
    `n_ctx = n_ctx_seq * n_seq_max` (logged as "rounding down", though it can round up: -c 1024 -np 3 gives
    3 x 512 = 1536). llama-model.cpp create_memory passes `cparams.n_ctx_seq` as the cache's kv_size and
    llama-kv-cache.cpp allocates `[n_embd, kv_size, n_stream]` with `n_stream = unified ? 1 : n_seq_max`.
    llama-server leaves `kv_unified` false when `-np` is given and `-kvu` is not (`server_slots`)."""
    if unified:
        return pad(n_ctx)
    return pad(pad(n_ctx) // n_seq)


def cells_per_stream(seq_len: int, n_seq: int) -> int:
    """Cells one slot gets for `-c seq_len x n_seq -np n_seq` (non-unified KV)."""
    return context_cells(seq_len * n_seq, n_seq)


# llama-server's slots and llama.cpp's Flash Attention setting, read at ONE commit: ggml-org/llama.cpp@LLAMACPP_COMMIT
# (the llama.cpp that llama-cpp-python 0.3.36 vendors; tests/engines/test_llamacpp_server_defaults.py quotes every
# line cited here).
LLAMACPP_COMMIT = "0c1e57098bba43ac29e6e3b677cdceebdd22334f"  # 2026-10-01
# common/arg.cpp:1403 `params.n_parallel = -1;     // auto by default` (LLAMA_EXAMPLE_SERVER; the library's own
# default is 1, common/common.h:457), and tools/server/server.cpp:156-160: `if (params.n_parallel < 0)` ->
# `params.n_parallel = 4; params.kv_unified = true;`, whatever -kvu/-no-kvu said
SERVER_AUTO_SLOTS = 4
FLASH_ATTN = ("auto", "on", "off")  # common/arg.cpp:1754 `-fa, --flash-attn [on|off|auto]`, common.h:501 AUTO
# llama-context.cpp:230 `cparams.flash_attn = params.flash_attn_type != LLAMA_FLASH_ATTN_TYPE_DISABLED`, and the
# cache is created once (:397) with `v_trans = !cparams.flash_attn` (llama-model.cpp create_memory), before `auto`
# is resolved (:557-559); llama-kv-cache.cpp:210 `n_embd_v_gqa = !v_trans ? hparams.n_embd_v_gqa(il) :
# hparams.n_embd_v_gqa_max()`, the largest over all layers (llama-hparams.cpp:199-205)
V_PADDING_WHY = (
    "with -fa off llama.cpp stores V transposed and pads every layer's V row to the model's widest "
    "(llama-kv-cache.cpp:210); -fa auto and on do not"
)


def server_slots(n_parallel: int | None = None, kv_unified: bool | None = None) -> tuple[int, bool]:
    """(slots, kv_unified) llama-server runs with for `-np n_parallel` (None or negative: not given, "auto") and
    `-kvu` / `-no-kvu` (None: neither given; common/common.h:575 `kv_unified = false`). An absent -np is 4 slots
    in one unified stream (server.cpp:156-160, overriding -no-kvu); -np 0 is refused (common/arg.cpp:2547-2548)."""
    if n_parallel is None or n_parallel < 0:
        return SERVER_AUTO_SLOTS, True
    if n_parallel == 0:
        raise UsageError(
            "llama-server refuses -np 0 (common/arg.cpp: invalid value for n_parallel)",
            hint=Text("give {batch} N >= 1, or leave -np out for llama-server's 4 unified slots"),
            field="batch",
        )
    return n_parallel, bool(kv_unified)


def v_values(cache: L.KVAttention, caches: list[L.Layer], flash_attn: str) -> int:
    """Values of one cell's V row in a layer: its own `n_head_kv x head_dim_v`, with `-fa off` the largest of the
    model's attention layers (V_PADDING_WHY)."""
    own = cache.num_kv_heads * cache.head_dim_v
    if flash_attn != "off":
        return own
    return max([own] + [c.num_kv_heads * c.head_dim_v for c in caches if isinstance(c, L.KVAttention)])


def row_bytes(kv_dtype: str, n: int) -> int:
    """ggml_row_size(type, n): bytes of one row of n values."""
    if kv_dtype in GGML_BLOCK_TYPES and n % GGML_BLOCK_SIZE:
        raise UsageError(
            f"llama.cpp cannot store rows of {n} values as {kv_dtype} (blocks of 32)",
            hint=Text("use {kv_dtype} f16 for this model"),
            field="kv_dtype",
        )
    value = DTYPE_BYTES[kv_dtype] * n
    return int(value)


# DeepSeek-V4 (llama.cpp PR #24162, on master since; read at ggml-org/llama.cpp@0c1e57098, the tree llama-cpp-python
# 0.3.36 vendors). llama-model.cpp:2613-2627 create_memory builds `llama_kv_cache_dsv4(type_k, type_v, ..., swa_full,
# kv_unified, n_ctx_seq, n_seq_max, n_ubatch, n_pad 1, n_rs_seq)` for LLM_ARCH_DEEPSEEK4 (a plain iSWA cache only for
# an MTP draft context). src/llama-kv-cache-dsv4.cpp then allocates, per layer of the main GGUF (block_count =
# num_hidden_layers, conversion/deepseek.py:550; the `mtp.*` tensors go to a separate MTP GGUF):
# - a raw K-only ring on every layer: an iSWA cache (:1255-1257) that is never unified (:1244) over hparams made
#   K-only (`dsv4_make_k_only`, :883-887: is_mla(), so llama-kv-cache.cpp:231 allocates no V), n_embd_head_k x
#   n_head_kv (512 x 1) values of type_k per cell; every layer is SWA (models/deepseek4.cpp:67-68,
#   set_swa_pattern(0)), so the base cache has 0 layers and the SWA cache holds them all, in
#   GGML_PAD(min(kv_size, n_swa + n_ubatch), 256) cells per stream (llama-kv-cache-iswa.cpp:73) of type_k (no f16
#   override: PR #21277 was reverted by #21332);
# - CSA (ratio 4) layers: compressed K rows of n_embd_head_k and lightning-indexer K rows of indexer_head_size
#   (n_head_kv 1, :1263-1269), both type_k, GGML_PAD(max(1, cdiv(kv_size, 4)), 256) cells (:28-30, :1294, :1310);
#   and two F32 compressor states (kv and score) each of 2 x 4 rows x 2 x n_embd_head_k (:1316-1317) and
#   2 x 4 rows x 2 x indexer_head_size (:1328-1329);
# - HCA (ratio 128) layers: compressed K rows, GGML_PAD(max(1, cdiv(kv_size, 128)), 256) cells (:1302), and two F32
#   states of 128 rows x n_embd_head_k (:1322-1323);
# every one of them n_seq_max streams whatever --kv-unified says (unified_compressed = false, :1287), the states
# n_seq_max x (1 + n_rs_seq) planes (:964-966; n_rs_seq is 0 without a replaying draft, common.cpp:1635).
DSV4_CSA_RATIO, DSV4_HCA_RATIO = 4, 128  # llama-kv-cache-dsv4.cpp:18-19
DSV4_STATE_BYTES = 4  # GGML_TYPE_F32 compressor states, llama-kv-cache-dsv4.cpp:965-966


def dsv4_compressed_cells(kv_size: int, ratio: int) -> int:
    """Cells of a DSV4 compressed cache for a stream of `kv_size` cells: GGML_PAD(dsv4_comp_size(kv_size, ratio),
    256), dsv4_comp_size = max(1, cdiv(kv_size, ratio)) (llama-kv-cache-dsv4.cpp:28-30, :1294/:1302/:1310)."""
    return pad(max(1, cdiv(kv_size, ratio)))


def swa_cache_cells(kv_size: int, n_swa: int, n_ubatch: int) -> int:
    """Cells per stream of an iSWA wrapper's SWA cache, not unified and without --swa-full
    (llama-kv-cache-iswa.cpp:73): GGML_PAD(min(kv_size, n_swa + n_ubatch), 256)."""
    return pad(min(kv_size, n_swa + n_ubatch))


def dsv4_ring_cells(cache: L.CompressedAttention, kv_size: int, n_ubatch: int) -> int:
    """Cells per stream of the DeepSeek-V4 raw K ring: the SWA cache of an iSWA wrapper that is never unified."""
    return swa_cache_cells(kv_size, cache.window or 0, n_ubatch)


def dsv4_layer_buffers(
    cache: L.CompressedAttention, kv_dtype: str, kv_size: int, streams: int, n_ubatch: int
) -> dict[str, int]:
    """Bytes of each llama.cpp DeepSeek-V4 buffer one layer holds (the keys name the caches the start-up log prints:
    raw, csa, hca, lid, csa_state, hca_state, lid_state), for `streams` streams of `kv_size` cells."""
    out = {"raw": row_bytes(kv_dtype, cache.head_dim) * dsv4_ring_cells(cache, kv_size, n_ubatch) * streams}
    if cache.compress_ratio == DSV4_CSA_RATIO:
        cells = dsv4_compressed_cells(kv_size, DSV4_CSA_RATIO)
        state_rows = 2 * DSV4_CSA_RATIO  # the overlapping window (:1316)
        out["csa"] = row_bytes(kv_dtype, cache.head_dim) * cells * streams
        out["lid"] = row_bytes(kv_dtype, cache.index_head_dim) * cells * streams
        out["csa_state"] = 2 * DSV4_STATE_BYTES * 2 * cache.head_dim * state_rows * streams
        out["lid_state"] = 2 * DSV4_STATE_BYTES * 2 * cache.index_head_dim * state_rows * streams
    elif cache.compress_ratio == DSV4_HCA_RATIO:
        cells = dsv4_compressed_cells(kv_size, DSV4_HCA_RATIO)
        out["hca"] = row_bytes(kv_dtype, cache.head_dim) * cells * streams
        out["hca_state"] = 2 * DSV4_STATE_BYTES * cache.head_dim * DSV4_HCA_RATIO * streams
    elif cache.compress_ratio:
        raise UsageError(  # models/deepseek4.cpp:152 refuses the GGUF too
            f"llama.cpp's DeepSeek-V4 loader only supports compression ratios 0, 4 and 128, not {cache.compress_ratio}",
            hint=Text("use {engine} transformers for this model"),
            field="engine",
        )
    return out


def dsv4_buffers(caches: Sequence[L.Layer], req: Request, kv_size: int) -> dict[str, int]:
    """The DeepSeek-V4 buffers of a whole model, summed over its layers, as llama.cpp's start-up log lists them."""
    total: dict[str, int] = {}
    for c in caches:
        if isinstance(c, L.CompressedAttention):
            for name, nbytes in dsv4_layer_buffers(c, req.kv_dtype, kv_size, req.batch, req.n_ubatch).items():
                total[name] = total.get(name, 0) + nbytes
    return total


# DeepSeek Sparse Attention: DeepSeek-V3.2 (arch `deepseek32`) and GLM-5.x (`glm-dsa`), read at
# ggml-org/llama.cpp@0c1e57098. llama-model.cpp:2397-2448 create_memory builds, for the main context,
# `llama_kv_cache_dsa(type_k, type_v, ..., kv_unified, n_ctx_seq, n_seq_max, n_pad 1, ..., filter_mla, filter_lid)`
# over the trunk layers only (:2429 `il < hparams.n_layer()`, n_layer() = block_count - nextn_predict_layers,
# llama-hparams.cpp:348-349; an MTP draft context gets a plain cache of its nextn layers instead, :2400-2422).
# src/llama-kv-cache-dsa.cpp then holds two ordinary llama_kv_cache objects with one stream per slot, or one with
# -kvu (:29 `n_stream(unified ? 1 : n_seq_max)`), each of n_ctx_seq cells:
# - kv_mla (:33-36) over the model's hparams: is_mla(), so K only (llama-kv-cache.cpp:231 `has_v = !is_mla`), one
#   row of n_embd_k_gqa = key_length x head_count_kv = (kv_lora_rank + qk_rope_head_dim) x 1 values of type_k per
#   cell, as for DeepSeek V2/V3 (conversion/deepseek.py:350 `add_key_length(kv_lora_rank + qk_rope_head_dim)`);
# - kv_lid, the lightning indexer's keys (:43-53): the same hparams with n_head_kv 1 and n_embd_head_k_full =
#   indexer_head_size (:44-45), also type_k and K only (is_mla() is unchanged), on the layers filter_lid keeps
#   (llama-model.cpp:2431): every trunk layer of deepseek32, the `is_indexer_full` layers of glm-dsa.
# Nothing else per cell: the Hadamard rotation and the indexer's KQ mask are graph inputs (llama-graph.cpp:3359-3362).
DSA_ARCHS = {"deepseek_v32": "deepseek32", "glm_moe_dsa": "glm-dsa"}  # model_type -> llama.cpp arch


def llamacpp_indexer_full(
    model_type: str, n_layers: int, n_ctx_train: int | None, listed: bool
) -> tuple[bool, ...] | None:
    """Which trunk layers llama.cpp gives lightning-indexer keys, as its loader decides them for the GGUF the
    converter writes from a config: deepseek32 every layer (llama-model.cpp:2431); glm-dsa the config's own
    indexer_types when it lists them (`listed`: they reach the GGUF, glm-dsa.cpp:66), else glm-dsa.cpp:59-65's
    rule on n_ctx_train (the config's max_position_embeddings, what the converter writes as context_length).
    None: not a DSA model_type llama.cpp serves."""
    if model_type == "deepseek_v32":
        return (True,) * n_layers
    if model_type != "glm_moe_dsa":
        return None
    if listed:
        return None  # the config's own list, which kvplan's shape already follows (shapes.indexer_layers)
    return glm_dsa_default_indexer_full(n_layers, n_ctx_train)


def dsa_refusal(shape: ModelShape) -> str | None:
    """Why llama.cpp would not cache `shape`'s indexer keys where kvplan's shape puts them (None: it would, or not a
    DSA model): a glm-dsa config without indexer_types whose index_topk_freq / index_topk_pattern name other
    full-indexer layers than the loader's own rule (llamacpp_indexer_full). Judged on the whole model, so that each
    pipeline stage's caches are refused alike."""
    if shape.model_type != "glm_moe_dsa":
        return None
    if shape.max_position_embeddings is None and DSA_INDEXER_TYPES_LISTED not in shape.features:
        return (
            "llama.cpp's glm-dsa loader picks the full-indexer layers by the GGUF's context_length (src/models/"
            "glm-dsa.cpp:59-66), a key it requires (llama-model.cpp:1321), and this config has no "
            "max_position_embeddings for the converter to write as one"
        )
    own = tuple(bool(c.index_head_dim) for c in shape.caches() if isinstance(c, L.MlaLatent) and c.sparse)
    full = llamacpp_indexer_full(
        shape.model_type, len(own), shape.max_position_embeddings, DSA_INDEXER_TYPES_LISTED in shape.features
    )
    if full is None or full == own:
        return None
    first = next(il for il, (a, b) in enumerate(zip(full, own, strict=True)) if a != b)
    return (
        f"llama.cpp's glm-dsa loader would run its own indexer on {sum(full)} of {len(own)} layers "
        "(src/models/glm-dsa.cpp:59-66: the config lists no indexer_types, so the GGUF has none), where this config's "
        f"index_topk_freq / index_topk_pattern give {sum(own)} (first difference at layer {first})"
    )


def check_dsa(caches: Sequence[L.Layer], model_type: str, refusal: str | None = None) -> None:
    """Refuse a sparse-MLA model llama.cpp does not serve as kvplan's shape says: a model_type no llama.cpp DSA arch
    loads, a deepseek32 layer without its own indexer, or the whole model's `refusal` (dsa_refusal)."""
    sparse = [c for c in caches if isinstance(c, L.MlaLatent) and c.sparse]
    if not sparse:
        return
    if model_type not in DSA_ARCHS:
        raise UsageError(
            f"kvplan has not read how llama.cpp stores sparse-attention (DSA) model_type {model_type!r}: its DSA "
            f"cache (llama-kv-cache-dsa.cpp) is read for {' and '.join(sorted(DSA_ARCHS))} only",
            hint=Text("use {engine} vllm, sglang or transformers for this model"),
            field="engine",
        )
    if model_type == "deepseek_v32" and not all(c.index_head_dim for c in sparse):
        raise UsageError(  # its loader requires every layer's indexer tensors (src/models/deepseek32.cpp:110-114)
            "llama.cpp's deepseek32 runs and caches a lightning indexer on every layer (llama-model.cpp:2431, "
            "src/models/deepseek32.cpp:110-114), but this config marks some layers as sharing another's indexer",
            hint=Text("use {engine} vllm, sglang or transformers for this model"),
            field="engine",
        )
    if refusal:
        raise UsageError(
            refusal,
            hint="add the indexer_types list to config.json (the converter then writes it), or use another engine",
            field="engine",
        )


# MiniMax-M3 (LLM_ARCH_MINIMAX_M3, read at 0c1e57098): llama.cpp's converter takes the config's `architectures[0]`
# (conversion/base.py:2884-2885; a text_config's own list would come first, :2900-2901, which the shape does not
# carry: kvplan judges the top-level list) and knows MiniMax-M3 only as LLAMACPP_MINIMAX_M3 (conversion/__init__.py:
# 185-186, minimax.py:167); any other name is refused with "Architecture ... not supported!" (conversion/__init__.py:
# 394-395). llama-model.cpp:2375-2395 create_memory builds llama_kv_cache_msa: a plain llama_kv_cache of GQA K/V on
# every layer (llama-kv-cache-msa.cpp:34-37) and an indexer llama_kv_cache over the same n_ctx_seq cells and streams
# (:46-49) on layers il >= n_layer_dense_lead (the leading zeros of `moe_layer_freq`, conversion/minimax.py:191-198),
# its hparams one KV head (:40) of K width indexer_head_size (:41; the config's
# sparse_attention_config.sparse_index_dim, conversion/minimax.py:186) and the model's V width unchanged:
# llama-kv-cache.cpp:231 `has_v = !is_mla` allocates that V too (n_embd_head_v x 1), both in -ctk / -ctv.
LLAMACPP_MINIMAX_M3 = ("MiniMaxM3SparseForCausalLM", "MiniMaxM3SparseForConditionalGeneration")


def minimax_m3_index_row_values(caches: Sequence[L.Layer]) -> tuple[int, int]:
    """(K values, V values) of one cell of llama.cpp's MiniMax-M3 indexer cache: the index key's `head_dim` and one
    head of the attention's V width (n_embd_head_v, llama-kv-cache-msa.cpp:40-41 keep it; with -fa off the widest
    V row of those hparams, the same single head: llama-kv-cache.cpp:210)."""
    keys = {c.head_dim for c in caches if isinstance(c, L.IndexKeys)}
    values = {c.head_dim_v for c in caches if isinstance(c, L.KVAttention)}
    if len(keys) != 1 or len(values) != 1:
        raise UsageError(
            "kvplan sizes llama.cpp's MiniMax-M3 indexer cache only for one index width and one attention V width",
            hint=Text("use {engine} transformers for this model"),
            field="engine",
        )
    return keys.pop(), values.pop()


def check_minimax_m3(caches: Sequence[L.Layer], architectures: tuple[str, ...], features: frozenset[str]) -> None:
    """Refuse a MiniMax-M3 config llama.cpp's converter does not take, or whose sparse layers it would put elsewhere."""
    if not any(isinstance(c, L.IndexKeys) for c in caches):
        return
    if not any(a in LLAMACPP_MINIMAX_M3 for a in architectures[:1]):
        raise UsageError(
            "llama.cpp does not convert this config: its converter knows MiniMax-M3 only as "
            f"{' / '.join(LLAMACPP_MINIMAX_M3)} (conversion/__init__.py:185-186) and refuses "
            f"{architectures[0] if architectures else 'a config without architectures'} ('Architecture ... not "
            "supported!', conversion/__init__.py:394-395)",
            hint=Text(
                "pass a config whose architectures is MiniMaxM3SparseForCausalLM (the name llama.cpp converts), "
                "or use {engine} transformers"
            ),
            field="engine",
        )
    if M3_INDEX_DIM_NOT_SPARSE_INDEX_DIM in features:
        raise UsageError(
            "llama.cpp's converter reads MiniMax-M3's index key width from `sparse_attention_config.sparse_index_dim` "
            "(conversion/minimax.py:186), which this config lacks (its width comes from `index_head_dim`)",
            hint=Text("add sparse_attention_config.sparse_index_dim to the config, or use {engine} transformers"),
            field="engine",
        )
    if M3_INDEX_HEADS_NOT_KV_HEADS in features:
        raise UsageError(
            "llama.cpp's MiniMax-M3 graph needs one index head per GQA group (GGML_ASSERT(HKV == Hd), "
            "models/minimax-m3.cpp:382; the heads from sparse_attention_config.sparse_num_index_heads, "
            "conversion/minimax.py:185), and this config's differ from its num_key_value_heads (or are absent)",
            hint=Text("use {engine} transformers for this model"),
            field="engine",
        )
    if M3_SPARSE_NOT_AFTER_DENSE_LEAD in features:
        raise UsageError(
            "llama.cpp puts MiniMax-M3's indexer on the layers after `moe_layer_freq`'s leading dense layers "
            "(conversion/minimax.py:191-198, llama-model.cpp:2378-2379), and this config's sparse layers are others "
            "(or it has no moe_layer_freq, which the converter requires)",
            hint=Text("use {engine} transformers for this model"),
            field="engine",
        )


def dsa_note(caches: Sequence[L.Layer], req: Request, cells: int, streams: int) -> str | None:
    """What llama.cpp's DSA cache holds for these caches (None: not a DSA model), for `estimate`'s notes."""
    sparse = [c for c in caches if isinstance(c, L.MlaLatent) and c.sparse]
    if not sparse:
        return None
    keyed = [c for c in sparse if c.index_head_dim]
    latent, index = sparse[0].latent_elements(), (keyed[0].index_head_dim if keyed else 0)
    shared = f" ({len(sparse) - len(keyed)} shared-indexer layers keep none)" if len(keyed) < len(sparse) else ""
    return (
        f"llama.cpp DSA (llama-kv-cache-dsa.cpp): {streams} stream(s) of {cells} cells; a {latent}-value latent "
        f"row on {len(sparse)} layers and a {index}-value lightning-indexer key row on {len(keyed)}{shared}, both "
        f"{short_dtype(req.kv_dtype)} (-ctk), K only; an MTP draft (--spec-type draft-mtp) adds its own plain cache "
        "of the nextn layer (llama-model.cpp:2400-2422), not counted"
    )


def dsa_row_bytes(cache: L.MlaLatent, kv_dtype: str) -> int:
    """Bytes one cell holds for a DSA layer: its latent row in kv_mla plus, on a layer with its own indexer, its
    indexer key row in kv_lid, both ggml rows of type_k (llama-kv-cache-dsa.cpp:33-53)."""
    row = row_bytes(kv_dtype, cache.latent_elements())
    return row + (row_bytes(kv_dtype, cache.index_head_dim) if cache.index_head_dim else 0)


# Kimi Linear / Kimi K3 (`kimi-linear`, `kimi-k3`: KDA + MLA) and MiniMax-Text-01 / M1 (`minimax-01`: lightning +
# softmax attention), read at ggml-org/llama.cpp@0c1e57098. All three are hybrids (llama-arch.cpp:1096, :1098,
# :1104 llm_arch_is_hybrid) without a sliding window (llama-hparams.h:171 swa_type NONE), so create_memory builds a
# llama_memory_hybrid (llama-model.cpp:2756-2773): a llama_kv_cache of n_ctx_seq cells over the layers that are not
# recurrent (llama-memory-hybrid.cpp:48-49) and a llama_memory_recurrent of max(1, n_seq_max) cells in F32 r and s
# (llama-model.cpp:2765-2767) over the recurrent ones (llama-memory-hybrid.cpp:62-63). Per recurrent layer that memory holds an r tensor of
# n_embd_r() x mem_size x (1 + n_rs_seq) and an s tensor of n_embd_s() likewise (llama-memory-recurrent.cpp:101-103;
# n_rs_seq is 0 without a replaying draft, common.cpp:1635), whatever --kv-unified says. n_embd_r and n_embd_s are
# model-wide, from llama-hparams.cpp:
# - KDA (n_embd_head_kda != 0): r = 3 x (ssm_d_conv - 1) x n_head() x n_embd_head_kda, the q, k and v conv states
#   (:219-223), s = n_embd_head_kda^2 x n_head() (:242-246). n_head() is the ATTENTION head count (the converter
#   writes num_attention_heads, conversion/base.py:1449-1450; kda.head_dim is linear_attn_config.head_dim,
#   conversion/kimi_k3.py:186 / kimi_linear.py:102-103), and the loader shapes the KDA tensors by it
#   (models/kimi-linear.cpp:59-61): a config whose linear_attn_config.num_heads differs cannot be loaded.
#   The MLA layers (head_count_kv 1, key_length kv_lora_rank + qk_rope_head_dim, conversion/kimi_k3.py:203 /
#   kimi_linear.py:119) hold the latent as K and no V (llama-kv-cache.cpp:231 has_v = !is_mla; the loaders read
#   key_length_mla and value_length_mla, models/kimi-k3.cpp:18-19), the MlaLatent row kvplan already sizes.
# - lightning (n_embd_head_la = n_embd_head_k_full, models/minimax-01.cpp:9): no conv state (r falls to the Mamba
#   rule, (ssm_d_conv - 1 or 0) x ..., and minimax-01 reads no ssm_d_conv: r = 0, llama-hparams.cpp:229), s =
#   n_embd_head_la^2 x n_head() (:249-254). Its lightning layers come from `attention.recurrent_layers`, else every
#   `full_attention_interval`-th layer (default 8) is softmax attention (models/minimax-01.cpp:12-17), and the
#   converter writes neither key (conversion/minimax.py:62-82): a GGUF made from a Hugging Face config runs
#   layers 8, 16, ... (1-based) as softmax attention, whatever the config's attn_type_list says.
RS_STATE_BYTES = 4  # GGML_TYPE_F32 r and s, llama-model.cpp:2765-2766


def rs_values(cache: L.RecurrentState) -> tuple[int, int]:
    """(n_embd_r, n_embd_s): the F32 values of one sequence's r (conv) and s (recurrent) rows in one layer
    (llama-hparams.cpp:208-258). KDA's and lightning's follow their own branches; the other families keep
    `conv_kernel - 1` conv columns and their SSM state, the Mamba rule (:229, :257)."""
    if cache.family == "kda":  # (heads, head_dim, head_dim), heads checked against n_head by kda_lightning_rules
        heads, dim = cache.ssm_shape[0], cache.ssm_shape[1]
        return 3 * (cache.conv_kernel - 1) * heads * dim, dim * dim * heads
    if cache.family == "lightning":
        heads, dim = cache.ssm_shape[0], cache.ssm_shape[1]
        return 0, dim * dim * heads
    return cache.conv_elements(cache.conv_kernel - 1), cache.ssm_elements()


def rs_state_bytes(cache: L.RecurrentState) -> int:
    """Bytes of one sequence's r and s rows in one recurrent layer (F32, no TP: llama.cpp splits whole layers)."""
    r, s = rs_values(cache)
    return (r + s) * RS_STATE_BYTES


def kda_lightning_rules(shape: ModelShape) -> None:
    """What llama.cpp's Kimi and MiniMax-01 loaders take from a model that kvplan's shape does not say (see above):
    KDA layers of n_head heads, and MiniMax-01's softmax layers on every 8th layer. A model that breaks them is one
    llama.cpp cannot load as converted, so it is refused rather than sized."""
    for cache in shape.caches():
        if (
            isinstance(cache, L.RecurrentState)
            and cache.family == "kda"
            and cache.ssm_shape[0] != shape.num_attention_heads
        ):
            raise UsageError(
                f"llama.cpp sizes Kimi's KDA layers by the attention head count ({shape.num_attention_heads}, "
                f"llama-hparams.cpp:222 n_head()), but this config's linear_attn_config.num_heads is "
                f"{cache.ssm_shape[0]}: its GGUF would not load (models/kimi-linear.cpp:59-61)",
                hint=Text("use {engine} vllm, sglang or transformers for this model"),
                field="engine",
            )
    lightning = [
        any(isinstance(c, L.RecurrentState) and c.family == "lightning" for c in layer) for layer in shape.layers
    ]
    if any(lightning):
        llama = [(i + 1) % MINIMAX01_FULL_ATTN_INTERVAL != 0 for i in range(len(shape.layers))]
        if lightning != llama:
            softmax = [i + 1 for i, recurrent in enumerate(lightning) if not recurrent]
            raise UsageError(
                f"llama.cpp's MiniMax-01 GGUF runs every {MINIMAX01_FULL_ATTN_INTERVAL}th layer as softmax attention "
                "(its converter writes no layer list, conversion/minimax.py; models/minimax-01.cpp:12-17), but this "
                f"config has softmax attention on layers {softmax} (1-based)",
                hint=Text("use {engine} transformers for this model"),
                field="engine",
            )


def linear_attention_note(shape: ModelShape, req: Request) -> str | None:
    """The llama.cpp note for a KDA or lightning hybrid: per-slot F32 state beside the attention cache."""
    states = [c for c in shape.caches() if isinstance(c, L.RecurrentState) and c.family in ("kda", "lightning")]
    if not states:
        return None
    slots = max(1, req.batch)
    r, s = rs_values(states[0])
    what = "KDA" if states[0].family == "kda" else "lightning-attention"
    per_slot = sum(rs_state_bytes(c) for c in states)
    return (
        f"llama.cpp {what} state (llama_memory_recurrent, F32): {len(states)} layers x (r {r:,} + s {s:,} values) "
        f"= {format_bytes(per_slot)} per slot, {slots} slot(s), whatever -c and -kvu say (llama-model.cpp:2765-2767, "
        "llama-hparams.cpp:208-258); a draft that replays (--spec-type draft-mtp, draft-eagle3, draft-dflash or "
        "draft-dspark: n_rs_seq = --spec-draft-n-max, common.h:396-401) multiplies these rows by 1 + n_rs_seq (llama-memory-recurrent.cpp:101), not "
        "counted"
    )


def check_swa_window(features: frozenset[str]) -> None:
    """MiMo-V2-Flash: llama.cpp's n_swa is the config's `sliding_window` (conversion/mimo.py:159), which kvplan's
    shape (transformers' `sliding_window_size + 1`) carries only when `sliding_window` equals `sliding_window_size`."""
    if MIMO_WINDOW_KEYS_DIFFER in features:
        raise UsageError(
            "llama.cpp's converter writes MiMo-V2-Flash's `sliding_window` as its window (conversion/mimo.py:159), "
            "and this config's `sliding_window` is absent or differs from its `sliding_window_size`",
            hint=Text("set sliding_window to the window llama.cpp should use, or use {engine} vllm or sglang"),
            field="engine",
        )
    if MIMO_NOT_AS_CONVERTED in features:
        raise UsageError(
            "llama.cpp's converter would not build this MiMo-V2-Flash config's layers as kvplan reads them: it "
            "asserts swa_head_dim == head_dim and swa_v_head_dim == v_head_dim (conversion/mimo.py:146-149), takes "
            "the sliding layers from hybrid_layer_pattern (:155, :161) and the window from sliding_window (:159), "
            "and this config breaks one of these (kvplan.core.shapes.mimo_v2_flash_converter_issue says which)",
            hint=Text("fix config.json as the checkpoint's own, or use {engine} vllm or sglang"),
            field="engine",
        )


# Recurrent-state families whose llama.cpp storage kvplan has not read (none left: KDA and lightning above)
_UNREAD_STATES: dict[str, str] = {}


class LlamaCppEngine:
    name = "llamacpp"
    follows = "llama.cpp master 2026 (llama-kv-cache.cpp, -iswa.cpp, -dsv4.cpp @0c1e57098, llama-memory-recurrent.cpp)"

    def __init__(
        self,
        model_type: str = "",
        kv_unified: bool = False,
        flash_attn: str = "auto",
        dsa_refusal: str | None = None,
        architectures: tuple[str, ...] = (),
        features: frozenset[str] = frozenset(),
    ) -> None:
        """`kv_unified`: one stream shared by every slot (`-kvu`, or llama-server without -np: `server_slots`);
        `flash_attn`: `-fa` (auto, on, off); `dsa_refusal`: why llama.cpp would not cache a DSA model's indexer keys
        as its shape says (`dsa_refusal(shape)`), refused by `check`; `architectures`, `features`: the shape's
        (`model_args`)."""
        if flash_attn not in FLASH_ATTN:
            raise UsageError(
                Text("llama.cpp has no {flash_attn} {v}", v=flash_attn),
                hint=Text("use {flash_attn} on, off or auto"),
                field="flash_attn",
            )
        self.swa = model_type in SWA_FAMILIES
        self.model_type, self.dsa_refusal = model_type, dsa_refusal
        self.kv_unified = kv_unified
        self.flash_attn = flash_attn
        self.architectures = architectures
        self.features = features
        # MiMo-V2-Flash: the shape's window is sliding_window_size + 1, llama.cpp's n_swa sliding_window (= the size)
        self.window_offset = 1 if WINDOW_IS_SIZE_PLUS_ONE in features else 0

    def check(self, caches: list[L.Layer], req: Request) -> None:
        check_dsa(caches, self.model_type, self.dsa_refusal)  # DeepSeek V3.2, GLM-5 (DSA indexer)
        unread = sorted({c.family for c in caches if isinstance(c, L.RecurrentState) and c.family in _UNREAD_STATES})
        if unread:
            raise UsageError(
                f"kvplan has not read how llama.cpp stores {' and '.join(_UNREAD_STATES[f] for f in unread)}",
                hint=Text("use {engine} vllm, sglang or transformers for this model"),
                field="engine",
            )
        check_minimax_m3(caches, self.architectures, self.features)
        check_swa_window(self.features)
        if req.tp > 1:
            raise UsageError(
                "llama.cpp has no tensor parallelism: it splits whole layers across GPUs",
                hint=Text("use {tp} 1 (and {pp} N for a layer split over N GPUs)"),
                field="tp",
            )
        if req.kv_dtype not in LLAMACPP_KV_TYPES:
            raise UsageError(
                f"llama.cpp has no {req.kv_dtype} KV cache",
                hint=Text("use {kv_dtype} f16, bf16, f32, q8_0, q5_1, q5_0, q4_1, q4_0 or iq4_nl"),
                field="kv_dtype",
            )
        if self.flash_attn == "off" and req.kv_dtype in GGML_BLOCK_TYPES:  # llama-context.cpp:3845-3846
            raise UsageError(
                Text(
                    "llama.cpp refuses a quantized V cache ({v}) with {flash_attn} off: quantized V cache requires "
                    "flash_attn to be enabled",
                    v=req.kv_dtype,
                ),
                hint=Text("use {flash_attn} on or auto, or {kv_dtype} f16"),
                field="kv_dtype",
            )

    def block_size(self, caches: list[L.Layer], req: Request) -> int | None:
        return None

    def stage_costs(self, caches: list[L.Layer], req: Request) -> list[KindCost]:
        return self.context_costs(caches, req, req.seq_len * req.batch)

    def context_costs(self, caches: list[L.Layer], req: Request, n_ctx: int) -> list[KindCost]:
        """The caches of `-c n_ctx -np req.batch` (n_ctx the TOTAL context, which need not be a multiple of
        the slots): `req.batch` streams of `context_cells(n_ctx, req.batch)` cells (`tokens` per stream)."""
        self.check(caches, req)
        cells = context_cells(n_ctx, req.batch, self.kv_unified)
        return group_costs([self._layer(c, req, cells, caches) for c in caches])

    def swa_cells(self, cache: L.FullAttention | L.SlidingWindow | L.ChunkedLocal, req: Request, cells: int) -> int:
        """llama-kv-cache-iswa.cpp:73: GGML_PAD(min(size_base, n_swa * (unified ? n_seq_max : 1) + n_ubatch), 256)."""
        window = ((cache.window or 0) - self.window_offset if cache.window else 0) * (
            req.batch if self.kv_unified else 1
        )
        return swa_cache_cells(cells, window, req.n_ubatch)

    def _layer(
        self, cache: L.Layer, req: Request, cells: int, caches: list[L.Layer] | None = None
    ) -> tuple[str, int, Fraction, int | None]:
        streams = 1 if self.kv_unified else req.batch  # llama-kv-cache.cpp:84 n_stream(unified ? 1 : n_seq_max)
        if isinstance(cache, L.KVAttention):
            windowed = self.swa and cache.kind in (L.SLIDING, L.CHUNKED)
            size = self.swa_cells(cache, req, cells) if windowed else cells
            # the SWA cache takes type_k / type_v like the base cache (llama-kv-cache-iswa.cpp:102-103 at 0c1e57098:
            # PR #21277, which kept it f16, was reverted by #21332 the next day)
            row = row_bytes(req.kv_dtype, cache.num_kv_heads * cache.head_dim_k) + row_bytes(
                req.kv_dtype, v_values(cache, caches or [cache], self.flash_attn)
            )
            grows = size == cells
            return cache.kind, row * size * streams, Fraction(row) if grows else Fraction(0), size
        if isinstance(cache, L.MlaLatent):
            row = (
                dsa_row_bytes(cache, req.kv_dtype) if cache.sparse else row_bytes(req.kv_dtype, cache.latent_elements())
            )
            return cache.kind, row * cells * streams, Fraction(row), cells
        if isinstance(cache, L.CompressedAttention):
            # one stream per slot whatever -kvu says, each of n_ctx_seq cells (llama-kv-cache-dsv4.cpp:1244 and :1287
            # at 0c1e57098: unified_raw = false, unified_compressed = false)
            parts = dsv4_layer_buffers(cache, req.kv_dtype, cells, req.batch, req.n_ubatch)
            ring_grows = dsv4_ring_cells(cache, cells, req.n_ubatch) == cells
            per_token = Fraction(row_bytes(req.kv_dtype, cache.head_dim)) if ring_grows else Fraction(0)
            if cache.compress_ratio:  # one compressed row (and, on CSA layers, one indexer row) per ratio tokens
                row = row_bytes(req.kv_dtype, cache.head_dim) + row_bytes(req.kv_dtype, cache.index_head_dim)
                per_token += Fraction(row, cache.compress_ratio)
            return cache.kind, sum(parts.values()), per_token, cells
        if isinstance(cache, L.IndexKeys):  # MiniMax-M3's indexer cache (LLAMACPP_MINIMAX_M3): K and an unread V row
            k_values, v_values_ = minimax_m3_index_row_values(caches or [cache])
            row = row_bytes(req.kv_dtype, k_values) + row_bytes(req.kv_dtype, v_values_)
            return cache.kind, row * cells * streams, Fraction(row), cells
        if isinstance(cache, L.RecurrentState):
            state = rs_state_bytes(cache)  # r and s in float32, no TP (llama-memory-recurrent.cpp:101-103)
            # one state per sequence, unified or not (llama-model.cpp create_memory: max(1, n_seq_max))
            return cache.kind, state * max(1, req.batch), Fraction(0), None
        return cache.kind, 0, Fraction(0), None


def model_args(shape: ModelShape) -> dict:
    """What `LlamaCppEngine` reads from a shape beyond its model_type: the config's architectures (which name
    llama.cpp's converter takes) and features (MiniMax-M3's sparse layers, MiMo-V2-Flash's window keys)."""
    return {"architectures": shape.architectures, "features": shape.features}


def cache_type_flags(kv_dtype: str) -> str:
    """`--cache-type-k/-v` (and `-fa on`, which a quantized V needs) for a KV dtype; "" for the f16 default."""
    name = GGML_NAMES.get(kv_dtype)
    if name is None or name == "f16":
        return ""
    flags = f" --cache-type-k {name} --cache-type-v {name}"
    return flags + (" -fa on" if kv_dtype in GGML_BLOCK_TYPES else "")


# ------------------------------------------------------------------------------------ serving (the KV budget)
#
# Per device: memory - weights (the GGUF: pass `weights_bytes` for a quantized file) - compute buffer
# (n_ubatch x (n_vocab + n_embd) x 4 B: the f32 logits and hidden state of the worst-case micro-batch; this
# reproduces logged CUDA compute buffers exactly: Qwen2.5-Coder-7B 304.00 MiB, gpt-oss-20b 398.38 MiB, at
# n_ubatch 512) - the 1024 MiB `--fit` keeps free per device (llama.cpp PR #16653). The KV fit gives n_ctx and
# `-np`: `-c` is the total context of all slots. No tensor parallelism: `--pp N` splits layers over N GPUs.

FIT_MARGIN = 1024 * 2**20  # --fit target margin per device (PR #16653)

# DeepSeek-V4's compute buffer grows with the context (its lightning indexer and compressed attention score every
# compressed row of the micro-batch: about 65.5 GiB at 1M context and -ub 512 on a DeepSeek-V4-Flash GGUF,
# unslothai/unsloth PR #6940, llama.cpp issue #27680), which the n_ubatch x (n_vocab + n_embd) term below does not
# hold: planning a deployment on it would promise context that does not fit. Its KV cache is sized (estimate).
DSV4_COMPUTE_WHY = (
    "kvplan's llama.cpp budget does not size DeepSeek-V4's compute buffer, which grows with the context "
    "(about 65.5 GiB at 1M context and -ub 512, unsloth PR #6940), so it cannot say what fits"
)
# The DSA lightning indexer scores every cached cell for each token of the micro-batch: an f32 [n_kv, n_ubatch] per
# indexer head before the head sum on the unfused path (src/models/deepseek32.cpp:290-310: 64 heads on DeepSeek-V3.2,
# 32 GiB at n_kv 262144 and -ub 512), [n_kv, n_ubatch] on the fused one (:280); neither is in the term below. A public
# GLM-5.2 llama-server log at -c 32768 -ub 512, fused indexer on (dfch/biz.dfch.LlmOps@835f2ed, .specmgr/feat/
# feat-2-glm-5.2-onprem-deployment/bin/logs/2026-08-19T220559Z-kv-ctx32768.log) reserves 3712.07 MiB of compute buffer
# on the device holding 55 of its layers, where n_ubatch x (n_vocab + n_embd) x 4 B is 314.50 MiB.
DSA_COMPUTE_WHY = (
    "kvplan's llama.cpp budget does not size the DSA lightning indexer's score buffers, which grow with the context "
    "(f32 n_kv x n_ubatch per indexer head unfused, src/models/deepseek32.cpp:290), so it cannot say what fits"
)
DSV4_COMPUTE_HINT = "`kvplan estimate` sizes its llama.cpp KV cache; plan a deployment with {engine} vllm or sglang"


# MiniMax-M3's MSA graph (models/minimax-m3.cpp at 0c1e57098) holds tensors over every cached position for each
# micro-batch: a position mask of n_ps x n_tokens F32 (:282, n_ps the positions in the cache padded to whole blocks,
# :273) and, in prefill, block scores of n_ps x Hd x n_tps F32 per stream (:476-480): about 8 GiB at 1M positions,
# 4 index heads and -ub 512. The n_ubatch x (n_vocab + n_embd) term does not hold them.
M3_COMPUTE_WHY = (
    "kvplan's llama.cpp budget does not size MiniMax-M3's MSA compute buffer, which grows with the context (a "
    "positions x n_ubatch F32 mask and positions x index heads x n_ubatch F32 block scores, models/minimax-m3.cpp:282, "
    ":476-480), so it cannot say what fits"
)


def compute_buffer_bytes(config: dict, shape: ModelShape, n_ubatch: int) -> int:
    """The compute buffer llama.cpp reserves on the GPU holding the output layer: f32 logits and hidden state of
    one worst-case micro-batch, n_ubatch x (n_vocab + n_embd) x 4 bytes."""
    return n_ubatch * (vocab_size(config) + shape.hidden_size) * 4


class LlamaCppServing(ServingModel):
    options = frozenset({UBATCH})
    reserves_seqs = True  # `-c` is the total context of the `-np` slots, allocated at start (module docstring)
    searches_tp = False
    summary = "llamacpp (alias llama.cpp: memory - GGUF weights - compute buffer - 1 GiB --fit margin -> -c and -np)"

    def parallel(self, tp: int | None, pp: int, gpus: int) -> tuple[int | None, int]:
        if tp not in (None, 1):
            raise UsageError(
                "llama.cpp has no tensor parallelism: it splits whole layers across GPUs",
                hint=Text("use {pp} N for a layer split over N GPUs"),
                field="tp",
            )
        return 1, (pp if pp > 1 else gpus)

    def budget(self, b: BudgetInputs) -> tuple[list[BudgetTerm], int]:
        if any(isinstance(c, L.CompressedAttention) for c in b.shape.caches()):
            raise UsageError(DSV4_COMPUTE_WHY, hint=Text(DSV4_COMPUTE_HINT), field="engine")
        if any(isinstance(c, L.MlaLatent) and c.sparse for c in b.shape.caches()):
            raise UsageError(DSA_COMPUTE_WHY, hint=Text(DSV4_COMPUTE_HINT), field="engine")
        if any(isinstance(c, L.IndexKeys) for c in b.shape.caches()):
            raise UsageError(M3_COMPUTE_WHY, hint=Text(DSV4_COMPUTE_HINT), field="engine")
        terms = [
            BudgetTerm("total", b.profile.memory_bytes, f"{b.profile.id} memory"),
            BudgetTerm("weights", -b.weights_per_gpu, f"GGUF weights / {b.pp} GPU(s) (layer split)"),
            BudgetTerm(
                "compute_buffer",
                -compute_buffer_bytes(b.config, b.shape, b.n_ubatch),
                f"n_ubatch {b.n_ubatch} x (n_vocab + n_embd) x 4 B (f32 logits + hidden; matches logged "
                "CUDA compute buffers exactly)",
            ),
            BudgetTerm(
                "fit_margin",
                -FIT_MARGIN,
                "llama.cpp --fit keeps 1024 MiB free per device (PR #16653); the CUDA context is not modelled",
            ),
        ]
        return terms, sum(t.bytes for t in terms)

    def token_block(self, block_size: int | None) -> int:
        return CTX_PAD  # n_ctx is padded to 256 cells

    def fp8_alternative(self, kv_dtype: str, profile: object) -> tuple[str, str] | None:
        """llama.cpp has no fp8 cache: q8_0 is its 8-bit type."""
        return None if kv_dtype in GGML_BLOCK_TYPES else ("q8_0", "q8_0")

    def reported_batched_tokens(self, max_num_batched_tokens: int, n_ubatch: int) -> int:
        return n_ubatch

    def slot_notes(self, slots: int) -> list[str]:
        return [slot_note(slots)]

    def notes(self, model_dtype: str, weights_source: str | None) -> list[str]:
        if weights_source in ("--weights-bytes", "gguf"):  # the file's own size, or its tensors' stored bytes
            return []
        return [
            Text(
                "weights counted at {d}; a quantized GGUF is smaller: pass {weights_bytes} with its file size",
                d=short_dtype(model_dtype),
            )
        ]

    def command(self, f: FlagInputs) -> str:
        # -c is the total context of the -np slots; it has no fp8 cache (q8_0 is its 8-bit type)
        name = f.model.split("/")[-1]
        name += "" if name.lower().endswith(".gguf") else ".gguf"  # a plan read from a .gguf names the file
        line = f"llama-server -m {name} -c {f.max_model_len * f.full_length_seqs} -np {f.full_length_seqs} -ngl 99"
        if f.planned or f.kv_dtype in GGML_BLOCK_TYPES:
            line += cache_type_flags(f.kv_dtype)
        elif DTYPE_BYTES.get(f.kv_dtype) == 1:  # another engine's 8-bit plan: llama.cpp's 8-bit type is q8_0
            line += cache_type_flags("q8_0") + "  # no fp8/int8 KV cache in llama.cpp: q8_0 (8.5 bits a value)"
        elif f.kv_dtype not in ("float16", "bfloat16", "float32"):
            line += f"  # llama.cpp has no {short_dtype(f.kv_dtype)} KV cache (--cache-type-k: f32, f16, bf16, q8_0, q4_0, q4_1, iq4_nl, q5_0, q5_1)"
        if f.n_ubatch != DEFAULT_UBATCH:
            line += f" -ub {f.n_ubatch} -b {max(f.n_ubatch, 2048)}"
        if f.pp > 1 and f.planned:
            line += " --split-mode layer"
        return line


def _cache_bytes(engine: LlamaCppEngine, caches: list[L.Layer], req: Request, n_ctx: int) -> int:
    return sum(c.bytes for c in engine.context_costs(caches, req, n_ctx))


def slot_note(slots: int) -> str:
    """How llama-server runs the `-np` a plan prints: separate streams, and what an absent -np would be instead."""
    return (
        f"llama-server: -np {slots} given, so kv_unified stays off and each slot is its own stream of "
        f"-c / {slots} cells; without -np it runs {SERVER_AUTO_SLOTS} slots sharing one unified stream of -c cells "
        "that any slot may fill (tools/server/server.cpp:156-160)"
    )


def estimate_notes(storage: LlamaCppEngine, shape: ModelShape, req: Request, kinds: frozenset) -> tuple[str, ...]:
    seq_len, batch = req.seq_len, req.batch
    v4 = [c for c in shape.caches() if isinstance(c, L.CompressedAttention)]
    if storage.kv_unified and v4:  # llama-kv-cache-dsv4.cpp:1244, :1287: its caches are never unified
        notes = [
            f"llama.cpp: -c {seq_len * batch} -np {batch} -kvu gives each of the {batch} slots its own DeepSeek-V4 "
            f"stream of {context_cells(seq_len * batch, batch, unified=True)} cells, all of -c (n_ctx padded to 256; "
            "llama-kv-cache-dsv4.cpp:1244 and :1287 keep these caches per slot whatever -kvu says)"
        ]
    elif storage.kv_unified:
        notes = [
            f"llama.cpp: -c {seq_len * batch} -np {batch} -kvu gives one stream of "
            f"{context_cells(seq_len * batch, batch, unified=True)} cells that each of the {batch} slots may fill "
            "(n_ctx padded to 256)"
        ]
    else:
        notes = [
            f"llama.cpp: -c {seq_len * batch} -np {batch} gives {cells_per_stream(seq_len, batch)} cells per slot "
            "(n_ctx padded to 256)"
        ]
    caches = shape.caches()
    if not storage.kv_unified:  # what the same -c gives when llama-server picks its slots itself
        n_ctx = seq_len * batch
        slots, unified = server_slots()  # llama-server's own choice without -np
        auto = LlamaCppEngine(shape.model_type, kv_unified=unified, flash_attn=storage.flash_attn, **model_args(shape))
        auto_req = replace(req, batch=slots)
        how = (
            f"{slots} slots, each its own DeepSeek-V4 stream of {context_cells(n_ctx, slots, unified)} cells (these "
            "caches are never unified, llama-kv-cache-dsv4.cpp:1244, :1287)"
            if v4
            else f"{slots} slots in one unified stream of {context_cells(n_ctx, slots, unified)} cells, each slot up "
            "to all of them"
        )
        notes.append(
            f"llama-server -c {n_ctx} without -np: {how} "
            f"({format_bytes(_cache_bytes(auto, caches, auto_req, n_ctx))} of KV; server.cpp:156-160)"
        )
    if storage.flash_attn != "off" and req.kv_dtype not in GGML_BLOCK_TYPES:
        off = LlamaCppEngine(shape.model_type, kv_unified=storage.kv_unified, flash_attn="off", **model_args(shape))
        here, padded = (
            _cache_bytes(storage, caches, req, seq_len * batch),
            _cache_bytes(off, caches, req, seq_len * batch),
        )
        if padded != here:
            notes.append(f"-fa off: {format_bytes(padded)} of KV instead of {format_bytes(here)}: {V_PADDING_WHY}")
    if v4:
        cells = context_cells(seq_len * batch, batch, storage.kv_unified)
        buffers = dsv4_buffers(v4, req, cells)
        states = sum(b for name, b in buffers.items() if name.endswith("_state"))
        notes.append(
            f"llama.cpp DeepSeek-V4 (llama-kv-cache-dsv4.cpp): per slot a {dsv4_ring_cells(v4[0], cells, req.n_ubatch)}"
            f"-cell raw K ring on {len(v4)} layers (n_swa + n_ubatch {req.n_ubatch}, padded to 256), "
            f"{dsv4_compressed_cells(cells, DSV4_CSA_RATIO)} CSA + indexer K cells, "
            f"{dsv4_compressed_cells(cells, DSV4_HCA_RATIO)} HCA cells and {states / batch / 2**20:,.2f} MiB of F32 "
            "compressor state; an MTP draft (--spec-type draft-mtp) adds its own cache and state planes, not counted"
        )
    dsa = dsa_note(
        caches, req, context_cells(seq_len * batch, batch, storage.kv_unified), 1 if storage.kv_unified else batch
    )
    notes += [dsa] if dsa else []
    index_layers = sum(1 for layer in shape.layers if any(isinstance(c, L.IndexKeys) for c in layer))
    if index_layers:
        k_values, v_values_ = minimax_m3_index_row_values(caches)
        notes.append(
            f"llama.cpp MiniMax-M3 (llama_kv_cache_msa): beside the GQA K/V of every layer, an indexer cache on the "
            f"{index_layers} layers after the leading dense ones, each cell one head of {k_values} K and {v_values_} V "
            "values in the -ctk / -ctv type (the V row is allocated though the indexer keeps keys: "
            "llama-kv-cache-msa.cpp:40-49, llama-kv-cache.cpp:231)"
        )
    if not storage.swa and any(c.kind in (L.SLIDING, L.CHUNKED) for c in shape.caches()):
        notes.append(f"llama.cpp has no sliding-window cache for {shape.model_type}: every token is cached")
    linear = linear_attention_note(shape, req)
    notes += [linear] if linear else []
    return tuple(notes)


def llamacpp_storage(shape: ModelShape, options: Mapping[str, Any]) -> LlamaCppEngine:
    """The storage model for a shape, after the shape-level rules of llama.cpp's loaders (kda_lightning_rules)."""
    kda_lightning_rules(shape)
    return LlamaCppEngine(shape.model_type, dsa_refusal=dsa_refusal(shape), **options, **model_args(shape))


ENTRY = EngineEntry(
    name="llamacpp",
    aliases=("llama.cpp", "llama-cpp", "llama_cpp"),
    display="llama.cpp",
    flag_key="llama.cpp",
    storage=lambda shape: llamacpp_storage(shape, {}),
    storage_options=frozenset({"flash_attn", "kv_unified"}),
    configured_storage=lambda shape, options: llamacpp_storage(shape, options),
    serving=LlamaCppServing(),
    plannable=True,
    kv_auto="float16",  # --cache-type-k default, whatever the model dtype
    kv_ggml=True,
    estimate_help="llamacpp (alias llama.cpp; --batch = -np slots, --seq-len = tokens per slot)",
    estimate_notes=estimate_notes,
)
