"""Typed errors raised by kvplan's library code.

Only the CLI layer turns these into a one-line message and an exit code; library code never exits the
process. Every error carries a `hint` that tells the user what to do about it, and the `field` it is about
when it is about one (the library's parameter name: `tp`, `seq_len`, `kv_dtype`, ...: `FLAGS` below).
Messages and hints that name fields are `Text`: a str in the CLI's spelling, which each boundary renders in
its own with `spelled` (the CLI: flags; `kvplan check`: plan keys). This module imports nothing from kvplan
(every layer may import it).

Fields in messages: library code never writes a CLI flag or a plan key into a message: it names a field with a placeholder and
each boundary renders the placeholder in its own spelling. `Text("{tp} {n} does not divide the model's {heads}
KV heads", n=4, heads=8)` is a str whose value is the default spelling, the CLI's flags (`FLAGS`): "--tp 4 does
not divide the model's 8 KV heads" (what Python callers and the command line have always read);
`spell(text, {"tp": "tensor_parallel_size"})` renders the same message for a plan file.

Placeholders are `str.format` fields: one that names a value given to `Text` is that value (`{n:,}`, `{v!r}`
work as usual); any other must be a field of `FLAGS` and is replaced by its name in the spelling asked for
(falling back to the flag). A format spec on a field is its metavar, written after a flag and dropped after a
key: `{kv_memory:SIZE}` is "--kv-memory SIZE" on the command line and "kv_cache_memory" in a plan. A value may
not be named like a field (a `ValueError`: the message would be ambiguous).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# field (the library's parameter name) -> the CLI flag that sets it: the default spelling of every message
FLAGS: dict[str, str] = {
    "seq_len": "--seq-len",
    "batch": "--batch",
    "engine": "--engine",
    "dtype": "--dtype",
    "kv_dtype": "--kv-dtype",
    "tp": "--tp",
    "pp": "--pp",
    "block_size": "--block-size",
    "max_num_batched_tokens": "--max-num-batched-tokens",
    "n_ubatch": "--ubatch",
    "flash_attn": "--flash-attn",
    "kv_unified": "--kv-unified",
    "gpu_profile": "--gpu-profile",
    "gpus": "--gpus",
    "max_model_len": "--max-model-len",
    "concurrency": "--concurrency",
    "max_num_seqs": "--max-num-seqs",
    "gpu_memory_utilization": "--gpu-memory-utilization",
    "kv_memory": "--kv-memory",
    "weights_bytes": "--weights-bytes",
    "vllm_version": "--vllm-version",
    "prefix_caching": "--prefix-caching",
    "async_scheduling": "--async-scheduling",
    "assume_llama": "--assume-llama",
    "quantization": "--quantization",
    "speculative_config": "--speculative-config",
    "kv_offloading_size": "--kv-offloading-size",
    "kv_offloading_backend": "--kv-offloading-backend",
    "hicache_ratio": "--hicache-ratio",
    "hicache_size": "--hicache-size",
    "mamba_full_memory_ratio": "--mamba-full-memory-ratio",
    "max_mamba_cache_size": "--max-mamba-cache-size",
    "mamba_ssm_dtype": "--mamba-ssm-dtype",
    "lmcache_cpu_size": "--lmcache-cpu-size",
    "lmcache_disk_size": "--lmcache-disk-size",
    "lmcache_version": "--lmcache-version",
    "kvbm_cpu_cache_gb": "--kvbm-cpu-cache-gb",
    "kvbm_disk_cache_gb": "--kvbm-disk-cache-gb",
    "host_memory": "--host-memory",
    "dp": "--data-parallel-size",
    "dcp": "--decode-context-parallel-size",
    "expert_parallel": "--enable-expert-parallel",
    "redundant_experts": "--num-redundant-experts",
    "nodes": "--nodes",
    "gpus_per_node": "--gpus-per-node",
    "max_loras": "--max-loras",
    "max_lora_rank": "--max-lora-rank",
    "max_cpu_loras": "--max-cpu-loras",
    "lora_dtype": "--lora-dtype",
    "lora_target_modules": "--lora-target-modules",
    "limit_mm_per_prompt": "--limit-mm-per-prompt",
    "rate": "--rate",
    "min_replicas": "--min-replicas",
    "max_replicas": "--max-replicas",
}
FIELDS = frozenset(FLAGS)

Spelling = Mapping[str, str]  # field -> the name a boundary uses for it (missing fields: the flag)


class _Name(str):
    """A field's name in one spelling; its format spec is a metavar, kept after a flag only."""

    def __format__(self, spec: str) -> str:
        return f"{self} {spec}" if spec and self.startswith("-") else str(self)


