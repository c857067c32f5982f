"""The model a profile runs: real weights from a model folder or the Hugging Face cache, else random weights
built from the config; optionally shrunk to its first N layers; sharded over several GPUs with accelerate.
Never runs a repository's own code unless `trust_remote_code`. Imports torch; used by kvplan.profiling.profiler only."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from kvplan.errors import KvplanError, UnsupportedArchitecture, UsageError
from kvplan.profiling.device import Device
from kvplan.profiling.ground_truth import build_model, hf_config_from_dict

__all__ = ["import_model_code", "load_model", "shrink_layers", "weights_bytes"]

WEIGHT_SUFFIXES = (".safetensors", ".bin")


def shrink_layers(config: dict, layers: int) -> dict:
    """A copy of a config.json dict with `layers` decoder layers; per-layer lists are cut to match.

    The nesting rule and the layer-count keys are kvplan.core.config's; every layer-count key present is set."""
    from kvplan.core.config import LAYER_KEYS, NESTED_TEXT_KEYS, first

    out = dict(config)
    for key in NESTED_TEXT_KEYS:
        if isinstance(out.get(key), dict):
            out[key] = shrink_layers(out[key], layers)
            return out
    full = first(out, *LAYER_KEYS, default=None)
    if not isinstance(full, int) or full < 1:
        raise UsageError("--layers: this config has no num_hidden_layers to shrink")
    if layers > full:
        raise UsageError(
            f"--layers {layers} is more than the model's {full} layers", hint=f"pass --layers {full} or fewer"
        )
    for key in LAYER_KEYS:
        if key in out:
            out[key] = layers
    for key, value in list(out.items()):
        if isinstance(value, list) and len(value) == full:
            out[key] = value[:layers]
    return out


def _weight_folder(loaded, revision: str | None, offline: bool | None) -> Path | None:
    """The folder holding MODEL's weight files: its own folder, its HF cache snapshot, or None (random weights).

    A catalog name is also looked up in the local Hugging Face cache (never downloaded)."""
    folder = Path(loaded.folder) if loaded.folder is not None else None
    if folder is None and loaded.source == "catalog":
        try:
            from huggingface_hub import snapshot_download

            folder = Path(snapshot_download(loaded.name, revision=revision, local_files_only=True))
        except Exception:
            return None
    if folder is None or not folder.is_dir():
        return None
    has_weights = any(p.suffix in WEIGHT_SUFFIXES and p.is_file() for p in folder.iterdir())
    if has_weights:
        from kvplan.weights.safetensors import refuse_unusable_weights

        refuse_unusable_weights(folder)
    return folder if has_weights else None


def _device_map(device: Device, model_for_map: torch.nn.Module | None = None) -> Any:
    if not device.cuda:
        return None
    if len(device.gpus) == 1:
        return {"": device.main}
    return "auto"


def load_model(req: Any, loaded, config: dict, torch_dtype: str, device: Device):
    """(model, hf_config, how the weights were obtained)."""
    try:
        return _load_model_inner(req, loaded, config, torch_dtype, device)
    except UnsupportedArchitecture as exc:
        if req.trust_remote_code:
            raise
        raise UnsupportedArchitecture(
            exc.message,
            hint="its own Python code runs only with --trust-remote-code, "
            "from a model folder (or the HF cache) that holds it",
        ) from None


