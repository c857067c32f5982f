"""Tests for kvplan.engines.logs: real start-up log lines from the calibration cases, hand-assembled full
logs, and hostile input (junk, binary, huge, adversarial).

The calibration check is data-driven and independent of the parser's own patterns: for every `reported` figure of
every case, the test renders the value the ways an engine prints it and looks for the engine's wording around it
(`PRINTED`). Where the quote holds that wording, the parser must return the same figure under the mapped name with
the printed number of decimals. Figures that only appear in prose or in a person's table are not looked for.
"""

from __future__ import annotations

import ast
import functools
import json
import math
import re
import sys
import time
from pathlib import Path

import pytest
import yaml

from kvplan.engines import logs as engine_logs
from kvplan.engines.logs import (
    ENGINES,
    ERROR_KINDS,
    MAX_LINE_CHARS,
    MAX_LOG_CHARS,
    NUMBER_NAMES,
    EngineLog,
    LoggedNumber,
    parse_log,
    read_log,
)

CALIBRATION = Path(__file__).resolve().parents[1] / "fixtures" / "calibration"
FILES = ("engine_cases.yaml", "engine_cases_2026.yaml")
# At least this many reported figures must be found printed in the quotes and checked (file -> floor).
FIGURE_FLOOR = {"engine_cases.yaml": 366, "engine_cases_2026.yaml": 94}
SETTING_FLOOR = {"engine_cases.yaml": 94, "engine_cases_2026.yaml": 42}

# reported key -> (number names the figure may carry, printed forms). "{v}" is the printed value.
PRINTED: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "available_kv_cache_gib": (
        ("available_kv_cache_memory",),
        (
            r"Available KV cache memory: {v} GiB",
            r"kv_cache_size={v}GiB",
            r"available KV cache memory \({v} GiB\)",
            r"Current kv cache memory in use is {v} GiB",
        ),
    ),
    "kv_cache_tokens": (
        ("kv_cache_tokens", "max_total_num_tokens"),
        (
            r"GPU KV cache size\s*: {v} tokens",
            r"#tokens: {v},",
            r"max_total_num_tokens={v}",
            r"can be stored in KV cache \({v}\)",
            r"paged KV cache \({v}\)",
        ),
    ),
    "kv_cache_blocks": (("num_gpu_blocks",), (r"num_gpu_blocks is: {v}", r"# GPU blocks: {v}")),
    "cpu_blocks": (("num_cpu_blocks",), (r"# CPU blocks: {v}",)),
    "weights_gib": (
        ("weights_memory",),
        (r"Model loading took {v} GiB", r"Loading model weights took {v} GB", r"{v} GiB for weight"),
    ),
    "weights_gb": (("weights_memory",), (r"mem usage={v} GB",)),
    "weights_mib": (("weights_memory",), (r"Loaded engine size: {v} MiB",)),
    "max_concurrency": (("max_concurrency",), (r"tokens per request: {v}x", r"Maximum concurrency: {v}x")),
    "max_concurrency_tokens_per_request": (
        ("max_concurrency_tokens",),
        (r"Maximum concurrency for {v} tokens per request",),
    ),
    "peak_activation_gib": (("peak_activation",), (r"{v} GiB for peak activation",)),
    "non_torch_gib": (("non_torch_memory",), (r"{v} GiB for non-torch memory", r"non_torch_memory={v}GiB")),
    "cudagraph_gib": (
        ("cudagraph_memory",),
        (
            r"{v} GiB for CUDAGraph memory",
            r"Estimated CUDA graph memory: {v} GiB",
            r"Graph capturing finished in \d+ secs, took {v} GiB",
        ),
    ),
    "total_gpu_memory_gib": (("total_gpu_memory",), (r"total_gpu_memory={v}GiB", r"/{v} GiB\) on startup")),
    "free_on_startup_gib": (("free_memory_on_startup",), (r"Free memory on device \({v}/",)),
    "peak_torch_memory_gib": (("peak_torch_memory",), (r"peak_torch_memory={v}GiB",)),
    "budget_gib": (("memory_budget",), (r"Desired GPU memory utilization is \([\d.]+, {v} GiB\)",)),
    "consumed_weights_plus_non_torch_gib": (("weights_and_non_torch_memory",), (r"{v} GiB for consumed memory",)),
    "kv_cache_gib": (("kv_cache_memory",), (r"Allocated {v} GiB for max tokens in paged KV cache",)),
    "kv_cache_needed_gib": (("kv_cache_needed",), (r"{v} GiB KV cache is needed",)),
    "kv_cache_needed_gib_for_one_max_len_request": (("kv_cache_needed",), (r"{v} GiB KV cache is needed",)),
    "estimated_max_model_len": (("estimated_max_model_len",), (r"estimated maximum model length is {v}",)),
    "mamba_cache_blocks": (("mamba_cache_blocks",), (r"available Mamba cache blocks \({v}\)",)),
    "cudagraph_equivalent_gpu_memory_utilization": (
        ("cudagraph_equivalent_gpu_memory_utilization",),
        (r"is equivalent to --gpu-memory-utilization={v} without",),
    ),
    "cudagraph_suggested_gpu_memory_utilization": (
        ("cudagraph_suggested_gpu_memory_utilization",),
        (r"increase --gpu-memory-utilization to {v}",),
    ),
    "padding_layers_added": (("padding_layers",), (r"Add {v} padding layers",)),
    "sglang_k_size_gb": (("sglang_k_size",), (r"K size: {v} GB",)),
    "sglang_v_size_gb": (("sglang_v_size",), (r"V size: {v} GB",)),
    "sglang_swa_pool_k_size_gb": (("sglang_k_size",), (r"K size: {v} GB",)),
    "sglang_swa_pool_v_size_gb": (("sglang_v_size",), (r"V size: {v} GB",)),
    "sglang_full_pool_k_size_gb": (("sglang_k_size",), (r"K size: {v} GB",)),
    "sglang_full_pool_v_size_gb": (("sglang_v_size",), (r"V size: {v} GB",)),
    "avail_mem_before_load_gb": (("sglang_avail_mem_before_load",), (r"Load weight begin\. avail mem={v} GB",)),
    "avail_mem_after_load_gb": (("sglang_avail_mem_after_load",), (r"avail mem={v} GB, mem usage=",)),
    "avail_mem_after_pool_gb": (("sglang_avail_mem_after_pool",), (r"Memory pool end\. avail mem={v} GB",)),
    "sglang_full_layer_tokens": (("sglang_full_layer_tokens",), (r"full_layer_tokens={v}",)),
    "sglang_swa_layer_tokens": (("sglang_swa_layer_tokens",), (r"swa_layer_tokens={v}",)),
    "sglang_max_mamba_cache_size": (("sglang_max_mamba_cache_size",), (r"max_mamba_cache_size: {v}",)),
    "sglang_conv_state_gb": (("sglang_conv_state_size",), (r"conv_state size: {v} ?GB",)),
    "sglang_ssm_state_gb": (("sglang_ssm_state_size",), (r"ssm_state size: {v} ?GB",)),
    "sglang_swakvpool_mem_usage_gb": (("sglang_swa_pool_memory",), (r"SWAKVPool mem usage: {v} GB",)),
    "sglang_swa_size_tokens": (("sglang_swa_size",), (r"swa size: {v}",)),
    "sglang_full_size_tokens": (("sglang_full_size",), (r"full size: {v}",)),
    "llamacpp_kv_cells": (("llamacpp_kv_cells",), (r"\(\s*{v} cells", r"size = {v} cells")),
    "llamacpp_kv_layers": (("llamacpp_kv_layers",), (r"cells,\s+{v} layers",)),
    "llamacpp_kv_size_mib": (("llamacpp_kv_size",), (r"size =\s+{v} MiB",)),
    "llamacpp_k_mib": (("llamacpp_k_size",), (r"K \(\w+\):\s+{v} MiB",)),
    "llamacpp_v_mib": (("llamacpp_v_size",), (r"V \(\w+\):\s+{v} MiB",)),
    "trtllm_free_memory_gib": (("trtllm_free_memory",), (r"available: {v} GiB",)),
}
# reported keys that SGLang prints as settings on its max_total_num_tokens line -> (setting, printed form)
PRINTED_SETTINGS = {
    "sglang_max_prefill_tokens": ("max_prefill_tokens", r"max_prefill_tokens={v}"),
    "sglang_chunked_prefill_size": ("chunked_prefill_size", r"chunked_prefill_size={v}"),
}
# reported keys that are never an engine's printed line, and why
NOT_LOG_FIGURES = {
    "vram_used_per_card_gib": "a benchmark table's nvidia-smi figure, not an engine line",
    "available_kv_cache_gib_per_gpu": "the author's arithmetic ('2 x 4.99 = 9.98 GiB pool')",
    "sglang_mamba_full_memory_ratio": "a default the author names in prose",
    "llamacpp_seqs_as_printed": "a string ('4/1'); checked as llamacpp_kv_seqs / llamacpp_kv_streams",
}
# Quotes from which nothing can be read, and why (prose, a person's table or summary).
NOTHING_TO_READ = {
    "llmd-empirical-v0110-llama-33-70b-instruct-fp8-dynamic-tp2": "summary table row",
    "llmd-empirical-v0110-llama-31-8b-instruct-tp1": "summary table row",
    "llmd-empirical-v0110-qwen3-06b-tp1": "summary table row",
    "llmd-empirical-v0110-qwen3-32b-tp1": "summary table row",
    "llmd-empirical-v0110-qwen3-32b-tp2": "summary table row",
    "vllm-recipes-906-glm53-flash-4xh200-tp4-seqs512": "prose ('38.43 GiB KV cache, 3,511,589 tokens')",
    "vllm-51041-dsv4-flash-preview-2xh20-tp2-0.26.0": "markdown table",
    "vllm-51041-dsv4-flash-0731-2xh20-tp2-0.26.0": "markdown table",
    "vllm-45178-minimax-m25-nvfp4-b200-dep2-cg-estimate-on": "prose ('KV cache 245,840 -> 769,888 tokens')",
    "vllm-45178-minimax-m25-nvfp4-b200-dep2-cg-estimate-off": "prose",
    "vllm-50780-qwen35-122b-a10b-int4-sm120-0.23.x": "prose ('reports ~4.2 GiB', '1,489,281 -> 1,135,957')",
    "vllm-50780-qwen35-122b-a10b-int4-sm120-0.26.1-nightly": "prose",
    "vllm-46329-qwen38-27b-5090-kvnvfp4-util0975-262144": "prose ('GPU KV cache 264,640 tokens')",
    "vllm-46329-qwen38-27b-5090-kvfp8-util093-109568": "prose ('a 110,400-token pool')",
    "vllm-recipes-810-qwen38-27b-fp8-2x5090-tp2-262144": "markdown table",
    "vllm-recipes-810-qwen38-27b-nvfp4-inferact-2x5090-tp2-262144": "markdown table",
    "club3090-changelog-multi4-qwen36-27b-4x3090-tp4-fp8e5m2": "changelog bullets ('reported GPU KV cache size: **483,200 tokens**')",
    "club3090-changelog-multi4-dflash-qwen36-27b-4x3090-tp4-bf16kv": "changelog bullets",
    "club3090-calibration-gemma-4-12b-2x3090-tp2-bf16kv-131072": "config comment ('GPU KV cache size = 384,019 tokens')",
    "club3090-benchmarks-gemma-4-31b-int8pth-2x3090-tp2-262144": "benchmark table",
    "sglang-mia-qwen38-flash-next-21-2xgb10-tp2-nvfp4kv-as-shipped": "prose and a table",
    "llamacpp-unsloth-7530-gemma3-270m-ctx1024-parallel3": "prose ('allocates 1536 cells / 27.0 MiB')",
    "llamacpp-unsloth-7530-gemma3-270m-ctx1024-parallel4": "prose",
}
# Cases whose quote states the engine version in a form the parser reads (the engine's line or a 'vLLM:' label).
STATED_VERSIONS = {
    "vllm-40691-qwen35-27b-h20": "0.19.0",
    "vllm-51041-dsv4-flash-preview-2xh20-tp2-0.26.0": "0.26.0",  # "- vLLM: 0.26.0"
    "vllm-51041-dsv4-flash-0731-2xh20-tp2-0.26.0": "0.26.0",
    "club3090-46-qwen36-27b-autoround-2x4090-tp2-0.20.1rc1-180000": "0.20.1rc1.dev16+g7a1eb8ac2",  # **vLLM:** `...`
    "club3090-74-qwen36-27b-autoround-2x3090-nvlink-tp2-0.20.2rc1-262144": "0.20.2rc1.dev9+g01d4d1ad3",
    "club3090-142-qwen36-27b-autoround-2x3090-tp2-0.20.2rc1dev129-262144": "0.20.2rc1.dev129+g1acd67a79",
    "club3090-584-qwen36-27b-4x3090-tp4-v0.24.0": "0.24.0",
    "club3090-294-qwen36-27b-autoround-2x3090-x4-v0.22.0": "0.22.0",  # the vLLM banner
    "club3090-windows-native-qwen36-35b-a3b-autoround-2x3090-tp2-v0.26.0": "0.26.0",  # the banner, glyphs cut
}
SETTING_FIELDS = (
    "tensor_parallel_size",
    "pipeline_parallel_size",
    "max_model_len",
    "gpu_memory_utilization",
    "mem_fraction_static",
    "max_num_seqs",
    "kv_cache_dtype",
)


