"""The throughput envelope held against 3,596 measured TTFT/TPOT rows (tests/fixtures/measurements, README there).

The invariant: on every row kvplan can map (model in the catalog, GPU with a profile, layout expressible), the
measured decode tokens/s `batch_size x 1000 / silicon_tpot_ms` (per attention-DP rank) is at most kvplan's upper
bound. Rows left out are counted by reason, never dropped silently. Two rows are above the bound; each is a
finding about the row, pinned below with the reading under which the bound holds.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from dataclasses import replace

import pytest
from typer.testing import CliRunner

from kvplan.cli import app
from kvplan.planning import envelope as E

from conftest import ROOT

sys.path.insert(0, str(ROOT / "benchmarks"))
import throughput_envelope as T

COVERAGE_FLOOR = 2400  # usable rows checked (2,516 today)

# Rows whose recorded batch is not the batch that decoded, each with the reading under which the bound holds.
ABOVE_THE_BOUND = {
    # vLLM 0.11.2, aggregated, 512 in flight, 8,192-token prompts: TTFT 24.3 s against 1,023 x 5.46 ms = 5.6 s of
    # decode per request, so by Little's law only 512 x 5.6 / (24.3 + 5.6) ~ 96 requests decode at a time, not 512
    "2026_04_06_gpt_oss_120b_h100_sxm_vllm_fp4_agg_8192x1024_c512_tp4_ep1_1130": "little",
    # a gap-analysis row without silicon_concurrency: decode_batch_size 224 with 2 decode workers; as the whole
    # deployment's batch (112 per worker) the bound holds, as each worker's (the reading of the rows that do
    # record their concurrency) it does not
    "qwen3_32b_qwen3_32b_h100_sxm_vllm_disagg_4000x1000_c_tp_epnone_2": "per_worker",
}


@pytest.fixture(scope="module")
def rows():
    return T.read_rows()


@pytest.fixture(scope="module")
def mapped(rows):
    return T.usable(rows)


def test_the_fixture_is_the_shared_file_unchanged(rows):
    assert len(rows) == 3596
    assert rows[0]["id"] == "kimik2_5_gb200_trtllm_fp4_disagg_1024x1024_c4_cfg759"
    assert {r["system"] for r in rows} == {"h100_sxm", "b200_sxm", "gb200"}


def test_every_row_is_used_or_counted_with_its_reason(rows, mapped):
    points, reasons, unmapped = mapped
    assert len(points) + sum(reasons.values()) == len(rows)
    assert set(unmapped) == {"zhipuai/GLM-5", "nvidia/DeepSeek-V3.1-NVFP4"}  # no exact name, no documented alias
    assert reasons["system gb200: no kvplan GPU profile"] == 604  # GB200 rows of mapped models
    assert {p.gpu for p in points} == {"h100-sxm-80gb", "b200"}
    # the CSV's names reach the catalog by exact name, a documented alias or a quantized build's suffix only
    assert T.catalog_name("meta-llama/Llama-3.1-8B-Instruct") == ("meta-llama/Llama-3.1-8B", "alias")
    assert T.catalog_name("Qwen/Qwen3-235B-A22B-FP8") == ("Qwen/Qwen3-235B-A22B", "quantized build (-FP8)")
    assert T.catalog_name("nvidia/Qwen3-32B-NVFP4")[0] == "Qwen/Qwen3-32B"
    assert T.catalog_name("zhipuai/GLM-5")[0] is None


def test_decode_bound_holds_on_every_usable_row(mapped):
    points, _, _ = mapped
    above = {}
    for p in points:
        ev = T.base(p)
        assert ev["tpot_ms_lower_bound"] > 0
        if p.measured_tokens_per_s > ev["rank_tokens_per_s_upper_bound"]:
            above[p.row_id] = (p.measured_tokens_per_s, ev["rank_tokens_per_s_upper_bound"])
    print(f"envelope invariant: {len(points)} rows checked, {len(above)} above the bound: {sorted(above)}")
    assert len(points) >= COVERAGE_FLOOR
    assert set(above) == set(ABOVE_THE_BOUND), above


@pytest.mark.parametrize("row_id", sorted(ABOVE_THE_BOUND))
def test_each_row_above_the_bound_is_explained(mapped, row_id):
    (p,) = [p for p in mapped[0] if p.row_id == row_id]
    if ABOVE_THE_BOUND[row_id] == "little":
        decode_s = (p.osl - 1) * p.tpot_ms
        running = int(p.batch * decode_s / (p.ttft_ms + decode_s))  # Little's law: requests decoding at once
        assert running < p.batch / 4
        q = replace(p, batch=running)
    else:
        q = replace(p, batch=p.batch // 2)  # 2 decode workers sharing the recorded batch
    assert q.measured_tokens_per_s <= T.evaluate(q)["rank_tokens_per_s_upper_bound"]


def test_the_bound_reads_k_experts_not_min_e_bk(mapped):
    """A step of many tokens may still route them all to the same k experts: k/E of the expert weights is the
    least a step reads; min(E, tokens x k)/E is the most."""
    shape, weights = T.model("deepseek-ai/DeepSeek-R1")
    layout = E.Layout(tp=8)
    kw = {"context": 1024, "gemm": "fp8", "moe": "fp8", "kv_bytes": 1}
    least = E.decode_step(shape, weights, layout, batch=64, expected=False, **kw)
    typical = E.decode_step(shape, weights, layout, batch=64, expected=True, **kw)
    assert weights.experts == 256 and weights.experts_per_token == 8
    routed = weights.expert * 1  # fp8: a byte per value
    assert least.weight_bytes < routed * 8 / 256 + weights.attention + weights.dense + 2 * weights.small + 1
    assert typical.weight_bytes > 0.8 * routed  # 64 tokens x 8 experts touch ~87% of 256 under uniform routing


def test_attention_dp_replicates_attention_weights_and_shares_experts():
    shape, weights = T.model("deepseek-ai/DeepSeek-V3")
    kw = {"context": 1024, "gemm": "fp8", "moe": "fp8", "kv_bytes": 1, "expected": False}
    one = E.decode_step(shape, weights, E.Layout(tp=8), batch=8, **kw)
    dp = E.decode_step(shape, weights, E.Layout(tp=1, attention_dp=8), batch=1, **kw)
    assert one.tokens == dp.tokens == 8
    assert dp.weight_bytes - one.weight_bytes == pytest.approx(7 * weights.attention)
    assert one.kv_bytes == pytest.approx(8 * dp.kv_bytes)  # MLA: the latent on each of 8 TP ranks


def test_fitted_efficiencies_are_data_with_provenance(mapped):
    data = E.load_efficiency()
    assert "aiconfigurator" in data["source"] and data["fitted"] and data["rows"] == len(mapped[0])
    held = data["held_out"]
    assert held["method"] == "leave one model out" and held["tpot_rows"] >= COVERAGE_FLOOR
    assert 0 < held["tpot_median_relative_error"] <= held["tpot_p90_relative_error"]
    assert held["tpot_median_relative_error"] < 0.30  # 0.238 when fitted
    assert 0 <= data["layer_step_seconds"] < 1e-3
    keys = {T.key_of(p) for p in mapped[0]}
    assert keys <= set(data["factors"]["decode"]) and keys <= set(data["factors"]["prefill"])
    assert all(0 < v <= 1 for v in data["factors"]["decode"].values())  # a roofline cannot be beaten


def test_held_out_estimate_is_fitted_on_other_models_only(mapped):
    points = [p for p in mapped[0] if p.gpu == "h100-sxm-80gb"]
    factors = T.fit([p for p in points if p.model != "meta-llama/Llama-3.1-70B"])
    mine = [p for p in points if p.model == "meta-llama/Llama-3.1-70B"]
    errors = [E.log_error(T.estimate(p, factors)[0], p.tpot_ms) for p in mine]
    assert len(errors) == 45 and sorted(errors)[len(errors) // 2] < 1.0


runner = CliRunner()


def test_command_prints_bound_and_estimate_as_json():
    args = ["throughput", "meta-llama/Llama-3.1-70B", "-g", "h100-sxm-80gb", "--tp", "4", "--batch", "64"]
    out = runner.invoke(app, [*args, "--isl", "1024", "--osl", "1k", "--weights", "fp8", "-e", "vllm", "--json"])
    assert out.exit_code == 0, out.output
    data = json.loads(out.stdout)
    for key in ("decode_tokens_per_s_upper_bound", "tpot_ms_lower_bound", "tpot_ms_estimate", "ttft_ms_estimate"):
        assert data[key] > 0, key
    assert data["efficiency_key"] == "h100-sxm-80gb|vllm|fp8"
    assert data["tpot_ms_estimate"] >= data["tpot_ms_lower_bound"]
    assert data["decode_tokens_per_s_upper_bound"] == pytest.approx(64 * 1000 / data["tpot_ms_lower_bound"], 1e-3)


def test_disaggregated_decode_worker_has_no_prefill_share():
    args = ["throughput", "meta-llama/Llama-3.1-70B", "-g", "h100", "--tp", "4", "--batch", "64", "--isl", "8k"]
    agg = json.loads(runner.invoke(app, [*args, "--weights", "fp8", "-e", "vllm", "--json"]).stdout)
    dis = json.loads(runner.invoke(app, [*args, "--weights", "fp8", "-e", "vllm", "--disaggregated", "--json"]).stdout)
    assert agg["aggregated"] and not dis["aggregated"]
    assert dis["tpot_ms_lower_bound"] == agg["tpot_ms_lower_bound"]  # the bound is the same
    assert dis["tpot_ms_estimate"] < agg["tpot_ms_estimate"]


def test_command_table_and_no_estimate_without_a_factor():
    out = runner.invoke(app, ["throughput", "Qwen/Qwen3-8B", "-g", "a100-sxm-80gb", "--batch", "8"])
    assert out.exit_code == 0, out.output
    assert "decode tokens/s" in out.stdout and "no efficiency fitted for a100-sxm-80gb" in " ".join(out.stdout.split())


@pytest.mark.parametrize(
    "extra",
    [["--batch", "0"], ["--tp", "x"], ["--weights", "fp3"], ["-e", "nope"], ["--isl", "-1"], ["-g", "24gb"]],
)
def test_command_bad_input_is_one_line_and_exit_2(extra):
    args = ["throughput", "meta-llama/Llama-3.1-8B", "-g", "h100", *extra]
    out = runner.invoke(app, args)
    assert out.exit_code == 2, out.output
    assert out.stderr.count("error:") == 1


def test_bound_grows_with_batch_and_shrinks_with_context():
    shape, weights = T.model("meta-llama/Llama-3.1-8B")
    from kvplan.sources.hardware import load_profile

    h100 = load_profile("h100-sxm-80gb")
    point = {"isl": 1024, "osl": 128, "gemm": "bf16"}
    rates = [E.envelope(shape, weights, h100, E.Layout(), batch=b, **point) for b in (1, 8, 64)]
    assert Counter(r["decode_tokens_per_s_upper_bound"] > 0 for r in rates) == Counter({True: 3})
    assert [r["decode_tokens_per_s_upper_bound"] for r in rates] == sorted(
        r["decode_tokens_per_s_upper_bound"] for r in rates
    )
    longer = E.envelope(shape, weights, h100, E.Layout(), batch=8, **{**point, "isl": 32768})
    assert longer["tpot_ms_lower_bound"] > rates[1]["tpot_ms_lower_bound"]


def test_benchmark_script_reports_coverage_and_held_out_error():
    import re
    import subprocess

    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "throughput_envelope.py")],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=600,
    )
    out = proc.stdout
    assert proc.returncode == 0, proc.stderr[-2000:]
    checked = re.search(r"^invariant: (\d+) rows checked, (\d+) above the decode bound", out, re.M)
    assert checked and int(checked.group(1)) >= COVERAGE_FLOOR and int(checked.group(2)) == 2, out[-2000:]
    held = re.search(r"^held-out TPOT \(leave one model out\): \d+ rows, median \|error\| ([\d.]+)%", out, re.M)
    assert held and float(held.group(1)) < 30, out[-2000:]
