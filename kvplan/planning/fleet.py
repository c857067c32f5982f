"""`fleet()`: replicas for a workload at an arrival rate and latency SLOs, from kvplan's capacity and envelope.

Every figure comes from one place: the KV capacity from `recommend()` (the engine's own accounting), TPOT and
TTFT from the throughput envelope's estimate (kvplan.planning.envelope, efficiencies fitted on measured rows;
the held-out error is reported with the plan), prices from a price table with sources and dates
(kvplan.sources.prices). Pure arithmetic, no torch.

**Per replica** (aggregated: each replica prefills and decodes). The concurrency a replica runs is the largest
batch `c` with

    c <= KV capacity in requests of the workload's mean input + output tokens (each request counted at its
         final length: recommend() at max_model_len = that length, the engine's blocks per request)
    c <= the engine's running-sequence cap (max_num_seqs)
    TPOT estimate at batch c (isl, osl = the workload's means) <= the TPOT SLO   (TPOT grows with the batch)

and the TTFT estimate (a prompt of the mean input) must be within the TTFT SLO.

**Replicas** (Little's law): requests in flight N = rate x request latency, latency = TTFT + mean output x
TPOT(c); replicas = ceil(N / c). At that count every replica holds at most c requests, so TPOT stays within its
SLO (TPOT(c) is the slowest step at that batch).

**Disaggregated** (`disaggregated=True`): decode workers hold each request's KV for input + output tokens and
decode without prefill (the envelope's `aggregated=False`): N_decode = rate x mean output x TPOT(c), decode
workers = ceil(N_decode / c). Prefill workers are sized by prefill tokens/s against the arrival rate x mean
input: one worker prefills mean input / TTFT estimate tokens/s; prefill workers = ceil(rate x mean input /
that). A prefill worker holds each prompt's KV until it is transferred: at least for its prefill (transfer time
is not modelled), so its prompts in flight = its arrival rate x TTFT (Little's law) must fit its KV capacity in
prompts of the mean input; more prefill workers are added until they do.

**Autoscaling thresholds** (what KEDA or an HPA scales on, from the same figures; the engine's metric names in
EngineEntry.metrics): running requests per replica = c (`vllm:num_requests_running`); KV-cache usage (a fraction, 1 =
full) per replica = c / KV capacity in requests, the usage at the SLO-meeting concurrency
(`vllm:kv_cache_usage_perc`); waiting requests per replica = the queue a replica admits within the TTFT slack,
floor((TTFT SLO - TTFT estimate) x c / latency), at least 1 (`vllm:num_requests_waiting`).

**Cost**: GPUs x USD per GPU-hour / tokens per hour (rate x (mean input + mean output) x 3600), per million.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from kvplan.core.units import MAX_INT
from kvplan.engines import registry
from kvplan.errors import Text, UsageError
from kvplan.planning.requests import bounded_count
from kvplan.planning.workload import Workload

SCHEMA = "kvplan.fleet/1"


def engine_metrics(engine: str) -> dict[str, str] | None:
    """The Prometheus gauges `engine`'s server exports for the thresholds (its EngineEntry.metrics: running,
    kv_cache_usage, waiting and their source), or None where kvplan knows none."""
    entry = registry.lookup(engine)
    return None if entry is None else entry.metrics


@dataclass(frozen=True)
class Pool:
    """One pool of identical workers (a replica of aggregated serving, or a prefill or decode worker)."""

    role: str  # "aggregated", "prefill", "decode"
    workers: int
    gpus_per_worker: int
    concurrency_per_worker: int  # requests (decode) or prompts (prefill) one worker holds at once
    kv_capacity_requests: float  # requests of the pool's KV length one worker's KV cache holds
    kv_tokens_per_request: int  # the KV length each request holds in this pool
    tpot_ms: float | None
    ttft_ms: float | None
    limited_by: str  # what sets concurrency_per_worker: tpot_slo, kv_cache, max_num_seqs, prefill_rate

    @property
    def gpus(self) -> int:
        return self.workers * self.gpus_per_worker

    def to_dict(self) -> dict[str, Any]:
        return {
            "role": self.role,
            "workers": self.workers,
            "gpus_per_worker": self.gpus_per_worker,
            "gpus": self.gpus,
            "concurrency_per_worker": self.concurrency_per_worker,
            "kv_capacity_requests": round(self.kv_capacity_requests, 2),
            "kv_tokens_per_request": self.kv_tokens_per_request,
            "tpot_ms_estimate": self.tpot_ms,
            "ttft_ms_estimate": self.ttft_ms,
            "limited_by": self.limited_by,
        }


@dataclass(frozen=True)
class FleetPlan:
    model: str
    gpu_profile: str
    engine: str
    tp: int
    workload: Workload
    rate: float
    ttft_slo_ms: float
    tpot_slo_ms: float
    disaggregated: bool
    fits: bool
    reason: str | None
    pools: tuple[Pool, ...]
    request_latency_s: float | None
    concurrency_needed: float | None
    max_model_len: int
    max_replicas: int | None
    min_replicas: int
    thresholds: dict[str, Any] | None
    price: dict[str, Any] | None
    cost: dict[str, Any] | None
    efficiency: dict[str, Any]
    notes: tuple[str, ...] = field(default=())
    prefill_workers_lower_bound: int | None = None  # prefill at the dense-peak TTFT bound (disaggregated only)

    @property
    def replicas(self) -> int:
        return sum(p.workers for p in self.pools)

    @property
    def gpus(self) -> int:
        return sum(p.gpus for p in self.pools)

    def pool(self, role: str) -> Pool | None:
        return next((p for p in self.pools if p.role == role), None)

    def to_dict(self) -> dict[str, Any]:
        prefill, decode = self.pool("prefill"), self.pool("decode")
        ratio = round(prefill.workers / decode.workers, 4) if prefill and decode and decode.workers else None
        least = self.prefill_workers_lower_bound
        ratio_lb = round(least / decode.workers, 4) if least is not None and decode and decode.workers else None
        return {
            "schema": SCHEMA,
            "model": self.model,
            "gpu_profile": self.gpu_profile,
            "engine": self.engine,
            "tp": self.tp,
            "workload": self.workload.to_dict(),
            "rate_requests_per_s": self.rate,
            "ttft_slo_ms": self.ttft_slo_ms,
            "tpot_slo_ms": self.tpot_slo_ms,
            "disaggregated": self.disaggregated,
            "fits": self.fits,
            "reason": self.reason,
            "max_model_len": self.max_model_len,
            "request_latency_s": self.request_latency_s,
            "concurrency_needed": self.concurrency_needed,
            "pools": [p.to_dict() for p in self.pools],
            "replicas": self.replicas,
            "gpus": self.gpus,
            "min_replicas": self.min_replicas,
            "max_replicas": self.max_replicas,
            "prefill_to_decode_ratio": ratio,
            "prefill_workers_lower_bound": self.prefill_workers_lower_bound,
            "prefill_to_decode_ratio_lower_bound": ratio_lb,
            "autoscaling": self.thresholds,
            "price": self.price,
            "cost": self.cost,
            "efficiency": self.efficiency,
            "notes": list(self.notes),
        }


def little_concurrency(rate: float, latency_s: float) -> float:
    """Little's law: requests in the system = arrival rate x time each spends in it."""
    return rate * latency_s


