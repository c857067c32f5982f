"""`recommend()`: how much KV cache a GPU profile leaves for a model, and the engine flags that follow.

Static (no GPU, no torch): the per-GPU memory budget is modelled term by term the way vLLM's start-up
profiling subtracts it (kvplan notes §1.5-1.7), then kvplan.engines.vllm.capacity turns the KV memory into
blocks, tokens and concurrency. SGLang uses its `mem_fraction_static` auto-heuristic and a per-token pool.

Budget model for vLLM (per GPU), each term reported with its source:
  total_memory x gpu_memory_utilization - weights/(tp x pp) - activation peak - non-torch - CUDA graphs
- activation peak (vLLM's profile run): the dummy sampler run over `max_num_seqs` rows of logits dominates,
  about 15 bytes per (sequence x vocab entry) (fp32 logits plus the sampler's copies), plus about 1.1 bytes
  per (batched token x hidden unit) of the forward pass and a 32 MiB floor. Fitted on the llm-d vLLM 0.19
  H100 logs in tests/fixtures/calibration (peak_activation_gib 0.85-3.94 GiB, fit within ~0.25 GiB).
- non-torch memory (CUDA context, cuBLAS workspace, NCCL buffers): 0.25 GiB at TP 1, 2.1 GiB at TP > 1
  (same logs: 0.24-0.26 and 2.06-2.21 GiB).
- CUDA-graph pool: 0.45 GiB + 15 MiB per layer on the GPU (logs: 0.67-1.66 GiB). vLLM subtracts its
  estimate only from v0.21 (`VLLM_MEMORY_PROFILER_ESTIMATE_CUDAGRAPHS`): with `vllm_version` older than 0.21
  (or `cudagraph_profiling=False`) the term is left out, as older versions' logged "Available KV cache
  memory" leaves it out.
`kv_memory` replaces the whole budget (vLLM's `--kv-cache-memory-bytes`).

vLLM <= 0.11 profiled a heavier sampler: its logged activation peaks (Llama-3.1-8B 4.76, Qwen3-0.6B 5.56,
Qwen3-32B 5.64 GiB at max_num_seqs 1024, llm-d empirical logs in tests/fixtures/calibration) are 38.4-38.9 bytes
per (sequence x vocab entry) for models from 0.6B to 32B: the dummy sampler run, not the forward pass, sets the
peak. Pass `vllm_version="0.11"` (or older) to use 39 B instead of 15 B.

Other engines (kvplan notes section 2, each term's source printed):
- llama.cpp: device memory - weights (the GGUF: pass `weights_bytes` for a quantized file) - compute buffer
  (n_ubatch x (n_vocab + n_embd) x 4 B: the f32 logits and hidden state of the worst-case micro-batch; this
  reproduces logged CUDA compute buffers exactly: Qwen2.5-Coder-7B 304.00 MiB, gpt-oss-20b 398.38 MiB, at
  n_ubatch 512) - the 1024 MiB `--fit` keeps free per device (llama.cpp PR #16653). The KV fit gives n_ctx
  and `-np`: `-c` is the total context of all slots.
- TensorRT-LLM: free_gpu_memory_fraction (0.9) x (memory - weights - runtime buffers), its KvCacheConfig rule;
  the runtime buffers (execution context, runtime buffers, decoder) depend on the engine build and are scaled
  from the one logged build (TensorRT-LLM #1188: 9.18 GiB for Qwen2.5-Coder-0.5B, vocab 151936) by vocab:
  an approximation, printed as such; the CUDA context is not modelled.
- LightLLM: total x mem_fraction (0.9, `--mem_fraction`) - weights / (tp x pp), divided by its per-token cell
  (2 x kv heads per rank x head_dim x layers x dtype, `mem_manager.py`) = `--max_total_token_num`.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field, replace
from math import floor
from typing import Any

from kvplan.core.bisection import largest
from kvplan.core.config import vocab_size
from kvplan.core.shapes import ModelShape
from kvplan.core.units import GGML_BLOCK_TYPES, parse_size, short_dtype
from kvplan.engines import Request, canonical_engine, get_engine, pipeline_stages
from kvplan.engines.llamacpp import DEFAULT_UBATCH, cache_type_flags
from kvplan.engines.tensorrt_llm import FREE_GPU_MEMORY_FRACTION
from kvplan.engines.vllm import Capacity, GroupPlan, VllmEngine, capacity, scheduler_defaults
from kvplan.errors import KvplanError, Text, UsageError, placeholder
from kvplan.planning.estimate import estimate_request, kv_bytes_per_gpu, kv_per_token_per_gpu
from kvplan.planning.requests import above_model_limit, make_request, optional_positive, positive_int
from kvplan.planning.resolved import ModelRef, ResolvedModel, resolve

SCHEMA = "kvplan.recommend/1"
GIB = 2**30
MIB = 2**20
DEFAULT_MAX_MODEL_LEN_CAP = 131072
TP_CHOICES = (1, 2, 4, 8)
SUPPORTED_ENGINES = ("vllm", "sglang", "llamacpp", "tensorrt-llm", "lightllm")
# the key of each engine's command in Recommendation.flags
FLAG_KEYS = {
    "vllm": "vllm",
    "sglang": "sglang",
    "llamacpp": "llama.cpp",
    "tensorrt-llm": "tensorrt-llm",
    "lightllm": "lightllm",
}

# activation-peak mechanism (see the module docstring)
SAMPLER_BYTES_PER_SEQ_VOCAB = 15.0
SAMPLER_BYTES_PER_SEQ_VOCAB_V011 = 39.0  # vLLM <= 0.11 (module docstring)
# llama.cpp
LLAMACPP_FIT_MARGIN = 1024 * MIB  # --fit target margin per device (PR #16653)
# TensorRT-LLM: execution context 773.51 MiB + runtime buffers 2.66 GiB + decoder 5.76 GiB for vocab 151936
TRTLLM_RUNTIME_BYTES_PER_VOCAB = (773.51 * MIB + (2.66 + 5.76) * GIB) / 151936
LIGHTLLM_MEM_FRACTION = 0.9  # lightllm/server/api_cli.py --mem_fraction default
FORWARD_BYTES_PER_TOKEN_HIDDEN = 1.1
ACTIVATION_FLOOR = 32 * MIB
NON_TORCH_TP1 = int(0.25 * GIB)
NON_TORCH_TP_MULTI = int(2.1 * GIB)
CUDAGRAPH_BASE = int(0.45 * GIB)
CUDAGRAPH_PER_LAYER = 15 * MIB
_LOGS = "fitted on llm-d vLLM 0.19 H100 logs (tests/fixtures/calibration)"


@dataclass(frozen=True)
class BudgetTerm:
    name: str
    bytes: int
    source: str


@dataclass(frozen=True)
class Recommendation:
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

    @property
    def dtype(self) -> str:
        return short_dtype(self.model_dtype)

    @property
    def kv_dtype(self) -> str:
        return short_dtype(self.cache_dtype)

    def to_dict(self) -> dict[str, Any]:
        names = {"model_dtype": "dtype", "cache_dtype": "kv_dtype"}
        data = {names.get(k, k): short_dtype(v) if k in names else v for k, v in asdict(self).items()}
        data["budget"] = [asdict(t) for t in self.budget]
        data["notes"] = list(self.notes)
        data["throughput_bounds"] = [dict(row) for row in self.throughput_bounds]
        data["throughput_assumptions"] = list(self.throughput_assumptions)
        return {"schema": SCHEMA, **data}


# ------------------------------------------------------------------------------------------- budget terms

_VERSION_RE = re.compile(r"^v?(\d+)\.(\d+)(?:\.\d+)?(?:[.+-]?[0-9A-Za-z.+-]*)?$")


def parse_vllm_version(text: str) -> tuple[int, int]:
    """(major, minor) of a vLLM version such as 0.11, 0.19.1 or v0.21.0rc1; a UsageError for anything else."""
    match = _VERSION_RE.match(str(text).strip())
    if not match:
        raise UsageError(
            Text("{vllm_version}: expected a version such as 0.11 or 0.19.1, got {v!r}", v=text),
            hint="pass the version `vllm --version` prints",
            field="vllm_version",
        )
    return int(match.group(1)), int(match.group(2))


def sampler_bytes_per_entry(vllm_version: str | None) -> float:
    """Bytes per (sequence x vocab entry) of vLLM's dummy sampler run: 39 up to 0.11, 15 from 0.19 (unknown: 15)."""
    if vllm_version and parse_vllm_version(vllm_version) <= (0, 11):
        return SAMPLER_BYTES_PER_SEQ_VOCAB_V011
    return SAMPLER_BYTES_PER_SEQ_VOCAB


