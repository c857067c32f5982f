"""`recommend()`: how much KV cache a GPU profile leaves for a model, and the engine flags that follow.

Static (no GPU, no torch). Every engine is planned by the same typed stages; at each, the planned engine's
serving model (kvplan.engines.serving, one per engine module, found through kvplan.engines.registry) decides
what is engine-specific. Each engine module documents its budget terms and their sources.

  _validate     the arguments checked and normalised: engine, GPU profile, counts, TP x PP (`_Inputs`)
  _model        the model (a ResolvedModel: read once), its dtypes and weights (`_Model`)
  _context      scheduler limits, max_model_len and the length search limit, the memory fraction (`_Context`)
  _plan_at      budget (engine) -> fit (engine), at one TP size and KV dtype
  _outcome      the plan, then its alternatives: the 8-bit KV cache (`_fp8_kv`), the smallest TP (`_min_tp`)
  _assemble     notes (`_notes`, `_fit_notes`), every engine's serve command (`_flags`), throughput bounds
                (`_throughput`) and the Recommendation

`kv_memory` replaces the whole budget (vLLM's `--kv-cache-memory-bytes`); `weights_bytes` the counted weights.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from math import ceil, floor
from typing import TYPE_CHECKING, Any

from kvplan.core.lora import parse_targets
from kvplan.core.units import DTYPE_BYTES, MAX_INT, DtypeDisplay, canonical_dtype, format_bytes, parse_size, short_dtype
from kvplan.engines import DEFAULT_ENGINE, EngineEntry, Request
from kvplan.engines.base import Speculative
from kvplan.engines.llamacpp import DEFAULT_UBATCH
from kvplan.engines.offload import (
    HostInputs,
    HostPlan,
    Offload,
    backend_notes,
    check_settings,
    host_plan,
    judge,
    serve_flags,
)
from kvplan.engines.registry import (
    canonical_engine,
    entries,
    listed,
    lookup,
    sized_engines,
    sizing_storage,
    storage_entry,
    storage_for,
)
from kvplan.engines.serving import (
    ASYNC_SCHEDULING,
    BLOCK_SIZE,
    GPU_MEMORY_UTILIZATION,
    LIMIT_MM_PER_PROMPT,
    MAMBA_FULL_MEMORY_RATIO_OPTION,
    MAMBA_SSM_DTYPE_OPTION,
    MAX_MAMBA_CACHE_SIZE_OPTION,
    PREFIX_CACHING,
    UBATCH,
    VLLM_VERSION,
    BudgetInputs,
    BudgetTerm,
    Fit,
    FitInputs,
    FlagInputs,
    Layout,
    LoraSettings,
    ServingModel,
    Startup,
    StartupInputs,
    UtilizationInputs,
)
from kvplan.engines.sizing import fullest_stage, gpu_kv
from kvplan.engines.vllm import parse_speculative_config
from kvplan.errors import READ_ERRORS, KvplanError, Text, UsageError, placeholder
from kvplan.planning.requests import above_model_limit, bounded_count, make_request, optional_positive, positive_int
from kvplan.planning.resolved import ModelRef, ResolvedModel, resolve
from kvplan.planning.speculative import speculative_inputs, speculative_summary

if TYPE_CHECKING:
    from kvplan.sources.hardware import HardwareProfile

SCHEMA = "kvplan.recommend/1"
GIB = 2**30
MIB = 2**20
DEFAULT_MAX_MODEL_LEN_CAP = 131072
AUTO = "auto"  # max_model_len "auto": vLLM's auto-fit (`--max-model-len auto`, -1)
TP_CHOICES = (1, 2, 4, 8)
# the options only some engines read (ServingModel.options), and the fields (kvplan.errors) that set them
_OPTION_FIELDS = (
    (GPU_MEMORY_UTILIZATION, "gpu_memory_utilization"),
    (UBATCH, "n_ubatch"),
    (VLLM_VERSION, "vllm_version"),
    (BLOCK_SIZE, "block_size"),
    (PREFIX_CACHING, "prefix_caching"),
    (ASYNC_SCHEDULING, "async_scheduling"),
    (LIMIT_MM_PER_PROMPT, "limit_mm_per_prompt"),
    (MAMBA_FULL_MEMORY_RATIO_OPTION, "mamba_full_memory_ratio"),
    (MAX_MAMBA_CACHE_SIZE_OPTION, "max_mamba_cache_size"),
    (MAMBA_SSM_DTYPE_OPTION, "mamba_ssm_dtype"),
)


@dataclass(frozen=True)
class Recommendation(DtypeDisplay):
    """Per-GPU KV budget and what vLLM / SGLang make of it. Byte counts are per GPU (the fullest stage)."""

    model: str
    gpu_profile: str
    gpu_memory_bytes: int
    gpus: int
    engine: str
    tp: int
    pp: int
    model_dtype: str  # canonical (kvplan.core.units); `dtype` is its display name, the JSON key
    cache_dtype: str  # canonical; `kv_dtype` is its display name, the JSON key
    gpu_memory_utilization: float | None
    weights_bytes: int | None
    weights_source: str | None
    available_kv_memory_bytes: int
    kv_cache_tokens: int
    num_blocks: int
    block_size: int
    max_model_len: int
    max_model_len_fit: int
    max_concurrency: float
    concurrency: int | None
    fits: bool
    max_num_seqs: int
    max_num_batched_tokens: int
    budget: tuple[BudgetTerm, ...]
    flags: dict[str, str]
    fp8_kv: dict[str, Any] | None = None
    min_tp_to_fit: int | None = None
    notes: tuple[str, ...] = field(default=())
    throughput_bounds: tuple[dict[str, Any], ...] = field(default=())
    prefill_tokens_per_s_upper_bound: float | None = None
    throughput_assumptions: tuple[str, ...] = field(default=())
    kv_bytes_per_request: int | None = None  # one request of max_model_len on the fullest GPU (engine storage)
    vllm_version: str | None = None  # the vLLM release modelled (engines with releases; None for the others)
    # the blocks vLLM's Mamba check counts; SGLang's max_mamba_cache_size state slots (None: no Mamba/GDN layers)
    mamba_cache_blocks: int | None = None
    startup_error: str | None = None  # the error the engine would raise at start-up, in its words (None: starts)
    startup_rule: str = ""  # which start-up check raised it ("" when none)
    startup_fix: dict[str, int | float] = field(
        default_factory=dict
    )  # the setting that lets it start (plan key -> value)
    log_lines: tuple[str, ...] = field(default=())  # the start-up lines the engine would log ([] where not modelled)
    # the multimodal encoders and projectors per GPU, beside weights_bytes (0: none; None: a wrapper kvplan does not
    # count, or figures that hold them already: safetensors sizes, --weights-bytes)
    multimodal_weights_bytes: int | None = 0
    config_source: str = "dict"  # where the config was read (kvplan.planning.resolved.ResolvedModel.config_source)
    revision: str | None = None  # the Hub snapshot's commit hash, when the config came from the Hub or its cache
    speculative: Speculative | None = None  # the speculative-decoding setup as the engine runs it (None: none)
    # the KV offload tiers (kvplan.engines.offload): each tier's tokens and host bytes; the host RAM per node they
    # take, the host memory judged against (--host-memory, else the profile's host_memory_bytes; None: unknown),
    # and the verdict (None: no tiers, or the host memory is unknown), naming the tier that runs out
    host_tiers: tuple[dict[str, Any], ...] = field(default=())
    host_ram_bytes: int | None = None
    host_shm_bytes: int | None = None
    host_memory_bytes: int | None = None
    host_memory_source: str | None = None
    host_fits: bool | None = None
    host_detail: str | None = None
    # the layout beyond TP x PP and its per-GPU figures (`_parallel`); None (and no JSON key) when none was given
    parallel: dict[str, Any] | None = None
    # the LoRA adapters the engine keeps in host (CPU) memory per GPU worker, and where the figure comes from (None:
    # LoRA off, or the engine keeps none there); the GPU's LoRA slots are the budget's `lora` term
    lora_host_bytes: int | None = None
    lora_host_source: str | None = None
    # what this deployment holds on each GPU once started, for another deployment sharing the GPU, and how
    gpu_footprint_bytes: int | None = None
    gpu_footprint_source: str | None = None
    gpu_used_by_others_bytes: int = 0  # what other deployments held when it starts (co-location; 0: none)

    def to_dict(self) -> dict[str, Any]:
        names = {"model_dtype": "dtype", "cache_dtype": "kv_dtype"}
        data = {names.get(k, k): short_dtype(v) if k in names else v for k, v in asdict(self).items()}
        if data["parallel"] is None:  # plans without DP, DCP or EP print what they always have
            del data["parallel"]
        data["budget"] = [asdict(t) for t in self.budget]
        data["notes"] = list(self.notes)
        data["throughput_bounds"] = [dict(row) for row in self.throughput_bounds]
        data["throughput_assumptions"] = list(self.throughput_assumptions)
        data["log_lines"] = list(self.log_lines)
        data["speculative"] = speculative_summary(self.speculative)
        data["host_tiers"] = [dict(t) for t in self.host_tiers]
        return {"schema": SCHEMA, **data}


# ------------------------------------------------------------------------------------------- stage inputs


@dataclass(frozen=True)
class _Options:
    """recommend()'s keyword arguments, as given."""

    gpu_profile: str
    gpus: int | None  # None: tp x pp (resolved in `_validate`)
    engine: str
    gpu_memory_utilization: float | None
    max_model_len: int | str | None  # "auto": vLLM's auto-fit
    concurrency: int | None
    dtype: str
    kv_dtype: str
    tp: int | None
    pp: int
    block_size: int | None
    kv_memory: int | str | None
    max_num_batched_tokens: int | None
    profiles_dir: str | None
    cudagraph_profiling: bool | None
    offline: bool | None
    weights_bytes: int | str | None
    n_ubatch: int
    vllm_version: str | None
    max_num_seqs: int | None
    revision: str | None
    prefix_caching: bool | None
    async_scheduling: bool | None
    assume_llama: bool
    hub_weights: bool | None
    quantization: str | None = None
    speculative_config: str | dict[str, Any] | None = None
    offload: Offload | None = None
    host_memory: int | str | None = None
    dp: int = 1
    dcp: int = 1
    expert_parallel: bool = False
    redundant_experts: int = 0
    nodes: int | None = None
    gpus_per_node: int | None = None
    report_layout: bool = False  # the `parallel` figures even without DP, DCP, EP or nodes (the layout search)
    enable_lora: bool = False
    max_loras: int | None = None
    max_lora_rank: int | None = None
    max_cpu_loras: int | None = None
    lora_dtype: str | None = None
    lora_target_modules: str | list[str] | tuple[str, ...] | None = None
    limit_mm_per_prompt: str | dict[str, Any] | None = None
    gpu_used_by_others: int | str | None = None
    mamba_full_memory_ratio: float | None = None
    max_mamba_cache_size: int | None = None
    mamba_ssm_dtype: str | None = None


