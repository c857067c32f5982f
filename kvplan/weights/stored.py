"""Weight bytes as stored: the analytic tensor list (kvplan.weights.tensors) priced by `quantization_config`.

`weight_bytes(config, dtype_bytes=None)` honours FP8 (block and per-channel scales), fbgemm FP8, AWQ, GPTQ,
MXFP4, bitsandbytes and compressed-tensors schemes; `dtype_bytes_of(config)` is the unquantized element size.
Pure arithmetic; never imports torch.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any

from kvplan.core.config import first, raw_dtype
from kvplan.core.units import DTYPES, dtype_name
from kvplan.errors import ConfigError, UnsupportedArchitecture, UsageError
from kvplan.weights.tensors import Tensor, language_model_config, weight_tensors

__all__ = ["dtype_bytes_of", "weight_bytes"]


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


def _skipped(t: Tensor, qc: dict[str, Any]) -> bool:
    keys = ("modules_to_not_convert", "ignore", "ignored_layers", "llm_int8_skip_modules")
    patterns = [p for k in keys for p in (qc.get(k) or []) if isinstance(p, str)]
    return t.role not in _QUANTIZABLE or any(_matches(t.module, p) for p in patterns)


def _split(t: Tensor) -> tuple[int, int, int]:
    """(copies, out, in) of a matrix or a stack of expert matrices."""
    return math.prod(t.shape[:-2]), t.shape[-2], t.shape[-1]


def _group(size: Any, inp: int) -> int:
    return inp if size in (None, -1, 0) else int(size)


def _fp8(t: Tensor, qc: dict[str, Any], base: int) -> int:
    """quant_method "fp8": 1-byte weights + fp32 `weight_scale_inv` per block (or one per tensor), and with
    `activation_scheme` "static" one fp32 `activation_scale` per matrix (transformers'
    integrations/finegrained_fp8.py FP8Linear: `activation_scale = nn.Parameter(torch.tensor(1.0, float32))`).

    `expert_dtype` "fp4" (DeepSeek-V4): expert matrices hold two e2m1 values per byte and one scale per row and
    32 input values, in UE8M0 (one byte) with `scale_fmt` "ue8m0" (transformers 5.24 integrations/
    finegrained_fp8.py:749-763, `_alloc_expert_proj` :151-176). Block scales stay fp32 (the V3 checkpoints):
    whether a `scale_fmt` "ue8m0" checkpoint stores its block scales in one byte is not settled here."""
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


def _compressed_tensors(t: Tensor, qc: dict[str, Any], base: int) -> int | None:
    """compressed-tensors: packed int4 (`pack-quantized`) or 1-byte int8/fp8 weights, per-strategy scales.

    Scales are stored in the model dtype (fp8 e4m3 for NVFP4 `tensor_group`, plus one fp32 global scale);
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
    scale_bytes = scales + 4 if w.get("strategy") == "tensor_group" else scales * base
    zeros = 0 if w.get("symmetric", True) else math.ceil(scales * bits / 8)
    return n * (values + scale_bytes + zeros)


_QUANT_METHODS: dict[str, Callable[[Tensor, dict[str, Any], int], int | None]] = {
    "fp8": _fp8,
    "fbgemm_fp8": _fbgemm_fp8,
    "awq": _awq,
    "gptq": _gptq,
    "mxfp4": _mxfp4,
    "bitsandbytes": _bitsandbytes,
    "compressed-tensors": _compressed_tensors,
    "compressed_tensors": _compressed_tensors,
}


def _tensor_bytes(t: Tensor, qc: dict[str, Any] | None, base: int) -> int:
    if t.dtype is not None:  # a tensor with its own dtype (kept in float32, integer buffers) is never quantized
        return t.numel * int(DTYPES[t.dtype])
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


def weight_bytes(config: dict[str, Any], dtype_bytes: int | None = None) -> int:
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

    Raises UnsupportedArchitecture for another `quant_method`, UsageError for a non-positive `dtype_bytes`.
    """
    if dtype_bytes is not None and (type(dtype_bytes) is not int or dtype_bytes <= 0):
        raise UsageError(f"dtype_bytes must be a positive integer, got {dtype_bytes!r}", hint="use 1, 2 or 4")
    cfg = language_model_config(config)
    base = dtype_bytes or dtype_bytes_of(cfg)
    qc = _quant_config(cfg)
    return sum(_tensor_bytes(t, qc, base) for t in weight_tensors(config))
