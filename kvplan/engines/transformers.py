"""What the default cache of Hugging Face transformers (5.x) holds after a forward pass over `seq_len` tokens.

Rules, read from transformers 5.23 `cache_utils.py` and checked against real cache tensors (tests/):
- full attention: K `[batch, kv_heads, seq, head_dim_k]` and V likewise, in the model dtype;
- sliding / chunked layers (`DynamicSlidingWindowLayer`): the last `window - 1` tokens;
- MLA (DeepSeek V2/V3, Kimi K2): the latent (`kv_lora_rank`) as "keys" and the RoPE part as "values";
  DSA (DeepSeek V3.2, GLM-5, `DynamicIndexedLayer`): plus `indexer_keys` of `index_head_dim` per token in the
  model dtype on the layers that run their own indexer (none on GLM-5.2's "shared" layers);
- recurrent layers: the conv state `[batch, channels, conv_kernel]` in the model dtype and the SSM /
  DeltaNet / KDA state in float32 whatever the model dtype; MiniMax-01's lightning state `[batch, heads,
  head_dim, head_dim]` (no conv) in the model dtype, in `MiniMaxCache.linear_cache` outside `cache.layers`;
- MiniMax-M3 (transformers 5.24 minimax_m3_vl_text): GQA K/V on every layer and, on the sparse layers, the
  indexer's `idx_keys` of `index_head_dim` per token in the model dtype;
- DeepSeek-V4 (transformers 5.24): the shared-KV ring of window - 1 tokens (two copies on sliding-only layers,
  one on CSA / HCA layers), the compressed entries, the open window's source tokens and the CSA overlap state
  (`TransformersEngine._compressed`); no StaticCache;
- `--kv-dtype fp8` is `QuantizedCache(backend="fp8")`: one byte per element plus two fp32 scales per layer;
  `int4` (quanto, 4 bits with an fp32 scale and zero point per 64 values: 5/8 byte per element) and `int8`
  (hqq, 8 bits + the same: 9/8 byte), as after a prefill: later decode tokens wait in a full-precision residual
  of up to 128 tokens before being quantized; quantized caches exist only for all-full-attention models.
A prefill longer than the window briefly pins all of its tokens until the next decode step (the kept part is
a view); kvplan reports the steady state, which is what the tensors hold.

`transformers-static` is `StaticCache(config, max_cache_len=seq_len)`: every full-attention layer allocates
`max_cache_len` tokens up front and a sliding layer (`StaticSlidingWindowLayer`) `min(window, max_cache_len)`
tokens, one more than the dynamic layer keeps; latent and recurrent layers are as above (checked in tests).

Falcon with `new_decoder_architecture` (Falcon-40B/180B, RefinedWeb configs): transformers' FalconAttention
broadcasts the `num_kv_heads` K/V heads to every query head before caching, so the cache holds
`num_attention_heads` heads. The shape records it (`ModelShape.features`, FALCON_NEW_DECODER);
`TransformersEngine.for_shape` turns it into `cached_kv_heads`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import replace
from fractions import Fraction

from kvplan.core import specs as L
from kvplan.core.shapes import FALCON_NEW_DECODER, ModelShape
from kvplan.core.units import DTYPE_BYTES
from kvplan.engines.base import KindCost, Request, Speculative, group_costs, kv_heads_per_rank, window_tokens
from kvplan.engines.entry import EngineEntry
from kvplan.engines.serving import SpeculativeInputs
from kvplan.errors import Text, UsageError

# Bytes per element of the quantized cache backends, scales and zero points included.
_QUANTIZED = {"fp8_e4m3": Fraction(1), "int4": Fraction(5, 8), "int8": Fraction(9, 8)}
_FP8_SCALE_BYTES_PER_LAYER = 2 * 4


class TransformersEngine:
    name = "transformers"
    follows = "transformers 5.23 DynamicCache / QuantizedCache"
    window_extra = -1  # a DynamicSlidingWindowLayer keeps window - 1 tokens

    def __init__(self, cached_kv_heads: int | None = None) -> None:
        # K/V heads every attention layer caches when transformers broadcasts them (Falcon); None: the layer's own
        self.cached_kv_heads = cached_kv_heads

    @classmethod
    def for_shape(cls, shape: ModelShape) -> TransformersEngine:
        """The engine for one model: Falcon's new decoder architecture caches all `num_attention_heads` heads."""
        broadcast = FALCON_NEW_DECODER in shape.features and shape.num_attention_heads
        return cls(cached_kv_heads=shape.num_attention_heads if broadcast else None)

    def check(self, caches: list[L.Layer], req: Request) -> None:
        if req.kv_dtype in ("fp8_e5m2", "nvfp4"):
            raise UsageError(
                f"transformers has no {req.kv_dtype} KV cache", hint="use fp8 (e4m3), int8 or int4", field="kv_dtype"
            )
        # QuantizedCache refuses any layer type but "full_attention"; MLA layers are full attention there and
        # the fp8 backend quantizes the latent like keys (checked in tests); quanto / hqq group along a head
        # dimension, which kvplan has not checked for latents.
        allowed = (L.FULL, L.MLA) if req.kv_dtype == "fp8_e4m3" else (L.FULL,)
        sparse = any(isinstance(c, L.MlaLatent) and c.sparse for c in caches)  # DSA: "indexed_attention" layers
        if req.kv_dtype in _QUANTIZED and (sparse or any(c.kind not in allowed for c in caches)):
            raise UsageError(
                "transformers' quantized KV cache supports only models whose layers are all full attention",
                hint=Text("use {kv_dtype} auto for this model, or another {engine}"),
                field="kv_dtype",
            )

    def block_size(self, caches: list[L.Layer], req: Request) -> int | None:
        return None

    def stage_costs(self, caches: list[L.Layer], req: Request) -> list[KindCost]:
        self.check(caches, req)
        rows = [self._layer(c, req) for c in caches]
        if req.speculative is not None and req.speculative.draft_caches:
            # the assistant's own cache (assisted_generation): a DynamicCache in the model dtype whatever the target's
            # cache (candidate_generator.py sets the assistant's cache_implementation to None), its layers' own heads
            draft_req = replace(req, kv_dtype=req.model_dtype, speculative=None)
            rows += [TransformersEngine()._layer(c, draft_req) for c in req.speculative.draft_caches]
        return group_costs(rows)

    def _layer(self, cache: L.Layer, req: Request) -> tuple[str, int, Fraction, int | None]:
        if isinstance(cache, L.KVAttention):
            heads = kv_heads_per_rank(self.cached_kv_heads or cache.num_kv_heads, req.tp)
            per_token = cache.elements_per_token(heads) * self._element_bytes(req)
            tokens = window_tokens(cache, req.seq_len, (cache.window or 1) + self.window_extra)
            extra = _FP8_SCALE_BYTES_PER_LAYER if req.kv_dtype == "fp8_e4m3" else 0
            grows = tokens == req.seq_len
            return (
                cache.kind,
                _whole(per_token * tokens * req.batch) + extra,
                per_token if grows else Fraction(0),
                tokens,
            )
        if isinstance(cache, L.MlaLatent):
            per_token = cache.bytes_per_token(self._element_bytes(req))
            extra = _FP8_SCALE_BYTES_PER_LAYER if req.kv_dtype == "fp8_e4m3" else 0
            return cache.kind, _whole(per_token * req.seq_len * req.batch) + extra, per_token, req.seq_len
        if isinstance(cache, L.RecurrentState):
            return cache.kind, req.batch * self._state_bytes(cache, req), Fraction(0), None
        if isinstance(cache, L.CompressedAttention):
            return self._compressed(cache, req)
        if isinstance(cache, L.IndexKeys):
            # MiniMax-M3's `idx_keys` [batch, 1, tokens, index_head_dim] in the model dtype, every token
            # (MiniMaxM3VLSparseCacheLayer.update_index; the static layer allocates max_cache_len tokens)
            per_token = cache.bytes_per_token(DTYPE_BYTES[req.model_dtype])
            return cache.kind, _whole(per_token * req.seq_len * req.batch), per_token, req.seq_len
        return cache.kind, 0, Fraction(0), None

    def _compressed(self, cache: L.CompressedAttention, req: Request) -> tuple[str, int, Fraction, int | None]:
        """DeepSeek-V4 (transformers 5.24 modeling_deepseek_v4.py), in the model dtype:
        - the ring: the last window - 1 tokens. Sliding-only layers are plain DynamicSlidingWindowLayers, which
          concatenate K and V into two tensors (two copies of the shared vector); CSA / HCA layers
          (DeepseekV4HCACache.update) keep one tensor, `values = keys`;
        - `compressed_kv`: one entry per closed window, of head_dim (and the indexer's index_head_dim);
        - `buffer_kv` / `buffer_gate`: the seq_len % ratio source tokens of the open window, each with the
          compressor's projected width (2 x head_dim with overlap, plus the indexer's);
        - CSA: `overlap_kv` (model dtype) and `overlap_gate` (float32, gate + the fp32 position_bias) of the
          last closed window's Ca half, ratio x head_dim each, once a window has closed."""
        d, n, b = DTYPE_BYTES[req.model_dtype], req.seq_len, req.batch
        ring = min(n, cache.window + self.window_extra)
        copies = 1 if cache.compress_ratio else 2
        elements = copies * ring * cache.ring_elements_per_token()
        r = cache.compress_ratio
        per_token = Fraction(copies * cache.ring_elements_per_token()) * d if ring == n else Fraction(0)
        state = Fraction(0)
        if r:
            elements += cache.entries(n) * cache.entry_elements() + 2 * (n % r) * cache.compressor_width()
            if cache.overlap and n >= r:
                state = r * cache.entry_elements() * (d + 4)
            per_token += Fraction(cache.entry_elements(), r) * d
        return cache.kind, _whole((elements * d + state) * b), per_token, n if r else ring

    def _element_bytes(self, req: Request) -> Fraction:
        return _QUANTIZED.get(req.kv_dtype, DTYPE_BYTES[req.kv_dtype])

    @staticmethod
    def _state_bytes(cache: L.RecurrentState, req: Request) -> int:
        # all conv_kernel columns in the model dtype; the SSM / DeltaNet / KDA state in float32, except MiniMax's
        # lightning state, kept in the activations' dtype (modeling_minimax.py:203-210 `attn_weights_inter`)
        ssm = DTYPE_BYTES[req.model_dtype] if cache.family == "lightning" else 4
        return int(cache.state_bytes(DTYPE_BYTES[req.model_dtype], ssm, columns=cache.conv_kernel, tp=req.tp))