@dataclass(frozen=True)
class _Inputs:
    """The arguments validated: the engine and its serving model, the GPU profile, TP x PP, the KV memory given,
    and the engine release modelled (`EngineEntry.release`: the one given, installed or newest; None for engines
    without releases) with why."""

    options: _Options
    entry: EngineEntry
    serving: ServingModel
    profile: HardwareProfile
    tp: int
    pp: int
    kv_memory: int | None
    release: str | None = None
    release_source: str | None = None
    gpus: int = 1  # --gpus, else tp x pp x dp
    speculative: Speculative | None = None  # the setup given, parsed (its drafter resolved in `_model`)
    layout: Layout = field(default_factory=Layout)  # DP, DCP and expert parallelism
    lora: LoraSettings | None = None  # LoRA serving (None: off)
    limit_mm_per_prompt: dict[str, int] | None = None  # items per prompt by modality (vLLM's spelling, parsed)
    used_by_others: int = 0  # GPU memory per GPU other deployments hold when this one starts (co-location)


@dataclass(frozen=True)
class _Model:
    """The model read once, its model and (engine) KV dtypes, and its weights with their source."""

    resolved: ResolvedModel
    request: Request  # one request of max_model_len at the plan's settings, checked (make_request)
    weights: int | None
    weights_source: str | None
    encoder_weights: int | None = 0  # the multimodal encoders and projectors beside `weights` (None: not counted)

    @property
    def model_dtype(self) -> str:
        return self.request.model_dtype

    @property
    def kv_dtype(self) -> str:
        return self.request.kv_dtype


@dataclass(frozen=True)
class _Context:
    """Everything a plan at some TP size and KV dtype needs."""

    inputs: _Inputs
    model: _Model
    max_num_batched_tokens: int
    max_num_seqs: int  # the scheduler's cap (the engine's default, or --max-num-seqs)
    seq_len: int  # max_model_len
    search_limit: int  # the longest max_model_len searched
    utilization: float
    utilization_source: str = ""  # how the engine's default fraction was derived (empty: given, or not said)
    auto_from: int | None = None  # max_model_len "auto": the model's limit the length was fitted from

    @property
    def serving(self) -> ServingModel:
        return self.inputs.serving

    @property
    def options(self) -> _Options:
        return self.inputs.options

    @property
    def shape(self) -> Any:
        return self.model.resolved.shape

    @property
    def release(self) -> str | None:
        return self.inputs.release


@dataclass(frozen=True)
class _Outcome:
    """The plan at the requested TP and KV dtype, its alternatives, and what to serve with."""

    terms: list[BudgetTerm]
    fit: Fit
    fits: bool
    fp8_kv: dict[str, Any] | None
    min_tp: int | None
    max_num_seqs: int  # what the engine is started with: the cap (a reserving engine: full_length)
    serve_len: int
    full_length: int  # requests of max_model_len held at once: the concurrency asked, else the KV-limited count


# ------------------------------------------------------------------------------------------------- stages


def _serving(engine: str) -> tuple[EngineEntry, ServingModel]:
    """The engine's entry and serving model; a UsageError for engines recommend cannot size."""
    entry = lookup(engine)
    if entry is None or not isinstance(entry.serving, ServingModel):
        sized = sized_engines()
        flags_only = [e.display for e in entries(lambda e: e.serving is not None and e.name not in sized)]
        also = f" ({listed(flags_only, 'and')}: their flags are printed with every plan, without a budget model)"
        raise UsageError(
            f"recommend supports {', '.join(sized)}; not {canonical_engine(engine)!r}",
            hint=Text("use {engine} {names}{also}", names=listed(sized), also=also if flags_only else ""),
            field="engine",
        )
    return entry, entry.serving