def _load_model_inner(req: Any, loaded, config: dict, torch_dtype: str, device: Device):
    folder = None if req.random_weights else _weight_folder(loaded, req.revision, req.offline)
    if folder is not None:
        try:
            hf_config = hf_config_from_dict(config)
        except KvplanError:
            if not req.trust_remote_code:
                raise
            from transformers import AutoConfig

            hf_config = AutoConfig.from_pretrained(folder, trust_remote_code=True)
        from transformers import AutoModelForCausalLM

        kwargs: dict[str, Any] = {
            "config": hf_config,
            "dtype": getattr(torch, torch_dtype),
            "trust_remote_code": req.trust_remote_code,
            "output_loading_info": True,
        }
        if device.cuda:
            kwargs["device_map"] = _device_map(device)
            if len(device.gpus) > 1:
                kwargs["max_memory"] = _gpu_budget(device)
        model, info = AutoModelForCausalLM.from_pretrained(str(folder), **kwargs)
        _check_placement(model)
        if not device.cuda:
            _onto_heap(model)
        missing = len(info.get("missing_keys") or [])
        how = f"loaded from {folder}"
        if missing:
            how += f" ({missing} tensors not in the checkpoint were initialised randomly)"
        return model.eval(), hf_config, how
    if req.trust_remote_code:
        try:
            hf_config = hf_config_from_dict(config)
        except KvplanError:
            if loaded.folder is None:
                raise
            from transformers import AutoConfig

            hf_config = AutoConfig.from_pretrained(loaded.folder, trust_remote_code=True)
    else:
        hf_config = hf_config_from_dict(config)
    torch.manual_seed(req.seed)
    if device.cuda and len(device.gpus) > 1:
        from accelerate import dispatch_model, infer_auto_device_map
        from accelerate.utils import get_balanced_memory

        model = build_model(hf_config, dtype=torch_dtype, device="cpu")
        no_split = list(getattr(model, "_no_split_modules", None) or [])
        # spread the layers evenly (as from_pretrained's "auto" does), leaving each GPU room for the cache
        budget = get_balanced_memory(
            model, max_memory=_gpu_budget(device), no_split_module_classes=no_split, dtype=getattr(torch, torch_dtype)
        )
        dmap = infer_auto_device_map(model, max_memory=budget, no_split_module_classes=no_split)
        _check_placement_map(dmap)
        model = dispatch_model(model, device_map=dmap)
    else:
        model = build_model(hf_config, dtype=torch_dtype, device=device.main)
    return model, hf_config, "random (built from the config; memory and speed do not depend on weight values)"


GPU_WEIGHTS_SHARE = 0.9  # of each GPU's memory, when sharding: the rest is left for the cache and activations


def _gpu_budget(device: Device) -> dict[int, int]:
    return {g: int(torch.cuda.get_device_properties(g).total_memory * GPU_WEIGHTS_SHARE) for g in device.gpus}


def _check_placement_map(dmap: dict) -> None:
    spilled = sorted({str(v) for v in dmap.values() if str(v) in ("cpu", "disk")})
    if spilled:
        raise UsageError(
            f"the weights do not fit on the given GPUs (accelerate would put layers on {', '.join(spilled)})",
            hint="add GPUs (--gpu 0,1,2,3), use --layers N, or a smaller --dtype",
        )


def _check_placement(model: torch.nn.Module) -> None:
    dmap = getattr(model, "hf_device_map", None)
    if isinstance(dmap, dict):
        _check_placement_map(dmap)


def _onto_heap(model: torch.nn.Module) -> None:
    """Copy memory-mapped checkpoint tensors into ordinary memory, so that the heap meter sees the weights
    (safetensors files are mapped, not read, when the dtype matches) and a --memory-limit counts them."""
    with torch.no_grad():
        for tensor in list(model.parameters()) + list(model.buffers()):
            tensor.data = tensor.data.clone()


def import_model_code(config: dict) -> None:
    """Import the model class's module now (transformers imports modeling code lazily, on first use)."""
    from transformers import AutoModelForCausalLM

    try:
        AutoModelForCausalLM._model_mapping[type(hf_config_from_dict(config))]
    except (KvplanError, KeyError, ValueError, ImportError, AttributeError):
        pass


def weights_bytes(model: torch.nn.Module) -> int:
    seen: set[int] = set()
    total = 0
    for tensor in list(model.parameters()) + list(model.buffers()):
        key = tensor.data_ptr()
        if key in seen and key != 0:
            continue
        seen.add(key)
        total += tensor.numel() * tensor.element_size()
    return total


# ---------------------------------------------------------------------------------------------- one point