def replicas_for(concurrency: float, per_replica: int) -> int:
    """Replicas that hold `concurrency` requests at `per_replica` each (at least 1)."""
    return max(1, math.ceil(concurrency / per_replica - 1e-9))


def largest_batch(tpot_at: Any, limit: int, slo_ms: float) -> int:
    """The largest batch in [1, limit] whose TPOT estimate is within the SLO (TPOT grows with the batch); 0: none."""
    if limit < 1 or tpot_at(1) > slo_ms:
        return 0
    lo, hi = 1, limit
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if tpot_at(mid) <= slo_ms:
            lo = mid
        else:
            hi = mid - 1
    return lo


def waiting_threshold(ttft_slo_ms: float, ttft_ms: float, per_replica: int, latency_s: float) -> int:
    """Requests a replica can have waiting and still start them within the TTFT SLO: it admits per_replica /
    latency requests per second (Little's law), for the slack left after the TTFT estimate (at least 1)."""
    slack_s = max(0.0, (ttft_slo_ms - ttft_ms) / 1e3)
    return max(1, math.floor(slack_s * per_replica / latency_s)) if latency_s > 0 else 1


# The highest arrival rate kvplan sizes a fleet for: a billion requests per second is beyond any deployment (a
# typo, or a hostile value whose replica counts would run to hundreds of digits)
MAX_RATE = 1e9


