"""How SGLang sizes its KV pool: per token, no pages (`model_runner.py` `cell_size`).

- full attention: K and V of `max(1, kv_heads // tp)` heads per layer on each TP rank;
- MLA: one latent of `kv_lora_rank + qk_rope_head_dim` per layer, replicated on every TP rank;
- sparse (DSA) MLA, DeepSeek V3.2 / GLM-5 (DSATokenToKVPool): the latent, as 656 B (512 fp8 + 4 fp32 scales + 64
  bf16 RoPE) with an fp8_e4m3 cache on the scaled-layout DSA backends, plus 132 B (128 fp8 index keys + one fp32
  scale) of indexer keys on every layer that runs an indexer, whatever the KV dtype;
- sliding-window layers live in a separate SWA pool that frees tokens outside the window: a sequence keeps at
  most `window` tokens there;
- Mamba-style states: a per-request pool; conv state `(conv_kernel - 1) x channels` in bf16 (its
  SGLANG_MAMBA_CONV_DTYPE default, whatever the model dtype), SSM state in the config's `mamba_ssm_dtype`
  (Qwen3.5; --mamba-ssm-dtype over it), else float32 (SGLang's default); Mamba2 groups TP does not divide are
  replicated; the serving model splits a hybrid's budget as SGLang does (`sglang_mamba_pool`: max_mamba_cache_size
  slots by --mamba-full-memory-ratio 0.9 first, the full-attention tokens from the rest, the PP stages' MIN, the
  running requests capped by the slots), and refuses PP for the hybrids SGLang runs on one stage (NO_PP_HYBRIDS);
- KV dtypes: auto, bf16, fp16, fp32, fp8_e4m3, fp8_e5m2 (no scales stored); nvfp4 for full-attention models and
  the full-attention layers of hybrid linear-attention ones on Blackwell (`nvfp4_layer_bytes`: FP4 K/V, one fp8
  scale per 16 values in each scale layout the backends read, FlashInfer's fp8 dequant workspace: `nvfp4_path`, by
  the backend a hybrid's model override sets, `fp4_attention_backend`), never MLA (SGLang decodes nvfp4 on
  trtllm_mha, which refuses MLA); fp4_mx_block16, SGLang's block-16 recipe and an SGLang-only kvplan KV dtype
  (`fp4_mx_layer_bytes`, MLA `fp4_mla_layer_bytes` in MLATokenToKVPoolFP4), where SGLang's default backend reads
  it: SM100 (trtllm_mha; flashinfer for dense MLA without a backend override), refused elsewhere naming the flag;
  `auto` is the model dtype except where SGLang picks its own (`auto_kv_dtype`: DSA models on SM100+, FP8
  checkpoints, DeepSeek-V4).
- DeepSeek-V4 (DSV4PoolConfigurator, model_executor/pool_configurator.py:1067-1719): the CUDA FlashMLA V4 layout
  (585 B a token slot after the page pad), a paged SWA pool of 0.1 x the full tokens on every layer with the c4
  compress state, CSA entries + FP8 indexer keys per 4 tokens, HCA entries per 128, 256-token pages, the c128
  compress-state rings per request slot set aside first (`dsv4_pool`), SGLang's own PP split with the stages' MIN,
  MTP as (layers + 1) / layers with 16 / 256-row rings; HIP's unified pools, V4.1 layouts (deepseek_v41 on
  Blackwell at TP 1), HiSparse, encoder replay, online c128 and ratios 1 / 2 are not modelled (refused where kvplan
  can tell). ROCm at
  its defaults sizes the same way: the unified pools need SGLANG_HACK_FLASHMLA_BACKEND=unified_kv_triton
  (layers/attention/dsv4/unified_kv_gate.py:13-16), the FP4 indexer --enable-deepseek-v4-fp4-indexer
  (arg_groups/fields/exec_.py:439-442, default off), and SGLANG_DSV4_KV_LAYOUT "v4" picks V4 before any HIP test
  (deepseek_v4_memory_pool.py:211-212).
- speculative decoding (EAGLE / EAGLE3 / NEXTN / STANDALONE): the draft pool shares the target's token slots, each
  slot `eagle_draft_num_layers` target-sized layers more (pool_configurator.py:259-313), for full-attention and MLA
  targets; other setups (hybrids, SWA, DSA, DFLASH) and the drafter's weights are noted as left out.

Below the storage model: its serving model (SglangServing: mem_fraction_static budget, per-token fit, server
flags), the vocabulary of its server-argument files (CONFIG) and its registry entry (ENTRY).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from fractions import Fraction
from typing import Any

from kvplan.core import specs as L
from kvplan.core.bisection import largest
from kvplan.core.config import text_config
from kvplan.core.lora import decoder_modules
from kvplan.core.shapes import (
    CHECKPOINT_FP8_KV,
    KV_SHARED_LAYERS,
    LEARNABLE_SINK,
    M3_INDEX_VALUES,
    QUANTIZED,
    ModelShape,
)
from kvplan.core.units import DTYPE_BYTES, cdiv, fp8_block_scaled_bytes, short_dtype
from kvplan.engines.base import (
    MINIMAX_M3_SERVED,
    KindCost,
    Request,
    Speculative,
    group_costs,
    kv_heads_per_rank,
    pipeline_stages,
    refuse_index_keys,
    refuse_m3_dropped_sparse_config,
    refuse_m3_layer_types,
    window_tokens,
)
from kvplan.engines.entry import COMMON_CONFIG_KEYS, ConfigVocabulary, EngineEntry
from kvplan.engines.serving import (
    GPU_MEMORY_UTILIZATION,
    MAMBA_FULL_MEMORY_RATIO_OPTION,
    MAMBA_SSM_DTYPE_OPTION,
    MAX_MAMBA_CACHE_SIZE_OPTION,
    BudgetInputs,
    BudgetTerm,
    Fit,
    FitInputs,
    FlagInputs,
    Layout,
    LoraSettings,
    ServingModel,
    SpeculativeInputs,
    Startup,
    StartupInputs,
    UtilizationInputs,
)
from kvplan.errors import Text, UsageError

# the SSM-state dtypes sglang-0.5.23 accepts from a config (srt/configs/mamba_utils.py:63-67)
_SGLANG_SSM_DTYPES = ("float32", "bfloat16", "float16")


class SglangEngine:
    name = "sglang"
    follows = "SGLang 0.5 (model_runner cell_size, SWA and Mamba pools; DSA pool as in 0.5.23)"

    def __init__(
        self, architectures: tuple[str, ...] = (), model_type: str | None = None, features: frozenset[str] = frozenset()
    ) -> None:
        self.architectures = architectures  # the config's: SGLang picks GLM's DSA backends on SM120 by it
        self.model_type = model_type  # the config's: SGLang builds MiniMax-M3 only from MINIMAX_M3_CONFIG_TYPES
        # the shape's features: a quantized checkpoint (MiniMax-M3's NVFP4 pool), MiniMax-M3's layer pattern source
        # and index values
        self.features = features

    def check(self, caches: list[L.Layer], req: Request) -> None:
        if any(isinstance(c, L.RecurrentState) and c.family == "lightning" for c in caches):
            raise UsageError(
                "SGLang 0.5 does not serve MiniMax-01's lightning attention (srt/models has no MiniMaxText01 or "
                "MiniMaxM1 model)",
                hint=Text("use {engine} transformers for this model"),
                field="engine",
            )
        if "JambaForCausalLM" in self.architectures:
            raise UsageError(
                "SGLang 0.5.23 does not serve Jamba: srt/models has no JambaForCausalLM, and its Transformers fallback "
                "refuses a model whose Transformers class is not backend-compatible (srt/model_loader/utils.py:181-187; "
                "transformers' JambaPreTrainedModel does not set _supports_attention_backend)",
                hint=Text("use {engine} vllm or transformers for this model"),
                field="engine",
            )
        self._check_mamba(req)
        refuse_index_keys(
            "SGLang 0.5.23",
            caches,
            self.architectures,
            MINIMAX_M3_SERVED,
            model_type=self.model_type,
            loader="srt/configs/minimax_vl.py:61-62, srt/utils/hf_transformers/config.py:228-233",
            registry="srt/models/minimax_m3.py:2274, minimax_m3_vl.py:479, fallback srt/model_loader/utils.py:143-161",
            sized=True,
        )
        if any(isinstance(c, L.IndexKeys) for c in caches):
            refuse_m3_layer_types(
                "SGLang 0.5.23",
                self.features,
                "srt/configs/model_config.py:460-461 indexes it unconditionally",
            )
            # SGLang builds a wrapper's text_config through CONFIG_MAPPING by its model_type (srt/configs/
            # minimax_vl.py:10-23, :44), a top-level one through AutoConfig: either way transformers' class
            refuse_m3_dropped_sparse_config(
                "SGLang 0.5.23",
                self.features,
                True,
                "SGLang then fails at start-up (srt/configs/model_config.py:446-458: 'Could not find sparse config')",
            )
            self._check_minimax_m3(req)
        if any(isinstance(c, L.CompressedAttention) for c in caches):
            self._check_v4(caches, req)
        if req.kv_dtype in FP4_KV_DTYPES:
            self._check_nvfp4(caches, req)
        if req.kv_dtype in ("int8", "int4"):
            raise UsageError(
                f"SGLang has no {req.kv_dtype} KV cache",
                hint=Text("use {kv_dtype} fp8_e4m3, fp8_e5m2 or auto"),
                field="kv_dtype",
            )
        if req.kv_dtype == "fp8_e5m2" and any(isinstance(c, L.MlaLatent) and c.sparse for c in caches):
            raise UsageError(
                "kvplan has not checked SGLang's DSA backends with an fp8_e5m2 cache (they pick by fp8_e4m3)",
                hint=Text("use {kv_dtype} fp8_e4m3 or auto for this model"),
                field="kv_dtype",
            )

    def _check_minimax_m3(self, req: Request) -> None:
        """What kvplan has read of SGLang 0.5.23's MiniMax-M3 pool (MiniMaxSparseKVPool, srt/mem_cache/
        kv_cache_configurator.py:2572): not the packed pool of NVFP4 checkpoints on Blackwell (MiniMaxM3Nvfp4KVPool,
        :2573-2576, chosen by `uses_minimax_m3_nvfp4_native_stack`, configs/model_config.py:434-443, from the
        checkpoint's quantization, arg_groups/model_overrides/minimax_m3.py:18-34), so a quantized checkpoint is
        refused; nor the draft pool of a speculative setup."""
        if QUANTIZED in self.features:
            raise UsageError(
                "kvplan sizes SGLang's MiniMax-M3 pool for unquantized checkpoints only: an NVFP4 checkpoint on "
                "Blackwell gets MiniMaxM3Nvfp4KVPool instead (srt/mem_cache/kv_cache_configurator.py:2573-2576, "
                "configs/model_config.py:434-443, arg_groups/model_overrides/minimax_m3.py:18-34), whose packed "
                "layout kvplan has not read",
                hint=Text("plan the bf16 checkpoint, or use {engine} vllm"),
                field="engine",
            )
        if req.speculative is not None:
            raise UsageError(
                "kvplan has not read SGLang's draft pool for MiniMax-M3",
                hint=Text("plan this model without {speculative_config}"),
                field="speculative_config",
            )

    @staticmethod
    def _minimax_index_key_bytes(req: Request) -> int:
        """Bytes of one MiniMax-M3 indexer key element (`get_minimax_sparse_index_dtype`, srt/mem_cache/
        memory_pool.py:5831-5844): the KV dtype (fp8) when the KV cache is fp8_e4m3 on Hopper (:5838-5841), or on
        SM100 (compute capability 10.x, srt/utils/common.py:309-313), where an unset attention backend becomes
        trtllm_mha for fp8_e4m3 (arg_groups/model_overrides/minimax_m3.py:147-158) and that turns on the fp8
        attention GEMMs that store the index keys in fp8 (server_args.py:592-610); else the model dtype. Without a
        GPU, fp8_e4m3 is taken as on Hopper (as for DSA)."""
        major = int(str(req.compute_capability).split(".")[0]) if req.compute_capability else None
        if req.kv_dtype == "fp8_e4m3" and major in (None, 9, 10):
            return 1
        return int(DTYPE_BYTES[req.model_dtype])

    def _check_mamba(self, req: Request) -> None:
        """SGLang's Mamba-state settings and the hybrids it runs on one pipeline stage only (NO_PP_HYBRIDS: the
        model asserts it is both the first and the last PP rank)."""
        where = NO_PP_HYBRIDS.get(self.architectures[0] if self.architectures else "")
        if req.pp > 1 and where is not None:
            raise UsageError(
                f"SGLang 0.5.23 runs {self.architectures[0]} on one pipeline stage only ({where}: assert "
                "self.pp_group.is_first_rank and self.pp_group.is_last_rank)",
                hint=Text("use {pp} 1 (split the model with {tp} instead)"),
                field="pp",
            )
        ratio, size = req.mamba_full_memory_ratio, req.max_mamba_cache_size
        if req.mamba_ssm_dtype is not None and req.mamba_ssm_dtype not in _SGLANG_SSM_DTYPES:
            raise UsageError(
                Text(
                    "{mamba_ssm_dtype} {d} is not one of SGLang's choices (float32, bfloat16, float16: sglang-0.5.23 "
                    "srt/arg_groups/fields/exec_.py:490-496)",
                    d=req.mamba_ssm_dtype,
                ),
                hint=Text("use {mamba_ssm_dtype} float32, bfloat16 or float16"),
                field="mamba_ssm_dtype",
            )
        if ratio is not None and not (math.isfinite(ratio) and ratio <= MAX_MAMBA_FULL_MEMORY_RATIO):
            raise UsageError(
                Text(
                    "{mamba_full_memory_ratio} {r:g} is not a ratio SGLang can split memory by: its state budget, "
                    "rest x ratio / (1 + ratio), overflows or is not a number (sglang-0.5.23 "
                    "srt/mem_cache/kv_cache_configurator.py:3350-3402)",
                    r=ratio,
                ),
                hint=Text("give {mamba_full_memory_ratio} a finite number above 0 (SGLang's default is 0.9)"),
                field="mamba_full_memory_ratio",
            )
        if ratio is not None and not ratio > 0:
            raise UsageError(
                Text(
                    "{mamba_full_memory_ratio} {r:g} leaves SGLang no Mamba state slots: it fails to start with "
                    "'Not enough GPU memory for hybrid (mamba/linear-attention) state cache' (sglang-0.5.23 "
                    "srt/mem_cache/kv_cache_configurator.py:3350-3402)",
                    r=ratio,
                ),
                hint=Text("give {mamba_full_memory_ratio} above 0 (SGLang's default is 0.9)"),
                field="mamba_full_memory_ratio",
            )
        if size is not None and size <= 0:
            raise UsageError(
                Text(
                    "{max_mamba_cache_size} {k} gives SGLang no Mamba state slots: it fails to start with 'Not "
                    "enough GPU memory for hybrid (mamba/linear-attention) state cache' (sglang-0.5.23 "
                    "srt/mem_cache/kv_cache_configurator.py:3303-3307, :3392-3402)",
                    k=size,
                ),
                hint=Text("give {max_mamba_cache_size} 1 or more, or leave it to SGLang's ratio"),
                field="max_mamba_cache_size",
            )

    def _check_v4(self, caches: list[L.Layer], req: Request) -> None:
        """What kvplan's DSV4 model covers: SGLang's own dtype rule (auto -> fp8_e4m3, fp8_e4m3 or bfloat16 only,
        srt/arg_groups/overrides.py:892-913; the configurator sizes the FlashMLA V4 layout whatever the dtype,
        pool_configurator.py:1353-1370), compress ratios 0 / 4 / 128 (1 and 2 need kv_source_layer_ids, not read),
        the MTP draft tokens the compress-state rings serve (:1291-1307), and not a deepseek_v41 config on Blackwell
        at TP 1, where --dsv4-attn-backend auto picks flashmla_mega and the V4.1 layouts (arg_groups/
        deepseek_v4_hook.py:44-60 `_default_dsv4_attention_backend`: flashmla for any other model_type, an
        attention TP above 1 or a GPU other than SM100/SM103; deepseek_v4_memory_pool.py:204-205)."""
        if req.kv_dtype not in ("fp8_e4m3", "bfloat16"):
            raise UsageError(
                Text("SGLang serves DeepSeek-V4 with an fp8_e4m3 or bfloat16 KV cache only, not {v}", v=req.kv_dtype),
                hint=Text("use {kv_dtype} fp8_e4m3 (SGLang's default for DeepseekV4ForCausalLM)"),
                field="kv_dtype",
            )
        ratios = {c.compress_ratio for c in caches if isinstance(c, L.CompressedAttention)}
        if not ratios <= {0, 4, 128}:
            raise UsageError(
                Text(
                    "kvplan models SGLang's DeepSeek-V4 pools for compress ratios 0, 4 and 128, not {r}",
                    r=sorted(ratios - {0, 4, 128}),
                ),
                hint=Text("use {engine} transformers for this model"),
                field="engine",
            )
        draft = self._draft_tokens(req)
        if draft:
            most = dsv4_max_draft_tokens(4, dsv4_ring_size(4, draft))
            if draft > most:
                raise UsageError(
                    Text(
                        "SGLang's DeepSeek-V4 c4 compress-state ring (16 rows) serves at most {m} draft tokens, "
                        "not {d}",
                        m=most,
                        d=draft,
                    ),
                    hint=Text("use at most {m} speculative tokens", m=most - 1),
                    field="speculative_config",
                )
        major = int(str(req.compute_capability).split(".")[0]) if req.compute_capability else None
        if major == 10 and req.tp == 1 and self.model_type == "deepseek_v41":
            raise UsageError(
                "kvplan has not modelled SGLang's DeepSeek-V4.1 pools on Blackwell at TP 1: --dsv4-attn-backend auto "
                "picks flashmla_mega there (arg_groups/deepseek_v4_hook.py:44-60), whose V4.1 KV layouts kvplan has "
                "not read",
                hint=Text("use {tp} 2 or more, or a Hopper / Ada GPU profile"),
                field="tp",
            )

    def layer_stages(self, shape: ModelShape, pp: int) -> list[range]:
        """The layers of each pipeline stage the estimate prices: SGLang's own split (`sglang_pp_stages`, the last
        stages take the extra layers) for DeepSeek-V4 and the Mamba / linear-attention hybrids, whose pools are
        sized per SGLang stage (make_pp_layers, srt/utils/common.py:1680-1705, splits by get_pp_indices); vLLM's
        split (`pipeline_stages`) for the other models, as before."""
        if any(isinstance(c, (L.CompressedAttention, L.RecurrentState)) for c in shape.caches()):
            return sglang_pp_stages(shape.num_layers, pp)
        return pipeline_stages(shape.num_layers, pp)

    @staticmethod
    def _draft_tokens(req: Request) -> int:
        """SGLang's speculative_num_draft_tokens for a chain of num_speculative_tokens steps (topk 1: steps + 1,
        as `speculative_flags` writes them); 0 without speculative decoding."""
        return req.speculative.num_speculative_tokens + 1 if req.speculative is not None else 0

    def block_size(self, caches: list[L.Layer], req: Request) -> int | None:
        if any(isinstance(c, L.CompressedAttention) for c in caches):
            return DSV4_PAGE_SIZE
        return None

    def _v4_costs(self, caches: list[L.Layer], req: Request) -> list[KindCost]:
        """DeepSeek-V4 per layer kind: each layer's share of the DSV4 full-token coefficient (`dsv4_coefficients`,
        exact fractions: 1/10 of a V4 SWA slot on every layer; on CSA layers also 1/10 of the c4 state rows per SWA
        slot and (a V4 slot at page/4 + the FP8 indexer key) / 4; on HCA a V4 slot at page/128, / 128; x (layers +
        1) / layers with MTP) for seq_len tokens, plus on HCA layers the request's c128 state ring (ring x 2 x
        head_dim float32, pool_configurator.py:1509-1528; the pool's shared ring + 1 rows and 128-row padding
        are left to the fit)."""
        v4 = [c for c in caches if isinstance(c, L.CompressedAttention)]
        draft = self._draft_tokens(req)
        page = DSV4_PAGE_SIZE
        tenth = Fraction(str(DSV4_SWA_FULL_TOKENS_RATIO))  # 0.1 exactly
        inflation = Fraction(len(v4) + 1, len(v4)) if draft else Fraction(1)
        slot = Fraction(cdiv(page * _V4_TOKEN_BYTES, _V4_PAGE_ALIGN) * _V4_PAGE_ALIGN, page)
        items: list[tuple[str, int, Fraction, int | None]] = []
        for c in v4:
            per_token = tenth * slot
            state = 0
            if c.compress_ratio == 4:
                rows = Fraction(dsv4_ring_size(4, draft), page)
                per_token += tenth * rows * 4 * (c.head_dim + c.index_head_dim) * _DSV4_STATE_BYTES
                c4_slot = Fraction(cdiv(page // 4 * _V4_TOKEN_BYTES, _V4_PAGE_ALIGN) * _V4_PAGE_ALIGN, page // 4)
                per_token += (c4_slot + fp8_block_scaled_bytes(c.index_head_dim)) / 4
            elif c.compress_ratio == 128:
                c128_slot = Fraction(cdiv(page // 128 * _V4_TOKEN_BYTES, _V4_PAGE_ALIGN) * _V4_PAGE_ALIGN, page // 128)
                per_token += c128_slot / 128
                state = dsv4_ring_size(128, draft) * 2 * c.head_dim * _DSV4_STATE_BYTES
            per_token *= inflation
            items.append((c.kind, int(per_token * req.seq_len * req.batch) + state * req.batch, per_token, req.seq_len))
        return group_costs(items)

    def stage_costs(self, caches: list[L.Layer], req: Request) -> list[KindCost]:
        self.check(caches, req)
        if any(isinstance(c, L.CompressedAttention) for c in caches):
            return self._v4_costs(caches, req)
        if req.kv_dtype in FP4_KV_DTYPES:
            costs = group_costs(self._nvfp4_layers(caches, req))
        else:
            costs = group_costs([self._layer(c, req) for c in caches])
        draft = len(req.speculative.draft_caches) if req.speculative is not None else 0
        attention = [c for c in costs if c.kind in (L.FULL, L.MLA)]
        if not draft or not attention:
            return costs
        # EAGLE / NEXTN / STANDALONE: the draft pool shares the target's token slots, so each token costs the
        # target's cell plus int(cell x draft layers / attention layers) (sglang-0.5.23 srt/model_executor/
        # pool_configurator.py:259-313, DefaultPoolConfigurator; max_total_num_tokens = available // cell, :638-647)
        layers = sum(c.layers for c in attention)
        cell = sum(c.bytes_per_token for c in attention)
        per_token = Fraction(int(cell * draft / layers))
        kind = attention[0].kind
        return [*costs, KindCost(kind, draft, int(per_token * req.seq_len * req.batch), per_token, req.seq_len)]

    def _layer(self, cache: L.Layer, req: Request) -> tuple[str, int, Fraction, int | None]:
        kv_bytes = DTYPE_BYTES[req.kv_dtype]
        if isinstance(cache, L.KVAttention):
            per_token = cache.bytes_per_token(kv_bytes, kv_heads_per_rank(cache.num_kv_heads, req.tp))
            tokens = window_tokens(cache, req.seq_len, cache.window or 0)
            return (
                cache.kind,
                int(per_token * tokens * req.batch),
                per_token if tokens == req.seq_len else Fraction(0),
                tokens,
            )
        if isinstance(cache, L.MlaLatent) and cache.sparse:
            per_token = Fraction(self._sparse_mla_bytes(cache, req))
            return cache.kind, int(per_token * req.seq_len * req.batch), per_token, req.seq_len
        if isinstance(cache, L.IndexKeys):
            # MiniMaxSparseKVPool's cell (model_executor/pool_configurator.py:410-490): K and V of every layer as
            # any GQA layer, plus on each sparse layer whose index value is disabled (MiniMax-M3's: every one,
            # kvplan.core.shapes.minimax_m3) one index key of sparse_index_dim (:483-487), one head on every rank
            # without `sparse_disable_index_value` no sparse layer is k-only: each also holds an index value
            # (get_minimax_sparse_disable_value_layer_ids, configs/model_config.py:467-471; :484 `num_indexer_kv * 2`)
            sides = 2 if M3_INDEX_VALUES in self.features else 1
            per_token = Fraction(sides * cache.head_dim * self._minimax_index_key_bytes(req))
            return cache.kind, int(per_token * req.seq_len * req.batch), per_token, req.seq_len
        if isinstance(cache, L.MlaLatent):
            per_token = cache.bytes_per_token(kv_bytes)
            return cache.kind, int(per_token * req.seq_len * req.batch), per_token, req.seq_len
        if isinstance(cache, L.RecurrentState):
            # conv_kernel - 1 columns in bf16 whatever the model dtype (SGLANG_MAMBA_CONV_DTYPE, environ.py:1628);
            # the SSM state in the config's `mamba_ssm_dtype` where it names float32, bfloat16 or float16, else
            # float32 (sglang-0.5.23 srt/configs/mamba_utils.py:47-107 `mamba2_state_dtype`, which every
            # Mamba-style pool uses; it reads `mamba_ssm_dtype` only, which the gated-DeltaNet readers record:
            # another family's `ssm_dtype`, such as Nemotron-H's `mamba_ssm_cache_dtype`, is not SGLang's); Mamba2
            # groups that TP does not divide are replicated so each shard has its own (configs/mamba_utils.py:218-225
            # `Mamba2StateShape.create`)
            own = cache.ssm_dtype if cache.family == "gated_deltanet" else None
            # --mamba-ssm-dtype sets SGLANG_MAMBA_SSM_DTYPE (arg_groups/serving_hook.py:439-440), which overrides
            # the config's for every pool (configs/mamba_utils.py:93-103)
            own = req.mamba_ssm_dtype or own
            ssm = DTYPE_BYTES[own] if own in _SGLANG_SSM_DTYPES else 4
            state = int(
                cache.state_bytes(
                    DTYPE_BYTES["bfloat16"], ssm, columns=cache.conv_kernel - 1, tp=req.tp, replicate_groups=True
                )
            )
            return cache.kind, state * req.batch, Fraction(0), None
        return cache.kind, 0, Fraction(0), None

    def _sparse_mla_bytes(self, cache: L.MlaLatent, req: Request) -> int:
        """One token of a DSA layer in SGLang 0.5.23's pool (model_executor/pool_configurator.py:379-409 cell size):
        the latent, `calculate_mla_kv_cache_dim` (mem_cache/kv_cache_configurator.py:3412-3475) x the KV dtype's
        bytes: kv_lora_rank + kv_lora_rank / 128 x 4 + qk_rope_head_dim x 2 bytes (fp8 latent, fp32 scales, bf16
        RoPE) for fp8_e4m3 on the scaled-layout backends, the raw kv_lora_rank + qk_rope_head_dim elements for other
        dtypes and for fp8 on the trtllm backend, which Blackwell (SM100 and up) picks for fp8 by default
        (arg_groups/overrides.py:714-719), except GLM on SM120/121 (flashinfer_sparse_mla, :636-671); plus the
        indexer keys, index_head_dim + index_head_dim / 128 x 4 uint8 bytes on the layers that run an indexer
        (`_compute_dsa_indexer_cell_size`, pool_configurator.py:560-634: layers that skip top-k hold none,
        mem_cache/index_key_cache.py:55-58). Without a GPU, fp8 is taken on Hopper's backend (flashmla_kv)."""
        major = int(str(req.compute_capability).split(".")[0]) if req.compute_capability else None
        glm_sm12 = major == 12 and "GlmMoeDsaForCausalLM" in self.architectures
        scaled = req.kv_dtype == "fp8_e4m3" and (major is None or major < 10 or glm_sm12)
        if scaled:
            latent = fp8_block_scaled_bytes(cache.kv_lora_rank) + 2 * cache.rope_head_dim
        else:
            latent = int(cache.latent_elements() * DTYPE_BYTES[req.kv_dtype])
        return latent + (fp8_block_scaled_bytes(cache.index_head_dim) if cache.index_head_dim else 0)

    def _check_nvfp4(self, caches: list[L.Layer], req: Request) -> None:
        """What SGLang 0.5.23 serves with an FP4 KV cache (--kv-cache-dtype nvfp4 or fp4_mx_block16) and kvplan has
        read: a CUDA GPU (srt/arg_groups/kv_cache_hook.py:317-318), for nvfp4 a Blackwell SM100 / SM120 one
        (:124-131); MLA by `_check_fp4_mla`; full-attention layers only in the plain MHA pool (the FP4 recipe is
        built for it, mem_cache/kv_cache_configurator.py:1905-1920; the SWA pool is built without it, :2500-2550, and
        HybridSWAPoolConfigurator sizes float4 at one byte an element with no scales, model_executor/
        pool_configurator.py:656-663), K and V head sizes equal (the recipe sizes both by head_dim,
        pool_configurator.py:520-525), for nvfp4 a head_dim the native SM100 layout takes (a multiple of 64,
        layers/quantization/fp4_kv_cache_quant_method.py:589-590), no model override of the attention backend
        (`SGLANG_ATTENTION_BACKEND_OVERRIDES`: it decides the NVFP4 prefill path, kv_cache_hook.py:47-57, and the
        backend fp4_mx_block16 runs on), for nvfp4 on SM100 the draft methods its native layout serves (EAGLE /
        EAGLE3 / NEXTN / NGRAM: :159-188), and for fp4_mx_block16 a default backend that reads it (`_check_fp4_mx`)."""
        recipe = req.kv_dtype
        if req.vendor not in (None, "nvidia", "generic"):
            raise UsageError(
                Text(
                    "SGLang serves an FP4 KV cache on CUDA GPUs only, not on {v} (sglang-0.5.23 "
                    "srt/arg_groups/kv_cache_hook.py:317-318: KV4 is not tested on non-CUDA platforms)",
                    v=req.vendor,
                ),
                hint=Text("use {kv_dtype} fp8_e4m3 or auto with SGLang on this GPU"),
                field="kv_dtype",
            )
        major = _major(req.compute_capability)
        if recipe == "nvfp4" and major is not None and major not in (10, 12):
            raise UsageError(
                Text(
                    "SGLang's nvfp4 KV cache needs a Blackwell SM100 or SM120 GPU, not compute capability {cc} "
                    "(sglang-0.5.23 srt/arg_groups/kv_cache_hook.py:124-131)",
                    cc=req.compute_capability,
                ),
                hint=Text("use {kv_dtype} fp8_e4m3 on this GPU, or a B200 / B300 / RTX PRO 6000 profile"),
                field="kv_dtype",
            )
        attention = [c for c in caches if not isinstance(c, (L.NoCache, L.RecurrentState))]
        hybrid = any(isinstance(c, L.RecurrentState) for c in caches)
        if any(isinstance(c, L.MlaLatent) for c in attention):
            if hybrid and recipe != "nvfp4":
                raise UsageError(
                    "kvplan has not read SGLang's fp4_mx_block16 cache for a hybrid linear-attention MLA model: "
                    "HybridLinearKVPool keeps its MLA layers in the plain MLA pool class, not MLATokenToKVPoolFP4 "
                    "(sglang-0.5.23 srt/mem_cache/kv_cache_configurator.py:2659-2663, :2734-2735)",
                    hint=Text("use {kv_dtype} fp8_e4m3 or auto with SGLang for this model"),
                    field="kv_dtype",
                )
            self._check_fp4_mla(attention, req)
            return
        other = sorted({c.kind for c in attention if not isinstance(c, L.FullAttention)})
        if other:
            why = {
                L.SLIDING: "SGLang builds its SWA pool without the FP4 recipe's scales (srt/mem_cache/"
                "kv_cache_configurator.py:2500-2550) and sizes it at one byte an element "
                "(model_executor/pool_configurator.py:656-663)",
                L.CHUNKED: "SGLang keeps chunked-local layers in its SWA pool, built without the FP4 recipe's scales "
                "(srt/mem_cache/kv_cache_configurator.py:2500-2550)",
            }
            reason = why.get(other[0]) or "kvplan has not read SGLang's FP4 path for this cache"
            raise UsageError(
                Text(
                    "kvplan models SGLang's {r} KV cache for {what} layers only, not {k}: {why}",
                    r=recipe,
                    what="full-attention" if recipe == "nvfp4" else "full-attention and MLA",
                    k=", ".join(other),
                    why=reason,
                ),
                hint=Text("use {kv_dtype} fp8_e4m3 or auto with SGLang for this model"),
                field="kv_dtype",
            )
        if hybrid:
            self._check_fp4_hybrid(req)
        else:
            self._refuse_fp4_override(req)
        backend = fp4_attention_backend(self.architectures, hybrid, req)
        for c in attention:
            assert isinstance(c, L.FullAttention)
            if c.head_dim_k != c.head_dim_v:
                raise UsageError(
                    Text(
                        "SGLang's FP4 recipe sizes K and V by one head_dim (model_executor/pool_configurator.py:"
                        "520-525); this model's K and V heads differ ({k} / {v})",
                        k=c.head_dim_k,
                        v=c.head_dim_v,
                    ),
                    hint=Text("use {kv_dtype} fp8_e4m3 or auto with SGLang for this model"),
                    field="kv_dtype",
                )
            if recipe == "nvfp4" and nvfp4_sm100(req.compute_capability) and c.head_dim_k % 64:
                raise UsageError(
                    Text(
                        "SGLang's native NVFP4 layout on SM100 needs a head_dim that is a multiple of 64, not {d} "
                        "(layers/quantization/fp4_kv_cache_quant_method.py:589-590)",
                        d=c.head_dim_k,
                    ),
                    hint=Text("use {kv_dtype} fp8_e4m3 with SGLang for this model"),
                    field="kv_dtype",
                )
        if recipe == "fp4_mx_block16":
            self._check_fp4_mx(req, backend)
            return
        if backend == "triton":
            raise UsageError(
                Text(
                    "SGLang's model override picks the triton attention backend for {arch} here (srt/arg_groups/"
                    "model_overrides/{where}), and its NVFP4 hook refuses a backend that gives neither an FP8 "
                    "workspace nor native NVFP4 (srt/arg_groups/kv_cache_hook.py:47-56)",
                    arch=self._override()[0],
                    where=self._override()[1],
                ),
                hint=Text("use {kv_dtype} fp8_e4m3 or auto with SGLang for this model on this GPU"),
                field="kv_dtype",
            )
        method = req.speculative.method if req.speculative is not None else None
        if nvfp4_sm100(req.compute_capability) and method in ("draft_model", "dflash"):
            raise UsageError(
                Text(
                    "SGLang's native NVFP4 cache on SM100 serves EAGLE, EAGLE3, NEXTN and NGRAM drafting only, not "
                    "{m} (sglang-0.5.23 srt/arg_groups/kv_cache_hook.py:159-188)",
                    m=method,
                ),
                hint=Text("use an mtp / eagle / eagle3 / ngram --speculative-config, or {kv_dtype} fp8_e4m3"),
                field="speculative_config",
            )

    def _override(self) -> tuple[str, str] | tuple[None, None]:
        """(architecture, its model override's file:line) where SGLang's override sets the attention backend."""
        arch = next((a for a in self.architectures if a in SGLANG_ATTENTION_BACKEND_OVERRIDES), None)
        return (arch, SGLANG_ATTENTION_BACKEND_OVERRIDES[arch]) if arch is not None else (None, None)

    def _check_fp4_hybrid(self, req: Request) -> None:
        """A hybrid linear-attention (Mamba-style) model: HybridLinearKVPool keeps its full-attention layers in an MHA
        pool built with the FP4 recipe (srt/mem_cache/kv_cache_configurator.py:2656-2658, :2705-2708), sized by the
        recipe's cell over those layers only (model_executor/pool_configurator.py:229-239), and forwards the FP4
        reads of the backends (the dequant workspace, mem_cache/memory_pool.py:4503-4518; trtllm_mha's native
        scales, layers/attention/trtllm_mha_backend.py:112-115). The attention backend is the model override's where
        kvplan has read it (`fp4_attention_backend`), else SGLang's default; the Mamba state keeps its dtypes.
        Refused: an override kvplan has not read. PP does not change the Qwen3.5 family's backend: the Mamba cache
        strategy the override picks it by (srt/arg_groups/overrides.py:477-485, model_overrides/qwen3_5.py:39-45)
        is resolved inside handle_model_specific_adjustments (arg_groups/pipeline.py:225, model_hook.py:225), before
        PP turns the overlap scheduler off (pipeline.py:302, overrides.py:1621-1627), as `mamba_slots_per_request`
        also follows."""
        arch, where = self._override()
        if arch is None:
            return
        if where not in _HYBRID_OVERRIDES_READ:
            self._refuse_fp4_override(req)
        method = req.speculative.method if req.speculative is not None else None
        if where == "qwen3_5.py:17" and method == "ngram" and nvfp4_sm100(req.compute_capability):
            raise UsageError(
                Text(
                    "kvplan has not read which attention backend SGLang's {arch} override picks with NGRAM drafting on "
                    "SM100: it keeps trtllm_mha only where SGLang's default is trtllm_mha, which with a draft needs "
                    "--speculative-eagle-topk (model_overrides/qwen3_5.py:34-45, model_override_base.py:312-320)",
                    arch=arch,
                ),
                hint=Text("use an mtp / eagle / eagle3 --speculative-config, or {kv_dtype} fp8_e4m3 or auto"),
                field="speculative_config",
            )

    def _refuse_fp4_override(self, req: Request) -> None:
        """An architecture whose model override sets the attention backend (`SGLANG_ATTENTION_BACKEND_OVERRIDES`):
        it decides the NVFP4 prefill path (kv_cache_hook.py:47-57) and the backend fp4_mx_block16 runs on, which
        kvplan has not read per model."""
        override = next((a for a in self.architectures if a in SGLANG_ATTENTION_BACKEND_OVERRIDES), None)
        if override is not None:
            raise UsageError(
                Text(
                    "kvplan has not read SGLang's {r} KV cache for {arch}: its model override sets the attention "
                    "backend (sglang-0.5.23 srt/arg_groups/model_overrides/{where}), which decides the FP4 "
                    "attention path and its scale buffers (srt/arg_groups/kv_cache_hook.py:47-57, :266-316)",
                    r=req.kv_dtype,
                    arch=override,
                    where=SGLANG_ATTENTION_BACKEND_OVERRIDES[override],
                ),
                hint=Text("use {kv_dtype} fp8_e4m3 or auto with SGLang for this model"),
                field="kv_dtype",
            )

    def _check_fp4_mla(self, attention: Sequence[L.Layer], req: Request) -> None:
        """An FP4 cache of an MLA model (`MLATokenToKVPoolFP4`, mem_cache/kv_cache_configurator.py:1872-1877), which
        SGLang 0.5.23 runs only where its attention backend is flashinfer (or trtllm_mla, which takes no FP4 cache):
        - nvfp4: never. The NVFP4 hook sets decode to trtllm_mha (srt/arg_groups/kv_cache_hook.py:86-89), which
          refuses MLA models (srt/layers/attention/attention_registry.py:278-280); on SM100 the DeepSeek family's
          override has set trtllm_mla before that, which the hook refuses first (kv_cache_hook.py:47-56).
        - fp4_mx_block16: the KV4 check takes flashinfer or trtllm_mla for MLA (kv_cache_hook.py:297-305), and
          trtllm_mla takes fp8_e4m3, bf16 or auto only (srt/arg_groups/overrides.py:1204-1216). By default SGLang
          picks trtllm_mla for the DeepSeek family (deepseek_v2.py override, the dense-MLA branch) on SM100
          (model_overrides/deepseek_v2.py:177-185), the dsa backend for DSA models (:99-104), and otherwise for
          MLA fa3 on Hopper, flashinfer on SM100 and triton elsewhere (model_override_base.py:335-351). So kvplan
          sizes fp4_mx_block16 for a dense-MLA model without a backend override on SM100 (B200 / B300; also
          without a GPU) and refuses the rest, naming the flag SGLang needs."""
        mla = [c for c in attention if isinstance(c, L.MlaLatent)]
        if req.kv_dtype == "nvfp4":
            raise UsageError(
                "SGLang 0.5.23 cannot run an MLA model with an nvfp4 KV cache: its NVFP4 hook sets the decode "
                "backend to trtllm_mha (srt/arg_groups/kv_cache_hook.py:86-89), which refuses MLA models "
                "(srt/layers/attention/attention_registry.py:278-280)",
                hint=Text(
                    "use {kv_dtype} fp8_e4m3 or auto; SGLang's FP4 MLA cache is {kv_dtype} fp4_mx_block16, with "
                    "--attention-backend flashinfer where SGLang does not pick it"
                ),
                field="kv_dtype",
            )
        flag = "run SGLang with --attention-backend flashinfer (kvplan does not plan a chosen backend)"
        if any(c.sparse for c in mla):
            raise UsageError(
                "SGLang runs DSA models on its dsa attention backend (srt/arg_groups/model_overrides/deepseek_v2.py:"
                "99-104), and its KV4 check takes an FP4 MLA cache on flashinfer or trtllm_mla only "
                "(srt/arg_groups/kv_cache_hook.py:297-305)",
                hint=Text("use {kv_dtype} fp8_e4m3 or auto with SGLang for this model"),
                field="kv_dtype",
            )
        if len(mla) != len(attention):
            raise UsageError(
                "kvplan has not read SGLang's fp4_mx_block16 cache for a model that mixes MLA with other attention",
                hint=Text("use {kv_dtype} fp8_e4m3 or auto with SGLang for this model"),
                field="kv_dtype",
            )
        override = next((a for a in self.architectures if a in SGLANG_ATTENTION_BACKEND_OVERRIDES), None)
        sm100 = nvfp4_sm100(req.compute_capability)
        if sm100 and override is not None and SGLANG_ATTENTION_BACKEND_OVERRIDES[override] == _DEEPSEEK_OVERRIDE:
            raise UsageError(
                Text(
                    "SGLang picks trtllm_mla for {arch} on SM100 (srt/arg_groups/model_overrides/deepseek_v2.py:"
                    "177-185), which takes an fp8_e4m3, bf16 or auto KV cache only, not fp4_mx_block16 "
                    "(srt/arg_groups/overrides.py:1204-1216)",
                    arch=override,
                ),
                hint=Text("{flag}, or use {kv_dtype} fp8_e4m3 or auto", flag=flag),
                field="kv_dtype",
            )
        if override is not None and SGLANG_ATTENTION_BACKEND_OVERRIDES[override] != _DEEPSEEK_OVERRIDE:
            self._refuse_fp4_override(req)
        if not sm100:
            backend, where = ("fa3", "337-338") if _major(req.compute_capability) == 9 else ("triton", "350-351")
            raise UsageError(
                Text(
                    "SGLang's default MLA attention backend on compute capability {cc} is {b} (srt/arg_groups/"
                    "model_override_base.py:{w}), and its KV4 check takes an FP4 MLA cache on flashinfer or "
                    "trtllm_mla only (srt/arg_groups/kv_cache_hook.py:297-305)",
                    cc=req.compute_capability,
                    b=backend,
                    w=where,
                ),
                hint=Text("{flag}, or use {kv_dtype} fp8_e4m3 or auto", flag=flag),
                field="kv_dtype",
            )

    def _check_fp4_mx(self, req: Request, backend: str | None = None) -> None:
        """fp4_mx_block16 on full attention: the KV4 check takes triton, torch_native, flex_attention or trtllm_mha
        (srt/arg_groups/kv_cache_hook.py:306-316; fp4_kv_cache_quant_method.py:932-934). SGLang's default MHA
        backend (model_override_base.py:302-334) is trtllm_mha on SM100 with no draft or a topk-1 one (the
        --speculative-eagle-topk 1 kvplan's commands write; NGRAM writes none), fa3 on Hopper, flashinfer elsewhere
        (triton for attention-sink models: SWA_SINK_ARCHS are sliding-window or overridden models, refused above,
        and `learnable_sink` configs are DSA ones). Without a GPU kvplan takes SM100's trtllm_mha."""
        major = _major(req.compute_capability)
        hint = Text(
            "run SGLang with --attention-backend triton (kvplan does not plan a chosen backend), or use {kv_dtype} "
            "fp8_e4m3 or auto"
        )
        if backend is not None:  # a hybrid model's override (`fp4_attention_backend`)
            if backend in _FP4_MX_MHA_BACKENDS:
                return
            arch, where = self._override()
            raise UsageError(
                Text(
                    "SGLang's model override picks the {b} attention backend for {arch} here (srt/arg_groups/"
                    "model_overrides/{w}), and its KV4 check takes an fp4_mx_block16 cache on triton, torch_native, "
                    "flex_attention or trtllm_mha only (srt/arg_groups/kv_cache_hook.py:306-316)",
                    b=backend,
                    arch=arch,
                    w=where,
                ),
                hint=hint,
                field="kv_dtype",
            )
        if major is not None and major != 10:
            backend, where = ("fa3", "305-311") if major == 9 else ("flashinfer", "330-334")
            raise UsageError(
                Text(
                    "SGLang's default attention backend on compute capability {cc} is {b} (srt/arg_groups/"
                    "model_override_base.py:{w}), and its KV4 check takes an fp4_mx_block16 cache on triton, "
                    "torch_native, flex_attention or trtllm_mha only (srt/arg_groups/kv_cache_hook.py:306-316)",
                    cc=req.compute_capability,
                    b=backend,
                    w=where,
                ),
                hint=hint,
                field="kv_dtype",
            )
        method = req.speculative.method if req.speculative is not None else None
        if method not in (None, "eagle", "eagle3", "mtp", "draft_model"):
            raise UsageError(
                Text(
                    "kvplan has not read SGLang's default attention backend with {m} drafting and an fp4_mx_block16 "
                    "cache: trtllm_mha is the SM100 default only with --speculative-eagle-topk set "
                    "(srt/arg_groups/model_override_base.py:312-320)",
                    m=method,
                ),
                hint=hint,
                field="speculative_config",
            )

    def _nvfp4_layers(self, caches: list[L.Layer], req: Request) -> list[tuple[str, int, Fraction, int | None]]:
        """One stage's layers under an FP4 KV cache (`check` has refused every other cache): nvfp4 full attention
        `nvfp4_layer_bytes` each plus the SM120 dequant workspace (`nvfp4_workspace_bytes`, one per stage's pool)
        spread over its full-attention layers so that the stage's cell is SGLang's `compute_cell_size`
        (fp4_kv_cache_quant_method.py:744-768); fp4_mx_block16 full attention `fp4_mx_layer_bytes` (no workspace
        on the backends it runs, :897-914) and MLA `fp4_mla_layer_bytes` (pool_configurator.py:379-392)."""
        full = [c for c in caches if isinstance(c, L.FullAttention)]
        hybrid = any(isinstance(c, L.RecurrentState) for c in caches)
        backend = fp4_attention_backend(self.architectures, hybrid, req)
        items: list[tuple[str, int, Fraction, int | None]] = []
        for cache in caches:
            if isinstance(cache, L.MlaLatent):
                per_token = Fraction(fp4_mla_layer_bytes(cache.kv_lora_rank, cache.rope_head_dim))
                items.append((cache.kind, int(per_token * req.seq_len * req.batch), per_token, req.seq_len))
                continue
            if not isinstance(cache, L.FullAttention):
                items.append(self._layer(cache, req))
                continue
            heads = kv_heads_per_rank(cache.num_kv_heads, req.tp)
            if req.kv_dtype == "fp4_mx_block16":
                per_token = Fraction(fp4_mx_layer_bytes(heads, cache.head_dim_k))
            else:
                layouts, prefill_workspace = nvfp4_path(backend, req.compute_capability)
                workspace = heads * cache.head_dim_k * 2 if prefill_workspace else 0
                per_token = Fraction(nvfp4_layer_bytes(heads, cache.head_dim_k, layouts)) + Fraction(
                    workspace, len(full)
                )
            items.append((cache.kind, int(per_token * req.seq_len * req.batch), per_token, req.seq_len))
        return items


