"""The decode throughput envelope of one serving point: a bound that measurements must respect, and an estimate.

A serving instance is `tp x pp x attention_dp` GPUs (attention data parallelism: `attention_dp` groups of `tp`
GPUs, each attending to its own `batch` sequences; routed experts split over all the GPUs, as moe_tp x moe_ep).
One decode step gives one token to each of `batch x attention_dp` sequences. Pure Python, no torch.

**Bound** (`decode_tokens_per_s_upper_bound`, `tpot_ms_lower_bound`). Each GPU reads what it holds at no more
than its memory bandwidth, so a step lasts at least as long as the GPUs' *mean* read, whatever the split:

    step >= (weight bytes read + KV bytes read, summed over the instance's GPUs) / (GPUs x bandwidth)

and at least FLOPs per step / (GPUs x peak FLOP/s). Every term is counted low:

- weights at their format's value bits only (fp8 1 byte, nvfp4/mxfp4/int4 half a byte; block scales and
  norms' fp32 copies not counted), norms, routers and biases at 2 bytes; the input-embedding table is a row
  lookup (not counted), the LM head is (the embedding when tied). Attention weights are read once per
  attention-DP group (each group holds its own copy: that is what attention DP means); everything else once.
- routed experts: a step reads at least the k experts one token routes to in each MoE layer (k/E of the expert
  weights). `min(E, tokens x k)` of E (kvplan.planning.throughput.ParamSplit.decode_fraction) is the most a
  step can touch, not the least: tokens may all route to the same experts, so it is not used for the bound.
- KV: every sequence at `isl` tokens (the shortest context of any decode step), stored in the smallest KV dtype
  given; MLA latents on every TP rank (each rank reads the whole latent), K/V heads replicated where TP exceeds
  them (kvplan.engines.base.kv_heads_per_rank), windows capped, recurrent states once.
- FLOPs: 2 x matmul parameters per token (k of E experts, no embedding) at the highest dense peak the weight
  format can use (the profile's `dense_tflops`); attention FLOPs are left out (a bound).

**Estimate** (`tpot_ms_estimate`, `ttft_ms_estimate`). The same roofline with expected rather than least traffic
(experts touched under uniform routing, `E x (1 - (1 - k/E)^tokens)`; the mean decode context
`isl + osl / 2`), plus, when the same GPUs also prefill (aggregated serving), each step's share of the prompts
(`isl / osl` tokens per sequence at the dense peak), plus a fixed step time per layer (kernel launches and
collectives: `layer_step_seconds`), all divided by an efficiency fitted on measurements per GPU x engine x
precision (`throughput_efficiency.json`, written by `benchmarks/throughput_envelope.py` with its provenance and
its error on models left out of the fit). TTFT: the TTFT lower bound over the fitted prefill efficiency
(measured TTFT holds queueing, so this estimate is poor). Where no factor was fitted, the estimates are None
and the notes say so.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from fractions import Fraction
from importlib import resources
from typing import Any

from kvplan.core import specs as L
from kvplan.core.config import EXPERT_KEYS, EXPERTS_PER_TOKEN_KEYS, optional_int, text_config
from kvplan.core.shapes import ModelShape
from kvplan.core.units import canonical_dtype, dtype_bytes
from kvplan.errors import UsageError

# bits per weight value of each weight format (scales not counted: a lower bound on the bytes stored)
WEIGHT_BITS: dict[str, int] = {
    "bf16": 16,
    "fp16": 16,
    "fp8": 8,
    "fp8_block": 8,
    "int8": 8,
    "int8_wo": 8,
    "nvfp4": 4,
    "mxfp4": 4,
    "int4": 4,
    "int4_wo": 4,
}
# the profile's dense_tflops keys a GEMM in that format can run at (the bound takes the highest one present)
PEAK_KEYS: dict[str, tuple[str, ...]] = {
    "bf16": ("bf16",),
    "fp16": ("fp16", "bf16"),
    "fp8": ("fp8", "bf16"),
    "fp8_block": ("fp8", "bf16"),
    "int8": ("int8", "fp8", "bf16"),
    "int8_wo": ("int8", "fp8", "bf16"),
    "nvfp4": ("fp4", "fp8", "bf16"),
    "mxfp4": ("fp4", "fp8", "bf16"),
    "int4": ("fp4", "int8", "fp8", "bf16"),
    "int4_wo": ("fp4", "int8", "fp8", "bf16"),
}
# the precision an efficiency is fitted for (the measured rows' `precision`), by weight format
PRECISION: dict[str, str] = {
    "bf16": "bf16",
    "fp16": "bf16",
    "fp8": "fp8",
    "fp8_block": "fp8",
    "int8": "int8",
    "int8_wo": "int8",
    "nvfp4": "fp4",
    "mxfp4": "fp4",
    "int4": "int4",
    "int4_wo": "int4",
}
SMALL_BYTES = 2  # norms, routers, biases, recurrent states: never stored below 16 bits
_ATTENTION = re.compile(r"\.(self_attn|linear_attn|attention|attn|mixer)\.")
EFFICIENCY_FILE = "throughput_efficiency.json"


@dataclass(frozen=True)
class Layout:
    """GPUs of one serving instance: `tp` per attention group, `attention_dp` groups, `pp` stages."""

    tp: int = 1
    attention_dp: int = 1
    pp: int = 1

    @property
    def gpus(self) -> int:
        return self.tp * self.attention_dp * self.pp


@dataclass(frozen=True)
class Weights:
    """Parameters of a model by how a decode step reads them."""

    attention: int  # attention matmuls (replicated per attention-DP group)
    dense: int  # other matmuls read every step (dense MLP, shared experts, LM head or tied embedding)
    expert: int  # routed-expert matmuls
    small: int  # norms, routers, biases, other (16-bit)
    experts: int  # E
    experts_per_token: int  # k

    @property
    def matmul_per_token(self) -> Fraction:
        """Matmul parameters one token multiplies (k of E experts)."""
        routed = Fraction(self.expert * self.experts_per_token, self.experts) if self.experts else Fraction(self.expert)
        return self.attention + self.dense + routed


# The `schema` of `kvplan throughput --json` (kvplan/schemas/throughput.json describes it)
SCHEMA = "kvplan.throughput/1"


def weights_of(config: dict[str, Any]) -> Weights:
    """kvplan's analytic tensor list (kvplan.weights.tensors) split by how a decode step reads it."""
    from kvplan.weights.tensors import weight_tensors

    parts = {"attention": 0, "dense": 0, "expert": 0, "small": 0}
    tensors = weight_tensors(config)
    tied = not any(t.role == "lm_head" for t in tensors)
    for t in tensors:
        if t.role == "buffer" or (t.role == "embedding" and not tied):
            continue
        if t.role == "expert":
            parts["expert"] += t.numel
        elif t.role in ("linear", "lm_head", "embedding"):
            parts["attention" if t.role == "linear" and _ATTENTION.search(t.name) else "dense"] += t.numel
        else:
            parts["small"] += t.numel
    cfg = text_config(config)
    experts = optional_int(cfg, *EXPERT_KEYS) or 0
    k = optional_int(cfg, *EXPERTS_PER_TOKEN_KEYS) or 0
    if parts["expert"] and not (experts and k):
        experts, k = 1, 1  # experts the config cannot count: all of them read (and multiplied) every step
    return Weights(parts["attention"], parts["dense"], parts["expert"], parts["small"], experts, k)


