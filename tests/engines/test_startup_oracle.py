"""The vLLM start-up oracle (kvplan.engines.vllm.startup): the error a release raises when it starts with a plan,
in vLLM's own words, and the lines it logs; `max_model_len="auto"` (vLLM's auto-fit); the recommend JSON keys.

Every rule's docstring cites the vLLM source it follows (/tmp/vllm-src/<version>/vllm/...). The 2026
calibration cases with an `error:` are each checked where kvplan can read the model and the case prints the
pool, and listed with the reason otherwise (printed, `-s`)."""

from __future__ import annotations

import re

import pytest
import yaml

from kvplan.core.shapes import model_shape
from kvplan.engines import Request, pipeline_stages
from kvplan.engines.serving import FitInputs, StartupInputs
from kvplan.engines.vllm import (
    VllmEngine,
    estimate_max_model_len,
    format_gib,
    mamba_blocks_error,
    max_model_len_error,
    no_memory_error,
    startup,
)
from kvplan.errors import UsageError
from kvplan.planning.recommend import recommend

from conftest import FIXTURES, load_config

GIB = 2**30
QWEN3_NEXT = "Qwen/Qwen3-Next-80B-A3B"
LLAMA = "meta-llama/Llama-3.1-8B"
CASES = yaml.safe_load((FIXTURES / "calibration" / "engine_cases_2026.yaml").read_text())
MINIMAX = "spark-vllm-docker-396-minimax-m27-awq-2xgb10-tp2-util080-fail"


def _inputs(config: str, version: str, seq_len: int, tp: int, available: int, max_num_seqs: int = 256):
    shape = model_shape(load_config(config))
    req = Request(seq_len, 1, shape.dtype, shape.dtype, tp=tp, max_num_batched_tokens=2048, engine_version=version)
    caches = [c for i in pipeline_stages(shape.num_layers, 1)[0] for c in shape.layers[i]]
    fit = FitInputs(shape, VllmEngine(shape), tuple(caches), req, available, seq_len)
    return StartupInputs(fit, max_num_seqs, 0.9, 0)


# ------------------------------------------------------------------------------------------------ the rules


def test_format_gib_is_vllms():
    """vllm-0.29.0/vllm/utils/mem_utils.py:30-31: str(round(b / GiB_bytes, 2))."""
    assert format_gib(int(22.5 * GIB)) == "22.5"
    assert format_gib(int(23.254 * GIB)) == "23.25"
    assert format_gib(5 * GIB) == "5.0"