# ------------------------------------------------------------------------------------ NVFP4 KV cache
#
# sglang-0.5.23 stores --kv-cache-dtype nvfp4 as torch.float4_e2m1fn_x2, one byte per two values
# (mem_cache/kv_cache_dtype.py:76-78), and sizes a full-attention pool by the NVFP4 recipe's own cell
# (model_executor/pool_configurator.py:500-525 -> layers/quantization/fp4_kv_cache_quant_method.py:744-768
# `NVFP4KVCacheMethod.compute_cell_size`, kv_size 1): K and V of head_dim // 2 bytes per head and layer, one
# fp8_e4m3 scale per 16 values in each scale layout the selected backends read (:751-756), plus one shared fp8
# dequant workspace of K and V per token when the prefill backend is FlashInfer (:757-767; not x layers). The
# per-layer global fp32 scales (:466-469) are not per token. Which backends: with no backend given the NVFP4 hook
# picks native NVFP4 prefill (trtllm_mha) on SM100 and FlashInfer over an fp8_e4m3 workspace elsewhere, decode
# trtllm_mha always (arg_groups/kv_cache_hook.py:25-31, :47-57, :86-89). SM100 then needs only the native
# (HND) scale layout (:474-478), SM120 only the token-linear one beside the workspace (:480-485).