def kv_bytes_per_sequence(shape: ModelShape, context: int, tp: int, kv_bytes: Fraction) -> Fraction:
    """KV bytes one sequence at `context` tokens has read in one step, summed over the `tp` GPUs of its group."""
    from kvplan.engines.base import kv_heads_per_rank

    total = Fraction(0)
    for cache in shape.caches():
        if isinstance(cache, L.KVAttention):
            tokens = context if cache.window is None else min(cache.window, context)
            heads = kv_heads_per_rank(cache.num_kv_heads, tp) * tp
            total += cache.bytes_per_token(kv_bytes, heads) * tokens
        elif isinstance(cache, L.MlaLatent):
            if cache.sparse:  # the DSA indexer's keys of every token (its top-k latents not counted)
                total += cache.index_head_dim * kv_bytes * context * tp
            else:
                total += cache.bytes_per_token(kv_bytes) * context * tp
        elif isinstance(cache, L.IndexKeys):  # MiniMax-M3's indexer scores every token's key (one, not split by TP)
            total += cache.bytes_per_token(kv_bytes) * context * tp
        elif isinstance(cache, L.RecurrentState):
            total += cache.state_bytes(SMALL_BYTES, SMALL_BYTES, columns=max(cache.conv_kernel - 1, 0))
    return total


