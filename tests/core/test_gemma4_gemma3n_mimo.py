"""Gemma 4, Gemma 3n and MiMo-V2-Flash shapes (issue 12): the rules of kvplan.core.shapes' readers, each with the
source it follows. The cache bytes themselves are checked against transformers 5.24's tensors on the meta device
in tests/profiling/test_against_transformers.py (the catalog configs and synthetic/gemma3n_text,
gemma4_text_kv_shared, mimo_v2_flash_defaults)."""

from __future__ import annotations

from collections import Counter

import pytest

from kvplan.core import specs as L
from kvplan.core.config import vocab_size
from kvplan.core.families import FAMILIES
from kvplan.core.shapes import WINDOW_IS_SIZE_PLUS_ONE, model_shape
from kvplan.errors import ConfigError
from kvplan.weights.tensors import assumed_family, count_parameters

from conftest import load_config

GEMMA4_31B = "nvidia__Gemma-4-31B-IT-NVFP4"
GEMMA4_26B = "google__gemma-4-26B-A4B"
MIMO = "XiaomiMiMo__MiMo-V2-Flash"


def _text(name: str, **changes) -> dict:
    """The text config of a gemma4 wrapper, changed."""
    cfg = dict(load_config(name)["text_config"])
    cfg.update(changes)
    return cfg


def test_gemma4_31b_sliding_and_global_layers_have_their_own_heads():
    """Sliding: num_key_value_heads x head_dim; full (global): num_global_key_value_heads x global_head_dim,
    transformers 5.24 configuration_gemma4.py:208-222 (`per_layer_config`), read by vLLM 0.33 gemma4.py:578-580."""
    counts = Counter(model_shape(load_config(GEMMA4_31B)).caches())
    assert counts == {L.SlidingWindow(16, 256, 256, 1024): 50, L.FullAttention(4, 512, 512): 10}


def test_gemma4_26b_moe_is_read_the_same_way():
    counts = Counter(model_shape(load_config(GEMMA4_26B)).caches())
    assert counts == {L.SlidingWindow(8, 256, 256, 1024): 25, L.FullAttention(2, 512, 512): 5}


def test_gemma4_global_kv_heads_apply_only_with_k_eq_v():
    """configuration_gemma4.py:214: num_global_key_value_heads overrides the full layers' KV heads only when
    attention_k_eq_v is set; the head size is global_head_dim either way."""
    shape = model_shape(_text(GEMMA4_31B, attention_k_eq_v=False, model_type="gemma4_text"))
    assert Counter(shape.caches())[L.FullAttention(16, 512, 512)] == 10
    default_dim = _text(GEMMA4_31B, model_type="gemma4_text")
    del default_dim["global_head_dim"]  # Gemma4TextConfig's default: 512
    assert Counter(model_shape(default_dim).caches())[L.FullAttention(4, 512, 512)] == 10


def test_gemma4_k_eq_v_layers_still_cache_k_and_v():
    """attention_k_eq_v drops v_proj, not V: transformers caches v_norm(k_proj(x)) beside the rotated K
    (modeling_gemma4.py:1218-1228), vLLM loads k_proj into both K and V slots (gemma4.py:89-118)."""
    full = next(c for c in model_shape(load_config(GEMMA4_31B)).caches() if c.kind == L.FULL)
    assert full.elements_per_token() == 4 * (512 + 512)


def test_gemma4_kv_shared_layers_cache_nothing():
    """The last num_kv_shared_layers reuse the last earlier layer of their type (transformers
    configuration_gemma4.py:226-251 "reuse" -> DummyLayer; vLLM kv_sharing_target_layer_name, no spec)."""
    shape = model_shape(_text(GEMMA4_31B, num_kv_shared_layers=20, model_type="gemma4_text"))
    assert [layer[0].kind for layer in shape.layers[40:]] == [L.NONE] * 20
    assert all(layer[0].kind != L.NONE for layer in shape.layers[:40])


def test_gemma4_last_layer_is_full_and_bidirectional_all_halves_the_window():
    """configuration_gemma4.py:195-199 forces the last layer to full attention; :184-186 sets the window to
    w // 2 + 1 when use_bidirectional_attention is "all"."""
    types = ["sliding_attention"] * 6
    shape = model_shape(_text(GEMMA4_31B, num_hidden_layers=6, layer_types=types, use_bidirectional_attention="all"))
    assert [layer[0].kind for layer in shape.layers] == [L.SLIDING] * 5 + [L.FULL]
    assert shape.layers[0][0].window == 1024 // 2 + 1


@pytest.mark.parametrize("shared", [60, 61])
def test_gemma4_sharing_every_layer_is_refused(shared):
    with pytest.raises(ConfigError, match="num_kv_shared_layers"):
        model_shape(_text(GEMMA4_31B, num_kv_shared_layers=shared))


def test_kv_sharing_of_a_type_no_producer_has_is_refused():
    """transformers raises when a shared layer's type has no earlier producer (configuration_gemma3n.py:218-222)."""
    cfg = {**load_config("synthetic/gemma3n_text"), "num_kv_shared_layers": 4}  # layers 2.. share; layer 2 is full
    cfg["layer_types"] = ["sliding_attention", "sliding_attention", "full_attention"] * 2
    with pytest.raises(ConfigError, match="layer type no earlier layer produces"):
        model_shape(cfg)


