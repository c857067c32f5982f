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
    cache_signals,
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
from kvplan.errors import FIELD_ERRORS, ConfigError, Text, UnsupportedArchitecture

# `ModelShape.features` entries: config facts that some engine stores differently (see the engine modules).
FALCON_NEW_DECODER = "falcon_new_decoder_architecture"  # Falcon-40B/180B grouped KV (transformers broadcasts it)
MOE = "moe"  # routed experts (vLLM picks its model runner by it)
QUANTIZED = "quantized"  # the config carries a `quantization_config` (quantized checkpoint)
# MiMo-V2-Flash's `sliding_window_size`: the shape's window is transformers' (`sliding_window_size + 1`); vLLM's
# attention takes `sliding_window_size` itself as its window (kvplan.core.shapes.mimo_v2_flash_window)
WINDOW_IS_SIZE_PLUS_ONE = "window_is_sliding_window_size_plus_one"
# MiMo-V2-Flash configs naming a `sliding_window_size` whose `sliding_window` is absent or another number: llama.cpp's
# converter writes `sliding_window` as its n_swa (conversion/mimo.py:159), which the shape's window does not carry
MIMO_WINDOW_KEYS_DIFFER = "mimo_sliding_window_differs_from_sliding_window_size"
# MiMo-V2-Flash configs llama.cpp's converter would fail on or convert to other layers than the shape's
# (conversion/mimo.py:146-149 asserts the swa_* head sizes equal the full ones, :155 and :161 take the sliding
# layers from `hybrid_layer_pattern`, :159 reads `sliding_window`): `mimo_v2_flash_converter_issue` says which
MIMO_NOT_AS_CONVERTED = "mimo_not_as_llamacpp_converts_it"
# Gemma 4's `num_kv_shared_layers`: its NoCache layers read an earlier layer's K/V (SGLang still keeps pool rows
# for them, kvplan.engines.sglang says so)
KV_SHARED_LAYERS = "kv_shared_layers"
# The checkpoint's `quantization_config` asks for an FP8 KV cache in the terms SGLang's ModelOpt and Fp8 configs read
# (`checkpoint_fp8_kv`): SGLang's `--kv-cache-dtype auto` then runs fp8_e4m3 (kvplan.engines.sglang)
CHECKPOINT_FP8_KV = "checkpoint_fp8_kv"
# The config's `learnable_sink`: learnable attention sinks on DSA layers (HunYuan V4), which SGLang keeps in bfloat16
LEARNABLE_SINK = "learnable_sink"
# A DSA config (DeepSeek-V3.2, GLM-5.x) that lists `indexer_types`: llama.cpp's converter writes the list into the GGUF
# only then (conversion/glm.py:380-382), else its glm-dsa loader picks the full-indexer layers itself
# (kvplan.engines.llamacpp.llamacpp_indexer_full)
DSA_INDEXER_TYPES_LISTED = "dsa_indexer_types_listed"
# MiniMax-M3 configs whose sparse layers `layer_types` names where `sparse_attention_config.sparse_attention_freq` is
# missing or names others: transformers reads layer_types first, vLLM and SGLang the freq list only
# (kvplan.engines.base.refuse_m3_layer_types)
M3_SPARSE_FROM_LAYER_TYPES = "minimax_m3_sparse_layers_from_layer_types"
# MiniMax-M3 configs without `sparse_attention_config.sparse_disable_index_value`: SGLang's pool then keeps an index
# value beside each index key (kvplan.engines.sglang)
M3_INDEX_VALUES = "minimax_m3_index_values_not_disabled"
# MiniMax-M3 text configs of model_type minimax_m3_vl_text: transformers' MiniMaxM3VLTextConfig pops
# `sparse_attention_config` in __post_init__ (configuration_minimax_m3_vl.py:123 / :122 / :121 / :120 in transformers
# 5.16.1 / 5.19.0 / 5.20.2 / 5.24.0), so an engine that builds the config object through it and then reads that key
# finds none (kvplan.engines.base.refuse_m3_dropped_sparse_config)
M3_TEXT_DROPS_SPARSE_CONFIG = "minimax_m3_text_config_drops_sparse_attention_config"
# MiniMax-M3 configs whose sparse layers are not exactly those after `moe_layer_freq`'s leading run of dense (0)
# layers, or that have no `moe_layer_freq`: llama.cpp builds the indexer on layers >= that count
# (conversion/minimax.py:191-198, llama-model.cpp:2378-2379), so it would build other sparse layers
M3_SPARSE_NOT_AFTER_DENSE_LEAD = "minimax_m3_sparse_layers_not_after_moe_dense_lead"
# MiniMax-M3 configs whose index dim is `index_head_dim` because `sparse_attention_config` has no `sparse_index_dim`
# (llama.cpp's converter reads only the latter, conversion/minimax.py:186)
M3_INDEX_DIM_NOT_SPARSE_INDEX_DIM = "minimax_m3_index_dim_from_index_head_dim"
# MiniMax-M3 configs whose `sparse_attention_config.sparse_num_index_heads` is not `num_key_value_heads` (llama.cpp's
# MSA graph asserts one index head per GQA group, models/minimax-m3.cpp:382)
M3_INDEX_HEADS_NOT_KV_HEADS = "minimax_m3_index_heads_not_kv_heads"


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
    # the top-level config's model_type, a wrapper's where the language model sits in `text_config`: what an
    # engine's config loader builds the config by ("" when the shape was made without a config)
    config_model_type: str = ""

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


