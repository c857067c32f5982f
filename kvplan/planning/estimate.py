"""`estimate()`: KV-cache bytes per layer kind, per sequence, per batch and per GPU, for one engine.

Pure arithmetic on a ModelShape (kvplan.core.shapes) and an engine model (kvplan.engines), for a request
checked once by kvplan.planning.requests.make_request. Loading a model by name lives in
kvplan.sources.configs; weights in kvplan.weights.tensors. Never imports torch.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from fractions import Fraction
from typing import Any

from kvplan.core.shapes import ModelShape, model_shape
from kvplan.core.units import DtypeDisplay, short_dtype
from kvplan.engines import DEFAULT_ENGINE, Engine, Request, engine_entry, get_engine
from kvplan.engines.base import Speculative
from kvplan.engines.naive import NaiveEngine
from kvplan.engines.sizing import number, pipeline_costs
from kvplan.engines.vllm import parse_speculative_config
from kvplan.errors import Text, UsageError
from kvplan.planning.requests import above_model_limit, engine_kv_dtype, make_request, positive_int, resolve_dtypes
from kvplan.planning.resolved import ModelRef, resolve
from kvplan.planning.speculative import engine_speculative, speculative_inputs, speculative_summary

SCHEMA = "kvplan.estimate/1"


@dataclass(frozen=True)
class KindEstimate:
    """One layer kind: how many layers, the bytes they hold (whole batch, all GPUs, and on the fullest GPU),
    and what one more token of one sequence costs across the whole model."""

    kind: str
    count: int
    bytes: int
    bytes_per_gpu: int
    bytes_per_token: float
    tokens_per_sequence: int | None


@dataclass(frozen=True)
class Estimate(DtypeDisplay):
    """The answer to "how much KV cache": all byte counts are integers; `*_per_gpu` is the fullest GPU.

    `model_dtype` and `cache_dtype` are canonical dtype names (kvplan.core.units); `dtype` and `kv_dtype` are
    their display names ("bf16"), which the JSON document carries under those keys."""

    model: str
    model_type: str
    engine: str
    engine_follows: str
    model_dtype: str
    cache_dtype: str
    batch: int
    seq_len: int
    tp: int
    pp: int
    block_size: int | None
    kv_cache_bytes: int
    kv_cache_bytes_per_gpu: int
    bytes_per_token: float
    bytes_per_token_per_gpu: float
    layers: tuple[KindEstimate, ...]
    naive_bytes: int
    weights_bytes: int | None = None
    weights_source: str | None = None
    notes: tuple[str, ...] = field(default=())
    vllm_version: str | None = None  # the engine release whose storage rules apply (engines with releases)
    config_source: str = "dict"  # where the config was read (kvplan.planning.resolved.ResolvedModel.config_source)
    revision: str | None = None  # the Hub snapshot's commit hash, when the config came from the Hub or its cache
    dcp: int = 1  # decode-context-parallel ranks splitting the tokens inside each TP group (JSON key only when > 1)
    # --speculative-config (JSON key only when given): the setup as the engine runs it (kvplan.planning.speculative.
    # speculative_summary) and the drafter's KV rows, which the totals above include; `layers` are the target's
    speculative: dict[str, Any] | None = None
    draft_layers: tuple[KindEstimate, ...] = ()

    @property
    def bytes_per_sequence(self) -> int:
        return self.kv_cache_bytes // self.batch

    @property
    def naive_ratio(self) -> float:
        return self.naive_bytes / self.kv_cache_bytes if self.kv_cache_bytes else float("inf")

    def to_dict(self) -> dict[str, Any]:
        data = _display_dtypes(asdict(self))
        if data["dcp"] == 1:  # estimates without DCP print what they always have
            del data["dcp"]
        data["layers"] = [asdict(k) for k in self.layers]
        draft = list(data.pop("draft_layers"))
        if self.speculative is None:
            del data["speculative"]
        else:
            data["speculative"] = {
                **self.speculative,
                "draft_kv_bytes": sum(k["bytes"] for k in draft),
                "draft_kv_bytes_per_gpu": sum(k["bytes_per_gpu"] for k in draft),
                "draft_layers": draft,
            }
        data["notes"] = list(self.notes)
        data["bytes_per_sequence"] = self.bytes_per_sequence
        return {"schema": SCHEMA, **data}


def _display_dtypes(data: dict[str, Any]) -> dict[str, Any]:
    """A result's fields with its canonical dtypes as the display names the JSON document has always carried,
    under the keys `dtype` and `kv_dtype`, in place."""
    names = {"model_dtype": "dtype", "cache_dtype": "kv_dtype"}
    return {names.get(k, k): short_dtype(v) if k in names else v for k, v in data.items()}


def estimate_request(shape: ModelShape, eng: Engine, req: Request, *, name: str = "model") -> Estimate:
    """The estimate of an already-checked request (`kvplan.planning.requests.make_request`) on storage model `eng`
    (the fullest GPU alone, without the rest of an estimate: kvplan.engines.sizing.gpu_kv).

    With `req.speculative` (its drafter already filled in by the engine's rules, kvplan.planning.speculative), the
    totals are the engine's with the drafter's layers, `layers` the target's rows sized beside the drafter's
    speculative slots, and `draft_layers` what the drafter adds, kind by kind (the engine's figure with the draft
    layers less the one without them: vLLM's padding of a hybrid's groups included)."""
    spec = req.speculative
    if spec is None:
        return _estimate_request(shape, eng, req, name)
    target = _estimate_request(shape, eng, replace(req, speculative=replace(spec, draft_caches=())), name)
    both = _estimate_request(shape, eng, req, name) if spec.draft_caches else target
    return replace(
        target,
        block_size=both.block_size,
        kv_cache_bytes=both.kv_cache_bytes,
        kv_cache_bytes_per_gpu=both.kv_cache_bytes_per_gpu,
        bytes_per_token=both.bytes_per_token,
        bytes_per_token_per_gpu=both.bytes_per_token_per_gpu,
        notes=target.notes + spec.notes,
        speculative=speculative_summary(spec),
        draft_layers=_added(target.layers, both.layers),
    )


def _added(target: tuple[KindEstimate, ...], both: tuple[KindEstimate, ...]) -> tuple[KindEstimate, ...]:
    """What the drafter adds to each kind: `both` (target and drafter) less `target`."""
    alone = {k.kind: k for k in target}
    rows = []
    for k in both:
        t = alone.get(k.kind)
        if t is None:
            rows.append(k)
            continue
        row = KindEstimate(
            k.kind,
            k.count - t.count,
            k.bytes - t.bytes,
            k.bytes_per_gpu - t.bytes_per_gpu,
            number(Fraction(k.bytes_per_token) - Fraction(t.bytes_per_token)),
            k.tokens_per_sequence,
        )
        if row.count or row.bytes:
            rows.append(row)
    return tuple(rows)


def _estimate_request(shape: ModelShape, eng: Engine, req: Request, name: str) -> Estimate:
    stages = pipeline_costs(eng, shape, req)
    stage_totals = [sum(c.bytes for c in costs) for costs in stages]
    fullest = stage_totals.index(max(stage_totals))
    tp = req.tp
    kinds = _kinds(stages, fullest, tp)
    per_token_gpu = max(sum((c.bytes_per_token for c in costs), Fraction(0)) for costs in stages)
    caches = shape.caches()
    naive = NaiveEngine(shape.hidden_size).stage_costs(
        caches, Request(req.seq_len, req.batch, req.kv_dtype, req.model_dtype)
    )
    return Estimate(
        model=name,
        model_type=shape.model_type,
        engine=eng.name,
        engine_follows=eng.follows,
        model_dtype=req.model_dtype,
        cache_dtype=req.kv_dtype,
        batch=req.batch,
        seq_len=req.seq_len,
        tp=tp,
        pp=req.pp,
        block_size=eng.block_size(caches, req),
        kv_cache_bytes=tp * sum(stage_totals),
        kv_cache_bytes_per_gpu=stage_totals[fullest],
        bytes_per_token=number(sum((Fraction(k.bytes_per_token) for k in kinds), Fraction(0))),
        bytes_per_token_per_gpu=number(per_token_gpu),
        layers=tuple(kinds),
        naive_bytes=naive[0].bytes,
        notes=shape.assumptions + _length_notes(shape, req.seq_len) + _engine_notes(eng, shape, req, kinds),
        vllm_version=req.engine_version if engine_entry(eng.name).release is not None else None,
    )


def estimate_shape(
    shape: ModelShape,
    *,
    name: str = "model",
    seq_len: int = 4096,
    batch: int = 1,
    engine: str = DEFAULT_ENGINE,
    dtype: str = "auto",
    kv_dtype: str = "auto",
    tp: int = 1,
    pp: int = 1,
    block_size: int | None = None,
    max_num_batched_tokens: int = 8192,
    n_ubatch: int = 512,
    vllm_version: str | None = None,
    prefix_caching: bool | None = None,
    async_scheduling: bool | None = None,
    compute_capability: str | None = None,
    dcp: int = 1,
    speculative: Speculative | None = None,
    flash_attn: str | None = None,
    kv_unified: bool | None = None,
) -> Estimate:
    """Size the KV cache of an already-read ModelShape. See `estimate` for the arguments; `speculative` is a
    speculative-decoding setup whose drafter the engine's rules have filled in (kvplan.planning.speculative).

    For llama.cpp (`engine="llamacpp"`), `batch` is the `-np` slots, `seq_len` the tokens of one slot (so
    `-c = seq_len x batch`), `kv_dtype="auto"` is its f16 default, `n_ubatch` its `-ub`, `flash_attn` its `-fa`
    (auto, on, off; None: auto) and `kv_unified` its `-kvu` (None: off, as llama-server runs a given `-np`)."""
    req = make_request(
        shape,
        engine=engine,
        seq_len=seq_len,
        batch=batch,
        dtype=dtype,
        kv_dtype=kv_dtype,
        tp=tp,
        pp=pp,
        block_size=block_size,
        max_num_batched_tokens=max_num_batched_tokens,
        n_ubatch=n_ubatch,
        storage=True,
        compute_capability=compute_capability,
    )
    entry = engine_entry(get_engine(engine, shape).name)
    release, source = entry.release(vllm_version) if entry.release is not None else (None, None)
    if release is not None and kv_dtype in (None, "auto"):  # `auto` by the release modelled (vLLM's DeepSeek-V4)
        resolved = resolve_dtypes(shape, dtype, kv_dtype)[1]
        req = replace(req, kv_dtype=engine_kv_dtype(engine, kv_dtype, resolved, shape, compute_capability, release))
    req = replace(
        req,
        engine_version=release,
        prefix_caching=prefix_caching,
        async_scheduling=async_scheduling,
        compute_capability=compute_capability,
        dcp=_dcp(entry, dcp),
        speculative=speculative,
    )
    storage = get_engine(engine, shape, {"flash_attn": flash_attn, "kv_unified": kv_unified})
    result = estimate_request(shape, storage, req, name=name)
    result = replace(result, dcp=req.dcp)
    notes = _release_notes(entry, release, source, vllm_version, prefix_caching, async_scheduling)
    return replace(result, notes=result.notes + notes) if notes else result


def _dcp(entry: Any, dcp: int) -> int:
    """The DCP size, refused for an engine whose serving model does not model it (its `parallelism`)."""
    dcp = positive_int("dcp", dcp)
    serving = entry.serving
    if dcp > 1 and "dcp" not in getattr(serving, "parallelism", frozenset()):
        raise UsageError(
            Text("{dcp} is not modelled for {name}", name=entry.name),
            hint=Text("drop {dcp}, or estimate with an engine that models it (--engine vllm)"),
            field="dcp",
        )
    return dcp


def _release_notes(
    entry: Any,
    release: str | None,
    source: str | None,
    asked: str | None,
    prefix_caching: bool | None,
    async_scheduling: bool | None,
) -> tuple[str, ...]:
    """What the estimate says about the engine release it models, or about release options it cannot use."""
    if release is not None and entry.release_notes is not None:
        return tuple(entry.release_notes(release, source or "given"))
    given = [
        flag
        for flag, value in (
            ("--vllm-version", asked),
            ("--prefix-caching", prefix_caching),
            ("--async-scheduling", async_scheduling),
        )
        if value is not None
    ]
    if release is None and given:
        return (f"{', '.join(given)} does not apply to {entry.name} and was ignored",)
    return ()


def _engine_notes(eng: Engine, shape: ModelShape, req: Request, kinds: list[KindEstimate]) -> tuple[str, ...]:
    """The notes the engine adds to an estimate (its registry entry's `estimate_notes`)."""
    entry = engine_entry(eng.name)
    return entry.estimate_notes(eng, shape, req, frozenset(k.kind for k in kinds)) if entry.estimate_notes else ()


def _kinds(stages: list, fullest: int, tp: int) -> list[KindEstimate]:
    out: dict[str, dict] = {}
    for index, costs in enumerate(stages):
        for c in costs:
            k = out.setdefault(c.kind, {"count": 0, "bytes": 0, "gpu": 0, "per_token": Fraction(0), "tokens": c.tokens})
            k["count"] += c.layers
            k["bytes"] += tp * c.bytes
            k["per_token"] += tp * c.bytes_per_token
            k["gpu"] += c.bytes if index == fullest else 0
    return [
        KindEstimate(kind, k["count"], k["bytes"], k["gpu"], number(k["per_token"]), k["tokens"])
        for kind, k in out.items()
    ]


def _length_notes(shape: ModelShape, seq_len: int) -> tuple[str, ...]:
    limit = shape.max_position_embeddings
    if above_model_limit(seq_len, limit):
        return (f"seq_len {seq_len} exceeds the model's max_position_embeddings ({limit})",)
    return ()


def estimate_config(config: dict, *, name: str = "model", **kwargs: Any) -> Estimate:
    """Size the KV cache for a raw config.json dict. Keyword arguments as for `estimate`."""
    return estimate_shape(model_shape(config), name=name, **kwargs)


def estimate(
    model: ModelRef,
    *,
    seq_len: int = 4096,
    batch: int = 1,
    engine: str = DEFAULT_ENGINE,
    dtype: str = "auto",
    kv_dtype: str = "auto",
    tp: int = 1,
    pp: int = 1,
    block_size: int | None = None,
    max_num_batched_tokens: int = 8192,
    n_ubatch: int = 512,
    include_weights: bool = True,
    revision: str | None = None,
    offline: bool | None = None,
    assume_llama: bool = False,
    vllm_version: str | None = None,
    prefix_caching: bool | None = None,
    async_scheduling: bool | None = None,
    hub_weights: bool | None = None,
    dcp: int = 1,
    speculative_config: str | dict[str, Any] | None = None,
    flash_attn: str | None = None,
    kv_unified: bool | None = None,
) -> Estimate:
    """KV-cache memory of MODEL for `batch` sequences of `seq_len` tokens on `engine`, split over tp x pp GPUs.

    Args:
        model: a config.json path, a model folder, a catalog name (`kvplan models`), a Hub repo id, a config
            dict, or a model already resolved with `kvplan.resolve` (a sweep resolves once and sizes many).
        seq_len, batch: the sequences to hold.
        engine: "vllm" (paged, default), "sglang", "transformers", "transformers-static", "llamacpp",
            "tensorrt-llm" or "naive" (the textbook formula).
        dtype / kv_dtype: "auto" takes the config's dtype / the model dtype; see kvplan.core.units for the names.
        tp / pp: tensor- and pipeline-parallel sizes; dcp: decode-context-parallel ranks inside each TP group
            (vLLM: attention and MLA caches split their tokens over them, kvplan.engines.vllm.VllmEngine.dcp_shards).
        block_size: vLLM page size in tokens (default 16, raised for Mamba hybrids).
        max_num_batched_tokens: vLLM's prefill token budget, which its sliding-window reservation includes.
        n_ubatch: llama.cpp's micro-batch (`-ub`), which its sliding-window cache adds to the window.
        flash_attn / kv_unified: llama.cpp's `-fa` ("auto", "on", "off"; `off` pads every layer's V to the
            widest) and `-kvu` (one stream shared by the `batch` slots, what llama-server runs without `-np`
            with batch 4); None: not given (auto, separate streams). Other engines refuse them.
        vllm_version: the vLLM release whose storage rules apply (kvplan.engines.vllm.VLLM_VERSIONS; default:
            the installed vllm's version, else the newest release kvplan models); prefix_caching and
            async_scheduling override that release's defaults (Mamba `align` pages, in-flight window tokens).
        include_weights: also report the weights' bytes (safetensors metadata, else an analytic count).
        revision / offline: for Hub repo ids (offline=None follows HF_HUB_OFFLINE).
        hub_weights: whether a config from the HF cache may ask the Hub for its safetensors sizes (None: only
            when nothing local sizes the weights; kvplan.planning.resolved).
        assume_llama: read an unknown model_type llama-like even where its config signals another cache
            (refused otherwise); the notes say so.
        speculative_config: vLLM's `--speculative-config` (a JSON string or a mapping: method,
            num_speculative_tokens, model), as `recommend` takes it. The engine's rules add the drafter's KV layers
            (the MTP layers, or the draft model's layers read from its config) and speculative state slots where
            kvplan models them (vLLM, SGLang, transformers' assisted generation: the draft's own cache); `draft_layers` are its rows, the totals include them, the notes say
            what is left out (other engines: the drafter).
    Returns:
        An Estimate; every byte count is an int, `*_per_gpu` figures are for the fullest GPU.
    """
    resolved = resolve(model, revision=revision, offline=offline, assume_llama=assume_llama, hub_weights=hub_weights)
    spec = None
    if speculative_config is not None:
        setup = parse_speculative_config(speculative_config)
        model_dtype, _ = resolve_dtypes(resolved.shape, dtype, "auto")
        inputs = speculative_inputs(setup, resolved, model_dtype, offline=offline)
        spec = engine_speculative(engine_entry(get_engine(engine, resolved.shape).name), inputs)
    result = estimate_shape(
        resolved.shape,
        name=resolved.name,
        seq_len=seq_len,
        batch=batch,
        engine=engine,
        dtype=dtype,
        kv_dtype=kv_dtype,
        tp=tp,
        pp=pp,
        block_size=block_size,
        max_num_batched_tokens=max_num_batched_tokens,
        n_ubatch=n_ubatch,
        vllm_version=vllm_version,
        prefix_caching=prefix_caching,
        async_scheduling=async_scheduling,
        dcp=dcp,
        speculative=spec,
        flash_attn=flash_attn,
        kv_unified=kv_unified,
    )
    result = replace(result, config_source=resolved.config_source, revision=resolved.revision)
    if not include_weights:
        return result
    nbytes, source = resolved.weights(result.model_dtype)
    unknown = resolved.weights_unknown(result.model_dtype)
    notes = result.notes + (_uncounted_weights(resolved.config) if source == "analytic" else ())
    notes += (f"weights unknown: {unknown}",) if unknown else ()
    return replace(result, weights_bytes=nbytes, weights_source=source, notes=notes)


def _uncounted_weights(config: dict[str, Any]) -> tuple[str, ...]:
    """What an analytic weights figure leaves out (a multimodal wrapper's vision tower); nothing when the config's
    fields cannot say (a note is optional, the estimate is not)."""
    from kvplan.errors import READ_ERRORS
    from kvplan.weights.tensors import uncounted_parts

    try:
        return uncounted_parts(config)
    except READ_ERRORS:
        return ()


__all__ = [
    "SCHEMA",
    "Estimate",
    "KindEstimate",
    "engine_kv_dtype",
    "estimate",
    "estimate_config",
    "estimate_request",
    "estimate_shape",
    "resolve_dtypes",
]
