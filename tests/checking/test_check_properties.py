"""Property-based tests of `kvplan check` over generated plans, YAML text and engine configs: never a traceback
or an internal error, always exit 0, 1 or 2, and the JSON report consistent with the exit code."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from kvplan.checking.plans import KEYS
from kvplan.cli import app
from kvplan.core.shapes import model_shape
from kvplan.planning.resolved import load

runner = CliRunner()
SETTINGS = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

MODELS = [
    "meta-llama/Llama-3.1-8B",
    "Qwen/Qwen3-8B",
    "openai-community/gpt2",
    "google/gemma-2-9b",
    "deepseek-ai/DeepSeek-V2-Lite",
    "openai/gpt-oss-20b",
    "ai21labs/AI21-Jamba-1.5-Mini",
    "tiiuae/falcon-7b",
]
GPUS = ["h100-sxm-80gb", "h100", "rtx-4090", "l40s", "a100-sxm-80gb", "8gb", "mi300x", "t4"]

junk = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 2**40),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)
lengths = st.one_of(st.integers(1, 300_000), st.sampled_from(["4k", "32k", "128K", "1M", "0", "32 k", "1.5k"]))
VALID = {
    "name": st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=12),
    "model": st.sampled_from(MODELS + ["nobody/nothing", "./missing", "gpt2"]),
    "revision": st.sampled_from(["main", "v1"]),
    "gpu": st.sampled_from(GPUS + ["h1000"]),
    "gpus": st.integers(1, 8),
    "engine": st.sampled_from(["vllm", "vllm", "sglang", "tgi", "llama.cpp", "transformers", "lightllm", "trtllm"]),
    "tensor_parallel_size": st.sampled_from([1, 1, 2, 4, 8, 3]),
    "pipeline_parallel_size": st.sampled_from([1, 1, 2]),
    "max_model_len": lengths,
    "max_num_seqs": st.integers(1, 512),
    "concurrency": st.integers(1, 64),
    "kv_cache_dtype": st.sampled_from(["auto", "fp8", "fp8_e4m3", "fp8_e5m2", "bf16", "int4"]),
    "dtype": st.sampled_from(["auto", "bfloat16", "float16", "float32", "half"]),
    "gpu_memory_utilization": st.floats(0.05, 1.0),
    "block_size": st.sampled_from([8, 16, 32, 64, 128]),
    "max_num_batched_tokens": st.integers(256, 65536),
    "kv_cache_memory": st.sampled_from(["10GiB", "40GB", 2**30, "512MiB"]),
    "weights_bytes": st.sampled_from(["4.92GB", "16GiB", 10**9]),
    "vllm_version": st.sampled_from(["0.19.1", "0.26.0", "v0.33.0", "0.21.0rc1"]),
    "assume_llama": st.booleans(),
    "hub_weights": st.booleans(),
    "quantization": st.sampled_from(["fp8", "fp8_per_tensor", "fp8_per_block", "int3"]),
    "speculative_config": st.sampled_from(
        [
            {"method": "mtp", "num_speculative_tokens": 3},
            {"method": "ngram", "num_speculative_tokens": 4},
            {"method": "eagle3", "num_speculative_tokens": 2, "model": "nobody/nothing"},
            '{"method": "mtp", "num_speculative_tokens": 1}',
            {"method": "medusa"},
        ]
    ),
    "kv_offloading_size": st.sampled_from([1, 64, 100.5, 4096]),
    "kv_offloading_backend": st.sampled_from(["native", "lmcache", "disk"]),
    "hicache_ratio": st.sampled_from([0.5, 2, 4.0]),
    "hicache_size": st.sampled_from([1, 100, 1000]),
    "lmcache_max_local_cpu_size": st.sampled_from([0.5, 5, 50, 512]),
    "lmcache_max_local_disk_size": st.sampled_from([10, 1000]),
    "lmcache_version": st.sampled_from(["0.3.2", "0.3.3", "0.5.6", "latest"]),
    "kvbm_cpu_cache_gb": st.sampled_from([4, 100.5, 2000]),
    "kvbm_disk_cache_gb": st.sampled_from([8, 500]),
    "host_memory": st.sampled_from(["256GiB", "2TB", 10**12, "auto"]),
    "data_parallel_size": st.sampled_from([1, 2, 4, 8]),
    "decode_context_parallel_size": st.sampled_from([1, 2, 3, 8]),
    "enable_expert_parallel": st.booleans(),
    "num_redundant_experts": st.sampled_from([0, 4, 7, 32]),
    "enable_lora": st.booleans(),
    "max_loras": st.integers(1, 8),
    "max_lora_rank": st.sampled_from([8, 16, 12, 64]),
    "max_cpu_loras": st.integers(1, 16),
    "lora_dtype": st.sampled_from(["auto", "bfloat16", "float16", "fp8", "x"]),
    "lora_target_modules": st.sampled_from([["q_proj", "v_proj"], "all", "q_proj,o_proj", ["qkv"]]),
    "limit_mm_per_prompt": st.sampled_from([{"image": 0}, '{"image": 2}', {"image": -1}, "image=2"]),
    "mamba_full_memory_ratio": st.sampled_from([0.9, 0.3, 2]),
    "max_mamba_cache_size": st.sampled_from([1, 64, 4096]),
    "mamba_ssm_dtype": st.sampled_from(["bfloat16", "float16", "fp8"]),
    "share_gpu_with": st.sampled_from([["a"], "b", ["nobody"]]),
}


def value(key: str) -> st.SearchStrategy:
    return st.one_of(VALID[key], VALID[key], VALID[key], junk)


@st.composite
def deployment(draw) -> dict:
    keys = ["name", "model", "gpu", "max_model_len"]
    keys += draw(st.lists(st.sampled_from([k for k in KEYS if k not in keys]), max_size=5, unique=True))
    keys = [k for k in keys if draw(st.integers(0, 15))]  # now and then a required key goes missing
    out = {k: draw(value(k)) for k in keys}
    if draw(st.integers(0, 10)) == 0:
        out[draw(st.sampled_from(["max_model_length", "tp", "gpu_type", "quantization"]))] = draw(junk)
    return out


defaults = st.fixed_dictionaries({}, optional={k: value(k) for k in KEYS if k != "name"})
plans = st.fixed_dictionaries(
    {"deployments": st.lists(deployment(), min_size=1, max_size=3)},
    optional={"defaults": defaults, "profiles_dir": st.one_of(st.none(), st.text(max_size=5))},
)


def invoke(args: list[str]):
    result = runner.invoke(app, ["check", *args], env={"HF_HUB_OFFLINE": "1", "COLUMNS": "200"})
    assert result.exit_code in (0, 1, 2), (result.exit_code, result.output, result.exception)
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    if result.exit_code == 2:
        lines = result.stderr.splitlines()
        assert lines and lines[0].startswith("error:") and "internal error" not in lines[0], result.stderr
        assert len(lines) <= 2 and all(line.startswith("hint:") for line in lines[1:]), result.stderr
    return result


def check_report(result) -> None:
    if result.exit_code == 2:
        return
    data = json.loads(result.stdout)
    assert data["schema"] == "kvplan.check/1"
    assert data["ok"] == (result.exit_code == 0) == all(d["ok"] for d in data["deployments"])
    for d in data["deployments"]:
        assert d["ok"] == (d["binding_constraint"] is None)
        if d["headroom_bytes"] is not None:
            assert (d["headroom_bytes"] >= 0) == d["fits"], d
        if not d["fits"]:
            assert d["binding_constraint"] in ("weights", "max_model_len", "concurrency")


@settings(max_examples=70, **SETTINGS)
@given(plans)
def test_generated_plans_never_crash(data):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "kvplan.yaml"
        path.write_text(yaml.safe_dump(data, allow_unicode=True))
        check_report(invoke([str(path), "--json"]))


YAML_BITS = [
    "deployments:",
    "\n",
    "  - ",
    "name: a",
    "model: meta-llama/Llama-3.1-8B",
    "gpu: h100",
    "max_model_len: ",
    "32k",
    "&a ",
    "*a",
    "<<: *a",
    "!!python/object/apply:os.system ['true']",
    "!!binary",
    "[",
    "]",
    "{",
    "}",
    ":",
    "'",
    '"',
    "\t",
    "%YAML 1.1\n",
    "---\n",
    "...\n",
    "defaults:",
    "\x00",
    "é",
    "? ",
    "#",
    "|",
    ">",
]


@settings(max_examples=120, **SETTINGS)
@given(st.one_of(st.lists(st.sampled_from(YAML_BITS), max_size=30).map("".join), st.text(max_size=200)))
def test_arbitrary_yaml_text_never_crashes(text):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "kvplan.yaml"
        path.write_text(text, encoding="utf-8", errors="surrogateescape")
        check_report(invoke([str(path), "--json"]))


ENGINE_KEYS = [
    "model",
    "model-path",
    "model_name",
    "max-model-len",
    "max_model_len",
    "context-length",
    "tensor-parallel-size",
    "tp-size",
    "n_gpu",
    "gpu-memory-utilization",
    "mem-fraction-static",
    "max-num-seqs",
    "max-running-requests",
    "kv-cache-dtype",
    "block-size",
    "kv-cache-memory-bytes",
    "max-num-batched-tokens",
    "pipeline-parallel-size",
    "dtype",
    "model_engine",
    "enforce-eager",
    "port",
    "quantization",
    "served-model-name",
]
ENGINE_VALUES = {
    "model": st.sampled_from(MODELS),
    "model-path": st.sampled_from(MODELS),
    "model_name": st.sampled_from(MODELS),
    "max-model-len": lengths,
    "max_model_len": lengths,
    "context-length": lengths,
    "tensor-parallel-size": st.sampled_from([1, 2, "2", 4]),
    "tp-size": st.sampled_from([1, 2, "4"]),
    "n_gpu": st.sampled_from([1, 2, "auto"]),
    "gpu-memory-utilization": st.sampled_from([0.9, "0.85", 0.5]),
    "mem-fraction-static": st.sampled_from([0.8, "0.88"]),
    "max-num-seqs": st.integers(1, 256),
    "max-running-requests": st.integers(1, 64),
    "kv-cache-dtype": st.sampled_from(["auto", "fp8", "fp8_e5m2"]),
    "block-size": st.sampled_from([16, 32]),
    "kv-cache-memory-bytes": st.sampled_from(["20GiB", 10**10]),
    "max-num-batched-tokens": st.integers(512, 16384),
    "pipeline-parallel-size": st.sampled_from([1, 2]),
    "dtype": st.sampled_from(["auto", "bfloat16"]),
    "model_engine": st.sampled_from(["vLLM", "SGLang", "MLX"]),
}


@st.composite
def engine_configs(draw) -> dict:
    keys = draw(st.lists(st.sampled_from(ENGINE_KEYS), max_size=8, unique=True))
    return {k: draw(st.one_of(ENGINE_VALUES[k], ENGINE_VALUES[k], junk) if k in ENGINE_VALUES else junk) for k in keys}


@settings(max_examples=70, **SETTINGS)
@given(
    engine_configs(),
    st.sampled_from([None, "vllm", "sglang", "xinference", "tgi"]),
    st.sampled_from([None, "h100-sxm-80gb", "l40s", "rtx-4090"]),
    st.sampled_from([None, "json", "yaml"]),
)
def test_generated_engine_configs_never_crash(config, kind, gpu, fmt):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"engine.{fmt or 'yaml'}"
        path.write_text(json.dumps(config) if fmt == "json" else yaml.safe_dump(config))
        args = ["--engine-config", str(path), "--json"]
        args += ["--engine", kind] if kind else []
        args += ["--gpu", gpu] if gpu else []
        check_report(invoke(args))


@settings(max_examples=25, **SETTINGS)
@given(
    st.sampled_from(MODELS[:4]),
    st.sampled_from(["h100-sxm-80gb", "rtx-4090", "l40s"]),
    st.sampled_from(["vllm", "sglang"]),
    st.integers(1024, 262144),
    st.integers(1, 64),
)
def test_a_suggested_max_model_len_fits_when_rechecked(model, gpu, engine, max_len, seqs):
    with tempfile.TemporaryDirectory() as tmp:

        def check(n: int):
            path = Path(tmp) / f"kvplan-{n}.yaml"
            path.write_text(
                yaml.safe_dump(
                    {
                        "deployments": [
                            {
                                "name": "d",
                                "model": model,
                                "gpu": gpu,
                                "engine": engine,
                                "max_model_len": n,
                                "max_num_seqs": seqs,
                            }
                        ]
                    }
                )
            )
            return invoke([str(path), "--json"])

        result = check(max_len)
        check_report(result)
        if result.exit_code != 1:
            return
        row = json.loads(result.stdout)["deployments"][0]
        best = next((f["value"] for f in row["fix"] if f["key"] == "max_model_len"), None)
        if best is not None:
            assert check(best).exit_code == 0
            limit = model_shape(load(model).config).max_position_embeddings
            assert best <= limit  # never beyond what the engine accepts
            if best < limit:  # the largest that fits: one more token does not
                assert check(best + 1).exit_code == 1
