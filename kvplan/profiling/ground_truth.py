"""Ground truth from transformers: build a model from a raw `config.json` dict and read what its KV cache holds.

This is the only kvplan module (with the profiler) that imports torch and transformers, and it does so at
module top: nothing else in kvplan may import it at import time (`kvplan estimate` must stay torch-free).

On the `meta` device a full-size model builds and runs a forward in about a second with no memory, and the
cache it returns holds meta tensors with the exact shapes and dtypes transformers would allocate. Sizes are
read with `numel() * element_size()`, which works on meta tensors.

No remote code is ever run: configs are built with `AutoConfig.for_model(model_type, **fields)` after
dropping `auto_map`, so a type transformers does not know natively raises `UnsupportedArchitecture`. A
model_type transformers does not know is built as its canonical spelling from kvplan's family table
(kvplan.core.families: `kimi_k2` -> `deepseek_v3`, `RefinedWeb` -> `falcon`) when transformers knows that one.
"""

from __future__ import annotations

import contextlib
import copy
import importlib
import inspect
from collections.abc import Iterator
from typing import Any

import torch
import transformers
from transformers import AutoConfig, AutoModelForCausalLM
from transformers.models.auto.configuration_auto import CONFIG_MAPPING
from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES, MODEL_MAPPING_NAMES

from kvplan.core.config import NESTED_TEXT_KEYS, text_config
from kvplan.core.families import canonical_model_type, family_of
from kvplan.core.units import dtype_name
from kvplan.errors import ConfigError, UnsupportedArchitecture

__all__ = [
    "build_model",
    "cache_layer_bytes",
    "hf_config_from_dict",
    "measure_assisted_caches",
    "measure_cache_steps",
    "measure_forward_cache",
    "total_nbytes",
]

# Keys of the original RW (falcon remote code) configs and their FalconConfig names. FalconConfig has no
# attribute_map for them, so without this falcon-7b's `n_head: 71` would be silently ignored (it only
# "works" because 71 heads / 32 layers happen to be FalconConfig's defaults).
_RW_KEYS = {"n_head": "num_attention_heads", "n_layer": "num_hidden_layers", "n_head_kv": "num_kv_heads"}

# Keys never forwarded to AutoConfig.for_model.
_DROP_KEYS = ("auto_map", "model_type", "_name_or_path", "_outer_model_type")

# Compute dtypes by canonical name (every spelling of kvplan.core.units' table resolves to one of these).
_DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}

# Per-layer cache attributes that hold state, in report order.
_LAYER_ATTRS = (
    "keys",
    "values",
    "indexer_keys",
    "idx_keys",  # MiniMax-M3's sparse layers (MiniMaxM3VLSparseCacheLayer / MiniMaxM3VLSparseStaticCacheLayer)
    "conv_states",
    "recurrent_states",
    "_quantized_keys",
    "_quantized_values",
    # DeepSeek-V4's compressor state (DeepseekV4HCACache / DeepseekV4CSACache, dicts keyed "compressor" and
    # "indexer"): the compressed entries, the source tokens of the window being filled, the carried overlap
    "compressed_kv",
    "buffer_kv",
    "buffer_gate",
    "overlap_kv",
    "overlap_gate",
)


# ----------------------------------------------------------------------------------------------------------
# configs
# ----------------------------------------------------------------------------------------------------------


def _unsupported(model_type: Any) -> UnsupportedArchitecture:
    return UnsupportedArchitecture(
        f"transformers {transformers.__version__} has no native implementation of model_type {model_type!r}",
        hint="this architecture exists only as remote code; kvplan never runs remote code for exact checks",
    )


# Spellings transformers knows a model's text-only config under (MiniMax-M3's published `minimax_m3` is built by
# transformers 5.24 as MiniMaxM3VLTextConfig, whose __post_init__ reads its sparse_attention_config and
# moe_layer_freq; MiniMaxM3VLForCausalLM is its causal LM).
_TEXT_SPELLINGS = {"minimax_m3": "minimax_m3_vl_text"}


def native_model_type(model_type: str) -> str:
    """The model_type transformers builds a config of this spelling as: itself when transformers knows it,
    else its canonical spelling from the family table (remote-code names of native architectures), else the
    text config transformers knows it as (`_TEXT_SPELLINGS`)."""
    if model_type in CONFIG_MAPPING:
        return model_type
    canonical = canonical_model_type(model_type)
    if canonical not in CONFIG_MAPPING and _TEXT_SPELLINGS.get(canonical) in CONFIG_MAPPING:
        return _TEXT_SPELLINGS[canonical]
    return canonical