def weight_bits(fmt: str) -> int:
    try:
        return WEIGHT_BITS[fmt]
    except KeyError:
        raise UsageError(
            f"unknown weight format {fmt!r}", hint="use one of: " + ", ".join(WEIGHT_BITS), field="weights"
        ) from None


def peak_flops(tflops: dict[str, Any] | None, fmt: str) -> float | None:
    """The highest dense peak (FLOP/s) a GEMM in `fmt` can run at on this GPU, None when the profile has none."""
    if not tflops:
        return None
    found = [float(tflops[k]) for k in PEAK_KEYS.get(fmt, ("bf16",)) if tflops.get(k)]
    return max(found) * 1e12 if found else None


@dataclass(frozen=True)
class Step:
    """Bytes and FLOPs of one decode step of an instance, summed over its GPUs."""

    weight_bytes: float
    kv_bytes: float
    flops: float
    tokens: int


def decode_step(
    shape: ModelShape,
    w: Weights,
    layout: Layout,
    *,
    batch: int,
    context: int,
    gemm: str,
    moe: str,
    kv_bytes: Fraction,
    expected: bool,
) -> Step:
    """One step of `batch` sequences per attention-DP group at `context` tokens. `expected`: the estimate's
    traffic (experts touched under uniform routing); else the least any step reads (k of E experts)."""
    tokens = batch * layout.attention_dp
    g, m = Fraction(weight_bits(gemm), 8), Fraction(weight_bits(moe), 8)
    if w.experts:
        frac = 1 - (1 - w.experts_per_token / w.experts) ** tokens if expected else w.experts_per_token / w.experts
    else:
        frac = 1.0
    weight = float(w.attention * g * layout.attention_dp + w.dense * g + w.small * SMALL_BYTES) + float(
        w.expert * m
    ) * min(1.0, float(frac))
    kv = float(kv_bytes_per_sequence(shape, context, layout.tp, kv_bytes) * tokens)
    return Step(weight, kv, float(2 * w.matmul_per_token) * tokens, tokens)


def _step_seconds(step: Step, layout: Layout, bandwidth: float, peak: float | None) -> float:
    memory = (step.weight_bytes + step.kv_bytes) / (layout.gpus * bandwidth)
    compute = step.flops / (layout.gpus * peak) if peak else 0.0
    return max(memory, compute)


def load_efficiency() -> dict[str, Any]:
    """The fitted efficiencies and their provenance (kvplan/planning/throughput_efficiency.json)."""
    text = (resources.files("kvplan.planning") / EFFICIENCY_FILE).read_text(encoding="utf-8")
    data: dict[str, Any] = json.loads(text)
    return data


def factor_for(factors: dict[str, Any], gpu: str, engine: str | None, precision: str) -> tuple[float | None, str]:
    """(efficiency, the key it was fitted for): GPU x engine x precision, else GPU x engine, else the GPU's."""
    for key in (f"{gpu}|{engine}|{precision}", f"{gpu}|{engine}|*", f"{gpu}|*|*"):
        if engine is None and "|None|" in key:
            continue
        if key in factors:
            return float(factors[key]), key
    return None, ""


