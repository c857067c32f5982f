"""The Mamba2 / short-conv hybrids (nemotron_h, zamba2, lfm2, granitemoehybrid) in each engine's storage model.

transformers' caches are checked tensor by tensor on the meta device (tests/profiling/test_against_transformers.py);
these tests hold the other engines' rules, each against the source file and line it follows. The expected figures
are written from the engine's own formula (its shape calculator), not from kvplan's arithmetic.
"""

from __future__ import annotations

from collections import Counter

import pytest

from kvplan.core import specs as L
from kvplan.core.shapes import model_shape
from kvplan.engines import Request
from kvplan.engines.llamacpp import LlamaCppEngine
from kvplan.engines.sglang import SglangEngine
from kvplan.engines.vllm import VllmEngine
from kvplan.errors import ConfigError, UnsupportedArchitecture

from conftest import load_config

NANO = "nvidia__NVIDIA-Nemotron-3-Nano-30B-A3B-BF16"
SUPER = "nvidia__NVIDIA-Nemotron-3-Super-120B-A12B-FP8"
ULTRA = "nvidia__NVIDIA-Nemotron-3-Ultra-550B-A55B-BF16"
H56B = "nvidia__Nemotron-H-56B-Base-8K"
LFM2 = "LiquidAI__LFM2.5-VL-1.6B"


def _kinds(name: str) -> Counter:
    return Counter(c.kind for c in model_shape(load_config(name)).caches())


@pytest.mark.parametrize(
    ("name", "field"),
    [(NANO, "hybrid_override_pattern"), (SUPER, "hybrid_override_pattern"), (H56B, "hybrid_override_pattern")],
)
def test_nemotron_h_pattern_counts_mamba_attention_and_cache_free_layers(name, field):
    """M = Mamba2, * = attention, - = MLP, E = MoE (transformers configuration_nemotron_h.py `_pattern_to_list`)."""
    pattern = load_config(name)[field]
    assert _kinds(name) == Counter(
        {L.STATE: pattern.count("M"), L.FULL: pattern.count("*"), L.NONE: pattern.count("-") + pattern.count("E")}
    )


def test_nemotron_3_ultra_reads_layers_block_type_without_num_hidden_layers():
    config = load_config(ULTRA)
    assert "num_hidden_layers" not in config
    kinds = config["layers_block_type"]
    assert _kinds(ULTRA) == Counter(
        {L.STATE: kinds.count("mamba"), L.FULL: kinds.count("attention"), L.NONE: kinds.count("moe")}
    )
    assert model_shape(config).num_layers == len(kinds)


def test_nemotron_h_unknown_layer_kind_is_refused():
    config = {**load_config(NANO), "hybrid_override_pattern": "M*X"}
    with pytest.raises(UnsupportedArchitecture, match="'X'"):
        model_shape(config)
    with pytest.raises(ConfigError, match="hybrid_override_pattern"):
        model_shape({k: v for k, v in load_config(NANO).items() if k != "hybrid_override_pattern"})


def _state(name: str) -> L.RecurrentState:
    return next(c for c in model_shape(load_config(name)).caches() if isinstance(c, L.RecurrentState))


def _vllm_mamba2_bytes(cfg: dict, tp: int, conv_bytes: int, ssm_bytes: int) -> int:
    """vllm-0.33.0 model_executor/layers/mamba/mamba_utils.py:186-210 `mamba2_state_shape` for Nemotron-H
    (models/nemotron_h.py:780-808: intermediate = mamba_num_heads x mamba_head_dim): groups extended to TP when
    TP does not divide them, conv (conv_kernel - 1, conv_dim / tp), temporal (heads / tp, head_dim, state)."""
    groups = cfg["n_groups"] + (0 if cfg["n_groups"] % tp == 0 else tp - cfg["n_groups"])
    inner = cfg["mamba_num_heads"] * cfg["mamba_head_dim"]
    conv = (cfg["conv_kernel"] - 1) * (inner + 2 * groups * cfg["ssm_state_size"]) // tp
    temporal = cfg["mamba_num_heads"] // tp * cfg["mamba_head_dim"] * cfg["ssm_state_size"]
    return conv * conv_bytes + temporal * ssm_bytes


