"""MiniMax-M2 / M2.5 / M2.7 weights (issue 12): the fp8 checkpoint's stored bytes, built by hand from the config.

The parameter count equals transformers' meta-device build (tests/weights/test_weights.py, slow); this checks the
fp8 block layout on top: every linear and expert matrix 1 byte per weight plus an fp32 scale per 128 x 128 block,
and what `modules_to_not_convert` names (the router `gate`, `e_score_correction_bias`, `lm_head`), the embeddings
and the norms in bf16 (transformers modeling_minimax_m2.py:288-293 attention and q/k norms over the projection,
:52 router, :76-77 experts, :114 the bias buffer)."""

from __future__ import annotations

import math

import pytest

from kvplan.weights.stored import weight_bytes

from conftest import load_config


def _fp8_block(out: int, inp: int) -> int:
    return out * inp + 4 * math.ceil(out / 128) * math.ceil(inp / 128)


@pytest.mark.parametrize("name", ["MiniMaxAI__MiniMax-M2.5", "MiniMaxAI__MiniMax-M2.7"])
def test_minimax_m2_fp8_built_by_hand(name):
    c = load_config(name)
    h, layers, vocab = c["hidden_size"], c["num_hidden_layers"], c["vocab_size"]
    q, kv, experts, inter = (
        c["num_attention_heads"] * c["head_dim"],
        c["num_key_value_heads"] * c["head_dim"],
        256,
        1536,
    )
    assert (c["num_local_experts"], c["intermediate_size"]) == (experts, inter)
    attn = _fp8_block(q, h) + 2 * _fp8_block(kv, h) + _fp8_block(h, q)
    moe = experts * (2 * _fp8_block(inter, h) + _fp8_block(h, inter))
    bf16 = 2 * vocab * h + h + layers * (q + kv + 2 * h + experts * h + experts)
    assert weight_bytes(c) == layers * (attn + moe) + 2 * bf16