def activation_peak_bytes(
    config: dict, shape: ModelShape, max_num_batched_tokens: int, max_num_seqs: int, vllm_version: str | None = None
) -> int:
    """vLLM's profiled torch activation peak: sampler logits over max_num_seqs rows + forward activations."""
    vocab = vocab_size(config)
    sampler = sampler_bytes_per_entry(vllm_version) * max_num_seqs * vocab
    forward = FORWARD_BYTES_PER_TOKEN_HIDDEN * max_num_batched_tokens * shape.hidden_size
    return int(sampler + forward + ACTIVATION_FLOOR)


def non_torch_bytes(tp: int) -> int:
    return NON_TORCH_TP1 if tp == 1 else NON_TORCH_TP_MULTI


def cudagraph_bytes(layers_on_gpu: int) -> int:
    return CUDAGRAPH_BASE + CUDAGRAPH_PER_LAYER * layers_on_gpu


def sglang_mem_fraction_static(memory_bytes: int, tp: int, pp: int) -> float:
    """SGLang's `_handle_gpu_memory_settings` auto value (gpu memory in MB)."""
    gpu_mb = memory_bytes / MIB
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


# ----------------------------------------------------------------------------------------------- the plan


def _stage_caches(shape: ModelShape, pp: int) -> tuple[list, int]:
    stages = pipeline_stages(shape.num_layers, pp)
    fullest = max(stages, key=len)
    return [c for i in fullest for c in shape.layers[i]], len(fullest)