NVFP4_SCALE_BLOCK = 16  # NVFP4KVCacheMethod.SCALE_BLOCK_SIZE (fp4_kv_cache_quant_method.py:450)

# The architectures whose SGLang 0.5.23 model override sets an attention backend (srt/arg_groups/model_overrides/
# FILE:LINE, the `_register_for` of the override that names attention_backend): the NVFP4 hook picks the prefill
# path by it (kv_cache_hook.py:47-57), so kvplan does not size nvfp4 for them. tests/engines/test_sglang_fp4_kv.py
# reads this table back from the source.
_DEEPSEEK_OVERRIDE = "deepseek_v2.py:37"  # the DeepSeek family's: trtllm_mla for dense MLA on SM100 (:177-185)
# SGLang's DeepSeek family: _DEEPSEEK_FAMILY_ARCHS (srt/arg_groups/overrides.py:745-760), "in sync with" the list its
# model override registers for (model_overrides/deepseek_v2.py:37-50)
SGLANG_DEEPSEEK_FAMILY = (
    "DeepseekV3ForCausalLM",
    "DeepseekV32ForCausalLM",
    "KimiK25ForConditionalGeneration",
    "MistralLarge3ForCausalLM",
    "PixtralForConditionalGeneration",
    "GlmMoeDsaForCausalLM",
    "Glm5NextForConditionalGeneration",
    "HYV4ForCausalLM",
    "HYV4ForCausalLMNextN",
    "LongcatFlashForCausalLM",
    "LongcatFlashForCausalLMNextN",
    "Dots3NoteForCausalLM",
)
SGLANG_ATTENTION_BACKEND_OVERRIDES = {
    "BeamForCausalLM": "beam.py:20",
    **dict.fromkeys(SGLANG_DEEPSEEK_FAMILY, _DEEPSEEK_OVERRIDE),
    "DeepseekV4ForCausalLM": "deepseek_v4.py:18",
    "EmbeddingGemma2Model": "embedding_gemma2.py:33",
    **dict.fromkeys(("Exaone4ForCausalLM", "ExaoneMoEForCausalLM", "ExaoneMoeForCausalLM"), "exaone.py:15"),
    **dict.fromkeys(
        ("FalconH1ForCausalLM", "JetNemotronForCausalLM", "JetVLMForConditionalGeneration"), "falcon_h1.py:12"
    ),
    **dict.fromkeys(
        (
            "Gemma4ForConditionalGeneration",
            "Gemma4ForCausalLM",
            "Gemma4UnifiedForConditionalGeneration",
            "DiffusionGemmaForBlockDiffusion",
        ),
        "gemma4.py:17",
    ),
    "GptOssForCausalLM": "gpt_oss.py:24",
    "GraniteMoeHybridForCausalLM": "granitemoehybrid.py:12",
    **dict.fromkeys(("InklingForConditionalGeneration", "InklingForConditionalGenerationMTP"), "inkling.py:16"),
    **dict.fromkeys(("IQuestQ1ForCausalLM", "IQuestQ1MTP"), "iquest_q1.py:11"),
    "KimiK3ForConditionalGeneration": "kimi_k3.py:51",
    **dict.fromkeys(("Lfm2ForCausalLM", "Lfm2MoeForCausalLM"), "lfm2.py:12"),
    **dict.fromkeys(("Llama4ForConditionalGeneration", "Llama4ForCausalLM"), "llama4.py:16"),
    **dict.fromkeys(("MiMoV2ForCausalLM", "MiMoV2FlashForCausalLM"), "mimo_v2.py:19"),
    **dict.fromkeys(("MiniCPMForCausalLM", "MiniCPMSALAForCausalLM"), "minicpm.py:14"),
    **dict.fromkeys(("MiniCPMV4_6ForConditionalGeneration", "MiniCPMV4_7ForConditionalGeneration"), "minicpmv.py:12"),
    **dict.fromkeys(("MiniMaxM3SparseForCausalLM", "MiniMaxM3SparseForConditionalGeneration"), "minimax_m3.py:37"),
    "MossVLForConditionalGeneration": "moss_vl.py:17",
    **dict.fromkeys(
        ("NemotronHForCausalLM", "NemotronHPuzzleForCausalLM", "NemotronH_Omni_Reasoning_V3"), "nemotron_h.py:17"
    ),
    "Olmo2ForCausalLM": "olmo2.py:15",
    **dict.fromkeys(
        (
            "Qwen3NextForCausalLM",
            "Qwen3_5MoeForConditionalGeneration",
            "InternS2PreviewForConditionalGeneration",
            "InternS2MobiusForConditionalGeneration",
            "Qwen3_5ForConditionalGeneration",
        ),
        "qwen3_5.py:17",
    ),
    **dict.fromkeys(("Qwen3VLForConditionalGeneration", "Qwen3VLMoeForConditionalGeneration"), "qwen3_vl.py:81"),
    "Qwen4ExpForConditionalGeneration": "qwen4_exp.py:20",
}


def _major(compute_capability: str | None) -> int | None:
    return int(str(compute_capability).split(".")[0]) if compute_capability else None


def nvfp4_sm100(compute_capability: str | None) -> bool:
    """Whether SGLang's NVFP4 path is SM100's (get_platform().is_sm100: capability major 10, utils/common.py:
    309-312); without a GPU kvplan takes SM100 (B200 / B300), the one with native NVFP4 prefill."""
    major = _major(compute_capability)
    return major is None or major == 10


