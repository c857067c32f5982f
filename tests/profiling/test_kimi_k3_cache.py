"""Kimi K3's caches against real transformers tensors (meta device).

transformers 5.24 cannot build Kimi K3 as published (its `situ` activation exists only in the remote code, so
`hf_config_from_dict` refuses it), but K3's text config is a `kimi_linear` config, and an activation holds no
cache: with `hidden_act` set to silu, transformers' KimiLinearForCausalLM builds the real K3 layout (93 layers,
`linear_attn_config` kda_layers / full_attn_layers, 96 KDA heads of 128, MLA 512 + 64) and its cache tensors must
equal kvplan's per-layer estimate exactly."""

from __future__ import annotations

import pytest

from kvplan.core.shapes import model_shape
from kvplan.engines.base import Request
from kvplan.engines.transformers import TransformersEngine
from kvplan.errors import UnsupportedArchitecture

from conftest import load_config

torch_cache = pytest.importorskip(
    "kvplan.profiling.ground_truth", reason="needs torch + transformers (the profile extra)"
)


def test_kimi_k3_as_published_is_refused_by_the_ground_truth_builder():
    with pytest.raises(UnsupportedArchitecture, match="situ"):
        torch_cache.hf_config_from_dict(load_config("moonshotai__Kimi-K3"))


@pytest.mark.slow
def test_kimi_k3_text_layout_equals_real_cache_bytes():
    config = load_config("moonshotai__Kimi-K3")
    config["text_config"]["hidden_act"] = "silu"  # no cache effect; transformers has no `situ`
    hf_config = torch_cache.hf_config_from_dict(config)
    assert hf_config.linear_num_heads == config["text_config"]["linear_attn_config"]["num_heads"]
    shape = model_shape(config)
    model = torch_cache.build_model(hf_config, dtype="bfloat16", device="meta")
    engine = TransformersEngine.for_shape(shape)
    for seq_len, batch, decode in ((37, 1, 0), (5, 2, 2)):
        measured = torch_cache.measure_forward_cache(
            hf_config, seq_len=seq_len, batch=batch, decode_steps=decode, model=model, device="meta"
        )
        req = Request(seq_len + decode, batch, "bfloat16", "bfloat16")
        expected = [sum(engine.stage_costs([c], req)[0].bytes for c in layer) for layer in shape.layers]
        assert [m["nbytes"] for m in measured] == expected, (seq_len, batch, decode)
