"""Qwen3.5 / 3.6 / 3.8 (gated DeltaNet + gated full attention) and the Qwen3-VL text towers: how the family table
reads them, the weights layout's module names, and each engine's rule for the DeltaNet state, cited to the engine's
source. The caches themselves are checked against transformers' real ones in
tests/profiling/test_against_transformers.py and the parameter counts in tests/weights/test_weights.py."""

from __future__ import annotations

import pytest
import yaml

from kvplan.core import specs as L
from kvplan.core.config import text_config
from kvplan.core.families import family_of
from kvplan.core.shapes import model_shape
from kvplan.engines import Request
from kvplan.engines.log_figures import vllm_blocks_from_tokens, vllm_reporting
from kvplan.engines.sglang import SglangEngine
from kvplan.engines.vllm import VllmEngine, capacity
from kvplan.sources.hardware import load_profile
from kvplan.weights.tensors import assumed_family, weight_tensors

from conftest import FIXTURES, all_config_names, load_config

GIB = 2**30
CALIBRATION_2026 = FIXTURES / "calibration" / "engine_cases_2026.yaml"
KTRANSFORMERS_1870 = "sglang-ktransformers-1870-qwen35-moe-2x4090-tp2-ctx8192"
MIA_QWEN38_FLASH_NEXT = "sglang-mia-qwen38-flash-next-21-2xgb10-tp2-nvfp4kv-as-shipped"
QWEN3_5 = [
    "Qwen__Qwen3.5-9B",
    "Qwen__Qwen3.5-27B",
    "Qwen__Qwen3.5-35B-A3B",
    "Qwen__Qwen3.5-122B-A10B",
    "Qwen__Qwen3.5-397B-A17B",
    "Qwen__Qwen3.6-35B-A3B",
    "nvidia__Qwen3.6-27B-NVFP4",
    "Qwen__Qwen3.8-2.4T-A95B",
]
QWEN3_VL = ["Qwen__Qwen3-VL-32B-Instruct", "Qwen__Qwen3-VL-30B-A3B-Instruct"]
# vllm-0.33.0/vllm/model_executor/models/config.py:1259-1262: the architectures whose `verify_and_update_config`
# (:953-983) sets mamba_ssm_cache_dtype from the text config's `mamba_ssm_dtype`
VLLM_SSM_DTYPE_FROM_CONFIG = {
    "Qwen3_5ForCausalLM",
    "Qwen3_5ForConditionalGeneration",
    "Qwen3_5MoeForCausalLM",
    "Qwen3_5MoeForConditionalGeneration",
}
_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}


def _state(config: dict) -> L.RecurrentState:
    return next(c for c in model_shape(config).caches() if isinstance(c, L.RecurrentState))


@pytest.mark.parametrize("name", QWEN3_5 + QWEN3_VL)
def test_read_by_its_family_never_guessed(name):
    """The wrapper's model_type and its text config's name one family; layers follow `layer_types` (the text
    configs' own list: transformers' Qwen3_5TextConfig honours it), the VL towers are all full attention."""
    config = load_config(name)
    text = text_config(config)
    shape = model_shape(config)
    assert not shape.assumptions and assumed_family(config) is None
    assert family_of(config["model_type"]) is family_of(text["model_type"]) is not None
    kinds = [layer[0].kind for layer in shape.layers]
    if name in QWEN3_VL:
        assert kinds == [L.FULL] * text["num_hidden_layers"]
    else:
        assert kinds == [L.FULL if t == "full_attention" else L.STATE for t in text["layer_types"]]
    attention = next(c for c in shape.caches() if isinstance(c, L.FullAttention))
    assert (attention.num_kv_heads, attention.head_dim_k) == (text["num_key_value_heads"], text["head_dim"])


