"""Upper bounds on decode and prefill throughput (roofline bounds, never predictions). Pure Python, no torch.

Decode (one step = one new token for each of `batch` sequences): every step reads, on each GPU, at least the
weights the step touches plus the KV cache of the batch. So

    decode tokens/s <= batch x memory bandwidth / (weight bytes read + KV bytes of batch x context)

and, from compute, <= peak FLOP/s / FLOPs per token. Weight bytes read exclude the input-embedding table
(one row per token is read; the LM head is counted, or the embedding when tied); for MoE layers a step reads at
least the k experts one token routes to (every token of the batch may pick the same k), so expert weights count
with the fraction k / E, a lower bound on what is read. (min(E, batch x k) of E is the most a step can touch,
not the least: counted so, the bound fell below measured decode rates on 9 of the 2,516 measured rows of
tests/fixtures/measurements, up to 1.87x, benchmarks/throughput_envelope.py.) The KV term is the cache as the engine stores it with
every sequence at `context` tokens (kvplan reports context = max_model_len: the slowest step of a full batch).

Prefill (compute bound): tokens/s <= peak dense FLOP/s of all GPUs / (2 x matmul parameters per token +
attention FLOPs per token), where matmul parameters exclude the embedding table and the LM head (prefill
computes logits for the last token only) and count k of E experts; attention is 2 x heads x (d_k + d_v) x
the mean causal context per full (or sliding) attention layer, for a prompt of `context` tokens. MLA and
recurrent layers add no FLOPs here (that keeps it a bound). Peak FLOP/s are the profile's dense figures for the
model dtype (bf16/fp16/fp32).
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

from kvplan.core import specs as L
from kvplan.core.config import EXPERT_KEYS, EXPERTS_PER_TOKEN_KEYS, optional_int, text_config
from kvplan.core.shapes import ModelShape
from kvplan.core.units import SHORT_NAMES


@dataclass(frozen=True)
class ParamSplit:
    """Parameters of the model by how a forward pass uses them."""

    total: int
    embedding: int  # input embedding table (a row lookup)
    lm_head: int  # 0 when tied to the embedding
    expert: int  # routed-expert matrices
    experts: int  # E
    experts_per_token: int  # k

    def decode_fraction(self, batch: int) -> Fraction:
        """Lower bound on the fraction of the weights one decode step of `batch` tokens reads: the k experts of
        one token per MoE layer, whatever the batch (its tokens may all route to the same experts)."""
        read = Fraction(self.total - self.embedding + (self.embedding if self.lm_head == 0 else 0))
        if self.expert and self.experts:
            touched = Fraction(min(self.experts, self.experts_per_token), self.experts)
            read -= self.expert - self.expert * touched
        return Fraction(read, self.total) if self.total else Fraction(0)

    def matmul_params_per_token(self) -> Fraction:
        """Parameters one prompt token multiplies (no embedding lookup, no LM head, k of E experts)."""
        dense = self.total - self.embedding - self.lm_head - self.expert
        if self.expert and self.experts:
            return dense + Fraction(self.expert * self.experts_per_token, self.experts)
        return Fraction(dense + self.expert)


def param_split(config: dict) -> ParamSplit | None:
    """Split kvplan's analytic parameter count by role; None when the architecture cannot be counted."""
    from kvplan.errors import READ_ERRORS
    from kvplan.weights.tensors import weight_tensors

    try:  # a config the count cannot read (a field of the wrong type included): no bound rather than a wrong one
        by_role: dict[str, int] = {}
        for t in weight_tensors(config):
            by_role[t.role] = by_role.get(t.role, 0) + int(t.numel)
        total = sum(v for k, v in by_role.items() if k != "buffer")
    except READ_ERRORS:
        return None
    cfg = text_config(config)
    experts = optional_int(cfg, *EXPERT_KEYS) or 0
    k = optional_int(cfg, *EXPERTS_PER_TOKEN_KEYS) or 0
    return ParamSplit(
        total, by_role.get("embedding", 0), by_role.get("lm_head", 0), by_role.get("expert", 0), experts, k
    )