@pytest.mark.parametrize("tp", [1, 2, 16])
def test_nemotron_h_vllm_state_is_mamba2_with_a_float32_ssm_state(tp):
    """vLLM keeps Nemotron-H's SSM state in the config's `mamba_ssm_cache_dtype` (float32 when it names none:
    vllm-0.33.0 model_executor/models/config.py:812-838, applied before the hybrid page sizing,
    config/vllm.py:2754-2767); the conv state in the model dtype (mamba_utils.py:98-110)."""
    for name in (NANO, H56B):
        cfg = load_config(name)
        state = _state(name)
        assert state.family == "mamba2" and state.ssm_dtype == "float32"
        req = Request(1024, 1, "bfloat16", "bfloat16", tp=tp)
        assert VllmEngine._state_bytes(state, req) == _vllm_mamba2_bytes(cfg, tp, 2, 4)
    assert "mamba_ssm_cache_dtype" not in load_config(H56B)  # the default, not the config, says float32


def test_nemotron_h_config_ssm_dtype_is_followed_and_other_mamba2_hybrids_use_the_model_dtype():
    """`mamba_ssm_cache_dtype: bfloat16` halves the SSM state in vLLM; Granite 4 and Zamba2 have no such override
    (granitemoehybrid.py:606-614, zamba2.py:858-866 pass cache_config's "auto": the model dtype)."""
    cfg = {**load_config(NANO), "mamba_ssm_cache_dtype": "bfloat16"}
    state = next(c for c in model_shape(cfg).caches() if isinstance(c, L.RecurrentState))
    assert VllmEngine._state_bytes(state, Request(1, 1, "bfloat16", "bfloat16")) == _vllm_mamba2_bytes(cfg, 1, 2, 2)
    for name in ("synthetic/granitemoehybrid", "synthetic/zamba2"):
        granite = {**load_config(name), "mamba_ssm_cache_dtype": "float32"}  # ignored for these families
        assert _state(name).ssm_dtype is None
        assert next(c for c in model_shape(granite).caches() if isinstance(c, L.RecurrentState)).ssm_dtype is None


def test_lfm2_short_conv_state_in_vllm_sglang_and_llamacpp():
    """LFM2's conv layers keep conv_L_cache - 1 columns of hidden_size channels and no SSM state: vLLM
    mamba_utils.py:249-257 `short_conv_state_shape` (lfm2.py:573-577: conv_dim, = hidden_size in LFM2 configs),
    SGLang configs/lfm2.py `mamba2_cache_params` (state_size 0), llama.cpp llama-hparams.cpp `n_embd_r`
    (n_embd x (n_shortconv_l_cache - 1))."""
    cfg = load_config(LFM2)["text_config"]
    state = _state(LFM2)
    assert state.family == "short_conv" and state.ssm_elements() == 0
    assert _kinds(LFM2) == Counter(
        {L.STATE: cfg["layer_types"].count("conv"), L.FULL: cfg["layer_types"].count("full_attention")}
    )
    columns = cfg["conv_L_cache"] - 1
    for tp in (1, 2):
        req = Request(1024, 1, "bfloat16", "bfloat16", tp=tp)
        expected = columns * cfg["conv_dim"] // tp * 2
        assert VllmEngine._state_bytes(state, req) == expected
        assert SglangEngine().stage_costs([state], req)[0].bytes == expected
    f32 = LlamaCppEngine().stage_costs([state], Request(1024, 1, "float16", "bfloat16"))[0].bytes
    assert f32 == columns * cfg["hidden_size"] * 4


def test_lfm2_in_vllm_align_mode_holds_two_pages_without_a_prefill_checkpoint():
    """The prefill checkpoint page is Mamba2's (mamba_mixer2.py:1117 `num_prefill_checkpoint_blocks=1`); the
    ShortConv layer holds the two pages of `align` mode (v1/kv_cache_interface.py:1135-1140)."""
    shape = model_shape(load_config(LFM2))
    engine, req = VllmEngine(shape), Request(4096, 1, "bfloat16", "bfloat16", engine_version="0.33.0")
    caches = shape.caches()
    assert engine.mamba_cache_mode(caches, req) == "align"
    states = [c for c in caches if isinstance(c, L.RecurrentState)]
    assert engine.state_pages(states[0], states, req, "align") == 2
    nano = model_shape(load_config(NANO))
    nano_states = [c for c in nano.caches() if isinstance(c, L.RecurrentState)]
    assert engine.state_pages(nano_states[0], nano_states, req, "align") == 3


