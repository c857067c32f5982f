"""From a Hugging Face config dict to a `ModelShape`: the caches each decoder layer holds.

One small reader per family, named by the family policy table (kvplan.core.families) and looked up by
`model_type`; fields are read through kvplan.core.config. The config is read as data (an `auto_map` is
ignored; nothing is executed). An unknown `model_type` with the usual fields is read as a llama-like decoder
and the assumption is recorded in `ModelShape.assumptions`. Pure Python: imports only kvplan.core and
kvplan.errors.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from kvplan.core import specs as L
from kvplan.core.config import (
    HEAD_KEYS,
    chatglm_kv_heads,
    falcon_kv_heads,
    falcon_new_decoder,
    head_dim,
    hidden_size,
    language_config,
    max_positions,
    model_dtype,
    num_experts,
    num_heads,
    num_kv_heads,
    num_layers,
    positive_int,
    sliding_window,
)
from kvplan.core.families import family_of
from kvplan.core.units import dtype_name
from kvplan.errors import ConfigError, UnsupportedArchitecture

# `ModelShape.features` entries: config facts that some engine stores differently (see the engine modules).
FALCON_NEW_DECODER = "falcon_new_decoder_architecture"  # Falcon-40B/180B grouped KV (transformers broadcasts it)
MOE = "moe"  # routed experts (vLLM picks its model runner by it)
QUANTIZED = "quantized"  # the config carries a `quantization_config` (quantized checkpoint)


@dataclass(frozen=True)
class ModelShape:
    """The cache-relevant shape of a language model.

    `layers[i]` is the tuple of caches decoder layer i holds (one for most models; two for layers that keep
    both attention K/V and a recurrent state). `dtype` is the model's dtype from the config (canonical name).
    `model_type` is the config's own spelling. `features` names config facts that an engine may store
    specially (e.g. FALCON_NEW_DECODER, MOE); the layer specs themselves stay engine-neutral.
    """

    model_type: str
    layers: tuple[tuple[L.Layer, ...], ...]
    dtype: str
    hidden_size: int
    num_attention_heads: int
    max_position_embeddings: int | None = None
    assumptions: tuple[str, ...] = field(default=())
    features: frozenset[str] = field(default=frozenset())
    architectures: tuple[str, ...] = field(default=())  # the config's `architectures` (engines choose kernels by it)

    @property
    def num_layers(self) -> int:
        return len(self.layers)

    def caches(self) -> list[L.Layer]:
        """Every cache of every layer, in layer order."""
        return [cache for layer in self.layers for cache in layer]


def attention(
    cfg: dict, kind: str = L.FULL, window: int | None = None, kv: int | None = None
) -> L.FullAttention | L.SlidingWindow | L.ChunkedLocal:
    """The attention spec of kind `kind` with the config's head shape (`kv` KV heads, default the config's)."""
    hd, heads = head_dim(cfg), num_kv_heads(cfg) if kv is None else kv
    if kind in (L.SLIDING, L.CHUNKED) and window is None:
        raise ConfigError(f"a {kind} layer needs a window size", hint="add sliding_window to config.json")
    if kind == L.SLIDING and window is not None:
        return L.SlidingWindow(heads, hd, hd, window)
    if kind == L.CHUNKED and window is not None:
        return L.ChunkedLocal(heads, hd, hd, window)
    return L.FullAttention(heads, hd, hd)


# ---------------------------------------------------------------- layer-type patterns

_TYPE_NAMES = {
    "full_attention": L.FULL,
    "attention": L.FULL,
    "global": L.FULL,
    "full": L.FULL,
    "sliding_attention": L.SLIDING,
    "sliding_window": L.SLIDING,
    "local": L.SLIDING,
    "sliding": L.SLIDING,
    "chunked_attention": L.CHUNKED,
    "linear_attention": L.STATE,
    "mamba": L.STATE,
    "mamba2": L.STATE,
    "conv": L.STATE,
    "moe": L.NONE,
    "mlp": L.NONE,
}


def _explicit_layer_types(cfg: dict, n: int) -> list[str] | None:
    types = cfg.get("layer_types")
    if types is None:
        return None
    if not isinstance(types, list) or len(types) != n:
        raise ConfigError(
            f"config `layer_types` must list {n} entries (one per layer)", hint="fix layer_types in config.json"
        )
    try:
        return [_TYPE_NAMES[str(t)] for t in types]
    except KeyError as exc:
        raise UnsupportedArchitecture(
            f"unknown layer type {exc.args[0]!r} in config `layer_types`",
            hint="kvplan knows: " + ", ".join(sorted(_TYPE_NAMES)),
        ) from None


def _window_or_error(cfg: dict, family: str) -> int:
    window = sliding_window(cfg)
    if window is None:
        raise ConfigError(
            f"{family} config has sliding layers but no `sliding_window`", hint="add sliding_window to config.json"
        )
    return window


def _attention_stack(cfg: dict, types: list[str]) -> tuple[tuple[L.Layer, ...], ...]:
    """Attention layers of the given kinds (full / sliding / chunked), sharing the config's head shape."""
    out: list[tuple[L.Layer, ...]] = []
    for kind in types:
        if kind == L.SLIDING:
            out.append((attention(cfg, L.SLIDING, _window_or_error(cfg, "this")),))
        elif kind == L.CHUNKED:
            out.append((attention(cfg, L.CHUNKED, positive_int(cfg, "attention_chunk_size")),))
        elif kind == L.FULL:
            out.append((attention(cfg),))
        elif kind == L.NONE:
            out.append((L.NoCache(),))
        else:
            raise UnsupportedArchitecture(
                f"layer type {kind} needs a family-specific reader", hint="report the model at kvplan's issue tracker"
            )
    return tuple(out)


