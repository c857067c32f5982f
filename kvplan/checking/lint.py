"""Lint a model's config.json against a deployment: the inconsistencies engines refuse or silently work around.

Each check returns a `LintWarning` (a code and one line). `kvplan check` prints them as warnings, and as
errors with `--strict`. The config is read as data, through kvplan.core.config's key aliases and the family
policy table (kvplan.core.families: which families ignore `head_dim`); fields kvplan cannot read are skipped
here (the shape reader reports them). Pure Python.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from kvplan.core.config import (
    HEAD_DIM_KEYS,
    HEAD_KEYS,
    HIDDEN_KEYS,
    KV_HEAD_KEYS,
    LAYER_KEYS,
    MAX_POSITION_KEYS,
    language_config,
    optional_int,
    raw_dtype,
)
from kvplan.core.families import family_of
from kvplan.core.units import dtype_name
from kvplan.engines import DEFAULT_ENGINE
from kvplan.engines.registry import lookup
from kvplan.planning.requests import above_model_limit

# RoPE scaling types under which vLLM keeps max_position_embeddings as the limit (no factor applied).
_UNSCALED_ROPE = ("default", "llama3", "mrope", "none")


@dataclass(frozen=True)
class LintWarning:
    code: str
    message: str

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


def _rope_scaling(cfg: dict) -> dict | None:
    """The config's RoPE scaling (`rope_scaling`, or transformers v5 `rope_parameters`), None when unscaled."""
    for key in ("rope_scaling", "rope_parameters"):
        value = cfg.get(key)
        if isinstance(value, dict):
            kind = str(value.get("rope_type") or value.get("type") or "default").lower()
            if kind != "default":
                return value
    return None


def lint_model_config(
    config: dict[str, Any], *, engine: str = DEFAULT_ENGINE, tp: int = 1, pp: int = 1, max_model_len: int | None = None
) -> list[LintWarning]:
    """Config-level problems for serving `config` with `engine` at `tp` x `pp` and `max_model_len` (the engine's
    registry entry says which rules apply: `splits_heads`, `serves_fp32_in_16bit`)."""
    if not isinstance(config, dict):
        return []
    entry = lookup(engine)
    cfg = language_config(config)
    out: list[LintWarning] = []
    model_type = str(cfg.get("model_type") or "")
    family = family_of(model_type)
    heads = optional_int(cfg, *HEAD_KEYS)
    kv = optional_int(cfg, *KV_HEAD_KEYS)
    hidden = optional_int(cfg, *HIDDEN_KEYS)
    head_dim = optional_int(cfg, *HEAD_DIM_KEYS)
    layers = optional_int(cfg, *LAYER_KEYS)
    latent = cfg.get("kv_lora_rank") is not None

    if heads and kv and not latent:
        if kv > heads:
            out.append(LintWarning("kv-heads", f"num_key_value_heads {kv} is more than num_attention_heads {heads}"))
        elif heads % kv:
            out.append(
                LintWarning(
                    "kv-heads",
                    f"num_attention_heads {heads} is not divisible by num_key_value_heads {kv}: GQA needs equal groups",
                )
            )
    if heads and hidden and family is not None and not family.honours_head_dim:
        if hidden % heads:
            out.append(
                LintWarning(
                    "head-dim",
                    f"hidden_size {hidden} is not divisible by num_attention_heads {heads}, "
                    f"which {model_type} requires",
                )
            )
        elif head_dim is not None and head_dim != hidden // heads:
            out.append(
                LintWarning(
                    "head-dim",
                    f"head_dim {head_dim} differs from hidden_size / num_attention_heads = "
                    f"{hidden // heads}; {model_type} uses the latter and ignores head_dim",
                )
            )

    limit = optional_int(cfg, *MAX_POSITION_KEYS)
    if max_model_len and limit is not None and above_model_limit(max_model_len, limit):
        scaling = _rope_scaling(cfg)
        kind = str((scaling or {}).get("rope_type") or (scaling or {}).get("type") or "").lower()
        factor = (scaling or {}).get("factor")
        scaled = limit
        if (
            scaling is not None
            and kind not in _UNSCALED_ROPE
            and isinstance(factor, (int, float))
            and not isinstance(factor, bool)
            and factor > 1
        ):
            scaled = int(limit * factor)
        if scaling is None:
            out.append(
                LintWarning(
                    "max-model-len",
                    f"max_model_len {max_model_len:,} is above the model's "
                    f"max_position_embeddings {limit:,} and the config has no RoPE "
                    "scaling (vLLM refuses it unless VLLM_ALLOW_LONG_MAX_MODEL_LEN=1)",
                )
            )
        elif max_model_len > scaled:
            out.append(
                LintWarning(
                    "max-model-len",
                    f"max_model_len {max_model_len:,} is above the {scaled:,} tokens "
                    f"the config's RoPE scaling ({kind or 'unknown'}) allows",
                )
            )

    if entry is not None and entry.splits_heads and tp > 1:
        if heads and heads % tp:
            out.append(
                LintWarning(
                    "tp-heads",
                    f"tensor_parallel_size {tp} does not divide num_attention_heads {heads} "
                    f"({engine} requires num_attention_heads % tp == 0)",
                )
            )
        if kv and not latent and ((kv >= tp and kv % tp) or (kv < tp and tp % kv)):
            out.append(
                LintWarning(
                    "tp-kv-heads",
                    f"tensor_parallel_size {tp} neither divides nor is a multiple of num_key_value_heads {kv}",
                )
            )
    if layers and pp > layers:
        out.append(LintWarning("pp-layers", f"pipeline_parallel_size {pp} is more than the model's {layers} layers"))

    if entry is not None and entry.serves_fp32_in_16bit and dtype_name(raw_dtype(cfg)) == "float32":
        out.append(
            LintWarning(
                "dtype",
                f"the config's dtype is float32; {engine} serves it in 16 bits with dtype "
                "auto, kvplan plans float32 unless the deployment sets dtype",
            )
        )
    return out
