"""The one config-reading layer: fields out of a Hugging Face `config.json` dict.

It holds the nesting rule (multimodal wrappers keep the language model under `text_config`, `llm_config`, ...),
every key alias (which keys hold the number of layers, heads, KV heads, hidden size, head_dim, vocabulary,
intermediate size, positions, experts, dtype), the family defaults transformers assumes for omitted fields
(from the policy table, kvplan.core.families) and the readers built on them. The shape reader
(kvplan.core.shapes), the weights count (kvplan.weights.tensors), the lint (kvplan.checking.lint), the budget
(kvplan.planning) and the profiler read configs through here, so "which key holds the number of KV heads" is
answered in one place.

Pure Python: imports only kvplan.core.families, kvplan.core.units and kvplan.errors; never torch, the engines,
planning or the CLI.
"""

from __future__ import annotations

import math
from typing import Any

from kvplan.core.families import Family, family_of
from kvplan.core.units import COMPUTE_DTYPES, canonical_dtype
from kvplan.errors import ConfigError, UsageError

# Multimodal wrappers keep the language model's config under one of these keys.
NESTED_TEXT_KEYS = ("text_config", "llm_config", "language_config", "thinker_config")

# Key aliases, in the order engines read them (the first present, non-null key wins).
LAYER_KEYS = ("num_hidden_layers", "n_layer", "num_layers", "n_layers")
HEAD_KEYS = ("num_attention_heads", "n_head", "n_heads", "num_heads")
KV_HEAD_KEYS = ("num_key_value_heads", "num_kv_heads", "n_head_kv", "multi_query_group_num")
HIDDEN_KEYS = ("hidden_size", "n_embd", "n_embed", "d_model", "dim")
HEAD_DIM_KEYS = ("head_dim", "kv_channels", "attention_head_dim")
VOCAB_KEYS = ("vocab_size", "padded_vocab_size")  # ChatGLM: padded_vocab_size
INTERMEDIATE_KEYS = ("intermediate_size", "ffn_hidden_size", "n_inner")  # ChatGLM/Falcon, GPT-2
MAX_POSITION_KEYS = ("max_position_embeddings", "n_positions", "seq_length", "max_sequence_length")
EXPERT_KEYS = ("num_local_experts", "num_experts", "n_routed_experts")
EXPERTS_PER_TOKEN_KEYS = ("num_experts_per_tok", "num_experts_per_token", "moe_topk")
# an expert's width where it differs from the dense MLP's (Qwen MoE, DeepSeek, GLM); Mixtral, gpt-oss and PhiMoE
# give it as `intermediate_size`
MOE_INTERMEDIATE_KEYS = ("moe_intermediate_size",)
DTYPE_KEYS = ("torch_dtype", "dtype")
SLIDING_WINDOW_KEYS = ("sliding_window", "sliding_window_size")

# Config fields that signal a cache a llama-like reading would get wrong (issue 12, "no silent guesses"): a config
# of an unknown model_type is read as a llama-like decoder only when none of these holds a value. Each entry is a
# field name or a `prefix*` / `*infix*` pattern, with what it signals (shown in the refusal).
CACHE_SIGNALS: tuple[tuple[str, str], ...] = (
    ("kv_lora_rank", "a multi-head latent (MLA) cache"),
    ("compress_ratios", "compressed attention entries"),
    ("compress_*", "compressed attention entries"),
    ("index_*", "a sparse-attention indexer cache"),
    ("indexer_*", "a sparse-attention indexer cache"),
    ("linear_*", "a linear-attention state"),
    ("mamba_*", "a Mamba state"),
    ("ssm_*", "a state-space state"),
    ("conv_L_cache", "a short-convolution state"),
    ("num_kv_shared_layers", "layers that share another layer's KV"),
    ("*k_eq_v*", "keys reused as values"),
    ("num_global_key_value_heads", "global layers with their own KV heads"),
    ("global_head_dim", "global layers with their own head size"),
    ("v_head_dim", "values with their own head size"),
    ("swa_*", "sliding layers with their own head shape"),
    ("sliding_window_pattern", "a sliding / global layer pattern"),
    ("attention_chunk_size", "chunked local attention"),
    ("layers_block_type", "per-layer block types"),
    ("hybrid_override_pattern", "a hybrid layer pattern"),
    ("attn_layer_*", "attention on some layers only"),
    ("attn_type_list", "per-layer attention types"),
    ("full_attention_interval", "attention on some layers only"),
    ("sparse_attention_config", "sparse attention"),
    ("use_cla", "cross-layer KV sharing"),  # its `cla_share_factor` means nothing while use_cla is false
)