def envelope(
    shape: ModelShape,
    w: Weights,
    profile: Any,
    layout: Layout,
    *,
    batch: int,
    isl: int,
    osl: int,
    gemm: str,
    moe: str | None = None,
    kv_dtype: str = "bf16",
    engine: str | None = None,
    precision: str | None = None,
    efficiency: dict[str, Any] | None = None,
    aggregated: bool = True,
) -> dict[str, Any]:
    """Bound and estimate of one point (see the module docstring). `batch`: sequences per attention-DP group;
    `aggregated`: the same GPUs also prefill the requests (the estimate adds their share of prefill)."""
    for name, value in (("batch", batch), ("isl", isl), ("osl", osl)):
        if not isinstance(value, int) or value < 1:
            raise UsageError(f"{name} must be a positive integer, got {value!r}", field=name)
    moe = moe or gemm
    bandwidth = profile.memory_bandwidth_bytes_per_s
    if not bandwidth:
        raise UsageError(
            f"profile {profile.id} has no memory bandwidth (a generic memory class)",
            hint="pass a GPU profile (kvplan profiles list)",
            field="gpu_profile",
        )
    kv_dtype = canonical_dtype(kv_dtype, what="kv dtype")
    kv = dtype_bytes(kv_dtype)
    peak_decode = peak_flops(profile.dense_tflops, gemm)
    least = decode_step(shape, w, layout, batch=batch, context=isl, gemm=gemm, moe=moe, kv_bytes=kv, expected=False)
    tpot_lb = _step_seconds(least, layout, bandwidth, peak_decode)
    mean_ctx = isl + osl // 2
    typical = decode_step(
        shape, w, layout, batch=batch, context=mean_ctx, gemm=gemm, moe=moe, kv_bytes=kv, expected=True
    )
    tpot_model = _step_seconds(typical, layout, bandwidth, peak_decode)
    prefill_flops = float(2 * w.matmul_per_token) * isl
    if aggregated and peak_decode:  # each step also prefills isl / osl tokens per sequence, on average
        tpot_model += prefill_flops * least.tokens / osl / (layout.gpus * peak_decode)
    step_latency = float((efficiency or {}).get("layer_step_seconds", 0.0))
    tpot_model += step_latency * shape.num_layers
    ttft_lb = max(
        prefill_flops / (layout.gpus * peak_decode) if peak_decode else 0.0,
        least.weight_bytes / (layout.gpus * bandwidth),
    )
    precision = precision or PRECISION[gemm]
    out: dict[str, Any] = {
        "gpu_profile": profile.id,
        "tp": layout.tp,
        "attention_dp": layout.attention_dp,
        "pp": layout.pp,
        "gpus": layout.gpus,
        "batch": batch,
        "isl": isl,
        "osl": osl,
        "aggregated": aggregated,
        "weights_format": gemm,
        "experts_format": moe if w.expert else None,
        "kv_dtype": kv_dtype,
        "decode_tokens_per_s_upper_bound": round(least.tokens / tpot_lb, 2),
        "tpot_ms_lower_bound": round(tpot_lb * 1e3, 4),
        "ttft_ms_lower_bound": round(ttft_lb * 1e3, 4),
        "tpot_ms_estimate": None,
        "ttft_ms_estimate": None,
        "efficiency_key": None,
        "bound_terms": {
            "weight_bytes_read": round(least.weight_bytes),
            "kv_bytes_read": round(least.kv_bytes),
            "flops": round(least.flops),
            "bandwidth_bytes_per_s": bandwidth,
            "peak_flops": peak_decode,
        },
    }
    factors = (efficiency or {}).get("factors", {})
    decode_eff, key = factor_for(factors.get("decode", {}), profile.id, engine, precision)
    prefill_eff, _ = factor_for(factors.get("prefill", {}), profile.id, engine, precision)
    if decode_eff:
        out["tpot_ms_estimate"] = round(tpot_model * 1e3 / decode_eff, 3)
        out["efficiency_key"] = key
        out["decode_efficiency"] = decode_eff
    if prefill_eff:
        out["ttft_ms_estimate"] = round(ttft_lb * 1e3 / prefill_eff, 3)
        out["prefill_efficiency"] = prefill_eff
    out["model_tpot_ms"] = round(tpot_model * 1e3, 4)
    return out