def _validate(o: _Options) -> _Inputs:
    from kvplan.sources.hardware import load_profile

    entry, serving = _serving(o.engine)
    profile = load_profile(o.gpu_profile, profiles_dir=o.profiles_dir)
    if o.gpus_per_node is None and profile.gpus_per_node is not None:  # the profile's node (DGX/HGX, a GB200 tray)
        o = replace(o, gpus_per_node=profile.gpus_per_node)
    # the plan's own settings, checked before the model is read; the request's in make_request (`_model`): gpus,
    # pp and tp first (the GPU count and the default TP follow from them), and the optional counts whose
    # defaults come later
    for name, value in (("pp", o.pp), ("n_ubatch", o.n_ubatch), ("dp", o.dp), ("dcp", o.dcp)):
        bounded_count(name, value)
    for name, optional in (("tp", o.tp), ("gpus", o.gpus), ("nodes", o.nodes), ("gpus_per_node", o.gpus_per_node)):
        if optional is not None:
            bounded_count(name, optional)
    layout = _layout(o, entry, serving)
    dp = layout.dp
    if o.gpus is not None and o.nodes is not None and o.gpus != _node_gpus(o):
        raise UsageError(
            Text("{gpus} {g} is not {nodes} x {gpus_per_node} = {n}", g=o.gpus, n=_node_gpus(o)),
            hint=Text("give {gpus} or {nodes} with {gpus_per_node}, not both"),
            field="gpus",
        )
    # not given: the GPUs the parallel layout needs, tp x pp x dp (or the nodes' GPUs)
    if o.gpus is None and o.nodes is None and (o.tp or 1) * o.pp * dp > MAX_INT:
        raise UsageError(
            Text(
                "{tp} x {pp} x {dp} needs {n} GPUs, more than {bound}",
                n=f"{(o.tp or 1) * o.pp * dp:.3g}",
                bound=f"{MAX_INT:,}",
            ),
            hint=Text("lower {tp}, {pp} or {dp}"),
            field="dp",
        )
    if o.gpus is None and o.nodes is not None and o.gpus_per_node is not None and o.nodes * o.gpus_per_node > MAX_INT:
        raise UsageError(
            Text(
                "{nodes} x {gpus_per_node} is {n} GPUs, more than {bound}",
                n=f"{o.nodes * o.gpus_per_node:.3g}",
                bound=f"{MAX_INT:,}",
            ),
            hint=Text("lower {nodes} or {gpus_per_node}"),
            field="nodes",
        )
    gpus = bounded_count(
        "gpus",
        o.gpus
        if o.gpus is not None
        else _node_gpus(o)
        if o.nodes is not None
        else positive_int("tp", o.tp if o.tp is not None else 1) * o.pp * dp,
    )
    given_tp, pp = serving.parallel(o.tp, o.pp, gpus)
    tp = positive_int("tp", given_tp if given_tp is not None else max(1, gpus // (pp * dp)))
    if tp * pp * dp > gpus:
        used = "{tp} {t} x {pp} {p}" + (" x {dp} {d}" if dp > 1 else "")
        raise UsageError(
            Text(used + " needs {n} GPUs, {gpus} is {g}", t=tp, p=pp, d=dp, n=tp * pp * dp, g=gpus),
            hint=Text("raise {gpus}"),
            field="gpus",
        )
    if o.quantization is not None and not serving.online_quantization:
        raise UsageError(
            Text("{quantization} is modelled for vLLM's online quantization only, not {name}", name=entry.name),
            hint=Text("drop {quantization}, or plan with --engine vllm"),
            field="quantization",
        )
    if isinstance(o.max_model_len, str) and o.max_model_len.strip().lower() != AUTO:
        raise UsageError(
            Text("{max_model_len} must be a length or 'auto', got {v!r}", v=o.max_model_len),
            hint="pass e.g. 8192, 32k or auto",
            field="max_model_len",
        )
    for name, optional in (
        ("max_model_len", None if isinstance(o.max_model_len, str) else o.max_model_len),
        ("concurrency", o.concurrency),
        ("max_num_seqs", o.max_num_seqs),
        ("block_size", o.block_size),
        ("max_num_batched_tokens", o.max_num_batched_tokens),
    ):
        optional_positive(name, optional)
    util = o.gpu_memory_utilization
    if util is not None and not 0 < util <= 1:
        raise UsageError(
            Text("{gpu_memory_utilization} must be in (0, 1], got {u}", u=util),
            hint="pass e.g. 0.9",
            field="gpu_memory_utilization",
        )
    kv_memory = None if o.kv_memory is None else parse_size(o.kv_memory)
    if o.offload is not None:  # a tier the engine does not have is refused before the model is read
        check_settings(o.offload, entry.name)
    # the release modelled: a bad --vllm-version is refused before the model is read
    release, source = entry.release(o.vllm_version) if entry.release is not None else (None, None)
    speculative = None if o.speculative_config is None else parse_speculative_config(o.speculative_config)
    limits = None
    if o.limit_mm_per_prompt is not None and LIMIT_MM_PER_PROMPT in serving.options:
        from kvplan.engines.vllm import parse_limit_mm_per_prompt

        limits = parse_limit_mm_per_prompt(o.limit_mm_per_prompt)
    lora = _lora(o, entry, serving)
    others = 0 if o.gpu_used_by_others is None else parse_size(o.gpu_used_by_others)
    if others and not serving.models_colocation:
        raise UsageError(
            Text(
                "kvplan models co-location (other deployments on the same GPU) for vLLM only, not {name}",
                name=entry.display,
            ),
            hint=Text("plan with {engine} vllm, or on a GPU of its own"),
            field="engine",
        )
    if others >= profile.memory_bytes:
        raise UsageError(
            f"the deployments sharing the GPU already hold {format_bytes(others)} of its {format_bytes(profile.memory_bytes)}",
            hint="put this deployment on another GPU",
            field="gpu_profile",
        )
    return _Inputs(
        o, entry, serving, profile, tp, pp, kv_memory, release, source, gpus, speculative, layout, lora, limits, others
    )


def _layout(o: _Options, entry: EngineEntry, serving: ServingModel) -> Layout:
    """The DP / DCP / EP settings given, refused for an engine whose serving model does not model them."""
    if o.redundant_experts < 0:
        raise UsageError(
            Text("{redundant_experts} must be 0 or more, got {v}", v=o.redundant_experts),
            hint="pass e.g. 32",
            field="redundant_experts",
        )
    layout = Layout(o.dp, o.dcp, o.expert_parallel, o.redundant_experts)
    unmodelled = [name for name in layout.given if name not in serving.parallelism]
    if unmodelled:
        raise UsageError(
            Text(
                ", ".join(placeholder(name) for name in unmodelled) + " is not modelled for {name}",
                name=entry.name,
            ),
            hint=Text("drop it, or plan with an engine that models it (--engine vllm)"),
            field=unmodelled[0],
        )
    return layout


def _node_gpus(o: _Options) -> int:
    """--nodes x --gpus-per-node: the GPUs of the nodes given."""
    nodes = bounded_count("nodes", o.nodes)
    if o.gpus_per_node is None:
        raise UsageError(
            Text("{nodes} needs {gpus_per_node:N}: this GPU profile gives no GPUs per node"),
            hint=Text("pass e.g. {gpus_per_node} 8"),
            field="gpus_per_node",
        )
    return nodes * bounded_count("gpus_per_node", o.gpus_per_node)


def _lora(o: _Options, entry: EngineEntry, serving: ServingModel) -> LoraSettings | None:
    """The LoRA settings (None: LoRA off): on with enable_lora or any LoRA count given; the engine's defaults for
    the counts not given (ServingModel.lora_defaults)."""
    given = (o.max_loras, o.max_lora_rank, o.max_cpu_loras, o.lora_dtype, o.lora_target_modules)
    if not o.enable_lora and all(v is None for v in given):
        return None
    if not serving.serves_lora:
        raise UsageError(
            Text("kvplan has not read how {name} holds LoRA adapters", name=entry.display),
            hint=Text("plan LoRA serving with {engine} vllm, sglang or tensorrt-llm, or drop {max_loras}"),
            field="max_loras",
        )
    for name, value in (
        ("max_loras", o.max_loras),
        ("max_lora_rank", o.max_lora_rank),
        ("max_cpu_loras", o.max_cpu_loras),
    ):
        optional_positive(name, value)
    default_loras, default_rank = serving.lora_defaults
    rank = o.max_lora_rank if o.max_lora_rank is not None else default_rank
    if rank is None:
        raise UsageError(
            Text("{name} reads the LoRA rank from the adapters it loads, which kvplan does not", name=entry.display),
            hint=Text("pass {max_lora_rank} (the largest rank of your adapters)"),
            field="max_lora_rank",
        )
    dtype = None
    if o.lora_dtype is not None and o.lora_dtype.strip().lower() != "auto":
        dtype = canonical_dtype(o.lora_dtype, what="lora_dtype")
    return LoraSettings(
        max_loras=o.max_loras if o.max_loras is not None else default_loras,
        max_lora_rank=rank,
        max_cpu_loras=o.max_cpu_loras,
        lora_dtype=dtype,
        target_modules=parse_targets(o.lora_target_modules),
    )


def _model(model: ModelRef, i: _Inputs) -> _Model:
    o = i.options
    resolved = resolve(
        model, revision=o.revision, offline=o.offline, assume_llama=o.assume_llama, hub_weights=o.hub_weights
    )
    shape = resolved.shape
    default_mnbt, _ = i.serving.scheduler_defaults(i.profile, i.release)
    limit = shape.max_position_embeddings or DEFAULT_MAX_MODEL_LEN_CAP
    if isinstance(o.max_model_len, str):  # "auto": vLLM starts from the model's own limit, then fits it down
        seq_len = limit
    else:
        seq_len = o.max_model_len or min(limit, DEFAULT_MAX_MODEL_LEN_CAP)
    request = make_request(  # one request of max_model_len (default: the model's limit, capped), checked once
        shape,
        engine=i.entry.name,
        seq_len=seq_len,
        dtype=o.dtype,
        kv_dtype=o.kv_dtype,
        tp=i.tp,
        pp=i.pp,
        block_size=o.block_size,
        max_num_batched_tokens=o.max_num_batched_tokens or default_mnbt,
        n_ubatch=o.n_ubatch,
        compute_capability=i.profile.compute_capability,  # SGLang's auto KV dtype of DSA models turns on it
        engine_version=i.release,  # vLLM's auto KV dtype of DeepSeek-V4 turns on it
    )
    request = replace(  # the release and its settings, which some engines' storage rules read
        request,
        dcp=i.layout.dcp,
        engine_version=i.release,
        prefix_caching=o.prefix_caching,
        async_scheduling=o.async_scheduling,
        compute_capability=i.profile.compute_capability,
        vendor=i.profile.vendor,
        mamba_full_memory_ratio=o.mamba_full_memory_ratio,
        max_mamba_cache_size=o.max_mamba_cache_size,
        mamba_ssm_dtype=o.mamba_ssm_dtype,
    )
    if i.speculative is not None:  # the drafter as the engine runs it, which its storage rules read
        request = replace(request, speculative=_speculative(i, resolved, request.model_dtype))
    weights: int | None
    source: str | None
    if o.weights_bytes is not None:
        weights, source = parse_size(o.weights_bytes), "--weights-bytes"
    else:
        weights, source = resolved.weights(request.model_dtype, o.quantization)
    if weights is None and i.kv_memory is None:
        raise UsageError(
            "cannot count this model's weights",
            hint=Text("pass {kv_memory:SIZE} or {weights_bytes:SIZE}"),
            field="weights_bytes",
        )
    # the towers of a multimodal checkpoint, beside the language model's weights (the analytic count); the
    # safetensors' sizes and a --weights-bytes hold them already
    encoders = resolved.encoder_weights(request.model_dtype) if source == "analytic" else 0
    return _Model(resolved, request, weights, source, encoders)


def _speculative(i: _Inputs, resolved: ResolvedModel, model_dtype: str) -> Speculative:
    """The speculative setup given, as the planned engine runs it (ServingModel.speculative), with the draft model it
    names read when kvplan can (kvplan.planning.speculative)."""
    assert i.speculative is not None
    return i.serving.speculative(speculative_inputs(i.speculative, resolved, model_dtype, offline=i.options.offline))


def _context(i: _Inputs, m: _Model) -> _Context:
    o, shape, req = i.options, m.resolved.shape, m.request
    _, default_seqs = i.serving.scheduler_defaults(i.profile, i.release)
    # the cap the engine runs with (its sampler warm-up uses it too): the one given, else the engine's default
    seqs = i.serving.sequence_cap(o.max_num_seqs, default_seqs, req.max_num_batched_tokens)
    limit = shape.max_position_embeddings or DEFAULT_MAX_MODEL_LEN_CAP
    # the largest max_model_len is searched up to the model's own limit: vLLM refuses more unless told to
    search_limit = limit if shape.max_position_embeddings else max(req.seq_len, limit)
    util, util_source = o.gpu_memory_utilization, ""
    if util is None:
        util, util_source = i.serving.utilization(
            UtilizationInputs(
                i.profile.memory_bytes,
                i.tp,
                i.pp,
                m.resolved.config,
                shape,
                o.max_num_seqs,
                m.resolved.name,
                i.release,
                i.profile.compute_capability,
            )
        )
    context = _Context(i, m, req.max_num_batched_tokens, seqs, req.seq_len, search_limit, util, util_source)
    return _auto_fit(context) if isinstance(o.max_model_len, str) else context


def _auto_fit(c: _Context) -> _Context:
    """max_model_len "auto": vLLM's auto-fit, the longest length whose blocks fit (null block held back where the
    release has one), capped at the model's limit (vllm-0.19.1/vllm/v1/core/kv_cache_utils.py:1370-1468
    `_estimate_max_model_len_from_groups` and `_auto_fit_max_model_len`; 0.29.0 :2316-2325; 0.33.0
    kv_cache_planning.py:1337). No length fits: the limit is kept (the start-up check then fails)."""
    _, fit = _plan_at(c, c.inputs.tp, c.model.kv_dtype)
    length = min(fit.fit_len, c.seq_len)
    if length <= 0 or length == c.seq_len:
        return replace(c, auto_from=c.seq_len)
    model = replace(c.model, request=replace(c.model.request, seq_len=length))
    return replace(c, model=model, seq_len=length, auto_from=c.seq_len)


def _budget_inputs(c: _Context, tp: int) -> BudgetInputs:
    o = c.options
    _, layers_on_gpu = fullest_stage(c.shape, c.inputs.pp)
    return BudgetInputs(
        config=c.model.resolved.config,
        shape=c.shape,
        profile=c.inputs.profile,
        tp=tp,
        pp=c.inputs.pp,
        utilization=c.utilization,
        weights=c.model.weights or 0,
        layers_on_gpu=layers_on_gpu,
        max_num_batched_tokens=c.max_num_batched_tokens,
        max_num_seqs=c.max_num_seqs,
        n_ubatch=o.n_ubatch,
        vllm_version=c.release,
        cudagraph_profiling=o.cudagraph_profiling,
        model_dtype=c.model.model_dtype,
        encoder_weights=c.model.encoder_weights or 0,
        encoder_numels=c.model.resolved.encoder_numels() if c.model.encoder_weights else (),
        tensor_bytes=_tensor_bytes(c),
        speculative=c.model.request.speculative,
        layout=c.inputs.layout,
        expert_weights=_expert_weights(c, tp),
        expert_layers=c.model.resolved.expert_layers() if c.inputs.layout.redundant_experts else 0,
        lora=c.inputs.lora,
        limit_mm_per_prompt=c.inputs.limit_mm_per_prompt,
        max_model_len=c.seq_len,
        request=replace(c.model.request, tp=tp),
        utilization_source=c.utilization_source,
    )


def _expert_weights(c: _Context, tp: int) -> int | None:
    """The routed experts' bytes within the weights, where a layout places them apart (DP or EP given) or an
    engine pads them per TP rank (vLLM's Kimi experts, kvplan.engines.vllm.kimi_moe_padding): the analytic count
    at the plan's dtype; None for --weights-bytes (a whole-model figure kvplan cannot split)."""
    layout = c.inputs.layout
    if not (layout.dp > 1 or layout.expert_parallel or tp > 1) or c.model.weights_source == "--weights-bytes":
        return None
    return c.model.resolved.expert_weights(c.model.model_dtype, c.options.quantization)


def _tensor_bytes(c: _Context) -> Callable[[tuple[str, ...]], int | None]:
    """Bytes as stored of the language model's tensors whose names hold any of `parts` (an engine's replicated
    tensors), at the plan's dtype; None for --weights-bytes or a model kvplan cannot count."""
    resolved, dtype = c.model.resolved, c.model.model_dtype

    def of(parts: tuple[str, ...]) -> int | None:
        if c.model.weights_source == "--weights-bytes":
            return None
        from kvplan.weights.stored import tensors_bytes
        from kvplan.weights.tensors import weight_tensors

        try:
            tensors = resolved.memo("weight_tensors", lambda: weight_tensors(resolved.config))
            chosen = [t for t in tensors if any(p in t.name for p in parts)]
            return tensors_bytes(resolved.config, chosen, int(DTYPE_BYTES[dtype]))
        except READ_ERRORS:
            return None

    return of


def _budget(c: _Context, tp: int) -> tuple[list[BudgetTerm], int]:
    """The per-GPU KV budget at `tp`: the engine's terms, or the --kv-memory given."""
    kv_memory = c.inputs.kv_memory
    if kv_memory is not None:
        return [BudgetTerm("kv_memory", kv_memory, "--kv-memory (replaces the whole budget)")], kv_memory
    return c.serving.budget(_budget_inputs(c, tp))


def _request(c: _Context, tp: int, kv_dtype: str) -> Request:
    """One request of max_model_len at `tp` and `kv_dtype` (the checked request, at another TP or KV dtype)."""
    return replace(c.model.request, tp=tp, kv_dtype=kv_dtype)


def _plan_at(c: _Context, tp: int, kv_dtype: str) -> tuple[list[BudgetTerm], Fit]:
    """Budget (engine) -> fit (engine) at `tp` and `kv_dtype`."""
    caches, _ = fullest_stage(c.shape, c.inputs.pp)
    terms, available = _budget(c, tp)
    storage = sizing_storage(c.inputs.entry.name, c.shape)
    fit_inputs = FitInputs(
        c.shape, storage, tuple(caches), _request(c, tp, kv_dtype), available, c.search_limit, c.options.max_num_seqs
    )
    return terms, c.serving.fit(fit_inputs)


def _accepts(c: _Context, fit: Fit) -> bool:
    """One request fits, and the concurrency asked for."""
    wanted = c.options.concurrency
    # data parallelism: every rank holds its own pool, the requests split over the ranks (the fullest holds
    # ceil(wanted / dp) of them)
    return fit.fits_one and (wanted is None or fit.concurrency >= -(-wanted // c.inputs.layout.dp))


def _fp8_kv(c: _Context, fits: bool) -> dict[str, Any] | None:
    """The plan with the engine's 8-bit KV cache, where it has one the plan does not already use."""
    alternative = c.serving.fp8_alternative(c.model.kv_dtype, c.inputs.profile)
    if alternative is None:
        return None
    kv_dtype, label = alternative
    try:
        _, f8 = _plan_at(c, c.inputs.tp, kv_dtype)
    except KvplanError:
        return None
    return {
        "kv_dtype": label,
        "kv_cache_tokens": f8.tokens,
        "num_blocks": f8.blocks,
        "max_concurrency": round(f8.concurrency, 2),
        "max_model_len_fit": f8.fit_len,
        "fits": _accepts(c, f8),
        "changes_answer": _accepts(c, f8) != fits,
    }


def _min_tp(c: _Context, fits: bool) -> int | None:
    """The smallest TP size (of TP_CHOICES) that fits, for a plan that does not and an engine with TP."""
    if fits or not c.serving.searches_tp:
        return None
    for candidate in TP_CHOICES:
        try:
            if _accepts(c, _plan_at(c, candidate, c.model.kv_dtype)[1]):
                return candidate
        except KvplanError:
            continue
    return None


def _outcome(c: _Context) -> _Outcome:
    terms, fit = _plan_at(c, c.inputs.tp, c.model.kv_dtype)
    fits = _accepts(c, fit)
    # The scheduler's cap (given, else the release's default) is what the engine runs with: vLLM admits at most
    # max_num_seqs running requests (vllm-0.33.0/vllm/v1/core/sched/scheduler.py:131 max_num_running_reqs) and
    # its KV check asks only that one request of max_model_len fit (v1/core/kv_cache_planning.py:151-195
    # check_enough_kv_cache_memory), so the cap is never lowered to the KV-limited concurrency, which is its own
    # figure (max_concurrency). An engine that reserves each sequence's context (reserves_seqs: llama.cpp's -np
    # slots) is started with the requests of max_model_len asked for, else those that fit. An engine that derives
    # its cap from the pool it built (SGLang's max_running_requests) says so through its serving model's
    # `running_cap`, given the cap as `sequence_cap` settled it.
    serve_len = c.seq_len if fit.fits_one or fit.fit_len == 0 else min(c.seq_len, fit.fit_len)
    given = c.max_num_seqs if c.options.max_num_seqs is not None else None
    cap, _ = c.serving.running_cap(given, c.max_num_seqs, fit, serve_len)
    fitted = max(1, min(floor(fit.concurrency), cap)) if fit.concurrency != float("inf") else cap
    full_length = c.options.concurrency or fitted
    return _Outcome(
        terms,
        fit,
        fits,
        _fp8_kv(c, fits),
        _min_tp(c, fits),
        full_length if c.serving.reserves_seqs else cap,
        serve_len,
        full_length if c.serving.reserves_seqs else fitted,
    )


def _notes(c: _Context) -> list[str]:
    """Notes on the inputs: the model's assumptions, options the engine ignores, lengths beyond the limit."""
    o, shape = c.options, c.shape
    notes: list[str] = list(shape.assumptions)
    given = {
        GPU_MEMORY_UTILIZATION: o.gpu_memory_utilization is not None,
        UBATCH: o.n_ubatch != DEFAULT_UBATCH,
        VLLM_VERSION: o.vllm_version is not None,
        BLOCK_SIZE: o.block_size is not None,
        PREFIX_CACHING: o.prefix_caching is not None,
        ASYNC_SCHEDULING: o.async_scheduling is not None,
        LIMIT_MM_PER_PROMPT: o.limit_mm_per_prompt is not None,
        MAMBA_FULL_MEMORY_RATIO_OPTION: o.mamba_full_memory_ratio is not None,
        MAX_MAMBA_CACHE_SIZE_OPTION: o.max_mamba_cache_size is not None,
        MAMBA_SSM_DTYPE_OPTION: o.mamba_ssm_dtype is not None,
    }
    ignored = [
        placeholder(name) for option, name in _OPTION_FIELDS if given[option] and option not in c.serving.options
    ]
    if ignored:
        notes.append(Text(", ".join(ignored) + " does not apply to {which} and was ignored", which=c.inputs.entry.name))
    if above_model_limit(c.seq_len, shape.max_position_embeddings):
        notes.append(
            f"max_model_len {c.seq_len} is above the model's limit ({shape.max_position_embeddings}); vLLM "
            "refuses it unless VLLM_ALLOW_LONG_MAX_MODEL_LEN=1"
        )
    if c.release is not None and c.inputs.entry.release_notes is not None:
        notes += c.inputs.entry.release_notes(c.release, c.inputs.release_source or "given")
    spec = c.model.request.speculative
    if spec is not None:
        notes += list(spec.notes)
        if c.inputs.pp > 1 and spec.draft_caches:
            notes.append(
                "the drafter's KV layers are planned on the fullest pipeline stage (vLLM builds the drafter on the "
                "last stage, at pipeline_parallel_size 1)"
            )
    if c.inputs.kv_memory is None:  # what the modelled budget leaves out (a given --kv-memory replaces it)
        notes += c.serving.budget_notes(_budget_inputs(c, c.inputs.tp))
    if c.inputs.used_by_others:
        notes += c.serving.colocation_notes(c.inputs.used_by_others, c.inputs.profile.memory_bytes, c.utilization)
    return notes + c.serving.notes(c.model.model_dtype, c.model.weights_source)


def _encoder_notes(c: _Context, out: _Outcome) -> list[str]:
    """What the weights say of a multimodal checkpoint's encoders: not counted, or counted but not in the budget."""
    from kvplan.weights.encoders import has_encoders

    m = c.model
    if c.inputs.kv_memory is not None or not has_encoders(m.resolved.config):
        return []
    if m.encoder_weights is None:
        kind = m.resolved.config.get("model_type")
        return [
            f"the multimodal encoders of this {kind} checkpoint (vision_config / audio_config) are not counted: "
            "the weights are the language model's alone"
        ]
    if m.encoder_weights and not any(t.name == "multimodal_weights" for t in out.terms):
        size = format_bytes(m.encoder_weights // c.inputs.tp)
        return [f"the multimodal encoders ({size} per GPU) are not in {c.inputs.entry.name}'s budget"]
    return []


def _fit_notes(c: _Context, out: _Outcome) -> list[str]:
    if out.fits:
        return []
    notes = []
    if out.fit.available == 0:
        notes.append("the weights and overheads leave no memory for the KV cache on this GPU")
    pp, min_tp, dp = c.inputs.pp, out.min_tp, c.inputs.layout.dp
    if c.inputs.kv_memory is None and min_tp and min_tp * pp * dp > c.inputs.gpus:
        notes.append(Text("{tp} {t} would fit (needs {n} GPUs)", t=min_tp, n=min_tp * pp * dp))
    return notes


def _cap_notes(c: _Context, out: _Outcome) -> list[str]:
    """The sequence cap against the KV-limited concurrency, where the cap is more than the cache holds at
    max_model_len (a cap: the engine starts, and runs more of them when they are shorter)."""
    fit, wanted = out.fit, c.options.concurrency
    if c.serving.reserves_seqs:
        return c.serving.slot_notes(out.full_length)
    # the cap as the engine serves with it (the serving model's: vLLM's default, SGLang's derived from its pool)
    cap, name = c.serving.running_cap(c.options.max_num_seqs, c.max_num_seqs, fit, out.serve_len)
    notes: list[str] = []
    if wanted is not None and wanted > cap:
        notes.append(
            Text(
                "{concurrency} {w} is above " + name + ": the engine runs at most {n} sequences at once",
                w=wanted,
                n=cap,
            )
        )
    if fit.fits_one and fit.concurrency < cap:
        notes.append(
            Text(
                name + " caps the running sequences: {k:g} requests of {l:,} tokens fit in the KV "
                "cache at once (max_concurrency); more run when they are shorter",
                n=cap,
                k=round(fit.concurrency, 2),
                l=c.seq_len,
            )
        )
    return notes


def _flags(c: _Context, out: _Outcome) -> dict[str, str]:
    """Every engine's serve command for this plan, keyed by Recommendation.flags keys (registry order)."""
    budget = _budget_inputs(c, c.inputs.tp)
    flags = {}
    for entry in entries(lambda e: e.serving is not None):
        inputs = FlagInputs(
            model=c.model.resolved.name,
            max_model_len=out.serve_len,
            max_num_seqs=c.max_num_seqs,
            utilization=c.utilization,
            tp=c.inputs.tp,
            pp=c.inputs.pp,
            kv_dtype=c.model.kv_dtype,
            model_dtype=c.model.model_dtype,
            max_num_batched_tokens=c.max_num_batched_tokens,
            n_ubatch=c.options.n_ubatch,
            planned=entry.name == c.inputs.entry.name,
            fit=out.fit,
            budget=budget,
            kv_memory=c.inputs.kv_memory,
            storage=storage_for(entry.name, c.shape),
            prefix_caching=c.options.prefix_caching,
            async_scheduling=c.options.async_scheduling,
            max_num_seqs_given=c.options.max_num_seqs is not None,
            full_length_seqs=out.full_length,
            quantization=c.options.quantization,
            speculative=c.model.request.speculative,
            offload_flags=serve_flags(c.options.offload, entry.name) if entry.name == c.inputs.entry.name else "",
            layout=c.inputs.layout,
            mamba_full_memory_ratio=c.options.mamba_full_memory_ratio,
            max_mamba_cache_size=c.options.max_mamba_cache_size,
            mamba_ssm_dtype=c.options.mamba_ssm_dtype,
        )
        flags[entry.flag_key] = entry.serving.command(inputs)  # type: ignore[union-attr]
    return flags


def _throughput(c: _Context, full_length: int, held: int | None) -> tuple[list[dict], float | None, list[str]]:
    """Bounds at batches 1, 8, 32 and `full_length` (the requests of max_model_len held at once), up to it:
    every sequence is at context max_model_len, so a larger batch would not fit in the KV cache. `held`: the
    weights one GPU holds (a DP / EP layout places the experts apart); the bounds are one DP rank's."""
    from kvplan.planning import throughput

    m, tp, pp = c.model, c.inputs.tp, c.inputs.pp
    if m.weights is None:
        return [], None, ["no throughput bounds: the weights are unknown"]
    batches = sorted({b for b in (1, 8, 32, full_length) if b <= full_length} | {1})
    storage = storage_for(storage_entry(c.inputs.entry.name).name, c.shape)  # type: ignore[union-attr]

    def kv_read(batch: int) -> int:
        try:  # the checked request, `batch` of them (the storage model's own checks apply)
            return gpu_kv(storage, c.shape, replace(m.request, batch=batch)).bytes  # type: ignore[arg-type]
        except KvplanError:
            return 0

    return throughput.bounds(
        shape=c.shape,
        split=m.resolved.memo("param_split", lambda: throughput.param_split(m.resolved.config)),
        weights_per_gpu=m.weights // (tp * pp) if held is None or not c.inputs.layout.given else held,
        kv_bytes_per_gpu=kv_read,
        batches=batches,
        context=c.seq_len,
        bandwidth=c.inputs.profile.memory_bandwidth_bytes_per_s,
        tflops=c.inputs.profile.dense_tflops,
        model_dtype=m.model_dtype,
        gpus=tp * pp,
    )


def _startup(c: _Context, out: _Outcome) -> Startup | None:
    """What the engine does when it starts with the plan's settings (its scheduler cap c.max_num_seqs: the one
    given, else the release's default), where its serving model says (vLLM)."""
    caches, _ = fullest_stage(c.shape, c.inputs.pp)
    storage = sizing_storage(c.inputs.entry.name, c.shape)
    request = _request(c, c.inputs.tp, c.model.kv_dtype)
    available = sum(t.bytes for t in out.terms)
    fit_inputs = FitInputs(c.shape, storage, tuple(caches), request, available, c.search_limit, c.options.max_num_seqs)
    graphs = -sum(t.bytes for t in out.terms if t.name == "cudagraph")
    return c.serving.startup(
        StartupInputs(
            fit_inputs,
            c.max_num_seqs,
            c.utilization,
            c.inputs.profile.memory_bytes,
            graphs,
            c.auto_from,
            c.inputs.used_by_others,
        )
    )


def _held_weights(m: _Model, out: _Outcome, gpus: int) -> int | None:
    """Weights per GPU as the engine holds them: its budget's `weights` term (an engine's storage layout, e.g.
    vLLM's MXFP4 padding), else the counted weights / (tp x pp)."""
    held = [-t.bytes for t in out.terms if t.name == "weights"]
    if held:
        return held[0]
    return None if m.weights is None else m.weights // gpus


def _host_inputs(c: _Context, out: _Outcome) -> HostInputs:
    """The fullest rank's KV as the offload tiers see it: bytes per token (the engine's storage, its shard of every
    layer the rank holds), one block of every KV-cache group (a request of one block), the GPU pool's tokens."""
    from kvplan.core.specs import FullAttention, MlaLatent, NoCache

    i, m = c.inputs, c.model
    caches, _ = fullest_stage(c.shape, i.pp)
    request = _request(c, i.tp, m.kv_dtype)
    storage = storage_for(storage_entry(i.entry.name).name, c.shape)  # type: ignore[union-attr]
    per_token = gpu_kv(storage, c.shape, request).bytes_per_token  # type: ignore[arg-type]
    block = out.fit.block_size
    per_block = c.serving.block_bytes(sizing_storage(i.entry.name, c.shape), c.shape, request, block)
    kinds = sorted({x.kind for x in caches if not isinstance(x, (FullAttention, MlaLatent, NoCache))})
    cached = [x for x in caches if not isinstance(x, NoCache)]
    return HostInputs(
        engine=i.entry.name,
        tp=i.tp,
        pp=i.pp,
        bytes_per_token=ceil(per_token),
        bytes_per_block=per_block,
        block_size=block,
        device_tokens=out.fit.tokens,
        mla=bool(cached) and all(isinstance(x, MlaLatent) for x in cached),
        other_caches=tuple(kinds),
        shm=i.profile.vendor != "amd",
    )


def _host(c: _Context, out: _Outcome) -> tuple[HostPlan, dict[str, Any], list[str]]:
    """The offload tiers, the host memory and the verdict (Recommendation's host_* fields), and their notes."""
    from kvplan.sources.host import host_memory

    o = c.options
    host = host_memory(o.host_memory, c.inputs.profile.host_memory_bytes)
    if o.offload is None or not o.offload.given:
        fields: dict[str, Any] = {
            "host_memory_bytes": None if host is None else host.bytes,
            "host_memory_source": None if host is None else host.source,
        }
        return HostPlan(), fields, backend_notes(o.offload)
    plan = host_plan(o.offload, _host_inputs(c, out))
    i = c.inputs
    # every DP rank is an engine instance of TP x PP workers with the offload settings of its own: the node holds
    # the tiers of each of its ranks (all of them, unless --gpus-per-node places fewer on one node)
    per_node = i.layout.dp if o.gpus_per_node is None else max(1, min(i.layout.dp, o.gpus_per_node // (i.tp * i.pp)))
    if per_node > 1 and plan.tiers:
        tiers = tuple(
            replace(
                t,
                ranks=t.ranks * per_node,
                bytes_per_node=t.bytes_per_node * per_node,
                shm_bytes=t.shm_bytes * per_node,
            )
            for t in plan.tiers
        )
        plan = replace(
            plan,
            tiers=tiers,
            notes=(
                *plan.notes,
                f"each of the {per_node} data-parallel ranks on a node runs its own offload tiers: their host memory "
                "is counted once per rank",
            ),
        )
    verdict = judge(plan, None if host is None else host.bytes, None if host is None else host.shm_bytes)
    notes = list(plan.notes)
    if plan.tiers and host is None:
        notes.append(
            f"the offload tiers take {format_bytes(plan.ram_bytes)} of host RAM per node; the host's memory is "
            "unknown (pass --host-memory SIZE or auto, or set host_memory), so it is not checked"
        )
    fields = {
        "host_tiers": tuple(t.to_dict() for t in plan.tiers),
        "host_ram_bytes": plan.ram_bytes if plan.tiers else None,
        "host_shm_bytes": plan.shm_bytes if plan.tiers else None,
        "host_memory_bytes": None if host is None else host.bytes,
        "host_memory_source": None if host is None else host.source,
        "host_fits": verdict.ok,
        "host_detail": verdict.detail,
    }
    return plan, fields, notes


def _assemble(c: _Context, out: _Outcome) -> Recommendation:
    i, m, fit, serving = c.inputs, c.model, out.fit, c.serving
    held = _held_weights(m, out, i.tp * i.pp)
    rows, prefill, bound_notes = _throughput(c, out.full_length, held)
    storage = sizing_storage(i.entry.name, c.shape)
    started = _startup(c, out)
    _, host_fields, host_notes = _host(c, out)
    host = serving.lora_host_bytes(_budget_inputs(c, i.tp)) if i.lora is not None else None
    in_use = -sum(t.bytes for t in out.terms if t.bytes < 0) + max(0, fit.available)
    footprint = serving.footprint(i.profile.memory_bytes, c.utilization, in_use)
    return Recommendation(
        model=m.resolved.name,
        config_source=m.resolved.config_source,
        revision=m.resolved.revision,
        gpu_profile=i.profile.id,
        gpu_memory_bytes=i.profile.memory_bytes,
        gpus=c.inputs.gpus,
        engine=i.entry.name,
        tp=i.tp,
        pp=i.pp,
        model_dtype=m.model_dtype,
        cache_dtype=m.kv_dtype,
        gpu_memory_utilization=c.utilization if serving.uses_utilization else None,
        weights_bytes=held,
        weights_source=m.weights_source,
        multimodal_weights_bytes=None
        if m.encoder_weights is None
        else serving.encoder_per_gpu(m.resolved.config, m.encoder_weights, i.tp, m.resolved.encoder_numels()),
        available_kv_memory_bytes=fit.available,
        kv_cache_tokens=fit.tokens,
        num_blocks=fit.blocks,
        block_size=fit.block_size,
        max_model_len=c.seq_len,
        max_model_len_fit=fit.fit_len,
        max_concurrency=round(fit.concurrency, 2),
        concurrency=c.options.concurrency,
        fits=out.fits,
        max_num_seqs=out.max_num_seqs,
        max_num_batched_tokens=serving.reported_batched_tokens(c.max_num_batched_tokens, c.options.n_ubatch),
        budget=tuple(out.terms),
        flags=_flags(c, out),
        fp8_kv=out.fp8_kv,
        min_tp_to_fit=out.min_tp,
        notes=tuple(
            _notes(c) + _encoder_notes(c, out) + _fit_notes(c, out) + _cap_notes(c, out) + host_notes + _layout_notes(c)
        ),
        throughput_bounds=tuple(rows),
        prefill_tokens_per_s_upper_bound=prefill,
        throughput_assumptions=tuple(bound_notes),
        kv_bytes_per_request=serving.request_kv_bytes(storage, c.shape, _request(c, i.tp, m.kv_dtype)),
        vllm_version=c.release,
        mamba_cache_blocks=None if started is None else started.mamba_cache_blocks,
        startup_error=None if started is None else started.error,
        startup_rule="" if started is None else started.rule,
        startup_fix={} if started is None else dict(started.fix),
        log_lines=() if started is None else started.log_lines,
        speculative=m.request.speculative,
        **host_fields,
        parallel=_parallel(c, out, held),
        gpu_footprint_bytes=footprint[0],
        gpu_footprint_source=footprint[1],
        gpu_used_by_others_bytes=i.used_by_others,
        lora_host_bytes=None if host is None else host[0],
        lora_host_source=None if host is None else host[1],
    )


def _parallel(c: _Context, out: _Outcome, held: int | None) -> dict[str, Any] | None:
    """The layout and its per-GPU figures, where DP, DCP, EP or nodes were given (None otherwise): the GPUs it
    uses, how one GPU holds the weights (the routed experts apart: the engine's MoeShards), and the KV pools: one
    per DP rank, each with the plan's per-GPU figures, so that capacity is ranks x per rank."""
    i, o, fit = c.inputs, c.options, out.fit
    layout = i.layout
    if not layout.given and o.nodes is None and not o.report_layout:
        return None
    shards = c.serving.moe_shards(_budget_inputs(c, i.tp)) if c.inputs.kv_memory is None else None
    interconnect = i.profile.interconnect
    return {
        "tp": i.tp,
        "pp": i.pp,
        "dp": layout.dp,
        "dcp": layout.dcp,
        "expert_parallel": layout.expert_parallel,
        "gpus_used": i.tp * i.pp * layout.dp,
        "nodes": o.nodes,
        "gpus_per_node": o.gpus_per_node,
        "interconnect": None if interconnect is None else interconnect.type,
        "ep_size": None if shards is None else shards.ep_size,
        "num_experts": None if shards is None else shards.num_experts,
        "redundant_experts": layout.redundant_experts,
        "experts_per_gpu": None if shards is None else shards.experts_per_gpu,
        "expert_weights_per_gpu_bytes": None if shards is None else shards.bytes_per_gpu,
        "weights_per_gpu_bytes": held,
        "kv_pools": layout.dp,
        "kv_cache_tokens_per_pool": fit.tokens,
        "kv_cache_tokens_total": fit.tokens * layout.dp,
        "max_concurrency_per_pool": round(fit.concurrency, 2),
        "max_concurrency_total": round(fit.concurrency * layout.dp, 2),
    }


def _layout_notes(c: _Context) -> list[str]:
    """What the layout's model leaves out (the engine's notes), a TP group wider than a node, and a
    --weights-bytes whose experts cannot be placed apart."""
    i, o = c.inputs, c.options
    notes = c.serving.layout_notes(i.layout)
    if o.gpus_per_node is not None and i.tp > o.gpus_per_node:
        nodes = -(-i.tp // o.gpus_per_node)
        domain = i.profile.nvlink_domain_gpus
        link = i.profile.interconnect.type if i.profile.interconnect is not None else "the GPUs' interconnect"
        if domain is not None and i.tp <= domain:
            notes.append(
                Text(
                    "{tp} {t} spans {n} nodes of {g} GPUs within the profile's {d}-GPU NVLink domain: its all-reduces "
                    "stay on {l} between the nodes",
                    t=i.tp,
                    n=nodes,
                    g=o.gpus_per_node,
                    d=domain,
                    l=link,
                )
            )
        else:
            notes.append(
                Text(
                    "{tp} {t} spans {n} nodes of {g} GPUs: its all-reduces cross the network between nodes, not {l}",
                    t=i.tp,
                    n=nodes,
                    g=o.gpus_per_node,
                    l=link,
                )
            )
    layout = i.layout
    if layout.dp > 1 and c.model.weights is not None:
        notes.append(f"the throughput bounds are one data-parallel rank's: the layout's {layout.dp} ranks run apart")
    if (layout.dp > 1 or layout.expert_parallel) and c.model.weights_source == "--weights-bytes":
        notes.append(Text("{weights_bytes} is the whole model's: it is split by TP x PP, the experts not placed apart"))
    return notes


# ------------------------------------------------------------------------------------------------ the plan


def request_kv_bytes(model: Any, engine: str, req: Request) -> int:
    """KV bytes one request of `req.seq_len` tokens holds on the fullest GPU, as `engine` stores it (its serving
    model: vLLM whole pages in every KV-cache group, the per-token engines their estimate). What
    `max_concurrency` divides by. `model`: a ModelShape or a ResolvedModel."""
    shape = model.shape if isinstance(model, ResolvedModel) else model
    _, serving = _serving(engine)
    return serving.request_kv_bytes(sizing_storage(engine, shape), shape, req)


def recommend(
    model: ModelRef,
    *,
    gpu_profile: str,
    gpus: int | None = None,
    engine: str = DEFAULT_ENGINE,
    gpu_memory_utilization: float | None = None,
    max_model_len: int | str | None = None,
    concurrency: int | None = None,
    dtype: str = "auto",
    kv_dtype: str = "auto",
    tp: int | None = None,
    pp: int = 1,
    block_size: int | None = None,
    kv_memory: int | str | None = None,
    max_num_batched_tokens: int | None = None,
    profiles_dir: str | None = None,
    cudagraph_profiling: bool | None = None,
    offline: bool | None = None,
    weights_bytes: int | str | None = None,
    n_ubatch: int = DEFAULT_UBATCH,
    vllm_version: str | None = None,
    max_num_seqs: int | None = None,
    revision: str | None = None,
    prefix_caching: bool | None = None,
    async_scheduling: bool | None = None,
    assume_llama: bool = False,
    quantization: str | None = None,
    hub_weights: bool | None = None,
    speculative_config: str | dict[str, Any] | None = None,
    offload: Offload | None = None,
    host_memory: int | str | None = None,
    dp: int = 1,
    dcp: int = 1,
    expert_parallel: bool = False,
    redundant_experts: int = 0,
    nodes: int | None = None,
    gpus_per_node: int | None = None,
    report_layout: bool = False,
    enable_lora: bool = False,
    max_loras: int | None = None,
    max_lora_rank: int | None = None,
    max_cpu_loras: int | None = None,
    lora_dtype: str | None = None,
    lora_target_modules: str | list[str] | tuple[str, ...] | None = None,
    limit_mm_per_prompt: str | dict[str, Any] | None = None,
    gpu_used_by_others: int | str | None = None,
    mamba_full_memory_ratio: float | None = None,
    max_mamba_cache_size: int | None = None,
    mamba_ssm_dtype: str | None = None,
) -> Recommendation:
    """Plan MODEL on `gpus` GPUs of `gpu_profile`: KV budget per GPU, capacity, fit, engine flags, throughput bounds.

    model: a name, path or Hub id, a config dict, a LoadedConfig, or a model resolved once with
    `kvplan.resolve` (reused as is: check re-plans a deployment for each fix without reading anything again).

    engine: vllm, sglang, llamacpp (alias llama.cpp), tensorrt-llm, lightllm (kvplan.engines.registry: every
    engine with a serving model). gpu_memory_utilization: vLLM's fraction of total memory (default 0.9); SGLang's
    mem_fraction_static (default: SGLang's heuristic); TensorRT-LLM's free_gpu_memory_fraction (0.9); LightLLM's
    mem_fraction (0.9); unused by llama.cpp. gpus defaults to tp x pp (1 x pp without tp); tp defaults to
    gpus // pp (llama.cpp: 1, with layers split over pp GPUs). kv_memory (bytes or "58.11GiB") replaces the modelled budget; weights_bytes (e.g. a GGUF's file size)
    replaces the counted weights (whole model). max_model_len defaults to the model's max_position_embeddings
    capped at 131072; "auto" is vLLM's auto-fit (the longest length that fits, up to the model's limit). n_ubatch is llama.cpp's `-ub`; vllm_version selects the vLLM release whose rules apply
    (kvplan.engines.vllm.VLLM_VERSIONS; default: the installed vllm's version, else the newest release kvplan
    models; the plan's `vllm_version` says which); cudagraph_profiling, when given, decides the CUDA-graph term
    instead; prefix_caching and async_scheduling (vLLM) override the release's defaults. assume_llama reads an
    unknown model_type llama-like even where its config signals another cache (refused otherwise; notes say so).
    quantization is the engine's online quantization of an unquantized checkpoint (vLLM `--quantization
    fp8_per_tensor`, `fp8`, ...: kvplan.weights.stored.ONLINE_QUANTIZATIONS): the weights are counted as quantized
    at load. hub_weights: whether a config from the HF cache may ask the Hub for its safetensors sizes (None: only
    when nothing local sizes the weights; kvplan.planning.resolved). speculative_config is vLLM's `--speculative-config` (a JSON string or a mapping: method,
    num_speculative_tokens, model), taken in the same spelling for every engine; the planned engine's rules add the
    drafter's KV layers, speculative state slots and weights where kvplan models them (vLLM), and say what is left
    out (kvplan.engines.vllm.speculative_rules). offload (kvplan.engines.offload.Offload) sets the KV offload tiers: vLLM's --kv-offloading-size,
    SGLang's HiCache, LMCache's local CPU and disk sizes; host_memory (a size, or "auto": this machine's MemTotal
    or cgroup limit) is the host RAM per node they are judged against (default: the GPU profile's
    host_memory_bytes, else unknown: a note).

    Parallelism beyond TP x PP (modelled where the engine's serving model lists it in `parallelism`: vLLM): dp is
    the data-parallel size (engine instances, each with its own KV pool; gpus then defaults to tp x pp x dp),
    dcp the decode-context-parallel size (inside the TP group: the attention and MLA caches' tokens split over
    dcp ranks), expert_parallel places the routed experts whole on tp x dp ranks, redundant_experts adds EPLB's
    replicas. nodes x gpus_per_node gives the GPUs instead of gpus. The plan's `parallel` holds the layout and
    its per-GPU figures (also without any of these with report_layout); the KV figures elsewhere are one GPU's of
    one DP rank. kvplan.planning.layouts.smallest_layout searches the layouts.

    enable_lora (or any of max_loras, max_lora_rank, max_cpu_loras, lora_dtype, lora_target_modules)
    plans LoRA serving: the engine's adapter slots on the GPU are the budget's `lora` term and the adapters it
    keeps in host memory `lora_host_bytes` (vLLM, SGLang, TensorRT-LLM; the counts not given are the engine's
    defaults; lora_target_modules: PEFT names such as "q_proj,v_proj", or "all"). limit_mm_per_prompt is vLLM's
    --limit-mm-per-prompt (a JSON object such as '{"image": 0}', or a dict): every modality of a multimodal
    checkpoint's towers at 0 drops the towers and the encoder-cache row from the budget. gpu_used_by_others
    (bytes or "40GiB", per GPU) is what other deployments on the same GPUs hold when this one starts
    (kvplan.checking.colocation.footprint of a plan; vLLM only): its start-up check and notes follow.
    mamba_full_memory_ratio and max_mamba_cache_size are SGLang's --mamba-full-memory-ratio (default 0.9) and
    --max-mamba-cache-size: how a Mamba / linear-attention hybrid's budget is split between its state slots and
    its full-attention token pool (kvplan.engines.sglang.sglang_mamba_pool); mamba_ssm_dtype is SGLang's
    --mamba-ssm-dtype (float32, bfloat16 or float16; default: the config's mamba_ssm_dtype, else float32).
    """
    options = _Options(**{name: value for name, value in locals().items() if name != "model"})  # the keywords
    inputs = _validate(options)
    context = _context(inputs, _model(model, inputs))
    return _assemble(context, _outcome(context))