# ---------------------------------------------------------------- families


def dense(cfg: dict) -> tuple[tuple[L.Layer, ...], ...]:
    """Llama-like decoders: explicit `layer_types`, else all sliding when `sliding_window` is set
    (mistral, mixtral, starcoder2, phi3), else all full attention."""
    n = num_layers(cfg)
    types = _explicit_layer_types(cfg, n)
    if types is None:
        types = [L.SLIDING if sliding_window(cfg) else L.FULL] * n
    return _attention_stack(cfg, types)


def qwen2(cfg: dict) -> tuple[tuple[L.Layer, ...], ...]:
    """Qwen2/Qwen3 (+MoE): `sliding_window` is used only when `use_sliding_window`, on layers >= max_window_layers."""
    n = num_layers(cfg)
    types = _explicit_layer_types(cfg, n)
    if types is None:
        if cfg.get("use_sliding_window") and sliding_window(cfg):
            start = int(cfg.get("max_window_layers") or 0)
            types = [L.SLIDING if i >= start else L.FULL for i in range(n)]
        else:
            types = [L.FULL] * n
    return _attention_stack(cfg, types)


def _every_nth_full(cfg: dict, period: int) -> list[str]:
    """Pattern "period-1 sliding layers, then one full layer" (Gemma 3, Cohere 2)."""
    return [L.FULL if (i + 1) % period == 0 else L.SLIDING for i in range(num_layers(cfg))]


def gemma2(cfg: dict) -> tuple[tuple[L.Layer, ...], ...]:
    """Gemma 2: even layers sliding, odd layers full (unless `layer_types` says otherwise)."""
    n = num_layers(cfg)
    types = _explicit_layer_types(cfg, n) or [L.SLIDING if i % 2 == 0 else L.FULL for i in range(n)]
    return _attention_stack(cfg, types)


def gemma3(cfg: dict) -> tuple[tuple[L.Layer, ...], ...]:
    """Gemma 3: `sliding_window_pattern` (default 6): five sliding layers then one full."""
    n = num_layers(cfg)
    period = int(cfg.get("sliding_window_pattern") or cfg.get("_sliding_window_pattern") or 6)
    types = _explicit_layer_types(cfg, n) or _every_nth_full(cfg, period)
    return _attention_stack(cfg, types)


def cohere2(cfg: dict) -> tuple[tuple[L.Layer, ...], ...]:
    """Cohere 2: `sliding_window_pattern` (default 4): three sliding layers then one full."""
    n = num_layers(cfg)
    types = _explicit_layer_types(cfg, n) or _every_nth_full(cfg, int(cfg.get("sliding_window_pattern") or 4))
    return _attention_stack(cfg, types)


def llama4(cfg: dict) -> tuple[tuple[L.Layer, ...], ...]:
    """Llama 4: chunked local attention on RoPE layers, full attention on the NoPE layers (every 4th by default)."""
    n = num_layers(cfg)
    types = _explicit_layer_types(cfg, n)
    if types is None:
        nope = cfg.get("no_rope_layers")
        if not nope:
            interval = int(cfg.get("no_rope_layer_interval") or 4)
            nope = [int((i + 1) % interval != 0) for i in range(n)]
        chunked = cfg.get("attention_chunk_size") is not None
        types = [L.CHUNKED if (use_rope and chunked) else L.FULL for use_rope in nope]
    return _attention_stack(cfg, types)


