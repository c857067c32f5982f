"""Quantized weights as stored, per checkpoint format, built by hand from the configs and the loaders' sources.

Each rule is the parameter list vLLM 0.33.0 creates for the format (file:line in each test); the expected
figures are computed here from the config's dimensions, not copied from kvplan's output.
"""

from __future__ import annotations

import pytest

from kvplan.errors import UnsupportedArchitecture, UsageError
from kvplan.planning.resolved import resolve
from kvplan.weights.stored import weight_bytes
from kvplan.weights.tensors import count_parameters

from conftest import TINY_LLAMA as TINY
from conftest import load_config

ATTN = [(256, 256), (128, 256), (128, 256), (256, 256)]  # q, k, v, o (out, in)
MLP = [(512, 256), (512, 256), (256, 512)]  # gate, up, down
EMBED, LM_HEAD, NORMS = 1000 * 256, 1000 * 256, 2 * 2 * 256 + 256


def nvfp4(out: int, inp: int, input_scale: bool) -> int:
    """vllm-0.33.0/vllm/model_executor/layers/quantization/modelopt.py:2023-2066 (KNvfp4Static): uint8 weight
    [out, in/2], fp8 weight_scale [out, in/16], fp32 weight_scale_2; :2104-2112 (KNvfp4Dynamic): fp32
    input_scale for W4A4."""
    return out * inp // 2 + out * (inp // 16) + 4 + (4 if input_scale else 0)


def fp8_tensor(out: int, inp: int) -> int:
    """modelopt.py:2142-2180 (KFp8StaticTensor): fp8 weight, fp32 weight_scale and input_scale."""
    return out * inp + 4 + 4


def test_modelopt_nvfp4_gemma4_31b_attention_ignored():
    """nvidia/Gemma-4-31B-IT-NVFP4: quant_algo NVFP4 with input activations (W4A4); `ignore` names every
    layer's `model.language_model.layers.N.self_attn*` (modelopt.py:191-224 wildcards, :359 the key), so only
    the MLP matrices are NVFP4; embeddings (tied, no LM head tensor) and norms stay bf16."""
    config = load_config("nvidia__Gemma-4-31B-IT-NVFP4")
    t = config["text_config"]
    h, inter, layers = t["hidden_size"], t["intermediate_size"], t["num_hidden_layers"]
    mlp_params = layers * 3 * h * inter
    mlp = layers * (2 * nvfp4(inter, h, True) + nvfp4(h, inter, True))
    expected = 2 * (count_parameters(config) - mlp_params) + mlp
    assert weight_bytes(config) == expected
    assert resolve(config).weights("bfloat16") == (expected, "analytic")


def test_modelopt_mixed_precision_qwen36_27b():
    """nvidia/Qwen3.6-27B-NVFP4: MIXED_PRECISION, each layer's algo from `quantized_layers`
    (modelopt.py:1748-1800; a layer not listed stays unquantized, :1883-1885): FP8 for the attention and
    Gated-DeltaNet projections (in_proj_qkv, in_proj_z, out_proj; in_proj_a/b not listed: bf16), W4A16_NVFP4
    (no input scale, :2756) for the MLP and the LM head (ParallelLMHead is quantized, :237-254)."""
    config = load_config("nvidia__Qwen3.6-27B-NVFP4")
    t = config["text_config"]
    h, inter, layers, vocab = t["hidden_size"], t["intermediate_size"], t["num_hidden_layers"], t["vocab_size"]
    heads, kv, hd = t["num_attention_heads"], t["num_key_value_heads"], t["head_dim"]
    nk, nv, dk, dv = (
        t[k] for k in ("linear_num_key_heads", "linear_num_value_heads", "linear_key_head_dim", "linear_value_head_dim")
    )
    full = layers // t["full_attention_interval"]
    linear = layers - full
    attn = [(2 * heads * hd, h), (kv * hd, h), (kv * hd, h), (h, heads * hd)]  # q carries the output gate
    gdn = [(2 * nk * dk + nv * dv, h), (nv * dv, h), (h, nv * dv)]
    fp8_shapes = full * attn + linear * gdn
    nvfp4_shapes = layers * [(inter, h), (inter, h), (h, inter)] + [(vocab, h)]
    quantized_params = sum(o * i for o, i in fp8_shapes + nvfp4_shapes)
    expected = (
        2 * (count_parameters(config) - quantized_params)
        + sum(fp8_tensor(o, i) for o, i in fp8_shapes)
        + sum(nvfp4(o, i, False) for o, i in nvfp4_shapes)
    )
    assert weight_bytes(config) == expected