@dataclass(frozen=True)
class _Fit:
    available: int
    tokens: int
    blocks: int
    block_size: int
    concurrency: float
    fit_len: int
    fits_one: bool


def _vllm_groups(model: ModelShape | ResolvedModel, caches: list, req: Request) -> GroupPlan:
    """vLLM's KV-cache groups for the fullest stage's `caches`. They do not depend on the length (only the blocks
    a request needs do: kvplan.engines.vllm), so a resolved model derives them once per setting of the request."""
    if isinstance(model, ResolvedModel):
        return model.memo(("vllm_groups", replace(req, seq_len=1)), lambda: VllmEngine().plan(caches, req))
    return VllmEngine().plan(caches, req)


def request_kv_bytes(model: ModelShape | ResolvedModel, engine: str, req: Request) -> int:
    """KV bytes one request of `req.seq_len` tokens holds on the fullest GPU, as `engine` stores it: for vLLM whole
    pages in every KV-cache group; for the per-token engines their estimate. What `max_concurrency` divides by.
    `model`: its shape, or the resolved model (which keeps vLLM's grouping between calls)."""
    shape = model.shape if isinstance(model, ResolvedModel) else model
    if engine == "vllm":
        caches, _ = _stage_caches(shape, req.pp)
        cap = capacity(caches, req, 0, _vllm_groups(model, caches, req))
        return cap.blocks_per_request * cap.page_bytes * cap.group_size
    positive_int("seq_len", req.seq_len)  # the one field a caller varies (check's fixes try lengths)
    return kv_bytes_per_gpu(shape, get_engine(estimate_engine(engine), shape), req)


def _vllm_fit(model: ResolvedModel, caches, req: Request, available: int, limit: int) -> _Fit:
    avail = max(0, available)
    # vLLM's groups and pages do not depend on the length: grouped once, only the blocks a request needs vary
    engine = VllmEngine()
    groups = _vllm_groups(model, caches, req)
    cap: Capacity = capacity(caches, req, avail, groups)

    def fits(n: int) -> bool:
        longer = _with_len(req, n)
        blocks = sum(groups.groups(spec) * engine.blocks_per_request(spec, longer) for spec in groups.specs)
        return blocks <= cap.num_blocks

    return _Fit(
        avail,
        cap.kv_cache_tokens,
        cap.num_blocks,
        cap.block_size,
        cap.max_concurrency,
        largest(fits, limit),
        cap.blocks_per_request <= cap.num_blocks,
    )


def _with_len(req: Request, n: int) -> Request:
    return replace(req, seq_len=n)


def llamacpp_compute_buffer_bytes(config: dict, shape: ModelShape, n_ubatch: int) -> int:
    """The compute buffer llama.cpp reserves on the GPU holding the output layer: f32 logits and hidden state of
    one worst-case micro-batch, n_ubatch x (n_vocab + n_embd) x 4 bytes (module docstring)."""
    return n_ubatch * (vocab_size(config) + shape.hidden_size) * 4


def trtllm_runtime_bytes(config: dict) -> int:
    return int(TRTLLM_RUNTIME_BYTES_PER_VOCAB * vocab_size(config))


