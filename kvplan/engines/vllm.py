"""How vLLM (v1 engine, 0.10-0.33) stores the KV cache: pages of `block_size` tokens, per layer kind.

Rules (vllm/v1/kv_cache_interface.py, vllm/v1/core/kv_cache_utils.py, kv_cache_planning.py from 0.29; checked
against real start-up logs in tests/engines/test_calibration.py). What changed between releases is a row of
VLLM_VERSIONS; the rules below read the row of `Request.engine_version`:
- page (one layer, one block) = block_size x kv_heads_per_rank x (head_size_k + head_size_v) x dtype bytes;
  MLA: block_size x (kv_lora_rank + qk_rope_head_dim) x dtype bytes, one latent (no factor 2), replicated on
  every TP rank; `int8` (int8_per_token_head) and `int4` (int4_per_token_head, head_size/2 bytes) add an fp32
  scale per token and head for K and V; `nvfp4` stores head_size/2 bytes plus one fp8 scale per 16 values.
- sparse (DSA) MLA, DeepSeek V3.2 / GLM-5 (read in vLLM 0.33.0, applied to every release): the latent in the
  sparse backend's layout (bf16, plain fp8, fp8_ds_mla 656 B or nvfp4_ds_mla 352 B: `sparse_mla_format`) plus
  132 B of uint8 indexer keys on the layers that run an indexer, whatever the KV dtype; block size 64; latent
  and indexer pages in one KV-cache group (`_uniform_type`).
- MiniMax-M3 (MiniMaxM3Sparse*, registered since vLLM 0.24.0, read in 0.24-0.33): GQA K/V on every layer
  (FullAttentionSpec) plus, on the MSA sparse layers, one bf16 indexer key of sparse_index_dim per token, never
  split by TP (MLAAttentionSpec, one head); both in one KV-cache group (`_uniform_type`), blocks of 128 tokens
  (`MSA_BLOCK_SIZE`); 0.24-0.30 pick the block size from the first attention layer's backend only
  (`VllmBehaviour.minimax_m3_blocks`).
- block size: the attention backend's (16; MLA on Hopper 64 with an fp8 cache (FLASHMLA), MLA on Blackwell
  32 (FLASHINFER_MLA), sparse MLA 64), unless --block-size is given.
- layers whose specs are all full attention (or all MLA) with one block size but different pages share one
  group whose block costs every layer's page (UniformTypeKVCacheSpecs).
- pages one request needs at `seq_len` = max_model_len: full/MLA cdiv(seq_len, block); sliding window
  cdiv(min(window - 1 + in_flight, seq_len), block) + 1; chunked local attention
  cdiv(min(chunk + in_flight, seq_len), block), where in_flight is max_num_batched_tokens (before 0.26) or
  max_concurrent_batches x max_num_batched_tokens (2 x with async scheduling at PP 1); Mamba-style state: one
  page with prefix caching off, 2 (+1 prefill checkpoint) in `align` mode, cdiv(seq_len, block) in `all` mode.
- hybrid models: layers are grouped by spec into groups of `group_size` layers (the smallest type count, or
  the largest when it is < 1.5x the smallest); a block of any group costs a page in each of `group_size`
  tensors, so a type whose layer count is not a multiple of group_size pays for padding layers.
- speculative decoding (`Request.speculative`, `--speculative-config`): the drafter's attention layers join the
  stage's (MTP: the target's MTP layers shaped like its last full-attention layer, DeepSeek-V4's a sliding ring
  each, `_v4_mtp_draft`; a draft model: its own layers),
  Mamba-style layers hold num_speculative_tokens state pages and convolution columns more (`speculative_rules`).
- attention + Mamba hybrids: the attention block size grows (in steps of the kernel alignment) until its page
  holds one Mamba state, and the state page is padded to the attention page. Mamba states use the model dtype
  (the recurrent state the config's `mamba_ssm_dtype` where it sets one).

Below the storage model: vLLM's version table (VLLM_VERSIONS, `vllm_behaviour(version)`, the default version
`resolve_vllm_version`), its serving model (VllmServing: the start-up profiling budget, block-based fit, `vllm
serve` flags), its start-up oracle (`startup`: the error a release raises at start-up in its own words, and the
lines it logs), the vocabulary of its `--config` files (CONFIG) and its registry entry (ENTRY).
"""

from __future__ import annotations

import math
import re
import shlex
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from fractions import Fraction
from functools import lru_cache
from math import lcm
from typing import TYPE_CHECKING, Any

from kvplan.core import specs as L
from kvplan.core.bisection import largest
from kvplan.core.config import (
    hidden_size,
    intermediate_size,
    language_config,
    num_experts,
    num_layers,
    positive_int,
    routed_experts,
    text_config,
    vocab_size,
)
from kvplan.core.lora import decoder_modules
from kvplan.core.shapes import MOE, QUANTIZED, WINDOW_IS_SIZE_PLUS_ONE, ModelShape
from kvplan.core.units import DTYPE_BYTES, cdiv, fp8_block_scaled_bytes, short_dtype
from kvplan.engines.base import (
    MINIMAX_M3_SERVED,
    Engine,
    KindCost,
    Request,
    Speculative,
    kv_heads_per_rank,
    merge_kinds,
    pipeline_stages,
    refuse_index_keys,
    refuse_m3_dropped_sparse_config,
    refuse_m3_layer_types,
)
from kvplan.engines.entry import COMMON_CONFIG_KEYS, ConfigVocabulary, EngineEntry
from kvplan.engines.serving import (
    ASYNC_SCHEDULING,
    BLOCK_SIZE,
    GPU_MEMORY_UTILIZATION,
    LIMIT_MM_PER_PROMPT,
    PREFIX_CACHING,
    VLLM_VERSION,
    BudgetInputs,
    BudgetTerm,
    Fit,
    FitInputs,
    FlagInputs,
    Layout,
    LoraSettings,
    MoeShards,
    ServingModel,
    SpeculativeInputs,
    Startup,
    StartupInputs,
)
from kvplan.engines.sizing import fullest_stage
from kvplan.errors import READ_ERRORS, Text, UsageError

if TYPE_CHECKING:
    from kvplan.sources.hardware import HardwareProfile

DEFAULT_BLOCK_SIZE = 16
_GIB_EARLY = 2**30
DSA_BLOCK_SIZE = 64  # DeepseekV32IndexerBackend's kernel block size on CUDA (v1/attention/backends/mla/indexer.py:286)
# MiniMax-M3's MSA sparse-attention and indexer backends take kernel blocks of 128 tokens only
# (vllm-0.33.0 vllm/models/minimax_m3/common/sparse_attention.py:165-167, common/indexer.py:94-95); the full layers'
# FlashAttention takes multiples of 16, so platforms/interface.py:723-739 picks 128, the smallest size all accept.
MSA_BLOCK_SIZE = 128
# The MiniMax-M3 indexer keys' dtype: `indexer_kv_dtype` resolves "auto" to "bf16" (models/minimax_m3/nvidia/model.py:
# 507-509, config/attention.py:198-204), stored as torch.bfloat16 (common/indexer.py:118-131) whatever the KV dtype.
MSA_INDEX_KEY_BYTES = 2
_ALIGN = 16  # kernel block alignment used when vLLM raises the attention block size for Mamba hybrids
_MAMBA1_CHUNK = 2048  # vLLM's chunk for Mamba1, which has none (config/model.py get_mamba_chunk_size)
_GDN_FLASHINFER_ALIGNMENT = 64  # FLASHINFER_GDN_CHECKPOINT_ALIGNMENT (v1/attention/backends/gdn_attn.py:34)

# ------------------------------------------------------------------------------------ versions (vLLM's own)

_VERSION_RE = re.compile(r"^v?(\d+)\.(\d+)(?:\.(\d+))?(?:[.+-]?[0-9A-Za-z.+-]*)?$")


def _version_match(text: str) -> re.Match[str]:
    match = _VERSION_RE.match(str(text).strip())
    if not match:
        raise UsageError(
            Text("{vllm_version}: expected a version such as 0.11 or 0.19.1, got {v!r}", v=text),
            hint="pass the version `vllm --version` prints",
            field="vllm_version",
        )
    return match


def parse_vllm_version(text: str) -> tuple[int, int]:
    """(major, minor) of a vLLM version such as 0.11, 0.19.1 or v0.21.0rc1; a UsageError for anything else."""
    match = _version_match(text)
    return int(match.group(1)), int(match.group(2))


def version_key(text: str) -> tuple[int, int, int]:
    """(major, minor, patch) of a vLLM version (patch 0 when not given; tags such as rc1, .dev16+g1234 or +cu128
    are left out: see `is_dev_build`)."""
    match = _version_match(text)
    return int(match.group(1)), int(match.group(2)), int(match.group(3) or 0)


def is_dev_build(text: str) -> bool:
    """A nightly (`0.20.2rc1.dev9+g01d4d1ad3`): a main-branch build made before the release it is named after, so
    it behaves like the release before (a release candidate, `0.26.1rc1`, is taken as its release)."""
    match = _version_match(text)
    return "dev" in str(text).strip()[match.end(3) if match.group(3) else match.end(2) :].lower()


@dataclass(frozen=True)
class RunnerV2:
    """Which models vLLM runs on Model Runner V2 by default (`VllmConfig.use_v2_model_runner`).

    A model runs on V2 when its architecture is in `architectures`, or (`dense`) when it has no routed experts;
    `unquantized`: only checkpoints without a quantization_config. Attention+Mamba hybrids never do (V2 does not
    support them) unless `hybrids`; `every_model`: the model gate is gone (every supported model)."""

    architectures: frozenset[str] = frozenset()
    dense: bool = False
    dense_only: bool = False
    unquantized: bool = False
    every_model: bool = False

    def runs(self, architectures: tuple[str, ...], moe: bool, quantized: bool, hybrid: bool) -> bool:
        if self.every_model:
            return True
        if hybrid or (self.unquantized and quantized) or (self.dense_only and moe):
            return False
        return any(a in self.architectures for a in architectures) or (self.dense and not moe)


@dataclass(frozen=True)
class VllmBehaviour:
    """What kvplan models of the vLLM releases from `since` up to the next row's `since` (exclusive).

    Budget (VllmServing.budget): `sampler_bytes_per_seq_vocab`, bytes per (sequence x vocab entry) of the dummy
    sampler run of vLLM's start-up profiling (its activation peak); `fused_moe_chunk`, the tokens the fused-MoE
    workspace is sized for at most (VLLM_FUSED_MOE_CHUNK_SIZE; 0: no chunking, the whole batch);
    `default_gpu_memory_utilization`;
    `subtracts_cudagraphs`, the CUDA-graph pool estimate is subtracted from the KV budget; `runner_v2`, the
    models that run on Model Runner V2 by default (None: none); `v2_estimates_cudagraphs`, V2's
    `profile_cudagraph_memory` is implemented (False: it returns 0, so models on V2 subtract nothing).

    Storage (VllmEngine): `in_flight_window`, sliding-window and chunked-local layers reserve for
    `max_concurrent_batches x max_num_batched_tokens` in-flight tokens (False: for max_num_batched_tokens);
    `hybrid_prefix_caching`, prefix caching is on by default for attention+Mamba hybrids, which puts Mamba
    layers in `align` mode; `mamba_all_mode`, prefix caching picks Mamba `all` mode (a state page per block of
    the sequence) for models that support it (Mamba1/Mamba2), `align` for the others; `mamba2_checkpoint`,
    `align` mode holds one prefill-checkpoint page more for Mamba2 layers; `gdn_flashinfer_checkpoint`, GDN
    layers on FlashInfer's prefill (SM90, and SM100/SM120 with 128-wide keys) align blocks to 64 tokens and
    hold one prefill-checkpoint page more in `align` mode; `hybrid_block_unit_from_block_size`, the hybrid
    block alignment unit is max(16, --block-size) (False: 16); `kda_flashkda_checkpoint`, KDA layers on FlashKDA's
    prefill (SM90/SM10x/SM12x, bf16 model, 128-wide heads, a bounded gate) hold one prefill-checkpoint page more in
    `align` mode; `mla_hybrid_block_unit`, the hybrid block alignment unit of MLA + Mamba-style models is at least
    this (0: no such floor); `pads_attention_pages`, an attention page that does not divide the largest
    page is padded to it ("backend": on backends that read pages by block stride, FLASH_ATTN among them;
    "all": every non-MLA backend; "": never, an error); `kv_cache_dtypes`, the `--kv-cache-dtype` spellings
    accepted.

    Capacity and fit (capacity, VllmServing.fit): `tokens_from_concurrency`, the logged "GPU KV cache size" is
    int(max_concurrency x max_model_len) (False: num_blocks // num_groups x block_size); `null_block`, the fit
    checks hold back the block pool's null block. Scheduler defaults (scheduler_defaults): `tier_160gib`, GPUs
    with >= 160 GiB get 16384 batched tokens for the API server too; `gb10_small_tier`, GB10 (compute capability
    12.1) stays on the small tier. Documented, not applied (kvplan has no input for connectors or KV events):
    `hybrid_allocator_off_with`, what turns the hybrid KV-cache allocator off (sliding-window layers are then
    charged their full length). Start-up (startup): `mamba_seqs_check`, start-up fails when max_num_seqs exceeds
    the KV blocks of a model with Mamba layers (False: vLLM caps its CUDA-graph sizes instead);
    `cpu_backend_wording`, the KV-memory errors name the CPU backend; `one_capacity_line`, "GPU KV cache size"
    and "Maximum concurrency" are one log line. DeepSeek-V4 (VllmEngine.v4_plan): `v4_kv_groups`, how the release
    groups DeepSeek-V4's KV-cache specs ("": it does not serve the model; "tuple_slots": 0.20-0.22's
    `group_and_unify_kv_cache_specs`, layer tuples with the sliding pages padded to the compressed ones,
    `v4_tuple_groups`, in a pool whose block holds the most layer tuples of any group at every page size of the
    first group, `v4_tuple_slot_stride`; "tuples": 0.23-0.26's, the same groups in a pool whose block holds, per page
    size, the most slots any group has, `v4_tuple_stride`; "overlaid": 0.27-0.28's, the same tuples unpadded and
    overlaid in one block as wide as the widest group; "packed": `_get_packed_kv_cache_groups`, block-outermost
    groups of mixed pages, read in 0.29 and 0.33, `v4_packed_groups`); `v4_auto_kv`, `--kv-cache-dtype auto` serves
    DeepSeek-V4 (as fp8_ds_mla; False: vLLM asserts an fp8 cache); `v4_sm12`, a DeepSeek-V4 backend runs on SM12x
    by default (False: FlashMLA's alone, SM9x/SM10x).
    MiniMax-M3 (VllmEngine._check_minimax_m3): `minimax_m3_blocks`, how the release picks MiniMax-M3's block size
    without --block-size ("": it does not register MiniMaxM3Sparse*; "first_backend": 0.24-0.30's
    `update_block_size_for_backend`, the preferred size of the first attention layer's backend alone, so a stage
    whose first layer is dense (FlashAttention: vLLM's default 16) fails start-up in `select_common_block_size`,
    the MSA and indexer backends taking kernel blocks of 128 only; "all_backends": from 0.31, the smallest size
    every backend accepts, 128).
    Speculative decoding: `all_mode_speculative_blocks`, Mamba `all` mode holds num_speculative_tokens pages more per
    request. Parallelism: `models_dcp_dp_ep`, kvplan has read this release's data-parallel, expert-parallel and
    decode-context-parallel rules (VllmServing.layout, VllmEngine._check_dcp; False: the options are refused).
    `free_memory_names_device`, the start-up free-memory error names the device ("Free memory on device cuda:0
    (...)"). `follows`: the evidence for the row."""

    since: tuple[int, ...]
    sampler_bytes_per_seq_vocab: float
    default_gpu_memory_utilization: float
    subtracts_cudagraphs: bool
    runner_v2: RunnerV2 | None
    v2_estimates_cudagraphs: bool
    in_flight_window: bool
    hybrid_prefix_caching: bool
    mamba_all_mode: bool
    mamba2_checkpoint: bool
    gdn_flashinfer_checkpoint: bool
    hybrid_block_unit_from_block_size: bool
    pads_attention_pages: str
    kv_cache_dtypes: frozenset[str]
    tokens_from_concurrency: bool
    null_block: bool
    tier_160gib: bool
    gb10_small_tier: bool
    hybrid_allocator_off_with: tuple[str, ...]
    mamba_seqs_check: bool = False
    fused_moe_chunk: int = 0
    kda_flashkda_checkpoint: bool = False
    mla_hybrid_block_unit: int = 0
    cpu_backend_wording: bool = False
    one_capacity_line: bool = False
    v4_kv_groups: str = ""
    v4_auto_kv: bool = False
    v4_sm12: bool = False
    all_mode_speculative_blocks: bool = False
    models_dcp_dp_ep: bool = False
    free_memory_names_device: bool = False
    minimax_m3_blocks: str = ""
    follows: str = field(default="")

    @property
    def release(self) -> str:
        """The row's first release, as vLLM spells it ("0.20.0"; the first row: 0.10.0, the oldest kvplan models)."""
        return "0.10.0" if self.since == (0, 0) else ".".join(str(n) for n in (*self.since, 0, 0)[:3])


_KV_DTYPES_0_19 = frozenset({"auto", "float16", "bfloat16", "fp8", "fp8_e4m3", "fp8_e5m2", "fp8_inc", "fp8_ds_mla"})
_KV_DTYPES_0_20 = _KV_DTYPES_0_19 | {
    "turboquant_k8v4",
    "turboquant_4bit_nc",
    "turboquant_k3v4_nc",
    "turboquant_3bit_nc",
    "int8_per_token_head",
    "fp8_per_token_head",
    "nvfp4",
}
_V2_0_24 = frozenset(
    {
        "Qwen3ForCausalLM",
        "DeepseekV2ForCausalLM",
        "Qwen2MoeForCausalLM",
        "GraniteMoeForCausalLM",
        "LlamaForCausalLM",
        "MistralForCausalLM",
    }
)
_V2_MOE_0_25 = frozenset({"DeepseekV2ForCausalLM", "Qwen2MoeForCausalLM", "GraniteMoeForCausalLM"})

_FIRST = VllmBehaviour(
    since=(0, 0),
    sampler_bytes_per_seq_vocab=39.0,
    default_gpu_memory_utilization=0.9,
    subtracts_cudagraphs=False,
    runner_v2=None,
    v2_estimates_cudagraphs=False,
    in_flight_window=False,
    hybrid_prefix_caching=False,
    mamba_all_mode=True,
    mamba2_checkpoint=False,
    gdn_flashinfer_checkpoint=False,
    hybrid_block_unit_from_block_size=False,
    pads_attention_pages="",
    kv_cache_dtypes=_KV_DTYPES_0_19,
    tokens_from_concurrency=False,
    null_block=False,
    tier_160gib=False,
    gb10_small_tier=False,
    hybrid_allocator_off_with=("--kv-events-config", "any KV connector (--kv-transfer-config, --kv-offloading-size)"),
    fused_moe_chunk=32768,
    follows="vLLM <= 0.11 logged activation peaks of 38.4-38.9 B per (sequence x vocab entry) for 0.6B-32B "
    "models at max_num_seqs 1024 (llm-d empirical logs, tests/fixtures/calibration); the storage rules are those "
    "read in vllm-0.19.1 (config/cache.py:41 gpu_memory_utilization 0.9, envs.py:1655 CUDA-graph estimate off, "
    "v1/kv_cache_interface.py:263 and :293-300 window and Mamba pages, model_executor/models/config.py:218 and "
    ":436-438 hybrid block alignment and Mamba `all` mode, v1/core/kv_cache_utils.py:1302-1305 logged tokens, "
    "config/vllm.py:1202 and :1230 hybrid allocator off with KV events and connectors); the fused-MoE workspace "
    "is sized for at most VLLM_FUSED_MOE_CHUNK_SIZE = 32768 tokens (vllm-0.10.1.1 envs.py:616-617, "
    "model_executor/layers/fused_moe/fused_moe.py:1509-1510)",
)


def _row(since: tuple[int, ...], follows: str, base: VllmBehaviour, **changes: object) -> VllmBehaviour:
    return replace(base, since=since, follows=follows, **changes)  # type: ignore[arg-type]


