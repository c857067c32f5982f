"""`kvplan recommend`: the per-GPU KV budget, vLLM capacity from it, fit and flags, checked against real logs
(tests/fixtures/calibration, llm-d vLLM 0.19 on H100 80GB)."""

from __future__ import annotations

import json

import pytest
import yaml
from typer.testing import CliRunner

from kvplan.cli import app
from kvplan.engines.sglang import sglang_mem_fraction_static
from kvplan.errors import UsageError
from kvplan.planning.recommend import recommend

from conftest import FIXTURES
from conftest import load_config as _config

GIB = 2**30
CASES = {c["id"]: c for c in yaml.safe_load((FIXTURES / "calibration" / "engine_cases.yaml").read_text())}
runner = CliRunner()


def _rec(model, **kw):
    kw.setdefault("gpu_profile", "h100-sxm-80gb")
    return recommend(model, offline=True, **kw)


@pytest.mark.parametrize(
    "case_id,model,blocks,tokens,concurrency",
    [
        ("llmd-v0190-meta-llama-llama-h100-80gb-tp1pp1dp1-8192-dtbf16", "meta-llama/Llama-3.1-8B", 29750, None, 58.11),
        ("llmd-v0190-google-gemma-2-9b-it-h100-80gb-tp1pp1dp1-8192", "google/gemma-2-9b-it", 21110, None, 20.6),
        ("llmd-v0190-meta-llama-llama-3-1-8b-h100-80gb-tp1pp1dp1-32768", "meta-llama/Llama-3.1-8B", 29751, None, 14.53),
    ],
)
def test_kv_memory_reproduces_vllm_blocks_and_concurrency(case_id, model, blocks, tokens, concurrency):
    case = CASES[case_id]
    r = case["reported"]
    assert r["kv_cache_blocks"] == blocks and r["max_concurrency"] == concurrency
    rec = _rec(
        model,
        max_model_len=case["max_model_len"],
        kv_memory=f"{r['available_kv_cache_gib']}GiB",
        gpu_memory_utilization=case["gpu_memory_utilization"],
        vllm_version=case["engine_version"],
    )
    assert rec.available_kv_memory_bytes == int(r["available_kv_cache_gib"] * GIB)
    assert abs(rec.num_blocks - blocks) <= 3
    assert rec.block_size == 16
    assert abs(rec.max_concurrency - concurrency) <= 0.02
    if "llama" in model.lower():  # full attention: tokens = blocks x 16, logged value within the rounding
        assert abs(rec.kv_cache_tokens - r["kv_cache_tokens"]) <= 3 * 16
    assert rec.fits
    # the scheduler cap the release runs with on an H100 (vLLM's default, 1024), not the KV-limited concurrency:
    # max_num_seqs is a cap (vllm-0.33.0/vllm/v1/core/sched/scheduler.py:131)
    assert rec.max_num_seqs == 1024
    assert rec.max_num_batched_tokens == 8192
    assert rec.budget[0].name == "kv_memory"


def test_modelled_budget_close_to_logged_available_memory():
    """Without --kv-memory, the modelled budget (vLLM <= 0.20: no CUDA-graph term) is near the logged 58.11 GiB."""
    rec = _rec("meta-llama/Llama-3.1-8B", max_model_len=8192, gpu_memory_utilization=0.95, cudagraph_profiling=False)
    assert abs(rec.available_kv_memory_bytes / GIB - 58.11) < 0.3
    names = [t.name for t in rec.budget]
    assert names == ["total_x_utilization", "weights", "rope_cache", "activation_peak", "non_torch"]
    assert sum(t.bytes for t in rec.budget) == rec.available_kv_memory_bytes
    with_graphs = _rec("meta-llama/Llama-3.1-8B", max_model_len=8192, gpu_memory_utilization=0.95)
    assert with_graphs.budget[-1].name == "cudagraph"
    assert 0.5 * GIB < -with_graphs.budget[-1].bytes < 1.5 * GIB