def _budget(
    engine,
    config,
    shape,
    profile,
    *,
    tp,
    pp,
    util,
    weights,
    layers_on_gpu,
    mnbt,
    max_num_seqs,
    kv_memory,
    cudagraph_profiling,
    n_ubatch=DEFAULT_UBATCH,
    vllm_version=None,
) -> tuple[list[BudgetTerm], int]:
    if kv_memory is not None:
        return [BudgetTerm("kv_memory", kv_memory, "--kv-memory (replaces the whole budget)")], kv_memory
    weights_gpu = weights // (tp * pp)
    if engine == "llamacpp":
        terms = [
            BudgetTerm("total", profile.memory_bytes, f"{profile.id} memory"),
            BudgetTerm("weights", -weights_gpu, f"GGUF weights / {pp} GPU(s) (layer split)"),
            BudgetTerm(
                "compute_buffer",
                -llamacpp_compute_buffer_bytes(config, shape, n_ubatch),
                f"n_ubatch {n_ubatch} x (n_vocab + n_embd) x 4 B (f32 logits + hidden; matches logged "
                "CUDA compute buffers exactly)",
            ),
            BudgetTerm(
                "fit_margin",
                -LLAMACPP_FIT_MARGIN,
                "llama.cpp --fit keeps 1024 MiB free per device (PR #16653); the CUDA context is not modelled",
            ),
        ]
        return terms, sum(t.bytes for t in terms)
    if engine == "tensorrt-llm":
        runtime = trtllm_runtime_bytes(config)
        free = profile.memory_bytes - weights_gpu - runtime
        kept = int(max(0, free) * util)
        terms = [
            BudgetTerm("total", profile.memory_bytes, f"{profile.id} memory"),
            BudgetTerm("weights", -weights_gpu, f"engine weights / (tp x pp) = / {tp * pp}"),
            BudgetTerm(
                "runtime_buffers",
                -runtime,
                "execution context + runtime + decoder buffers: 9.18 GiB "
                "logged for a vocab-151936 build (TensorRT-LLM #1188), scaled by vocab; approximation",
            ),
            BudgetTerm(
                "free_fraction",
                kept - max(0, free),
                f"keeps (1 - free_gpu_memory_fraction {util}) of the memory free after loading",
            ),
        ]
        return terms, kept
    if engine == "lightllm":
        usable = int(profile.memory_bytes * util)
        terms = [
            BudgetTerm("total_x_mem_fraction", usable, f"{profile.id} memory x mem_fraction {util}"),
            BudgetTerm("weights", -weights_gpu, f"weights / (tp x pp) = / {tp * pp}"),
        ]
        return terms, usable - weights_gpu
    if engine == "sglang":
        usable = int(profile.memory_bytes * util)
        terms = [
            BudgetTerm("total_x_mem_fraction_static", usable, f"{profile.id} memory x mem_fraction_static {util}"),
            BudgetTerm("weights", -weights_gpu, f"weights / (tp x pp) = / {tp * pp}"),
        ]
        return terms, usable - weights_gpu
    terms = [
        BudgetTerm("total_x_utilization", int(profile.memory_bytes * util), f"{profile.id} memory x {util}"),
        BudgetTerm("weights", -weights_gpu, f"weights / (tp x pp) = / {tp * pp}"),
        BudgetTerm(
            "activation_peak",
            -activation_peak_bytes(config, shape, mnbt, max_num_seqs, vllm_version),
            f"{sampler_bytes_per_entry(vllm_version):g} B x max_num_seqs {max_num_seqs} x vocab + 1.1 B x {mnbt} "
            f"tokens x hidden + 32 MiB; {_LOGS}" + (f"; sampler of vLLM {vllm_version}" if vllm_version else ""),
        ),
        BudgetTerm("non_torch", -non_torch_bytes(tp), f"0.25 GiB at TP 1, 2.1 GiB at TP > 1; {_LOGS}"),
    ]
    if cudagraph_profiling:
        terms.append(
            BudgetTerm(
                "cudagraph",
                -cudagraph_bytes(layers_on_gpu),
                f"0.45 GiB + 15 MiB x {layers_on_gpu} layers; subtracted by vLLM >= 0.21",
            )
        )
    return terms, sum(t.bytes for t in terms)