class _Lookup(dict):
    def __init__(self, values: Mapping[str, Any], spelling: Spelling) -> None:
        super().__init__(values)
        self.spelling = spelling

    def __missing__(self, key: str) -> _Name:
        if key not in FIELDS:
            raise KeyError(f"{key!r} is neither a value of this message nor a field of kvplan.errors.FLAGS")
        return _Name(self.spelling.get(key) or FLAGS[key])


def _render(template: str, values: Mapping[str, Any], spelling: Spelling) -> str:
    return template.format_map(_Lookup(values, spelling))


class Text(str):
    """A message that names fields with placeholders. As a str it reads in the default spelling (`FLAGS`);
    `spell(text, spelling)` renders it in another."""

    template: str
    values: dict[str, Any]

    def __new__(cls, template: str, /, **values: Any) -> Text:
        clash = FIELDS.intersection(values)
        if clash:
            raise ValueError(f"message values named like fields: {', '.join(sorted(clash))}")
        self = super().__new__(cls, _render(template, values, FLAGS))
        self.template = template
        self.values = values
        return self

    def spell(self, spelling: Spelling) -> str:
        """This message with each field named as `spelling` names it (the flag where it names none)."""
        return _render(self.template, self.values, spelling)

    def __reduce__(self) -> tuple[Any, ...]:  # copy / pickle rebuild from the template, not the rendered text
        return _text, (self.template, self.values)


def _text(template: str, values: dict[str, Any]) -> Text:
    return Text(template, **values)


def spell(message: str | None, spelling: Spelling) -> str | None:
    """`message` in `spelling` when it is a `Text`; a plain str (or None) as it is."""
    return message.spell(spelling) if isinstance(message, Text) else message


def placeholder(field: str) -> str:
    """The placeholder that names `field` in a `Text` template (for templates built from a list of fields)."""
    if field not in FIELDS:
        raise ValueError(f"unknown field {field!r}")
    return "{" + field + "}"


class KvplanError(Exception):
    """Base class: a problem with the user's input or environment, reported as one line (exit code 2)."""

    exit_code = 2

    def __init__(self, message: str, hint: str | None = None, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.field = field

    def __str__(self) -> str:
        return self.message

    def spelled(self, spelling: Spelling) -> tuple[str, str | None]:
        """The message and the hint with every field named as `spelling` names it."""
        return spell(self.message, spelling) or "", spell(self.hint, spelling)


class ConfigError(KvplanError):
    """A model config is unreadable, malformed, or lacks a field kvplan needs."""


class UnsupportedArchitecture(KvplanError):
    """A model config describes an architecture kvplan cannot size."""


class HubError(KvplanError):
    """The Hugging Face Hub could not provide a file (not found, gated, offline, no network)."""


class UsageError(KvplanError):
    """A command-line value is out of range or cannot be parsed."""


class ProfileError(KvplanError):
    """A hardware profile file is missing, malformed or fails validation."""


class ProfilingError(KvplanError):
    """A profiling run could not be carried out (missing extras, no device, ...)."""


class DoesNotFit(KvplanError):
    """The plan was evaluated and does not fit (exit code 1)."""

    exit_code = 1


# What a reader of a config raises on a field of the wrong type or value (`max_window_layers: "half"`,
# `bits: "four"`, `first_k_dense_replace: [0]`): each boundary that reads configs turns these into one
# ConfigError (the shape) or an unknown figure (the optional weights and throughput), never an internal error.
FIELD_ERRORS: tuple[type[Exception], ...] = (
    TypeError,
    AttributeError,
    ValueError,
    KeyError,
    IndexError,
    ZeroDivisionError,
    OverflowError,
    RecursionError,
)
# ... and with kvplan's own: what an optional figure (weights, throughput) computed from a config may raise.
READ_ERRORS: tuple[type[Exception], ...] = (KvplanError, *FIELD_ERRORS)
