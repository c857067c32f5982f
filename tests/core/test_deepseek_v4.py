"""DeepSeek-V4 (`deepseek_v4`): the reader, the spec, and the engines that size it or refuse it.

The bytes transformers holds are checked against its real cache tensors on the meta device in
tests/profiling/test_against_transformers.py (every catalog config, lengths around the window and each
compression ratio, batch 1 and 2, decode steps); the parameter count and the FP8 / FP4 bytes against a meta
build in tests/weights/test_weights.py.
"""

from __future__ import annotations

from collections import Counter

import pytest

from kvplan.core import specs as L
from kvplan.core.shapes import model_shape
from kvplan.engines.base import Request
from kvplan.engines.registry import get_engine
from kvplan.errors import ConfigError, UnsupportedArchitecture, UsageError

from conftest import load_config

V4 = ["deepseek-ai__DeepSeek-V4-Flash", "deepseek-ai__DeepSeek-V4-Pro"]


@pytest.mark.parametrize("name", V4)
def test_compress_ratios_list_the_mtp_layers_after_the_decoder_layers(name):
    """The released configs list num_hidden_layers + num_nextn_predict_layers ratios: vLLM 0.33.0
    transformers_utils/deepseek_v4_utils.py:7 ("Per-layer compress ratios (0 = sliding window), MTP layers
    included"; derived from layer_types it appends `[0] * num_nextn_predict_layers`, :18), and
    models/deepseek_v4/attention.py:235-242 gives layers past num_hidden_layers (the MTP layer) ratio 1, no
    compressor. The decoder layers are the first num_hidden_layers entries."""
    config = load_config(name)
    n, mtp = config["num_hidden_layers"], config["num_nextn_predict_layers"]
    assert len(config["compress_ratios"]) == n + mtp
    shape = model_shape(config)
    assert shape.num_layers == n
    assert [c.compress_ratio for c in shape.caches()] == config["compress_ratios"][:n]


@pytest.mark.parametrize("name", V4)
def test_layer_kinds_follow_the_ratios(name):
    """Ratio 4 is CSA (overlapping windows, the lightning indexer), 128 HCA, 0 sliding only (vLLM 0.33.0
    models/deepseek_v4/attention.py:302 "Only C4A uses sparse attention and hence has indexer"; compressor.py:159
    `coff = 1 + (compress_ratio == 4)`)."""
    config = load_config(name)
    ratios = Counter(config["compress_ratios"][: config["num_hidden_layers"]])
    kinds = Counter(c.kind for c in model_shape(config).caches())
    assert kinds == {k: v for k, v in {L.V4_SLIDING: ratios[0], L.CSA: ratios[4], L.HCA: ratios[128]}.items() if v}
    for cache in model_shape(config).caches():
        assert isinstance(cache, L.CompressedAttention)
        assert (cache.head_dim, cache.window) == (config["head_dim"], config["sliding_window"])
        assert cache.overlap == (cache.compress_ratio == 4)
        assert cache.index_head_dim == (config["index_head_dim"] if cache.compress_ratio == 4 else 0)


def test_reader_matches_transformers_layer_types():
    """The reader's schedule equals DeepseekV4Config's `layer_types` for the released configs, for a config with
    `layer_types` + `compress_rates` instead of `compress_ratios`, and for one with neither (its default)."""
    pytest.importorskip("transformers")
    from kvplan.profiling.ground_truth import hf_config_from_dict

    ratio = {"sliding_attention": 0, "compressed_sparse_attention": 4, "heavily_compressed_attention": 128}
    configs = [load_config(n) for n in V4]
    modern = {k: v for k, v in configs[0].items() if k != "compress_ratios"}
    modern["layer_types"] = hf_config_from_dict(configs[0]).layer_types
    bare = {k: v for k, v in configs[1].items() if k != "compress_ratios"}
    for config in [*configs, modern, bare]:
        hf = hf_config_from_dict(config)
        assert [c.compress_ratio for c in model_shape(config).caches()] == [ratio[t] for t in hf.layer_types]