def attention_flops_per_token(shape: ModelShape, context: int, *, prefill: bool) -> Fraction:
    """QK^T and AV FLOPs of one token: 2 x heads x (d_k + d_v) x attended tokens, summed over attention layers.
    Prefill averages the causal context over a prompt of `context` tokens; decode attends to `context`."""
    heads = shape.num_attention_heads
    if not heads:
        return Fraction(0)
    layers: dict[tuple[int, int | None], int] = {}  # (d_k + d_v, window) -> attention layers alike
    for cache in shape.caches():
        if isinstance(cache, L.KVAttention):
            window = cache.window if cache.kind in (L.SLIDING, L.CHUNKED) and cache.window else None
            key = (cache.head_dim_k + cache.head_dim_v, window)
            layers[key] = layers.get(key, 0) + 1
    total = Fraction(0)
    for (head_dims, window), count in layers.items():
        if prefill:
            # mean over t = 1..context of min(t, window) (lower bound: t starting at 0 gives the same order)
            attended = (
                Fraction(context, 2)
                if window is None or window >= context
                else Fraction(window) - Fraction(window * window, 2 * context)
            )
        else:
            attended = Fraction(context if window is None else min(window, context))
        total += count * 2 * heads * head_dims * attended
    return total


def bounds(
    *,
    shape: ModelShape,
    split: ParamSplit | None,
    weights_per_gpu: int,
    kv_bytes_per_gpu,
    batches: list[int],
    context: int,
    bandwidth: int | None,
    tflops: dict | None,
    model_dtype: str,
    gpus: int,
    moe_note: bool = True,
) -> tuple[list[dict], float | None, list[str]]:
    """(decode bounds per batch, prefill bound, assumptions). `kv_bytes_per_gpu(batch)` gives the KV bytes one GPU
    reads per step for `batch` sequences of `context` tokens."""
    notes = [
        f"bounds, not predictions: every sequence at context {context} tokens (max_model_len); "
        "decode = min(bandwidth x batch / bytes read per step, peak FLOP/s / FLOPs per token)"
    ]
    peak = None
    key = SHORT_NAMES.get(model_dtype, "bf16")  # the profile's dense_tflops keys: bf16, fp16, fp32
    if tflops and tflops.get(key):
        peak = float(tflops[key]) * 1e12
    if split is None:
        notes.append("no analytic parameter split for this architecture: all weights counted as read per step")
    elif split.expert and moe_note:
        notes.append(
            f"MoE: a step reads at least the k={split.experts_per_token} experts of one token of E={split.experts} "
            "per layer (a batch's tokens may all route to the same experts)"
        )
    rows = []
    decode_flops = (
        2 * split.matmul_params_per_token() + attention_flops_per_token(shape, context, prefill=False)
        if peak and split
        else None
    )  # FLOPs of one decoded token: the same at every batch
    for b in batches:
        frac = split.decode_fraction(b) if split else Fraction(1)
        w = int(weights_per_gpu * frac)
        kv = kv_bytes_per_gpu(b)
        row: dict = {"batch": b, "context_tokens": context, "weight_bytes_read_per_gpu": w, "kv_bytes_read_per_gpu": kv}
        mem = float(Fraction(b * bandwidth, w + kv)) if bandwidth and (w + kv) else None
        comp = None
        if decode_flops is not None:
            comp = peak * gpus / float(decode_flops) if decode_flops and peak else None
        row["memory_bound_tokens_per_s"] = None if mem is None else round(mem, 2)
        row["compute_bound_tokens_per_s"] = None if comp is None else round(comp, 2)
        both = [x for x in (mem, comp) if x is not None]
        row["decode_tokens_per_s_upper_bound"] = round(min(both), 2) if both else None
        rows.append(row)
    prefill = None
    if peak and split and tflops is not None:
        per_token = 2 * split.matmul_params_per_token() + attention_flops_per_token(shape, context, prefill=True)
        prefill = round(peak * gpus / float(per_token), 2) if per_token else None
        notes.append(f"prefill: {key} dense peak {tflops[key]:g} TFLOP/s x {gpus} GPU(s), prompt of {context} tokens")
    return rows, prefill, notes
