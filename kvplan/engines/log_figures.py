"""How each engine derives the KV-cache figures its start-up log prints: the arithmetic half of `kvplan explain`.

kvplan.engines.logs reads a log into named figures; this module says, per engine, which of them follow from a
logged quantity by the engine's own rounding (*capacity* figures: recomputed exactly, so block rounding and
grouping are tested apart from any budget model) and which are terms of the memory budget (*budget* figures:
modelled by the engine's serving model, kvplan.engines.<engine>), and recomputes the capacity figures.

- vLLM: from the available KV memory, the blocks (`available // (page x layers per group)`), the token count in
  the meaning of the running version (`vllm_reporting`), the maximum concurrency, the Mamba cache blocks (vLLM's
  `kv_cache_config.num_blocks`), and, for a request that does not fit, the memory it needs and the longest
  max_model_len the memory allows (vLLM's `max_memory_usage_bytes`, summed over the layers' specs).
- SGLang: from the token pool size (`#tokens`), its K and V pools per GPU ('GB' = GiB), for models whose KV
  layers are all full attention or all MLA.
- llama.cpp: from a KV cache's cells, its K and V sizes (MiB), for models whose KV layers are all full attention.

Every figure comes back exact (a Fraction in the figure's unit) with the term that decides it. Pure arithmetic.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from fractions import Fraction

from kvplan.core import specs as L
from kvplan.core.bisection import largest
from kvplan.core.units import DTYPE_BYTES
from kvplan.engines.base import Request, kv_heads_per_rank
from kvplan.engines.llamacpp import row_bytes
from kvplan.engines.vllm import VllmEngine, capacity, cudagraph_bytes, version_key, vllm_behaviour
from kvplan.errors import UsageError

__all__ = [
    "CAPACITY",
    "CONCURRENCY",
    "GROUPS",
    "V0",
    "Figure",
    "LogRules",
    "llamacpp_cache_figures",
    "rules_for",
    "sglang_pool_figures",
    "vllm_blocks_from_tokens",
    "vllm_capacity_figures",
    "vllm_reporting",
]

GIB = 2**30
MIB = 2**20

# How a vLLM version prints "GPU KV cache size" and "Maximum concurrency" (vllm_reporting).
V0 = "v0"  # vLLM < 0.8 (V0 engine): tokens = blocks x block_size; concurrency = blocks x block_size / max_model_len
GROUPS = (
    "groups"  # 0.8 - 0.20.0: tokens = num_blocks // KV-cache groups x block_size; concurrency = blocks / per request
)
CONCURRENCY = "concurrency"  # >= 0.20.1: tokens = int(max_concurrency x max_model_len)
_V1_SINCE = (0, 8, 0)


@dataclass(frozen=True)
class Figure:
    """A figure as the engine would print it for the given input: `value` exact, in the unit of the log's figure
    (kvplan.engines.logs.NUMBER_NAMES); `term` the rule or budget term that decides it; `detail` the arithmetic."""

    name: str
    value: Fraction
    term: str
    detail: str = ""


@dataclass(frozen=True)
class LogRules:
    """What `kvplan explain` recomputes for one engine's logs.

    `source`: the logged figure the capacity figures derive from; `capacity`: the figures derived from it;
    `budget`: logged figure -> the serving model's budget terms whose sum (sign flipped for what is subtracted)
    it is; `labels`: budget term -> the name shown as "the term responsible"; `plans_budget`: whether
    kvplan.planning.recommend models this engine's budget for the log; `needs_gpu`: whether the capacity figures
    depend on the GPU (vLLM's default max_num_batched_tokens does)."""

    engine: str
    source: str
    capacity: tuple[str, ...]
    budget: dict[str, tuple[str, ...]] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    plans_budget: bool = False
    needs_gpu: bool = False
    version_option: bool = False  # the engine's version changes the arithmetic (vLLM: --vllm-version)


_VLLM_LABELS = {
    "total_x_utilization": "GPU memory x utilization",
    "weights": "weights",
    "activation_peak": "activation",
    "non_torch": "non-torch",
    "cudagraph": "CUDA graphs",
}
CAPACITY = {
    "vllm": LogRules(
        engine="vllm",
        source="available_kv_cache_memory",
        capacity=(
            "num_gpu_blocks",
            "kv_cache_tokens",
            "max_concurrency",
            "mamba_cache_blocks",
            "estimated_max_model_len",
            "kv_cache_needed",
            "padding_layers",
            "padding_waste_percent",
        ),
        budget={
            "available_kv_cache_memory": (
                "total_x_utilization",
                "weights",
                "activation_peak",
                "non_torch",
                "cudagraph",
            ),
            "memory_budget": ("total_x_utilization",),
            "weights_memory": ("weights",),
            "peak_activation": ("activation_peak",),
            "non_torch_memory": ("non_torch",),
            "cudagraph_memory": ("cudagraph",),
            "weights_and_non_torch_memory": ("weights", "non_torch"),
            "non_kv_cache_memory": ("weights", "activation_peak", "non_torch"),
            "peak_torch_memory": ("weights", "activation_peak"),  # V0's Memory profiling results
        },
        labels=_VLLM_LABELS,
        plans_budget=True,
        needs_gpu=True,
        version_option=True,
    ),
    "sglang": LogRules(
        engine="sglang",
        source="kv_cache_tokens",
        capacity=("sglang_k_size", "sglang_v_size", "sglang_kv_size"),
    ),
    "llamacpp": LogRules(
        engine="llamacpp",
        source="llamacpp_kv_cells",
        capacity=("llamacpp_kv_size", "llamacpp_k_size", "llamacpp_v_size"),
    ),
}


def rules_for(engine: str | None) -> LogRules | None:
    """The LogRules of an engine name as kvplan.engines.logs spells it (None: kvplan explains none of its lines)."""
    return CAPACITY.get(engine or "")


# ------------------------------------------------------------------------------------------------------ vLLM


def vllm_reporting(version: str | None, v0_lines: bool) -> tuple[str, str]:
    """(V0 | GROUPS | CONCURRENCY, why) for a vLLM version (None: unknown) and whether the log prints V0 lines.

    - V0 engine (< 0.8; its `# GPU blocks: N` line): "maximum number of tokens ... stored in KV cache" is blocks x
      block_size and "Maximum concurrency" is that over max_model_len (vllm/executor/executor_base.py).
    - 0.8 - 0.20.0: `num_tokens = num_blocks // len(kv_cache_groups) * min_block_size`; concurrency = num_blocks /
      blocks one request needs (vllm/v1/core/kv_cache_utils.py `_report_kv_cache_config`,
      `get_max_concurrency_for_kv_cache_config`).
    - 0.20.1 and later: `num_tokens = int(max_concurrency * max_model_len)` (vllm-0.20.1/vllm/v1/core/
      kv_cache_utils.py:1706, so hybrid models report the tokens their windows really hold); which release does
      which is the version table's (kvplan.engines.vllm.VLLM_VERSIONS `tokens_from_concurrency`; a nightly such as
      0.20.1rc1.dev16 behaves like the release before it).
    An unknown version of a V1 log is taken to be the newest, as kvplan does everywhere else.
    """
    if version:
        key = version_key(version)
        if key < _V1_SINCE:
            return V0, f"vLLM {version} (V0 engine): tokens = blocks x block size"
        if not vllm_behaviour(version).tokens_from_concurrency:
            return GROUPS, f"vLLM {version}: tokens = blocks // KV-cache groups x block size"
        return CONCURRENCY, f"vLLM {version}: tokens = int(max concurrency x max_model_len)"
    if v0_lines:
        return V0, "the log's V0 lines (# GPU blocks) date it before vLLM 0.8: tokens = blocks x block size"
    return CONCURRENCY, "vLLM version unknown, taken as the newest: tokens = int(max concurrency x max_model_len)"


def _needed_bytes(engine: VllmEngine, req: Request, seq_len: int, caches: list[L.Layer]) -> int:
    """vLLM's `max_memory_usage_bytes` over every layer's spec: the KV bytes one request of `seq_len` tokens may
    hold (the one-request check and the estimated maximum model length)."""
    at = replace(req, seq_len=seq_len)
    plan = engine.plan(caches, at)
    return sum(count * engine.blocks_per_request(spec, at) * spec.page for spec, count in plan.specs.items())


def vllm_capacity_figures(
    caches: list[L.Layer], req: Request, available: int, reporting: str, limit: int
) -> dict[str, Figure]:
    """Every capacity figure vLLM prints for `available` bytes of KV memory on the GPU holding `caches`, at
    max_model_len `req.seq_len`; `reporting` as `vllm_reporting`; `limit` caps the estimated maximum model length
    (vLLM searches up to the requested max_model_len)."""
    engine = VllmEngine()
    plan = engine.plan(caches, req)
    cap = capacity(caches, req, max(0, available))
    blocks, block, groups, per_request = cap.num_blocks, cap.block_size, cap.num_groups, cap.blocks_per_request
    padding = sum(plan.groups(spec) * plan.group_size - count for spec, count in plan.specs.items())
    kinds = sorted({spec.kind for spec in plan.specs})
    windowed = any(kind in (L.SLIDING, L.CHUNKED) for kind in kinds)
    states = L.STATE in kinds
    if padding:
        block_term = "group padding"
    elif groups > 1:
        block_term = "KV-cache groups"
    else:
        block_term = "block rounding"
    page_detail = f"{max(0, available):,} B // ({cap.page_bytes:,} B page x {cap.group_size} layers per group)"
    if padding:
        page_detail += f"; {padding} padding layer{'s' if padding != 1 else ''} in {groups} groups"
    figures = {"num_gpu_blocks": Figure("num_gpu_blocks", Fraction(blocks), block_term, page_detail)}
    if reporting == V0:
        concurrency = Fraction(blocks * block, req.seq_len)
        tokens = Fraction(blocks * block)
        figures["kv_cache_tokens"] = Figure("kv_cache_tokens", tokens, block_term, f"{blocks:,} blocks x {block}")
        figures["max_concurrency"] = Figure(
            "max_concurrency", concurrency, "block rounding", f"{blocks:,} x {block} / max_model_len {req.seq_len:,}"
        )
    else:
        concurrency = Fraction(blocks, per_request)
        request_term = "sliding-window reservation" if windowed else "blocks per request"
        if reporting == GROUPS:
            figures["kv_cache_tokens"] = Figure(
                "kv_cache_tokens",
                Fraction(blocks // groups * block),
                block_term,
                f"{blocks:,} blocks // {groups} group{'s' if groups != 1 else ''} x {block}",
            )
        else:
            figures["kv_cache_tokens"] = Figure(
                "kv_cache_tokens",
                Fraction(int(concurrency * req.seq_len)),
                request_term if groups > 1 else block_term,
                f"int({blocks:,} / {per_request:,} blocks per request x max_model_len {req.seq_len:,})",
            )
        figures["max_concurrency"] = Figure(
            "max_concurrency", concurrency, request_term, f"{blocks:,} blocks / {per_request:,} per request"
        )
    if states:
        figures["mamba_cache_blocks"] = Figure(
            "mamba_cache_blocks", Fraction(blocks), block_term, f"one Mamba state block per sequence: {blocks:,} blocks"
        )
    padded = [(spec, count) for spec, count in plan.specs.items() if count % plan.group_size]
    if padded:  # vLLM warns once per padded layer type: "Add N padding layers, may waste at most P% ..."
        spec, count = padded[0]
        extra = plan.group_size - count % plan.group_size
        detail = f"{count} {spec.kind} layers in groups of {plan.group_size}"
        figures["padding_layers"] = Figure("padding_layers", Fraction(extra), "group padding", detail)
        figures["padding_waste_percent"] = Figure(
            "padding_waste_percent", Fraction(100 * extra, count), "group padding", f"{extra} / {count} layers"
        )
    needed = _needed_bytes(engine, req, req.seq_len, caches)
    figures["kv_cache_needed"] = Figure(
        "kv_cache_needed",
        Fraction(needed, GIB),
        "pages per request",
        f"{needed:,} B: every layer's pages for one request of {req.seq_len:,} tokens",
    )
    avail = max(0, available)

    def fits(n: int) -> bool:
        return _needed_bytes(engine, req, n, caches) <= avail

    longest = largest(fits, limit)
    figures["estimated_max_model_len"] = Figure(
        "estimated_max_model_len",
        Fraction(longest),
        "pages per request",
        f"the longest max_model_len (up to {limit:,}) whose pages fit in {avail:,} B",
    )
    return figures


def vllm_blocks_from_tokens(
    tokens: int, reporting: str, block_size: int, groups: int, per_request: int, max_model_len: int
) -> tuple[int, int] | None:
    """The block counts (lowest, highest) for which vLLM prints "GPU KV cache size: `tokens` tokens" under
    `reporting` (`vllm_reporting`), or None when no block count prints it: the inverse of the token figure of
    `vllm_capacity_figures`, for logs that print the tokens but neither the KV memory nor the blocks.

    - V0: tokens = blocks x block_size, one block count.
    - GROUPS (0.8 - 0.20.0): tokens = blocks // groups x block_size: `groups` block counts (a hybrid's groups).
    - CONCURRENCY (0.20.1 on): tokens = int(blocks / per_request x max_model_len): the blocks b with
      tokens x per_request <= b x max_model_len < (tokens + 1) x per_request.
    """
    if tokens < 0 or block_size < 1 or groups < 1 or per_request < 1 or max_model_len < 1:
        return None
    if reporting in (V0, GROUPS):
        if tokens % block_size:
            return None
        per_group = tokens // block_size
        return (per_group, per_group) if reporting == V0 else (per_group * groups, per_group * groups + groups - 1)
    low = -(-tokens * per_request // max_model_len)
    high = -(-(tokens + 1) * per_request // max_model_len) - 1
    return (low, high) if low <= high else None


def vllm_cudagraph_bytes(layers_on_gpu: int) -> int:
    """kvplan's model of vLLM's CUDA-graph pool (also where the version does not subtract it from the budget)."""
    return cudagraph_bytes(layers_on_gpu)


# ---------------------------------------------------------------------------------------------------- SGLang


def _attention_kinds(caches: list[L.Layer]) -> tuple[list[L.KVAttention], list[L.MlaLatent], list[L.Layer]]:
    kv: list[L.KVAttention] = [c for c in caches if isinstance(c, L.KVAttention)]
    mla = [c for c in caches if isinstance(c, L.MlaLatent)]
    other: list[L.Layer] = [c for c in caches if not isinstance(c, (L.KVAttention, L.MlaLatent, L.NoCache))]
    return kv, mla, other


def sglang_pool_figures(caches: list[L.Layer], req: Request, tokens: int) -> tuple[dict[str, Figure], str | None]:
    """SGLang's K and V pool sizes per GPU (GiB) for a pool of `tokens` tokens (its `#tokens`), plus the page of
    padding tokens SGLang allocates (`size + page_size`, page size 1): ({name: Figure}, None), or ({}, why not)."""
    kv, mla, other = _attention_kinds(caches)
    if other or any(c.kind != L.FULL for c in kv) or (kv and mla):
        return {}, "SGLang keeps sliding-window and state layers in separate pools; only one-pool models are recomputed"
    if any(c.sparse for c in mla):
        return {}, "SGLang's DSA pool (latent plus indexer keys, in pages) is not recomputed from its log"
    slots = tokens + 1
    kv_bytes = DTYPE_BYTES[req.kv_dtype]
    if mla:
        per_token = sum(c.bytes_per_token(kv_bytes) for c in mla)
        size = Fraction(per_token * slots, GIB)
        detail = f"({tokens:,} + 1) tokens x {per_token} B ({len(mla)} MLA layers)"
        return {"sglang_kv_size": Figure("sglang_kv_size", size, "bytes per token", detail)}, None
    k = sum(kv_heads_per_rank(c.num_kv_heads, req.tp) * c.head_dim_k for c in kv) * kv_bytes
    v = sum(kv_heads_per_rank(c.num_kv_heads, req.tp) * c.head_dim_v for c in kv) * kv_bytes
    return {
        "sglang_k_size": Figure(
            "sglang_k_size", Fraction(k * slots, GIB), "bytes per token", f"({tokens:,} + 1) tokens x {k} B of K"
        ),
        "sglang_v_size": Figure(
            "sglang_v_size", Fraction(v * slots, GIB), "bytes per token", f"({tokens:,} + 1) tokens x {v} B of V"
        ),
    }, None


# ------------------------------------------------------------------------------------------------- llama.cpp


def llamacpp_cache_figures(
    caches: list[L.Layer], type_k: str, type_v: str, cells: int, layers: int | None, streams: int = 1
) -> tuple[dict[str, Figure], str | None]:
    """llama.cpp's KV cache size and its K and V parts (MiB) for `cells` cells of the `layers` layers of one cache,
    stored as ggml types `type_k` / `type_v` (canonical dtype names), in `streams` streams (the "/N" of "S/N seqs":
    llama-kv-cache.cpp allocates `[n_embd, kv_size, n_stream]`, the log's cells are one stream's); ({}, why not)
    where kvplan cannot tell."""
    kv, mla, other = _attention_kinds(caches)
    if mla or other or any(c.kind != L.FULL for c in kv):
        return {}, "only models whose KV layers are all full attention are recomputed for llama.cpp"
    if layers is not None and layers != len(kv):
        return {}, f"the cache holds {layers} layers, the model {len(kv)} attention layers"
    try:
        k = sum(row_bytes(type_k, c.num_kv_heads * c.head_dim_k) for c in kv)
        v = sum(row_bytes(type_v, c.num_kv_heads * c.head_dim_v) for c in kv)
    except (KeyError, UsageError) as exc:
        return {}, f"cannot size llama.cpp's cache types {type_k}/{type_v}: {exc}"
    k_mib, v_mib = Fraction(k * cells * streams, MIB), Fraction(v * cells * streams, MIB)
    of = f"{cells:,} cells x {streams} streams" if streams > 1 else f"{cells:,} cells"
    return {
        "llamacpp_kv_size": Figure(
            "llamacpp_kv_size", k_mib + v_mib, "bytes per cell", f"{of} x {k + v:,} B ({len(kv)} layers)"
        ),
        "llamacpp_k_size": Figure("llamacpp_k_size", k_mib, "bytes per cell", f"{of} x {k:,} B of K"),
        "llamacpp_v_size": Figure("llamacpp_v_size", v_mib, "bytes per cell", f"{of} x {v:,} B of V"),
    }, None


# ------------------------------------------------------------------------------------------------ shared


def span(figures_at: Callable[[int], dict[str, Figure]], low: int, high: int) -> dict[str, tuple[Figure, Figure]]:
    """The figures at both ends of an input interval (each is monotone in its input): name -> (at low, at high)."""
    lo, hi = figures_at(low), figures_at(high)
    return {name: (lo[name], hi[name]) for name in lo if name in hi}