def test_bad_ratio_lists_are_refused():
    config = load_config(V4[0])
    with pytest.raises(ConfigError, match="compress_ratios"):
        model_shape({**config, "compress_ratios": config["compress_ratios"][:-2]})
    with pytest.raises(UnsupportedArchitecture, match="compress ratio"):
        model_shape({**config, "compress_ratios": [8] * len(config["compress_ratios"])})


def test_spec_arithmetic():
    csa = L.CompressedAttention(512, 128, 4, overlap=True, index_head_dim=128)
    hca = L.CompressedAttention(512, 128, 128)
    ring = L.CompressedAttention(512, 128)
    assert (csa.kind, hca.kind, ring.kind) == (L.CSA, L.HCA, L.V4_SLIDING)
    assert [csa.entries(t) for t in (3, 4, 7, 8)] == [0, 1, 1, 2]
    assert [hca.entries(t) for t in (127, 128, 300)] == [0, 1, 2]
    assert ring.entries(10**6) == 0 and ring.entry_elements() == 0 and ring.compressor_width() == 0
    assert (csa.entry_elements(), hca.entry_elements()) == (512 + 128, 512)
    assert (csa.compressor_width(), hca.compressor_width()) == (2 * (512 + 128), 512)


@pytest.mark.parametrize("engine", ["transformers-static"])
def test_engines_without_a_v4_storage_model_refuse_it(engine):
    """No engine may size DeepSeek-V4 as something else (before: vLLM 0 B per token; vLLM's own V4 storage is
    tests/engines/test_vllm_deepseek_v4.py, SGLang's tests/engines/test_sglang_deepseek_v4.py, TensorRT-LLM's
    tests/engines/test_tensorrt_llm_deepseek_v4.py, llama.cpp's tests/engines/test_llamacpp_dsv4.py)."""
    shape = model_shape(load_config(V4[0]))
    storage = get_engine(engine, shape)
    with pytest.raises(UsageError) as err:
        storage.stage_costs(shape.caches(), Request(4096, 1, "bfloat16", "bfloat16"))
    assert "deepseek_v4" in err.value.message and "\n" not in err.value.message


def test_transformers_cost_grows_with_the_compressed_entries():
    """The marginal cost past the window is the compressed entries alone: head_dim (+ index_head_dim) per
    `ratio` tokens, in the model dtype."""
    shape = model_shape(load_config(V4[0]))
    storage = get_engine("transformers", shape)
    costs = {c.kind: c for c in storage.stage_costs(shape.caches(), Request(131072, 1, "bfloat16", "bfloat16"))}
    layers = Counter(c.kind for c in shape.caches())
    assert costs[L.V4_SLIDING].bytes_per_token == 0 and costs[L.V4_SLIDING].tokens == 127
    assert costs[L.CSA].bytes_per_token == layers[L.CSA] * (512 + 128) * 2 / 4
    assert costs[L.HCA].bytes_per_token == layers[L.HCA] * 512 * 2 / 128


def test_estimate_shows_the_v4_kinds_and_sizes_vllm():
    import json

    from typer.testing import CliRunner

    from kvplan.cli import app

    runner = CliRunner()
    args = ["estimate", "deepseek-ai/DeepSeek-V4-Flash", "--seq-len", "131072", "--offline"]
    out = runner.invoke(app, [*args, "--engine", "transformers", "--json"])
    assert out.exit_code == 0, out.output
    report = json.loads(out.output)
    shape = model_shape(load_config(V4[0]))
    assert {k["kind"]: k["count"] for k in report["layers"]} == Counter(c.kind for c in shape.caches())
    assert report["kv_cache_bytes"] == sum(k["bytes"] for k in report["layers"]) > 0
    table = runner.invoke(app, [*args, "--engine", "transformers"])
    assert "CSA compressed" in table.output and "HCA compressed" in table.output
    vllm = runner.invoke(app, args)  # vLLM, the default engine: its own groups (tests/engines/test_vllm_deepseek_v4.py)
    assert vllm.exit_code == 0, vllm.output
    assert "CSA/HCA + index" in vllm.output and "compressor ring" in vllm.output