class TransformersStaticEngine(TransformersEngine):
    name = "transformers-static"
    follows = "transformers 5.23 StaticCache (max_cache_len = seq_len)"
    window_extra = 0  # a StaticSlidingWindowLayer allocates the whole window

    def check(self, caches: list[L.Layer], req: Request) -> None:
        if any(isinstance(c, L.CompressedAttention) for c in caches):
            # modeling_deepseek_v4.py:1229: the compressor state "isn't compatible with :class:`StaticCache`"
            raise UsageError(
                "transformers-static cannot hold deepseek_v4 (its compressor state needs the dynamic cache)",
                hint=Text("use {engine} transformers"),
                field="engine",
            )
        if req.kv_dtype != req.model_dtype:
            raise UsageError(
                "transformers' StaticCache stores the KV cache in the model dtype",
                hint=Text("use {kv_dtype} auto with {engine} transformers-static"),
                field="kv_dtype",
            )


def assisted_generation(inputs: SpeculativeInputs) -> Speculative:
    """transformers' assisted generation, `generate(..., assistant_model=draft)` (vLLM's method draft_model): the
    draft keeps its own DynamicCache of its own layers, threaded through every drafting round and cropped back to the
    accepted tokens (transformers 5.24 generation/candidate_generator.py AssistedCandidateGenerator, `assistant_kwargs
    ["cache"]`), never more tokens than the sequence: sized at seq_len, an upper bound by a token or more (checked on
    real caches in tests/profiling/test_assisted_generation.py). Falcon's new decoder architecture caches every query
    head, as the target's does."""
    setup = inputs.setup
    if setup.method != "draft_model":
        return replace(
            setup,
            notes=(
                f"transformers' {setup.method} drafting is not modelled (kvplan models assisted generation with a "
                "draft model, method draft_model): the drafter's KV cache is left out",
            ),
        )
    shape = inputs.draft_shape
    if shape is None:
        why = f" ({inputs.draft_error})" if inputs.draft_error else ""
        return replace(
            setup,
            notes=(
                f"the draft model {setup.model} could not be read{why}: its KV cache is not counted (pass a catalog "
                "name or a local config path as the speculative config's `model`)",
            ),
        )
    broadcast = shape.num_attention_heads if FALCON_NEW_DECODER in shape.features else None
    caches = tuple(
        dataclasses.replace(c, num_kv_heads=broadcast) if broadcast and isinstance(c, L.KVAttention) else c
        for c in shape.caches()
        if not isinstance(c, L.NoCache)
    )
    notes = [
        f"assisted generation with {setup.model}: the draft's own DynamicCache, {len(caches)} cache layer(s) in the "
        "model dtype, sized at seq_len (it never holds more tokens than the sequence; transformers "
        "generation/candidate_generator.py)"
    ]
    if any(c.kind in (L.SLIDING, L.CHUNKED) for c in caches):
        notes.append(
            "the draft's sliding-window layers are sized as after a one-token step (window - 1 tokens); assisted "
            "generation opens each drafting round by feeding the draft 2 tokens, after which each such layer holds "
            "window + 1 (2 tokens more) until its next step"
        )
    return replace(
        setup,
        draft_caches=caches,
        draft_weights=inputs.draft_weights,
        weights_source=inputs.draft_weights_source,
        notes=tuple(notes),
    )


def _whole(value: Fraction) -> int:
    """Bytes are whole: packed formats round up to a byte."""
    return -(-value.numerator // value.denominator)


ENTRY = EngineEntry(
    name="transformers",
    aliases=("hf",),
    storage=TransformersEngine.for_shape,
    plannable=True,
    speculative=assisted_generation,
)
# the assistant's cache is a DynamicCache whatever the target's (assisted_generation)
STATIC_ENTRY = EngineEntry(
    name="transformers-static",
    aliases=("hf-static",),
    storage=TransformersStaticEngine.for_shape,
    speculative=assisted_generation,
)
