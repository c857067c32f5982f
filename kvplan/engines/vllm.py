"""How vLLM (v1 engine, 0.10-0.19) stores the KV cache: pages of `block_size` tokens, per layer kind.

Rules (vllm/v1/kv_cache_interface.py, vllm/v1/core/kv_cache_utils.py; checked against real start-up logs in
tests/test_calibration.py):
- page (one layer, one block) = block_size x kv_heads_per_rank x (head_size_k + head_size_v) x dtype bytes;
  MLA: block_size x (kv_lora_rank + qk_rope_head_dim) x dtype bytes, one latent (no factor 2), replicated on
  every TP rank; `int8` (int8_per_token_head) adds an fp32 scale per token and head for K and V; `nvfp4`
  stores head_size/2 bytes plus one fp8 scale per 16 values.
- pages one request needs at `seq_len` = max_model_len: full/MLA cdiv(seq_len, block); sliding window
  cdiv(min(window - 1 + max_num_batched_tokens, seq_len), block) + 1; chunked local attention
  cdiv(min(chunk + max_num_batched_tokens, seq_len), block); Mamba-style state: one page.
- hybrid models: layers are grouped by spec into groups of `group_size` layers (the smallest type count, or
  the largest when it is < 1.5x the smallest); a block of any group costs a page in each of `group_size`
  tensors, so a type whose layer count is not a multiple of group_size pays for padding layers.
- attention + Mamba hybrids: the attention block size grows (in steps of 16) until its page holds one Mamba
  state, and the state page is padded to the attention page. Mamba states use the model dtype.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from math import prod

from kvplan.core import specs as L
from kvplan.core.units import DTYPE_BYTES, cdiv
from kvplan.engines.base import KindCost, Request, kv_heads_per_rank, merge_kinds, split_exact
from kvplan.errors import Text, UsageError

DEFAULT_BLOCK_SIZE = 16
_ALIGN = 16  # kernel block alignment used when vLLM raises the attention block size for Mamba hybrids


@dataclass(frozen=True)
class Spec:
    """One vLLM KV-cache spec: layers with equal specs share groups. `page` is per block of `block_size` tokens."""

    kind: str
    page: int
    block_size: int
    window: int | None = None


@dataclass(frozen=True)
class GroupPlan:
    """vLLM's KV-cache groups for one stage: per spec, the layer count and how many groups it fills."""

    specs: dict[Spec, int]
    group_size: int

    def groups(self, spec: Spec) -> int:
        return cdiv(self.specs[spec], self.group_size)

    @property
    def num_groups(self) -> int:
        return sum(self.groups(spec) for spec in self.specs)

    @property
    def page(self) -> int:
        return max(spec.page for spec in self.specs)


