"""kvplan's vLLM model against the 2026 start-up logs (tests/fixtures/calibration/engine_cases_2026.yaml, see
README-2026.md), each case under the vLLM release it came from.

Every vLLM case is in exactly one of three tables: REPRODUCED (kvplan's capacity from the printed pool must
reproduce the printed figures within the print rounding), GAPS (kvplan has what it needs, but the figures do not
reproduce: the test prints kvplan's figures beside the log's and skips) and SKIPPED (what kvplan lacks to check the
case). The skips are printed with their reasons (`-rs`, and one summary line per case).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import pytest
import yaml

from kvplan.core.shapes import model_shape
from kvplan.engines import Request, pipeline_stages
from kvplan.engines.serving import FitInputs, SpeculativeInputs
from kvplan.engines.vllm import ENTRY, VllmEngine, capacity, parse_speculative_config, scheduler_defaults

from conftest import FIXTURES, load_config

GIB = 2**30
CASES = {c["id"]: c for c in yaml.safe_load((FIXTURES / "calibration" / "engine_cases_2026.yaml").read_text())}
VLLM_CASES = sorted(i for i, c in CASES.items() if str(c["engine"]).startswith("vllm"))


@dataclass(frozen=True)
class Pin:
    """How a case is modelled: the config (catalog or tests/fixtures/extra_configs), the vLLM release whose rules
    apply and why, and the settings the case leaves out (with the reason in `why`); `speculative`, the run's
    --speculative-config (JSON), taken from the case."""

    config: str
    version: str
    why: str
    tp: int | None = None
    max_model_len: int | None = None
    kv_dtype: str | None = None
    prefix_caching: bool | None = None
    max_num_batched_tokens: int | None = None
    speculative: str | None = None


MTP3 = '{"method": "mtp", "num_speculative_tokens": 3}'
REPRODUCED = {
    "lmcache-3430-qwen3-8b-24gb-util09764-16384": Pin(
        "Qwen__Qwen3-8B",
        "0.21.0",
        "the log's source lines are vllm-0.21.0's (gpu_worker.py:462 and :477, kv_cache_utils.py:1710 and :1711)",
    ),
    "hf-mem-60-gpt-oss-120b-vllm": Pin(
        "openai__gpt-oss-120b",
        "0.20.0",
        "version, GPU, TP and max_model_len not stated: one GPU, and the token figure is vLLM <= 0.20.0's "
        "num_blocks // num_groups x block_size, which does not depend on max_model_len (from 0.20.1 it would)",
        tp=1,
        max_model_len=131072,
    ),
    "spark-vllm-docker-396-minimax-m27-awq-2xgb10-tp2-util080-fail": Pin(
        "MiniMaxAI__MiniMax-M2.7",
        "0.29.1rc1.dev17+gd2d649e67.d20260913",
        "as logged; MiniMax-M2 read by its family reader (62 full-attention layers, 8 KV heads of 128: "
        "attn_type_list is all 1s), bf16 KV (AWQ weights)",
    ),
    "club3090-windows-native-qwen36-35b-a3b-autoround-2x3090-tp2-v0.26.0": Pin(
        "Qwen__Qwen3.6-35B-A3B",
        "0.26.0",
        "as logged (fp8_e4m3 KV, TP 2, 262,144 tokens). The quote elides the non-default args ('{..., ...}') and "
        "vllm-0.26.0/vllm/engine/arg_utils.py:2520-2521 leaves prefix caching off for hybrids, yet only with it on "
        "(Mamba `align` mode, models/config.py:559-561: two state pages per GDN layer) do the figures follow: 455 "
        "blocks / (126 + 3 x 2) per request x 262,144 = 903,602 tokens, 3.45x; off, 129 per request would print "
        "924,616 tokens, 3.53x. So the run passed --enable-prefix-caching",
        prefix_caching=True,
    ),
    # MTP n=3 (vllm-0.33.0 config/speculative.py:987-1007, models/qwen3_5_mtp.py:119-125: one full-attention
    # decoder layer joins the 16 of the target; model_executor/layers/mamba/abstract.py:86-90 and mamba_utils.py:
    # 272-285: 3 GDN state pages and conv columns more). Without it, or with n=2 or n=4, the figures do not follow.
    "club3090-74-qwen36-27b-autoround-2x3090-nvlink-tp2-0.20.2rc1-262144": Pin(
        "nvidia__Qwen3.6-27B-NVFP4",
        "0.20.2rc1.dev9+g01d4d1ad3",
        "the 'dual-nvlink' compose runs fp8 KV and MTP n=3 (case notes, BENCHMARKS.md); the engine-args line is not in "
        "the excerpt, and only with prefix caching on (Mamba `align` mode: 2 + 3 GDN pages) do the figures follow: "
        "418 blocks / (17 + 3 x 5) x 262,144 = 612,157 tokens, 2.34x (off: 622,592, 2.38x)",
        tp=2,
        kv_dtype="fp8_e4m3",
        prefix_caching=True,
        speculative=MTP3,
    ),
    "club3090-142-qwen36-27b-autoround-2x3090-tp2-0.20.2rc1dev129-262144": Pin(
        "nvidia__Qwen3.6-27B-NVFP4",
        "0.20.2rc1.dev129+g1acd67a79",
        "engine args not in the excerpt: the club-3090 dual composes run fp8 KV and MTP n=3 with prefix caching on, "
        "as the #74 report of the same compose; 426 blocks / 32 per request x 262,144 = 623,873 tokens, 2.38x",
        tp=2,
        kv_dtype="fp8_e4m3",
        prefix_caching=True,
        speculative=MTP3,
    ),
    "club3090-584-qwen36-27b-4x3090-tp4-v0.24.0": Pin(
        "nvidia__Qwen3.6-27B-NVFP4",
        "0.24.0",
        "the multi4 compose's fp8_e5m2 KV and MTP n=3 (the club-3090 changelog multi4 case and PR #44 args), prefix "
        "caching on, and the compose family's max_model_len 262,144 (not printed; vLLM 0.24 prints int(concurrency x "
        "max_model_len)): 1,212 blocks / (17 + 3 x 5) x 262,144 = 1,774,963 tokens. The MTP layer makes 17 full-"
        "attention layers: groups of 17, 3 groups for the 48 GDN layers, 'Add 3 padding layers'",
        tp=4,
        max_model_len=262144,
        kv_dtype="fp8_e5m2",
        prefix_caching=True,
        speculative=MTP3,
    ),
}

GAPS = {
    # The run's MTP draft (the quote's "MTP speculative"; num_speculative_tokens not stated, and no V4 spec of 0.26
    # reads it: v1/kv_cache_interface.py:258-263 full/MLA, :567-596 sliding) through vllm.speculative_rules: one
    # more sliding ring (44). From the log: TP 2, fp8 (fp8_ds_mla), block 256, max_model_len 912,128, 7.01 GiB.
    # Defaults: the H20's (95 GiB >= 70 GiB, not an A100) API-server 8,192 batched tokens (vllm-0.26.0
    # engine/arg_utils.py:2460-2465), async scheduling on with mtp (config/vllm.py:1059-1107: mtp is an
    # EagleModelTypes method; the mp executor supports it), 2 in-flight batches on the V1 runner at PP 1 (:512-521).
    "vllm-51041-dsv4-flash-preview-2xh20-tp2-0.26.0": Pin(
        "deepseek-ai__DeepSeek-V4-Flash",
        "0.26.0",
        "under vLLM 0.26.0's DeepSeek-V4 rules (VllmEngine.v4_plan, `v4_tuple_groups`: pool stride 22 x 37,440 + "
        "21 x 8,640 + 20 x 1,728 = 1,039,680 B, so 7.01 GiB is 7,234-7,244 blocks) with the MTP draft's ring "
        "(44 rings) at the defaults (8,192 batched tokens, async scheduling on with mtp: 16,384 in-flight tokens) a "
        "request holds 9,490 blocks: 695,293-696,254 tokens, 0.76x. The log follows only with 8,192 in-flight "
        "tokens (4,096 batched tokens, or async scheduling off, neither a 0.26 default under mtp nor stated): 6,537 "
        "blocks, 1,009,382-1,010,777 tokens, 1.107-1.108x against 1,009,661 and 1.11x (without the ring, 6,532 "
        "blocks and 1,010,155-1,011,551 tokens miss it); kvplan does not pin a setting the log does not show",
        max_num_batched_tokens=8192,
        speculative='{"method": "mtp", "num_speculative_tokens": 1}',
    ),
    "spark-vllm-docker-396-minimax-m27-awq-2xgb10-tp2-util085": Pin(
        "MiniMaxAI__MiniMax-M2.7",
        "0.29.1rc1.dev17+gd2d649e67.d20260913",
        "the reporter's summary of a patched GB10 build: its 240,816 tokens are 15,051 blocks (28.48 GiB), not the "
        "28.74 GiB it quotes; the util 0.80 run of the same thread reproduces",
    ),
}

_NO_FAMILY = "kvplan has no {} family yet (a colleague adds the 2026 families)"
SKIPPED = {
    "retail-shopping-assistant-95-nemotron3-super-120b-2xh100": "failed start: only the Mamba block bound (524) "
    "is printed, no KV memory, version, TP or max_model_len (kvplan reads the model: at TP 2 under vLLM 0.28-0.33 "
    "one block is 8 x 2,129,920 B, so 524 blocks would be 8.32 GiB of KV memory, which the log cannot confirm)",
    "vllm-recipes-551-qwen36-27b-fp8-1xh100-util095": "failed start: only the Mamba block bound (856) is printed, "
    "no KV memory; version not stated",
    "home-ops-13226-qwen36-35b-a3b-fp8-gb10-131072": "no KV memory printed (a failed start: the Mamba block bound "
    "95 and 1.44x only); community GB10 build",
    "home-ops-13319-qwen36-35b-a3b-fp8-gb10-65536": "no KV memory printed (tokens and concurrency only, and they "
    "agree with each other by construction in 0.25: tokens = int(concurrency x max_model_len))",
    "vllm-recipes-906-glm53-flash-4xh200-tp4-default-seqs": "no config for zai-org/GLM-5.3-Flash",
    "vllm-recipes-906-glm53-flash-4xh200-tp4-seqs512": "no config for zai-org/GLM-5.3-Flash",
    "nemo-rl-2620-nemotron-nano-v2-12b-nightly": "no config for nvidia/NVIDIA-Nemotron-Nano-12B-v2 (a nemotron_h "
    "model); failed start: only the Mamba block bound (658) is printed, no KV memory, GPU, version or TP",
    "vllm-51041-dsv4-flash-0731-2xh20-tp2-0.26.0": "no config for deepseek-ai/DeepSeek-V4-Flash-0731 (a later "
    "checkpoint whose per-token KV the same issue measures at 8x the preview's)",
    "vllm-45178-minimax-m25-nvfp4-b200-dep2-cg-estimate-on": "no KV memory, TP, version or max_model_len printed",
    "vllm-45178-minimax-m25-nvfp4-b200-dep2-cg-estimate-off": "no KV memory, TP, version or max_model_len printed",
    "vllm-50780-qwen35-122b-a10b-int4-sm120-0.23.x": "no KV memory, GPU, TP or max_model_len printed",
    "vllm-50780-qwen35-122b-a10b-int4-sm120-0.26.1-nightly": "no KV memory, GPU, TP or max_model_len printed",
    "vllm-46329-qwen38-27b-5090-kvnvfp4-util0975-262144": "no config for Qwen/Qwen3.8-27B; MTP draft; patched build",
    "vllm-46329-qwen38-27b-5090-kvfp8-util093-109568": "no config for Qwen/Qwen3.8-27B; no KV memory printed",
    "vllm-recipes-810-qwen38-27b-fp8-2x5090-tp2-262144": "no config for Qwen/Qwen3.8-27B; MTP draft",
    "vllm-recipes-810-qwen38-27b-nvfp4-inferact-2x5090-tp2-262144": "checkpoint not named; MTP draft",
    "mitchross-1995-qwen38-27b-fp8-2x3090-tp2-131072": "no config for Qwen/Qwen3.8-27B",
    "gpustack-runner-251-qwen36-27b-awq-mtp-tp2-0.27.1": "MTP n=3 (an input now), but no token count or concurrency "
    "printed: the pool alone (6.87 GiB) leaves no kvplan figure to check",
    "club3090-46-qwen36-27b-autoround-2x4090-tp2-0.20.1rc1-180000": "DFlash draft not named in the excerpt (kvplan "
    "reads a DFlash draft from the speculative config's `model`, a catalog name or config path); and the printed "
    "tokens and concurrency of this 0.20.1 nightly disagree (pre-#40694 reporting)",
    "club3090-127-qwen36-27b-autoround-4x3090-vfio-tp4": "MTP n=3 (an input now), but no token count or "
    "concurrency printed: the pool alone (15.72 GiB) leaves no kvplan figure to check",
    "club3090-1085-qwen38-27b-fp8-2x5090-147456": "no config for Qwen/Qwen3.8-27B",
    "club3090-294-qwen36-27b-autoround-2x3090-x4-v0.22.0": "MTP n=3 (an input now), but no KV memory printed: the "
    "tokens and concurrency agree by construction (int(concurrency x max_model_len)), nothing to check them against",
    "club3090-changelog-multi4-qwen36-27b-4x3090-tp4-fp8e5m2": "MTP n=3 (an input now), but no KV memory printed; "
    "the tokens and concurrency of this early-May nightly disagree (pre-#40694 reporting)",
    "club3090-changelog-multi4-dflash-qwen36-27b-4x3090-tp4-bf16kv": "DFlash draft (num_speculative_tokens 5) not "
    "named; no KV memory printed",
    "club3090-calibration-gemma-4-12b-2x3090-tp2-bf16kv-131072": "no config for google/gemma-4-12b (checkpoint "
    "not named); MTP assistant drafter resident in the pool",
    "club3090-benchmarks-gemma-4-31b-int8pth-2x3090-tp2-262144": "MTP n=4 with Gemma 4's assistant drafter "
    "(v1/spec_decode/gemma4.py, a separate drafter kvplan does not model: its MTP rules cover the Qwen3.5/3.6, "
    "Qwen3-Next, DeepSeek-V3/V4 and GLM-4.5 MTP layers); a nightly's int8_per_token_head path: kvplan's 0.24-0.33 rules give 0.80-1.01x "
    "at max_num_batched_tokens 2048-8192 against the logged 1.78x (the int8 scales keep the global page from "
    "dividing the sliding one, so kvplan pads it)",
}


def _kv(case: dict, pin: Pin) -> str:
    if pin.kv_dtype:
        return pin.kv_dtype
    text = str(case.get("kv_cache_dtype") or "auto").split()[0].lower()
    return {"auto": "auto", "fp8": "fp8_e4m3", "fp8_e4m3": "fp8_e4m3", "fp8_e5m2": "fp8_e5m2"}.get(text, text)


def _model(case: dict, pin: Pin):
    """(storage model, caches of one GPU, request) for the case under its pinned release."""
    shape = model_shape(load_config(pin.config))
    kv = _kv(case, pin)
    kv = shape.dtype if kv == "auto" else kv
    total = (case["reported"].get("total_gpu_memory_gib") or 0) * GIB
    mnbt = (
        pin.max_num_batched_tokens
        or case.get("max_num_batched_tokens")
        or scheduler_defaults(int(total), "", vllm_version=pin.version)[0]
    )
    req = Request(
        pin.max_model_len or case["max_model_len"],
        1,
        kv,
        shape.dtype,
        tp=pin.tp or case["tensor_parallel_size"] or 1,
        max_num_batched_tokens=mnbt,
        engine_version=pin.version,
        prefix_caching=pin.prefix_caching,
    )
    if pin.speculative:  # the drafter as vLLM runs it (kvplan.engines.vllm.speculative_rules)
        config = load_config(pin.config)
        setup = parse_speculative_config(pin.speculative)
        spec = ENTRY.serving.speculative(SpeculativeInputs(setup, config, shape, shape.dtype))  # type: ignore[union-attr]
        req = replace(req, speculative=spec)
    caches = [c for i in pipeline_stages(shape.num_layers, 1)[0] for c in shape.layers[i]]
    return VllmEngine(shape), caches, req, shape


def _figures(case: dict, pin: Pin) -> dict:
    """kvplan's figures at the printed pool's two rounding ends (2 decimals of GiB)."""
    engine, caches, req, shape = _model(case, pin)
    memory = case["reported"]["available_kv_cache_gib"] * GIB
    ends = [int(memory - 0.005 * GIB), int(memory + 0.005 * GIB)]
    caps = [capacity(caches, req, m, engine) for m in ends]
    fits = [
        ENTRY.serving.fit(FitInputs(shape, engine, tuple(caches), req, m, req.seq_len))  # type: ignore[union-attr]
        for m in ends
    ]
    need = caps[0].blocks_per_request * caps[0].page_bytes * caps[0].group_size
    plan = engine.plan(caches, req)
    padding = sum(plan.groups(spec) * plan.group_size - n for spec, n in plan.specs.items())
    return {
        "padding_layers": padding,
        "tokens": [c.kv_cache_tokens for c in caps],
        "blocks": [c.num_blocks for c in caps],
        "concurrency": [c.max_concurrency for c in caps],
        "fit_len": [f.fit_len for f in fits],
        "fits": [f.fits_one for f in fits],
        "need_gib": need / GIB,
    }


def _within(value: float, low: float, high: float, digits: int | None = None) -> bool:
    if digits is not None:
        low, high = round(low, digits), round(high, digits)
    return low <= value <= high


def test_every_vllm_case_is_checked_or_listed_with_a_reason(capsys):
    tables = (REPRODUCED, GAPS, SKIPPED)
    assert sorted(k for t in tables for k in t) == VLLM_CASES  # each vLLM case in exactly one table
    with capsys.disabled():
        print(f"\nengine_cases_2026.yaml: {len(REPRODUCED)} of {len(VLLM_CASES)} vLLM cases reproduced")
        for case_id, pin in GAPS.items():
            print(f"  not reproduced: {case_id}: {pin.why}")
        for case_id, reason in SKIPPED.items():
            print(f"  skipped: {case_id}: {reason}")


@pytest.mark.parametrize("case_id", sorted(REPRODUCED))
def test_2026_logs_reproduce_under_their_release(case_id):
    case, pin = CASES[case_id], REPRODUCED[case_id]
    r, got = case["reported"], _figures(case, pin)
    if r.get("kv_cache_tokens"):
        assert _within(r["kv_cache_tokens"], *got["tokens"]), got
    if r.get("max_concurrency"):
        assert _within(r["max_concurrency"], *got["concurrency"], digits=2), got
    if r.get("kv_cache_needed_gib"):  # "23.25 GiB KV cache is needed": one request of max_model_len
        assert round(got["need_gib"], 2) == r["kv_cache_needed_gib"], got
        assert got["fits"] == [False, False]
    if r.get("estimated_max_model_len"):
        assert _within(r["estimated_max_model_len"], *got["fit_len"]), got
    if r.get("padding_layers_added"):  # "Add 3 padding layers" (v1/core/kv_cache_utils.py, hybrid grouping)
        assert got["padding_layers"] == r["padding_layers_added"], got


@pytest.mark.parametrize("case_id", sorted(GAPS))
def test_2026_logs_kvplan_does_not_reproduce_yet(case_id):
    case, pin = CASES[case_id], GAPS[case_id]
    r, got = case["reported"], _figures(case, pin)
    tokens_ok = _within(r["kv_cache_tokens"], *got["tokens"])
    concurrency_ok = not r.get("max_concurrency") or _within(r["max_concurrency"], *got["concurrency"], digits=2)
    assert not (tokens_ok and concurrency_ok), f"{case_id} reproduces now: move it to REPRODUCED"
    pytest.skip(
        f"not reproduced under vLLM {pin.version}: kvplan {got['tokens'][0]:,}-{got['tokens'][1]:,} tokens, "
        f"{got['concurrency'][0]:.2f}-{got['concurrency'][1]:.2f}x; logged {r['kv_cache_tokens']:,} tokens"
        + (f", {r['max_concurrency']}x" if r.get("max_concurrency") else "")
        + f" ({pin.why})"
    )


@pytest.mark.parametrize("case_id", sorted(SKIPPED))
def test_2026_logs_kvplan_cannot_check(case_id):
    pytest.skip(SKIPPED[case_id])
