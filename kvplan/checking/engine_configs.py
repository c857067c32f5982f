"""Engine configs users already have, read as `Deployment`s: a vLLM `--config` YAML, SGLang server arguments
(YAML or JSON) and Xinference launch options (YAML or JSON).

Keys are matched in the engine's own spellings (`max-model-len` and `max_model_len` alike) and mapped onto
the plan keys of kvplan.checking.plans, then validated by the same code as a plan file. Keys that kvplan does not
model are never an error: those known to change memory use (`enforce-eager`, `quantization`, ...) give a
note saying the figures leave them out, the others a note that they were ignored. Loaded with the safe
YAML loader only. Pure Python.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kvplan.checking.plans import Deployment, Entry, build_deployment, load_yaml, node_line, read_text
from kvplan.engines import canonical_engine
from kvplan.errors import ConfigError, UsageError

ENGINE_CONFIG_KINDS = ("vllm", "sglang", "xinference")

_COMMON = {
    "tensor_parallel_size": "tensor_parallel_size",
    "pipeline_parallel_size": "pipeline_parallel_size",
    "kv_cache_dtype": "kv_cache_dtype",
    "dtype": "dtype",
    "revision": "revision",
}

# engine key (normalised: lower case, '-' -> '_') -> plan key
_MAPS: dict[str, dict[str, str]] = {
    "vllm": {
        **_COMMON,
        "model": "model",
        "max_model_len": "max_model_len",
        "tp": "tensor_parallel_size",
        "pp": "pipeline_parallel_size",
        "gpu_memory_utilization": "gpu_memory_utilization",
        "max_num_seqs": "max_num_seqs",
        "block_size": "block_size",
        "kv_cache_memory_bytes": "kv_cache_memory",
        "kv_cache_memory": "kv_cache_memory",
        "max_num_batched_tokens": "max_num_batched_tokens",
    },
    "sglang": {
        **_COMMON,
        "model_path": "model",
        "model": "model",
        "context_length": "max_model_len",
        "tp_size": "tensor_parallel_size",
        "tp": "tensor_parallel_size",
        "pp_size": "pipeline_parallel_size",
        "mem_fraction_static": "gpu_memory_utilization",
        "max_running_requests": "max_num_seqs",
    },
    "xinference": {
        **_COMMON,
        "model_path": "model",
        "model_name": "model",
        "model_engine": "engine",
        "n_gpu": "gpus",
        "max_model_len": "max_model_len",
        "context_length": "max_model_len",
        "gpu_memory_utilization": "gpu_memory_utilization",
        "mem_fraction_static": "gpu_memory_utilization",
        "max_num_seqs": "max_num_seqs",
        "block_size": "block_size",
        "max_num_batched_tokens": "max_num_batched_tokens",
    },
}

# keys that change memory use but are not modelled: the figures leave them out, and a note says so
_MEMORY_KEYS: dict[str, tuple[str, ...]] = {
    "vllm": (
        "quantization",
        "cpu_offload_gb",
        "swap_space",
        "enforce_eager",
        "num_gpu_blocks_override",
        "speculative_config",
        "max_seq_len_to_capture",
        "cuda_graph_sizes",
        "compilation_config",
        "hf_overrides",
        "rope_scaling",
        "rope_theta",
        "kv_offloading_size",
        "kv_offloading_backend",
        "enable_lora",
        "max_lora_rank",
        "max_loras",
        "max_cpu_loras",
        "limit_mm_per_prompt",
        "mm_processor_cache_gb",
        "kv_transfer_config",
        "calculate_kv_scales",
        "enable_expert_parallel",
        "data_parallel_size",
        "enable_chunked_prefill",
        "long_prefill_token_threshold",
        "max_num_partial_prefills",
        "disable_sliding_window",
        "mamba_cache_dtype",
        "mamba_ssm_cache_dtype",
        "quantization_param_path",
        "num_lookahead_slots",
        "load_format",
        "kv_sharing_fast_prefill",
    ),
    "sglang": (
        "max_total_tokens",
        "chunked_prefill_size",
        "max_prefill_tokens",
        "page_size",
        "cuda_graph_max_bs",
        "cuda_graph_bs",
        "disable_cuda_graph",
        "quantization",
        "enable_dp_attention",
        "dp_size",
        "dp",
        "speculative_algorithm",
        "speculative_draft_model_path",
        "speculative_num_steps",
        "speculative_eagle_topk",
        "speculative_num_draft_tokens",
        "enable_mixed_chunk",
        "torch_compile_max_bs",
        "enable_torch_compile",
        "json_model_override_args",
        "swa_full_tokens_ratio",
        "ep_size",
        "enable_ep_moe",
        "lora_paths",
        "max_loras_per_batch",
        "enable_hierarchical_cache",
        "hicache_ratio",
        "hicache_size",
        "mamba_ssm_dtype",
        "max_mamba_cache_size",
        "cpu_offload_gb",
    ),
    "xinference": (
        "quantization",
        "model_format",
        "cpu_offload_gb",
        "enforce_eager",
        "swap_space",
        "speculative_config",
        "enable_chunked_prefill",
        "n_worker",
        "model_size_in_billions",
    ),
}


def normalise(key: Any) -> str:
    return str(key).strip().lower().lstrip("-").replace("-", "_")


def detect_kind(keys: list[str]) -> str:
    """Guess the engine from the keys: Xinference launch options, SGLang server arguments, else vLLM."""
    norm = {normalise(k) for k in keys}
    if norm & {"model_engine", "n_gpu", "model_uid", "model_size_in_billions", "model_format"} or (
        "model_name" in norm and "model" not in norm
    ):
        return "xinference"
    if norm & {"model_path", "context_length", "mem_fraction_static", "tp_size", "max_running_requests"}:
        return "sglang"
    return "vllm"


def load_engine_config(
    path: str | Path,
    *,
    kind: str | None = None,
    gpu: str | None = None,
    gpus: int | None = None,
    model: str | None = None,
    profiles_dir: str | None = None,
) -> Deployment:
    """Read one engine config as a Deployment. `gpu` is required (configs do not name hardware); `model` and
    `gpus` override the file's."""
    text = read_text(path, "engine config")
    data, node = load_yaml(path, text)
    if data is None:
        raise ConfigError(f"{path}: file is empty", hint="pass an engine config with at least the model")
    if not isinstance(data, dict):
        raise ConfigError(
            f"{path}:{node_line(node)}: expected a mapping of engine arguments at the top level",
            hint="an engine config is a YAML/JSON mapping such as `max-model-len: 32768`",
        )
    notes: list[str] = []
    if kind is None:
        kind = detect_kind([str(k) for k in data])
        notes.append(f"read as {kind} arguments (pass --engine vllm|sglang|xinference to choose)")
    kind = kind.lower()
    if kind not in ENGINE_CONFIG_KINDS:
        raise UsageError(
            f"--engine: unknown engine config kind {kind!r}", hint="use one of: " + ", ".join(ENGINE_CONFIG_KINDS)
        )
    if not gpu:
        raise UsageError(
            "--gpu is required with --engine-config (an engine config does not name the GPU)",
            hint="pass e.g. --gpu h100-sxm-80gb (see `kvplan profiles list`)",
        )

    lines: dict[str, int] = {}
    if node is not None and hasattr(node, "value"):
        for key_node, _ in node.value:
            lines.setdefault(str(getattr(key_node, "value", "")), key_node.start_mark.line + 1)

    mapping, memory = _MAPS[kind], _MEMORY_KEYS[kind]
    entries: dict[str, Entry] = {}
    spelling: dict[str, str] = {}
    unmodelled, ignored = [], []
    for raw_key, value in data.items():
        key = normalise(raw_key)
        line = lines.get(str(raw_key), 1)
        plan_key = mapping.get(key)
        if plan_key is None:
            (unmodelled if key in memory else ignored).append(str(raw_key))
            continue
        if plan_key in entries and entries[plan_key].value is not None:
            raise ConfigError(
                f"{path}:{line}: key '{raw_key}' repeats '{spelling[plan_key]}'", hint="give each setting once"
            )
        if kind == "xinference" and plan_key == "engine" and value is not None:
            value = canonical_engine(value)  # Xinference's model_engine: vLLM, SGLang, llama.cpp, Transformers, ...
        if kind == "xinference" and plan_key == "gpus" and str(value).strip().lower() == "auto":
            notes.append(f"{raw_key}: auto: planned on {gpus or 1} GPU(s) (pass --gpus)")
            continue
        entries[plan_key] = Entry(value, line, f"key '{raw_key}'")
        spelling[plan_key] = str(raw_key)
    if kind != "xinference":
        entries["engine"] = Entry(kind, 1, "--engine")
        spelling["engine"] = "--engine"
    if kind == "xinference" and "tensor_parallel_size" not in entries and "gpus" in entries:
        entries["tensor_parallel_size"] = entries["gpus"]  # Xinference runs vLLM/SGLang with TP = n_gpu
        spelling["tensor_parallel_size"] = spelling["gpus"]
    for key, value in (("model", model), ("gpu", gpu), ("gpus", gpus)):
        if value is not None:
            if key in entries and entries[key].value not in (None, value) and key == "model":
                notes.append(f"--model {value} replaces the file's {spelling[key]} {entries[key].value}")
            entries[key] = Entry(value, 1, f"--{key}")
            spelling[key] = f"--{key}"
    if "model" not in entries or entries["model"].value is None:
        raise ConfigError(
            f"{path}: the engine config names no model", hint="pass --model (a Hub id, catalog name or path)"
        )
    entries["name"] = Entry(Path(path).name, 1, "name")
    if unmodelled:
        notes.append("not modelled, affect memory: " + ", ".join(unmodelled))
    if ignored:
        notes.append("ignored (no effect on KV memory): " + ", ".join(ignored))
    base = Path(path).parent if model is None else None
    return build_deployment(
        entries,
        source=str(path),
        line=1,
        where="",
        profiles_dir=profiles_dir,
        base=base,
        lenient=True,
        notes=tuple(notes),
        spelling=spelling,
    )