def _legacy_falcon(model_type: Any) -> bool:
    """RefinedWeb / RefinedWebModel / rw: Falcon configs written for the remote code, with its key names."""
    family = family_of(model_type)
    return family is not None and family.name == "falcon" and model_type != "falcon"


def _model_type_from_architectures(cfg: dict[str, Any]) -> str | None:
    archs = cfg.get("architectures") or []
    by_class = {cls: mt for mt, cls in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES.items() if isinstance(cls, str)}
    for arch in archs:
        if arch in by_class:
            return by_class[arch]
    return None


def _for_model(model_type: str, fields: dict[str, Any]) -> transformers.PretrainedConfig:
    try:
        return AutoConfig.for_model(model_type, **fields)
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(
            f"transformers cannot build a {model_type!r} config from this config.json: {first_line}",
            hint="check the config file's fields against the model's published config.json",
        ) from exc


def hf_config_from_dict(config: dict, *, trust_remote_code: bool = False) -> transformers.PretrainedConfig:
    """Build a transformers config from a raw `config.json` dict, without remote code.

    * `auto_map` is dropped and the config is built with `AutoConfig.for_model(model_type, **rest)`, so
      nothing prompts on stdin and nothing is imported from the Hub.
    * Aliases: `kimi_k2` -> `deepseek_v3`, `RefinedWebModel` / `RefinedWeb` -> `falcon` (with the RW key
      names mapped; `RefinedWeb` implies `new_decoder_architecture`).
    * A multimodal wrapper (e.g. `gemma3` with `text_config`) returns the language model's config
      (e.g. `gemma3_text`); if transformers does not know the wrapper but knows the inner type, the inner
      dict is built directly.
    * Raises `UnsupportedArchitecture` when transformers does not know the type (chatglm, baichuan,
      internlm2, minicpm, ...), `ConfigError` when the dict is not a config or transformers rejects it.

    `trust_remote_code` is accepted for API symmetry; remote code cannot be fetched here and is never run,
    so it changes nothing.
    """
    del trust_remote_code  # never used: no remote code is fetched or executed from a dict
    if not isinstance(config, dict):
        raise ConfigError(f"expected a config.json object, got {type(config).__name__}")
    fields = copy.deepcopy(config)
    model_type = fields.get("model_type") or _model_type_from_architectures(fields)
    if not model_type:
        raise ConfigError(
            "config has no `model_type`",
            hint="pass the model's real config.json; kvplan needs `model_type` to build the transformers config",
        )
    model_type = native_model_type(model_type)
    if _legacy_falcon(config.get("model_type")):
        for old, new in _RW_KEYS.items():
            if old in fields and new not in fields:
                fields[new] = fields.pop(old)
        if config.get("model_type") == "RefinedWeb":
            fields.setdefault("new_decoder_architecture", True)
    for key in _DROP_KEYS:
        fields.pop(key, None)

    if model_type not in CONFIG_MAPPING:
        inner = text_config(config)
        if inner is not config and inner.get("model_type"):
            # Unknown wrapper around a known language model: build the inner config on its own.
            inner = {
                k: v
                for k, v in inner.items()
                if k not in NESTED_TEXT_KEYS and (not k.endswith("_config") or k in _INNER_CONFIG_KEYS)
            }
            inner.pop("architectures", None)
            if native_model_type(inner["model_type"]) in CONFIG_MAPPING:
                return hf_config_from_dict(inner)
        raise _unsupported(model_type)

    hf_config = _for_model(model_type, fields)
    try:
        text = hf_config.get_text_config(decoder=True)
    except ValueError:
        text = hf_config
    text = text if text is not None else hf_config
    _check_activation(text)
    return text


# Sub-dicts of a language model's own config that its config class reads (Kimi Linear's KDA layout); the other
# `*_config` keys of a wrapper's text config (quantization, vision) are left out when it is built on its own.
_INNER_CONFIG_KEYS = ("linear_attn_config",)


def _check_activation(hf_config: transformers.PretrainedConfig) -> None:
    """An activation transformers does not have (Kimi K3's `situ`) exists only in the model's remote code."""
    from transformers.activations import ACT2FN

    act = getattr(hf_config, "hidden_act", None)
    if isinstance(act, str) and act not in ACT2FN:
        raise UnsupportedArchitecture(
            f"transformers has no activation {act!r} (config `hidden_act`): the model needs its remote code",
            hint="this architecture exists only as remote code; kvplan never runs remote code for exact checks",
        )


