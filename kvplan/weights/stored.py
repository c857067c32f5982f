"""Weight bytes as stored: the analytic tensor list (kvplan.weights.tensors) priced by `quantization_config`.

`weight_bytes(config, dtype_bytes=None)` honours FP8 (block and per-channel scales), fbgemm FP8, AWQ, GPTQ,
MXFP4, bitsandbytes, compressed-tensors schemes and NVIDIA ModelOpt (NVFP4, W4A16_NVFP4, FP8 and their
MIXED_PRECISION per-layer mix); `dtype_bytes_of(config)` is the unquantized element size.
Pure arithmetic; never imports torch.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from fnmatch import fnmatchcase
from typing import Any

from kvplan.core.config import first, raw_dtype
from kvplan.core.units import DTYPES, dtype_name
from kvplan.errors import ConfigError, Text, UnsupportedArchitecture, UsageError
from kvplan.weights.tensors import Tensor, language_model_config, weight_tensors

__all__ = ["ONLINE_QUANTIZATIONS", "dtype_bytes_of", "weight_bytes"]


_QUANTIZABLE = ("linear", "expert")


def dtype_bytes_of(cfg: dict[str, Any]) -> int:
    """Bytes per element of the unquantized weights: `torch_dtype` / `dtype` of the config, bf16 when absent.

    Any whole-byte dtype of kvplan.core.units' table is accepted (float64, uint8 and tf32 too); packed and
    block types (int4, q4_0, ...) are not weight storage dtypes and are refused like unknown names.
    """
    value = raw_dtype(cfg, default="bfloat16")
    if str(value).removeprefix("torch.").lower() == "auto":
        return 2
    name = dtype_name(value)
    if name is None or DTYPES[name].denominator != 1:
        raise ConfigError(
            f"config field `torch_dtype` has an unknown dtype {value!r}",
            hint="use a torch dtype name such as bfloat16, float16 or float32",
        )
    return int(DTYPES[name])


def _matches(module: str, pattern: str) -> bool:
    """transformers' `should_convert_module` rule, plus compressed-tensors' `re:` prefix."""
    if pattern.startswith("re:"):
        return _safe_match(pattern[3:], module)
    return _safe_match(rf"(?:{pattern})(?:(?<=\.)|(?=\.|$))", module) or module.endswith(pattern)


def _safe_match(regex: str, text: str) -> bool:
    try:
        return re.match(regex, text) is not None
    except re.error:
        return False


def _names(module: str) -> tuple[str, ...]:
    """`module` and its name in a multimodal wrapper's checkpoint: kvplan names a wrapped text model's tensors
    `model.layers.*` or `model.language_model.layers.*` by layout, the checkpoint (and its ignore lists, e.g.
    nvidia/Gemma-4-31B-IT-NVFP4's `model.language_model.layers.0.self_attn*`) by the wrapper's own tree."""
    if module.startswith("model.language_model."):
        return module, "model." + module.removeprefix("model.language_model.")
    if module.startswith("model."):
        return module, "model.language_model." + module.removeprefix("model.")
    return (module,)


def _skipped(t: Tensor, qc: dict[str, Any]) -> bool:
    keys = ("modules_to_not_convert", "ignore", "ignored_layers", "llm_int8_skip_modules")
    patterns = [p for k in keys for p in (qc.get(k) or []) if isinstance(p, str)]
    return t.role not in _QUANTIZABLE or any(_matches(m, p) for m in _names(t.module) for p in patterns)


def _split(t: Tensor) -> tuple[int, int, int]:
    """(copies, out, in) of a matrix or a stack of expert matrices."""
    return math.prod(t.shape[:-2]), t.shape[-2], t.shape[-1]


def _group(size: Any, inp: int) -> int:
    return inp if size in (None, -1, 0) else int(size)


def _fp8(t: Tensor, qc: dict[str, Any], base: int) -> int:
    """quant_method "fp8" as vLLM's Fp8LinearMethod.create_weights loads it (vllm-0.33.0/vllm/model_executor/
    layers/quantization/fp8.py:312-345): 1-byte `weight`; fp32 `weight_scale_inv` per `weight_block_size` block
    (:328-339; fp32 also under `scale_fmt: ue8m0`: the e8m0 dtype of :336 needs `is_scale_e8m0`, which no config
    key sets, :243), else one fp32 `weight_scale` per tensor (:317-325); with `activation_scheme: static` one
    fp32 `input_scale` per tensor too (:341-345, utils/fp8_utils.py:1440-1447; transformers'
    integrations/finegrained_fp8.py FP8Linear's `activation_scale`, the same 4 bytes).

    `expert_dtype` "fp4" (DeepSeek-V4): expert matrices hold two e2m1 values per byte and one scale per row and
    32 input values, in UE8M0 (one byte) with `scale_fmt` "ue8m0" (transformers 5.24 integrations/
    finegrained_fp8.py:749-763, `_alloc_expert_proj` :151-176)."""
    n, out, inp = _split(t)
    if t.role == "expert" and qc.get("expert_dtype") == "fp4":
        scale = 1 if qc.get("scale_fmt") == "ue8m0" else 4
        return n * out * (inp // 2 + math.ceil(inp / 32) * scale)
    block = qc.get("weight_block_size")
    scales = math.ceil(out / block[0]) * math.ceil(inp / block[1]) if block else 1
    static = 4 if str(qc.get("activation_scheme", "dynamic")).lower() == "static" else 0
    return n * (out * inp + 4 * scales + static)


def _fbgemm_fp8(t: Tensor, qc: dict[str, Any], base: int) -> int:
    n, out, inp = _split(t)
    return n * (out * inp + 4 * out)


def _awq(t: Tensor, qc: dict[str, Any], base: int) -> int:
    """AWQ (GEMM layout): int32-packed qweight and qzeros, fp16 scales, one row of each per input group."""
    n, out, inp = _split(t)
    bits = int(first(qc, "bits", "w_bit", default=4))
    groups = math.ceil(inp / _group(first(qc, "group_size", "q_group_size", default=128), inp))
    packed = math.ceil(out * bits / 32) * 4
    return n * (inp * packed + groups * packed + groups * out * 2)


def _gptq(t: Tensor, qc: dict[str, Any], base: int) -> int:
    """GPTQ: qweight int32 [in*bits/32, out], qzeros int32 [groups, out*bits/32], fp16 scales, int32 g_idx."""
    n, out, inp = _split(t)
    bits = int(qc.get("bits", 4))
    groups = math.ceil(inp / _group(qc.get("group_size", 128), inp))
    qweight = math.ceil(inp * bits / 32) * out * 4
    return n * (qweight + groups * math.ceil(out * bits / 32) * 4 + groups * out * 2 + inp * 4)


def _mxfp4(t: Tensor, qc: dict[str, Any], base: int) -> int | None:
    """MXFP4 (gpt-oss): only expert weights; 4-bit values + one e8m0 scale byte per 32 input values."""
    if t.role != "expert":
        return None
    n, out, inp = _split(t)
    blocks = math.ceil(inp / 32)
    return n * out * blocks * (16 + 1)


def _bitsandbytes(t: Tensor, qc: dict[str, Any], base: int) -> int:
    """bitsandbytes: 4-bit (nf4/fp4, 64-value blocks) or LLM.int8 (int8 + fp32 per-row scale). Approximate."""
    n, out, inp = _split(t)
    if qc.get("load_in_8bit") or str(qc.get("_load_in_8bit")).lower() == "true":
        return n * (out * inp + 4 * out)
    blocks = math.ceil(out * inp / 64)
    absmax = blocks + 4 * math.ceil(blocks / 256) if qc.get("bnb_4bit_use_double_quant") else 4 * blocks
    return n * (math.ceil(out * inp / 2) + absmax)


def _ct_scheme(t: Tensor, qc: dict[str, Any]) -> dict[str, Any] | None:
    """The `weights` args of the first compressed-tensors config group whose targets match the tensor."""
    for group in (qc.get("config_groups") or {}).values():
        targets = group.get("targets") or ["Linear"]
        if any(x == "Linear" or _matches(t.module, x) for x in targets) and group.get("weights"):
            return group["weights"]
    return None


def _ct_scales(out: int, inp: int, w: dict[str, Any]) -> int:
    strategy = w.get("strategy") or "tensor"
    if strategy == "channel":
        return out
    if strategy in ("group", "tensor_group"):
        return out * math.ceil(inp / _group(w.get("group_size"), inp))
    if strategy == "block":
        block = w.get("block_structure") or [128, 128]
        return math.ceil(out / block[0]) * math.ceil(inp / block[1])
    return 1


def _ct_mxfp4(w: dict[str, Any]) -> bool:
    """vLLM's `_is_mxfp4` (compressed_tensors/compressed_tensors.py:440-457): symmetric 4-bit float groups of 32."""
    return (
        w.get("strategy") == "group"
        and w.get("type") == "float"
        and int(w.get("num_bits", 8)) == 4
        and w.get("group_size") == 32
        and w.get("symmetric", True)
    )


def _compressed_tensors(t: Tensor, qc: dict[str, Any], base: int) -> int | None:
    """compressed-tensors: packed int4 (`pack-quantized`) or 1-byte int8/fp8 weights, per-strategy scales.

    Scales are stored in the model dtype (fp8 e4m3 for NVFP4 `tensor_group`, plus one fp32 global scale; uint8
    e8m0 for MXFP4, `mxfp4-pack-quantized` as Kimi-K3 ships it);
    asymmetric zero points are counted at `num_bits` each; activation scales are ignored.
    """
    w = _ct_scheme(t, qc)
    if w is None:
        return None
    n, out, inp = _split(t)
    bits, scales = int(w.get("num_bits", 8)), _ct_scales(out, inp, w)
    if qc.get("format") == "pack-quantized":  # int32-packed values + an int32 `weight_shape` pair
        values = out * math.ceil(inp * bits / 32) * 4 + 8
    else:
        values = math.ceil(out * inp * bits / 8)
    if w.get("strategy") == "tensor_group":
        scale_bytes = scales + 4
    elif _ct_mxfp4(w):  # uint8 `weight_packed` [out, in/2] + uint8 (e8m0) `weight_scale` [out, in/32]
        # (vllm-0.33.0/vllm/model_executor/layers/quantization/compressed_tensors/schemes/
        # compressed_tensors_w4a4_mxfp4.py:64-88; chosen by compressed_tensors.py:440-457 and :811)
        values, scale_bytes = math.ceil(out * inp / 2), scales
    else:
        scale_bytes = scales * base
    zeros = 0 if w.get("symmetric", True) else math.ceil(scales * bits / 8)
    return n * (values + scale_bytes + zeros)


_MODELOPT = "vllm-0.33.0/vllm/model_executor/layers/quantization/modelopt.py"


def _modelopt_nvfp4(out: int, inp: int, group: int, input_scale: bool) -> int:
    """NVFP4 as vLLM's KNvfp4Static registers it (modelopt.py:2023-2066): uint8 `weight` [out, in/2], fp8
    `weight_scale` [out, in/group], an fp32 `weight_scale_2`; W4A4 adds an fp32 `input_scale` (KNvfp4Dynamic,
    :2104-2112). One scalar per checkpoint tensor (vLLM's per-partition scalars are the fused shards')."""
    return out * inp // 2 + out * (inp // group) + 4 + (4 if input_scale else 0)


_MODELOPT_ALGOS: dict[str, Callable[[int, int, int], int]] = {
    # FP8 (W8A8 static): fp8 `weight` + fp32 `weight_scale` + fp32 `input_scale` (KFp8StaticTensor, :2142-2180)
    "FP8": lambda out, inp, group: out * inp + 4 + 4,
    # fp8 `weight` + fp32 `weight_scale` per output channel (KFp8StaticChannel, :2217-2233)
    "FP8_PER_CHANNEL_PER_TOKEN": lambda out, inp, group: out * inp + 4 * out,
    # fp8 `weight` + fp32 `weight_scale` [cdiv(out, 128), 1, in/128, 1] (KFp8Block128, :2260-2290)
    "FP8_PB_WO": lambda out, inp, group: out * inp + 4 * math.ceil(out / 128) * (inp // 128),
    "NVFP4": lambda out, inp, group: _modelopt_nvfp4(out, inp, group, True),
    "W4A16_NVFP4": lambda out, inp, group: _modelopt_nvfp4(out, inp, group, False),
}


def _modelopt_excluded(module: str, patterns: list[str]) -> bool:
    """ModelOptQuantConfigBase.is_layer_excluded (modelopt.py:191-224): an exact name, a substring, or an
    fnmatch wildcard of `ignore` / `exclude_modules` (:359)."""
    return any(p == m or p in m or fnmatchcase(m, p) for m in _names(module) for p in patterns)


def _modelopt_algo(t: Tensor, qc: dict[str, Any]) -> str | None:
    """The ModelOpt algorithm a tensor is stored with, None when it is left unquantized.

    Linear layers and the LM head are quantized (`isinstance(layer, (LinearBase, ParallelLMHead))`,
    modelopt.py:237-254), routed experts too (:255-261); embeddings, norms, routers are not. MIXED_PRECISION
    takes each layer's `quant_algo` from `quantized_layers` and leaves the others unquantized (:1748-1800,
    :1883-1885); a stack of experts matches its per-expert entries by prefix (:1778-1790)."""
    if t.role not in (*_QUANTIZABLE, "lm_head"):
        return None
    patterns = [p for p in (qc.get("ignore", qc.get("exclude_modules")) or []) if isinstance(p, str)]
    if _modelopt_excluded(t.module, patterns):
        return None
    algo = str(qc.get("quant_algo", "")).upper()
    if algo == "MIXED_PRECISION":
        layers = qc.get("quantized_layers") or {}
        for name in _names(t.module):
            info = layers.get(name) or next((v for k, v in layers.items() if k.startswith(name + ".")), None)
            if isinstance(info, dict):
                return str(info.get("quant_algo", "")).upper()
        return None
    groups = [g for g in (qc.get("config_groups") or {}).values() if isinstance(g, dict)]
    if algo == "NVFP4" and groups and all(g.get("input_activations") is None for g in groups):
        return "W4A16_NVFP4"  # weight-only NVFP4 export read as W4A16 (modelopt.py:800-811)
    return algo


def _modelopt_group(t: Tensor, qc: dict[str, Any]) -> int:
    """NVFP4 group size: `group_size`, else the layer's (MIXED_PRECISION) or a config group's, else 16
    (modelopt.py:813-814, :1692-1703)."""
    info = (qc.get("quantized_layers") or {}).get(t.module) or {}
    weights = [g.get("weights") or {} for g in (qc.get("config_groups") or {}).values() if isinstance(g, dict)]
    sizes = [qc.get("group_size"), info.get("group_size"), *(w.get("group_size") for w in weights)]
    return int(next((s for s in sizes if s), 16))


def _modelopt(t: Tensor, qc: dict[str, Any], base: int) -> int | None:
    """NVIDIA ModelOpt checkpoints (`quant_method: modelopt`) as vLLM's ModelOpt configs read them."""
    algo = _modelopt_algo(t, qc)
    if algo is None:
        return None
    if algo not in _MODELOPT_ALGOS:
        raise UnsupportedArchitecture(
            f"ModelOpt quant_algo {algo!r} (tensor {t.name}) is not supported for sizing weights",
            hint="supported: " + ", ".join(sorted(_MODELOPT_ALGOS)) + ", MIXED_PRECISION of these",
        )
    n, out, inp = _split(t)
    return n * _MODELOPT_ALGOS[algo](out, inp, _modelopt_group(t, qc))


_QUANT_METHODS: dict[str, Callable[[Tensor, dict[str, Any], int], int | None]] = {
    "fp8": _fp8,
    "fbgemm_fp8": _fbgemm_fp8,
    "awq": _awq,
    "gptq": _gptq,
    "mxfp4": _mxfp4,
    "bitsandbytes": _bitsandbytes,
    "compressed-tensors": _compressed_tensors,
    "compressed_tensors": _compressed_tensors,
    "modelopt": _modelopt,
}


_ONLINE = "vllm-0.33.0/vllm/model_executor/layers/quantization/online"

# vLLM's `--quantization` online FP8 schemes for an unquantized checkpoint (vllm-0.33.0/vllm/config/
# quantization.py:193-209 `_ONLINE_QUANT_SHORTHANDS`): fp32 scales per tensor, per 128x128 block, per channel.
# `fp8` is the older spelling of per-tensor online FP8; vLLM 0.33.0 refuses it for an unquantized checkpoint
# and names `fp8_per_tensor` (quantization/fp8.py:106-112).
ONLINE_QUANTIZATIONS: dict[str, str] = {
    "fp8": "tensor",
    "fp8_per_tensor": "tensor",
    "fp8_per_block": "block",
    "fp8_per_channel": "channel",
}


def _online_fp8(t: Tensor, scheme: str, base: int) -> int:
    """A tensor as vLLM holds it after online FP8 quantization at load. OnlineQuantizationConfig quantizes
    LinearBase layers and routed experts and leaves the rest (embeddings, the LM head, a ParallelLMHead; norms)
    unquantized (online/base.py:388-415); routers are built with `quant_config=None` by the MoE models. The fp8
    weight replaces the bf16 one (online/fp8.py:236-250 per tensor, fp32 `weight_scale` scalar; :292-376 per
    128x128 block; :377-420 per output channel); one scale per kvplan tensor (vLLM keeps one per fused layer).
    A tensor with its own dtype (fp32 routers, float32 keep-modules, integer buffers) keeps it."""
    if t.dtype is not None:
        return t.numel * int(DTYPES[t.dtype])
    if t.role not in _QUANTIZABLE:
        return t.numel * base
    n, out, inp = _split(t)
    scales = {"tensor": 1, "block": math.ceil(out / 128) * math.ceil(inp / 128), "channel": out}[scheme]
    return n * (out * inp + 4 * scales)


def _tensor_bytes(t: Tensor, qc: dict[str, Any] | None, base: int) -> int:
    if t.dtype is not None:  # a tensor with its own dtype (kept in float32, integer buffers) is never quantized
        return t.numel * int(DTYPES[t.dtype])
    if qc and qc["quant_method"] == "modelopt":  # its own exclusion rules and quantized LM head
        quantized = _modelopt(t, qc, base)
        return t.numel * base if quantized is None else quantized
    if qc and not _skipped(t, qc):
        quantized = _QUANT_METHODS[qc["quant_method"]](t, qc, base)
        if quantized is not None:
            return quantized
    return t.numel * base


def _quant_config(cfg: dict[str, Any]) -> dict[str, Any] | None:
    qc = cfg.get("quantization_config")
    if not qc:
        return None
    if cfg.get("expert_dtype") and "expert_dtype" not in qc:
        # DeepSeek-V4 configs name the experts' dtype at the top level; transformers folds it into the
        # quantization config (configuration_deepseek_v4.py DeepseekV4Config.__post_init__)
        qc = {**qc, "expert_dtype": cfg["expert_dtype"]}
    method = str(qc.get("quant_method", "")).lower()
    if method not in _QUANT_METHODS:
        raise UnsupportedArchitecture(
            f"quantization method {method or '(none)'!r} is not supported for sizing weights",
            hint="supported: " + ", ".join(sorted(_QUANT_METHODS)) + "; or size the weights from an unquantized config",
        )
    return {**qc, "quant_method": method}


def tensors_bytes(config: dict[str, Any], tensors: list[Tensor], dtype_bytes: int | None = None) -> int:
    """Bytes of `tensors` as the checkpoint of `config` would store them (its `quantization_config`, ignore lists
    included: tensors named like ones the checkpoint leaves unquantized stay at `dtype_bytes`, default the config's
    dtype). What a tensor list beside the counted model costs, e.g. the MTP layers vLLM loads for drafting."""
    cfg = language_model_config(config)
    base = dtype_bytes or dtype_bytes_of(cfg)
    qc = _quant_config(cfg)
    return sum(_tensor_bytes(t, qc, base) for t in tensors)


def weight_bytes(config: dict[str, Any], dtype_bytes: int | None = None, quantization: str | None = None) -> int:
    """Bytes of the language model's weights as stored, honouring `quantization_config`.

    Unquantized tensors (and all tensors of an unquantized model) take `dtype_bytes` each, default the
    config's `torch_dtype`/`dtype` (bf16 = 2 when absent), except those whose modelling code fixes their dtype
    (`Tensor.dtype`: the fp32 routers of glm4_moe and hunyuan, DeepSeek-V4's float32 keep-modules). Embeddings, norms, biases, routers, the
    LM head and modules matched by `modules_to_not_convert` / `ignore` are never quantized. Quantized matrices:

    - fp8: 1 byte per weight + fp32 `weight_scale_inv` per `weight_block_size` block (DeepSeek-V3: 128x128),
      one per tensor without blocks, plus an fp32 activation scale per matrix when `activation_scheme` is
      "static" (Devstral 2); fbgemm_fp8: fp32 per output channel.
    - awq (GEMM layout) / gptq: int32-packed `bits`-bit qweight and qzeros, fp16 scales per `group_size`
      input group, and for gptq an int32 `g_idx` per input feature. Marlin/GEMV repackings are not modelled.
    - compressed-tensors: see `_compressed_tensors`.
    - mxfp4 (gpt-oss): expert matrices only, 4 bits + 1 e8m0 scale byte per 32 values.
    - bitsandbytes: approximate (quant-state metadata ignored).
    - modelopt: NVFP4 / W4A16_NVFP4 (4 bits + an fp8 scale per 16 values + fp32 scalars), FP8 (per tensor,
      channel or 128x128 block), per layer under MIXED_PRECISION; the LM head too unless ignored (`_modelopt`).

    `quantization` is vLLM's `--quantization` for online quantization of an unquantized checkpoint (a key of
    ONLINE_QUANTIZATIONS): linear layers and experts become fp8 with fp32 scales (`_online_fp8`).

    A checkpoint with a `quantization_config` is counted as stored whatever `quantization` says.

    Raises UnsupportedArchitecture for another `quant_method`, UsageError for a non-positive `dtype_bytes` or an
    unknown `quantization`.
    """
    if dtype_bytes is not None and (type(dtype_bytes) is not int or dtype_bytes <= 0):
        raise UsageError(f"dtype_bytes must be a positive integer, got {dtype_bytes!r}", hint="use 1, 2 or 4")
    cfg = language_model_config(config)
    base = dtype_bytes or dtype_bytes_of(cfg)
    qc = _quant_config(cfg)
    if quantization is not None:
        scheme = ONLINE_QUANTIZATIONS.get(quantization)
        if scheme is None:
            raise UsageError(
                Text("{quantization} {v!r} is not an online quantization kvplan models", v=quantization),
                hint="use one of " + ", ".join(ONLINE_QUANTIZATIONS),
                field="quantization",
            )
        if qc is None:
            return sum(_online_fp8(t, scheme, base) for t in weight_tensors(config))
        # a quantized checkpoint is held as stored: vLLM serves it with its own method (or a kernel override of
        # it) and refuses a --quantization naming another (vllm-0.33.0/vllm/config/model.py:1428-1461)
    return sum(_tensor_bytes(t, qc, base) for t in weight_tensors(config))


def expert_layers(config: dict[str, Any]) -> int:
    """Decoder layers holding routed experts: the distinct `layers.N.` of the expert tensors (0: a dense model, or
    tensors named otherwise)."""
    import re

    found = {
        m.group(1)
        for t in weight_tensors(config)
        if t.role == "expert" and (m := re.search(r"layers\.(\d+)\.", t.module))
    }
    return len(found)


def expert_weight_bytes(config: dict[str, Any], dtype_bytes: int | None = None, quantization: str | None = None) -> int:
    """Bytes of the routed-expert matrices alone (tensors of role "expert"), stored as `weight_bytes` stores them:
    the part of the weights an engine shards by expert (expert parallelism) rather than by TP. Shared experts,
    routers and attention are not in it. 0 for a dense model."""
    cfg = language_model_config(config)
    base = dtype_bytes or dtype_bytes_of(cfg)
    qc = _quant_config(cfg)
    tensors = [t for t in weight_tensors(config) if t.role == "expert"]
    if quantization is not None and qc is None:
        scheme = ONLINE_QUANTIZATIONS[quantization]
        return sum(_online_fp8(t, scheme, base) for t in tensors)
    return sum(_tensor_bytes(t, qc, base) for t in tensors)