def gpt_oss(cfg: dict) -> tuple[tuple[L.Layer, ...], ...]:
    """gpt-oss: alternating sliding (128) and full layers, listed in `layer_types`."""
    n = num_layers(cfg)
    types = _explicit_layer_types(cfg, n) or [L.SLIDING if i % 2 == 0 else L.FULL for i in range(n)]
    return _attention_stack(cfg, types)


def falcon(cfg: dict) -> tuple[tuple[L.Layer, ...], ...]:
    """Falcon: `new_decoder_architecture` (Falcon-40B/180B, and every "RefinedWeb" config) has `num_kv_heads`
    KV heads (transformers broadcasts them to all query heads before caching: ModelShape.features records
    FALCON_NEW_DECODER for kvplan.engines.transformers); `multi_query` (Falcon-7B) caches one KV head;
    otherwise MHA."""
    layer = attention(cfg, kv=falcon_kv_heads(cfg))
    return tuple((layer,) for _ in range(num_layers(cfg)))


def gpt_bigcode(cfg: dict) -> tuple[tuple[L.Layer, ...], ...]:
    kv = 1 if cfg.get("multi_query", True) else num_heads(cfg)
    return tuple((attention(cfg, kv=kv),) for _ in range(num_layers(cfg)))


def chatglm(cfg: dict) -> tuple[tuple[L.Layer, ...], ...]:
    """ChatGLM/GLM-4 (remote code): `multi_query_group_num` KV heads of `kv_channels` when multi-query."""
    return tuple((attention(cfg, kv=chatglm_kv_heads(cfg)),) for _ in range(num_layers(cfg)))


def mla(cfg: dict) -> tuple[tuple[L.Layer, ...], ...]:
    """DeepSeek V2/V3, Kimi K2: latent of kv_lora_rank + qk_rope_head_dim per token and layer."""
    latent = L.MlaLatent(
        positive_int(cfg, "kv_lora_rank"),
        positive_int(cfg, "qk_rope_head_dim"),
        positive_int(cfg, "index_head_dim", default=0) if cfg.get("index_topk") else 0,
    )
    return tuple((latent,) for _ in range(num_layers(cfg)))


def _mamba1_state(cfg: dict) -> L.RecurrentState:
    inner = positive_int(cfg, "mamba_expand", "expand", default=2) * hidden_size(cfg)
    inner = positive_int(cfg, "intermediate_size", default=inner) if cfg.get("model_type") == "mamba" else inner
    state = positive_int(cfg, "mamba_d_state", "state_size", default=16)
    conv = positive_int(cfg, "mamba_d_conv", "conv_kernel", default=4)
    return L.RecurrentState("mamba", inner, conv, (inner, state), chunk_size=_chunk_size(cfg))


def _chunk_size(cfg: dict) -> int:
    """The Mamba SSD kernel's chunk (`mamba_chunk_size`, else `chunk_size`; 0 when the config has none)."""
    return positive_int(cfg, "mamba_chunk_size", "chunk_size", default=0)


def mamba(cfg: dict) -> tuple[tuple[L.Layer, ...], ...]:
    return tuple((_mamba1_state(cfg),) for _ in range(num_layers(cfg)))


def jamba(cfg: dict) -> tuple[tuple[L.Layer, ...], ...]:
    """Jamba: attention on layers where i % attn_layer_period == attn_layer_offset, Mamba elsewhere."""
    period = positive_int(cfg, "attn_layer_period", default=8)
    offset = int(cfg.get("attn_layer_offset", 4))
    state = _mamba1_state(cfg)
    return tuple((attention(cfg),) if i % period == offset else (state,) for i in range(num_layers(cfg)))


def _mamba2_state(cfg: dict) -> L.RecurrentState:
    heads = positive_int(cfg, "mamba_n_heads")
    d_head = positive_int(cfg, "mamba_d_head", "mamba_head_dim")
    inner = positive_int(cfg, "mamba_d_ssm", default=heads * d_head)
    groups = positive_int(cfg, "mamba_n_groups", default=1)
    state = positive_int(cfg, "mamba_d_state", default=128)
    conv_channels = inner + 2 * groups * state
    return L.RecurrentState(
        "mamba2",
        conv_channels,
        positive_int(cfg, "mamba_d_conv", default=4),
        (heads, d_head, state),
        n_groups=groups,
        group_state=state,
        chunk_size=_chunk_size(cfg),
    )


