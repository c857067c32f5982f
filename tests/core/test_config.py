"""kvplan.core.config (the one config-reading layer) and kvplan.core.units' dtype table: key aliases, the nesting
rule, family defaults and the head_dim policy."""

from __future__ import annotations

import pytest

from kvplan.core import config as C
from kvplan.core.families import canonical_model_type, family_of
from kvplan.core.units import DTYPE_BYTES, DTYPES, canonical_dtype, dtype_name
from kvplan.errors import ConfigError, UsageError
from kvplan.weights.stored import dtype_bytes_of

from conftest import load_config

# ---- key aliases


@pytest.mark.parametrize("key", C.LAYER_KEYS)
def test_layer_count_aliases(key):
    assert C.num_layers({key: 12}) == 12


@pytest.mark.parametrize("key", C.HIDDEN_KEYS)
def test_hidden_size_aliases(key):
    assert C.hidden_size({key: 768}) == 768


def test_first_present_key_wins_in_engine_order():
    assert C.num_heads({"n_head": 12, "num_attention_heads": 16}) == 16
    assert C.num_kv_heads({"num_attention_heads": 16, "n_head_kv": 2, "num_key_value_heads": 4}) == 4
    assert C.num_kv_heads({"num_attention_heads": 16, "multi_query_group_num": 2}) == 2  # ChatGLM
    assert C.num_kv_heads({"num_attention_heads": 16, "num_key_value_heads": None}) == 16  # null: MHA


def test_readers_name_the_missing_or_bad_field():
    with pytest.raises(ConfigError, match="num_hidden_layers"):
        C.num_layers({})
    with pytest.raises(ConfigError, match=r"`n_layer` must be a positive integer"):
        C.num_layers({"n_layer": 2.5})
    with pytest.raises(ConfigError, match="more KV heads"):
        C.num_kv_heads({"num_attention_heads": 4, "num_key_value_heads": 8})
    with pytest.raises(ConfigError, match="positive integer"):
        C.positive_int({"x": True}, "x")


def test_optional_int_never_raises():
    assert C.optional_int({"n_head": 8}, *C.HEAD_KEYS) == 8
    assert C.optional_int({}, *C.HEAD_KEYS) is None
    assert C.optional_int({"n_head": "8"}, *C.HEAD_KEYS) is None
    assert C.optional_int({"n_head": True}, *C.HEAD_KEYS) is None
    assert C.optional_int({"n_head": 0, "num_heads": 8}, "n_head", "num_heads") is None  # the first present key


def test_other_readers():
    assert C.intermediate_size({"ffn_hidden_size": 13696}) == 13696  # ChatGLM / Falcon spelling
    assert C.intermediate_size({"n_inner": None}, default=3072) == 3072  # GPT-2's null n_inner
    assert C.max_positions({"n_positions": 1024}) == 1024
    assert C.max_positions({}) is None
    assert C.num_experts({"n_routed_experts": 256}) == 256
    assert C.sliding_window({"sliding_window_size": 4096}) == 4096
    assert C.raw_dtype({"dtype": "bfloat16"}) == "bfloat16"  # transformers v5 spelling


# ---- head_dim and the family policy


def test_head_dim_explicit_or_derived():
    assert C.head_dim({"model_type": "llama", "hidden_size": 4096, "num_attention_heads": 32}) == 128
    base = {"hidden_size": 5120, "num_attention_heads": 32}
    assert C.head_dim({**base, "model_type": "mistral", "head_dim": 128}) == 128  # Mistral-Nemo
    assert C.head_dim({**base, "model_type": "chatglm", "kv_channels": 128}) == 128
    assert C.head_dim({**base, "model_type": "my_model", "attention_head_dim": 64}) == 64  # unknown family honours


def test_families_that_derive_head_dim_ignore_it():
    gpt2 = {"model_type": "gpt2", "n_embd": 768, "n_head": 12, "head_dim": 80}
    assert family_of(gpt2).honours_head_dim is False
    assert C.head_dim(gpt2) == 64
    assert C.head_dim(gpt2, family=None) == 80  # read as an unknown family: honoured
    assert C.head_dim(gpt2, family=family_of("llama")) == 80


def test_head_dim_not_divisible():
    with pytest.raises(ConfigError, match="no head_dim is given"):
        C.head_dim({"model_type": "llama", "hidden_size": 100, "num_attention_heads": 3})
    with pytest.raises(ConfigError, match="which falcon requires"):
        C.head_dim({"model_type": "falcon", "hidden_size": 100, "num_attention_heads": 3, "head_dim": 32})


def test_falcon_and_chatglm_kv_heads():
    assert C.falcon_kv_heads({"num_attention_heads": 71}) == 1  # multi_query is the default (Falcon-7B)
    assert C.falcon_kv_heads({"num_attention_heads": 8, "multi_query": False}) == 8
    new = {"num_attention_heads": 128, "num_kv_heads": 8, "new_decoder_architecture": True}
    assert C.falcon_kv_heads(new) == 8
    rw = {"model_type": "RefinedWeb", "n_head": 8, "n_head_kv": 2}  # implies the new decoder architecture
    assert C.falcon_new_decoder(rw) and C.falcon_kv_heads(rw) == 2
    assert C.chatglm_kv_heads({"num_attention_heads": 32, "multi_query_attention": True, "multi_query_group_num": 2})
    assert C.chatglm_kv_heads({"num_attention_heads": 32}) == 32


