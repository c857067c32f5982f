"""A KEDA ScaledObject for a fleet plan: Prometheus triggers on the engine's own metrics, thresholds from the plan.

The metric names are the engine's Gauges (kvplan.planning.fleet.ENGINE_METRICS cites the file and line of each:
vLLM's `vllm:num_requests_running`, `vllm:kv_cache_usage_perc`, `vllm:num_requests_waiting`; SGLang's
`sglang:num_running_reqs`, `sglang:token_usage`, `sglang:num_queue_reqs`), labelled `model_name` (the served
model name). Each trigger's query sums the metric over the
deployment's pods and uses KEDA's default `metricType: AverageValue`, so the HPA KEDA creates asks for
ceil(sum / threshold) replicas: the threshold is the per-replica figure of the plan
(kvplan.planning.fleet: the SLO-meeting concurrency, the KV usage at it, the queue a replica admits within the
TTFT slack). KEDA takes the largest replica count any trigger asks for. Pure Python (PyYAML).
"""

from __future__ import annotations

from typing import Any

import yaml

from kvplan.errors import UsageError
from kvplan.planning.fleet import FleetPlan

DEFAULT_PROMETHEUS = "http://prometheus-operated.monitoring.svc:9090"


def _name(model: str) -> str:
    text = "".join(ch if ch.isalnum() else "-" for ch in model.split("/")[-1].lower()).strip("-")
    return "-".join(part for part in text.split("-") if part)[:50] or "vllm"


def keda_scaled_object(
    plan: FleetPlan, *, deployment: str | None = None, prometheus: str = DEFAULT_PROMETHEUS
) -> tuple[str, dict[str, Any]]:
    """(the YAML text, the document) of a KEDA ScaledObject scaling `deployment` (default: the model's name) on
    the plan's thresholds. The plan must fit (thresholds exist only then)."""
    t = plan.thresholds
    if t is None:
        raise ValueError("a plan that does not fit has no autoscaling thresholds")
    metrics = t["metrics"]
    if metrics is None:
        raise UsageError(
            f"no metric names for {plan.engine}: kvplan writes KEDA triggers for vllm and sglang plans",
            hint="drop --emit, or plan with --engine vllm",
            field="engine",
        )
    target = deployment or _name(plan.model) + ("-decode" if plan.disaggregated else "")
    selector = f'{{model_name="{plan.model}"}}'

    def trigger(metric: str, threshold: float | int, name: str) -> dict[str, Any]:
        return {
            "type": "prometheus",
            "name": name,
            "metadata": {
                "serverAddress": prometheus,
                "query": f"sum({metric}{selector})",
                "threshold": f"{threshold:g}" if isinstance(threshold, float) else str(threshold),
            },
        }

    document = {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledObject",
        "metadata": {"name": f"{target}-kvplan"},
        "spec": {
            "scaleTargetRef": {"name": target},
            "minReplicaCount": t["min_replicas"],
            "maxReplicaCount": t["max_replicas"],
            "triggers": [
                trigger(metrics["running"], t["running_requests_per_replica"], "running"),
                trigger(metrics["kv_cache_usage"], t["kv_cache_usage_per_replica"], "kv-cache-usage"),
                trigger(metrics["waiting"], t["waiting_requests_per_replica"], "waiting"),
            ],
        },
    }
    header = (
        f"# KEDA ScaledObject written by kvplan fleet for {plan.model} on {plan.gpu_profile} (tp {plan.tp}), "
        f"{plan.rate:g} requests/s,\n# TTFT SLO {plan.ttft_slo_ms:g} ms, TPOT SLO {plan.tpot_slo_ms:g} ms: "
        f"{t['role']} replicas. Thresholds are per replica (KEDA AverageValue: replicas = ceil(sum / threshold)).\n"
        f"# Metric names: {t['metrics_source']}.\n# Set serverAddress to your Prometheus and the selector to your "
        "served model name.\n"
    )
    return header + yaml.safe_dump(document, sort_keys=False, default_flow_style=False), document
