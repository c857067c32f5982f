"""Reading fields out of a Hugging Face `config.json` dict: nested language-model configs and key aliases.

Pure Python, no kvplan imports beyond errors. Every module that reads a raw config goes through here, so the
rules for "which key holds the number of KV heads" live in one place.
"""

from __future__ import annotations

from typing import Any

from kvplan.errors import ConfigError

# Multimodal wrappers keep the language model's config under one of these keys.
NESTED_TEXT_KEYS = ("text_config", "llm_config", "language_config", "thinker_config")

_MISSING = object()


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
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value) or value <= 0:
        raise ConfigError(
            f"config field `{_found_key(cfg, keys)}` must be a positive integer, got {value!r}",
            hint="fix the value in config.json",
        )
    return int(value)


def _found_key(cfg: dict[str, Any], keys: tuple[str, ...]) -> str:
    for key in keys:
        if cfg.get(key) is not None:
            return key
    return keys[0]


def vocab_size(config: dict[str, Any]) -> int:
    """The language model's vocabulary size (ChatGLM's `padded_vocab_size`); 32000 when a config names none."""
    return int(first(text_config(config), "vocab_size", "padded_vocab_size", default=32000))
