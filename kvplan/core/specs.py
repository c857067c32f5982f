"""What one decoder layer caches, independent of any engine: one frozen dataclass per layer kind.

A model is a tuple of these (see kvplan.core.shapes). Each class knows its own arithmetic: the elements one token
(or, for recurrent states, one sequence) adds for a given number of KV heads or a TP degree, and the bytes at a
given dtype size. Engines (kvplan.engines) decide the storage policy: how many tokens are kept, in pages or not,
in which dtype, split across which GPUs, and their own quirks (transformers' Falcon broadcast lives in
kvplan.engines.transformers). Pure Python: imports only kvplan.core.units (and through it kvplan.errors).

Every class has a `kind` (the name shown to users and in --json output); FullAttention, SlidingWindow and
ChunkedLocal also share the `KVAttention` base, so `isinstance(cache, KVAttention)` asks "K and V per head?".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from math import prod
from typing import ClassVar

from kvplan.core.units import split_exact

# Layer-kind names as shown to users and in --json output.
FULL = "full_attention"
SLIDING = "sliding_window"
CHUNKED = "chunked_local"
MLA = "mla_latent"
STATE = "recurrent_state"
NONE = "no_cache"
INDEX = "index_keys"


class KVAttention:
    """Softmax attention caching K and V per KV head and token (MHA/GQA/MQA): the base of the three attention
    kinds, never a layer kind itself. K and V head sizes may differ (`head_dim_k`, `head_dim_v`)."""

    __slots__ = ()
    kind: ClassVar[str]
    num_kv_heads: int
    head_dim_k: int
    head_dim_v: int

    def elements_per_token(self, kv_heads: int | None = None) -> int:
        """K plus V elements one token adds to this layer (with `kv_heads` heads, default all)."""
        heads = self.num_kv_heads if kv_heads is None else kv_heads
        return heads * (self.head_dim_k + self.head_dim_v)

    def bytes_per_token(self, dtype_bytes: Fraction | int, kv_heads: int | None = None) -> Fraction:
        """Bytes of `elements_per_token` at `dtype_bytes` per element (a Fraction for packed dtypes)."""
        return self.elements_per_token(kv_heads) * Fraction(dtype_bytes)


@dataclass(frozen=True)
class FullAttention(KVAttention):
    """Full (global) attention: every token of the sequence is kept."""

    num_kv_heads: int
    head_dim_k: int
    head_dim_v: int
    kind: ClassVar[str] = FULL
    window: ClassVar[None] = None  # no window: engines read `cache.window` on every attention kind


@dataclass(frozen=True)
class SlidingWindow(KVAttention):
    """Sliding-window attention over the last `window` tokens (transformers keeps the last W-1)."""

    num_kv_heads: int
    head_dim_k: int
    head_dim_v: int
    window: int
    kind: ClassVar[str] = SLIDING


@dataclass(frozen=True)
class ChunkedLocal(KVAttention):
    """Chunked local attention (Llama 4): tokens attend within chunks of `chunk_size` tokens."""

    num_kv_heads: int
    head_dim_k: int
    head_dim_v: int
    chunk_size: int
    kind: ClassVar[str] = CHUNKED

    @property
    def window(self) -> int:
        """The chunk size, under the name the windowed kinds share (the span engines bound the cache by)."""
        return self.chunk_size


@dataclass(frozen=True)
class MlaLatent:
    """Multi-head latent attention (DeepSeek V2/V3, Kimi K2): one compressed latent per token, shared by heads.

    The cache holds `kv_lora_rank + rope_head_dim` elements per token (no factor 2 for K and V), plus the
    `index_head_dim` keys of a sparse-attention indexer where the layer runs one (DeepSeek V3.2, GLM-5).
    `sparse`: the layer attends to the top-k tokens a DSA indexer picks, its own or (index_head_dim 0, GLM-5.2's
    "shared" layers) a previous layer's; engines store a sparse latent in their own layouts (kvplan.engines).
    """

    kv_lora_rank: int
    rope_head_dim: int
    index_head_dim: int = 0
    sparse: bool = False
    kind: ClassVar[str] = MLA

    def latent_elements(self) -> int:
        """The latent alone: `kv_lora_rank + rope_head_dim` per token (no indexer keys)."""
        return self.kv_lora_rank + self.rope_head_dim

    def elements_per_token(self) -> int:
        """Latent (and indexer) elements one token adds to this layer."""
        return self.latent_elements() + self.index_head_dim

    def bytes_per_token(self, dtype_bytes: Fraction | int) -> Fraction:
        return self.elements_per_token() * Fraction(dtype_bytes)


@dataclass(frozen=True)
class RecurrentState:
    """A constant-size state per sequence: Mamba/Mamba2 SSM, gated DeltaNet, short convolutions.

    `conv_channels` x `conv_kernel` is the convolution window; engines keep `conv_kernel` (transformers) or
    `conv_kernel - 1` (vLLM, SGLang, llama.cpp, TensorRT-LLM) columns. `ssm_shape` is the recurrent state's shape
    for one sequence; its first dimension (channels or heads) and `conv_channels` are the ones tensor parallelism
    splits. `family` is "mamba", "mamba2", "gated_deltanet", "short_conv", "kda" (Kimi Delta Attention: conv over
    q, k and v, a heads x head_dim x head_dim state) or "lightning" (MiniMax-01: the heads x head_dim x head_dim
    state alone, no convolution: `conv_channels` 0). Mamba2's convolution also covers
    `n_groups` groups of `2 * group_state` channels (B and C); `conv_channels` already includes them.

    Two config facts some engines read (not part of the shape, so not compared): `chunk_size`, the Mamba SSD
    kernel's chunk from the config (`mamba_chunk_size` / `chunk_size`; 0 when the config has none), and
    `ssm_dtype`, the recurrent state's own dtype where the config sets one (Qwen3.5's `mamba_ssm_dtype`; None:
    the model dtype); `gate_lower_bound`, a KDA layer's bounded forget gate (`linear_attn_config`
    gate_lower_bound; vLLM runs FlashKDA only with one).
    """

    family: str
    conv_channels: int
    conv_kernel: int
    ssm_shape: tuple[int, ...] = ()
    n_groups: int = 0
    group_state: int = 0
    chunk_size: int = field(default=0, compare=False)
    ssm_dtype: str | None = field(default=None, compare=False)
    gate_lower_bound: float | None = field(default=None, compare=False)
    kind: ClassVar[str] = STATE

    def conv_elements(self, columns: int, tp: int = 1, *, replicate_groups: bool = False) -> int:
        """Convolution-state elements of one sequence on one of `tp` ranks, keeping `columns` columns.

        `replicate_groups`: when TP does not divide the Mamba2 groups, each rank gets its own copy of the
        groups it needs (vLLM), which adds `2 * (tp - n_groups) * group_state` channels before the split.
        Raises UsageError when `tp` does not divide the channels."""
        channels = self.conv_channels
        if replicate_groups and self.n_groups and self.n_groups % tp:
            channels += 2 * (tp - self.n_groups) * self.group_state
        return split_exact(channels, tp, "convolution channels") * columns

    def ssm_elements(self, tp: int = 1) -> int:
        """SSM / DeltaNet state elements of one sequence on one of `tp` ranks (its first dimension is split)."""
        if not self.ssm_shape:
            return 0
        return prod(self.ssm_shape[1:]) * split_exact(self.ssm_shape[0], tp, "state heads")

    def state_bytes(
        self,
        conv_bytes: Fraction | int,
        ssm_bytes: Fraction | int,
        *,
        columns: int,
        tp: int = 1,
        replicate_groups: bool = False,
    ) -> Fraction:
        """Bytes of one sequence's state on one rank: conv elements at `conv_bytes`, SSM elements at `ssm_bytes`."""
        conv = self.conv_elements(columns, tp, replicate_groups=replicate_groups)
        return conv * Fraction(conv_bytes) + self.ssm_elements(tp) * Fraction(ssm_bytes)