def indexer_layers(cfg: dict) -> list[bool]:
    """DSA models (DeepSeek V3.2, GLM-5): which layers run their own indexer (and cache its keys); the others
    reuse the previous indexer layer's top-k and cache no indexer keys.

    `indexer_types` ("full" / "shared") where the config lists it (transformers' GlmMoeDsaConfig and SGLang's
    `dsa_layer_skips_topk` read it first); else `index_topk_pattern` ("F" / "S" per layer); else layer i is a
    full one when max(i - index_skip_topk_offset + 1, 0) % index_topk_freq == 0 (defaults 2 and 1: every
    layer), the rule vLLM applies whatever `indexer_types` says (models/deepseek_v32/attention.py:166-177), so a
    config whose `indexer_types` disagrees with its freq/offset is refused."""
    n = num_layers(cfg)
    freq = positive_int(cfg, "index_topk_freq", default=1) if cfg.get("index_topk_freq") is not None else 1
    offset = 2 if cfg.get("index_skip_topk_offset") is None else int(cfg["index_skip_topk_offset"])
    scheduled = [max(i - offset + 1, 0) % freq == 0 for i in range(n)]
    pattern = cfg.get("index_topk_pattern")
    if pattern is not None:
        if not all(str(c) in ("F", "S") for c in pattern):
            raise ConfigError("config `index_topk_pattern` must be a string of F and S", hint="fix config.json")
        scheduled = [i >= len(pattern) or str(pattern[i]) != "S" for i in range(n)]
    types = cfg.get("indexer_types")
    if types is None:
        return scheduled
    if not isinstance(types, list) or len(types) != n or not set(map(str, types)) <= {"full", "shared"}:
        raise ConfigError(
            f"config `indexer_types` must list {n} entries of 'full' or 'shared'",
            hint="fix indexer_types in config.json",
        )
    listed = [t == "full" for t in types]
    if listed != scheduled:
        raise ConfigError(
            "config `indexer_types` disagrees with index_topk_freq / index_skip_topk_offset / index_topk_pattern "
            "(transformers and SGLang read the first, vLLM the others)",
            hint="fix config.json so that they agree",
        )
    return listed


def dsa(cfg: dict) -> tuple[tuple[L.Layer, ...], ...]:
    """DeepSeek Sparse Attention (DeepSeek V3.2, GLM-5.x): the MLA latent on every layer, plus the indexer's
    `index_head_dim` keys on the layers that run an indexer (`indexer_layers`)."""
    rank, rope = positive_int(cfg, "kv_lora_rank"), positive_int(cfg, "qk_rope_head_dim")
    keys = positive_int(cfg, "index_head_dim")
    return tuple((L.MlaLatent(rank, rope, keys if own else 0, sparse=True),) for own in indexer_layers(cfg))


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


# ---------------------------------------------------------------- Gemma 3n, Gemma 4, MiMo-V2-Flash (issue 12)
# Layers with their own head shapes per layer type, K/V head sizes that differ, and KV-sharing consumers.


def _kv_consumers(types: list[str], shared: int, family: str) -> list[bool]:
    """Which layers reuse another layer's K/V and cache nothing: the last `shared` layers (transformers 5.24
    `Gemma3nTextConfig.kv_sharing_modes`, configuration_gemma3n.py:206-231, and `Gemma4TextConfig.kv_sharing_modes`,
    configuration_gemma4.py:226-251: "reuse", a DummyLayer in the cache; vLLM 0.33 gives them a
    `kv_sharing_target_layer_name` and no KV-cache spec, v1/worker/gpu_model_runner.py:7096-7107). Each consumer
    reads the last earlier layer of its type, which must exist (transformers raises otherwise)."""
    n = len(types)
    if shared < 0 or shared >= n:
        raise ConfigError(
            f"{family} config has num_kv_shared_layers={shared} of {n} layers: no layer would produce the K/V",
            hint="num_kv_shared_layers must be smaller than num_hidden_layers",
        )
    first_shared = n - shared
    if shared and set(types[first_shared:]) - set(types[:first_shared]):
        raise ConfigError(
            f"{family} config shares K/V of a layer type no earlier layer produces",
            hint="check layer_types and num_kv_shared_layers in config.json",
        )
    return [i >= first_shared for i in range(n)]


def _gemma_types(cfg: dict, default_period: int) -> list[str]:
    """`layer_types`, else `default_period - 1` sliding layers then one full (Gemma 4: 6, Gemma 3n: 5)."""
    n = num_layers(cfg)
    return _explicit_layer_types(cfg, n) or [L.FULL if (i + 1) % default_period == 0 else L.SLIDING for i in range(n)]


def gemma3n(cfg: dict) -> tuple[tuple[L.Layer, ...], ...]:
    """Gemma 3n: Gemma 3's sliding/full layers (default four sliding then one full) whose last
    `num_kv_shared_layers` (default 15) reuse the K/V of the last earlier layer of their type and cache nothing
    (transformers 5.24 configuration_gemma3n.py:140-143 and :206-231; vLLM 0.33 gemma3n.py:311-399)."""
    types = _gemma_types(cfg, 5)
    consumers = _kv_consumers(types, int(cfg.get("num_kv_shared_layers") or 0), "gemma3n")
    stack = _attention_stack(cfg, types)
    return tuple((L.NoCache(),) if reuse else layer for layer, reuse in zip(stack, consumers, strict=True))


def gemma4_layer_heads(cfg: dict, kind: str) -> tuple[int, int]:
    """(KV heads, head size) of a Gemma 4 layer of `kind`. Full layers use `global_head_dim` (default 512) and,
    when `attention_k_eq_v` is set, `num_global_key_value_heads` (when given); sliding layers the config's own
    (transformers 5.24 configuration_gemma4.py:208-222, `per_layer_config`, which vLLM 0.33 gemma4.py:578-580
    reads too)."""
    if kind != L.FULL:
        return num_kv_heads(cfg), head_dim(cfg)
    heads = num_kv_heads(cfg)
    if cfg.get("attention_k_eq_v", False) and cfg.get("num_global_key_value_heads") is not None:
        heads = positive_int(cfg, "num_global_key_value_heads")
    return heads, positive_int(cfg, "global_head_dim", default=512)


def gemma4_layers(cfg: dict) -> list[tuple[str, bool]]:
    """(kind, reuses another layer's K/V) of each Gemma 4 layer: `layer_types` (default five sliding then one
    full), the last layer always full (transformers forces it, configuration_gemma4.py:195-199), the last
    `num_kv_shared_layers` consumers. The weights layout (kvplan.weights.tensors) reads the same list."""
    types = _gemma_types(cfg, 6)
    types[-1] = L.FULL
    consumers = _kv_consumers(types, int(cfg.get("num_kv_shared_layers") or 0), "gemma4")
    return list(zip(types, consumers, strict=True))


