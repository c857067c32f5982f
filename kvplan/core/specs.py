"""What one decoder layer caches, independent of any engine: one frozen dataclass per layer kind.

A model is a tuple of these (see kvplan.core.shapes). Engines (kvplan.engines) decide how each kind is
stored: how many tokens are kept, in pages or not, in which dtype, split across which GPUs. Fields are plain
integers; nothing here knows about dtypes or engines. Pure Python.
"""

from __future__ import annotations

from dataclasses import dataclass

# Layer-kind names as shown to users and in --json output.
FULL = "full_attention"
SLIDING = "sliding_window"
CHUNKED = "chunked_local"
MLA = "mla_latent"
STATE = "recurrent_state"
NONE = "no_cache"


@dataclass(frozen=True)
class Attention:
    """Softmax attention caching K and V per token: full (MHA/GQA/MQA), sliding window or chunked local.

    `window` is the sliding window W (transformers keeps the last W-1 tokens) or the chunk size of chunked
    local attention (Llama 4). K and V head sizes may differ.
    """

    kind: str
    num_kv_heads: int
    head_dim_k: int
    head_dim_v: int
    window: int | None = None
    hf_cached_heads: int | None = None  # transformers' Falcon broadcasts K/V to every query head before caching

    def elements_per_token(self, kv_heads: int | None = None) -> int:
        """K plus V elements one token adds to this layer (with `kv_heads` heads, default all)."""
        heads = self.num_kv_heads if kv_heads is None else kv_heads
        return heads * (self.head_dim_k + self.head_dim_v)


@dataclass(frozen=True)
class LatentAttention:
    """Multi-head latent attention (DeepSeek V2/V3, Kimi K2): one compressed latent per token, shared by heads.

    The cache holds `kv_lora_rank + rope_head_dim` elements per token (no factor 2 for K and V), plus the
    `index_head_dim` keys of a sparse-attention indexer where the model has one (DeepSeek V3.2).
    """

    kv_lora_rank: int
    rope_head_dim: int
    index_head_dim: int = 0
    kind: str = MLA

    def elements_per_token(self) -> int:
        """Latent (and indexer) elements one token adds to this layer."""
        return self.kv_lora_rank + self.rope_head_dim + self.index_head_dim


@dataclass(frozen=True)
class RecurrentState:
    """A constant-size state per sequence: Mamba/Mamba2 SSM, gated DeltaNet, short convolutions.

    `conv_channels` x `conv_kernel` is the convolution window; engines keep `conv_kernel` (transformers) or
    `conv_kernel - 1` (vLLM) columns. `ssm_shape` is the recurrent state's shape for one sequence; its first
    dimension (channels or heads) and `conv_channels` are the ones tensor parallelism splits.
    `family` is "mamba", "mamba2", "gated_deltanet" or "short_conv". Mamba2's convolution also covers
    `n_groups` groups of `2 * group_state` channels (B and C), which vLLM replicates when TP does not divide
    the groups; `conv_channels` already includes them.
    """

    family: str
    conv_channels: int
    conv_kernel: int
    ssm_shape: tuple[int, ...] = ()
    n_groups: int = 0
    group_state: int = 0
    kind: str = STATE


@dataclass(frozen=True)
class NoCache:
    """A layer that caches nothing (MLP-only layers, KV-sharing consumers)."""

    kind: str = NONE


Layer = Attention | LatentAttention | RecurrentState | NoCache
