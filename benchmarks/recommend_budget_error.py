"""How close kvplan's modelled vLLM KV budget is to the "Available KV cache memory" vLLM logged (issue 13's proof).

Both calibration files (tests/fixtures/calibration/engine_cases.yaml and engine_cases_2026.yaml, copies of
shared/calibration with their READMEs): for every vLLM case with gpu_memory_utilization, the logged total and
available memory, and a config for the model, run `recommend` with the case's GPU memory (a one-off profile with
the logged total), utilization, TP/PP/DP, max_model_len, max_num_batched_tokens and speculative config where the
case states them, pinned to the case's vLLM release, and print kvplan's available KV memory next to the logged
one (error in GiB and %), with the budget terms the log prints (weights, peak activation, non-torch, CUDA graphs)
next to kvplan's. Every other vLLM case is listed with the reason it is skipped.

The release: the case's `engine_version` where it names one (a known version); otherwise, for engine_cases.yaml,
0.19.0 (the newest release in that file), and for the 2026 file the release tests/engines/test_calibration_2026.py
pins the case to (its reason there); those are marked `?` and left out of the known-version summary.
kvplan.engines.vllm.VLLM_VERSIONS decides the terms (no CUDA-graph estimate before 0.20, vLLM <= 0.11's heavier
dummy sampler run). The one-off profile is the shipped profile of the case's GPU where one matches (its compute
capability decides engine rules such as vLLM's MXFP4 padding), with the logged total. The weights are kvplan's
count for the config's dtype and `quantization_config`, plus a multimodal checkpoint's encoders and projectors
(kvplan.weights.encoders); a quantized checkpoint planned from its base model's config is marked and summarised
apart. The summary: median and worst |error| on unquantized cases with a known version (the issue's figure), on
all unquantized ones, per release, on the quantized ones, and the overhead model alone (the logged weights given).

    .venv/bin/python benchmarks/recommend_budget_error.py
"""

from __future__ import annotations

import functools
import re
import statistics
import sys
import tempfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "tests" / "engines")]  # conftest, test_calibration

from test_calibration import _config_for
from test_calibration_2026 import GAPS, REPRODUCED, SKIPPED

from kvplan.errors import KvplanError
from kvplan.planning.recommend import recommend

from conftest import load_config

GIB = 2**30
DEFAULT_RELEASE = "0.19.0"  # engine_cases.yaml cases that record no version: the newest release in that file
FILES = (("engine_cases.yaml", "2025"), ("engine_cases_2026.yaml", "2026"))
QUANTIZED_WORDS = ("fp8", "awq", "gptq", "nvfp4", "int4", "int8", "w4a16", "w8a8", "autoround", "mxfp4")
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


def _release(text: object) -> str | None:
    """The vLLM release a case's `engine_version` names ("0.25.1 (community GB10 build ...)" -> "0.25.1"; None:
    none stated, or no release in it such as "0.23.x" or "nightly 1acd67a7")."""
    match = re.match(r"\s*v?(\d+\.\d+\.\d+\S*)", str(text or ""))
    return match.group(1) if match else None


def _quantized(case: dict, config: dict) -> bool:
    """A quantized checkpoint: the case says so, the id names a quantization, or the config carries one."""
    names = f"{case.get('quantization') or ''} {case.get('model_id') or ''}".lower()
    return bool(case.get("quantization")) or any(w in names for w in QUANTIZED_WORDS) or "quantization_config" in config


def _terms(rec) -> dict[str, float]:
    """kvplan's budget terms in GiB per GPU, grouped as vLLM's memory-profiling line prints them."""
    groups = {
        # what vLLM's "Model loading took" holds: the parameters and the buffers built with them (rope tables)
        "weights": ("weights", "multimodal_weights", "speculative_draft_weights", "lora", "eplb_buffer", "rope_cache"),
        "activation": ("activation_peak", "encoder_cache"),
        "non_torch": ("non_torch",),
        "cudagraph": ("cudagraph",),
    }
    return {k: -sum(t.bytes for t in rec.budget if t.name in names) / GIB for k, names in groups.items()}


def _case_inputs(case: dict, origin: str) -> tuple[dict | None, str | None, bool, dict, str | None]:
    """(config, release, known, extra recommend arguments, skip reason) for a case of either file."""
    r = case["reported"]
    extra: dict = {}
    if origin == "2025":
        config, release, known = _config_for(case), _release(case.get("engine_version")), True
        if release is None:
            release, known = DEFAULT_RELEASE, False
        if config is None:
            return None, None, False, extra, f"no fixture config for {case['model_id']}"
    else:
        pin = REPRODUCED.get(case["id"]) or GAPS.get(case["id"])
        if pin is None:
            return None, None, False, extra, SKIPPED.get(case["id"], "no config pinned in test_calibration_2026")
        config = load_config(pin.config)
        release = _release(case.get("engine_version"))
        known = release is not None
        release = release or pin.version
        if pin.speculative or case.get("speculative_config"):
            extra["speculative_config"] = pin.speculative or case["speculative_config"]
        if pin.prefix_caching is not None:
            extra["prefix_caching"] = pin.prefix_caching
    if case.get("kv_cache_memory_bytes"):
        return None, None, False, extra, "an explicit --kv-cache-memory: no budget to model"
    if not r.get("available_kv_cache_gib"):
        return None, None, False, extra, "prints no KV memory"
    if not case.get("gpu_memory_utilization"):
        return None, None, False, extra, "no gpu_memory_utilization stated"
    if not r.get("total_gpu_memory_gib"):
        return None, None, False, extra, "total GPU memory not logged (vLLM's budget is a fraction of it)"
    if case.get("max_num_batched_tokens"):
        extra["max_num_batched_tokens"] = case["max_num_batched_tokens"]
    if (case.get("data_parallel_size") or 1) > 1:
        extra["dp"] = case["data_parallel_size"]
    return config, release, known, extra, None


