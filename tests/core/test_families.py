"""kvplan.core.families: a family added in ONE place is known to the shape reader, the weights, the lint and the
estimate; every family in the table says whether it has a weights layout."""

from __future__ import annotations

import dataclasses

import pytest

from kvplan.checking.lint import lint_model_config
from kvplan.core import specs as L
from kvplan.core.config import vocab_size
from kvplan.core.families import FAMILIES, Family, family_of, register, registered
from kvplan.core.shapes import READERS, model_shape
from kvplan.errors import ConfigError
from kvplan.planning.estimate import estimate_config
from kvplan.weights.tensors import LAYOUTS, assumed_family, count_parameters

TOY = {
    "model_type": "toy_llama",
    "hidden_size": 256,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "num_hidden_layers": 3,
    "intermediate_size": 512,
    "head_dim": 96,  # ignored: the toy family derives head_dim = 256 / 4 = 64
    "torch_dtype": "bfloat16",
}  # no vocab_size: the family's default applies


def _llama_params(hidden, layers, kv_heads, head_dim, inter, vocab):
    attn = 2 * hidden * hidden + 2 * hidden * kv_heads * head_dim
    return layers * (attn + 3 * hidden * inter + 2 * hidden) + hidden + 2 * vocab * hidden


def _codes(config) -> set[str]:
    return {w.code for w in lint_model_config(config)}


def test_a_family_registered_in_one_place_is_known_everywhere():
    toy = Family("toy_llama", shape="dense", weights="llama", honours_head_dim=False, defaults={"vocab_size": 1234})
    with registered(toy):
        assert family_of("toy_llama") is toy
        shape = model_shape(TOY)
        assert shape.layers == ((L.FullAttention(2, 64, 64),),) * 3
        assert shape.assumptions == ()  # known: nothing assumed
        assert assumed_family(TOY) is None
        assert count_parameters(TOY) == _llama_params(256, 3, 2, 64, 512, 1234) == 2_403_072
        assert vocab_size(TOY) == 1234
        assert "head-dim" in _codes(TOY)  # the lint knows the toy family ignores head_dim
        assert estimate_config(TOY).bytes_per_token == 3 * 2 * (64 + 64) * 2
    # gone again: an unknown model_type, read as a llama-like decoder and said so
    assert family_of("toy_llama") is None
    shape = model_shape(TOY)
    assert shape.layers[0] == (L.FullAttention(2, 96, 96),)  # an unknown family honours head_dim
    assert any("unknown model_type 'toy_llama'" in a for a in shape.assumptions)
    assert assumed_family(TOY) == "llama"
    assert "head-dim" not in _codes(TOY)
    with pytest.raises(ConfigError, match="vocab_size"):  # no family default any more
        count_parameters(TOY)


def test_a_family_without_weights_layout_is_sized_but_reported_as_assumed():
    toy = Family("toy_gemma2", shape="gemma2", weights=None, defaults={"sliding_window": 64})
    config = {**TOY, "model_type": "toy_gemma2", "vocab_size": 1000, "head_dim": 64, "num_hidden_layers": 4}
    with registered(toy):
        kinds = [c.kind for c in model_shape(config).caches()]
        assert kinds == [L.SLIDING, L.FULL, L.SLIDING, L.FULL]  # gemma2's pattern, window from the default
        assert model_shape(config).caches()[0].window == 64
        assert assumed_family(config) == "llama"  # weights unknown is never silent
        assert count_parameters(config) == _llama_params(256, 4, 2, 64, 512, 1000)


def test_registered_cleans_up_on_error_and_refuses_taken_model_types():
    with pytest.raises(RuntimeError), registered(Family("toy_x", shape="dense", weights=None)):
        raise RuntimeError
    assert "toy_x" not in FAMILIES
    with pytest.raises(ValueError, match="deepseek_v3"):
        register(Family("toy_kimi", shape="mla", weights=None, aliases=("kimi_k2",)))
    assert "toy_kimi" not in FAMILIES and family_of("kimi_k2").name == "deepseek_v3"


def test_weights_must_be_named_explicitly():
    with pytest.raises(TypeError):
        Family("toy", shape="dense")  # type: ignore[call-arg]
    with pytest.raises(dataclasses.FrozenInstanceError):
        FAMILIES["llama"].weights = None  # type: ignore[misc]


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_every_family_names_a_reader_and_a_layout_or_none(name):
    family = FAMILIES[name]
    assert family.shape in READERS
    assert family.weights is None or family.weights in LAYOUTS
    for model_type in family.model_types:
        assert family_of(model_type) is family
        # a layout is used as such; no layout is reported by assumed_family (weights unknown is never silent)
        assumed = assumed_family({"model_type": model_type})
        assert (assumed is None) == (family.weights is not None), model_type


def test_every_layout_belongs_to_a_family():
    used = {f.weights for f in FAMILIES.values()}
    assert set(LAYOUTS) <= used


DERIVED = sorted(n for n, f in FAMILIES.items() if not f.honours_head_dim)


@pytest.mark.parametrize("name", DERIVED)
def test_families_that_ignore_head_dim_agree_across_shape_weights_and_lint(name):
    config = {
        "model_type": name,
        "hidden_size": 256,
        "num_attention_heads": 4,
        "num_hidden_layers": 8,
        "intermediate_size": 512,
        "vocab_size": 1000,
    }
    with_head_dim = {**config, "head_dim": 96}
    heads = {(c.head_dim_k, c.head_dim_v) for c in model_shape(with_head_dim).caches() if isinstance(c, L.KVAttention)}
    assert heads == {(64, 64)}
    assert "head-dim" in _codes(with_head_dim)
    assert "head-dim" not in _codes(config)
    if FAMILIES[name].weights is not None:
        assert count_parameters(with_head_dim) == count_parameters(config)


def test_ground_truth_builds_remote_code_spellings_as_the_table_says():
    gt = pytest.importorskip("kvplan.profiling.ground_truth", reason="needs torch + transformers")
    assert gt.native_model_type("kimi_k2") == "deepseek_v3"
    assert gt.native_model_type("RefinedWeb") == "falcon"
    assert gt.native_model_type("gemma3") == "gemma3"  # transformers knows the wrapper: kept
    assert gt.native_model_type("chatglm") == "chatglm"  # remote code only: unchanged (and unsupported)