def test_modelopt_weight_only_nvfp4_and_exclude_modules():
    """quant_algo NVFP4 with `input_activations: null` in every config group is read as W4A16_NVFP4
    (modelopt.py:800-811); `exclude_modules` is the older key of the ignore list (:359), matched as a
    substring or wildcard (:191-224); without `ignore`, the LM head is quantized too (:254)."""
    group = {"weights": {"num_bits": 4, "type": "float", "group_size": 16}, "input_activations": None}
    qc = {
        "quant_method": "modelopt",
        "quant_algo": "NVFP4",
        "config_groups": {"group_0": group},
        "exclude_modules": ["model.layers.1*"],
    }
    layer0 = sum(nvfp4(o, i, False) for o, i in ATTN + MLP)
    layer1 = 2 * sum(o * i for o, i in ATTN + MLP)
    expected = layer0 + layer1 + nvfp4(1000, 256, False) + 2 * (EMBED + NORMS)
    assert weight_bytes({**TINY, "quantization_config": qc}) == expected
    w4a4 = {**qc, "config_groups": {"group_0": {**group, "input_activations": {"num_bits": 4}}}}
    assert weight_bytes({**TINY, "quantization_config": w4a4}) == expected + 4 * (7 + 1)


def test_modelopt_unsupported_algo_is_refused_with_its_name():
    qc = {"quant_method": "modelopt", "quant_algo": "W4A8_AWQ"}
    with pytest.raises(UnsupportedArchitecture, match="W4A8_AWQ"):
        weight_bytes({**TINY, "quantization_config": qc})
    reason = resolve({**TINY, "quantization_config": qc}).weights_unknown("bfloat16")
    assert reason is not None and "W4A8_AWQ" in reason and "no exact parameter count" not in reason


def test_fp8_static_activation_adds_input_scales():
    """vllm-0.33.0/vllm/model_executor/layers/quantization/fp8.py:317-325 one fp32 weight_scale per tensor
    without blocks; :341-345 an fp32 input_scale per tensor with `activation_scheme: static` (Devstral 2)."""
    qc = {"quant_method": "fp8", "activation_scheme": "static", "weight_block_size": None}
    shapes = 2 * (ATTN + MLP)
    expected = sum(o * i + 4 + 4 for o, i in shapes) + 2 * (EMBED + LM_HEAD + NORMS)
    assert weight_bytes({**TINY, "quantization_config": qc}) == expected


