"""kvplan.profiling.activation_fit: the transient memory model `kvplan profile` fits on its measured grid points."""

from __future__ import annotations

import pytest

from kvplan.profiling.activation_fit import QUADRATIC_SIGNIFICANCE, ActivationFit, Sample, fit_activations


def _sample(batch, seq_len, steps, per_token, per_token_squared, per_cached):
    prefill = batch * seq_len * (per_token + per_token_squared * seq_len)
    return Sample(batch, seq_len, steps, round(prefill), round(batch * (seq_len + steps) * per_cached))


def test_recovers_linear_and_quadratic_terms():
    # eager attention: 10,240 B per token (3 x intermediate + 4 x hidden in fp32 for a 256/512 llama) and
    # 40 B per token per key (scores of 8 heads: fp32 softmax + its input + the cast copy = 5 B per head)
    samples = [_sample(b, s, 8, 10_240, 40, 512) for b, s in ((1, 256), (4, 256), (2, 1024), (8, 512))]
    fit = fit_activations(samples)
    assert fit.per_token == pytest.approx(10_240, abs=1e-6)
    assert fit.per_token_squared == pytest.approx(40, abs=1e-9)
    assert fit.decode_per_cached_token == pytest.approx(512, abs=1e-9)
    assert fit.samples == 4
    assert fit.prefill_bytes(16, 2048) == 16 * 2048 * (10_240 + 40 * 2048)
    assert fit.decode_bytes(16, 2056) == 16 * 2056 * 512


def test_one_length_fits_no_quadratic_term():
    fit = fit_activations([_sample(b, 512, 4, 9_000, 0, 100) for b in (1, 2, 8)])
    assert fit.per_token == pytest.approx(9_000) and fit.per_token_squared == 0.0


def test_points_weigh_their_tokens():
    # a tiny point dominated by fixed costs (50,000 B per token) barely moves the fit of two large ones
    fit = fit_activations(
        [
            Sample(1, 16, 0, 16 * 50_000, None),
            Sample(16, 1024, 0, 16 * 1024 * 10_000, None),
            Sample(8, 1024, 0, 8 * 1024 * 10_000, None),
        ]
    )
    assert fit.per_token_squared == 0.0  # the slope is negative: clipped, the token-weighted mean is kept
    assert fit.per_token == pytest.approx((16 * 50_000 + 24 * 1024 * 10_000) / (16 + 24 * 1024))
    assert fit.decode_per_cached_token == 0.0  # no decode steps ran


def test_negative_transients_count_as_zero_and_no_samples_give_no_fit():
    fit = fit_activations([Sample(2, 100, 4, -500, -20)])
    assert (fit.per_token, fit.per_token_squared, fit.decode_per_cached_token) == (0.0, 0.0, 0.0)
    assert fit_activations([]) is None


def test_a_negative_intercept_is_refitted_through_the_origin():
    # y = 12 s - 100 per token: the line would go below zero for short prompts; refit y = b s (weights s)
    lengths = (128, 256, 512)
    fit = fit_activations([_sample(1, s, 0, -100, 12, 0) for s in lengths])
    ys = [12 * s - 100 for s in lengths]
    assert fit.per_token == 0.0
    assert fit.per_token_squared == pytest.approx(
        sum(s * s * y for s, y in zip(lengths, ys, strict=True)) / sum(s * s * s for s in lengths)
    )


def test_description_and_json_name_the_terms():
    fit = ActivationFit(per_token=10_003.4, per_token_squared=0.27, decode_per_cached_token=524.0, samples=4)
    assert fit.describe() == (
        "prefill 10,003 B per prompt token + 0.27 B per prompt token squared, decode 524 B "
        "per cached token (fitted on 4 measured points)"
    )
    assert fit.to_dict() == {
        "prefill_bytes_per_token": 10_003.4,
        "prefill_bytes_per_token_squared": 0.27,
        "decode_bytes_per_cached_token": 524.0,
        "samples": 4,
    }


def test_a_quadratic_term_within_noise_is_dropped():
    # 1 B per token squared adds 1,024 B to ~10 kB per token at 1,024 tokens: under QUADRATIC_SIGNIFICANCE,
    # so the token-weighted mean per-token transient is kept instead of a slope that extrapolation would amplify
    samples = [_sample(2, s, 0, 10_000, 1, 0) for s in (256, 1024)]
    fit = fit_activations(samples)
    assert QUADRATIC_SIGNIFICANCE == 0.25
    assert fit.per_token_squared == 0.0
    tokens = 2 * 256 + 2 * 1024
    assert fit.per_token == pytest.approx((sum(s.prefill_transient for s in samples)) / tokens)


def test_a_steep_term_on_close_lengths_is_kept():
    # eager attention, 40 B per token squared on 10 kB per token, on prompts of 128 and 160: the growth between
    # them is small (1,280 B) but at 160 tokens the term adds 6,400 B, most of the linear term: kept, since
    # dropping it would over-predict the longest prompt that fits
    fit = fit_activations([_sample(2, s, 0, 10_240, 40, 0) for s in (128, 160)])
    assert fit.per_token_squared == pytest.approx(40) and fit.per_token == pytest.approx(10_240)
