"""`kvplan fleet`: replicas for a workload and SLOs, from recommend()'s KV capacity and the envelope's estimates.

Each figure is checked against the one place it comes from (recommend, throughput), the arithmetic (Little's
law, ceil) against the plan's own figures, and the outputs (exit codes, KEDA YAML, price-file errors) as a user
meets them. vLLM's metric names are checked against tests/fixtures/engine_metrics/vllm.json (extracted from
vllm-0.33.0/vllm/v1/metrics/loggers.py; provenance in the file).
"""

from __future__ import annotations

import functools
import json
import math

import pytest
import yaml
from typer.testing import CliRunner

from kvplan.cli import app
from kvplan.planning.envelope import throughput
from kvplan.planning.fleet import fleet, largest_batch, little_concurrency, replicas_for, waiting_threshold
from kvplan.planning.recommend import recommend
from kvplan.planning.workload import NAMED, load_workload, named, parse_jsonl
from kvplan.sources.hardware import builtin_profiles_dir
from kvplan.sources.prices import load_prices

from conftest import FIXTURES

runner = CliRunner()
MODEL = "meta-llama/Llama-3.1-8B"
GPU = "h100-sxm-80gb"
BASE = ["fleet", MODEL, "-g", GPU, "--offline"]


def plan(**kw):
    args = dict(gpu_profile=GPU, workload=named("chat"), rate=10, ttft_slo_ms=2000, tpot_slo_ms=30, offline=True)
    args.update(kw)
    return fleet(MODEL, **args)


# ----------------------------------------------------------------------------------------------- arithmetic


def test_littles_law_and_replica_arithmetic():
    assert little_concurrency(10, 3.5) == 35
    assert replicas_for(35, 10) == 4 and replicas_for(30, 10) == 3 and replicas_for(0.2, 10) == 1
    assert largest_batch(lambda b: 5 + b, 100, 30) == 25  # 5 + 25 <= 30 < 5 + 26
    assert largest_batch(lambda b: 5 + b, 10, 30) == 10  # capped by the limit
    assert largest_batch(lambda b: 40 + b, 100, 30) == 0  # not even one
    # slack 1.5 s, a replica admits 100 / 20 s = 5 requests/s -> 7 may wait; no slack -> 1
    assert waiting_threshold(2000, 500, 100, 20) == 7
    assert waiting_threshold(500, 500, 100, 20) == 1


def test_plan_follows_littles_law_from_its_own_figures():
    p = plan()
    (pool,) = p.pools
    osl = p.workload.mean_output
    latency = pool.ttft_ms / 1e3 + osl * pool.tpot_ms / 1e3
    assert p.request_latency_s == pytest.approx(latency, rel=1e-3)
    assert p.concurrency_needed == pytest.approx(10 * latency, rel=1e-3)
    assert pool.workers == math.ceil(p.concurrency_needed / pool.concurrency_per_worker)
    assert pool.tpot_ms <= 30 and pool.ttft_ms <= 2000


def test_figures_come_from_recommend_and_the_envelope():
    """KV capacity is recommend()'s at max_model_len = the mean request; TPOT is `kvplan throughput`'s at the
    chosen batch; one more sequence would break the TPOT SLO (the batch is the largest that meets it)."""
    p = plan()
    (pool,) = p.pools
    rec = recommend(MODEL, gpu_profile=GPU, max_model_len=2048, offline=True)
    assert pool.kv_capacity_requests == pytest.approx(rec.max_concurrency)
    at = throughput(MODEL, gpu_profile=GPU, batch=pool.concurrency_per_worker, isl=1024, osl=1024, engine="vllm")
    assert pool.tpot_ms == pytest.approx(at["tpot_ms_estimate"])
    assert pool.limited_by == "tpot_slo"
    above = throughput(MODEL, gpu_profile=GPU, batch=pool.concurrency_per_worker + 1, isl=1024, osl=1024, engine="vllm")
    assert above["tpot_ms_estimate"] > 30
    # the KEDA KV target is the usage at that concurrency
    assert p.thresholds["kv_cache_usage_per_replica"] == pytest.approx(
        pool.concurrency_per_worker / rec.max_concurrency, abs=1e-4
    )


def test_replicas_are_monotone_in_rate():
    counts = [plan(rate=r).replicas for r in (0.5, 2, 8, 32, 64)]
    assert counts == sorted(counts) and counts[-1] > counts[0], counts


def test_a_looser_tpot_slo_never_needs_more_replicas():
    counts = [plan(rate=20, tpot_slo_ms=slo).replicas for slo in (15, 30, 60)]
    assert counts == sorted(counts, reverse=True), counts