def gemma4(cfg: dict) -> tuple[tuple[L.Layer, ...], ...]:
    """Gemma 4: sliding and full layers with their own KV heads and head sizes (`gemma4_layer_heads`), the last
    layer always full; `use_bidirectional_attention: "all"` makes the window w // 2 + 1 (configuration_gemma4.py:
    184-186); the last `num_kv_shared_layers` layers cache nothing. Full layers with `attention_k_eq_v` have no v_proj, but K and V
    are still two tensors in every engine kvplan checked: transformers caches `v_norm(k_proj(x))` beside the
    normed, rotated K (modeling_gemma4.py:1218-1228); vLLM loads k_proj into both the K and V slots of qkv_proj
    and writes both halves of the page (gemma4.py:89-118, :536-551)."""
    layers = gemma4_layers(cfg)
    window = _window_or_error(cfg, "gemma4") if any(kind == L.SLIDING for kind, _ in layers) else 0
    if cfg.get("use_bidirectional_attention") == "all":
        window = window // 2 + 1
    out: list[tuple[L.Layer, ...]] = []
    for kind, reuse in layers:
        heads, size = gemma4_layer_heads(cfg, kind)
        if reuse:
            out.append((L.NoCache(),))
        elif kind == L.SLIDING:
            out.append((L.SlidingWindow(heads, size, size, window),))
        elif kind == L.FULL:
            out.append((L.FullAttention(heads, size, size),))
        else:
            raise UnsupportedArchitecture(f"gemma4 layer type {kind} is not one kvplan knows")
    return tuple(out)


def mimo_v2_flash_window(cfg: dict) -> int:
    """The sliding window as transformers 5.24 reads it: `sliding_window_size + 1` when the config names one (the
    reference SGLang code attends to that many earlier tokens plus the query; configuration_mimo_v2_flash.py:
    131-132), else `sliding_window` (default 129). vLLM 0.33 gives its attention `sliding_window_size` itself
    (mimo_v2.py:416, :318) and SGLang 0.5.23 likewise (models/mimo_v2.py:891)."""
    if cfg.get("sliding_window_size") is not None:
        return positive_int(cfg, "sliding_window_size") + 1
    return positive_int(cfg, "sliding_window", default=129)


def mimo_v2_flash(cfg: dict) -> tuple[tuple[L.Layer, ...], ...]:
    """MiMo-V2-Flash: full and sliding layers with K heads of `head_dim` and V heads of `v_head_dim`.

    Layer kinds: `layer_types`, else `hybrid_layer_pattern` (1 = sliding; vLLM 0.33 mimo_v2.py:499-500, SGLang
    0.5.23 models/mimo_v2.py:1015-1016), else transformers' default (full on layer 0 and every 6th,
    configuration_mimo_v2_flash.py:113-117). Sliding layers: `swa_num_key_value_heads`, `swa_head_dim`,
    `swa_v_head_dim` (vLLM mimo_v2.py:409-416), else what transformers builds: twice the KV heads, the same head
    sizes (modeling_mimo_v2_flash.py:341-357)."""
    types = mimo_v2_flash_kinds(cfg)
    kv, k_dim = num_kv_heads(cfg), head_dim(cfg)
    v_dim = positive_int(cfg, "v_head_dim", default=k_dim)
    swa_kv, swa_k, swa_v = mimo_v2_flash_swa_heads(cfg)
    window = mimo_v2_flash_window(cfg)
    full = L.FullAttention(kv, k_dim, v_dim)
    sliding = L.SlidingWindow(swa_kv, swa_k, swa_v, window)
    return tuple((sliding if kind == L.SLIDING else full,) for kind in types)


def mimo_v2_flash_swa_heads(cfg: dict) -> tuple[int, int, int]:
    """(KV heads, K head size, V head size) of MiMo-V2-Flash's sliding layers (see `mimo_v2_flash`)."""
    kv, k_dim = num_kv_heads(cfg), head_dim(cfg)
    v_dim = positive_int(cfg, "v_head_dim", default=k_dim)
    swa_kv = positive_int(cfg, "swa_num_key_value_heads", default=2 * kv)
    swa_k = positive_int(cfg, "swa_head_dim", default=k_dim)
    swa_v = positive_int(cfg, "swa_v_head_dim", default=v_dim if cfg.get("swa_head_dim") is None else swa_k)
    return swa_kv, swa_k, swa_v


def mimo_v2_flash_kinds(cfg: dict) -> list[str]:
    """Full or sliding, per MiMo-V2-Flash layer (see `mimo_v2_flash`); the weights layout reads it too."""
    n = num_layers(cfg)
    types = _explicit_layer_types(cfg, n)
    if types is None:
        pattern = cfg.get("hybrid_layer_pattern")
        if pattern is not None:
            if not isinstance(pattern, list) or len(pattern) != n:
                raise ConfigError(
                    f"config `hybrid_layer_pattern` must list {n} entries (one per layer)",
                    hint="fix hybrid_layer_pattern in config.json",
                )
            types = [L.SLIDING if int(p) == 1 else L.FULL for p in pattern]
        else:
            types = [L.FULL if i == 0 or (i + 1) % 6 == 0 else L.SLIDING for i in range(n)]
    for kind in types:
        if kind not in (L.FULL, L.SLIDING):
            raise UnsupportedArchitecture(f"mimo_v2_flash layer type {kind} is not one kvplan knows")
    return types


def mimo_v2_flash_converter_issue(cfg: dict) -> str | None:
    """Why llama.cpp's converter (conversion/mimo.py at ggml-org/llama.cpp@0c1e57098) would not build the layers
    `mimo_v2_flash_kinds` reads from this config, or None."""
    for swa, full in (("swa_head_dim", "head_dim"), ("swa_v_head_dim", "v_head_dim")):
        if swa in cfg and cfg.get(swa) != cfg.get(full):
            return f"its {swa} differs from {full} (conversion/mimo.py:146-149 asserts they are equal)"
    pattern = cfg.get("hybrid_layer_pattern")
    if not isinstance(pattern, list):
        return (
            "it has no hybrid_layer_pattern, which the converter reads the sliding layers from (conversion/mimo.py:155)"
        )
    if cfg.get("sliding_window") is None:
        return "it has no sliding_window, which the converter writes as the window (conversion/mimo.py:159)"
    by_pattern = [L.SLIDING if int(p) == 1 else L.FULL for p in pattern]
    if mimo_v2_flash_kinds(cfg) != by_pattern:
        return (
            "its layer_types name other sliding layers than hybrid_layer_pattern, which the converter writes "
            "(conversion/mimo.py:155, :161)"
        )
    return None


