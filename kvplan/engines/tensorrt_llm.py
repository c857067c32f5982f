"""How TensorRT-LLM's paged KV cache stores a model (`KvCacheConfig`, kvplan notes "TensorRT-LLM").

- Pages of `tokens_per_block` tokens (default 32, `KvCacheConfig.tokens_per_block`); one request of L tokens
  holds cdiv(L, tokens_per_block) pages in every attention layer.
- Per layer and token on one TP rank: K and V of `max(1, kv_heads / tp)` heads (trtllm-bench's
  `2 x layers x max(tp, kv_heads) x head_size` over all ranks), in the KV dtype: fp16/bf16 2 bytes,
  fp8/int8 1 byte, nvfp4 half a byte plus one fp8 scale per 16 values. MLA models store the latent
  (kv_lora_rank + qk_rope_head_dim), replicated on each rank.
- Sparse-attention (DSA) MLA models (DeepSeek V3.2, GLM-5.x; registered as DeepseekV32ForCausalLM and
  GlmMoeDsaForCausalLM, tensorrt_llm/_torch/models/_arch_index.py:44 and :59 at NVIDIA/TensorRT-LLM 065ff9e9) go
  through DSACacheManager, whose `get_cache_size_per_token` is what a memory budget is divided by
  (tensorrt_llm/_torch/attention_backend/sparse/dsa/cache_manager.py at 0bbb76d2, lines below): the latent
  kv_lora_rank + qk_rope_head_dim in 2 bytes, 1 with an fp8 KV cache (:284-290, :299-301), on every local layer,
  plus the indexer K cache of every local layer that runs its own indexer ("full"; :303-317, decided by
  `DeepSeekSparseAttentionConfig._is_full_indexer_layer` in llmapi/llm_args.py: index_topk_pattern, else
  index_topk_freq / index_skip_topk_offset with defaults 1 and 2, kvplan's `indexer_layers` rule):
  index_head_dim fp8 bytes + one fp32 scale per 128 values (:319-327), raw uint8 whatever the KV dtype: 132 bytes
  for index_head_dim 128. kvplan follows the default `indexer_k_dtype` "fp8" (DeepSeekSparseAttentionConfig;
  dsa/params.py:50 at 36449222; "fp4", which no kvplan option selects, would halve the data bytes and keep the
  scale: 64 + 4 = 68 bytes, :36-37), which is also what tensorrt_llm/_torch/
  model_config.py `ModelConfig.from_pretrained` sets when it builds the DSA config itself for a
  DeepseekV32ForCausalLM or GlmMoeDsaForCausalLM checkpoint given none and the default latent layout (the
  `fp8_ds_mla` KV dtype, :295-298, is not planned). The estimate counts 2 bytes for every KV dtype but fp8, while
  the pool is allocated in the KV dtype (`get_cache_bytes_per_token`), so kvplan sizes DSA with a 16-bit or fp8
  cache only and refuses the others. No DSA-specific tokens_per_block rule is applied (only `fp8_ds_mla` pins one,
  `_resolve_fp8_ds_mla_head_dim`).
- DeepSeek-V4 (DeepseekV4ForCausalLM) goes through DeepseekV4CacheManager (NVIDIA/TensorRT-LLM 2ccfca94,
  the "DeepSeek-V4" block below): tokens_per_block 128 or 256 only (the default 32 is refused), a BF16 or FP8
  latent (fp8_ds_mla's 584-byte footer layout on Hopper, which requires it), compressed entries per 4 (CSA, with
  fp4 indexer keys from SM100, fp8 below) or 128 tokens (HCA), and per request the sliding windows of the latent
  and of the fp32 compressor rows in whole blocks.
- Sliding windows only shrink the cache when `max_attention_window` is configured (VSWA pools); kvplan
  follows the default, which caches every token. Mamba states: one per sequence, in the model dtype (a Mamba2
  SSM state in the config's `mamba_ssm_cache_dtype` where it names one: Nemotron-H's float32). Kimi's KDA layers
  (Kimi K3: KimiK3ForConditionalGeneration / KimiLinearForCausalLM, _arch_index.py:66-67 at 065ff9e9): one state
  per sequence on the mamba side of the hybrid manager, the short convolution's W - 1 columns in the model dtype
  and a float32 heads x head_dim x head_dim recurrent state, both split over TP (`kda_state_bytes`, read at
  00679c66); no pipeline parallelism.
- Speculative decoding: MTP's layers (the checkpoint's num_nextn_predict_layers, appended to the target's cache
  manager) are sized like the target's last layer and their weights counted (`trtllm_speculative`); other
  methods leave the drafter out and say so.
- TRT-LLM logs the token count before rounding up to whole blocks ("Allocated 4.53 GiB for max tokens in paged
  KV cache (395776)", TensorRT-LLM #1188; checked in tests/test_calibration.py).

Below the storage model: its serving model (TensorRtLlmServing: free_gpu_memory_fraction of the memory left
after loading, `trtllm-serve` flags) and its registry entry (ENTRY).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from fractions import Fraction

from kvplan.core import specs as L
from kvplan.core.config import vocab_size
from kvplan.core.lora import decoder_modules
from kvplan.core.shapes import ModelShape
from kvplan.core.units import DTYPE_BYTES, cdiv, format_bytes, fp8_block_scaled_bytes, short_dtype
from kvplan.engines.base import (
    KindCost,
    Request,
    Speculative,
    group_costs,
    kv_heads_per_rank,
)
from kvplan.engines.entry import EngineEntry
from kvplan.engines.serving import (
    BLOCK_SIZE,
    GPU_MEMORY_UTILIZATION,
    BudgetInputs,
    BudgetTerm,
    FlagInputs,
    LoraSettings,
    ServingModel,
    SpeculativeInputs,
)
from kvplan.engines.sizing import gpu_kv, pipeline_costs
from kvplan.errors import Text, UsageError

DEFAULT_TOKENS_PER_BLOCK = 32
FREE_GPU_MEMORY_FRACTION = 0.9  # KvCacheConfig.free_gpu_memory_fraction default


# The NVIDIA/TensorRT-LLM source read for the rules below (each file at the commit the code index holds for it).
TRTLLM_ARCH_INDEX = "tensorrt_llm/_torch/models/_arch_index.py"  # at 065ff9e9; MODEL_ARCH_TO_MODULE from :36
TRTLLM_DSA_CACHE = "tensorrt_llm/_torch/attention_backend/sparse/dsa/cache_manager.py"  # at 0bbb76d2

# MODEL_ARCH_TO_MODULE's MiniMax-M3 entries (_arch_index.py:77-78): AutoModelForCausalLM resolves
# `architectures[0]` as the config writes it (models/modeling_auto.py `_resolve_class`), so a config naming
# MiniMaxM3ForCausalLM finds no model class (modeling_minimaxm3.py's class of that name is registered as
# `@register_auto_model("MiniMaxM3SparseForCausalLM")`).
TRTLLM_MINIMAX_M3 = ("MiniMaxM3SparseForCausalLM", "MiniMaxM3SparseForConditionalGeneration")

# What one DSA layer's indexer K cache holds per token (dsa/cache_manager.py:32-38, :319-327): index_head_dim fp8
# bytes and a 4-byte scale per INDEXER_QUANT_BLOCK values (quant_block_size 128, :152 and :275).
INDEXER_QUANT_BLOCK = 128

# KV dtypes DSACacheManager.get_cache_size_per_token prices as the pool stores them (:284-287: 1 byte with an fp8
# KV cache, else 2).
DSA_KV_DTYPES = ("float16", "bfloat16", "fp8_e4m3")


def dsa_indexer_bytes(index_head_dim: int) -> int:
    """Bytes of one token in one full-indexer layer's indexer K cache (indexer_k_dtype "fp8")."""
    return fp8_block_scaled_bytes(index_head_dim, INDEXER_QUANT_BLOCK)