def test_tp_splits_weights_and_adds_non_torch():
    one = _rec("meta-llama/Llama-3.1-8B", max_model_len=8192, gpu_memory_utilization=0.95, cudagraph_profiling=False)
    two = _rec(
        "meta-llama/Llama-3.1-8B", gpus=2, max_model_len=8192, gpu_memory_utilization=0.95, cudagraph_profiling=False
    )
    assert two.tp == 2 and two.weights_bytes == one.weights_bytes // 2
    assert abs(two.available_kv_memory_bytes / GIB - 63.76) < 0.4  # logged TP2 value
    assert two.num_blocks > 2 * one.num_blocks  # half the KV heads per GPU and more memory


def test_405b_on_one_l4_does_not_fit():
    rec = recommend("meta-llama/Llama-3.1-405B", gpu_profile="l4", offline=True)
    assert rec.fits is False
    assert rec.available_kv_memory_bytes == 0 and rec.num_blocks == 0 and rec.max_model_len_fit == 0
    assert rec.min_tp_to_fit is None  # not even TP 8 of L4s hold 810 GB of weights
    assert rec.max_model_len == 131072


def test_smallest_tp_and_fp8_alternative():
    rec = recommend("meta-llama/Llama-3.1-70B", gpu_profile="h100-sxm-80gb", offline=True)
    assert rec.fits is False and rec.min_tp_to_fit == 4  # 131.4 GiB of weights; TP 2 leaves < 0 GiB at 0.9
    rec = recommend(
        "meta-llama/Llama-3.1-70B",
        gpu_profile="h100-sxm-80gb",
        gpus=1,
        max_model_len=8192,
        gpu_memory_utilization=0.95,
        cudagraph_profiling=False,
        offline=True,
    )
    assert rec.fits is False and rec.min_tp_to_fit == 2
    assert rec.fp8_kv is not None and rec.fp8_kv["fits"] is False
    rec = _rec("meta-llama/Llama-3.1-8B", max_model_len=131072, concurrency=5)
    assert rec.fits is False and rec.max_concurrency < 5
    assert rec.fp8_kv["fits"] is True and rec.fp8_kv["changes_answer"] is True
    assert rec.fp8_kv["max_concurrency"] == pytest.approx(2 * rec.max_concurrency, rel=0.01)


def test_max_model_len_fit_is_the_largest_one_request_length():
    rec = _rec("meta-llama/Llama-3.1-8B", kv_memory="1GiB", max_model_len=131072, vllm_version="0.19")  # < 0.29
    # 1 GiB / 128 KiB per token (32 layers x 8 heads x 128 x 2 x 2 bytes) = 8192 tokens = 512 blocks
    assert rec.num_blocks == 512 and rec.max_model_len_fit == 8192 and not rec.fits
    assert "--max-model-len 8192" in rec.flags["vllm"]


def test_flags_for_every_engine():
    rec = _rec("meta-llama/Llama-3.1-8B", max_model_len=32768, kv_dtype="fp8")
    assert set(rec.flags) == {"vllm", "sglang", "llama.cpp", "lightllm", "tgi", "xinference", "tensorrt-llm"}
    # --max-num-seqs: vLLM's default cap on an H100 (1024), not the KV-limited concurrency
    assert rec.flags["vllm"].startswith("vllm serve meta-llama/Llama-3.1-8B --max-model-len 32768 --max-num-seqs 1024 ")
    assert rec.flags["vllm"].endswith("--kv-cache-dtype fp8")
    assert "--context-length 32768" in rec.flags["sglang"]
    assert "--max-running-requests" not in rec.flags["sglang"]  # none given: SGLang derives its own cap
    slots = int(rec.max_concurrency)  # llama.cpp's -np slots each reserve max_model_len: those that fit
    assert slots < rec.max_num_seqs
    assert f"-c {32768 * slots} -np {slots}" in rec.flags["llama.cpp"]  # -c: all slots
    # llama.cpp has no fp8 cache: its 8-bit type q8_0, not the f16 default (twice the memory planned)
    assert "--cache-type-k q8_0 --cache-type-v q8_0 -fa on" in rec.flags["llama.cpp"]
    # LightLLM has no fp8 cache for Llama: its own budget at bf16, (85028896768 x 0.9 - 16060522496 B of bf16
    # weights) / 131072 B per bf16 token, and a comment saying why
    assert f"--max_total_token_num {(int(85028896768 * 0.9) - 16060522496) // 131072}" in rec.flags["lightllm"]
    assert "# LightLLM has no fp8_e4m3 KV cache" in rec.flags["lightllm"]
    assert "--max-total-tokens 32768" in rec.flags["tgi"] and "--kv-cache-dtype fp8_e4m3fn" in rec.flags["tgi"]
    assert "--max-batch-prefill-tokens 32767" in rec.flags["tgi"]  # >= max input: TGI's router checks it
    assert "--model-name llama-3.1 --size-in-billions 8" in rec.flags["xinference"]  # its registry's name
    assert "max_model_len 32768" in rec.flags["xinference"] and "--kv_cache_dtype fp8" in rec.flags["xinference"]


