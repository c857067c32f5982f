"""Inputs llama.cpp (ggml-org/llama.cpp@0c1e57098) would not load or convert, which kvplan used to size or fail on
with an internal error: GGUF values of the wrong type or length (llama-model-loader.cpp get_key<uint32_t>,
get_key_or_arr's "wrong array length", :476-478), a glm-dsa file without the context_length its loader requires
(llama-model.cpp:1321), and MiMo-V2-Flash configs whose layers its converter would build otherwise
(conversion/mimo.py:146-161). Each is one `error:` line and a `hint:`."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from kvplan.cli import app
from kvplan.errors import ConfigError
from kvplan.sources.gguf import config_from_metadata
from tests.engines.test_llamacpp_dsa import dsa_metadata
from tests.engines.test_llamacpp_kda_lightning import K3, _minimax, kimi_metadata, minimax_metadata

from conftest import load_config


@pytest.mark.parametrize("value", ["full", 1.0])
def test_glm_dsa_indexer_types_must_be_an_integer(value):
    meta = dsa_metadata(load_config("zai-org__GLM-5"), "glm-dsa", **{"attention.indexer.types": value})
    with pytest.raises(ConfigError, match="indexer.types is not an integer"):
        config_from_metadata(meta, {}, {})


def test_a_glm_dsa_config_without_max_position_embeddings_is_refused_for_that_reason(tmp_path):
    """The converter then writes no context_length, which llama.cpp's loader requires (llama-model.cpp:1321) and
    picks glm-dsa's full-indexer layers by (glm-dsa.cpp:59-66); it was refused as "21 of 78 layers" before."""
    cfg = load_config("zai-org__GLM-5")
    del cfg["max_position_embeddings"]
    path = tmp_path / "config.json"
    path.write_text(json.dumps(cfg))
    result = CliRunner().invoke(app, ["estimate", str(path), "--engine", "llamacpp", "--offline"])
    assert result.exit_code == 2, result.output
    assert "a key it requires (llama-model.cpp:1321)" in result.output.splitlines()[0]


def test_kda_gate_lower_bound_must_be_a_number():
    meta = kimi_metadata(load_config(K3)["text_config"], **{"kda.gate_lower_bound": "x"})
    with pytest.raises(ConfigError, match="gate_lower_bound is not a number"):
        config_from_metadata(meta, {}, {})


def test_minimax_01_layer_lists_and_intervals_llama_cpp_rejects():
    cfg = _minimax()
    n = cfg["num_hidden_layers"]
    pattern = [(i + 1) % 8 != 0 for i in range(n)]
    with pytest.raises(ConfigError, match=f"does not list {n} layers"):  # longer: get_key_or_arr's exact length
        config_from_metadata(minimax_metadata(cfg, **{"attention.recurrent_layers": pattern + [True] * 3}), {}, {})
    with pytest.raises(ConfigError, match="full_attention_interval is 0"):
        config_from_metadata(minimax_metadata(cfg, full_attention_interval=0), {}, {})
    config, _ = config_from_metadata(minimax_metadata(cfg, **{"attention.recurrent_layers": pattern}), {}, {})
    assert config["model_type"] == "minimax"


def _mimo(tmp_path, **change) -> str:
    cfg = load_config("XiaomiMiMo__MiMo-V2-Flash")
    for key, value in change.items():
        if value is None:
            cfg.pop(key, None)
        else:
            cfg[key] = value
    path = tmp_path / "config.json"
    path.write_text(json.dumps(cfg))
    return str(path)


@pytest.mark.parametrize(
    "change",
    [
        {"layer_types": ["full_attention"] * 48},  # not hybrid_layer_pattern's sliding layers (mimo.py:155, :161)
        {"hybrid_layer_pattern": None},  # mimo.py:155 reads it
        {"swa_head_dim": 128},  # mimo.py:146 asserts swa_head_dim == head_dim
    ],
)
def test_mimo_configs_llama_cpp_would_convert_otherwise_are_refused(tmp_path, change):
    path = _mimo(tmp_path, **change)
    result = CliRunner().invoke(app, ["estimate", path, "--engine", "llamacpp", "--offline"])
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert lines[0].startswith("error: llama.cpp's converter would not build this MiMo-V2-Flash config's layers")
    assert lines[1].startswith("hint: ")
    assert CliRunner().invoke(app, ["estimate", path, "--engine", "vllm", "--offline"]).exit_code in (0, 2)


def test_the_catalog_mimo_config_is_still_sized(tmp_path):
    result = CliRunner().invoke(
        app, ["estimate", _mimo(tmp_path), "--engine", "llamacpp", "--seq-len", "8192", "--batch", "2", "--json"]
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["kv_cache_bytes"] == 684_195_840