# ------------------------------------------------------------------------------------ Kimi's KDA state
#
# Read at ONE commit, NVIDIA/TensorRT-LLM 00679c66 (tensorrt_llm/_torch/...; lines below): KDA layers go on the
# mamba side of the hybrid cache manager as a Mamba-shaped state (pyexecutor/config_utils.py:570-585
# `extract_mamba_kv_cache_params`): state_size = head_dim, conv_kernel = short_conv_kernel_size, num_heads =
# n_groups = num_heads, so conv_dim = head_dim x heads + 2 x heads x head_dim = 3 x heads x head_dim (:573-574)
# and the recurrent state heads x head_dim x head_dim (:575-576); the pool keeps W - 1 columns of the
# short convolution ("The pool stores the W - 1 raw inputs", :577-578; `get_states_bytes_per_layer` :527 counts
# conv_kernel - 1). The conv state is in the checkpoint dtype (:524 `conv_dtype = self.dtype`, :625
# `resolve_hf_torch_dtype(config) or torch.bfloat16`), the recurrent state always float32 (:605-613: any other
# mamba_ssm_cache_dtype is overridden). Both are split over TP unless attention DP is on (:519-522; the Kimi
# route of pyexecutor/_util.py `_create_kv_cache_manager` passes the params "through unscaled"; the manager:
# MixedMambaHybridCacheManager without block reuse when V2 is not selected, _util.py:191-199, V2 under "auto" for
# the hybrids it supports, :136-137; the per-layer state is the same figure). kvplan counts one
# state per sequence of the request, as for the other Mamba hybrids; the fixed cost of max_batch_size state slots
# inside the KV budget is stated, not subtracted ("fixed per-sequence costs", in the serving part below). The MLA layers go on the paged side as DeepSeek's (num_kv_heads 1, head_dim kv_lora_rank +
# qk_rope_head_dim, SELFKONLY; the same `_create_kv_cache_manager` route): kvplan's MLA latent rule.
TRTLLM_PIN = "00679c66"  # the one commit the KDA, MTP and hybrid-cost rules below were read at
TRTLLM_CONFIG_UTILS = "tensorrt_llm/_torch/pyexecutor/config_utils.py"
TRTLLM_KIMI_MODEL = "tensorrt_llm/_torch/models/modeling_kimi_linear.py"
KDA_STATE_DTYPE = "float32"  # config_utils.py:605-613 at 00679c66


def kda_state_bytes(cache: L.RecurrentState, req: Request) -> int:
    """One request's KDA state on one TP rank: 3 x heads x head_dim / tp conv channels x (W - 1) columns in the
    model dtype plus heads / tp x head_dim x head_dim float32 (MambaKVCacheParams.get_states_bytes_per_layer,
    config_utils.py:517-531 at 00679c66). Kimi K3 (96 heads of 128, W 4, bf16) at TP 1: 3 x 96 x 128 x 3 x 2 =
    221,184 B + 96 x 128 x 128 x 4 = 6,291,456 B = 6,512,640 B a layer."""
    conv = DTYPE_BYTES[req.model_dtype]
    return int(cache.state_bytes(conv, DTYPE_BYTES[KDA_STATE_DTYPE], columns=cache.conv_kernel - 1, tp=req.tp))


def check_kda(caches: list[L.Layer], req: Request) -> None:
    """TensorRT-LLM's Kimi model (modeling_kimi_linear.py at 00679c66) runs without pipeline parallelism and
    without a draft-head speculative mode: its docstring's "Not supported: pipeline parallelism, draft-head
    spec-dec modes (MTP/Eagle — no draft-head checkpoint exists)" (:75-76)."""
    if not any(isinstance(c, L.RecurrentState) and c.family == "kda" for c in caches):
        return
    if req.pp > 1:
        raise UsageError(
            f"TensorRT-LLM's Kimi model does not support pipeline parallelism (\"Not supported: pipeline "
            f'parallelism", {TRTLLM_KIMI_MODEL}:75 at {TRTLLM_PIN}), so kvplan does not size it at PP {req.pp}',
            hint=Text("use {pp} 1 with {engine} tensorrt-llm for this model"),
            field="pp",
        )


# ------------------------------------------------------------------------------------ DeepSeek-V4 (DeepseekV4CacheManager)
#
# TensorRT-LLM registers DeepseekV4ForCausalLM (_arch_index.py:46 at 065ff9e9, modeling_deepseekv4) and stores it
# through DeepseekV4CacheManager, a KVCacheManagerV2 read at
# NVIDIA/TensorRT-LLM 2ccfca94 (TRTLLM_DSV4_CACHE below), with its cache roles in TRTLLM_DSV4_PARAMS at 50aec1cb, the
# fp8_ds_mla token in footer_scale_kv.py at d77955c5 and the config defaults in tensorrt_llm/llmapi/llm_args.py at
# 00043967 (DeepSeekV4SparseAttentionConfig); each file at the commit the code index holds for it (the repository,
# 2.5 GB, could not be fetched). Every layer has a sliding window (SWA) of the latent; a CSA layer (compress
# ratio 4) adds a compressed entry per 4 tokens (COMPRESS) and its indexer key (INDEXER_COMPRESS), an HCA layer
# (ratio 128) a compressed entry per 128 tokens; both keep their compressors' fp32 KV and score rows in windows
# of state_factor x ratio tokens (COMPRESSOR_*, INDEXER_COMPRESSOR_*; state_factor 2 on the overlapping ratio-4
# compressor). What TensorRT-LLM sizes its pool with and admits a request by is
# `get_cache_size_per_token` / `_get_cache_bytes_for_tokens(context=False)`: tokens x the compressed roles'
# bytes per token (each role's token bytes // ratio) plus, per request, every sliding role's window rounded up to
# whole blocks x its token bytes. kvplan counts that, with the request's tokens in whole blocks (pages are whole).
# The latent is one vector (num_kv_heads 1, asserted) held whole on every TP rank.

TRTLLM_DSV4_CACHE = "tensorrt_llm/_torch/attention/backends/sparse/deepseek_v4/cache_manager.py"  # at 2ccfca94
TRTLLM_DSV4_PARAMS = "tensorrt_llm/_torch/attention/backends/sparse/deepseek_v4/params.py"  # at 50aec1cb
DSV4_TOKENS_PER_BLOCK = (128, 256)  # cache_manager.py:309-312, asserted in DeepseekV4CacheManager.__init__
DSV4_WINDOW = 128  # DeepSeekV4SparseAttentionConfig.window_size default, asserted by deepseek_v4/metadata.py
DSV4_FOOTER_TOKEN_BYTES = 584  # footer_scale_kv.py:30-36: 448 fp8 + 64 bf16 RoPE values + 7 UE8M0 scales + 1 pad
DSV4_STATE_BYTES = 4  # the compressor KV and score rows in float32 (cache_manager.py:112-118)
DSV4_KV_DTYPES = ("bfloat16", "fp8_e4m3")  # `assert dtype in [DataType.BF16, DataType.FP8]` (:302-304)
DSV4_FOLLOWS = (
    "TensorRT-LLM DeepseekV4CacheManager at 2ccfca94 (get_cache_size_per_token: compressed entries per token plus "
    "each request's sliding-window blocks; indexer keys fp4 on SM100 and up or with no GPU given, fp8 below)"
)


@dataclass(frozen=True)
class Dsv4Layout:
    """How DeepseekV4CacheManager lays out one DeepSeek-V4 deployment: the bytes of one latent token (SWA and
    COMPRESS rows: head_dim x 2 in bf16, x 1 in fp8, 584 in the fp8_ds_mla footer-scale layout), the indexer K
    dtype ("fp4" or "fp8") and tokens_per_block."""

    latent_bytes: int
    indexer_k_dtype: str
    tokens_per_block: int


def dsv4_indexer_bytes(index_head_dim: int, indexer_k_dtype: str) -> int:
    """One INDEXER_COMPRESS entry (get_token_bytes, cache_manager.py:124-127): fp8, index_head_dim bytes + an fp32
    scale per 128 values (132 for 128); fp4, two E2M1 codes a byte + one UE8M0 byte per 32 values (68)."""
    if indexer_k_dtype == "fp8":
        return fp8_block_scaled_bytes(index_head_dim)
    return index_head_dim // 2 + index_head_dim // 32