def _signal_matches(pattern: str, key: str) -> bool:
    if pattern.startswith("*") and pattern.endswith("*"):
        return pattern[1:-1] in key
    if pattern.endswith("*"):
        return key.startswith(pattern[:-1])
    return key == pattern


def cache_signals(cfg: dict[str, Any]) -> list[tuple[str, str]]:
    """The (field, meaning) pairs of CACHE_SIGNALS that `cfg` (the language config) sets to a value.

    A null, false, zero or empty value is no signal (`num_kv_shared_layers: 0`, `kv_lora_rank: null`)."""
    found = []
    for key in sorted(cfg):
        value = cfg[key]
        if key.startswith("_") or value is None or value is False or value == 0 or value in ("", [], {}):
            continue
        meaning = next((m for pattern, m in CACHE_SIGNALS if _signal_matches(pattern, key)), None)
        if meaning is not None:
            found.append((key, meaning))
    return found


# transformers' LlamaConfig default, used by the budget when neither the config nor its family names a vocabulary.
DEFAULT_VOCAB_SIZE = 32000

_MISSING = object()


# ---------------------------------------------------------------------------------------------------- nesting


def text_config(cfg: dict[str, Any]) -> dict[str, Any]:
    """Return the language model's config: `cfg` itself, or its nested text/LLM config.

    Keys of the outer config that the inner one lacks (e.g. `torch_dtype`, `quantization_config`) are
    inherited, because wrappers often keep them only at the top level.
    """
    for key in NESTED_TEXT_KEYS:
        inner = cfg.get(key)
        if isinstance(inner, dict):
            if key == "thinker_config" and isinstance(inner.get("text_config"), dict):
                inner = inner["text_config"]
            merged = {k: v for k, v in cfg.items() if k not in NESTED_TEXT_KEYS}
            merged.update(inner)
            merged["_outer_model_type"] = cfg.get("model_type")
            return merged
    return cfg


def with_defaults(cfg: dict[str, Any], family: Family | None) -> dict[str, Any]:
    """`cfg` with the family's defaults filled in where a field is missing or null (a copy; `cfg` is kept)."""
    if family is None or not family.defaults:
        return cfg
    out = dict(cfg)
    for key, value in family.defaults.items():
        if out.get(key) is None:
            out[key] = value
    return out


def language_config(config: dict[str, Any]) -> dict[str, Any]:
    """The language model's config (`text_config`) with its family's defaults filled in (`with_defaults`)."""
    if not isinstance(config, dict):
        raise ConfigError("config must be a JSON object", hint="pass the model's config.json")
    cfg = text_config(config)
    return with_defaults(cfg, family_of(cfg))


# ---------------------------------------------------------------------------------------------------- values


def first(cfg: dict[str, Any], *keys: str, default: Any = _MISSING) -> Any:
    """The value of the first key in `keys` present in `cfg` with a non-null value.

    Raises ConfigError naming the first key when none is present and no default is given.
    """
    for key in keys:
        value = cfg.get(key)
        if value is not None:
            return value
    if default is _MISSING:
        raise ConfigError(
            f"config has no `{keys[0]}`" + (f" (also looked for {', '.join(keys[1:])})" if len(keys) > 1 else ""),
            hint="pass the model's real config.json; kvplan needs this field to size the cache",
        )
    return default