def test_estimate_max_model_len_is_vllms_binary_search():
    """vllm-0.19.1/vllm/v1/core/kv_cache_utils.py:665-716: binary search over 1..max_model_len, 0 when one token
    does not fit; the result is the largest length whose bytes fit (a step function of whole blocks)."""

    def needed(n: int) -> int:
        return -(-n // 16) * 1000

    for available in (0, 999, 1000, 16_000, 123_456):
        brute = max((n for n in range(1, 4097) if needed(n) <= available), default=0)
        assert estimate_max_model_len(needed, available, 4096) == brute
    assert estimate_max_model_len(needed, 10**9, 4096) == 4096  # capped at max_model_len


def test_error_wording_per_release():
    """vllm-0.21.0/vllm/v1/core/kv_cache_utils.py `_check_enough_kv_cache_memory` says "models's" and names no CPU
    backend; vllm-0.22.0 (same function) to vllm-0.33.0/vllm/v1/core/kv_cache_planning.py:50-88 say "model's" and
    name the CPU backend; the Mamba text is vllm-0.20.0/vllm/config/compilation.py:1435-1442 (unchanged to 0.33)."""
    old = max_model_len_error("0.21.0", 196608, int(23.25 * GIB), int(22.5 * GIB), 190272)
    new = max_model_len_error("0.22.0", 196608, int(23.25 * GIB), int(22.5 * GIB), 190272)
    assert old.startswith("To serve at least one request with the models's max seq len (196608), (23.25 GiB KV cache")
    assert new.startswith("To serve at least one request with the model's max seq len (196608), (23.25 GiB KV cache")
    for text in (old, new):
        assert "larger than the available KV cache memory (22.5 GiB). Based on the available memory, the " in text
        assert "estimated maximum model length is 190272. Try increasing `gpu_memory_utilization`" in text
        assert text.endswith("See https://docs.vllm.ai/en/latest/configuration/conserving_memory/ for more details.")
    assert "(which also controls CPU memory on the CPU backend)" in new and "CPU" not in old
    assert "estimated maximum" not in max_model_len_error("0.33.0", 8, 10, 1, 0)  # no estimate when 0
    assert no_memory_error("0.21.0") == (
        "No available memory for the cache blocks. Try increasing `gpu_memory_utilization` when initializing the "
        "engine. See https://docs.vllm.ai/en/latest/configuration/conserving_memory/ for more details."
    )
    assert "despite its name). See https" in no_memory_error("0.22.0")
    assert mamba_blocks_error(1024, 524) == (
        "max_num_seqs (1024) exceeds available Mamba cache blocks (524). Each decode sequence requires one Mamba "
        "cache block, so CUDA graph capture cannot proceed. Please lower max_num_seqs to at most 524 or increase "
        "gpu_memory_utilization."
    )


def test_null_block_is_held_back_from_0_29():
    """vllm-0.29.0/vllm/v1/core/kv_cache_utils.py:975-987: the one-request check plans with available memory less
    one block of the pool (the null block); 0.28 checks the whole memory. At exactly one request's memory 0.28
    starts and 0.29 refuses, its estimate one block shorter."""
    probe = startup(_inputs("meta-llama__Llama-3.1-8B", "0.28.0", 8192, 1, 10 * GIB))
    one_request = probe.kv_bytes_per_request  # 32 layers x 512 blocks x 128 KiB
    assert one_request == 32 * 512 * 16 * 8 * 128 * 2 * 2
    assert startup(_inputs("meta-llama__Llama-3.1-8B", "0.28.0", 8192, 1, one_request)).error is None
    refused = startup(_inputs("meta-llama__Llama-3.1-8B", "0.29.0", 8192, 1, one_request))
    assert refused.rule == "max_model_len" and refused.fix == {"max_model_len": 8192 - 16}
    assert "the estimated maximum model length is 8176." in (refused.error or "")


def test_no_memory_error():
    """vllm-0.19.1/vllm/v1/core/kv_cache_utils.py:625-631: available memory <= 0 raises before any sizing."""
    out = startup(_inputs("meta-llama__Llama-3.1-8B", "0.33.0", 8192, 1, -GIB))
    assert out.rule == "no_memory" and (out.error or "").startswith("No available memory for the cache blocks.")
    assert out.log_lines == ("Available KV cache memory: -1.0 GiB",)


def test_max_num_batched_tokens_must_cover_max_num_seqs():
    """vllm-0.10.1.1/vllm/config/scheduler.py:262-266, 0.19.1 :273-277, 0.33.0 :331-336: SchedulerConfig raises
    when max_num_batched_tokens < max_num_seqs, before the model loads (0.33.0 engine/arg_utils.py:2658): no log
    lines. The cap given is kept as given (max_num_seqs is a cap), so 4096 with an L40S's 2048 tokens fails."""
    ok = startup(_inputs("meta-llama__Llama-3.1-8B", "0.33.0", 8192, 1, 20 * GIB, max_num_seqs=2048))
    assert ok.error is None
    out = startup(_inputs("meta-llama__Llama-3.1-8B", "0.33.0", 8192, 1, 20 * GIB, max_num_seqs=2049))
    assert out.rule == "scheduler" and out.log_lines == ()
    assert out.error == "max_num_batched_tokens (2048) must be greater than or equal to max_num_seqs (2049)."
    assert out.fix == {"max_num_seqs": 2048, "max_num_batched_tokens": 2049}
    rec = recommend(LLAMA, gpu_profile="l40s", max_model_len=8192, max_num_seqs=4096, offline=True)
    assert rec.max_num_seqs == 4096 and rec.max_num_batched_tokens == 2048 and rec.startup_rule == "scheduler"


def test_the_default_max_num_seqs_is_at_most_max_num_batched_tokens():
    """vllm-0.10.1.1/vllm/engine/arg_utils.py:1709-1712, 0.19.1 :2238-2240, 0.33.0 :3232-3234: a default
    max_num_seqs (never one given) is lowered to max_num_batched_tokens: 512 tokens on an H100 run 512 sequences,
    not 1024, and start."""
    rec = recommend(LLAMA, gpu_profile="h100", max_model_len=8192, max_num_batched_tokens=512, offline=True)
    assert rec.max_num_seqs == 512 and rec.startup_error is None
    given = recommend(
        LLAMA, gpu_profile="h100", max_model_len=8192, max_num_batched_tokens=512, max_num_seqs=1024, offline=True
    )
    assert given.max_num_seqs == 1024 and given.startup_rule == "scheduler"


def test_tp_must_divide_attention_heads():
    """vllm-0.19.1/vllm/config/model.py:1111-1116 (0.33.0: :1559-1564): total attention heads % TP != 0 raises
    at config time (no log lines); Falcon-7B's 71 heads (one KV head, replicated) on TP 2."""
    rec = recommend("tiiuae/falcon-7b", gpu_profile="24gb", gpus=2, offline=True)
    assert rec.startup_error == "Total number of attention heads (71) must be divisible by tensor parallel size (2)."
    assert rec.startup_fix == {"tp": 1} and rec.log_lines == ()


def test_the_tp_fix_of_a_huge_tp_is_found_among_the_heads_divisors_not_by_counting_to_it():
    """--tp 8 x 2**27 (1,073,741,824, under the count bound) is a TP that the 8 KV heads divide but the 32 attention
    heads do not: the fix is the largest divisor of the heads, found without a loop up to the TP (it hung); a TP
    past the bound (8 x 10**27) is refused before any planning."""
    rec = recommend(LLAMA, gpu_profile="h100", tp=8 * 2**27, offline=True)
    assert rec.startup_rule == "tp_heads" and rec.startup_fix == {"tp": 32}
    with pytest.raises(UsageError, match="at most 2,147,483,647"):
        recommend(LLAMA, gpu_profile="h100", tp=8 * 10**27, offline=True)


def test_capacity_lines_per_release():
    """vllm-0.21.0/vllm/v1/core/kv_cache_utils.py:1710-1711 log "GPU KV cache size: N tokens" and "Maximum
    concurrency for L tokens per request: C.CCx" as two lines (0.20.0 and before: tokens = blocks // groups x
    block); from vllm-0.28.0 (`update_kv_cache_capacity`) one line; "Available KV cache memory: X GiB"
    (v1/worker/gpu_worker.py:437 in 0.19.1, :773 in 0.33.0); the CUDA-graph line from 0.20.0 where the estimate
    is subtracted (vllm-0.20.0/vllm/v1/worker/gpu_worker.py:445-462)."""
    old = recommend(LLAMA, gpu_profile="h100-sxm-80gb", max_model_len=32768, vllm_version="0.21.0", offline=True)
    new = recommend(LLAMA, gpu_profile="h100-sxm-80gb", max_model_len=32768, vllm_version="0.28.0", offline=True)
    v19 = recommend(LLAMA, gpu_profile="h100-sxm-80gb", max_model_len=32768, vllm_version="0.19.1", offline=True)
    gib = format_gib(old.available_kv_memory_bytes)
    assert old.log_lines[0] == f"Available KV cache memory: {gib} GiB"
    assert old.log_lines[1].startswith("CUDA graph memory profiling is enabled (default since v0.21.0). The current ")
    assert old.log_lines[2:] == (
        f"GPU KV cache size: {old.kv_cache_tokens:,} tokens",
        f"Maximum concurrency for 32,768 tokens per request: {old.max_concurrency:.2f}x",
    )
    assert new.log_lines[-1] == (
        f"GPU KV cache size: {new.kv_cache_tokens:,} tokens, Maximum concurrency for 32,768 tokens per request: "
        f"{new.max_concurrency:.2f}x"
    )
    assert len(v19.log_lines) == 3 and not any("CUDA graph" in line for line in v19.log_lines)
    util = re.search(r"--gpu-memory-utilization=(\d\.\d{4}) is", old.log_lines[1])
    assert util and util.group(1) == "0.9200"


# ------------------------------------------------------------------------------------------- Mamba / hybrids


def test_qwen3_next_on_small_gpus_fails_the_mamba_check_at_the_default_max_num_seqs():
    """vllm-0.20.0/vllm/config/compilation.py:1427-1442: with FULL CUDA graphs (the default) and Mamba layers,
    max_num_seqs > kv_cache_config.num_blocks raises; num_blocks is the pool's block count (available // (page x
    layers per group), v1/core/kv_cache_utils.py `get_kv_cache_config_from_groups`), the null block included.
    Qwen3-Next on 4 x RTX A6000 (48 GB: vLLM's small tier, max_num_seqs 256) at 0.88 of memory: 228 blocks (238
    before the 32 MiB rope table joined the budget)."""
    rec = recommend(
        QWEN3_NEXT, gpu_profile="rtx-a6000", gpus=4, max_model_len=32768, gpu_memory_utilization=0.88, offline=True
    )
    assert rec.fits and rec.mamba_cache_blocks == rec.num_blocks == 228
    assert rec.startup_rule == "mamba_cache_blocks" and rec.startup_fix == {"max_num_seqs": 228}
    assert rec.startup_error == mamba_blocks_error(256, 228)
    assert rec.log_lines[-1].startswith("GPU KV cache size: ")  # logged before CUDA-graph capture fails
    # 0.19 capped its CUDA-graph sizes instead (vllm-0.19.1/vllm/v1/worker/gpu_model_runner.py:6394-6408)
    old = recommend(
        QWEN3_NEXT,
        gpu_profile="rtx-a6000",
        gpus=4,
        max_model_len=32768,
        gpu_memory_utilization=0.88,
        vllm_version="0.19.1",
        offline=True,
    )
    assert old.startup_error is None and old.mamba_cache_blocks is not None
    # max_num_seqs at the block count starts
    ok = recommend(
        QWEN3_NEXT,
        gpu_profile="rtx-a6000",
        gpus=4,
        max_model_len=32768,
        gpu_memory_utilization=0.88,
        max_num_seqs=238,
        offline=True,
    )
    assert ok.startup_error is None


# -------------------------------------------------------------------------------------------------- auto-fit


def test_max_model_len_auto_fits_exactly():
    """vllm-0.19.1/vllm/v1/core/kv_cache_utils.py:1370-1468 (`_estimate_max_model_len_from_groups`,
    `_auto_fit_max_model_len`; 0.29.0 :2316-2325 with the null block held back): max_model_len -1/auto starts
    from the model's limit and binary-searches the longest length whose blocks fit. Llama-3.1-8B on 24 GB: below
    131072, it starts at that length and one token more (one more block) does not."""
    auto = recommend(LLAMA, gpu_profile="24gb", max_model_len="auto", offline=True)
    length = auto.max_model_len
    assert 0 < length < 131072 and length % 16 == 0 and auto.max_model_len_fit == length
    assert auto.startup_error is None and auto.fits
    assert f"Auto-fit max_model_len: reduced from 131072 to {length} to fit" in " ".join(auto.log_lines)
    at = recommend(LLAMA, gpu_profile="24gb", max_model_len=length, offline=True)
    assert at.fits and at.startup_error is None
    over = recommend(LLAMA, gpu_profile="24gb", max_model_len=length + 1, offline=True)
    assert not over.fits and over.startup_rule == "max_model_len"
    assert f"the estimated maximum model length is {length}." in (over.startup_error or "")


def test_auto_is_refused_when_misspelled():
    from kvplan.errors import UsageError

    with pytest.raises(UsageError):
        recommend(LLAMA, gpu_profile="24gb", max_model_len="automatic", offline=True)


# ---------------------------------------------------------------------------------------------- recommend JSON


def test_recommend_json_keys():
    keys = (
        "vllm_version",
        "block_size",
        "kv_cache_tokens",
        "max_concurrency",
        "kv_bytes_per_request",
        "max_model_len_fit",
        "mamba_cache_blocks",
        "startup_error",
        "log_lines",
    )
    vllm = recommend(LLAMA, gpu_profile="h100-sxm-80gb", max_model_len=32768, offline=True).to_dict()
    assert all(k in vllm for k in keys)
    assert vllm["mamba_cache_blocks"] is None and vllm["startup_error"] is None and vllm["log_lines"]
    sglang = recommend(LLAMA, gpu_profile="h100-sxm-80gb", engine="sglang", max_model_len=32768, offline=True)
    data = sglang.to_dict()
    assert data["vllm_version"] is None and data["mamba_cache_blocks"] is None
    assert data["startup_error"] is None and data["log_lines"] == []


def test_recommend_cli_max_model_len_auto():
    import json

    from typer.testing import CliRunner

    from kvplan.cli import app

    result = CliRunner().invoke(
        app, ["recommend", LLAMA, "-g", "24gb", "--max-model-len", "auto", "--json"], env={"HF_HUB_OFFLINE": "1"}
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout[: result.stdout.rindex("}") + 1])
    assert data["max_model_len"] < 131072 and data["startup_error"] is None


# -------------------------------------------------------------------------------------- the calibration cases

# cases with an `error:` that kvplan can check: (config, release, what the case leaves out)
CHECKED = {MINIMAX: ("MiniMaxAI__MiniMax-M2.7", "0.29.1rc1.dev17+gd2d649e67.d20260913")}


def _normal(text: str) -> str:
    """The wording without the numbers, parentheses, quotes and the exception name (the reporters quote loosely)."""
    text = re.sub(r"^\w+Error:\s*", "", text.strip())
    return re.sub(r"\s+", " ", re.sub(r"[\d.,()'`]+", " ", text)).strip()


def test_every_error_case_is_checked_or_listed(capsys):
    """Each 2026 case with `error:` text: predicted where kvplan reads the model and the case gives the pool;
    listed with the reason otherwise (tests/engines/test_calibration_2026.py SKIPPED has the model reasons)."""
    from test_calibration_2026 import SKIPPED

    errors = [c for c in CASES if c.get("error")]
    listed = []
    for case in errors:
        if case["id"] in CHECKED:
            continue
        pool = (case.get("reported") or {}).get("available_kv_cache_gib")
        reason = SKIPPED.get(case["id"], "not pinned")
        if pool is None:
            reason += "; the case prints no KV memory (the Mamba block count alone cannot be re-derived)"
        listed.append(f"{case['id']}: {reason}")
    with capsys.disabled():
        print("\nerror cases not predicted:\n  " + "\n  ".join(listed))
    assert len(listed) + len(CHECKED) == len(errors) and set(CHECKED) <= {c["id"] for c in errors}


@pytest.mark.parametrize("case_id", sorted(CHECKED))
def test_error_case_is_predicted_in_vllms_words(case_id):
    """MiniMax-M2.7 on 2 x GB10, vLLM 0.29.1 nightly (a 0.29.0 by kvplan's nightly rule: null block held back):
    the printed 22.5 GiB pool at both ends of its rounding predicts the one-request error, its 23.25 GiB needed,
    22.5 GiB available and an estimated maximum bracketing the logged 190272, in the logged words."""
    case = next(c for c in CASES if c["id"] == case_id)
    config, version = CHECKED[case_id]
    pool = case["reported"]["available_kv_cache_gib"] * GIB
    ends = [
        startup(_inputs(config, version, case["max_model_len"], case["tensor_parallel_size"], int(pool + d)))
        for d in (-0.005 * GIB, 0.005 * GIB)
    ]
    logged = case["error"]
    for out in ends:
        assert out.error is not None and out.rule == "max_model_len"
        assert _normal(logged) in _normal(out.error)  # the logged wording, ours continuing with vLLM's advice
        assert f"({format_gib(int(case['reported']['kv_cache_needed_gib'] * GIB))} GiB KV cache is needed" in out.error
    estimates = [out.max_model_len_fit for out in ends]
    assert estimates[0] <= case["reported"]["estimated_max_model_len"] <= estimates[1]