@dataclass(frozen=True)
class NoCache:
    """A layer that caches nothing (MLP-only layers, KV-sharing consumers)."""

    kind: ClassVar[str] = NONE

    def elements_per_token(self) -> int:
        return 0

    def bytes_per_token(self, dtype_bytes: Fraction | int) -> Fraction:
        return Fraction(0)


@dataclass(frozen=True)
class IndexKeys:
    """A sparse-attention indexer's own key cache beside a layer's K/V: one key of `head_dim` elements per token,
    shared by every index head (MiniMax-M3's MSA layers: transformers 5.24 modeling_minimax_m3_vl.py:549 `k_proj`
    to one `index_head_dim` vector, :569-570 `idx_keys` [batch, 1, tokens, dim]). Never split by TP: one key a token.
    DSA's indexer keys beside an MLA latent are carried by `MlaLatent.index_head_dim` instead; this kind sits next
    to a GQA `FullAttention` in the same layer."""

    head_dim: int
    kind: ClassVar[str] = INDEX

    def elements_per_token(self) -> int:
        return self.head_dim

    def bytes_per_token(self, dtype_bytes: Fraction | int) -> Fraction:
        return self.head_dim * Fraction(dtype_bytes)


# ---------------------------------------------------------------- DeepSeek-V4 compressed attention