def test_compressed_tensors_mxfp4_scales_are_one_byte():
    """Kimi-K3's `mxfp4-pack-quantized` scheme (float, 4 bits, groups of 32, symmetric) is vLLM's MXFP4
    (compressed_tensors/compressed_tensors.py:440-457, :811): uint8 weight_packed [out, in/2] and uint8 (e8m0)
    weight_scale [out, in/32] (compressed_tensors/schemes/compressed_tensors_w4a4_mxfp4.py:64-88)."""
    w = {"num_bits": 4, "type": "float", "strategy": "group", "group_size": 32, "symmetric": True}
    qc = {
        "quant_method": "compressed-tensors",
        "format": "mxfp4-pack-quantized",
        "ignore": ["re:.*self_attn.*", "re:.*lm_head.*"],
        "config_groups": {"group_0": {"targets": ["Linear"], "weights": w}},
    }
    mlp = 2 * sum(o * i // 2 + o * (i // 32) for o, i in MLP)
    expected = mlp + 2 * (2 * sum(o * i for o, i in ATTN) + EMBED + LM_HEAD + NORMS)
    assert weight_bytes({**TINY, "quantization_config": qc}) == expected


@pytest.mark.parametrize(
    ("quantization", "scales"),
    [
        ("fp8_per_tensor", lambda o, i: 1),  # online/fp8.py:236-250: one fp32 weight_scale
        ("fp8", lambda o, i: 1),  # the older spelling of per-tensor (refused by 0.33.0: fp8.py:106-112)
        ("fp8_per_block", lambda o, i: -(-o // 128) * -(-i // 128)),  # :336-352 per_block_cast_to_fp8, 128x128
        ("fp8_per_channel", lambda o, i: o),  # :420-440 one fp32 scale per output channel
    ],
)
def test_online_fp8_quantizes_linear_layers_only(quantization, scales):
    """vLLM's online quantization of a bf16 checkpoint (`--quantization`, vllm-0.33.0/vllm/config/
    quantization.py:193-209): LinearBase layers become fp8 with fp32 scales; embeddings, the LM head
    (ParallelLMHead is no LinearBase) and norms stay bf16 (quantization/online/base.py:388-415)."""
    linear = 2 * sum(o * i + 4 * scales(o, i) for o, i in ATTN + MLP)
    expected = linear + 2 * (EMBED + LM_HEAD + NORMS)
    assert weight_bytes(TINY, quantization=quantization) == expected


def test_online_fp8_llama_8b_is_about_half():
    """Llama-3.1-8B: 14.96 GiB in bf16; online per-tensor FP8 keeps the 2 x 128256 x 4096 embedding and LM head
    in bf16 and stores every other matrix in one byte (issue 13 quotes 8.49 GiB logged for a plan of 14.96)."""
    config = load_config("meta-llama__Llama-3.1-8B")
    h, vocab, layers = config["hidden_size"], config["vocab_size"], config["num_hidden_layers"]
    params = count_parameters(config)
    matrices = params - 2 * vocab * h - (2 * layers + 1) * h  # all but embeddings, LM head, norms
    expected = matrices + 4 * 7 * layers + 2 * (params - matrices)
    assert weight_bytes(config, quantization="fp8_per_tensor") == expected
    assert resolve(config).weights("bfloat16", "fp8_per_tensor") == (expected, "analytic, fp8_per_tensor online")


def test_online_quantization_leaves_quantized_checkpoints_as_stored_and_refuses_unknown_schemes():
    """A quantized checkpoint is served with its own method (vllm-0.33.0/vllm/config/model.py:1428-1461: a
    kernel override of it, or an error for another name): `--quantization fp8` on an FP8 checkpoint (the usual
    `vllm serve ...-FP8 --quantization fp8`) changes nothing."""
    for name in ("deepseek-ai__DeepSeek-V3", "openai__gpt-oss-20b"):
        config = load_config(name)
        assert weight_bytes(config, quantization="fp8") == weight_bytes(config)
        assert resolve(config).weights("bfloat16", "fp8") == resolve(config).weights("bfloat16")
    with pytest.raises(UsageError, match="int3"):
        weight_bytes(TINY, quantization="int3")


def test_devstral_small_2_fp8_per_tensor_static_by_hand():
    """mistralai/Devstral-Small-2-24B-Instruct: quant_method fp8, `weight_block_size: null`,
    `activation_scheme: static`: every decoder matrix is 1 byte per weight + an fp32 weight_scale and an fp32
    input_scale (vllm-0.33.0/vllm/model_executor/layers/quantization/fp8.py:317-325, :341-345); the LM head is in
    `modules_to_not_convert`, embeddings and norms are never quantized: bf16."""
    t = load_config("mistralai__Devstral-Small-2-24B-Instruct")["text_config"]
    h, hd, heads, kv = t["hidden_size"], t["head_dim"], t["num_attention_heads"], t["num_key_value_heads"]
    inter, layers, vocab = t["intermediate_size"], t["num_hidden_layers"], t["vocab_size"]
    shapes = [(heads * hd, h), (kv * hd, h), (kv * hd, h), (h, heads * hd), (inter, h), (inter, h), (h, inter)]
    fp8 = layers * sum(o * i + 4 + 4 for o, i in shapes)
    bf16 = 2 * (2 * vocab * h + layers * 2 * h + h)  # embeddings, LM head, two norms a layer, the final norm
    assert weight_bytes(load_config("mistralai__Devstral-Small-2-24B-Instruct")) == fp8 + bf16


def test_online_fp8_keeps_the_tensors_with_their_own_dtype():
    """GLM-4.5's fp32 router weights and biases stay fp32 under --quantization fp8_per_tensor (vLLM builds routers
    with quant_config=None and float32 params, glm4_moe.py:141-150), as they are without it."""
    from kvplan.weights.stored import _online_fp8, _tensor_bytes
    from kvplan.weights.tensors import weight_tensors

    config = load_config("zai-org__GLM-4.5")
    own = [t for t in weight_tensors(config) if t.dtype is not None]
    assert own and {t.dtype for t in own} == {"float32"}
    for t in own:
        assert _online_fp8(t, "tensor", 2) == _tensor_bytes(t, None, 2) == t.numel * 4, t.name