@functools.cache
def cases(name: str) -> list[dict]:
    return yaml.safe_load((CALIBRATION / name).read_text(encoding="utf-8"))


def case_text(case: dict) -> str:
    return case["source"]["quote"] + ("\n" + case["error"] if case.get("error") else "")


def case_numbers(case: dict) -> list[LoggedNumber]:
    """What the parser reads from the quote and, separately, from the `error` field."""
    numbers = list(parse_log(case["source"]["quote"]).numbers)
    if case.get("error"):
        numbers += parse_log(case["error"]).numbers
    return numbers


def renderings(value: int | float) -> list[str]:
    """The ways an engine prints a figure: 1505552 -> 1505552, 1,505,552; 20.6 -> 20.6, 20.60, 20.600, 20.6000."""
    if isinstance(value, bool):
        return []
    if isinstance(value, int):
        return sorted({str(value), f"{value:,}"})
    out = {repr(value)} if repr(value).count(".") == 1 and "e" not in repr(value) else set()
    out |= {f"{value:.{d}f}" for d in (1, 2, 3, 4)}
    return sorted(s for s in out if float(s) == value)


def printed_in(text: str, value: int | float, forms: tuple[str, ...]) -> str | None:
    """The printed value when `text` holds it in one of the engine's wordings, else None."""
    for printed in renderings(value):
        number = r"(?<![\d.,])" + re.escape(printed) + r"(?![\d])"
        for form in forms:
            if re.search(form.replace("{v}", number), text):
                return printed
    return None


def decimals_of(printed: str) -> int:
    return len(printed.split(".")[1]) if "." in printed else 0


# ----------------------------------------------------------------------------------------------- calibration


def test_fixtures_are_local_copies():
    """The project reads its own copies of the calibration files, never ../shared."""
    for name in (*FILES, "README.md", "README-2026.md"):
        assert (CALIBRATION / name).is_file(), name
    assert CALIBRATION.parent.name == "fixtures"
    assert "shared/" not in Path(engine_logs.__file__).read_text()


def test_every_reported_key_is_mapped_or_explained():
    keys = {
        key for name in FILES for case in cases(name) for key, value in case["reported"].items() if value is not None
    }
    unknown = {
        k
        for k in keys
        if k not in PRINTED and k not in PRINTED_SETTINGS and k not in NOT_LOG_FIGURES and not k.endswith("_as_written")
    }
    assert not unknown, f"map these reported keys to a printed form in PRINTED, or explain them: {sorted(unknown)}"
    for names, _forms in PRINTED.values():
        assert set(names) <= NUMBER_NAMES.keys()


@pytest.mark.parametrize("name", FILES)
def test_reported_figures_printed_in_the_quotes_are_parsed(name, capsys):
    checked = 0
    checked_cases = 0
    failures = []
    for case in cases(name):
        text = case_text(case)
        numbers = case_numbers(case)
        found_here = 0
        for key, value in case["reported"].items():
            if value is None or key not in PRINTED or isinstance(value, (str, bool)):
                continue
            names, forms = PRINTED[key]
            printed = printed_in(text, value, forms)
            if printed is None:
                continue  # the figure is only in prose or a table here
            checked += 1
            found_here += 1
            hits = [
                n
                for n in numbers
                if n.name in names and math.isclose(n.value, value, abs_tol=1e-9) and n.decimals == decimals_of(printed)
            ]
            if not hits:
                got = [(n.name, n.value, n.decimals) for n in numbers if n.name in names]
                failures.append(f"{case['id']}: {key}={printed} not parsed (got {got})")
        for key, (setting, form) in PRINTED_SETTINGS.items():
            value = case["reported"].get(key)
            if value is not None and printed_in(text, value, (form,)):
                checked += 1
                found_here += 1
                if parse_log(case["source"]["quote"]).settings.get(setting) != value:
                    failures.append(f"{case['id']}: setting {setting}={value} not parsed")
        checked_cases += bool(found_here)
    with capsys.disabled():
        print(f"\n{name}: {checked} printed figures checked in {checked_cases} cases")
    assert not failures, "\n".join(failures)
    assert checked >= FIGURE_FLOOR[name], f"only {checked} figures checked"


@pytest.mark.parametrize("name", FILES)
def test_prose_figures_are_not_read(name, capsys):
    """A reported figure that a quote gives only in prose or a table ("28.74 GiB KV -> 240,816 tokens") is not read;
    values the curator kept as written ("~4.2") never become numbers; quotes of only prose or tables give none."""
    in_prose = 0
    for case in cases(name):
        numbers = case_numbers(case)
        text = case_text(case)
        for key, value in case["reported"].items():
            if value is None or key not in PRINTED or isinstance(value, (str, bool)):
                continue
            names, forms = PRINTED[key]
            if printed_in(text, value, forms) is None and printed_in(text, value, ("{v}",)) is not None:
                in_prose += 1
                read = [n.text for n in numbers if n.name in names and math.isclose(n.value, value, abs_tol=1e-9)]
                assert not read, f"{case['id']}: {key}={value} is prose here but was read from {read}"
        for key, value in case["reported"].items():
            if key.endswith("_as_written") and value is not None:
                digits = re.sub(r"[^\d.]", "", str(value))
                assert not any(str(n.value) == digits for n in numbers), (case["id"], key, value)
        if case["id"] in NOTHING_TO_READ:
            assert numbers == [], (case["id"], [(n.name, n.value) for n in numbers])
        else:
            assert numbers, f"{case['id']}: nothing read; if it is only prose, add it to NOTHING_TO_READ"
    with capsys.disabled():
        print(f"\n{name}: {in_prose} reported figures appear only in prose or tables, none read")
    assert in_prose > 0


def test_how_many_quotes_give_nothing(capsys):
    counts = {name: sum(case["id"] in NOTHING_TO_READ for case in cases(name)) for name in FILES}
    with capsys.disabled():
        print(f"\nquotes with nothing to read (prose, tables, summaries): {counts}")
    assert counts == {"engine_cases.yaml": 5, "engine_cases_2026.yaml": 18}


def _normal(field: str, value):
    if field == "kv_cache_dtype":
        return str(value).split()[0].lower().removeprefix("torch.")
    return value


