"""The Python API behind the CLI: name a model, get numbers. `import kvplan; kvplan.estimate(...)`.

Glue only: load the config (kvplan.sources.configs), read its shape (kvplan.core.shapes), size it
(kvplan.planning.estimate) and add the weights (kvplan.weights.tensors / kvplan.weights.safetensors). Never imports torch.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from kvplan.core.shapes import model_shape
from kvplan.core.units import DTYPE_BYTES
from kvplan.errors import KvplanError
from kvplan.planning.estimate import Estimate, estimate_shape, resolve_dtypes
from kvplan.sources.configs import LoadedConfig, load_model_config


def load(model: str | dict, *, revision: str | None = None, offline: bool | None = None) -> LoadedConfig:
    """A LoadedConfig for MODEL (path, folder, catalog name or Hub id); a dict is taken as the config itself."""
    if isinstance(model, dict):
        return LoadedConfig(
            config=model,
            name=str(model.get("_name_or_path") or model.get("model_type") or "config"),
            source="dict",
            path=None,
            folder=None,
            revision=None,
        )
    return load_model_config(model, revision=revision, offline=offline)


def weights(loaded: LoadedConfig, dtype: str, *, offline: bool | None = None) -> tuple[int | None, str | None]:
    """Bytes of the weights and where the figure comes from: "safetensors" metadata, else "analytic"."""
    from kvplan.weights import safetensors as safetensors_meta
    from kvplan.weights.tensors import assumed_family, weight_bytes

    if loaded.source != "dict":
        measured = safetensors_meta.safetensors_weight_bytes(loaded, offline=offline)
        if measured:
            return measured, "safetensors"
    if assumed_family(loaded.config) is not None:
        return None, None  # an unknown layout (e.g. Llama 4 MoE) would be counted wrongly: report unknown
    try:
        return weight_bytes(loaded.config, int(DTYPE_BYTES[dtype])), "analytic"
    except KvplanError:  # a config the analytic count cannot read: weights are optional in an estimate
        return None, None


def estimate(
    model: str | dict,
    *,
    revision: str | None = None,
    offline: bool | None = None,
    **kwargs: Any,
) -> Estimate:
    """KV-cache memory of MODEL for `batch` sequences of `seq_len` tokens on `engine`, split over tp x pp GPUs.

    Args:
        model: a config.json path, a model folder, a catalog name (`kvplan models`), a Hub repo id, or a dict.
        revision / offline: for Hub repo ids (offline=None follows HF_HUB_OFFLINE).
        seq_len (4096), batch (1): the sequences to hold.
        engine: "vllm" (paged, default), "sglang", "transformers" or "naive" (the textbook formula).
        dtype / kv_dtype: "auto" takes the config's dtype / the model dtype; see kvplan.core.units for the names.
        tp / pp: tensor- and pipeline-parallel sizes.
        block_size: vLLM page size in tokens (default 16, raised for Mamba hybrids).
        max_num_batched_tokens: vLLM's prefill token budget (8192), which its sliding-window reservation includes.
        include_weights: also report the weights' bytes (safetensors metadata, else an analytic count).
    Returns:
        An Estimate; every byte count is an int, `*_per_gpu` figures are for the fullest GPU.
    """
    return estimate_loaded(load(model, revision=revision, offline=offline), offline=offline, **kwargs)


def estimate_loaded(
    loaded: LoadedConfig, *, offline: bool | None = None, include_weights: bool = True, **kwargs: Any
) -> Estimate:
    """`estimate` for an already loaded config (a sweep loads once and calls this per length)."""
    shape = model_shape(loaded.config)
    result = estimate_shape(shape, name=loaded.name, **kwargs)
    if not include_weights:
        return result
    model_dtype, _ = resolve_dtypes(shape, kwargs.get("dtype", "auto"), kwargs.get("kv_dtype", "auto"))
    nbytes, source = weights(loaded, model_dtype, offline=offline)
    return replace(result, weights_bytes=nbytes, weights_source=source)
