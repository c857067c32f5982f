"""How close kvplan's modelled vLLM KV budget is to the "Available KV cache memory" vLLM logged.

For every vLLM case in tests/fixtures/calibration/engine_cases.yaml with gpu_memory_utilization, the logged
total and available memory, and a fixture config for the model: run `recommend` with the case's GPU memory
(a one-off profile with the logged total), utilization, TP/PP and max_model_len, pinned to the case's vLLM
release (`engine_version`; cases that record none are taken as 0.19.0), and print kvplan's available KV memory
next to the logged one, with a summary per release (kvplan.engines.vllm.VLLM_VERSIONS decides the terms: no
CUDA-graph estimate before 0.20, vLLM <= 0.11's heavier dummy sampler run). The one-off profile is the shipped profile of the case's GPU where one
matches (its compute capability decides engine rules such as vLLM's MXFP4 padding), with the logged total. The
weights are kvplan's count for the config's dtype and `quantization_config` (quantized checkpoints are marked),
plus a multimodal checkpoint's encoders and projectors (kvplan.weights.encoders).

    .venv/bin/python benchmarks/recommend_budget_error.py
"""

from __future__ import annotations

import functools
import statistics
import sys
import tempfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "tests" / "engines")]  # conftest, test_calibration

from test_calibration import _config_for

from kvplan.errors import KvplanError
from kvplan.planning.recommend import recommend

GIB = 2**30
DEFAULT_RELEASE = "0.19.0"  # cases that record no version: the newest release in engine_cases.yaml
PROFILE = """id: {id}
name: "{name}"
vendor: generic
generic: true
aliases: []
memory_bytes: {memory}
memory_bandwidth_bytes_per_s: null
dense_tflops: null
kv_cache_dtypes: null
interconnect: null
sources: {{memory_bytes: "the case's logged total_gpu_memory"}}
"""


def _shipped(gpu_model: str | None, case_id: str, memory: int) -> str | None:
    """The shipped profile the case's GPU names (by name, else by one of its words: "NVIDIA A100 80GB" -> a100),
    with the case's logged total memory: its compute capability decides engine rules (vLLM's MXFP4 padding)."""
    import re

    from kvplan.sources.hardware import load_profile

    for name in [gpu_model or ""] + (gpu_model or "").lower().replace("-", " ").split():
        try:
            profile = load_profile(name)
        except KvplanError:
            continue
        if not profile.compute_capability:
            return None
        text = (ROOT / "profiles" / f"{profile.id}.yaml").read_text()
        text = re.sub(r"(?m)^id: .*$", f"id: {case_id}", text)
        text = re.sub(r"(?m)^aliases: .*$", "aliases: []", text)
        return re.sub(r"(?m)^memory_bytes: .*$", f"memory_bytes: {memory}", text)
    return None


def main() -> None:
    cases = yaml.safe_load((ROOT / "tests/fixtures/calibration/engine_cases.yaml").read_text())
    rows = []
    overhead_rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for case in cases:
            r = case["reported"]
            if case["engine"] != "vllm" or not (
                case.get("gpu_memory_utilization") and r.get("available_kv_cache_gib") and r.get("total_gpu_memory_gib")
            ):
                continue
            config = _config_for(case)
            if config is None:
                print(f"skip {case['id']}: no fixture config for {case['model_id']}")
                continue
            path = Path(tmp) / f"{case['id']}.yaml"
            memory = int(r["total_gpu_memory_gib"] * GIB)
            path.write_text(
                _shipped(case["gpu_model"], case["id"], memory)
                or PROFILE.format(id=case["id"], name=case["gpu_model"] or "gpu", memory=memory)
            )
            tp, pp = case["tensor_parallel_size"] or 1, case["pipeline_parallel_size"] or 1
            plan = functools.partial(  # the case as logged: its GPU memory, utilization, TP/PP, length, release
                recommend,
                config,
                gpu_profile=str(path),
                gpus=tp * pp,
                tp=tp,
                pp=pp,
                gpu_memory_utilization=case["gpu_memory_utilization"],
                max_model_len=case["max_model_len"],
                dtype=case.get("dtype") or "auto",
                vllm_version=case.get("engine_version") or DEFAULT_RELEASE,
            )
            try:
                rec = plan()
            except KvplanError as exc:
                print(f"skip {case['id']}: {exc.message}")
                continue
            quantized = bool(case.get("quantization")) or "fp8" in (case["model_id"] or "").lower()
            if r.get("weights_gib"):  # the same plan with the logged weights: the overhead model alone
                given = plan(weights_bytes=int(r["weights_gib"] * GIB) * tp * pp)
                overhead_rows.append((case["id"], given.available_kv_memory_bytes / GIB, r["available_kv_cache_gib"]))
            # what vLLM loads: the language model and, for a multimodal checkpoint, its encoders and projectors
            loaded = rec.weights_bytes + (rec.multimodal_weights_bytes or 0)
            weights_ok = bool(r.get("weights_gib")) and abs(loaded / GIB / r["weights_gib"] - 1) < 0.05
            rows.append(
                (
                    case["id"],
                    rec.available_kv_memory_bytes / GIB,
                    r["available_kv_cache_gib"],
                    quantized,
                    loaded / GIB,
                    r.get("weights_gib"),
                    weights_ok,
                    case.get("engine_version") or DEFAULT_RELEASE,
                )
            )
    print(f"{'case':<66} {'vLLM':>8} {'kvplan':>8} {'logged':>8} {'error':>7}   weights kvplan/logged (GiB per GPU)")
    for name, ours, logged, quantized, w_ours, w_logged, _, release in rows:
        mark = "  quantized checkpoint" if quantized else ""
        w_text = f"{w_ours:7.2f} / {w_logged:.2f}" if w_logged else f"{w_ours:7.2f} / -"
        print(f"{name:<66} {release:>8} {ours:8.2f} {logged:8.2f} {ours - logged:+7.2f}   {w_text}{mark}")
    # errors in the weights (quantized checkpoints, models whose analytic count misses experts) dominate where
    # present; the last line isolates the overhead model (activation peak, non-torch memory)
    for label, subset in (
        ("all", rows),
        ("unquantized", [x for x in rows if not x[3]]),
        ("weights within 5% of the log", [x for x in rows if x[6]]),
        *(
            (f"unquantized, vLLM {v}", [x for x in rows if not x[3] and x[7] == v])
            for v in sorted({x[7] for x in rows})
        ),
    ):
        errors = [abs(ours - logged) for _, ours, logged, *_ in subset]
        relative = [abs(ours - logged) / logged for _, ours, logged, *_ in subset]
        if errors:
            worst = max(subset, key=lambda x: abs(x[1] - x[2]))
            print(
                f"{label}: {len(errors)} cases, median |error| {statistics.median(errors):.2f} GiB "
                f"({100 * statistics.median(relative):.1f} %), worst {max(errors):.2f} GiB ({worst[0]})"
            )
    errors = [abs(ours - logged) for _, ours, logged in overhead_rows]
    if errors:
        worst = max(overhead_rows, key=lambda x: abs(x[1] - x[2]))
        relative = [abs(ours - logged) / logged for _, ours, logged in overhead_rows]
        print(
            f"overhead model alone (logged weights given, quantized checkpoints included): {len(errors)} cases, "
            f"median |error| {statistics.median(errors):.2f} GiB ({100 * statistics.median(relative):.1f} %), "
            f"worst {max(errors):.2f} GiB ({worst[0]})"
        )


if __name__ == "__main__":
    main()