@pytest.mark.parametrize("tp", [1, 2, 4, 8])
@pytest.mark.parametrize("name", QWEN3_5)
def test_vllm_gdn_state_follows_mamba_utils(name, tp):
    """vllm-0.33.0/vllm/model_executor/layers/mamba/mamba_utils.py:272-293 `gated_delta_net_state_shape`: conv state
    (conv_dim / tp, conv_kernel - 1) with conv_dim = 2 x key heads x key dim + value heads x value dim, temporal
    state (value heads / tp, value dim, key dim); dtypes :122-130 -> :98-109 `_mamba_state_dtype`: conv in the
    model dtype (mamba_cache_dtype auto, whatever --kv-cache-dtype says), temporal in mamba_ssm_cache_dtype, which
    models/config.py:953-983 sets to the config's `mamba_ssm_dtype` (float32) for these architectures."""
    config = load_config(name)
    assert set(config["architectures"]) <= VLLM_SSM_DTYPE_FROM_CONFIG
    t = text_config(config)
    conv_dim = 2 * t["linear_num_key_heads"] * t["linear_key_head_dim"] + (
        t["linear_num_value_heads"] * t["linear_value_head_dim"]
    )
    conv = conv_dim // tp * (t["linear_conv_kernel_dim"] - 1) * 2
    temporal = t["linear_num_value_heads"] // tp * t["linear_value_head_dim"] * t["linear_key_head_dim"]
    expected = conv + temporal * _BYTES[t["mamba_ssm_dtype"]]
    for kv in ("bfloat16", "fp8_e4m3"):
        assert VllmEngine._state_bytes(_state(config), Request(4096, 1, kv, "bfloat16", tp=tp)) == expected


def test_vllm_gdn_state_of_qwen3_5_27b_by_hand():
    """(2 x 16 x 128 + 48 x 128) channels x 3 columns x 2 B + 48 x 128 x 128 x 4 B (float32 temporal state)."""
    state = _state(load_config("Qwen__Qwen3.5-27B"))
    assert VllmEngine._state_bytes(state, Request(4096, 1, "bfloat16", "bfloat16")) == 61_440 + 3_145_728


def test_sglang_ssm_state_dtype_from_the_config_else_float32():
    """sglang-0.5.23/sglang/srt/configs/mamba_utils.py:47-107 `mamba2_state_dtype`: the temporal state in the config's
    `mamba_ssm_dtype` when it is float32, bfloat16 or float16, else float32; Qwen3-Next and Qwen3.5 size their
    DeltaNet state with it (srt/configs/qwen3_next.py:311-313)."""
    config = load_config("Qwen__Qwen3.5-27B")
    req = Request(4096, 1, "bfloat16", "bfloat16")
    conv = 10240 * 3 * 2
    states = {}
    for dtype in ("float32", "bfloat16", None):
        text = {**config["text_config"], "model_type": "qwen3_5_text"}
        if dtype:
            text["mamba_ssm_dtype"] = dtype
        else:
            text.pop("mamba_ssm_dtype")
        cost = SglangEngine().stage_costs([_state(text)], req)[0]
        states[dtype] = cost.bytes
    assert states == {
        "float32": conv + 48 * 128 * 128 * 4,
        "bfloat16": conv + 48 * 128 * 128 * 2,
        None: states["float32"],
    }


@pytest.mark.parametrize("version", ["0.19.0", "0.33.0"])
def test_blocks_from_tokens_inverts_vllms_token_figure(version):
    """For every block count, the blocks `vllm_blocks_from_tokens` finds for the printed token figure contain it,
    and the block counts just outside print other tokens (the inverse is tight): 0.19.0 prints num_blocks // groups
    x block size (vllm-0.19.1/vllm/v1/core/kv_cache_utils.py:1302-1306), 0.33.0 int(max_concurrency x
    max_model_len)."""
    caches = model_shape(load_config("Qwen__Qwen3.5-27B")).caches()
    req = Request(32768, 1, "bfloat16", "bfloat16", max_num_batched_tokens=8192, engine_version=version)
    reporting, _ = vllm_reporting(version, False)
    unit = capacity(caches, req, 0)
    per_block = unit.page_bytes * unit.group_size

    def tokens(blocks: int) -> int:
        return capacity(caches, req, blocks * per_block).kv_cache_tokens

    for blocks in (45, 46, 100, 1487, 5003):
        printed = tokens(blocks)
        found = vllm_blocks_from_tokens(
            printed, reporting, unit.block_size, unit.num_groups, unit.blocks_per_request, req.seq_len
        )
        assert found is not None and found[0] <= blocks <= found[1], (blocks, printed, found)
        assert tokens(found[0]) == tokens(found[1]) == printed
        assert tokens(found[0] - 1) != printed and tokens(found[1] + 1) != printed