def positive_int(cfg: dict[str, Any], *keys: str, default: Any = _MISSING) -> int:
    """Like `first`, but the value must be a positive integer (bools and floats with a fraction refused)."""
    value = first(cfg, *keys, default=default)
    if value is default and default is not _MISSING:
        return value
    if not _is_positive_int(value):
        shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:37] + "..."
        bound = (
            f" (at most {MAX_CONFIG_INT:,})" if isinstance(value, (int, float)) and not isinstance(value, bool) else ""
        )
        raise ConfigError(
            f"config field `{_found_key(cfg, keys)}` must be a positive integer{bound}, got {shown}",
            hint="fix the value in config.json",
        )
    return int(value)


def optional_int(cfg: dict[str, Any], *keys: str) -> int | None:
    """The first present key's value as a positive integer; None when absent or not a positive integer.

    For readers that must not raise (the lint skips what it cannot read; the shape reader reports it)."""
    value = first(cfg, *keys, default=None)
    return int(value) if value is not None and _is_positive_int(value) else None


# No real config has a dimension or count this large (hidden sizes are < 2**17, vocabularies < 2**22): a bigger
# value is a typo or a hostile file, refused before any arithmetic runs on it.
MAX_CONFIG_INT = 2**40
# The most decoder layers kvplan reads (real models have <= ~200); beyond it, reading would take minutes.
MAX_LAYERS = 4096


def _is_positive_int(value: Any) -> bool:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    if isinstance(value, float) and not math.isfinite(value):
        return False  # NaN, Infinity (Python's json reads both)
    return value == int(value) and 0 < value <= MAX_CONFIG_INT


def _found_key(cfg: dict[str, Any], keys: tuple[str, ...]) -> str:
    for key in keys:
        if cfg.get(key) is not None:
            return key
    return keys[0]


# ---------------------------------------------------------------------------------------------------- readers
# Each takes the language model's config (`text_config` / `language_config`) and raises ConfigError naming the
# field when it is missing or malformed.


def num_layers(cfg: dict[str, Any]) -> int:
    layers = positive_int(cfg, *LAYER_KEYS)
    if layers > MAX_LAYERS:
        raise ConfigError(
            f"config field `{_found_key(cfg, LAYER_KEYS)}` gives {layers:,} layers; kvplan reads at most {MAX_LAYERS:,}",
            hint="fix the value in config.json (real models have a few hundred layers at most)",
        )
    return layers


def num_heads(cfg: dict[str, Any]) -> int:
    return positive_int(cfg, *HEAD_KEYS)


def hidden_size(cfg: dict[str, Any]) -> int:
    return positive_int(cfg, *HIDDEN_KEYS)


def num_kv_heads(cfg: dict[str, Any]) -> int:
    """KV heads: the first of the keys engines read (vLLM's order), else the attention heads (MHA)."""
    heads = num_heads(cfg)
    kv = positive_int(cfg, *KV_HEAD_KEYS, default=heads)
    if kv > heads:
        raise ConfigError(
            f"config has more KV heads ({kv}) than attention heads ({heads})",
            hint="check num_key_value_heads in config.json",
        )
    return kv


_OF_CONFIG: Any = object()


def head_dim(cfg: dict[str, Any], family: Family | None = _OF_CONFIG) -> int:
    """Explicit `head_dim` (or `kv_channels`, `attention_head_dim`) when the family honours it, else
    hidden_size / num_attention_heads. `family` defaults to the config's own (None: an unknown family,
    which honours an explicit head_dim)."""
    fam = family_of(cfg) if family is _OF_CONFIG else family
    honours = fam is None or fam.honours_head_dim
    if honours:
        explicit = positive_int(cfg, *HEAD_DIM_KEYS, default=None)
        if explicit is not None:
            return explicit
    hidden, heads = hidden_size(cfg), num_heads(cfg)
    if hidden % heads:
        raise ConfigError(
            f"hidden_size {hidden} is not divisible by num_attention_heads {heads}"
            + (
                " and no head_dim is given"
                if honours
                else f", which {fam.name if fam else 'the family'} requires (it ignores head_dim)"
            ),
            hint="add head_dim to config.json" if honours else "fix hidden_size or num_attention_heads",
        )
    return hidden // heads