@pytest.mark.parametrize("name", FILES)
def test_engine_version_and_settings_agree_with_the_cases(name, capsys):
    """Where the parser reads an engine, a version or a setting from a quote, it is the case's."""
    compared = 0
    failures = []
    for case in cases(name):
        log = parse_log(case["source"]["quote"])
        stated_engine = (case["engine"] or "").split()[0].lower().replace("llama.cpp", "llamacpp")
        if log.engine is not None and log.engine != stated_engine:
            failures.append(f"{case['id']}: engine {log.engine} != {stated_engine}")
        if case["id"] in STATED_VERSIONS:
            if log.engine_version != STATED_VERSIONS[case["id"]]:
                failures.append(f"{case['id']}: version {log.engine_version!r}")
        elif log.engine_version is not None:
            failures.append(f"{case['id']}: version {log.engine_version!r} read from a quote that does not state it")
        for field in SETTING_FIELDS:
            stated = case.get(field)
            if stated is None or field not in log.settings:
                continue
            compared += 1
            if _normal(field, log.settings[field]) != _normal(field, stated):
                failures.append(f"{case['id']}: {field} {log.settings[field]!r} != {stated!r}")
    with capsys.disabled():
        print(f"\n{name}: {compared} settings compared with the case fields")
    assert not failures, "\n".join(failures)
    assert compared >= SETTING_FLOOR[name]


def test_vllm_non_default_args_give_model_and_settings():
    for case in cases("engine_cases.yaml"):
        if case["source"]["quote"].startswith("non-default args:") and case["id"].startswith("llmd-v0190"):
            log = parse_log(case["source"]["quote"])
            assert log.model == case["model_id"], case["id"]
            assert log.settings["max_model_len"] == case["max_model_len"]
            assert log.settings.get("tensor_parallel_size", 1) == case["tensor_parallel_size"]
            assert log.settings.get("pipeline_parallel_size", 1) == case["pipeline_parallel_size"]


@pytest.mark.parametrize("name", FILES)
def test_start_up_errors(name):
    expected_kind = {"Mamba cache blocks": "mamba_cache_blocks_exceeded", "To serve": "max_model_len_exceeds_kv_cache"}
    for case in cases(name):
        if not case.get("error"):
            continue
        kind = next(k for phrase, k in expected_kind.items() if phrase in case["error"])
        assert [e.kind for e in parse_log(case["error"]).errors] == [kind], case["id"]
        assert kind in [e.kind for e in parse_log(case["source"]["quote"]).errors], case["id"]


def test_wrapped_error_in_a_quote_is_joined():
    case = next(c for c in cases("engine_cases_2026.yaml") if c["id"].endswith("util080-fail"))
    (error,) = parse_log(case["source"]["quote"]).errors
    assert error.kind == "max_model_len_exceeds_kv_cache"
    assert error.text == case["error"]
    assert error.line == 3


def test_a_wrapped_error_stops_at_the_next_log_record():
    log = parse_log(
        "ValueError: To serve at least one request with the model's max seq len (8192),\n"
        "2.00 GiB KV cache is needed, which is larger than the available KV cache memory (1.50 GiB).\n"
        "[rank0]: something else entirely\n"
    )
    (error,) = log.errors
    assert error.text.endswith("(1.50 GiB).")
    assert [(n.name, n.value) for n in log.numbers] == [
        ("requested_max_model_len", 8192),
        ("kv_cache_needed", 2.0),
        ("available_kv_cache_memory", 1.5),
    ]


def test_old_vllm_errors_without_an_exception_name():
    log = parse_log(cases("engine_cases.yaml")[0]["source"]["quote"])
    assert [e.kind for e in log.errors] == ["max_model_len_exceeds_kv_cache"]
    assert log.first("requested_max_model_len").value == 29000
    assert log.first("kv_cache_tokens").value == 23648


# ----------------------------------------------------------------------------------------------- full logs

VLLM_019 = """\
(APIServer pid=1) INFO 04-20 10:00:01 [api_server.py:1896] vLLM API server version 0.19.1
(APIServer pid=1) INFO 04-20 10:00:01 [utils.py:326] non-default args: {'model_tag': 'meta-llama/Llama-3.1-8B-Instruct', 'model': 'meta-llama/Llama-3.1-8B-Instruct', 'max_model_len': 8192, 'tensor_parallel_size': 2, 'gpu_memory_utilization': 0.95, 'max_num_seqs': 256, 'enable_prefix_caching': False}
(APIServer pid=1) INFO 04-20 10:00:09 [model.py:547] Resolved architecture: LlamaForCausalLM
(APIServer pid=1) INFO 04-20 10:00:09 [model.py:1510] Using max model len 8192
(APIServer pid=1) INFO 04-20 10:00:09 [scheduler.py:205] Chunked prefill is enabled with max_num_batched_tokens=2048.
(EngineCore_DP0 pid=212) INFO 04-20 10:00:12 [core.py:77] Initializing a V1 LLM engine (v0.19.1) with config: model='meta-llama/Llama-3.1-8B-Instruct', speculative_config=None, tokenizer='meta-llama/Llama-3.1-8B-Instruct', skip_tokenizer_init=False, tokenizer_mode=auto, revision=None, trust_remote_code=False, dtype=torch.bfloat16, max_seq_len=8192, download_dir=None, load_format=auto, tensor_parallel_size=2, pipeline_parallel_size=1, data_parallel_size=1, disable_custom_all_reduce=False, quantization=None, enforce_eager=False, kv_cache_dtype=auto, device_config=cuda, structured_outputs_config=StructuredOutputsConfig(backend='auto', disable_fallback=False), seed=0, served_model_name=meta-llama/Llama-3.1-8B-Instruct, enable_prefix_caching=False, chunked_prefill_enabled=True, compilation_config={"level":3,"cudagraph_mode":[2,1],"cudagraph_capture_sizes":[512,504,8,4,2,1]}
(Worker_TP0 pid=347) INFO 04-20 10:00:40 [gpu_model_runner.py:2653] Model loading took 7.51 GiB memory and 10.562171 seconds
(Worker_TP1 pid=348) INFO 04-20 10:00:40 [gpu_model_runner.py:2653] Model loading took 7.51 GiB memory and 10.601234 seconds
(Worker_TP0 pid=347) INFO 04-20 10:00:58 [gpu_worker.py:298] Available KV cache memory: 63.76 GiB
(EngineCore_DP0 pid=212) INFO 04-20 10:00:59 [kv_cache_utils.py:1087] GPU KV cache size: 1,044,688 tokens
(EngineCore_DP0 pid=212) INFO 04-20 10:00:59 [kv_cache_utils.py:1091] Maximum concurrency for 8,192 tokens per request: 127.53x
Capturing CUDA graphs (mixed prefill-decode, PIECEWISE): 100%|██████████| 67/67 [00:05<00:00, 12.07it/s]
(Worker_TP0 pid=347) INFO 04-20 10:01:12 [gpu_model_runner.py:3480] Graph capturing finished in 13 secs, took 0.76 GiB
(Worker_TP0 pid=347) INFO 04-20 10:01:12 [gpu_worker.py:392] Free memory on device (77.66/79.19 GiB) on startup. Desired GPU memory utilization is (0.95, 75.23 GiB). Actual usage is 7.51 GiB for weight, 1.89 GiB for peak activation, 2.07 GiB for non-torch memory, and 0.76 GiB for CUDAGraph memory. Replace gpu_memory_utilization config with `--kv-cache-memory=68391426048` (63.69 GiB) to fit into requested memory, or `--kv-cache-memory=70116612096` (65.3 GiB) to fully utilize gpu memory. Current kv cache memory in use is 63.76 GiB.
(EngineCore_DP0 pid=212) INFO 04-20 10:01:13 [core.py:210] init engine (profile, create kv cache, warmup model) took 30.75 seconds
(EngineCore_DP0 pid=212) INFO 04-20 10:01:13 [loggers.py:142] Engine 000: vllm cache_config_info with initialization after num_gpu_blocks is: 65293
(APIServer pid=1) INFO 04-20 10:01:14 [api_server.py:1971] Starting vLLM API server 0 on http://0.0.0.0:8000
"""


def figures(log: EngineLog) -> list[tuple]:
    return [(n.name, n.value, n.unit, n.decimals) for n in log.numbers]


def test_full_vllm_019_log():
    log = parse_log(VLLM_019)
    assert (log.engine, log.engine_version, log.model) == ("vllm", "0.19.1", "meta-llama/Llama-3.1-8B-Instruct")
    assert log.settings == {
        "max_model_len": 8192,
        "tensor_parallel_size": 2,
        "gpu_memory_utilization": 0.95,
        "max_num_seqs": 256,
        "enable_prefix_caching": False,
        "max_num_batched_tokens": 2048,
        "dtype": "torch.bfloat16",
        "pipeline_parallel_size": 1,
        "data_parallel_size": 1,
        "enforce_eager": False,
        "kv_cache_dtype": "auto",
        "enable_chunked_prefill": True,
    }
    assert figures(log) == [
        ("weights_memory", 7.51, "GiB", 2),
        ("weights_memory", 7.51, "GiB", 2),
        ("available_kv_cache_memory", 63.76, "GiB", 2),
        ("kv_cache_tokens", 1044688, "tokens", 0),
        ("max_concurrency_tokens", 8192, "tokens", 0),
        ("max_concurrency", 127.53, "x", 2),
        ("cudagraph_memory", 0.76, "GiB", 2),
        ("free_memory_on_startup", 77.66, "GiB", 2),
        ("total_gpu_memory", 79.19, "GiB", 2),
        ("memory_budget", 75.23, "GiB", 2),
        ("weights_memory", 7.51, "GiB", 2),
        ("peak_activation", 1.89, "GiB", 2),
        ("non_torch_memory", 2.07, "GiB", 2),
        ("cudagraph_memory", 0.76, "GiB", 2),
        ("kv_cache_memory_to_fit_requested", 68391426048, "bytes", 0),
        ("kv_cache_memory_to_fill_gpu", 70116612096, "bytes", 0),
        ("available_kv_cache_memory", 63.76, "GiB", 2),
        ("num_gpu_blocks", 65293, "blocks", 0),
    ]
    assert [n.form for n in log.get("cudagraph_memory")] == ["vllm.cudagraph_captured", "vllm.memory_summary"]
    assert log.errors == ()
    assert log.first("kv_cache_tokens").line == 10
    assert log.first("kv_cache_tokens").text.endswith("GPU KV cache size: 1,044,688 tokens")
    assert log.lines_read == 17


