"""Every serve command kvplan prints is valid for the engine it names: each option, and each value the engine
lists, is checked against that engine's own argument definitions, stored with their provenance under
tests/fixtures/engine_args/ (SOURCES.md). A comment after `#` says what the engine cannot carry (a KV dtype it
has no option or storage for); a command that is only a comment says why there is none."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest

from kvplan.engines.offload import Offload
from kvplan.engines.xinference import registry_model
from kvplan.planning.recommend import recommend

ARGS = Path(__file__).parents[1] / "fixtures" / "engine_args"
NGRAM = '{"method": "ngram", "num_speculative_tokens": 3}'
EAGLE = '{"method": "eagle", "model": "meta-llama/Llama-3.1-8B", "num_speculative_tokens": 3}'
FILES = {
    "vllm": "vllm",
    "sglang": "sglang",
    "llama.cpp": "llamacpp",
    "tensorrt-llm": "tensorrt-llm",
    "lightllm": "lightllm",
    "tgi": "tgi",
    "xinference": "xinference",
}
PROGRAMS = {
    "vllm": ["vllm", "serve"],
    "sglang": ["python", "-m", "sglang.launch_server"],
    "llama.cpp": ["llama-server"],
    "tensorrt-llm": ["trtllm-serve"],
    "lightllm": ["python", "-m", "lightllm.server.api_server"],
    "tgi": ["text-generation-launcher"],
    "xinference": ["xinference", "launch"],
}
POSITIONAL = {"vllm": 1, "tensorrt-llm": 1}  # the model comes first: `vllm serve MODEL`, `trtllm-serve MODEL`
FLAGS_WITHOUT_VALUE = {
    "vllm": {
        "--enable-prefix-caching",
        "--no-enable-prefix-caching",
        "--async-scheduling",
        "--no-async-scheduling",
        "--enable-expert-parallel",
        "--enable-eplb",
        "--enable-lora",
    },
    "sglang": {"--enable-lora", "--enable-hierarchical-cache"},
}
# options that take one or more values (argparse nargs="+" / "*"): vLLM's LoRAConfig.target_modules list
# (engine/arg_utils.py:1629), SGLang's --lora-target-modules (arg_groups/fields/lora.py:46-53, nargs="*")
FLAGS_WITH_VALUES = {"vllm": {"--lora-target-modules"}, "sglang": {"--lora-target-modules"}}


def _options(name: str) -> dict[str, list[str] | None]:
    return json.loads((ARGS / f"{name}.json").read_text())["options"]


def _vllm_fields() -> set[str]:
    """vLLM EngineArgs field names (what Xinference passes its extra `--key value` options to)."""
    return {o[2:].replace("-", "_") for o in _options("vllm") if o.startswith("--")}


def check_command(engine: str, command: str) -> list[str]:
    """The problems of one printed command (empty: valid), after the comment is taken off."""
    words = shlex.split(command, comments=True)
    if not words:
        return [] if command.lstrip().startswith("# ") and len(command) > 20 else [f"empty command {command!r}"]
    program = PROGRAMS[engine]
    if words[: len(program)] != program:
        return [f"starts {words[: len(program)]}, not {program}"]
    rest = words[len(program) + POSITIONAL.get(engine, 0) :]
    known = _options(FILES[engine])
    problems = []
    seen: set[str] = set()
    i = 0
    while i < len(rest):
        option = rest[i]
        if not option.startswith("-"):
            problems.append(f"stray word {option!r}")
            i += 1
            continue
        if option in seen:  # every setting carried once (a merge could add one twice)
            problems.append(f"{option} given twice")
        seen.add(option)
        takes_value = option not in FLAGS_WITHOUT_VALUE.get(engine, set())
        value = rest[i + 1] if takes_value and i + 1 < len(rest) else None
        i += 2 if takes_value else 1
        if option in FLAGS_WITH_VALUES.get(engine, set()):
            while i < len(rest) and not rest[i].startswith("-"):
                i += 1
        if option in known:
            allowed = known[option]
            if allowed is not None and value not in allowed:
                problems.append(f"{option} {value}: not one of {allowed}")
        elif engine == "xinference" and option[2:] in _vllm_fields():
            pass  # an extra keyword argument for the vLLM engine it launches (`--max_model_len`)
        else:
            problems.append(f"{option} is not an option of {engine}")
        if takes_value and (value is None or value.startswith("--")):
            problems.append(f"{option} has no value")
    return problems


# Dense GQA, sliding-window, MLA and hybrid models, with the KV dtypes kvplan plans, at TP/PP 1 and more.
CASES = [
    ("meta-llama/Llama-3.1-8B", {}),
    ("meta-llama/Llama-3.1-8B", {"kv_dtype": "fp8"}),
    ("meta-llama/Llama-3.1-8B", {"kv_dtype": "fp8_e5m2", "gpus": 2, "pp": 2}),
    ("meta-llama/Llama-3.1-8B", {"kv_dtype": "int8"}),
    ("meta-llama/Llama-3.1-8B", {"kv_dtype": "nvfp4", "gpu_profile": "b200"}),
    ("meta-llama/Llama-3.1-8B", {"max_num_seqs": 64, "prefix_caching": False, "async_scheduling": True}),
    ("meta-llama/Llama-3.1-8B", {"engine": "llamacpp", "kv_dtype": "q8_0", "n_ubatch": 1024}),
    ("meta-llama/Llama-3.1-8B", {"engine": "sglang", "kv_dtype": "fp8"}),
    ("meta-llama/Llama-3.1-8B", {"engine": "tensorrt-llm", "gpus": 2}),
    ("meta-llama/Llama-3.1-8B", {"engine": "lightllm"}),
    ("google/gemma-2-9b-it", {"kv_dtype": "fp8"}),
    ("deepseek-ai/DeepSeek-V3", {"gpus": 8, "kv_dtype": "fp8"}),
    ("Qwen/Qwen2.5-7B", {"max_model_len": 32768}),
    ("openai/gpt-oss-20b", {"kv_dtype": "fp8"}),
    ("Qwen/Qwen3-Next-80B-A3B", {"gpus": 4}),
    ("ai21labs/AI21-Jamba-1.5-Mini", {"gpus": 2}),
    ("deepseek-ai/DeepSeek-V2-Lite", {"tp": 2, "dp": 2, "dcp": 2, "expert_parallel": True, "redundant_experts": 4}),
    ("deepseek-ai/DeepSeek-V2-Lite", {"engine": "sglang", "tp": 2, "dp": 2}),
    # LoRA serving: vLLM, SGLang and TensorRT-LLM carry their LoRA options (or a lora_config comment)
    ("meta-llama/Llama-3.1-8B", {"max_loras": 4, "max_lora_rank": 16, "max_cpu_loras": 8, "lora_dtype": "bf16"}),
    ("meta-llama/Llama-3.1-8B", {"engine": "sglang", "max_lora_rank": 16, "lora_target_modules": "q_proj,v_proj"}),
    ("meta-llama/Llama-3.1-8B", {"engine": "tensorrt-llm", "max_loras": 2, "max_lora_rank": 8}),
    # the merged features together: speculative decoding, offload tiers, DP and LoRA on one command
    (
        "meta-llama/Llama-3.1-8B",
        {"speculative_config": NGRAM, "max_loras": 4, "offload": Offload(kv_offloading_size=100), "dp": 2, "tp": 2},
    ),
    (
        "meta-llama/Llama-3.1-8B",
        {"engine": "sglang", "speculative_config": EAGLE, "max_lora_rank": 16, "offload": Offload(hicache_ratio=2)}
        | {"dp": 2, "tp": 2},
    ),
    (
        "meta-llama/Llama-3.1-8B",
        {"engine": "sglang", "offload": Offload(hicache_size=100), "max_lora_rank": 8, "max_cpu_loras": 8},
    ),
    (
        "meta-llama/Llama-3.1-8B",
        {"offload": Offload(kv_offloading_size=10, kv_offloading_backend="lmcache", lmcache_cpu_size=5)}
        | {"limit_mm_per_prompt": '{"image": 0}', "max_loras": 2},
    ),
]


@pytest.mark.parametrize(("model", "options"), CASES, ids=[f"{m}-{sorted(o.items())}" for m, o in CASES])
def test_every_printed_command_is_valid_for_its_engine(model, options):
    kwargs = {"gpu_profile": "h100-sxm-80gb", "offline": True, **options}
    rec = recommend(model, **kwargs)
    assert set(rec.flags) == set(FILES)
    for engine, command in rec.flags.items():
        assert check_command(engine, command) == [], (engine, command)


@pytest.mark.parametrize("kv_dtype", ["fp8", "fp8_e5m2", "int8", "nvfp4"])
def test_every_command_carries_the_kv_dtype_or_says_why_not(kv_dtype):
    rec = recommend("meta-llama/Llama-3.1-8B", gpu_profile="b200", kv_dtype=kv_dtype, offline=True)
    for engine, command in rec.flags.items():
        flag_part, _, comment = command.partition("#")
        carried = any(f in flag_part for f in ("kv-cache-dtype", "kv_cache_dtype", "--cache-type-k", "--mode "))
        assert carried or comment.strip(), (engine, command)


def test_the_checker_refuses_what_the_engines_refuse():
    assert check_command("sglang", "python -m sglang.launch_server --model-path m --tp 1")  # --tp-size only
    assert check_command("tgi", "text-generation-launcher --model-id m --kv-cache-dtype fp8")  # fp8_e4m3fn
    assert check_command("llama.cpp", "llama-server -m m.gguf --cache-type-k fp8")
    assert check_command("xinference", "xinference launch --model-name m --no_such_option 1")
    assert check_command("vllm", "vllm serve m --max-model-len 8192 --kv-cache-dtype fp8") == []


def test_xinference_launches_a_registry_name_not_a_hub_id():
    fixture = json.loads((ARGS / "xinference.json").read_text())["registry"]
    shipped = json.loads((Path(__import__("kvplan").__file__).parent / "engines/xinference_models.json").read_text())
    assert {k: v[0] for k, v in shipped["models"].items()} == {k: v["model_name"] for k, v in fixture.items()}
    assert registry_model("meta-llama/Llama-3.1-8B") == ("llama-3.1", 8)  # the Hub's new name of Meta-Llama-3.1-8B
    assert registry_model("Qwen/Qwen2.5-7B-Instruct") == ("qwen2.5-instruct", 7)
    rec = recommend("ai21labs/AI21-Jamba-1.5-Mini", gpu_profile="h100-sxm-80gb", gpus=2, offline=True)
    assert rec.flags["xinference"].startswith("# Xinference has no built-in model for ai21labs/AI21-Jamba-1.5-Mini")


def test_tgi_prefill_budget_is_never_below_the_input_limit():
    """TGI's router: `max_batch_prefill_tokens must be >= max_input_tokens` unless the backend supports chunked
    prefill (backends/v3/src/main.rs), which depends on the model: the command starts either way."""
    rec = recommend("meta-llama/Llama-3.1-8B", gpu_profile="h100-sxm-80gb", offline=True)
    words = shlex.split(rec.flags["tgi"], comments=True)
    value = {words[i]: words[i + 1] for i in range(1, len(words) - 1) if words[i].startswith("--")}
    assert int(value["--max-batch-prefill-tokens"]) >= int(value["--max-input-tokens"])
    assert int(value["--max-input-tokens"]) < int(value["--max-total-tokens"])


def test_xinference_launch_options_name_their_registry_model(tmp_path):
    """The shipped example launches `llama-3.1` at 8B (a registry name), which check plans as its Hub id."""
    from kvplan.checking.engine_configs import load_engine_config

    example = Path(__file__).parents[2] / "examples" / "engine-configs" / "xinference-launch.json"
    deployment = load_engine_config(example, gpu="h100-sxm-80gb")
    assert deployment.model == "meta-llama/Llama-3.1-8B"
    assert any("model_name llama-3.1 is the registry name of meta-llama/Llama-3.1-8B" in n for n in deployment.notes)
    several = tmp_path / "x.json"
    several.write_text(json.dumps({"model_name": "qwen2.5-instruct", "model_engine": "vLLM", "n_gpu": 1}))
    # every size of Qwen2.5-Instruct and none chosen: left as written, and check asks for --model (test_check.py)
    assert load_engine_config(several, gpu="h100-sxm-80gb").model == "qwen2.5-instruct"