def test_a_kv_bound_replica_says_so():
    p = plan(tpot_slo_ms=1000, workload=named("reasoning"))
    (pool,) = p.pools
    assert pool.limited_by == "kv_cache" and pool.concurrency_per_worker == math.floor(pool.kv_capacity_requests)


# ------------------------------------------------------------------------------------------ disaggregated


def test_disaggregated_pools_and_ratio():
    p = plan(disaggregated=True, rate=20)
    prefill, decode = p.pools
    assert (prefill.role, decode.role) == ("prefill", "decode")
    assert prefill.kv_tokens_per_request == 1024 and decode.kv_tokens_per_request == 2048  # input; input + output
    # one prefill worker prefills 1,024 tokens per TTFT estimate: workers = ceil(rate x 1,024 / that)
    assert prefill.workers == math.ceil(20 * prefill.ttft_ms / 1e3)
    # decode: Little's law over the decode time only
    assert decode.workers == math.ceil(20 * 1024 * decode.tpot_ms / 1e3 / decode.concurrency_per_worker)
    document = p.to_dict()
    assert document["prefill_to_decode_ratio"] == pytest.approx(prefill.workers / decode.workers, abs=1e-4)
    assert p.gpus == prefill.gpus + decode.gpus
    # the bound: prefill at the TTFT lower bound; never more workers than the estimate's
    bound = throughput(MODEL, gpu_profile=GPU, isl=1024, osl=1024, engine="vllm", aggregated=False)
    assert p.prefill_workers_lower_bound == math.ceil(20 * bound["ttft_ms_lower_bound"] / 1e3)
    assert 1 <= p.prefill_workers_lower_bound <= prefill.workers
    assert document["prefill_to_decode_ratio_lower_bound"] == pytest.approx(
        p.prefill_workers_lower_bound / decode.workers, abs=1e-4
    )
    # decode workers do no prefill: their TPOT at the same batch is below the aggregated replica's
    aggregated = plan(rate=20, tpot_slo_ms=1000, workload=named("chat"))
    alone = plan(rate=20, tpot_slo_ms=1000, workload=named("chat"), disaggregated=True)
    assert alone.pools[1].concurrency_per_worker == aggregated.pools[0].concurrency_per_worker
    assert alone.pools[1].tpot_ms < aggregated.pools[0].tpot_ms


def test_prefill_pool_grows_with_a_longer_prompt():
    short = plan(disaggregated=True, rate=20, workload=named("chat"), tpot_slo_ms=60)
    long = plan(disaggregated=True, rate=20, workload=named("rag"), tpot_slo_ms=60)
    assert long.pools[0].workers > short.pools[0].workers


# ------------------------------------------------------------------------------------------------- the CLI


def test_slo_impossible_exits_1_with_valid_json_and_a_reason():
    result = runner.invoke(app, [*BASE, "-w", "chat", "--rate", "5", "--ttft-slo", "2000", "--tpot-slo", "1", "--json"])
    assert result.exit_code == 1, result.output
    document = json.loads(result.stdout)
    assert document["fits"] is False and "TPOT" in document["reason"] and document["autoscaling"] is None
    ttft = runner.invoke(app, [*BASE, "-w", "rag", "--rate", "5", "--ttft-slo", "1", "--tpot-slo", "50"])
    assert ttft.exit_code == 1 and "does not fit: the TTFT estimate" in ttft.stdout


def test_more_than_max_replicas_exits_1():
    args = [*BASE, "-w", "chat", "--rate", "200", "--ttft-slo", "2000", "--tpot-slo", "30", "--max-replicas", "2"]
    result = runner.invoke(app, [*args, "--json"])
    assert result.exit_code == 1
    assert "above max_replicas 2" in json.loads(result.stdout)["reason"]
    assert runner.invoke(app, [*args[:-2], "--max-replicas", "1000"]).exit_code == 0


def test_a_huge_rate_is_a_plan_in_closed_form_and_one_beyond_any_deployment_is_refused():
    args = [*BASE, "-w", "chat", "--ttft-slo", "2000", "--tpot-slo", "30", "--disaggregated"]
    result = runner.invoke(app, [*args, "--rate", "1e9", "--json"])
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["replicas"] > 10**6 and document["pools"][0]["concurrency_per_worker"] >= 1
    result = runner.invoke(app, [*args, "--rate", "1e30"])  # a typo: 10**27 replicas are no answer
    assert result.exit_code == 2 and result.stderr.startswith("error: --rate must be at most 1e+09 requests/s")


