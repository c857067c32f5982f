"""A KEDA ScaledObject for a fleet plan: Prometheus triggers on the engine's own metrics, thresholds from the plan.

The metric names are the engine's Gauges (each engine's EngineEntry.metrics cites the file and line of each:
vLLM's `vllm:num_requests_running`, `vllm:kv_cache_usage_perc`, `vllm:num_requests_waiting`; SGLang's
`sglang:num_running_reqs`, `sglang:token_usage`, `sglang:num_queue_reqs`), labelled `model_name` (the served
model name). Each trigger's query sums the metric over the
deployment's pods and uses KEDA's default `metricType: AverageValue`, so the HPA KEDA creates asks for
ceil(sum / threshold) replicas: the threshold is the per-replica figure of the plan
(kvplan.planning.fleet: the SLO-meeting concurrency, the KV usage at it, the queue a replica admits within the
TTFT slack). KEDA takes the largest replica count any trigger asks for. Pure Python (PyYAML).
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any

import yaml

from kvplan.errors import UsageError
from kvplan.planning.fleet import FleetPlan

DEFAULT_PROMETHEUS = "http://prometheus-operated.monitoring.svc:9090"

# A Kubernetes object name (RFC 1123 subdomain, what a Deployment's metadata.name must be), less the "-kvplan"
# the ScaledObject's name adds
_K8S_NAME = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_K8S_NAME_MAX = 253 - len("-kvplan")
_SHORT_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _unprintable(ch: str) -> bool:
    """A control, format or unassigned character, or a line or paragraph separator (YAML reads U+2028 and
    U+2029 as line breaks)."""
    return unicodedata.category(ch)[0] == "C" or unicodedata.category(ch) in ("Zl", "Zp")


def promql_string(value: str) -> str:
    """`value` as a double-quoted PromQL string literal: `\\` and `"` escaped, control characters as Go escapes
    (PromQL reads string literals with Go's escapes: prometheus/promql/parser/lex.go lexString, strconv.Unquote).
    A lone surrogate (an argument that was not UTF-8) has no escape PromQL reads: refused."""
    out = []
    for ch in value:
        if ch in _SHORT_ESCAPES:
            out.append(_SHORT_ESCAPES[ch])
        elif 0xD800 <= ord(ch) <= 0xDFFF:
            raise UsageError(
                f"the model name {value.encode('utf-8', 'backslashreplace').decode()!r} is not UTF-8: it cannot be "
                "a Prometheus label value",
                hint="pass the served model name in UTF-8",
            )
        elif _unprintable(ch):
            out.append(f"\\u{ord(ch):04x}" if ord(ch) <= 0xFFFF else f"\\U{ord(ch):08x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def _comment(text: str) -> str:
    """`text` safe inside a YAML comment line: no line break or control character left raw."""
    return "".join(ascii(ch)[1:-1] if _unprintable(ch) else ch for ch in text)


def check_deployment(name: str | None) -> None:
    """Refuse a --deployment that is no Kubernetes object name (the ScaledObject's scaleTargetRef and name)."""
    if name is None:
        return
    if len(name) > _K8S_NAME_MAX or not _K8S_NAME.fullmatch(name):
        shown = ascii(name) if len(name) <= 60 else ascii(name[:57]) + "..."
        raise UsageError(
            f"--deployment must be a Kubernetes name (lowercase letters, digits, '-' and '.', at most "
            f"{_K8S_NAME_MAX} characters), got {shown}",
            hint="pass the Deployment's metadata.name, e.g. --deployment llama-3-1-8b",
        )


def _name(model: str) -> str:
    text = "".join(ch if ch.isalnum() else "-" for ch in model.split("/")[-1].lower()).strip("-")
    return "-".join(part for part in text.split("-") if part)[:50] or "model"


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
    check_deployment(deployment)
    target = deployment or _name(plan.model) + ("-decode" if plan.disaggregated else "")
    selector = "{model_name=" + promql_string(plan.model) + "}"

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
        f"# KEDA ScaledObject written by kvplan fleet for {_comment(plan.model)} on {plan.gpu_profile} (tp {plan.tp}), "
        f"{plan.rate:g} requests/s,\n# TTFT SLO {plan.ttft_slo_ms:g} ms, TPOT SLO {plan.tpot_slo_ms:g} ms: "
        f"{t['role']} replicas. Thresholds are per replica (KEDA AverageValue: replicas = ceil(sum / threshold)).\n"
        f"# Metric names: {t['metrics_source']}.\n# Set serverAddress to your Prometheus and the selector to your "
        "served model name.\n"
    )
    return header + yaml.safe_dump(document, sort_keys=False, default_flow_style=False), document
