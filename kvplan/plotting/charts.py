"""The figures a plot shows, each computed through kvplan's planning library (`estimate`, `recommend`), never
re-derived here: a chart is the answers of those functions at a grid of lengths, with the labels to show them.

Pure Python (no matplotlib): `kvplan.plotting.draw` draws a Chart, `kvplan.plotting.pages` tabulates it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

from kvplan.core.units import dtype_bytes, format_bytes, format_tokens
from kvplan.engines.registry import serving_model
from kvplan.errors import UsageError
from kvplan.planning.estimate import Estimate, estimate
from kvplan.planning.recommend import DEFAULT_MAX_MODEL_LEN_CAP, Recommendation, recommend
from kvplan.planning.resolved import ModelRef, ResolvedModel, resolve

GRID_START = 512  # the shortest length of a plot's doubling grid
# estimate names no GPU: the 8-bit KV cache it compares with is the one the engine offers on a GPU with fp8
# (its serving model's `fp8_alternative`; llama.cpp's is q8_0 whatever the GPU)
_FP8_GPU: Any = SimpleNamespace(kv_cache_dtypes=("fp8",))


@dataclass(frozen=True)
class Series:
    """One plotted line: (x, y) points in x order; y is None where the figure cannot be drawn (0 on a log axis,
    or unbounded), and the table still shows `shown[i]`."""

    label: str
    points: tuple[tuple[int, float | None], ...]
    shown: tuple[str, ...] = ()  # the table's text of each point


@dataclass(frozen=True)
class Level:
    """A horizontal reference line (the weights, the engine's sequence cap)."""

    label: str
    value: float
    shown: str


@dataclass(frozen=True)
class Marker:
    """A vertical reference line at one x (the length asked for, the plan's max_model_len)."""

    x: int
    label: str


@dataclass(frozen=True)
class Chart:
    """What a plot shows. `y_scale` is the factor from the series' units to the axis' (bytes -> GiB)."""

    kind: str  # "estimate" or "recommend"
    title: str
    subtitle: str
    x_label: str
    y_label: str
    series: tuple[Series, ...]
    levels: tuple[Level, ...] = ()
    markers: tuple[Marker, ...] = ()
    notes: tuple[str, ...] = field(default=())
    y_log: bool = False
    y_scale: float = 1.0

    @property
    def xs(self) -> list[int]:
        return sorted({x for s in self.series for x, _ in s.points})


def length_grid(limit: int, *include: int) -> list[int]:
    """Doubling lengths from GRID_START up to `limit` (the model's own limit), `limit` itself, and the lengths
    in `include` that are positive and not above it."""
    grid = set()
    n = GRID_START
    while n < limit:
        grid.add(n)
        n *= 2
    grid.add(limit)
    grid.update(x for x in include if 0 < x <= limit)
    return sorted(grid)


# ------------------------------------------------------------------------------------------ estimate --plot


def eight_bit_alternative(engine: str, cache_dtype: str) -> str | None:
    """The 8-bit KV dtype `engine` offers instead of `cache_dtype` (its serving model's fp8 alternative on a GPU
    that has fp8), or None: no serving model, no alternative, or one no smaller than `cache_dtype`."""
    serving = serving_model(engine)
    if serving is None:
        return None
    alternative = serving.fp8_alternative(cache_dtype, _FP8_GPU)
    if alternative is None or dtype_bytes(alternative[0]) >= dtype_bytes(cache_dtype):
        return None
    return alternative[0]


def estimate_chart(
    model: ModelRef,
    *,
    lengths: list[int],
    engines: list[str],
    kv_dtypes: list[str] | None = None,
    revision: str | None = None,
    offline: bool | None = None,
    assume_llama: bool = False,
    **options: Any,
) -> Chart:
    """KV-cache memory against context length, one line per engine x KV dtype, each point `estimate()`'s.

    `lengths`: several (a sweep) are the grid; one is marked on the doubling grid up to the model's limit.
    `kv_dtypes` None: the `kv_dtype` option and each engine's 8-bit alternative (`eight_bit_alternative`).
    `options`: the rest of `estimate()`'s keywords (batch, dtype, kv_dtype, tp, pp, ...), the same for every line.
    The weights (whole model, at the model dtype) are a level where kvplan knows them."""
    resolved = resolve(model, revision=revision, offline=offline, assume_llama=assume_llama)
    limit = resolved.shape.max_position_embeddings or DEFAULT_MAX_MODEL_LEN_CAP
    xs = sorted(set(lengths)) if len(lengths) > 1 else length_grid(max(limit, lengths[0]), lengths[0])
    base = {k: v for k, v in options.items() if k not in ("kv_dtype", "engine")}  # per line
    series: list[Series] = []
    seen: set[tuple[str, str]] = set()
    notes: list[str] = []
    first: Estimate | None = None
    for engine in engines:
        kvs = list(kv_dtypes) if kv_dtypes else [options.get("kv_dtype", "auto")]
        for index, kv in enumerate(kvs):  # grows by the default's 8-bit alternative
            line = [
                estimate(resolved, seq_len=n, engine=engine, kv_dtype=kv, include_weights=False, **base) for n in xs
            ]
            first = first or line[0]
            _add_estimate_line(series, seen, notes, line)
            if not kv_dtypes and index == 0:  # the default: the engine's 8-bit cache beside the one asked for
                alternative = eight_bit_alternative(line[0].engine, line[0].cache_dtype)
                if alternative is not None:
                    kvs.append(alternative)
    if first is None:
        raise UsageError("a plot needs at least one engine", hint="name one, e.g. vllm")
    kv = kv_dtypes[0] if kv_dtypes else options.get("kv_dtype", "auto")
    weighed = estimate(resolved, seq_len=xs[0], engine=first.engine, kv_dtype=kv, **base)
    levels: tuple[Level, ...] = ()
    if weighed.weights_bytes is not None:
        size = weighed.weights_bytes
        levels = (Level(f"weights {format_bytes(size)} ({weighed.weights_source})", size, format_bytes(size)),)
    notes += [n for n in weighed.notes if n not in notes]
    gpus = first.tp * first.pp
    where = f"all {gpus} GPUs" if gpus > 1 else "one GPU"
    return Chart(
        kind="estimate",
        title=f"KV cache of {resolved.name}",
        subtitle=f"batch {first.batch} · {first.dtype} weights"
        + (f" · TP {first.tp} · PP {first.pp}" if gpus > 1 else "")
        + f" · memory on {where}",
        x_label="context length (tokens per sequence)",
        y_label="memory (GiB)",
        series=tuple(series),
        levels=levels,
        markers=(Marker(lengths[0], f"--seq-len {format_tokens(lengths[0])}"),) if len(lengths) == 1 else (),
        notes=tuple(notes),
        y_scale=1 / 2**30,
    )


def _add_estimate_line(
    series: list[Series], seen: set[tuple[str, str]], notes: list[str], line: list[Estimate]
) -> None:
    est = line[0]
    if (est.engine, est.cache_dtype) in seen:  # `auto` and the model dtype named: one line
        return
    seen.add((est.engine, est.cache_dtype))
    series.append(
        Series(
            f"{est.engine} · {est.kv_dtype} KV",
            tuple((e.seq_len, float(e.kv_cache_bytes)) for e in line),
            tuple(format_bytes(e.kv_cache_bytes) for e in line),
        )
    )
    notes += [n for e in line for n in e.notes if n not in notes]


# ------------------------------------------------------------------------------------------ recommend --plot


def resolve_for_plan(
    model: ModelRef, *, offline: bool | None, assume_llama: bool, hub_weights: bool | None = None
) -> ResolvedModel:
    """The model read once, for the plan and every point of its plot (`hub_weights`: recommend()'s, which the
    ResolvedModel carries: recommend() reuses it as given)."""
    return resolve(model, offline=offline, assume_llama=assume_llama, hub_weights=hub_weights)


def recommend_chart(model: ResolvedModel, plan: Recommendation, **options: Any) -> Chart:
    """Requests of max_model_len held at once (max_concurrency) against max_model_len, each point `recommend()`'s
    with the plan's own options (`options`: recommend()'s keywords) at that max_model_len: the plan's engine and
    KV dtype, and its 8-bit KV alternative where recommend computes one (`fp8_kv`). The plan's max_model_len is
    marked; the engine's sequence cap (max_num_seqs) and the concurrency asked for are levels."""
    shape = model.shape
    # recommend's search limit: the model's own limit, else the default cap (or the plan's length, if above)
    limit = shape.max_position_embeddings or max(plan.max_model_len, DEFAULT_MAX_MODEL_LEN_CAP)
    xs = length_grid(max(limit, plan.max_model_len), plan.max_model_len, plan.max_model_len_fit)
    given = {k: v for k, v in options.items() if k != "max_model_len"}
    plans = [recommend(model, max_model_len=n, **given) for n in xs]
    series = [
        _concurrency_line(f"{plan.engine} · {plan.kv_dtype} KV", [(p.max_model_len, p.max_concurrency) for p in plans])
    ]
    alternatives = [(p.max_model_len, p.fp8_kv) for p in plans if p.fp8_kv is not None]
    if plan.fp8_kv is not None and len(alternatives) == len(plans):
        label = f"{plan.engine} · {plan.fp8_kv['kv_dtype']} KV"
        series.append(_concurrency_line(label, [(n, f8["max_concurrency"]) for n, f8 in alternatives]))
    levels = [
        Level(f"max_num_seqs {plan.max_num_seqs:,} (the engine's cap)", plan.max_num_seqs, f"{plan.max_num_seqs:,}")
    ]
    if plan.concurrency is not None:
        levels.append(Level(f"concurrency asked: {plan.concurrency:,}", plan.concurrency, f"{plan.concurrency:,}"))
    return Chart(
        kind="recommend",
        title=f"Concurrency of {plan.model} on {plan.gpus} x {plan.gpu_profile}",
        subtitle=f"{plan.engine} · TP {plan.tp} PP {plan.pp}"
        + (f" · vLLM {plan.vllm_version}" if plan.vllm_version else "")
        + f" · plan: max_model_len {plan.max_model_len:,}, {plan.max_concurrency:g}x",
        x_label="max_model_len (tokens per request)",
        y_label="requests of max_model_len at once (max concurrency)",
        series=tuple(series),
        levels=tuple(levels),
        markers=(Marker(plan.max_model_len, f"plan: max_model_len {format_tokens(plan.max_model_len)}"),),
        notes=plan.notes,  # the plan's (each point's say the same of its own length)
        y_log=True,
    )


def _concurrency_line(label: str, points: list[tuple[int, float]]) -> Series:
    """Concurrency on a log axis: 0 (no request fits) and unbounded figures are not drawn, but tabulated."""
    return Series(
        label,
        tuple((n, float(c) if 0 < c < math.inf else None) for n, c in points),
        tuple(f"{c:g}x" for _, c in points),
    )


__all__ = [
    "Chart",
    "Level",
    "Marker",
    "Series",
    "eight_bit_alternative",
    "estimate_chart",
    "length_grid",
    "recommend_chart",
    "resolve_for_plan",
]