def test_vllm_40691_qwen3_5_27b_pages():
    """vLLM 40691 (0.19.0, one H20, 32,768 tokens): "GPU KV cache size: 290,864 tokens" and "33.04x" are 1,487
    blocks of 784 tokens in 4 groups (three of 16 DeltaNet layers, one of the 16 attention layers), 45 blocks per
    request (42 attention pages + one state page per DeltaNet group): 1487 // 4 x 784 = 290,864, 1487 / 45 = 33.04.
    The 784-token block is the smallest multiple of 16 whose attention page (784 x 4 KiB) holds the float32 state."""
    caches = model_shape(load_config("Qwen__Qwen3.5-27B")).caches()
    req = Request(32768, 1, "bfloat16", "bfloat16", max_num_batched_tokens=8192, engine_version="0.19.0")
    unit = capacity(caches, req, 0)
    assert (unit.block_size, unit.num_groups, unit.group_size, unit.blocks_per_request) == (784, 4, 16, 45)
    assert vllm_blocks_from_tokens(290_864, "groups", 784, 4, 45, 32768) == (1484, 1487)
    at = capacity(caches, req, 1487 * unit.page_bytes * unit.group_size)
    assert (at.kv_cache_tokens, round(at.max_concurrency, 2)) == (290_864, 33.04)


def test_checkpoint_module_names_are_the_layouts():
    """modelopt's `quantized_layers` in nvidia/Qwen3.6-27B-NVFP4 name the checkpoint's modules
    (model.language_model.layers.N.linear_attn.in_proj_qkv, .in_proj_z, .out_proj, self_attn.*, mlp.*, lm_head):
    every one is a module of the analytic layout (a wrapper keeps its text model under model.language_model)."""
    config = load_config("nvidia__Qwen3.6-27B-NVFP4")
    modules = {t.module for t in weight_tensors(config)}
    named = set(config["quantization_config"]["quantized_layers"])
    assert len(named) == 48 * 6 + 16 * 7 + 1
    assert named <= modules
    text_only = weight_tensors(load_config("Qwen__Qwen3.8-2.4T-A95B"))  # Qwen3_5MoeForCausalLM: under `model`
    assert not any("language_model" in t.name for t in text_only)


@pytest.mark.torch
@pytest.mark.slow
@pytest.mark.parametrize("name", ["Qwen__Qwen3.5-9B", "Qwen__Qwen3-VL-32B-Instruct", "text-only Qwen__Qwen3.5-9B"])
def test_parameter_names_are_transformers(name):
    """Built on the meta device, the wrapper (Qwen3_5ForConditionalGeneration, Qwen3VLForConditionalGeneration)
    outside its vision tower, and a text-only config (Qwen3_5ForCausalLM), hold exactly the analytic layout's
    tensors, by name and shape (the dense models: transformers fuses MoE experts into one gate_up_proj, which
    checkpoints store per expert)."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    config = load_config(name.split()[-1])
    if name.startswith("text-only"):
        config = {**config["text_config"], "tie_word_embeddings": config["tie_word_embeddings"]}
    kwargs = {k: v for k, v in config.items() if k != "model_type"}
    hf = transformers.AutoConfig.for_model(config["model_type"], **kwargs)
    auto = (
        transformers.AutoModelForCausalLM if "text_config" not in config else transformers.AutoModelForImageTextToText
    )
    with torch.device("meta"):
        model = auto.from_config(hf)
    built = {k: tuple(p.shape) for k, p in model.named_parameters() if not k.startswith("model.visual.")}
    assert built == {t.name: t.shape for t in weight_tensors(config)}


def _sglang_cell_and_state(config: dict, tp: int) -> tuple[int, int, int]:
    """SGLang's full-attention cell (K + V per token per rank) and one Mamba slot's conv and SSM state, each from
    `SglangEngine.stage_costs`: the SSM half is twice what a bfloat16 SSM state saves on the config's float32 one."""
    req = Request(8192, 1, "bfloat16", "bfloat16", tp=tp)

    def costs(cfg: dict) -> tuple[int, int]:
        stage = SglangEngine().stage_costs(model_shape(cfg).caches(), req)
        cell = sum(c.bytes_per_token for c in stage if c.kind == L.FULL)
        return int(cell), sum(c.bytes for c in stage if c.kind == L.STATE)

    cell, state = costs(config)
    if "text_config" in config:
        half = {**config, "text_config": {**config["text_config"], "mamba_ssm_dtype": "bfloat16"}}
    else:
        half = {**config, "mamba_ssm_dtype": "bfloat16"}
    ssm = 2 * (state - costs(half)[1])
    return cell, state - ssm, ssm


