"""How an engine serves: its per-GPU KV budget, what it makes of that budget, and the command that starts it.

A `ServeCommand` knows an engine's ready-to-paste serve command (TGI and Xinference have nothing more); a
`ServingModel` also models its memory: the default memory fraction, the budget terms (each with its source), the
fit rule (per-token here, vLLM's block accounting in kvplan.engines.vllm), which options apply, its 8-bit KV
alternative and its notes. kvplan.planning.recommend runs the same stages for every engine and asks the planned
engine's serving model at each; every engine with a serving model prints its command with every plan.

Inputs are frozen dataclasses (`BudgetInputs`, `FitInputs`, `FlagInputs`). Pure arithmetic.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from kvplan.core import specs as L
from kvplan.core.bisection import largest
from kvplan.core.config import vocab_size
from kvplan.core.shapes import ModelShape
from kvplan.engines.base import Engine, Request, Speculative
from kvplan.engines.sizing import gpu_kv

if TYPE_CHECKING:
    from kvplan.sources.hardware import HardwareProfile

# The options of `kvplan recommend` that only some engines read (ServingModel.options).
GPU_MEMORY_UTILIZATION = "gpu_memory_utilization"
UBATCH = "ubatch"
VLLM_VERSION = "vllm_version"
BLOCK_SIZE = "block_size"
PREFIX_CACHING = "prefix_caching"
LIMIT_MM_PER_PROMPT = "limit_mm_per_prompt"
ASYNC_SCHEDULING = "async_scheduling"
MAMBA_FULL_MEMORY_RATIO_OPTION = "mamba_full_memory_ratio"  # SGLang's split of a hybrid's budget
MAX_MAMBA_CACHE_SIZE_OPTION = "max_mamba_cache_size"
MAMBA_SSM_DTYPE_OPTION = "mamba_ssm_dtype"
DEFAULT_UTILIZATION = 0.9


@dataclass(frozen=True)
class BudgetTerm:
    """One term of a per-GPU KV budget: bytes (negative for what is subtracted) and where the figure comes from."""

    name: str
    bytes: int
    source: str


@dataclass(frozen=True)
class Layout:
    """The parallelism beyond TP x PP, as `kvplan recommend` is given it: `dp` data-parallel ranks (each an engine
    instance with its own KV pool; requests are split over them), `dcp` decode-context-parallel ranks (inside
    the TP group: no GPUs of their own), `expert_parallel` (MoE experts placed whole on ranks rather than split by
    TP) and `redundant_experts` (EPLB's extra expert replicas). The default is no such parallelism; which of these
    an engine models is its serving model's `parallelism`."""

    dp: int = 1
    dcp: int = 1
    expert_parallel: bool = False
    redundant_experts: int = 0

    @property
    def given(self) -> tuple[str, ...]:
        """The fields (kvplan.errors.FLAGS) set away from their defaults."""
        return tuple(
            name
            for name, on in (
                ("dp", self.dp != 1),
                ("dcp", self.dcp != 1),
                ("expert_parallel", self.expert_parallel),
                ("redundant_experts", self.redundant_experts != 0),
            )
            if on
        )


@dataclass(frozen=True)
class MoeShards:
    """How one GPU holds the routed experts: `ep_size` ranks of expert parallelism (1: none), `experts_per_gpu`
    experts on the fullest rank (of `num_experts` + redundant replicas), `tp_size` the ways each expert's matrices
    are split, and `bytes_per_gpu` the expert bytes one GPU of the fullest pipeline stage holds."""

    ep_size: int
    tp_size: int
    experts_per_gpu: int
    num_experts: int
    bytes_per_gpu: int
    source: str


@dataclass(frozen=True)
class LoraSettings:
    """LoRA serving as planned (`kvplan recommend --max-loras ...`, a plan's `max_loras` keys): adapter slots on
    the GPU (`max_loras`: vLLM's --max-loras, SGLang's --max-loras-per-batch, TensorRT-LLM's lora_config
    max_loras), their rank (`max_lora_rank`), adapters kept in host memory (`max_cpu_loras`; None: the engine's
    default), the adapters' dtype (`lora_dtype`; None: the model's) and the modules targeted (`target_modules`,
    PEFT names from kvplan.core.lora.LINEAR_TARGETS; None: the engine's default). Each engine's serving model
    turns them into its `lora` budget term and its host bytes (`ServingModel.lora_host_bytes`)."""

    max_loras: int
    max_lora_rank: int
    max_cpu_loras: int | None = None
    lora_dtype: str | None = None
    target_modules: tuple[str, ...] | None = None


@dataclass(frozen=True)
class BudgetInputs:
    """What a serving model's budget may depend on, for one GPU of the fullest pipeline stage.

    `weights` are the whole model's (a budget divides them over its GPUs); `utilization` is the memory fraction
    in force (given, else the engine's default); `max_num_seqs` / `max_num_batched_tokens` the scheduler limits;
    `n_ubatch` is llama.cpp's micro-batch (`-ub`); `vllm_version` and `cudagraph_profiling` (None: as the
    version does) are read by vLLM's serving model only; `model_dtype` the dtype activations are held in;
    `encoder_weights` the vision/audio towers and projectors of a multimodal checkpoint (0: none or not counted)."""

    config: dict[str, Any]
    shape: ModelShape
    profile: HardwareProfile
    tp: int
    pp: int
    utilization: float
    weights: int
    layers_on_gpu: int
    max_num_batched_tokens: int
    max_num_seqs: int
    n_ubatch: int
    vllm_version: str | None = None
    cudagraph_profiling: bool | None = None
    model_dtype: str | None = None  # the dtype the model runs in (`--dtype`); None: the config's (shape.dtype)
    encoder_weights: int = 0  # the multimodal encoders and projectors (whole model), beside `weights`
    # their tensors as (name, parameters), kvplan.weights.encoders' layout (empty: none or not counted), for an engine
    # that splits them tensor by tensor
    encoder_numels: tuple[tuple[str, int], ...] = ()
    # bytes as the checkpoint stores the language model's tensors whose names hold any of the given parts
    # (kvplan.weights.stored; None: not countable, or whole-model weights given): what an engine keeps whole on
    # every TP rank
    tensor_bytes: Callable[[tuple[str, ...]], int | None] = field(default=lambda parts: None, compare=False)
    speculative: Speculative | None = None  # the speculative-decoding setup, its drafter resolved (None: none)
    layout: Layout = Layout()  # DP, DCP and expert parallelism (the default: none)
    expert_weights: int | None = 0  # the routed experts' bytes (whole model), within `weights`; None: not counted
    expert_layers: int = 0  # the decoder layers with routed experts (0: not counted)
    lora: LoraSettings | None = None  # LoRA serving (None: LoRA off)
    # items per prompt by modality (vLLM's --limit-mm-per-prompt; None: the engine's default)
    limit_mm_per_prompt: dict[str, int] | None = None
    max_model_len: int = 0  # the plan's max_model_len (0: not given to the budget)
    # the plan's request (one of max_model_len at the budget's TP, in its KV dtype and block size; None: not given),
    # for the fixed per-sequence costs an engine prices from its storage model
    request: Request | None = None
    # how the engine derived the default memory fraction in force (`ServingModel.utilization`; empty: given, or the
    # engine says nothing more)
    utilization_source: str = ""

    @property
    def dtype(self) -> str:
        return self.model_dtype or self.shape.dtype

    @property
    def weights_per_gpu(self) -> int:
        return self.weights // (self.tp * self.pp)

    @property
    def vocab(self) -> int:
        return vocab_size(self.config)


@dataclass(frozen=True)
class SpeculativeInputs:
    """What an engine's speculative-decoding rules read: the setup given (`setup`: method, tokens, draft model
    named), the target's config and shape, the dtype the model runs in, `stored_bytes(copies, extra)` (bytes as the
    target's checkpoint stores copies of its decoder layers, each `(layer index, module prefix it is stored
    under)` (an index past the model's layers: one of the checkpoint's own MTP layers, kvplan.weights.tensors.
    mtp_tensors), plus `extra` tensors `(name, shape, role)`: kvplan.weights; None: not countable), `expert_bytes(
    copies)` (the routed-expert tensors, role "expert", of those copies alone, stored the same way), `named_bytes(
    copies, extra, parts)` (those whose names hold one of `parts`), and the draft
    model named in the setup when kvplan could read its config (`draft_config`, `draft_shape`, `draft_weights` with `draft_weights_source`;
    None: no draft named, or it could not be read, `draft_error` says why)."""

    setup: Speculative
    config: dict[str, Any]
    shape: ModelShape
    model_dtype: str
    stored_bytes: Callable[[list[tuple[int, str]], list[tuple[str, tuple[int, ...], str]]], int | None] = field(
        default=lambda copies, extra: None, compare=False
    )
    expert_bytes: Callable[[list[tuple[int, str]]], int | None] = field(default=lambda copies: None, compare=False)
    named_bytes: Callable[
        [list[tuple[int, str]], list[tuple[str, tuple[int, ...], str]], tuple[str, ...]], int | None
    ] = field(default=lambda copies, extra, parts: None, compare=False)
    draft_config: dict[str, Any] | None = None
    draft_shape: ModelShape | None = None
    draft_weights: int | None = None
    draft_weights_source: str = ""
    draft_error: str = ""


@dataclass(frozen=True)
class Fit:
    """What an engine makes of `available` KV bytes per GPU at max_model_len: token capacity (whole `block_size`
    blocks), requests of max_model_len at once, the largest max_model_len one request may have, and whether one
    request fits."""

    available: int
    tokens: int
    blocks: int
    block_size: int
    concurrency: float
    fit_len: int
    fits_one: bool


@dataclass(frozen=True)
class FitInputs:
    """One fit question: `request` (one request of max_model_len at the plan's TP, PP and KV dtype) against
    `available` KV bytes per GPU (negative when the budget is overdrawn), lengths searched up to `limit`.
    `storage` is the engine's storage model; `caches` the fullest pipeline stage's layers; `max_num_seqs` the
    sequence cap the user gave (None: none), which SGLang's DeepSeek-V4 pools size their per-request state by."""

    shape: ModelShape
    storage: Engine
    caches: tuple[L.Layer, ...]
    request: Request
    available: int
    limit: int
    max_num_seqs: int | None = None  # the sequence cap given (None: the engine's own), for pools sized by it


@dataclass(frozen=True)
class StartupInputs:
    """What an engine's start-up depends on: the fit question (`fit`), the scheduler's sequence cap, the memory
    fraction in force, the GPU's total memory, the CUDA-graph bytes the budget subtracted (0: none), for an
    auto-fitted max_model_len the length it was fitted down from (None: the length was given), and the memory
    other deployments on the same GPU hold when it starts (`used_by_others`, per GPU)."""

    fit: FitInputs
    max_num_seqs: int
    utilization: float
    total_memory: int
    cudagraph_bytes: int = 0
    auto_from: int | None = None
    used_by_others: int = 0  # GPU memory other processes hold when the engine starts (co-location; 0: none)


@dataclass(frozen=True)
class Startup:
    """What an engine release does when it starts with a plan: the error it raises (`error`, its own words; None:
    it starts), which check raised it (`rule`), the setting that would let it start (`fix`: plan key -> value),
    and the lines it logs (up to the error). `kv_bytes_per_request` and `max_model_len_fit` are the figures of its
    checks; `mamba_cache_blocks` the blocks its Mamba check counts (None: no Mamba/GDN layers)."""

    error: str | None
    rule: str
    fix: dict[str, int | float]
    log_lines: tuple[str, ...]
    kv_bytes_per_request: int
    max_model_len_fit: int
    mamba_cache_blocks: int | None


@dataclass(frozen=True)
class FlagInputs:
    """What a serve command is written from. `planned` is true for the command of the engine being planned (its
    own memory settings apply); `fit`, `budget` and `kv_memory` are the plan's; `storage` is the storage model of
    the command's engine (None when it has none); `prefix_caching` and `async_scheduling` are the settings given
    (None: the engine's defaults, left off the command). `max_num_seqs` is the scheduler's cap on running
    sequences (the one given, else the default), never lowered to what the KV cache holds; `max_num_seqs_given`
    says whether it was given (an engine that derives its own default leaves it off); `full_length_seqs` is the
    number of max_model_len requests the plan holds at once (the concurrency asked for, else the KV-limited
    count, at most the cap): what an engine that reserves every sequence's whole context at start is given."""

    model: str
    max_model_len: int
    max_num_seqs: int
    utilization: float
    tp: int
    pp: int
    kv_dtype: str
    model_dtype: str
    max_num_batched_tokens: int
    n_ubatch: int
    planned: bool
    fit: Fit
    budget: BudgetInputs
    kv_memory: int | None
    storage: Engine | None
    prefix_caching: bool | None = None
    async_scheduling: bool | None = None
    max_num_seqs_given: bool = False
    full_length_seqs: int = 1
    quantization: str | None = None  # the online quantization given (vLLM's --quantization)
    speculative: Speculative | None = None  # the speculative-decoding setup given (None: none)
    offload_flags: str = ""  # the planned engine's offload options (kvplan.engines.offload.serve_flags), " --..."
    layout: Layout = Layout()  # DP, DCP and expert parallelism (written by the engines that model them)
    mamba_full_memory_ratio: float | None = None  # SGLang's --mamba-full-memory-ratio given (None: its default)
    max_mamba_cache_size: int | None = None  # SGLang's --max-mamba-cache-size given (None: from the ratio)
    mamba_ssm_dtype: str | None = None  # SGLang's --mamba-ssm-dtype given (None: the config's)

    @property
    def fp8(self) -> bool:
        return self.kv_dtype.startswith("fp8")


class ServeCommand(ABC):
    """An engine's serve command, printed with every plan (`Recommendation.flags`): only options the engine's
    release accepts (tests/engines/test_serve_commands.py checks them against tests/fixtures/engine_args), the
    plan's KV dtype in the engine's spelling, and what the engine cannot be told (a KV dtype it has no option or
    storage for) in a trailing shell comment; a command that is only a comment says why there is none."""

    @abstractmethod
    def command(self, inputs: FlagInputs) -> str: ...


@dataclass(frozen=True)
class UtilizationInputs:
    """What an engine's default memory fraction may depend on: the GPU's memory, TP x PP, the model's config and
    shape, the cap on running sequences given (None: the engine's default), the model as the serve command names it,
    the engine release modelled (`version`, engines with releases) and the GPU's compute capability."""

    memory_bytes: int
    tp: int
    pp: int
    config: dict[str, Any] = field(default_factory=dict)
    shape: ModelShape | None = None
    max_num_seqs: int | None = None
    model: str = ""
    version: str | None = None
    compute_capability: str | None = None


class ServingModel(ServeCommand):
    """An engine whose KV budget kvplan models (`kvplan recommend --engine`, `kvplan check`).

    Class attributes: `options` (the engine-specific options it reads; the others are named in a note as
    ignored), `searches_tp` (a plan that does not fit looks for the smallest TP that does), `suggests_utilization`
    (check may suggest a larger memory fraction: the fraction scales total memory), `fp8_plan_value` (how a plan
    file spells the 8-bit KV dtype it suggests; None: as the fp8 alternative's label), `summary` (how `recommend
    --engine` describes it), `utilization_help` (what `--gpu-memory-utilization` means for it) and
    `reserves_seqs`: whether the engine's sequence setting reserves every sequence's whole context at start
    (llama.cpp's `-np` slots share `-c`), so that N sequences are N requests of max_model_len that must fit.
    False (vLLM, SGLang, ...): the setting is a cap on running sequences, and the plan's `max_num_seqs` is the
    cap given or the default, never lowered to the KV-limited concurrency (reported as `max_concurrency`)."""

    options: frozenset[str] = frozenset({GPU_MEMORY_UTILIZATION})
    reserves_seqs = False
    searches_tp = True
    suggests_utilization = False
    fp8_plan_value: str | None = None
    online_quantization = False  # the engine's online quantization is modelled (recommend's `quantization`)
    serves_lora = False  # its LoRA memory is modelled (BudgetInputs.lora: a `lora` budget term); else refused
    # its start-up with other deployments on the same GPU is modelled (StartupInputs.used_by_others); else refused
    models_colocation = False
    # (max_loras, max_lora_rank) the engine starts LoRA serving with when they are not given (rank None: the engine
    # reads it from the adapters, which kvplan does not: the rank must be given)
    lora_defaults: tuple[int, int | None] = (1, None)
    summary = ""
    utilization_help = ""

    # the Layout fields this engine models (kvplan.errors.FLAGS names); recommend refuses the others
    parallelism: frozenset[str] = frozenset()

    def parallelism_at(self, version: str | None) -> frozenset[str]:
        """The Layout fields this engine models in `version` (its release modelled; None: the newest): here
        `parallelism` in every release."""
        return self.parallelism

    def moe_shards(self, b: BudgetInputs) -> MoeShards | None:
        """How one GPU holds the routed experts under `b.layout` (None: a dense model, or an engine that splits
        them with the rest of the weights, by TP x PP)."""
        return None

    def layout_notes(self, layout: Layout) -> list[str]:
        """What the engine's model of `layout` leaves out (notes on the plan)."""
        return []

    @property
    def uses_utilization(self) -> bool:
        return GPU_MEMORY_UTILIZATION in self.options

    def default_utilization(self, memory_bytes: int, tp: int, pp: int) -> float:
        """The memory fraction the engine uses when none is given (the serving model of an engine with releases,
        `EngineEntry.release`, also takes the release modelled as `version`)."""
        return DEFAULT_UTILIZATION

    def utilization(self, inputs: UtilizationInputs) -> tuple[float, str]:
        """(the default memory fraction for this model and layout, how it was derived: empty when the engine's fraction
        depends on the GPU and layout only). Here: `default_utilization`."""
        per_release = {"version": inputs.version} if inputs.version is not None else {}
        return self.default_utilization(inputs.memory_bytes, inputs.tp, inputs.pp, **per_release), ""

    def parallel(self, tp: int | None, pp: int, gpus: int) -> tuple[int | None, int]:
        """(tp, pp) as the engine runs them on `gpus` GPUs (tp None: the default, gpus // pp)."""
        return tp, pp

    def scheduler_defaults(self, profile: HardwareProfile, version: str | None = None) -> tuple[int, int]:
        """Default (max_num_batched_tokens, max_num_seqs): vLLM's for the GPU, which kvplan uses for every engine
        that does not model its own, in the tiers of vLLM 0.19 (`version`: the engine release modelled, read by
        engines with releases)."""
        from kvplan.engines.vllm import scheduler_defaults

        return scheduler_defaults(profile.memory_bytes, profile.name, vllm_version="0.19")

    def running_cap(self, given: int | None, default: int, fit: Fit, context_len: int) -> tuple[int, str]:
        """(the cap on running sequences the engine serves with once its KV pool holds `fit.tokens` at
        `context_len`, how a note names it: a `Text` template fragment with `{n}` for the cap). Here: the cap
        given, else `default` (the plan's max_num_seqs: `scheduler_defaults`, `sequence_cap`)."""
        if given is not None:
            return given, "{max_num_seqs} {n}"
        return default, "{max_num_seqs} {n} (the default)"

    def sequence_cap(self, given: int | None, default: int, max_num_batched_tokens: int) -> int:
        """The cap on running sequences the engine runs with: the one given (never lowered to what the KV cache
        holds at max_model_len), else its default for the GPU (`scheduler_defaults`)."""
        return default if given is None else given

    @abstractmethod
    def budget(self, inputs: BudgetInputs) -> tuple[list[BudgetTerm], int]:
        """The budget terms and the KV bytes they leave per GPU (their sum, unless the engine keeps a fraction)."""

    def token_block(self, block_size: int | None) -> int:
        """Tokens of the blocks the engine's capacity comes in, given its storage model's block size."""
        return 1

    def request_kv_bytes(self, storage: Engine, shape: ModelShape, req: Request) -> int:
        """KV bytes one request of `req.seq_len` tokens holds on the fullest GPU: what max_concurrency divides by."""
        return gpu_kv(storage, shape, req).bytes

    def block_bytes(self, storage: Engine, shape: ModelShape, req: Request, block_size: int) -> int:
        """Bytes one block of `block_size` tokens takes on the fullest GPU (what a host tier copies per block):
        here a request of one block."""
        return self.request_kv_bytes(storage, shape, replace(req, seq_len=block_size, batch=1))

    def fit(self, inputs: FitInputs) -> Fit:
        """Engines without vLLM's block accounting: tokens = memory / the marginal bytes of a token; concurrency =
        memory / the bytes one request of max_model_len holds."""
        req, avail = inputs.request, max(0, inputs.available)
        est = gpu_kv(inputs.storage, inputs.shape, req)
        per_token = est.bytes_per_token or (est.bytes / req.seq_len)
        tokens = int(avail // per_token) if per_token else 0
        block = self.token_block(est.block_size)
        tokens -= tokens % block
        need = est.bytes

        def fits(n: int) -> bool:
            return self.request_kv_bytes(inputs.storage, inputs.shape, replace(req, seq_len=n)) <= avail

        concurrency = avail / need if need else float("inf")
        return Fit(avail, tokens, tokens // block, block, concurrency, largest(fits, inputs.limit), need <= avail)

    def speculative(self, inputs: SpeculativeInputs) -> Speculative:
        """The speculative-decoding setup as this engine runs it: the drafter's KV layers and weights and what is
        modelled (Speculative.draft_caches, draft_weights, notes). Engines whose rules kvplan has not read keep the
        setup as given and say that the drafter is left out."""
        return replace(
            inputs.setup,
            notes=(
                "speculative decoding is not modelled for this engine: the drafter's weights, KV cache and "
                "speculative state slots are left out of the plan",
            ),
        )

    def startup(self, inputs: StartupInputs) -> Startup | None:
        """What the engine does when it starts with this plan (None: kvplan does not model its start-up)."""
        return None

    def fp8_alternative(self, kv_dtype: str, profile: HardwareProfile) -> tuple[str, str] | None:
        """(KV dtype, label) of the 8-bit KV cache to compare with, or None: fp8 (e4m3) where the GPU has one."""
        dtypes = profile.kv_cache_dtypes
        if dtypes and "fp8" in dtypes and not kv_dtype.startswith("fp8"):
            return "fp8_e4m3", "fp8"
        return None

    def reported_batched_tokens(self, max_num_batched_tokens: int, n_ubatch: int) -> int:
        """The batched-token figure a plan reports (Recommendation.max_num_batched_tokens)."""
        return max_num_batched_tokens

    def slot_notes(self, slots: int) -> list[str]:
        """An engine that reserves its sequences' contexts (`reserves_seqs`): how it runs the `slots` the plan's
        command gives (llama.cpp: separate streams, not the unified ones of its default)."""
        return []

    def notes(self, model_dtype: str, weights_source: str | None) -> list[str]:
        """Notes about the plan's inputs that only this engine needs."""
        return []

    def footprint(self, total_memory: int, utilization: float, held: int) -> tuple[int, str]:
        """(bytes, how) this engine holds on each GPU once started, for another deployment sharing the GPU:
        `held` is what its budget terms subtract plus its KV memory (the default)."""
        return held, "its weights, overheads and KV cache as kvplan plans them"

    def colocation_notes(self, used_by_others: int, total_memory: int, utilization: float) -> list[str]:
        """What starting beside other deployments that hold `used_by_others` bytes per GPU means for this engine."""
        return []

    def budget_notes(self, b: BudgetInputs) -> list[str]:
        """Notes on what the budget of `b` leaves out (the engine's own words on what kvplan cannot size)."""
        return []

    def lora_host_bytes(self, b: BudgetInputs) -> tuple[int, str] | None:
        """(bytes, source) of the LoRA adapters the engine keeps in host memory per GPU worker with `b.lora`
        (None: LoRA off, or the engine keeps none there)."""
        return None

    def encoder_split(self, config: dict[str, Any], tp: int) -> int:
        """Over how many GPUs the engine splits a multimodal checkpoint's encoders and projectors (default: TP)."""
        return tp

    def encoder_per_gpu(
        self, config: dict[str, Any], encoder_bytes: int, tp: int, numels: tuple[tuple[str, int], ...] = ()
    ) -> int:
        """Bytes of a multimodal checkpoint's encoders and projectors (`encoder_bytes` whole; `numels` their tensors
        as (name, parameters)) on one GPU (default: / encoder_split)."""
        return encoder_bytes // self.encoder_split(config, tp)


__all__ = [
    "ASYNC_SCHEDULING",
    "BLOCK_SIZE",
    "GPU_MEMORY_UTILIZATION",
    "LIMIT_MM_PER_PROMPT",
    "PREFIX_CACHING",
    "UBATCH",
    "VLLM_VERSION",
    "BudgetInputs",
    "BudgetTerm",
    "Fit",
    "FitInputs",
    "FlagInputs",
    "Layout",
    "LoraSettings",
    "MoeShards",
    "ServeCommand",
    "ServingModel",
    "SpeculativeInputs",
    "Startup",
    "StartupInputs",
]