def mamba2(cfg: dict) -> tuple[tuple[L.Layer, ...], ...]:
    """Pure Mamba2 (`model_type` mamba2): num_heads x head_dim state heads, expand x hidden inner width."""
    heads, d_head = positive_int(cfg, "num_heads"), positive_int(cfg, "head_dim")
    inner = positive_int(cfg, "expand", default=2) * hidden_size(cfg)
    groups, state = positive_int(cfg, "n_groups", default=1), positive_int(cfg, "state_size", default=128)
    layer = L.RecurrentState(
        "mamba2",
        inner + 2 * groups * state,
        positive_int(cfg, "conv_kernel", default=4),
        (heads, d_head, state),
        n_groups=groups,
        group_state=state,
        chunk_size=_chunk_size(cfg),
    )
    return tuple((layer,) for _ in range(num_layers(cfg)))


def bamba(cfg: dict) -> tuple[tuple[L.Layer, ...], ...]:
    """Bamba-style Mamba2 hybrids: attention on `attn_layer_indices`, Mamba2 elsewhere."""
    attn = set(cfg.get("attn_layer_indices") or [])
    state = _mamba2_state(cfg)
    return tuple((attention(cfg),) if i in attn else (state,) for i in range(num_layers(cfg)))


def falcon_h1(cfg: dict) -> tuple[tuple[L.Layer, ...], ...]:
    """Falcon-H1: every layer runs attention and Mamba2 side by side and caches both."""
    return tuple((attention(cfg), _mamba2_state(cfg)) for _ in range(num_layers(cfg)))


def qwen3_next(cfg: dict) -> tuple[tuple[L.Layer, ...], ...]:
    """Qwen3-Next / Qwen3.5: gated DeltaNet layers with one full-attention layer every `full_attention_interval`."""
    n = num_layers(cfg)
    types = _explicit_layer_types(cfg, n)
    if types is None:
        interval = positive_int(cfg, "full_attention_interval", default=4)
        types = [L.FULL if (i + 1) % interval == 0 else L.STATE for i in range(n)]
    nk, dk = positive_int(cfg, "linear_num_key_heads"), positive_int(cfg, "linear_key_head_dim")
    nv, dv = positive_int(cfg, "linear_num_value_heads"), positive_int(cfg, "linear_value_head_dim")
    ssm_dtype = dtype_name(cfg["mamba_ssm_dtype"]) if cfg.get("mamba_ssm_dtype") else None
    delta = L.RecurrentState(
        "gated_deltanet",
        2 * nk * dk + nv * dv,
        positive_int(cfg, "linear_conv_kernel_dim", default=4),
        (nv, dk, dv),
        ssm_dtype=ssm_dtype,
    )
    return tuple((attention(cfg),) if t == L.FULL else (delta,) for t in types)


# ---------------------------------------------------------------- DeepSeek-V4

# transformers 5.24 configuration_deepseek_v4.py: `compress_ratios` entries map 0 / 4 / 128 to
# sliding_attention / compressed_sparse_attention / heavily_compressed_attention (_COMPRESS_RATIO_TO_LAYER_TYPE);
# vLLM 0.33.0 asserts the same two ratios (models/deepseek_v4/compressor.py:158).
_V4_TYPES = {"sliding_attention": 0, "compressed_sparse_attention": 4, "heavily_compressed_attention": 128}


def deepseek_v4_ratios(cfg: dict, n: int) -> list[int]:
    """Per-layer compress ratios of the `n` decoder layers. `compress_ratios` (the released configs) also lists
    the MTP layers after the decoder layers (vLLM 0.33.0 transformers_utils/deepseek_v4_utils.py:7 "MTP layers
    included"; transformers keeps the first num_hidden_layers, configuration_deepseek_v4.py:274); else
    `layer_types` with `compress_rates`; else transformers' default schedule (two HCA layers, then CSA / HCA
    alternating)."""
    ratios = cfg.get("compress_ratios")
    if ratios is not None:
        mtp = int(cfg.get("num_nextn_predict_layers") or 0)
        if not isinstance(ratios, list) or len(ratios) not in (n, n + mtp):
            raise ConfigError(
                f"config `compress_ratios` must list {n} entries (one per layer), or {n + mtp} with the MTP layers",
                hint="fix compress_ratios in config.json",
            )
        ratios = ratios[:n]
    else:
        types = cfg.get("layer_types")
        if types is None:
            hca, csa = "heavily_compressed_attention", "compressed_sparse_attention"
            types = [hca] * min(n, 2) + [csa if i % 2 else hca for i in range(max(n - 2, 0))]
        if not isinstance(types, list) or len(types) != n:
            raise ConfigError(f"config `layer_types` must list {n} entries", hint="fix layer_types in config.json")
        rates = {**_V4_TYPES, **(cfg.get("compress_rates") or {})}
        ratios = [rates.get(str(t), -1) for t in types]
    bad = sorted({r for r in ratios if r not in _V4_TYPES.values()}, key=str)
    if bad:
        raise UnsupportedArchitecture(
            f"DeepSeek-V4 compress ratio(s) {bad} are not ones transformers or vLLM implement (0, 4, 128)",
            hint="report the model at kvplan's issue tracker",
        )
    return [int(r) for r in ratios]