def test_zamba2_hybrid_layers_cache_attention_and_mamba2():
    """Zamba2's shared attention block caches K/V per hybrid layer (vllm-0.33.0 models/zamba2.py:181-204: one
    Attention per hybrid layer), with 2 x hidden / heads per head (transformers Zamba2Config), beside the
    layer's Mamba2 state (zamba2.py:869-897: intermediate mamba_expand x hidden)."""
    cfg = load_config("synthetic/zamba2")
    shape = model_shape(cfg)
    for kind, layer in zip(cfg["layers_block_type"], shape.layers, strict=True):
        assert [c.kind for c in layer] == ([L.FULL, L.STATE] if kind == "hybrid" else [L.STATE])
    attn = next(c for c in shape.caches() if isinstance(c, L.FullAttention))
    assert attn.head_dim_k == 2 * cfg["hidden_size"] // cfg["num_attention_heads"]
    state = _state("synthetic/zamba2")
    inner = cfg["mamba_expand"] * cfg["hidden_size"]
    assert state.conv_channels == inner + 2 * cfg["mamba_ngroups"] * cfg["mamba_d_state"]
    assert state.ssm_shape == (cfg["n_mamba_heads"], inner // cfg["n_mamba_heads"], cfg["mamba_d_state"])


def test_sglang_replicates_mamba2_groups_that_tp_does_not_divide():
    """SGLang 0.5.23 configs/mamba_utils.py:218-225 `Mamba2StateShape.create`: n_groups % tp != 0 extends the
    groups to tp before splitting the conv channels (as vLLM does)."""
    cfg = load_config("synthetic/granitemoehybrid")  # one group
    state = _state("synthetic/granitemoehybrid")
    tp, inner, d_state = 2, 2 * cfg["hidden_size"], cfg["mamba_d_state"]
    conv = (cfg["mamba_d_conv"] - 1) * (inner + 2 * tp * d_state) // tp
    ssm = cfg["mamba_n_heads"] // tp * (inner // cfg["mamba_n_heads"]) * d_state
    req = Request(1024, 1, "bfloat16", "bfloat16", tp=tp)
    assert SglangEngine().stage_costs([state], req)[0].bytes == conv * 2 + ssm * 4


def test_llamacpp_nemotron_h_state_is_f32_conv_and_ssm_per_slot():
    """llama.cpp llama-hparams.cpp `n_embd_r` = (ssm_d_conv - 1) x (ssm_d_inner + 2 x ssm_n_group x ssm_d_state),
    `n_embd_s` = ssm_d_state x ssm_d_inner, both f32, one per sequence slot; the MLP / MoE layers hold nothing."""
    cfg = load_config(NANO)
    inner = cfg["mamba_num_heads"] * cfg["mamba_head_dim"]
    r = (cfg["conv_kernel"] - 1) * (inner + 2 * cfg["n_groups"] * cfg["ssm_state_size"])
    s = cfg["ssm_state_size"] * inner
    engine, req = LlamaCppEngine(), Request(4096, 3, "float16", "bfloat16")
    assert engine.stage_costs([_state(NANO)], req)[0].bytes == 3 * (r + s) * 4
    assert engine.stage_costs([L.NoCache()], req)[0].bytes == 0


def test_nemotron_3_super_attention_block_holds_one_mamba_page_in_vllm_0_33():
    """vllm-0.33.0 platforms/interface.py:1095-1101: the attention block size is 16 x cdiv(mamba page, 16 x
    attention bytes per token) (FLASH_ATTN's kernel blocks are multiples of 16; Mamba2's prefill checkpoint
    alignment is 1, mamba_mixer2.py:1117), and the Mamba page is padded to the attention page (:1109-1122). At
    TP 2 Nemotron-3-Super has 1 KV head of 128 per attention layer (512 B per token in bf16); its 40 Mamba2 and 8
    attention layers form groups of 8, so one KV block costs 8 pages: the Mamba block bound of the
    retail-shopping-assistant case (524 blocks, tests/engines/test_calibration_2026.py) is 8.32 GiB of KV memory."""
    from kvplan.engines.vllm import capacity

    cfg = load_config(SUPER)
    shape = model_shape(cfg)
    engine = VllmEngine(shape)
    req = Request(262144, 1, "bfloat16", "bfloat16", tp=2, max_num_batched_tokens=8192, engine_version="0.33.0")
    caches = shape.caches()
    mamba_page = _vllm_mamba2_bytes(cfg, 2, 2, 4)
    per_token = 1 * 2 * cfg["head_dim"] * 2
    block = 16 * -(-mamba_page // (16 * per_token))
    assert engine.block_size(caches, req) == block
    plan = engine.plan(caches, req)
    assert plan.page == block * per_token == 2_129_920 and plan.group_size == 8  # as the skip reason quotes
    memory = 524 * 8 * plan.page
    assert capacity(caches, req, memory, engine).num_blocks == 524
    assert round(memory / 2**30, 2) == 8.32


def test_tensorrt_llm_keeps_nemotron_h_ssm_state_in_mamba_ssm_cache_dtype():
    """TensorRT-LLM tensorrt_llm/_torch/pyexecutor/config_utils.py (NVIDIA/TensorRT-LLM 00679c66)
    `resolve_ssm_cache_dtype` takes the config's `mamba_ssm_cache_dtype` (only that field: Qwen3.5's
    `mamba_ssm_dtype` is left out on purpose), and `MambaKVCacheParams.get_states_bytes_per_layer` sizes
    conv (d_inner + 2 x n_groups x state) / tp x (conv_kernel - 1) in the model dtype, without replicating
    groups, plus (heads / tp) x head_dim x state in the SSM dtype."""
    from kvplan.engines.tensorrt_llm import TensorRtLlmEngine

    cfg = load_config(NANO)
    inner = cfg["mamba_num_heads"] * cfg["mamba_head_dim"]
    for tp in (1, 2):
        conv = (inner + 2 * cfg["n_groups"] * cfg["ssm_state_size"]) // tp * (cfg["conv_kernel"] - 1)
        ssm = cfg["mamba_num_heads"] // tp * cfg["mamba_head_dim"] * cfg["ssm_state_size"]
        req = Request(4096, 1, "bfloat16", "bfloat16", tp=tp)
        assert TensorRtLlmEngine().stage_costs([_state(NANO)], req)[0].bytes == conv * 2 + ssm * 4
    granite = _state("synthetic/granitemoehybrid")  # no mamba_ssm_cache_dtype: the model dtype
    req = Request(4096, 1, "bfloat16", "bfloat16")
    assert TensorRtLlmEngine().stage_costs([granite], req)[0].bytes == granite.state_bytes(2, 2, columns=3)


def test_sglang_conv_state_is_bf16_whatever_the_model_dtype():
    """SGLang 0.5.23 environ.py:1628 SGLANG_MAMBA_CONV_DTYPE defaults to "bfloat16", which configs/mamba_utils.py
    `mamba2_state_dtype` gives the conv state of every Mamba-style pool (Nemotron-H, LFM2, Granite 4, ...); the SSM
    state stays float32."""
    state = _state(NANO)
    fp32 = SglangEngine().stage_costs([state], Request(1024, 1, "float32", "float32"))[0].bytes
    bf16 = SglangEngine().stage_costs([state], Request(1024, 1, "bfloat16", "bfloat16"))[0].bytes
    assert fp32 == bf16 == state.state_bytes(2, 4, columns=state.conv_kernel - 1)


def test_sglang_reads_mamba_ssm_dtype_only_not_nemotron_h_cache_dtype():
    """SGLang's mamba2_state_dtype reads `mamba_ssm_dtype` (configs/mamba_utils.py:47-107), not Nemotron-H's
    `mamba_ssm_cache_dtype` (which vLLM reads): a bf16 cache dtype there leaves SGLang's SSM state in float32."""
    from kvplan.planning.estimate import estimate

    config = load_config("nvidia__NVIDIA-Nemotron-3-Nano-30B-A3B-BF16")
    as_published = estimate(config, seq_len=1024, engine="sglang").kv_cache_bytes
    bf16_cache = estimate({**config, "mamba_ssm_cache_dtype": "bfloat16"}, seq_len=1024, engine="sglang")
    assert bf16_cache.kv_cache_bytes == as_published