def vocab_size(config: dict[str, Any]) -> int:
    """The language model's vocabulary size (nested configs resolved): `vocab_size` (ChatGLM's
    `padded_vocab_size`), else the default transformers assumes for the family (Gemma 3: 262208, Gemma and
    Gemma 2: 256000), else 32000 (transformers' LlamaConfig default)."""
    return positive_int(language_config(config), *VOCAB_KEYS, default=DEFAULT_VOCAB_SIZE)


def intermediate_size(cfg: dict[str, Any], default: Any = _MISSING) -> int:
    return positive_int(cfg, *INTERMEDIATE_KEYS, default=default)


def max_positions(cfg: dict[str, Any], default: Any = None) -> int | None:
    """The longest context the config declares (`max_position_embeddings` and aliases), `default` when none."""
    return positive_int(cfg, *MAX_POSITION_KEYS, default=default)


def num_experts(cfg: dict[str, Any], default: Any = _MISSING) -> int:
    """Routed experts per MoE layer."""
    return positive_int(cfg, *EXPERT_KEYS, default=default)


def routed_experts(config: dict[str, Any]) -> tuple[int, int] | None:
    """(experts per token, one expert's intermediate size) of a language model with routed experts (nested
    configs resolved): `num_experts_per_tok` and aliases, `moe_intermediate_size` else `intermediate_size`; None
    for a dense model or a config that names neither."""
    cfg = language_config(config)
    if not num_experts(cfg, default=0):
        return None
    top_k = positive_int(cfg, *EXPERTS_PER_TOKEN_KEYS, default=None)
    inter = positive_int(cfg, *MOE_INTERMEDIATE_KEYS, *INTERMEDIATE_KEYS, default=None)
    return (top_k, inter) if top_k and inter else None


def sliding_window(cfg: dict[str, Any]) -> int | None:
    return positive_int(cfg, *SLIDING_WINDOW_KEYS, default=None)


# ---- family-specific fields that more than one module reads (the shape reader and the weights)


def falcon_new_decoder(cfg: dict[str, Any]) -> bool:
    """Falcon's `new_decoder_architecture` (grouped KV heads, two layer norms), implied by every "RefinedWeb"
    config (Falcon-40B remote code)."""
    return bool(cfg.get("new_decoder_architecture", cfg.get("model_type") == "RefinedWeb"))


def falcon_kv_heads(cfg: dict[str, Any]) -> int:
    """Falcon's KV heads: `num_kv_heads` with the new decoder architecture, one with `multi_query` (the
    default, Falcon-7B), else one per attention head."""
    if falcon_new_decoder(cfg):
        return num_kv_heads(cfg)
    return 1 if cfg.get("multi_query", True) else num_heads(cfg)


def chatglm_kv_heads(cfg: dict[str, Any]) -> int:
    """ChatGLM/GLM-4 (remote code): `multi_query_group_num` KV heads when `multi_query_attention`, else MHA."""
    return positive_int(cfg, "multi_query_group_num") if cfg.get("multi_query_attention") else num_heads(cfg)


def raw_dtype(cfg: dict[str, Any], default: Any = None) -> Any:
    """The config's dtype field as written (`torch_dtype`, transformers v5 `dtype`), `default` when absent."""
    return first(cfg, *DTYPE_KEYS, default=default)


def model_dtype(cfg: dict[str, Any]) -> tuple[str, str | None]:
    """The config's compute dtype (canonical name), or bf16 with a note saying it was assumed."""
    value = raw_dtype(cfg)
    if value is None:
        return "bfloat16", "config names no torch_dtype; assumed bf16"
    try:
        name = canonical_dtype(str(value))
    except UsageError:
        return "bfloat16", f"config dtype {value!r} not understood; assumed bf16"
    if name not in COMPUTE_DTYPES:
        return "bfloat16", f"config dtype {value!r} is not a compute dtype; assumed bf16"
    return name, None