VLLM_026_FAILED = """\
(APIServer pid=1) INFO 09-13 10:00:00 [utils.py:344]        █     █     █▄   ▄█
(APIServer pid=1) INFO 09-13 10:00:00 [utils.py:344]  ▄▄ ▄█ █     █     █ ▀▄▀ █  version 0.26.0
(APIServer pid=1) INFO 09-13 10:00:00 [utils.py:344]   █▄█▀ █     █     █     █  model   MiniMaxAI/MiniMax-M2.7
(APIServer pid=1) INFO 09-13 10:00:00 [utils.py:344]    ▀▀  ▀▀▀▀▀ ▀▀▀▀▀ ▀     ▀
(APIServer pid=1) INFO 09-13 10:00:00 [utils.py:278] non-default args: {'model_tag': 'MiniMaxAI/MiniMax-M2.7', ... 'max_model_len': 196608, 'tensor_parallel_size': 2, 'gpu_memory_utilization': 0.8, ...}
(EngineCore pid=75) INFO 09-13 10:01:11 [gpu_model_runner.py:6063] Profiling CUDA graph memory: PIECEWISE=51 (largest=512), FULL=35 (largest=256)
(EngineCore pid=75) INFO 09-13 10:01:30 [gpu_model_runner.py:6142] Estimated CUDA graph memory: 1.58 GiB total
(EngineCore pid=75) INFO 09-13 10:01:30 [gpu_worker.py:462] Available KV cache memory: 22.5 GiB
(EngineCore pid=75) INFO 09-13 10:01:30 [gpu_worker.py:477] CUDA graph memory profiling is enabled (default since v0.21.0). The current --gpu-memory-utilization=0.8000 is equivalent to --gpu-memory-utilization=0.7580 without CUDA graph memory profiling. To maintain the same effective KV cache size as before, increase --gpu-memory-utilization to 0.8417. To disable, set VLLM_MEMORY_PROFILER_ESTIMATE_CUDAGRAPHS=0.
(EngineCore pid=75) ERROR 09-13 10:01:31 [core.py:866] EngineCore failed to start.
(EngineCore pid=75) ERROR 09-13 10:01:31 [core.py:866] Traceback (most recent call last):
(EngineCore pid=75) ERROR 09-13 10:01:31 [core.py:866]   File "/usr/local/lib/python3.12/dist-packages/vllm/v1/core/kv_cache_utils.py", line 701, in check_enough_kv_cache_memory
(EngineCore pid=75) ERROR 09-13 10:01:31 [core.py:866]     raise ValueError(
(EngineCore pid=75) ERROR 09-13 10:01:31 [core.py:866] ValueError: To serve at least one request with the model's max seq len (196608), 23.25 GiB KV cache is needed, which is larger than the available KV cache memory (22.5 GiB). Based on the available memory, the estimated maximum model length is 190272. Try increasing `gpu_memory_utilization` or decreasing `max_model_len` when initializing the engine.
(APIServer pid=1) RuntimeError: Engine core initialization failed. See root cause above. Failed core proc(s): {}
"""


def test_full_vllm_026_failed_start():
    log = parse_log(VLLM_026_FAILED)
    assert (log.engine, log.engine_version, log.model) == ("vllm", "0.26.0", "MiniMaxAI/MiniMax-M2.7")
    assert log.settings == {"max_model_len": 196608, "tensor_parallel_size": 2, "gpu_memory_utilization": 0.8}
    assert figures(log) == [
        ("cudagraph_memory", 1.58, "GiB", 2),
        ("available_kv_cache_memory", 22.5, "GiB", 1),
        ("cudagraph_equivalent_gpu_memory_utilization", 0.758, "fraction", 4),
        ("cudagraph_suggested_gpu_memory_utilization", 0.8417, "fraction", 4),
        ("requested_max_model_len", 196608, "tokens", 0),
        ("kv_cache_needed", 23.25, "GiB", 2),
        ("available_kv_cache_memory", 22.5, "GiB", 1),
        ("estimated_max_model_len", 190272, "tokens", 0),
    ]
    assert [(e.kind, e.line) for e in log.errors] == [("max_model_len_exceeds_kv_cache", 14), ("exception", 15)]
    assert log.errors[0].text.startswith("ValueError: To serve at least one request")
    assert log.errors[1].text.startswith("RuntimeError: Engine core initialization failed.")


VLLM_V0 = """\
INFO 11-20 09:12:01 api_server.py:585] vLLM API server version 0.6.4.post1
INFO 11-20 09:12:08 llm_engine.py:249] Initializing an LLM engine (v0.6.4.post1) with config: model='meta-llama/Llama-3.1-8B-Instruct', speculative_config=None, tokenizer='meta-llama/Llama-3.1-8B-Instruct', dtype=torch.bfloat16, max_seq_len=20000, download_dir=None, load_format=LoadFormat.AUTO, tensor_parallel_size=1, pipeline_parallel_size=1, disable_custom_all_reduce=False, quantization=None, enforce_eager=False, kv_cache_dtype=auto, quantization_param_path=None, device_config=cuda
INFO 11-20 09:12:15 model_runner.py:1077] Loading model weights took 14.9888 GB
INFO 11-20 09:12:17 worker.py:232] Memory profiling results: total_gpu_memory=23.58GiB initial_memory_usage=15.34GiB peak_torch_memory=16.64GiB memory_usage_post_profile=15.35GiB non_torch_memory=0.35GiB kv_cache_size=4.24GiB gpu_memory_utilization=0.90
INFO 11-20 09:12:17 gpu_executor.py:113] # GPU blocks: 2170, # CPU blocks: 2048
INFO 11-20 09:12:17 gpu_executor.py:117] Maximum concurrency for 20000 tokens per request: 1.74x
INFO 11-20 09:12:34 model_runner.py:1518] Graph capturing finished in 14 secs, took 0.56 GiB
"""


def test_full_vllm_v0_log():
    log = parse_log(VLLM_V0)
    assert (log.engine, log.engine_version, log.model) == ("vllm", "0.6.4.post1", "meta-llama/Llama-3.1-8B-Instruct")
    assert log.settings["max_model_len"] == 20000
    assert log.settings["gpu_memory_utilization"] == 0.9
    assert figures(log) == [
        ("weights_memory", 14.9888, "GiB", 4),
        ("total_gpu_memory", 23.58, "GiB", 2),
        ("initial_memory_usage", 15.34, "GiB", 2),
        ("peak_torch_memory", 16.64, "GiB", 2),
        ("memory_usage_post_profile", 15.35, "GiB", 2),
        ("non_torch_memory", 0.35, "GiB", 2),
        ("available_kv_cache_memory", 4.24, "GiB", 2),
        ("num_gpu_blocks", 2170, "blocks", 0),
        ("num_cpu_blocks", 2048, "blocks", 0),
        ("max_concurrency_tokens", 20000, "tokens", 0),
        ("max_concurrency", 1.74, "x", 2),
        ("cudagraph_memory", 0.56, "GiB", 2),
    ]


SGLANG = """\
[2025-03-08 12:29:04] server_args=ServerArgs(model_path='Qwen/QwQ-32B', tokenizer_path='Qwen/QwQ-32B', tokenizer_mode='auto', load_format='auto', trust_remote_code=True, dtype='auto', kv_cache_dtype='auto', quantization=None, context_length=None, device='cuda', served_model_name='Qwen/QwQ-32B', host='0.0.0.0', port=30000, mem_fraction_static=0.85, max_running_requests=None, max_total_tokens=None, chunked_prefill_size=2048, max_prefill_tokens=16384, schedule_policy='fcfs', cpu_offload_gb=0, page_size=1, tp_size=4, stream_interval=1, random_seed=42, disable_cuda_graph=False, cuda_graph_max_bs=160, speculative_algorithm=None)
[2025-03-08 12:29:13 TP0] Load weight begin. avail mem=21.63 GB
[2025-03-08 12:29:21 TP0] Load weight end. type=Qwen2ForCausalLM, dtype=torch.bfloat16, avail mem=6.09 GB, mem usage=15.54 GB.
[2025-03-08 12:29:21 TP0] KV Cache is allocated. #tokens: 46611, K size: 1.42 GB, V size: 1.42 GB
[2025-03-08 12:29:21 TP0] Memory pool end. avail mem=3.05 GB
[2025-03-08 12:29:22 TP0] Capture cuda graph begin. This can take up to several minutes. avail mem=2.98 GB
[2025-03-08 12:29:28 TP0] Capture cuda graph end. Time elapsed: 6.21 s. mem usage=0.45 GB. avail mem=2.53 GB.
[2025-03-08 12:29:29 TP0] max_total_num_tokens=46611, chunked_prefill_size=2048, max_prefill_tokens=16384, max_running_requests=2049, context_len=131072, available_gpu_mem=2.53 GB
[2025-03-08 12:29:30] INFO:     Uvicorn running on http://0.0.0.0:30000 (Press CTRL+C to quit)
"""


def test_full_sglang_log():
    log = parse_log(SGLANG)
    assert (log.engine, log.engine_version, log.model) == ("sglang", None, "Qwen/QwQ-32B")
    assert log.settings == {
        "dtype": "auto",
        "kv_cache_dtype": "auto",
        "mem_fraction_static": 0.85,
        "chunked_prefill_size": 2048,
        "max_prefill_tokens": 16384,
        "cpu_offload_gb": 0,
        "page_size": 1,
        "tensor_parallel_size": 4,
        "disable_cuda_graph": False,
        "cuda_graph_max_bs": 160,
        "max_num_seqs": 2049,  # the log's own max_running_requests (ServerArgs said None)
        "max_model_len": 131072,  # context_len
    }
    assert figures(log) == [
        ("sglang_avail_mem_before_load", 21.63, "GiB", 2),
        ("sglang_avail_mem_after_load", 6.09, "GiB", 2),
        ("weights_memory", 15.54, "GiB", 2),
        ("kv_cache_tokens", 46611, "tokens", 0),
        ("sglang_k_size", 1.42, "GiB", 2),
        ("sglang_v_size", 1.42, "GiB", 2),
        ("sglang_avail_mem_after_pool", 3.05, "GiB", 2),
        ("sglang_avail_mem_before_cuda_graph", 2.98, "GiB", 2),
        ("cudagraph_memory", 0.45, "GiB", 2),
        ("sglang_avail_mem_after_cuda_graph", 2.53, "GiB", 2),
        ("max_total_num_tokens", 46611, "tokens", 0),
        ("sglang_available_gpu_mem", 2.53, "GiB", 2),
    ]