def test_a_gpu_without_a_fitted_efficiency_is_one_error_line():
    result = runner.invoke(
        app,
        ["fleet", MODEL, "-g", "a100-sxm-80gb", "-w", "chat", "--rate", "1", "--ttft-slo", "1000", "--tpot-slo", "50"],
    )
    assert result.exit_code == 2
    assert result.stderr.startswith("error: no TPOT/TTFT estimate") and "hint:" in result.stderr
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    "args, words",
    [
        (["--rate", "0"], "--rate must be a positive number"),
        (["--rate", "fast"], "--rate must be a positive number"),
        (["--rate", "nan"], "--rate must be a positive number"),
        (["--ttft-slo", "1e400"], "--ttft-slo must be a positive number"),
        (["--tpot-slo", "-3"], "--tpot-slo must be a positive number"),
        (["-w", "chatty"], "unknown workload 'chatty'"),
    ],
)
def test_bad_options_are_one_error_line(args, words):
    base = {"-w": "chat", "--rate": "1", "--ttft-slo": "1000", "--tpot-slo": "30"}
    base.update(dict(zip(args[::2], args[1::2], strict=True)))
    result = runner.invoke(app, [*BASE, *[x for kv in base.items() for x in kv]])
    assert result.exit_code == 2 and words in result.stderr and "Traceback" not in result.output


def test_keda_scaled_object_parses_and_uses_vllm_metric_names(tmp_path):
    out = tmp_path / "keda.yaml"
    args = [*BASE, "-w", "chat", "--rate", "10", "--ttft-slo", "2000", "--tpot-slo", "30", "--max-replicas", "8"]
    result = runner.invoke(app, [*args, "--json", "--emit", "keda", "--emit-file", str(out)])
    assert result.exit_code == 0, result.output
    thresholds = json.loads(result.stdout)["autoscaling"]
    document = yaml.safe_load(out.read_text())
    assert document["apiVersion"] == "keda.sh/v1alpha1" and document["kind"] == "ScaledObject"
    spec = document["spec"]
    assert (spec["minReplicaCount"], spec["maxReplicaCount"]) == (1, 8)
    known = json.loads((FIXTURES / "engine_metrics" / "vllm.json").read_text())["metrics"]
    wanted = {
        "vllm:num_requests_running": thresholds["running_requests_per_replica"],
        "vllm:kv_cache_usage_perc": thresholds["kv_cache_usage_per_replica"],
        "vllm:num_requests_waiting": thresholds["waiting_requests_per_replica"],
    }
    assert thresholds["metrics"] == {
        "running": "vllm:num_requests_running",
        "kv_cache_usage": "vllm:kv_cache_usage_perc",
        "waiting": "vllm:num_requests_waiting",
    }
    seen = {}
    for trigger in spec["triggers"]:
        assert trigger["type"] == "prometheus"
        query = trigger["metadata"]["query"]
        metric = query.removeprefix("sum(").split("{", 1)[0]
        assert metric in known, metric
        assert f'model_name="{MODEL}"' in query
        seen[metric] = float(trigger["metadata"]["threshold"])
    assert seen == pytest.approx(wanted)


@functools.cache
def _keda_plan():
    return plan(rate=1)


@pytest.mark.parametrize(
    "name", ['a"b', "a\\b", "org/model\n# injected: true", 'x"}) or vector(1) or sum({a="', "t\tab\r\x00\x1b\u2028\x85"]
)
def test_keda_selector_and_yaml_hold_any_model_name_exactly(name):
    """A served model name with quotes, backslashes, line breaks or control characters is escaped as a PromQL
    string (Go escapes) inside YAML written by safe_dump: the file parses, and the selector's label value reads
    back as the name, whole."""
    import dataclasses

    from kvplan.checking.autoscale import keda_scaled_object

    text, _ = keda_scaled_object(dataclasses.replace(_keda_plan(), model=name))
    document = yaml.safe_load(text)
    assert list(document) == ["apiVersion", "kind", "metadata", "spec"]  # nothing the name injected
    header = text.split("\napiVersion:", 1)[0].split("\n")
    assert all(line.startswith("#") for line in header), header
    for trigger in document["spec"]["triggers"]:
        query = trigger["metadata"]["query"]
        prefix, literal = query.split("{model_name=", 1)
        assert prefix.startswith("sum(") and literal.endswith("})")
        literal = literal[: -len("})")]
        assert json.loads(literal) == name  # the escapes written are the ones JSON and Go share
        assert not any(ch in literal for ch in "\n\r\x00\x1b\u2028\x85")


