"""vLLM's version table (kvplan.engines.vllm.VLLM_VERSIONS): which profiling behaviour kvplan models for a
`--vllm-version`. Each test names the evidence the row it lands on follows."""

from __future__ import annotations

import pytest

from kvplan.engines.vllm import VLLM_VERSIONS, parse_vllm_version, version_key, vllm_behaviour
from kvplan.errors import UsageError
from kvplan.planning.recommend import recommend


def test_0_10_1_1_profiles_the_heavy_sampler():
    """vLLM 0.10.1.1 (four-part version) is in the first row, which follows the llm-d empirical logs of vLLM
    <= 0.11 (tests/fixtures/calibration): activation peaks of 38.4-38.9 B per (sequence x vocab entry) for 0.6B-32B
    models at max_num_seqs 1024; no CUDA-graph estimate is subtracted."""
    row = vllm_behaviour("0.10.1.1")
    assert row is VLLM_VERSIONS[0]
    assert row.sampler_bytes_per_seq_vocab == 39.0 and row.subtracts_cudagraphs is False


def test_0_11_is_the_last_heavy_sampler_version():
    """vLLM 0.11: the llm-d empirical case llmd-empirical-v0110-llama-31-8b-instruct-tp1 logged 4.76 GiB of
    activation peak for Llama-3.1-8B at max_num_seqs 1024, which the 39 B sampler row reproduces."""
    assert vllm_behaviour("0.11") is VLLM_VERSIONS[0]
    assert vllm_behaviour("0.11.2") is VLLM_VERSIONS[0]
    assert vllm_behaviour("0.12") is VLLM_VERSIONS[1]  # the next row starts at 0.12


def test_0_19_0_profiles_the_light_sampler_without_cudagraphs():
    """vLLM 0.19.0 follows the row fitted on the llm-d vLLM 0.19 H100 logs (tests/fixtures/calibration): 15 B per
    (sequence x vocab entry), and the logged "Available KV cache memory" leaves the CUDA-graph pool out."""
    row = vllm_behaviour("0.19.0")
    assert row is VLLM_VERSIONS[1]
    assert row.sampler_bytes_per_seq_vocab == 15.0 and row.subtracts_cudagraphs is False
    assert vllm_behaviour("0.20.9").subtracts_cudagraphs is False


def test_0_21_0rc1_subtracts_the_cudagraph_estimate():
    """vLLM 0.21 (release candidates included) subtracts its CUDA-graph memory estimate from the KV budget
    (VLLM_MEMORY_PROFILER_ESTIMATE_CUDAGRAPHS); the sampler term stays that of the 0.19 logs."""
    row = vllm_behaviour("0.21.0rc1")
    assert row is VLLM_VERSIONS[2] and vllm_behaviour("v0.21") is row
    assert row.sampler_bytes_per_seq_vocab == 15.0 and row.subtracts_cudagraphs is True


def test_an_unknown_version_is_the_newest_behaviour():
    """No --vllm-version: kvplan models the newest row (today vLLM >= 0.21), as before the table existed."""
    assert vllm_behaviour(None) is VLLM_VERSIONS[-1]
    assert vllm_behaviour("") is VLLM_VERSIONS[-1]
    assert vllm_behaviour("1.4") is VLLM_VERSIONS[-1]  # later than every row: the newest


def test_the_table_is_ordered_and_every_row_cites_its_evidence():
    starts = [row.since for row in VLLM_VERSIONS]
    assert starts[0] == (0, 0) and starts == sorted(set(starts))  # every version has exactly one row
    assert all(row.follows for row in VLLM_VERSIONS)


def test_versions_are_parsed_strictly():
    """Versions as `vllm --version` prints them; anything else is a one-line usage error."""
    assert parse_vllm_version("v0.21.0rc1") == (0, 21)
    assert version_key("0.10.1.1") == (0, 10, 1) and version_key("0.19") == (0, 19, 0)
    for bad in ("abc", "0", "0.x", "latest"):
        with pytest.raises(UsageError, match="--vllm-version"):
            vllm_behaviour(bad)


def test_recommend_reads_the_table():
    """The budget's sampler term and CUDA-graph term follow the row of the version given."""
    for version in ("0.10.1.1", "0.19.0", "0.21.0rc1", None):
        rec = recommend(
            "meta-llama/Llama-3.1-8B", gpu_profile="h100-sxm-80gb", max_model_len=8192, vllm_version=version
        )
        row = vllm_behaviour(version)
        terms = {t.name: t for t in rec.budget}
        assert terms["activation_peak"].source.startswith(f"{row.sampler_bytes_per_seq_vocab:g} B x max_num_seqs")
        assert ("cudagraph" in terms) is row.subtracts_cudagraphs