def test_sglang_old_cuda_graph_order_and_mamba_pool():
    log = parse_log(
        "[2025-03-08 12:29:28 TP0] Capture cuda graph end. Time elapsed: 7.23 s. avail mem=0.53 GB. mem usage=0.93 GB.\n"
        "[2026-02-27 17:10:28 TP0] Mamba Cache is allocated. max_mamba_cache_size: 82, conv_state size: 0.13GB, "
        "ssm_state size: 7.29GB \n"
    )
    assert figures(log) == [
        ("sglang_avail_mem_after_cuda_graph", 0.53, "GiB", 2),
        ("cudagraph_memory", 0.93, "GiB", 2),
        ("sglang_max_mamba_cache_size", 82, "requests", 0),
        ("sglang_conv_state_size", 0.13, "GiB", 2),
        ("sglang_ssm_state_size", 7.29, "GiB", 2),
    ]


LLAMACPP = """\
$ llama-server -m /models/gemma-3-270m-it-Q8_0.gguf -c 4096 -np 4 -fa auto --port 8080
build: 6527 (7f766929) with cc (Ubuntu 13.3.0-6ubuntu2~24.04) 13.3.0 for x86_64-linux-gnu
system info: n_threads = 16, n_threads_batch = 16, total_threads = 32
main: loading model
srv    load_model: loading model '/models/gemma-3-270m-it-Q8_0.gguf'
llama_model_loader: loaded meta data with 38 key-value pairs and 236 tensors from /models/gemma-3-270m-it-Q8_0.gguf (version GGUF V3 (latest))
llama_model_loader: - kv   0:                       general.architecture str              = gemma3
llama_model_loader: - kv   2:                               general.name str              = Gemma 3 270m It
print_info: n_ctx_train      = 32768
print_info: general.name     = Gemma 3 270m It
load_tensors: offloaded 19/19 layers to GPU
load_tensors:        CUDA0 model buffer size =   271.81 MiB
load_tensors:   CPU_Mapped model buffer size =    85.94 MiB
llama_context: constructing llama_context
llama_context: n_seq_max     = 4
llama_context: n_ctx         = 4096
llama_context: n_ctx_seq     = 1024
llama_context: n_batch       = 2048
llama_context: n_ubatch      = 512
llama_context: causal_attn   = 1
llama_context: flash_attn    = auto
llama_context: kv_unified    = false
llama_context: n_ctx_seq (1024) < n_ctx_train (32768) -- the full capacity of the model will not be utilized
llama_context:  CUDA_Host  output buffer size =     4.00 MiB
llama_kv_cache_iswa: creating non-SWA KV cache, size = 1024 cells
llama_kv_cache:      CUDA0 KV buffer size =     3.00 MiB
llama_kv_cache: size =    3.00 MiB (  1024 cells,   3 layers,  4/1 seqs), K (f16):    1.50 MiB, V (f16):    1.50 MiB
llama_kv_cache_iswa: creating     SWA KV cache, size = 1024 cells
llama_kv_cache:      CUDA0 KV buffer size =    15.00 MiB
llama_kv_cache: size =   15.00 MiB (  1024 cells,  15 layers,  4/1 seqs), K (f16):    7.50 MiB, V (f16):    7.50 MiB
llama_context:      CUDA0 compute buffer size =   518.12 MiB
llama_context:  CUDA_Host compute buffer size =    10.01 MiB
"""


def test_full_llamacpp_log():
    log = parse_log(LLAMACPP)
    assert (log.engine, log.engine_version, log.model) == (
        "llamacpp",
        "6527 (7f766929)",
        "/models/gemma-3-270m-it-Q8_0.gguf",
    )
    assert log.settings == {
        "max_num_seqs": 4,
        "n_ctx": 4096,
        "max_model_len": 1024,
        "n_batch": 2048,
        "n_ubatch": 512,
        "flash_attn": "auto",
        "kv_unified": False,
        "cache_type_k": "f16",
        "cache_type_v": "f16",
        "kv_cache_dtype": "f16",
    }
    kv = [("llamacpp_kv_size", 3.0), ("llamacpp_kv_cells", 1024), ("llamacpp_kv_layers", 3)]
    assert figures(log) == [
        ("llamacpp_n_ctx_train", 32768, "tokens", 0),
        ("llamacpp_model_buffer_size", 271.81, "MiB", 2),
        ("llamacpp_model_buffer_size", 85.94, "MiB", 2),
        ("llamacpp_n_ctx", 4096, "tokens", 0),
        ("llamacpp_n_ctx_seq", 1024, "tokens", 0),
        ("llamacpp_n_ctx_seq", 1024, "tokens", 0),
        ("llamacpp_n_ctx_train", 32768, "tokens", 0),
        ("llamacpp_output_buffer_size", 4.0, "MiB", 2),
        ("llamacpp_kv_cells", 1024, "cells", 0),
        ("llamacpp_kv_buffer_size", 3.0, "MiB", 2),
        ("llamacpp_kv_size", 3.0, "MiB", 2),
        ("llamacpp_kv_cells", 1024, "cells", 0),
        ("llamacpp_kv_layers", 3, "layers", 0),
        ("llamacpp_kv_seqs", 4, "seqs", 0),
        ("llamacpp_kv_streams", 1, "streams", 0),
        ("llamacpp_k_size", 1.5, "MiB", 2),
        ("llamacpp_v_size", 1.5, "MiB", 2),
        ("llamacpp_kv_cells", 1024, "cells", 0),
        ("llamacpp_kv_buffer_size", 15.0, "MiB", 2),
        ("llamacpp_kv_size", 15.0, "MiB", 2),
        ("llamacpp_kv_cells", 1024, "cells", 0),
        ("llamacpp_kv_layers", 15, "layers", 0),
        ("llamacpp_kv_seqs", 4, "seqs", 0),
        ("llamacpp_kv_streams", 1, "streams", 0),
        ("llamacpp_k_size", 7.5, "MiB", 2),
        ("llamacpp_v_size", 7.5, "MiB", 2),
        ("llamacpp_compute_buffer_size", 518.12, "MiB", 2),
        ("llamacpp_compute_buffer_size", 10.01, "MiB", 2),
    ]
    assert [(n.name, n.value) for n in log.numbers if n.form == "llamacpp.kv_cache"][:3] == kv
    assert sum(n.value for n in log.get("llamacpp_kv_size")) == 18.0  # gemma-3-270m: 4 slots -> 18.0 MiB


def test_old_llamacpp_kv_self_size_line():
    log = parse_log(
        "main: build = 3600 (2fb92678)\n"
        "llama_new_context_with_model: n_ctx      = 8192\n"
        "llama_kv_cache_init:      CUDA0 KV buffer size =  1024.00 MiB\n"
        "llama_new_context_with_model: KV self size  = 1024.00 MiB, K (q8_0):  544.00 MiB, V (f16):  480.00 MiB\n"
    )
    assert (log.engine, log.engine_version) == ("llamacpp", "3600 (2fb92678)")
    assert log.settings == {"n_ctx": 8192, "cache_type_k": "q8_0", "cache_type_v": "f16"}  # K != V: no kv_cache_dtype
    assert [(n.name, n.value) for n in log.numbers] == [
        ("llamacpp_n_ctx", 8192),
        ("llamacpp_kv_buffer_size", 1024.0),
        ("llamacpp_kv_size", 1024.0),
        ("llamacpp_k_size", 544.0),
        ("llamacpp_v_size", 480.0),
    ]


TRTLLM = """\
[TensorRT-LLM] TensorRT-LLM version: 0.17.0
[TensorRT-LLM][INFO] Loaded engine size: 875 MiB
[TensorRT-LLM][INFO] [MemUsageChange] Allocated 773.51 MiB for execution context memory.
[TensorRT-LLM][INFO] [MemUsageChange] Allocated 2.66 GB GPU memory for runtime buffers.
[TensorRT-LLM][INFO] [MemUsageChange] Allocated 5.76 GB GPU memory for decoder.
[TensorRT-LLM][INFO] Memory usage when calculating max tokens in paged kv cache: total: 15.72 GiB, available: 5.06 GiB
[TensorRT-LLM][INFO] Number of blocks in KV cache primary pool: 6184
[TensorRT-LLM][INFO] Number of tokens per block: 64.
[TensorRT-LLM][INFO] [MemUsageChange] Allocated 4.53 GiB for max tokens in paged KV cache (395776).
[02/14/2025-09:38:53] [TRT-LLM] [I] max_seq_len=131072, max_num_requests=2048, max_num_tokens=8192
"""


def test_full_tensorrt_llm_log():
    log = parse_log(TRTLLM)
    assert (log.engine, log.engine_version, log.model) == ("tensorrt-llm", "0.17.0", None)
    assert log.settings == {"max_model_len": 131072, "max_num_seqs": 2048, "max_num_batched_tokens": 8192}
    assert figures(log) == [
        ("weights_memory", 875, "MiB", 0),
        ("trtllm_execution_context_memory", 773.51, "MiB", 2),
        ("trtllm_runtime_buffers_memory", 2.66, "GB", 2),
        ("trtllm_decoder_memory", 5.76, "GB", 2),
        ("total_gpu_memory", 15.72, "GiB", 2),
        ("trtllm_free_memory", 5.06, "GiB", 2),
        ("num_gpu_blocks", 6184, "blocks", 0),
        ("block_size", 64, "tokens", 0),
        ("kv_cache_memory", 4.53, "GiB", 2),
        ("kv_cache_tokens", 395776, "tokens", 0),
    ]


# ----------------------------------------------------------------------------------------------- one line each

