"""`recommend --smallest-layout` (kvplan.planning.layouts): the fewest GPUs a model fits on per engine, each
candidate planned by recommend() itself, so the engine's own rules (and refusals) decide."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from kvplan.cli import app
from kvplan.errors import UsageError
from kvplan.planning.layouts import Candidate, candidates, smallest_layout
from kvplan.planning.recommend import recommend

runner = CliRunner()
H100 = "h100-sxm-80gb"
VLLM = frozenset({"dp", "dcp", "expert_parallel", "redundant_experts"})


def test_candidates_follow_the_engines_parallelism():
    tp_pp = candidates(4, frozenset(), moe=False, searches_tp=True)
    assert {(c.tp, c.pp, c.dp, c.dcp) for c in tp_pp} == {
        (1, 1, 1, 1), (2, 1, 1, 1), (1, 2, 1, 1), (4, 1, 1, 1), (2, 2, 1, 1), (1, 4, 1, 1)
    }  # fmt: skip
    assert [c.gpus for c in tp_pp] == sorted(c.gpus for c in tp_pp)  # fewest GPUs first
    assert {c.tp for c in candidates(8, frozenset(), moe=False, searches_tp=False)} == {1}  # llama.cpp: layers only
    vllm = candidates(2, VLLM, moe=True, searches_tp=True)
    assert Candidate(1, 1, 2, 1, True) in vllm and Candidate(2, 1, 1, 2, True) in vllm  # DP x EP; DCP in TP
    assert Candidate(1, 1, 1, 1, False) in vllm  # one GPU: no expert parallelism (vLLM needs TP x DP > 1)
    assert all(not c.expert_parallel for c in candidates(2, VLLM, moe=False, searches_tp=True))


def test_llama_70b_at_128k_needs_four_h100s_and_the_search_says_why():
    """No layout of 1 or 2 GPUs holds one request of 131,072 tokens beside the bf16 weights (~131 GiB); of the
    4-GPU layouts that do, the plan holding the most requests in all."""
    model, options = "meta-llama/Llama-3.1-70B", {"gpu_profile": H100, "offline": True}
    for tp, pp, dp in ((1, 1, 1), (2, 1, 1), (1, 2, 1), (1, 1, 2)):
        assert not recommend(model, tp=tp, pp=pp, dp=dp, gpus=tp * pp * dp, **options).fits
    rec = smallest_layout(model, engine="vllm", max_gpus=8, **options)
    assert rec.fits and rec.gpus == 4
    for cand in candidates(4, VLLM, moe=False, searches_tp=True):
        if cand.gpus == 4 and cand.dcp == 1:
            other = recommend(model, tp=cand.tp, pp=cand.pp, dp=cand.dp, gpus=4, **options)
            assert not other.fits or other.max_concurrency * cand.dp <= rec.parallel["max_concurrency_total"] + 0.01
    # 15 layouts of up to 4 GPUs: 1 + 4 + 10; vLLM refuses DCP for GQA while TP <= the 8 KV heads
    # (config/model.py:1578-1606): DCP 2 at TP 2 (twice more at 4 GPUs: with PP 2, with DP 2), DCP 2 and 4 at TP 4
    assert rec.parallel["search"] == {"max_gpus": 8, "layouts_planned": 10, "layouts_refused": 5, "fits": True}
    assert any("smallest layout that fits on at most 8 GPUs" in n for n in rec.notes)


def test_a_concurrency_asked_is_met_by_more_dp_ranks():
    """Llama-3.1-8B fits one H100; 3x the requests one GPU holds need more GPUs, which the search finds."""
    one = recommend("meta-llama/Llama-3.1-8B", gpu_profile=H100, offline=True, max_model_len=32768)
    wanted = 3 * int(one.max_concurrency)
    rec = smallest_layout(
        "meta-llama/Llama-3.1-8B",
        engine="vllm",
        gpu_profile=H100,
        offline=True,
        max_model_len=32768,
        concurrency=wanted,
    )
    assert rec.fits and rec.gpus > 1 and rec.parallel["max_concurrency_total"] >= wanted


def test_layout_options_with_the_search_are_refused():
    with pytest.raises(UsageError, match="cannot be given"):
        smallest_layout("meta-llama/Llama-3.1-8B", engine="vllm", gpu_profile=H100, offline=True, tp=2)


def test_cli_search_exit_codes():
    fits = runner.invoke(
        app, ["recommend", "meta-llama/Llama-3.1-70B", "-g", H100, "--smallest-layout", "--gpus", "4", "--offline"]
    )
    assert fits.exit_code == 0 and "smallest layout that fits on at most 4 GPUs" in fits.output
    none = runner.invoke(
        app,
        [
            "recommend",
            "meta-llama/Llama-3.1-70B",
            "-g",
            H100,
            "--smallest-layout",
            "--gpus",
            "1",
            "--offline",
            "--json",
        ],
    )
    assert none.exit_code == 1 and json.loads(none.stdout)["parallel"]["search"]["fits"] is False
    both = runner.invoke(app, ["recommend", "meta-llama/Llama-3.1-8B", "-g", H100, "--smallest-layout", "--tp", "2"])
    assert both.exit_code == 2 and both.output.startswith("error:") and "Traceback" not in both.output


def test_the_search_reads_the_model_once_with_hub_weights(monkeypatch):
    """The search resolves the model once for every layout it plans: hub_weights (--hub-weights) must be in that
    read, since recommend() reuses a ResolvedModel as given (it was dropped)."""
    import kvplan.planning.layouts as layouts

    seen = []
    real = layouts.recommend
    monkeypatch.setattr(layouts, "recommend", lambda model, **o: seen.append(model.hub_weights) or real(model, **o))
    smallest_layout(
        "meta-llama/Llama-3.1-8B", engine="vllm", gpu_profile=H100, max_gpus=1, offline=True, hub_weights=True
    )
    assert seen and set(seen) == {True}


def test_an_older_vllm_release_searches_tp_and_pp_alone():
    """kvplan reads vLLM's DP, EP and DCP rules from 0.33.0 only, so an older --vllm-version refuses every layout
    with them; the search tries plain TP x PP there instead of expert-parallel layouts alone at TP > 1 (which left
    DeepSeek-V4-Flash at vLLM 0.22.0 with no layout that fits while TP 2 does)."""
    options = {"gpu_profile": "h200", "offline": True, "kv_dtype": "fp8", "vllm_version": "0.22.0"}
    rec = smallest_layout("deepseek-ai/DeepSeek-V4-Flash", engine="vllm", max_gpus=8, **options)
    assert rec.fits and rec.parallel is not None
    assert (rec.parallel["tp"], rec.parallel["pp"], rec.parallel["dp"]) == (2, 1, 1)
    assert not rec.parallel["expert_parallel"] and rec.parallel["dcp"] == 1
    assert rec.parallel["search"]["layouts_refused"] == 1  # TP 1 x PP 2: vLLM's V4 groups across stages, not read