# ---------------------------------------------------------------- Mamba2 / short-conv hybrids (issue 12)
# Nemotron-H, Zamba2, LFM2 and Granite-4 (granitemoehybrid): each reads its own layer list; the Mamba2 state
# follows transformers 5.24 (`NemotronHMamba2Mixer`, `Zamba2MambaMixer`, `GraniteMoeHybridMambaLayer`), vLLM
# 0.33 (`MambaStateShapeCalculator.mamba2_state_shape` / `short_conv_state_shape`, mamba_utils.py:186-257)
# and SGLang 0.5.23 (`Mamba2StateShape.create`, configs/mamba_utils.py).

# Nemotron-H layer kinds, as `hybrid_override_pattern` characters and as `layers_block_type` names (both the
# names transformers 5.24 writes and the legacy ones it remaps: configuration_nemotron_h.py `_pattern_to_list`).
_NEMOTRON_H_KINDS = {
    "M": L.STATE,
    "*": L.FULL,
    "-": L.NONE,
    "E": L.NONE,
    "mamba": L.STATE,
    "linear_attention": L.STATE,
    "attention": L.FULL,
    "full_attention": L.FULL,
    "mlp": L.NONE,
    "moe": L.NONE,
}


def nemotron_h_layer_kinds(cfg: dict) -> list[str]:
    """Nemotron-H's layer kinds: `layers_block_type` (a list, which wins, as in transformers' NemotronHConfig),
    else `hybrid_override_pattern` (M Mamba2, * attention, - MLP, E MoE: only M and * cache). The number of
    layers is the list's length (`num_hidden_layers`, where a config has it, is ignored as transformers does)."""
    listed = cfg.get("layers_block_type")
    pattern = listed if listed is not None else cfg.get("hybrid_override_pattern")
    if listed is not None and not isinstance(listed, list):
        raise ConfigError("config `layers_block_type` must be a list", hint="fix layers_block_type in config.json")
    if not pattern or not isinstance(pattern, (list, str)):
        raise ConfigError(
            "nemotron_h config has no `layers_block_type` or `hybrid_override_pattern`",
            hint="pass the model's real config.json",
        )
    unknown = sorted({str(t) for t in pattern if str(t) not in _NEMOTRON_H_KINDS})
    if unknown:
        raise UnsupportedArchitecture(
            f"unknown nemotron_h layer type(s) {', '.join(map(repr, unknown))}",
            hint="kvplan knows: " + ", ".join(_NEMOTRON_H_KINDS),
        )
    return [_NEMOTRON_H_KINDS[str(t)] for t in pattern]


def _hybrid_mamba2(
    cfg: dict,
    heads_key: str,
    head_dim_key: str,
    groups_key: str,
    state_key: str,
    conv_key: str,
    inner: int,
    ssm_dtype: str | None = None,
) -> L.RecurrentState:
    """A Mamba2 mixer's state: conv over `inner + 2 x groups x state` channels, SSM (heads, head_dim, state);
    `ssm_dtype`, the SSM state's own dtype where the family's config sets one that an engine reads."""
    heads = positive_int(cfg, heads_key)
    d_head = inner // heads if cfg.get(head_dim_key) in (None, "auto") else positive_int(cfg, head_dim_key)
    groups, state = positive_int(cfg, groups_key), positive_int(cfg, state_key)
    return L.RecurrentState(
        "mamba2",
        inner + 2 * groups * state,
        positive_int(cfg, conv_key),
        (heads, d_head, state),
        n_groups=groups,
        group_state=state,
        chunk_size=_chunk_size(cfg),
        ssm_dtype=ssm_dtype,
    )


def nemotron_h(cfg: dict) -> tuple[tuple[L.Layer, ...], ...]:
    """Nemotron-H / Nemotron 3: Mamba2 layers (mamba_num_heads x mamba_head_dim, n_groups, ssm_state_size,
    conv_kernel; the SSM state in `mamba_ssm_cache_dtype`, which vLLM reads: models/config.py:812-838),
    attention layers (num_key_value_heads x head_dim) and MLP / MoE layers that cache nothing."""
    kinds = nemotron_h_layer_kinds(cfg)
    inner = positive_int(cfg, "mamba_num_heads") * positive_int(cfg, "mamba_head_dim")
    ssm_dtype = cfg.get("mamba_ssm_cache_dtype")
    state = _hybrid_mamba2(
        cfg,
        "mamba_num_heads",
        "mamba_head_dim",
        "n_groups",
        "ssm_state_size",
        "conv_kernel",
        inner,
        dtype_name(ssm_dtype) if ssm_dtype else None,
    )
    out: list[tuple[L.Layer, ...]] = []
    for kind in kinds:
        out.append((state,) if kind == L.STATE else (attention(cfg),) if kind == L.FULL else (L.NoCache(),))
    return tuple(out)


def zamba2_layer_types(cfg: dict) -> list[str]:
    """Zamba2's `layers_block_type`: "mamba" / "linear_attention" (Mamba2) or "hybrid" (the shared attention
    block, then Mamba2)."""
    types = cfg.get("layers_block_type")
    if not isinstance(types, list) or not types:
        raise ConfigError("zamba2 config has no `layers_block_type` list", hint="pass the model's real config.json")
    names = {"mamba": "mamba", "linear_attention": "mamba", "hybrid": "hybrid"}
    unknown = sorted({str(t) for t in types if str(t) not in names})
    if unknown:
        raise UnsupportedArchitecture(
            f"unknown zamba2 layer type(s) {', '.join(map(repr, unknown))}", hint="kvplan knows: mamba, hybrid"
        )
    return [names[str(t)] for t in types]


