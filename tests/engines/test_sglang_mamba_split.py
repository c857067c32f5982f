"""SGLang 0.5.23's split of a Mamba / linear-attention hybrid's KV budget: the state pool first
(`_handle_max_mamba_cache`, srt/mem_cache/kv_cache_configurator.py:3229-3409: --mamba-full-memory-ratio, default 0.9,
or --max-mamba-cache-size), the full-attention token pool from what is left (DefaultPoolConfigurator,
srt/model_executor/pool_configurator.py:229-251, :638-647), the PP ranks' MIN, and max_running_requests capped by
max_mamba_cache_size // the state slots a request holds (:3062-3088, :3134-3150).

Every expected figure is worked out in the docstrings from the configs (layer counts, heads, dims) and SGLang's
formulas, in its float order, not read back from kvplan. The cited lines are read back where the SGLang tree is on
this machine (`test_cited_engine_source_lines`).
"""

from __future__ import annotations

import json

import pytest
import yaml
from typer.testing import CliRunner

from kvplan.cli import app
from kvplan.core.shapes import model_shape
from kvplan.engines.base import Request
from kvplan.engines.sglang import (
    MAMBA_FULL_MEMORY_RATIO,
    SglangEngine,
    mamba_slots_per_request,
    sglang_hybrid_pool,
    sglang_mamba_pool,
)

from conftest import ENGINE_SOURCES, FIXTURES, check_cited_line, load_config