@pytest.mark.parametrize("deployment", ['my"app', "a\\b", "web\napp", "Upper", "x" * 300])
def test_keda_deployment_that_is_no_kubernetes_name_is_refused_before_planning(tmp_path, deployment):
    out = tmp_path / "keda.yaml"
    args = [*BASE, "-w", "chat", "--rate", "1", "--ttft-slo", "2000", "--tpot-slo", "30", "--emit", "keda"]
    result = runner.invoke(app, [*args, "--emit-file", str(out), "--deployment", deployment])
    assert result.exit_code == 2 and result.stdout == "", result.output
    assert result.stderr.startswith("error: --deployment must be a Kubernetes name") and "hint:" in result.stderr
    assert not out.exists()


def test_emit_is_skipped_for_a_plan_that_does_not_fit(tmp_path):
    out = tmp_path / "keda.yaml"
    args = [*BASE, "-w", "chat", "--rate", "1", "--ttft-slo", "2000", "--tpot-slo", "1", "--emit", "keda"]
    result = runner.invoke(app, [*args, "--emit-file", str(out)])
    assert result.exit_code == 1 and not out.exists()


# ------------------------------------------------------------------------------------------------ workloads


def test_jsonl_workload_is_summarised(tmp_path):
    path = tmp_path / "requests.jsonl"
    rows = [{"input_tokens": 100 * (i + 1), "output_tokens": 50} for i in range(100)]
    path.write_text("# a comment\n\n" + "\n".join(json.dumps(r) for r in rows) + "\n")
    w = load_workload(str(path))
    assert w.requests == 100 and w.mean_input == 5050 and w.mean_output == 50
    assert (w.p99_total, w.max_total) == (9950, 10050)
    p = plan(workload=w)
    assert p.pools[0].kv_tokens_per_request == 5100 and p.to_dict()["workload"]["requests"] == 100


@pytest.mark.parametrize(
    "text, words",
    [
        ('{"input_tokens": 1, "output_tokens": 2}\n{"input_tokens": 1}\n', "w.jsonl:2: output_tokens is missing"),
        ('{"input_tokens": 1, "output_tokens": 2}\n\nnot json\n', "w.jsonl:3: not JSON"),
        ('{"input_tokens": 0, "output_tokens": 2}\n', "w.jsonl:1: input_tokens must be a whole number >= 1"),
        ('{"input_tokens": 5, "output_tokens": 2, "isl": 3}\n', "w.jsonl:1: unknown key 'isl'"),
        ("[1, 2]\n", "w.jsonl:1: a request is a JSON object"),
        ("\n# nothing\n", "no requests"),
    ],
)
def test_jsonl_errors_name_the_line(text, words):
    from kvplan.errors import ConfigError

    with pytest.raises(ConfigError) as info:
        parse_jsonl(text, "w.jsonl")
    assert words in info.value.message


def test_jsonl_error_through_the_cli_is_one_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"input_tokens": 10, "output_tokens": 5}\n{"input_tokens": "ten", "output_tokens": 5}\n')
    result = runner.invoke(app, [*BASE, "-w", str(path), "--rate", "1", "--ttft-slo", "1000", "--tpot-slo", "30"])
    assert result.exit_code == 2 and f"{path}:2: input_tokens" in result.stderr
    assert len([line for line in result.stderr.splitlines() if line.startswith("error:")]) == 1


def test_named_workloads_are_points_of_the_measured_grid():
    """Each named shape is an ISL/OSL point measured on both H100 SXM and B200 (the fitted GPUs)."""
    import csv
    import gzip

    with gzip.open(FIXTURES / "measurements" / "serving_latency_measured.csv.gz", "rt") as stream:
        points = {(r["system"], int(r["isl"]), int(r["osl"])) for r in csv.DictReader(stream)}
    for isl, osl, _ in NAMED.values():
        assert {("h100_sxm", isl, osl), ("b200_sxm", isl, osl)} <= points


# --------------------------------------------------------------------------------------------------- prices


def test_shipped_prices_have_a_source_and_date_and_name_real_profiles():
    prices = load_prices()
    assert prices
    shipped = {p.name.removesuffix(".yaml") for p in builtin_profiles_dir().glob("*.yaml")}
    for gpu, price in prices.items():
        assert gpu in shipped, gpu
        assert price.source.startswith("https://") and price.date[:4].isdigit()


def test_plan_cost_is_gpus_times_price_over_tokens():
    p = plan(rate=10)
    price = load_prices()[GPU].usd_per_gpu_hour
    assert p.cost["usd_per_hour"] == pytest.approx(p.gpus * price)
    assert p.cost["usd_per_million_tokens"] == pytest.approx(p.gpus * price / (10 * 2048 * 3600) * 1e6, rel=1e-3)


