"""`estimate()`: KV-cache bytes per layer kind, per sequence, per batch and per GPU, for one engine.

Pure arithmetic on a ModelShape (kvplan.core.shapes) and an engine model (kvplan.engines). Loading a
model by name lives in kvplan.sources.configs; weights in kvplan.weights.tensors. Never imports torch.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from fractions import Fraction
from typing import Any

from kvplan.core.shapes import ModelShape, model_shape
from kvplan.core.units import COMPUTE_DTYPES, GGML_BLOCK_TYPES, canonical_dtype, short_dtype
from kvplan.engines import Request, get_engine, pipeline_stages
from kvplan.engines.naive import NaiveEngine
from kvplan.errors import UsageError

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
class Estimate:
    """The answer to "how much KV cache": all byte counts are integers; `*_per_gpu` is the fullest GPU."""

    model: str
    model_type: str
    engine: str
    engine_follows: str
    dtype: str
    kv_dtype: str
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

    @property
    def bytes_per_sequence(self) -> int:
        return self.kv_cache_bytes // self.batch

    @property
    def naive_ratio(self) -> float:
        return self.naive_bytes / self.kv_cache_bytes if self.kv_cache_bytes else float("inf")

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["layers"] = [asdict(k) for k in self.layers]
        data["notes"] = list(self.notes)
        data["bytes_per_sequence"] = self.bytes_per_sequence
        return {"schema": SCHEMA, **data}


def _number(value: Fraction) -> float | int:
    return int(value) if value.denominator == 1 else float(value)


def check_positive(name: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise UsageError(f"{name} must be a positive integer, got {value!r}", hint=f"pass e.g. {name} 1")
    return value


def resolve_dtypes(shape: ModelShape, dtype: str, kv_dtype: str) -> tuple[str, str]:
    """`auto` model dtype -> the config's; `auto` KV dtype -> the model dtype."""
    model = shape.dtype if dtype in (None, "auto") else canonical_dtype(dtype, what="dtype")
    if model not in COMPUTE_DTYPES:
        raise UsageError(f"--dtype {dtype} is not a compute dtype", hint="use auto, fp32, bf16 or fp16")
    kv = model if kv_dtype in (None, "auto") else canonical_dtype(kv_dtype, what="kv dtype")
    return model, kv


def estimate_shape(
    shape: ModelShape,
    *,
    name: str = "model",
    seq_len: int = 4096,
    batch: int = 1,
    engine: str = "vllm",
    dtype: str = "auto",
    kv_dtype: str = "auto",
    tp: int = 1,
    pp: int = 1,
    block_size: int | None = None,
    max_num_batched_tokens: int = 8192,
    n_ubatch: int = 512,
) -> Estimate:
    """Size the KV cache of an already-read ModelShape. See `estimate` for the arguments.

    For llama.cpp (`engine="llamacpp"`), `batch` is the `-np` slots, `seq_len` the tokens of one slot (so
    `-c = seq_len x batch`), `kv_dtype="auto"` is its f16 default and `n_ubatch` its `-ub`."""
    for label, value in (
        ("--seq-len", seq_len),
        ("--batch", batch),
        ("--tp", tp),
        ("--pp", pp),
        ("--max-num-batched-tokens", max_num_batched_tokens),
        ("--ubatch", n_ubatch),
    ):
        check_positive(label, value)
    if block_size is not None:
        check_positive("--block-size", block_size)
    model_dtype, kv = resolve_dtypes(shape, dtype, kv_dtype)
    eng = get_engine(engine, shape)
    kv = engine_kv_dtype(eng.name, kv_dtype, kv)
    req = Request(seq_len, batch, kv, model_dtype, tp, pp, block_size, max_num_batched_tokens, n_ubatch)
    stages = [
        eng.stage_costs([c for i in rng for c in shape.layers[i]], req) for rng in pipeline_stages(shape.num_layers, pp)
    ]
    stage_totals = [sum(c.bytes for c in costs) for costs in stages]
    fullest = stage_totals.index(max(stage_totals))
    kinds = _kinds(stages, fullest, tp)
    per_token_gpu = max(sum((c.bytes_per_token for c in costs), Fraction(0)) for costs in stages)
    naive = (
        NaiveEngine(shape.hidden_size).stage_costs(shape.caches(), Request(seq_len, batch, kv, model_dtype))[0].bytes
    )
    return Estimate(
        model=name,
        model_type=shape.model_type,
        engine=eng.name,
        engine_follows=eng.follows,
        dtype=short_dtype(model_dtype),
        kv_dtype=short_dtype(kv),
        batch=batch,
        seq_len=seq_len,
        tp=tp,
        pp=pp,
        block_size=eng.block_size(shape.caches(), req),
        kv_cache_bytes=tp * sum(stage_totals),
        kv_cache_bytes_per_gpu=stage_totals[fullest],
        bytes_per_token=_number(sum((Fraction(k.bytes_per_token) for k in kinds), Fraction(0))),
        bytes_per_token_per_gpu=_number(per_token_gpu),
        layers=tuple(kinds),
        naive_bytes=naive,
        notes=shape.assumptions
        + _length_notes(shape, seq_len)
        + _engine_notes(eng.name, kinds, max_num_batched_tokens)
        + _llamacpp_notes(eng, shape, seq_len, batch),
    )