def recommend(
    model: ModelRef,
    *,
    gpu_profile: str,
    gpus: int = 1,
    engine: str = "vllm",
    gpu_memory_utilization: float | None = None,
    max_model_len: int | None = None,
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
) -> Recommendation:
    """Plan MODEL on `gpus` GPUs of `gpu_profile`: KV budget per GPU, capacity, fit, engine flags, throughput bounds.

    model: a name, path or Hub id, a config dict, a LoadedConfig, or a model resolved once with
    `kvplan.resolve` (reused as is: check re-plans a deployment for each fix without reading anything again).

    engine: vllm, sglang, llamacpp (alias llama.cpp), tensorrt-llm, lightllm. gpu_memory_utilization: vLLM's
    fraction of total memory (default 0.9); SGLang's mem_fraction_static (default: SGLang's heuristic);
    TensorRT-LLM's free_gpu_memory_fraction (0.9); LightLLM's mem_fraction (0.9); unused by llama.cpp.
    tp defaults to gpus // pp (llama.cpp: 1, with layers split over pp GPUs). kv_memory (bytes or "58.11GiB")
    replaces the modelled budget; weights_bytes (e.g. a GGUF's file size) replaces the counted weights (whole
    model). max_model_len defaults to the model's max_position_embeddings capped at 131072. n_ubatch is
    llama.cpp's `-ub`; vllm_version selects version-dependent profiling terms (module docstring).
    """
    from kvplan.sources.hardware import load_profile

    engine = canonical_engine(engine)
    if engine not in SUPPORTED_ENGINES:
        raise UsageError(
            f"recommend supports {', '.join(SUPPORTED_ENGINES)}; not {engine!r}",
            hint=Text(
                "use {engine} vllm, sglang, llamacpp, tensorrt-llm or lightllm (TGI and Xinference: "
                "their flags are printed with every plan, without a budget model)"
            ),
            field="engine",
        )
    profile = load_profile(gpu_profile, profiles_dir=profiles_dir)
    # the plan's own settings, checked before the model is read; the request's in make_request below (gpus, pp
    # and tp first: the GPU count and the default TP follow from them)
    gpus = positive_int("gpus", gpus)
    pp = positive_int("pp", pp)
    positive_int("n_ubatch", n_ubatch)
    if engine == "llamacpp":
        if tp not in (None, 1):
            raise UsageError(
                "llama.cpp has no tensor parallelism: it splits whole layers across GPUs",
                hint=Text("use {pp} N for a layer split over N GPUs"),
                field="tp",
            )
        tp = 1
        pp = pp if pp > 1 else gpus
    tp = positive_int("tp", tp if tp is not None else max(1, gpus // pp))
    if tp * pp > gpus:
        raise UsageError(
            Text("{tp} {t} x {pp} {p} needs {n} GPUs, {gpus} is {g}", t=tp, p=pp, n=tp * pp, g=gpus),
            hint=Text("raise {gpus}"),
            field="gpus",
        )
    for name, value in (
        ("max_model_len", max_model_len),
        ("concurrency", concurrency),
        ("max_num_seqs", max_num_seqs),
        ("block_size", block_size),
        ("max_num_batched_tokens", max_num_batched_tokens),
    ):
        optional_positive(name, value)
    if gpu_memory_utilization is not None and not 0 < gpu_memory_utilization <= 1:
        raise UsageError(
            Text("{gpu_memory_utilization} must be in (0, 1], got {u}", u=gpu_memory_utilization),
            hint="pass e.g. 0.9",
            field="gpu_memory_utilization",
        )
    kv_bytes = None if kv_memory is None else parse_size(kv_memory)
    if cudagraph_profiling is None:  # vLLM subtracts its CUDA-graph estimate from 0.21 on (module docstring)
        cudagraph_profiling = vllm_version is None or parse_vllm_version(vllm_version) >= (0, 21)

    resolved = resolve(model, revision=revision, offline=offline)
    loaded = resolved.loaded
    config = loaded.config
    shape = resolved.shape
    default_mnbt, default_seqs = scheduler_defaults(profile.memory_bytes, profile.name)
    if max_num_seqs is not None:  # the engine is run with this cap: its sampler warm-up uses it too
        default_seqs = max_num_seqs
    limit = shape.max_position_embeddings or DEFAULT_MAX_MODEL_LEN_CAP
    # the request planned: one sequence of max_model_len, every field checked once (kvplan.planning.requests)
    base = make_request(
        shape,
        engine=engine,
        seq_len=max_model_len or min(limit, DEFAULT_MAX_MODEL_LEN_CAP),
        dtype=dtype,
        kv_dtype=kv_dtype,
        tp=tp,
        pp=pp,
        block_size=block_size,
        max_num_batched_tokens=max_num_batched_tokens or default_mnbt,
        n_ubatch=n_ubatch,
    )
    model_dtype, kv, seq_len, mnbt = base.model_dtype, base.kv_dtype, base.seq_len, base.max_num_batched_tokens
    if weights_bytes is not None:
        weights, weights_source = parse_size(weights_bytes), "--weights-bytes"
    else:
        weights, weights_source = resolved.weights(model_dtype)
    if weights is None and kv_bytes is None:
        raise UsageError(
            "cannot count this model's weights",
            hint=Text("pass {kv_memory:SIZE} or {weights_bytes:SIZE}"),
            field="weights_bytes",
        )

    # the largest max_model_len is searched up to the model's own limit: vLLM refuses more unless told to
    search_limit = limit if shape.max_position_embeddings else max(seq_len, limit)
    util = _utilization(engine, gpu_memory_utilization, profile.memory_bytes, tp, pp)
    notes: list[str] = list(shape.assumptions)
    ignored = [
        placeholder(name)
        for name, given, used_by in (
            ("gpu_memory_utilization", gpu_memory_utilization is not None, engine != "llamacpp"),
            ("n_ubatch", n_ubatch != DEFAULT_UBATCH, engine == "llamacpp"),
            ("vllm_version", vllm_version is not None, engine == "vllm"),
            ("block_size", block_size is not None, engine in ("vllm", "tensorrt-llm")),
        )
        if given and not used_by
    ]
    if ignored:
        notes.append(Text(", ".join(ignored) + " does not apply to {which} and was ignored", which=engine))
    if above_model_limit(seq_len, shape.max_position_embeddings):
        notes.append(
            f"max_model_len {seq_len} is above the model's limit ({shape.max_position_embeddings}); vLLM "
            "refuses it unless VLLM_ALLOW_LONG_MAX_MODEL_LEN=1"
        )
    if engine == "llamacpp" and weights_source != "--weights-bytes":
        notes.append(
            Text(
                "weights counted at {d}; a quantized GGUF is smaller: pass {weights_bytes} with its file size",
                d=short_dtype(model_dtype),
            )
        )

    def plan(tp_: int, kv_dtype_: str) -> tuple[list[BudgetTerm], _Fit]:
        caches, layers_on_gpu = _stage_caches(shape, pp)
        terms, available = _budget(
            engine,
            config,
            shape,
            profile,
            tp=tp_,
            pp=pp,
            util=util,
            weights=weights or 0,
            layers_on_gpu=layers_on_gpu,
            mnbt=mnbt,
            max_num_seqs=default_seqs,
            kv_memory=kv_bytes,
            cudagraph_profiling=cudagraph_profiling,
            n_ubatch=n_ubatch,
            vllm_version=vllm_version,
        )
        req = replace(base, tp=tp_, kv_dtype=kv_dtype_)
        if engine == "vllm":
            return terms, _vllm_fit(resolved, caches, req, available, search_limit)
        return terms, _per_token_fit(shape, estimate_engine(engine), req, available, search_limit)

    def ok(fit: _Fit) -> bool:
        return fit.fits_one and (concurrency is None or fit.concurrency >= concurrency)

    terms, fit = plan(tp, kv)
    fits = ok(fit)

    fp8 = None
    alt = "q8_0" if engine == "llamacpp" else "fp8_e4m3"
    if engine == "llamacpp":
        want = kv not in GGML_BLOCK_TYPES
    else:
        want = bool(profile.kv_cache_dtypes and "fp8" in profile.kv_cache_dtypes and not kv.startswith("fp8"))
    if want:
        try:
            _, f8 = plan(tp, alt)
            fp8 = {
                "kv_dtype": "q8_0" if engine == "llamacpp" else "fp8",
                "kv_cache_tokens": f8.tokens,
                "num_blocks": f8.blocks,
                "max_concurrency": round(f8.concurrency, 2),
                "max_model_len_fit": f8.fit_len,
                "fits": ok(f8),
                "changes_answer": ok(f8) != fits,
            }
        except KvplanError:
            fp8 = None

    min_tp = None
    if not fits and engine != "llamacpp":
        for candidate in TP_CHOICES:
            try:
                if ok(plan(candidate, kv)[1]):
                    min_tp = candidate
                    break
            except KvplanError:
                continue
    if not fits:
        if fit.available == 0:
            notes.append("the weights and overheads leave no memory for the KV cache on this GPU")
        if kv_bytes is None and min_tp and min_tp * pp > gpus:
            notes.append(Text("{tp} {t} would fit (needs {n} GPUs)", t=min_tp, n=min_tp * pp))

    cap = default_seqs
    max_num_seqs = max(1, min(floor(fit.concurrency), cap)) if fit.concurrency != float("inf") else cap
    if engine == "llamacpp" and concurrency is not None:
        max_num_seqs = concurrency
    serve_len = seq_len if fit.fits_one or fit.fit_len == 0 else fit.fit_len
    lightllm_tokens = (
        fit.tokens
        if engine == "lightllm"
        else _lightllm_tokens(
            config, shape, profile, weights, _lightllm_cell(resolved, model_dtype, kv, tp, pp), tp, pp, kv_bytes
        )
    )
    flags = _flags(loaded.name, serve_len, max_num_seqs, util, tp, pp, kv, lightllm_tokens, mnbt, engine, n_ubatch)

    bounds_rows, prefill, bound_notes = _throughput(resolved, profile, engine, weights, base, max_num_seqs)
    return Recommendation(
        model=loaded.name,
        gpu_profile=profile.id,
        gpu_memory_bytes=profile.memory_bytes,
        gpus=gpus,
        engine=engine,
        tp=tp,
        pp=pp,
        model_dtype=model_dtype,
        cache_dtype=kv,
        gpu_memory_utilization=None if engine == "llamacpp" else util,
        weights_bytes=None if weights is None else weights // (tp * pp),
        weights_source=weights_source,
        available_kv_memory_bytes=fit.available,
        kv_cache_tokens=fit.tokens,
        num_blocks=fit.blocks,
        block_size=fit.block_size,
        max_model_len=seq_len,
        max_model_len_fit=fit.fit_len,
        max_concurrency=round(fit.concurrency, 2),
        concurrency=concurrency,
        fits=fits,
        max_num_seqs=max_num_seqs,
        max_num_batched_tokens=n_ubatch if engine == "llamacpp" else mnbt,
        budget=tuple(terms),
        flags=flags,
        fp8_kv=fp8,
        min_tp_to_fit=min_tp,
        notes=tuple(notes),
        throughput_bounds=tuple(bounds_rows),
        prefill_tokens_per_s_upper_bound=prefill,
        throughput_assumptions=tuple(bound_notes),
        kv_bytes_per_request=request_kv_bytes(resolved, engine, base),
    )


def _utilization(engine: str, given: float | None, memory_bytes: int, tp: int, pp: int) -> float:
    if given is not None:
        return given
    if engine == "sglang":
        return sglang_mem_fraction_static(memory_bytes, tp, pp)
    if engine == "tensorrt-llm":
        return FREE_GPU_MEMORY_FRACTION
    if engine == "lightllm":
        return LIGHTLLM_MEM_FRACTION
    return 0.9


def estimate_engine(engine: str) -> str:
    """The kvplan engine model that sizes a plan's KV cache (LightLLM's cell is SGLang's per-token cell)."""
    return "sglang" if engine == "lightllm" else engine


def _per_token_fit(shape, engine: str, req: Request, available: int, limit: int) -> _Fit:
    """Engines without vLLM's block accounting (SGLang, LightLLM, llama.cpp, TensorRT-LLM): tokens = memory / the
    marginal bytes of a token; concurrency = memory / the bytes one request of max_model_len holds."""
    avail = max(0, available)
    eng = get_engine(engine, shape)

    def per_request(n: int) -> int:
        return kv_bytes_per_gpu(shape, eng, _with_len(req, n))

    est = estimate_request(shape, eng, req)
    per_token = est.bytes_per_token_per_gpu or (est.kv_cache_bytes_per_gpu / req.seq_len)
    tokens = int(avail // per_token) if per_token else 0
    block = {"llamacpp": 256, "tensorrt-llm": est.block_size or 1}.get(engine, 1)
    tokens -= tokens % block
    need = est.kv_cache_bytes_per_gpu
    concurrency = avail / need if need else float("inf")
    return _Fit(
        avail,
        tokens,
        tokens // block,
        block,
        concurrency,
        largest(lambda n: per_request(n) <= avail, limit),
        need <= avail,
    )


def _lightllm_cell(resolved, model_dtype: str, kv: str, tp: int, pp: int) -> float | None:
    """LightLLM's per-token cell on the fullest GPU (SGLang's), None where it cannot store this cache; derived once
    per model and settings (every plan's LightLLM flag needs it)."""

    def cell() -> float | None:
        shape = resolved.shape
        try:
            one = make_request(
                shape, engine=estimate_engine("lightllm"), seq_len=1, dtype=model_dtype, kv_dtype=kv, tp=tp, pp=pp
            )
            return kv_per_token_per_gpu(shape, get_engine(estimate_engine("lightllm"), shape), one)
        except KvplanError:
            return None

    return resolved.memo(("lightllm_cell", model_dtype, kv, tp, pp), cell)


def _lightllm_tokens(config, shape, profile, weights, per_token: float | None, tp, pp, kv_bytes) -> int:
    """LightLLM's profiled max_total_token_num for any plan's LightLLM flag: its budget (`_budget`) over its
    per-token cell (SGLang's, `_lightllm_cell`)."""
    if per_token is None:
        return 0
    _, avail = _budget(
        "lightllm",
        config,
        shape,
        profile,
        tp=tp,
        pp=pp,
        util=LIGHTLLM_MEM_FRACTION,
        weights=weights or 0,
        layers_on_gpu=0,
        mnbt=0,
        max_num_seqs=0,
        kv_memory=kv_bytes,
        cudagraph_profiling=False,
    )
    return int(max(0, avail) // per_token) if per_token else 0


def _throughput(
    resolved, profile, engine, weights, req: Request, max_num_seqs
) -> tuple[list[dict], float | None, list[str]]:
    from kvplan.planning import throughput

    shape = resolved.shape
    if weights is None:
        return [], None, ["no throughput bounds: the weights are unknown"]
    batches = sorted({b for b in (1, 8, 32, max_num_seqs) if b <= max_num_seqs} | {1})
    tp, pp, model_dtype, context = req.tp, req.pp, req.model_dtype, req.seq_len
    try:
        eng = get_engine(estimate_engine(engine), shape)
    except KvplanError:
        eng = None

    def kv_read(batch: int) -> int:
        if eng is None:
            return 0
        try:
            return kv_bytes_per_gpu(shape, eng, replace(req, batch=batch))
        except KvplanError:
            return 0

    return throughput.bounds(
        shape=shape,
        split=resolved.memo("param_split", lambda: throughput.param_split(resolved.config)),
        weights_per_gpu=weights // (tp * pp),
        kv_bytes_per_gpu=kv_read,
        batches=batches,
        context=context,
        bandwidth=profile.memory_bandwidth_bytes_per_s,
        tflops=profile.dense_tflops,
        model_dtype=model_dtype,
        gpus=tp * pp,
    )


def _flags(
    model: str,
    n: int,
    seqs: int,
    util: float,
    tp: int,
    pp: int,
    kv: str,
    tokens: int,
    mnbt: int,
    engine: str,
    n_ubatch: int = DEFAULT_UBATCH,
) -> dict[str, str]:
    fp8 = kv.startswith("fp8")
    vllm = (
        f"vllm serve {model} --max-model-len {n} --max-num-seqs {seqs} --gpu-memory-utilization {util} "
        f"--tensor-parallel-size {tp}"
    )
    if pp > 1:
        vllm += f" --pipeline-parallel-size {pp}"
    if fp8:
        vllm += " --kv-cache-dtype fp8"
    sglang = f"python -m sglang.launch_server --model-path {model} --context-length {n} --tp {tp}"
    if pp > 1:
        sglang += f" --pp-size {pp}"
    if engine == "sglang":
        sglang += f" --mem-fraction-static {util} --max-running-requests {seqs}"
    if fp8:
        sglang += " --kv-cache-dtype fp8_e4m3"
    # llama.cpp: -c is the total context of the -np slots; it has no fp8 cache (q8_0 is its 8-bit type)
    llamacpp = f"llama-server -m {model.split('/')[-1]}.gguf -c {n * seqs} -np {seqs} -ngl 99"
    llamacpp += cache_type_flags(kv) if engine == "llamacpp" or kv in GGML_BLOCK_TYPES else ""
    if n_ubatch != DEFAULT_UBATCH:
        llamacpp += f" -ub {n_ubatch} -b {max(n_ubatch, 2048)}"
    if pp > 1 and engine == "llamacpp":
        llamacpp += " --split-mode layer"
    lightllm = (
        f"python -m lightllm.server.api_server --model_dir {model} --tp {tp} "
        f"--max_req_total_len {n} --max_total_token_num {tokens}"
    )
    if engine == "lightllm":
        lightllm += f" --mem_fraction {util}"
    trtllm = f"trtllm-serve {model} --tp_size {tp} --pp_size {pp} --max_seq_len {n} --max_batch_size {seqs}"
    if engine == "tensorrt-llm":
        trtllm += f" --kv_cache_free_gpu_memory_fraction {util}"
    return {
        "vllm": vllm,
        "sglang": sglang,
        "llama.cpp": llamacpp,
        "lightllm": lightllm,
        "tgi": (
            f"text-generation-launcher --model-id {model} --num-shard {tp} --max-total-tokens {n} "
            f"--max-input-tokens {max(1, n - 1)} --max-batch-prefill-tokens {min(mnbt, n)}"
        ),
        "xinference": f"xinference launch --model-engine vllm --model-name {model} --n-gpu {tp * pp} --max_model_len {n}",
        "tensorrt-llm": trtllm,
    }