def _positive_number(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise UsageError(f"{name} must be a positive number, got {value!r}", field=name)
    return float(value)


def fleet(
    model: Any,
    *,
    gpu_profile: str,
    workload: Workload,
    rate: float,
    ttft_slo_ms: float,
    tpot_slo_ms: float,
    engine: str = registry.DEFAULT_ENGINE,
    tp: int = 1,
    weights: str = "bf16",
    kv_dtype: str = "auto",
    max_model_len: int | None = None,
    max_num_seqs: int | None = None,
    gpu_memory_utilization: float | None = None,
    disaggregated: bool = False,
    max_replicas: int | None = None,
    min_replicas: int = 1,
    price_file: str | None = None,
    profiles_dir: str | None = None,
    offline: bool | None = None,
    assume_llama: bool = False,
) -> FleetPlan:
    """Size a fleet of MODEL on `gpu_profile` for `workload` arriving at `rate` requests/s (see the module
    docstring). A plan that cannot meet the SLOs (or exceeds max_replicas) has fits False and a reason."""
    from kvplan.errors import READ_ERRORS, ConfigError
    from kvplan.planning import envelope as E
    from kvplan.planning.recommend import recommend
    from kvplan.planning.resolved import resolve
    from kvplan.sources.hardware import load_profile
    from kvplan.sources.prices import load_prices

    rate = _positive_number("rate", rate)
    ttft_slo_ms = _positive_number("ttft_slo", ttft_slo_ms)
    tpot_slo_ms = _positive_number("tpot_slo", tpot_slo_ms)
    if rate > MAX_RATE:
        raise UsageError(
            Text("{rate} must be at most {bound} requests/s, got {r}", bound=f"{MAX_RATE:.0e}", r=f"{rate:g}"),
            hint="pass the peak arrival rate of one deployment, e.g. 10",
            field="rate",
        )
    bounded_count("tp", tp)
    bounded_count("min_replicas", min_replicas)
    if max_replicas is not None:
        bounded_count("max_replicas", max_replicas)
        if max_replicas < min_replicas:
            raise UsageError(
                f"max_replicas {max_replicas} is below min_replicas {min_replicas}",
                hint=f"raise max_replicas to at least {min_replicas}, or lower min_replicas",
                field="max_replicas",
            )
    E.weight_bits(weights)
    prices = load_prices(price_file)  # a bad price file is refused before any planning
    profile = load_profile(gpu_profile, profiles_dir=profiles_dir)
    resolved = resolve(model, offline=offline, assume_llama=assume_llama)
    common: dict[str, Any] = dict(
        gpu_profile=gpu_profile,
        engine=engine,
        tp=tp,
        kv_dtype=kv_dtype,
        max_num_seqs=max_num_seqs,
        gpu_memory_utilization=gpu_memory_utilization,
        profiles_dir=profiles_dir,
    )
    serve = recommend(resolved, max_model_len=max_model_len, **common)  # the replica as served
    notes: list[str] = []
    try:
        w = E.weights_of(resolved.config)
    except READ_ERRORS as exc:
        raise ConfigError(f"cannot count this model's weights: {exc}") from None
    efficiency = E.load_efficiency()
    isl, osl = max(1, round(workload.mean_input)), max(1, round(workload.mean_output))
    kv = resolved.shape.dtype if kv_dtype == "auto" else kv_dtype

    def point(batch: int, aggregated: bool) -> dict[str, Any]:
        return E.envelope(
            resolved.shape,
            w,
            profile,
            E.Layout(tp=tp),
            batch=batch,
            isl=isl,
            osl=osl,
            gemm=weights,
            kv_dtype=kv,
            engine=serve.engine,
            efficiency=efficiency,
            aggregated=aggregated,
        )

    first = point(1, not disaggregated)
    if first["tpot_ms_estimate"] is None or first["ttft_ms_estimate"] is None:
        fitted = sorted({k.split("|")[0] for k in efficiency["factors"]["decode"]})
        raise UsageError(
            f"no TPOT/TTFT estimate for {profile.id} x {serve.engine} x {E.PRECISION[weights]}: fleet sizes replicas "
            "on the envelope's fitted estimate, and none was fitted for this GPU",
            hint="plan on a GPU with a fitted efficiency: " + ", ".join(fitted),
            field="gpu_profile",
        )
    held_out = efficiency["held_out"]
    eff = {
        "key": first["efficiency_key"],
        "source": E.EFFICIENCY_FILE,
        "tpot_median_relative_error": held_out["tpot_median_relative_error"],
        "tpot_p90_relative_error": held_out["tpot_p90_relative_error"],
        "ttft_median_relative_error": held_out["ttft_median_relative_error"],
        "ttft_p90_relative_error": held_out["ttft_p90_relative_error"],
    }
    notes.append(
        f"TPOT and TTFT are the envelope's estimates (efficiency {first['efficiency_key']}); held out, TPOT is off by "
        f"{held_out['tpot_median_relative_error']:.0%} at the median ({held_out['tpot_p90_relative_error']:.0%} p90), "
        f"TTFT by {held_out['ttft_median_relative_error']:.0%} ({held_out['ttft_p90_relative_error']:.0%} p90: measured TTFT holds "
        "queueing); keep headroom on both SLOs"
    )
    if weights != "bf16":
        notes.append(
            f"--weights {weights} sets the weight bytes of the TPOT estimate; the KV capacity counts the checkpoint's "
            f"weights as stored ({serve.weights_source}): plan a quantized checkpoint to size its KV cache"
        )
    if engine_metrics(serve.engine) is None:
        notes.append(f"no metric names for {serve.engine}: the autoscaling thresholds are given without them")
    if workload.requests == 1:
        notes.append(f"workload {workload.name!r} is one fixed shape ({workload.source}), not a distribution")

    served_len = serve.max_model_len
    total_len = max(1, math.ceil(workload.mean_total))
    per_gpu = serve.gpus
    base = dict(
        model=resolved.name,
        gpu_profile=profile.id,
        engine=serve.engine,
        tp=tp,
        workload=workload,
        rate=rate,
        ttft_slo_ms=ttft_slo_ms,
        tpot_slo_ms=tpot_slo_ms,
        disaggregated=disaggregated,
        max_model_len=served_len,
        max_replicas=max_replicas,
        min_replicas=min_replicas,
        efficiency=eff,
    )

    def refused(reason: str, pools: tuple[Pool, ...] = (), **extra: Any) -> FleetPlan:
        return FleetPlan(
            **base,  # type: ignore[arg-type]
            fits=False,
            reason=reason,
            pools=pools,
            request_latency_s=extra.get("latency"),
            concurrency_needed=extra.get("needed"),
            thresholds=None,
            price=None,
            cost=None,
            notes=tuple(notes + list(serve.notes)),
        )

    if not serve.fits:
        hint = ""
        shorter = max_model_len is None and workload.max_total < served_len
        if shorter and recommend(resolved, max_model_len=workload.max_total, **common).fits:
            hint = f"; the workload's longest request fits: pass --max-model-len {workload.max_total}"
        if not hint and serve.min_tp_to_fit is not None and serve.min_tp_to_fit > tp:
            hint = f"; --tp {serve.min_tp_to_fit} fits"
        return refused(
            f"one request of max_model_len {served_len:,} does not fit on {per_gpu} x {profile.id} (tp {tp}){hint}"
        )
    if workload.max_total > served_len:
        return refused(
            f"the workload's longest request ({workload.max_total:,} tokens) is above max_model_len {served_len:,}"
        )

    def kv_requests(length: int) -> float:  # requests of `length` tokens the replica's KV cache holds
        return float(recommend(resolved, max_model_len=length, **common).max_concurrency)

    ttft = float(first["ttft_ms_estimate"])
    if ttft > ttft_slo_ms:
        return refused(f"the TTFT estimate ({ttft:.1f} ms for {isl:,} prompt tokens) is above the TTFT SLO")
    decode_kv = kv_requests(total_len)
    cap = serve.max_num_seqs
    limit = min(cap, math.floor(decode_kv))
    aggregated = not disaggregated

    def tpot_at(batch: int) -> float:
        return float(point(batch, aggregated)["tpot_ms_estimate"])

    c = largest_batch(tpot_at, limit, tpot_slo_ms)
    if c == 0:
        if limit < 1:
            return refused(f"no request of {total_len:,} tokens (mean input + output) fits the KV cache")
        return refused(f"the TPOT estimate at batch 1 ({tpot_at(1):.2f} ms) is above the TPOT SLO")
    tpot = tpot_at(c)
    limited = (
        "tpot_slo" if c < limit else ("kv_cache" if limit == math.floor(decode_kv) and limit < cap else "max_num_seqs")
    )
    if disaggregated:
        decode_latency = osl * tpot / 1e3
        latency = ttft / 1e3 + decode_latency
        needed = little_concurrency(rate, decode_latency)
    else:
        latency = ttft / 1e3 + osl * tpot / 1e3
        needed = little_concurrency(rate, latency)
    workers = replicas_for(needed, c)
    main = Pool(
        "decode" if disaggregated else "aggregated",
        max(workers, min_replicas),
        per_gpu,
        c,
        decode_kv,
        total_len,
        round(tpot, 3),
        None if disaggregated else round(ttft, 3),
        limited,
    )
    pools: tuple[Pool, ...] = (main,)
    least_prefill = None
    if disaggregated:
        prefill_tps = isl / (ttft / 1e3)  # one worker's prefill tokens/s (compute bound: batching adds no FLOP/s)
        prefill_workers = max(1, math.ceil(rate * isl / prefill_tps - 1e-9))
        prompt_kv = kv_requests(isl)
        held = math.floor(prompt_kv)  # prompts of the mean input one prefill worker's KV cache holds
        if held < 1:
            return refused(f"no prompt of {isl:,} tokens fits a prefill worker's KV cache")
        # prompts in flight per worker (Little's law), ceil(rate / workers x TTFT), must fit its KV until they are
        # transferred: ceil(x) <= held exactly when x <= held
        by_kv = math.ceil(rate * ttft / 1e3 / held - 1e-9)
        limited_p = "kv_cache" if by_kv > prefill_workers else "prefill_rate"
        prefill_workers = max(prefill_workers, by_kv)
        in_flight = math.ceil(rate / prefill_workers * ttft / 1e3 - 1e-9)
        pools = (
            Pool(
                "prefill", prefill_workers, per_gpu, max(1, in_flight), prompt_kv, isl, None, round(ttft, 3), limited_p
            ),
            main,
        )
        # at the TTFT lower bound (the dense peak, or reading the weights once): no prefill worker can do better
        least_prefill = max(1, math.ceil(rate * float(first["ttft_ms_lower_bound"]) / 1e3 - 1e-9))
        notes.append(
            "disaggregated: KV transfer time between prefill and decode workers is not modelled (prefill workers "
            "hold each prompt at least for its prefill); TTFT excludes the transfer"
        )
        notes.append(
            f"prefill workers are sized on the TTFT estimate, whose fit holds queueing (held-out median error "
            f"{held_out['ttft_median_relative_error']:.0%}), so they are likely too many; at the TTFT lower bound "
            f"(dense peak) {least_prefill} would do (prefill_workers_lower_bound): the need lies between"
        )
    plan_pools = pools
    if any(p.workers > MAX_INT for p in plan_pools):  # a rate no fleet serves: refused, not a 10-digit answer
        worst = max(plan_pools, key=lambda p: p.workers)
        raise UsageError(
            Text(
                "{rate} {r} requests/s needs {n} {role} workers, more than {bound}",
                r=f"{rate:g}",
                n=f"{worst.workers:.3g}",
                role=worst.role,
                bound=f"{MAX_INT:,}",
            ),
            hint=Text("lower {rate} to one deployment's peak"),
            field="rate",
        )
    if max_replicas is not None and any(p.workers > max_replicas for p in plan_pools):
        worst = max(plan_pools, key=lambda p: p.workers)
        return refused(
            f"{worst.workers} {worst.role} workers are needed at {rate:g} requests/s, above max_replicas {max_replicas}",
            plan_pools,
            latency=round(latency, 4),
            needed=round(needed, 3),
        )
    usage = round(min(1.0, c / decode_kv), 4)
    names = engine_metrics(serve.engine)
    thresholds = {
        "metrics": None if names is None else {k: names[k] for k in ("running", "kv_cache_usage", "waiting")},
        "metrics_source": None if names is None else names["source"],
        "role": main.role,
        "min_replicas": min_replicas,
        "max_replicas": max_replicas if max_replicas is not None else main.workers,
        "running_requests_per_replica": c,
        "kv_cache_usage_per_replica": usage,
        "waiting_requests_per_replica": waiting_threshold(
            ttft_slo_ms, ttft, c, osl * tpot / 1e3 if disaggregated else latency
        ),
    }
    price = prices.get(profile.id)
    cost = None
    total_gpus = sum(p.gpus for p in plan_pools)
    if price is None:
        notes.append(f"no price for {profile.id} in the price table: no cost (pass --price-file)")
    else:
        per_hour = total_gpus * price.usd_per_gpu_hour
        tokens_per_hour = rate * workload.mean_total * 3600
        output_per_hour = rate * workload.mean_output * 3600
        cost = {
            "usd_per_hour": round(per_hour, 4),
            "usd_per_million_tokens": round(per_hour / tokens_per_hour * 1e6, 4),
            "usd_per_million_output_tokens": round(per_hour / output_per_hour * 1e6, 4),
        }
    return FleetPlan(
        **base,  # type: ignore[arg-type]
        fits=True,
        reason=None,
        pools=plan_pools,
        request_latency_s=round(latency, 4),
        concurrency_needed=round(needed, 3),
        thresholds=thresholds,
        price=None if price is None else price.to_dict(),
        cost=cost,
        notes=tuple(notes + list(serve.notes)),
        prefill_workers_lower_bound=least_prefill,
    )
