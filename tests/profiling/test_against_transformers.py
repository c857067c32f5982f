"""`--engine transformers` against the bytes of real transformers cache tensors, exactly.

Every fixture config the installed transformers builds natively (and the small synthetic configs for the
families the collection lacks) is built on the meta device (exact shapes, no memory) and run forward over
lengths below, at and above its windows, with and without decode steps; the cache layers' tensor bytes
must equal kvplan's per-layer estimate for the same number of tokens. Nothing is shrunk: meta tensors cost
nothing, so the full-size configs run as published.
"""

from __future__ import annotations

import pytest

from kvplan.core import specs as L
from kvplan.core.shapes import model_shape
from kvplan.engines.base import Request
from kvplan.engines.transformers import TransformersEngine
from kvplan.errors import UnsupportedArchitecture

from conftest import SYNTHETIC as SYNTHETIC_DIR
from conftest import all_config_names, load_config

torch_cache = pytest.importorskip(
    "kvplan.profiling.ground_truth", reason="needs torch + transformers (the profile extra)"
)

REAL = all_config_names()
SYNTHETIC = sorted(f"synthetic/{p.stem}" for p in SYNTHETIC_DIR.glob("*.json"))
# Synthetic families kvplan does not model yet; each must fail loudly rather than be estimated wrong (none
# today: every synthetic family is read, issue 12).
NOT_MODELLED: set[str] = set()


def _lengths(shape) -> list[int]:
    windows = sorted({c.window for c in shape.caches() if isinstance(c, L.KVAttention) and c.window})
    lengths = {1, 37}
    for w in windows[:2]:
        lengths |= {w - 1, w, w + 1, 2 * w + 3}
    # DeepSeek-V4: around its ring and every compression ratio (a window closes, the open window's buffer)
    v4 = [c for c in shape.caches() if isinstance(c, L.CompressedAttention)]
    for span in sorted({c.window for c in v4} | {c.compress_ratio for c in v4 if c.compress_ratio}):
        lengths |= {span - 1, span, span + 1, 2 * span + 3}
    return sorted(lengths)


def _expected_per_layer(shape, tokens: int, batch: int) -> list[int]:
    engine = TransformersEngine.for_shape(shape)  # Falcon's new decoder architecture caches every query head
    req = Request(tokens, batch, "bfloat16", "bfloat16")
    return [sum(engine.stage_costs([cache], req)[0].bytes for cache in layer) for layer in shape.layers]


def _load(name: str) -> dict:
    return load_config(name.split("/")[-1]) if "/" not in name else load_config(name.split("/")[1])


@pytest.mark.slow
@pytest.mark.parametrize("name", REAL + [s for s in SYNTHETIC if s not in NOT_MODELLED])
def test_estimate_equals_real_cache_bytes(name):
    config = _load(name)
    try:
        hf_config = torch_cache.hf_config_from_dict(config)
    except UnsupportedArchitecture as exc:
        pytest.skip(f"transformers cannot build it without remote code: {exc}")
    shape = model_shape(config)
    model = torch_cache.build_model(hf_config, dtype="bfloat16", device="meta")
    for seq_len in _lengths(shape):
        for batch, decode in ((1, 0), (2, 3)):
            measured = torch_cache.measure_forward_cache(
                hf_config, seq_len=seq_len, batch=batch, decode_steps=decode, model=model, device="meta"
            )
            expected = _expected_per_layer(shape, seq_len + decode, batch)
            assert [m["nbytes"] for m in measured] == expected, (seq_len, batch, decode)


@pytest.mark.parametrize("name", sorted(NOT_MODELLED))
def test_unmodelled_families_are_not_silently_wrong(name):
    """Families whose caches kvplan cannot size yet either raise or are flagged as assumed."""
    config = _load(name)
    try:
        shape = model_shape(config)
    except Exception as exc:
        assert "kvplan" in type(exc).__module__
        return
    assert shape.assumptions, f"{name} was read without saying what was assumed"


# Configs that omit head_dim: the shape reader uses the default transformers' config class assumes for the
# family (kvplan.core.families: Gemma 256, GLM 128, Qwen3 128, gpt-oss 64, Qwen3-Next 256, MiMo 192, Llama 4 128,
# Ministral 3 128), else (Cohere 2) hidden_size / num_attention_heads.
WITHOUT_HEAD_DIM = [
    "synthetic/llama4_text_chunked",
    "synthetic/ministral3_sw",
    "synthetic/gemma2_sw",
    "synthetic/gemma3_text_layer_types",
    "synthetic/cohere2_sw",
    "synthetic/glm",
    "synthetic/glm4",
    "synthetic/qwen3_next",
    "Qwen__Qwen3-8B",
    "openai__gpt-oss-20b",
    # Gemma 4 and Gemma 3n: 256 (Gemma 4's full layers keep global_head_dim); MiMo-V2-Flash: 192 (V keeps v_head_dim)
    "synthetic/gemma4_text_kv_shared",
    "synthetic/gemma3n_text",
    "synthetic/mimo_v2_flash_defaults",
]


@pytest.mark.parametrize("name", WITHOUT_HEAD_DIM)
def test_family_head_dim_defaults_match_real_cache_bytes(name):
    config = {k: v for k, v in _load(name).items() if k != "head_dim"}
    shape = model_shape(config)
    measured = torch_cache.measure_forward_cache(config, seq_len=37, device="meta")
    assert [m["nbytes"] for m in measured] == _expected_per_layer(shape, 37, 1)
