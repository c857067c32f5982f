"""kvplan.core.specs: one frozen class per layer kind, and their element / byte arithmetic on hand-computed integers."""

from __future__ import annotations

import dataclasses
from fractions import Fraction

import pytest

from kvplan.core import specs as L
from kvplan.core.shapes import model_shape
from kvplan.core.units import DTYPE_BYTES
from kvplan.errors import UsageError

from conftest import load_config


def test_kind_names_are_the_json_strings():
    assert L.FullAttention.kind == "full_attention"
    assert L.SlidingWindow.kind == "sliding_window"
    assert L.ChunkedLocal.kind == "chunked_local"
    assert L.MlaLatent.kind == "mla_latent"
    assert L.RecurrentState.kind == "recurrent_state"
    assert L.NoCache.kind == "no_cache"
    assert L.SlidingWindow(8, 128, 128, 4096).kind == L.SLIDING  # instances carry it too


def test_specs_are_frozen_and_kind_is_not_a_field():
    full = L.FullAttention(8, 128, 128)
    with pytest.raises(dataclasses.FrozenInstanceError):
        full.num_kv_heads = 4
    assert [f.name for f in dataclasses.fields(full)] == ["num_kv_heads", "head_dim_k", "head_dim_v"]
    assert L.FullAttention(8, 128, 128) == full
    # same numbers, different kinds: not equal
    assert L.SlidingWindow(8, 128, 128, 4096) != L.ChunkedLocal(8, 128, 128, 4096)


def test_attention_kinds_share_the_kv_base():
    kinds = [L.FullAttention(8, 128, 128), L.SlidingWindow(8, 128, 128, 4096), L.ChunkedLocal(8, 128, 128, 8192)]
    assert all(isinstance(c, L.KVAttention) for c in kinds)
    assert not isinstance(L.MlaLatent(512, 64), L.KVAttention)
    assert not isinstance(L.RecurrentState("mamba", 128, 4), L.KVAttention)
    assert [c.window for c in kinds] == [None, 4096, 8192]  # the chunk size under the shared name
    assert kinds[2].chunk_size == 8192


def test_kv_attention_elements_and_bytes():
    llama = L.FullAttention(8, 128, 128)  # Llama-3.1-8B layer
    assert llama.elements_per_token() == 2048  # 8 x (128 + 128)
    assert llama.elements_per_token(kv_heads=2) == 512  # one TP-4 rank
    assert llama.bytes_per_token(2) == 4096
    assert llama.bytes_per_token(DTYPE_BYTES["int4"]) == 1024
    assert llama.bytes_per_token(DTYPE_BYTES["q8_0"], kv_heads=1) == 272  # 256 x 34/32
    assert isinstance(llama.bytes_per_token(DTYPE_BYTES["nvfp4"]), Fraction)
    # K and V head sizes may differ
    assert L.SlidingWindow(4, 192, 128, 1024).elements_per_token() == 1280  # 4 x (192 + 128)


def test_mla_latent_elements_and_bytes():
    v3 = L.MlaLatent(512, 64)  # DeepSeek-V3
    assert v3.latent_elements() == v3.elements_per_token() == 576
    assert v3.bytes_per_token(2) == 1152
    assert v3.bytes_per_token(DTYPE_BYTES["fp8_e4m3"]) == 576
    v32 = L.MlaLatent(512, 64, index_head_dim=128)  # DeepSeek-V3.2's indexer keys
    assert (v32.latent_elements(), v32.elements_per_token()) == (576, 704)


def test_recurrent_state_conv_and_ssm_elements():
    mamba = L.RecurrentState("mamba", conv_channels=128, conv_kernel=4, ssm_shape=(128, 16))
    assert mamba.conv_elements(columns=3) == 384  # conv_kernel - 1 columns (vLLM, SGLang, llama.cpp, TRT-LLM)
    assert mamba.conv_elements(columns=4) == 512  # every column (transformers)
    assert mamba.ssm_elements() == 2048
    assert mamba.conv_elements(columns=3, tp=2) == 192
    assert mamba.ssm_elements(tp=2) == 1024  # the first dimension is split
    assert mamba.state_bytes(2, 4, columns=3) == 384 * 2 + 2048 * 4 == 8960
    assert mamba.state_bytes(2, 2, columns=4, tp=4) == (32 * 4 + 32 * 16) * 2 == 1280
    assert L.RecurrentState("short_conv", 64, 3).ssm_elements() == 0  # no SSM state


def test_mamba2_groups_replicated_when_tp_does_not_divide_them():
    # 8192 inner channels + 1 group x 2 x 128 (B and C) = 8448 conv channels
    m2 = L.RecurrentState("mamba2", 8448, 4, (128, 64, 128), n_groups=1, group_state=128)
    assert m2.conv_elements(columns=3, tp=4) == 8448 // 4 * 3 == 6336
    # vLLM gives each of the 4 ranks its own copy of the group: + 2 x (4 - 1) x 128 channels
    assert m2.conv_elements(columns=3, tp=4, replicate_groups=True) == (8448 + 768) // 4 * 3 == 6912
    assert m2.conv_elements(columns=3, tp=1, replicate_groups=True) == 8448 * 3  # TP 1 divides every group count
    assert m2.ssm_elements(tp=4) == 32 * 64 * 128


def test_tp_that_does_not_divide_the_state_is_refused():
    state = L.RecurrentState("mamba2", 6, 4, (3, 8, 8))
    with pytest.raises(UsageError, match="6 convolution channels"):
        state.conv_elements(columns=3, tp=4)
    with pytest.raises(UsageError, match="3 state heads"):
        state.ssm_elements(tp=2)
    with pytest.raises(UsageError, match="convolution channels"):  # the conv split is checked first
        state.state_bytes(2, 4, columns=3, tp=4)


def test_no_cache():
    assert L.NoCache().elements_per_token() == 0
    assert L.NoCache().bytes_per_token(2) == 0


def test_qwen3_next_gated_deltanet_state_from_the_real_config():
    # (3 x 8192 conv + 32 x 128 x 128 ssm) x 2 B = 1,097,728 B (tests/engines: vLLM's state page)
    shape = model_shape(load_config("Qwen__Qwen3-Next-80B-A3B"))
    (delta,) = {c for c in shape.caches() if isinstance(c, L.RecurrentState)}
    assert delta.state_bytes(2, 2, columns=delta.conv_kernel - 1) == 1_097_728
