"""Xinference: its launch command and the vocabulary of its launch options (kvplan has no model of its memory).

Xinference runs a model on another engine (`model_engine`: vLLM, SGLang, llama.cpp, Transformers, ...), with
tensor parallelism over its `n_gpu` GPUs; `kvplan check --engine-config` reads its launch options (YAML or JSON)
and plans them on that engine.
"""

from __future__ import annotations

from kvplan.engines.entry import COMMON_CONFIG_KEYS, ConfigVocabulary, EngineEntry
from kvplan.engines.serving import FlagInputs, ServeCommand


class XinferenceCommand(ServeCommand):
    def command(self, f: FlagInputs) -> str:
        return (
            f"xinference launch --model-engine vllm --model-name {f.model} --n-gpu {f.tp * f.pp} "
            f"--max_model_len {f.max_model_len}"
        )


def _detect(keys: set[str]) -> bool:
    markers = {"model_engine", "n_gpu", "model_uid", "model_size_in_billions", "model_format"}
    return bool(keys & markers) or ("model_name" in keys and "model" not in keys)


CONFIG = ConfigVocabulary(
    keys={
        **COMMON_CONFIG_KEYS,
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
    memory_keys=(
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
    detect=_detect,
    priority=1,  # its launch options may also hold SGLang's keys (context_length, model_path)
    tp_from_gpus=True,
    describes="Xinference launch options",
)

ENTRY = EngineEntry(name="xinference", display="Xinference", serving=XinferenceCommand(), config=CONFIG)