def zamba2(cfg: dict) -> tuple[tuple[L.Layer, ...], ...]:
    """Zamba2: Mamba2 in every layer; "hybrid" layers also run the shared attention block, whose weights are
    shared but whose K/V are cached per hybrid layer (transformers' LinearAttentionAndFullAttentionLayer, vLLM
    models/zamba2.py:181-204). transformers' Zamba2Config derives the attention head size (2 x hidden /
    heads) and the Mamba head size (mamba_expand x hidden / n_mamba_heads) and ignores the config's own. KV heads
    are `num_key_value_heads` (default: the attention heads), as transformers caches them; vLLM's Zamba2Attention
    caches `num_attention_heads` (zamba2.py:195-200): the two agree unless a config sets fewer KV heads."""
    hidden, heads = hidden_size(cfg), num_heads(cfg)
    inner = positive_int(cfg, "mamba_expand") * hidden
    state = _hybrid_mamba2(cfg, "n_mamba_heads", "_derived", "mamba_ngroups", "mamba_d_state", "mamba_d_conv", inner)
    hd = 2 * hidden // heads
    attn = L.FullAttention(num_kv_heads(cfg), hd, hd)
    return tuple((attn, state) if t == "hybrid" else (state,) for t in zamba2_layer_types(cfg))


def lfm2(cfg: dict) -> tuple[tuple[L.Layer, ...], ...]:
    """LFM2: short-convolution layers ("conv": a depthwise conv over hidden_size channels of `conv_L_cache`
    taps, no SSM state: transformers Lfm2ShortConv, vLLM short_conv_state_shape, SGLang configs/lfm2.py) and
    full-attention layers, by `layer_types` (else `full_attn_idxs`, else all attention, as Lfm2Config)."""
    n = num_layers(cfg)
    types = cfg.get("layer_types")
    if types is None:
        full = cfg.get("full_attn_idxs")
        full = set(range(n)) if full is None else set(full)
        types = ["full_attention" if i in full else "conv" for i in range(n)]
    conv = L.RecurrentState("short_conv", hidden_size(cfg), positive_int(cfg, "conv_L_cache"))
    out: list[tuple[L.Layer, ...]] = []
    for t in types:
        if t in ("conv", "short_conv"):
            out.append((conv,))
        elif t == "full_attention":
            out.append((attention(cfg),))
        else:
            raise UnsupportedArchitecture(f"unknown lfm2 layer type {t!r}", hint="kvplan knows: conv, full_attention")
    return tuple(out)


def granitemoehybrid(cfg: dict) -> tuple[tuple[L.Layer, ...], ...]:
    """Granite 4 (granitemoehybrid): Mamba2 or attention per `layer_types` ("mamba" / "linear_attention",
    "attention" / "full_attention"; all Mamba2 when absent, as GraniteMoeHybridConfig). The Mamba head size
    `mamba_d_head` "auto" is mamba_expand x hidden / mamba_n_heads."""
    n = num_layers(cfg)
    types = cfg.get("layer_types") or ["mamba"] * n
    inner = positive_int(cfg, "mamba_expand") * hidden_size(cfg)
    state = _hybrid_mamba2(
        cfg, "mamba_n_heads", "mamba_d_head", "mamba_n_groups", "mamba_d_state", "mamba_d_conv", inner
    )
    names = {"mamba": L.STATE, "linear_attention": L.STATE, "attention": L.FULL, "full_attention": L.FULL}
    unknown = sorted({str(t) for t in types if str(t) not in names})
    if unknown:
        raise UnsupportedArchitecture(
            f"unknown granitemoehybrid layer type(s) {', '.join(map(repr, unknown))}",
            hint="kvplan knows: " + ", ".join(names),
        )
    return tuple((state,) if names[str(t)] == L.STATE else (attention(cfg),) for t in types)


def qwen3_vl(cfg: dict) -> tuple[tuple[L.Layer, ...], ...]:
    """Qwen3-VL text towers (dense and MoE): full attention on every layer. transformers 5.24's
    modeling_qwen3_vl.py / modeling_qwen3_vl_moe.py have no sliding-window path (Qwen3VLMoeTextConfig sets
    `sliding_window = None`), so a `sliding_window` or `use_sliding_window` in the config changes nothing."""
    return tuple((attention(cfg),) for _ in range(num_layers(cfg)))


# ---------------------------------------------------------------- Kimi Linear / Kimi K3, MiniMax (issue 12)


def kimi_linear_kinds(cfg: dict) -> list[str]:
    """Kimi Linear's layer kinds: `linear_attn_config`'s 1-indexed `kda_layers` / `full_attn_layers` (the released
    checkpoints, read so by transformers' KimiLinearConfig, vLLM's kimi_k3 `is_kda_layer` and SGLang's
    configs/kimi_linear.py:158-162), else `layer_types`, else transformers' default (full on layers 4, 8, ...)."""
    n = num_layers(cfg)
    linear = cfg.get("linear_attn_config")
    if isinstance(linear, dict) and linear.get("kda_layers") is not None:
        kda = {int(i) - 1 for i in linear["kda_layers"]}
        full = {int(i) - 1 for i in linear.get("full_attn_layers") or ()}
        if kda & full or not all(0 <= i < n for i in kda | full):
            raise ConfigError(
                f"`linear_attn_config` kda_layers / full_attn_layers must be distinct layer numbers from 1 to {n}",
                hint="fix linear_attn_config in config.json",
            )
        # vLLM and SGLang run every layer that is not a KDA layer as MLA (full attention)
        return [L.STATE if i in kda else L.FULL for i in range(n)]
    types = _explicit_layer_types(cfg, n)
    if types is not None:
        return types
    return [L.FULL if i and i % 4 == 0 else L.STATE for i in range(n)]


def kda_state(cfg: dict) -> L.RecurrentState:
    """A KDA layer's state: a short convolution over q, k and v (3 x heads x head_dim channels) and a
    heads x head_dim x head_dim recurrent state (vLLM mamba_utils.py:296-319 `kda_state_shape`, SGLang
    configs/mamba_utils.py:323-367, transformers modeling_kimi_linear.py:592 conv_dim and :709 the fp32 state)."""
    raw = cfg.get("linear_attn_config")
    linear: dict[str, Any] = raw if isinstance(raw, dict) else {}
    heads = positive_int(linear, "num_heads", default=positive_int(cfg, "linear_num_heads"))
    dim = positive_int(linear, "head_dim", default=positive_int(cfg, "linear_head_dim"))
    kernel = positive_int(linear, "short_conv_kernel_size", default=positive_int(cfg, "linear_conv_kernel_dim"))
    bound = linear.get("gate_lower_bound")
    return L.RecurrentState(
        "kda",
        3 * heads * dim,
        kernel,
        (heads, dim, dim),
        gate_lower_bound=float(bound) if isinstance(bound, (int, float)) else None,
    )


