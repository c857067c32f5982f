"""How LightLLM serves: a per-token KV pool (`--max_total_token_num`) sized from `--mem_fraction`.

LightLLM has no storage model of its own in kvplan: its cell (`mem_manager.py`: 2 x kv heads per rank x head_dim x
layers x dtype per token) is SGLang's per-token cell, so kvplan.engines.sglang sizes it (the registry entry's
`stores_like`).

Budget per GPU: total x mem_fraction (0.9, `--mem_fraction`, lightllm/server/api_cli.py) - weights / (tp x pp),
divided by the per-token cell = `--max_total_token_num`. Every plan prints LightLLM's command with LightLLM's
own token count (its budget over its cell), whichever engine is planned.
"""

from __future__ import annotations

from dataclasses import replace

from kvplan.core.units import GGML_BLOCK_TYPES, short_dtype
from kvplan.engines.base import Request
from kvplan.engines.entry import EngineEntry
from kvplan.engines.serving import BudgetInputs, BudgetTerm, FlagInputs, ServingModel
from kvplan.engines.sizing import gpu_kv
from kvplan.errors import KvplanError

MEM_FRACTION = 0.9  # lightllm/server/api_cli.py --mem_fraction default


# KV dtypes LightLLM stores for every model: the model's 16-bit dtype, and int8 (`--mode triton_int8kv`;
# its triton_fp8kv is DeepSeek-V2's only: lightllm/server/api_cli.py --mode)
LIGHTLLM_KV_DTYPES = ("float16", "bfloat16", "int8")


class LightLlmServing(ServingModel):
    summary = "lightllm (--max_total_token_num from mem_fraction 0.9)"
    utilization_help = "LightLLM mem_fraction (default 0.9)"

    def default_utilization(self, memory_bytes: int, tp: int, pp: int) -> float:
        return MEM_FRACTION

    def budget(self, b: BudgetInputs) -> tuple[list[BudgetTerm], int]:
        usable = int(b.profile.memory_bytes * b.utilization)
        terms = [
            BudgetTerm("total_x_mem_fraction", usable, f"{b.profile.id} memory x mem_fraction {b.utilization}"),
            BudgetTerm("weights", -b.weights_per_gpu, f"weights / (tp x pp) = / {b.tp * b.pp}"),
        ]
        return terms, usable - b.weights_per_gpu

    def max_total_token_num(self, f: FlagInputs) -> int:
        """LightLLM's profiled max_total_token_num for another engine's plan: its own budget at its default
        mem_fraction (or the plan's --kv-memory) over its per-token cell; 0 where the cell cannot hold the KV dtype."""
        if f.storage is None or f.kv_dtype in GGML_BLOCK_TYPES:
            return 0
        kv_dtype = f.kv_dtype if f.kv_dtype in LIGHTLLM_KV_DTYPES else f.model_dtype  # what it would store
        try:
            one = Request(1, 1, kv_dtype, f.model_dtype, f.tp, f.pp)
            per_token = gpu_kv(f.storage, f.budget.shape, one).bytes_per_token
        except KvplanError:
            return 0
        avail = f.kv_memory if f.kv_memory is not None else self.budget(replace(f.budget, utilization=MEM_FRACTION))[1]
        return int(max(0, avail) // per_token) if per_token else 0

    def command(self, f: FlagInputs) -> str:
        tokens = f.fit.tokens if f.planned else self.max_total_token_num(f)
        line = f"python -m lightllm.server.api_server --model_dir {f.model} --tp {f.tp} --max_req_total_len {f.max_model_len}"
        if tokens:  # 0: kvplan cannot size its cell for this KV dtype, so LightLLM profiles its own
            line += f" --max_total_token_num {tokens}"
        if f.planned:
            line += f" --mem_fraction {f.utilization}"
        if f.kv_dtype == "int8":
            line += " --mode triton_int8kv"
        elif f.kv_dtype not in ("float16", "bfloat16"):  # api_cli.py --mode: triton_fp8kv is DeepSeek-V2's only
            line += f"  # LightLLM has no {short_dtype(f.kv_dtype)} KV cache for this model (--mode: triton_int8kv)"
        return line


ENTRY = EngineEntry(
    name="lightllm",
    display="LightLLM",
    stores_like="sglang",
    serving=LightLlmServing(),
    plannable=True,
    splits_heads=True,
)