def deepseek_v4(cfg: dict) -> tuple[tuple[L.Layer, ...], ...]:
    """DeepSeek-V4: a shared-KV sliding ring on every layer; CSA layers (ratio 4) add compressed entries over
    overlapping windows and a lightning indexer's keys, HCA layers (ratio 128) compressed entries only
    (transformers 5.24 modeling_deepseek_v4.py DeepseekV4CSACache / DeepseekV4HCACache; vLLM 0.33.0
    models/deepseek_v4/attention.py:302 "Only C4A uses sparse attention and hence has indexer")."""
    n = num_layers(cfg)
    hd = positive_int(cfg, "head_dim")
    window = _window_or_error(cfg, "DeepSeek-V4")
    index_dim = positive_int(cfg, "index_head_dim")
    return tuple(
        (L.CompressedAttention(hd, window, r, overlap=r == 4, index_head_dim=index_dim if r == 4 else 0),)
        for r in deepseek_v4_ratios(cfg, n)
    )


# Shape readers by the names the family table uses (kvplan.core.families.Family.shape).
READERS: dict[str, Callable[[dict], tuple[tuple[L.Layer, ...], ...]]] = {
    "dense": dense,
    "qwen2": qwen2,
    "gemma2": gemma2,
    "gemma3": gemma3,
    "cohere2": cohere2,
    "llama4": llama4,
    "gpt_oss": gpt_oss,
    "falcon": falcon,
    "gpt_bigcode": gpt_bigcode,
    "chatglm": chatglm,
    "mla": mla,
    "mamba": mamba,
    "mamba2": mamba2,
    "jamba": jamba,
    "bamba": bamba,
    "falcon_h1": falcon_h1,
    "qwen3_next": qwen3_next,
    "deepseek_v4": deepseek_v4,
}


def model_shape(config: dict[str, Any]) -> ModelShape:
    """Read a raw config.json dict (nested multimodal configs resolve to the language model)."""
    if not isinstance(config, dict):
        raise ConfigError("config must be a JSON object", hint="pass the model's config.json")
    cfg = language_config(config)
    model_type = str(cfg.get("model_type") or "")
    assumptions: list[str] = []
    family = family_of(model_type)
    if family is None:
        if not model_type:
            raise ConfigError("config has no `model_type`", hint="add the model_type from the model's config.json")
        reader: Callable[[dict], tuple[tuple[L.Layer, ...], ...]] = dense
        assumptions.append(
            f"unknown model_type {model_type!r}: read as a llama-like decoder "
            f"({num_layers(cfg)} layers, {num_kv_heads(cfg)} KV heads of {head_dim(cfg)})"
        )
    else:
        reader = READERS[family.shape]
    dtype, note = model_dtype(cfg)
    if note:
        assumptions.append(note)
    layer_caches = reader(cfg)
    features = set()
    if family is not None and family.shape == "falcon" and falcon_new_decoder(cfg):
        features.add(FALCON_NEW_DECODER)
    if num_experts(cfg, default=0):
        features.add(MOE)
    if config.get("quantization_config") or cfg.get("quantization_config"):
        features.add(QUANTIZED)
    architectures = config.get("architectures") or cfg.get("architectures") or ()
    return ModelShape(
        model_type=model_type,
        layers=layer_caches,
        dtype=dtype,
        hidden_size=hidden_size(cfg),
        num_attention_heads=positive_int(cfg, *HEAD_KEYS, default=0),
        max_position_embeddings=max_positions(cfg),
        assumptions=tuple(assumptions),
        features=frozenset(features),
        architectures=tuple(str(a) for a in architectures) if isinstance(architectures, list) else (),
    )
