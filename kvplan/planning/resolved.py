"""A model resolved once: its config and where it came from, its cache shape, and its weights.

`resolve(MODEL)` reads the config (kvplan.sources.configs) and its shape (kvplan.core.shapes) once; the
weights (a GGUF file's tensor bytes; safetensors metadata when the files are at hand, else the analytic count of
kvplan.weights) are looked up once and kept, per model dtype.

When kvplan asks the Hub for weight sizes: when the config was downloaded from it in this run; for a config
found in the HF cache, only when asked (`hub_weights=True`, the CLI's `--hub-weights`) or when neither the
cached files nor the analytic count can size the weights; never offline, and never with `hub_weights=False`.
Each request is said on stderr with its timeout (kvplan.sources.hub.bounded).

Every planning call (estimate, recommend, check, sweeps and grids) takes a `ResolvedModel`, so a sweep of N
lengths or a check that re-plans a deployment for each suggested fix reads nothing again. Never imports torch.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from kvplan.core.shapes import ModelShape, model_shape
from kvplan.core.units import DTYPE_BYTES
from kvplan.errors import READ_ERRORS
from kvplan.sources.configs import LoadedConfig, load_model_config

_UNSET: Any = object()
_COMMIT = re.compile(r"[0-9a-f]{40}")
T = TypeVar("T")


@dataclass(frozen=True)
class ResolvedModel:
    """A model read once. `loaded` is the raw config and its provenance, `shape` what each layer caches.

    `offline` is kept for the one weights lookup that may ask the Hub for safetensors metadata; `hub_weights`
    says whether that lookup may go to the Hub for a config from the HF cache (None: only when nothing local
    can size the weights; see the module docstring)."""

    loaded: LoadedConfig
    shape: ModelShape
    offline: bool | None = None
    hub_weights: bool | None = None
    _cache: dict[Any, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def name(self) -> str:
        return self.loaded.name

    @property
    def config(self) -> dict[str, Any]:
        return self.loaded.config

    @property
    def config_source(self) -> str:
        """Where the config was read: "catalog", "file", "folder", "hf-cache", "hub", "gguf" or "dict"."""
        return self.loaded.source

    @property
    def revision(self) -> str | None:
        """The Hub snapshot's commit hash when the config came from the Hub or its cache, else None (a branch or
        tag name is not a snapshot: None)."""
        found = self.loaded.revision
        return found if found is not None and _COMMIT.fullmatch(found) else None

    def memo(self, key: Hashable, compute: Callable[[], T]) -> T:
        """`compute()` once per model and `key`: what planning derives from the model alone (and its arguments
        in `key`) is derived once however many plans ask (a check's fixes, a grid of GPUs)."""
        key = ("memo", key)
        if key not in self._cache:
            self._cache[key] = compute()
        value: T = self._cache[key]
        return value

    def weights(self, dtype: str, quantization: str | None = None) -> tuple[int | None, str | None]:
        """Bytes of the weights at model dtype `dtype` and where the figure comes from: "safetensors" metadata
        (the files' own sizes, whatever the dtype), else "analytic"; (None, None) when unknown. `quantization`
        (vLLM's online `--quantization`, kvplan.weights.stored.ONLINE_QUANTIZATIONS) prices the analytic tensor
        list as quantized at load: the checkpoint's files no longer say what the GPU holds. A GGUF file's weights
        are its tensors' bytes as stored ("gguf"), whatever the dtype."""
        if self.loaded.weights_bytes is not None:
            return self.loaded.weights_bytes, "gguf"
        if quantization is not None and not _quantized(self.config) and not self.loaded.weights_unknown:
            from kvplan.weights.stored import weight_bytes

            return weight_bytes(self.config, int(DTYPE_BYTES[dtype]), quantization), f"analytic, {quantization} online"
        measured = self._cache.get("safetensors", _UNSET)
        if measured is _UNSET:
            measured = self._cache["safetensors"] = _measured_weights(self.loaded, self.offline, self.hub_weights)
        if measured:
            return measured, "safetensors"
        key = ("analytic", dtype)
        if key not in self._cache:
            self._cache[key], self._cache[("unknown", dtype)] = _analytic_weights(self.loaded, dtype)
        result: tuple[int | None, str | None] = self._cache[key]
        if result[0] is None and self.hub_weights is None and self.loaded.source == "hf-cache":
            # nothing local sizes the weights: the Hub is asked after all (said on stderr, bounded)
            fetched = self._cache.get("safetensors-hub", _UNSET)
            if fetched is _UNSET:
                fetched = self._cache["safetensors-hub"] = _measured_weights(self.loaded, self.offline, True)
            if fetched:
                return fetched, "safetensors"
        return result

    def expert_weights(self, dtype: str, quantization: str | None = None) -> int | None:
        """Bytes of the routed experts at model dtype `dtype` (kvplan.weights.stored.expert_weight_bytes, the
        analytic count): 0 for a dense model, None when the architecture cannot be counted."""
        key = ("experts", dtype, quantization)
        if key not in self._cache:
            from kvplan.weights.stored import expert_weight_bytes

            try:
                self._cache[key] = expert_weight_bytes(self.config, int(DTYPE_BYTES[dtype]), quantization)
            except READ_ERRORS:
                self._cache[key] = None
        result: int | None = self._cache[key]
        return result

    def expert_layers(self) -> int:
        """Decoder layers with routed experts (kvplan.weights.stored.expert_layers; 0 when not counted)."""

        def count() -> int:
            from kvplan.weights.stored import expert_layers

            try:
                return expert_layers(self.config)
            except READ_ERRORS:
                return 0

        return self.memo("expert_layers", count)

    def encoder_weights(self, dtype: str) -> int | None:
        """Bytes of the multimodal encoders and projectors (vision tower, projector) at model dtype `dtype`,
        counted from the config (kvplan.weights.encoders): 0 for a model without any, None for a wrapper whose
        encoders kvplan does not count."""
        key = ("encoders", dtype)
        if key not in self._cache:
            from kvplan.weights.encoders import encoder_parameters

            try:
                params = encoder_parameters(self.config)
            except READ_ERRORS:  # a vision_config the count cannot read: not counted
                params = None
            self._cache[key] = None if params is None else int(params * DTYPE_BYTES[dtype])
        result: int | None = self._cache[key]
        return result

    def encoder_numels(self) -> tuple[tuple[str, int], ...]:
        """The multimodal encoders' and projectors' tensors as (name, parameters) (kvplan.weights.encoders; empty:
        none, or not counted)."""

        def compute() -> tuple[tuple[str, int], ...]:
            from kvplan.weights.encoders import encoder_tensors

            try:
                tensors = encoder_tensors(self.config) or []
            except READ_ERRORS:
                return ()
            return tuple((t.name, t.numel) for t in tensors if t.role != "buffer")

        return self.memo("encoder_numels", compute)

    def weights_unknown(self, dtype: str) -> str | None:
        """Why `weights(dtype)` is unknown (None when it is known): no layout for the family, or a config the
        count cannot price (an unsupported `quant_method`, a malformed field), in the error's own words."""
        if self.weights(dtype)[0] is not None:
            return None
        reason: str | None = self._cache.get(("unknown", dtype))
        return reason or "no safetensors metadata, and no exact parameter count for this architecture"


def load(model: str | dict[str, Any], *, revision: str | None = None, offline: bool | None = None) -> LoadedConfig:
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


ModelRef = str | dict[str, Any] | LoadedConfig | ResolvedModel


def resolve(
    model: ModelRef,
    *,
    revision: str | None = None,
    offline: bool | None = None,
    assume_llama: bool = False,
    hub_weights: bool | None = None,
) -> ResolvedModel:
    """MODEL read once: a name, path or Hub id, a config dict, a LoadedConfig, or a ResolvedModel (returned as is).

    `hub_weights`: whether a config from the HF cache may ask the Hub for its safetensors sizes (True: always,
    False: never, None: only when nothing local sizes the weights). `assume_llama` reads an unknown model_type
    as a llama-like decoder even when its config signals another cache (kvplan.core.shapes.model_shape refuses
    it otherwise); the shape's assumptions say so."""
    if isinstance(model, ResolvedModel):
        return model
    loaded = model if isinstance(model, LoadedConfig) else load(model, revision=revision, offline=offline)
    shape = model_shape(loaded.config, assume_llama=assume_llama)
    notes = loaded.notes + _quantized_name_without_config(loaded)
    if notes:  # which config stood in for the name given, what it lacks: every output that lists notes says it
        shape = dataclasses.replace(shape, assumptions=notes + shape.assumptions)
    return ResolvedModel(loaded, shape, offline, hub_weights)


def _quantized_name_without_config(loaded: LoadedConfig) -> tuple[str, ...]:
    """A note when the model's name says it is a quantized build (`...-FP8`, `-NVFP4`, `-AWQ`) but its config.json
    holds no `quantization_config` (ModelOpt keeps it in a separate `hf_quant_config.json`): the weights are then
    counted at the config's dtype, which overstates them; kvplan says so rather than guess the format."""
    from kvplan.core.config import text_config
    from kvplan.sources.catalog import QUANTIZED_SUFFIXES

    if loaded.weights_unknown or not isinstance(loaded.config, dict):
        return ()
    name = loaded.name.rsplit("/", 1)[-1].lower()
    suffix = next((s for s in QUANTIZED_SUFFIXES if name.endswith(s)), None)
    if suffix is None or "quantization_config" in loaded.config or "quantization_config" in text_config(loaded.config):
        return ()
    return (
        f"the name {loaded.name} says {suffix.lstrip('-').upper()} but its config.json has no quantization_config "
        "(ModelOpt checkpoints keep it in hf_quant_config.json): weights are counted at the config's dtype, which "
        "overstates them; pass the weights' size (--weights-bytes) for the budget",
    )


def _quantized(config: dict[str, Any]) -> bool:
    from kvplan.weights.tensors import language_model_config

    return bool(language_model_config(config).get("quantization_config") or config.get("quantization_config"))


def _measured_weights(loaded: LoadedConfig, offline: bool | None, hub_lookup: bool | None) -> int | None:
    from kvplan.weights import safetensors as safetensors_meta

    if loaded.source == "dict":
        return None
    return safetensors_meta.safetensors_weight_bytes(loaded, offline=offline, hub_lookup=hub_lookup) or None


def _analytic_weights(loaded: LoadedConfig, dtype: str) -> tuple[tuple[int | None, str | None], str | None]:
    """((bytes, "analytic") or (None, None), why unknown)."""
    from kvplan.weights.stored import weight_bytes
    from kvplan.weights.tensors import assumed_family

    if loaded.weights_unknown:  # a quantized build whose quantization is not known: its weights are not counted
        return (None, None), "the config is the base model's, and this quantized build's storage is not known"
    try:
        if assumed_family(loaded.config) is not None:  # an unknown layout (e.g. Llama 4 MoE) would be counted
            return (None, None), "no safetensors metadata, and no exact parameter count for this architecture"
        return (weight_bytes(loaded.config, int(DTYPE_BYTES[dtype])), "analytic"), None
    except READ_ERRORS as e:  # a config the count cannot read (`quantization_config: "4bit"`, `bits: "four"`,
        # a quant_method kvplan cannot price): weights are optional in an estimate, reported as unknown
        return (None, None), f"no safetensors metadata, and the parameter count cannot be priced: {e}"


def weights(loaded: LoadedConfig, dtype: str, *, offline: bool | None = None) -> tuple[int | None, str | None]:
    """Bytes of the weights and where the figure comes from (see `ResolvedModel.weights`)."""
    return resolve(loaded, offline=offline).weights(dtype)
