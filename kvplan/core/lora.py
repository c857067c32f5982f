"""The linear modules a LoRA adapter can target in one decoder layer, read from the config.

A LoRA adapter of rank r on a linear layer of `in_features` -> `out_features` holds A (r x in) and B (out x r).
Engines preallocate such pairs for every adapter slot (vLLM `create_lora_weights`, SGLang's LoRAMemoryPool,
TensorRT-LLM's PEFT cache pages); how many slots, which modules and how they split over tensor parallelism is
each engine's rule (its module in kvplan.engines). This module only says which modules a dense decoder layer
has and their sizes, in the PEFT names adapters use (`q_proj` ... `down_proj`).

Public API
----------
- `LINEAR_TARGETS`: the module names an adapter may target (PEFT's names for llama-like decoders).
- `decoder_modules(config, shape)`: the `LoraModule`s of one decoder layer (q, k, v, o, gate, up, down); a
  UsageError for models kvplan does not size LoRA for (routed experts, MLA latents, recurrent layers).
- `parse_targets(text)`: `--lora-target-modules` (comma or space separated; `all`: None, the engine's default)
  -> the names, checked.

Pure arithmetic.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from kvplan.core import specs as L
from kvplan.core.config import intermediate_size, num_heads, routed_experts, text_config
from kvplan.errors import Text, UsageError

if TYPE_CHECKING:
    from kvplan.core.shapes import ModelShape

LINEAR_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
ALL = "all"
# the fused module vLLM and SGLang wrap for each target (vLLM packed_modules_mapping, e.g.
# vllm-0.33.0/vllm/model_executor/models/llama.py:475-478; SGLang normalizes targets the same way,
# sglang/srt/lora/utils.py get_normalized_target_modules): targeting one of them allocates the whole fused module
PACKED = {
    "q_proj": "qkv_proj",
    "k_proj": "qkv_proj",
    "v_proj": "qkv_proj",
    "o_proj": "o_proj",
    "gate_proj": "gate_up_proj",
    "up_proj": "gate_up_proj",
    "down_proj": "down_proj",
}


@dataclass(frozen=True)
class LoraModule:
    """One linear module of a decoder layer. `row_parallel`: its input is split over TP ranks (o_proj,
    down_proj); otherwise its output is (column parallel). `kv_heads`/`head_dim`: set for k_proj and v_proj,
    whose output a TP rank holds `max(1, kv_heads // tp)` heads of (replicated when TP exceeds the heads)."""

    name: str
    in_features: int
    out_features: int
    row_parallel: bool = False
    kv_heads: int = 0
    head_dim: int = 0

    @property
    def packed(self) -> str:
        return PACKED[self.name]

    def local_in(self, tp: int) -> int:
        return self.in_features // tp if self.row_parallel else self.in_features

    def local_out(self, tp: int) -> int:
        if self.row_parallel:
            return self.out_features
        if self.kv_heads:
            return max(1, self.kv_heads // tp) * self.head_dim
        return self.out_features // tp

    def elements(self, rank: int, tp: int = 1) -> int:
        """A and B of one adapter of `rank` on one TP rank: rank x (local in + local out)."""
        return rank * (self.local_in(tp) + self.local_out(tp))


def _refuse(what: str) -> UsageError:
    return UsageError(
        f"kvplan sizes LoRA adapters for dense attention decoders only, not {what}",
        hint=Text("drop the LoRA options ({max_loras}, {max_lora_rank}) for this model"),
        field="max_loras",
    )


def decoder_modules(config: dict[str, Any], shape: ModelShape) -> tuple[LoraModule, ...]:
    """q, k, v, o, gate, up and down of one decoder layer (every layer of a dense decoder has the same)."""
    if routed_experts(config) is not None:
        raise _refuse("models with routed experts (the engines' MoE LoRA buffers are not modelled)")
    caches = shape.caches()
    if any(isinstance(c, L.MlaLatent) for c in caches):
        raise _refuse("MLA models")
    attention = [c for c in caches if isinstance(c, L.KVAttention)]
    if len(attention) != len(caches) or not attention:
        raise _refuse("models with recurrent or cache-less layers")
    first = attention[0]
    if any(
        (c.num_kv_heads, c.head_dim_k, c.head_dim_v) != (first.num_kv_heads, first.head_dim_k, first.head_dim_v)
        for c in attention
    ):
        raise _refuse("models whose layers differ in their attention heads")
    cfg = text_config(config)
    hidden, heads, inter = shape.hidden_size, num_heads(cfg), intermediate_size(cfg)
    kv, hd = first.num_kv_heads, first.head_dim_k
    return (
        LoraModule("q_proj", hidden, heads * hd),
        LoraModule("k_proj", hidden, kv * hd, kv_heads=kv, head_dim=hd),
        LoraModule("v_proj", hidden, kv * first.head_dim_v, kv_heads=kv, head_dim=first.head_dim_v),
        LoraModule("o_proj", heads * first.head_dim_v, hidden, row_parallel=True),
        LoraModule("gate_proj", hidden, inter),
        LoraModule("up_proj", hidden, inter),
        LoraModule("down_proj", inter, hidden, row_parallel=True),
    )


def parse_targets(text: str | list[str] | tuple[str, ...] | None) -> tuple[str, ...] | None:
    """`q_proj,v_proj` or `["q_proj", "v_proj"]` -> the names in LINEAR_TARGETS order; None when not given or
    `all`: every module the engine targets by default (its own rule: vLLM's supported modules, SGLang's `all`)."""
    if text is None:
        return None
    items = text.replace(",", " ").split() if isinstance(text, str) else [str(t).strip() for t in text]
    if not items:
        return None
    if ALL in items:
        return None
    unknown = [t for t in items if t not in LINEAR_TARGETS]
    if unknown:
        raise UsageError(
            Text(
                "{lora_target_modules} has {bad}: kvplan sizes {known} or all",
                bad=", ".join(unknown),
                known=", ".join(LINEAR_TARGETS),
            ),
            hint="name the decoder's linear modules in PEFT's spelling (q_proj,v_proj), or all",
            field="lora_target_modules",
        )
    return tuple(t for t in LINEAR_TARGETS if t in items)
