"""Xinference: its launch command and the vocabulary of its launch options (kvplan has no model of its memory).

Xinference runs a model on another engine (`model_engine`: vLLM, SGLang, llama.cpp, Transformers, ...), with
tensor parallelism over its `n_gpu` GPUs; `kvplan check --engine-config` reads its launch options (YAML or JSON)
and plans them on that engine.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from kvplan.engines.entry import COMMON_CONFIG_KEYS, ConfigVocabulary, EngineEntry
from kvplan.engines.serving import FlagInputs, ServeCommand

# `xinference launch --model-name` takes a name of Xinference's model registry ("llama-3.1"), not a Hugging Face
# id, with `--size-in-billions` and `--model-format` choosing the spec; options it does not know go to the engine
# as keyword arguments (`--max_model_len`, vLLM's EngineArgs field names). The registry's Hugging Face ids, from
# xinference/model/llm/llm_family.json (tests/fixtures/engine_args/SOURCES.md), are in xinference_models.json.
_MODELS = Path(__file__).with_name("xinference_models.json")


@functools.cache
def _registry() -> dict[str, tuple[str, float]]:
    models = json.loads(_MODELS.read_text(encoding="utf-8"))["models"]
    return {hf_id.lower(): (name, size) for hf_id, (name, size) in models.items()}


def registry_model(model: str) -> tuple[str, float] | None:
    """(Xinference model_name, size in billions) of a Hugging Face id in Xinference's built-in registry, or None.
    Meta's repos were renamed on the Hub (meta-llama/Meta-Llama-3.1-8B -> meta-llama/Llama-3.1-8B, the old id
    redirecting): both spellings match."""
    key = model.lower()
    found = _registry().get(key)
    if found is None and key.startswith("meta-llama/"):
        found = _registry().get("meta-llama/meta-" + key.split("/", 1)[1])
    return found


def hub_ids(launch: Mapping[str, Any]) -> tuple[str, ...]:
    """The Hugging Face ids of Xinference launch options' `model_name` (a registry name, with
    `model_size_in_billions` choosing among its sizes), best first; () when the name is not in the registry (a
    custom model, or already a Hub id). Meta's renamed repos come with their new name first."""
    name = str(launch.get("model_name") or "").lower()
    size = launch.get("model_size_in_billions", launch.get("size_in_billions"))
    found, sizes = [], set()
    for hf_id, (model_name, model_size) in json.loads(_MODELS.read_text(encoding="utf-8"))["models"].items():
        if model_name.lower() == name and (size is None or _size(model_size) == str(size).replace(".", "_")):
            renamed = hf_id.replace("meta-llama/Meta-Llama-3.", "meta-llama/Llama-3.")
            found.extend([renamed, hf_id] if renamed != hf_id else [hf_id])
            sizes.add(model_size)
    return tuple(found) if len(sizes) == 1 else ()  # several sizes and none chosen: the model is not known


def _size(size: float) -> str:
    return str(int(size)) if float(size).is_integer() else str(size).replace(".", "_")


class XinferenceCommand(ServeCommand):
    def command(self, f: FlagInputs) -> str:
        found = registry_model(f.model)
        if found is None:
            return (
                f"# Xinference has no built-in model for {f.model}: register it as a custom model "
                "(xinference register --model-type LLM --file spec.json --persist), then launch it by that name"
            )
        name, size = found
        line = (
            f"xinference launch --model-engine vllm --model-name {name} --size-in-billions {_size(size)} "
            f"--model-format pytorch --n-gpu {f.tp * f.pp} --max_model_len {f.max_model_len}"
        )
        from kvplan.engines.vllm import KV_CACHE_DTYPE_FLAGS

        spelling = KV_CACHE_DTYPE_FLAGS.get(f.kv_dtype)
        if spelling:
            line += f" --kv_cache_dtype {spelling}"
        return line


def _detect(keys: set[str]) -> bool:
    markers = {"model_engine", "n_gpu", "model_uid", "model_size_in_billions", "model_format"}
    return bool(keys & markers) or ("model_name" in keys and "model" not in keys)


CONFIG = ConfigVocabulary(
    keys={
        **COMMON_CONFIG_KEYS,
        "model_path": "model",
        "model_name": "model",  # a registry name ("llama-3.1"): read as its Hub id (hub_ids)
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
    model_ids=hub_ids,
)

ENTRY = EngineEntry(name="xinference", display="Xinference", serving=XinferenceCommand(), config=CONFIG)