_R0_12 = _row(
    (0, 12),
    "the sampler term fitted on the llm-d vLLM 0.19 H100 logs (tests/fixtures/calibration); 0.12-0.18 are taken "
    "to behave like 0.19; vllm-0.19.1 sizes the fused-MoE workspace for the whole batch (model_executor/layers/"
    "fused_moe/modular_kernel.py:1035-1064, no VLLM_FUSED_MOE_CHUNK_SIZE) and its start-up free-memory error "
    "names the device (v1/worker/utils.py:411-419 request_memory; vllm-0.10.1.1 v1/worker/gpu_worker.py:175-187 "
    "does not)",
    _FIRST,
    sampler_bytes_per_seq_vocab=15.0,
    fused_moe_chunk=0,
    free_memory_names_device=True,
)
_R0_20 = _row(
    (0, 20, 0),
    "vllm-0.20.0: config/cache.py:66 gpu_memory_utilization default 0.92; envs.py:1725 "
    "VLLM_MEMORY_PROFILER_ESTIMATE_CUDAGRAPHS default 1, subtracted at v1/worker/gpu_worker.py:424 (the log "
    "line says 'default since v0.21.0', but 0.20.0 ships it); config/compilation.py:1427-1442 refuses "
    "max_num_seqs above the KV blocks of a model with Mamba layers; config/cache.py CacheDType adds "
    "int8_per_token_head, fp8_per_token_head, nvfp4, turboquant_*; platforms/interface.py:576-583 hybrid "
    "alignment unit max(kernel block, block_size); KV events no longer turn the hybrid allocator off "
    "(config/vllm.py, only connectors at :1290); model_executor/models/registry.py:99 registers "
    "DeepseekV4ForCausalLM (vllm-0.19.1 has none), whose specs v1/core/kv_cache_utils.py "
    "`group_and_unify_kv_cache_specs` (:1408-1443) and `_get_kv_cache_groups_uniform_groups` (:1481-1575) group "
    "in layer tuples, in a pool whose block is the most layer tuples of any group times the first group's page "
    "sizes (`_get_kv_cache_config_deepseek_v4` :1162-1216, :1182 and :1199-1201); model_executor/layers/"
    "deepseek_v4_attention.py:594-603 asserts an fp8 cache and FlashMLA's sparse backend (SM9x/SM10x, "
    "v1/attention/backends/mla/flashmla_sparse.py:132-133); 0.22.0 alike (kv_cache_utils.py:1179-1233, "
    "models/deepseek_v4/attention.py:669-677)",
    _R0_12,
    default_gpu_memory_utilization=0.92,
    subtracts_cudagraphs=True,
    kv_cache_dtypes=_KV_DTYPES_0_20,
    hybrid_block_unit_from_block_size=True,
    hybrid_allocator_off_with=("any KV connector (--kv-transfer-config, --kv-offloading-size)",),
    mamba_seqs_check=True,
    v4_kv_groups="tuple_slots",
)
_R0_20_1 = _row(
    (0, 20, 1),
    "vllm-0.20.1: v1/core/kv_cache_utils.py:1706 logs 'GPU KV cache size' as int(max_concurrency x "
    "max_model_len) (0.20.0: num_blocks // num_groups x block size, :1694)",
    _R0_20,
    tokens_from_concurrency=True,
)
_R0_22 = _row(
    (0, 22, 0),
    "vllm-0.22.0: config/vllm.py:69 and :518 run Qwen3ForCausalLM (dense, unquantized) on Model Runner V2 by "
    "default, whose profile_cudagraph_memory returns 0 (v1/worker/gpu/model_runner.py:620-622); connectors "
    "with SupportsHMA keep the hybrid allocator (config/vllm.py:1448-1462; OffloadingConnector has it); "
    "v1/core/kv_cache_utils.py `_check_enough_kv_cache_memory` names the CPU backend in its errors",
    _R0_20_1,
    cpu_backend_wording=True,
    runner_v2=RunnerV2(frozenset({"Qwen3ForCausalLM"}), dense_only=True, unquantized=True),
    hybrid_allocator_off_with=("a KV connector without SupportsHMA (OffloadingConnector has it)",),
)
_R0_23 = _row(
    (0, 23, 0),
    "vllm-0.23.0: config/vllm.py:69-75 and :544-558 add LlamaForCausalLM and MistralForCausalLM (dense, "
    "unquantized) to Model Runner V2 (profile_cudagraph_memory still 0, gpu/model_runner.py:660-662); "
    "v1/core/kv_cache_utils.py `_get_kv_cache_config_deepseek_v4` (:1221-1244) sizes DeepSeek-V4's pool block "
    "by page size, the most slots of each any group has (`_bucket_layers_by_page_size` :1196-1218; 0.22.0 "
    ":1179-1233 still the layer-tuple block), as 0.25.0's `_get_kv_cache_config_packed` (:1277-1313) and 0.26; "
    "the grouping, concurrency and start-up check are 0.20.0's line for line; models/deepseek_v4/attention.py:80 "
    "still asserts fp8 and nvidia/model.py:716-727 runs FlashMLA unless FlashInfer's backend is named",
    _R0_22,
    v4_kv_groups="tuples",
    runner_v2=RunnerV2(
        frozenset({"LlamaForCausalLM", "MistralForCausalLM", "Qwen3ForCausalLM"}), dense_only=True, unquantized=True
    ),
)
_R0_24 = _row(
    (0, 24, 0),
    "vllm-0.24.0: config/vllm.py:68 and :550-560 run six architectures on Model Runner V2 whatever their "
    "quantization; v1/core/kv_cache_utils.py:1085-1088 pads attention pages that do not divide the largest page "
    "on backends that read pages by block stride (v1/attention/backend.py:205-234; FLASH_ATTN's layered stride "
    "order, flash_attn.py:158-160, qualifies); Mamba `all` mode holds num_speculative_tokens pages more "
    "(v1/kv_cache_interface.py:650-653; 0.20.0 :543 did not, 0.21-0.23 not read); models/deepseek_v4/nvidia/"
    "model.py:738-769 runs DeepSeek-V4 on FlashInfer's SM120 layer on SM12x by default, in the fp8_ds_mla layout "
    "(flashinfer_sparse.py:509-513, :85-86; 0.23.0 nvidia/model.py:716-727 ran FlashMLA alone, SM9x/SM10x); "
    "v1/core/kv_cache_utils.py:1277-1313 sizes DeepSeek-V4's block by page size as 0.23.0 and 0.25.0; "
    "model_executor/models/registry.py:163 registers MiniMaxM3SparseForCausalLM (0.23.0 has none), its layout "
    "0.33.0's (models/minimax_m3/nvidia/model.py:540-548 FullAttentionSpec, common/indexer.py:150-157 the bf16 "
    "indexer keys, config/attention.py:55 indexer_kv_dtype bf16, v1/core/single_type_kv_cache_manager.py:1457-1459 "
    "MLAAttentionSpec grouped as full attention) but for its block size: platforms/interface.py:609-625 takes the "
    "preferred size of the first attention layer's backend (`_find_non_ssm_backend` :574-591), 16 for a dense "
    "first layer (v1/attention/backends/flash_attn.py:94), which v1/worker/utils.py:328 refuses beside the "
    "sparse backends' 128 (common/sparse_attention.py:82-84, common/indexer.py:84-85); 0.25-0.30 alike",
    _R0_23,
    minimax_m3_blocks="first_backend",
    v4_sm12=True,
    runner_v2=RunnerV2(_V2_0_24),
    pads_attention_pages="backend",
    all_mode_speculative_blocks=True,
)
_R0_25 = _row(
    (0, 25, 0),
    "vllm-0.25.0: config/vllm.py:557-575 run every dense (non-MoE), non-hybrid model on Model Runner V2, whose "
    "profile_cudagraph_memory returns 0 (v1/worker/gpu/model_runner.py:680-682), so dense models subtract no "
    "CUDA-graph estimate (vLLM issue #49224); config/cache.py adds int4_per_token_head; models/deepseek_v4/"
    "attention.py:81-86 still asserts an fp8 cache for DeepSeek-V4 (auto fails)",
    _R0_24,
    runner_v2=RunnerV2(_V2_MOE_0_25, dense=True),
    kv_cache_dtypes=_KV_DTYPES_0_20 | {"int4_per_token_head"},
)
_R0_26 = _row(
    (0, 26, 0),
    "vllm-0.26.0: v1/kv_cache_interface.py:584 and :517 reserve window-1 (chunk) + max_in_flight_tokens, "
    "config/vllm.py:512-533 max_concurrent_batches x max_num_batched_tokens (2 with async scheduling at PP 1, "
    "PP+1 on Model Runner V2), async scheduling on by default (:1059-1107); vllm-0.25.1 still reserved "
    "max_num_batched_tokens (kv_cache_interface.py:561); DeepSeek-V4's specs are grouped in layer tuples "
    "(v1/core/kv_cache_utils.py:1525-1566 and :1603-1701), packed by page size (:1259-1341) and their concurrency "
    "divided by the first group's page (:937-955); models/deepseek_v4/attention.py:81-90 still asserts an fp8 "
    "cache (`--kv-cache-dtype auto` fails)",
    _R0_25,
    in_flight_window=True,
)
_R0_27 = _row(
    (0, 27, 0),
    "vllm-0.27.0: v1/core/kv_cache_utils.py `_get_kv_cache_groups_uniform_groups` (:1670-1754) no longer pads "
    "DeepSeek-V4's sliding pages and `_get_kv_cache_config_packed` (:1330-1358) overlays the groups in a block as "
    "wide as the widest (`_get_packed_kv_cache_layout` :1283-1305); the concurrency sums each group's blocks "
    "(`get_max_concurrency_for_kv_cache_config` :937-959); the start-up check still prices the layer tuples "
    "(`_max_memory_usage_bytes_from_groups` :1890-1940); 0.28.0 alike (:1623-1707, :1296-1324, :1249-1271, "
    ":917-939, :1878-1928); models/deepseek_v4/attention.py:105 still asserts an fp8 cache for DeepSeek-V4 "
    "(0.28.0 :106)",
    _R0_26,
    v4_kv_groups="overlaid",
)
_R0_28 = _row(
    (0, 28, 0),
    "vllm-0.28.0: engine/arg_utils.py:2650 and config/model.py:2072-2074 turn prefix caching on for hybrids "
    "(0.27.1 kept it off: arg_utils.py:2605), models/config.py:604 then picks Mamba `align` mode (0.27.1 picked "
    "`all` for models that support it, :615-617); engine/arg_utils.py:2582 gives GPUs with >= 160 GiB 16384 "
    "batched tokens; config/cache.py adds nvfp4_4over6; v1/core/kv_cache_utils.py `update_kv_cache_capacity` logs "
    "'GPU KV cache size' and 'Maximum concurrency' on one line",
    _R0_27,
    hybrid_prefix_caching=True,
    mamba_all_mode=False,
    tier_160gib=True,
    kv_cache_dtypes=_R0_26.kv_cache_dtypes | {"nvfp4_4over6"},
    one_capacity_line=True,
)
_R0_29 = _row(
    (0, 29, 0),
    "vllm-0.29.0: Model Runner V2 estimates its CUDA graphs (v1/worker/gpu/model_runner.py:896-898) and runs "
    "every model (config/vllm.py:645-677, no model gate); v1/core/kv_cache_utils.py:2316 and :975 hold back "
    "the null block in the fit and auto-fit checks; :1186 pads every non-MLA attention page; DeepSeek-V4's "
    "mixed pages are packed block-outermost (v1/core/kv_cache_utils.py `_get_packed_kv_cache_groups`, "
    "`_get_kv_cache_bytes_per_block` :1358-1370; 0.26.0 still had `group_and_unify_kv_cache_specs`)",
    _R0_28,
    runner_v2=RunnerV2(every_model=True),
    v2_estimates_cudagraphs=True,
    null_block=True,
    pads_attention_pages="all",
    v4_kv_groups="packed",
)
_R0_30 = _row(
    (0, 30, 0),
    "vllm-0.30.0: config/cache.py adds nvfp4_ds_mla (sparse MLA only); models/deepseek_v4/attention.py:109-110 "
    "maps `--kv-cache-dtype auto` to fp8 for DeepSeek-V4's fp8_ds_mla layout (0.29.0 :105 still asserted fp8; "
    "0.33.0 :108-109 alike)",
    _R0_29,
    v4_auto_kv=True,
    kv_cache_dtypes=_R0_29.kv_cache_dtypes | {"nvfp4_ds_mla"},
)
_R0_31 = _row(
    (0, 31, 0),
    "vllm-0.31.0: platforms/interface.py:688-697 takes `_preferred_block_size_for_backends` (:616-663), the "
    "smallest block size every attention backend accepts (MiniMax-M3: 128, the MSA and indexer backends' kernel "
    "block, models/minimax_m3/common/sparse_attention.py:162-164, common/indexer.py:94-95; 0.30.0 :624-640 took "
    "the first layer's backend's alone); the other fields are the 0.30 row's, not read again in 0.31",
    _R0_30,
    minimax_m3_blocks="all_backends",
)
_R0_32 = _row(
    (0, 32, 0),
    "vllm-0.32.0: model_executor/layers/mamba/mamba_mixer2.py:1107 gives Mamba2 layers one prefill-checkpoint "
    "page, counted in `align` mode (v1/kv_cache_interface.py:1079); config/cache.py:63 drops Mamba `all` "
    "mode; adds ultraquant_4bit",
    _R0_31,
    mamba2_checkpoint=True,
    kv_cache_dtypes=_R0_30.kv_cache_dtypes | {"ultraquant_4bit"},
)
VLLM_VERSIONS: tuple[VllmBehaviour, ...] = (
    _FIRST,
    _R0_12,
    _R0_20,
    _R0_20_1,
    _R0_22,
    _R0_23,
    _R0_24,
    _R0_25,
    _R0_26,
    _R0_27,
    _R0_28,
    _R0_29,
    _R0_30,
    _R0_31,
    _R0_32,
    _row(
        (0, 33, 0),
        "vllm-0.33.0: GDN layers on FlashInfer's prefill (model_executor/layers/mamba/gdn/"
        "qwen_gdn_linear_attn.py:249-264 SM90, SM100/SM120 with 128-wide keys) align checkpoints to 64 tokens "
        "(:692-696, v1/attention/backends/gdn_attn.py:34, platforms/interface.py:1090-1094) and hold one "
        "prefill-checkpoint page (:748, v1/kv_cache_interface.py:1137-1140); engine/arg_utils.py:2963 and :2986 "
        "keep GB10 (compute capability 12.1) on the small scheduler tier; adds octave_* dtypes; KDA layers on "
        "FlashKDA (models/kimi_k3/nvidia/kda.py:363-379 and :486-525 the backend, :901-909 and "
        "model_executor/layers/mamba/kda_checkpoint.py:9-10 one prefill-checkpoint page); MLA + Mamba hybrids align "
        "blocks to 128 tokens (platforms/interface.py:1083-1088); DP, EP and DCP read from config/parallel.py, "
        "model_executor/layers/fused_moe/config.py:1106-1245 and v1/kv_cache_interface.py:553-616",
        _R0_32,
        gdn_flashinfer_checkpoint=True,
        kda_flashkda_checkpoint=True,
        mla_hybrid_block_unit=128,
        gb10_small_tier=True,
        models_dcp_dp_ep=True,
        kv_cache_dtypes=_R0_32.kv_cache_dtypes | {"octave_k3v4", "octave_k3v3", "octave_k3v3_compact"},
    ),
)
# One row per vLLM release where something kvplan models changed, oldest first; a version belongs to the last row
# whose `since` it has reached, and an unknown version (None) to the newest row. To add a row, copy the last one
# with `_row`, set `since` to the first release that behaves differently and change what changed.
NEWEST_VLLM = "0.33.0"  # the newest release read (the last row's rules)


@lru_cache(maxsize=256)
def vllm_behaviour(version: str | None) -> VllmBehaviour:
    """The VLLM_VERSIONS row of `version` (e.g. 0.11, 0.19.1, v0.21.0rc1); unknown (None or "") is the newest. A
    nightly belongs to the row before the release it is named after (`is_dev_build`): 0.20.1rc1.dev16 is 0.20.0."""
    if not version:
        return VLLM_VERSIONS[-1]
    key = version_key(version)
    if is_dev_build(version):
        return [row for row in VLLM_VERSIONS if row.since < key][-1]
    return [row for row in VLLM_VERSIONS if row.since <= key][-1]


def installed_vllm_version() -> str | None:
    """The version of the vllm package installed beside kvplan (its metadata; vllm is never imported), or None."""
    from importlib import metadata

    try:
        return metadata.version("vllm")
    except metadata.PackageNotFoundError:
        return None


def resolve_vllm_version(version: str | None) -> tuple[str, str]:
    """(the vLLM release to model, why): the one given ("given"), else the installed vllm's ("installed"), else
    the newest release kvplan models ("newest"). A bad version is a UsageError."""
    if version:
        vllm_behaviour(version)
        return str(version).strip(), "given"
    installed = installed_vllm_version()
    if installed:
        try:
            vllm_behaviour(installed)
            return installed, "installed"
        except UsageError:  # a version kvplan cannot read: model the newest
            pass
    return NEWEST_VLLM, "newest"


def version_notes(version: str, source: str) -> list[str]:
    """What a plan says about the vLLM release it models, where that is not plain."""
    key = version_key(version)
    notes = []
    if source == "installed":
        notes.append(f"models vLLM {version}, the installed vllm (pass --vllm-version to plan for another)")
    if key > version_key(NEWEST_VLLM) and key[:2] != version_key(NEWEST_VLLM)[:2]:
        notes.append(f"vLLM {version} is newer than the newest release kvplan models ({NEWEST_VLLM}): modelled as it")
    if key < (0, 10, 0):
        notes.append(f"vLLM {version} is older than the oldest release kvplan models (0.10): modelled as 0.10")
    return notes


# --------------------------------------------------------------------------------------- KV dtypes and flags

# kvplan's --kv-dtype (canonical names) -> vLLM's --kv-cache-dtype spelling
KV_CACHE_DTYPE_FLAGS = {
    "fp8_e4m3": "fp8",
    "fp8_e5m2": "fp8_e5m2",
    "int8": "int8_per_token_head",
    "int4": "int4_per_token_head",
    "nvfp4": "nvfp4",
}


def first_release_with(kv_cache_dtype: str) -> str | None:
    """The first release (a VLLM_VERSIONS row) that accepts `--kv-cache-dtype kv_cache_dtype`."""
    return next((row.release for row in VLLM_VERSIONS if kv_cache_dtype in row.kv_cache_dtypes), None)


def _major(compute_capability: str | None) -> int | None:
    if not compute_capability:
        return None
    return int(str(compute_capability).split(".")[0])


def _capability(compute_capability: str | None) -> tuple[int, int] | None:
    if not compute_capability:
        return None
    major, _, minor = str(compute_capability).partition(".")
    return int(major), int(minor or 0)


# ------------------------------------------------------------------------------------ the storage model


@dataclass(frozen=True)
class Spec:
    """One vLLM KV-cache spec: layers with equal specs share groups. `page` is per block of `block_size` tokens.

    `state_pages`: for a Mamba-style state, the pages one request holds (None: one per block of the sequence,
    Mamba `all` mode). `layers`: the layers one spec of the plan stands for: 1, except for vLLM's
    UniformTypeKVCacheSpecs (`_uniform_type`), one spec for all the layers of one group, its page the sum of
    theirs. `label`: the kind shown for it where that is not `kind` (DeepSeek-V4's groups, `v4_plan`). `parts`:
    where one UniformTypeKVCacheSpecs group holds layers of several kinds (MiniMax-M3's GQA K/V and indexer keys),
    (kind, their pages' bytes, their layers) of each, so the costs are shown per kind."""

    kind: str
    page: int
    block_size: int
    window: int | None = None
    state_pages: int | None = 1
    mla: bool = False
    layers: int = 1
    label: str = ""
    parts: tuple[tuple[str, int, int], ...] = ()


@dataclass(frozen=True)
class GroupPlan:
    """vLLM's KV-cache groups for one stage: per spec, the layer count and how many groups it fills.

    `block_bytes`: what one block of the pool costs where that is not the largest page (vLLM 0.26's packed
    DeepSeek-V4 layout, `v4_tuple_groups`); `request_unit`: where set, a request's blocks are its bytes in every
    group divided by this page, rounded up (vLLM 0.26's `get_max_concurrency_for_kv_cache_config` for
    DeepSeek-V4), instead of the sum of its blocks in each group; `check_page`: where set, what one block of a
    request costs in the start-up memory check (vLLM 0.26-0.28's `_max_memory_usage_bytes_from_groups` for
    DeepSeek-V4, `v4_check_page`), instead of its spec's page."""

    specs: dict[Spec, int]
    group_size: int
    block_bytes: int = 0
    request_unit: int = 0
    check_page: int = 0

    def groups(self, spec: Spec) -> int:
        return cdiv(self.specs[spec], self.group_size)

    @property
    def num_groups(self) -> int:
        return sum(self.groups(spec) for spec in self.specs)

    @property
    def page(self) -> int:
        return self.block_bytes or max(spec.page for spec in self.specs)

    def request_blocks(self, blocks: Callable[[Spec], int]) -> int:
        """The blocks one request holds, given the blocks it holds in one group of each spec."""
        if self.request_unit:
            return cdiv(sum(self.groups(s) * blocks(s) * s.page for s in self.specs), self.request_unit)
        return sum(self.groups(spec) * blocks(spec) for spec in self.specs)


def _refuse_unread_dcp(req: Request) -> None:
    """--decode-context-parallel-size in a release whose DCP rules kvplan has not read (`models_dcp_dp_ep`)."""
    if not vllm_behaviour(req.engine_version).models_dcp_dp_ep:
        raise UsageError(
            Text("kvplan reads vLLM's {dcp} rules from vLLM {v}'s source only", v=NEWEST_VLLM),
            hint=Text("pass {vllm_version} {v}, or drop {dcp}", v=NEWEST_VLLM),
            field="dcp",
        )