def _summary(label: str, subset: list[dict]) -> None:
    if not subset:
        print(f"{label}: 0 cases")
        return
    errors = [abs(x["error"]) for x in subset]
    relative = [abs(x["error"]) / x["logged"] for x in subset]
    worst = max(subset, key=lambda x: abs(x["error"]))
    print(
        f"{label}: {len(errors)} cases, median |error| {statistics.median(errors):.2f} GiB "
        f"({100 * statistics.median(relative):.1f} %), worst {max(errors):.2f} GiB "
        f"({100 * abs(worst['error']) / worst['logged']:.1f} %, {worst['id']})"
    )


def _logged(r: dict, key: str) -> str:
    value = r.get(key)
    return f"{value:.2f}" if isinstance(value, (int, float)) else "-"


def main() -> None:
    rows: list[dict] = []
    overhead_rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for filename, origin in FILES:
            for case in yaml.safe_load((ROOT / "tests/fixtures/calibration" / filename).read_text()):
                if not str(case["engine"]).startswith("vllm"):
                    continue
                config, release, known, extra, why = _case_inputs(case, origin)
                if why is not None or config is None or release is None:
                    print(f"skip {case['id']} ({origin}): {why}")
                    continue
                r = case["reported"]
                path = Path(tmp) / f"{case['id']}.yaml"
                memory = int(r["total_gpu_memory_gib"] * GIB)
                path.write_text(
                    _shipped(case["gpu_model"], case["id"], memory)
                    or PROFILE.format(id=case["id"], name=case["gpu_model"] or "gpu", memory=memory)
                )
                tp, pp = case["tensor_parallel_size"] or 1, case["pipeline_parallel_size"] or 1
                plan = functools.partial(  # the case as logged: its GPU memory, utilization, layout, length, release
                    recommend,
                    config,
                    gpu_profile=str(path),
                    gpus=tp * pp * extra.get("dp", 1),
                    tp=tp,
                    pp=pp,
                    gpu_memory_utilization=case["gpu_memory_utilization"],
                    max_model_len=case["max_model_len"],
                    dtype=case.get("dtype") or "auto",
                    vllm_version=release,
                    **extra,
                )
                try:
                    rec = plan()
                except KvplanError as exc:
                    print(f"skip {case['id']} ({origin}): {exc.message}")
                    continue
                if r.get("weights_gib"):  # the same plan with the logged weights: the overhead model alone
                    # the logged load holds vLLM's rope tables, which kvplan's budget adds beside the weights
                    rope = -sum(t.bytes for t in rec.budget if t.name == "rope_cache")
                    given = plan(weights_bytes=(int(r["weights_gib"] * GIB) - rope) * tp * pp)
                    overhead_rows.append(
                        {
                            "id": case["id"],
                            "error": given.available_kv_memory_bytes / GIB - r["available_kv_cache_gib"],
                            "logged": r["available_kv_cache_gib"],
                        }
                    )
                ours = rec.available_kv_memory_bytes / GIB
                rows.append(
                    {
                        "id": case["id"],
                        "origin": origin,
                        "release": release if known else f"{release}?",
                        "known": known,
                        "quantized": _quantized(case, config),
                        "ours": ours,
                        "logged": r["available_kv_cache_gib"],
                        "error": ours - r["available_kv_cache_gib"],
                        "terms": _terms(rec),
                        "reported": r,
                    }
                )
    print(
        f"{'case':<68} {'file':>4} {'vLLM':>9} {'kvplan':>7} {'logged':>7} {'error':>6} {'err%':>6}   "
        "kvplan/logged GiB per GPU (kvplan: the terms it subtracts): weights, activation, non-torch, cudagraph"
    )
    for x in rows:
        t, r = x["terms"], x["reported"]
        terms = "  ".join(
            f"{t[k]:.2f}/{_logged(r, key)}"
            for k, key in (
                ("weights", "weights_gib"),
                ("activation", "peak_activation_gib"),
                ("non_torch", "non_torch_gib"),
                ("cudagraph", "cudagraph_gib"),
            )
        )
        mark = "  quantized checkpoint" if x["quantized"] else ""
        print(
            f"{x['id']:<68} {x['origin']:>4} {x['release']:>9} {x['ours']:7.2f} {x['logged']:7.2f} "
            f"{x['error']:+6.2f} {100 * x['error'] / x['logged']:+5.1f}%   {terms}{mark}"
        )
    unquantized = [x for x in rows if not x["quantized"]]
    _summary("unquantized, known version", [x for x in unquantized if x["known"]])
    _summary("unquantized", unquantized)
    for v in sorted({x["release"] for x in unquantized}):
        _summary(f"unquantized, vLLM {v}", [x for x in unquantized if x["release"] == v])
    _summary("quantized checkpoints (planned from the base config)", [x for x in rows if x["quantized"]])
    _summary("all", rows)
    # errors in the weights (quantized checkpoints, models whose analytic count misses parts) dominate where
    # present; this line isolates the overhead model (activation peak, non-torch memory, CUDA graphs)
    _summary("overhead model alone (logged weights given, quantized checkpoints included)", overhead_rows)


if __name__ == "__main__":
    main()
