"""Sanity tests of kvplan.profiling.ground_truth (the transformers-side ground truth), against numbers measured in
shared/notes/transformers-cache.md. Full-size configs run on the meta device (no memory, ~1 s each)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from conftest import load_config

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from kvplan.errors import UnsupportedArchitecture
from kvplan.profiling.ground_truth import (
    cache_layer_bytes,
    hf_config_from_dict,
    measure_cache_steps,
    measure_forward_cache,
    total_nbytes,
)

pytestmark = pytest.mark.torch


def load(name: str) -> dict:
    return load_config(name.removesuffix(".json"))


@pytest.mark.slow
def test_llama_3_1_8b_full_attention():
    layers = measure_forward_cache(load("meta-llama__Llama-3.1-8B.json"), seq_len=1024)
    assert len(layers) == 32
    assert {layer["class"] for layer in layers} == {"DynamicLayer"}
    assert layers[0]["tensors"]["keys"] == ((1, 8, 1024, 128), "bfloat16", 2_097_152)
    assert total_nbytes(layers) == 134_217_728 == 2 * 32 * 8 * 128 * 1024 * 2


@pytest.mark.slow
def test_deepseek_v3_caches_the_mla_latent():
    layers = measure_forward_cache(load("deepseek-ai__DeepSeek-V3.json"), seq_len=1024)
    assert len(layers) == 61
    assert layers[0]["tensors"]["keys"][0] == (1, 1, 1024, 512)  # kv_lora_rank
    assert layers[0]["tensors"]["values"][0] == (1, 1, 1024, 64)  # qk_rope_head_dim
    assert total_nbytes(layers) == 71_958_528 == 61 * 1024 * (512 + 64) * 2


@pytest.mark.slow
def test_kimi_k2_alias_builds_as_deepseek_v3():
    raw = load("moonshotai__Kimi-K2-Instruct.json")
    assert raw["model_type"] == "kimi_k2" and "auto_map" in raw
    assert hf_config_from_dict(raw).model_type == "deepseek_v3"
    assert total_nbytes(measure_forward_cache(raw, seq_len=8)) == 61 * 8 * (512 + 64) * 2


@pytest.mark.slow
def test_mistral_sliding_window_keeps_w_minus_1_and_prefill_pins_storage():
    raw = load("mistralai__Mistral-7B-v0.1.json")  # sliding_window 4096
    by_steps = measure_cache_steps(raw, seq_len=8192, record_steps=(0, 1))
    after_prefill, after_step = by_steps[0], by_steps[1]
    assert {layer["class"] for layer in after_prefill} == {"DynamicSlidingWindowLayer"}
    assert after_prefill[0]["tensors"]["keys"][0] == (1, 8, 4095, 128)
    assert total_nbytes(after_prefill) == 32 * 2 * 8 * 128 * 4095 * 2 == 536_739_840
    # right after the prefill the kept window is a view of all 8192 prefill tokens
    assert sum(layer["storage_nbytes"] for layer in after_prefill) == 32 * 2 * 8 * 128 * 8192 * 2
    # after one decode step the storage is W tokens, the view still W-1
    assert total_nbytes(after_step) == 536_739_840
    assert sum(layer["storage_nbytes"] for layer in after_step) == 32 * 2 * 8 * 128 * 4096 * 2


def test_measure_cache_steps_matches_separate_runs():
    raw = load("gemma2_sw.json")
    both = measure_cache_steps(raw, seq_len=40, batch=2, record_steps=(0, 2))
    for steps in (0, 2):
        assert both[steps] == measure_forward_cache(raw, seq_len=40, batch=2, decode_steps=steps)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        # tiny-model probe of the notes (B=2, S=40 + 3 decode steps, fp32, W=16)
        ("mistral_sw.json", 30_720),
        ("qwen2_sliding.json", 59_392),
        ("gemma2_sw.json", 59_392),
        ("gemma3_text_layer_types.json", 60_416),
        ("cohere2_sw.json", 2 * 45_056),  # 8 layers here (notes: 4)
        ("llama4_text_chunked.json", 45_056),
        ("gpt_bigcode_mqa.json", 44_032),
        ("falcon7b_mqa_style.json", 44_032),
        ("deepseek_v2_q_lora.json", 55_040),
        ("deepseek_v32_dsa.json", 77_056),
        ("qwen3_next.json", 58_880),
        ("jamba.json", 83_456),
        ("bamba.json", 86_528),
        ("falcon_h1.json", 174_080),
        ("nemotron_h.json", 43_520),
        ("lfm2.json", 26_624),
        ("mamba.json", 81_920),
        ("minimax.json", 60_416),
        ("gemma3n_text.json", 45_056),
    ],
)
def test_tiny_configs_match_the_notes_on_meta_and_cpu(name, expected):
    raw = load(name)
    meta = measure_forward_cache(raw, seq_len=40, batch=2, decode_steps=3, dtype="float32", device="meta")
    assert total_nbytes(meta) == expected
    cpu = measure_forward_cache(raw, seq_len=40, batch=2, decode_steps=3, dtype="float32", device="cpu")

    def strip(layers):
        return [(layer["class"], layer["tensors"], layer["nbytes"]) for layer in layers]

    assert strip(meta) == strip(cpu)


def test_falcon_new_decoder_architecture_caches_all_query_heads():
    for name in ("falcon40b_style.json", "falcon40b_rw_style.json"):  # 8 heads, 2 KV heads, head_dim 16
        layers = measure_forward_cache(load(name), seq_len=10)
        assert layers[0]["tensors"]["keys"][0] == (1, 8, 10, 16)
        assert total_nbytes(layers) == 4 * 2 * 8 * 16 * 10 * 2


@pytest.mark.slow
def test_mamba_state_is_fp32_in_bf16_and_constant_in_seq_len():
    raw = load("ai21labs__AI21-Jamba-1.5-Mini.json")
    short = measure_forward_cache(raw, seq_len=8)
    long = measure_forward_cache(raw, seq_len=9000)  # per-token scan shortcut on meta keeps this fast
    mamba = [layer for layer in long if layer["class"] == "LinearAttentionLayer"]
    attn = [layer for layer in long if layer["class"] == "DynamicLayer"]
    assert (len(mamba), len(attn)) == (28, 4)
    assert mamba[0]["tensors"]["conv_states"] == ((1, 8192, 4), "bfloat16", 65_536)
    assert mamba[0]["tensors"]["recurrent_states"] == ((1, 8192, 16), "float32", 524_288)
    assert [m["tensors"] for m in short if m["class"] == "LinearAttentionLayer"] == [m["tensors"] for m in mamba]
    assert total_nbytes(long) == 28 * (65_536 + 524_288) + 4 * 2 * 8 * 128 * 9000 * 2


def test_multimodal_wrapper_builds_the_text_config():
    hf = hf_config_from_dict(load("google__gemma-3-12b-it.json"))
    assert hf.model_type == "gemma3_text"
    assert hf.sliding_window == 1024


@pytest.mark.parametrize(
    "name",
    [
        "THUDM__glm-4-9b-chat.json",
        "baichuan-inc__Baichuan2-7B.json",
        "internlm__internlm2-7b.json",
        "openbmb__MiniCPM-2B-sft-bf16.json",
    ],
)
def test_remote_code_only_types_raise_unsupported(name):
    with pytest.raises(UnsupportedArchitecture) as info:
        hf_config_from_dict(load(name))
    assert "\n" not in str(info.value)


def test_cache_layer_bytes_counts_nested_and_quantized_states():
    layer = SimpleNamespace(
        keys=torch.empty(2, 3, 5, 4, dtype=torch.bfloat16, device="meta"),
        values=torch.tensor([]),  # placeholder: holds nothing
        conv_states={0: torch.empty(2, 8, 4), 1: None},
        _quantized_keys=(torch.empty(2, 3, 5, 4, dtype=torch.float8_e4m3fn), torch.tensor(1.0)),
    )

    class Cache:
        def __init__(self):
            self.layers = [layer]
            self.linear_cache = [[], torch.empty(2, 4, 16, 16, dtype=torch.float16)]

    layers = cache_layer_bytes(Cache())
    assert [layer["class"] for layer in layers] == ["SimpleNamespace", "Cache.linear_cache"]
    assert layers[0]["tensors"] == {
        "keys": ((2, 3, 5, 4), "bfloat16", 240),
        "conv_states": ((2, 8, 4), "float32", 256),
        "_quantized_keys[0]": ((2, 3, 5, 4), "float8_e4m3fn", 120),
        "_quantized_keys[1]": ((), "float32", 4),
    }
    assert layers[0]["nbytes"] == 620
    assert layers[1]["nbytes"] == 2 * 4 * 16 * 16 * 2