def test_sglang_heuristic_budget():
    # 81090 MB (< 90 GB tier): reserved = 512 + 8192 x 1.5 + 1/8 x 1024 + 256 x 2 (decode graphs) + 58 x 8 (prefill
    # graph buckets up to 8192 tokens) = 13904 MB -> 0.829 (sglang-0.5.23 srt/arg_groups/memory_hook.py:281-328, :368,
    # :386; tests/engines/test_sglang_mem_fraction.py)
    assert sglang_mem_fraction_static(85028896768, 1, 1) == 0.829
    rec = _rec("meta-llama/Llama-3.1-8B", engine="sglang", max_model_len=8192)
    assert rec.block_size == 1 and rec.num_blocks == rec.kv_cache_tokens
    expected = int(85028896768 * rec.gpu_memory_utilization) - rec.weights_bytes
    assert rec.available_kv_memory_bytes == expected
    assert rec.kv_cache_tokens == expected // (128 * 1024)


def test_other_engines_refused():
    with pytest.raises(UsageError, match="recommend supports vllm, sglang, llamacpp, tensorrt-llm, lightllm"):
        _rec("meta-llama/Llama-3.1-8B", engine="transformers")
    with pytest.raises(UsageError, match=r"q8_0 is a llama.cpp \(ggml\) cache type; vllm"):
        _rec("meta-llama/Llama-3.1-8B", kv_dtype="q8_0")
    with pytest.raises(UsageError, match="no tensor parallelism"):
        _rec("meta-llama/Llama-3.1-8B", engine="llama.cpp", gpus=2, tp=2)