# ----------------------------------------------------------------------------------------------------------
# models
# ----------------------------------------------------------------------------------------------------------


def _torch_dtype(dtype: Any) -> torch.dtype:
    if isinstance(dtype, torch.dtype):
        return dtype
    name = dtype_name(dtype) if isinstance(dtype, str) else None
    if name is not None and name in _DTYPES:
        return _DTYPES[name]
    raise ConfigError(f"unsupported dtype {dtype!r}", hint="use bfloat16, float16 or float32")


def build_model(
    hf_config: transformers.PretrainedConfig,
    *,
    dtype: Any,
    device: str | torch.device = "meta",
    shrink: dict | None = None,
) -> torch.nn.Module:
    """`AutoModelForCausalLM.from_config` under `with torch.device(device)`, in eval mode.

    `shrink` maps config attributes to smaller values that do not change the cache (vocab_size,
    intermediate_size, moe_intermediate_size, ...): it is applied to a copy of the config, for speed when
    building real tensors on CPU. On `meta` nothing is allocated, so it is rarely needed there.
    """
    cfg = copy.deepcopy(hf_config)
    for key, value in (shrink or {}).items():
        setattr(cfg, key, value)
    torch_dtype = _torch_dtype(dtype)
    auto: Any = AutoModelForCausalLM
    if getattr(cfg, "model_type", None) not in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES:
        if not _text_tower_only(cfg):
            raise _unsupported(getattr(cfg, "model_type", None))
        auto = transformers.AutoModel
    kwargs: dict[str, Any] = {}
    if torch.device(device).type == "meta" and torch_dtype != torch.bfloat16:
        # The default MoE path (`grouped_mm`) has a bf16-only meta kernel and the "eager" one calls
        # `nonzero` (data-dependent, impossible on meta); `batched_mm` works on meta for every dtype.
        kwargs["experts_implementation"] = "batched_mm"
    with torch.device(device):
        model = auto.from_config(cfg, dtype=torch_dtype, **kwargs)
    return model.eval()


def _text_tower_only(cfg: transformers.PretrainedConfig) -> bool:
    """A multimodal wrapper's text config with no causal-LM class of its own (Qwen3-VL's `qwen3_vl_text` and
    `qwen3_vl_moe_text` in transformers 5.24): the text model (`AutoModel`) is built instead. Its forward returns
    the cache the wrapper's would (Qwen3VLModel.forward hands its cache to `self.language_model`); it has no LM
    head, which holds no cache."""
    return getattr(cfg, "base_config_key", None) == "text_config" and cfg.model_type in MODEL_MAPPING_NAMES


# ----------------------------------------------------------------------------------------------------------
# cache inspection
# ----------------------------------------------------------------------------------------------------------


def _leaf_tensors(obj: Any, name: str) -> Iterator[tuple[str, torch.Tensor]]:
    """Yield (name, plain tensor) for every tensor inside `obj` (tensor, list/tuple, dict, tensor subclass)."""
    if obj is None:
        return
    if isinstance(obj, torch.Tensor):
        flatten = getattr(type(obj), "__tensor_flatten__", None)
        if flatten is not None and type(obj) is not torch.Tensor and not isinstance(obj, torch.nn.Parameter):
            inner_names, _ = obj.__tensor_flatten__()  # quanto QTensor & friends: sum their inner tensors
            for inner in inner_names:
                yield from _leaf_tensors(getattr(obj, inner), f"{name}.{inner}")
            return
        if obj.numel() == 0:  # DynamicLayer placeholders (`torch.tensor([])`) hold nothing
            return
        yield name, obj
    elif isinstance(obj, (dict, list, tuple)):
        items = list(obj.items()) if isinstance(obj, dict) else list(enumerate(obj))
        items = [(key, value) for key, value in items if value is not None]
        if len(items) == 1:  # one state (conv_states={0: t}): report it under the bare name
            yield from _leaf_tensors(items[0][1], name)
            return
        for key, value in items:
            yield from _leaf_tensors(value, f"{name}[{key}]")


def _tensor_entry(t: torch.Tensor) -> tuple[tuple[int, ...], str, int]:
    return tuple(t.shape), str(t.dtype).removeprefix("torch."), t.numel() * t.element_size()