# (a line as the engine prints it, the figures read from it, the settings read from it)
LINES = [
    (
        "(EngineCore pid=1) DEBUG 05-01 10:00:00 [gpu_worker.py:290] Memory profiling takes 9.17 seconds. Total non "
        "KV cache memory: 17.87GiB; torch peak memory increase: 2.41GiB; non-torch forward increase memory: 0.06GiB; "
        "weights memory: 14.99GiB.",
        [
            ("non_kv_cache_memory", 17.87),
            ("peak_activation", 2.41),
            ("non_torch_memory", 0.06),
            ("weights_memory", 14.99),
        ],
        {},
    ),
    (
        "INFO 12-01 10:00:00 worker.py:262] the current vLLM instance can use total_gpu_memory (79.19GiB) x "
        "gpu_memory_utilization (0.90) = 71.27GiB",
        [("total_gpu_memory", 79.19), ("memory_budget", 71.27)],
        {"gpu_memory_utilization": 0.9},
    ),
    (
        "INFO 12-01 10:00:00 worker.py:262] model weights take 14.99GiB; non_torch_memory takes 0.12GiB; PyTorch "
        "activation peak memory takes 1.23GiB; the rest of the memory reserved for KV Cache is 54.93GiB.",
        [
            ("weights_memory", 14.99),
            ("non_torch_memory", 0.12),
            ("peak_activation", 1.23),
            ("available_kv_cache_memory", 54.93),
        ],
        {},
    ),
    (
        "(Worker pid=1) INFO [gpu_worker.py:621] CUDA graph pool memory: 0.50 GiB (actual), 0.80 GiB (estimated), "
        "difference: 0.30 GiB (37.5%).",
        [("cudagraph_memory", 0.5), ("cudagraph_memory", 0.8)],
        {},
    ),
    (
        "(EngineCore pid=1) INFO [gpu_worker.py:495] The current --gpu-memory-utilization=0.7200 is equivalent to "
        "--gpu-memory-utilization=0.6026 without CUDA graph memory profiling. To maintain the same effective KV cache "
        "size as before, increase --gpu-memory-utilization to 0.8374.",
        [
            ("cudagraph_equivalent_gpu_memory_utilization", 0.6026),
            ("cudagraph_suggested_gpu_memory_utilization", 0.8374),
        ],
        {"gpu_memory_utilization": 0.72},
    ),
    (
        "(EngineCore pid=1) INFO [gpu_worker.py:804] Free memory on device (15.28/15.51 GiB) on startup. Desired GPU "
        "memory utilization is (0.92, 14.27 GiB). Actual usage is 10.47 GiB for consumed memory (weights + non-torch), "
        "0.79 GiB for peak activation, and 0.04 GiB for CUDAGraph memory.",
        [
            ("free_memory_on_startup", 15.28),
            ("total_gpu_memory", 15.51),
            ("memory_budget", 14.27),
            ("weights_and_non_torch_memory", 10.47),
            ("peak_activation", 0.79),
            ("cudagraph_memory", 0.04),
        ],
        {"gpu_memory_utilization": 0.92},
    ),
    (
        "(EngineCore pid=1) INFO [kv_cache_utils.py:2393] GPU KV cache size: 651,081 tokens, Maximum concurrency for "
        "262,144 tokens per request: 2.48x",
        [("kv_cache_tokens", 651081), ("max_concurrency_tokens", 262144), ("max_concurrency", 2.48)],
        {},
    ),
    (
        '(EngineCore pid=86) level=INFO name=vllm.v1.worker.gpu_worker msg="Available KV cache memory: 5.38 GiB"',
        [("available_kv_cache_memory", 5.38)],
        {},
    ),
    (
        "(EngineCore pid=1) INFO [gpu_worker.py:300] Reserved 4.0 GiB memory for KV Cache as specified by "
        "kv_cache_memory_bytes config and skipped memory profiling.",
        [("available_kv_cache_memory", 4.0)],
        {},
    ),
    (
        "(EngineCore pid=1) INFO [interface.py:986] Setting attention block size to 3072 tokens to ensure that "
        "attention page size is >= mamba page size.",
        [("block_size", 3072)],
        {},
    ),
    (
        "(Worker_TP0 pid=129) WARNING 07-05 17:28:26 [kv_cache_utils.py:1208] Add 3 padding layers, may waste at most "
        "6.25% KV cache memory",
        [("padding_layers", 3), ("padding_waste_percent", 6.25)],
        {},
    ),
    ("INFO 03-03 19:26:05 [model.py:1510] Using max model len 4096", [], {"max_model_len": 4096}),
    ("Available KV cache memory: 1.1234567890123456789 GiB", [], {}),  # a number is read whole or not at all
    ("GPU KV cache size: 12,3456 tokens", [], {}),
    (
        "05:21:11 (EngineCore pid=75) INFO Overriding num_gpu_blocks=0 with num_gpu_blocks_override=512",
        [],
        {"num_gpu_blocks_override": 512},
    ),
    (
        "INFO 07-01 00:00:00 [cuda.py:1] Using fp8_e4m3 data type to store kv cache. It reduces the GPU memory "
        "footprint and boosts the performance.",
        [],
        {"kv_cache_dtype": "fp8_e4m3"},
    ),
    (
        "INFO 07-24 14:07:31 gpu_executor.py:122] # cuda blocks: 2170, # CPU blocks: 2048",
        [("num_gpu_blocks", 2170), ("num_cpu_blocks", 2048)],
        {},
    ),
    (
        "[2026-01-31 13:50:39 TP0] KV Cache is allocated. #tokens: 1905728, KV size: 31.11 GB",
        [("kv_cache_tokens", 1905728), ("sglang_kv_size", 31.11)],
        {},
    ),
    (
        "[2025-12-19 07:42:57 TP2] SWAKVPool mem usage: 77.63 GB, swa size: 1496958, full size: 1496958",
        [("sglang_swa_pool_memory", 77.63), ("sglang_swa_size", 1496958), ("sglang_full_size", 1496958)],
        {},
    ),
    (
        "[2026-01-31 13:50:39 TP2] Use sliding window memory pool. full_layer_tokens=375360, swa_layer_tokens=300288",
        [("sglang_full_layer_tokens", 375360), ("sglang_swa_layer_tokens", 300288)],
        {},
    ),
    (
        "[2026-02-27 17:10:28 TP0] Using KV cache dtype: torch.float8_e5m2",
        [],
        {"kv_cache_dtype": "torch.float8_e5m2"},
    ),
    (
        "llama_memory_recurrent: size =   25.50 MiB (     4 cells,  48 layers,  4 seqs), R (f32):    1.50 MiB, "
        "S (f32):   24.00 MiB",
        [],  # a recurrent state, not a KV cache: not read as one
        {},
    ),
    (
        "llama_kv_cache_unified: size =  256.00 MiB (  4096 cells,  32 layers,  1 seqs), K (q8_0):  136.00 MiB, "
        "V (q8_0):  120.00 MiB",
        [
            ("llamacpp_kv_size", 256.0),
            ("llamacpp_kv_cells", 4096),
            ("llamacpp_kv_layers", 32),
            ("llamacpp_kv_seqs", 1),
            ("llamacpp_k_size", 136.0),
            ("llamacpp_v_size", 120.0),
        ],
        {"cache_type_k": "q8_0", "cache_type_v": "q8_0", "max_num_seqs": 1, "kv_cache_dtype": "q8_0"},
    ),
]


@pytest.mark.parametrize(("line", "expected", "settings"), LINES, ids=lambda v: v[:60] if isinstance(v, str) else "")
def test_one_line_of_each_format(line, expected, settings):
    log = parse_log(line)
    assert [(n.name, n.value) for n in log.numbers] == expected
    assert log.settings == settings
    for number in log.numbers:
        assert number.unit == NUMBER_NAMES[number.name][0] or number.form == "trtllm.engine_size"


def test_every_rule_is_exercised():
    """Each recognised line format appears in a test above (full logs, one-line table, calibration quotes)."""
    texts = [VLLM_019, VLLM_026_FAILED, VLLM_V0, SGLANG, LLAMACPP, TRTLLM, TRTLLM_PYTORCH]
    texts += [line for line, _n, _s in LINES]
    texts += [case_text(case) for name in FILES for case in cases(name)]
    texts += [
        "llama_new_context_with_model: KV self size  = 1024.00 MiB, K (q8_0):  544.00 MiB, V (f16):  480.00 MiB",
        "Capture cuda graph end. Time elapsed: 7.23 s. avail mem=0.53 GB. mem usage=0.93 GB.",
    ]
    seen = {n.form for text in texts for n in parse_log(text).numbers}
    seen |= {rule.form for rule in engine_logs._RULES if rule.numbers == ()}  # settings-only rules: LINES above
    assert {rule.form for rule in engine_logs._RULES} <= seen, {rule.form for rule in engine_logs._RULES} - seen


@pytest.mark.parametrize(
    ("text", "kinds"),
    [
        (
            "ValueError: No available memory for the cache blocks. Try increasing `gpu_memory_utilization`.",
            ["no_kv_cache_memory"],
        ),
        (
            "ValueError: Free memory on device (10.5/79.19 GiB) on startup is less than desired GPU memory utilization "
            "(0.9, 71.27 GiB). Decrease GPU memory utilization or reduce GPU memory used by other processes.",
            ["insufficient_free_memory"],
        ),
        (
            "[rank0]: torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB. GPU 0 has a total "
            "capacity of 79.19 GiB of which 1.20 GiB is free.",
            ["cuda_out_of_memory"],
        ),
        ("RuntimeError: Engine core initialization failed. See root cause above.", ["exception"]),
        ('    raise ValueError(\n  File "x.py", line 3, in f', []),
        ("ValueError: x\n[rank1]: ValueError: x\n", ["exception"]),  # one error printed by every rank
    ],
)
def test_error_kinds(text, kinds):
    assert [e.kind for e in parse_log(text).errors] == kinds