def engine_kv_dtype(engine: str, requested: str | None, resolved: str) -> str:
    """The KV dtype an engine really uses: llama.cpp's `auto` is f16 (`--cache-type-k` default), whatever the
    model dtype; ggml block types (q8_0, q4_0, ...) exist only in llama.cpp (and the naive formula)."""
    if engine == "llamacpp" and requested in (None, "auto"):
        return "float16"
    if resolved in GGML_BLOCK_TYPES and engine not in ("llamacpp", "naive"):
        raise UsageError(
            f"--kv-dtype {resolved} is a llama.cpp (ggml) cache type; {engine} does not store it",
            hint="use --engine llamacpp, or fp8 / int8 for this engine",
        )
    return resolved


def _engine_notes(engine: str, kinds: list[KindEstimate], budget: int) -> tuple[str, ...]:
    if engine == "vllm" and any(k.kind in ("sliding_window", "chunked_local") for k in kinds):
        return (
            f"vLLM reserves window-1+max_num_batched_tokens ({budget}) tokens (+1 block) per sliding layer "
            "and chunk+max_num_batched_tokens per chunked layer; set --max-num-batched-tokens to your engine's",
        )
    return ()


def _llamacpp_notes(eng, shape: ModelShape, seq_len: int, batch: int) -> tuple[str, ...]:
    if eng.name != "llamacpp":
        return ()
    from kvplan.engines.llamacpp import cells_per_stream

    notes = [
        f"llama.cpp: -c {seq_len * batch} -np {batch} gives {cells_per_stream(seq_len, batch)} cells per slot "
        "(n_ctx padded to 256)"
    ]
    if not eng.swa and any(c.kind in ("sliding_window", "chunked_local") for c in shape.caches()):
        notes.append(f"llama.cpp has no sliding-window cache for {shape.model_type}: every token is cached")
    return tuple(notes)


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
        KindEstimate(kind, k["count"], k["bytes"], k["gpu"], _number(k["per_token"]), k["tokens"])
        for kind, k in out.items()
    ]


def _length_notes(shape: ModelShape, seq_len: int) -> tuple[str, ...]:
    limit = shape.max_position_embeddings
    if limit and seq_len > limit:
        return (f"seq_len {seq_len} exceeds the model's max_position_embeddings ({limit})",)
    return ()


def estimate_config(config: dict, *, name: str = "model", **kwargs: Any) -> Estimate:
    """Size the KV cache for a raw config.json dict. Keyword arguments as for `estimate`."""
    return estimate_shape(model_shape(config), name=name, **kwargs)