def kimi_linear(cfg: dict) -> tuple[tuple[L.Layer, ...], ...]:
    """Kimi Linear / Kimi K3 (`kimi_linear` text config): KDA layers and MLA layers (latent kv_lora_rank +
    qk_rope_head_dim per token: transformers caches kv_nope and k_rot, modeling_kimi_linear.py:288-294; vLLM
    kimi_k3/nvidia/mla.py:160 and :421-437 head_size kv_lora_rank + qk_rope_head_dim)."""
    latent = L.MlaLatent(positive_int(cfg, "kv_lora_rank"), positive_int(cfg, "qk_rope_head_dim"))
    state = kda_state(cfg)
    return tuple((latent,) if t == L.FULL else (state,) for t in kimi_linear_kinds(cfg))


def minimax_m2(cfg: dict) -> tuple[tuple[L.Layer, ...], ...]:
    """MiniMax-M2 / M2.5 / M2.7: GQA full attention on every layer (transformers MiniMaxM2Attention
    modeling_minimax_m2.py:288-291, vLLM minimax_m2.py:204-208, SGLang minimax_m2.py:730 build one standard
    attention per layer and read no `attn_type_list`). A list with a 0 (MiniMax-01's lightning layers) would be
    another model: refused, and so is a `sparse_attention_config`: MiniMax-M3's sparse attention, whose indexer
    keeps a key cache of its own, which no M2 code builds (transformers configuration/modeling_minimax_m2.py,
    vLLM and SGLang minimax_m2.py read no such key). M3 wrappers may say minimax_m2 in their text_config
    (sglang-0.5.23 srt/configs/minimax_vl.py:15-16), yet transformers 5.24 (MiniMaxM3VLConfig.sub_configs_defaults,
    configuration_minimax_m3_vl.py:188-191: the text class fixed, the dict's model_type unread), vLLM
    (transformers_utils/configs/minimax_m3.py:136-143) and the MiniMaxM3Sparse* models build M3 from it: reading
    it as M2 would drop the index keys."""
    sparse = cfg.get("sparse_attention_config")
    if isinstance(sparse, dict) and sparse.get("use_sparse_attention", True) is not False:
        raise UnsupportedArchitecture(
            "minimax_m2 config has MiniMax-M3's `sparse_attention_config`: MiniMax-M2's modelling code "
            "(transformers, vLLM, SGLang) builds no sparse indexer, and read as M2 its index-key cache would be lost",
            hint="if this is MiniMax-M3, set the text config's model_type to minimax_m3_vl_text (or pass the "
            "published MiniMaxAI/MiniMax-M3 config)",
        )
    types = cfg.get("attn_type_list")
    if types is not None and any(int(t) != 1 for t in types):
        raise UnsupportedArchitecture(
            "minimax_m2 config has `attn_type_list` entries other than 1 (softmax attention); MiniMax-M2's "
            "modelling code (transformers, vLLM, SGLang) has no other layer kind",
            hint="report the model at kvplan's issue tracker",
        )
    return tuple((attention(cfg),) for _ in range(num_layers(cfg)))


def minimax(cfg: dict) -> tuple[tuple[L.Layer, ...], ...]:
    """MiniMax-Text-01 / M1 (`minimax`): lightning (linear) attention layers, whose state is one
    heads x head_dim x head_dim matrix per sequence and no convolution (transformers modeling_minimax.py:203-210,
    kept in `MiniMaxCache.linear_cache`, outside `cache.layers`), and full GQA attention layers, by `layer_types`
    (else `attn_type_list`: 0 lightning, 1 softmax)."""
    n = num_layers(cfg)
    types = _explicit_layer_types(cfg, n)
    if types is None:
        listed = cfg.get("attn_type_list")
        if not isinstance(listed, list) or len(listed) != n:
            raise ConfigError(
                f"minimax config needs `layer_types` or `attn_type_list` with {n} entries",
                hint="add layer_types to config.json",
            )
        types = [L.FULL if int(t) == 1 else L.STATE for t in listed]
    heads = positive_int(cfg, *HEAD_KEYS)
    dim = head_dim(cfg)
    state = L.RecurrentState("lightning", 0, 1, (heads, dim, dim))
    return tuple((attention(cfg),) if t == L.FULL else (state,) for t in types)


def minimax_m3_sparse_layers(cfg: dict) -> list[bool]:
    """Which layers run MSA sparse attention, as transformers 5.24's MiniMaxM3VLTextConfig reads them
    (configuration_minimax_m3_vl.py __post_init__): `layer_types` ("minimax_m3_sparse" / "full_attention") when
    given, else `sparse_attention_config.sparse_attention_freq` (1: sparse), else no sparse layer."""
    n = num_layers(cfg)
    types = cfg.get("layer_types")
    sparse = cfg.get("sparse_attention_config")
    freq = sparse.get("sparse_attention_freq") if isinstance(sparse, dict) else None
    if types is not None:
        names = {"minimax_m3_sparse": True, "full_attention": False}
        if not isinstance(types, list) or len(types) != n:
            raise ConfigError(
                f"config `layer_types` must list {n} entries (one per layer)", hint="fix layer_types in config.json"
            )
        unknown = sorted({str(t) for t in types if str(t) not in names})
        if unknown:
            raise UnsupportedArchitecture(
                f"unknown minimax_m3 layer type(s) {', '.join(map(repr, unknown))} in config `layer_types`",
                hint="transformers' MiniMax-M3 knows: " + ", ".join(names),
            )
        return [names[str(t)] for t in types]
    if freq is None:
        return [False] * n
    if not isinstance(freq, list) or len(freq) != n:
        raise ConfigError(
            f"`sparse_attention_config.sparse_attention_freq` must list {n} entries (one per layer)",
            hint="fix sparse_attention_config in config.json",
        )
    return [bool(f) for f in freq]