def _storage_key(t: torch.Tensor) -> Any:
    try:
        return t.untyped_storage()._cdata
    except (RuntimeError, NotImplementedError, AttributeError):  # pragma: no cover - exotic tensor types
        return id(t)


def _storage_nbytes(tensors: list[torch.Tensor]) -> int:
    seen: dict[Any, int] = {}
    for t in tensors:
        try:
            seen[_storage_key(t)] = t.untyped_storage().nbytes()
        except (RuntimeError, NotImplementedError, AttributeError):  # pragma: no cover
            seen[id(t)] = t.numel() * t.element_size()
    return sum(seen.values())


def _layer_record(index: int, cls: str, named: list[tuple[str, torch.Tensor]]) -> dict:
    tensors = {name: _tensor_entry(t) for name, t in named}
    return {
        "index": index,
        "class": cls,
        "tensors": tensors,
        "nbytes": sum(entry[2] for entry in tensors.values()),
        # bytes of the distinct storages behind the tensors: larger than `nbytes` when a tensor is a view
        # that pins more (sliding layers right after a prefill longer than the window).
        "storage_nbytes": _storage_nbytes([t for _, t in named]),
    }


def cache_layer_bytes(cache: Any) -> list[dict]:
    """One dict per cache layer: `{"index", "class", "tensors": {name: (shape, dtype, nbytes)}, "nbytes",
    "storage_nbytes"}`.

    Walks `cache.layers` and sums `numel * element_size` of keys, values, indexer_keys, conv_states,
    recurrent_states (tensors, lists, tuples or dicts of them), quantized keys/values (tuples, quanto
    tensor subclasses) and DeepSeek-V4's compressor states; a tensor object reachable under two names (V4's
    `values is keys`) is counted once. MiniMax's `cache.linear_cache[i]` is reported for layer i. Works on meta tensors.
    Legacy tuple caches (`((k, v), ...)`) are accepted too.
    """
    if cache is None:
        return []
    if isinstance(cache, (list, tuple)):  # legacy format
        return [
            _layer_record(i, "tuple", list(_leaf_tensors(dict(enumerate(layer)), "state")))
            for i, layer in enumerate(cache)
        ]
    layers = list(getattr(cache, "layers", None) or [])
    linear = list(getattr(cache, "linear_cache", None) or [])
    records = []
    for i in range(max(len(layers), len(linear))):
        named: list[tuple[str, torch.Tensor]] = []
        cls = "missing"
        if i < len(layers):
            layer = layers[i]
            cls = type(layer).__name__
            seen: set[int] = set()
            for attr in _LAYER_ATTRS:
                # one tensor object under two names (DeepSeek-V4's `values = keys`, K == V) is held once
                fresh = [(n, t) for n, t in _leaf_tensors(getattr(layer, attr, None), attr) if id(t) not in seen]
                seen.update(id(t) for _, t in fresh)
                named.extend(fresh)
        if i < len(linear) and isinstance(linear[i], torch.Tensor):
            named.extend(_leaf_tensors(linear[i], "linear_cache"))
            cls = f"{type(cache).__name__}.linear_cache"
        records.append(_layer_record(i, cls, named))
    return records


def total_nbytes(layers: list[dict]) -> int:
    """Sum of `nbytes` over `cache_layer_bytes` records."""
    return sum(layer["nbytes"] for layer in layers)


# ----------------------------------------------------------------------------------------------------------
# forward
# ----------------------------------------------------------------------------------------------------------

# Modules whose full-sequence mamba1 scan loops over tokens in Python. On meta every op is cheap but the
# loop is not (AI21-Jamba-1.5-Mini: ~70 s for S=9216). The recurrent state's shape does not depend on the
# sequence length, so on meta the scan is run on the first token only and its output expanded to S tokens:
# same shapes and dtypes, the same final-state tensor as the real loop would return.
_SEQUENTIAL_SCAN_MODULES = (
    "transformers.models.jamba.modeling_jamba",
    "transformers.models.mamba.modeling_mamba",
    "transformers.models.falcon_mamba.modeling_falcon_mamba",
)


def _one_token_scan(original):
    def scan(hidden_states, dt, A, B, C, D=None, z=None, *args, **kwargs):
        seq_len = hidden_states.shape[-1]
        if seq_len <= 1:
            return original(hidden_states, dt, A, B, C, D, z, *args, **kwargs)

        def first(t):  # (batch, channels, seq) layouts: keep the first token
            return None if t is None else t[..., :1]

        result = original(first(hidden_states), first(dt), A, first(B), first(C), D, first(z), *args, **kwargs)
        if isinstance(result, tuple):
            out, state = result
            return out.expand(*out.shape[:-1], seq_len), state
        return result.expand(*result.shape[:-1], seq_len)

    return scan