def test_gemma3n_shared_layers_cache_nothing_and_default_to_15():
    """Gemma3nTextConfig: num_kv_shared_layers default 15, layer_types default full every 5th
    (configuration_gemma3n.py:124, :140-143); shared layers are DummyLayers in transformers' cache."""
    shape = model_shape(load_config("synthetic/gemma3n_text"))
    assert [layer[0].kind for layer in shape.layers] == [L.SLIDING, L.SLIDING, L.FULL, L.SLIDING, L.NONE, L.NONE]
    cfg = {k: v for k, v in load_config("synthetic/gemma3n_text").items() if k not in ("layer_types",)}
    cfg.update(num_hidden_layers=35, num_kv_shared_layers=None, intermediate_size=128)
    kinds = [layer[0].kind for layer in model_shape(cfg).layers]
    assert kinds[20:] == [L.NONE] * 15 and kinds[4] == L.FULL and L.NONE not in kinds[:20]


def test_mimo_v2_flash_k_and_v_head_sizes_differ():
    """Full: num_key_value_heads x (head_dim K + v_head_dim V); sliding: swa_num_key_value_heads x (swa_head_dim
    + swa_v_head_dim), vLLM 0.33 mimo_v2.py:409-436, transformers modeling_mimo_v2_flash.py:341-357."""
    shape = model_shape(load_config(MIMO))
    assert Counter(shape.caches()) == {L.SlidingWindow(8, 192, 128, 129): 39, L.FullAttention(4, 192, 128): 9}
    assert shape.caches()[0].elements_per_token() == 4 * (192 + 128)


def test_mimo_v2_flash_hybrid_pattern_is_transformers_default_layer_types():
    """vLLM and SGLang read hybrid_layer_pattern (1 = sliding); transformers ignores it and builds full layers at
    0 and every 6th (configuration_mimo_v2_flash.py:113-117): for the published config both readings agree."""
    cfg = load_config(MIMO)
    default = ["full" if i == 0 or (i + 1) % 6 == 0 else "sliding" for i in range(48)]
    assert ["sliding" if p == 1 else "full" for p in cfg["hybrid_layer_pattern"]] == default
    changed = {**cfg, "hybrid_layer_pattern": [1] * 47 + [0]}
    assert [layer[0].kind for layer in model_shape(changed).layers] == [L.SLIDING] * 47 + [L.FULL]


def test_mimo_v2_flash_window_is_size_plus_one_for_transformers():
    """transformers sets sliding_window = sliding_window_size + 1 (configuration_mimo_v2_flash.py:131-132): its
    sliding cache keeps 128 tokens; the shape says vLLM's window is the size itself."""
    shape = model_shape(load_config(MIMO))
    assert {c.window for c in shape.caches() if c.kind == L.SLIDING} == {129}
    assert WINDOW_IS_SIZE_PLUS_ONE in shape.features
    plain = {k: v for k, v in load_config(MIMO).items() if k != "sliding_window_size"}
    assert {c.window for c in model_shape(plain).caches() if c.kind == L.SLIDING} == {128}
    assert WINDOW_IS_SIZE_PLUS_ONE not in model_shape(plain).features


def test_families_have_weights_layouts_and_vocabularies():
    for name in (GEMMA4_31B, GEMMA4_26B, MIMO):
        assert assumed_family(load_config(name)) is None
    assert vocab_size({k: v for k, v in _text(GEMMA4_31B).items() if k != "vocab_size"}) == 262144
    assert vocab_size({k: v for k, v in load_config(MIMO).items() if k != "vocab_size"}) == 152576
    assert vocab_size({"model_type": "gemma3n_text", "hidden_size": 64}) == 262400


def test_gemma4_weights_count_the_text_model_only():
    """The wrapper's count is Gemma4ForCausalLM's over text_config (no vision tower): 30.70 B for 31B."""
    config = load_config(GEMMA4_31B)
    assert count_parameters(config) == count_parameters(_text(GEMMA4_31B)) == 30_697_345_280


TRANSFORMERS_CONFIGS = {
    "gemma4_text": "Gemma4TextConfig",
    "gemma3n_text": "Gemma3nTextConfig",
    "mimo_v2_flash": "MiMoV2FlashConfig",
}


@pytest.mark.torch
@pytest.mark.parametrize("family", sorted(TRANSFORMERS_CONFIGS))
def test_family_defaults_are_transformers_config_class_defaults(family):
    """Every default in the Family entry is the value transformers 5.24's config class assumes."""
    transformers = pytest.importorskip("transformers")
    default = getattr(transformers, TRANSFORMERS_CONFIGS[family])()
    for key, value in FAMILIES[family].defaults.items():
        if key in ("global_head_dim", "head_dim") and family == "gemma4_text":  # per-layer: read each layer type's
            kind = "full_attention" if key == "global_head_dim" else "sliding_attention"
            assert default.per_layer_config[default.layer_types.index(kind)].head_dim == value
        else:
            assert getattr(default, key) == value, key