def test_sglang_ktransformers_1870_is_qwen3_5_397b_and_its_pools_reproduce():
    """ktransformers 1870 (SGLang, 2x RTX 4090, TP 2, bf16; the checkpoint is named only as
    Qwen3_5MoeForConditionalGeneration). SGLang prints GiB (srt/mem_cache/memory_pool.py:116 GB = 1024**3), two
    decimals: "KV Cache is allocated. #tokens: 580364, K size: 4.15 GB" (:2073-2091, K buffer of the full-attention
    layers per rank) and "Mamba Cache is allocated. max_mamba_cache_size: 82, conv_state size: 0.13GB, ssm_state
    size: 7.29GB" (:1002-1009), whose tensors hold size + 1 slots (the padding slot, :722-724 conv, :748-752
    temporal). Identification: of the catalog's qwen3_5_moe configs, only Qwen/Qwen3.5-397B-A17B (15 full-attention
    layers x 2 KV heads / TP 2 x 256 x 2 B = 7,680 B of K per token) prints 4.15 (122B-A10B: 12 layers, 3.32;
    35B-A3B and 3.6-35B-A3B: 10 layers, 2.77; 3.8-2.4T: 12.73), and its 45 DeltaNet layers print the Mamba pool's
    conv 0.13 and ssm 7.29 at 83 slots (ssm float32 from the config's mamba_ssm_dtype, configs/mamba_utils.py:47-107;
    conv bf16, 3 columns of 6,144 channels per rank)."""
    case = next(c for c in yaml.safe_load(CALIBRATION_2026.read_text()) if c["id"] == KTRANSFORMERS_1870)
    reported, tp = case["reported"], case["tensor_parallel_size"]
    slots = reported["sglang_max_mamba_cache_size"] + 1
    printed = (reported["sglang_k_size_gb"], reported["sglang_conv_state_gb"], reported["sglang_ssm_state_gb"])
    matches = {}
    for name in all_config_names():
        config = load_config(name)
        if text_config(config).get("model_type") != "qwen3_5_moe_text":
            continue
        cell, conv, ssm = _sglang_cell_and_state(config, tp)
        figures = (reported["kv_cache_tokens"] * cell / 2, slots * conv, slots * ssm)
        matches[name] = tuple(round(b / GIB, 2) for b in figures) == printed
    assert len(matches) >= 5, matches
    assert [n for n, hit in matches.items() if hit] == ["Qwen__Qwen3.5-397B-A17B"], matches


def test_sglang_mia_qwen38_flash_next_has_no_catalog_config():
    """MiaAI-Lab/Qwen3.8-Flash-Next-Dual-DGX-Sparks issue 21 (SGLang, 2x GB10, TP 2, mem_fraction_static 0.8, NVFP4
    KV, mamba_full_memory_ratio 0.9: "NVFP4 KV pool 1,618,688") names no Hub id. The catalog's only Qwen3.8 configs
    are too large to be it: at 4 bits a parameter (NVFP4's least, before its scales) their weights alone exceed both
    GB10s' memory, so no catalog config can be the checkpoint served there, and the case is not checked. Fails when
    a Qwen3.8 config that 2x GB10 could hold joins the catalog: then see whether it is the "Flash-Next"."""
    case = next(c for c in yaml.safe_load(CALIBRATION_2026.read_text()) if c["id"] == MIA_QWEN38_FLASH_NEXT)
    memory = case["gpu_count"] * load_profile("gb10").memory_bytes
    qwen38 = [n for n in all_config_names() if n.startswith("Qwen__Qwen3.8")]
    assert qwen38
    for name in qwen38:
        params = sum(t.numel for t in weight_tensors(load_config(name)))
        assert params / 2 > memory, (name, params, memory)
    pytest.skip(
        f"{MIA_QWEN38_FLASH_NEXT}: no catalog config is Qwen3.8-Flash-Next ({', '.join(qwen38)} need more than "
        f"{case['gpu_count']}x GB10 at 4 bits a weight); and kvplan refuses SGLang's nvfp4 KV cache for hybrid "
        "linear-attention models (sglang-0.5.23 takes it there, srt/mem_cache/kv_cache_configurator.py:2656-2658, "
        "but kvplan has not checked the hybrid backends' FP4 reads)"
    )