def test_cli_json_and_exit_codes():
    result = runner.invoke(
        app,
        [
            "recommend",
            "meta-llama/Llama-3.1-8B",
            "--gpu-profile",
            "h100-sxm-80gb",
            "--kv-memory",
            "58.11GiB",
            "--max-model-len",
            "8k",
            "--offline",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    for key in (
        "gpu_profile",
        "gpus",
        "engine",
        "tp",
        "pp",
        "weights_bytes",
        "available_kv_memory_bytes",
        "kv_cache_tokens",
        "num_blocks",
        "block_size",
        "max_model_len",
        "max_concurrency",
        "max_num_seqs",
        "max_num_batched_tokens",
        "kv_dtype",
        "fits",
        "budget",
        "flags",
    ):
        assert key in data
    assert abs(data["num_blocks"] - 29750) <= 3
    bad = runner.invoke(app, ["recommend", "meta-llama/Llama-3.1-8B", "--gpu-profile", "no-such-gpu", "--offline"])
    assert bad.exit_code == 2
    table = runner.invoke(app, ["recommend", "meta-llama/Llama-3.1-405B", "--gpu-profile", "l4", "--offline"])
    assert table.exit_code == 0 and "no" in table.stdout and "vllm serve" in table.stdout
    engine = runner.invoke(app, ["recommend", "meta-llama/Llama-3.1-8B", "-g", "h100", "--engine", "tgi", "--offline"])
    assert engine.exit_code == 2


# ------------------------------------------------------------------------------------------------ llama.cpp

MIB = 2**20


def test_llamacpp_budget_terms_and_slots():
    """Budget: memory - weights - compute buffer - the 1024 MiB --fit margin; -c is the total of -np slots."""
    rec = _rec("meta-llama/Llama-3.1-8B", engine="llama.cpp", max_model_len=32768, weights_bytes="4403MiB")
    assert rec.engine == "llamacpp" and rec.tp == 1 and rec.kv_dtype == "fp16"  # llama.cpp's f16 default
    terms = {t.name: t.bytes for t in rec.budget}
    assert terms["weights"] == -4403 * MIB  # the Q4_K_M GGUF of the kvcalc log
    # 512 x (128256 + 4096) x 4 B = 258.50 MiB: the CPU compute buffer llama.cpp logged for Llama-3-8B at -ub 512
    assert terms["compute_buffer"] == -int(258.50 * MIB)
    assert terms["fit_margin"] == -1024 * MIB
    assert rec.available_kv_memory_bytes == 85028896768 - 4403 * MIB - int(258.5 * MIB) - 1024 * MIB
    per_seq = 32768 * 131072  # 32 layers x 8 heads x 128 x 2 (K, V) x 2 bytes per cell
    assert rec.max_concurrency == round(rec.available_kv_memory_bytes / per_seq, 2)
    slots = int(rec.available_kv_memory_bytes // per_seq)
    assert rec.max_num_seqs == slots
    assert rec.kv_cache_tokens == rec.available_kv_memory_bytes // 131072 // 256 * 256 and rec.block_size == 256
    assert rec.flags["llama.cpp"] == f"llama-server -m Llama-3.1-8B.gguf -c {32768 * slots} -np {slots} -ngl 99"
    assert rec.fp8_kv["kv_dtype"] == "q8_0"
    assert rec.fp8_kv["max_concurrency"] == round(
        rec.available_kv_memory_bytes / (per_seq * 34 / 64), 2
    )  # q8_0: 34/32 B vs 2 B


def test_llamacpp_quantized_cache_flags():
    rec = _rec(
        "meta-llama/Llama-3.1-8B", engine="llamacpp", max_model_len=8192, kv_dtype="q8_0", concurrency=2, n_ubatch=1024
    )
    assert rec.kv_dtype == "q8_0" and rec.max_num_seqs == 2 and rec.max_num_batched_tokens == 1024
    assert rec.flags["llama.cpp"].endswith(
        "-c 16384 -np 2 -ngl 99 --cache-type-k q8_0 --cache-type-v q8_0 -fa on -ub 1024 -b 2048"
    )
    assert {t.name: t.bytes for t in rec.budget}["compute_buffer"] == -1024 * (128256 + 4096) * 4


# --------------------------------------------------------------------------------------------- TensorRT-LLM


def test_tensorrt_llm_budget_is_a_fraction_of_free_memory():
    rec = recommend(
        _config("Qwen__Qwen2.5-0.5B-Instruct"), gpu_profile="rtx-a4000", engine="trtllm", max_model_len=4096
    )
    terms = {t.name: t.bytes for t in rec.budget}
    free = 16761487360 + terms["weights"] + terms["runtime_buffers"]
    assert rec.gpu_memory_utilization == 0.9
    assert rec.available_kv_memory_bytes == int(free * 0.9) and terms["free_fraction"] == int(free * 0.9) - free
    # per token: 24 layers x 2 KV heads x 64 x 2 (K, V) x 2 bytes = 12288 B; tokens floored to 32-token blocks
    assert rec.kv_cache_tokens == rec.available_kv_memory_bytes // 12288 // 32 * 32 and rec.block_size == 32
    # TensorRT-LLM logged 4.53 GiB on this GPU for Qwen2.5-Coder-0.5B (same shapes; TensorRT-LLM #1188); kvplan
    # does not model the CUDA context, so it is 0.49 GiB high
    assert 0.3 * GIB < rec.available_kv_memory_bytes - 4.53 * GIB < 0.6 * GIB
    assert "--kv_cache_free_gpu_memory_fraction 0.9" in rec.flags["tensorrt-llm"]


def test_lightllm_max_total_token_num():
    rec = _rec("meta-llama/Llama-3.1-8B", engine="lightllm", max_model_len=8192)
    assert rec.gpu_memory_utilization == 0.9
    expected = (int(85028896768 * 0.9) - 16060522496) // 131072  # LightLLM cell: 32 x 2 x 8 x 128 x 2 B
    assert rec.kv_cache_tokens == expected
    assert rec.flags["lightllm"].endswith(f"--max_total_token_num {expected} --mem_fraction 0.9")


# ------------------------------------------------------------------------------------------ version terms


def test_vllm_011_sampler_term_reproduces_logged_activation():
    """vLLM 0.11 logged 4.76 GiB of activation peak for Llama-3.1-8B at max_num_seqs 1024 (llm-d empirical)."""
    case = CASES["llmd-empirical-v0110-llama-31-8b-instruct-tp1"]
    rec = _rec(
        "meta-llama/Llama-3.1-8B", max_model_len=16000, cudagraph_profiling=False, vllm_version=case["engine_version"]
    )
    act = -{t.name: t.bytes for t in rec.budget}["activation_peak"]
    assert abs(act / GIB - case["reported"]["peak_activation_gib"]) < 0.1
    assert abs(rec.available_kv_memory_bytes / GIB - case["reported"]["available_kv_cache_gib"]) < 0.3
    newer = _rec("meta-llama/Llama-3.1-8B", max_model_len=16000, cudagraph_profiling=False, vllm_version="0.19.0")
    assert abs(-{t.name: t.bytes for t in newer.budget}["activation_peak"] / GIB - 1.89) < 0.1  # the 0.19 logs


# ----------------------------------------------------------------------------------------- throughput bounds


def test_throughput_bounds_arithmetic():
    rec = _rec("meta-llama/Llama-3.1-8B", max_model_len=8192, kv_memory="58.11GiB")
    rows = {r["batch"]: r for r in rec.throughput_bounds}
    # up to the requests of max_model_len that fit at once (58.11x), not the 1024 cap: a batch at context
    # max_model_len beyond them would not fit in the KV cache
    assert rec.max_num_seqs == 1024
    assert sorted(rows) == [1, 8, 32, 58]
    one = rows[1]
    # weights read per step: 8,030,261,248 params minus the 128256 x 4096 input embedding, bf16
    assert one["weight_bytes_read_per_gpu"] == (8030261248 - 525336576) * 2
    assert one["kv_bytes_read_per_gpu"] == 8192 * 131072
    assert one["memory_bound_tokens_per_s"] == round(3.35e12 / ((8030261248 - 525336576) * 2 + 8192 * 131072), 2)
    assert one["memory_bound_tokens_per_s"] == pytest.approx(208.28, abs=0.01)
    assert rows[8]["memory_bound_tokens_per_s"] == round(8 * 3.35e12 / (15009849344 + 8 * 8192 * 131072), 2)
    # prefill: 2 x (params - embedding - LM head) + 32 layers x 2 x 32 heads x 256 x 4096 (mean causal context)
    flops = 2 * (8030261248 - 2 * 525336576) + 32 * 2 * 32 * 256 * 4096
    assert rec.prefill_tokens_per_s_upper_bound == round(989e12 / flops, 2)
    assert one["decode_tokens_per_s_upper_bound"] == min(
        one["memory_bound_tokens_per_s"], one["compute_bound_tokens_per_s"]
    )
    assert any("bounds, not predictions" in a for a in rec.throughput_assumptions)


def test_moe_decode_bound_counts_touched_experts():
    rec = _rec("mistralai/Mixtral-8x7B-v0.1", gpus=2, max_model_len=4096, kv_memory="10GiB")
    rows = {r["batch"]: r for r in rec.throughput_bounds}
    # a step reads at least 2 of 8 experts per layer at any batch: batch 8's tokens may all pick the same 2
    # (min(8, 8 x 2) of 8 is the most it reads, not the least: tests/planning/test_envelope.py)
    assert rows[1]["weight_bytes_read_per_gpu"] < 0.4 * rec.weights_bytes
    assert rows[8]["weight_bytes_read_per_gpu"] == rows[1]["weight_bytes_read_per_gpu"]


def test_vllm_version_is_parsed_strictly_and_sets_the_cudagraph_term():
    with pytest.raises(UsageError, match="--vllm-version"):
        recommend("meta-llama/Llama-3.1-8B", gpu_profile="h100-sxm-80gb", vllm_version="abc")
    names = {}
    for version in ("0.11", "0.19.1", "v0.21.0rc1", None):
        rec = recommend(
            "meta-llama/Llama-3.1-8B", gpu_profile="h100-sxm-80gb", max_model_len=16384, vllm_version=version
        )
        names[version] = [t.name for t in rec.budget]
    # vLLM subtracts its CUDA-graph estimate from 0.21 on; older logs' "Available KV cache memory" leaves it out
    assert "cudagraph" not in names["0.11"] and "cudagraph" not in names["0.19.1"]
    assert "cudagraph" in names["v0.21.0rc1"] and "cudagraph" in names[None]


def test_max_num_seqs_sets_the_sampler_term():
    # vLLM's dummy sampler run covers max_num_seqs rows of vocab logits: 15 B x seqs x 128256 for Llama 3
    full = recommend("meta-llama/Llama-3.1-8B", gpu_profile="h100-sxm-80gb", max_model_len=32768)
    eight = recommend("meta-llama/Llama-3.1-8B", gpu_profile="h100-sxm-80gb", max_model_len=32768, max_num_seqs=8)
    act_full, act_eight = (next(t.bytes for t in r.budget if t.name == "activation_peak") for r in (full, eight))
    assert act_full == -int(15 * 1024 * 128256 + 1.1 * 8192 * 4096 + 32 * 2**20)  # H100 default: 1024 seqs
    assert act_eight == -int(15 * 8 * 128256 + 1.1 * 8192 * 4096 + 32 * 2**20)
    assert eight.available_kv_memory_bytes - full.available_kv_memory_bytes == act_eight - act_full


def test_max_model_len_fit_stops_at_the_model_limit():
    rec = recommend("meta-llama/Llama-3.1-8B", gpu_profile="h200", max_model_len=1_000_000)
    assert rec.max_model_len_fit <= 131072
    assert any("above the model's limit (131072)" in n for n in rec.notes)


def test_options_an_engine_does_not_use_are_named_in_a_note():
    rec = recommend(
        "meta-llama/Llama-3.1-8B",
        gpu_profile="rtx-4090",
        engine="llamacpp",
        max_model_len=8192,
        gpu_memory_utilization=0.5,
    )
    plain = recommend("meta-llama/Llama-3.1-8B", gpu_profile="rtx-4090", engine="llamacpp", max_model_len=8192)
    assert "--gpu-memory-utilization does not apply to llamacpp and was ignored" in rec.notes
    assert rec.available_kv_memory_bytes == plain.available_kv_memory_bytes
    sglang = recommend("meta-llama/Llama-3.1-8B", gpu_profile="h100-sxm-80gb", engine="sglang", vllm_version="0.11")
    assert "--vllm-version does not apply to sglang and was ignored" in sglang.notes


@pytest.mark.parametrize(
    "engine, gpu",
    [
        ("vllm", "h100-sxm-80gb"),
        ("sglang", "h100-sxm-80gb"),
        ("llamacpp", "rtx-4090"),
        ("tensorrt-llm", "h100-sxm-80gb"),
        ("lightllm", "h100-sxm-80gb"),
    ],
)
def test_max_concurrency_is_available_memory_over_one_request(engine, gpu):
    # kv_bytes_per_request is what max_concurrency divides by, for every engine (kvplan check relies on it)
    for model in ("meta-llama/Llama-3.1-8B", "google/gemma-2-9b-it"):
        rec = recommend(model, gpu_profile=gpu, engine=engine, max_model_len=8192)
        assert rec.kv_bytes_per_request > 0
        # max_concurrency is printed to 2 decimals; vLLM's counts whole blocks (less than one block below)
        assert rec.available_kv_memory_bytes / rec.kv_bytes_per_request == pytest.approx(rec.max_concurrency, abs=0.01)


# ------------------------------------------------------------------------ max_num_seqs: a cap, not a requirement


def test_max_num_seqs_given_is_printed_as_given_and_the_kv_limited_concurrency_is_its_own_figure():
    """vLLM's --max-num-seqs is a cap on running sequences (vllm-0.33.0/vllm/v1/core/sched/scheduler.py:131
    `max_num_running_reqs = scheduler_config.max_num_seqs`); at start-up vLLM checks only that one request of
    max_model_len fits (v1/core/kv_cache_planning.py:151-195 `check_enough_kv_cache_memory`). So asked for 256
    at 128k on an H100, where the KV cache holds 3.51 such requests, the command carries 256 (kvplan printed 3)."""
    rec = _rec("meta-llama/Llama-3.1-8B", max_model_len=131072, max_num_seqs=256, vllm_version="0.33.0")
    assert rec.fits and rec.startup_error is None
    assert rec.max_num_seqs == 256 and rec.max_concurrency == 3.51
    assert " --max-num-seqs 256 " in rec.flags["vllm"]
    assert rec.flags["sglang"].endswith("--max-running-requests 256")  # given: SGLang's cap too
    assert "--max_batch_size 256" in rec.flags["tensorrt-llm"]
    assert "-c 393216 -np 3 " in rec.flags["llama.cpp"]  # llama.cpp's slots reserve 128k each: the 3 that fit
    data = rec.to_dict()
    assert (data["max_num_seqs"], data["max_concurrency"]) == (256, 3.51)
    assert any("--max-num-seqs 256 caps the running sequences: 3.51 requests of 131,072" in n for n in rec.notes)
    assert sorted(r["batch"] for r in rec.throughput_bounds) == [1, 3]  # bounds: at most the requests that fit


@pytest.mark.parametrize("gpu,default", [("h100-sxm-80gb", 1024), ("l40s", 256)])
def test_without_max_num_seqs_the_command_carries_the_releases_default(gpu, default):
    """vLLM's default max_num_seqs for the GPU (kvplan.engines.vllm.scheduler_defaults, vllm/engine/arg_utils.py):
    1024 on >= 70 GiB GPUs that are not A100s, 256 below. Before, kvplan lowered it to the requests that fit
    (54 and 24 at 8k)."""
    from kvplan.engines.vllm import scheduler_defaults
    from kvplan.sources.hardware import load_profile

    profile = load_profile(gpu)
    assert scheduler_defaults(profile.memory_bytes, profile.name, vllm_version="0.33.0")[1] == default
    rec = _rec("meta-llama/Llama-3.1-8B", gpu_profile=gpu, max_model_len=8192, vllm_version="0.33.0")
    assert rec.max_num_seqs == default and rec.max_concurrency < default
    assert f" --max-num-seqs {default} " in rec.flags["vllm"]
    assert "--max-running-requests" not in rec.flags["sglang"]  # none given: SGLang derives its own
    assert any(f"--max-num-seqs {default} (the default) caps the running sequences" in n for n in rec.notes)


def test_an_sglang_plans_cap_note_is_sglangs_derived_cap_not_vllms_default():
    """SGLang has no max_num_seqs default: without --max-running-requests it serves min(max(min(pool tokens /
    context_len x 512, 4096), 2048), pool tokens // 2), and one given is lowered to pool tokens // 2
    (sglang-0.5.23 srt/mem_cache/kv_cache_configurator.py:3119-3132 `resolve_max_num_reqs`). Before, an SGLang
    plan's note said "--max-num-seqs 1024 (the default)", vLLM's default."""
    rec = _rec("meta-llama/Llama-3.1-8B", engine="sglang", max_model_len=131072)
    tokens = rec.kv_cache_tokens
    derived = min(max(min(int(tokens / 131072 * 512), 4096), 2048), tokens // 2)
    assert derived == 2048
    (note,) = [n for n in rec.notes if "caps the running sequences" in n]
    assert note.startswith(f"SGLang's max_running_requests {derived} (derived from the token pool")
    assert "kv_cache_configurator.py:3119-3132" in note and "(the default)" not in note
    given = _rec("meta-llama/Llama-3.1-8B", engine="sglang", max_model_len=131072, max_num_seqs=10**6)
    (note,) = [n for n in given.notes if "caps the running sequences" in n]
    assert note.startswith(f"SGLang's max_running_requests {tokens // 2} (--max-num-seqs 1000000 lowered to half")
    small = _rec("meta-llama/Llama-3.1-8B", engine="sglang", max_model_len=131072, max_num_seqs=8)
    assert any(n.startswith("--max-num-seqs 8 caps the running sequences") for n in small.notes)


@pytest.mark.parametrize("length", [8192, 131072])
def test_an_sglang_plans_max_num_seqs_is_sglangs_derived_cap(length):
    """The plan's max_num_seqs (JSON, table) of an SGLang plan is the max_running_requests SGLang derives from its
    pool (sglang-0.5.23 srt/mem_cache/kv_cache_configurator.py:3119-3132 `resolve_max_num_reqs`: min(max(min(pool
    tokens / context_len x 512, 4096), 2048), pool tokens // 2); one given is lowered to pool tokens // 2), not vLLM's
    1024. Before, `recommend --engine sglang --json` printed "max_num_seqs": 1024."""
    args = ["recommend", "meta-llama/Llama-3.1-8B", "-g", "h100-sxm-80gb", "--engine", "sglang", "--offline"]
    args += ["--max-model-len", str(length)]
    data = json.loads(runner.invoke(app, [*args, "--json"]).stdout)
    tokens = data["kv_cache_tokens"]
    derived = min(max(min(int(tokens / length * 512), 4096), 2048), tokens // 2)
    assert data["max_num_seqs"] == derived != 1024
    table = runner.invoke(app, args, env={"COLUMNS": "200"})
    assert table.exit_code == 0, table.output
    assert f"{derived} / 8192" in table.stdout
    given = json.loads(runner.invoke(app, [*args, "--max-num-seqs", str(10**6), "--json"]).stdout)
    assert given["max_num_seqs"] == given["kv_cache_tokens"] // 2
    small = json.loads(runner.invoke(app, [*args, "--max-num-seqs", "8", "--json"]).stdout)
    assert small["max_num_seqs"] == 8
    vllm = json.loads(runner.invoke(app, [*args[:4], "--offline", "--max-model-len", str(length), "--json"]).stdout)
    assert vllm["max_num_seqs"] == 1024  # vLLM's default on an H100 is unchanged


def test_cli_recommend_prints_the_cap_given():
    args = ["recommend", "meta-llama/Llama-3.1-8B", "-g", "h100", "--max-model-len", "131072"]
    args += ["--max-num-seqs", "256", "--vllm-version", "0.33.0", "--offline"]
    table = runner.invoke(app, args, env={"COLUMNS": "200"})
    assert table.exit_code == 0, table.output
    assert "256 / 8192" in table.stdout and "3.51x" in table.stdout
    assert "--max-num-seqs 256 --gpu-memory-utilization 0.92" in table.stdout
    data = json.loads(runner.invoke(app, [*args, "--json"]).stdout)
    assert data["max_num_seqs"] == 256 and data["max_concurrency"] == 3.51 and data["fits"]


def test_a_mamba_cap_above_the_blocks_still_fails_to_start():
    """The cap is what vLLM's Mamba check compares (vllm-0.33.0/vllm/config/compilation.py:1517-1532): kept as
    given, it still raises "max_num_seqs (N) exceeds available Mamba cache blocks (M)" with the fix M."""
    rec = _rec(
        "Qwen/Qwen3-Next-80B-A3B",
        gpu_profile="rtx-a6000",
        gpus=4,
        tp=4,
        max_model_len=32768,
        gpu_memory_utilization=0.88,
        max_num_seqs=256,
        vllm_version="0.33.0",
    )
    assert rec.fits and rec.max_num_seqs == 256 and rec.startup_rule == "mamba_cache_blocks"
    # 228 blocks: kvplan's own arithmetic (238 before the rope table, 262,144 x 64 x 2 B = 32 MiB, joined the budget)
    assert rec.startup_error.startswith("max_num_seqs (256) exceeds available Mamba cache blocks (228)")
    assert rec.startup_fix == {"max_num_seqs": 228}