class VllmEngine:
    """vLLM's storage model. `shape` (optional) supplies the model facts some releases choose by: routed experts,
    a quantized checkpoint and the architectures (Model Runner V2, whose in-flight batches at PP > 1 are PP+1)."""

    name = "vllm"
    follows = "vLLM v1 KV-cache manager, hybrid allocator on (release rules: kvplan.engines.vllm.VLLM_VERSIONS)"

    def __init__(self, shape: ModelShape | None = None) -> None:
        self.shape = shape

    # -- the release's settings

    def mamba_cache_mode(self, caches: list[L.Layer], req: Request) -> str:
        """ "none", "align" or "all": how the release keeps Mamba-style states (prefix caching on puts hybrids in
        `align` mode, or `all` mode for Mamba1/Mamba2 models in the releases that had it). Attention-free models
        never run prefix caching."""
        states = [c for c in caches if isinstance(c, L.RecurrentState)]
        if not states or not any(isinstance(c, (L.KVAttention, L.MlaLatent)) for c in caches):
            return "none"
        row = vllm_behaviour(req.engine_version)
        on = row.hybrid_prefix_caching if req.prefix_caching is None else req.prefix_caching
        if not on:
            return "none"
        if row.mamba_all_mode and all(s.family in ("mamba", "mamba2") for s in states):
            return "all"
        return "align"

    def runs_v2(self, req: Request) -> bool:
        """The model runs on Model Runner V2 in this release (its default)."""
        row = vllm_behaviour(req.engine_version)
        if row.runner_v2 is None:
            return False
        shape = self.shape
        if shape is None:
            return row.runner_v2.every_model
        hybrid = any(isinstance(c, L.RecurrentState) for c in shape.caches())
        return row.runner_v2.runs(shape.architectures, MOE in shape.features, QUANTIZED in shape.features, hybrid)

    def in_flight_tokens(self, req: Request) -> int:
        """Tokens a windowed layer reserves beyond its window: max_num_batched_tokens, or from 0.26
        max_concurrent_batches x max_num_batched_tokens (`VllmConfig.max_in_flight_tokens`)."""
        if not vllm_behaviour(req.engine_version).in_flight_window:
            return req.max_num_batched_tokens
        batches = req.pp
        if req.async_scheduling is not False:
            if self.runs_v2(req):
                batches = req.pp + 1
            elif req.pp <= 1:
                batches = 2
        return batches * req.max_num_batched_tokens

    def _gdn_flashinfer(self, states: list[L.RecurrentState], req: Request) -> bool:
        """GDN layers run FlashInfer's prefill (qwen_gdn_linear_attn.py `_resolve_gdn_prefill_backend`): SM90, or
        SM100 / SM120 with 128-wide keys (CUDA 13 assumed)."""
        major = _major(req.compute_capability)
        gdn = [s for s in states if s.family == "gated_deltanet"]
        if not gdn or major is None or len(gdn) != len(states):
            return False
        if _capability(req.compute_capability) == (9, 0):
            return True
        return major in (10, 12) and all(len(s.ssm_shape) > 1 and s.ssm_shape[1] == 128 for s in gdn)

    def state_pages(self, state: L.RecurrentState, states: list[L.RecurrentState], req: Request, mode: str) -> int:
        """Pages one request's state holds in one layer (MambaSpec.max_memory_usage_bytes / page): 1, or 2 (+1
        prefill checkpoint) in `align` mode, plus num_speculative_tokens with speculative decoding
        (num_speculative_blocks: vllm-0.33.0 model_executor/layers/mamba/abstract.py:86-90,
        v1/kv_cache_interface.py:1136-1141; 0.19.1 :297-300, 0.24.0 :654-657)."""
        spec = req.num_speculative_tokens
        if mode != "align":
            return 1 + spec
        row = vllm_behaviour(req.engine_version)
        checkpoint = (row.mamba2_checkpoint and state.family == "mamba2") or (
            row.gdn_flashinfer_checkpoint and state.family == "gated_deltanet" and self._gdn_flashinfer(states, req)
        )
        checkpoint = checkpoint or (row.kda_flashkda_checkpoint and self._flashkda(state, req))
        return 2 + int(checkpoint) + spec

    @staticmethod
    def _flashkda(state: L.RecurrentState, req: Request) -> bool:
        """A KDA layer runs FlashKDA's prefill (models/kimi_k3/nvidia/kda.py:363-379 `is_flashkda_supported`, chosen
        by `resolve_kda_prefill_backend` at :486-525 for the default "auto"): CUDA SM9x/10x/12x, 128-wide heads, a
        bf16 model, a float32 or bf16 recurrent state (float32 by default) and a bounded gate in the config."""
        major = _major(req.compute_capability)
        return (
            state.family == "kda"
            and major in (9, 10, 12)
            and len(state.ssm_shape) > 1
            and state.ssm_shape[1] == 128
            and req.model_dtype == "bfloat16"
            and state.gate_lower_bound is not None
        )

    # -- block sizes

    @staticmethod
    def backend_block_size(caches: list[L.Layer], req: Request) -> int:
        """The block size the attention backend prefers (platforms/cuda.py `_get_backend_priorities`, the backend's
        `get_preferred_block_size`): 16, except MLA on Hopper with an fp8 cache (FLASHMLA: 64; FLASH_ATTN_MLA has
        no fp8), MLA on Blackwell SM10x (FLASHINFER_MLA: 32) and sparse (DSA) MLA on every CUDA GPU: 64, the only
        size the DSA indexer's backend takes (v1/attention/backends/mla/indexer.py:285-286; every sparse MLA
        backend takes multiples of 64 or 32, platforms/interface.py:700-747 picks the smallest size all accept).
        --block-size wins."""
        if req.block_size:
            return req.block_size
        if any(isinstance(c, L.IndexKeys) for c in caches):
            return MSA_BLOCK_SIZE
        if any(isinstance(c, L.MlaLatent) and c.sparse for c in caches):
            return DSA_BLOCK_SIZE
        major = _major(req.compute_capability)
        if major is not None and any(isinstance(c, L.MlaLatent) for c in caches):
            if major == 9 and req.kv_dtype.startswith("fp8"):
                return 64
            if major == 10:
                return 32
        return DEFAULT_BLOCK_SIZE

    def block_size(self, caches: list[L.Layer], req: Request) -> int:
        caches = with_draft(caches, req)
        if any(isinstance(c, L.CompressedAttention) for c in caches):
            return req.block_size or V4_BLOCK_SIZE  # cache_config.block_size: the compressed and indexer pages'
        base = self.backend_block_size(caches, req)
        states = [c for c in caches if isinstance(c, L.RecurrentState)]
        attn = [c for c in caches if isinstance(c, (L.KVAttention, L.MlaLatent))]
        if not states or not attn:
            return base
        row = vllm_behaviour(req.engine_version)
        mode = self.mamba_cache_mode(caches, req)
        state_page = max(self._state_bytes(c, req) for c in states)
        per_token = max(self._token_bytes(c, req) for c in attn)
        unit = max(_ALIGN, base) if row.hybrid_block_unit_from_block_size else _ALIGN
        if row.mla_hybrid_block_unit and any(isinstance(c, L.MlaLatent) for c in attn):
            unit = max(unit, row.mla_hybrid_block_unit)  # TRTLLM/FlashInfer MLA decode kernels' 128-token rule
        if mode == "all":
            chunk = lcm(max(s.chunk_size for s in states) or _MAMBA1_CHUNK, unit)
            return max(base, chunk * cdiv(cdiv(state_page, per_token), chunk))
        if mode == "align" and row.gdn_flashinfer_checkpoint and self._gdn_flashinfer(states, req):
            unit = lcm(unit, _GDN_FLASHINFER_ALIGNMENT)
        return max(base, unit * cdiv(state_page, unit * per_token))

    # -- grouping

    def plan(self, caches: list[L.Layer], req: Request) -> GroupPlan:
        """Group the stage's layers the way vLLM's hybrid allocator does (the drafter's attention layers of a
        speculative setup, `Request.speculative`, join the stage's: their specs share the pool)."""
        caches = with_draft(caches, req)
        self.check(caches, req)
        if any(isinstance(c, L.CompressedAttention) for c in caches):
            return self.v4_plan(caches, req)
        distinct = Counter(caches)  # layers repeat: each distinct cache is sized once
        layers = list(distinct)
        block = self.block_size(layers, req)
        mode = self.mamba_cache_mode(layers, req)
        states = [c for c in layers if isinstance(c, L.RecurrentState)]
        counts: dict[Spec, int] = {}
        for cache, n in distinct.items():
            spec = self.spec(cache, req, block, mode, states)
            if spec is not None:
                counts[spec] = counts.get(spec, 0) + n
        counts = _uniform_type(counts) or _unify_pages(counts, vllm_behaviour(req.engine_version))
        if not counts:
            return GroupPlan({}, 1)
        low, high = min(counts.values()), max(counts.values())
        return GroupPlan(counts, high if high < 1.5 * low else low)

    def spec(
        self,
        cache: L.Layer,
        req: Request,
        block: int,
        mode: str = "none",
        states: list[L.RecurrentState] | None = None,
    ) -> Spec | None:
        if isinstance(cache, L.KVAttention):
            return Spec(cache.kind, block * self._token_bytes(cache, req), block, self._window(cache))
        if isinstance(cache, L.MlaLatent):
            return Spec(cache.kind, block * self._token_bytes(cache, req), block, mla=True)
        if isinstance(cache, L.IndexKeys):
            # MiniMaxM3IndexerCache.get_kv_cache_spec: MLAAttentionSpec(block_size, num_kv_heads=1,
            # head_size=sparse_index_dim, bf16) (vllm-0.33.0 models/minimax_m3/common/indexer.py:145-152): one key
            # per token, on every TP rank
            return Spec(cache.kind, block * cache.head_dim * MSA_INDEX_KEY_BYTES, block, mla=True)
        if isinstance(cache, L.RecurrentState):
            pages = None if mode == "all" else self.state_pages(cache, states or [cache], req, mode)
            return Spec(cache.kind, self._state_bytes(cache, req), block, state_pages=pages)
        return None

    def _window(self, cache: L.FullAttention | L.SlidingWindow | L.ChunkedLocal) -> int | None:
        """The layer's window as vLLM's spec holds it: MiMo-V2-Flash's attention gets the config's
        `sliding_window_size` (models/mimo_v2.py:416 -> :318 -> Attention per_layer_sliding_window,
        model_executor/layers/attention/attention.py:266-268), one less than the shape's transformers window."""
        shape = self.shape
        if cache.kind == L.SLIDING and cache.window and shape is not None and WINDOW_IS_SIZE_PLUS_ONE in shape.features:
            return cache.window - 1
        return cache.window

    def token_limit(self, spec: Spec, req: Request) -> int | None:
        """Tokens past which a windowed spec's reservation stops growing (None: it always grows)."""
        if spec.window is None:
            return None
        if spec.kind == L.SLIDING:
            return spec.window - 1 + self.in_flight_tokens(req)
        if spec.kind == L.CHUNKED:
            return spec.window + self.in_flight_tokens(req)
        return None

    def blocks_per_request(self, spec: Spec, req: Request) -> int:
        """Pages one request of `req.seq_len` tokens may hold in one layer of this spec (max_memory_usage / page).

        Decode context parallelism (`req.dcp` > 1) splits an attention or MLA cache's token positions over the
        DCP ranks: a request's blocks span `block_size x dcp` tokens (vllm-0.33.0/vllm/v1/kv_cache_interface.py:
        610-616 `max_num_blocks_per_req`, :644-649 `max_memory_usage_bytes`; v1/core/single_type_kv_cache_manager.py
        :107-109), whatever `--cp-kv-cache-interleave-size` (it places tokens inside those blocks, :423-436 of
        config/parallel.py). Mamba-style states are no AttentionSpec: never sharded (`dcp_sharded` False,
        v1/kv_cache_interface.py:207)."""
        if spec.kind == L.STATE:
            if spec.state_pages is not None:
                return spec.state_pages
            # `all` mode: a page per block; 0.24.0 adds the speculative blocks (kv_cache_interface.py:650-653)
            extra = req.num_speculative_tokens if vllm_behaviour(req.engine_version).all_mode_speculative_blocks else 0
            return cdiv(req.seq_len, spec.block_size) + extra
        limit = self.token_limit(spec, req)
        tokens = req.seq_len if limit is None else min(limit, req.seq_len)
        return cdiv(tokens, spec.block_size * self.dcp_shards(spec, req)) + (1 if spec.kind == L.SLIDING else 0)

    @staticmethod
    def dcp_shards(spec: Spec, req: Request) -> int:
        """The DCP ranks a spec's token positions are split over: `req.dcp` for attention and MLA caches (vLLM's
        AttentionSpec `dcp_sharded = True`, v1/kv_cache_interface.py:553, the DSA indexer's MLAAttentionSpec
        included: models/deepseek_v2.py:658-666), 1 for recurrent states."""
        return 1 if spec.kind == L.STATE else req.dcp

    def stage_costs(self, caches: list[L.Layer], req: Request) -> list[KindCost]:
        plan = self.plan(caches, req)
        items = []
        for spec, count in plan.specs.items():
            layers_paid = plan.groups(spec) * plan.group_size
            blocks = self.blocks_per_request(spec, req)
            limit = self.token_limit(spec, req)
            if spec.kind == L.STATE:
                grows = spec.state_pages is None
            else:
                grows = limit is None or req.seq_len < limit
            span = spec.block_size * self.dcp_shards(spec, req)  # tokens a block of one request covers
            tokens = None if spec.kind == L.STATE else min(blocks * span, req.seq_len)
            for kind, page, layers in spec.parts or ((spec.label or spec.kind, spec.page, spec.layers),):
                share = Fraction(page * layers_paid, span) if grows else Fraction(0)
                bytes_ = blocks * page * layers_paid * req.batch
                items.append(KindCost(kind, count * layers, bytes_, share, tokens))
        no_cache = sum(isinstance(c, L.NoCache) for c in caches)
        if no_cache:
            items.append(KindCost(L.NONE, no_cache, 0, Fraction(0), None))
        return merge_kinds(items)

    def check(self, caches: list[L.Layer], req: Request) -> None:
        """The KV dtype exists in this release (vLLM's spelling, config/cache.py CacheDType), and for this model."""
        if any(isinstance(c, L.RecurrentState) and c.family == "lightning" for c in caches):
            raise UsageError(
                "vLLM does not serve MiniMax-01's lightning attention: 0.23.0 removed MiniMaxText01ForCausalLM "
                "and MiniMaxM1ForCausalLM (model_executor/models/registry.py:861-864), and kvplan has not read "
                "the releases before",
                hint=Text("use {engine} transformers for this model"),
                field="engine",
            )
        refuse_index_keys(
            "vLLM 0.33",
            caches,
            self.shape.architectures if self.shape is not None else (),
            MINIMAX_M3_SERVED,
            model_type=(self.shape.config_model_type or None) if self.shape is not None else None,
            loader="vllm/transformers_utils/config.py:155-156, :445",
            registry="vllm/model_executor/models/registry.py:169-171, :523-525, fallback :1298-1317",
            sized=True,
        )
        if any(isinstance(c, L.IndexKeys) for c in caches):
            refuse_m3_layer_types(
                "vLLM 0.33",
                self.shape.features if self.shape is not None else frozenset(),
                "models/minimax_m3/nvidia/model.py:98-106: without it every layer is built as dense attention",
            )
            # a minimax_m3_vl wrapper is vLLM's own MiniMaxM3Config, whose MiniMaxM3TextConfig keeps the key
            # (transformers_utils/configs/minimax_m3.py:141-143, :89-104); a top-level minimax_m3_vl_text goes to
            # transformers' AutoConfig (transformers_utils/config.py:445)
            refuse_m3_dropped_sparse_config(
                "vLLM 0.33",
                self.shape.features if self.shape is not None else frozenset(),
                self.shape is not None and self.shape.config_model_type == "minimax_m3_vl_text",
                "vLLM then builds every layer as dense attention (models/minimax_m3/nvidia/model.py:98-106)",
            )
            self._check_minimax_m3(req)
        if any(isinstance(c, L.CompressedAttention) for c in caches):
            if req.dcp > 1:
                _refuse_unread_dcp(req)
                raise UsageError(
                    Text(
                        "vLLM cannot shard DeepSeek-V4's sliding-window caches over {dcp} {d}: its compressor states "
                        "are SlidingWindowMLASpec (models/deepseek_v4/compressor.py:184), DCP-sharded by default, "
                        "whose max_memory_usage_bytes asserts DCP 1 (v1/kv_cache_interface.py:946-950)",
                        d=req.dcp,
                    ),
                    hint=Text("drop {dcp} for this model"),
                    field="dcp",
                )
            self._check_v4(caches, req)
            return
        mla = any(isinstance(c, L.MlaLatent) for c in caches)
        if req.dcp > 1:
            self._check_dcp(caches, req, mla)
        if any(isinstance(c, L.MlaLatent) and c.sparse for c in caches):
            self._check_sparse_mla(req)
            return
        if req.kv_dtype in ("int8", "int4", "nvfp4") and mla:
            hint = "use {kv_dtype} fp8 or auto"
            if req.kv_dtype == "nvfp4":
                hint += " (vLLM's nvfp4_ds_mla, from 0.30.0, is for sparse MLA only)"
            raise UsageError(f"vLLM has no {req.kv_dtype} cache for MLA models", hint=Text(hint), field="kv_dtype")
        spelling = KV_CACHE_DTYPE_FLAGS.get(req.kv_dtype)
        row = vllm_behaviour(req.engine_version)
        if spelling is not None and spelling not in row.kv_cache_dtypes:
            first = first_release_with(spelling)
            version = req.engine_version or NEWEST_VLLM
            raise UsageError(
                f"vLLM {version} has no {short_dtype(req.kv_dtype)} KV cache (--kv-cache-dtype {spelling} is first "
                f"in vLLM {first})",
                hint=Text("pass {vllm_version} {first} or later, or use {kv_dtype} fp8", first=first),
                field="kv_dtype",
            )

    def _check_dcp(self, caches: list[L.Layer], req: Request, mla: bool) -> None:
        """vLLM's decode-context-parallel checks: DCP reuses the TP ranks, so TP must be a multiple of it
        (vllm-0.33.0/vllm/config/parallel.py:594-599); for GQA/MQA, TP must exceed the KV heads, DCP be at most
        TP / KV heads and divide the query heads per KV head (config/model.py:1578-1606); sliding-window and
        chunked-local caches cannot be sharded (v1/kv_cache_interface.py:946-950, v1/core/
        single_type_kv_cache_manager.py:984 and :1336 assert DCP 1)."""
        tp, dcp = req.tp, req.dcp
        _refuse_unread_dcp(req)
        if tp % dcp:
            raise UsageError(
                Text("{dcp} {d} does not divide {tp} {t}: vLLM's DCP reuses the TP ranks", d=dcp, t=tp),
                hint=Text("choose {dcp} a divisor of {tp}"),
                field="dcp",
            )
        windowed = sorted({c.kind for c in caches if isinstance(c, L.KVAttention) and c.kind != L.FULL})
        if windowed:
            raise UsageError(
                Text("vLLM cannot shard {kinds} caches over {dcp} {d}", kinds=" and ".join(windowed), d=dcp),
                hint=Text("drop {dcp} for this model"),
                field="dcp",
            )
        if mla or self.shape is None:
            return
        heads = max((c.num_kv_heads for c in caches if isinstance(c, L.KVAttention)), default=0)
        q_heads = self.shape.num_attention_heads
        if heads and tp <= heads:
            raise UsageError(
                Text(
                    "vLLM's DCP for GQA/MQA needs {tp} above the model's {n} KV heads, got {t}",
                    n=heads,
                    t=tp,
                ),
                hint=Text("raise {tp}, or drop {dcp}"),
                field="dcp",
            )
        if heads and (dcp > tp // heads or (q_heads and (q_heads // heads) % dcp)):
            raise UsageError(
                Text(
                    "{dcp} {d} is above {tp} {t} / {n} KV heads, or does not divide the {q} query heads per KV head",
                    d=dcp,
                    t=tp,
                    n=heads,
                    q=q_heads // heads if q_heads else 0,
                ),
                hint=Text("choose {dcp} at most {m} that divides the query heads per KV head", m=tp // heads),
                field="dcp",
            )

    def _check_minimax_m3(self, req: Request) -> None:
        """What kvplan has read of vLLM's MiniMax-M3 (MiniMaxM3Sparse*: models/minimax_m3, registered since 0.24.0,
        read in 0.24-0.33, the same layout in each): the KV dtypes of its sparse backend (`supported_kv_cache_dtypes`,
        models/minimax_m3/common/sparse_attention.py:140-145: bf16, fp8, fp8_e4m3, fp8_e5m2; an fp16 model's `auto`);
        block sizes that are a multiple of the backends' kernel block of 128 (attention/backend.py:122-138 with
        common/sparse_attention.py:165-167, common/indexer.py:94-95), and in 0.24-0.30 (`minimax_m3_blocks`
        "first_backend") a --block-size wherever a pipeline stage starts on a dense layer; no decode context
        parallelism and no MTP drafter (MiniMaxM3MTP, models/minimax_m3/nvidia/mtp.py), whose rules kvplan has not
        read."""
        row = vllm_behaviour(req.engine_version)
        if not row.minimax_m3_blocks:
            raise UsageError(
                Text(
                    "vLLM registers MiniMax-M3's sparse-attention model (MiniMaxM3Sparse*) since 0.24.0 "
                    "(vllm-0.24.0 model_executor/models/registry.py:163; 0.23.0 has none), not in {v}",
                    v=req.engine_version,
                ),
                hint=Text("pass {vllm_version} 0.24.0 or later"),
                field="vllm_version",
            )
        if row.minimax_m3_blocks == "first_backend" and not req.block_size and self.shape is not None:
            layers = self.shape.layers
            dense = [
                stage.start
                for stage in pipeline_stages(len(layers), req.pp)
                if not any(isinstance(c, L.IndexKeys) for c in layers[stage.start])
            ]
            if dense:
                raise UsageError(
                    Text(
                        "vLLM {v} cannot start MiniMax-M3 without {block_size}: it takes the block size of the "
                        "first attention layer's backend alone (platforms/interface.py:609-625, "
                        "`_find_non_ssm_backend` :574-591 in 0.24-0.25; :624-640, :589-606 in 0.26-0.30), and "
                        "layer {n} is dense, its backend keeping the default 16 (FlashAttention: "
                        "v1/attention/backends/flash_attn.py:94 MultipleOf(16)), which the MSA and indexer "
                        "backends' kernel blocks of 128 do not divide (models/minimax_m3/common/sparse_attention.py:"
                        "82-84, common/indexer.py:84-85 in 0.24.0): select_common_block_size raises 'No common "
                        "block size for 16.' (v1/worker/utils.py:328 in 0.24.0)",
                        v=req.engine_version,
                        n=dense[0],
                    ),
                    hint=Text(
                        "pass {block_size} 128 (or a multiple of 128), as vLLM {v} needs, or {vllm_version} 0.31.0 "
                        "or later",
                        v=req.engine_version,
                    ),
                    field="block_size",
                )
        if req.kv_dtype not in ("bfloat16", "float16", "fp8_e4m3", "fp8_e5m2"):
            raise UsageError(
                f"vLLM's MiniMax-M3 sparse-attention backend takes a bf16 or fp8 KV cache "
                f"(models/minimax_m3/common/sparse_attention.py:140-145); kvplan has not read its "
                f"{short_dtype(req.kv_dtype)} pages",
                hint=Text("use {kv_dtype} auto or fp8"),
                field="kv_dtype",
            )
        if req.block_size and req.block_size % MSA_BLOCK_SIZE:
            raise UsageError(
                f"vLLM's MiniMax-M3 sparse-attention and indexer backends need a block size that is a multiple of "
                f"{MSA_BLOCK_SIZE} (models/minimax_m3/common/sparse_attention.py:165-167, common/indexer.py:94-95; "
                "v1/attention/backend.py:122-138)",
                hint=Text("pass {block_size} 128 (the size vLLM picks) or a multiple of it"),
                field="block_size",
            )
        if req.dcp > 1:
            raise UsageError(
                "kvplan has not read how vLLM shards MiniMax-M3's GQA K/V and indexer keys over decode context "
                "parallel ranks",
                hint=Text("drop {dcp} for this model"),
                field="dcp",
            )
        if req.speculative is not None:
            raise UsageError(
                "kvplan has not read the KV layers of vLLM's MiniMax-M3 MTP drafter (MiniMaxM3MTP, "
                "models/minimax_m3/nvidia/mtp.py)",
                hint=Text("plan this model without {speculative_config}"),
                field="speculative_config",
            )

    @staticmethod
    def _check_sparse_mla(req: Request) -> None:
        """Sparse (DSA) MLA: the KV dtypes a sparse MLA backend takes (FLASH_ATTN_MLA_SPARSE, FLASHMLA_SPARSE,
        FLASHINFER_MLA_SPARSE*: `supported_kv_cache_dtypes` in v1/attention/backends/mla/flashattn_mla_sparse.py:43,
        flashmla_sparse.py:149-155, flashinfer_mla_sparse.py:84-90 and :168-173): bf16/fp16, fp8 (e4m3) and, on
        Blackwell SM100 from 0.30, nvfp4 as `nvfp4_ds_mla` (flashmla_sparse.py:250-254); block sizes that are a
        multiple of 64 (the indexer's, indexer.py:285-286 with attention/backend.py:122-138); a GPU one of them runs
        on (`supports_compute_capability`: flashattn_mla_sparse.py:82-83, flashmla_sparse.py:203-204,
        flashinfer_mla_sparse.py:105-106 and :192-193, flashinfer_mla_sparse_sm90.py:189-190)."""
        if req.kv_dtype not in ("bfloat16", "float16", "fp8_e4m3", "nvfp4"):
            raise UsageError(
                f"vLLM has no {short_dtype(req.kv_dtype)} cache for sparse-attention (DSA) MLA models",
                hint=Text("use {kv_dtype} fp8 or auto (or nvfp4 on Blackwell B200/B300)"),
                field="kv_dtype",
            )
        major = _major(req.compute_capability)
        if major is not None and major not in (9, 10, 12):
            raise UsageError(
                f"vLLM has no sparse MLA (DSA) backend for compute capability {req.compute_capability}: "
                "FLASH_ATTN_MLA_SPARSE and FLASHINFER_MLA_SPARSE_SM90 run on SM90, FLASHMLA_SPARSE on SM90/SM100, "
                "FLASHINFER_MLA_SPARSE on SM100, FLASHINFER_MLA_SPARSE_SM120 on SM120",
                hint="plan this model on Hopper or Blackwell GPUs",
                field="gpu_profile",
            )
        if req.kv_dtype == "nvfp4":
            row = vllm_behaviour(req.engine_version)
            if "nvfp4_ds_mla" not in row.kv_cache_dtypes:
                raise UsageError(
                    f"vLLM {req.engine_version or NEWEST_VLLM} has no nvfp4_ds_mla KV cache (first in vLLM 0.30.0)",
                    hint=Text("pass {vllm_version} 0.30 or later, or use {kv_dtype} fp8"),
                    field="kv_dtype",
                )
            if major is not None and major != 10:
                raise UsageError(
                    "vLLM's nvfp4_ds_mla cache runs on Blackwell SM100 (B200/B300) only",
                    hint=Text("use {kv_dtype} fp8 on this GPU"),
                    field="kv_dtype",
                )
        if req.block_size and req.block_size % DSA_BLOCK_SIZE:
            raise UsageError(
                f"vLLM's DSA indexer needs a block size that is a multiple of {DSA_BLOCK_SIZE}",
                hint=Text("pass {block_size} 64 (the default) or a multiple of it"),
                field="block_size",
            )

    @staticmethod
    def sparse_mla_format(req: Request) -> str:
        """The layout vLLM stores a sparse (DSA) MLA latent in, by the backend it picks (platforms/cuda.py:83-155
        in priority order, each backend's `supported_kv_cache_dtypes` and `supports_combination`), canonicalised by
        `_canonicalize_sparse_mla_kv_cache_dtype` (model_executor/layers/attention/mla_attention.py:359-375):
        - bf16 / fp16: the plain latent (FLASH_ATTN_MLA_SPARSE on Hopper, FLASHMLA_SPARSE / FA4 on SM100), except on
          SM120, whose one sparse backend (FLASHINFER_MLA_SPARSE_SM120) serves `auto` as fp8_ds_mla (and
          DeepseekV32ForCausalLM maps bfloat16 to auto, model_executor/models/config.py:84-86);
        - fp8: `fp8_ds_mla` on Hopper (FLASHMLA_SPARSE: FLASH_ATTN_MLA_SPARSE has no fp8) and SM120, the plain fp8
          latent on SM100 (FLASHINFER_MLA_SPARSE, first for a quantized cache, stores "standard fp8",
          mla_attention.py:535-544); without a GPU, Hopper's;
        - nvfp4: `nvfp4_ds_mla` (FLASHMLA_SPARSE, SM100)."""
        major = _major(req.compute_capability)
        if req.kv_dtype == "nvfp4":
            return "nvfp4_ds_mla"
        if req.kv_dtype == "fp8_e4m3":
            return "fp8" if major == 10 else "fp8_ds_mla"
        return "fp8_ds_mla" if major == 12 else "plain"

    # -- bytes of one token (attention) or one state (Mamba) on one TP rank

    def _token_bytes(self, cache: L.KVAttention | L.MlaLatent, req: Request) -> int:
        kv_bytes = DTYPE_BYTES[req.kv_dtype]
        if isinstance(cache, L.MlaLatent) and cache.sparse:
            return self._sparse_mla_bytes(cache, req)
        if isinstance(cache, L.MlaLatent):
            return int(cache.bytes_per_token(kv_bytes))
        heads = kv_heads_per_rank(cache.num_kv_heads, req.tp)
        if req.kv_dtype == "nvfp4":
            return heads * sum(d // 2 + d // 16 for d in (cache.head_dim_k, cache.head_dim_v))
        if req.kv_dtype == "int4":  # int4_per_token_head: packed 2 x int4 per byte + an fp32 scale per side
            return heads * (cache.head_dim_k // 2 + cache.head_dim_v // 2 + 2 * 4)
        scales = 2 * heads * 4 if req.kv_dtype == "int8" else 0
        return int(cache.bytes_per_token(kv_bytes, heads)) + scales

    def _sparse_mla_bytes(self, cache: L.MlaLatent, req: Request) -> int:
        """One token of a sparse MLA layer: the latent in its layout (`sparse_mla_format`: `state_content_bytes`
        656 for fp8_ds_mla, 352 for nvfp4_ds_mla, mla_attention.py:1386-1388; else (kv_lora_rank +
        qk_rope_head_dim) x dtype bytes, MLAAttentionSpec head_size_v 0, kv_cache_interface.py:743) plus, on a
        layer that runs an indexer, its key cache: index_head_dim fp8 bytes and one fp32 scale per 128 (uint8,
        models/deepseek_v32/attention.py:90-99: 132 B for 128-wide keys) whatever the KV dtype. Both specs are
        MLAAttentionSpec with one block size, so vLLM keeps them in one KV-cache group (`_uniform_type`); kvplan
        sizes a layer's two pages as one."""
        fmt = self.sparse_mla_format(req)
        if fmt == "fp8_ds_mla":  # 512 fp8 + 4 fp32 scales (one per 128) + 64 bf16 RoPE (flashmla_sparse.py:79-87)
            latent = fp8_block_scaled_bytes(cache.kv_lora_rank) + 2 * cache.rope_head_dim
        elif fmt == "nvfp4_ds_mla":  # 512 e2m1 + 64 fp8 RoPE + one fp8 scale per 16 (flashmla_sparse.py:111-121)
            latent = cache.kv_lora_rank // 2 + cache.rope_head_dim + cache.kv_lora_rank // 16
        else:
            latent = int(cache.latent_elements() * DTYPE_BYTES[req.kv_dtype])
        indexer = fp8_block_scaled_bytes(cache.index_head_dim) if cache.index_head_dim else 0
        return latent + indexer

    # -- DeepSeek-V4 (vllm/models/deepseek_v4, read in 0.33.0 and checked against 0.29.0)

    @staticmethod
    def _check_v4(caches: list[L.Layer], req: Request) -> None:
        """What vLLM serves DeepSeek-V4 with: the release registers DeepseekV4ForCausalLM and kvplan has read how it
        groups the model's specs (`v4_kv_groups`); the KV dtype is one the default CUDA backends take (FlashMLA's
        DeepseekV4SparseMLABackend: auto, fp8 and fp8_ds_mla, models/deepseek_v4/sparse_mla.py:53-57, and a
        bfloat16 model, :52; FlashInfer's SM120 layer keeps the same fp8_ds_mla layout,
        models/deepseek_v4/nvidia/flashinfer_sparse.py:624); the block size is the one the sparse-MLA and indexer
        backends take (256: sparse_mla.py:60-61, v1/attention/backends/mla/indexer.py:355-357); a GPU one of its
        backends runs on (SM9x/SM10x/SM12x, `supports_compute_capability`); one pipeline
        stage (kvplan has not read how the release projects the groups onto each stage's worker)."""
        row = vllm_behaviour(req.engine_version)
        version = req.engine_version or NEWEST_VLLM
        if not row.v4_kv_groups:
            raise UsageError(
                f"vLLM {version} does not serve DeepSeek-V4: DeepseekV4ForCausalLM is first registered in vLLM "
                "0.20.0 (model_executor/models/registry.py:99)",
                hint=Text("pass {vllm_version} 0.20.0 or later"),
                field="vllm_version",
            )
        if not row.v4_auto_kv and req.kv_dtype != "fp8_e4m3":
            raise UsageError(
                f"vLLM {version} serves DeepSeek-V4 with an fp8 KV cache only: it asserts "
                "kv_cache_dtype.startswith('fp8') and stores fp8_ds_mla (vllm-0.20.0 model_executor/layers/"
                "deepseek_v4_attention.py:594-613, 0.25.0 models/deepseek_v4/attention.py:81-90, 0.29.0 :105), so "
                f"`--kv-cache-dtype auto` ({short_dtype(req.kv_dtype)} here) fails in 0.20-0.29",
                hint=Text("use {kv_dtype} fp8"),
                field="kv_dtype",
            )
        if row.v4_auto_kv and req.kv_dtype == "bfloat16":
            raise UsageError(
                f"vLLM {version} stores DeepSeek-V4 in the fp8_ds_mla layout on its default backends, which maps "
                "`--kv-cache-dtype auto` to fp8 and raises 'DeepseekV4 fp8_ds_mla layout only supports fp8 kv-cache' "
                "for an explicit bf16 cache (models/deepseek_v4/attention.py:107-116 in 0.30.0 and 0.33.0; the plain "
                "bf16 rows of DeepseekV4FlashInferMLAAttention, 0.33.0 nvidia/flashinfer_sparse.py:206, belong to a "
                "backend that is not the default, which kvplan does not model)",
                hint=Text("use {kv_dtype} auto or fp8 (both run fp8_ds_mla)"),
                field="kv_dtype",
            )
        if req.kv_dtype not in ("bfloat16", "fp8_e4m3"):
            raise UsageError(
                f"vLLM has no {short_dtype(req.kv_dtype)} cache for DeepSeek-V4: its CUDA backends store the "
                "fp8_ds_mla layout (`--kv-cache-dtype auto` or fp8, models/deepseek_v4/attention.py:94-129 and "
                "sparse_mla.py:53-57) in a bfloat16 model",
                hint=Text("use {kv_dtype} fp8 or auto"),
                field="kv_dtype",
            )
        major = _major(req.compute_capability)
        if major == 12 and not row.v4_sm12:
            raise UsageError(
                f"vLLM {version} has no DeepSeek-V4 attention backend for compute capability "
                f"{req.compute_capability}: 0.20-0.23 run FlashMLA's sparse backend, SM9x/SM10x only (vllm-0.20.0 "
                "v1/attention/backends/mla/flashmla_sparse.py:132-133, 0.23.0 models/deepseek_v4/sparse_mla.py:90-91 "
                "and nvidia/model.py:716-727); SM12x runs FlashInfer's SM120 layer from 0.24.0 (nvidia/model.py:767-768)",
                hint=Text("plan SM12x GPUs with {vllm_version} 0.24 or later, or use a Hopper or Blackwell SM10x GPU"),
                field="gpu_profile",
            )
        if major is not None and major not in (9, 10, 12):
            raise UsageError(
                f"vLLM has no DeepSeek-V4 attention backend for compute capability {req.compute_capability}: "
                "FlashMLA's runs on SM9x/SM10x (models/deepseek_v4/sparse_mla.py:95-96), FlashInfer's on SM10x/SM12x "
                "(models/deepseek_v4/nvidia/flashinfer_sparse.py:140-141)",
                hint="plan this model on Hopper or Blackwell GPUs",
                field="gpu_profile",
            )
        if req.block_size and req.block_size != V4_BLOCK_SIZE:
            raise UsageError(
                f"vLLM's DeepSeek-V4 sparse-MLA and indexer backends take block size {V4_BLOCK_SIZE} only "
                "(models/deepseek_v4/sparse_mla.py:60-61, v1/attention/backends/mla/indexer.py:355-357)",
                hint=Text("pass {block_size} 256 or leave it out"),
                field="block_size",
            )
        if req.pp > 1:
            raise UsageError(
                "kvplan does not model vLLM's DeepSeek-V4 KV-cache groups across pipeline stages (the global groups "
                "are projected onto each worker, v1/core/kv_cache_planning.py:1413-1460)",
                hint=Text("plan with {pp} 1 (tensor parallelism replicates the cache: one latent head)"),
                field="pp",
            )
        if not any(isinstance(c, L.CompressedAttention) and c.index_head_dim for c in caches):
            raise UsageError(
                "kvplan models vLLM's DeepSeek-V4 groups for models with CSA (compress ratio 4) layers: their indexer "
                "is what makes vLLM pack the pages block-outermost (v1/attention/backends/mla/indexer.py:349-353)",
                hint="report the model at kvplan's issue tracker",
                field="engine",
            )

    def v4_plan(self, caches: list[L.Layer], req: Request) -> GroupPlan:
        """DeepSeek-V4's KV-cache groups and pool (vLLM 0.29-0.33): the specs of every layer (`v4_layer_specs`),
        grouped by `v4_packed_groups`; one block of the shared pool costs the widest group's pages
        (`_get_kv_cache_bytes_per_block`, v1/core/kv_cache_planning.py:574-606: no spec sets a block-stride
        alignment), so every group's spec is given that page, and a request holds whole blocks in every group
        (`get_max_concurrency_for_kv_cache_config`, v1/core/kv_cache_utils.py:1061-1093). Every spec is one latent
        head with `max_tp_shards=1`: each TP rank holds the whole cache. vLLM 0.26 (`v4_kv_groups` "tuples"):
        `v4_tuple_groups`, each group's spec its own (padded) pages, a pool block the packed layout's stride
        (`v4_tuple_stride`) and a request's blocks its bytes over the first (compressed) group's page. vLLM
        0.20-0.22 ("tuple_slots"): the same, a pool block `v4_tuple_slot_stride`. 0.23-0.25 are 0.26's. vLLM
        0.27-0.28 ("overlaid"): `v4_tuple_groups` without the padding, the groups overlaid in one block as wide as
        the widest (`_get_packed_kv_cache_layout`, vllm-0.27.0 v1/core/kv_cache_utils.py:1283-1305, 0.28.0
        :1249-1271) and a request's blocks the sum of its blocks in each group (:937-959, 0.28.0 :917-939), as from
        0.29. In 0.26-0.28 the start-up check prices a request's blocks at `v4_check_page`."""
        specs = [
            spec for i, c in enumerate(caches) if isinstance(c, L.CompressedAttention) for spec in v4_layer_specs(c, i)
        ]
        grouping = vllm_behaviour(req.engine_version).v4_kv_groups
        tuples = grouping in ("tuples", "tuple_slots")
        if grouping == "packed":
            groups = v4_packed_groups(specs)
        else:
            groups = v4_tuple_groups(specs, pad=tuples)
        widest = max(sum(s.page for s in group) for group in groups)
        counts: dict[Spec, int] = {}
        for group in groups:
            first = group[0]
            spec = Spec(
                L.MLA if first.window is None else L.SLIDING,
                sum(s.page for s in group) if tuples else widest,
                first.block_size,
                first.window,
                mla=first.window is None,
                layers=len({s.layer for s in group}),
                label=V4_LABELS[first.role],
            )
            counts[spec] = counts.get(spec, 0) + 1
        if tuples:
            return GroupPlan(
                counts,
                1,
                block_bytes=v4_tuple_slot_stride(groups) if grouping == "tuple_slots" else v4_tuple_stride(groups),
                request_unit=sum(s.page for s in groups[0]),
                check_page=v4_check_page(groups),
            )
        return GroupPlan(counts, 1, check_page=v4_check_page(groups) if grouping == "overlaid" else 0)

    @staticmethod
    def _state_bytes(cache: L.RecurrentState, req: Request) -> int:
        # conv_kernel - 1 columns in the model dtype, the SSM state in the config's own state dtype where it sets
        # one (Qwen3.5's mamba_ssm_dtype, models/config.py Qwen3_5ForConditionalGenerationConfig); vLLM replicates
        # Mamba2 groups so each shard has its own
        conv = DTYPE_BYTES[req.model_dtype]
        ssm = DTYPE_BYTES.get(cache.ssm_dtype or "", conv)
        # KDA: vllm-0.33.0 model_executor/layers/mamba/mamba_utils.py:133-149 `kda_state_dtype`, the recurrent state
        # in float32 unless --mamba-ssm-cache-dtype says otherwise (read in 0.33.0 only; older releases taken alike)
        if cache.family == "kda":
            ssm = Fraction(4)
        # speculative decoding widens the convolution state by num_speculative_tokens columns for Mamba2, gated
        # DeltaNet, short convolutions and KDA (vllm-0.33.0 model_executor/layers/mamba/mamba_utils.py:186-204,
        # :249-257, :272-285, :296-316; Mamba1's :171-179 does not; gated DeltaNet alike in 0.19.1, 0.20.0, 0.24.0)
        columns = cache.conv_kernel - 1
        if cache.family in _SPEC_CONV_FAMILIES:
            columns += req.num_speculative_tokens
        return int(cache.state_bytes(conv, ssm, columns=columns, tp=req.tp, replicate_groups=True))


_SPEC_CONV_FAMILIES = frozenset({"mamba2", "gated_deltanet", "short_conv", "kda"})


def with_draft(caches: list[L.Layer], req: Request) -> list[L.Layer]:
    """The stage's layers and the drafter's attention layers of `req.speculative` (kvplan puts them on the stage it
    sizes; vLLM builds the drafter with pipeline_parallel_size 1, config/speculative.py:1904)."""
    if req.speculative is None or not req.speculative.draft_caches:
        return list(caches)
    return [*caches, *req.speculative.draft_caches]


# ---------------------------------------------------------------- DeepSeek-V4's specs and groups (0.20-0.33)

V4_BLOCK_SIZE = 256  # cache_config.block_size: the only size the V4 sparse-MLA and indexer backends take
V4_SWA_BLOCK_SIZE = 64  # DeepseekV4SWACache(block_size=64) (v1/attention/backends/mla/sparse_swa.py:85 and :111)
V4_DS_MLA_TOKEN = 584  # fp8_ds_mla: 448 B fp8 NoPE + 128 B bf16 RoPE + 8 B scales (models/deepseek_v4/attention.py:880)
V4_DS_MLA_ALIGN = 576  # fp8_ds_mla pages are padded to a multiple of 576 B (kv_cache_interface.py:719-726)
# The kinds shown for DeepSeek-V4's groups, by the role of the specs in them.
V4_LABELS = {
    "swa": L.V4_SLIDING,
    "compressed": "compressed_kv",
    "indexer": "compressed_kv",
    "state": "compressor_state",
    "indexer_state": "compressor_state",
}


@dataclass(frozen=True)
class V4LayerSpec:
    """One KV-cache spec a DeepSeek-V4 layer registers with vLLM: `role` (see `v4_layer_specs`), `page` (bytes
    of one block, padded), `block_size` (tokens of one block), `window` (the SlidingWindowMLASpec's
    sliding_window; None for an MLAAttentionSpec, a full-attention spec) and the decoder `layer` it belongs to."""

    role: str
    page: int
    block_size: int
    window: int | None
    layer: int = 0


def _ds_mla_page(content: int) -> int:
    """A page padded to fp8_ds_mla's 576 B alignment (`_apply_alignment_padding`, kv_cache_interface.py:719-726,
    `alignment=576` on every V4 spec when the cache is fp8_ds_mla)."""
    return _round_up(content, V4_DS_MLA_ALIGN)


def v4_layer_specs(cache: L.CompressedAttention, layer: int = 0) -> list[V4LayerSpec]:
    """The specs one DeepSeek-V4 layer registers with vLLM 0.33.0 in the fp8_ds_mla layout (`--kv-cache-dtype
    auto` or fp8 on the CUDA backends, models/deepseek_v4/attention.py:94-129), one latent head each:
    - "swa", every layer: the sliding ring, SlidingWindowMLASpec of 64-token blocks x 584 B (v1/attention/backends/
      mla/sparse_swa.py:120-147; attention.py:349-356 passes no block size);
    - "compressed", CSA (ratio 4) and HCA (ratio 128) layers: MLAAttentionSpec with tokens_per_state = ratio, so a
      256-token block holds 256 / ratio entries of 584 B (attention.py:860-882, kv_cache_interface.py:271-275 and
      :584-596);
    - "state": the compressor's fp32 state ring (kv and score, 2 x coff x head_dim, coff 2 with overlap),
      SlidingWindowMLASpec of 4-token blocks (ratio 4) or 8-token blocks (ratio 128), sliding_window coff x ratio
      (models/deepseek_v4/compressor.py:139-191, :283);
    - CSA layers also run the lightning indexer: "indexer", its key cache, an MLAAttentionSpec of index_head_dim
      fp8 bytes + one fp32 scale per 128 (132 B) per entry (attention.py:1020-1035 and :911-925; the default
      indexer_kv_dtype fp8, v1/attention/backends/mla/indexer.py:60-68), and "indexer_state", its compressor's
      state ring (compressor.py:283 with head_dim = index_head_dim).
    Every page is padded to 576 B."""
    specs = [
        V4LayerSpec("swa", _ds_mla_page(V4_SWA_BLOCK_SIZE * V4_DS_MLA_TOKEN), V4_SWA_BLOCK_SIZE, cache.window, layer)
    ]
    ratio = cache.compress_ratio
    if not ratio:
        return specs
    coff = 1 + cache.overlap
    state_block = 4 if ratio == 4 else 8  # compressor.py:168-173
    entries = V4_BLOCK_SIZE // ratio
    specs.append(V4LayerSpec("compressed", _ds_mla_page(entries * V4_DS_MLA_TOKEN), V4_BLOCK_SIZE, None, layer))
    state_page = _ds_mla_page(state_block * 2 * coff * cache.head_dim * 4)
    specs.append(V4LayerSpec("state", state_page, state_block, coff * ratio, layer))
    if cache.index_head_dim:
        key = fp8_block_scaled_bytes(cache.index_head_dim)
        specs.append(V4LayerSpec("indexer", _ds_mla_page(entries * key), V4_BLOCK_SIZE, None, layer))
        index_state = _ds_mla_page(state_block * 2 * coff * cache.index_head_dim * 4)
        specs.append(V4LayerSpec("indexer_state", index_state, state_block, coff * ratio, layer))
    return specs


def approximate_gcd(values: list[int], lower_bound: int) -> int:
    """vLLM's `_approximate_gcd` (v1/core/kv_cache_planning.py:879-911): the chunk d in [lower_bound, max(values)]
    that rounds the values up to multiples of d with the least padding, the larger d on a tie."""
    best, best_pad = max(1, lower_bound), None
    for d in range(max(1, lower_bound), max(values) + 1):
        pad = sum((d - x % d) % d for x in values)
        if best_pad is None or pad < best_pad or (pad == best_pad and d > best):
            best, best_pad = d, pad
    return best


def v4_packed_groups(specs: list[V4LayerSpec]) -> list[list[V4LayerSpec]]:
    """vLLM's `_get_packed_kv_cache_groups` (v1/core/kv_cache_planning.py:914-1041, 0.29.0 alike) for DeepSeek-V4:
    the specs go into buckets of one type (`UniformTypeKVCacheSpecs.is_uniform_type`, kv_cache_interface.py:
    1347-1360: one block size, and full attention or sliding windows of one size); a bucket is balanced when each
    of its page sizes has as many layers; the balanced buckets with several page sizes stay whole, so the most
    layers of one page size among them is the floor of the pattern repeats per group, chosen by `approximate_gcd`
    over every balanced bucket; a balanced bucket is split into cdiv(layers per page size, repeats) groups taking
    every n-th repeat; the others stay whole. (The Mamba and circular-buffer split is never reached: V4 has
    neither, and its CSA layers always give a balanced bucket with two page sizes.)"""
    buckets: dict[tuple[int, int | None], list[V4LayerSpec]] = {}
    for spec in specs:
        buckets.setdefault((spec.block_size, spec.window), []).append(spec)
    shaped = []
    for bucket in buckets.values():
        by_page: dict[int, list[V4LayerSpec]] = {}
        for spec in bucket:
            by_page.setdefault(spec.page, []).append(spec)
        balanced = len({len(v) for v in by_page.values()}) == 1
        shaped.append((bucket, by_page, balanced, max(len(v) for v in by_page.values())))
    floor = max((most for _, by_page, balanced, most in shaped if balanced and len(by_page) > 1), default=0)
    if not floor:
        raise UsageError(
            "kvplan models vLLM's DeepSeek-V4 groups only where a bucket of CSA layers sets the pattern repeats",
            hint="report the model at kvplan's issue tracker",
            field="engine",
        )
    repeats = approximate_gcd([most for _, _, balanced, most in shaped if balanced], floor)
    groups: list[list[V4LayerSpec]] = []
    for bucket, by_page, balanced, most in shaped:
        n = cdiv(most, repeats) if balanced else 1
        if n == 1:
            groups.append(bucket)
            continue
        pattern = list(zip(*by_page.values(), strict=True))  # balanced: one spec per page size
        groups.extend([spec for repeat in pattern[i::n] for spec in repeat] for i in range(n))
    return groups


def v4_tuple_groups(specs: list[V4LayerSpec], pad: bool = True) -> list[list[V4LayerSpec]]:
    """vLLM 0.26.0's DeepSeek-V4 groups (v1/core/kv_cache_utils.py `group_and_unify_kv_cache_specs` :1525-1566,
    `_get_kv_cache_groups_uniform_groups` :1603-1701): every full (MLA) spec in one group, first; the sliding specs
    in one bucket per (block size, window); a bucket's "layer tuples" are its most layers of one page size, and
    `approximate_gcd` over every group's tuples, from the MLA group's, sets the tuples per group; each sliding page
    is padded to the smallest MLA page that holds it (`pad`; 0.27.0 and 0.28.0 keep the sliding pages as they are,
    "the packed block planner overlays groups, so their page sizes do not need to match": vllm-0.27.0
    kv_cache_utils.py:1592-1632 and :1670-1754, 0.28.0 :1545-1585 and :1623-1707), and a sliding bucket is split
    into cdiv(layers per page size, tuples) groups taking every n-th tuple. Raises where vLLM's asserts would."""
    full = [s for s in specs if s.window is None]
    sliding: dict[tuple[int, int | None], list[V4LayerSpec]] = {}
    for spec in specs:
        if spec.window is not None:
            sliding.setdefault((spec.block_size, spec.window), []).append(spec)

    def tuples(group: list[V4LayerSpec]) -> int:
        return Counter(s.page for s in group).most_common(1)[0][1]

    counts = [tuples(full), *(tuples(b) for b in sliding.values())]
    n = approximate_gcd(counts, counts[0])
    full_pages = sorted({s.page for s in full})
    groups = [full]
    for bucket in sliding.values():
        by_size: dict[int, list[V4LayerSpec]] = {}
        for spec in bucket:
            padded = min((p for p in full_pages if p >= spec.page), default=0) if pad else spec.page
            by_size.setdefault(padded, []).append(replace(spec, page=padded))
        if 0 in by_size or len({len(v) for v in by_size.values()}) != 1:
            raise UsageError(
                "vLLM 0.20-0.28 cannot group this DeepSeek-V4 model's pages (vllm-0.26.0 kv_cache_utils.py:1659 "
                "and :1676 assert; 0.20.0-0.25.0 alike, 0.20.0 :1537 and :1554; 0.27.0 :1729)",
                hint=Text("pass {vllm_version} 0.29 or later"),
                field="vllm_version",
            )
        k = cdiv(len(next(iter(by_size.values()))), n)
        pattern = list(zip(*by_size.values(), strict=True))
        groups.extend([s for repeat in pattern[i::k] for s in repeat] for i in range(k))
    return groups


def v4_check_page(groups: list[list[V4LayerSpec]]) -> int:
    """What one block of a request costs in vLLM 0.26-0.28's start-up memory check for DeepSeek-V4
    (`_max_memory_usage_bytes_from_groups`, vllm-0.26.0 v1/core/kv_cache_utils.py:1832-1880, 0.27.0 :1890-1940,
    0.28.0 :1878-1928, through `_check_enough_kv_cache_memory` and `_estimate_max_model_len_from_groups`): every
    group's pages times the most layer tuples of any group (`get_num_layer_tuples`, the most specs of one page
    size) times the distinct page sizes of the first (MLA) group added up (`get_page_sizes`, a set)."""
    tuples = max(Counter(s.page for s in group).most_common(1)[0][1] for group in groups)
    return tuples * sum({s.page for s in groups[0]})


def v4_tuple_slot_stride(groups: list[list[V4LayerSpec]]) -> int:
    """Bytes of one block of vLLM 0.20-0.22's DeepSeek-V4 pool (`_get_kv_cache_config_deepseek_v4`, vllm-0.20.0
    v1/core/kv_cache_utils.py:1162-1216; 0.22.0 :1179-1233 and `_pool_bytes_per_block` :908-929): the most layers of
    one page size in any group (`num_layer_tuples`, :1199) times the first (MLA) group's distinct page sizes added up
    (`layer_tuple_page_bytes`, :1182), `num_blocks = available_memory // (layer_tuple_page_bytes x
    num_layer_tuples)` (:1201): one tensor per (tuple, page size) whether or not a group fills that slot. This is the
    product `v4_check_page` prices a request's blocks at, so in these releases the check and the pool agree."""
    return v4_check_page(groups)


def v4_tuple_stride(groups: list[list[V4LayerSpec]]) -> int:
    """Bytes of one block of vLLM 0.26's packed DeepSeek-V4 pool (`_get_kv_cache_config_packed` :1306-1341 with
    `_bucket_layers_by_page_size` :1259-1281; vllm-0.23.0 `_get_kv_cache_config_deepseek_v4` :1221-1244 and 0.25.0
    `_get_kv_cache_config_packed` :1277-1313 size it alike, `total_num_bytes_per_block`): per page size, as many slots as the group with the most layers of
    that page; the block is every slot's page side by side."""
    sizes = {s.page for group in groups for s in group}
    return sum(page * max(sum(s.page == page for s in group) for group in groups) for page in sizes)


def _uniform_type(counts: dict[Spec, int]) -> dict[Spec, int] | None:
    """vLLM's UniformTypeKVCacheSpecs (v1/core/kv_cache_planning.py:1141-1146, v1/kv_cache_interface.py:1291-1372):
    layers whose specs differ but are all full attention (MLA included: MLAAttentionSpec is a FullAttentionSpec,
    v1/kv_cache_spec_registry.py via single_type_kv_cache_manager.py:2661-2665) with one block size share one
    KV-cache group, a block of which costs every layer's page (`page_size_bytes` = their sum, :1318-1320); no page
    is padded or resized. None when that is not the case (or when every layer has one spec already).

    MiniMax-M3's GQA K/V (FullAttentionSpec) and indexer keys (an MLAAttentionSpec) are such a group too: the layer
    order puts a FullAttentionSpec first, and `is_uniform_with_collection` asks only isinstance of its base
    (kv_cache_interface.py:315-326, 1348-1361); the group's spec keeps each kind's pages (`parts`)."""
    if len(counts) <= 1:
        return None
    specs = list(counts)
    kinds = {s.kind for s in specs}
    mixed = kinds == {L.FULL, L.INDEX}
    if not mixed and (len(kinds) != 1 or kinds.isdisjoint({L.FULL, L.MLA})):
        return None
    if len({s.block_size for s in specs}) != 1 or any(s.window is not None for s in specs):
        return None
    page = sum(s.page * s.layers * n for s, n in counts.items())
    layers = sum(s.layers * n for s, n in counts.items())
    parts: tuple[tuple[str, int, int], ...] = ()
    if mixed:
        parts = tuple(
            (
                kind,
                sum(s.page * s.layers * n for s, n in counts.items() if s.kind == kind),
                sum(s.layers * n for s, n in counts.items() if s.kind == kind),
            )
            for kind in (L.FULL, L.INDEX)
        )
        layers = parts[0][2]  # the model's attention layers; the indexer keys sit in some of them
    kind = L.FULL if mixed else specs[0].kind
    return {Spec(kind, page, specs[0].block_size, mla=all(s.mla for s in specs), layers=layers, parts=parts): 1}


def _unify_pages(counts: dict[Spec, int], row: VllmBehaviour) -> dict[Spec, int]:
    """Give every attention spec the largest page by enlarging smaller pages' block size (vLLM
    `unify_kv_cache_spec_page_size`); Mamba state pages are padded up to the attention page. An attention page
    that does not divide the largest is padded to it in the releases that do (`pads_attention_pages`), else vLLM
    cannot start."""
    if len({s.page for s in counts}) <= 1:
        return counts
    target = (
        max(s.page for s in counts if s.kind != L.STATE)
        if any(s.kind != L.STATE for s in counts)
        else max(s.page for s in counts)
    )
    out: dict[Spec, int] = {}
    for spec, n in counts.items():
        if spec.kind == L.STATE:
            if spec.page > target:
                raise UsageError(
                    "a Mamba state page is larger than the attention page",
                    hint=Text("pass a larger {block_size}"),
                    field="block_size",
                )
            new = replace(spec, page=target)
        elif target % spec.page == 0:
            new = replace(spec, page=target, block_size=spec.block_size * (target // spec.page))
        elif row.pads_attention_pages and not spec.mla:
            new = replace(spec, page=target)  # the page is padded; its block size stays
        else:
            raise UsageError(
                "vLLM cannot unify this model's page sizes (they do not divide)",
                hint=Text("try {engine} sglang, or {vllm_version} 0.24 or later (they pad the smaller pages)"),
                field="engine",
            )
        out[new] = out.get(new, 0) + n
    return out


@dataclass(frozen=True)
class Capacity:
    """What vLLM makes of `available_bytes` of KV memory on each GPU, at `max_model_len` = req.seq_len.

    `kv_cache_tokens` is the figure vLLM logs as "GPU KV cache size" (0.20.1 on: int(max_concurrency x
    max_model_len); before: num_blocks // groups x block size); `max_concurrency` is its "Maximum concurrency for
    L tokens per request"; `usable_blocks` the blocks its fit checks plan with (one fewer from 0.29: the null
    block).
    """

    num_blocks: int
    block_size: int
    kv_cache_tokens: int
    blocks_per_request: int
    max_concurrency: float
    num_groups: int
    group_size: int
    page_bytes: int
    usable_blocks: int = 0


def capacity(
    caches: list[L.Layer],
    req: Request,
    available_bytes: int,
    engine: VllmEngine | None = None,
    plan: GroupPlan | None = None,
) -> Capacity:
    """vLLM's block count and concurrency for the layers one GPU holds, given its available KV memory, in the
    release `req.engine_version` (`engine`: the storage model, for the model facts it holds; `plan`: their
    grouping, when the caller has it already: `engine.plan(caches, req)`)."""
    engine = engine or VllmEngine()
    plan = plan or engine.plan(caches, req)
    if not plan.specs:
        raise UsageError("this model has no KV cache to size", hint="nothing to plan")
    row = vllm_behaviour(req.engine_version)
    num_blocks = available_bytes // plan.page // plan.group_size
    per_request = plan.request_blocks(lambda spec: engine.blocks_per_request(spec, req))
    block = min(spec.block_size for spec in plan.specs)
    concurrency = num_blocks / per_request
    tokens = int(concurrency * req.seq_len) if row.tokens_from_concurrency else num_blocks // plan.num_groups * block
    return Capacity(
        num_blocks=num_blocks,
        block_size=block,
        kv_cache_tokens=tokens,
        blocks_per_request=per_request,
        max_concurrency=concurrency,
        num_groups=plan.num_groups,
        group_size=plan.group_size,
        page_bytes=plan.page,
        usable_blocks=max(0, num_blocks - 1) if row.null_block else num_blocks,
    )


def scheduler_defaults(
    memory_bytes: int,
    device_name: str = "",
    *,
    api_server: bool = True,
    vllm_version: str | None = None,
    compute_capability: str | None = None,
) -> tuple[int, int]:
    """vLLM's default (max_num_batched_tokens, max_num_seqs) for a GPU (`vllm/engine/arg_utils.py`):
    GPUs with >= 70 GiB that are not A100s get 8192 tokens (16384 for the offline LLM class) and 1024
    sequences; others 2048 (8192) tokens and 256 sequences. From 0.28, GPUs with >= 160 GiB get 16384 tokens
    for the API server too; from 0.33, GB10 (compute capability 12.1) stays on the small tier."""
    row = vllm_behaviour(vllm_version)
    if row.tier_160gib and memory_bytes >= 160 * 2**30:
        return 16384, 1024
    gb10 = row.gb10_small_tier and _capability(compute_capability) == (12, 1)
    large = memory_bytes >= 70 * 2**30 and "a100" not in device_name.lower() and not gb10
    if large:
        return (8192 if api_server else 16384), 1024
    return (2048 if api_server else 8192), 256


# ------------------------------------------------------------------------------------ serving (the KV budget)
#
# Per GPU, each term reported with its source, the way vLLM's start-up profiling subtracts it:
#   total_memory x gpu_memory_utilization - weights/(tp x pp) - activation peak - non-torch - CUDA graphs
# - gpu_memory_utilization: given, else the release's default (VLLM_VERSIONS: 0.9, 0.92 from 0.20.0).
# - activation peak (vLLM's profile run): the dummy sampler run over `max_num_seqs` rows of logits dominates
#   (bytes per sequence x vocab entry: VLLM_VERSIONS; fp32 logits plus the sampler's copies), plus about 1.1 bytes
#   per (batched token x hidden unit) of the forward pass at a 2-byte dtype (scaled by the model dtype's bytes)
#   and a 32 MiB floor. Fitted on the llm-d vLLM 0.19 H100 logs in tests/fixtures/calibration (peak_activation_gib
#   0.85-3.94 GiB, fit within ~0.25 GiB). Models with routed experts add the fused-MoE workspace
#   (`moe_workspace_bytes`: TritonExperts' two buffers for the batched tokens x top-k).
# - non-torch memory (CUDA context, cuBLAS workspace, NCCL buffers): 0.25 GiB at TP 1, 2.1 GiB at TP > 1 (same
#   logs: 0.24-0.26 and 2.06-2.21 GiB).
# - CUDA-graph pool: 0.45 GiB + 15 MiB per layer on the GPU (logs: 0.67-1.66 GiB), subtracted by the releases
#   that do (VLLM_VERSIONS; `cudagraph_profiling` decides instead when given), except for models on Model Runner
#   V2 in the releases whose V2 estimates none (0.22-0.28: a zero term).
# kvplan.engines.vllm.capacity turns the KV memory into blocks, tokens and concurrency.

_GIB = 2**30
_MIB = 2**20
FORWARD_BYTES_PER_TOKEN_HIDDEN = 1.1
FORWARD_FIT_DTYPE_BYTES = 2  # the forward term was fitted on bf16 logs
ACTIVATION_FLOOR = 32 * _MIB
NON_TORCH_TP1 = int(0.25 * _GIB)
NON_TORCH_TP_MULTI = int(2.1 * _GIB)
CUDAGRAPH_BASE = int(0.45 * _GIB)
CUDAGRAPH_PER_LAYER = 15 * _MIB
_LOGS = "fitted on llm-d vLLM 0.19 H100 logs (tests/fixtures/calibration)"


def sampler_bytes_per_entry(vllm_version: str | None) -> float:
    """Bytes per (sequence x vocab entry) of vLLM's dummy sampler run in `vllm_version` (VLLM_VERSIONS)."""
    return vllm_behaviour(vllm_version).sampler_bytes_per_seq_vocab


def forward_bytes(shape: ModelShape, max_num_batched_tokens: int, dtype: str | None = None) -> int:
    """The forward pass's share of the activation peak: FORWARD_BYTES_PER_TOKEN_HIDDEN (fitted on bf16 logs) x
    batched tokens x hidden, scaled by the bytes of the dtype the activations are held in (`dtype`, default the
    model's): vLLM's profile run holds the dummy forward's activations in the model dtype (vllm-0.19.1
    v1/worker/gpu_model_runner.py:5782-5789, `_dummy_run(max_num_tokens)` then the sampler on its last hidden
    states). On the llm-d Llama-3.1-8B logs (1.89 GiB in bf16, 2.21 GiB in fp32) this is +0.03 of the 0.32 GiB
    rise: the rest (fp32 runs on TRITON_ATTN, not FLASH_ATTN, per the log) is not modelled."""
    scale = DTYPE_BYTES[dtype or shape.dtype] / FORWARD_FIT_DTYPE_BYTES
    return int(FORWARD_BYTES_PER_TOKEN_HIDDEN * scale * max_num_batched_tokens * shape.hidden_size)


def moe_workspace_bytes(
    config: dict,
    shape: ModelShape,
    max_num_batched_tokens: int,
    tp: int = 1,
    dtype: str | None = None,
    vllm_version: str | None = None,
) -> int:
    """The fused-MoE workspace vLLM's profile run allocates for a model with routed experts (0 for a dense one).

    The modular kernel asks the experts kernel for its workspace shapes at M = the batched tokens (at most
    `fused_moe_chunk` where the release chunks, VLLM_VERSIONS) and holds two buffers at once, in the activation
    dtype: workspace13 (shared with the fused output) and workspace2 (vllm-0.19.1 model_executor/layers/fused_moe/
    modular_kernel.py:1035-1064, 0.33.0 :1150-1211). TritonExperts, the unquantized kernel on Hopper
    (0.33.0 fused_moe/oracle/unquantized.py:76-80), sizes them (M, top_k, max(N', K)) and (M, top_k, max(N, K)),
    where N = 2 x the expert intermediate size / TP (w13: gate and up), N' = N / 2 after the gated activation (N for
    `relu2`, which has no gate: modular_kernel.py adjust_N_for_activation) and K the hidden size (vllm-0.19.1
    fused_moe/fused_moe.py:1976-1991, 0.33.0 fused_moe/experts/triton_moe.py:240-255); the fused output is
    (M, K). Other expert kernels (FlashInfer on Blackwell, MXFP4/FP8 kernels) size their own scratch; the
    Triton shapes are used for them too."""
    experts = routed_experts(config)
    if experts is None:
        return 0
    top_k, inter = experts
    cfg = text_config(config)
    gated = str(cfg.get("mlp_hidden_act") or cfg.get("hidden_act") or "silu") != "relu2"
    chunk = vllm_behaviour(vllm_version).fused_moe_chunk
    m = min(max_num_batched_tokens, chunk) if chunk else max_num_batched_tokens
    k = shape.hidden_size
    n = (2 if gated else 1) * max(1, inter // tp)
    after = n // 2 if gated else n
    workspace13 = max(m * top_k * max(after, k), m * k)  # holds the fused output (M, K) too
    workspace2 = m * top_k * max(n, k)
    return int((workspace13 + workspace2) * DTYPE_BYTES[dtype or shape.dtype])


def activation_peak_bytes(
    config: dict,
    shape: ModelShape,
    max_num_batched_tokens: int,
    max_num_seqs: int,
    vllm_version: str | None = None,
    *,
    tp: int = 1,
    dtype: str | None = None,
) -> int:
    """vLLM's profiled torch activation peak: sampler logits over max_num_seqs rows + forward activations (in the
    model dtype, `dtype` when given) + the fused-MoE workspace of a model with routed experts."""
    sampler = sampler_bytes_per_entry(vllm_version) * max_num_seqs * vocab_size(config)
    forward = forward_bytes(shape, max_num_batched_tokens, dtype)
    moe = moe_workspace_bytes(config, shape, max_num_batched_tokens, tp, dtype, vllm_version)
    return int(sampler + forward + moe + ACTIVATION_FLOOR)


def non_torch_bytes(tp: int) -> int:
    return NON_TORCH_TP1 if tp == 1 else NON_TORCH_TP_MULTI


def cudagraph_bytes(layers_on_gpu: int) -> int:
    return CUDAGRAPH_BASE + CUDAGRAPH_PER_LAYER * layers_on_gpu


def _storage(storage: object, shape: ModelShape) -> VllmEngine:
    return storage if isinstance(storage, VllmEngine) else VllmEngine(shape)


_MXFP4_ORACLE = "vllm-0.33.0/vllm/model_executor/layers/fused_moe/oracle/mxfp4.py"


def _round_up(x: int, multiple: int) -> int:
    return cdiv(x, multiple) * multiple


def mxfp4_moe_padding(config: dict[str, Any], tp: int, compute_capability: str | None) -> tuple[int, str]:
    """(bytes, source): what vLLM's gpt-oss MXFP4 experts hold per GPU beyond the checkpoint's share.

    A gpt_oss checkpoint with `quant_method: mxfp4` loads through GptOssMxfp4MoEMethod
    (vllm-0.33.0/vllm/model_executor/layers/quantization/mxfp4.py:116-149), whose `maybe_roundup_sizes` pads the
    hidden size and the per-rank intermediate size to the backend's tile (:184-198; fused_moe/routed_experts.py
    :171-183) before `create_weights` allocates uint8 weights (2 values a byte), uint8 scales (one per 32) and
    bf16 biases of the padded sizes for every expert on every rank (mxfp4.py:200-295; w2_bias unsharded). The
    backend follows the GPU (`_get_priority_backends_for_gpt_oss`, oracle/mxfp4.py:402-435): FlashInfer TRTLLM
    on SM100/103 (experts/trtllm_mxfp4_moe.py:121-123), the OAI Triton kernels on SM90
    (experts/gpt_oss_triton_kernels_moe.py:47-53), Marlin below (SM75+, experts/marlin_moe.py:592-594); the tiles
    are oracle/mxfp4.py:837-917 (TRTLLM 128/256, Marlin 128/256, Triton 64 on the intermediate size only).
    Other GPUs (SM12x, ROCm) and an unknown compute capability are not modelled: 0."""
    cfg = text_config(config)
    qc = cfg.get("quantization_config") or config.get("quantization_config") or {}
    if cfg.get("model_type") != "gpt_oss" or not isinstance(qc, dict) or qc.get("quant_method") != "mxfp4":
        return 0, ""
    cap = _capability(compute_capability)
    if cap is None:
        return 0, "; MXFP4 expert padding not modelled (no compute capability)"
    if cap[0] == 10:
        backend, inter_tile, hidden_tile, where = "FlashInfer TRTLLM", 128, 256, ":871-873"
    elif cap == (9, 0):
        backend, inter_tile, hidden_tile, where = "Triton", 64, 1, ":915-916"
    elif (7, 5) <= cap < (9, 0):
        backend, inter_tile, hidden_tile, where = "Marlin", 128, 256, ":865-870"
    else:
        return 0, f"; MXFP4 expert padding not modelled on SM{cap[0]}{cap[1]}"
    try:
        hidden, layers, experts = hidden_size(cfg), num_layers(cfg), num_experts(cfg)
        full_inter = intermediate_size(cfg)
    except READ_ERRORS:  # the weights count reports such a config; the padding is then not modelled
        return 0, "; MXFP4 expert padding not modelled (the config's MoE fields cannot be read)"
    inter = full_inter // tp
    hp, ip = _round_up(hidden, hidden_tile), _round_up(inter, inter_tile)

    def held(h: float, i: float) -> float:  # w13 + w2 values and scales, w13 + w2 biases (bf16)
        return 3 * i * h * (1 / 2 + 1 / 32) + 2 * (2 * i + h)

    padded = layers * experts * held(hp, ip)
    share = layers * experts * (3 * full_inter * hidden * (1 / 2 + 1 / 32) / tp + 2 * (2 * inter + hidden / tp))
    extra = int(padded - share)
    return extra, (
        f" + {extra / 2**30:.2f} GiB MXFP4 expert padding ({backend}: hidden {hidden}->{hp}, intermediate/rank "
        f"{inter}->{ip}; {_MXFP4_ORACLE}{where})"
    )


# The decoder tensors vLLM keeps whole on every TP rank, by the language model's model_type (the name parts of
# kvplan.weights.tensors' layout), where they are not a rounding error: DeepseekV2ForCausalLM / DeepseekV3ForCausalLM
# (Kimi K2 / K2.5 / K2.6's text model; vllm-0.33.0 model_executor/models/deepseek_v2.py) builds the MLA down
# projections q_a_proj + kv_a_proj_with_mqa as one DeepSeekV2FusedQkvAProjLinear with disable_tp=True (:953-967,
# :1052-1058; without q_lora_rank kv_a_proj_with_mqa is a ReplicatedLinear, :1059-1065), the router a GateLinear,
# a ReplicatedLinear (:321-325; fused_moe/router/gate_linear.py:22) with its fp32 e_score_correction_bias
# (:326-329), and the RMSNorms (q_a_layernorm :1082, kv_a_layernorm :1098, the layer and final norms) unsplit;
# q_b_proj, kv_b_proj, o_proj, the shared experts and the vocabulary are split (:1083-1111, :261-275, :1460,
# :1918). Kimi K3's kimi_linear (models/kimi_k3/nvidia/model.py: replicated KimiMLP and res projections) is not
# read here.
TP_REPLICATED: dict[str, tuple[str, ...]] = dict.fromkeys(
    ("deepseek_v2", "deepseek_v3", "kimi_k2"),
    (".q_a_proj.", ".kv_a_proj_with_mqa.", ".mlp.gate.weight", ".e_score_correction_bias", "layernorm.", "model.norm."),
)


def replicated_weights(b: BudgetInputs) -> tuple[int, str]:
    """(bytes, source): what one GPU holds beyond weights / (tp x pp) because vLLM keeps TP_REPLICATED whole on
    every TP rank: (tp - 1) / tp of their bytes, over the stages as the layers are."""
    parts = TP_REPLICATED.get(str(text_config(b.config).get("model_type") or ""))
    if parts is None or b.tp == 1:
        return 0, ""
    whole = b.tensor_bytes(parts)
    if not whole:
        return 0, ""
    extra = whole * (b.tp - 1) // (b.tp * b.pp)
    return extra, (
        f" + {extra / 2**20:.0f} MiB kept whole on every TP rank (the MLA q_a/kv_a projections, the router and the "
        f"norms, {whole / 2**20:.0f} MiB in all: model_executor/models/deepseek_v2.py:953-967, :1052-1065, :321-329)"
    )


def kimi_moe_padding(
    config: dict[str, Any], tp: int, moe_tp: int, expert_bytes: int | None, expert_parallel: bool
) -> tuple[int, str]:
    """(bytes, source): what vLLM's Kimi Linear / K3 experts hold per GPU beyond the checkpoint's share.

    KimiMoE (vllm-0.33.0/vllm/models/kimi_k3/nvidia/model.py:419-428) pads `moe_intermediate_size` to
    `min_moe_intermediate_per_partition` (default 256) x TP when TP > 1, expert parallelism is off and
    moe_intermediate_size / TP falls below that minimum; the experts are then allocated at the padded width
    (:532-560, the padding zero-filled at :561-573). Kimi K3's 3072 pads at TP 16 (192 -> 256 a rank). Expert
    bytes grow with the intermediate size (w13 rows and w2 columns, their MXFP4 scales one per 32 of them), so the
    extra is the experts' bytes x (padded - intermediate) / intermediate, split over the experts' own TP."""
    cfg = text_config(config)
    if cfg.get("model_type") != "kimi_linear" or tp <= 1 or expert_parallel or not expert_bytes:
        return 0, ""
    try:
        inter = positive_int(cfg, "moe_intermediate_size")
        minimum = positive_int(cfg, "min_moe_intermediate_per_partition", default=256)
    except READ_ERRORS:  # the weights count reports such a config
        return 0, ""
    if inter // tp >= minimum:
        return 0, ""
    padded = minimum * tp
    extra = expert_bytes * (padded - inter) // (inter * moe_tp)
    return extra, (
        f" + {extra / 2**30:.2f} GiB Kimi expert padding (moe_intermediate_size {inter} -> {padded} at TP {tp} "
        "without expert parallelism: models/kimi_k3/nvidia/model.py:419-428)"
    )


# ------------------------------------------------------------------------------------ speculative decoding
#
# What `--speculative-config` adds (read in vllm-0.33.0; the Mamba rules also in 0.19.1, 0.20.0 and 0.24.0):
# - the drafter's attention layers register their own KV-cache specs beside the target's, in the same pool
#   (v1/worker/gpu_model_runner.py get_kv_cache_spec walks every Attention layer of the forward context, the
#   drafter's included): MTP drafts with mtp_num_hidden_layers / num_nextn_predict_layers decoder layers shaped
#   like the target's full-attention (MLA) layers; draft_model / eagle / eagle3 / dflash with the draft
#   checkpoint's own layers;
# - Mamba-style layers hold num_speculative_tokens state pages more per request
#   (model_executor/layers/mamba/abstract.py:86-90 num_speculative_blocks; v1/kv_cache_interface.py:1136-1141)
#   and, for Mamba2 / gated DeltaNet / short-conv / KDA, num_speculative_tokens convolution columns more
#   (model_executor/layers/mamba/mamba_utils.py:186-204, :249-257, :272-285, :296-316);
# - the drafter's weights: MTP layers are loaded only with method mtp (kvplan's weight count, like transformers,
#   leaves them out), the embeddings and LM head shared with the target at PP 1
#   (v1/spec_decode/llm_base_proposer.py:1466-1470 and :1549-1555); DeepSeek-V4's MTP layers as the checkpoint
#   stores them (kvplan.weights.tensors.mtp_tensors); a draft model's whole checkpoint.
# Read and left out: sliding windows keep num_prefill_lookahead_tokens - 1 tokens more for multi-module MTP
# (v1/core/kv_cache_planning.py:1634-1641, config/vllm.py:654-675, config/speculative.py:2188-2194), and none of
# the MTP drafters kvplan models has more than one module (num_nextn_predict_layers 1); the scheduler's
# num_lookahead_tokens (config/vllm.py:625-652) reserve slots at run time, past the start-up capacity check.

# vLLM 0.33.0 config/speculative.py:38-85 (SpeculativeMethod, MTPModelTypes, EagleModelTypes)
SPECULATIVE_METHODS = frozenset(
    {
        "ngram",
        "ngram_gpu",
        "draft_model",
        "suffix",
        "custom_class",
        "eagle",
        "eagle3",
        "extract_hidden_states",
        "mtp",
        "dflash",
        "dspark",
    }
)
_NO_DRAFTER = frozenset({"ngram", "ngram_gpu", "suffix"})  # drafts from the prompt: no draft layers or weights
_DRAFT_METHODS = frozenset({"draft_model", "eagle", "eagle3", "dflash"})  # a draft checkpoint (`model`)
# target model_type -> (the config key of its MTP layer count and vLLM's default when the config has none (None:
# vLLM reads it unconditionally), how the checkpoint names MTP layer k (`{k}`; `{n_k}`: num_hidden_layers + k), the
# fc / eh_proj and norms each MTP layer has (None: one set for all, under `shared`), source)
_QWEN_MTP = ("mtp.layers.{k}", None, "mtp")  # vLLM remaps mtp.* to model.* (qwen3_5_mtp.py:308-313)
_DEEPSEEK_MTP = ("model.layers.{n_k}", "model.layers.{n_k}", None)  # the layer after the last decoder layer
_MTP_DRAFTS: dict[str, tuple[str, int | None, tuple[str, str | None, str | None], str]] = {
    **dict.fromkeys(
        ("qwen3_5", "qwen3_5_text", "qwen3_5_moe", "qwen3_5_moe_text"),
        (
            "mtp_num_hidden_layers",
            1,  # getattr(config, "mtp_num_hidden_layers", 1), qwen3_5_mtp.py:82
            _QWEN_MTP,
            "config/speculative.py:987-1007, model_executor/models/qwen3_5_mtp.py:82, :98-105, :119-125 "
            "(full_attention Qwen3_5DecoderLayer) and :135-141",
        ),
    ),
    "qwen3_next": (
        "num_nextn_predict_layers",
        1,  # getattr(config, "num_nextn_predict_layers", 1), qwen3_next_mtp.py:63
        _QWEN_MTP,
        "config/speculative.py:909-913, model_executor/models/qwen3_next_mtp.py:63, :79-95 and :108-113",
    ),
    **dict.fromkeys(
        ("deepseek_v3", "deepseek_v32", "glm_moe_dsa"),
        (
            "num_nextn_predict_layers",
            None,
            _DEEPSEEK_MTP,
            "config/speculative.py:749-763, model_executor/models/deepseek_mtp.py:85-87, :106 and :152",
        ),
    ),
    "glm4_moe": (
        "num_nextn_predict_layers",
        None,
        _DEEPSEEK_MTP,
        "config/speculative.py:852-859, model_executor/models/glm4_moe_mtp.py:92-98",
    ),
    # DeepSeek-V4 (`_v4_mtp_draft`): the checkpoint's own MTP layers (kvplan.weights.tensors.mtp_tensors), no glue
    # priced beside them
    "deepseek_v4": (
        "num_nextn_predict_layers",
        None,  # DeepSeekV4MultiTokenPredictor reads config.num_nextn_predict_layers (nvidia/mtp.py:175)
        ("mtp.{k}", None, None),
        "config/speculative.py:765-776, models/deepseek_v4/nvidia/mtp.py:213-245 and attention.py:236-242 (the "
        "layer past num_hidden_layers gets compress ratio 1: its sliding ring only, :349 and :860-864; vllm-0.26.0 "
        "config/speculative.py:344-349, attention.py:187-190, :294 and :605-608 alike)",
    ),
}


def parse_speculative_config(value: Any) -> Speculative:
    """vLLM's `--speculative-config` (a JSON object, or a mapping from a YAML file) as a Speculative: `method`,
    `num_speculative_tokens` (required: vLLM's default is the draft's n_predict, which kvplan does not read) and
    `model` (the draft checkpoint). Other keys are accepted as vLLM takes them and do not change the plan."""
    import json

    data = value
    if isinstance(value, str):
        try:
            data = json.loads(value)
        except ValueError:
            data = None
    hint = 'pass e.g. \'{"method": "mtp", "num_speculative_tokens": 3}\''

    def bad(what: str, **values: Any) -> UsageError:
        return UsageError(Text("{speculative_config}: " + what, **values), hint=hint, field="speculative_config")

    if not isinstance(data, dict):
        raise bad("expected a JSON object, got {v!r}", v=str(value)[:60])
    method, model = data.get("method"), data.get("model")
    if method is None and model is not None:
        method = "draft_model"  # vLLM infers the method from the draft's name; kvplan takes it as a draft model
    if not isinstance(method, str) or method not in SPECULATIVE_METHODS:
        raise bad(
            "unknown method {m!r} (vLLM {v} has {ms})",
            m=method,
            v=NEWEST_VLLM,
            ms=", ".join(sorted(SPECULATIVE_METHODS)),
        )
    tokens = data.get("num_speculative_tokens")
    if isinstance(tokens, bool) or not isinstance(tokens, int) or tokens <= 0:
        raise bad("num_speculative_tokens must be a positive integer, got {t!r}", t=tokens)
    if model is not None and (not isinstance(model, str) or not model.strip()):
        raise bad("model must be a name or path, got {m!r}", m=model)
    if method in _DRAFT_METHODS and model is None:
        raise bad("method {m} needs the draft checkpoint (`model`)", m=method)
    draft_tp = data.get("draft_tensor_parallel_size")
    if draft_tp is not None and (isinstance(draft_tp, bool) or not isinstance(draft_tp, int) or draft_tp <= 0):
        raise bad("draft_tensor_parallel_size must be a positive integer, got {t!r}", t=draft_tp)
    planned = ("method", "num_speculative_tokens", "model", "draft_tensor_parallel_size")
    others = {str(k): v for k, v in data.items() if k not in planned}
    try:  # kept as given for the serve command (a YAML value JSON cannot hold is dropped, not an error)
        extra = json.dumps(others) if others else ""
    except (TypeError, ValueError):
        extra = ""
    return Speculative(method, tokens, model.strip() if isinstance(model, str) else None, draft_tp, extra_json=extra)


def _mtp_draft(s: SpeculativeInputs) -> Speculative:
    """MTP: the target's own MTP layers, mtp_num_hidden_layers / num_nextn_predict_layers decoder layers shaped like
    its last full-attention (MLA) layer, loaded only when drafting (_MTP_DRAFTS); their weights at the model dtype."""
    setup, cfg = s.setup, text_config(s.config)
    model_type = str(cfg.get("model_type") or s.config.get("model_type") or "")
    rule = _MTP_DRAFTS.get(model_type) or _MTP_DRAFTS.get(str(s.config.get("model_type") or ""))
    if rule is None:
        return replace(
            setup,
            notes=(
                f"MTP drafting of {model_type or 'this model'} is not modelled (kvplan has read vLLM's MTP drafters of "
                f"{', '.join(sorted({k.split('_text')[0] for k in _MTP_DRAFTS}))}): the MTP layers' KV cache and "
                "weights are left out",
            ),
        )
    key, default, naming, source = rule
    count = cfg.get(key, s.config.get(key))
    given = f"{key} = {count}"
    if count is None and default is not None:
        count, given = default, f"{key} not in the config: vLLM's default {default}"
    if not isinstance(count, int) or isinstance(count, bool) or count <= 0:
        raise UsageError(
            Text(
                "{speculative_config}: method mtp needs MTP layers, and this {t} config has no `{k}`",
                t=model_type,
                k=key,
            ),
            hint="use a checkpoint with MTP layers, or another speculative method",
            field="speculative_config",
        )
    rings = [c for c in s.shape.caches() if isinstance(c, L.CompressedAttention)]
    if rings:
        return _v4_mtp_draft(s, rings[0], count, given, naming[0], source)
    index = max(
        (i for i, layer in enumerate(s.shape.layers) if any(c.kind in (L.FULL, L.MLA) for c in layer)), default=None
    )
    if index is None:
        raise UsageError(
            Text("{speculative_config}: this {t} model has no full-attention layer to shape MTP on", t=model_type),
            hint="use another speculative method",
            field="speculative_config",
        )
    layer = tuple(c for c in s.shape.layers[index] if c.kind in (L.FULL, L.MLA))
    weights, weights_source, replicated = _mtp_weights(s, index, count, naming)
    n = s.shape.num_layers
    experts = s.expert_bytes([(index, naming[0].format(k=k, n_k=n + k)) for k in range(count)]) if weights else 0
    return replace(
        setup,
        draft_caches=layer * count,
        draft_weights=weights,
        draft_expert_weights=experts or 0,
        draft_replicated_weights=replicated,
        weights_source=weights_source,
        notes=(
            f"MTP draft: {count} decoder layer(s) shaped like layer {index} join the KV cache ({given}; "
            f"vllm-0.33.0 {source})",
        ),
    )


def _v4_mtp_draft(
    s: SpeculativeInputs, like: L.CompressedAttention, count: int, given: str, naming: str, source: str
) -> Speculative:
    """DeepSeek-V4's MTP drafter (DeepSeekV4MTPModel): `count` layers after the last decoder layer, each vLLM's
    DeepseekV4DecoderLayer with compress ratio 1 (vllm-0.33.0 models/deepseek_v4/attention.py:236-242), which
    registers no compressed spec (:860-864) and keeps its DeepseekV4SWACache ring (:349): one sliding ring of the target's
    head_dim and window joins the pool (`v4_layer_specs` gives it the ring's spec). Weights: the checkpoint's
    `mtp.{k}.*` tensors (kvplan.weights.tensors.mtp_tensors), priced as its quantization_config stores them; the
    embeddings and LM head are the target's (v1/spec_decode/llm_base_proposer.py:1473-1479 and :1548-1575 in
    vllm-0.26.0, "Detected MTP model"; 0.33.0 :1469-1475 and :1549-1575)."""
    ring = L.CompressedAttention(like.head_dim, like.window)
    n = s.shape.num_layers
    copies = [(n + k, naming.format(k=k)) for k in range(count)]
    nbytes = s.stored_bytes(copies, [])
    if nbytes:
        weights_source = (
            f"{count} x MTP layer as {copies[0][1]}.*" + (" ..." if count > 1 else "") + " (a decoder layer without "
            "compressor, e_proj and h_proj, enorm, hnorm, hc_head and shared_head.norm), as the checkpoint's "
            "quantization_config stores them; embeddings and LM head shared with the target "
            "(vllm-0.26.0 v1/spec_decode/llm_base_proposer.py:1473-1479, :1548-1575)"
        )
    else:
        nbytes, weights_source = None, "the MTP layers' weights are not counted (the config's layers cannot be counted)"
    experts = s.expert_bytes(copies) if nbytes else 0
    return replace(
        s.setup,
        draft_caches=(ring,) * count,
        draft_weights=nbytes,
        draft_expert_weights=experts or 0,
        weights_source=weights_source,
        notes=(
            f"MTP draft: {count} DeepSeek-V4 layer(s) after layer {n - 1}, each with a {like.window}-token sliding "
            f"ring and no compressor, join the KV cache ({given}; vllm-0.33.0 {source})",
        ),
    )


# What DeepSeekMultiTokenPredictorLayer keeps whole on every TP rank beside its decoder layer's TP_REPLICATED
# tensors: eh_proj, a plain nn.Linear, and the enorm / hnorm / shared_head RMSNorms (vllm-0.33.0
# model_executor/models/deepseek_mtp.py:85-87, :61)
_MTP_REPLICATED = (".eh_proj.", ".enorm.", ".hnorm.", ".shared_head.norm.")


def _mtp_weights(
    s: SpeculativeInputs, index: int, count: int, naming: tuple[str, str | None, str | None]
) -> tuple[int | None, str, int]:
    """`count` copies of decoder layer `index` plus, per MTP layer or once, the 2h x h projection of [embedding,
    hidden] (fc / eh_proj) and three h-wide norms, priced as the checkpoint stores tensors of the MTP layers' names
    (its quantization_config and ignore lists: nvidia's NVFP4 Qwen3.6 leaves `mtp*` in bf16, DeepSeek-V3's fp8
    blocks cover them); the embeddings and LM head are the target's (v1/spec_decode/llm_base_proposer.py:1466-1470,
    :1549-1555)."""
    layers, per_layer, shared = naming
    n, h = s.shape.num_layers, s.shape.hidden_size
    copies = [(index, layers.format(k=k, n_k=n + k)) for k in range(count)]
    glue = [per_layer.format(n_k=n + k) for k in range(count)] if per_layer else [shared or "mtp"]
    extra: list[tuple[str, tuple[int, ...], str]] = []
    for prefix in glue:
        fc = "eh_proj" if per_layer else "fc"
        norms = (
            ("enorm", "hnorm", "shared_head.norm")
            if per_layer
            else ("norm", "pre_fc_norm_hidden", "pre_fc_norm_embedding")
        )
        extra.append((f"{prefix}.{fc}.weight", (h, 2 * h), "linear"))
        extra += [(f"{prefix}.{norm}.weight", (h,), "norm") for norm in norms]
    nbytes = s.stored_bytes(copies, extra)
    if not nbytes:
        return None, "the MTP layers' weights are not counted (the config's layers cannot be counted)", 0
    whole = TP_REPLICATED.get(str(text_config(s.config).get("model_type") or ""))
    replicated = (s.named_bytes(copies, extra, whole + _MTP_REPLICATED) or 0) if whole and per_layer else 0
    return (
        nbytes,
        (
            f"{count} x decoder layer {index} as {copies[0][1]}"
            + (" ..." if count > 1 else "")
            + f" + the 2h x h {'eh_proj' if per_layer else 'fc'} and 3 norms, as the checkpoint's quantization_config "
            "stores them; embeddings and LM head shared with the target (v1/spec_decode/llm_base_proposer.py:1466-1470, "
            ":1549-1555)"
        ),
        replicated,
    )


def speculative_rules(s: SpeculativeInputs) -> Speculative:
    """vLLM's speculative decoding for the plan: the drafter's KV layers and weights by method (ngram/suffix: none;
    mtp: the target's MTP layers; draft_model / eagle / eagle3 / dflash: the draft checkpoint's layers, when kvplan
    could read its config). The Mamba-side rules read `Request.num_speculative_tokens` (VllmEngine). Not modelled,
    and said so: the drafter's share of the profiled activation peak and of the CUDA-graph pool (whose capture
    sizes are rounded to multiples of 1 + num_speculative_tokens, config/compilation.py:1537-1562)."""
    out = _speculative_rules(s)
    states = any(isinstance(c, L.RecurrentState) for c in s.shape.caches())
    notes = list(out.notes)
    if states:
        notes.append(
            f"speculative decoding: each Mamba-style layer holds {out.num_speculative_tokens} state page(s) more per "
            "request and its convolution state as many columns more (model_executor/layers/mamba/abstract.py:86-90, "
            "mamba_utils.py)"
        )
    if out.draft_tp is not None:
        notes.append(
            f"draft_tensor_parallel_size {out.draft_tp} is not modelled: kvplan splits the drafter's weights and KV "
            "heads at the target's TP (vLLM's default, config/speculative.py:1849-1870)"
        )
    notes.append(
        "speculative decoding: the drafter's share of the activation peak and of the CUDA-graph pool is not modelled"
    )
    return replace(out, notes=tuple(notes))


def _speculative_rules(s: SpeculativeInputs) -> Speculative:
    setup = s.setup
    if setup.method in _NO_DRAFTER:
        return replace(setup, notes=(f"{setup.method} speculation drafts from the prompt: no draft layers or weights",))
    if setup.method == "mtp":
        return _mtp_draft(s)
    if s.draft_shape is None:
        why = f" ({s.draft_error})" if s.draft_error else ""
        return replace(
            setup,
            notes=(
                f"the draft model {setup.model or '(not named)'} could not be read{why}: its weights and KV cache "
                "are not counted (pass a catalog name or a local config path as the speculative config's `model`)",
            ),
        )
    caches = tuple(c for c in s.draft_shape.caches() if not isinstance(c, L.NoCache))
    notes = [
        f"{setup.method} draft {setup.model}: its {len(caches)} cache layer(s) join the KV cache "
        "(v1/worker/gpu_model_runner.py get_kv_cache_spec)"
    ]
    if setup.method in ("eagle", "eagle3"):
        notes.append(
            "the EAGLE draft's weights are counted with its embeddings and LM head; vLLM shares the target's when the "
            "checkpoint has none (v1/spec_decode/llm_base_proposer.py:1438-1445, :1517-1522)"
        )
    return replace(
        setup,
        draft_caches=caches,
        draft_weights=s.draft_weights,
        weights_source=s.draft_weights_source,
        notes=tuple(notes),
    )


def draft_weights_per_gpu(b: BudgetInputs, spec: Speculative) -> tuple[int, str]:
    """(bytes on one GPU, how) of the drafter's weights: / TP, except the routed experts of an MTP drafter, which
    vLLM places as the target's (moe_shards): its MTP layers are the target's MoE decoder layers built from the same
    parallel config, EP and EPLB's redundant experts included (DeepSeek: model_executor/models/deepseek_mtp.py
    :106-111 DeepseekV2DecoderLayer, deepseek_v2.py:334-340 and :391-392; DeepSeek-V4: models/deepseek_v4/nvidia/
    mtp.py:139, model.py:409-417 and :444-445); the proposer builds the drafter from the target's own VllmConfig,
    its parallel config with DP, EP and EPLB untouched (v1/spec_decode/llm_base_proposer.py:1265-1301
    _create_draft_vllm_config, :1303-1316)."""
    whole = spec.draft_weights or 0
    experts = num_experts(language_config(b.config), default=0) or 0
    routed, kept = spec.draft_expert_weights, spec.draft_replicated_weights if b.tp > 1 else 0
    kept_note = (
        f" + {kept * (b.tp - 1) // b.tp / 2**20:.0f} MiB kept whole on every TP rank (eh_proj, an nn.Linear, the "
        "MLA q_a/kv_a projections, the router and the norms: deepseek_mtp.py:85-87, deepseek_v2.py:953-967, :321-329)"
        if kept
        else ""
    )
    if not routed or not experts or not (b.layout.dp > 1 or b.layout.expert_parallel):
        return (whole - kept) // b.tp + kept, f"/ tp {b.tp}{kept_note}"
    ep, etp, local, held = moe_shards(routed, experts, b.tp, 1, b.layout)
    placed = (
        f"{local} of its {experts}{f' + {b.layout.redundant_experts} redundant' if b.layout.redundant_experts else ''} "
        f"routed experts whole per GPU (EP {ep}, as the target's)"
        if ep > 1
        else f"its routed experts / TP x DP = {etp} (as the target's)"
    )
    return (whole - routed - kept) // b.tp + kept + held, f"/ tp {b.tp} but {placed}{kept_note}"


def moe_shards(
    expert_bytes: int, num_experts: int, tp: int, pp: int, layout: Layout, pcp: int = 1
) -> tuple[int, int, int, int]:
    """(ep_size, expert tp_size, experts on the fullest GPU, expert bytes on one GPU of the fullest stage) as
    vLLM 0.33.0 places the routed experts.

    The fused-MoE layer flattens TP across DP (and PCP): its experts are split over tp x dp x pcp GPUs, by TP
    when expert parallelism is off (each expert's matrices / (tp x dp x pcp)), whole when it is on, the EP group
    being those same tp x dp x pcp GPUs and each expert's TP 1 (vllm-0.33.0/vllm/model_executor/layers/
    fused_moe/config.py:1106-1115 `flatten_tp_across_dp_and_pcp`, :1198-1245 `make`; config/parallel.py:147-149).
    EPLB's redundant experts add replicas: global experts = experts + redundant
    (model_executor/layers/fused_moe/layer.py:76-88 `determine_expert_counts`), spread as evenly as possible,
    the first `remainder` ranks holding one more (fused_moe/expert_map_manager.py:64-67). Stages hold their
    layers' experts: the bytes are / pp as the rest of the weights are."""
    flat = tp * layout.dp * pcp
    if not layout.expert_parallel or flat == 1:
        return 1, flat, num_experts, expert_bytes // (flat * pp)
    total = num_experts + layout.redundant_experts
    local = cdiv(total, flat)
    return flat, 1, local, expert_bytes * local // (num_experts * pp)


def check_layout(layout: Layout, tp: int, num_experts: int, version: str | None) -> None:
    """vLLM's own refusals of a DP / EP / EPLB layout: redundant experts need EPLB, which needs expert
    parallelism (vllm-0.33.0/vllm/config/parallel.py:562-591) and an even split of the global experts over the
    EP ranks (model_executor/layers/fused_moe/layer.py:260-268); DCP is checked with the caches
    (VllmEngine._check_dcp)."""
    given = [name for name in layout.given if name != "dcp"]
    if given and not vllm_behaviour(version).models_dcp_dp_ep:
        raise UsageError(
            Text("kvplan reads vLLM's DP and EP rules from vLLM {v}'s source only", v=NEWEST_VLLM),
            hint=Text("pass {vllm_version} {v}", v=NEWEST_VLLM),
            field=given[0],
        )
    if layout.redundant_experts and not layout.expert_parallel:
        raise UsageError(
            Text("{redundant_experts} needs {expert_parallel}: vLLM's EPLB runs on expert parallelism"),
            hint=Text("add {expert_parallel}"),
            field="redundant_experts",
        )
    if (layout.expert_parallel or layout.redundant_experts) and not num_experts:
        raise UsageError(
            Text("{expert_parallel} needs a model with routed experts; this one has none"),
            hint=Text("drop {expert_parallel}"),
            field="expert_parallel",
        )
    ep = tp * layout.dp
    if layout.redundant_experts and ep > 1 and (num_experts + layout.redundant_experts) % ep:
        raise UsageError(
            Text(
                "vLLM's EPLB splits experts evenly: {e} experts + {r} redundant over {n} EP ranks do not divide",
                e=num_experts,
                r=layout.redundant_experts,
                n=ep,
            ),
            hint=Text("choose {redundant_experts} so that experts + redundant is a multiple of TP x DP"),
            field="redundant_experts",
        )
    if layout.redundant_experts and ep == 1:
        raise UsageError(
            Text("vLLM's EPLB needs TP or DP above 1"),
            hint=Text("raise {tp} or {dp}"),
            field="redundant_experts",
        )


# ------------------------------------------------------------------------------- multimodal (--limit-mm-per-prompt)
#
# A multimodal wrapper builds each encoder tower under `_mark_tower_model(vllm_config, modalities)` and skips it
# when --limit-mm-per-prompt sets every one of its modalities to 0 (model_executor/models/interfaces.py:347-398;
# gemma3_mm.py:552, mistral3.py:478, lfm2_vl.py:695: image; qwen3_vl.py:2010, qwen3_5.py:513 and :736: image and
# video). Unspecified modalities allow 999 items (config/multimodal.py:696-707). The profile run then encodes
# `max_items_per_batch` dummy items of the modality with the most tokens and keeps their outputs in the encoder
# cache while the language model's dummy forward and sampler run (v1/worker/gpu_model_runner.py:6072-6145), so
# the outputs (items x tokens per item x hidden, in the model dtype) are part of the measured peak: the
# encoder_cache row. The encoder budget is max(max_num_batched_tokens, tokens per item) (config/scheduler.py
# :306-307, v1/core/encoder_cache_manager.py:373-378 compute_mm_encoder_budget); items per batch are
# max(1, min(budget // tokens per item, max_num_seqs x max(1, min(limit, max_model_len // tokens per item))))
# (multimodal/encoder_budget.py:145-185 _get_max_items). The encoder's own activations during that dummy
# encode are transient and inside the same profile; kvplan does not model them (on the llm-d Gemma 3 logs the
# peak is the language model's: tests/engines/test_multimodal_encoder_cache.py).

TOWER_MODALITIES: dict[str, tuple[str, ...]] = {
    "gemma3": ("image",),
    "mistral3": ("image",),
    "lfm2_vl": ("image",),
    "llama4": ("image",),  # mllama4.py:765 _mark_tower_model(vllm_config, "image")
    "gemma4": ("image", "video"),  # gemma4_mm.py:1101 (the audio tower, :1121, is not counted)
    "qwen3_vl": ("image", "video"),
    "qwen3_vl_moe": ("image", "video"),
    "qwen3_5": ("image", "video"),
    "qwen3_5_moe": ("image", "video"),
    "minimax_m3_vl": (
        "image",
        "video",
    ),  # models/minimax_m3/nvidia/model.py:1161 _mark_tower_model(.., {"image", "video"})
}
DEFAULT_MM_LIMIT = 999  # config/multimodal.py:705-707

# vLLM's rotary embeddings keep their cos/sin table on the GPU as a non-persistent buffer, outside the checkpoint
# and inside "Model loading took": [positions, rotary_dim] in the model dtype (torch's default dtype while the
# model is built), built once per distinct rope setup and shared by the layers (get_rope caches it: vllm-0.33.0
# model_executor/layers/rotary_embedding/__init__.py:29, :84-85, :351; the table: base.py:58-63, :94-103).
# Positions: max_position_embeddings for the default and llama3 ropes (__init__.py:112, :148-155; :167-183), times
# the factor for linear scaling (:188-198, linear_scaling_rope.py:86-91). Gemma 3's sliding layers build a second, default rope
# (gemma3.py:157-163, config.rope_parameters[layer_type]). Other rope types (YaRN, NTK, longrope, ...): not modelled.
ROPE_TABLE_SCALES = {"default": False, "llama3": False, "linear": True}


def rope_table_bytes(config: dict[str, Any], dtype: str) -> int | None:
    """Bytes of the rope tables vLLM keeps on every GPU (0: the model has no rope; None: a rope type kvplan does not
    model)."""
    text = language_config(config) if isinstance(config, dict) else {}
    positions = text.get("max_position_embeddings")
    if not isinstance(positions, int) or positions <= 0:
        return None
    params = text.get("rope_parameters") or text.get("rope_scaling") or {}
    if not isinstance(params, dict):
        return None
    if params and all(isinstance(v, dict) for v in params.values()):  # per layer type (transformers 5)
        setups = list(params.values())
    else:
        setups = [params]
        # Gemma 3's sliding layers: a default rope of their own base, always (transformers configuration_gemma3.py
        # :137-155 builds rope_parameters["sliding_attention"] from rope_local_base_freq, default 10,000)
        if text.get("rope_local_base_freq") or str(text.get("model_type")) == "gemma3_text":
            setups.append({"rope_type": "default", "rope_theta": text.get("rope_local_base_freq") or 10000.0})
    heads = text.get("num_attention_heads")
    head_dim = text.get("head_dim") or (text.get("hidden_size", 0) // heads if isinstance(heads, int) and heads else 0)
    if not isinstance(head_dim, int) or head_dim <= 0:
        return None
    total, seen = 0, set()
    for p in setups:
        kind = str(p.get("rope_type") or p.get("type") or "default")
        if kind not in ROPE_TABLE_SCALES:
            return None
        try:
            factor = float(p.get("factor", 1.0)) if ROPE_TABLE_SCALES[kind] else 1.0
            partial = float(p.get("partial_rotary_factor") or text.get("partial_rotary_factor") or 1.0)
        except (TypeError, ValueError):
            return None
        if not (0 < partial <= 1 and 0 < factor < 2**20):  # NaN, inf and nonsense fail both: no table figure
            return None
        rotary = int(head_dim * partial)
        key = (kind, factor, rotary, repr(sorted(p.items(), key=str)))
        if key in seen:
            continue
        seen.add(key)
        total += int(int(positions * factor) * rotary * DTYPE_BYTES[dtype])
    return total


# Wrappers whose towers vLLM keeps whole on every TP rank (the others' towers use its parallel linears, split over
# TP unless --mm-encoder-tp-mode data): Gemma 4 builds transformers' tower and replaces each nn.Linear with a
# "replicate" one (model_executor/models/gemma4_mm.py:1101-1112, models/transformers/utils.py:301-325), its
# embedder a ReplicatedLinear (gemma4_mm.py:1010-1016).
REPLICATED_TOWERS = frozenset({"gemma4"})


def tower_split(config: dict[str, Any], tp: int) -> int:
    """Over how many GPUs vLLM splits the towers and projectors: 1 for REPLICATED_TOWERS, else TP."""
    return 1 if str(config.get("model_type")) in REPLICATED_TOWERS else tp


# Kimi's MoonViT towers (kimi_k25, kimi_k3) split tensor by tensor: each block's q/k/v (wqkv) and first MLP linear
# are ColumnParallelLinear (weight and bias / TP), its output projection (wo) and second MLP linear RowParallelLinear
# (weight / TP, bias whole) (vllm-0.33.0 model_executor/models/kimi_k25_vit.py:336-350, :413-429); the patch Conv2d,
# the position grid, the norms and the projector's ReplicatedLinears are whole on every rank (:213-219, :141,
# :401-402, :563-565, :911-946). Every linear is whole when the tower's heads do not divide by TP, or with
# --mm-encoder-tp-mode data (is_vit_use_data_parallel, model_executor/models/vision.py:141-156;
# kimi_k25_vit.py:388). Keys: the split tensors' name parts in kvplan.weights.encoders' layouts (K2.5's follow
# transformers' names, K3's vLLM's): (column-parallel, row-parallel weights).
_MOONVIT_SPLIT: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "kimi_k25": (
        (".attn.q_proj.", ".attn.k_proj.", ".attn.v_proj.", ".mlp.fc1."),
        (".attn.proj.weight", ".mlp.fc2.weight"),
    ),
    "kimi_k3": ((".wqkv.", ".mlp.fc0."), (".wo.weight", ".mlp.fc1.weight")),
}
_MOONVIT_HEADS = {"kimi_k25": ("num_attention_heads", 16), "kimi_k3": ("vt_num_attention_heads", 12)}


def tower_bytes_per_gpu(
    config: dict[str, Any], encoder_bytes: int, tp: int, numels: tuple[tuple[str, int], ...]
) -> tuple[int, str]:
    """(bytes on one GPU, how) of the towers and projectors vLLM builds (`numels`: their tensors as (name,
    parameters)): whole for REPLICATED_TOWERS, tensor by tensor for Kimi's MoonViT (_MOONVIT_SPLIT), else / TP."""
    kind = str(config.get("model_type"))
    if kind in REPLICATED_TOWERS:
        return encoder_bytes, "whole on every GPU (vLLM replicates this wrapper's towers: gemma4_mm.py:1101-1112)"
    split = _MOONVIT_SPLIT.get(kind)
    if split is None or tp == 1:
        return encoder_bytes // tp, f"/ tp {tp}"
    total = sum(n for _, n in numels)
    key, default = _MOONVIT_HEADS[kind]
    heads = (config.get("vision_config") or {}).get(key, default)
    if not total or not isinstance(heads, int) or heads % tp:
        return encoder_bytes, (
            f"whole on every GPU (its {heads} heads do not divide by tp {tp}: vLLM runs the tower data-parallel, "
            "model_executor/models/vision.py:141-156)"
        )
    column, row = split
    parted = sum(n for name, n in numels if any(c in name for c in column) or any(r in name for r in row))
    held = total - parted + parted // tp
    return encoder_bytes * held // total, (
        f"with its attention and MLP linears / tp {tp} and the patch embedding, position grid, norms, row-parallel "
        "biases and projector whole on every GPU (model_executor/models/kimi_k25_vit.py:336-350, :413-429, :911-946)"
    )


def parse_limit_mm_per_prompt(value: object) -> dict[str, int]:
    """vLLM's --limit-mm-per-prompt: a JSON object (or mapping) of modality -> count, or -> {"count": n, ...}
    (config/multimodal.py:307-325)."""
    import json

    data = value
    if isinstance(value, str):
        try:
            data = json.loads(value)
        except ValueError:
            data = None
    out: dict[str, int] = {}
    if isinstance(data, dict):
        for modality, item in data.items():
            count = item.get("count") if isinstance(item, dict) else item
            if isinstance(count, bool) or not isinstance(count, int) or count < 0:
                break
            out[str(modality)] = count
        else:
            return out
    raise UsageError(
        Text("{limit_mm_per_prompt} takes vLLM's JSON object, not {v!r}", v=value),
        hint='write e.g. \'{"image": 0}\' (text only) or \'{"image": 2, "video": 0}\'',
        field="limit_mm_per_prompt",
    )


def tower_off(config: dict[str, Any], limits: dict[str, int] | None) -> bool:
    """--limit-mm-per-prompt sets every modality of the checkpoint's towers to 0: vLLM builds no tower."""
    modalities = TOWER_MODALITIES.get(str(config.get("model_type")), ())
    return bool(modalities) and all((limits or {}).get(m, DEFAULT_MM_LIMIT) == 0 for m in modalities)


def mm_tokens_per_item(config: dict[str, Any]) -> tuple[int, str] | None:
    """(tokens, source) of the largest image item vLLM profiles, where the config says (None: the processor's
    image size decides, which kvplan does not read). Gemma 3 without pan-and-scan (the processor's default): one
    image is image_seq_length = mm_tokens_per_image tokens (gemma3_mm.py:197-212, :90-118)."""
    if config.get("model_type") == "gemma3":
        tokens = config.get("mm_tokens_per_image", 256)
        if isinstance(tokens, int) and tokens > 0:
            return tokens, "mm_tokens_per_image (gemma3_mm.py:197-212, no pan-and-scan)"
    return None


def encoder_cache_items(b: BudgetInputs, tokens: int, modality: str) -> int:
    """Dummy items the profile run encodes and keeps (encoder_budget.py:145-185 _get_max_items)."""
    budget = max(b.max_num_batched_tokens, tokens)
    limit = (b.limit_mm_per_prompt or {}).get(modality, DEFAULT_MM_LIMIT)
    per_prompt = max(1, min(limit, (b.max_model_len or tokens) // tokens))
    return max(1, min(budget // tokens, b.max_num_seqs * per_prompt))


def encoder_cache_term(b: BudgetInputs) -> BudgetTerm | None:
    """The encoder outputs vLLM's profile run holds (None: no towers, towers off, or tokens per item unknown)."""
    modalities = TOWER_MODALITIES.get(str(b.config.get("model_type")), ())
    if not modalities or tower_off(b.config, b.limit_mm_per_prompt):
        return None
    found = mm_tokens_per_item(b.config)
    if found is None:
        return None
    tokens, where = found
    items = encoder_cache_items(b, tokens, modalities[0])
    held = int(items * tokens * b.shape.hidden_size * DTYPE_BYTES[b.dtype])
    return BudgetTerm(
        "encoder_cache",
        -held,
        f"profile run: {items} dummy {modalities[0]}s x {tokens} tokens ({where}) x hidden {b.shape.hidden_size} "
        f"({short_dtype(b.dtype)}) held in the encoder cache during the dummy forward "
        "(v1/worker/gpu_model_runner.py:6072-6145; items: multimodal/encoder_budget.py:145-185)",
    )


def encoder_cache_notes(b: BudgetInputs) -> list[str]:
    """What the encoder-cache row leaves out for a multimodal checkpoint."""
    modalities = TOWER_MODALITIES.get(str(b.config.get("model_type")), ())
    if not modalities or tower_off(b.config, b.limit_mm_per_prompt) or mm_tokens_per_item(b.config) is not None:
        return []
    bound = float(max(b.max_num_batched_tokens, 1) * b.shape.hidden_size * DTYPE_BYTES[b.dtype])
    return [
        f"vLLM's profile run also encodes dummy {'/'.join(modalities)} items and keeps their outputs (up to "
        f"max_num_batched_tokens {b.max_num_batched_tokens} tokens x hidden, {bound / 2**20:.0f} MiB, when one item "
        "fits that budget); kvplan does not read this model's tokens per item (its processor config), so the "
        'budget leaves them out; --limit-mm-per-prompt \'{"image": 0'
        + (', "video": 0' if "video" in modalities else "")
        + "}' serves text only (no towers, no encoder profile)"
    ]


# ------------------------------------------------------------------------------------ LoRA (--enable-lora)
#
# vLLM wraps every supported linear module (and the embedding modules the model class declares) in a
# BaseLayerWithLoRA when the model loads (v1/worker/gpu_model_runner.py:5005-5008 `load_lora_model`, after the
# weights and before the profile run, so the buffers are part of the memory the KV cache is sized from:
# lora/model_manager.py:476-623 `_create_lora_modules`). Each wrapper's `create_lora_weights` allocates, for
# `max_loras` slots, A (max_lora_rank x input) and B (output x max_lora_rank) per slice in `lora_dtype` (auto:
# the model dtype, config/lora.py:157-160): column-parallel modules keep the whole input and 1/TP of the output
# (lora/layers/base_linear.py:104-155, column_parallel_linear.py:200-245 for the fused qkv_proj / gate_up_proj),
# row-parallel ones 1/TP of the input and the whole output (row_parallel_linear.py:26-28). The embeddings
# (lora/layers/vocab_parallel_embedding.py:25-48: A vocab x rank, B hidden x rank) and lm_head
# (lora/layers/logits_processor.py:84-110: A rank x hidden, B vocab x rank) get slots too, unsharded, where
# the model class lists them in `embedding_modules` (LORA_EMBEDDING_MODULES) and --lora-target-modules is not
# given. Adapters loaded from disk stay on the CPU (lora/worker_manager.py:140-145 `device="cpu"`), at most
# `max_cpu_loras` of them (default max_loras; model_manager.py:343-345, config/lora.py:121-126), in every worker.

LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)  # MaxLoRARanks (config/lora.py:27)
DEFAULT_MAX_LORA_RANK = 16  # config/lora.py:34
DEFAULT_MAX_LORAS = 1  # config/lora.py:36
LORA_DTYPES = ("float16", "bfloat16")  # LoRADType besides "auto" (config/lora.py:46)
# the HF architectures (dense decoders kvplan sizes LoRA for) whose vLLM class declares `embedding_modules`,
# read from vllm-0.33.0/vllm/model_executor/models/registry.py and each class (or the class it inherits from):
# embed (input embeddings) and/or lm_head get LoRA slots. Others (Qwen2, Mistral, Gemma, ...) declare none.
_EMBED_AND_HEAD = ("embed", "lm_head")
_WITH_EMBED_AND_HEAD = (
    "ApertusForCausalLM",  # apertus.py:416
    "DeciLMForCausalLM",  # nemotron_nas.py:332
    "Ernie4_5ForCausalLM",  # ernie45.py (LlamaForCausalLM)
    "Exaone4ForCausalLM",  # exaone4.py:388
    "ExaoneForCausalLM",  # exaone.py:387 (wte, lm_head)
    "GraniteForCausalLM",  # granite.py:420
    "GraniteSWAForCausalLM",  # granite.py:420
    "HyperCLOVAXForCausalLM",  # hyperclovax.py:389
    "IQuestCoderForCausalLM",  # llama.py:479
    "InternLM3ForCausalLM",  # llama.py:479
    "LLaMAForCausalLM",  # llama.py:479
    "LlamaForCausalLM",  # llama.py:479
    "MiniCPMForCausalLM",  # minicpm.py:574
    "NemotronForCausalLM",  # nemotron.py:409
    "Phi3ForCausalLM",  # phi3.py (LlamaForCausalLM)
    "Qwen3ForCausalLM",  # qwen3.py:288
    "SolarForCausalLM",  # solar.py:365
    "TeleChat2ForCausalLM",  # telechat2.py (LlamaForCausalLM)
    "TeleChat3ForCausalLM",  # llama.py:479
    "TeleFLMForCausalLM",  # teleflm.py (LlamaForCausalLM)
)
LORA_EMBEDDING_MODULES: dict[str, tuple[str, ...]] = {
    **dict.fromkeys(_WITH_EMBED_AND_HEAD, _EMBED_AND_HEAD),
    "CohereForCausalLM": ("embed",),  # commandr.py:424
    "Cohere2ForCausalLM": ("embed",),  # commandr.py:424
}


def check_lora(lora: LoraSettings) -> None:
    """vLLM's own checks of the LoRA settings (config/lora.py): the rank one of MaxLoRARanks, max_cpu_loras >=
    max_loras (:121-126), lora_dtype auto, float16 or bfloat16."""
    if lora.max_lora_rank not in LORA_RANKS:
        raise UsageError(
            Text("vLLM accepts {max_lora_rank} " + ", ".join(map(str, LORA_RANKS)) + ", not {r}", r=lora.max_lora_rank),
            hint="use the next rank up from your adapters' (vllm/config/lora.py MaxLoRARanks)",
            field="max_lora_rank",
        )
    if lora.max_cpu_loras is not None and lora.max_cpu_loras < lora.max_loras:
        raise UsageError(
            Text("max_cpu_loras ({c}) must be >= max_loras ({m}).", c=lora.max_cpu_loras, m=lora.max_loras),
            hint=Text("raise {max_cpu_loras} to at least {max_loras} (vLLM's own check)"),
            field="max_cpu_loras",
        )
    if lora.lora_dtype is not None and lora.lora_dtype not in LORA_DTYPES:
        raise UsageError(
            Text("vLLM's {lora_dtype} is auto, float16 or bfloat16, not {d}", d=lora.lora_dtype),
            hint="drop it (the model's dtype) or pick float16 / bfloat16",
            field="lora_dtype",
        )


def lora_gpu_bytes(b: BudgetInputs) -> tuple[int, str]:
    """(bytes, source) of the LoRA slots vLLM allocates on the fullest GPU (0, "" when LoRA is off)."""
    lora = b.lora
    if lora is None:
        return 0, ""
    check_lora(lora)
    modules = decoder_modules(b.config, b.shape)
    targets = lora.target_modules
    packed = {m.packed for m in modules if targets is None or m.name in targets}
    wrapped = [m for m in modules if m.packed in packed]  # a fused module is wrapped whole
    rank, tp = lora.max_lora_rank, b.tp
    per_layer = sum(m.elements(rank, tp) for m in wrapped)
    elements = per_layer * b.layers_on_gpu
    arch = next(iter(b.shape.architectures), "")
    embedding = LORA_EMBEDDING_MODULES.get(arch, ()) if targets is None else ()
    vocab, hidden = b.vocab, b.shape.hidden_size
    extra = (
        rank * (vocab + hidden) * len(embedding)
    )  # embed: A vocab x r + B hidden x r; lm_head: r x hidden + vocab x r
    dtype = lora.lora_dtype or b.dtype
    total = int((elements + extra) * lora.max_loras * DTYPE_BYTES[dtype])
    names = "+".join(sorted(packed, key=["qkv_proj", "o_proj", "gate_up_proj", "down_proj"].index))
    source = (
        f"{lora.max_loras} slots x rank {rank} x ({names} A+B per TP rank x {b.layers_on_gpu} layers"
        + (f" + {'/'.join(embedding)} (model class embedding_modules, unsharded)" if embedding else "")
        + f") in {short_dtype(dtype)} (not --fully-sharded-loras); allocated at load, before the profile run "
        "(lora/layers/base_linear.py:104-155 create_lora_weights, lora/model_manager.py:476-623)"
        + ("; embed/lm_head slots counted on this stage (pp > 1: an upper bound)" if embedding and b.pp > 1 else "")
    )
    return total, source


def lora_flags(lora: LoraSettings | None) -> str:
    """vLLM's LoRA options for the plan's settings ("" when LoRA is off)."""
    if lora is None:
        return ""
    line = " --enable-lora" + (f" --max-loras {lora.max_loras}" if lora.max_loras else "")
    line += f" --max-lora-rank {lora.max_lora_rank}"
    if lora.max_cpu_loras is not None:
        line += f" --max-cpu-loras {lora.max_cpu_loras}"
    if lora.lora_dtype is not None:
        line += f" --lora-dtype {lora.lora_dtype}"
    if lora.target_modules is not None:
        line += " --lora-target-modules " + " ".join(lora.target_modules)
    return line


def lora_host(b: BudgetInputs) -> tuple[int, str] | None:
    """(bytes, source) of the adapters one vLLM worker keeps on the CPU: max_cpu_loras (default max_loras) whole
    adapters at max_lora_rank on every targeted linear module of every layer (an upper bound: an adapter of a
    lower rank holds less)."""
    lora = b.lora
    if lora is None:
        return None
    modules = decoder_modules(b.config, b.shape)
    targets = lora.target_modules
    chosen = [m for m in modules if targets is None or m.name in targets]
    layers = b.shape.num_layers
    count = lora.max_cpu_loras or lora.max_loras
    dtype = lora.lora_dtype or b.dtype
    total = int(count * sum(m.elements(lora.max_lora_rank) for m in chosen) * layers * DTYPE_BYTES[dtype])
    return total, (
        f"{count} adapters (max_cpu_loras{'' if lora.max_cpu_loras else ', default max_loras'}) x rank "
        f"{lora.max_lora_rank} x {len(chosen)} modules x {layers} layers in {short_dtype(dtype)}, per worker "
        "(lora/worker_manager.py:140-145 loads adapters to the CPU; model_manager.py:343-345 keeps max_cpu_loras)"
    )


class VllmServing(ServingModel):
    options = frozenset(
        {GPU_MEMORY_UTILIZATION, VLLM_VERSION, BLOCK_SIZE, PREFIX_CACHING, ASYNC_SCHEDULING, LIMIT_MM_PER_PROMPT}
    )
    parallelism = frozenset({"dp", "dcp", "expert_parallel", "redundant_experts"})

    def parallelism_at(self, version: str | None) -> frozenset[str]:
        """DP, DCP and EP where kvplan has read vLLM's rules for them (`models_dcp_dp_ep`, 0.33.0); none before,
        where recommend refuses them."""
        return self.parallelism if vllm_behaviour(version).models_dcp_dp_ep else frozenset()

    suggests_utilization = True
    serves_lora = True
    lora_defaults = (DEFAULT_MAX_LORAS, DEFAULT_MAX_LORA_RANK)
    utilization_help = "vLLM fraction of total memory (default 0.92 from vLLM 0.20, 0.9 before)"
    online_quantization = True  # --quantization fp8_per_tensor|... (kvplan.weights.stored.ONLINE_QUANTIZATIONS)

    def encoder_split(self, config: dict[str, Any], tp: int) -> int:
        return tower_split(config, tp)

    def encoder_per_gpu(
        self, config: dict[str, Any], encoder_bytes: int, tp: int, numels: tuple[tuple[str, int], ...] = ()
    ) -> int:
        return tower_bytes_per_gpu(config, encoder_bytes, tp, numels)[0]

    def default_utilization(self, memory_bytes: int, tp: int, pp: int, version: str | None = None) -> float:
        """vLLM's default gpu_memory_utilization in release `version` (config/cache.py)."""
        return vllm_behaviour(version).default_gpu_memory_utilization

    def sequence_cap(self, given: int | None, default: int, max_num_batched_tokens: int) -> int:
        """vLLM lowers its default (never one given) to max_num_batched_tokens
        (vllm-0.10.1.1/vllm/engine/arg_utils.py:1709-1712, 0.19.1 :2238-2240, 0.33.0 :3232-3234)."""
        return given if given is not None else min(default, max_num_batched_tokens)

    def scheduler_defaults(self, profile: HardwareProfile, version: str | None = None) -> tuple[int, int]:
        """vLLM's defaults for the GPU in release `version` (None: the newest)."""
        return scheduler_defaults(
            profile.memory_bytes,
            profile.name,
            vllm_version=version,
            compute_capability=profile.compute_capability,
        )

    def moe_shards(self, b: BudgetInputs) -> MoeShards | None:
        """The routed experts on one GPU (`moe_shards`), where the layout places them otherwise than the rest of
        the weights: data parallelism or expert parallelism given, and a model with routed experts."""
        experts = num_experts(language_config(b.config), default=0) or 0
        layout = b.layout
        check_layout(layout, b.tp, experts, b.vllm_version)
        if not experts or not b.expert_weights or not (layout.dp > 1 or layout.expert_parallel):
            return None
        ep, etp, local, held = moe_shards(b.expert_weights, experts, b.tp, b.pp, layout)
        how = (
            f"{local} of {experts}{f' + {layout.redundant_experts} redundant' if layout.redundant_experts else ''} "
            f"experts whole on each of EP {ep} = TP x DP ranks"
            if ep > 1
            else f"every expert split over TP x DP = {etp} GPUs (no expert parallelism)"
        )
        return MoeShards(
            ep,
            etp,
            local,
            experts,
            held,
            f"{how}; vLLM flattens the MoE layers' TP across DP (model_executor/layers/fused_moe/config.py:"
            "1106-1115, :1198-1245; fused_moe/expert_map_manager.py:64-67)",
        )

    @staticmethod
    def _eplb_buffer(b: BudgetInputs, shards: MoeShards) -> BudgetTerm:
        """EPLB's transfer buffer: one MoE layer's local expert tensors (vllm-0.33.0/vllm/distributed/eplb/
        eplb_state.py:492 `expert_buffer = [torch.empty_like(w) for w in model.expert_weights[0]]`), allocated when
        the model loads (v1/worker/gpu_model_runner.py:5069 add_model, in load_model), before the KV budget."""
        if not b.expert_layers or not b.expert_weights:
            return BudgetTerm("eplb_buffer", 0, "EPLB's one-layer expert buffer: not counted (MoE layers not found)")
        one = b.expert_weights * shards.experts_per_gpu // (shards.num_experts * b.expert_layers)
        return BudgetTerm(
            "eplb_buffer",
            -one,
            f"EPLB's transfer buffer: one of {b.expert_layers} MoE layers' {shards.experts_per_gpu} local experts "
            "(distributed/eplb/eplb_state.py:492, allocated at load: v1/worker/gpu_model_runner.py:5069)",
        )

    def layout_notes(self, layout: Layout) -> list[str]:
        notes = []
        if layout.dp > 1:
            notes.append(
                f"each of the {layout.dp} data-parallel ranks is an engine instance with its own KV pool and scheduler "
                "(max_num_seqs, the sampler warm-up and the KV figures are per rank); requests are split over the "
                "ranks. The non-torch term is fitted on TP logs: DP/EP communicator (all-to-all) buffers are not "
                "modelled"
            )
        return notes

    def budget(self, b: BudgetInputs) -> tuple[list[BudgetTerm], int]:
        behaviour = vllm_behaviour(b.vllm_version)
        profiled = behaviour.subtracts_cudagraphs if b.cudagraph_profiling is None else b.cudagraph_profiling
        runner_v2 = VllmEngine(b.shape).runs_v2(
            Request(1, 1, b.shape.dtype, b.shape.dtype, engine_version=b.vllm_version)
        )
        v2_none = runner_v2 and not behaviour.v2_estimates_cudagraphs
        mnbt, seqs, version = b.max_num_batched_tokens, b.max_num_seqs, b.vllm_version
        forward_per = FORWARD_BYTES_PER_TOKEN_HIDDEN * DTYPE_BYTES[b.dtype] / FORWARD_FIT_DTYPE_BYTES
        shards = self.moe_shards(b)
        moe_tp = b.tp if shards is None else shards.tp_size  # the experts' own TP (flattened across DP; 1 with EP)
        moe = moe_workspace_bytes(b.config, b.shape, mnbt, moe_tp, b.dtype, version)
        pad, pad_note = mxfp4_moe_padding(b.config, moe_tp, b.profile.compute_capability)
        if shards is not None and shards.ep_size > 1:  # the padding of the experts this rank holds, not all of them
            pad = pad * shards.experts_per_gpu // shards.num_experts
        kimi_pad, kimi_note = kimi_moe_padding(b.config, b.tp, moe_tp, b.expert_weights, b.layout.expert_parallel)
        pad, pad_note = pad + kimi_pad, pad_note + kimi_note
        whole, whole_note = replicated_weights(b)  # per GPU already (/ pp inside)
        pad, pad_note = pad + whole * b.pp, pad_note + whole_note
        terms = [
            BudgetTerm(
                "total_x_utilization",
                int(b.profile.memory_bytes * b.utilization),
                f"{b.profile.id} memory x {b.utilization}",
            ),
        ]
        if shards is None:
            terms.append(
                BudgetTerm(
                    "weights", -(b.weights_per_gpu + pad // b.pp), f"weights / (tp x pp) = / {b.tp * b.pp}{pad_note}"
                )
            )
        else:
            dense = (b.weights - (b.expert_weights or 0)) // (b.tp * b.pp)
            terms.append(
                BudgetTerm(
                    "weights",
                    -(dense + shards.bytes_per_gpu + pad // b.pp),
                    f"weights but the routed experts / (tp x pp) = / {b.tp * b.pp}, plus the experts (analytic "
                    f"count, kvplan.weights.stored.expert_weight_bytes) / pp {b.pp}: {shards.source}{pad_note}",
                )
            )
        if shards is not None and b.layout.redundant_experts and shards.ep_size > 1:
            terms.append(self._eplb_buffer(b, shards))
        rope = rope_table_bytes(b.config, b.dtype)
        if rope:
            terms.append(
                BudgetTerm(
                    "rope_cache",
                    -rope,
                    "the rotary embeddings' cos/sin tables, max_position_embeddings (x a linear factor) x rotary dim "
                    "in the model dtype, whole on every GPU (model_executor/layers/rotary_embedding/base.py:58-63)",
                )
            )
        spec = b.speculative
        if spec is not None and spec.draft_weights:
            held, how = draft_weights_per_gpu(b, spec)
            terms.append(
                BudgetTerm(
                    "speculative_draft_weights",
                    -held,
                    f"the {spec.method} drafter's weights: {spec.weights_source} {how} (the drafter runs at the "
                    "target's TP by default: config/speculative.py:1849-1870)",
                )
            )
        if b.encoder_weights and tower_off(b.config, b.limit_mm_per_prompt):
            terms.append(
                BudgetTerm(
                    "multimodal_weights",
                    0,
                    "none: --limit-mm-per-prompt sets every modality of the towers to 0, so vLLM does not build "
                    "them (model_executor/models/interfaces.py:347-398 _mark_tower_model)",
                )
            )
        elif b.encoder_weights:
            terms.append(
                BudgetTerm(
                    "multimodal_weights",
                    -tower_bytes_per_gpu(b.config, b.encoder_weights, b.tp, b.encoder_numels)[0],
                    "vision tower + projector from the config (kvplan.weights.encoders) "
                    + tower_bytes_per_gpu(b.config, b.encoder_weights, b.tp, b.encoder_numels)[1]
                    + ", on every stage; vLLM builds them unless --limit-mm-per-prompt sets each of their modalities "
                    "to 0 (model_executor/models/interfaces.py:347-398 _mark_tower_model)",
                )
            )
        if b.lora is not None:
            lora, lora_source = lora_gpu_bytes(b)
            terms.append(BudgetTerm("lora", -lora, lora_source))
        encoder_cache = encoder_cache_term(b)
        if encoder_cache is not None:
            terms.append(encoder_cache)
        terms += [
            BudgetTerm(
                "activation_peak",
                -activation_peak_bytes(b.config, b.shape, mnbt, seqs, version, tp=b.tp, dtype=b.dtype),
                f"{behaviour.sampler_bytes_per_seq_vocab:g} B x max_num_seqs {seqs} x vocab + {forward_per:g} B x "
                f"{mnbt} tokens x hidden ({short_dtype(b.dtype)}) + 32 MiB; {_LOGS}"
                + (f"; sampler of vLLM {version}" if version else "")
                + (
                    f"; fused-MoE workspace {moe / _GIB:.2f} GiB ({mnbt} tokens x top-k x expert width / TP; "
                    "model_executor/layers/fused_moe/modular_kernel.py, TritonExperts.workspace_shapes)"
                    if moe
                    else ""
                ),
            ),
            BudgetTerm("non_torch", -non_torch_bytes(b.tp), f"0.25 GiB at TP 1, 2.1 GiB at TP > 1; {_LOGS}"),
        ]
        if profiled and v2_none:
            terms.append(
                BudgetTerm(
                    "cudagraph",
                    0,
                    f"none: vLLM {version} runs this model on Model Runner V2, whose CUDA-graph estimate is 0 "
                    "(0.22-0.28; v1/worker/gpu/model_runner.py profile_cudagraph_memory)",
                )
            )
        elif profiled:
            terms.append(
                BudgetTerm(
                    "cudagraph",
                    -cudagraph_bytes(b.layers_on_gpu),
                    f"0.45 GiB + 15 MiB x {b.layers_on_gpu} layers; subtracted by vLLM >= 0.20 "
                    "(VLLM_MEMORY_PROFILER_ESTIMATE_CUDAGRAPHS)",
                )
            )
        return terms, sum(t.bytes for t in terms)

    def lora_host_bytes(self, b: BudgetInputs) -> tuple[int, str] | None:
        return lora_host(b)

    def budget_notes(self, b: BudgetInputs) -> list[str]:
        return encoder_cache_notes(b)

    models_colocation = True

    def footprint(self, total_memory: int, utilization: float, held: int) -> tuple[int, str]:
        """A started vLLM holds its requested memory, ceil(total x gpu_memory_utilization): the KV cache fills
        what its weights, activations and graphs leave of it (v1/worker/utils.py:716-770 request_memory,
        v1/worker/gpu_worker.py determine_available_memory)."""
        requested = math.ceil(total_memory * utilization)
        return requested, f"vLLM's requested memory, total x gpu_memory_utilization {utilization}"

    def colocation_notes(self, used_by_others: int, total_memory: int, utilization: float) -> list[str]:
        """vLLM's fraction is of the GPU's total memory, per instance, and needs that much free at start; so the
        fractions of the deployments on one GPU add up to at most the free share, and each starts after the ones
        before it have allocated their KV caches (a vLLM starting while another is still profiling sees memory
        free that the other then takes)."""
        free = total_memory - used_by_others - SNAPSHOT_IN_USE_TP1
        room = math.floor(max(0, free) / total_memory * 100) / 100
        return [
            f"other deployments hold {format_gib(used_by_others)} GiB of each GPU at start: vLLM's "
            "gpu_memory_utilization is this instance's share of the GPU's total memory and needs that much free "
            f"when it starts (v1/worker/utils.py:716-770 request_memory), so at most {room} here (TP 1: 0.51 GiB of "
            "its own in use at the snapshot, as the llm-d H100 logs print)",
            'start order: start this deployment after the others have allocated their KV caches ("Available KV cache '
            'memory" logged); started together, each vLLM sees the memory the others are about to take as free',
        ]

    def request_kv_bytes(self, storage: Engine, shape: ModelShape, req: Request) -> int:
        """Whole pages in every KV-cache group (what vLLM's max concurrency divides by)."""
        caches, _ = fullest_stage(shape, req.pp)
        cap = capacity(caches, req, 0, _storage(storage, shape))
        return cap.blocks_per_request * cap.page_bytes * cap.group_size

    def block_bytes(self, storage: Engine, shape: ModelShape, req: Request, block_size: int) -> int:
        """One block of the worker: the page of every layer slot of a group, the groups aliasing the same bytes
        (vllm-0.33.0/vllm/v1/core/kv_cache_planning.py:678-683, bytes_per_block x num_blocks is the allocation);
        what the CPU offload copies per block (offloading/config.py:176-185 worker_kv_bytes_per_block)."""
        caches, _ = fullest_stage(shape, req.pp)
        cap = capacity(caches, req, 0, _storage(storage, shape))
        return cap.page_bytes * cap.group_size

    def fit(self, inputs: FitInputs) -> Fit:
        """Block accounting: KV blocks of the available memory, blocks one request needs (capacity); from 0.29 one
        request must fit beside the null block."""
        caches, req, avail = list(inputs.caches), inputs.request, max(0, inputs.available)
        engine = _storage(inputs.storage, inputs.shape)
        # the groups and pages do not depend on the length: grouped once, only the blocks a request needs vary
        groups = engine.plan(caches, req)
        cap = capacity(caches, req, avail, engine, groups)

        def fits(n: int) -> bool:
            longer = replace(req, seq_len=n)
            if groups.check_page:  # DeepSeek-V4 in 0.26-0.28: the start-up check's own pricing (v4_check_page)
                return max_memory_usage_bytes(engine, caches, req, n) <= avail
            blocks = groups.request_blocks(lambda spec: engine.blocks_per_request(spec, longer))
            return blocks <= cap.usable_blocks

        return Fit(
            avail,
            cap.kv_cache_tokens,
            cap.num_blocks,
            cap.block_size,
            cap.max_concurrency,
            largest(fits, inputs.limit),
            fits(req.seq_len),
        )

    def startup(self, inputs: StartupInputs) -> Startup:
        """What the release does when it starts (kvplan.engines.vllm.startup)."""
        return startup(inputs)

    def speculative(self, inputs: SpeculativeInputs) -> Speculative:
        """vLLM's speculative decoding (kvplan.engines.vllm.speculative_rules)."""
        return speculative_rules(inputs)

    def command(self, f: FlagInputs) -> str:
        line = (
            f"vllm serve {f.model} --max-model-len {f.max_model_len} --max-num-seqs {f.max_num_seqs} "
            f"--gpu-memory-utilization {f.utilization} --tensor-parallel-size {f.tp}"
        )
        if f.pp > 1:
            line += f" --pipeline-parallel-size {f.pp}"
        spelling = KV_CACHE_DTYPE_FLAGS.get(f.kv_dtype)
        shape = getattr(f.storage, "shape", None)
        if spelling == "nvfp4" and shape is not None and any(getattr(c, "sparse", False) for c in shape.caches()):
            spelling = "nvfp4_ds_mla"  # sparse MLA's NVFP4 layout (config/cache.py:53; "nvfp4" has no sparse backend)
        if spelling:
            line += f" --kv-cache-dtype {spelling}"
        if f.prefix_caching is not None:
            line += " --enable-prefix-caching" if f.prefix_caching else " --no-enable-prefix-caching"
        if f.async_scheduling is not None:
            line += " --async-scheduling" if f.async_scheduling else " --no-async-scheduling"
        if f.quantization is not None:
            line += f" --quantization {f.quantization}"
        if f.speculative is not None:
            line += " --speculative-config " + shlex.quote(f.speculative.config_json())
        layout = f.layout
        if layout.dp > 1:
            line += f" --data-parallel-size {layout.dp}"
        if layout.dcp > 1:
            line += f" --decode-context-parallel-size {layout.dcp}"
        if layout.expert_parallel:
            line += " --enable-expert-parallel"
        if layout.redundant_experts:
            line += f""" --enable-eplb --eplb-config '{{"num_redundant_experts": {layout.redundant_experts}}}'"""
        if f.budget.limit_mm_per_prompt is not None:
            import json

            line += " --limit-mm-per-prompt " + shlex.quote(
                json.dumps(f.budget.limit_mm_per_prompt, separators=(",", ":"))
            )
        return line + f.offload_flags + lora_flags(f.budget.lora)


# ------------------------------------------------------------------------------------ start-up (what vLLM does)
#
# The checks a release runs when it starts, in its order, and the lines it logs (sources per rule below):
# max_num_batched_tokens >= max_num_seqs (config/scheduler.py, the SchedulerConfig built before the VllmConfig),
# TP dividing the attention heads (config/model.py `verify_with_parallel_config`), no KV memory and one request of
# max_model_len (v1/core/kv_cache_utils.py `_check_enough_kv_cache_memory`, kv_cache_planning.py from 0.33), the
# Mamba blocks (config/compilation.py, from 0.20.0), each error in vLLM's own words.

_DOCS = "See https://docs.vllm.ai/en/latest/configuration/conserving_memory/ for more details."


def format_gib(b: int) -> str:
    """vLLM's `format_gib` (vllm/utils/mem_utils.py:30): str(round(b / GiB, 2))."""
    return f"{round(b / _GIB, 2)}"


def max_memory_usage_bytes(engine: VllmEngine, caches: list[L.Layer], req: Request, seq_len: int) -> int:
    """vLLM's `max_memory_usage_bytes` over every layer's spec (kv_cache_utils.py): the pages one request of
    `seq_len` tokens may hold, layer by layer (no group padding), what the one-request check needs."""
    at = replace(req, seq_len=seq_len)
    plan = engine.plan(caches, at)
    return sum(
        count * engine.blocks_per_request(spec, at) * (plan.check_page or spec.page)
        for spec, count in plan.specs.items()
    )


def estimate_max_model_len(needed: Callable[[int], int], available: int, max_model_len: int) -> int:
    """vLLM's `estimate_max_model_len` (vllm-0.19.1/vllm/v1/core/kv_cache_utils.py:665-716): a binary search over
    1..max_model_len for the longest length whose bytes fit; 0 when one token does not."""
    left, right = 1, max_model_len
    if needed(left) > available:
        return 0
    result = 1
    while left <= right:
        mid = (left + right) // 2
        if needed(mid) <= available:
            result, left = mid, mid + 1
        else:
            right = mid - 1
    return result


def scheduler_error(max_num_batched_tokens: int, max_num_seqs: int) -> str:
    """SchedulerConfig's check, raised before the model is loaded (vllm-0.10.1.1/vllm/config/scheduler.py:262-266,
    0.19.1 :273-277, 0.33.0 :331-336; the SchedulerConfig is built at 0.33.0 engine/arg_utils.py:2658, before the
    VllmConfig whose __post_init__ checks TP against the heads, config/vllm.py:1549)."""
    return (
        f"max_num_batched_tokens ({max_num_batched_tokens}) must be greater than or equal to max_num_seqs "
        f"({max_num_seqs})."
    )


def no_memory_error(version: str | None) -> str:
    """vllm-0.19.1 kv_cache_utils.py:626-631 (0.22.0 on: the CPU backend named, kv_cache_utils.py, 0.33.0
    kv_cache_planning.py:57-64)."""
    if vllm_behaviour(version).cpu_backend_wording:
        how = (
            "Try increasing `gpu_memory_utilization` when initializing the engine (this flag also controls CPU "
            "memory reservation on the CPU backend, despite its name). "
        )
    else:
        how = "Try increasing `gpu_memory_utilization` when initializing the engine. "
    return "No available memory for the cache blocks. " + how + _DOCS


def max_model_len_error(version: str | None, max_model_len: int, needed: int, available: int, estimated: int) -> str:
    """vllm-0.19.1 kv_cache_utils.py:635-652 ("models's"; 0.22.0 on: "model's" and the CPU backend named,
    0.33.0 kv_cache_planning.py:66-88)."""
    cpu = vllm_behaviour(version).cpu_backend_wording
    estimate = (
        f"Based on the available memory, the estimated maximum model length is {estimated}. " if estimated > 0 else ""
    )
    increase = (
        "Try increasing `gpu_memory_utilization` (which also controls CPU memory on the CPU backend) or decreasing "
        "`max_model_len` when initializing the engine. "
        if cpu
        else "Try increasing `gpu_memory_utilization` or decreasing `max_model_len` when initializing the engine. "
    )
    return (
        f"To serve at least one request with the {'model' if cpu else 'models'}'s max seq len ({max_model_len}), "
        f"({format_gib(needed)} GiB KV cache is needed, which is larger than the available KV cache memory "
        f"({format_gib(available)} GiB). {estimate}{increase}{_DOCS}"
    )


def mamba_blocks_error(max_num_seqs: int, blocks: int) -> str:
    """vllm-0.20.0/vllm/config/compilation.py:1435-1442 (the same text to 0.33.0)."""
    return (
        f"max_num_seqs ({max_num_seqs}) exceeds available Mamba cache blocks ({blocks}). Each decode sequence "
        "requires one Mamba cache block, so CUDA graph capture cannot proceed. Please lower max_num_seqs to at most "
        f"{blocks} or increase gpu_memory_utilization."
    )


def tp_heads_error(heads: int, tp: int) -> str:
    """vllm-0.19.1/vllm/config/model.py:1111-1116 (0.33.0: :1559-1564)."""
    return f"Total number of attention heads ({heads}) must be divisible by tensor parallel size ({tp})."


def capacity_lines(version: str | None, cap: Capacity, max_model_len: int) -> list[str]:
    """vllm-0.19.1 kv_cache_utils.py:1319-1329 (two lines; 0.20.1: tokens int(concurrency x max_model_len),
    :1708-1713); 0.28.0 on one line (`update_kv_cache_capacity`; 0.33.0 kv_cache_utils.py:1148-1155, "GPU" the
    CUDA device's pool)."""
    tokens = f"GPU KV cache size: {cap.kv_cache_tokens:,} tokens"
    concurrency = f"Maximum concurrency for {max_model_len:,} tokens per request: {cap.max_concurrency:.2f}x"
    if vllm_behaviour(version).one_capacity_line:
        return [f"{tokens}, {concurrency}"]
    return [tokens, concurrency]


def cudagraph_line(utilization: float, estimate: int, total_memory: int) -> str:
    """vllm-0.20.0/vllm/v1/worker/gpu_worker.py:445-462 (the same text to 0.33.0), for an estimate > 0."""
    delta = estimate / total_memory
    equivalent = round(utilization - delta, 4)
    suggested = min(round(utilization + delta, 4), 1.0)
    return (
        "CUDA graph memory profiling is enabled (default since v0.21.0). The current "
        f"--gpu-memory-utilization={utilization:.4f} is equivalent to --gpu-memory-utilization={equivalent:.4f} "
        "without CUDA graph memory profiling. To maintain the same effective KV cache size as before, increase "
        f"--gpu-memory-utilization to {suggested:.4f}. To disable, set VLLM_MEMORY_PROFILER_ESTIMATE_CUDAGRAPHS=0."
    )


# What a worker holds when it takes its start-up memory snapshot, before other deployments count: the llm-d vLLM 0.19
# H100 logs print "Free memory on device (78.68/79.19 GiB) on startup" at TP 1 (every log) and 77.64-77.66 for dense
# models at TP 2 and 4 (NCCL initialised first; tests/fixtures/calibration/engine_cases.yaml). MoE models at TP > 1
# hold 0.5 GiB more there (Mixtral, Llama 4 Scout: 77.18, 77.12), which is not modelled.
SNAPSHOT_IN_USE_TP1 = int(0.51 * _GIB_EARLY)
SNAPSHOT_IN_USE_TP_MULTI = int(1.55 * _GIB_EARLY)


def snapshot_in_use(tp: int) -> int:
    return SNAPSHOT_IN_USE_TP1 if tp == 1 else SNAPSHOT_IN_USE_TP_MULTI


def free_memory_error(version: str | None, free: int, total: int, utilization: float) -> str:
    """The worker's start-up check that the GPU has `utilization` x total memory free (vllm-0.33.0
    v1/worker/utils.py:716-770 request_memory; vllm-0.10.1.1 v1/worker/gpu_worker.py:175-187, without the
    device)."""
    device = " cuda:0" if vllm_behaviour(version).free_memory_names_device else ""
    requested = math.ceil(total * utilization)
    return (
        f"Free memory on device{device} ({format_gib(free)}/{format_gib(total)} GiB) on startup is less than "
        f"desired GPU memory utilization ({utilization}, {format_gib(requested)} GiB). Decrease GPU memory "
        "utilization or reduce GPU memory used by other processes."
    )


def startup(s: StartupInputs) -> Startup:
    """What vLLM release `request.engine_version` does when it starts with this plan: the checks in vLLM's order,
    each error in its words with the fix that passes it, and the lines logged up to it."""
    f = s.fit
    req, caches, version = f.request, list(f.caches), f.request.engine_version
    row = vllm_behaviour(version)
    engine = _storage(f.storage, f.shape)
    if req.max_num_batched_tokens < s.max_num_seqs:
        error = scheduler_error(req.max_num_batched_tokens, s.max_num_seqs)
        fix: dict[str, int | float] = {
            "max_num_seqs": req.max_num_batched_tokens,
            "max_num_batched_tokens": s.max_num_seqs,
        }
        return Startup(error, "scheduler", fix, (), 0, 0, None)
    heads = f.shape.num_attention_heads
    if heads and heads % req.tp:
        tp = max(t for t in range(1, min(req.tp, heads + 1)) if heads % t == 0)  # a divisor is at most heads
        return Startup(tp_heads_error(heads, req.tp), "tp_heads", {"tp": tp}, (), 0, 0, None)
    # the worker's memory snapshot, before the weights load: what other processes hold is not free, nor what the
    # worker itself holds by then (CUDA context; NCCL at TP > 1): SNAPSHOT_IN_USE, applied to co-located starts
    free = s.total_memory - s.used_by_others - snapshot_in_use(req.tp)
    if s.used_by_others and s.total_memory and free < math.ceil(s.total_memory * s.utilization):
        error = free_memory_error(version, free, s.total_memory, s.utilization)
        room = math.floor(max(0, free) / s.total_memory * 100) / 100  # the largest two-decimal share that is free
        return Startup(error, "free_memory", {"gpu_memory_utilization": room} if room > 0 else {}, (), 0, 0, None)
    available = f.available
    plan = engine.plan(caches, req)
    cap = capacity(caches, req, max(0, available), engine, plan)
    mamba = cap.num_blocks if any(isinstance(c, L.RecurrentState) for c in caches) else None
    lines = [f"Available KV cache memory: {format_gib(available)} GiB"]
    if s.cudagraph_bytes > 0 and s.total_memory > 0:
        lines.append(cudagraph_line(s.utilization, s.cudagraph_bytes, s.total_memory))
    # from 0.29 the checks plan without the null block (kv_cache_utils.py:975-987, :2316-2321)
    check = available - plan.page * plan.group_size if row.null_block else available
    per_request = max_memory_usage_bytes(engine, caches, req, req.seq_len)

    def needed(n: int) -> int:
        return max_memory_usage_bytes(engine, caches, req, n)

    estimated = estimate_max_model_len(needed, max(0, check), req.seq_len)
    if s.auto_from is not None and req.seq_len < s.auto_from:
        # vllm-0.19.1 kv_cache_utils.py:1459-1468
        lines.append(
            f"Auto-fit max_model_len: reduced from {s.auto_from} to {req.seq_len} to fit in available GPU memory "
            f"({format_gib(check)} GiB available for KV cache)"
        )
    if check <= 0:
        return Startup(no_memory_error(version), "no_memory", {}, tuple(lines), per_request, 0, mamba)
    if per_request > check:
        error = max_model_len_error(version, req.seq_len, per_request, check, estimated)
        fix = {"max_model_len": estimated} if estimated > 0 else {}
        return Startup(error, "max_model_len", dict(fix), tuple(lines), per_request, estimated, mamba)
    lines += capacity_lines(version, cap, req.seq_len)
    if mamba is not None and row.mamba_seqs_check and s.max_num_seqs > mamba:
        error = mamba_blocks_error(s.max_num_seqs, mamba)
        return Startup(
            error, "mamba_cache_blocks", {"max_num_seqs": mamba}, tuple(lines), per_request, req.seq_len, mamba
        )
    return Startup(None, "", {}, tuple(lines), per_request, req.seq_len, mamba)


def estimate_notes(storage: object, shape: ModelShape, req: Request, kinds: frozenset) -> tuple[str, ...]:
    engine = _storage(storage, shape)
    notes: list[str] = []
    v4 = any(isinstance(c, L.CompressedAttention) for c in shape.caches())
    if kinds & {L.SLIDING, L.CHUNKED} or v4:
        in_flight = engine.in_flight_tokens(req)
        if vllm_behaviour(req.engine_version).in_flight_window:
            batches = in_flight // req.max_num_batched_tokens
            what = f"max_concurrent_batches x max_num_batched_tokens ({batches} x {req.max_num_batched_tokens})"
        else:
            what = f"max_num_batched_tokens ({req.max_num_batched_tokens})"
        notes.append(
            Text(
                "vLLM reserves window-1+{what} tokens (+1 block) per sliding layer and chunk+the same per chunked "
                "layer; set {max_num_batched_tokens} to your engine's",
                what=what,
            )
        )
    if v4:
        dtypes = "`--kv-cache-dtype auto` or fp8 alike" if vllm_behaviour(req.engine_version).v4_auto_kv else "fp8"
        notes.append(
            "DeepSeek-V4: vLLM stores the sliding ring, the CSA/HCA entries and the indexer keys as fp8_ds_mla "
            f"(584 B per entry, pages padded to 576 B) with {dtypes}, and the "
            "compressors' state in fp32 rings that reserve their window + the in-flight tokens; the groups draw "
            "their blocks from one pool, each block packing pages of every group; every TP rank holds the whole "
            "cache (one latent head); the indexer keys in fp8 (vLLM's default indexer_kv_dtype; mxfp4 is not "
            "modelled); the MTP layer (the last `compress_ratios` entry) adds a sliding ring only with an MTP "
            "draft, not modelled"
        )
    index_keys = [c for c in shape.caches() if isinstance(c, L.IndexKeys)]
    if index_keys:
        notes.append(
            f"MiniMax-M3: GQA K/V on every layer plus a bf16 indexer key of {index_keys[0].head_dim} elements per "
            f"token on the {len(index_keys)} MSA layers, on every TP rank (vLLM's default indexer_kv_dtype; an fp8 "
            "indexer through --attention-config is not modelled); one KV-cache group, blocks of "
            f"{req.block_size or MSA_BLOCK_SIZE} tokens"
        )
    sparse = [c for c in shape.caches() if isinstance(c, L.MlaLatent) and c.sparse]
    if sparse:
        fmt = engine.sparse_mla_format(req)
        layout = {
            "plain": f"in {short_dtype(req.kv_dtype)}",
            "fp8": "in plain fp8",
            "fp8_ds_mla": "as fp8_ds_mla (fp8, fp32 scales, bf16 RoPE)",
            "nvfp4_ds_mla": "as nvfp4_ds_mla",
        }[fmt]
        gpu = "" if req.compute_capability else " (no GPU given: Hopper's sparse backends assumed)"
        indexers = sum(1 for c in sparse if c.index_head_dim)
        notes.append(
            f"sparse (DSA) MLA: the latent stored {layout}{gpu}, plus 132 B of uint8 indexer keys per token on the "
            f"{indexers} of {len(sparse)} layers that run an indexer; blocks of {req.block_size or DSA_BLOCK_SIZE} tokens"
        )
        blackwell = _major(req.compute_capability) in (None, 10)
        if "GlmMoeDsaForCausalLM" in shape.architectures and req.kv_dtype in ("bfloat16", "float16") and blackwell:
            notes.append(
                Text(
                    "vLLM turns `--kv-cache-dtype auto` into fp8 for GLM-5 on Blackwell SM100 (model_executor/models/"
                    "config.py:89-101): plan with {kv_dtype} fp8 for an auto KV cache there"
                )
            )
    if L.STATE in kinds:
        mode = engine.mamba_cache_mode(shape.caches(), req)
        if mode != "none":
            notes.append(
                f"prefix caching is on (vLLM {req.engine_version or NEWEST_VLLM}'s default for hybrids, or "
                f"--prefix-caching on): Mamba states in `{mode}` mode"
            )
    return tuple(notes)


# ------------------------------------------------------------------------------------ config files (vllm --config)

CONFIG = ConfigVocabulary(
    keys={
        **COMMON_CONFIG_KEYS,
        "model": "model",
        "max_model_len": "max_model_len",
        "tp": "tensor_parallel_size",
        "pp": "pipeline_parallel_size",
        "gpu_memory_utilization": "gpu_memory_utilization",
        "max_num_seqs": "max_num_seqs",
        "block_size": "block_size",
        "kv_cache_memory_bytes": "kv_cache_memory",
        "kv_cache_memory": "kv_cache_memory",
        "max_num_batched_tokens": "max_num_batched_tokens",
        "quantization": "quantization",
        "speculative_config": "speculative_config",
        # the native CPU offload tier (kvplan.engines.offload.vllm_native)
        "kv_offloading_size": "kv_offloading_size",
        "kv_offloading_backend": "kv_offloading_backend",
        "data_parallel_size": "data_parallel_size",
        "dp": "data_parallel_size",
        "decode_context_parallel_size": "decode_context_parallel_size",
        "dcp": "decode_context_parallel_size",
        "enable_expert_parallel": "enable_expert_parallel",
        "eplb_config": "num_redundant_experts",  # its num_redundant_experts (engine_configs._redundant_experts)
        "enable_lora": "enable_lora",
        "max_loras": "max_loras",
        "max_lora_rank": "max_lora_rank",
        "max_cpu_loras": "max_cpu_loras",
        "lora_dtype": "lora_dtype",
        "lora_target_modules": "lora_target_modules",
        "limit_mm_per_prompt": "limit_mm_per_prompt",
    },
    memory_keys=(
        "cpu_offload_gb",
        "swap_space",
        "enforce_eager",
        "num_gpu_blocks_override",
        "spec_method",  # vLLM 0.33's --spec-method / --spec-model / --spec-tokens (engine/arg_utils.py:1869-1872)
        "spec_model",
        "spec_tokens",
        "max_seq_len_to_capture",
        "cuda_graph_sizes",
        "compilation_config",
        "hf_overrides",
        "rope_scaling",
        "rope_theta",
        "mm_processor_cache_gb",
        "fully_sharded_loras",
        "kv_transfer_config",
        "calculate_kv_scales",
        "prefill_context_parallel_size",
        "enable_chunked_prefill",
        "long_prefill_token_threshold",
        "max_num_partial_prefills",
        "disable_sliding_window",
        "mamba_cache_dtype",
        "mamba_ssm_cache_dtype",
        "quantization_param_path",
        "num_lookahead_slots",
        "load_format",
        "kv_sharing_fast_prefill",
    ),
    fallback=True,  # a config with no other engine's keys is read as vLLM's
    describes="a vLLM --config YAML",
)


def auto_kv_dtype(shape: ModelShape, compute_capability: str | None = None, release: str | None = None) -> str | None:
    """vLLM's `--kv-cache-dtype auto` where the model decides (None: the model dtype): DeepSeek-V4 from 0.30, whose
    fp8_ds_mla layout maps auto to fp8 (models/deepseek_v4/attention.py:109-110 in 0.30.0 and 0.33.0; `v4_auto_kv`;
    before 0.30 `auto` stays the model dtype, which `_check_v4` refuses as vLLM's assert does)."""
    if vllm_behaviour(release).v4_auto_kv and any(isinstance(c, L.CompressedAttention) for c in shape.caches()):
        return "fp8_e4m3"
    return None


ENTRY = EngineEntry(
    name="vllm",
    display="vLLM",
    metrics={
        "running": "vllm:num_requests_running",
        "kv_cache_usage": "vllm:kv_cache_usage_perc",
        "waiting": "vllm:num_requests_waiting",
        "source": "vllm-0.33.0/vllm/v1/metrics/loggers.py:528 (running), :620 (kv_cache_usage_perc: '1 means 100 "
        "percent usage'), :538 (waiting); labels model_name, engine (:499)",
    },
    storage=lambda shape: VllmEngine(shape),
    serving=VllmServing(),
    kv_auto_for=auto_kv_dtype,
    config=CONFIG,
    plannable=True,
    splits_heads=True,
    serves_fp32_in_16bit=True,
    estimate_help="vllm (paged)",
    estimate_notes=estimate_notes,
    release=resolve_vllm_version,
    release_notes=version_notes,
)
