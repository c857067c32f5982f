"""The request kvplan sizes, validated once, and the one "above the model's limit" judgement.

`make_request(shape, engine=..., seq_len=..., ...)` is the only place that checks the fields of a sizing
request (positive integers, bools refused, dtypes canonicalised and resolved from "auto", the KV dtypes an
engine stores): `estimate` and `recommend` call it once, and everything after it (sweeps, bisections, the
fits of a plan) works on the `Request` it returns without checking again. The engine-specific KV dtype rules
are the engine's (kvplan.engines.registry). Errors carry the field they are about and name it with a
placeholder (kvplan.errors), so the CLI says `--tp` and `kvplan check` says `tensor_parallel_size`. Pure
Python; never imports torch.
"""

from __future__ import annotations

from kvplan.core.shapes import ModelShape
from kvplan.core.units import COMPUTE_DTYPES, MAX_INT, canonical_dtype
from kvplan.engines import Request, get_engine, lookup
from kvplan.errors import Text, UsageError, placeholder


def positive_int(field: str, value: object) -> int:
    """`value` when it is a positive int (not a bool); else a UsageError about `field`."""
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        name = placeholder(field)
        raise UsageError(
            Text(name + " must be a positive integer, got {value!r}", value=value),
            hint=Text("pass e.g. " + name + " 1"),
            field=field,
        )
    return value


def bounded_count(field: str, value: object) -> int:
    """`value` when it is a positive int of at most MAX_INT (a count of GPUs, nodes, ranks or replicas: larger
    is a typo, refused before arithmetic runs on it); else a UsageError about `field`."""
    positive_int(field, value)
    assert isinstance(value, int)
    if value > MAX_INT:
        name = placeholder(field)
        raise UsageError(
            Text(name + " must be at most {bound}, got {value}", bound=f"{MAX_INT:,}", value=_short(value)),
            hint=Text("pass e.g. " + name + " 1"),
            field=field,
        )
    return value


def _short(value: int) -> str:
    text = str(value)
    return text if len(text) <= 20 else text[:17] + "..."


def optional_positive(field: str, value: object) -> int | None:
    """None, or a positive int (see `positive_int`)."""
    return None if value is None else positive_int(field, value)


def resolve_dtypes(shape: ModelShape, dtype: str, kv_dtype: str) -> tuple[str, str]:
    """Canonical (model dtype, KV dtype): `auto` model dtype -> the config's; `auto` KV dtype -> the model dtype."""
    try:
        model = shape.dtype if dtype in (None, "auto") else canonical_dtype(dtype, what="dtype")
    except UsageError as exc:
        exc.field = "dtype"
        raise
    if model not in COMPUTE_DTYPES:
        raise UsageError(
            Text("{dtype} {value} is not a compute dtype", value=dtype),
            hint="use auto, fp32, bf16 or fp16",
            field="dtype",
        )
    try:
        kv = model if kv_dtype in (None, "auto") else canonical_dtype(kv_dtype, what="kv dtype")
    except UsageError as exc:
        exc.field = "kv_dtype"
        raise
    return model, kv


def engine_kv_dtype(
    engine: str,
    requested: str | None,
    resolved: str,
    shape: ModelShape | None = None,
    compute_capability: str | None = None,
    release: str | None = None,
) -> str:
    """The KV dtype `engine` really uses for `kv_dtype=requested` (resolved to `resolved`): its registry entry's
    rule (kvplan.engines.entry.EngineEntry.kv_dtype: llama.cpp's `auto` is f16, ggml block types only where an
    engine stores them; SGLang's `auto` by the model, checkpoint and GPU: `shape`, `compute_capability`). An engine
    kvplan does not know keeps `resolved`: refusing it is the caller's."""
    entry = lookup(engine)
    return resolved if entry is None else entry.kv_dtype(requested, resolved, shape, compute_capability, release)


def make_request(
    shape: ModelShape,
    *,
    engine: str,
    seq_len: int,
    batch: int = 1,
    dtype: str = "auto",
    kv_dtype: str = "auto",
    tp: int = 1,
    pp: int = 1,
    block_size: int | None = None,
    max_num_batched_tokens: int = 8192,
    n_ubatch: int = 512,
    storage: bool = False,
    compute_capability: str | None = None,
    engine_version: str | None = None,
) -> Request:
    """The request for `batch` sequences of `seq_len` tokens of `shape` on `engine`, every field checked once.

    `engine` is the engine's name (an alias is fine). With `storage` the request is sized by the engine's own
    storage model (`kvplan estimate`): an engine without one is refused here (get_engine's error), after the
    counts and dtypes and before its KV dtype rule; otherwise whether kvplan plans it is the caller's to say
    (recommend's serving models). Dtypes come back canonical, `auto` resolved: the model dtype from the config,
    the KV dtype from the model dtype (or the engine's own default, llama.cpp's f16, or its rule for the model and
    the GPU of `compute_capability` and the release `engine_version`: SGLang's, vLLM's DeepSeek-V4). The request's
    own compute_capability and engine_version are the caller's to set."""
    seq_len = positive_int("seq_len", seq_len)
    batch = positive_int("batch", batch)
    tp = positive_int("tp", tp)
    pp = positive_int("pp", pp)
    max_num_batched_tokens = positive_int("max_num_batched_tokens", max_num_batched_tokens)
    n_ubatch = positive_int("n_ubatch", n_ubatch)
    block_size = optional_positive("block_size", block_size)
    model_dtype, kv = resolve_dtypes(shape, dtype, kv_dtype)
    if storage:
        get_engine(engine, shape)
    kv = engine_kv_dtype(engine, kv_dtype, kv, shape, compute_capability, engine_version)
    return Request(seq_len, batch, kv, model_dtype, tp, pp, block_size, max_num_batched_tokens, n_ubatch)


def above_model_limit(seq_len: int, limit: int | None) -> bool:
    """Whether `seq_len` tokens are more than the model's limit, its `max_position_embeddings` (None: unknown).
    The one judgement behind estimate's and recommend's notes and check's lint."""
    return limit is not None and seq_len > limit


__all__ = [
    "above_model_limit",
    "engine_kv_dtype",
    "make_request",
    "optional_positive",
    "positive_int",
    "resolve_dtypes",
]
