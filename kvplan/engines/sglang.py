"""How SGLang sizes its KV pool: per token, no pages (`model_runner.py` `cell_size`).

- full attention: K and V of `max(1, kv_heads // tp)` heads per layer on each TP rank;
- MLA: one latent of `kv_lora_rank + qk_rope_head_dim` per layer, replicated on every TP rank;
- sliding-window layers live in a separate SWA pool that frees tokens outside the window: a sequence keeps at
  most `window` tokens there;
- Mamba-style states: a per-request pool; conv state `(conv_kernel - 1) x channels` in the model dtype,
  SSM state in float32 (SGLang's `--mamba-ssm-dtype` default);
- KV dtypes: auto, bf16, fp16, fp32, fp8_e4m3, fp8_e5m2 (no scales stored).
"""

from __future__ import annotations

from fractions import Fraction
from math import prod

from kvplan.core import specs as L
from kvplan.core.units import DTYPE_BYTES
from kvplan.engines.base import KindCost, Request, group_costs, kv_heads_per_rank, split_exact, window_tokens
from kvplan.errors import Text, UsageError


class SglangEngine:
    name = "sglang"
    follows = "SGLang 0.5 (model_runner cell_size, SWA and Mamba pools)"

    def check(self, caches: list[L.Layer], req: Request) -> None:
        if req.kv_dtype in ("int8", "int4", "nvfp4"):
            raise UsageError(
                f"SGLang has no {req.kv_dtype} KV cache",
                hint=Text("use {kv_dtype} fp8_e4m3, fp8_e5m2 or auto"),
                field="kv_dtype",
            )

    def block_size(self, caches: list[L.Layer], req: Request) -> int | None:
        return None

    def stage_costs(self, caches: list[L.Layer], req: Request) -> list[KindCost]:
        self.check(caches, req)
        return group_costs([self._layer(c, req) for c in caches])

    def _layer(self, cache: L.Layer, req: Request) -> tuple[str, int, Fraction, int | None]:
        kv_bytes = DTYPE_BYTES[req.kv_dtype]
        if isinstance(cache, L.Attention):
            per_token = cache.elements_per_token(kv_heads_per_rank(cache.num_kv_heads, req.tp)) * kv_bytes
            tokens = window_tokens(cache, req.seq_len, cache.window or 0)
            return (
                cache.kind,
                int(per_token * tokens * req.batch),
                per_token if tokens == req.seq_len else Fraction(0),
                tokens,
            )
        if isinstance(cache, L.LatentAttention):
            per_token = cache.elements_per_token() * kv_bytes
            return cache.kind, int(per_token * req.seq_len * req.batch), per_token, req.seq_len
        if isinstance(cache, L.RecurrentState):
            conv = split_exact(cache.conv_channels, req.tp, "convolution channels") * (cache.conv_kernel - 1)
            ssm = (
                prod(cache.ssm_shape[1:]) * split_exact(cache.ssm_shape[0], req.tp, "state heads")
                if cache.ssm_shape
                else 0
            )
            state = int(conv * DTYPE_BYTES[req.model_dtype]) + ssm * 4
            return cache.kind, state * req.batch, Fraction(0), None
        return cache.kind, 0, Fraction(0), None