def log_error(estimate: float, measured: float) -> float:
    """|estimate - measured| / measured."""
    return abs(estimate - measured) / measured if measured else math.inf


def throughput(
    model: Any,
    *,
    gpu_profile: str,
    tp: int = 1,
    batch: int = 1,
    isl: int = 1024,
    osl: int = 1024,
    engine: str | None = None,
    weights: str = "bf16",
    experts: str | None = None,
    kv_dtype: str = "auto",
    attention_dp: int = 1,
    profiles_dir: str | None = None,
    offline: bool | None = None,
    assume_llama: bool = False,
    aggregated: bool = True,
) -> dict[str, Any]:
    """The envelope of MODEL decoding `batch` sequences (per attention-DP group) of `isl` prompt and `osl` output
    tokens on `tp x attention_dp` GPUs of `gpu_profile`: the bound, and the estimate where an efficiency was
    fitted for the GPU x engine x weight format. `weights` / `experts`: the matmul and routed-expert formats
    (WEIGHT_BITS); `kv_dtype` auto: the model dtype; `aggregated` False: a disaggregated decode worker (no
    prefill on these GPUs)."""
    from kvplan.engines.registry import lookup
    from kvplan.errors import READ_ERRORS, ConfigError
    from kvplan.planning.resolved import resolve
    from kvplan.sources.hardware import load_profile

    for name, value in (("tp", tp), ("batch", batch), ("isl", isl), ("osl", osl), ("attention_dp", attention_dp)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise UsageError(f"{name} must be a positive integer, got {value!r}", field=name)
    weight_bits(weights)
    if experts is not None:
        weight_bits(experts)
    engine_name = None
    if engine is not None:
        entry = lookup(engine)
        if entry is None:
            raise UsageError(
                f"unknown engine {engine!r}", hint="use vllm, sglang or tensorrt-llm (the engines measured)"
            )
        engine_name = entry.name
    profile = load_profile(gpu_profile, profiles_dir=profiles_dir)
    resolved = resolve(model, offline=offline, assume_llama=assume_llama)
    try:
        w = weights_of(resolved.config)
    except READ_ERRORS as exc:
        raise ConfigError(f"cannot count this model's weights: {exc}") from None
    kv = resolved.shape.dtype if kv_dtype == "auto" else kv_dtype
    result = envelope(
        resolved.shape,
        w,
        profile,
        Layout(tp=tp, attention_dp=attention_dp),
        batch=batch,
        isl=isl,
        osl=osl,
        gemm=weights,
        moe=experts,
        kv_dtype=kv,
        engine=engine_name,
        efficiency=load_efficiency(),
        aggregated=aggregated,
    )
    notes = [
        "bound: each GPU reads at most its memory bandwidth, a step reads at least the weights it multiplies "
        "(k of E experts), and every sequence's KV at isl tokens; estimate: the roofline at the mean context "
        "isl + osl/2 with experts touched under uniform routing, over a fitted efficiency"
    ]
    if result["tpot_ms_estimate"] is None:
        notes.append(
            f"no efficiency fitted for {profile.id} x {engine_name or 'any engine'} x {PRECISION[weights]}: no estimate "
            "(benchmarks/throughput_envelope.py fits them on measured rows)"
        )
    else:
        notes.append(f"efficiency fitted for {result['efficiency_key']} ({EFFICIENCY_FILE})")
    result = {
        "schema": SCHEMA,
        "model": resolved.name,
        "config_source": resolved.config_source,
        "revision": resolved.revision,
        "engine": engine_name,
        **result,
        "notes": notes + list(resolved.shape.assumptions),
    }
    return result