def test_price_file_problems_are_all_reported_in_one_run(tmp_path):
    path = tmp_path / "prices.yaml"
    path.write_text(
        "prices:\n"
        "  - gpu_profile: h100-sxm-80gb\n"
        "    usd_per_gpu_hour: -1\n"
        "    source: https://example.com\n"
        '    date: "2026-05-07"\n'
        "  - gpu_profile: b200\n"
        "    usd_per_gpu_hour: 5\n"
        "    date: 2026-05-07\n"
        "  - gpu_profile: h200\n"
        "    usd_per_gpu_hour: 5\n"
        "    source: https://example.com\n"
        "    date: 2026-05-07\n"
        "    cost: 3\n"
    )
    args = [*BASE, "-w", "chat", "--rate", "1", "--ttft-slo", "1000", "--tpot-slo", "30", "--price-file", str(path)]
    result = runner.invoke(app, args)
    assert result.exit_code == 2 and "Traceback" not in result.output
    (line,) = [x for x in result.stderr.splitlines() if x.startswith("error:")]
    assert "4 problems" in line
    for words in (
        "line 2: prices[0]: usd_per_gpu_hour must be a positive number",
        "line 6: prices[1]: missing source",
        "line 9: prices[2]: unknown key 'cost'",
        "line 9: prices[2]: date must be YYYY-MM-DD",
    ):
        assert words in line, words


def test_a_price_file_replaces_the_table(tmp_path):
    path = tmp_path / "prices.yaml"
    path.write_text(
        'prices:\n  - {gpu_profile: h100-sxm-80gb, usd_per_gpu_hour: 2, source: "my contract", date: "2026-11-01"}\n'
    )
    p = plan(price_file=str(path))
    assert p.price["usd_per_gpu_hour"] == 2 and p.price["source"] == "my contract"
    other = tmp_path / "other.yaml"
    other.write_text('prices:\n  - {gpu_profile: b200, usd_per_gpu_hour: 2, source: "x", date: "2026-11-01"}\n')
    missing = plan(price_file=str(other))
    assert missing.cost is None and any("no price for h100-sxm-80gb" in n for n in missing.notes)


def test_engine_metric_names_are_the_engines_own():
    """Every engine's EngineEntry.metrics name is registered by that engine, on the line its source cites."""
    from kvplan.engines import registry

    with_metrics = {e.name: e.metrics for e in registry.entries() if e.metrics is not None}
    assert set(with_metrics) == {"vllm", "sglang"}
    for engine, names in with_metrics.items():
        known = json.loads((FIXTURES / "engine_metrics" / f"{engine}.json").read_text())["metrics"]
        for role in ("running", "kv_cache_usage", "waiting"):
            line = known[names[role]]["line"]
            assert f":{line} " in names["source"], (engine, role, line)


def test_sglang_plan_gets_sglang_metrics_and_keda(tmp_path):
    out = tmp_path / "keda.yaml"
    args = [*BASE, "-e", "sglang", "-w", "chat", "--rate", "5", "--ttft-slo", "2000", "--tpot-slo", "30"]
    result = runner.invoke(app, [*args, "--json", "--emit", "keda", "--emit-file", str(out)])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["autoscaling"]["metrics"]["kv_cache_usage"] == "sglang:token_usage"
    known = json.loads((FIXTURES / "engine_metrics" / "sglang.json").read_text())["metrics"]
    queries = [t["metadata"]["query"] for t in yaml.safe_load(out.read_text())["spec"]["triggers"]]
    assert all(q.removeprefix("sum(").split("{", 1)[0] in known for q in queries), queries


def test_a_replica_that_cannot_hold_max_model_len_does_not_fit_and_says_what_would():
    def reason(model, *extra):
        args = ["fleet", model, "-g", GPU, "--offline", "-w", "chat", "--rate", "1", "--ttft-slo", "5000"]
        result = runner.invoke(app, [*args, "--tpot-slo", "100", *extra, "--json"])
        assert result.exit_code == 1, result.output
        return json.loads(result.stdout)["reason"]

    # 70B in bf16 is more than one H100 holds at any length: recommend's smallest TP that fits is the answer
    least = recommend("meta-llama/Llama-3.1-70B", gpu_profile=GPU, offline=True).min_tp_to_fit
    assert least > 1 and reason("meta-llama/Llama-3.1-70B").endswith(f"--tp {least} fits")
    # with a quarter of the GPU the 128k default leaves no room for one request, the workload's 2,048 tokens do
    assert reason(MODEL, "--gpu-memory-utilization", "0.25").endswith("pass --max-model-len 2048")