@contextlib.contextmanager
def _fast_meta_scans(device: str | torch.device) -> Iterator[None]:
    if torch.device(device).type != "meta":
        yield
        return
    patched = []
    for name in _SEQUENTIAL_SCAN_MODULES:
        try:
            module = importlib.import_module(name)
        except ImportError:  # pragma: no cover - older transformers
            continue
        original = getattr(module, "mamba_selective_scan", None)
        if original is not None:
            patched.append((module, original))
            module.mamba_selective_scan = _one_token_scan(original)  # type: ignore[attr-defined]
    try:
        yield
    finally:
        for module, original in patched:
            module.mamba_selective_scan = original  # type: ignore[attr-defined]


def _model_device(model: torch.nn.Module, default: str | torch.device) -> torch.device:
    for p in model.parameters():
        return p.device
    return torch.device(default)


def measure_forward_cache(
    config: dict,
    *,
    seq_len: int,
    batch: int = 1,
    dtype: Any = "bfloat16",
    decode_steps: int = 0,
    device: str | torch.device = "meta",
    shrink: dict | None = None,
    model: torch.nn.Module | None = None,
) -> list[dict]:
    """Build the model, prefill `seq_len` tokens (batch `batch`), run `decode_steps` one-token steps, and
    return `cache_layer_bytes` of the resulting cache.

    `config` is a raw config.json dict (or an already built `PretrainedConfig`). Pass `model` to reuse a
    model built with `build_model` across several measurements (`config` is then ignored).
    """
    return measure_cache_steps(
        config,
        seq_len=seq_len,
        batch=batch,
        dtype=dtype,
        record_steps=(decode_steps,),
        device=device,
        shrink=shrink,
        model=model,
    )[decode_steps]


# The names a causal LM's forward takes its cache under (and its output returns it under), newest first. transformers
# 5.24 renamed both to `cache`: `past_key_values` and `cache_params` still work there, with a FutureWarning
# ("`past_key_values` is deprecated and will be removed in version 5.40.0 ... Use `cache` instead.":
# `@deprecate_kwarg("past_key_values", "5.40.0", new_name="cache")` on every model's forward, and
# transformers/utils/generic.py `_rename_kwargs_for_bc` / `ModelOutput.past_key_values`). Before 5.24: `past_key_values`,
# and `cache_params` for mamba / mamba2 / falcon_mamba, which then build their own state cache.
CACHE_KEYWORDS = ("cache", "past_key_values", "cache_params")


def cache_keyword(model: torch.nn.Module) -> str:
    """The keyword under which `model`'s forward takes its cache, read from its signature (the installed
    transformers' name: `cache` from 5.24, `past_key_values` or `cache_params` before); the output carries the cache
    under the same name."""
    params = inspect.signature(model.forward).parameters
    return next((name for name in CACHE_KEYWORDS if name in params), "past_key_values")


def measure_cache_steps(
    config: dict,
    *,
    seq_len: int,
    batch: int = 1,
    dtype: Any = "bfloat16",
    record_steps: tuple[int, ...] | list[int] = (0,),
    device: str | torch.device = "meta",
    shrink: dict | None = None,
    model: torch.nn.Module | None = None,
) -> dict[int, list[dict]]:
    """One prefill then `max(record_steps)` decode steps; `cache_layer_bytes` taken after each step count in
    `record_steps` (0 = right after the prefill). Same result as separate `measure_forward_cache` calls,
    with one prefill instead of one per step count (a meta forward costs ~0.3-1 s whatever its length).
    """
    steps_wanted = sorted(set(record_steps))
    if seq_len < 1 or batch < 1 or not steps_wanted or steps_wanted[0] < 0:
        raise ValueError("seq_len and batch must be >= 1 and decode steps >= 0")
    if model is None:
        hf_config = config if isinstance(config, transformers.PretrainedConfig) else hf_config_from_dict(config)
        model = build_model(hf_config, dtype=dtype, device=device, shrink=shrink)
    dev = _model_device(model, device)
    results: dict[int, list[dict]] = {}
    with torch.inference_mode(), _fast_meta_scans(dev):
        ids = torch.zeros((batch, seq_len), dtype=torch.long, device=dev)
        out = model(input_ids=ids, use_cache=True, logits_to_keep=1)
        cache_arg = cache_keyword(model)  # the output returns the cache under the name the forward takes it
        cache = getattr(out, cache_arg, None)
        if cache is None:
            raise RuntimeError(f"{type(model).__name__} returned no cache (use_cache=True)")
        step = torch.zeros((batch, 1), dtype=torch.long, device=dev)
        for done in range(steps_wanted[-1] + 1):
            if done:
                out = model(input_ids=step, use_cache=True, logits_to_keep=1, **{cache_arg: cache})
                cache = getattr(out, cache_arg)
            if done in steps_wanted:
                results[done] = cache_layer_bytes(cache)  # shapes read now: later steps replace the tensors
    return results