def minimax_m3(cfg: dict) -> tuple[tuple[L.Layer, ...], ...]:
    """MiniMax-M3 (and transformers' minimax_m3_vl wrapper): GQA attention K/V on every layer
    (num_key_value_heads x head_dim each: transformers 5.24 modeling_minimax_m3_vl.py:422-424 k_proj / v_proj,
    :452 `cache.update`), and on the MSA sparse layers (`minimax_m3_sparse_layers`) the lightning indexer's own
    key cache: one `index_head_dim` key per token shared by the index heads (:549 k_proj, :569-570 `update_index`
    into `MiniMaxM3VLSparseCacheLayer.idx_keys` [batch, 1, tokens, dim], :57-67), in the model dtype. The index
    dim is `sparse_attention_config.sparse_index_dim` where given, else `index_head_dim` (the config's
    __post_init__ lets the former override). No layer has a window."""
    sparse = cfg.get("sparse_attention_config")
    if isinstance(sparse, dict) and "sparse_index_dim" in sparse:
        index_dim = positive_int(sparse, "sparse_index_dim")
    else:
        index_dim = positive_int(cfg, "index_head_dim")
    layers = minimax_m3_sparse_layers(cfg)
    disabled = sparse.get("sparse_disable_index_value") if isinstance(sparse, dict) else None
    if isinstance(disabled, list) and any(s and not (i < len(disabled) and disabled[i]) for i, s in enumerate(layers)):
        # transformers' indexer has no value path (modeling_minimax_m3_vl.py:520-522), vLLM never builds one
        # (models/minimax_m3/nvidia/model.py:402-405): a sparse layer with index values is another model
        raise UnsupportedArchitecture(
            "minimax_m3 config enables the index-value path (`sparse_disable_index_value` 0) on a sparse layer; "
            "transformers 5.24 and vLLM 0.33 build MiniMax-M3's indexer with index keys only",
            hint="report the model at kvplan's issue tracker",
        )
    full = attention(cfg)
    keys = L.IndexKeys(index_dim)
    return tuple((full, keys) if s else (full,) for s in layers)


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
    "dsa": dsa,
    "mamba": mamba,
    "mamba2": mamba2,
    "jamba": jamba,
    "bamba": bamba,
    "falcon_h1": falcon_h1,
    "qwen3_next": qwen3_next,
    "gemma3n": gemma3n,
    "gemma4": gemma4,
    "mimo_v2_flash": mimo_v2_flash,
    "nemotron_h": nemotron_h,
    "zamba2": zamba2,
    "lfm2": lfm2,
    "granitemoehybrid": granitemoehybrid,
    "qwen3_vl": qwen3_vl,
    "kimi_linear": kimi_linear,
    "minimax_m2": minimax_m2,
    "minimax": minimax,
    "minimax_m3": minimax_m3,
    "deepseek_v4": deepseek_v4,
}


# ---------------------------------------------------------------- attention-only families of 2025-26 (issue 12)


def smollm3(cfg: dict[str, Any]) -> tuple[tuple[L.Layer, ...], ...]:
    """SmolLM3: every layer caches K/V, NoPE layers included. Without `layer_types`, SmolLM3Config derives them:
    a layer is sliding when `use_sliding_window`, `sliding_window` is set and the layer is a NoPE one
    (`no_rope_layers[i]` == 0, default every `no_rope_layer_interval`-th layer); transformers' cache follows
    `layer_types` (configuration_smollm3.py __post_init__)."""
    n = num_layers(cfg)
    types = _explicit_layer_types(cfg, n)
    if types is None:
        interval = positive_int(cfg, "no_rope_layer_interval", default=4)
        rope = cfg.get("no_rope_layers") or [int((i + 1) % interval != 0) for i in range(n)]
        sliding = bool(cfg.get("use_sliding_window")) and sliding_window(cfg) is not None
        types = [L.SLIDING if sliding and not has_rope else L.FULL for has_rope in rope]
    return _attention_stack(cfg, types)


READERS["smollm3"] = smollm3


def olmo3(cfg: dict[str, Any]) -> tuple[tuple[L.Layer, ...], ...]:
    """OLMo 3: `layer_types`, else three sliding layers then one full (Olmo3Config.__post_init__, transformers 5.24
    configuration_olmo3.py:92-95, and 4.57.6, the release llama.cpp's converter pins, :212-215: the converter reads
    the config through AutoConfig, conversion/base.py:1280); `sliding_window` defaults to 4096 (the family's
    defaults). Read as a plain dense decoder, a config without `layer_types` would be sliding on every layer."""
    n = num_layers(cfg)
    return _attention_stack(cfg, _explicit_layer_types(cfg, n) or _every_nth_full(cfg, 4))


READERS["olmo3"] = olmo3


# The start of the note an unknown model_type read as a llama-like decoder carries (tests and outputs find it by it).
def checkpoint_fp8_kv(quantization: object) -> bool:
    """Whether a `quantization_config` asks for an FP8 KV cache as SGLang 0.5.23 reads one (its quant config's
    `kv_cache_quant_algo` "FP8", which `--kv-cache-dtype auto` follows: srt/mem_cache/kv_cache_dtype.py:49-57):
    - `quant_method` "fp8" (Fp8Config): `kv_cache_quant_algo` FP8 (srt/layers/quantization/fp8.py:366-367);
    - `quant_method` "modelopt", flat format, a `quant_algo` SGLang maps to ModelOptFp8Config (FP8), ModelOptFp4Config
      (an FP4 / NVFP4 algo) or ModelOptMixedPrecisionConfig (MIXED_PRECISION with NVFP4 layers; without them it is
      w4afp8, which reads no KV algo) (srt/configs/model_config.py:1855-1869): a `kv_cache_scheme` of type float
      and 8 bits (layers/quantization/modelopt_quant.py:482-488, :857-863, :1620-1626), or no `kv_cache_scheme` and
      `kv_cache_quant_algo` FP8 (:489-490, :871-872, :1637-1638).
    A string `kv_cache_scheme` and hf_quant_config.json (which kvplan does not read) are not taken."""
    if not isinstance(quantization, dict):
        return False
    method = str(quantization.get("quant_method") or "").lower()
    if method == "fp8":
        return str(quantization.get("kv_cache_quant_algo") or "").upper() == "FP8"
    algo = quantization.get("quant_algo")
    if method != "modelopt" or not isinstance(algo, str):
        return False
    layers = quantization.get("quantized_layers") or {}
    nvfp4_layers = isinstance(layers, dict) and any(
        isinstance(v, dict) and str(v.get("quant_algo", "")).upper() in ("NVFP4", "W4A16_NVFP4")
        for v in layers.values()
    )
    if not (algo == "FP8" or "FP4" in algo or (algo == "MIXED_PRECISION" and nvfp4_layers)):
        return False
    scheme = quantization.get("kv_cache_scheme")
    if isinstance(scheme, dict):
        return scheme.get("type") == "float" and scheme.get("num_bits") == 8
    return scheme is None and str(quantization.get("kv_cache_quant_algo") or "").upper() == "FP8"


