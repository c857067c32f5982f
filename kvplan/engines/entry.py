"""What kvplan knows about one engine, in one record: `EngineEntry`. Each engine module builds its own entry;
kvplan.engines.registry lists them (one line per engine) and every list of engines in kvplan derives from it.

Pure data: no engine module is imported here, so every engine module can import this one.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from kvplan.core.units import ENGINE_ONLY_KV_DTYPES, GGML_BLOCK_TYPES
from kvplan.errors import Text, UsageError

if TYPE_CHECKING:
    from kvplan.core.shapes import ModelShape
    from kvplan.engines.base import Engine, Request
    from kvplan.engines.serving import ServeCommand

StorageFactory = Callable[["ModelShape"], "Engine"]
# (storage model, model shape, request, layer kinds the estimate holds) -> notes of `kvplan estimate`
EstimateNotes = Callable[[Any, "ModelShape", "Request", frozenset], tuple]


# Plan keys every engine's config files spell the same way (normalised).
COMMON_CONFIG_KEYS: Mapping[str, str] = {
    "tensor_parallel_size": "tensor_parallel_size",
    "pipeline_parallel_size": "pipeline_parallel_size",
    "kv_cache_dtype": "kv_cache_dtype",
    "dtype": "dtype",
    "revision": "revision",
}


@dataclass(frozen=True)
class ConfigVocabulary:
    """How an engine's own config file (a vLLM `--config` YAML, SGLang server arguments, Xinference launch options)
    spells the keys of a kvplan plan.

    `keys` maps the engine's key (normalised: lower case, `-` -> `_`) to a plan key (kvplan.checking.plans.KEYS);
    `memory_keys` change memory use but are not modelled (a note says the figures leave them out). A file is
    read as this kind when `detect(normalised keys)` is true; kinds with a higher `priority` are tried first and
    the one `fallback` kind is used when none matches. A file whose keys map onto `engine` names the engine that
    runs it (Xinference's `model_engine`); otherwise the file's kind is the engine. `tp_from_gpus`: the engine
    runs with tensor parallelism over all its GPUs unless told otherwise (Xinference's `n_gpu`). `describes`
    names the file in help texts ("a vLLM --config YAML"). `model_ids(normalised file)`: the Hugging Face ids
    the file's model may be, best first, where the engine names models its own way (Xinference's registry names),
    else (). `combine(normalised key -> value)`: plan keys whose value several of the engine's keys make together
    (SGLang's `speculative_*` options -> `speculative_config`), as {plan key: (value, the engine key it is
    reported under)}; those engine keys are then read, not noted as unmodelled. `parallel_note`: what the engine's
    unmodelled parallelism options change and why kvplan leaves them out, added to the note a manifest's role gets."""

    keys: Mapping[str, str]
    memory_keys: tuple[str, ...] = ()
    detect: Callable[[set[str]], bool] = field(default=lambda keys: False)
    priority: int = 0
    fallback: bool = False
    tp_from_gpus: bool = False
    describes: str = ""
    model_ids: Callable[[Mapping[str, Any]], tuple[str, ...]] | None = None
    combine: Callable[[Mapping[str, Any]], dict[str, tuple[Any, str]]] | None = None
    parallel_note: str = ""

    @property
    def names_engine(self) -> bool:
        return "engine" in self.keys.values()