def dsv4_layer_bytes(cache: L.CompressedAttention, layout: Dsv4Layout) -> tuple[int, int]:
    """(bytes per token, bytes per request) of one DeepSeek-V4 layer in DeepseekV4CacheManager: the COMPRESS and
    INDEXER_COMPRESS entries divided by the ratio (`_get_attn_bytes_per_token`, :215-235; the non-sliding roles of
    params.py:47-50) and the sliding roles' windows in whole blocks x their token bytes (`_estimate_swa_cache_size`
    with context=False, :159-211: SWA over window_size, the compressor rows over state_factor x ratio)."""
    ratio = cache.compress_ratio or 1  # the LLM API normalises the checkpoint's 0 to 1 (SWA only)
    block = layout.tokens_per_block
    rows = [(DSV4_WINDOW, layout.latent_bytes)]  # SWA
    per_token = 0
    if ratio > 1:  # is_compress_layer (params.py:61-62): COMPRESS and COMPRESSOR_KV / _SCORE
        state_factor = 2 if ratio == 4 else 1  # is_overlap_compressor (params.py:14, :53-54)
        per_token += layout.latent_bytes // ratio
        rows += [(state_factor * ratio, state_factor * cache.head_dim * DSV4_STATE_BYTES)] * 2
        if ratio == 4:  # is_sparse_layer (params.py:13): INDEXER_COMPRESS and INDEXER_COMPRESSOR_KV / _SCORE
            per_token += dsv4_indexer_bytes(cache.index_head_dim, layout.indexer_k_dtype) // ratio
            rows += [(state_factor * ratio, state_factor * cache.index_head_dim * DSV4_STATE_BYTES)] * 2
    return per_token, sum(cdiv(window, block) * block * row for window, row in rows)


def _dsv4_at(lines: str) -> str:
    return f"{TRTLLM_DSV4_CACHE}:{lines} at 2ccfca94"


def dsv4_layout(caches: list[L.Layer], req: Request) -> Dsv4Layout:
    """The layout TensorRT-LLM would run this DeepSeek-V4 request in, or a refusal naming the rule it breaks."""
    v4 = [c for c in caches if isinstance(c, L.CompressedAttention)]
    if req.block_size not in DSV4_TOKENS_PER_BLOCK:
        given = (
            f"tokens_per_block {req.block_size}"
            if req.block_size
            else f"the default tokens_per_block {DEFAULT_TOKENS_PER_BLOCK} (KvCacheConfig)"
        )
        raise UsageError(
            f"TensorRT-LLM's DeepseekV4CacheManager requires tokens_per_block 128 or 256 ({_dsv4_at('309-312')}) and "
            f"refuses {given}",
            hint=Text("pass {block_size} 128 or 256 (kv_cache_config.tokens_per_block in the YAML given to --config)"),
            field="block_size",
        )
    if req.speculative is not None:
        raise UsageError(
            "kvplan does not size DeepSeek-V4 with speculative decoding on TensorRT-LLM: DeepseekV4CacheManager "
            f"widens every sliding window by max_draft_len and appends max_draft_len - 1 virtual MTP layers "
            f"({_dsv4_at('329-345')}), which kvplan has not modelled",
            hint=Text("leave out {speculative_config} for this model with TensorRT-LLM"),
            field="speculative_config",
        )
    if any(c.window != DSV4_WINDOW for c in v4):
        raise UsageError(
            f"TensorRT-LLM runs DeepSeek-V4 with window_size {DSV4_WINDOW} only (DeepSeekV4SparseAttentionConfig's "
            "default, which DeepseekV4TrtllmAttentionMetadata asserts as the FMHA kernel's TileSizeKV: "
            "attention/backends/sparse/deepseek_v4/metadata.py at 0b03b6af), not this config's "
            f"sliding_window {max(c.window for c in v4)}",
            hint=Text("use {engine} transformers for this config"),
            field="engine",
        )
    if any(c.compress_ratio not in (0, 4, 128) for c in v4):
        raise UsageError(
            f"DeepseekV4CacheManager builds layers of compress ratio 1, 4 and 128 only ({TRTLLM_DSV4_CACHE} at 2ccfca94, _build_cache_config"
            ' raises "Unsupported DeepSeek-V4 compress ratio")',
            hint=Text("use {engine} transformers for this config"),
            field="engine",
        )
    major = int(str(req.compute_capability).split(".")[0]) if req.compute_capability else None
    if req.kv_dtype not in DSV4_KV_DTYPES:
        raise UsageError(
            f"TensorRT-LLM's DeepseekV4CacheManager stores a BF16 or FP8 cache only ({_dsv4_at('302-304')}), not "
            f"{short_dtype(req.kv_dtype)}",
            hint=Text("use {kv_dtype} auto (bf16) or fp8 for this model with TensorRT-LLM"),
            field="kv_dtype",
        )
    if major == 9 and req.kv_dtype != "fp8_e4m3":
        raise UsageError(
            "TensorRT-LLM runs DeepSeek-V4 on Hopper with kv_cache_config.dtype 'fp8_ds_mla' only "
            f"(\"DeepSeek-V4 on Hopper requires kv_cache_config.dtype='fp8_ds_mla'\", {_dsv4_at('314-320')})",
            hint=Text("use {kv_dtype} fp8 (planned as TensorRT-LLM's fp8_ds_mla on Hopper)"),
            field="kv_dtype",
        )
    # The indexer K cache: DeepSeekV4SparseAttentionConfig.indexer_k_dtype defaults to "fp4" and falls back to "fp8"
    # below SM100 (llm_args.py `_validate_indexer_k_dtype`); no GPU given is taken as SM100 and up. fp4 asserts
    # index_head_dim 128, which is also DeepSeekV4SparseAttentionConfig.index_head_dim's default.
    indexer = "fp8" if major is not None and major < 10 else "fp4"
    if any(c.index_head_dim not in (0, 128) for c in v4):
        raise UsageError(
            "TensorRT-LLM's default fp4 indexer keys need index_head_dim 128 (llm_args.py _validate_indexer_k_dtype, "
            "DeepseekV4CacheManager._init_indexer_dtype), DeepSeekV4SparseAttentionConfig's own default, and kvplan "
            "has not read which value it sizes a config with another index_head_dim by",
            hint=Text("use {engine} transformers for this config"),
            field="engine",
        )
    head_dim = v4[0].head_dim if v4 else 0
    if major == 9:  # fp8 on Hopper is the fp8_ds_mla footer-scale layout (get_token_bytes, :95-106)
        if head_dim != 512:
            raise UsageError(
                f"TensorRT-LLM's fp8_ds_mla layout holds a 448 + 64 latent only ({_dsv4_at('101-105')}), not {head_dim}",
                hint=Text("use {engine} transformers for this config"),
                field="engine",
            )
        latent = DSV4_FOOTER_TOKEN_BYTES
    else:
        latent = head_dim * (1 if req.kv_dtype == "fp8_e4m3" else 2)  # dtype_bytes (:110)
    return Dsv4Layout(latent, indexer, int(req.block_size or 0))


def dsv4_costs(caches: list[L.Layer], req: Request) -> list[KindCost]:
    """Per layer kind: the request's tokens in whole blocks x the compressed roles' bytes per token, plus each
    layer's sliding-window blocks (SWA latent and compressor rows), per request."""
    layout = dsv4_layout(caches, req)
    block = layout.tokens_per_block
    tokens = cdiv(req.seq_len, block) * block
    items: list[tuple[str, int, Fraction, int | None]] = []
    for cache in caches:
        if not isinstance(cache, L.CompressedAttention):
            items.append((cache.kind, 0, Fraction(0), None))
            continue
        per_token, per_request = dsv4_layer_bytes(cache, layout)
        kept = tokens if per_token else cdiv(DSV4_WINDOW, block) * block
        items.append((cache.kind, (per_token * tokens + per_request) * req.batch, Fraction(per_token), kept))
    return group_costs(items)


def dsv4_command_comment(f: FlagInputs) -> str:
    """What a DeepSeek-V4 deployment must set in the YAML given to --config (trtllm-serve has no option for it)."""
    if not any(isinstance(c, L.CompressedAttention) for c in f.budget.shape.caches()):
        return ""
    keys = [f"tokens_per_block: {f.fit.block_size}"]
    if f.kv_dtype == "fp8_e4m3":
        hopper = str(f.budget.profile.compute_capability or "").split(".")[0] == "9"
        keys.append(f"dtype: {'fp8_ds_mla' if hopper else 'fp8'}")
    return "DeepSeek-V4: set kv_cache_config {" + ", ".join(keys) + "} in the YAML file given to --config"