def test_insufficient_free_memory_figures():
    log = parse_log(
        "ValueError: Free memory on device (10.5/79.19 GiB) on startup is less than desired GPU memory utilization "
        "(0.9, 71.27 GiB)."
    )
    assert [(n.name, n.value) for n in log.numbers] == [
        ("free_memory_on_startup", 10.5),
        ("total_gpu_memory", 79.19),
        ("memory_budget", 71.27),
    ]
    assert log.settings == {"gpu_memory_utilization": 0.9}


@pytest.mark.parametrize(
    ("text", "engine", "version"),
    [
        ("vLLM Version: 0.10.1.1", "vllm", "0.10.1.1"),
        ("Initializing a V0 LLM engine (v0.8.5) with config: model='x', max_seq_len=4096", "vllm", "0.8.5"),
        (
            "INFO 01-01 00:00:00 api_server.py:1] vLLM API server version 0.11.0rc2.dev13+g1a2b3c4d5",
            "vllm",
            "0.11.0rc2.dev13+g1a2b3c4d5",
        ),
        ("SGLang version: 0.5.4.post1", "sglang", "0.5.4.post1"),
        ("sglang: 0.4.3.post4", "sglang", "0.4.3.post4"),
        ("pip freeze: sglang==0.5.2", "sglang", "0.5.2"),
        ("[TensorRT-LLM] TensorRT-LLM version: 1.0.0rc4", "tensorrt-llm", "1.0.0rc4"),
        ("version: 6527 (7f766929)", "llamacpp", "6527 (7f766929)"),
        ("build: 6a8cf8914 (6733)", "llamacpp", "6733 (6a8cf8914)"),  # llama-bench prints the hash first
        ("we moved to vLLM 0.26 last week, see v0.27.1", None, None),
    ],
)
def test_version_lines(text, engine, version):
    log = parse_log(text)
    assert (log.engine, log.engine_version) == (engine, version)


@pytest.mark.parametrize(
    ("text", "engine", "model", "settings"),
    [
        (
            "python3 -m sglang.launch_server --model-path XiaomiMiMo/MiMo-V2-Flash --tp-size 4 --mem-fraction-static 0.7 "
            "--context-length 65536 --max-running-requests 64 --page-size 64",
            "sglang",
            "XiaomiMiMo/MiMo-V2-Flash",
            {
                "tensor_parallel_size": 4,
                "mem_fraction_static": 0.7,
                "max_model_len": 65536,
                "max_num_seqs": 64,
                "page_size": 64,
            },
        ),
        (
            "python -m vllm.entrypoints.openai.api_server --model Qwen/Qwen3-8B -tp 2 --kv-cache-dtype fp8 --block-size 32",
            "vllm",
            "Qwen/Qwen3-8B",
            {"tensor_parallel_size": 2, "kv_cache_dtype": "fp8", "block_size": 32},
        ),
        (
            "./llama-server -hf unsloth/gemma-3-270m-it-GGUF -c 8192 --parallel 2 -ctk q8_0 -ctv q8_0 -ngl 99",
            "llamacpp",
            "unsloth/gemma-3-270m-it-GGUF",
            {
                "n_ctx": 8192,
                "max_num_seqs": 2,
                "cache_type_k": "q8_0",
                "cache_type_v": "q8_0",
                "n_gpu_layers": "99",
                "kv_cache_dtype": "q8_0",
            },
        ),
        (
            "trtllm-serve Qwen/Qwen3-8B --tp_size 2 --max_batch_size 64 --max_seq_len 8192 "
            "--kv_cache_free_gpu_memory_fraction 0.85",
            "tensorrt-llm",
            "Qwen/Qwen3-8B",
            {
                "tensor_parallel_size": 2,
                "max_num_seqs": 64,
                "max_model_len": 8192,
                "kv_cache_free_gpu_mem_fraction": 0.85,
            },
        ),
        ("echo -c 5 -m foo", None, None, {}),  # short flags count only on an engine's command line
    ],
)
def test_command_lines(text, engine, model, settings):
    log = parse_log(text)
    assert (log.engine, log.model, log.settings) == (engine, model, settings)
    assert log.numbers == ()


TRTLLM_PYTORCH = """\
Starting trtllm-serve for model openai/gpt-oss-120b on port 8355...
[TensorRT-LLM] TensorRT-LLM version: 1.1.0rc3
[12/20/2025-04:20:19] [TRT-LLM] [I] Validating KV Cache config against kv_cache_dtype="auto"
[12/20/2025-04:20:21] [TRT-LLM] [I] Use 63.32 GB for model weights.
[TensorRT-LLM][INFO] Number of tokens per block: 32.
[TensorRT-LLM][INFO] [MemUsageChange] Allocated 0.56 GiB for max tokens in paged KV cache (8224).
[12/20/2025-04:21:10] [TRT-LLM] [I] max_seq_len=8224, max_num_requests=64, max_num_tokens=8192, max_batch_size=64
[12/20/2025-04:21:50] [TRT-LLM] [I] Memory used after loading model weights (inside torch) in memory usage profiling: 63.52 GiB
[12/20/2025-04:21:50] [TRT-LLM] [I] Memory used after loading model weights (outside torch) in memory usage profiling: 49.78 GiB
[12/20/2025-04:21:51] [TRT-LLM] [I] Memory dynamically allocated during inference (inside torch) in memory usage profiling: 0.85 GiB
[12/20/2025-04:21:51] [TRT-LLM] [I] Memory used outside torch (e.g., NCCL and CUDA graphs) in memory usage profiling: 49.28 GiB
[12/20/2025-04:21:51] [TRT-LLM] [I] Peak memory during memory usage profiling (torch + non-torch): 113.65 GiB, available KV cache memory when calculating max tokens: 5.95 GiB, fraction is set 0.8999999761581421, kv size is 73728. device total memory 119.70 GiB, , tmp kv_mem 0.56 GiB
[12/20/2025-04:21:51] [TRT-LLM] [I] Estimated max memory in KV cache : 5.95 GiB
[TensorRT-LLM][INFO] Max KV cache blocks per sequence: 2711 [window size=86720], tokens per block=32, primary blocks=2710, max sequence length=86720
[TensorRT-LLM][INFO] [MemUsageChange] Allocated 5.95 GiB for max tokens in paged KV cache (86720).
[12/20/2025-04:21:52] [TRT-LLM] [I] max_seq_len=86720, max_num_requests=64, max_num_tokens=8192, max_batch_size=64
"""


def test_full_tensorrt_llm_pytorch_backend_log():
    """The PyTorch backend sizes the KV cache twice (a profiling pass, then the real one): the settings are the
    last pass's, the figures are all kept in order; a sentence naming trtllm-serve is not a command."""
    log = parse_log(TRTLLM_PYTORCH)
    assert (log.engine, log.engine_version, log.model) == ("tensorrt-llm", "1.1.0rc3", None)
    assert log.settings == {
        "max_model_len": 86720,
        "max_num_seqs": 64,
        "max_num_batched_tokens": 8192,
        "kv_cache_free_gpu_mem_fraction": 0.8999999761581421,
    }
    assert figures(log) == [
        ("weights_memory", 63.32, "GB", 2),
        ("block_size", 32, "tokens", 0),
        ("kv_cache_memory", 0.56, "GiB", 2),
        ("kv_cache_tokens", 8224, "tokens", 0),
        ("weights_memory", 63.52, "GiB", 2),
        ("non_torch_memory", 49.78, "GiB", 2),
        ("peak_activation", 0.85, "GiB", 2),
        ("non_torch_memory", 49.28, "GiB", 2),
        ("trtllm_peak_memory", 113.65, "GiB", 2),
        ("available_kv_cache_memory", 5.95, "GiB", 2),
        ("total_gpu_memory", 119.7, "GiB", 2),
        ("kv_cache_memory", 5.95, "GiB", 2),
        ("block_size", 32, "tokens", 0),
        ("num_gpu_blocks", 2710, "blocks", 0),
        ("kv_cache_memory", 5.95, "GiB", 2),
        ("kv_cache_tokens", 86720, "tokens", 0),
    ]
    assert [n.form for n in log.get("non_torch_memory")] == [
        "trtllm.non_torch_after_weights",
        "trtllm.non_torch_after_profiling",
    ]


# ----------------------------------------------------------------------------------------------- settings


def test_command_lines_and_precedence():
    log = parse_log(
        "$ vllm serve Qwen/Qwen3-8B --max-model-len=32k --tensor-parallel-size 2 -tp 4 --gpu-memory-utilization 0.9 "
        '--enforce-eager --speculative-config {"method": "mtp", "num_speculative_tokens": 3} --no-enable-prefix-caching\n'
        "INFO 01-01 00:00:00 [utils.py:1] non-default args: {'model': 'Qwen/Qwen3-8B', 'tensor_parallel_size': 8}\n"
    )
    assert log.model == "Qwen/Qwen3-8B"
    assert log.settings == {
        "tensor_parallel_size": 8,  # the engine's own dump wins over the command line
        "max_model_len": "32k",
        "gpu_memory_utilization": 0.9,
        "enforce_eager": True,
        "speculative_config": {"method": "mtp", "num_speculative_tokens": 3},
        "enable_prefix_caching": False,
    }


def test_flags_without_values_are_not_settings():
    log = parse_log("| `--max-model-len` | 131072 | **262144** |\nlowers `--max-num-seqs` from 1024 to 512\n")
    assert log.settings == {}
    assert parse_log("Capacity: --max-model-len 262144 --gpu-memory-utilization 0.975 gives a pool").settings == {}


def test_yaml_argument_lists():
    log = parse_log(
        'args:\n  - --gpu-memory-utilization\n  - "0.36"\n  - --enforce-eager\n  - --kv-cache-dtype\n  - fp8\n'
    )
    assert log.settings == {"gpu_memory_utilization": 0.36, "enforce_eager": True, "kv_cache_dtype": "fp8"}


