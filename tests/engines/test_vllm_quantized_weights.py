"""Weights as vLLM holds them for quantized checkpoints: gpt-oss MXFP4 expert padding per backend.

vLLM pads gpt-oss's expert hidden and per-rank intermediate sizes to its MoE backend's tile before allocating
them (vllm-0.33.0/vllm/model_executor/layers/quantization/mxfp4.py:184-295; tiles in
fused_moe/oracle/mxfp4.py:837-917; backend order :402-435). Expected figures below are computed from the
config's dimensions and those tiles, or read from a vLLM log.
"""

from __future__ import annotations

import pytest
import yaml

from kvplan.engines.vllm import mxfp4_moe_padding
from kvplan.planning.recommend import recommend

from conftest import FIXTURES, load_config

GIB = 2**30


def _case(case_id: str) -> dict:
    cases = yaml.safe_load((FIXTURES / "calibration" / "engine_cases.yaml").read_text())
    return next(c for c in cases if c["id"] == case_id)


def test_gpt_oss_120b_tp4_a100_weights_match_the_log():
    """dennislee22 vLLM 0.10.1.1 log, 4x A100 80GB, TP 4: "Model loading took 17.2217 GiB". The checkpoint's
    share is 60.77 GiB / 4 = 15.19 GiB; Marlin (the backend below SM90, experts/marlin_moe.py:592-594;
    Triton needs SM90, experts/gpt_oss_triton_kernels_moe.py:47-53) pads hidden 2880 -> 3072 and the rank's
    intermediate 720 -> 768 (oracle/mxfp4.py:865-870)."""
    case = _case("dennislee22-vllm-120b-4gpua10080gb-0-8gram-diff-nodes")
    tp = case["tensor_parallel_size"]
    rec = recommend(
        "openai/gpt-oss-120b",
        gpu_profile="a100-sxm-80gb",
        gpus=tp,
        tp=tp,
        gpu_memory_utilization=case["gpu_memory_utilization"],
        max_model_len=case["max_model_len"],
        vllm_version=case["engine_version"],
    )
    logged = case["reported"]["weights_gib"] * GIB
    assert abs(rec.weights_bytes - logged) < 0.01 * logged  # 17.17 GiB; 15.19 without the padding
    weights = next(t for t in rec.budget if t.name == "weights")
    assert weights.bytes == -rec.weights_bytes and "Marlin" in weights.source


@pytest.mark.parametrize(
    ("capability", "tp", "hidden_pad", "inter_pad"),
    [
        ("8.0", 1, 3072, 2944),  # Marlin: intermediate to 128, hidden to 256 (oracle/mxfp4.py:865-870)
        ("10.0", 2, 3072, 1536),  # FlashInfer TRTLLM on SM100: 128 / 256 (:871-873)
        ("9.0", 1, 2880, 2880),  # OAI Triton on SM90: intermediate to 64 only (:915-916), 2880 = 45 x 64
    ],
)
def test_gpt_oss_20b_padding_per_backend(capability, tp, hidden_pad, inter_pad):
    config = load_config("openai__gpt-oss-20b")
    h, inter, layers, experts = (
        config[k] for k in ("hidden_size", "intermediate_size", "num_hidden_layers", "num_local_experts")
    )
    per_rank = inter // tp
    # uint8 values (2 a byte) + uint8 scales (1 per 32) for w13 [2I, H] and w2 [H, I]; bf16 w13 [2I] and w2 [H]
    # biases (mxfp4.py:200-295); w2_bias is whole on every rank
    held = lambda hh, ii: 3 * ii * hh * 17 // 32 + 2 * (2 * ii + hh)  # noqa: E731
    share = 3 * inter * h * 17 / 32 / tp + 2 * (2 * per_rank + h / tp)
    expected = int(layers * experts * (held(hidden_pad, inter_pad) - share))
    extra, _ = mxfp4_moe_padding(config, tp, capability)
    assert abs(extra - expected) <= 1


def test_padding_only_for_gpt_oss_mxfp4():
    config = load_config("openai__gpt-oss-20b")
    unquantized = {k: v for k, v in config.items() if k != "quantization_config"}
    assert mxfp4_moe_padding(unquantized, 1, "8.0") == (0, "")
    extra, note = mxfp4_moe_padding(config, 1, None)
    assert extra == 0 and "not modelled" in note


def test_recommend_quantization_fp8_counts_online_weights_and_prints_the_flag():
    """`recommend --quantization fp8_per_tensor`: the weights term is the online-quantized count
    (kvplan.weights.stored.ONLINE_QUANTIZATIONS) and the serve command carries the flag; other engines refuse."""
    from kvplan.errors import UsageError
    from kvplan.weights.stored import weight_bytes

    config = load_config("meta-llama__Llama-3.1-8B")
    rec = recommend(config, gpu_profile="h100-sxm-80gb", quantization="fp8_per_tensor")
    assert rec.weights_bytes == weight_bytes(config, quantization="fp8_per_tensor") < weight_bytes(config) * 0.6
    assert rec.weights_source == "analytic, fp8_per_tensor online"
    assert "--quantization fp8_per_tensor" in rec.flags["vllm"]
    with pytest.raises(UsageError, match="vLLM"):
        recommend(config, gpu_profile="h100-sxm-80gb", engine="sglang", quantization="fp8")