GIB = 1 << 30
_SOURCES = ENGINE_SOURCES / "sglang-0.5.23" / "sglang"
_KVC = "srt/mem_cache/kv_cache_configurator.py"
_PC = "srt/model_executor/pool_configurator.py"
_OV = "srt/arg_groups/overrides.py"
_CITED = [
    ("srt/arg_groups/fields/schedule.py", 220, "mamba_full_memory_ratio: A["),
    ("srt/arg_groups/fields/schedule.py", 225, "fallback=0.9,"),
    ("srt/arg_groups/fields/schedule.py", 216, "max_mamba_cache_size: A["),
    (_KVC, 227, "MAMBA_CACHE_SIZE_MAX_RUNNING_REQUESTS_RATIO = 3"),
    (_KVC, 3040, "rest_memory = self._handle_max_mamba_cache(rest_memory)"),
    (_KVC, 3060, "return int(rest_memory * (1 << 30))  # return in bytes"),
    (_KVC, 3064, "return 1"),
    (_KVC, 3077, "additional_ratio = get_mamba_tracking_slots("),
    (_KVC, 3110, "torch.distributed.all_reduce("),
    (_KVC, 3112, "op=torch.distributed.ReduceOp.MIN,"),
    (_KVC, 3137, "mamba_cap = get_schedule().max_mamba_cache_size // ratio"),
    (_KVC, 3150, "max_num_reqs = min(max_num_reqs, mamba_cap)"),
    (_KVC, 3251, "pp_layer_scale = max_stage_mamba_layers / max(len(all_mamba_layers), 1)"),
    (_KVC, 3260, "stage_per_req = int(per_req * pp_layer_scale)"),
    (_KVC, 3353, "total_rest_memory"),
    (_KVC, 3354, "* get_schedule().mamba_full_memory_ratio"),
    (_KVC, 3355, "/ (1 + get_schedule().mamba_full_memory_ratio)"),
    (_KVC, 3357, "mamba_budget_bytes = mamba_budget * (1 << 30)"),
    (_KVC, 3383, "(mamba_budget_bytes - replayssm_fixed_bytes - per_slot)"),
    (_KVC, 3384, "// per_slot"),
    (_KVC, 3392, "if get_schedule().max_mamba_cache_size <= 0:"),
    (_KVC, 3394, 'f"Not enough GPU memory for hybrid (mamba/linear-attention) state cache. "'),
    (_KVC, 3406, "(get_schedule().max_mamba_cache_size + 1) * (stage_per_req + extra_per_slot)"),
    (_KVC, 3409, "return total_rest_memory - mamba_state_memory"),
    (_PC, 233, "if kvc.layer_info.start_layer <= i < kvc.layer_info.end_layer"),
    (_PC, 247, "torch.iinfo(torch.int64).max"),
    (_PC, 249, "else get_schedule().max_total_tokens or kvc.model_config.context_len"),
    (_PC, 642, "available_bytes // self._cell_size"),
    (_PC, 646, "max_total_num_tokens = max_total_num_tokens // page_size * page_size"),
    ("srt/mem_cache/allocation_sizing.py", 19, "return 2 if overlap else 1"),
    ("srt/configs/mamba_utils.py", 125, ") * len(self.layers)"),
    ("srt/distributed/utils.py", 140, "if pp_rank >= pp_size - remainder:"),
    ("srt/utils/common.py", 432, "When distributed is True, the available memory is the minimum available memory"),
    (_OV, 369, "_MAMBA_RADIX_CACHE_ARCHS = frozenset("),
    (_OV, 403, "_MAMBA_EXTRA_BUFFER_ARCHS = frozenset("),
    (_OV, 483, 'declared["mamba_radix_cache_strategy"] = "extra_buffer"'),
    (_OV, 485, 'declared["mamba_radix_cache_strategy"] = "no_buffer"'),
    (_OV, 1625, "if view.pp_size > 1:"),
    (_OV, 1627, 'return {"disable_overlap_schedule": True}'),
    ("srt/arg_groups/pipeline.py", 225, "run_hook(handle_model_specific_adjustments, server_args)"),
    ("srt/arg_groups/pipeline.py", 302, "run_post_process_pass(server_args, _pipeline_parallel_overlap_disable)"),
    ("srt/models/qwen3_next.py", 1036, "assert self.pp_group.is_first_rank and self.pp_group.is_last_rank"),
    ("srt/models/falcon_h1.py", 456, "assert self.pp_group.is_first_rank and self.pp_group.is_last_rank"),
    ("srt/models/lfm2.py", 695, "assert self.pp_group.is_first_rank and self.pp_group.is_last_rank"),
    ("srt/models/lfm2_moe.py", 606, "assert self.pp_group.is_first_rank and self.pp_group.is_last_rank"),
    ("srt/models/lfm2_vl.py", 166, "self.language_model = Lfm2ForCausalLM("),
    ("srt/utils/common.py", 1680, "def make_pp_layers("),
    ("srt/utils/common.py", 311, "_check_cuda_device_version, device_capability_majors=[10], cuda_version=(12, 8)"),
    ("srt/arg_groups/model_overrides/qwen3_5.py", 41, "not mamba_extra_buffer_of(resolved_view(server_args))"),
    ("srt/arg_groups/model_overrides/qwen3_5.py", 48, '"page_size": 64 if sm100_default_attn_backend == "trtllm_mha"'),
    ("srt/arg_groups/overrides.py", 1362, 'return {"page_size": 1}'),
    ("srt/arg_groups/serving_hook.py", 440, "envs.SGLANG_MAMBA_SSM_DTYPE.set(cfg.mamba_ssm_dtype)"),
    ("srt/configs/mamba_utils.py", 103, "ssm_dtype = dtype_map[env_ssm_dtype]"),
    ("srt/arg_groups/fields/exec_.py", 494, 'choices=["float32", "bfloat16", "float16"],'),
    ("srt/environ.py", 1598, "SGLANG_VLM_CACHE_SIZE_MB = EnvInt(100)"),
    (_KVC, 210, "reserved_mb = envs.SGLANG_VLM_CACHE_SIZE_MB.get()"),
    (_KVC, 3038, "rest_memory = available_gpu_memory - slack_gb - mm_reservation_gb"),
    ("srt/configs/model_config.py", 809, "has_multimodal_subconfig = self.hf_config is not self.hf_text_config or ("),
    ("srt/configs/model_config.py", 693, '"Gemma3ForConditionalGeneration",'),
    ("srt/model_loader/utils.py", 183, "not model_module.is_backend_compatible()"),
    ("srt/model_loader/utils.py", 186, 'f"{arch} has no SGlang implementation and the Transformers "'),
]


@pytest.mark.parametrize(("path", "line", "text"), _CITED)
def test_cited_engine_source_lines(path, line, text):
    check_cited_line(_SOURCES / path, line, text)