def test_dumps_hard_wrapped_by_a_terminal():
    """A terminal that wraps at a fixed width cuts a dump anywhere, even inside a string; it is joined back."""
    args = (
        "(APIServer pid=1671) INFO 09-04 01:02:21 [utils.py:326] non-default args: {'model_tag': 'Qwen2-7B-Instruct', "
        "'port': 8081, 'model': 'Qwen2-7B-Instruct', 'max_model_len': 16384, 'tensor_parallel_size': 2, "
        "'gpu_memory_utilization': 0.25}"
    )
    config = (
        "(EngineCore_0 pid=1) INFO 09-04 01:02:40 [core.py:74] Initializing a V1 LLM engine (v0.10.1.1) with config: "
        "model='Qwen2-7B-Instruct', dtype=torch.bfloat16, max_seq_len=16384, tensor_parallel_size=2, "
        "kv_cache_dtype=auto, enforce_eager=False"
    )
    server_args = (
        "[2025-03-08 12:29:04] server_args=ServerArgs(model_path='Qwen/QwQ-32B', mem_fraction_static=0.85, tp_size=4, "
        "context_length=32768)"
    )
    width = 128
    wrapped = "\n".join(
        "\n".join(text[i : i + width] for i in range(0, len(text), width)) for text in (args, config, server_args)
    )
    for text in (wrapped, f"{args}\n{config}\n{server_args}"):
        log = parse_log(text)
        assert log.model == "Qwen2-7B-Instruct"
        assert log.settings == {
            "max_model_len": 16384,
            "tensor_parallel_size": 2,
            "gpu_memory_utilization": 0.25,
            "dtype": "torch.bfloat16",
            "kv_cache_dtype": "auto",
            "enforce_eager": False,
            "mem_fraction_static": 0.85,
        }
    assert parse_log(config[:150]).settings == {}  # the log ends inside the dump: what it holds is read
    assert parse_log(config).engine_version == "0.10.1.1"


def test_dicts_are_read_as_literals_only():
    hostile = (
        "non-default args: {'model': __import__('os').system('echo pwned'), 'max_model_len': 4096, "
        "'tensor_parallel_size': (lambda: 2)(), 'max_num_seqs': 1 + 1, 'dtype': 'half', "
        "'quantization': " + "[" * 5000 + "]" * 5000 + "}"
    )
    log = parse_log(hostile)
    assert log.settings == {"max_model_len": 4096, "dtype": "half"}
    assert log.model is None
    for text in (
        "non-default args: {" + "{" * 100000,
        "non-default args: {'a': '" + "\\'" * 100000,
        "non-default args: x",
    ):
        assert parse_log(text).settings == {}


# ----------------------------------------------------------------------------------------------- hostile input


@pytest.mark.parametrize(
    "text",
    [
        "",
        "\n\n\n",
        "hello world\nnothing to see here\n",
        "GPU KV cache size: many tokens\nAvailable KV cache memory: lots GiB\n",
        "\x00\x01\x02\xff\xfe" * 1000,
        "# GPU blocks: , # CPU blocks: \nModel loading took  GiB\nmax seq len (",
    ],
)
def test_unknown_text_gives_nothing(text):
    log = parse_log(text)
    assert log.engine is None
    assert log.numbers == ()
    assert log.model is None and log.engine_version is None


def test_binary_input():
    data = bytes(range(256)) * 4000 + b"\nAvailable KV cache memory: 1.50 GiB\n" + bytes(range(256)) * 10
    log = parse_log(data)
    assert [(n.name, n.value) for n in log.numbers] == [("available_kv_cache_memory", 1.5)]
    assert parse_log(b"\xff\xfe\x00" * 100000).numbers == ()
    with pytest.raises(TypeError):
        parse_log(12345)  # type: ignore[arg-type]


def _fast(text: str, budget: float = 5.0) -> EngineLog:
    start = time.perf_counter()
    log = parse_log(text)
    assert time.perf_counter() - start < budget, "parse_log took too long"
    return log


@pytest.mark.parametrize(
    "junk",
    [
        "x" * 1_000_000,
        "1" * 1_000_000,
        ("1" * 50_000 + " GiB for weight ") * 20,
        "Available KV cache memory: " * 40_000,
        "GPU KV cache size: " + "1," * 500_000 + " tokens",
        "size = 1 MiB ( 1 cells, 1 layers, 1 seqs), K (f16): " * 20_000,
        "ValueError: " * 80_000,
        "max seq len (" * 80_000,
        "vllm serve " + "--max-model-len " * 60_000,
        "`--x " * 200_000,
        "(" + "a" * 999_990 + " pid=1)",
        "vLLM: " + "1." * 500_000,
        "a" * 999_990 + "Error: x",
        "█" * 1_000_000 + " version 1.0",
    ],
    ids=lambda junk: repr(junk[:24]),
)
def test_a_megabyte_line_of_junk_parses_fast(junk):
    log = _fast(junk)
    assert log.lines_read == 1


def test_huge_input_is_capped_and_flagged():
    figure = "(EngineCore pid=1) INFO 01-01 00:00:00 [gpu_worker.py:1] Available KV cache memory: 1.25 GiB\n"
    chatter = "(EngineCore pid=1) INFO 01-01 00:00:00 [core.py:1] some other start-up message, nothing to read\n" * 99
    block = figure + chatter
    text = block * (MAX_LOG_CHARS // len(block) + 10)
    log = _fast(text, budget=30.0)
    assert log.truncated
    assert len(log.numbers) == -(-MAX_LOG_CHARS // len(block))  # the figures in the first MAX_LOG_CHARS only
    head = text[:MAX_LOG_CHARS]
    assert log.lines_read == head.count("\n") + (not head.endswith("\n"))
    assert not parse_log(figure).truncated


def test_a_log_of_nothing_but_figures_is_still_linear():
    line = "(EngineCore pid=1) INFO 01-01 00:00:00 [gpu_worker.py:1] Available KV cache memory: 1.25 GiB\n"
    log = _fast(line * 20_000)
    assert len(log.numbers) == 20_000


def test_long_lines_are_cut():
    log = parse_log("x" * (MAX_LINE_CHARS + 10) + " Available KV cache memory: 2.00 GiB")
    assert log.numbers == ()


def test_read_log(tmp_path):
    path = tmp_path / "vllm.log"
    path.write_bytes(VLLM_019.encode() + b"\xff\xfe tail\n")
    log = read_log(path)
    assert log == parse_log(VLLM_019.encode() + b"\xff\xfe tail\n")
    assert log.engine_version == "0.19.1"
    with pytest.raises(OSError):
        read_log(tmp_path / "missing.log")


def test_progress_bars_and_colours():
    log = parse_log(
        "Loading: 10%\rLoading: 100%\r(Worker pid=1) INFO [gpu_worker.py:1] Model loading took 7.51 GiB memory\r\n"
        "\x1b[32mINFO\x1b[0m 01-01 00:00:00 [gpu_worker.py:1] Available KV cache memory: \x1b[1m3.50\x1b[0m GiB\r\n"
    )
    assert [(n.name, n.value, n.line) for n in log.numbers] == [
        ("weights_memory", 7.51, 1),  # line numbers count \n only, as editors and grep -n do
        ("available_kv_cache_memory", 3.5, 2),
    ]
    assert log.numbers[0].text == "(Worker pid=1) INFO [gpu_worker.py:1] Model loading took 7.51 GiB memory"
    assert log.lines_read == 2


def test_v0_profiling_keys_only_on_their_line():
    """vLLM 0.19's DEBUG init snapshot also prints non_torch_memory=...GiB; only V0's results line is read."""
    log = parse_log(
        "(Worker pid=441) DEBUG 04-22 01:38:59 [v1/worker/gpu_worker.py:284] worker init memory snapshot: "
        "torch_peak=0.01GiB, free_memory=77.66GiB, total_memory=79.19GiB, cuda_memory=1.53GiB, torch_memory=0.02GiB, "
        "non_torch_memory=1.51GiB, timestamp=1776822339.2\n"
        "(Worker_TP0 pid=441) DEBUG 04-22 01:39:31 [v1/worker/gpu_worker.py:424] Initial free memory: 77.66 GiB; "
        "Requested memory: 0.950000 (util), 75.23 GiB\n"
    )
    assert [(n.name, n.value, n.decimals) for n in log.numbers] == [
        ("free_memory_on_startup", 77.66, 2),
        ("memory_budget", 75.23, 2),
    ]
    assert log.settings == {"gpu_memory_utilization": 0.95}


# ----------------------------------------------------------------------------------------------- the API


def test_logged_number_rounding():
    (number,) = parse_log("Available KV cache memory: 58.11 GiB").numbers
    assert number.decimals == 2 and number.rounding == pytest.approx(0.005)
    assert number.interval == pytest.approx((58.105, 58.115))
    (tokens,) = parse_log("GPU KV cache size: 476,016 tokens").numbers
    assert tokens.value == 476016 and isinstance(tokens.value, int) and tokens.interval == (476016, 476016)


def test_engine_log_helpers_and_json():
    log = parse_log(VLLM_019)
    assert log.values("weights_memory") == [7.51, 7.51, 7.51]
    assert log.first("num_gpu_blocks").value == 65293
    assert log.first("no_such_figure") is None
    assert "kv_cache_tokens" in log.names
    data = json.loads(json.dumps(log.as_dict()))
    assert data["engine"] == "vllm" and data["numbers"][0]["name"] == "weights_memory"
    assert hash(log) == hash(parse_log(VLLM_019))  # frozen and hashable (settings left out of the hash)
    with pytest.raises(AttributeError):
        log.engine = "sglang"  # type: ignore[misc]


def test_names_units_and_kinds_are_declared():
    for text in (VLLM_019, VLLM_026_FAILED, VLLM_V0, SGLANG, LLAMACPP, TRTLLM, TRTLLM_PYTORCH):
        log = parse_log(text)
        assert log.engine in ENGINES
        for number in log.numbers:
            assert number.name in NUMBER_NAMES
            assert number.engine == log.engine
        for error in log.errors:
            assert error.kind in ERROR_KINDS


def test_the_module_imports_only_the_standard_library():
    tree = ast.parse(Path(engine_logs.__file__).read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            imported.add((node.module or "").split(".")[0])
    assert imported - {"__future__"} <= set(sys.stdlib_module_names), imported