def nvfp4_layer_bytes(kv_heads: int, head_dim: int, scale_layouts: int = 1) -> int:
    """One full-attention layer's bytes per token in SGLang's NVFP4 pool: K and V of `kv_heads` heads, head_dim // 2
    packed bytes each (fp4_kv_cache_quant_method.py:748), and one fp8_e4m3 scale per 16 values in each scale
    layout the backends read: one, the native one on SM100 or the token-linear one elsewhere, or both where
    FlashInfer prefills and trtllm_mha decodes on SM100 (:751-756, :474-485; `nvfp4_path`)."""
    return kv_heads * (head_dim // 2) * 2 + kv_heads * (head_dim // NVFP4_SCALE_BLOCK) * 2 * scale_layouts


def nvfp4_path(backend: str | None, compute_capability: str | None) -> tuple[int, bool]:
    """(scale layouts, FlashInfer's fp8 dequant workspace) of SGLang's NVFP4 pool for the attention backend the
    model override sets (None: none): the NVFP4 hook prefills natively on trtllm_mha where it is given or, with none
    given, on SM100, and through FlashInfer's fp8 workspace where flashinfer is given or, with none, elsewhere;
    decode is trtllm_mha always (kv_cache_hook.py:47-57, :86-89). Native access on SM100 needs the native scale
    layout, the workspace or SM120's native access the token-linear one (fp4_kv_cache_quant_method.py:463,
    :476-485): SM100 native 1 layout, SM120 1 + workspace, flashinfer on SM100 2 + workspace."""
    sm100 = nvfp4_sm100(compute_capability)
    workspace = backend == "flashinfer" or (backend is None and not sm100)
    linear = workspace or not sm100
    return int(linear) + int(sm100), workspace


def nvfp4_workspace_bytes(kv_heads: int, head_dim: int, compute_capability: str | None) -> int:
    """The fp8_e4m3 dequant workspace of K and V per token, shared by the layers (fp4_kv_cache_quant_method.py:
    757-767): FlashInfer prefill reads it, which the NVFP4 hook picks off SM100 (kv_cache_hook.py:57); 0 on SM100,
    whose native trtllm_mha prefill reads the FP4 cache itself."""
    return kv_heads * head_dim * 2 if nvfp4_path(None, compute_capability)[1] else 0


# ------------------------------------------------------------------------------------ fp4_mx_block16 KV cache
#
# --kv-cache-dtype fp4_mx_block16 is SGLang's other FP4 recipe (FP4MXBlock16KVCacheMethod,
# fp4_kv_cache_quant_method.py:771-779): the same torch.float4_e2m1fn_x2 storage (kv_cache_dtype.py:76-78), one uint8
# scale per 16 values over the flattened heads, one scale level, no SM gate (the Blackwell check is nvfp4's,
# kv_cache_hook.py:125), and every attention access plain, so no dequant workspace (:1008-1011, :897-914). MLA models
# store their latent in MLATokenToKVPoolFP4 (mem_cache/memory_pool.py:5133-5166) with either recipe's dtype.

FP4_KV_DTYPES = ("nvfp4", "fp4_mx_block16")  # the --kv-cache-dtype values stored as float4_e2m1fn_x2
FP4_MX_SCALE_BLOCK = 16  # FP4MXBlock16KVCacheMethod.SCALE_BLOCK_SIZE (fp4_kv_cache_quant_method.py:779)


def fp4_mx_layer_bytes(kv_heads: int, head_dim: int) -> int:
    """One full-attention layer's bytes per token under fp4_mx_block16: K and V of `kv_heads` x head_dim // 2 packed
    bytes, and K's and V's (kv_heads x head_dim) // 16 uint8 scales (fp4_kv_cache_quant_method.py:897-914, kv_size 1;
    the buffers: :789-840)."""
    return kv_heads * (head_dim // 2) * 2 + (kv_heads * head_dim // FP4_MX_SCALE_BLOCK) * 2


def fp4_mla_layer_bytes(kv_lora_rank: int, rope_head_dim: int) -> int:
    """One MLA layer's bytes per token in MLATokenToKVPoolFP4: the kv_lora_rank + qk_rope_head_dim latent at half a
    byte, one uint8 scale per 16 of its values (model_executor/pool_configurator.py:379-392; the pool's buffers
    (m, 1, dim // 2) and (m, dim // 16), mem_cache/memory_pool.py:5143-5166). DeepSeek: 576 // 2 + 576 // 16 = 324 B."""
    dim = kv_lora_rank + rope_head_dim
    return dim // 2 + dim // FP4_MX_SCALE_BLOCK


# the backends the KV4 check takes an fp4_mx_block16 MHA cache on (kv_cache_hook.py:306-316,
# fp4_kv_cache_quant_method.py:932-934)
_FP4_MX_MHA_BACKENDS = frozenset({"triton", "torch_native", "flex_attention", "trtllm_mha"})

# The hybrid linear-attention overrides kvplan has read per GPU (srt/arg_groups/model_overrides/FILE:LINE of
# SGLANG_ATTENTION_BACKEND_OVERRIDES): `fp4_attention_backend`.
_HYBRID_OVERRIDES_READ = frozenset(
    {"qwen3_5.py:17", "nemotron_h.py:17", "falcon_h1.py:12", "granitemoehybrid.py:12", "lfm2.py:12"}
)


def fp4_attention_backend(architectures: tuple[str, ...], hybrid: bool, req: Request) -> str | None:
    """The --attention-backend SGLang 0.5.23's model override sets for a hybrid linear-attention model on this GPU
    (SM100 without one; None: it sets none, SGLang's default applies). Non-hybrid models with an override are
    refused before this is asked.
    - Qwen3.5 / Qwen3-Next (qwen3_5.py:17-49): on SM100 trtllm_mha, since the overlap scheduler (on by default,
      fields/schedule.py:193-199) makes the Mamba cache extra_buffer (overrides.py:477-483, the model's arch in
      _MAMBA_EXTRA_BUFFER_ARCHS with the triton linear-attention default, :438-449) and the override then keeps
      the SM100 default trtllm_mha (qwen3_5.py:34-45); nothing elsewhere;
    - Nemotron-H (nemotron_h.py:123-148): on SM100 trtllm_mha; on another Blackwell (SM120) triton with a draft,
      nothing without one; nothing off Blackwell;
    - Falcon-H1 / Jet-Nemotron (falcon_h1.py:15-19): triton on SM100; Granite-MoE hybrids with Mamba layers
      (granitemoehybrid.py:13-20) and LFM2 (lfm2.py:13-17): flashinfer on SM100."""
    if not hybrid:
        return None
    where = next(
        (SGLANG_ATTENTION_BACKEND_OVERRIDES[a] for a in architectures if a in SGLANG_ATTENTION_BACKEND_OVERRIDES), None
    )
    major = _major(req.compute_capability)
    sm100 = nvfp4_sm100(req.compute_capability)
    if where == "nemotron_h.py:17":
        if sm100:
            return "trtllm_mha"
        return "triton" if major == 12 and req.speculative is not None else None
    if not sm100:
        return None
    return {
        "qwen3_5.py:17": "trtllm_mha",
        "falcon_h1.py:12": "triton",
        "granitemoehybrid.py:12": "flashinfer",
        "lfm2.py:12": "flashinfer",
    }.get(where or "")


# ------------------------------------------------------------------------------------ DeepSeek-V4 (DSV4 pools)
#
# SGLang 0.5.23 sizes DeepSeek-V4 with DSV4PoolConfigurator (srt/model_executor/pool_configurator.py:1067-1713,
# picked for deepseek_v4 at :1716-1719): one byte budget split into a full-token coefficient (a paged SWA pool of
# swa_full_tokens_ratio x the full tokens on every layer, the c4 compress-state rings that follow the SWA pages,
# the CSA entries and their indexer keys per 4 tokens, the HCA entries per 128) and fixed bytes (the c128
# compress-state rings, one per request slot). kvplan models the CUDA FlashMLA path: the paged KVLayout.V4 pools
# (SGLANG_DSV4_KV_LAYOUT's default "v4", environ.py:1754, select_dsv4_kv_layout mem_cache/
# deepseek_v4_memory_pool.py:198-230), FP8 indexer keys, float32 compress state, ratio sizing of the SWA pool.

DSV4_PAGE_SIZE = 256  # srt/arg_groups/model_overrides/deepseek_v4.py:51, :61 (CUDA; 128 on NPU)
DSV4_SWA_FULL_TOKENS_RATIO = 0.1  # model_overrides/deepseek_v4.py:44-49; pool_configurator.py:1046
# The request slots without --max-running-requests: apply_deepseek_v4_defaults sets max_running_requests 256
# (srt/arg_groups/deepseek_v4_hook.py:138-146) for DeepseekV4ForCausalLM (model_hook.py:258-265, in
# handle_model_specific_adjustments, run at arg_groups/pipeline.py:225), before the speculative hook
# (pipeline.py:306), whose 48 for EAGLE/MTP applies only while it is unset (speculative_hook.py:1086-1090). So the
# configurator always has a request cap (pool_configurator.py:1141-1145) and returns it (:1568-1569); its estimate
# from the budget and context length (:1571-1574) is never reached for DeepSeek-V4, and neither --context-length
# nor MTP changes the slot count.
DSV4_DEFAULT_MAX_RUNNING_REQUESTS = 256
# KVLayout.V4: 576 data + 8 scale bytes a token, the page stride padded to 576 (kernels/ops/attention/dsv4/
# kv_layout.py:50-58, :61-69, :84-85, :88-98, page_bytes :103-105)
_V4_TOKEN_BYTES, _V4_PAGE_ALIGN = 584, 576
_DSV4_STATE_BYTES = 4  # SGLANG_DSV4_COMPRESS_STATE_DTYPE "float32" (environ.py:1832; pool_configurator.py:136-145)
_DSV4_SOURCE = "sglang-0.5.23 srt/model_executor/pool_configurator.py"


def dsv4_paged_bytes_per_token(page_size: int) -> float:
    """KVLayout.V4's page bytes / page size: one pool's bytes per token slot with the page pad
    (pool_configurator.py:1353-1370 `_get_paged_kv_bytes_per_token`; kv_layout.py:103-105 `page_bytes`)."""
    raw = page_size * _V4_TOKEN_BYTES
    return -(-raw // _V4_PAGE_ALIGN) * _V4_PAGE_ALIGN / page_size


def dsv4_ring_size(ratio: int, draft_tokens: int) -> int:
    """Compress-state rows per request (mem_cache/deepseek_v4_memory_pool.py:60-79, online c128 off): 8 (C4) or
    128 (C128), 16 / 256 with speculative draft tokens."""
    if draft_tokens:
        return 16 if ratio == 4 else 256
    return 8 if ratio == 4 else 128


def dsv4_max_draft_tokens(ratio: int, ring: int) -> int:
    """The draft tokens a ring serves (deepseek_v4_memory_pool.py:118-122 `get_compress_state_write_pad`,
    asserted by pool_configurator.py:1291-1307)."""
    window = ratio * (2 if ratio == 4 else 1)
    return ring - window + 2 if ring > window else 0


def sglang_pp_stages(num_layers: int, pp: int) -> list[range]:
    """SGLang's layer split: the last `num_layers % pp` stages take one layer more (srt/distributed/utils.py:110-150
    `get_pp_indices`, SGLANG_PP_LAYER_PARTITION unset), unlike vLLM's first ones."""
    return pipeline_stages(num_layers, pp, remainder_last=True)


@dataclass(frozen=True)
class Dsv4Pool:
    """One pipeline stage's DSV4 pools (pool_configurator.py:1638-1701 `calculate_pool_sizes`): the coefficients
    (bytes per SWA slot and per full token, the MTP inflation included), the request slots the fixed bytes were
    sized for, the c128 state bytes, and the pools' token counts."""

    layers: int
    c4_layers: int
    c128_layers: int
    bytes_per_swa_token: float
    bytes_per_full_token: float
    max_running_requests: int
    c128_state_bytes: int
    full_tokens: int
    swa_tokens: int
    c4_tokens: int
    c128_tokens: int
    c4_state_rows: int


def dsv4_coefficients(
    ratios: list[int], head_dim: int, index_head_dim: int, draft_tokens: int, page_size: int = DSV4_PAGE_SIZE
) -> tuple[float, float]:
    """(bytes per SWA slot, bytes per full token) of a stage with these compress ratios, in SGLang's float order:
    SWA: every layer's paged V4 slot + the c4 compress state (2 x 2 x head_dim and 2 x 2 x index_head_dim float32
    per ring row, ring / page_size rows per SWA slot) on C4 layers (:1372-1388 `_get_bytes_per_swa_token`); full:
    0.1 x SWA + per C4 layer (the V4 slot at page_size / 4 + the FP8 indexer key, index_head_dim + index_head_dim /
    128 x 4 bytes, deepseek_v4_memory_pool.py:53-57) / 4 + per C128 layer the V4 slot at page_size / 128, / 128
    (:1390-1404, :1437-1446); with MTP both x (layers + 1) / layers (:1248-1256)."""
    layers = len(ratios)
    c4, c128 = ratios.count(4), ratios.count(128)
    ring4 = dsv4_ring_size(4, draft_tokens) if c4 else 0
    state = 2 * 2 * head_dim * _DSV4_STATE_BYTES + 2 * 2 * index_head_dim * _DSV4_STATE_BYTES
    swa = dsv4_paged_bytes_per_token(page_size) * layers + (ring4 / page_size) * state * c4
    indexer = fp8_block_scaled_bytes(index_head_dim)
    per_c4 = 1 / 4 * dsv4_paged_bytes_per_token(page_size // 4) + 1 / 4 * indexer
    per_c128 = 1 / 128 * dsv4_paged_bytes_per_token(page_size // 128)
    full = DSV4_SWA_FULL_TOKENS_RATIO * swa + (per_c4 * c4 + per_c128 * c128)
    if draft_tokens:
        inflation = (layers + 1) / layers
        full *= inflation
        swa *= inflation
    return swa, full


def dsv4_pool(
    ratios: list[int],
    head_dim: int,
    index_head_dim: int,
    available: int,
    draft_tokens: int = 0,
    page_size: int = DSV4_PAGE_SIZE,
    max_running_requests: int = DSV4_DEFAULT_MAX_RUNNING_REQUESTS,
) -> Dsv4Pool:
    """A stage's pools from `available` bytes (pool_configurator.py:1638-1701) for `max_running_requests` request
    slots (--max-running-requests, else DeepSeek-V4's 256: `DSV4_DEFAULT_MAX_RUNNING_REQUESTS`; the configurator
    takes max(1, given // attn_dp_size), :1141-1145, and returns it, :1568-1569): the c128 state of (slots + 1) x
    ring + ring + 1 rows rounded up to 128, 2 x head_dim float32 each, per C128 layer (:1509-1528), the rest / the
    full-token coefficient rounded down to whole pages; the SWA pool int(full x 0.1) in whole pages (:1457-1461),
    C4 full // 4, C128 full // 128, the c4 state SWA pages x ring (:1463-1502). The SWA pool stays in ratio mode
    with the slots known, as kvplan reads SGLang: the V4 override sets swa_full_tokens_ratio 0.1
    (model_overrides/deepseek_v4.py:44-49, run by handle_model_specific_adjustments, arg_groups/pipeline.py:225)
    before the cache hook records it as explicitly set (kv_cache_hook.py:415-420, pipeline.py:334), and an explicit
    ratio turns cap mode off (pool_configurator.py:1328-1333)."""
    swa_coeff, full_coeff = dsv4_coefficients(ratios, head_dim, index_head_dim, draft_tokens, page_size)
    c4, c128 = ratios.count(4), ratios.count(128)
    running = max(1, max_running_requests)
    state = 0
    if c128:
        ring = dsv4_ring_size(128, draft_tokens)
        rows = cdiv((running + 1) * ring + ring + 1, 128) * 128
        state = rows * 2 * head_dim * _DSV4_STATE_BYTES * c128
    full = int(max(available - state, 0) / full_coeff) // page_size * page_size
    swa = int(full * DSV4_SWA_FULL_TOKENS_RATIO) // page_size * page_size
    ring4 = dsv4_ring_size(4, draft_tokens) if c4 else 0
    return Dsv4Pool(
        len(ratios),
        c4,
        c128,
        swa_coeff,
        full_coeff,
        running,
        state,
        full,
        swa,
        full // 4,
        full // 128,
        swa // page_size * ring4,
    )


def dsv4_stage_pools(
    shape: ModelShape, req: Request, available: int, max_running_requests: int | None = None
) -> list[Dsv4Pool]:
    """`dsv4_pool` of each pipeline stage (SGLang's split), every stage given the same `available` bytes and the
    request slots given (None: DeepSeek-V4's default 256)."""
    draft = SglangEngine._draft_tokens(req)
    running = DSV4_DEFAULT_MAX_RUNNING_REQUESTS if max_running_requests is None else max_running_requests
    pools = []
    for stage in sglang_pp_stages(shape.num_layers, req.pp):
        v4 = [c for i in stage for c in shape.layers[i] if isinstance(c, L.CompressedAttention)]
        index = max((c.index_head_dim for c in v4), default=0)
        ratios = [c.compress_ratio for c in v4]
        pools.append(dsv4_pool(ratios, v4[0].head_dim, index, available, draft, DSV4_PAGE_SIZE, running))
    return pools


def dsv4_notes(shape: ModelShape, pp: int, draft_tokens: int) -> list[str]:
    """What SGLang's DSV4 pools hold beside kvplan's per-token figures, per stage of SGLang's split: the full-token
    coefficient, the SWA pool's share and the c128 state each request slot adds before the token pool is sized."""
    out = []
    stages = sglang_pp_stages(shape.num_layers, pp)
    for rank, stage in enumerate(stages):
        v4 = [c for i in stage for c in shape.layers[i] if isinstance(c, L.CompressedAttention)]
        if not v4:
            continue
        ratios = [c.compress_ratio for c in v4]
        index = max((c.index_head_dim for c in v4), default=0)
        swa, full = dsv4_coefficients(ratios, v4[0].head_dim, index, draft_tokens)
        slot = dsv4_ring_size(128, draft_tokens) * 2 * v4[0].head_dim * _DSV4_STATE_BYTES * ratios.count(128)
        where = f"stage {rank} (layers {stage.start}-{stage.stop - 1})" if len(stages) > 1 else "each GPU"
        default = dsv4_pool(ratios, v4[0].head_dim, index, 0, draft_tokens).c128_state_bytes
        out.append(
            f"SGLang's DSV4 pools on {where}: {full:,.2f} B per full token ({DSV4_SWA_FULL_TOKENS_RATIO} x "
            f"{swa:,.2f} B of SWA slot on {len(ratios)} layers with the c4 state, {ratios.count(4)} CSA and "
            f"{ratios.count(128)} HCA layers), in {DSV4_PAGE_SIZE}-token pages, after {slot / 2**20:,.2f} MiB of c128 "
            "compress state per request slot (max_running_requests + 1 slots: SGLang's --max-running-requests "
            f"(kvplan's --max-num-seqs), else DeepSeek-V4's {DSV4_DEFAULT_MAX_RUNNING_REQUESTS}: "
            f"{default / 2**30:,.2f} GiB, arg_groups/deepseek_v4_hook.py:138-146) is set aside ({_DSV4_SOURCE}:"
            "1372-1446, :1509-1528, :1638-1701); the weights of every stage taken as weights / (tp x pp)"
        )
    return out


def dsv4_tokens(shape: ModelShape, req: Request, available: int, max_running_requests: int | None = None) -> int:
    """SGLang's max_total_num_tokens for DeepSeek-V4: the smallest stage's full pool."""
    return min(p.full_tokens for p in dsv4_stage_pools(shape, req, available, max_running_requests))


# ------------------------------------------------------------------------------------ Mamba / linear-attention hybrids
#
# SGLang 0.5.23 sizes a hybrid (Mamba2, gated DeltaNet, KDA, short conv + attention: a `mambaish_config`) in two
# steps of mem_cache/kv_cache_configurator.py. `_handle_max_mamba_cache` (:3229-3409, called at :3039-3040) takes
# the state pool out of the profiled budget `rest_memory` (GB, a float): with no --max-mamba-cache-size, K =
# int((rest x ratio / (1 + ratio) x 2**30 - slot) // slot) state slots (:3350-3386; ratio =
# --mamba-full-memory-ratio, fallback 0.9: arg_groups/fields/schedule.py:220-227), then rest -= (K + 1) x slot /
# 2**30 (the pool's padding slot, :3404-3409), and the budget in bytes is int(rest x 2**30) (:3060). A slot is
# `mamba_cache_per_req` (configs/mamba_utils.py:115-125: every Mamba layer's conv + SSM state) x the largest PP
# stage's share of the Mamba layers (:3233-3257). DefaultPoolConfigurator then sizes the full-attention pool from
# what is left: tokens = bytes // cell // page x page, the cell the stage's own full-attention layers
# (model_executor/pool_configurator.py:229-251, :638-647; a stage with none, under PP, gives int64 max and a model
# with none at all context_len), the PP ranks' MIN (:3107-3116). Every rank sees the same budget: SGLang's free
# memory is the MIN over the GPUs (utils/common.py:427-433 get_available_gpu_memory(distributed=True)).
# max_running_requests is finally capped by K // slots-per-request (:3134-3160, `_calculate_mamba_ratio`
# :3062-3088): 3 (MAMBA_CACHE_SIZE_MAX_RUNNING_REQUESTS_RATIO, :222-229) + the extra_buffer strategy's tracking
# slots (mem_cache/allocation_sizing.py:11-19: 2 with the overlap scheduler, 1 without), 1 with the radix cache off.

MAMBA_FULL_MEMORY_RATIO = 0.9  # arg_groups/fields/schedule.py:220-227 (fallback of --mamba-full-memory-ratio)
# above this the state budget rest x ratio (GiB x 2**30) overflows a float; SGLang would raise there too
MAX_MAMBA_FULL_MEMORY_RATIO = 1e250
MAMBA_SLOTS_PER_REQUEST = 3  # mem_cache/kv_cache_configurator.py:222-229 MAMBA_CACHE_SIZE_MAX_RUNNING_REQUESTS_RATIO
_GIB = 1 << 30
_INT64_MAX = 2**63 - 1  # pool_configurator.py:246-250: a PP stage without full attention leaves the MIN to others

# The architectures whose mamba radix cache SGLang resolves (arg_groups/overrides.py:369-398, with Granite's
# layer_types probe :462-466) and those that may keep its extra_buffer (:403-435, on the triton linear-attention
# backend :438-450); `auto` picks extra_buffer for an architecture in both while the overlap scheduler is on
# (:476-487), else no_buffer.
_MAMBA_RADIX_ARCHS = frozenset(
    {
        "KimiLinearForCausalLM",
        "KimiK3ForConditionalGeneration",
        "BailingMoeV2_5ForCausalLM",
        "BailingMoeV3ForCausalLM",
        "BailingMoeV3VLForConditionalGeneration",
        "Qwen3NextForCausalLM",
        "Qwen3_5MoeForConditionalGeneration",
        "InternS2PreviewForConditionalGeneration",
        "InternS2MobiusForConditionalGeneration",
        "Qwen3_5ForConditionalGeneration",
        "Qwen3_5MoeForCausalLM",
        "Qwen3_5ForCausalLM",
        "Qwen4ExpForConditionalGeneration",
        "MiniCPMV4_6ForConditionalGeneration",
        "MiniCPMV4_7ForConditionalGeneration",
        "NemotronHForCausalLM",
        "NemotronHPuzzleForCausalLM",
        "NemotronH_Omni_Reasoning_V3",
        "FalconH1ForCausalLM",
        "JetNemotronForCausalLM",
        "JetVLMForConditionalGeneration",
        "Lfm2ForCausalLM",
        "Lfm2MoeForCausalLM",
        "ZayaForCausalLM",
        "Glm5NextForConditionalGeneration",
        "GraniteMoeHybridForCausalLM",  # in the branch when its layer_types hold "mamba" (:462-466)
    }
)
_MAMBA_EXTRA_BUFFER_ARCHS = frozenset(
    {
        "KimiLinearForCausalLM",
        "Qwen3_5ForConditionalGeneration",
        "Qwen3_5MoeForConditionalGeneration",
        "Qwen3_5MoeForCausalLM",
        "Qwen3_5ForCausalLM",
        "Qwen3NextForCausalLM",
        "Qwen4ExpForConditionalGeneration",
        "InternS2PreviewForConditionalGeneration",
        "MiniCPMV4_6ForConditionalGeneration",
        "MiniCPMV4_7ForConditionalGeneration",
        "BailingMoeV2_5ForCausalLM",
        "BailingMoeV3ForCausalLM",
        "BailingMoeV3VLForConditionalGeneration",
        "FalconH1ForCausalLM",
        "GraniteMoeHybridForCausalLM",
        "Glm5NextForConditionalGeneration",
        "NemotronHForCausalLM",
        "NemotronHPuzzleForCausalLM",
        "NemotronH_Omni_Reasoning_V3",
        "KimiK3ForConditionalGeneration",
        "InklingForConditionalGeneration",
        "InklingForConditionalGenerationMTP",
    }
)

# Hybrids whose SGLang model runs on one pipeline stage only: `assert self.pp_group.is_first_rank and
# self.pp_group.is_last_rank` (the architecture -> the file:line of that assert).
NO_PP_HYBRIDS = {
    "Qwen3NextForCausalLM": "srt/models/qwen3_next.py:1036",
    "FalconH1ForCausalLM": "srt/models/falcon_h1.py:456",
    "Lfm2ForCausalLM": "srt/models/lfm2.py:695",
    "Lfm2MoeForCausalLM": "srt/models/lfm2_moe.py:606",
    "Lfm2VlForConditionalGeneration": "srt/models/lfm2_vl.py:166 builds Lfm2ForCausalLM, srt/models/lfm2.py:695",
}


# Qwen3.5's override (arg_groups/model_overrides/qwen3_5.py:17-49): on SM100 (compute capability 10.x:
# srt/utils/common.py:309-313), with no attention backend given, trtllm_mha (model_override_base.py:312-325 for MHA
# with symmetric K/V and no topk > 1) and page_size 64, unless the mamba radix cache runs no_buffer without
# speculative decoding (then triton, page 1).
_QWEN35_OVERRIDE_ARCHS = frozenset(
    {
        "Qwen3NextForCausalLM",
        "Qwen3_5MoeForConditionalGeneration",
        "InternS2PreviewForConditionalGeneration",
        "InternS2MobiusForConditionalGeneration",
        "Qwen3_5ForConditionalGeneration",
    }
)


def hybrid_page_size(architectures: tuple[str, ...], compute_capability: str | None, speculative: bool) -> int:
    """The page size SGLang 0.5.23 pools a hybrid's tokens in at its defaults: 64 for the Qwen3.5 override's
    architectures on compute capability 10.x when the radix cache keeps its extra_buffer or a drafter runs
    (qwen3_5.py:39-49), else 1 (`_page_size_default`, arg_groups/overrides.py:1341-1363, CUDA)."""
    arch = architectures[0] if architectures else ""
    major = str(compute_capability).split(".")[0] if compute_capability else ""
    extra = arch in _MAMBA_RADIX_ARCHS and arch in _MAMBA_EXTRA_BUFFER_ARCHS
    if arch in _QWEN35_OVERRIDE_ARCHS and major == "10" and (extra or speculative):
        return 64
    return 1


def mamba_slots_per_request(architectures: tuple[str, ...], pp: int) -> tuple[int, str]:
    """(state slots SGLang 0.5.23 counts per running request, why): `_calculate_mamba_ratio`
    (kv_cache_configurator.py:3062-3088) at SGLang's defaults (radix cache on, SGLANG_OPT_MAMBA_SKIP_DECODE_LOCK
    off, triton linear-attention backend): 3 + 2 for an architecture whose `auto` strategy resolves to
    extra_buffer (arg_groups/overrides.py:476-487) with the overlap scheduler, 3 + 1 under PP (which turns the
    overlap scheduler off after the strategy is resolved: arg_groups/pipeline.py:225 then :302,
    overrides.py:1623-1628), 3 for no_buffer and the architectures outside SGLang's mamba radix cache."""
    arch = architectures[0] if architectures else ""
    if arch in _MAMBA_RADIX_ARCHS and arch in _MAMBA_EXTRA_BUFFER_ARCHS:
        tracking = 1 if pp > 1 else 2
        why = "extra_buffer, " + ("no overlap scheduler under PP" if pp > 1 else "overlap scheduler")
        return MAMBA_SLOTS_PER_REQUEST + tracking, f"{MAMBA_SLOTS_PER_REQUEST} + {tracking} ({why})"
    if arch in _MAMBA_RADIX_ARCHS:
        return MAMBA_SLOTS_PER_REQUEST, f"{MAMBA_SLOTS_PER_REQUEST} (no_buffer)"
    return MAMBA_SLOTS_PER_REQUEST, f"{MAMBA_SLOTS_PER_REQUEST} (no extra buffer)"


@dataclass(frozen=True)
class MambaPool:
    """SGLang's two pools of a hybrid on one GPU: `slots` (max_mamba_cache_size, K) of `slot_bytes` each (the
    largest stage's share), `state_bytes` = (K + 1) x slot_bytes held, `kv_bytes` the budget left to the
    full-attention pool and `tokens` its max_total_num_tokens (the PP stages' MIN), `slots_per_request` the
    running requests' share of K, `ratio` the --mamba-full-memory-ratio used (None: K given)."""

    slots: int
    slot_bytes: int
    state_bytes: int
    kv_bytes: int
    tokens: int
    slots_per_request: int
    ratio: float | None

    @property
    def running_cap(self) -> int:
        """max_mamba_cache_size // slots per request: the cap on running requests (kv_cache_configurator.py:3137)."""
        return self.slots // self.slots_per_request


def sglang_mamba_pool(
    available: int,
    slot_bytes: int,
    mamba_layers: int,
    stage_mamba_layers: int,
    stage_cells: list[int],
    context_len: int,
    slots_per_request: int,
    ratio: float | None = None,
    max_cache_size: int | None = None,
    page_size: int = 1,
) -> MambaPool:
    """SGLang's state and full-attention pools from `available` bytes (its rest_memory), in SGLang's own float
    order (kv_cache_configurator.py:3229-3409, :3060; pool_configurator.py:638-647): `slot_bytes` one request's
    state over all `mamba_layers` Mamba layers, `stage_mamba_layers` the most any PP stage holds, `stage_cells`
    each stage's full-attention bytes per token (0: none there). `ratio` None: 0.9; `max_cache_size` given: K."""
    stage_slot = int(slot_bytes * (stage_mamba_layers / max(mamba_layers, 1)))
    rest = available / _GIB
    used_ratio: float | None = None
    if max_cache_size is not None:
        slots = max_cache_size
    else:
        used_ratio = MAMBA_FULL_MEMORY_RATIO if ratio is None else ratio
        budget = rest * used_ratio / (1 + used_ratio)
        slots = int((budget * _GIB - stage_slot) // stage_slot)
    state = (slots + 1) * stage_slot
    rest -= state / _GIB
    kv = int(rest * _GIB)
    tokens = []
    for cell in stage_cells:
        if cell:
            tokens.append(max(kv, 0) // cell // page_size * page_size)
        elif any(stage_cells):
            tokens.append(_INT64_MAX)
        else:  # no full attention anywhere: SGLang's pool holds context_len tokens (pool_configurator.py:246-251)
            tokens.append(context_len // page_size * page_size)
    return MambaPool(slots, stage_slot, state, kv, min(tokens), slots_per_request, used_ratio)


def sglang_hybrid_pool(
    storage: SglangEngine, shape: ModelShape, req: Request, available: int, page_size: int | None = None
) -> MambaPool:
    """`sglang_mamba_pool` for a model: its Mamba layers' state at `req.tp` (the storage model's slot bytes),
    the SGLang PP stages' (`sglang_pp_stages`) Mamba layer counts and full-attention cells, in pages of
    `page_size` tokens (None: `hybrid_page_size`)."""
    one = replace(req, batch=1)
    stages = sglang_pp_stages(shape.num_layers, req.pp)
    slot, cells, mamba_counts = 0, [], []
    for rng in stages:
        caches = [c for i in rng for c in shape.layers[i]]
        costs = storage.stage_costs(caches, one)
        slot += sum(c.bytes for c in costs if c.kind == L.STATE)
        cell = sum((c.bytes_per_token for c in costs if c.kind in (L.FULL, L.MLA)), Fraction(0))
        cells.append(int(cell))
        mamba_counts.append(sum(isinstance(c, L.RecurrentState) for c in caches))
    slots_per_request, _ = mamba_slots_per_request(shape.architectures, req.pp)
    if page_size is None:
        page_size = hybrid_page_size(shape.architectures, req.compute_capability, req.speculative is not None)
    return sglang_mamba_pool(
        available,
        slot,
        sum(mamba_counts),
        max(mamba_counts),
        cells,
        req.seq_len,
        slots_per_request,
        req.mamba_full_memory_ratio,
        req.max_mamba_cache_size,
        page_size,
    )


def is_mamba_hybrid(shape: ModelShape) -> bool:
    """A model SGLang sizes with a Mamba state pool (kvplan's recurrent-state layers)."""
    return any(isinstance(c, L.RecurrentState) for c in shape.caches())


# ------------------------------------------------------------------------------------ serving (the KV budget)
#
# SGLang's pool is `total x mem_fraction_static - weights / (tp x pp)`, sized per token (no pages); the default
# mem_fraction_static is 0.5.23's `handle_gpu_memory_settings` (srt/arg_groups/memory_hook.py:47-354), run after the
# CUDA-graph config is parsed (arg_groups/pipeline.py:155-158: `handle_cuda_graph_config`, which turns breakable
# prefill graphs off for PP, DeepSeek-V4, KDA and unlisted multimodal models) and before the model-specific
# adjustments (pipeline.py:177-183), which do not touch it.

_MIB = 2**20
_MEMORY_HOOK = "sglang-0.5.23 srt/arg_groups/memory_hook.py"
# the multimodal architectures whose prefill keeps its breakable CUDA graphs (configs/model_config.py:2501-2513)
MULTIMODAL_BCG_ARCHS = frozenset(
    {
        "MiniMaxM3SparseForConditionalGeneration",
        "Cohere2VisionForConditionalGeneration",
        "Glm5NextForConditionalGeneration",
        "InternS2MobiusForConditionalGeneration",
        "PaddleOCRVLForConditionalGeneration",
        "Qwen3_5ForConditionalGeneration",
        "Qwen3_5MoeForConditionalGeneration",
        "Qwen4ExpForConditionalGeneration",
        "MuseGlimmerForConditionalGeneration",
        "MuseSparkForConditionalGeneration",
        "KimiK3ForConditionalGeneration",
        "KimiK25ForConditionalGeneration",
    }
)
# architectures whose start-up turns SGLang's post-capture KV sizing on (muse_spark_hook.py:14-24), a fraction
# kvplan does not model
_POST_CAPTURE_ARCHS = frozenset({"MuseSparkForConditionalGeneration"})


def sglang_gpu_tier(gpu_mb: float, tp: int) -> tuple[int, int]:
    """(chunked_prefill_size, decode CUDA-graph max_bs) SGLang 0.5.23 defaults to for a GPU of `gpu_mb` MiB
    (memory_hook.py:89-170)."""
    if gpu_mb < 20 * 1024:
        return 2048, 8  # :90-100
    if gpu_mb < 35 * 1024:
        return 4096, 48 if tp < 4 else 160  # :101-117
    if gpu_mb < 60 * 1024:
        return 4096, 32 if tp < 4 else 160  # :118-131
    if gpu_mb < 160 * 1024:
        return 8192, 256 if tp < 4 else 512  # :132-159 (the H100 and the H200 tiers set the same values)
    return 16384, 512  # :160-170


def prefill_capture_sizes(max_bs: int) -> list[int]:
    """The prefill CUDA-graph token buckets SGLang captures up to `max_bs` (arg_groups/cuda_graph_hook.py:480-497)."""
    sizes = (
        list(range(4, 33, 4))
        + list(range(48, 257, 16))
        + list(range(288, 513, 32))
        + list(range(576, 1024 + 1, 64))
        + list(range(1280, 4096 + 1, 256))
        + list(range(4608, max_bs + 1, 512))
    )
    return [s for s in sizes if s <= max_bs]


@dataclass(frozen=True)
class MemFraction:
    """SGLang's default mem_fraction_static and the terms it is made of (MiB, as memory_hook.py adds them)."""

    value: float
    gpu_mb: float
    terms: tuple[tuple[str, float], ...]  # (what, MiB), summed into reserved_mem
    floored: bool  # reserved_mem raised to the 10 GiB floor of a GPU over 60 GiB (:314-315)
    vlm_factor: float | None = None  # the multimodal reduction (:330-337, :417-462); None: not applied

    @property
    def reserved_mb(self) -> float:
        return 10 * 1024 if self.floored else sum(mb for _, mb in self.terms)

    def describe(self) -> str:
        terms = " + ".join(f"{mb:g} ({what})" for what, mb in self.terms)
        reserved = f"max({terms}, the 10240 floor above 60 GiB)" if self.floored else terms
        line = (
            f"SGLang's default: round(({self.gpu_mb:g} MiB - reserved {self.reserved_mb:g} MiB) / {self.gpu_mb:g}, 3)"
            f", reserved = {reserved} ({_MEMORY_HOOK}:281-328)"
        )
        if self.vlm_factor is not None:
            line += f", x {self.vlm_factor:.6g} for a multimodal model's vision tower (:330-337, :417-462)"
        return line


def sglang_mem_fraction(
    memory_bytes: int,
    tp: int,
    pp: int,
    *,
    mla: bool = False,
    max_running_requests: int | None = None,
    prefill_graphs_off: bool = False,
    vision: tuple[int, int] | None = None,
    llama2: bool = False,
    qwen3_vl_hopper: bool = False,
) -> MemFraction:
    """SGLang 0.5.23's default mem_fraction_static on a CUDA GPU of `memory_bytes` (kvplan's profile total in MiB;
    SGLang reads nvidia-smi's memory.total, utils/common.py:802-827), at its default chunked_prefill_size and CUDA-graph
    settings, without PD disaggregation, DP attention, DeepEP or post-capture KV sizing. `mla`: an MLA attention
    backend (overrides.py use_mla_backend); `prefill_graphs_off`: breakable prefill graphs turned off by
    `handle_cuda_graph_config`; `vision`: (num_hidden_layers, hidden_size) of the vision tower of a model SGLang serves
    as multimodal (None: not one); `llama2`: a model path naming "llama-2" (prefill graphs capped at 4096 tokens);
    `qwen3_vl_hopper`: a multimodal Qwen3-VL on an SM90 GPU of 60 GiB or more, whose decode graphs grow to a
    max_running_requests given up to 512 (memory_hook.py:190-196, model_overrides/qwen3_vl.py:20-31, :34-62)."""
    gpu_mb = memory_bytes / _MIB
    chunk, decode_bs = sglang_gpu_tier(gpu_mb, tp)
    if max_running_requests is not None and decode_bs > max_running_requests:
        decode_bs = max_running_requests  # :182-188
    if qwen3_vl_hopper and max_running_requests is not None and decode_bs < max_running_requests <= 512:
        decode_bs = max_running_requests  # model_overrides/qwen3_vl.py:43-62
    terms: list[tuple[str, float]] = [
        ("fixed", 512.0),
        (f"1.5 x chunked_prefill_size {chunk}", max(chunk, 2048) * 1.5),  # :304-310
        (f"tp x pp {tp * pp} / 8 x 1024", tp * pp / 8 * 1024),  # :312
        (f"decode CUDA graphs: max_bs {decode_bs} x 2", decode_bs * 2.0),  # :368
    ]
    if not prefill_graphs_off:  # breakable prefill graphs, the default on CUDA (cuda_graph_config.py:119-123)
        if mla:
            terms.append(("MLA prefill CUDA graphs", 1.5 * 1024))  # :387-389
        else:
            max_bs = chunk  # :233-238
            if llama2:
                max_bs = min(max_bs, 4096)  # :258-263
            n = len(prefill_capture_sizes(max_bs))
            terms.append((f"prefill CUDA graphs: {n} buckets x 8", n * 8.0))  # :384-386
    reserved = sum(mb for _, mb in terms)
    floored = gpu_mb > 60 * 1024 and reserved < 10 * 1024  # :314-315
    if floored:
        reserved = 10 * 1024
    value = round((gpu_mb - reserved) / gpu_mb, 3)  # :324-328
    factor = None
    if vision is not None:  # adjust_mem_fraction_for_vlm, not rounded again
        layers, hidden = vision
        ratio = layers * hidden**2 / (24 * 1024**2)
        factor = 0.95 * max(0.8, min(1.05, 1.0 - 0.1 * (ratio - 1.0)))
        value = value * factor
    return MemFraction(value, gpu_mb, tuple(terms), floored, factor)


def sglang_mem_fraction_static(memory_bytes: int, tp: int, pp: int) -> float:
    """SGLang's default mem_fraction_static for a text-only, non-MLA model at its defaults (`sglang_mem_fraction`)."""
    return sglang_mem_fraction(memory_bytes, tp, pp, prefill_graphs_off=pp > 1).value


def _vision_tower(config: Mapping[str, Any]) -> tuple[int, int] | None:
    """(num_hidden_layers, hidden_size) as SGLang reads them off the HF vision config (memory_hook.py:432-441): the
    config's keys, `depth` where transformers maps num_hidden_layers onto it (the Qwen-VL vision configs'
    attribute_map, which SGLang's own Qwen3_5VisionConfig inherits: srt/configs/qwen3_5.py:7), SGLang's defaults 24
    and 1024 where the key is absent (a transformers config class's own default is not read). None: no
    vision_config."""
    vision = config.get("vision_config")
    if not isinstance(vision, Mapping):
        return None  # :432-434: no reduction
    layers = vision.get("num_hidden_layers", vision.get("depth", 24))
    hidden = vision.get("hidden_size", 1024)
    if not isinstance(layers, int) or not isinstance(hidden, int):
        raise UsageError(
            "kvplan cannot read the vision tower's num_hidden_layers / hidden_size that SGLang's default "
            "mem_fraction_static is reduced by (sglang-0.5.23 srt/arg_groups/memory_hook.py:440-441)",
            hint=Text("pass {gpu_memory_utilization} (SGLang's --mem-fraction-static)"),
            field="gpu_memory_utilization",
        )
    return layers, hidden


def uses_kda_attention(config: Mapping[str, Any]) -> bool:
    """SGLang's `uses_kda_attention` (configs/model_config.py:230-251) on the config or its text config."""
    for c in (config, text_config(dict(config))):
        linear = c.get("linear_attn_config")
        if isinstance(linear, Mapping) and linear.get("kda_layers"):
            return True
        types = c.get("layer_types") or []
        if (
            "linear_attention" in types
            and c.get("linear_num_heads") is not None
            and c.get("linear_head_dim") is not None
        ):
            return True
    return False


def sglang_fraction_for(
    memory_bytes: int,
    tp: int,
    pp: int,
    config: Mapping[str, Any],
    shape: ModelShape | None,
    max_running_requests: int | None = None,
    model: str = "",
    compute_capability: str | None = None,
) -> MemFraction:
    """`sglang_mem_fraction` with the model's inputs read from its config and shape: MLA, whether breakable prefill
    graphs stay on (arg_groups/cuda_graph_hook.py:136-255: off under PP, for DeepSeek-V4, for KDA models other than
    GLM-5 Next, for a multimodal model not in `MULTIMODAL_BCG_ARCHS`), the VLM reduction. Refuses a model whose start-up
    turns on post-capture KV sizing (another fraction, memory_hook.py:289-295)."""
    arch = (config.get("architectures") or [""])[0]
    if arch in _POST_CAPTURE_ARCHS:
        raise UsageError(
            f"kvplan has not modelled SGLang's default mem_fraction_static for {arch}: its start-up turns on "
            "post-capture KV sizing (sglang-0.5.23 srt/arg_groups/muse_spark_hook.py:14-24, memory_hook.py:289-295)",
            hint=Text("pass {gpu_memory_utilization} (SGLang's --mem-fraction-static)"),
            field="gpu_memory_utilization",
        )
    caches = shape.caches() if shape is not None else []
    multimodal = sglang_multimodal(config)
    kda = arch != "Glm5NextForConditionalGeneration" and uses_kda_attention(config)
    off = (
        pp > 1  # cuda_graph_hook.py:150-162
        or any(isinstance(c, L.CompressedAttention) for c in caches)  # :196-202
        or kda  # :184-192
        or (multimodal and arch not in MULTIMODAL_BCG_ARCHS)  # :230-238
    )
    return sglang_mem_fraction(
        memory_bytes,
        tp,
        pp,
        mla=any(isinstance(c, L.MlaLatent) for c in caches),
        max_running_requests=max_running_requests,
        prefill_graphs_off=off,
        vision=_vision_tower(config) if multimodal else None,
        llama2="llama-2" in model.lower(),
        qwen3_vl_hopper=multimodal
        and config.get("model_type") in ("qwen3_vl", "qwen3_vl_moe")
        and _major(compute_capability) == 9
        and memory_bytes / _MIB >= 60 * 1024,
    )


# kvplan's KV dtype -> SGLang's --kv-cache-dtype (ServerArgs.kv_cache_dtype's choices, sglang 0.5.23
# sglang/srt/arg_groups/fields/model.py; tests/fixtures/engine_args/sglang.json)
KV_CACHE_DTYPES = {
    "fp8_e4m3": "fp8_e4m3",
    "fp8_e5m2": "fp8_e5m2",
    "nvfp4": "nvfp4",
    "fp4_mx_block16": "fp4_mx_block16",
}


# ------------------------------------------------------------------------------------ LoRA (--enable-lora)
#
# SGLang's LoRAMemoryPool preallocates, for --max-loras-per-batch slots (default 8, arg_groups/fields/lora.py:66-69)
# at --max-lora-rank, one A (slots, rank x stacked, input) and one B (slots, output, rank) buffer per targeted
# module and layer in the model dtype (sglang-0.5.23 srt/lora/mem_pool.py:598-684 `init_buffers`; shapes :408-573:
# row-parallel o_proj/down_proj split the input over TP, the column-parallel qkv_proj/gate_up_proj the output,
# K/V heads replicated when TP exceeds them :492-520). `--lora-target-modules all` is every linear module plus
# embed_tokens and lm_head (srt/lora/lora_manager.py:807-809): embed_tokens A (rank x vocab) and B (hidden x
# rank) unsharded, lm_head A (rank x hidden) and B (vocab / TP x rank) (mem_pool.py:474-597, 684-737). The pool is
# built in the model's post-load steps, before the KV cache is sized from the free memory
# (srt/model_executor/model_runner.py:733-736 `maybe_init_lora_manager`), so it comes out of the KV budget.
# Loaded adapters stay on the CPU (srt/lora/lora.py:178-196 `.cpu()`), at most --max-loaded-loras of them.

DEFAULT_MAX_LORAS_PER_BATCH = 8


def lora_bytes(b: BudgetInputs, lora: LoraSettings) -> tuple[int, str]:
    """(bytes, source) of SGLang's LoRA memory pool on the fullest GPU."""
    if lora.max_cpu_loras is not None and lora.max_cpu_loras < lora.max_loras:
        raise UsageError(  # arg_groups/lora_hook.py:156-160
            Text(
                "max_loaded_loras should be greater than or equal to max_loras_per_batch. max_loaded_loras={c}, "
                "max_loras_per_batch={m}",
                c=lora.max_cpu_loras,
                m=lora.max_loras,
            ),
            hint=Text("raise {max_cpu_loras} (SGLang's --max-loaded-loras) to at least {max_loras}"),
            field="max_cpu_loras",
        )
    modules = decoder_modules(b.config, b.shape)
    targets = lora.target_modules
    packed = {m.packed for m in modules if targets is None or m.name in targets}
    rank, tp = lora.max_lora_rank, b.tp
    per_layer = sum(m.elements(rank, tp) for m in modules if m.packed in packed)
    vocab, hidden = b.vocab, b.shape.hidden_size
    embedding = rank * (vocab + hidden) + rank * (hidden + cdiv(vocab, tp)) if targets is None else 0
    dtype = b.dtype  # the model dtype: model_runner.py:1450-1456 LoRAManager(dtype=self.dtype); no --lora-dtype
    total = int((per_layer * b.layers_on_gpu + embedding) * lora.max_loras * DTYPE_BYTES[dtype])
    names = "+".join(sorted(packed, key=["qkv_proj", "o_proj", "gate_up_proj", "down_proj"].index))
    return total, (
        f"{lora.max_loras} slots (--max-loras-per-batch) x rank {rank} x ({names} A+B per TP rank x "
        f"{b.layers_on_gpu} layers"
        + (" + embed_tokens + lm_head (--lora-target-modules all)" if targets is None else "")
        + f") in {short_dtype(dtype)}; srt/lora/mem_pool.py:598-737 init_buffers, allocated before the KV cache is "
        "sized (model_runner.py:733-736)"
        + (
            "; lm_head B per rank taken as vocab / TP (SGLang pads it to the vocab shard)"
            if targets is None and tp > 1
            else ""
        )
    )


def lora_flags(lora: LoraSettings | None) -> str:
    if lora is None:
        return ""
    line = " --enable-lora" + (f" --max-loras-per-batch {lora.max_loras}" if lora.max_loras else "")
    line += f" --max-lora-rank {lora.max_lora_rank}"
    line += " --lora-target-modules " + (" ".join(lora.target_modules) if lora.target_modules else "all")
    if lora.max_cpu_loras is not None:
        line += f" --max-loaded-loras {lora.max_cpu_loras}"
    if lora.lora_dtype is not None:
        line += f"  # LoRA dtype {short_dtype(lora.lora_dtype)}: SGLang holds adapters in the model dtype"
    return line


_CAP_SOURCE = "sglang-0.5.23 srt/mem_cache/kv_cache_configurator.py:3119-3132"
_LOWERED = f" lowered to half the token pool: {_CAP_SOURCE})"
_DERIVED = f"derived from the token pool, no fixed default: {_CAP_SOURCE})"
_DSV4_DEFAULT = (
    f"DeepSeek-V4's default {DSV4_DEFAULT_MAX_RUNNING_REQUESTS}, sglang-0.5.23 srt/arg_groups/deepseek_v4_hook.py:"
    "138-146"
)


@dataclass(frozen=True)
class Dsv4Fit(Fit):
    """A fit of SGLang's DSV4 pools: their request slots are DeepSeek-V4's default max_running_requests when none
    was given, which `SglangServing.running_cap` then serves with."""


@dataclass(frozen=True)
class SglangFit(Fit):
    """A fit with SGLang's Mamba state pool beside the token pool (`mamba`: None for a model without one)."""

    mamba: MambaPool | None = None


SGLANG_VLM_CACHE_SIZE_MB = 100  # srt/environ.py:1598
# the architectures SGLang serves text-only unless --enable-multimodal (configs/model_config.py:690-705)
_MM_DISABLED_ARCHS = frozenset(
    {
        "Gemma3ForConditionalGeneration",
        "Llama4ForConditionalGeneration",
        "Step3VLForConditionalGeneration",
        "InklingForConditionalGeneration",
    }
)


def sglang_multimodal(config: Mapping[str, Any]) -> bool:
    """SGLang 0.5.23's `is_multimodal` at its defaults (configs/model_config.py:809-828): a config with a text
    sub-config (hf_config is not hf_text_config) or vision / audio towers, unless its architecture is served
    text-only by default (`_MM_DISABLED_ARCHS`, :690-705; MiMo-V2 without both vision and audio configs, :706-715)."""
    arch = (config.get("architectures") or [""])[0]
    if arch in _MM_DISABLED_ARCHS:
        return False
    if arch == "MiMoV2ForCausalLM" and not ("vision_config" in config and "audio_config" in config):
        return False
    return any(isinstance(config.get(k), dict) for k in ("text_config", "vision_config", "audio_config"))


class SglangServing(ServingModel):
    """SGLang's `--max-running-requests` is a cap, never a requirement: SGLang serves min(the value given,
    token capacity // 2) and, without one, min(max(min(capacity / context_len x 512, 4096), 2048), capacity // 2)
    (sglang-0.5.23/sglang/srt/mem_cache/kv_cache_configurator.py:3119-3132 `resolve_max_num_reqs`), for DeepSeek-V4
    min(256, capacity // 2) (its default, `DSV4_DEFAULT_MAX_RUNNING_REQUESTS`); so the command carries it only when
    one was given.

    Data parallelism (`--dp-size`, without DP attention): replicas of TP x PP GPUs each (sglang-0.5.23/sglang/srt/
    server_args.py:581-589 `compute_world_size` = dp x tp x pp), one scheduler and KV pool a replica
    (srt/runtime_context.py:202-207 `num_dp_ranks_of`: dp_size x attn_dp_size); the experts stay split by TP
    within a replica (srt/arg_groups/fields/parallel.py:343-347 moe_tp_size: tp after the EP and MoE-DP widths).
    DP attention (`--attn-dp-size`, the deprecated `--enable-dp-attention`) and `--ep-size` are not modelled
    (SGLANG_DP_ATTENTION says why)."""

    suggests_utilization = True
    options = frozenset(
        {GPU_MEMORY_UTILIZATION, MAMBA_FULL_MEMORY_RATIO_OPTION, MAX_MAMBA_CACHE_SIZE_OPTION, MAMBA_SSM_DTYPE_OPTION}
    )
    parallelism = frozenset({"dp"})
    serves_lora = True
    lora_defaults = (DEFAULT_MAX_LORAS_PER_BATCH, None)  # --max-lora-rank: read from --lora-paths (lora_hook.py:152)
    fp8_plan_value = "fp8_e4m3"  # SGLang's --kv-cache-dtype spelling
    utilization_help = "SGLang mem_fraction_static (default: its heuristic)"

    def running_cap(self, given: int | None, default: int, fit: Fit, context_len: int) -> tuple[int, str]:
        """SGLang has no fixed default: max_running_requests is derived from the token pool, and one given is
        lowered to half of it (sglang-0.5.23 srt/mem_cache/kv_cache_configurator.py:3119-3132
        `resolve_max_num_reqs`; DP attention, which divides it, is not modelled). DeepSeek-V4 has one: 256
        (`DSV4_DEFAULT_MAX_RUNNING_REQUESTS`), lowered to half the pool like one given."""
        half = fit.tokens // 2
        if given is None and isinstance(fit, Dsv4Fit):
            n = DSV4_DEFAULT_MAX_RUNNING_REQUESTS
            if n <= half:
                return n, "SGLang's max_running_requests {n} (" + _DSV4_DEFAULT + ")"
            return half, "SGLang's max_running_requests {n} (" + _DSV4_DEFAULT + ";" + _LOWERED
        if given is not None:
            cap, name = (
                (given, "{max_num_seqs} {n}")
                if given <= half
                else (half, "SGLang's max_running_requests {n} ({max_num_seqs} " + f"{given}" + _LOWERED)
            )
        else:
            estimated = max(min(int(fit.tokens / max(1, context_len) * 512), 4096), 2048)
            cap, name = min(estimated, half), "SGLang's max_running_requests {n} (" + _DERIVED
        pool = getattr(fit, "mamba", None)
        if pool is not None and pool.running_cap < cap:  # kv_cache_configurator.py:3134-3150
            return max(0, pool.running_cap), (
                "SGLang's max_running_requests {n} (capped by its Mamba state pool: max_mamba_cache_size "
                f"{pool.slots:,} // {pool.slots_per_request} state slots per request, sglang-0.5.23 "
                "srt/mem_cache/kv_cache_configurator.py:3134-3150)"
            )
        return cap, name

    def default_utilization(self, memory_bytes: int, tp: int, pp: int) -> float:
        return sglang_mem_fraction_static(memory_bytes, tp, pp)

    def utilization(self, inputs: UtilizationInputs) -> tuple[float, str]:
        """SGLang 0.5.23's default mem_fraction_static for this model (`sglang_fraction_for`) and its terms."""
        fraction = sglang_fraction_for(
            inputs.memory_bytes,
            inputs.tp,
            inputs.pp,
            inputs.config,
            inputs.shape,
            inputs.max_num_seqs,
            inputs.model,
            inputs.compute_capability,
        )
        return fraction.value, fraction.describe()

    def fit(self, inputs: FitInputs) -> Fit:
        """DeepSeek-V4: SGLang's DSV4 pools (`dsv4_pool`) on every pipeline stage of SGLang's own layer split
        (`sglang_pp_stages`), the token capacity the smallest stage's full pool (the PP ranks' MIN,
        mem_cache/kv_cache_configurator.py:3107-3116), in whole 256-token pages; requests of max_model_len at once
        = full tokens / max_model_len (the SWA pool, 0.1 of them, holds each request's window); the largest
        max_model_len one request may have is the pool's size (its request slots, --max-num-seqs or DeepSeek-V4's
        256, do not depend on the length). Other models: the per-token fit."""
        caches = inputs.shape.caches()
        if is_mamba_hybrid(inputs.shape):
            return self._hybrid_fit(inputs)
        if not any(isinstance(c, L.CompressedAttention) for c in caches):
            return super().fit(inputs)
        req, avail = inputs.request, max(0, inputs.available)
        inputs.storage.stage_costs(list(inputs.caches), req)  # the storage model's checks

        full = dsv4_tokens(inputs.shape, req, avail, inputs.max_num_seqs)
        fit_len = largest(lambda n: full >= n, inputs.limit)
        return Dsv4Fit(
            avail, full, full // DSV4_PAGE_SIZE, DSV4_PAGE_SIZE, full / req.seq_len, fit_len, full >= req.seq_len
        )

    def _hybrid_fit(self, inputs: FitInputs) -> SglangFit:
        """A Mamba / linear-attention hybrid: SGLang's state pool first, then its full-attention token pool from
        what is left (`sglang_hybrid_pool`, SGLang's PP split, the first-to-fill stage's MIN), in its pages
        (`hybrid_page_size`). Requests of max_model_len at once = min(tokens
        / max_model_len, max_mamba_cache_size // slots per request); the largest max_model_len one request may
        have is what the token pool holds. One request fits when SGLang starts (a state slot, a KV budget left,
        tokens) and the pool holds max_model_len."""
        req, shape = inputs.request, inputs.shape
        kinds = {c.kind for c in shape.caches()} - {L.STATE, L.NONE}
        if not kinds <= {L.FULL, L.MLA}:
            raise UsageError(
                "kvplan has not modelled SGLang's pools for a hybrid whose Mamba / linear-attention layers sit "
                f"beside {', '.join(sorted(kinds - {L.FULL, L.MLA}))} layers (SGLang builds its unified tri-pool "
                "for them: sglang-0.5.23 srt/mem_cache/kv_cache_configurator.py:609-619, :951-961)",
                hint=Text("use {engine} vllm for this model"),
                field="engine",
            )
        storage = inputs.storage
        if not isinstance(storage, SglangEngine):
            storage = SglangEngine(shape.architectures, shape.config_model_type or None)
        page = hybrid_page_size(shape.architectures, req.compute_capability, req.speculative is not None)
        pool = sglang_hybrid_pool(storage, shape, req, inputs.available, page)
        # SGLang starts with a state slot, a KV budget left, tokens and one running request (kv_cache_configurator.py
        # :3152-3160: max_running_requests 0 fails the start, `startup`)
        started = pool.slots > 0 and pool.kv_bytes > 0 and pool.tokens > 0 and pool.running_cap >= 1
        tokens = pool.tokens if started else 0
        fit_len = largest(lambda n: tokens >= n, inputs.limit) if started else 0
        concurrency = min(tokens / req.seq_len, pool.running_cap) if started else 0.0
        fits = started and tokens >= req.seq_len
        return SglangFit(max(0, inputs.available), tokens, tokens // page, page, concurrency, fit_len, fits, mamba=pool)

    def startup(self, inputs: StartupInputs) -> Startup | None:
        """A hybrid's start-up checks, in SGLang's words: no state slot (kv_cache_configurator.py:3392-3402), no
        budget left for the KV cache (:3043-3058, the message's first sentence), no token (pool_configurator.py
        :94-99) and no request (:3152-3160). None for the other models (not modelled)."""
        f = inputs.fit
        if not is_mamba_hybrid(f.shape):
            return None
        fit = self._hybrid_fit(f)
        pool = fit.mamba
        assert pool is not None
        error, rule = None, ""
        if pool.slots <= 0:
            error, rule = (
                f"Not enough GPU memory for hybrid (mamba/linear-attention) state cache. Computed "
                f"max_mamba_cache_size={pool.slots} (total_rest_memory={f.available / _GIB:.2f} GB, "
                f"mamba_cache_per_req={pool.slot_bytes / _MIB:.2f} MB).",
                "mamba_state",
            )
        elif pool.kv_bytes <= 0:
            error, rule = (
                "Loaded weights leave no GPU memory for the KV cache under "
                f"--mem-fraction-static={inputs.utilization}.",
                "no_memory",
            )
        elif pool.tokens <= 0:
            error, rule = "Not enough memory. Please try to increase --mem-fraction-static.", "no_memory"
        elif pool.running_cap <= 0:
            error, rule = (
                "Hybrid (mamba/linear-attention) state cache is too small to serve any requests. "
                f"max_mamba_cache_size={pool.slots}, mamba_ratio={pool.slots_per_request}, resulting "
                f"max_num_reqs={pool.running_cap}.",
                "mamba_state",
            )
        per_request = self.request_kv_bytes(f.storage, f.shape, f.request)
        return Startup(error, rule, {}, (), per_request, fit.fit_len, pool.slots)

    def speculative(self, inputs: SpeculativeInputs) -> Speculative:
        """SGLang's draft KV pool for EAGLE / EAGLE3 / NEXTN (vLLM's mtp) / STANDALONE (draft_model): as many token
        slots as the target's, each of `eagle_draft_num_layers` target-sized layers (srt/model_executor/
        model_runner_components/spec_aux_hidden_state.py:150-177: the draft's num_nextn_predict_layers, else its
        max(num_hidden_layers, num_attention_layers); path-less MTP: the target's num_nextn_predict_layers). Modelled
        for targets of full attention or MLA only (DefaultPoolConfigurator, pool_configurator.py:259-313); the
        drafter's weights and SGLang's speculative Mamba states are not counted."""
        setup, shape = inputs.setup, inputs.shape
        left_out = "the drafter's weights are not counted (SGLang loads them beside its pool)"
        if any(isinstance(c, L.CompressedAttention) for c in shape.caches()):
            if setup.method not in ("mtp", "eagle", "eagle3", "draft_model"):
                return replace(
                    setup,
                    notes=(f"SGLang's {setup.method} drafting is not modelled for DeepSeek-V4: {left_out}",),
                )
            return replace(
                setup,
                draft_caches=(),
                notes=(
                    "SGLang's DSV4 pools reserve the draft worker by inflating the per-token bytes by (layers + 1) / "
                    "layers, and widen the compress-state rings to 16 (C4) and 256 (C128) rows "
                    f"({_DSV4_SOURCE}:1248-1256; mem_cache/deepseek_v4_memory_pool.py:60-79); {left_out}",
                ),
            )
        kinds = {c.kind for c in shape.caches()}
        sparse = any(isinstance(c, L.MlaLatent) and c.sparse for c in shape.caches())
        if setup.method not in ("mtp", "eagle", "eagle3", "draft_model") or sparse or not kinds <= {L.FULL, L.MLA}:
            states = (
                "; and SGLang solves its Mamba pool jointly with the speculative intermediate states (slot x "
                "(1 + draft tokens / slots per request) a state slot, sglang-0.5.23 srt/mem_cache/"
                "kv_cache_configurator.py:3359-3378), which kvplan's split leaves out: its state slots and tokens "
                "are above SGLang's"
                if is_mamba_hybrid(shape)
                else ""
            )
            return replace(
                setup,
                notes=(
                    f"SGLang's {setup.method} drafting is not modelled for this model (kvplan models SGLang's EAGLE / "
                    "NEXTN / STANDALONE draft pool of full-attention and MLA targets): the drafter's KV pool and "
                    "weights are left out" + states,
                ),
            )
        if setup.method == "mtp":
            count = text_config_value(inputs.config, "num_nextn_predict_layers")
        elif inputs.draft_config is not None:
            count = text_config_value(inputs.draft_config, "num_nextn_predict_layers")
            if count is None and inputs.draft_shape is not None:
                count = inputs.draft_shape.num_layers
        else:
            count = None
        if not isinstance(count, int) or isinstance(count, bool) or count <= 0:
            why = inputs.draft_error or "no num_nextn_predict_layers / draft layers to size the draft pool by"
            return replace(setup, notes=(f"SGLang's draft KV pool is not counted ({why}); {left_out}",))
        layer = next(c for c in shape.caches() if c.kind in (L.FULL, L.MLA))
        return replace(
            setup,
            draft_caches=(layer,) * count,
            notes=(
                f"SGLang's draft KV pool: {count} target-sized layer(s) per token slot (srt/model_executor/"
                f"pool_configurator.py:259-313); {left_out}",
            ),
        )

    def budget(self, b: BudgetInputs) -> tuple[list[BudgetTerm], int]:
        usable = int(b.profile.memory_bytes * b.utilization)
        terms = [
            BudgetTerm(
                "total_x_mem_fraction_static",
                usable,
                f"{b.profile.id} memory x mem_fraction_static {b.utilization}"
                + (f" ({b.utilization_source})" if b.utilization_source else ""),
            ),
            BudgetTerm("weights", -b.weights_per_gpu, f"weights / (tp x pp) = / {b.tp * b.pp}"),
        ]
        if b.encoder_weights:  # SGLang builds the towers with the language model (srt/models/gemma3_mm.py:185-191)
            terms.append(
                BudgetTerm(
                    "multimodal_weights",
                    -(b.encoder_weights // b.tp),
                    f"vision tower + projector from the config (kvplan.weights.encoders) / tp {b.tp}; SGLang builds "
                    "them beside the language model (sglang-0.5.23 srt/models/gemma3_mm.py:185-191) unless it "
                    "serves the language model alone (srt/configs/model_config.py:909 language_only)"
                    + (
                        "; Gemma 3's wrapper builds and loads them even with multimodal off, SGLang's default for it "
                        "(configs/model_config.py:690-705; --enable-multimodal turns image input on)"
                        if (b.config.get("architectures") or [""])[0] == "Gemma3ForConditionalGeneration"
                        else ""
                    ),
                )
            )
        if b.lora is not None:
            lora, source = lora_bytes(b, b.lora)
            terms.append(BudgetTerm("lora", -lora, source))
        if sglang_multimodal(b.config):
            terms.append(
                BudgetTerm(
                    "multimodal_reservation",
                    -SGLANG_VLM_CACHE_SIZE_MB * _MIB,
                    f"SGLANG_VLM_CACHE_SIZE_MB {SGLANG_VLM_CACHE_SIZE_MB} (environ.py:1598) reserved out of the KV "
                    "budget for a multimodal model's embedding cache (sglang-0.5.23 srt/mem_cache/"
                    "kv_cache_configurator.py:202-219 mm_runtime_reservation_gb, :3034-3038; CPU feature transport, "
                    "the default off GB200/GB300 MNNVL)",
                )
            )
        return terms, sum(t.bytes for t in terms)

    def budget_notes(self, b: BudgetInputs) -> list[str]:
        if not any(isinstance(c, L.CompressedAttention) for c in b.shape.caches()):
            return []
        draft = b.speculative.num_speculative_tokens + 1 if b.speculative is not None else 0
        return dsv4_notes(b.shape, b.pp, draft)

    def layout_notes(self, layout: Layout) -> list[str]:
        if layout.dp <= 1:
            return []
        return [
            f"each of the {layout.dp} data-parallel replicas runs its own scheduler and KV pool on TP x PP GPUs; "
            "requests are split over them (SGLang's DP attention and --ep-size are not modelled)"
        ]

    def lora_host_bytes(self, b: BudgetInputs) -> tuple[int, str] | None:
        """The adapters SGLang keeps loaded on the CPU: --max-loaded-loras of them at max_lora_rank (None when it is
        not given: SGLang keeps every adapter of --lora-paths and those loaded later, which kvplan does not know)."""
        lora = b.lora
        if lora is None or lora.max_cpu_loras is None:
            return None
        modules = decoder_modules(b.config, b.shape)
        chosen = [m for m in modules if lora.target_modules is None or m.name in lora.target_modules]
        dtype = b.dtype  # the model dtype: model_runner.py:1450-1456 LoRAManager(dtype=self.dtype); no --lora-dtype
        per = sum(m.elements(lora.max_lora_rank) for m in chosen) * b.shape.num_layers
        total = int(lora.max_cpu_loras * per * DTYPE_BYTES[dtype])
        return total, (
            f"{lora.max_cpu_loras} adapters (--max-loaded-loras) x rank {lora.max_lora_rank} x {len(chosen)} modules x "
            f"{b.shape.num_layers} layers in {short_dtype(dtype)}, per worker (srt/lora/lora.py:178-196 keeps "
            "adapter weights on the CPU); an upper bound: adapters of a lower rank hold less"
        )

    def command(self, f: FlagInputs) -> str:
        line = (
            f"python -m sglang.launch_server --model-path {f.model} --context-length {f.max_model_len} --tp-size {f.tp}"
        )
        if f.pp > 1:
            line += f" --pp-size {f.pp}"
        if f.planned:
            line += f" --mem-fraction-static {f.utilization}"
        if f.planned and f.layout.dp > 1:  # replicas (the other engines' commands are printed without their DP)
            line += f" --dp-size {f.layout.dp}"
        if f.max_num_seqs_given:  # a cap; without one SGLang derives its own from the token pool
            line += f" --max-running-requests {f.max_num_seqs}"
        if f.planned and f.mamba_full_memory_ratio is not None:
            line += f" --mamba-full-memory-ratio {f.mamba_full_memory_ratio:g}"
        if f.planned and f.max_mamba_cache_size is not None:
            line += f" --max-mamba-cache-size {f.max_mamba_cache_size}"
        if f.planned and f.mamba_ssm_dtype is not None:
            line += f" --mamba-ssm-dtype {f.mamba_ssm_dtype}"
        line += f.offload_flags
        spelling = KV_CACHE_DTYPES.get(f.kv_dtype)
        auto = auto_kv_dtype(f.budget.shape, f.budget.profile.compute_capability) or f.model_dtype  # what auto runs
        if f.kv_dtype == "bfloat16" and auto != "bfloat16":
            spelling = "bf16"  # a bf16 cache auto would not give (srt/mem_cache/kv_cache_dtype.py:49-59, :74-75)
        if spelling:
            line += f" --kv-cache-dtype {spelling}"
        comment = ""
        if f.speculative is not None:
            flags, comment = speculative_flags(f.speculative)
            line += flags
        lora_line, _, lora_comment = lora_flags(f.budget.lora).partition("  # ")
        line += lora_line
        if lora_comment:
            comment = f"{comment}; {lora_comment}" if comment else lora_comment
        if f.kv_dtype == "float16" and auto != "float16":
            comment = (
                f"SGLang has no fp16 --kv-cache-dtype: auto runs {short_dtype(auto)} here (srt/mem_cache/"
                "kv_cache_dtype.py:49-59)" + (f"; {comment}" if comment else "")
            )
        if not spelling and f.kv_dtype not in ("float16", "bfloat16"):
            comment = (
                f"SGLang has no {short_dtype(f.kv_dtype)} KV cache (--kv-cache-dtype: "
                f"{', '.join(KV_CACHE_DTYPES.values())})" + (f"; {comment}" if comment else "")
            )
        return line + (f"  # {comment}" if comment else "")


def text_config_value(config: dict, key: str) -> object:
    """A key of the config's text model (SGLang's ModelConfig reads hf_text_config, configs/model_config.py:1602)."""
    return text_config(config).get(key)


# SGLang's --speculative-algorithm -> vLLM's method, the one description kvplan plans with (EAGLE without a draft
# path is the checkpoint's own MTP/NEXTN head: NEXTN is EAGLE's alias, srt/arg_groups/cp_tp_group_sharing_hook.py:59)
_SGLANG_METHODS = {"EAGLE": "eagle", "EAGLE3": "eagle3", "NEXTN": "mtp", "STANDALONE": "draft_model", "NGRAM": "ngram"}


def speculative_flags(spec: Speculative) -> tuple[str, str]:
    """(flags, comment): the setup as SGLang's options, the inverse of `speculative_from_args` (a chain of
    num_speculative_tokens steps: --speculative-eagle-topk 1, num_steps + 1 draft tokens); a comment for a method
    SGLang has no spelling for here."""
    algorithm = {value: key for key, value in _SGLANG_METHODS.items() if key != "EAGLE"}.get(spec.method)
    if spec.method == "eagle":
        algorithm = "EAGLE"
    if algorithm is None:
        return "", f"speculative method {spec.method}: set SGLang's --speculative-* options yourself"
    n = spec.num_speculative_tokens
    flags = f" --speculative-algorithm {algorithm}"
    if algorithm != "NGRAM":
        flags += f" --speculative-num-steps {n} --speculative-eagle-topk 1 --speculative-num-draft-tokens {n + 1}"
    if spec.model:
        flags += f" --speculative-draft-model-path {spec.model}"
    return flags, ""


def speculative_from_args(args: Mapping[str, Any]) -> dict[str, tuple[object, str]]:
    """SGLang's speculative_* server arguments as a `speculative_config` plan entry (vLLM's JSON): the algorithm's
    method (EAGLE with no --speculative-draft-model-path: mtp), num_speculative_tokens = --speculative-num-steps
    (a chain: --speculative-num-draft-tokens - 1 without it; 1 when neither is given, which SGLang's pool does not
    depend on), model = the draft path. {} without an algorithm kvplan maps."""
    algorithm = str(args.get("speculative_algorithm") or "").strip().upper()
    method = _SGLANG_METHODS.get(algorithm)
    if method is None:
        return {}
    path = args.get("speculative_draft_model_path")
    if method == "eagle" and not path:
        method = "mtp"
    steps, draft_tokens = args.get("speculative_num_steps"), args.get("speculative_num_draft_tokens")
    try:
        tokens = int(steps) if steps is not None else (int(draft_tokens) - 1 if draft_tokens is not None else 1)
    except (TypeError, ValueError):
        return {}  # left for the plan reader's notes: an unreadable count is not guessed
    setup: dict[str, object] = {"method": method, "num_speculative_tokens": tokens}
    if path:
        setup["model"] = path
    return {"speculative_config": (json.dumps(setup), "speculative_algorithm")}


# ------------------------------------------------------------------------------------ config files (server args)

# Why kvplan does not plan SGLang 0.5.23's DP attention and expert parallelism. DP attention (`--attn-dp-size N`,
# or `--dp-size N --enable-dp-attention`, which resolves to attn_dp_size N and dp_size 1: srt/arg_groups/fields/
# parallel.py:81-90, :192-194) runs N attention groups inside the TP group, each with its own scheduler and KV pool
# (runtime_context.py:202-207), the attention weights and KV heads split by attention-TP = tp / N (:186-188,
# fields/parallel.py:317-320) while the FFN stays tensor parallel (:84-86); `--ep-size` places the routed experts
# on EP ranks, the MoE's TP what is left of tp (:339-347, runtime_context.py:215-222). kvplan's weight count can
# tell the attention matmuls apart (kvplan.planning.envelope reads them by name), but its SGLang model has one KV
# pool split by TP and one weights term / (tp x pp); the per-GPU bytes under DP attention also turn on
# --moe-dense-tp-size and --enable-dp-lm-head (fields/parallel.py:199-205, :289-296) and on each model file's own
# choice for the input embedding (srt/models/qwen2_moe.py:1115-1121 splits it over the attention-TP group under DP
# attention; deepseek_v2.py:2943-2947 takes layers/vocab_parallel_embedding.py:166-178 get_embedding_tp_kwargs,
# replicated under SGLANG_ENABLE_EMBED_REPLICATION), which kvplan has no per-model table of.
SGLANG_DP_ATTENTION = (
    "SGLang's DP attention (attn_dp_size N: N KV pools inside the TP group, attention weights and KV heads split "
    "by tp / N) and --ep-size (experts whole on EP ranks) are not modelled: kvplan's SGLang budget divides every "
    "weight by TP x PP and holds one KV pool split by TP, and SGLang's split of the embedding and dense layers "
    "under DP attention is each model file's own, so with them the figures are not SGLang's"
)

CONFIG = ConfigVocabulary(
    keys={
        **COMMON_CONFIG_KEYS,
        "model_path": "model",
        "model": "model",
        "context_length": "max_model_len",
        "tp_size": "tensor_parallel_size",
        "tp": "tensor_parallel_size",
        "pp_size": "pipeline_parallel_size",
        "mem_fraction_static": "gpu_memory_utilization",
        "max_running_requests": "max_num_seqs",
        # the HiCache host pool (kvplan.engines.offload.hicache_tier); --enable-hierarchical-cache alone (the
        # default ratio 2.0, auto-sized to the host: srt/mem_cache/hicache_auto_size.py) stays unmodelled
        "hicache_ratio": "hicache_ratio",
        "hicache_size": "hicache_size",
        "enable_lora": "enable_lora",
        "max_loras_per_batch": "max_loras",
        "max_lora_rank": "max_lora_rank",
        "max_loaded_loras": "max_cpu_loras",
        "lora_target_modules": "lora_target_modules",
        # a hybrid's state / full-attention split (sglang_mamba_pool)
        "mamba_full_memory_ratio": "mamba_full_memory_ratio",
        "max_mamba_cache_size": "max_mamba_cache_size",
        "mamba_ssm_dtype": "mamba_ssm_dtype",
    },
    memory_keys=(
        "max_total_tokens",
        "chunked_prefill_size",
        "max_prefill_tokens",
        "page_size",
        "cuda_graph_max_bs",
        "cuda_graph_bs",
        "disable_cuda_graph",
        "quantization",
        "enable_dp_attention",
        "dp_size",
        "dp",
        "speculative_algorithm",
        "speculative_draft_model_path",
        "speculative_num_steps",
        "speculative_eagle_topk",
        "speculative_num_draft_tokens",
        "enable_mixed_chunk",
        "torch_compile_max_bs",
        "enable_torch_compile",
        "json_model_override_args",
        "swa_full_tokens_ratio",
        "ep_size",
        "expert_parallel_size",
        "attn_dp_size",  # DP attention (SGLANG_DP_ATTENTION)
        "attention_data_parallel_size",
        "moe_dense_tp_size",
        "enable_dp_lm_head",
        "enable_ep_moe",
        "lora_paths",
        "enable_hierarchical_cache",
        "cpu_offload_gb",
    ),
    detect=lambda keys: bool(
        keys & {"model_path", "context_length", "mem_fraction_static", "tp_size", "max_running_requests"}
    ),
    describes="SGLang server arguments",
    parallel_note=SGLANG_DP_ATTENTION,
    combine=lambda args: speculative_from_args(args),
)


def estimate_notes(storage: object, shape: ModelShape, req: Request, kinds: frozenset) -> tuple[str, ...]:
    """DeepSeek-V4: the DSV4 pools' coefficient, pages and per-slot c128 state (`dsv4_notes`) and SGLang's own KV
    dtype. SGLang 0.5.23 keeps pool rows for Gemma 4's KV-sharing layers: their ids stay in the SWA / full layer lists
    the pool is sized by (configs/model_config.py:2753-2770, model_executor/pool_configurator.py:666-667,
    mem_cache/swa_memory_pool.py:54-56), though they never write them (models/gemma4_causal.py:427-436, :540)."""
    if any(isinstance(c, L.CompressedAttention) for c in shape.caches()):
        return (
            *dsv4_notes(shape, req.pp, SglangEngine._draft_tokens(req)),
            "SGLang runs DeepseekV4ForCausalLM with an fp8_e4m3 cache when --kv-cache-dtype is auto "
            "(srt/arg_groups/overrides.py:892-913) and sizes the same FlashMLA V4 layout for bfloat16",
        )
    notes = auto_kv_notes(shape, req) + (nvfp4_notes(shape, req) if req.kv_dtype == "nvfp4" else ())
    notes += fp4_mx_notes(shape, req) if req.kv_dtype == "fp4_mx_block16" else ()
    index_keys = [c for c in shape.caches() if isinstance(c, L.IndexKeys)]
    if index_keys:
        gpu = "" if req.compute_capability or req.kv_dtype != "fp8_e4m3" else " (no GPU given: Hopper's rule taken)"
        return (
            *notes,
            f"MiniMax-M3: MiniMaxSparseKVPool, GQA K/V on every layer plus an indexer key of {index_keys[0].head_dim} "
            f"elements per token on the {len(index_keys)} sparse layers, on every TP rank, in "
            f"{'fp8' if SglangEngine._minimax_index_key_bytes(req) == 1 else short_dtype(req.model_dtype)}{gpu}: fp8 "
            "only with an fp8_e4m3 cache on Hopper or SM100 (mem_cache/memory_pool.py:5831-5844)",
        )
    if KV_SHARED_LAYERS not in shape.features:
        return notes
    shared = sum(isinstance(c, L.NoCache) for c in shape.caches())
    return (
        *notes,
        f"SGLang also sizes its pool for the {shared} KV-sharing layers (they write nothing there); kvplan counts "
        "them as 0 B, so SGLang's pool per token is larger than this estimate",
    )


# The architectures whose DeepSeek-style sparse (DSA) MLA SGLang 0.5.23 gives its own `auto` KV dtype: those of
# _DEEPSEEK_FAMILY_ARCHS (srt/arg_groups/overrides.py:745-760) that is_deepseek_dsa also names (srt/configs/
# model_config.py:191-211, with index_topk: kvplan's sparse MLA), checked by `_dsa_kv_cache_dtype_default`
# (overrides.py:490-547) on architectures[0].
SGLANG_DSA_AUTO_ARCHS = frozenset(SGLANG_DEEPSEEK_FAMILY) - {"KimiK25ForConditionalGeneration"}  # not is_deepseek_dsa's


def auto_kv_dtype(shape: ModelShape, compute_capability: str | None = None, release: str | None = None) -> str | None:
    """SGLang 0.5.23's `--kv-cache-dtype auto` where the model, checkpoint or GPU decides (None: the model dtype,
    srt/mem_cache/kv_cache_dtype.py:58-59):
    - a DSA model of the DeepSeek family (`SGLANG_DSA_AUTO_ARCHS`, sparse MLA): fp8_e4m3 on SM100 and up without
      learnable attention sinks, else bfloat16 (overrides.py:532-536, set as a server argument before the model
      loads, so it wins over the checkpoint's); without a GPU kvplan takes Hopper's bfloat16, as its DSA cell takes
      Hopper's backend;
    - a checkpoint whose quantization config asks for an FP8 KV cache (`CHECKPOINT_FP8_KV`): fp8_e4m3
      (kv_cache_dtype.py:49-57, float8_e4m3fn on CUDA, the same byte on HIP);
    - DeepseekV4ForCausalLM: fp8_e4m3 on CUDA (overrides.py:898-903 `_deepseek_v4_kv_cache_dtype`; the pool is the
      same FlashMLA V4 layout for bfloat16, pool_configurator.py:1353-1370, so only the dtype named changes)."""
    arch = shape.architectures[0] if shape.architectures else None
    if arch == "DeepseekV4ForCausalLM":
        return "fp8_e4m3"
    if arch in SGLANG_DSA_AUTO_ARCHS and any(isinstance(c, L.MlaLatent) and c.sparse for c in shape.caches()):
        major = _major(compute_capability)
        return "fp8_e4m3" if major is not None and major >= 10 and LEARNABLE_SINK not in shape.features else "bfloat16"
    return "fp8_e4m3" if CHECKPOINT_FP8_KV in shape.features else None


def auto_kv_notes(shape: ModelShape, req: Request) -> tuple[str, ...]:
    arch = shape.architectures[0] if shape.architectures else None
    if arch in SGLANG_DSA_AUTO_ARCHS and any(isinstance(c, L.MlaLatent) and c.sparse for c in shape.caches()):
        where = (
            "no GPU given: Hopper's"
            if req.compute_capability is None
            else f"compute capability {req.compute_capability}"
        )
        return (
            f"SGLang's --kv-cache-dtype auto for {arch}'s DSA layers is fp8_e4m3 on SM100 and up (without learnable "
            f"attention sinks), else bfloat16 (sglang-0.5.23 srt/arg_groups/overrides.py:532-536); {where}",
        )
    if CHECKPOINT_FP8_KV not in shape.features or req.kv_dtype != "fp8_e4m3":
        return ()
    return (
        "this checkpoint's quantization_config asks for an FP8 KV cache (kv_cache_scheme float 8 bits / "
        "kv_cache_quant_algo FP8), so SGLang's --kv-cache-dtype auto runs fp8_e4m3 (sglang-0.5.23 "
        "srt/mem_cache/kv_cache_dtype.py:49-57); pass --kv-dtype bf16 for SGLang's bf16 cache",
    )


def nvfp4_notes(shape: ModelShape, req: Request) -> tuple[str, ...]:
    """How the nvfp4 figures were sized: the GPU's path (SM100 without a GPU) and what SM120 adds."""
    full = next((c for c in shape.caches() if isinstance(c, L.FullAttention)), None)
    if full is None:
        return ()
    heads = kv_heads_per_rank(full.num_kv_heads, req.tp)
    where = (
        "SM100 (B200 / B300; no GPU given)"
        if req.compute_capability is None
        else ("SM100" if nvfp4_sm100(req.compute_capability) else f"SM{str(req.compute_capability).replace('.', '')}")
    )
    hybrid = any(isinstance(c, L.RecurrentState) for c in shape.caches())
    backend = fp4_attention_backend(shape.architectures, hybrid, req)
    layouts, prefill_workspace = nvfp4_path(backend, req.compute_capability)
    workspace = heads * full.head_dim_k * 2 if prefill_workspace else 0
    backends = (
        f"prefill on FlashInfer over a {workspace} B fp8 dequant workspace per token, decode on trtllm_mha"
        if workspace
        else "prefill and decode on trtllm_mha reading the FP4 cache itself"
    )
    scales = "one fp8_e4m3 scale" if layouts == 1 else f"{layouts} fp8_e4m3 scales (native and token-linear layouts)"
    text = (
        f"SGLang's nvfp4 KV cache as on {where}: per layer and token K and V of {heads} head(s) x "
        f"{full.head_dim_k // 2} B of FP4 plus {scales} per {NVFP4_SCALE_BLOCK} values "
        f"({nvfp4_layer_bytes(heads, full.head_dim_k, layouts)} B); {backends} (sglang-0.5.23 "
        "srt/layers/quantization/fp4_kv_cache_quant_method.py:744-768, srt/arg_groups/kv_cache_hook.py:47-89)"
    )
    if hybrid:
        text += (
            "; the full-attention layers of this hybrid model only (HybridLinearKVPool, srt/mem_cache/"
            "kv_cache_configurator.py:2656-2658), its Mamba state in its own dtypes"
            + (f", on the {backend} backend its model override sets" if backend else "")
        )
    if not workspace and backend is None:
        text += (
            "; on SM120 (RTX PRO 6000, RTX 5090) SGLang prefills with FlashInfer over an fp8 dequant workspace, "
            f"{heads * full.head_dim_k * 2} B more per token"
        )
    return (text,)


def fp4_mx_notes(shape: ModelShape, req: Request) -> tuple[str, ...]:
    """How the fp4_mx_block16 figures were sized: SM100's default backend (also without a GPU), the bytes of a
    layer, and the flag the other GPUs need."""
    where = "SM100 (B200 / B300; no GPU given)" if req.compute_capability is None else "SM100"
    mla = next((c for c in shape.caches() if isinstance(c, L.MlaLatent)), None)
    if mla is not None:
        dim = mla.kv_lora_rank + mla.rope_head_dim
        return (
            f"SGLang's fp4_mx_block16 MLA cache (MLATokenToKVPoolFP4) as on {where}, on the flashinfer MLA backend it "
            f"picks there: per layer and token the {dim}-value latent at half a byte plus {dim // FP4_MX_SCALE_BLOCK} "
            f"uint8 scales ({fp4_mla_layer_bytes(mla.kv_lora_rank, mla.rope_head_dim)} B; sglang-0.5.23 "
            "srt/model_executor/pool_configurator.py:379-393, srt/arg_groups/model_override_base.py:339-340); Hopper "
            "(fa3) and SM120 (triton) need --attention-backend flashinfer (srt/arg_groups/kv_cache_hook.py:297-305)",
        )
    full = next((c for c in shape.caches() if isinstance(c, L.FullAttention)), None)
    if full is None:
        return ()
    heads = kv_heads_per_rank(full.num_kv_heads, req.tp)
    return (
        f"SGLang's fp4_mx_block16 KV cache as on {where}, on the trtllm_mha backend it picks there: per layer and "
        f"token K and V of {heads} head(s) x {full.head_dim_k // 2} B of FP4 plus one uint8 scale per "
        f"{FP4_MX_SCALE_BLOCK} values ({fp4_mx_layer_bytes(heads, full.head_dim_k)} B), no dequant workspace "
        "(sglang-0.5.23 srt/layers/quantization/fp4_kv_cache_quant_method.py:897-914, srt/arg_groups/"
        "model_override_base.py:312-325); Hopper (fa3) and SM120 (flashinfer) need --attention-backend triton "
        "(srt/arg_groups/kv_cache_hook.py:306-316)",
    )


ENTRY = EngineEntry(
    name="sglang",
    display="SGLang",
    metrics={
        "running": "sglang:num_running_reqs",
        "kv_cache_usage": "sglang:token_usage",
        "waiting": "sglang:num_queue_reqs",
        "source": "sglang-0.5.23/sglang/srt/observability/metrics_collector.py:365 (running), :405 (token_usage: "
        "the fullest KV pool's used / total, :89-97), :371 (queue); label model_name (:1383)",
    },
    storage=lambda shape: SglangEngine(shape.architectures, shape.config_model_type or None, shape.features),
    serving=SglangServing(),
    config=CONFIG,
    plannable=True,
    splits_heads=True,
    serves_fp32_in_16bit=True,
    kv_auto_for=auto_kv_dtype,
    kv_own=("fp4_mx_block16",),
    estimate_notes=estimate_notes,
)