@dataclass(frozen=True)
class EngineEntry:
    """One engine: its names, how it stores caches, how it serves, and the config files it reads.

    - `name` is the canonical name, `aliases` the other spellings kvplan accepts (`llama.cpp` -> `llamacpp`);
      `display` the engine's own spelling in sentences (`vLLM`), `flag_key` the key of its command in
      Recommendation.flags (`llama.cpp`). Both default to `name`.
    - `storage` builds its storage model (kvplan.engines.base.Engine) for a model shape; `kvplan estimate` offers
      every engine with one. `stores_like` names the engine whose storage model sizes this one when it has none
      of its own (LightLLM's per-token cell is SGLang's).
    - `serving` is its serving model (kvplan.engines.serving): a ServingModel (budget, fit, flags: `kvplan
      recommend` and `kvplan check` size it) or a ServeCommand (a ready-to-paste command only).
    - `config`: the vocabulary of its own config files (`kvplan check --engine-config`).
    - `plannable`: a plan file's `engine:` may name it. `splits_heads`: tensor parallelism splits attention heads
      over ranks (lint checks that TP divides them). `serves_fp32_in_16bit`: with dtype auto it serves a float32
      config in 16 bits (lint says kvplan plans float32).
    - `kv_auto`: the KV dtype `auto` means (None: the model dtype); `kv_auto_for`: the KV dtype `auto` means for a
      model shape on a GPU (its compute capability, None: none given) in a release (`release`'s, None: none) where
      the engine decides by the model or the checkpoint (returns None for `kv_auto`'s rule; SGLang: fp8 for
      checkpoints that declare it, DSA models by GPU, DeepSeek-V4; vLLM: DeepSeek-V4 from 0.30);
      `kv_ggml`: it stores llama.cpp's ggml block types (q8_0, q4_0, ...); `kv_own`: the engine-only KV dtypes
      (`core/units.ENGINE_ONLY_KV_DTYPES`: SGLang's fp4_mx_block16) it stores, which every other engine refuses.
    - `estimate_help`: how `kvplan estimate --engine` describes it; `estimate_notes`: notes it adds to an estimate.
    - `release`: for an engine whose rules change by release (vLLM), (the release modelled, why: "given",
      "installed" or "newest") for the version asked (None: its default); `release_notes`: what a plan says
      about that release (release, why) -> notes.
    - `speculative`: for an engine without a ServingModel, its speculative-decoding rules (SpeculativeInputs ->
      Speculative: the drafter's KV layers its storage model adds); engines with one answer its `speculative`.
    - `metrics`: the gauges of running requests, KV-cache usage (a fraction) and waiting requests its server
      exports, with their source (None: kvplan knows none; `kvplan fleet` then gives thresholds without names).
    """

    name: str
    aliases: tuple[str, ...] = ()
    display: str = ""
    flag_key: str = ""
    storage: StorageFactory | None = None
    stores_like: str | None = None
    serving: ServeCommand | None = None
    config: ConfigVocabulary | None = None
    plannable: bool = False
    splits_heads: bool = False
    serves_fp32_in_16bit: bool = False
    kv_auto: str | None = None
    kv_auto_for: Callable[[ModelShape, str | None, str | None], str | None] | None = None
    kv_ggml: bool = False
    kv_own: tuple[str, ...] = ()
    estimate_help: str = ""
    estimate_notes: EstimateNotes | None = None
    release: Callable[[str | None], tuple[str, str]] | None = None
    release_notes: Callable[[str, str], list[str]] | None = None
    # the Prometheus gauges its server exports that autoscaling thresholds are set on (`kvplan fleet`):
    # "running", "kv_cache_usage", "waiting" -> metric name, and "source" (file:line of each); None: none known
    metrics: dict[str, str] | None = None
    # the speculative-decoding rules of an engine without a ServingModel (transformers' assisted generation):
    # SpeculativeInputs -> Speculative (kvplan.planning.speculative.engine_speculative); None: not modelled
    speculative: Callable[[Any], Any] | None = None
    # the storage settings `kvplan estimate` may give its storage model (llama.cpp: "flash_attn", "kv_unified")
    # and how it is built with them, (shape, {setting: value}) -> Engine (kvplan.engines.registry.get_engine)
    storage_options: frozenset[str] = frozenset()
    configured_storage: Callable[[Any, Mapping[str, Any]], Any] | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "display", self.display or self.name)
        object.__setattr__(self, "flag_key", self.flag_key or self.name)

    def kv_dtype(
        self,
        requested: str | None,
        resolved: str,
        shape: ModelShape | None = None,
        compute_capability: str | None = None,
        release: str | None = None,
    ) -> str:
        """The KV dtype this engine really uses for `--kv-dtype requested` (already resolved to `resolved`):
        `auto` is `kv_auto_for(shape, compute_capability, release)` where the engine decides by the model, checkpoint or GPU, else
        `kv_auto` where the engine has its own default (llama.cpp's f16, whatever the model dtype); ggml block
        types (q8_0, q4_0, ...) exist only in engines that store them."""
        if self.kv_auto_for is not None and shape is not None and requested in (None, "auto"):
            chosen = self.kv_auto_for(shape, compute_capability, release)
            if chosen:
                return chosen
        if self.kv_auto and requested in (None, "auto"):
            return self.kv_auto
        if resolved in GGML_BLOCK_TYPES and not self.kv_ggml:
            raise UsageError(
                Text(
                    "{kv_dtype} {value} is a llama.cpp (ggml) cache type; {which} does not store it",
                    value=resolved,
                    which=self.name,
                ),
                hint=Text("use {engine} llamacpp, or fp8 / int8 for this engine"),
                field="kv_dtype",
            )
        if resolved in ENGINE_ONLY_KV_DTYPES and resolved not in self.kv_own:
            from kvplan.engines.registry import entries, listed  # the registry imports this module

            owners = listed([e.name for e in entries(lambda e: resolved in e.kv_own)])
            raise UsageError(
                Text(
                    "{kv_dtype} {value} is a KV cache only {owners} stores; {which} does not store it",
                    value=resolved,
                    owners=owners or "no registered engine",
                    which=self.name,
                ),
                hint=Text("use {engine} {owners}, or fp8 for this engine", owners=owners),
                field="kv_dtype",
            )
        return resolved
