"""How SGLang sizes its KV pool: per token, no pages (`model_runner.py` `cell_size`).

- full attention: K and V of `max(1, kv_heads // tp)` heads per layer on each TP rank;
- MLA: one latent of `kv_lora_rank + qk_rope_head_dim` per layer, replicated on every TP rank;
- sliding-window layers live in a separate SWA pool that frees tokens outside the window: a sequence keeps at
  most `window` tokens there;
- Mamba-style states: a per-request pool; conv state `(conv_kernel - 1) x channels` in the model dtype,
  SSM state in float32 (SGLang's `--mamba-ssm-dtype` default);
- KV dtypes: auto, bf16, fp16, fp32, fp8_e4m3, fp8_e5m2 (no scales stored).

Below the storage model: its serving model (SglangServing: mem_fraction_static budget, per-token fit, server
flags), the vocabulary of its server-argument files (CONFIG) and its registry entry (ENTRY).
"""

from __future__ import annotations

from fractions import Fraction

from kvplan.core import specs as L
from kvplan.core.units import DTYPE_BYTES
from kvplan.engines.base import (
    KindCost,
    Request,
    group_costs,
    kv_heads_per_rank,
    refuse_compressed_attention,
    window_tokens,
)
from kvplan.engines.entry import COMMON_CONFIG_KEYS, ConfigVocabulary, EngineEntry
from kvplan.engines.serving import BudgetInputs, BudgetTerm, FlagInputs, ServingModel
from kvplan.errors import Text, UsageError


class SglangEngine:
    name = "sglang"
    follows = "SGLang 0.5 (model_runner cell_size, SWA and Mamba pools)"

    def check(self, caches: list[L.Layer], req: Request) -> None:
        # SGLang 0.5.23 serves DeepSeek-V4 with its own pools (srt/layers/attention/deepseek_v4_backend.py)
        refuse_compressed_attention("SGLang", caches)
        if req.kv_dtype in ("int8", "int4", "nvfp4"):
            raise UsageError(
                f"SGLang has no {req.kv_dtype} KV cache",
                hint=Text("use {kv_dtype} fp8_e4m3, fp8_e5m2 or auto"),
                field="kv_dtype",
            )

    def block_size(self, caches: list[L.Layer], req: Request) -> int | None:
        return None

    def stage_costs(self, caches: list[L.Layer], req: Request) -> list[KindCost]:
        self.check(caches, req)
        return group_costs([self._layer(c, req) for c in caches])

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
        if isinstance(cache, L.MlaLatent):
            per_token = cache.bytes_per_token(kv_bytes)
            return cache.kind, int(per_token * req.seq_len * req.batch), per_token, req.seq_len
        if isinstance(cache, L.RecurrentState):
            # conv_kernel - 1 columns in the model dtype, the SSM state in float32 (--mamba-ssm-dtype default)
            state = int(cache.state_bytes(DTYPE_BYTES[req.model_dtype], 4, columns=cache.conv_kernel - 1, tp=req.tp))
            return cache.kind, state * req.batch, Fraction(0), None
        return cache.kind, 0, Fraction(0), None


# ------------------------------------------------------------------------------------ serving (the KV budget)
#
# SGLang's pool is `total x mem_fraction_static - weights / (tp x pp)`, sized per token (no pages); the default
# mem_fraction_static is its `_handle_gpu_memory_settings` auto value.

_MIB = 2**20


def sglang_mem_fraction_static(memory_bytes: int, tp: int, pp: int) -> float:
    """SGLang's `_handle_gpu_memory_settings` auto value (gpu memory in MB)."""
    gpu_mb = memory_bytes / _MIB
    gb = gpu_mb / 1024
    if gb < 20:
        chunk, graph_bs = 2048, 8
    elif gb < 35:
        chunk, graph_bs = 2048, (24 if tp < 4 else 80)
    elif gb < 60:
        chunk, graph_bs = 4096, (32 if tp < 4 else 160)
    elif gb < 160:
        chunk, graph_bs = 8192, (256 if tp < 4 else 512)
    else:
        chunk, graph_bs = 16384, 512
    reserved = 512 + max(chunk, 2048) * 1.5 + graph_bs * 2 + tp * pp / 8 * 1024
    if gb > 60:
        reserved = max(reserved, 10 * 1024)
    return round((gpu_mb - reserved) / gpu_mb, 3)


class SglangServing(ServingModel):
    suggests_utilization = True
    fp8_plan_value = "fp8_e4m3"  # SGLang's --kv-cache-dtype spelling
    utilization_help = "SGLang mem_fraction_static (default: its heuristic)"

    def default_utilization(self, memory_bytes: int, tp: int, pp: int) -> float:
        return sglang_mem_fraction_static(memory_bytes, tp, pp)

    def budget(self, b: BudgetInputs) -> tuple[list[BudgetTerm], int]:
        usable = int(b.profile.memory_bytes * b.utilization)
        terms = [
            BudgetTerm(
                "total_x_mem_fraction_static", usable, f"{b.profile.id} memory x mem_fraction_static {b.utilization}"
            ),
            BudgetTerm("weights", -b.weights_per_gpu, f"weights / (tp x pp) = / {b.tp * b.pp}"),
        ]
        return terms, usable - b.weights_per_gpu

    def command(self, f: FlagInputs) -> str:
        line = f"python -m sglang.launch_server --model-path {f.model} --context-length {f.max_model_len} --tp {f.tp}"
        if f.pp > 1:
            line += f" --pp-size {f.pp}"
        if f.planned:
            line += f" --mem-fraction-static {f.utilization} --max-running-requests {f.max_num_seqs}"
        if f.fp8:
            line += " --kv-cache-dtype fp8_e4m3"
        return line


# ------------------------------------------------------------------------------------ config files (server args)

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
        "enable_ep_moe",
        "lora_paths",
        "max_loras_per_batch",
        "enable_hierarchical_cache",
        "hicache_ratio",
        "hicache_size",
        "mamba_ssm_dtype",
        "max_mamba_cache_size",
        "cpu_offload_gb",
    ),
    detect=lambda keys: bool(
        keys & {"model_path", "context_length", "mem_fraction_static", "tp_size", "max_running_requests"}
    ),
    describes="SGLang server arguments",
)

ENTRY = EngineEntry(
    name="sglang",
    display="SGLang",
    storage=lambda shape: SglangEngine(),
    serving=SglangServing(),
    config=CONFIG,
    plannable=True,
    splits_heads=True,
    serves_fp32_in_16bit=True,
)
