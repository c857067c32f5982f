"""How deployment manifests start engines: the programs and modules on a container's command line and the engine
each starts, which of them take the model as their first positional argument, the argument vocabulary of
engines whose registry entry reads no config file (TensorRT-LLM's LLM-API options), and the engine a manifest
format runs when its command does not say. kvplan.checking.manifests asks here, so no engine name is spelled
outside kvplan/engines/ (tests/engines/test_no_engine_names.py).

Pure data; imports only kvplan.engines.entry and kvplan.engines.registry.
"""

from __future__ import annotations

from kvplan.engines.entry import COMMON_CONFIG_KEYS, ConfigVocabulary
from kvplan.engines.registry import canonical_engine, config_vocabulary

# The engine KServe's LLMInferenceService template, llm-d modelservice (`modelCommand: vllmServe`), Ray Serve LLM
# (`llm_engine` defaults to vLLM), vLLM production-stack and KServe's huggingface runtime (vLLM backend) start.
MANIFEST_DEFAULT_ENGINE = "vllm"

# A program (its base name) or `python -m` module -> the engine it starts; its own arguments follow it.
ENTRYPOINTS: dict[str, str] = {
    "vllm.entrypoints.openai.api_server": "vllm",
    "vllm.entrypoints.api_server": "vllm",
    "dynamo.vllm": "vllm",
    "dynamo.sglang": "sglang",
    "dynamo.trtllm": "tensorrt-llm",
    "sglang.launch_server": "sglang",
    "trtllm-serve": "tensorrt-llm",
}
# `PROGRAM SUBCOMMAND` pairs that start an engine (`vllm serve MODEL`).
SUBCOMMANDS: dict[tuple[str, str], str] = {("vllm", "serve"): "vllm"}
# Engines whose launcher takes the model as the first positional argument (`vllm serve MODEL`, `trtllm-serve MODEL`).
POSITIONAL_MODEL = ("vllm", "tensorrt-llm")
# KServe InferenceService `modelFormat.name`s whose runtime serves an LLM with vLLM arguments.
KSERVE_LLM_FORMATS = ("huggingface", "vllm")

# TensorRT-LLM's LLM-API options as `trtllm-serve` flags and `--extra-engine-args` YAML (nested keys flattened
# with dots): tensorrt_llm/llmapi/llm_args.py (tensor_parallel_size, pipeline_parallel_size, max_batch_size,
# max_seq_len, max_num_tokens, kv_cache_config.dtype / free_gpu_memory_fraction) and tensorrt_llm/commands/serve.py
# (`--tp_size --pp_size --max_batch_size --max_seq_len --kv_cache_free_gpu_memory_fraction`). kvplan's TensorRT-LLM
# serving model takes `gpu_memory_utilization` as free_gpu_memory_fraction (kvplan.engines.tensorrt_llm).
TRTLLM_ARGUMENTS = ConfigVocabulary(
    keys={
        **COMMON_CONFIG_KEYS,
        "model": "model",
        "model_path": "model",
        "tp_size": "tensor_parallel_size",
        "pp_size": "pipeline_parallel_size",
        "max_batch_size": "max_num_seqs",
        "max_seq_len": "max_model_len",
        "max_num_tokens": "max_num_batched_tokens",
        "kv_cache_config.dtype": "kv_cache_dtype",
        "kv_cache_config.free_gpu_memory_fraction": "gpu_memory_utilization",
        "kv_cache_free_gpu_memory_fraction": "gpu_memory_utilization",
    },
    memory_keys=(
        "speculative_config.decoding_type",
        "speculative_config.max_draft_len",
        "speculative_config.speculative_model_dir",
        "kv_cache_config.max_tokens",
        "kv_cache_config.enable_block_reuse",
        "moe_expert_parallel_size",
        "enable_attention_dp",
        "cuda_graph_config.max_batch_size",
    ),
    describes="TensorRT-LLM arguments",
)
_EXTRA_VOCABULARIES = {"tensorrt-llm": TRTLLM_ARGUMENTS}


def argument_vocabulary(engine: str) -> ConfigVocabulary | None:
    """The vocabulary of `engine`'s command-line arguments in a manifest: its config vocabulary
    (kvplan.engines.registry), else the one kept here; None when kvplan reads none."""
    name = canonical_engine(engine)
    return config_vocabulary(name) or _EXTRA_VOCABULARIES.get(name)


def launched_engine(words: list[str]) -> tuple[str, int] | None:
    """The engine a command line starts and the index where its own arguments begin, or None."""
    for i, word in enumerate(words):
        name = word.rsplit("/", 1)[-1]
        if word in ENTRYPOINTS or name in ENTRYPOINTS:
            return ENTRYPOINTS.get(word) or ENTRYPOINTS[name], i + 1
        if i + 1 < len(words) and (name, words[i + 1]) in SUBCOMMANDS:
            return SUBCOMMANDS[(name, words[i + 1])], i + 2
    return None


def takes_positional_model(engine: str) -> bool:
    return canonical_engine(engine) in POSITIONAL_MODEL


__all__ = [
    "ENTRYPOINTS",
    "KSERVE_LLM_FORMATS",
    "MANIFEST_DEFAULT_ENGINE",
    "TRTLLM_ARGUMENTS",
    "argument_vocabulary",
    "launched_engine",
    "takes_positional_model",
]