# ---- nesting


@pytest.mark.parametrize("key", ["text_config", "llm_config", "language_config"])
def test_nested_language_model_configs(key):
    outer = {"model_type": "wrapper", "torch_dtype": "bfloat16", key: {"model_type": "llama", "hidden_size": 64}}
    cfg = C.text_config(outer)
    assert cfg["model_type"] == "llama" and cfg["hidden_size"] == 64
    assert cfg["torch_dtype"] == "bfloat16"  # inherited from the wrapper
    assert cfg["_outer_model_type"] == "wrapper"
    assert key not in cfg


def test_inner_keys_win_and_thinker_configs_nest_twice():
    outer = {"model_type": "w", "torch_dtype": "float32", "text_config": {"torch_dtype": "bfloat16"}}
    assert C.text_config(outer)["torch_dtype"] == "bfloat16"
    omni = {"model_type": "qwen2_5_omni", "thinker_config": {"text_config": {"model_type": "qwen2", "n": 1}}}
    assert C.text_config(omni)["model_type"] == "qwen2"
    flat = {"model_type": "llama"}
    assert C.text_config(flat) is flat


# ---- family defaults


def test_language_config_fills_family_defaults_only_where_missing():
    cfg = C.language_config({"model_type": "gemma3_text", "hidden_size": 640, "head_dim": None})
    assert (cfg["head_dim"], cfg["vocab_size"], cfg["tie_word_embeddings"]) == (256, 262208, True)
    explicit = C.language_config({"model_type": "gemma3_text", "head_dim": 128, "vocab_size": 1000})
    assert (explicit["head_dim"], explicit["vocab_size"]) == (128, 1000)
    assert C.language_config({"model_type": "llama"}) == {"model_type": "llama"}  # no defaults for llama


def test_vocab_size_is_family_aware():
    assert C.vocab_size({"model_type": "gemma3_text"}) == 262208
    assert C.vocab_size({"model_type": "gemma3", "text_config": {"model_type": "gemma3_text"}}) == 262208
    assert C.vocab_size({"model_type": "gemma"}) == 256000
    assert C.vocab_size({"model_type": "gemma2"}) == 256000
    assert C.vocab_size({"model_type": "llama"}) == 32000  # LlamaConfig's default
    assert C.vocab_size({"model_type": "chatglm", "padded_vocab_size": 151552}) == 151552
    assert C.vocab_size({"model_type": "gemma3_text", "vocab_size": 262144}) == 262144


def test_gemma_3_27b_vocab_comes_from_the_family_default():
    # The published Gemma-3-27B-it config names no vocab_size in its text_config; transformers uses 262208.
    config = load_config("google__gemma-3-27b-it")
    assert "vocab_size" not in config["text_config"] and "vocab_size" not in config
    assert C.vocab_size(config) == 262208


def test_canonical_model_types():
    assert canonical_model_type("kimi_k2") == "deepseek_v3"
    assert canonical_model_type("RefinedWebModel") == "falcon"
    assert canonical_model_type("gemma3") == "gemma3_text"
    assert canonical_model_type("llama4") == "llama4_text"
    assert canonical_model_type("my_model") == "my_model"
    assert family_of({"model_type": "kimi_k2"}).name == "deepseek_v3"
    assert family_of(None) is None and family_of("") is None


# ---- the dtype table


def test_model_dtype():
    assert C.model_dtype({"torch_dtype": "torch.float16"}) == ("float16", None)
    assert C.model_dtype({"dtype": "bf16"}) == ("bfloat16", None)
    assert C.model_dtype({}) == ("bfloat16", "config names no torch_dtype; assumed bf16")
    assert C.model_dtype({"torch_dtype": "float64"})[1] == "config dtype 'float64' not understood; assumed bf16"
    assert C.model_dtype({"torch_dtype": "int8"})[1] == "config dtype 'int8' is not a compute dtype; assumed bf16"


def test_one_dtype_table_of_spellings_and_bytes():
    assert {dtype_name(s) for s in ("bf16", "torch.bfloat16", "BFloat16", "bfloat16")} == {"bfloat16"}
    assert dtype_name("double") == dtype_name("fp64") == "float64"
    assert dtype_name("float8_e4m3fn") == "fp8_e4m3"
    assert dtype_name("complex32") is None
    assert set(DTYPE_BYTES) <= set(DTYPES)
    assert set(DTYPES) - set(DTYPE_BYTES) == {"float64", "tf32", "uint8", "int64"}  # storage only


def test_cache_dtypes_refuse_storage_only_ones():
    assert canonical_dtype("fp8", what="kv dtype") == "fp8_e4m3"
    for name in ("float64", "double", "uint8", "tf32", "int64", "complex32"):
        with pytest.raises(UsageError):
            canonical_dtype(name)


def test_weights_read_the_same_table():
    assert [dtype_bytes_of({"torch_dtype": t}) for t in ("float64", "float32", "tf32", "bf16", "uint8")] == [
        8,
        4,
        4,
        2,
        1,
    ]
    assert dtype_bytes_of({"torch_dtype": "float8_e4m3fn"}) == 1
    assert dtype_bytes_of({"torch_dtype": "auto"}) == dtype_bytes_of({}) == 2
    for packed in ("int4", "q4_0", "nvfp4"):  # not weight storage dtypes
        with pytest.raises(ConfigError, match="torch_dtype"):
            dtype_bytes_of({"torch_dtype": packed})