class TensorRtLlmEngine:
    name = "tensorrt-llm"
    follows = "TensorRT-LLM KvCacheConfig (tokens_per_block 32, no max_attention_window)"
    draft_on_last_stage = True  # the MTP layers go on the last PP rank (get_pp_layers; see trtllm_speculative)

    def __init__(
        self, architectures: tuple[str, ...] = (), dsa_first_layer_shared: bool = False, deepseek_v4: bool = False
    ) -> None:
        self.architectures = architectures  # the config's: TensorRT-LLM picks the model class by the first
        self.dsa_first_layer_shared = dsa_first_layer_shared  # layer 0 is a DSA layer without its own indexer
        if deepseek_v4:
            self.follows = DSV4_FOLLOWS

    def check(self, caches: list[L.Layer], req: Request) -> None:
        if self.dsa_first_layer_shared:
            raise UsageError(
                "TensorRT-LLM makes DSA layer 0 run its own indexer (\"forcing it to 'full'\", "
                "DeepSeekSparseAttentionConfig._is_full_indexer_layer in llmapi/llm_args.py) where this config "
                "makes it a shared one; kvplan's layer table has no indexer keys there, so it does not size it",
                hint=Text("check index_topk_pattern / index_skip_topk_offset in config.json"),
                field="engine",
            )
        check_kda(caches, req)
        if any(isinstance(c, L.RecurrentState) and c.family == "lightning" for c in caches):
            raise UsageError(
                "kvplan has not read how TensorRT-LLM stores MiniMax-01's lightning-attention state",
                hint=Text("use {engine} vllm, sglang or transformers for this model"),
                field="engine",
            )
        if any(isinstance(c, L.CompressedAttention) for c in caches):
            dsv4_layout(caches, req)  # DeepseekV4CacheManager's rules (the DeepSeek-V4 block above)
            return
        if any(isinstance(c, L.IndexKeys) for c in caches):
            named = self.architectures[0] if self.architectures else "no architecture"
            if named not in TRTLLM_MINIMAX_M3:
                raise UsageError(
                    f"TensorRT-LLM 065ff9e9 does not register {named}: "
                    f"its MiniMax-M3 architectures are {' / '.join(TRTLLM_MINIMAX_M3)} ({TRTLLM_ARCH_INDEX}:77-78 at 065ff9e9)",
                    hint=Text(
                        "use {engine} transformers for this model: it sizes minimax_m3 from transformers' "
                        "real cache tensors"
                    ),
                    field="engine",
                )
            raise UsageError(
                "kvplan's TensorRT-LLM storage model does not size MiniMax-M3's indexer key cache yet: TensorRT-LLM "
                f"registers {named} ({TRTLLM_ARCH_INDEX}:77-78 at 065ff9e9) and stores it through its MiniMax-M3 cache manager "
                "(attention_backend/sparse/minimax_m3/cache_manager.py), which kvplan has not read",
                hint=Text(
                    "use {engine} transformers for this model: it sizes minimax_m3 from transformers' "
                    "real cache tensors"
                ),
                field="engine",
            )
        if req.kv_dtype not in ("float32", "float16", "bfloat16", "fp8_e4m3", "int8", "nvfp4"):
            raise UsageError(
                f"TensorRT-LLM has no {req.kv_dtype} KV cache",
                hint=Text("use {kv_dtype} auto, fp8, int8 or nvfp4"),
                field="kv_dtype",
            )
        if any(isinstance(c, L.MlaLatent) and c.sparse for c in caches) and req.kv_dtype not in DSA_KV_DTYPES:
            raise UsageError(
                f"TensorRT-LLM's DSA cache estimate counts the latent of a {short_dtype(req.kv_dtype)} cache as 2 bytes while "
                f"its pool stores the KV dtype ({TRTLLM_DSA_CACHE}:284-287 at 0bbb76d2, get_cache_size_per_token against "
                "get_cache_bytes_per_token), so kvplan does not size it",
                hint=Text("use {kv_dtype} auto or fp8 for this model with TensorRT-LLM"),
                field="kv_dtype",
            )

    def block_size(self, caches: list[L.Layer], req: Request) -> int:
        return req.block_size or DEFAULT_TOKENS_PER_BLOCK

    def token_bytes(self, cache: L.KVAttention | L.MlaLatent, req: Request) -> int:
        if isinstance(cache, L.MlaLatent):
            latent = int(cache.latent_elements() * DTYPE_BYTES[req.kv_dtype])
            if not cache.sparse:
                return latent
            # DSACacheManager.get_cache_size_per_token: the latent in the KV dtype (:290, :299-301) plus, where the
            # layer runs its own indexer, its K cache in raw uint8 (:303-327); a "shared" layer has none
            return latent + (dsa_indexer_bytes(cache.index_head_dim) if cache.index_head_dim else 0)
        heads = kv_heads_per_rank(cache.num_kv_heads, req.tp)
        if req.kv_dtype == "nvfp4":
            return heads * sum(d // 2 + d // 16 for d in (cache.head_dim_k, cache.head_dim_v))
        return int(cache.bytes_per_token(DTYPE_BYTES[req.kv_dtype], heads))

    def stage_costs(self, caches: list[L.Layer], req: Request) -> list[KindCost]:
        self.check(caches, req)
        if any(isinstance(c, L.CompressedAttention) for c in caches):
            return dsv4_costs(caches, req)
        if req.speculative is not None and req.speculative.draft_caches:
            # MTP: the MTP layers appended to the target's cache manager (trtllm_speculative); under PP the last
            # stage's request alone carries them (draft_on_last_stage)
            caches = [*caches, *req.speculative.draft_caches]
        block = self.block_size(caches, req)
        tokens = cdiv(req.seq_len, block) * block
        items: list[tuple[str, int, Fraction, int | None]] = []
        for cache in caches:
            if isinstance(cache, (L.KVAttention, L.MlaLatent)):
                per_token = self.token_bytes(cache, req)
                items.append((cache.kind, per_token * tokens * req.batch, Fraction(per_token), tokens))
            elif isinstance(cache, L.RecurrentState) and cache.family == "kda":
                items.append((cache.kind, kda_state_bytes(cache, req) * req.batch, Fraction(0), None))
            elif isinstance(cache, L.RecurrentState):
                # conv_kernel - 1 columns in the model dtype; the SSM state in the model dtype, or in a Mamba2
                # model's `mamba_ssm_cache_dtype` (Nemotron-H: tensorrt_llm/_torch/pyexecutor/config_utils.py
                # `resolve_ssm_cache_dtype` reads that field only, not Qwen3.5's `mamba_ssm_dtype`, and
                # `MambaKVCacheParams.get_states_bytes_per_layer` splits conv_dim with no group replication)
                model = DTYPE_BYTES[req.model_dtype]
                ssm = DTYPE_BYTES[cache.ssm_dtype] if cache.family == "mamba2" and cache.ssm_dtype else model
                state = int(cache.state_bytes(model, ssm, columns=cache.conv_kernel - 1, tp=req.tp))
                items.append((cache.kind, state * req.batch, Fraction(0), None))
            else:
                items.append((cache.kind, 0, Fraction(0), None))
        return group_costs(items)


# ------------------------------------------------------------------------------------ serving (the KV budget)
#
# free_gpu_memory_fraction (0.9) x (memory - weights - runtime buffers), its KvCacheConfig rule. The runtime
# buffers (execution context, runtime buffers, decoder) depend on the engine build and are scaled from the one
# logged build (TensorRT-LLM #1188: 9.18 GiB for Qwen2.5-Coder-0.5B, vocab 151936) by vocab: an approximation,
# printed as such; the CUDA context is not modelled.

# execution context 773.51 MiB + runtime buffers 2.66 GiB + decoder 5.76 GiB for vocab 151936
RUNTIME_BYTES_PER_VOCAB = (773.51 * 2**20 + (2.66 + 5.76) * 2**30) / 151936


def runtime_bytes(config: dict) -> int:
    return int(RUNTIME_BYTES_PER_VOCAB * vocab_size(config))


# ------------------------------------------------------------------------------------ fixed per-sequence costs
#
# How the executor turns free memory into KV capacity (NVIDIA/TensorRT-LLM 00679c66, tensorrt_llm/_torch/pyexecutor/
# _util.py, KvCacheCreator; quoted in tests/engines/test_tensorrt_llm_reserve.py): `_cal_max_memory` applies
# free_gpu_memory_fraction first ("available_kv_mem = (total_gpu_memory - peak_memory + allocated_bytes) *
# fraction"); `configure_kv_cache_capacity` then sets, for a V1 manager, max_tokens = `CacheCost.tokens_for_budget(
# kv_cache_max_memory)` = (budget - intercept) // slope (:359-364), where (slope, intercept) is what the manager's
# `get_cache_size_per_token` returns given `max_batch_size=self._max_batch_size` (`_per_manager_cache_cost`); a
# KVCacheManagerV2 is handed the whole budget as max_gpu_total_bytes and converts it itself. A fixed cost is thus
# taken from the fraction's share, not from the memory before it. The intercepts read: DeepseekV4CacheManager (a V2
# manager, cache_manager.py at 2ccfca94) returns `swa_size_per_request * max_batch_size`; the hybrids' managers "a
# per-batch fixed cost" of mamba state (_util.py:321-322); MixedMambaHybridCacheManager keeps a state pool of
# max_batch_size + 1 slot "shared by every CUDA-graph padding sentinel" (+ 1 under attention DP;
# kv_cache/mamba_cache_manager.py `_get_mamba_hybrid_pool_size` at 003f8d08).
#
# kvplan does NOT subtract it from its token capacity: the code index holds no manager file at 00679c66
# (kv_cache/mamba_cache_manager*.py and deepseek_v4/cache_manager.py are held at other commits only), so which
# manager a model gets (V2 under use_kv_cache_manager_v2 "auto" for the hybrids model loading supports, :136-137;
# a compatibility manager otherwise, e.g. Kimi's Mixed without block reuse and Cpp with it, :191-199) and how the V2 managers turn their quota into
# tokens cannot be read at the commit whose executor is read. `fixed_cost_note` states the figure instead:
# max_batch_size (the --max_batch_size of the plan's trtllm-serve command: --max-num-seqs, else kvplan's default
# cap) x what one sequence holds whatever its length on the fullest GPU (its recurrent states, or DeepSeek-V4's
# sliding-window blocks), and the token capacity that would remain.
TRTLLM_UTIL = "tensorrt_llm/_torch/pyexecutor/_util.py"
TRTLLM_MAMBA_CACHE = "tensorrt_llm/_torch/pyexecutor/kv_cache/mamba_cache_manager.py"  # at 003f8d08


def fixed_sequence_bytes(shape: ModelShape, req: Request) -> int:
    """Bytes one sequence holds on the fullest GPU whatever its length: every kind's bytes less its per-token
    bytes x the tokens it keeps, for one sequence of one token (recurrent states; DeepSeek-V4's per-request
    window blocks; 0 for a model whose caches all grow with the sequence)."""
    one = replace(req, seq_len=1, batch=1)
    stages = pipeline_costs(storage_for(shape), shape, one)
    return max(sum(c.bytes - int(c.bytes_per_token * (c.tokens or 0)) for c in costs) for costs in stages)


def fixed_cost_note(shape: ModelShape, req: Request, max_batch_size: int, available: int) -> str:
    """The note on TensorRT-LLM's fixed per-sequence cost for `max_batch_size` sequences against `available` KV
    bytes per GPU ("" where a sequence holds nothing fixed). See the block above."""
    per_sequence = fixed_sequence_bytes(shape, req)
    if per_sequence <= 0:
        return ""
    fixed = per_sequence * max_batch_size
    est = gpu_kv(storage_for(shape), shape, req)
    block = est.block_size or 1
    per_token = est.bytes_per_token

    def tokens(budget: int) -> int:
        held = int(max(0, budget) // per_token) if per_token else 0
        return held - held % block

    if fixed >= available:
        left = (
            f"it is more than the whole KV budget ({available:,} B): subtracted, no KV tokens would be left, and at "
            f"most {max(0, available) // per_sequence:,} sequences' cost fits it (--max-num-seqs)"
        )
    else:
        left = f"subtracted from the KV budget it would be {tokens(available - fixed):,} tokens"
    if any(isinstance(c, L.CompressedAttention) for c in shape.caches()):
        what = "sliding-window blocks (SWA latent and compressor rows)"
        source = (
            f"DeepseekV4CacheManager.get_cache_size_per_token's intercept swa_size_per_request x max_batch_size, "
            f"{TRTLLM_DSV4_CACHE} at 2ccfca94"
        )
        why = (
            f"DeepseekV4CacheManager is a KVCacheManagerV2 ({_dsv4_at('245')}), which the executor at {TRTLLM_PIN} "
            f"hands the whole budget as max_gpu_total_bytes ({TRTLLM_UTIL} configure_kv_cache_capacity), and how it "
            "turns that quota into tokens was not read at one commit"
        )
    else:
        what = "recurrent states"
        source = (
            f'the hybrid managers\' "per-batch fixed cost" of mamba state ({TRTLLM_UTIL}:321-322 at {TRTLLM_PIN}); '
            f"MixedMambaHybridCacheManager's state pool holds max_batch_size + 1 CUDA-graph padding slot "
            f"({TRTLLM_MAMBA_CACHE} _get_mamba_hybrid_pool_size at 003f8d08)"
        )
        why = (
            "a V1 manager's max_tokens is (budget - intercept) // slope after free_gpu_memory_fraction "
            f"(pyexecutor/_util.py:359-364 CacheCost.tokens_for_budget at {TRTLLM_PIN}), but the code index holds no "
            f'cache-manager file at {TRTLLM_PIN}, so which manager runs (V2 under use_kv_cache_manager_v2 "auto", '
            ":136-137) and its intercept were not read there"
        )
    return (
        f"TensorRT-LLM's cache manager prices max_batch_size sequences' {what} as a fixed cost ({source}): "
        f"{max_batch_size} x {per_sequence:,} B per sequence on the fullest GPU = {fixed:,} B ({format_bytes(fixed)}; "
        f"max_batch_size is the --max_batch_size of the plan's trtllm-serve command). kvplan's KV token capacity "
        f"({tokens(available):,}) does not subtract it; {left}. Not subtracted because {why}"
    )


# ------------------------------------------------------------------------------------ LoRA (the PEFT cache)
#
# TensorRT-LLM keeps LoRA adapters in a paged PEFT cache, one on the GPU and one on the host
# (cpp/tensorrt_llm/batch_manager/peftCacheManager.cpp `getPageManagerConfig` and `getMaxNumSlots`, NVIDIA/
# TensorRT-LLM 9df6d722): a page is `slots_per_page` slots of `page_width` values in the model dtype, where
# page_width is the smallest (local in + local out) of the LoRA modules, a module-layer of rank r takes
# r x ceil(its width / page_width) slots and slots_per_page holds optimalAdapterSize (8, at most the rank) of every
# module of every local layer; the max LoRA size is max_adapter_size (64, at most the rank) x the widths of all
# modules x layers. The PyTorch backend sizes the caches from lora_config (tensorrt_llm/_torch/pyexecutor/_util.py
# create_py_executor_instance): max_loras -> num_device_module_layer = max_lora_rank x num_hidden_layers x
# modules x max_loras, max_cpu_loras -> num_host_module_layer likewise, and totalSlots = module-layers x
# ceil(widest / page_width); without them 2 % of the free GPU memory (device_cache_percent) and 1 GiB of host
# memory (host_cache_size). The slots are rounded up to whole pages, allocated and zeroed at start
# (runtime/loraCache.cpp LoraCachePageManager::initialize). The PEFT cache manager is one of the resources of the
# executor that estimates the KV cache (py_executor_creator.py: create_py_executor_instance, then
# configure_kv_cache_capacity), so the device cache comes out of the free memory the KV fraction applies to.

TRTLLM_LORA_MODULES = {  # lora_target_modules -> the HF module (LoraConfig.trtllm_modules_to_hf_modules default)
    "attn_q": "q_proj",
    "attn_k": "k_proj",
    "attn_v": "v_proj",
    "attn_dense": "o_proj",
    "mlp_h_to_4h": "gate_proj",
    "mlp_gate": "up_proj",
    "mlp_4h_to_h": "down_proj",
}
DEFAULT_MAX_LORA_RANK = 64  # LoraConfig.max_lora_rank (tensorrt_llm/lora_helper.py)
OPTIMAL_ADAPTER_SIZE = 8  # PeftCacheConfig.optimal_adapter_size
MAX_ADAPTER_SIZE = 64  # PeftCacheConfig.max_adapter_size
DEVICE_CACHE_PERCENT = 0.02  # PeftCacheConfig.device_cache_percent (of the free memory after loading)
HOST_CACHE_SIZE = 2**30  # PeftCacheConfig.host_cache_size


@dataclass(frozen=True)
class PeftPages:
    """The page layout of TensorRT-LLM's PEFT cache for one set of LoRA modules (getPageManagerConfig)."""

    page_width: int  # values per slot: the narrowest module's local in + out
    slots_per_page: int
    max_lora_size: int  # "Max LoRA size is N": values of one adapter at max_adapter_size
    slots_per_module_layer: int  # ceil(widest module / page_width): what one num_*_module_layer unit takes

    def pages(self, slots: int) -> int:
        return cdiv(slots, self.slots_per_page)

    def page_bytes(self, dtype_bytes: Fraction) -> int:
        return int(self.slots_per_page * self.page_width * dtype_bytes)

    def adapters(self, slots: int) -> int:
        """ "LoRA ... Cache can hold N max sized LoRAs" for a cache of `slots` slots."""
        return self.pages(slots) * self.slots_per_page * self.page_width // self.max_lora_size


def peft_pages(widths: list[int], local_layers: int, max_lora_rank: int) -> PeftPages:
    """getPageManagerConfig's arithmetic: `widths` are the modules' local (in + out) on one TP rank."""
    optimal, largest = min(OPTIMAL_ADAPTER_SIZE, max_lora_rank), min(MAX_ADAPTER_SIZE, max_lora_rank)
    page_width, widest = min(widths), max(widths)
    per_layer_slots = optimal * sum(cdiv(w, page_width) for w in widths)
    slots_per_page = max(per_layer_slots * local_layers, cdiv(largest * widest, page_width))
    return PeftPages(page_width, slots_per_page, largest * sum(widths) * local_layers, cdiv(widest, page_width))


def _lora_modules(b: BudgetInputs, lora: LoraSettings) -> list:
    modules = decoder_modules(b.config, b.shape)
    targets = lora.target_modules
    if targets is not None and {"q_proj", "k_proj", "v_proj"} & set(targets):
        targets = (*targets, "q_proj", "k_proj", "v_proj")  # LoraConfig.missing_qkv_modules adds the others
    return [m for m in modules if targets is None or m.name in targets]


def peft_cache(b: BudgetInputs, free: int) -> tuple[PeftPages, int, int, str]:
    """(pages, device slots, host slots, source) of the PEFT caches for `b.lora`; `free` is the GPU memory free
    after loading (what device_cache_percent takes 2 % of when max_loras is not given)."""
    lora = b.lora
    assert lora is not None
    modules = _lora_modules(b, lora)
    pages = peft_pages([m.local_in(b.tp) + m.local_out(b.tp) for m in modules], b.layers_on_gpu, lora.max_lora_rank)
    dtype = DTYPE_BYTES[b.dtype]
    module_layers = lora.max_lora_rank * b.shape.num_layers * len(modules)
    slot_bytes = pages.page_width * dtype
    if lora.max_loras:
        device = module_layers * lora.max_loras * pages.slots_per_module_layer
        how = f"max_loras {lora.max_loras}"
    else:
        device = int(DEVICE_CACHE_PERCENT * max(0, free) / slot_bytes)
        how = f"device_cache_percent {DEVICE_CACHE_PERCENT} of the free memory"
    if lora.max_cpu_loras:
        host = module_layers * lora.max_cpu_loras * pages.slots_per_module_layer
    else:
        host = int(HOST_CACHE_SIZE // slot_bytes)
    source = (
        f"PEFT device cache ({how}): {pages.pages(device)} pages x {pages.slots_per_page} slots x "
        f"{pages.page_width} values in {short_dtype(b.dtype)}, holds {pages.adapters(device)} adapters of max size "
        f"{pages.max_lora_size:,} ({len(modules)} modules x {b.layers_on_gpu} layers at rank "
        f"{min(MAX_ADAPTER_SIZE, lora.max_lora_rank)}); batch_manager/peftCacheManager.cpp getPageManagerConfig, "
        "subtracted before the KV fraction (pyexecutor/py_executor_creator.py)"
    )
    return pages, device, host, source


def lora_comment(lora: LoraSettings | None) -> str:
    """trtllm-serve has no LoRA options: the lora_config of the YAML file given to --config."""
    if lora is None:
        return ""
    keys = [f"max_lora_rank: {lora.max_lora_rank}"]
    if lora.max_loras:
        keys.append(f"max_loras: {lora.max_loras}")
    if lora.max_cpu_loras is not None:
        keys.append(f"max_cpu_loras: {lora.max_cpu_loras}")
    if lora.target_modules is not None:
        names = {hf: trt for trt, hf in TRTLLM_LORA_MODULES.items()}
        keys.append("lora_target_modules: [" + ", ".join(names[t] for t in lora.target_modules) + "]")
    line = "  # LoRA: set lora_config {" + ", ".join(keys) + "} in the YAML file given to --config"
    if lora.lora_dtype is not None:  # the PEFT cache pages are in the model's dtype (modelConfig.getDataType())
        line += f"; the PEFT cache holds adapters in the model dtype, not {short_dtype(lora.lora_dtype)}"
    return line


# ------------------------------------------------------------------------------------ speculative decoding
#
# MTP (`--speculative-config '{"method": "mtp", "num_speculative_tokens": N}'`, TensorRT-LLM's MTPDecodingConfig with
# max_draft_len N: llmapi/llm_args.py:2576-2583 maps the deprecated num_nextn_predict_layers key to max_draft_len).
# TensorRT-LLM appends the MTP layers to the target's own KV cache manager (NVIDIA/TensorRT-LLM 00679c66
# pyexecutor/config_utils.py:474-475 "Appended MTP/draft layers need only a count because every draft layer is full
# attention", :595 `num_draft_layers = get_num_spec_layers(spec_config) or 0`). How many, read at ONE commit,
# NVIDIA/TensorRT-LLM 011d0933 (TRTLLM_MTP_PIN: tensorrt_llm/_torch/speculative/utils.py and
# tensorrt_llm/llmapi/llm_args.py, the one commit the code index holds both at):
# - utils.py:541-559 `update_spec_config_from_model_config`: num_nextn_predict_layers is the checkpoint's
#   (`num_nextn_predict_layers`, else `mtp_num_hidden_layers`, else 1), not a user setting (llm_args.py:2556,
#   "Auto-populated from the model's pretrained config"); :562-575: max_draft_len as given for MTP-Eagle, cut to
#   min(max_draft_len, num_nextn_predict_layers) for vanilla MTP.
# - llm_args.py:2520-2526: use_mtp_vanilla False and mtp_eagle_one_model True by default; :2660-2665
#   `spec_dec_mode`: a checkpoint with 1 MTP layer is MTP_EAGLE_ONE_MODEL, MTP_EAGLE (the two-model drafter) with
#   mtp_eagle_one_model false, vanilla MTP otherwise (use_mtp_vanilla, or more than 1 layer).
# - utils.py:444-452 `get_num_spec_layers`: 1 for MTP_EAGLE_ONE_MODEL, num_nextn_predict_layers for vanilla MTP, 0
#   otherwise (MTP_EAGLE's drafter is a separate engine, which kvplan does not size). So the one-model modes append
#   the checkpoint's num_nextn_predict_layers layers.
# - utils.py:514-523 `get_num_extra_kv_tokens`: one-engine modes keep max_draft_len - 1 extra KV tokens a
#   sequence; utils.py:319-331: vanilla MTP holds an MTPHiddenStatesManager for max_num_requests. kvplan counts
#   neither (said in the plan's notes).
# - llm_args.py:1006-1007 `_is_full_indexer_layer`: "The MTP/nextn layer (>= num_hidden_layers) is always full", so
#   on DSA models (DeepSeek-V3.2, GLM-5.x) the MTP layer keeps its own indexer K cache even where the target's last
#   layers share one (GLM-5.2).
# The MTP layer is a DeepSeek decoder layer (MLA), so kvplan shapes it like the target's last layer that runs its
# own indexer (for a dense-MLA model, its last layer), priced by the same storage rules. Its weights are those the
# checkpoint stores for it (model.layers.<num_hidden_layers + k>.*: that decoder layer's tensors, eh_proj, enorm,
# hnorm and shared_head.norm); DeepseekV3MTPHead holds one RMSNorm and takes the target's lm_head in forward
# (modeling_deepseekv3.py, read in the code index without a pinned commit), and the embeddings are taken as the
# target's. With pipeline parallelism TensorRT-LLM puts the appended layers on the last PP rank (pyexecutor/
# resource_manager.py `get_pp_layers`, seen in the code index at no commit this module pins), and so does kvplan
# (`draft_on_last_stage`, kvplan.engines.sizing.pipeline_costs). Other methods keep the note that the drafter is
# left out.

TRTLLM_MTP_PIN = "011d0933"  # speculative/utils.py and llmapi/llm_args.py, read at this one commit
TRTLLM_SPEC_UTILS = "tensorrt_llm/_torch/speculative/utils.py"
TRTLLM_LLM_ARGS = "tensorrt_llm/llmapi/llm_args.py"
# The architectures whose MTP layers kvplan sizes on TensorRT-LLM (which picks the model class by architectures[0]):
# DeepSeek-style checkpoints, MLA decoder layers with the MTP layer stored after the last one as model.layers.<n + k>.*
TRTLLM_MTP_ARCHITECTURES = ("DeepseekV3ForCausalLM", "DeepseekV32ForCausalLM", "GlmMoeDsaForCausalLM")
_MTP_GLUE = ("eh_proj", "enorm", "hnorm", "shared_head.norm")


def _flag(setup: Speculative, key: str, default: bool) -> bool:
    """A boolean MTPDecodingConfig key given beside method and num_speculative_tokens (default: the config's)."""
    import json

    extra = json.loads(setup.extra_json) if setup.extra_json else {}
    value = extra.get(key, default)
    return bool(value) if isinstance(value, bool) else default


def _mtp_refusal(what: str, hint: str | Text) -> UsageError:
    return UsageError(Text("{speculative_config}: " + what), hint=hint, field="speculative_config")


def _mtp_layer_count(inputs: SpeculativeInputs) -> tuple[int, str]:
    """The MTP layers TensorRT-LLM appends to the target's KV cache and the mode that appends them (see above)."""
    from kvplan.core.config import text_config

    cfg = text_config(inputs.config)
    model_type = str(cfg.get("model_type") or inputs.config.get("model_type") or "")
    count = cfg.get("num_nextn_predict_layers", inputs.config.get("num_nextn_predict_layers"))
    if not isinstance(count, int) or isinstance(count, bool) or count <= 0:
        raise _mtp_refusal(
            f"method mtp needs MTP layers, and this {model_type or 'model'} config has num_nextn_predict_layers = "
            f"{count!r} (TensorRT-LLM's fallback of 1 layer when the key is absent, {TRTLLM_SPEC_UTILS}:557-558 at "
            f"{TRTLLM_MTP_PIN}, would have no weights to load)",
            "use a checkpoint with MTP layers, or another speculative method",
        )
    architectures = inputs.config.get("architectures") or []
    named = str(architectures[0]) if architectures else "no architecture"
    if named not in TRTLLM_MTP_ARCHITECTURES:
        raise _mtp_refusal(
            f"kvplan sizes TensorRT-LLM's MTP layers for DeepSeek-style MLA checkpoints only "
            f"({' / '.join(TRTLLM_MTP_ARCHITECTURES)}), not {named}, whose MTP layers TensorRT-LLM would append to "
            f"the target's KV cache manager ({TRTLLM_CONFIG_UTILS}:474-475 and :595 at {TRTLLM_PIN})",
            Text("use {engine} vllm for MTP on this model, or plan without {speculative_config}"),
        )
    vanilla = _flag(inputs.setup, "use_mtp_vanilla", False)
    one_model = _flag(inputs.setup, "mtp_eagle_one_model", True)
    at = f"{TRTLLM_LLM_ARGS}:2660-2665 MTPDecodingConfig.spec_dec_mode at {TRTLLM_MTP_PIN}"
    if count == 1 and not vanilla and not one_model:
        raise _mtp_refusal(
            f"mtp_eagle_one_model false selects TensorRT-LLM's two-model MTP-Eagle ({at}), whose drafter runs as a "
            f"separate engine with its own KV cache ({TRTLLM_SPEC_UTILS}:444-452 get_num_spec_layers appends no layer "
            "to the target's), which kvplan does not size",
            "leave mtp_eagle_one_model at its default (true), or plan without {speculative_config}",
        )
    mode = "MTP-Eagle one-model" if count == 1 and not vanilla else "vanilla MTP"
    return count, f"{mode} ({at}; {TRTLLM_SPEC_UTILS}:444-452 get_num_spec_layers)"


def _trtllm_mtp(inputs: SpeculativeInputs) -> Speculative:
    setup, shape = inputs.setup, inputs.shape
    count, mode = _mtp_layer_count(inputs)
    # the last layer that runs its own indexer (every MLA layer of a dense-MLA model): the MTP layer is always a
    # full-indexer layer (llm_args.py:1006-1007)
    full = [
        i
        for i, layer in enumerate(shape.layers)
        if any(isinstance(c, L.MlaLatent) and (c.index_head_dim or not c.sparse) for c in layer)
    ]
    if not full:
        raise _mtp_refusal(
            "this config has no MLA layer to shape TensorRT-LLM's MTP layer on", "use another speculative method"
        )
    index = full[-1]
    like = tuple(c for c in shape.layers[index] if isinstance(c, L.MlaLatent))
    n, h = shape.num_layers, shape.hidden_size
    copies = [(index, f"model.layers.{n + k}") for k in range(count)]
    extra: list[tuple[str, tuple[int, ...], str]] = []
    for k in range(count):
        prefix = f"model.layers.{n + k}"
        extra.append((f"{prefix}.eh_proj.weight", (h, 2 * h), "linear"))
        extra += [(f"{prefix}.{norm}.weight", (h,), "norm") for norm in _MTP_GLUE[1:]]
    nbytes = inputs.stored_bytes(copies, extra)
    if nbytes:
        weights_source = (
            f"{count} x MTP layer as model.layers.{n}.*" + (" ..." if count > 1 else "") + " (decoder layer "
            f"{index}'s tensors + the 2h x h eh_proj, enorm, hnorm and shared_head.norm), as the checkpoint's "
            "quantization_config stores them; lm_head and embeddings the target's (DeepseekV3MTPHead takes the "
            "target's lm_head)"
        )
        experts = inputs.expert_bytes(copies) or 0
    else:
        nbytes, weights_source, experts = (
            None,
            "the MTP layers' weights are not counted (the config's layers cannot be counted)",
            0,
        )
    draft = setup.num_speculative_tokens
    used = draft if mode.startswith("MTP-Eagle") else min(draft, count)
    notes = [
        f"MTP draft: {count} MTP layer(s) shaped like layer {index} join the target's KV cache "
        f"(num_nextn_predict_layers = {count}, {mode}; appended as in {TRTLLM_CONFIG_UTILS}:474-475 and :595 at "
        f"{TRTLLM_PIN})",
        f"TensorRT-LLM drafts max_draft_len = {used} token(s) a step"
        + (f" (vanilla MTP cuts {draft} to the checkpoint's {count} layers)" if used != draft else "")
        + f" and keeps max_draft_len - 1 = {used - 1} extra KV token(s) a sequence ({TRTLLM_SPEC_UTILS}:514-523 "
        f"get_num_extra_kv_tokens at {TRTLLM_MTP_PIN}), which kvplan does not count",
    ]
    if not mode.startswith("MTP-Eagle"):
        notes.append(
            f"vanilla MTP also holds an MTPHiddenStatesManager of hidden states for max_num_requests "
            f"({TRTLLM_SPEC_UTILS}:319-331 at {TRTLLM_MTP_PIN}), which kvplan does not count"
        )
    return replace(
        setup,
        draft_caches=like * count,
        draft_weights=nbytes,
        draft_expert_weights=experts,
        weights_source=weights_source,
        notes=tuple(notes),
    )


def trtllm_speculative(inputs: SpeculativeInputs) -> Speculative:
    """TensorRT-LLM's speculative decoding as kvplan plans it: `mtp` with the checkpoint's MTP layers in the
    target's KV cache and their weights (see above; Kimi's model runs no MTP at all, modeling_kimi_linear.py:75-76
    at 00679c66), any other method kept with the drafter left out and said so."""
    setup = inputs.setup
    if setup.method == "mtp":
        kda = any(isinstance(c, L.RecurrentState) and c.family == "kda" for c in inputs.shape.caches())
        if kda:
            raise UsageError(
                Text(
                    "{speculative_config}: TensorRT-LLM's Kimi model runs no MTP (\"Not supported: ... draft-head "
                    'spec-dec modes (MTP/Eagle — no draft-head checkpoint exists)", {path}:75-76 at {commit})',
                    path=TRTLLM_KIMI_MODEL,
                    commit=TRTLLM_PIN,
                ),
                hint=Text(
                    'the Kimi model\'s speculative decoding is SA ("suffix automaton, one-engine, draft-weight-free", '
                    "{path}:62): plan without {speculative_config}",
                    path=TRTLLM_KIMI_MODEL,
                ),
                field="speculative_config",
            )
        if any(isinstance(c, L.CompressedAttention) for c in inputs.shape.caches()):
            return setup  # DeepSeek-V4: refused by its storage rules (dsv4_layout)
        return _trtllm_mtp(inputs)
    return replace(
        setup,
        notes=(
            "speculative decoding is not modelled for TensorRT-LLM: the drafter's weights, KV cache and "
            "speculative state slots are left out of the plan",
        ),
    )


def draft_terms(b: BudgetInputs, held: int) -> list[BudgetTerm]:
    """The budget row of the MTP layers' weights, loaded with the target before the KV cache is sized."""
    if not held or b.speculative is None:
        return []
    return [
        BudgetTerm(
            "speculative_draft_weights",
            -held,
            f"the {b.speculative.method} drafter's weights: {b.speculative.weights_source} / tp {b.tp}",
        )
    ]


def draft_weights_per_gpu(b: BudgetInputs) -> int:
    """The MTP layers' weights on one GPU: / tp (the target's split; not read per tensor for the MTP layer)."""
    spec = b.speculative
    return (spec.draft_weights or 0) // b.tp if spec is not None else 0


class TensorRtLlmServing(ServingModel):
    options = frozenset({GPU_MEMORY_UTILIZATION, BLOCK_SIZE})
    serves_lora = True
    lora_defaults = (0, DEFAULT_MAX_LORA_RANK)  # max_loras 0: not set, the device cache is device_cache_percent
    summary = "tensorrt-llm (free_gpu_memory_fraction 0.9 of the memory left after loading)"
    utilization_help = "TensorRT-LLM free_gpu_memory_fraction (default 0.9)"

    def default_utilization(self, memory_bytes: int, tp: int, pp: int) -> float:
        return FREE_GPU_MEMORY_FRACTION

    def budget(self, b: BudgetInputs) -> tuple[list[BudgetTerm], int]:
        runtime = runtime_bytes(b.config)
        draft = draft_weights_per_gpu(b)
        free = b.profile.memory_bytes - b.weights_per_gpu - draft - runtime
        lora_terms = []
        if b.lora is not None:
            pages, device, _, source = peft_cache(b, free)
            held = pages.pages(device) * pages.page_bytes(DTYPE_BYTES[b.dtype])
            lora_terms.append(BudgetTerm("lora", -held, source))
            free -= held
        kept = int(max(0, free) * b.utilization)
        terms = [
            BudgetTerm("total", b.profile.memory_bytes, f"{b.profile.id} memory"),
            BudgetTerm("weights", -b.weights_per_gpu, f"engine weights / (tp x pp) = / {b.tp * b.pp}"),
            BudgetTerm(
                "runtime_buffers",
                -runtime,
                "execution context + runtime + decoder buffers: 9.18 GiB "
                "logged for a vocab-151936 build (TensorRT-LLM #1188), scaled by vocab; approximation",
            ),
            *draft_terms(b, draft),
            *lora_terms,
            BudgetTerm(
                "free_fraction",
                kept - max(0, free),
                f"keeps (1 - free_gpu_memory_fraction {b.utilization}) of the memory free after loading",
            ),
        ]
        return terms, kept

    def lora_host_bytes(self, b: BudgetInputs) -> tuple[int, str] | None:
        """The PEFT host cache: max_cpu_loras adapters' module-layers, else host_cache_size (1 GiB), in pages."""
        if b.lora is None:
            return None
        free = b.profile.memory_bytes - b.weights_per_gpu - draft_weights_per_gpu(b) - runtime_bytes(b.config)
        pages, _, host, _ = peft_cache(b, free)
        held = pages.pages(host) * pages.page_bytes(DTYPE_BYTES[b.dtype])
        how = f"max_cpu_loras {b.lora.max_cpu_loras}" if b.lora.max_cpu_loras else "host_cache_size 1 GiB"
        return held, (
            f"PEFT host cache ({how}): {pages.pages(host)} pages x {pages.slots_per_page} slots x {pages.page_width} "
            f"values, holds {pages.adapters(host)} adapters (batch_manager/peftCacheManager.cpp getMaxNumSlots)"
        )

    def token_block(self, block_size: int | None) -> int:
        return block_size or 1  # tokens_per_block

    def speculative(self, inputs: SpeculativeInputs) -> Speculative:
        """TensorRT-LLM's speculative decoding (kvplan.engines.tensorrt_llm.trtllm_speculative)."""
        return trtllm_speculative(inputs)

    def budget_notes(self, b: BudgetInputs) -> list[str]:
        """The fixed per-sequence cost TensorRT-LLM takes from the KV budget for max_batch_size sequences (hybrid
        models' recurrent states, DeepSeek-V4's window blocks), stated with its figure, not subtracted: see
        "fixed per-sequence costs" above (`fixed_cost_note`)."""
        if b.request is None:
            return []
        _, available = self.budget(b)
        note = fixed_cost_note(b.shape, b.request, b.max_num_seqs, available)
        return [note] if note else []

    def command(self, f: FlagInputs) -> str:
        line = f"trtllm-serve {f.model} --tp_size {f.tp} --pp_size {f.pp} --max_seq_len {f.max_model_len} --max_batch_size {f.max_num_seqs}"
        if f.planned:
            line += f" --kv_cache_free_gpu_memory_fraction {f.utilization}"
        comments = []
        if f.kv_dtype not in ("float16", "bfloat16"):  # not an option of trtllm-serve (commands/serve.py)
            comments.append(
                f"KV dtype {short_dtype(f.kv_dtype)}: trtllm-serve has no option for it; set kv_cache_config's "
                "dtype in the YAML file given to --config"
            )
        dsv4 = dsv4_command_comment(f)
        if dsv4:
            comments.append(dsv4)
        lora = lora_comment(f.budget.lora).removeprefix("  # ")
        if lora:
            comments.append(lora)
        if f.speculative is not None and f.speculative.method == "mtp":
            # trtllm-serve has no speculative option; MTPDecodingConfig's decoding_type "MTP" and max_draft_len
            # (llm_args.py:2503-2504 at 011d0933) go in the YAML file
            comments.append(
                "MTP: set speculative_config {decoding_type: MTP, max_draft_len: "
                f"{f.speculative.num_speculative_tokens}}} in the YAML file given to --config"
            )
        return line + ("  # " + "; ".join(comments) if comments else "")  # one shell comment, as SGLang's


def storage_for(shape: ModelShape) -> TensorRtLlmEngine:
    first = shape.layers[0] if shape.layers else ()
    shared = any(isinstance(c, L.MlaLatent) and c.sparse and not c.index_head_dim for c in first)
    v4 = any(isinstance(c, L.CompressedAttention) for c in first)
    return TensorRtLlmEngine(shape.architectures, dsa_first_layer_shared=shared, deepseek_v4=v4)


ENTRY = EngineEntry(
    name="tensorrt-llm",
    aliases=("trtllm", "trt-llm", "tensorrt_llm"),
    display="TensorRT-LLM",
    storage=lambda shape: storage_for(shape),
    serving=TensorRtLlmServing(),
    plannable=True,
    splits_heads=True,
)