def _recommend(*args: str) -> dict:
    result = CliRunner().invoke(app, ["recommend", *args, "--engine", "sglang", "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


# Qwen3.5-27B (Qwen3_5ForConditionalGeneration): 64 layers, every 4th full attention (16 layers: 4 KV heads x 256
# x (K + V) x 2 B = 4,096 B a layer, 65,536 B a token at TP 1), 48 gated-DeltaNet layers of 48 value heads, 16 key
# heads, dims 128, conv kernel 4: SGLang's Mamba2StateShape (configs/mamba_utils.py:195-244) conv (128 x 48 + 2 x 16
# x 128 = 10,240 channels, 3 columns) bf16 = 61,440 B, SSM (48, 128, 128) float32 (the config's mamba_ssm_dtype) =
# 3,145,728 B: 3,207,168 B a layer, 153,944,064 B a request (mamba_cache_per_req).
QWEN35_27B_SLOT = 48 * (10_240 * 3 * 2 + 48 * 128 * 128 * 4)
QWEN35_27B_CELL = 16 * 4 * 256 * 2 * 2
# The split's figures below are worked out on the budget at mem_fraction_static 0.834, given, so they test the split
# alone; SGLang 0.5.23's own default for this multimodal model on an H100 (0.829 x its VLM reduction) is worked out in
# tests/engines/test_sglang_mem_fraction.py.
AT_0834 = ("--gpu-memory-utilization", "0.834")


def test_qwen3_5_27b_h100_pools_by_hand():
    """`kvplan recommend Qwen/Qwen3.5-27B -g h100 --engine sglang`: the budget B (available_kv_memory_bytes,
    16,095,785,184 B = 14.9904 GiB with kvplan's weights, after SGLang's 100 MiB multimodal reservation:
    SGLANG_VLM_CACHE_SIZE_MB, kv_cache_configurator.py:202-219, :3034-3038) is SGLang's rest_memory. K = int((B/2**30
    x 0.9 / 1.9 x 2**30 - 153,944,064) // 153,944,064) = int(48.53) = 48 state slots; the pool holds K + 1 = 49 of
    them, 7,543,259,136 B; the full-attention pool gets int((B/2**30 - 7,543,259,136/2**30) x 2**30) =
    8,552,526,048 B, // 65,536 = 130,501 tokens (130,501.19): less than one 131,072-token request, so the plan does
    not fit and the longest request is 130,501. max_running_requests: SGLang's own min(max(min(130,501 / 131,072 x
    512, 4096), 2048), 130,501 // 2) = 2,048, capped by the state pool to 48 // 5 = 9 (extra_buffer: 3 + 2 slots a
    request, Qwen3_5ForConditionalGeneration in both architecture sets with the overlap scheduler on). Before
    SGLang's split kvplan gave every byte to tokens: 247,202 tokens, 2,048 running requests, and a fit."""
    d = _recommend("Qwen/Qwen3.5-27B", "-g", "h100", *AT_0834)
    budget = d["available_kv_memory_bytes"]
    assert budget == 16_095_785_184  # kvplan's budget (weights analytic), the input of the split below
    assert any(t["name"] == "multimodal_reservation" and t["bytes"] == -100 * 2**20 for t in d["budget"])
    assert QWEN35_27B_SLOT == 153_944_064
    assert d["mamba_cache_blocks"] == 48
    assert d["kv_cache_tokens"] == 130_501 == (budget - 49 * QWEN35_27B_SLOT) // QWEN35_27B_CELL
    assert d["max_num_seqs"] == 9
    assert d["max_concurrency"] == 1.0  # 130,501 / 131,072 = 0.9956
    assert d["fits"] is False and d["max_model_len_fit"] == 130_501
    assert d["startup_error"] is None  # SGLang starts; its pool holds no whole request of max_model_len


def test_ratio_and_cache_size_flags_reach_the_pool_and_the_command():
    """--mamba-full-memory-ratio 0.3 on the same budget B: B x 0.3 / 1.3 = 3,714,411,965 B of state budget,
    (3,714,411,965 - 153,944,064) // 153,944,064 = 23 (23.13) slots; tokens (B - 24 x slot) // 65,536 = 189,226;
    running 23 // 5 = 4.
    --max-mamba-cache-size 20: K = 20 as given, tokens (B - 21 x slot) // 65,536 = 196,273, running 20 // 5 = 4.
    Both print as SGLang's options on its command."""
    ratio = _recommend("Qwen/Qwen3.5-27B", "-g", "h100", "--mamba-full-memory-ratio", "0.3", *AT_0834)
    budget = ratio["available_kv_memory_bytes"]
    assert int((budget / GIB * 0.3 / 1.3 * GIB - QWEN35_27B_SLOT) // QWEN35_27B_SLOT) == 23
    assert ratio["mamba_cache_blocks"] == 23
    assert ratio["kv_cache_tokens"] == 189_226 == (budget - 24 * QWEN35_27B_SLOT) // QWEN35_27B_CELL
    assert ratio["max_num_seqs"] == 4
    assert ratio["flags"]["sglang"].endswith("--mamba-full-memory-ratio 0.3")
    sized = _recommend("Qwen/Qwen3.5-27B", "-g", "h100", "--max-mamba-cache-size", "20", *AT_0834)
    assert sized["mamba_cache_blocks"] == 20
    assert sized["kv_cache_tokens"] == 196_273 == (budget - 21 * QWEN35_27B_SLOT) // QWEN35_27B_CELL
    assert sized["max_num_seqs"] == 4
    assert sized["flags"]["sglang"].endswith("--max-mamba-cache-size 20")


def test_too_small_a_ratio_leaves_no_state_slot_and_sglang_does_not_start():
    """--mamba-full-memory-ratio 0.001: 14.9904 GiB x 0.001 / 1.001 = 16,079,705 B, (16,079,705 - 153,944,064) //
    153,944,064 = -1.0 -> K = -1: SGLang raises 'Not enough GPU memory for hybrid (mamba/linear-attention) state
    cache' (kv_cache_configurator.py:3392-3402) before any pool is built."""
    d = _recommend("Qwen/Qwen3.5-27B", "-g", "h100", "--mamba-full-memory-ratio", "0.001")
    assert d["mamba_cache_blocks"] == -1
    assert d["fits"] is False and d["kv_cache_tokens"] == 0
    assert d["startup_error"].startswith(
        "Not enough GPU memory for hybrid (mamba/linear-attention) state cache. Computed max_mamba_cache_size=-1 "
    )


@pytest.mark.parametrize(
    ("flag", "value", "field"),
    [("--mamba-full-memory-ratio", "0", "mamba_full_memory_ratio"), ("--max-mamba-cache-size", "0", "max_mamba")],
)
def test_settings_that_leave_no_slot_are_refused(flag, value, field):
    result = CliRunner().invoke(app, ["recommend", "Qwen/Qwen3.5-27B", "-g", "h100", "--engine", "sglang", flag, value])
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert lines[0].startswith(f"error: {flag} 0 ")
    assert "kv_cache_configurator.py" in lines[0]
    assert lines[1].startswith("hint: ")


@pytest.mark.parametrize("value", ["inf", "nan", "1e308"])
def test_a_ratio_whose_state_budget_overflows_is_refused(value):
    """rest x ratio / (1 + ratio) (kv_cache_configurator.py:3350-3402) is inf or NaN for these: one error line, not
    an internal error."""
    result = CliRunner().invoke(
        app, ["recommend", "Qwen/Qwen3.5-27B", "-g", "h100", "--engine", "sglang", "--mamba-full-memory-ratio", value]
    )
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert lines[0].startswith("error: --mamba-full-memory-ratio ") and "overflows" in lines[0]
    assert lines[1].startswith("hint: ") and "internal error" not in result.output


def test_one_state_slot_serves_no_request_so_nothing_is_served():
    """--max-mamba-cache-size 1: one slot, 1 // 5 = 0 running requests, which SGLang refuses to start with
    (kv_cache_configurator.py:3152-3160); the plan has no tokens and no longer length to offer, and the command
    keeps the max_model_len asked for (it offered the pool's 137,331 tokens before)."""
    d = _recommend("Qwen/Qwen3.5-27B", "-g", "h100", "--max-mamba-cache-size", "1", *AT_0834)
    assert d["fits"] is False and d["kv_cache_tokens"] == 0 and d["max_model_len_fit"] == 0
    assert d["startup_error"].startswith("Hybrid (mamba/linear-attention) state cache is too small to serve any")
    assert "--context-length 131072 " in d["flags"]["sglang"]


def test_a_plan_files_ratio_hint_is_sglangs_kind_of_value(tmp_path):
    plan = tmp_path / "plan.yaml"
    plan.write_text(
        "deployments:\n  - name: q\n    model: Qwen/Qwen3.5-27B\n    gpu: h100\n    engine: sglang\n"
        "    max_model_len: 32768\n    mamba_full_memory_ratio: 0\n"
    )
    result = CliRunner().invoke(app, ["check", str(plan), "--offline"])
    assert result.exit_code == 2
    assert "hint: write e.g. 0.9" in result.output


def test_other_engines_ignore_the_sglang_split():
    result = CliRunner().invoke(
        app, ["recommend", "Qwen/Qwen3.5-27B", "-g", "h100", "--engine", "vllm", "--mamba-full-memory-ratio", "0.3"]
    )
    assert result.exit_code == 0, result.output
    assert "--mamba-full-memory-ratio does not apply to vllm and was ignored" in result.output


# ktransformers 1870: SGLang, 2x RTX 4090, TP 2, bf16, Qwen3.5-397B-A17B (tests/engines/test_qwen3_5.py identifies
# the checkpoint), --max-running-requests 1: "Mamba Cache is allocated. max_mamba_cache_size: 82" and "KV Cache is
# allocated. #tokens: 580364", "max_running_requests=1".
KTRANSFORMERS_1870 = "sglang-ktransformers-1870-qwen35-moe-2x4090-tp2-ctx8192"


def test_ktransformers_1870_slots_follow_from_the_logged_token_pool():
    """The log prints no budget, so the check runs backwards and forwards. Qwen3.5-397B-A17B at TP 2: 15 full-
    attention layers x 1 KV head x 256 x 2 x 2 B = 15,360 B a token; 45 DeltaNet layers x (conv (64 x 128 + 2 x 16
    x 128) / 2 = 6,144 channels x 3 columns x 2 B = 36,864 B + SSM (32, 128, 128) x 4 B = 2,097,152 B) = 45 x
    2,134,016 = 96,030,720 B a request.
    580,364 tokens need a budget B in [580,364 x 15,360 + 83 x 96,030,720, 580,365 x 15,360 + 83 x 96,030,720) =
    [16,884,940,800, 16,884,956,160) B (15.7253 GiB); every such B gives K = int((B x 0.9 / 1.9 - 96,030,720) //
    96,030,720) = int(82.29) = 82, the logged max_mamba_cache_size, with SGLang's default ratio 0.9 (0.8 would
    give 77, 1.0 86). max_running_requests: min(1 given, 580,364 // 2, 82 // 5) = 1, as logged."""
    case = next(
        c
        for c in yaml.safe_load((FIXTURES / "calibration" / "engine_cases_2026.yaml").read_text())
        if c["id"] == KTRANSFORMERS_1870
    )
    reported, tp = case["reported"], case["tensor_parallel_size"]
    shape = model_shape(load_config("Qwen__Qwen3.5-397B-A17B"))
    engine = SglangEngine(shape.architectures)
    req = Request(case["max_model_len"], 1, "bfloat16", "bfloat16", tp=tp)
    slot, cell = 45 * (6_144 * 3 * 2 + 32 * 128 * 128 * 4), 15 * 256 * 2 * 2
    assert slot == 96_030_720
    low = reported["kv_cache_tokens"] * cell + (reported["sglang_max_mamba_cache_size"] + 1) * slot
    for budget in (low, low + cell - 1):
        pool = sglang_hybrid_pool(engine, shape, req, budget)
        assert (pool.slot_bytes, pool.slots, pool.tokens) == (slot, 82, 580_364)
        assert pool.slots == reported["sglang_max_mamba_cache_size"]
        assert pool.tokens == reported["kv_cache_tokens"]
        assert min(case["max_num_seqs"], pool.tokens // 2, pool.running_cap) == 1
        for ratio, slots in ((0.8, 77), (1.0, 86)):  # the ratio is what the logged slots pin
            assert sglang_mamba_pool(budget, slot, 45, 45, [cell], 8192, 5, ratio).slots == slots


def test_slots_per_request_by_architecture_and_pp():
    """SGLang's `_calculate_mamba_ratio` at its defaults: Qwen3.5 and Nemotron-H resolve `auto` to extra_buffer
    (both architecture sets, overlap scheduler on): 3 + 2 = 5; under PP the overlap scheduler goes off after the
    strategy is resolved: 3 + 1 = 4; LFM2 resolves to no_buffer: 3; Lfm2-VL is in neither set: 3."""
    assert mamba_slots_per_request(("Qwen3_5ForConditionalGeneration",), 1)[0] == 5
    assert mamba_slots_per_request(("NemotronHForCausalLM",), 1)[0] == 5
    assert mamba_slots_per_request(("NemotronHForCausalLM",), 2)[0] == 4
    assert mamba_slots_per_request(("Lfm2ForCausalLM",), 1)[0] == 3
    assert mamba_slots_per_request(("Lfm2VlForConditionalGeneration",), 1)[0] == 3
    assert MAMBA_FULL_MEMORY_RATIO == 0.9


def test_nemotron_3_nano_pp3_first_to_fill_stage_bounds_the_pool():
    """NVIDIA-Nemotron-3-Nano-30B-A3B (52 layers, pattern MEMEM*EMEMEM*...: 23 Mamba2, 6 attention, 23 MoE) at TP 1,
    PP 3, 8 GiB budget. SGLang's split (get_pp_indices: the last 52 % 3 = 1 stage takes one more) is 17 / 17 / 18
    layers: [0, 17) holds 8 Mamba + 2 attention, [17, 34) 7 + 3, [34, 52) 8 + 1. A Mamba2 layer: conv (64 x 64 + 2
    x 8 x 128 = 6,144 channels, 3 columns) bf16 = 36,864 B, SSM (64, 64, 128) float32 (SGLang reads no
    mamba_ssm_dtype there) = 2,097,152 B: mamba_cache_per_req 23 x 2,134,016 = 49,082,368 B, scaled to the largest
    stage's 8 of 23: int(49,082,368 x 8 / 23) = 17,072,128 B a slot on every rank. K = int((8 x 0.9 / 1.9 x 2**30
    - 17,072,128) // 17,072,128) = int(237.34) = 237; state (237 + 1) x 17,072,128 = 4,063,166,464 B; left
    4,526,768,128 B. Tokens per stage (2 KV heads x (128 + 128) x 2 B = 1,024 B an attention layer): 2,210,336 /
    1,473,557 / 4,420,672; the MIN, 1,473,557, is the middle stage's (3 attention layers), not the stage with the
    most layers. Running requests: 237 // 4 (no overlap scheduler under PP) = 59."""
    shape = model_shape(load_config("nvidia__NVIDIA-Nemotron-3-Nano-30B-A3B-BF16"))
    engine = SglangEngine(shape.architectures)
    pool = sglang_hybrid_pool(engine, shape, Request(8192, 1, "bfloat16", "bfloat16", tp=1, pp=3), 8 * GIB)
    assert pool.slot_bytes == 17_072_128
    assert pool.slots == 237
    assert pool.state_bytes == 4_063_166_464
    assert pool.kv_bytes == 4_526_768_128
    assert pool.tokens == 1_473_557 == 4_526_768_128 // (3 * 1024)
    assert pool.slots_per_request == 4 and pool.running_cap == 59
    stages = engine.layer_stages(shape, 3)
    assert [len(r) for r in stages] == [17, 17, 18]


def test_estimate_prices_the_sglang_pp_split_of_a_hybrid():
    """`kvplan estimate Qwen/Qwen3.5-27B --engine sglang --pp 3`: SGLang's split [0, 21) / [21, 42) / [42, 64)
    puts full attention at 3, 7, ... 63 as 5 / 5 / 6 layers, so the fullest GPU's marginal bytes per token are 6 x
    4,096 = 24,576 (vLLM's split, 22 / 21 / 21, would give 5 x 4,096 on its first stage, 6 on none)."""
    result = CliRunner().invoke(app, ["estimate", "Qwen/Qwen3.5-27B", "--engine", "sglang", "--pp", "3", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["bytes_per_token_per_gpu"] == 6 * 4096


@pytest.mark.parametrize("model", ["Qwen/Qwen3-Next-80B-A3B", "LiquidAI/LFM2.5-VL-1.6B"])
def test_pp_is_refused_for_hybrids_sglang_runs_on_one_stage(model):
    result = CliRunner().invoke(app, ["recommend", model, "-g", "h100", "--engine", "sglang", "--pp", "2"])
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert lines[0].startswith("error: SGLang 0.5.23 runs ")
    assert "is_first_rank and self.pp_group.is_last_rank" in lines[0]
    assert lines[1] == "hint: use --pp 1 (split the model with --tp instead)"


def test_stage_without_attention_and_model_without_attention():
    """A PP stage with no full-attention layer gives int64 max, so the MIN is the other stages'
    (pool_configurator.py:240-251); a model with none at all holds context_len tokens. 4 GiB, a 1 MiB slot on 4
    layers of which a stage holds 2 at most: slot int(2**20 x 2 / 4) = 524,288 B; K = int((4 x 0.9 / 1.9 x 2**30 -
    524,288) // 524,288) = int(3,879.4) = 3,879; left 4 x 2**30 - 3,880 x 524,288 = 2,260,729,856 B, // 2,048 =
    1,103,872 tokens."""
    pool = sglang_mamba_pool(4 * GIB, 1 << 20, 4, 2, [0, 2048], 8192, 3)
    assert (pool.slots, pool.kv_bytes, pool.tokens) == (3_879, 2_260_729_856, 1_103_872)
    assert sglang_mamba_pool(4 * GIB, 1 << 20, 4, 4, [0], 8192, 3).tokens == 8192


def _check(*args: object) -> dict:
    result = CliRunner().invoke(app, ["check", *map(str, args), "--json"])
    assert result.exit_code in (0, 1), result.output
    return json.loads(result.stdout)["deployments"][0]


def test_a_plan_file_and_an_sglang_server_args_file_carry_the_split(tmp_path):
    """The plan keys mamba_full_memory_ratio / max_mamba_cache_size and SGLang's own spellings in a server-args
    file reach the same split as the CLI options: at ratio 0.3 the H100 plan of Qwen3.5-27B holds 23 state slots and
    189,226 tokens (test_ratio_and_cache_size_flags_reach_the_pool_and_the_command), at 20 slots 196,273."""
    plan = tmp_path / "kvplan.yaml"
    plan.write_text(
        "deployments:\n  - name: q\n    model: Qwen/Qwen3.5-27B\n    gpu: h100\n    engine: sglang\n"
        "    max_model_len: 131072\n    mamba_full_memory_ratio: 0.3\n    gpu_memory_utilization: 0.834\n"
    )
    row = _check(plan)
    assert row["kv_cache_tokens"] == 189_226
    assert any("max_mamba_cache_size 23 // 5" in n for n in row["notes"])
    server = tmp_path / "sglang.yaml"
    server.write_text(
        "model-path: Qwen/Qwen3.5-27B\ncontext-length: 131072\nmax-mamba-cache-size: 20\nmem-fraction-static: 0.834\n"
    )
    row = _check("--engine-config", server, "--engine", "sglang", "--gpu", "h100")
    assert row["kv_cache_tokens"] == 196_273
    assert not any("max-mamba-cache-size" in n and "not modelled" in n for n in row["notes"])
    assert row["recommend"]["flags"]["sglang"].endswith("--max-mamba-cache-size 20")


def test_blackwell_pages_qwen3_5_tokens_by_64():
    """On B200 (compute capability 10.0, SGLang's is_sm100: srt/utils/common.py:309-313) Qwen3.5's override picks
    trtllm_mha with page_size 64 while its radix cache keeps the extra_buffer (arg_groups/model_overrides/
    qwen3_5.py:39-49), so the token pool is whole 64-token pages: tokens = (B - (K + 1) x slot) // 65,536 // 64 x
    64. On H100 the same model pools single tokens (page 1)."""
    d = _recommend("Qwen/Qwen3.5-27B", "-g", "b200")
    budget, slots = d["available_kv_memory_bytes"], d["mamba_cache_blocks"]
    assert d["block_size"] == 64
    assert d["kv_cache_tokens"] == (budget - (slots + 1) * QWEN35_27B_SLOT) // QWEN35_27B_CELL // 64 * 64
    assert d["num_blocks"] == d["kv_cache_tokens"] // 64
    assert _recommend("Qwen/Qwen3.5-27B", "-g", "h100")["block_size"] == 1


def test_mamba_ssm_dtype_halves_the_ssm_state_and_doubles_the_slots():
    """--mamba-ssm-dtype bfloat16 (SGLANG_MAMBA_SSM_DTYPE, arg_groups/serving_hook.py:439-440, over the config's
    float32: configs/mamba_utils.py:93-103): a Qwen3.5-27B slot is 48 x (61,440 + 48 x 128 x 128 x 2) = 78,446,592 B;
    on the H100 budget B: K = int((B x 0.9 / 1.9 - 78,446,592) // 78,446,592) = int(96.19) = 96, tokens (B - 97 x
    78,446,592) // 65,536 = 129,493, running 96 // 5 = 19 (against 48 slots and 9 in float32). A dtype SGLang does
    not take is refused."""
    d = _recommend("Qwen/Qwen3.5-27B", "-g", "h100", "--mamba-ssm-dtype", "bfloat16", *AT_0834)
    slot = 48 * (10_240 * 3 * 2 + 48 * 128 * 128 * 2)
    assert slot == 78_446_592
    assert d["mamba_cache_blocks"] == 96
    assert d["kv_cache_tokens"] == 129_493 == (d["available_kv_memory_bytes"] - 97 * slot) // QWEN35_27B_CELL
    assert d["max_num_seqs"] == 19
    assert d["flags"]["sglang"].endswith("--mamba-ssm-dtype bfloat16")
    result = CliRunner().invoke(
        app, ["recommend", "Qwen/Qwen3.5-27B", "-g", "h100", "--engine", "sglang", "--mamba-ssm-dtype", "fp8"]
    )
    assert result.exit_code == 2
    assert result.output.startswith("error: --mamba-ssm-dtype fp8 is not one of SGLang's choices")


def test_check_binds_a_hybrid_without_state_slots_to_sglangs_start_up_error(tmp_path):
    """`kvplan check` of a plan whose ratio leaves no slot: SGLang stops in `_handle_max_mamba_cache` before any
    pool exists, so the binding constraint is the start-up, in SGLang's words, not a max_model_len that "does not
    fit"."""
    plan = tmp_path / "kvplan.yaml"
    plan.write_text(
        "deployments:\n  - name: q\n    model: Qwen/Qwen3.5-27B\n    gpu: h100\n    engine: sglang\n"
        "    max_model_len: 131072\n    mamba_full_memory_ratio: 0.001\n"
    )
    row = _check(plan)
    assert row["ok"] is False and row["binding_constraint"] == "startup"
    assert row["binding_detail"].startswith(
        "sglang would not start: Not enough GPU memory for hybrid (mamba/linear-attention) state cache."
    )


def test_sglang_multimodal_reservation_follows_is_multimodal():
    """SGLang reserves SGLANG_VLM_CACHE_SIZE_MB (100) out of the KV budget of a model it serves as multimodal
    (kv_cache_configurator.py:202-219): Qwen3.5's config has a text_config (configs/model_config.py:809); Gemma 3
    is served text-only unless --enable-multimodal (:690-705); a text-only Llama has no sub-config."""
    from kvplan.engines.sglang import SGLANG_VLM_CACHE_SIZE_MB, sglang_multimodal

    assert SGLANG_VLM_CACHE_SIZE_MB == 100
    assert sglang_multimodal(load_config("Qwen__Qwen3.5-27B"))
    assert not sglang_multimodal(
        {**load_config("Qwen__Qwen3.5-27B"), "architectures": ["Gemma3ForConditionalGeneration"]}
    )
    assert not sglang_multimodal(load_config("meta-llama__Llama-3.1-8B"))


def test_jamba_is_refused_sglang_has_no_model_for_it():
    """SGLang 0.5.23 has no Jamba model, and its Transformers fallback raises for a class that is not
    backend-compatible (srt/model_loader/utils.py:181-187): kvplan does not plan a Mamba split SGLang never builds."""
    result = CliRunner().invoke(app, ["recommend", "ai21labs/AI21-Jamba-1.5-Mini", "-g", "h100", "--engine", "sglang"])
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert lines[0].startswith("error: SGLang 0.5.23 does not serve Jamba")
    assert lines[1].startswith("hint: use --engine vllm")
    if _SOURCES.exists():
        assert not list((_SOURCES / "srt" / "models").glob("*jamba*"))
