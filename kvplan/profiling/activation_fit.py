"""The transient memory of a prefill / decode pass (activations, attention scores, cache-growth copies), fitted
on points `kvplan profile` measured, so that its searches can predict the largest batch or prompt that fits.

Pure arithmetic (no torch). KV-cache bytes come from kvplan's estimate (exact); what is left of a measured phase
peak is the transient, which grows with the tokens of the pass:

- prefill: `batch x seq_len x (per_token + per_token_squared x seq_len)`; the second term is attention that
  materialises its scores (eager attention, or an SDPA math fallback), which grows with the square of the
  prompt. It is fitted only when the grid has two prompt lengths or more and it is significant at the
  longest of them (QUADRATIC_SIGNIFICANCE), else taken as zero;
- decode: `batch x cached tokens x decode_per_cached_token` (DynamicCache grows by concatenation, so one
  layer's K/V exist twice for a moment).

Each sample weighs as many tokens as it ran: tiny points, where fixed costs and allocator rounding dominate,
count little. This is the approach engines take too (vLLM measures the activation peak in a profiling run
before it sizes its cache); the fit is labelled as such wherever it is printed.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["QUADRATIC_SIGNIFICANCE", "ActivationFit", "Sample", "fit_activations"]

# The quadratic term is kept only where, at the grid's longest prompt, it adds this fraction of the linear term
# or more. Measured on tiny CPU models, allocator rounding and library buffers move the per-token transient of
# small points by 10-25 %; extrapolated by --find-max-len to several times the longest prompt, a slope fitted on
# that noise mispredicts by as much. Attention that materialises its scores (eager) grows far faster:
# gemma2-style eager attention doubles the per-token transient from 512 to 1,024 tokens.
QUADRATIC_SIGNIFICANCE = 0.25


@dataclass(frozen=True)
class Sample:
    """One measured grid point: transient bytes = phase peak - the KV bytes the cache held then."""

    batch: int
    seq_len: int
    decode_tokens: int
    prefill_transient: int
    decode_transient: int | None  # None when no decode step ran


@dataclass(frozen=True)
class ActivationFit:
    per_token: float  # prefill bytes per prompt token
    per_token_squared: float  # prefill bytes per prompt token per prompt token (materialised attention scores)
    decode_per_cached_token: float
    samples: int

    def prefill_bytes(self, batch: int, seq_len: int) -> int:
        return round(batch * seq_len * (self.per_token + self.per_token_squared * seq_len))

    def decode_bytes(self, batch: int, cached_tokens: int) -> int:
        return round(batch * cached_tokens * self.decode_per_cached_token)

    def describe(self) -> str:
        quadratic = f" + {self.per_token_squared:.3g} B per prompt token squared" if self.per_token_squared else ""
        return (
            f"prefill {self.per_token:,.0f} B per prompt token{quadratic}, decode "
            f"{self.decode_per_cached_token:,.0f} B per cached token (fitted on {self.samples} measured "
            f"point{'s' if self.samples != 1 else ''})"
        )

    def to_dict(self) -> dict[str, float | int]:
        return {
            "prefill_bytes_per_token": self.per_token,
            "prefill_bytes_per_token_squared": self.per_token_squared,
            "decode_bytes_per_cached_token": self.decode_per_cached_token,
            "samples": self.samples,
        }


def fit_activations(samples: Iterable[Sample]) -> ActivationFit | None:
    """Weighted least squares of the per-token prefill transient on the prompt length (slope clipped at 0),
    and the token-weighted mean decode transient per cached token; None without samples."""
    points = [s for s in samples if s.batch > 0 and s.seq_len > 0]
    if not points:
        return None
    # prefill: y = transient / tokens = a + b x seq_len, weight = tokens
    rows = [
        (s.seq_len, max(0, s.prefill_transient) / (s.batch * s.seq_len), float(s.batch * s.seq_len)) for s in points
    ]
    total = sum(w for _, _, w in rows)
    mean_x = sum(w * x for x, _, w in rows) / total
    mean_y = sum(w * y for _, y, w in rows) / total
    spread = sum(w * (x - mean_x) ** 2 for x, _, w in rows)
    slope = sum(w * (x - mean_x) * (y - mean_y) for x, y, w in rows) / spread if spread else 0.0
    longest = max(x for x, _, _ in rows)
    if slope * longest < QUADRATIC_SIGNIFICANCE * max(mean_y - slope * mean_x, 0.0):
        slope = 0.0  # at the longest prompt within what small-point noise moves: no quadratic term
    if slope <= 0:
        slope = 0.0
        intercept = mean_y
    else:
        intercept = mean_y - slope * mean_x
        if intercept < 0:  # all of it quadratic: fit y = b x through the origin
            intercept = 0.0
            slope = sum(w * x * y for x, y, w in rows) / sum(w * x * x for x, _, w in rows)
    decoded = [
        (max(0, s.decode_transient), s.batch * (s.seq_len + s.decode_tokens))
        for s in points
        if s.decode_transient is not None and s.decode_tokens > 0
    ]
    per_cached = sum(t for t, _ in decoded) / sum(n for _, n in decoded) if decoded else 0.0
    return ActivationFit(
        per_token=intercept, per_token_squared=slope, decode_per_cached_token=per_cached, samples=len(points)
    )
