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
  estimate only from v0.21 (`VLLM_MEMORY_PROFILER_ESTIMATE_CUDAGRAPHS`); pass `cudagraph_profiling=False`
  to follow older versions, whose logged "Available KV cache memory" does not include it.
`kv_memory` replaces the whole budget (vLLM's `--kv-cache-memory-bytes`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from math import floor
from typing import Any

from kvplan.architectures import ModelShape, model_shape
from kvplan.config_fields import first, text_config
from kvplan.engines import Request, pipeline_stages
from kvplan.engines.vllm import Capacity, capacity, scheduler_defaults
from kvplan.errors import KvplanError, UsageError
from kvplan.estimate import check_positive, estimate_shape, resolve_dtypes
from kvplan.units import parse_size, short_dtype

SCHEMA = "kvplan.recommend/1"
GIB = 2**30
MIB = 2**20
DEFAULT_MAX_MODEL_LEN_CAP = 131072
TP_CHOICES = (1, 2, 4, 8)
SUPPORTED_ENGINES = ("vllm", "sglang")

# activation-peak mechanism (see the module docstring)
SAMPLER_BYTES_PER_SEQ_VOCAB = 15.0
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
    dtype: str
    kv_dtype: str
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

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["budget"] = [asdict(t) for t in self.budget]
        data["notes"] = list(self.notes)
        return {"schema": SCHEMA, **data}


# ------------------------------------------------------------------------------------------- budget terms

def activation_peak_bytes(config: dict, shape: ModelShape, max_num_batched_tokens: int, max_num_seqs: int) -> int:
    """vLLM's profiled torch activation peak: sampler logits over max_num_seqs rows + forward activations."""
    vocab = int(first(text_config(config), "vocab_size", "padded_vocab_size", default=32000))
    sampler = SAMPLER_BYTES_PER_SEQ_VOCAB * max_num_seqs * vocab
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


def _vllm_fit(shape, caches, req: Request, available: int, limit: int) -> _Fit:
    avail = max(0, available)
    cap: Capacity = capacity(caches, req, avail)

    def fits(n: int) -> bool:
        return capacity(caches, _with_len(req, n), avail).blocks_per_request <= cap.num_blocks

    return _Fit(avail, cap.kv_cache_tokens, cap.num_blocks, cap.block_size, cap.max_concurrency,
                _largest(fits, limit), cap.blocks_per_request <= cap.num_blocks)


def _sglang_fit(shape, req: Request, available: int, limit: int) -> _Fit:
    avail = max(0, available)

    def per_request(n: int) -> int:
        return estimate_shape(shape, engine="sglang", seq_len=n, dtype=req.model_dtype, kv_dtype=req.kv_dtype,
                              tp=req.tp, pp=req.pp).kv_cache_bytes_per_gpu

    est = estimate_shape(shape, engine="sglang", seq_len=req.seq_len, dtype=req.model_dtype, kv_dtype=req.kv_dtype,
                         tp=req.tp, pp=req.pp)
    per_token = est.bytes_per_token_per_gpu or (est.kv_cache_bytes_per_gpu / req.seq_len)
    tokens = int(avail // per_token) if per_token else 0
    need = est.kv_cache_bytes_per_gpu
    concurrency = avail / need if need else float("inf")
    return _Fit(avail, tokens, tokens, 1, concurrency, _largest(lambda n: per_request(n) <= avail, limit), need <= avail)


def _with_len(req: Request, n: int) -> Request:
    return replace(req, seq_len=n)


def _largest(fits, limit: int) -> int:
    """Largest n in [1, limit] with fits(n) (monotone), 0 when none."""
    if limit < 1 or not fits(1):
        return 0
    lo, hi = 1, limit
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if fits(mid):
            lo = mid
        else:
            hi = mid - 1
    return lo


def _budget(engine, config, shape, profile, *, tp, pp, util, weights, layers_on_gpu, mnbt, max_num_seqs,
            kv_memory, cudagraph_profiling) -> tuple[list[BudgetTerm], int]:
    if kv_memory is not None:
        return [BudgetTerm("kv_memory", kv_memory, "--kv-memory (replaces the whole budget)")], kv_memory
    weights_gpu = weights // (tp * pp)
    if engine == "sglang":
        usable = int(profile.memory_bytes * util)
        terms = [BudgetTerm("total_x_mem_fraction_static", usable,
                            f"{profile.id} memory x mem_fraction_static {util}"),
                 BudgetTerm("weights", -weights_gpu, f"weights / (tp x pp) = / {tp * pp}")]
        return terms, usable - weights_gpu
    terms = [
        BudgetTerm("total_x_utilization", int(profile.memory_bytes * util), f"{profile.id} memory x {util}"),
        BudgetTerm("weights", -weights_gpu, f"weights / (tp x pp) = / {tp * pp}"),
        BudgetTerm("activation_peak", -activation_peak_bytes(config, shape, mnbt, max_num_seqs),
                   f"15 B x max_num_seqs {max_num_seqs} x vocab + 1.1 B x {mnbt} tokens x hidden + 32 MiB; {_LOGS}"),
        BudgetTerm("non_torch", -non_torch_bytes(tp), f"0.25 GiB at TP 1, 2.1 GiB at TP > 1; {_LOGS}"),
    ]
    if cudagraph_profiling:
        terms.append(BudgetTerm("cudagraph", -cudagraph_bytes(layers_on_gpu),
                                f"0.45 GiB + 15 MiB x {layers_on_gpu} layers; subtracted by vLLM >= 0.21"))
    return terms, sum(t.bytes for t in terms)


def recommend(
    model: str | dict,
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
    cudagraph_profiling: bool = True,
    offline: bool | None = None,
) -> Recommendation:
    """Plan MODEL on `gpus` GPUs of `gpu_profile`: KV budget per GPU, capacity, fit, and engine flags.

    gpu_memory_utilization: vLLM's fraction of total memory (default 0.9); for SGLang its mem_fraction_static
    (default: SGLang's own heuristic). tp defaults to gpus // pp. kv_memory (bytes or "58.11GiB") replaces
    the modelled budget. max_model_len defaults to the model's max_position_embeddings capped at 131072.
    """
    from kvplan import api
    from kvplan.hardware import load_profile

    engine = engine.strip().lower()
    if engine not in SUPPORTED_ENGINES:
        raise UsageError("recommend supports vllm and sglang for now", hint="use --engine vllm or --engine sglang")
    profile = load_profile(gpu_profile, profiles_dir=profiles_dir)
    check_positive("--gpus", gpus)
    check_positive("--pp", pp)
    tp = tp if tp is not None else max(1, gpus // pp)
    check_positive("--tp", tp)
    if tp * pp > gpus:
        raise UsageError(f"--tp {tp} x --pp {pp} needs {tp * pp} GPUs, --gpus is {gpus}", hint="raise --gpus")
    for label, value in (("--max-model-len", max_model_len), ("--concurrency", concurrency),
                         ("--block-size", block_size), ("--max-num-batched-tokens", max_num_batched_tokens)):
        if value is not None:
            check_positive(label, value)
    if gpu_memory_utilization is not None and not 0 < gpu_memory_utilization <= 1:
        raise UsageError(f"--gpu-memory-utilization must be in (0, 1], got {gpu_memory_utilization}",
                         hint="pass e.g. 0.9")
    kv_bytes = None if kv_memory is None else parse_size(kv_memory)

    loaded = api.load(model, offline=offline)
    config = loaded.config
    shape = model_shape(config)
    model_dtype, kv = resolve_dtypes(shape, dtype, kv_dtype)
    weights, weights_source = api.weights(loaded, model_dtype, offline=offline)
    if weights is None and kv_bytes is None:
        raise UsageError("cannot count this model's weights", hint="pass --kv-memory SIZE")

    default_mnbt, default_seqs = scheduler_defaults(profile.memory_bytes, profile.name)
    mnbt = max_num_batched_tokens or default_mnbt
    limit = shape.max_position_embeddings or DEFAULT_MAX_MODEL_LEN_CAP
    seq_len = max_model_len or min(limit, DEFAULT_MAX_MODEL_LEN_CAP)
    search_limit = max(seq_len, limit)
    if engine == "sglang":
        util = gpu_memory_utilization or sglang_mem_fraction_static(profile.memory_bytes, tp, pp)
    else:
        util = gpu_memory_utilization or 0.9
    notes: list[str] = list(shape.assumptions)

    def plan(tp_: int, kv_dtype_: str) -> tuple[list[BudgetTerm], _Fit]:
        caches, layers_on_gpu = _stage_caches(shape, pp)
        terms, available = _budget(engine, config, shape, profile, tp=tp_, pp=pp, util=util, weights=weights or 0,
                                   layers_on_gpu=layers_on_gpu, mnbt=mnbt, max_num_seqs=default_seqs,
                                   kv_memory=kv_bytes, cudagraph_profiling=cudagraph_profiling)
        req = Request(seq_len, 1, kv_dtype_, model_dtype, tp_, pp, block_size, mnbt)
        if engine == "sglang":
            return terms, _sglang_fit(shape, req, available, search_limit)
        return terms, _vllm_fit(shape, caches, req, available, search_limit)

    def ok(fit: _Fit) -> bool:
        return fit.fits_one and (concurrency is None or fit.concurrency >= concurrency)

    terms, fit = plan(tp, kv)
    fits = ok(fit)

    fp8 = None
    if profile.kv_cache_dtypes and "fp8" in profile.kv_cache_dtypes and not kv.startswith("fp8"):
        try:
            _, f8 = plan(tp, "fp8_e4m3")
            fp8 = {"kv_dtype": "fp8", "kv_cache_tokens": f8.tokens, "num_blocks": f8.blocks,
                   "max_concurrency": round(f8.concurrency, 2), "max_model_len_fit": f8.fit_len, "fits": ok(f8),
                   "changes_answer": ok(f8) != fits}
        except KvplanError:
            fp8 = None

    min_tp = None
    if not fits:
        for candidate in TP_CHOICES:
            try:
                if ok(plan(candidate, kv)[1]):
                    min_tp = candidate
                    break
            except KvplanError:
                continue
        if fit.available == 0:
            notes.append("the weights and overheads leave no memory for the KV cache on this GPU")
        if kv_bytes is None and min_tp and min_tp * pp > gpus:
            notes.append(f"--tp {min_tp} would fit (needs {min_tp * pp} GPUs)")

    max_num_seqs = max(1, min(floor(fit.concurrency), default_seqs)) if fit.concurrency != float("inf") else default_seqs
    serve_len = seq_len if fit.fits_one or fit.fit_len == 0 else fit.fit_len
    flags = _flags(loaded.name, serve_len, max_num_seqs, util, tp, pp, kv, fit.tokens, mnbt, engine)
    return Recommendation(
        model=loaded.name, gpu_profile=profile.id, gpu_memory_bytes=profile.memory_bytes, gpus=gpus, engine=engine,
        tp=tp, pp=pp, dtype=short_dtype(model_dtype), kv_dtype=short_dtype(kv), gpu_memory_utilization=util,
        weights_bytes=None if weights is None else weights // (tp * pp), weights_source=weights_source,
        available_kv_memory_bytes=fit.available, kv_cache_tokens=fit.tokens, num_blocks=fit.blocks,
        block_size=fit.block_size, max_model_len=seq_len, max_model_len_fit=fit.fit_len,
        max_concurrency=round(fit.concurrency, 2), concurrency=concurrency, fits=fits, max_num_seqs=max_num_seqs,
        max_num_batched_tokens=mnbt, budget=tuple(terms), flags=flags, fp8_kv=fp8, min_tp_to_fit=min_tp,
        notes=tuple(notes),
    )


def _flags(model: str, n: int, seqs: int, util: float, tp: int, pp: int, kv: str, tokens: int, mnbt: int,
           engine: str) -> dict[str, str]:
    fp8 = kv.startswith("fp8")
    vllm = (f"vllm serve {model} --max-model-len {n} --max-num-seqs {seqs} --gpu-memory-utilization {util} "
            f"--tensor-parallel-size {tp}")
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
    return {
        "vllm": vllm,
        "sglang": sglang,
        "llama.cpp": f"llama-server -m {model.split('/')[-1]}.gguf -c {n * seqs} -np {seqs}",
        "lightllm": (f"python -m lightllm.server.api_server --model_dir {model} --tp {tp} "
                     f"--max_req_total_len {n} --max_total_token_num {tokens}"),
        "tgi": (f"text-generation-launcher --model-id {model} --num-shard {tp} --max-total-tokens {n} "
                f"--max-input-tokens {max(1, n - 1)} --max-batch-prefill-tokens {min(mnbt, n)}"),
        "xinference": f"xinference launch --model-engine vllm --model-name {model} --n-gpu {tp * pp} --max_model_len {n}",
    }