# ----------------------------------------------------------------------------------------------------------
# assisted generation (a draft model's cache beside the target's)
# ----------------------------------------------------------------------------------------------------------


def measure_assisted_caches(
    target: torch.nn.Module,
    draft: torch.nn.Module,
    input_ids: torch.Tensor,
    *,
    max_new_tokens: int,
    num_assistant_tokens: int | None = None,
) -> dict[str, Any]:
    """Run transformers' assisted generation (`target.generate(..., assistant_model=draft)`, greedy) and read both
    caches: the target's (`generate`'s `cache`) and the draft's, which transformers keeps apart in its
    AssistedCandidateGenerator (`assistant_kwargs["cache"]`, one DynamicCache threaded through every drafting
    round, generation/candidate_generator.py) and never returns; it is read by a forward hook on the draft, after
    each of its forwards.

    Returns `{"sequence": final token count, "target": (tokens held, cache_layer_bytes), "draft": (tokens held,
    cache_layer_bytes) after its last forward, "draft_steps": [(tokens fed, tokens held, nbytes)] after every
    draft forward}`.

    `num_assistant_tokens`: the tokens the draft proposes per round, held constant (vLLM's num_speculative_tokens:
    the draft's generation_config `num_assistant_tokens`, schedule "constant", no confidence cut-off; restored
    after); None keeps the draft's generation_config as it is (transformers' defaults).
    """
    steps: list[tuple[int, int, int]] = []
    held: dict[str, Any] = {}
    keyword = cache_keyword(draft)

    def after_forward(module: torch.nn.Module, args: tuple, kwargs: dict, output: Any) -> None:
        cache = kwargs.get(keyword) or getattr(output, keyword, None)
        if cache is None:  # pragma: no cover - a draft that returns no cache cannot draft
            raise RuntimeError(f"the draft {type(module).__name__} ran without a cache")
        fed = kwargs.get("input_ids")
        held["cache"] = cache
        steps.append((int(fed.shape[-1]) if fed is not None else 0, cache.get_seq_length(), _cache_nbytes(cache)))

    gen_config = draft.generation_config
    saved = {k: getattr(gen_config, k, None) for k in _ASSISTANT_KEYS}
    if num_assistant_tokens is not None:
        for key, value in zip(_ASSISTANT_KEYS, (num_assistant_tokens, "constant", 0.0), strict=True):
            setattr(gen_config, key, value)
    handle = draft.register_forward_hook(after_forward, with_kwargs=True)
    try:
        with torch.inference_mode():
            out = target.generate(
                input_ids,
                assistant_model=draft,
                max_new_tokens=max_new_tokens,
                min_new_tokens=max_new_tokens,  # no EOS stop: the final length is the prompt + max_new_tokens
                do_sample=False,
                return_dict_in_generate=True,
                pad_token_id=0,
            )
    finally:
        handle.remove()
        for key, value in saved.items():
            setattr(gen_config, key, value)
    target_cache = getattr(out, "cache", None) or getattr(out, "past_key_values", None)
    if target_cache is None or "cache" not in held:  # pragma: no cover - transformers changed its outputs
        raise RuntimeError("assisted generation returned no target cache or ran no draft forward")
    draft_cache = held["cache"]
    return {
        "sequence": int(out.sequences.shape[-1]),
        "target": (target_cache.get_seq_length(), cache_layer_bytes(target_cache)),
        "draft": (draft_cache.get_seq_length(), cache_layer_bytes(draft_cache)),
        "draft_steps": steps,
    }


_ASSISTANT_KEYS = ("num_assistant_tokens", "num_assistant_tokens_schedule", "assistant_confidence_threshold")


def _cache_nbytes(cache: Any) -> int:
    return total_nbytes(cache_layer_bytes(cache))
