"""How TensorRT-LLM's paged KV cache stores a model (`KvCacheConfig`, kvplan notes "TensorRT-LLM").

- Pages of `tokens_per_block` tokens (default 32, `KvCacheConfig.tokens_per_block`); one request of L tokens
  holds cdiv(L, tokens_per_block) pages in every attention layer.
- Per layer and token on one TP rank: K and V of `max(1, kv_heads / tp)` heads (trtllm-bench's
  `2 x layers x max(tp, kv_heads) x head_size` over all ranks), in the KV dtype: fp16/bf16 2 bytes,
  fp8/int8 1 byte, nvfp4 half a byte plus one fp8 scale per 16 values. MLA models store the latent
  (kv_lora_rank + qk_rope_head_dim), replicated on each rank.
- Sliding windows only shrink the cache when `max_attention_window` is configured (VSWA pools); kvplan
  follows the default, which caches every token. Mamba states: one per sequence, in the model dtype (a Mamba2
  SSM state in the config's `mamba_ssm_cache_dtype` where it names one: Nemotron-H's float32).
- TRT-LLM logs the token count before rounding up to whole blocks ("Allocated 4.53 GiB for max tokens in paged
  KV cache (395776)", TensorRT-LLM #1188; checked in tests/test_calibration.py).

Below the storage model: its serving model (TensorRtLlmServing: free_gpu_memory_fraction of the memory left
after loading, `trtllm-serve` flags) and its registry entry (ENTRY).
"""

from __future__ import annotations

from fractions import Fraction

from kvplan.core import specs as L
from kvplan.core.config import vocab_size
from kvplan.core.units import DTYPE_BYTES, cdiv, short_dtype
from kvplan.engines.base import KindCost, Request, group_costs, kv_heads_per_rank, refuse_compressed_attention
from kvplan.engines.entry import EngineEntry
from kvplan.engines.serving import (
    BLOCK_SIZE,
    GPU_MEMORY_UTILIZATION,
    BudgetInputs,
    BudgetTerm,
    FlagInputs,
    ServingModel,
)
from kvplan.errors import Text, UsageError

DEFAULT_TOKENS_PER_BLOCK = 32
FREE_GPU_MEMORY_FRACTION = 0.9  # KvCacheConfig.free_gpu_memory_fraction default


class TensorRtLlmEngine:
    name = "tensorrt-llm"
    follows = "TensorRT-LLM KvCacheConfig (tokens_per_block 32, no max_attention_window)"

    def check(self, caches: list[L.Layer], req: Request) -> None:
        if any(isinstance(c, L.MlaLatent) and c.sparse for c in caches):  # DeepSeek V3.2, GLM-5 (DSA indexer)
            raise UsageError(
                "kvplan has not read how TensorRT-LLM stores sparse-attention (DSA) models' latent and indexer keys",
                hint=Text("use {engine} vllm, sglang or transformers for this model"),
                field="engine",
            )
        if any(isinstance(c, L.RecurrentState) and c.family in ("kda", "lightning") for c in caches):
            raise UsageError(
                "kvplan has not read how TensorRT-LLM stores Kimi's KDA or MiniMax-01's lightning-attention state",
                hint=Text("use {engine} vllm, sglang or transformers for this model"),
                field="engine",
            )
        refuse_compressed_attention("TensorRT-LLM", caches)
        if req.kv_dtype not in ("float32", "float16", "bfloat16", "fp8_e4m3", "int8", "nvfp4"):
            raise UsageError(
                f"TensorRT-LLM has no {req.kv_dtype} KV cache",
                hint=Text("use {kv_dtype} auto, fp8, int8 or nvfp4"),
                field="kv_dtype",
            )

    def block_size(self, caches: list[L.Layer], req: Request) -> int:
        return req.block_size or DEFAULT_TOKENS_PER_BLOCK

    def token_bytes(self, cache: L.KVAttention | L.MlaLatent, req: Request) -> int:
        if isinstance(cache, L.MlaLatent):
            return int(cache.latent_elements() * DTYPE_BYTES[req.kv_dtype])
        heads = kv_heads_per_rank(cache.num_kv_heads, req.tp)
        if req.kv_dtype == "nvfp4":
            return heads * sum(d // 2 + d // 16 for d in (cache.head_dim_k, cache.head_dim_v))
        return int(cache.bytes_per_token(DTYPE_BYTES[req.kv_dtype], heads))

    def stage_costs(self, caches: list[L.Layer], req: Request) -> list[KindCost]:
        self.check(caches, req)
        block = self.block_size(caches, req)
        tokens = cdiv(req.seq_len, block) * block
        items: list[tuple[str, int, Fraction, int | None]] = []
        for cache in caches:
            if isinstance(cache, (L.KVAttention, L.MlaLatent)):
                per_token = self.token_bytes(cache, req)
                items.append((cache.kind, per_token * tokens * req.batch, Fraction(per_token), tokens))
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


class TensorRtLlmServing(ServingModel):
    options = frozenset({GPU_MEMORY_UTILIZATION, BLOCK_SIZE})
    summary = "tensorrt-llm (free_gpu_memory_fraction 0.9 of the memory left after loading)"
    utilization_help = "TensorRT-LLM free_gpu_memory_fraction (default 0.9)"

    def default_utilization(self, memory_bytes: int, tp: int, pp: int) -> float:
        return FREE_GPU_MEMORY_FRACTION

    def budget(self, b: BudgetInputs) -> tuple[list[BudgetTerm], int]:
        runtime = runtime_bytes(b.config)
        free = b.profile.memory_bytes - b.weights_per_gpu - runtime
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
            BudgetTerm(
                "free_fraction",
                kept - max(0, free),
                f"keeps (1 - free_gpu_memory_fraction {b.utilization}) of the memory free after loading",
            ),
        ]
        return terms, kept

    def token_block(self, block_size: int | None) -> int:
        return block_size or 1  # tokens_per_block

    def command(self, f: FlagInputs) -> str:
        line = f"trtllm-serve {f.model} --tp_size {f.tp} --pp_size {f.pp} --max_seq_len {f.max_model_len} --max_batch_size {f.max_num_seqs}"
        if f.planned:
            line += f" --kv_cache_free_gpu_memory_fraction {f.utilization}"
        if f.kv_dtype not in ("float16", "bfloat16"):  # not an option of trtllm-serve (commands/serve.py)
            line += (
                f"  # KV dtype {short_dtype(f.kv_dtype)}: trtllm-serve has no option for it; set kv_cache_config's "
                "dtype in the YAML file given to --config"
            )
        return line


ENTRY = EngineEntry(
    name="tensorrt-llm",
    aliases=("trtllm", "trt-llm", "tensorrt_llm"),
    display="TensorRT-LLM",
    storage=lambda shape: TensorRtLlmEngine(),
    serving=TensorRtLlmServing(),
    plannable=True,
    splits_heads=True,
)