# The three DeepSeek-V4 layer kinds (transformers' `layer_types` names them sliding_attention /
# compressed_sparse_attention / heavily_compressed_attention; vLLM calls the last two C4A and C128A).
V4_SLIDING = "shared_kv_sliding"
CSA = "compressed_sparse"
HCA = "heavily_compressed"


@dataclass(frozen=True)
class CompressedAttention:
    """A DeepSeek-V4 attention layer: shared-KV MQA (one vector of `head_dim` per token is read as both K and V)
    over a sliding ring of the last `window` tokens, plus, when `compress_ratio` > 0, one compressed entry of
    `head_dim` per `compress_ratio` source tokens kept for the whole sequence.

    CSA layers (`overlap`): each source token feeds two series (Ca, Cb) of `head_dim` each, so windows overlap
    by one and the compressor carries the previous window's Ca; they also run a lightning indexer whose own
    compressor keeps one key of `index_head_dim` per entry (same ratio, same overlap). HCA layers have neither.
    `compress_ratio` 0 is a sliding-only layer. The compressor's transient state (source tokens of the window
    being filled, the carried overlap) is engine-specific: see each engine module.
    """

    head_dim: int
    window: int
    compress_ratio: int = 0
    overlap: bool = False
    index_head_dim: int = 0

    @property
    def kind(self) -> str:
        if not self.compress_ratio:
            return V4_SLIDING
        return CSA if self.index_head_dim else HCA

    def ring_elements_per_token(self) -> int:
        """Elements one token of the sliding ring holds (K == V: one vector)."""
        return self.head_dim

    def entries(self, tokens: int) -> int:
        """Compressed entries emitted after `tokens` source tokens (only closed windows emit)."""
        return tokens // self.compress_ratio if self.compress_ratio else 0

    def entry_elements(self) -> int:
        """Elements of one compressed entry: the attention's latent plus the indexer's key."""
        return self.head_dim + self.index_head_dim if self.compress_ratio else 0

    def compressor_width(self) -> int:
        """Features per source token the compressors project (KV and gate each): 2x with overlap, plus the
        indexer's."""
        if not self.compress_ratio:
            return 0
        return (1 + self.overlap) * (self.head_dim + self.index_head_dim)


Layer = (
    FullAttention
    | SlidingWindow
    | ChunkedLocal
    | MlaLatent
    | RecurrentState
    | NoCache
    | CompressedAttention
    | IndexKeys
)