GUESSED = "unknown model_type"


def model_shape(config: dict[str, Any], *, assume_llama: bool = False) -> ModelShape:
    """Read a raw config.json dict (nested multimodal configs resolve to the language model).

    An unknown `model_type` is read as a llama-like decoder only when no field of the config signals another cache
    (kvplan.core.config.CACHE_SIGNALS); otherwise UnsupportedArchitecture names the fields, unless `assume_llama`
    forces the llama-like reading, which the shape's assumptions then say (with the fields it ignores). A field of
    the wrong type or value that a reader trips over is a ConfigError (one line), as a missing one is.
    """
    try:
        return _read_shape(config, assume_llama)
    except RecursionError:
        raise ConfigError("config is nested too deeply", hint="pass the model's config.json") from None
    except FIELD_ERRORS as exc:  # a field of the wrong type or value a reader tripped over
        model_type = config.get("model_type") if isinstance(config, dict) else None
        raise ConfigError(
            f"config of model_type {model_type!r} has a field kvplan cannot read ({type(exc).__name__}: {exc})",
            hint="compare the config with the model's published config.json; fix the field's type or value",
        ) from None


def _read_shape(config: dict[str, Any], assume_llama: bool) -> ModelShape:
    if not isinstance(config, dict):
        raise ConfigError("config must be a JSON object", hint="pass the model's config.json")
    cfg = language_config(config)
    model_type = str(cfg.get("model_type") or "")
    assumptions: list[str] = []
    family = family_of(model_type)
    if family is None:
        if not model_type:
            raise ConfigError("config has no `model_type`", hint="add the model_type from the model's config.json")
        signals = cache_signals(cfg)
        by_meaning: dict[str, list[str]] = {}
        for key, meaning in signals:
            by_meaning.setdefault(meaning, []).append(f"`{key}`")
        fields = "; ".join(f"{meaning} ({', '.join(keys)})" for meaning, keys in by_meaning.items())
        if signals and not assume_llama:
            raise UnsupportedArchitecture(
                Text(
                    "unknown model_type {mt!r}: its config signals caches a llama-like reading would miss: {fields}",
                    mt=model_type,
                    fields=fields,
                ),
                hint=Text(
                    "a llama-like reading would size its cache wrongly; {assume_llama} forces it anyway (every "
                    "output then says so), or report the model at kvplan's issue tracker"
                ),
                field="assume_llama",
            )
        reader: Callable[[dict], tuple[tuple[L.Layer, ...], ...]] = dense
        assumptions.append(
            f"{GUESSED} {model_type!r}: read as a llama-like decoder "
            f"({num_layers(cfg)} layers, {num_kv_heads(cfg)} KV heads of {head_dim(cfg)})"
            + (f", forced (assume-llama), ignoring {', '.join(f'`{k}`' for k, _ in signals)}" if signals else "")
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
    if family is not None and family.shape == "mimo_v2_flash" and cfg.get("sliding_window_size") is not None:
        features.add(WINDOW_IS_SIZE_PLUS_ONE)
        if cfg.get("sliding_window") != cfg.get("sliding_window_size"):
            features.add(MIMO_WINDOW_KEYS_DIFFER)
    if family is not None and family.shape == "mimo_v2_flash" and mimo_v2_flash_converter_issue(cfg):
        features.add(MIMO_NOT_AS_CONVERTED)
    if family is not None and family.shape == "gemma4" and int(cfg.get("num_kv_shared_layers") or 0):
        features.add(KV_SHARED_LAYERS)
    if (
        family is not None
        and family.shape == "minimax_m3"
        and any(isinstance(c, L.IndexKeys) for layer in layer_caches for c in layer)
    ):
        sparse = cfg.get("sparse_attention_config")
        sparse = sparse if isinstance(sparse, dict) else {}
        freq = sparse.get("sparse_attention_freq")
        by_freq = [bool(f) for f in freq] if isinstance(freq, list) else None
        by_layers = [any(isinstance(c, L.IndexKeys) for c in layer) for layer in layer_caches]
        if by_freq != by_layers:  # the sparse layers are layer_types' (transformers' reading), not the freq list's
            features.add(M3_SPARSE_FROM_LAYER_TYPES)
        if sparse.get("sparse_disable_index_value") is None:
            features.add(M3_INDEX_VALUES)
        if cfg.get("model_type") == "minimax_m3_vl_text":
            features.add(M3_TEXT_DROPS_SPARSE_CONFIG)
        if "sparse_index_dim" not in sparse:
            features.add(M3_INDEX_DIM_NOT_SPARSE_INDEX_DIM)
        if sparse.get("sparse_num_index_heads") != num_kv_heads(cfg):
            features.add(M3_INDEX_HEADS_NOT_KV_HEADS)
        moe_freq = cfg.get("moe_layer_freq")
        if isinstance(moe_freq, list):
            dense_lead = next((i for i, f in enumerate(moe_freq) if f != 0), len(moe_freq))
            if by_layers != [i >= dense_lead for i in range(len(by_layers))]:
                features.add(M3_SPARSE_NOT_AFTER_DENSE_LEAD)
        else:
            features.add(M3_SPARSE_NOT_AFTER_DENSE_LEAD)
    if config.get("quantization_config") or cfg.get("quantization_config"):
        features.add(QUANTIZED)
        if checkpoint_fp8_kv(config.get("quantization_config") or cfg.get("quantization_config")):
            features.add(CHECKPOINT_FP8_KV)
    if config.get("learnable_sink") or cfg.get("learnable_sink"):
        features.add(LEARNABLE_SINK)
    if family is not None and family.shape == "dsa" and cfg.get("indexer_types") is not None:
        features.add(DSA_INDEXER_TYPES_LISTED)
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
        config_model_type=str(config.get("model_type") or model_type),
    )
