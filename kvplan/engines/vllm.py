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

Below the storage model: vLLM's version table (VLLM_VERSIONS, `vllm_behaviour(version)`), its serving model
(VllmServing: the start-up profiling budget, block-based fit, `vllm serve` flags), the vocabulary of its
`--config` files (CONFIG) and its registry entry (ENTRY).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from fractions import Fraction

from kvplan.core import specs as L
from kvplan.core.bisection import largest
from kvplan.core.config import vocab_size
from kvplan.core.shapes import ModelShape
from kvplan.core.units import DTYPE_BYTES, cdiv
from kvplan.engines.base import Engine, KindCost, Request, kv_heads_per_rank, merge_kinds
from kvplan.engines.entry import COMMON_CONFIG_KEYS, ConfigVocabulary, EngineEntry
from kvplan.engines.serving import (
    BLOCK_SIZE,
    GPU_MEMORY_UTILIZATION,
    VLLM_VERSION,
    BudgetInputs,
    BudgetTerm,
    Fit,
    FitInputs,
    FlagInputs,
    ServingModel,
)
from kvplan.engines.sizing import fullest_stage
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
        if req.kv_dtype in ("int8", "nvfp4") and any(isinstance(c, L.MlaLatent) for c in caches):
            raise UsageError(
                f"vLLM has no {req.kv_dtype} cache for MLA models",
                hint=Text("use {kv_dtype} fp8 or auto"),
                field="kv_dtype",
            )

    def block_size(self, caches: list[L.Layer], req: Request) -> int:
        base = req.block_size or DEFAULT_BLOCK_SIZE
        states = [c for c in caches if isinstance(c, L.RecurrentState)]
        attn = [c for c in caches if isinstance(c, (L.KVAttention, L.MlaLatent))]
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
        if isinstance(cache, L.KVAttention):
            return Spec(cache.kind, block * self._token_bytes(cache, req), block, cache.window)
        if isinstance(cache, L.MlaLatent):
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

    def _token_bytes(self, cache: L.KVAttention | L.MlaLatent, req: Request) -> int:
        kv_bytes = DTYPE_BYTES[req.kv_dtype]
        if isinstance(cache, L.MlaLatent):
            return int(cache.bytes_per_token(kv_bytes))
        heads = kv_heads_per_rank(cache.num_kv_heads, req.tp)
        if req.kv_dtype == "nvfp4":
            return heads * sum(d // 2 + d // 16 for d in (cache.head_dim_k, cache.head_dim_v))
        scales = 2 * heads * 4 if req.kv_dtype == "int8" else 0
        return int(cache.bytes_per_token(kv_bytes, heads)) + scales

    @staticmethod
    def _state_bytes(cache: L.RecurrentState, req: Request) -> int:
        # conv_kernel - 1 columns, all in the model dtype; vLLM replicates Mamba2 groups so each shard has its own
        bytes_ = DTYPE_BYTES[req.model_dtype]
        return int(cache.state_bytes(bytes_, bytes_, columns=cache.conv_kernel - 1, tp=req.tp, replicate_groups=True))


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
    """(major, minor, patch) of a vLLM version (patch 0 when not given; pre-release tags such as rc1 ignored)."""
    match = _version_match(text)
    return int(match.group(1)), int(match.group(2)), int(match.group(3) or 0)


@dataclass(frozen=True)
class VllmBehaviour:
    """What kvplan models of the vLLM versions from `since` up to the next row's `since` (exclusive).

    `sampler_bytes_per_seq_vocab`: bytes per (sequence x vocab entry) of the dummy sampler run of vLLM's start-up
    profiling (its activation peak); `subtracts_cudagraphs`: the CUDA-graph pool estimate is subtracted from the
    KV budget; `follows`: the evidence for the row."""

    since: tuple[int, ...]
    sampler_bytes_per_seq_vocab: float
    subtracts_cudagraphs: bool
    follows: str


# One row per vLLM version where something kvplan models changed, oldest first; a version belongs to the last row
# whose `since` it has reached, and an unknown version (None) to the newest row. To add a row, copy the last one,
# set `since` to the first version that behaves differently and change what changed.
VLLM_VERSIONS: tuple[VllmBehaviour, ...] = (
    VllmBehaviour(
        since=(0, 0),
        sampler_bytes_per_seq_vocab=39.0,
        subtracts_cudagraphs=False,
        follows="vLLM <= 0.11 logged activation peaks of 38.4-38.9 B per (sequence x vocab entry) for 0.6B-32B "
        "models at max_num_seqs 1024 (llm-d empirical logs, tests/fixtures/calibration)",
    ),
    VllmBehaviour(
        since=(0, 12),
        sampler_bytes_per_seq_vocab=15.0,
        subtracts_cudagraphs=False,
        follows="the sampler term fitted on the llm-d vLLM 0.19 H100 logs (tests/fixtures/calibration); "
        "0.12-0.18 are taken to behave like 0.19",
    ),
    VllmBehaviour(
        since=(0, 21),
        sampler_bytes_per_seq_vocab=15.0,
        subtracts_cudagraphs=True,
        follows="vLLM 0.21 subtracts its CUDA-graph estimate from the KV budget "
        "(VLLM_MEMORY_PROFILER_ESTIMATE_CUDAGRAPHS)",
    ),
)


def vllm_behaviour(version: str | None) -> VllmBehaviour:
    """The VLLM_VERSIONS row of `version` (e.g. 0.11, 0.19.1, v0.21.0rc1); unknown (None or "") is the newest."""
    if not version:
        return VLLM_VERSIONS[-1]
    key = version_key(version)
    return [row for row in VLLM_VERSIONS if row.since <= key][-1]


# ------------------------------------------------------------------------------------ serving (the KV budget)
#
# Per GPU, each term reported with its source, the way vLLM's start-up profiling subtracts it:
#   total_memory x gpu_memory_utilization - weights/(tp x pp) - activation peak - non-torch - CUDA graphs
# - activation peak (vLLM's profile run): the dummy sampler run over `max_num_seqs` rows of logits dominates
#   (bytes per sequence x vocab entry: VLLM_VERSIONS; fp32 logits plus the sampler's copies), plus about 1.1 bytes
#   per (batched token x hidden unit) of the forward pass and a 32 MiB floor. Fitted on the llm-d vLLM 0.19 H100
#   logs in tests/fixtures/calibration (peak_activation_gib 0.85-3.94 GiB, fit within ~0.25 GiB).
# - non-torch memory (CUDA context, cuBLAS workspace, NCCL buffers): 0.25 GiB at TP 1, 2.1 GiB at TP > 1 (same
#   logs: 0.24-0.26 and 2.06-2.21 GiB).
# - CUDA-graph pool: 0.45 GiB + 15 MiB per layer on the GPU (logs: 0.67-1.66 GiB), subtracted by the versions
#   that do (VLLM_VERSIONS; `cudagraph_profiling` decides instead when given).
# kvplan.engines.vllm.capacity turns the KV memory into blocks, tokens and concurrency.

_GIB = 2**30
_MIB = 2**20
FORWARD_BYTES_PER_TOKEN_HIDDEN = 1.1
ACTIVATION_FLOOR = 32 * _MIB
NON_TORCH_TP1 = int(0.25 * _GIB)
NON_TORCH_TP_MULTI = int(2.1 * _GIB)
CUDAGRAPH_BASE = int(0.45 * _GIB)
CUDAGRAPH_PER_LAYER = 15 * _MIB
_LOGS = "fitted on llm-d vLLM 0.19 H100 logs (tests/fixtures/calibration)"


def sampler_bytes_per_entry(vllm_version: str | None) -> float:
    """Bytes per (sequence x vocab entry) of vLLM's dummy sampler run in `vllm_version` (VLLM_VERSIONS)."""
    return vllm_behaviour(vllm_version).sampler_bytes_per_seq_vocab


def activation_peak_bytes(
    config: dict, shape: ModelShape, max_num_batched_tokens: int, max_num_seqs: int, vllm_version: str | None = None
) -> int:
    """vLLM's profiled torch activation peak: sampler logits over max_num_seqs rows + forward activations."""
    sampler = sampler_bytes_per_entry(vllm_version) * max_num_seqs * vocab_size(config)
    forward = FORWARD_BYTES_PER_TOKEN_HIDDEN * max_num_batched_tokens * shape.hidden_size
    return int(sampler + forward + ACTIVATION_FLOOR)


def non_torch_bytes(tp: int) -> int:
    return NON_TORCH_TP1 if tp == 1 else NON_TORCH_TP_MULTI


def cudagraph_bytes(layers_on_gpu: int) -> int:
    return CUDAGRAPH_BASE + CUDAGRAPH_PER_LAYER * layers_on_gpu


class VllmServing(ServingModel):
    options = frozenset({GPU_MEMORY_UTILIZATION, VLLM_VERSION, BLOCK_SIZE})
    suggests_utilization = True
    utilization_help = "vLLM fraction of total memory (default 0.9)"

    def budget(self, b: BudgetInputs) -> tuple[list[BudgetTerm], int]:
        behaviour = vllm_behaviour(b.vllm_version)
        cudagraphs = behaviour.subtracts_cudagraphs if b.cudagraph_profiling is None else b.cudagraph_profiling
        mnbt, seqs, version = b.max_num_batched_tokens, b.max_num_seqs, b.vllm_version
        terms = [
            BudgetTerm(
                "total_x_utilization",
                int(b.profile.memory_bytes * b.utilization),
                f"{b.profile.id} memory x {b.utilization}",
            ),
            BudgetTerm("weights", -b.weights_per_gpu, f"weights / (tp x pp) = / {b.tp * b.pp}"),
            BudgetTerm(
                "activation_peak",
                -activation_peak_bytes(b.config, b.shape, mnbt, seqs, version),
                f"{behaviour.sampler_bytes_per_seq_vocab:g} B x max_num_seqs {seqs} x vocab + 1.1 B x {mnbt} "
                f"tokens x hidden + 32 MiB; {_LOGS}" + (f"; sampler of vLLM {version}" if version else ""),
            ),
            BudgetTerm("non_torch", -non_torch_bytes(b.tp), f"0.25 GiB at TP 1, 2.1 GiB at TP > 1; {_LOGS}"),
        ]
        if cudagraphs:
            terms.append(
                BudgetTerm(
                    "cudagraph",
                    -cudagraph_bytes(b.layers_on_gpu),
                    f"0.45 GiB + 15 MiB x {b.layers_on_gpu} layers; subtracted by vLLM >= 0.21",
                )
            )
        return terms, sum(t.bytes for t in terms)

    def request_kv_bytes(self, storage: Engine, shape: ModelShape, req: Request) -> int:
        """Whole pages in every KV-cache group (what vLLM's max concurrency divides by)."""
        caches, _ = fullest_stage(shape, req.pp)
        cap = capacity(caches, req, 0)
        return cap.blocks_per_request * cap.page_bytes * cap.group_size

    def fit(self, inputs: FitInputs) -> Fit:
        """Block accounting: KV blocks of the available memory, blocks one request needs (capacity)."""
        caches, req, avail = list(inputs.caches), inputs.request, max(0, inputs.available)
        # the groups and pages do not depend on the length: grouped once, only the blocks a request needs vary
        engine = VllmEngine()
        groups = engine.plan(caches, req)
        cap = capacity(caches, req, avail, groups)

        def fits(n: int) -> bool:
            longer = replace(req, seq_len=n)
            blocks = sum(groups.groups(spec) * engine.blocks_per_request(spec, longer) for spec in groups.specs)
            return blocks <= cap.num_blocks

        return Fit(
            avail,
            cap.kv_cache_tokens,
            cap.num_blocks,
            cap.block_size,
            cap.max_concurrency,
            largest(fits, inputs.limit),
            cap.blocks_per_request <= cap.num_blocks,
        )

    def command(self, f: FlagInputs) -> str:
        line = (
            f"vllm serve {f.model} --max-model-len {f.max_model_len} --max-num-seqs {f.max_num_seqs} "
            f"--gpu-memory-utilization {f.utilization} --tensor-parallel-size {f.tp}"
        )
        if f.pp > 1:
            line += f" --pipeline-parallel-size {f.pp}"
        if f.fp8:
            line += " --kv-cache-dtype fp8"
        return line


def estimate_notes(storage: object, shape: ModelShape, req: Request, kinds: frozenset) -> tuple[str, ...]:
    if kinds & {L.SLIDING, L.CHUNKED}:
        return (
            Text(
                "vLLM reserves window-1+max_num_batched_tokens ({budget}) tokens (+1 block) per sliding layer and "
                "chunk+max_num_batched_tokens per chunked layer; set {max_num_batched_tokens} to your engine's",
                budget=req.max_num_batched_tokens,
            ),
        )
    return ()


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
    },
    memory_keys=(
        "quantization",
        "cpu_offload_gb",
        "swap_space",
        "enforce_eager",
        "num_gpu_blocks_override",
        "speculative_config",
        "max_seq_len_to_capture",
        "cuda_graph_sizes",
        "compilation_config",
        "hf_overrides",
        "rope_scaling",
        "rope_theta",
        "kv_offloading_size",
        "kv_offloading_backend",
        "enable_lora",
        "max_lora_rank",
        "max_loras",
        "max_cpu_loras",
        "limit_mm_per_prompt",
        "mm_processor_cache_gb",
        "kv_transfer_config",
        "calculate_kv_scales",
        "enable_expert_parallel",
        "data_parallel_size",
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

ENTRY = EngineEntry(
    name="vllm",
    display="vLLM",
    storage=lambda shape: VllmEngine(),
    serving=VllmServing(),
    config=CONFIG,
    plannable=True,
    splits_heads=True,
    serves_fp32_in_16bit=True,
    estimate_help="vllm (paged)",
    estimate_notes=estimate_notes,
)