class VllmEngine:
    name = "vllm"
    follows = "vLLM 0.19 (v1 KV-cache manager, hybrid allocator on)"

    def check(self, caches: list[L.Layer], req: Request) -> None:
        if req.kv_dtype == "int4":
            raise UsageError(
                "vLLM has no int4 KV cache", hint=Text("use {kv_dtype} fp8 (or nvfp4 on Blackwell)"), field="kv_dtype"
            )
        if req.kv_dtype in ("int8", "nvfp4") and any(isinstance(c, L.LatentAttention) for c in caches):
            raise UsageError(
                f"vLLM has no {req.kv_dtype} cache for MLA models",
                hint=Text("use {kv_dtype} fp8 or auto"),
                field="kv_dtype",
            )

    def block_size(self, caches: list[L.Layer], req: Request) -> int:
        base = req.block_size or DEFAULT_BLOCK_SIZE
        states = [c for c in caches if isinstance(c, L.RecurrentState)]
        attn = [c for c in caches if isinstance(c, (L.Attention, L.LatentAttention))]
        if not states or not attn:
            return base
        state_page = max(self._state_bytes(c, req) for c in states)
        per_token = max(self._token_bytes(c, req) for c in attn)
        return max(base, _ALIGN * cdiv(state_page, _ALIGN * per_token))

    def plan(self, caches: list[L.Layer], req: Request) -> GroupPlan:
        """Group the stage's layers the way vLLM's hybrid allocator does."""
        self.check(caches, req)
        block = self.block_size(caches, req)
        counts: dict[Spec, int] = {}
        for cache in caches:
            spec = self.spec(cache, req, block)
            if spec is not None:
                counts[spec] = counts.get(spec, 0) + 1
        counts = _unify_pages(counts)
        if not counts:
            return GroupPlan({}, 1)
        low, high = min(counts.values()), max(counts.values())
        return GroupPlan(counts, high if high < 1.5 * low else low)

    def spec(self, cache: L.Layer, req: Request, block: int) -> Spec | None:
        if isinstance(cache, L.Attention):
            return Spec(cache.kind, block * self._token_bytes(cache, req), block, cache.window)
        if isinstance(cache, L.LatentAttention):
            return Spec(cache.kind, block * self._token_bytes(cache, req), block)
        if isinstance(cache, L.RecurrentState):
            return Spec(cache.kind, self._state_bytes(cache, req), block)
        return None

    def token_limit(self, spec: Spec, req: Request) -> int | None:
        """Tokens past which a windowed spec's reservation stops growing (None: it always grows)."""
        if spec.kind == L.SLIDING:
            return spec.window - 1 + req.max_num_batched_tokens
        if spec.kind == L.CHUNKED:
            return spec.window + req.max_num_batched_tokens
        return None

    def blocks_per_request(self, spec: Spec, req: Request) -> int:
        """Pages one request of `req.seq_len` tokens may hold in one layer of this spec (max_memory_usage / page)."""
        if spec.kind == L.STATE:
            return 1
        limit = self.token_limit(spec, req)
        tokens = req.seq_len if limit is None else min(limit, req.seq_len)
        return cdiv(tokens, spec.block_size) + (1 if spec.kind == L.SLIDING else 0)

    def stage_costs(self, caches: list[L.Layer], req: Request) -> list[KindCost]:
        plan = self.plan(caches, req)
        items = []
        for spec, count in plan.specs.items():
            layers_paid = plan.groups(spec) * plan.group_size
            blocks = self.blocks_per_request(spec, req)
            limit = self.token_limit(spec, req)
            grows = spec.kind != L.STATE and (limit is None or req.seq_len < limit)
            per_token = Fraction(spec.page * layers_paid, spec.block_size) if grows else Fraction(0)
            tokens = None if spec.kind == L.STATE else min(blocks * spec.block_size, req.seq_len)
            items.append(KindCost(spec.kind, count, blocks * spec.page * layers_paid * req.batch, per_token, tokens))
        no_cache = sum(isinstance(c, L.NoCache) for c in caches)
        if no_cache:
            items.append(KindCost(L.NONE, no_cache, 0, Fraction(0), None))
        return merge_kinds(items)

    # -- bytes of one token (attention) or one state (Mamba) on one TP rank

    def _token_bytes(self, cache: L.Attention | L.LatentAttention, req: Request) -> int:
        kv_bytes = DTYPE_BYTES[req.kv_dtype]
        if isinstance(cache, L.LatentAttention):
            return int(cache.elements_per_token() * kv_bytes)
        heads = kv_heads_per_rank(cache.num_kv_heads, req.tp)
        if req.kv_dtype == "nvfp4":
            return heads * sum(d // 2 + d // 16 for d in (cache.head_dim_k, cache.head_dim_v))
        scales = 2 * heads * 4 if req.kv_dtype == "int8" else 0
        return int(cache.elements_per_token(heads) * kv_bytes) + scales

    @staticmethod
    def _state_bytes(cache: L.RecurrentState, req: Request) -> int:
        tp = req.tp
        channels = cache.conv_channels
        if cache.n_groups and cache.n_groups % tp:  # vLLM replicates Mamba2 groups so each shard has its own
            channels += 2 * (tp - cache.n_groups) * cache.group_state
        conv = split_exact(channels, tp, "convolution channels") * (cache.conv_kernel - 1)
        ssm = prod(cache.ssm_shape[1:]) * split_exact(cache.ssm_shape[0], tp, "state heads") if cache.ssm_shape else 0
        return int((conv + ssm) * DTYPE_BYTES[req.model_dtype])


def _unify_pages(counts: dict[Spec, int]) -> dict[Spec, int]:
    """Give every attention spec the largest page by enlarging smaller pages' block size (vLLM
    `unify_kv_cache_spec_page_size`); Mamba state pages are padded up to the attention page."""
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
            new = Spec(spec.kind, target, spec.block_size, spec.window)
        else:
            if target % spec.page:
                raise UsageError(
                    "vLLM cannot unify this model's page sizes (they do not divide)",
                    hint=Text("try {engine} sglang"),
                    field="engine",
                )
            new = Spec(spec.kind, target, spec.block_size * (target // spec.page), spec.window)
        out[new] = out.get(new, 0) + n
    return out


@dataclass(frozen=True)
class Capacity:
    """What vLLM makes of `available_bytes` of KV memory on each GPU, at `max_model_len` = req.seq_len.

    `kv_cache_tokens` is the figure vLLM 0.19 logs as "GPU KV cache size" (num_blocks // groups x block size);
    `max_concurrency` is its "Maximum concurrency for L tokens per request".
    """

    num_blocks: int
    block_size: int
    kv_cache_tokens: int
    blocks_per_request: int
    max_concurrency: float
    num_groups: int
    group_size: int
    page_bytes: int


def capacity(caches: list[L.Layer], req: Request, available_bytes: int, plan: GroupPlan | None = None) -> Capacity:
    """vLLM's block count and concurrency for the layers one GPU holds, given its available KV memory (`plan`:
    their grouping, when the caller has it already: `VllmEngine().plan(caches, req)`)."""
    engine = VllmEngine()
    plan = plan or engine.plan(caches, req)
    if not plan.specs:
        raise UsageError("this model has no KV cache to size", hint="nothing to plan")
    num_blocks = available_bytes // plan.page // plan.group_size
    per_request = sum(plan.groups(spec) * engine.blocks_per_request(spec, req) for spec in plan.specs)
    block = min(spec.block_size for spec in plan.specs)
    return Capacity(
        num_blocks=num_blocks,
        block_size=block,
        kv_cache_tokens=num_blocks // plan.num_groups * block,
        blocks_per_request=per_request,
        max_concurrency=num_blocks / per_request,
        num_groups=plan.num_groups,
        group_size=plan.group_size,
        page_bytes=plan.page,
    )


def scheduler_defaults(memory_bytes: int, device_name: str = "", *, api_server: bool = True) -> tuple[int, int]:
    """vLLM's default (max_num_batched_tokens, max_num_seqs) for a GPU (`vllm/engine/arg_utils.py`):
    GPUs with >= 70 GiB that are not A100s get 8192 tokens (16384 for the offline LLM class) and 1024
    sequences; others 2048 (8192) tokens and 256 sequences."""
    large = memory_bytes >= 70 * 2**30 and "a100" not in device_name.lower()
    if large:
        return (8192 if api_server else 16384), 1024
    return (2048 if api_server else 8192), 256
